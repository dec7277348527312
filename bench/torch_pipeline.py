#!/usr/bin/python3
"""Scenario 8 of bench/run: images into a PyTorch training loop.

  m3serve --target T --workers K --seconds S [--batch B]
      M3ITDataset (decoded 224x224 on the server, one image per instance)
      through M3ITDataLoader with K workers
  hf --workers K --seconds S [--batch B] FILE...
      the pipeline M3IT training code uses today: a torch Dataset over the
      JSONL rows doing json.loads, base64 decode, PIL open + convert("RGB") +
      resize to 224x224 and a uint8 tensor per row, through a DataLoader with
      the same batch size and workers

Both report the time from creating the loader to the first batch in the
training loop, and steady images/s after it (the loop only touches the batch).
Prints one JSON object.
"""

import argparse
import base64
import io
import json
import sys
import time

import numpy as np
import torch
import torch.utils.data as tud

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from python_baselines import images_of  # noqa: E402


class HFStyleDataset(tud.Dataset):
    """Rows of JSONL files, decoded per item the way HF-based M3IT loaders do.
    Built before the clock starts (like a cached HF dataset): only the loader
    and its per-item work are timed."""

    def __init__(self, files):
        self.lines = []
        for path in files:
            with open(path, "rb") as f:
                self.lines += [l for l in f if l.strip() and images_of(json.loads(l))]

    def __len__(self):
        return len(self.lines)

    def __getitem__(self, i):
        from PIL import Image
        row = json.loads(self.lines[i])
        img = Image.open(io.BytesIO(base64.b64decode(images_of(row)[0]))).convert("RGB").resize((224, 224))
        return {"image": torch.from_numpy(np.array(img)).permute(2, 0, 1), "outputs": row.get("outputs", "")}


def hf_collate(samples):
    return {"images": torch.stack([s["image"] for s in samples]), "outputs": [s["outputs"] for s in samples]}


def measure(make_loader, seconds, dataset=None):
    t0 = time.perf_counter()
    loader = make_loader(dataset)
    first = None
    images = 0
    while True:
        for batch in loader:
            n = batch["images"].shape[0]
            if first is None:
                first = time.perf_counter()
                t_steady = first
            else:
                images += n
            if time.perf_counter() - first >= seconds:
                break
        else:
            continue  # another epoch
        break
    steady = time.perf_counter() - t_steady
    return {"first_batch_ms": (first - t0) * 1e3, "images": images, "seconds": steady,
            "images_per_second": images / max(steady, 1e-9)}


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("m3serve")
    a.add_argument("--target", required=True)
    b = sub.add_parser("hf")
    b.add_argument("files", nargs="+")
    for x in (a, b):
        x.add_argument("--workers", type=int, default=0)
        x.add_argument("--seconds", type=float, default=5)
        x.add_argument("--batch", type=int, default=32)
    args = p.parse_args()
    # Each with its usual start method: m3serve's loader uses forkserver (gRPC
    # is not fork-safe); a plain DataLoader forks.
    ctx = ("forkserver" if args.cmd == "m3serve" else "fork") if args.workers else None
    if args.cmd == "m3serve":
        from m3serve.torch import M3ITDataLoader, M3ITDataset, collate

        dataset = None

        def make(_):
            ds = M3ITDataset(args.target, shuffle=True, seed=1, images="decoded", size=(224, 224), resize="fill",
                             max_images=1, drop_remainder=False)
            return M3ITDataLoader(ds, batch_size=args.batch, num_workers=args.workers, collate_fn=collate,
                                  multiprocessing_context=ctx)
    else:
        dataset = HFStyleDataset(args.files)

        def make(ds):
            return tud.DataLoader(ds, batch_size=args.batch, shuffle=True,
                                  num_workers=args.workers, collate_fn=hf_collate, multiprocessing_context=ctx)
    out = measure(make, args.seconds, dataset)
    out.update(workers=args.workers, batch=args.batch)
    print(json.dumps(out))


if __name__ == "__main__":
    sys.exit(main())
