import math
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import m3serve
from m3serve.torch import (IMAGENET_MEAN, IMAGENET_STD, M3ITDataLoader, M3ITDataset, M3ITMapDataset,
                           _dist_info, collate)

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def ids_of(loader):
    out = []
    for batch in loader:
        out += batch["id"]
    return out


def texts(samples):
    """collate for images="none": keep ids, sample indices and instructions."""
    return {"id": [s["id"] for s in samples], "sample_index": [s["sample_index"] for s in samples],
            "instruction": [s["instruction"] for s in samples], "component": [s["component"] for s in samples]}


def just_ids(samples):
    return [s["id"] for s in samples]


def schedule(target, epoch, **kw):
    """The epoch's whole global sequence: sample index -> id (one rank, one worker)."""
    ds = M3ITDataset(target, images="none", drop_remainder=False, rank=0, world_size=1, **kw)
    ds.set_epoch(epoch)
    out = {}
    for s in ds:
        out[s["sample_index"]] = s["id"]
    assert sorted(out) == list(range(len(out)))
    return [out[i] for i in range(len(out))]


def test_two_ranks_two_workers_see_every_instance_once(server):
    total = m3serve.Client(server.target).catalog().total_instances
    seen = []
    for rank in (0, 1):
        ds = M3ITDataset(server.target, rank=rank, world_size=2, images="decoded", size=(32, 32),
                         max_images=1, drop_remainder=False, seed=11)
        loader = M3ITDataLoader(ds, batch_size=8, num_workers=2, collate_fn=collate)
        seen += ids_of(loader)
    assert len(seen) == total
    assert len(set(seen)) == total


def test_the_eval_guard_reaches_the_dataset(server):
    client = m3serve.Client(server.target)
    want = {x.id for b in client.stream(splits=["train"], exclude_eval_images=True, images="none")
            for x in b.instances}
    got = schedule(server.target, 0, splits=["train"], exclude_eval_images=True, shuffle=True, seed=3)
    assert sorted(got) == sorted(want)
    assert len(want) < client.count(splits=["train"]).total
    # Map-style: positions map to the kept instances, in key order.
    in_order = [x.id for b in client.stream(splits=["train"], exclude_eval_images=True, images="none")
                for x in b.instances]
    mapped = M3ITMapDataset(server.target, splits=["train"], exclude_eval_images=True, images="none", readahead=7)
    assert len(mapped) == len(in_order)
    assert [mapped[i]["id"] for i in range(len(mapped))] == in_order
    assert mapped.id(len(mapped) - 1) == in_order[-1]


def test_rank_from_environment(monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "3")
    assert _dist_info(None, None) == (1, 3)
    assert _dist_info(0, 2) == (0, 2)


