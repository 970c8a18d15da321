#!/usr/bin/env bash
# Vision tower forward speed, tinyvlm beside PyTorch (torchvision vit_b_16), same batch and threads.
#   bash scripts/bench/vit.sh [BATCH=8] [THREADS=all cores] [MIN_SECONDS=3]
# TINYVLM_BIN selects the binary (default build/tinyvlm).
set -euo pipefail
cd "$(dirname "$0")/../.."
batch=${1:-8}
threads=${2:-$(nproc)}
secs=${3:-3}
bin=${TINYVLM_BIN:-build/tinyvlm}
[ -x "$bin" ] || { echo "no tinyvlm binary at $bin (build first, or set TINYVLM_BIN)" >&2; exit 1; }
echo "== ViT-B/16 forward, batch $batch, $threads threads"
"$bin" bench vit --batch "$batch" --threads "$threads" --min-time "$secs"
echo
python3 scripts/bench/vit_peer.py --batch "$batch" --threads "$threads" --min-time "$secs"
