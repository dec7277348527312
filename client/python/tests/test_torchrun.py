"""A real torchrun job (gloo, two ranks) killed with SIGKILL mid-epoch, resumed
with one rank, killed again, then finished with two: every sample of the
epoch exactly once across the runs."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from m3serve.torch import M3ITDataset

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "ddp_train.py"
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--redirects", "2", "--tee", "1"]


def start(target, ranks, tmp_path, run, hang_after=0):
    (tmp_path / f"log{run}").mkdir()
    cmd = TORCHRUN + [f"--nproc_per_node={ranks}", str(EXAMPLE), "--target", target,
                      "--checkpoint", str(tmp_path / "ckpt.pt"), "--log", str(tmp_path / f"log{run}"),
                      "--checkpoint-every", "3", "--batch-size", "5"]
    if hang_after:
        cmd += ["--hang-after-steps", str(hang_after)]
    path = tmp_path / f"torchrun{run}.out"
    proc = subprocess.Popen(cmd, stdout=open(path, "w"), stderr=subprocess.STDOUT, start_new_session=True,
                            env=dict(os.environ))
    proc.output, proc.log = path, tmp_path / f"log{run}"
    return proc


def wait_for_hang(proc, ranks, timeout=180):
    deadline = time.time() + timeout
    while time.time() < deadline:
        text = proc.output.read_text()
        if text.count("hanging after") >= ranks:
            return
        assert proc.poll() is None, text
        time.sleep(0.2)
    raise AssertionError("the job did not reach its hang point:\n" + proc.output.read_text())


def logged(proc):
    """The batches a run logged: {samples: position after the batch, sample_index, id}."""
    return [json.loads(line) for f in sorted(proc.log.glob("rank*.jsonl")) for line in f.read_text().splitlines()]


def kill(proc):
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def up_to_checkpoint(proc, tmp_path):
    """The samples a killed run consumed up to its last checkpoint, and that position."""
    position = torch.load(tmp_path / "ckpt.pt")["data"]["samples"]
    return [i for b in logged(proc) if b["samples"] <= position for i in b["sample_index"]], position


def test_kill_and_resume_with_another_world_size(server, tmp_path):
    job = start(server.target, 2, tmp_path, 1, hang_after=7)  # checkpoints after steps 3 and 6
    wait_for_hang(job, 2)
    kill(job)
    kept, position = up_to_checkpoint(job, tmp_path)
    assert position == 6 * 2 * 5
    assert sorted(kept) == list(range(position))

    job = start(server.target, 1, tmp_path, 2, hang_after=8)  # resumes at 60; checkpoints after 3 and 6 steps
    wait_for_hang(job, 1)
    kill(job)
    assert "resumed at epoch 0, sample 60" in job.output.read_text()
    got, position2 = up_to_checkpoint(job, tmp_path)
    assert position2 == position + 6 * 1 * 5
    assert sorted(got) == list(range(position, position2))
    kept += got

    job = start(server.target, 2, tmp_path, 3)
    assert job.wait(timeout=300) == 0, job.output.read_text()
    assert "resumed at epoch 0, sample 90" in job.output.read_text()
    kept += [i for b in logged(job) for i in b["sample_index"]]
    epoch = M3ITDataset(server.target, splits=["train"], shuffle=True, seed=7).plan().epoch_samples
    end = position2 + (epoch - position2) // 10 * 10  # drop_remainder: whole steps of 2 x 5
    assert len(kept) == len(set(kept)), "a sample was consumed twice"
    assert sorted(kept) == list(range(end)), "a gap, or more than the schedule"
