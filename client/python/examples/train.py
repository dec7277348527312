#!/usr/bin/env python3
"""Train a (tiny) model on an m3serve stream with a real DataLoader, save a
checkpoint with the data position mid-epoch, then restart from it and finish
the epoch exactly once.

    PYTHONPATH=build/python /usr/bin/python3 client/python/examples/train.py --target 127.0.0.1:50051

For several GPUs, start one process per GPU with torchrun (or set RANK and
WORLD_SIZE): each rank streams its own shard; every DataLoader worker its own
sub-shard.
"""

import argparse

import torch
import torch.nn as nn

from m3serve.torch import IMAGENET_MEAN, IMAGENET_STD, M3ITDataLoader, M3ITDataset, collate


def normalized(samples):
    return collate(samples, dtype=torch.float32, normalize=(IMAGENET_MEAN, IMAGENET_STD))


def make_everything(target):
    dataset = M3ITDataset(target, splits=["train"], shuffle=True, seed=17,
                          images="decoded", size=(64, 64), resize="fill", max_images=1)
    loader = M3ITDataLoader(dataset, batch_size=8, num_workers=2, collate_fn=normalized)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), nn.Linear(8, 2))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    return dataset, loader, model, optimizer


def step(model, optimizer, batch):
    # A stand-in objective: is the answer longer than 20 characters?
    target = torch.tensor([len(o) > 20 for o in batch["outputs"]], dtype=torch.long)
    loss = nn.functional.cross_entropy(model(batch["images"]), target)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return float(loss)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--target", default="127.0.0.1:50051")
    p.add_argument("--steps", type=int, default=10, help="steps before the simulated restart")
    p.add_argument("--checkpoint", default="/tmp/m3serve-example.pt")
    args = p.parse_args()

    # First run: train a few steps, checkpoint model + optimizer + data position.
    dataset, loader, model, optimizer = make_everything(args.target)
    dataset.set_epoch(0)
    seen = []
    for i, batch in enumerate(loader):
        loss = step(model, optimizer, batch)
        seen += batch["id"]
        print(f"step {i}: loss {loss:.3f}, {batch['images'].shape[0]} instances")
        if i + 1 == args.steps:
            torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                        "data": dataset.state_dict()}, args.checkpoint)
            break
    del loader  # the job "dies" here

    # Second run: restore everything and finish the epoch.
    dataset, loader, model, optimizer = make_everything(args.target)
    ckpt = torch.load(args.checkpoint)
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    dataset.load_state_dict(ckpt["data"])
    print(f"resumed at epoch {ckpt['data']['epoch']}, sample {ckpt['data']['samples']}")
    for batch in loader:
        step(model, optimizer, batch)
        seen += batch["id"]
    assert len(seen) == len(set(seen)), "an instance was seen twice"
    print(f"epoch 0 done: {len(seen)} instances, each once")


if __name__ == "__main__":
    main()
