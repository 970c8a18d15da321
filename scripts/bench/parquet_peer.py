#!/usr/bin/env python3
"""The peer of `tinyvlm bench parquet`: pyarrow reading the same text column (to Arrow arrays, one thread) and
PIL decoding the same image column to RGB, several rounds: the median and the best round."""
import argparse
import io
import statistics
import time

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

ap = argparse.ArgumentParser()
ap.add_argument("--input", required=True)
ap.add_argument("--column", default="text")
ap.add_argument("--image-column", default="")
ap.add_argument("--rounds", type=int, default=5)
a = ap.parse_args()
pa.set_cpu_count(1)
pa.set_io_thread_count(1)

if a.column:
    times = []
    for _ in range(a.rounds):
        t0 = time.perf_counter()
        t = pq.read_table(a.input, columns=[a.column], use_threads=False)
        col = t.column(a.column)
        nbytes = sum(int(pa.compute.sum(pa.compute.binary_length(c)).as_py() or 0) for c in col.chunks)
        times.append(time.perf_counter() - t0)
    s, best = statistics.median(times), min(times)
    print("pyarrow text column '%s': %.1f MB of text; %d rounds: median %.1f MB/s, best %.1f MB/s of text"
          % (a.column, nbytes / 1e6, a.rounds, nbytes / 1e6 / s, nbytes / 1e6 / best))

if a.image_column:
    times = []
    for _ in range(a.rounds):
        t0 = time.perf_counter()
        n = 0
        f = pq.ParquetFile(a.input)
        for g in range(f.num_row_groups):
            col = f.read_row_group(g, columns=[a.image_column], use_threads=False).column(a.image_column)
            for v in col.to_pylist():
                ims = v if isinstance(v, list) else [v]
                for im in ims:
                    if im and im.get("bytes"):
                        Image.open(io.BytesIO(im["bytes"])).convert("RGB")
                        n += 1
        times.append(time.perf_counter() - t0)
    s, best = statistics.median(times), min(times)
    print("PIL image column '%s': %d images decoded to RGB; %d rounds: median %.1f, best %.1f images/s"
          % (a.image_column, n, a.rounds, n / s, n / best))
