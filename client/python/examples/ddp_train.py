#!/usr/bin/env python3
"""Data-parallel training on m3serve with torchrun, checkpointing the model,
the optimizer and the data position together, and resuming from the last
checkpoint with any number of ranks:

    torchrun --standalone --nproc_per_node=2 --redirects 2 --tee 1 \\
        client/python/examples/ddp_train.py --target 127.0.0.1:50051 --checkpoint /tmp/ckpt.pt

Run it again after a crash (kill -9, a lost node): it continues from the
checkpoint, every sample of the epoch exactly once across the runs, whatever
the new world size. (--redirects 2 --tee 1 works around a torchrun log-setup
error of Debian's torch 1.13 with Python 3.11.)

--log DIR appends, per rank, one JSON line per batch (the global sample
indices and ids it consumed); --hang-after-steps N stops making progress after
N steps (for tests that kill the job at a known point).
"""

import argparse
import json
import os
import time

import torch
import torch.distributed as dist
import torch.nn as nn

from m3serve.torch import M3ITDataLoader, M3ITDataset, collate


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--target", default="127.0.0.1:50051")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--checkpoint-every", type=int, default=4)
    p.add_argument("--hang-after-steps", type=int, default=0)
    p.add_argument("--log", default="")
    args = p.parse_args()

    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    dataset = M3ITDataset(args.target, splits=["train"], shuffle=True, seed=7, images="decoded",
                          size=(16, 16), resize="fill", max_images=1)
    loader = M3ITDataLoader(dataset, batch_size=args.batch_size, num_workers=args.workers, collate_fn=collate)
    model = nn.parallel.DistributedDataParallel(nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 2)))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    if os.path.exists(args.checkpoint):
        ckpt = torch.load(args.checkpoint)
        model.module.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["opt"])
        dataset.load_state_dict(ckpt["data"])  # any world size
        print(f"rank {rank}/{world}: resumed at epoch {dataset.epoch}, sample {ckpt['data']['samples']}", flush=True)
    log = open(os.path.join(args.log, f"rank{rank}.jsonl"), "a") if args.log else None
    steps = 0
    for epoch in range(dataset.epoch, args.epochs):
        dataset.set_epoch(epoch)
        for batch in loader:
            x = batch["images"].float() / 255
            target = torch.tensor([len(o) % 2 for o in batch["outputs"]])
            loss = nn.functional.cross_entropy(model(x), target)
            opt.zero_grad()
            loss.backward()
            opt.step()
            steps += 1
            if log:
                log.write(json.dumps({"epoch": epoch, "samples": dataset.state_dict()["samples"],
                                      "sample_index": batch["sample_index"], "id": batch["id"]}) + "\n")
                log.flush()
            if steps % args.checkpoint_every == 0 and rank == 0:
                tmp = args.checkpoint + ".tmp"
                torch.save({"model": model.module.state_dict(), "opt": opt.state_dict(),
                            "data": dataset.state_dict()}, tmp)
                os.replace(tmp, args.checkpoint)  # atomic: a kill never leaves half a checkpoint
            if args.hang_after_steps and steps == args.hang_after_steps:
                print(f"rank {rank}: hanging after {steps} steps", flush=True)
                while True:
                    time.sleep(1)
    print(f"rank {rank}: done after {steps} steps", flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
