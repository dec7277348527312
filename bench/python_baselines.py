#!/usr/bin/python3
"""The Python peers of bench/run: what a user writes today without m3serve.

  ingest FILE...                 json.loads + base64 decode of every image, per line
  hf-pipeline --procs N FILE...  json.loads, base64 decode, PIL open + convert("RGB")
                                 + resize to 224x224, in N processes (HF-style map)
  scan --task-dir DIR            selective query over raw JSONL: time to the first 32
                                 rows and to all rows of one task (parsed + decoded)
Each prints one JSON object.
"""

import argparse
import base64
import io
import json
import multiprocessing as mp
import os
import sys
import time

IMAGE_KEYS = ("image_base64_str", "images", "image", "img_str", "image_str", "video_str")


def images_of(row):
    if not isinstance(row, dict):
        return []
    for k in IMAGE_KEYS:
        if k in row:
            v = row[k]
            return v if isinstance(v, list) else [v]
    meta = row.get("meta")
    if isinstance(meta, dict) and "image_base64_str" in meta:
        v = meta["image_base64_str"]
        return v if isinstance(v, list) else [v]
    return []


def ingest(files):
    t0 = time.perf_counter()
    nbytes = rows = images = 0
    for path in files:
        with open(path, "rb") as f:
            for line in f:
                nbytes += len(line)
                if not line.strip():
                    continue
                row = json.loads(line)
                for s in images_of(row):
                    base64.b64decode(s)
                    images += 1
                rows += 1
    secs = time.perf_counter() - t0
    return {"bytes": nbytes, "rows": rows, "images": images, "seconds": secs, "mb_per_second": nbytes / 1e6 / secs}


def _decode_line(line):
    from PIL import Image
    row = json.loads(line)
    n = 0
    for s in images_of(row):
        img = Image.open(io.BytesIO(base64.b64decode(s))).convert("RGB").resize((224, 224))
        img.tobytes()
        n += 1
    return n


def hf_pipeline(files, procs, seconds):
    lines = []
    for path in files:
        with open(path, "rb") as f:
            lines += [l for l in f if l.strip()]
    t0 = time.perf_counter()
    images = 0
    with mp.get_context("fork").Pool(procs) as pool:
        while time.perf_counter() - t0 < seconds:
            for n in pool.imap_unordered(_decode_line, lines, chunksize=8):
                images += n
                if time.perf_counter() - t0 >= seconds:
                    break
        pool.terminate()
    secs = time.perf_counter() - t0
    return {"images": images, "seconds": secs, "images_per_second": images / secs, "procs": procs}


def scan(task_dir):
    t0 = time.perf_counter()
    first = None
    rows = 0
    for name in sorted(os.listdir(task_dir)):
        if not name.endswith(".jsonl"):
            continue
        with open(os.path.join(task_dir, name), "rb") as f:
            for line in f:
                if not line.strip():
                    continue
                row = json.loads(line)
                for s in images_of(row):
                    base64.b64decode(s)
                rows += 1
                if rows == 32 and first is None:
                    first = time.perf_counter() - t0
    total = time.perf_counter() - t0
    return {"rows": rows, "first_batch_ms": (first if first is not None else total) * 1e3, "total_seconds": total}


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("ingest")
    a.add_argument("files", nargs="+")
    b = sub.add_parser("hf-pipeline")
    b.add_argument("--procs", type=int, default=os.cpu_count())
    b.add_argument("--seconds", type=float, default=10)
    b.add_argument("files", nargs="+")
    c = sub.add_parser("scan")
    c.add_argument("--task-dir", required=True)
    args = p.parse_args()
    if args.cmd == "ingest":
        out = ingest(args.files)
    elif args.cmd == "hf-pipeline":
        out = hf_pipeline(args.files, args.procs, args.seconds)
    else:
        out = scan(args.task_dir)
    print(json.dumps(out))


if __name__ == "__main__":
    sys.exit(main())
