#!/usr/bin/env bash
# Image preprocessing speed, tinyvlm beside PIL + torchvision, on the same files.
#   bash scripts/bench/image.sh [N_IMAGES=64] [THREADS=all cores]
# Writes N synthetic 640x480 JPEGs (quality 90, 4:2:0) to a temporary folder, then runs
# `tinyvlm bench image` and scripts/bench/image_peer.py on them. TINYVLM_BIN selects the binary
# (default build/tinyvlm).
set -euo pipefail
cd "$(dirname "$0")/../.."
n=${1:-64}
threads=${2:-$(nproc)}
bin=${TINYVLM_BIN:-build/tinyvlm}
[ -x "$bin" ] || { echo "no tinyvlm binary at $bin (build first, or set TINYVLM_BIN)" >&2; exit 1; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

python3 - "$dir" "$n" <<'EOF'
import sys
import numpy as np
from PIL import Image
out, n = sys.argv[1], int(sys.argv[2])
h, w = 480, 640
y, x = np.mgrid[0:h, 0:w] / np.array([h, w])[:, None, None]
for i in range(n):
    rng = np.random.default_rng(i)
    img = np.stack([128 + 100 * np.sin(x * (3 + i % 5) + y * 2 + i),
                    128 + 90 * np.cos(x * 2 - y * (3 + i % 3)),
                    40 + 150 * x * (1 - y) + 60 * y], axis=-1)
    img[(x > 0.2 + 0.01 * (i % 7)) & (x < 0.45) & (y > 0.3) & (y < 0.6)] = (232, 40, 28)
    img += rng.normal(0, 8, img.shape)
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(f"{out}/img{i:03d}.jpg", quality=90)
EOF
echo "== $n synthetic 640x480 JPEGs, $threads threads"
"$bin" bench image --input "$dir" --threads "$threads"
echo
python3 scripts/bench/image_peer.py --input "$dir" --threads "$threads"
