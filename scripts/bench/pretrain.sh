#!/usr/bin/env bash
# Phase-1 training and generation throughput: tinyvlm beside the PyTorch reference, same config,
# same machine, same thread count, one after the other.
#   bash scripts/bench/pretrain.sh [THREADS] [STEPS]
set -euo pipefail
cd "$(dirname "$0")/../.."
threads=${1:-2}
steps=${2:-5}
bin=${TINYVLM_BIN:-build/tinyvlm}
ours=$("$bin" bench train --threads "$threads" --steps "$steps" --json)
peer=$(python3 scripts/bench/pretrain_peer.py --threads "$threads" --steps "$steps")
python3 - "$ours" "$peer" <<'PY'
import json, sys
o, p = json.loads(sys.argv[1]), json.loads(sys.argv[2])
def g(d, *keys):
    for k in keys:
        if k in d: return d[k]
    return float("nan")
rows = [("train tokens/s", g(o, "train_tokens_per_s"), g(p, "train_tokens_per_s", "tokens_per_s")),
        ("generate tokens/s (tinyvlm: KV cache; PyTorch: none, as the original)",
         g(o, "generate_tokens_per_s_kv_cache"), g(p, "generate_tokens_per_s", "gen_tokens_per_s")),
        ("generate tokens/s, both recomputing", g(o, "generate_tokens_per_s_no_cache"),
         g(p, "generate_tokens_per_s", "gen_tokens_per_s"))]
print(f"threads: {o['threads']}")
print(f"{'':72s} {'tinyvlm':>10s} {'PyTorch':>10s} {'ratio':>7s}")
for name, a, b in rows:
    print(f"{name:72s} {a:10.1f} {b:10.1f} {a / b:6.2f}x")
PY
