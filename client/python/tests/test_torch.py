import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

import m3serve
from m3serve.torch import IMAGENET_MEAN, IMAGENET_STD, M3ITDataLoader, M3ITDataset, collate

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def ids_of(loader):
    out = []
    for batch in loader:
        out += batch["id"]
    return out


def test_two_ranks_two_workers_see_every_instance_once(server):
    total = m3serve.Client(server.target).catalog()["total_instances"]
    seen = []
    for rank in (0, 1):
        ds = M3ITDataset(server.target, rank=rank, world_size=2, images="decoded", size=(32, 32),
                         max_images=1, drop_remainder=False, seed=11)
        loader = M3ITDataLoader(ds, batch_size=8, num_workers=2, collate_fn=collate)
        seen += ids_of(loader)
    assert len(seen) == total
    assert len(set(seen)) == total


def test_rank_from_environment(server, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "3")
    ds = M3ITDataset(server.target, images="none")
    assert ds.shard() == (1, 3, 0, 1)


def test_state_dict_mid_epoch_resumes_exactly_once(server):
    def make(epoch):
        ds = M3ITDataset(server.target, images="decoded", size=(16, 16), max_images=1, seed=4, shuffle=True)
        ds.set_epoch(epoch)
        return ds

    full_batches = list(M3ITDataLoader(make(1), batch_size=5, num_workers=2, collate_fn=collate))
    full = [i for b in full_batches for i in b["id"]]

    ds = make(1)
    loader = M3ITDataLoader(ds, batch_size=5, num_workers=2, collate_fn=collate)
    first = []
    for k, batch in enumerate(loader):
        first += batch["id"]
        if k == 6:
            break
    state = ds.state_dict()
    assert state["epoch"] == 1 and state["batches"] == 7
    del loader

    restored = make(0)
    restored.load_state_dict(state)  # a fresh process: epoch and position from the checkpoint
    rest = ids_of(M3ITDataLoader(restored, batch_size=5, num_workers=2, collate_fn=collate))
    assert sorted(first + rest) == sorted(full)
    assert len(set(first + rest)) == len(full)
    # Counting continues from the restored position: a later checkpoint is absolute.
    assert restored.state_dict()["batches"] == len(full_batches)


def test_epochs_reshuffle(server):
    ds = M3ITDataset(server.target, images="none", seed=2)
    ds.set_epoch(0)
    a = [s["id"] for s in ds]
    ds.set_epoch(1)
    b = [s["id"] for s in ds]
    assert sorted(a) == sorted(b) and a != b


def test_collate_stacks_and_normalises(server):
    ds = M3ITDataset(server.target, tasks=["coco"], images="decoded", size=(24, 16), resize="stretch")
    samples = [s for _, s in zip(range(4), ds)]
    batch = collate(samples)
    assert batch["images"].shape == (4, 3, 16, 24) and batch["images"].dtype == torch.uint8
    assert np.array_equal(batch["images"][0].permute(1, 2, 0).numpy(), samples[0]["images"][0])
    f = collate(samples, dtype=torch.float32, normalize=(IMAGENET_MEAN, IMAGENET_STD))
    assert f["images"].dtype == torch.float32 and abs(float(f["images"].mean())) < 3
    vist = [s for _, s in zip(range(2), M3ITDataset(server.target, tasks=["vist"], size=(8, 8)))]
    assert collate(vist)["images"].shape == (2, 5, 3, 8, 8)


def test_example_script_runs(server, tmp_path):
    env = dict(os.environ)
    r = subprocess.run([sys.executable, str(EXAMPLES / "train.py"), "--target", server.target,
                        "--steps", "6", "--checkpoint", str(tmp_path / "ckpt.pt")],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "resumed" in r.stdout and "epoch 0 done" in r.stdout
