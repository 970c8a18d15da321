#!/usr/bin/env python3
"""Peer benchmark for `tinyvlm bench image`: PIL + torchvision decode and preprocess images/s.

    python3 scripts/bench/image_peer.py --input FILE_OR_DIR... [--threads N] [--resize 256] [--crop 224]

Per image: Image.open(f).convert("RGB"), then Resize(resize) + CenterCrop(crop) + ToTensor +
Normalize(ImageNet mean/std), as the reference data pipeline does. One thread: a plain loop in this
process (torch limited to one thread). N threads: a multiprocessing pool of N worker processes
(how a torch DataLoader with num_workers=N runs it), results returned to the parent in order.
Each figure runs whole passes over the files for at least --min-time seconds.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import time

import torch
from PIL import Image
from torchvision import transforms

EXTS = (".jpg", ".jpeg", ".png")
_pipe = None


def make_pipe(resize: int, crop: int):
    return transforms.Compose([
        transforms.Resize(resize),
        transforms.CenterCrop(crop),
        transforms.ToTensor(),
        transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),
    ])


def load(path: str):
    try:
        with Image.open(path) as im:
            return _pipe(im.convert("RGB"))
    except Exception:  # a broken file is counted and skipped, as in tinyvlm
        return None


def init_worker(resize: int, crop: int):
    global _pipe
    torch.set_num_threads(1)
    _pipe = make_pipe(resize, crop)


def expand(inputs: list[str]) -> list[str]:
    files = []
    for p in inputs:
        if os.path.isdir(p):
            found = [os.path.join(d, f) for d, _, fs in os.walk(p) for f in fs if f.lower().endswith(EXTS)]
            files += sorted(found)
        elif os.path.exists(p):
            files.append(p)
        else:
            sys.exit(f"image_peer: input '{p}' does not exist")
    if not files:
        sys.exit("image_peer: no .jpg/.jpeg/.png files in the inputs")
    return files


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--input", "-i", nargs="+", required=True)
    ap.add_argument("--threads", "-t", type=int, default=os.cpu_count())
    ap.add_argument("--resize", type=int, default=256)
    ap.add_argument("--crop", type=int, default=224)
    ap.add_argument("--min-time", type=float, default=2.0)
    a = ap.parse_args()
    files = expand(a.input)

    init_worker(a.resize, a.crop)
    done = failed = passes = 0
    t0, c0 = time.perf_counter(), time.process_time()
    while True:
        passes += 1
        for f in files:
            if load(f) is None:
                failed += 1
            else:
                done += 1
        if time.perf_counter() - t0 >= a.min_time or done == 0:
            break
    t1, cpu1 = time.perf_counter() - t0, time.process_time() - c0
    print(f"image (PIL {Image.__version__} + torchvision): {len(files)} files, Resize({a.resize}) + "
          f"CenterCrop({a.crop}) + ToTensor + Normalize")
    if failed:
        print(f"  {failed // passes} of {len(files)} files could not be decoded (counted, skipped)")
    if done == 0:
        return
    print(f"  1 thread   : {done / t1:8.1f} images/s  ({1e3 * t1 / done:.2f} ms/image; "
          f"{1e3 * cpu1 / done:.2f} ms CPU/image)")

    reps = max(1, int(a.min_time * done / t1 * a.threads / len(files)) + 1)
    work = files * reps
    ctx = mp.get_context("fork")
    with ctx.Pool(a.threads, initializer=init_worker, initargs=(a.resize, a.crop)) as pool:
        pool.map(load, files[: a.threads])  # start the workers before timing
        t2 = time.perf_counter()
        ok = sum(r is not None for r in pool.imap(load, work, chunksize=4))
        t3 = time.perf_counter() - t2
    print(f"  {a.threads} process{'es' if a.threads != 1 else '  '}: {ok / t3:8.1f} images/s  "
          f"(multiprocessing pool, in order; {ok / t3 / (done / t1):.2f}x one thread)")


if __name__ == "__main__":
    main()
