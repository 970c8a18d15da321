#!/usr/bin/env bash
# Parquet reading speed, tinyvlm beside pyarrow + PIL, on the same file (one thread each).
#   bash scripts/bench/parquet.sh [TEXT_MB=40] [N_IMAGES=200] [ROUNDS=5] [CODEC=snappy]
# Writes a temporary Parquet file in the HuggingFace layout (a `text` column of TEXT_MB of words and an
# `image` column of N 640x480 JPEGs as {bytes, path} structs), then runs `tinyvlm bench parquet` and
# scripts/bench/parquet_peer.py on it. TINYVLM_BIN selects the binary (default build/tinyvlm).
set -euo pipefail
cd "$(dirname "$0")/../.."
mb=${1:-40}
n=${2:-200}
rounds=${3:-5}
codec=${4:-snappy}
bin=${TINYVLM_BIN:-build/tinyvlm}
[ -x "$bin" ] || { echo "no tinyvlm binary at $bin (build first, or set TINYVLM_BIN)" >&2; exit 1; }
[[ "$mb" =~ ^[0-9]+$ && "$n" =~ ^[0-9]+$ && "$rounds" =~ ^[1-9][0-9]*$ ]] || { echo "TEXT_MB, N_IMAGES, ROUNDS: whole numbers" >&2; exit 1; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

python3 - "$dir" "$mb" "$n" "$codec" <<'PY'
import io, sys
import numpy as np
import pyarrow as pa, pyarrow.parquet as pq
from PIL import Image
out, mb, n, codec = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
rng = np.random.default_rng(0)
vocab = np.array(["the", "model", "reads", "parquet", "files", "of", "text", "and", "images", "quickly",
                  "données", "画像", "über", "token", "shard", "row", "group", "column"])
docs = []
total = 0
while total < mb * 1_000_000:
    d = " ".join(vocab[rng.integers(0, len(vocab), int(rng.integers(50, 800)))])
    docs.append(d)
    total += len(d.encode())
pq.write_table(pa.table({"text": docs}), f"{out}/text.parquet", compression=codec, row_group_size=20000)
h, w = 480, 640
y, x = np.mgrid[0:h, 0:w] / np.array([h, w])[:, None, None]
ims = []
for i in range(n):
    img = np.stack([128 + 100 * np.sin(x * (3 + i % 5) + y * 2 + i), 128 + 90 * np.cos(x * 2 - y * (3 + i % 3)),
                    40 + 150 * x * (1 - y) + 60 * y], axis=-1) + rng.normal(0, 8, (h, w, 3))
    b = io.BytesIO()
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(b, format="JPEG", quality=90)
    ims.append({"bytes": b.getvalue(), "path": f"img{i:04d}.jpg"})
t = pa.table({"image": pa.array(ims, pa.struct([("bytes", pa.binary()), ("path", pa.string())]))})
pq.write_table(t, f"{out}/images.parquet", compression=codec, row_group_size=100)
PY
echo "== text: ~${mb} MB of words; images: $n 640x480 JPEGs; codec $codec; $rounds rounds each, 1 thread"
# The two sides alternate three times: on a shared machine the load changes between runs.
for pass in 1 2 3; do
  echo "-- pass $pass"
  "$bin" bench parquet --input "$dir/text.parquet" --column text --rounds "$rounds" | grep MB/s
  python3 scripts/bench/parquet_peer.py --input "$dir/text.parquet" --column text --rounds "$rounds"
  "$bin" bench parquet --input "$dir/images.parquet" --column "" --image-column image --rounds "$rounds" | grep images/s
  python3 scripts/bench/parquet_peer.py --input "$dir/images.parquet" --column "" --image-column image --rounds "$rounds"
done