def run_segment(target, state, epoch, world, batch, workers, take, kw):
    """One segment of a DDP job: every rank restores `state` (None: starts
    `epoch`), takes `take` steps (None: to the end) and saves its state.
    Returns the (sample index, id) pairs consumed and the ranks' states."""
    got, states = [], []
    for rank in range(world):
        ds = M3ITDataset(target, images="none", rank=rank, world_size=world, **kw)
        if state is None:
            ds.set_epoch(epoch)
        else:
            ds.load_state_dict(state)
            # The state saved right after a load is the loaded one.
            assert ds.state_dict()["samples"] == state["samples"]
            ds.set_epoch(epoch)  # the usual loop calls it again: the restored position stays
        loader = M3ITDataLoader(ds, batch_size=batch, num_workers=workers, collate_fn=texts)
        steps = len(loader)
        n = 0
        if take == 0:  # a checkpoint right after the load
            states.append(ds.state_dict())
            continue
        for b in loader:
            got += zip(b["sample_index"], b["id"])
            n += 1
            if take is not None and n == take:
                break
        assert n == (steps if take is None else take), (n, steps, take)
        states.append(ds.state_dict())
    return got, states


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_elastic_resumes_consume_the_schedule_exactly_once(server, seed):
    """Property: random world sizes, worker counts, batch sizes, up to five
    resumes per epoch at random points (also the last batch and right after a
    load), with a new geometry at each resume: the samples consumed over the
    epoch are exactly the schedule, no duplicate, no gap (with drop_remainder,
    only the tail the schedule names is left out)."""
    rng = random.Random(seed)
    kw = dict(shuffle=True, seed=100 + seed, drop_remainder=rng.random() < 0.5)
    if seed % 2 == 0:  # a mixture: a small component repeats within the epoch
        kw.update(weights={"coco": 0.5, "*": 1.0}, epoch_size=150, splits=["train"])
    epoch = rng.randrange(3)
    full = schedule(server.target, epoch, **{k: v for k, v in kw.items() if k != "drop_remainder"})
    consumed, state, g = [], None, 0
    resumes = rng.randrange(1, 6)
    for seg in range(resumes + 1):
        world, batch, workers = rng.randrange(1, 4), rng.randrange(1, 8), rng.choice([0, 0, 1, 2])
        rest = max(0, len(full) - g)
        steps = rest // (world * batch) + (0 if kw["drop_remainder"] or rest % (world * batch) == 0 else 1)
        take = None if seg == resumes else rng.choice([0, steps, rng.randrange(steps + 1)])
        got, states = run_segment(server.target, state, epoch, world, batch, workers, take, kw)
        consumed += got
        assert len({s["samples"] for s in states}) == 1, states  # one position on every rank
        state = states[0]
        # The last segment drops a partial last step (the tail the schedule names).
        end = g + rest // (world * batch) * world * batch if kw["drop_remainder"] else len(full)
        g = state["samples"]
    assert g == len(full)  # a finished epoch's position is its end
    assert sorted(i for i, _ in consumed) == list(range(end))  # once each, nothing else
    assert all(full[i] == x for i, x in consumed)  # and each the schedule's instance


def test_checkpoint_at_the_last_batch_resumes_to_the_next_epoch(server):
    kw = dict(images="none", seed=5, shuffle=True, drop_remainder=False)
    ds = M3ITDataset(server.target, **kw)
    ds.set_epoch(1)
    loader = M3ITDataLoader(ds, batch_size=6, num_workers=0, collate_fn=texts)
    n = len(loader)
    for k, _ in enumerate(loader):
        if k == n - 1:
            state = ds.state_dict()  # inside the loop, at the last batch
    assert state["samples"] == ds.plan().epoch_samples
    restored = M3ITDataset(server.target, **kw)
    restored.load_state_dict(state)
    loader = M3ITDataLoader(restored, batch_size=6, num_workers=0, collate_fn=texts)
    epochs = []
    for epoch in range(restored.epoch, 3):
        restored.set_epoch(epoch)
        epochs.append(ids_of(loader))
    assert epochs[0] == []  # epoch 1 was done
    assert sorted(epochs[1]) == sorted(schedule(server.target, 2, seed=5, shuffle=True))


def test_a_state_from_another_plan_is_refused(server, store, tmp_path):
    ds = M3ITDataset(server.target, images="none", seed=3, tasks=["coco"])
    loader = M3ITDataLoader(ds, batch_size=4, collate_fn=texts)
    next(iter(loader))
    state = ds.state_dict()
    with pytest.raises(ValueError, match="seed"):
        M3ITDataset(server.target, images="none", seed=4, tasks=["coco"]).load_state_dict(state)
    with pytest.raises(ValueError, match="selection"):
        M3ITDataset(server.target, images="none", seed=3, tasks=["vqa-v2"]).load_state_dict(state)
    with pytest.raises(ValueError, match="mixture"):
        M3ITDataset(server.target, images="none", seed=3, tasks=["coco"], epoch_size=5).load_state_dict(state)
    with pytest.raises(ValueError, match="version"):
        M3ITDataset(server.target, images="none", seed=3, tasks=["coco"]).load_state_dict({"epoch": 0, "batches": 3})
    # Another dataset version: a store with other content behind the same request.
    from conftest import BIN, ServerProcess, run
    run(BIN / "m3serve-admin", "sample", "--out", tmp_path / "sample", "--scale", "1", "--seed", "9")
    run(BIN / "m3serve-admin", "ingest", "--db", tmp_path / "store", "--progress", "none",
        tmp_path / "sample" / "M3IT")
    other = ServerProcess(tmp_path / "store", tmp_path / "server").start()
    try:
        with pytest.raises(ValueError, match="dataset version"):
            M3ITDataset(other.target, images="none", seed=3, tasks=["coco"]).load_state_dict(state)
        # A stream whose position was counted under another plan is refused by the server too.
        with pytest.raises(m3serve.M3ServeError) as e:
            list(m3serve.Client(other.target).stream(plan_fingerprint=state["fingerprint"], tasks=["coco"]))
        assert e.value.code.name == "INVALID_ARGUMENT" and "plan_fingerprint" in e.value.details
    finally:
        other.kill()


