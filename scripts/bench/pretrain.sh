#!/usr/bin/env bash
# Phase-1 training and generation throughput: tinyvlm beside the PyTorch reference, same config,
# same machine, same thread count, one after the other.
#   bash scripts/bench/pretrain.sh [THREADS] [STEPS]
# tinyvlm runs twice: fp32 matmuls, and --matmul-precision bf16 (bf16 GEMM operands, fp32 accumulation,
# weights and optimizer; AVX512-BF16 where the CPU has it). The PyTorch reference trains in fp32; its own
# knob, torch.set_float32_matmul_precision("medium"), changes nothing on the CPU.
set -euo pipefail
cd "$(dirname "$0")/../.."
threads=${1:-2}
steps=${2:-5}
bin=${TINYVLM_BIN:-build/tinyvlm}
ours=$("$bin" bench train --threads "$threads" --steps "$steps" --json)
ours_bf16=$("$bin" bench train --threads "$threads" --steps "$steps" --json --matmul-precision bf16)
peer=$(python3 scripts/bench/pretrain_peer.py --threads "$threads" --steps "$steps")
python3 - "$ours" "$peer" "$ours_bf16" <<'PY'
import json, sys
o, p, b = json.loads(sys.argv[1]), json.loads(sys.argv[2]), json.loads(sys.argv[3])
def g(d, *keys):
    for k in keys:
        if k in d: return d[k]
    return float("nan")
rows = [("train tokens/s (fp32 matmuls, both)", g(o, "train_tokens_per_s"), g(p, "train_tokens_per_s", "tokens_per_s")),
        ("train tokens/s (tinyvlm: bf16 matmuls, fp32 accumulation; PyTorch: fp32)", g(b, "train_tokens_per_s"),
         g(p, "train_tokens_per_s", "tokens_per_s")),
        ("generate tokens/s (tinyvlm: KV cache; PyTorch: none, as the original)",
         g(o, "generate_tokens_per_s_kv_cache"), g(p, "generate_tokens_per_s", "gen_tokens_per_s")),
        ("generate tokens/s, both recomputing", g(o, "generate_tokens_per_s_no_cache"),
         g(p, "generate_tokens_per_s", "gen_tokens_per_s"))]
print(f"threads: {o['threads']}")
print(f"{'':72s} {'tinyvlm':>10s} {'PyTorch':>10s} {'ratio':>7s}")
for name, a, b in rows:
    print(f"{name:72s} {a:10.1f} {b:10.1f} {a / b:6.2f}x")
PY