def test_persistent_workers_honour_set_epoch(server):
    ds = M3ITDataset(server.target, images="none", seed=2, shuffle=True)
    loader = M3ITDataLoader(ds, batch_size=5, num_workers=2, persistent_workers=True, collate_fn=texts)
    orders = []
    for epoch in range(3):
        ds.set_epoch(epoch)
        orders.append(ids_of(loader))
    assert orders[0] != orders[1] != orders[2]
    for epoch in range(3):
        fresh = M3ITDataset(server.target, images="none", seed=2, shuffle=True)
        fresh.set_epoch(epoch)
        assert ids_of(M3ITDataLoader(fresh, batch_size=5, num_workers=0, collate_fn=texts)) == orders[epoch]


@pytest.mark.parametrize("world,workers", [(1, 0), (2, 2), (4, 2), (3, 1)])
def test_len_is_exact(server, world, workers):
    for drop in (False, True):
        for rank in range(world):
            ds = M3ITDataset(server.target, images="none", rank=rank, world_size=world, drop_remainder=drop)
            loader = M3ITDataLoader(ds, batch_size=7, num_workers=workers, collate_fn=texts)
            expected_batches, expected_samples = len(loader), len(ds)
            batches = list(loader)
            assert len(batches) == expected_batches
            assert sum(len(b["id"]) for b in batches) == expected_samples


def test_without_set_epoch_the_next_iteration_is_the_next_epoch(server):
    ds = M3ITDataset(server.target, images="none", seed=8, drop_remainder=False)
    loader = M3ITDataLoader(ds, batch_size=9, collate_fn=texts)
    a, b = ids_of(loader), ids_of(loader)
    assert sorted(a) == sorted(b) and a != b
    assert ds.epoch == 1


def test_instructions_as_ingested_are_stable_across_epochs(server):
    def instructions(epoch, resample):
        ds = M3ITDataset(server.target, images="none", seed=epoch, resample_instructions=resample)
        ds.set_epoch(epoch)
        return {s["id"]: s["instruction"] for s in ds}

    a, b = instructions(0, False), instructions(1, False)
    assert a == b
    assert instructions(0, True) != instructions(1, True)


def test_mixture_shares_follow_the_weights(server):
    c = m3serve.Client(server.target)
    weights = {"coco": 0.2, "vqa-v2": 1.0, "gqa": 1.0}
    plan = c.plan(weights=weights, epoch_size=400, splits=["train"], shuffle=True, seed=1)
    assert plan.epoch_samples == 400 and sum(x.samples for x in plan.components) == 400
    for x in plan.components:
        assert abs(x.samples - 400 * weights[x.key] / 2.2) <= 1
    # Observed: the first half of a shuffled epoch holds each component within a binomial bound.
    ds = M3ITDataset(server.target, images="none", weights=weights, epoch_size=400, splits=["train"], seed=1)
    got = [s["component"] for s in ds]
    assert len(got) == 400
    half = got[:200]
    for key, w in weights.items():
        p = w / 2.2
        assert abs(half.count(key) - 200 * p) <= 4 * (200 * p * (1 - p)) ** 0.5 + 1, key
        assert got.count(key) == next(x.samples for x in plan.components if x.key == key)
    # Temperature 1 is the natural proportions; a small component repeats, a large one is subsampled.
    natural = c.plan(temperature=1.0, splits=["train"])
    assert all(x.samples == x.instances for x in natural.components)
    sizes = {t: c.count(tasks=[t], splits=["train"]).total for t in ("coco", "gqa")}
    assert sizes["gqa"] < sizes["coco"]
    small = c.plan(weights={"coco": 1, "gqa": 1}, epoch_size=sizes["coco"] + sizes["gqa"], splits=["train"])
    passes = {x.key: x.passes for x in small.components}
    assert passes["gqa"] > 1 > passes["coco"]


def test_mixture_repeats_and_subsamples_rotate_across_epochs(server):
    kw = dict(weights={"coco": 1, "gqa": 1}, epoch_size=40, splits=["train"], seed=3)
    coco = [set(i for i in schedule(server.target, e, **kw) if i.startswith("coco/")) for e in range(4)]
    assert coco[0] != coco[1]  # subsampled: other instances each epoch
    n = m3serve.Client(server.target).count(tasks=["coco"], splits=["train"]).total
    assert len(set().union(*coco)) == min(n, 4 * 20)


def test_stratified_batches_hold_the_shares(server):
    weights = {"coco": 1.0, "vqa-v2": 2.0, "gqa": 1.0}
    world, batch = 2, 6
    per_rank = []
    for rank in range(world):
        ds = M3ITDataset(server.target, images="none", weights=weights, stratified=True, splits=["train"],
                         rank=rank, world_size=world, seed=4)
        per_rank.append(list(M3ITDataLoader(ds, batch_size=batch, collate_fn=texts)))
        plan = ds.plan()
    quota = {x.key: x.samples for x in plan.components}
    for step in range(len(per_rank[0])):
        comps = per_rank[0][step]["component"] + per_rank[1][step]["component"]
        for key in weights:
            share = world * batch * quota[key] / plan.epoch_samples
            assert math.floor(share) <= comps.count(key) <= math.ceil(share), (step, key, comps)


def test_mixture_bad_input_names_the_field(server):
    c = m3serve.Client(server.target)
    for kwargs, text in [(dict(weights={"nope": 1}), "mixture.components[0].key"),
                         (dict(weights={"coco": -1}), "weight"),
                         (dict(weights={"coco": float("nan")}), "weight"),
                         (dict(temperature=0), "mixture.temperature"),
                         (dict(epoch_size=0), "mixture.epoch_size")]:
        with pytest.raises(m3serve.M3ServeError) as e:
            c.plan(**kwargs)
        assert e.value.code.name == "INVALID_ARGUMENT" and text in e.value.details, e.value.details


def test_map_dataset_matches_get_and_hf_rows(server):
    c = m3serve.Client(server.target)
    ds = M3ITMapDataset(server.target, tasks=["coco", "vqa-v2"], images="none")
    assert len(ds) == c.count(tasks=["coco", "vqa-v2"]).total
    for i in (0, 1, len(ds) - 1, 17):
        assert ds[i]["id"] == ds.id(i) == c.get([ds.id(i)])[0].id
    hf = M3ITMapDataset(server.target, tasks=["coco"], hf_rows=True)
    row = hf[3]
    assert set(row) >= {"instruction", "inputs", "outputs", "image_base64_str"}
    import base64
    raw = base64.b64decode(row["image_base64_str"][0])
    assert raw == c.get([hf.id(3)])[0].images[0].data
    loader = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=2, collate_fn=just_ids,
                                         multiprocessing_context="forkserver")
    got = [i for b in loader for i in b]
    assert got == [ds.id(i) for i in range(len(ds))]


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


def test_a_process_that_leaves_a_loader_mid_epoch_exits(server, tmp_path):
    """A script that breaks out of the loop and ends must not hang on the
    background reader (it is stopped before the interpreter freezes threads)."""
    script = tmp_path / "leave.py"
    script.write_text(
        "from m3serve.torch import M3ITDataLoader, M3ITDataset\n"
        f"ds = M3ITDataset({server.target!r}, images='decoded', size=(64, 64), message_batch_size=2)\n"
        "it = iter(M3ITDataLoader(ds, batch_size=2, collate_fn=lambda x: x))\n"
        "next(it)\n"
        "print('left', flush=True)\n")
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "left" in r.stdout, r.stderr
