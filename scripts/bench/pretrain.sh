#!/usr/bin/env bash
# Phase-1 training and generation throughput: tinyvlm beside the PyTorch reference, same config,
# same machine, same thread count, one after the other.
#   bash scripts/bench/pretrain.sh [THREADS] [STEPS] [ROUNDS] [WARMUP]
# Each round runs tinyvlm twice (fp32 matmuls, and --matmul-precision bf16: bf16 GEMM operands, fp32
# accumulation, weights and optimizer; AVX512-BF16 where the CPU has it), then the reference, and takes
# the ratios within the round. On a shared machine the load changes from minute to minute, so several
# rounds give the spread; the summary is the median of the per-round figures. The PyTorch reference
# trains in fp32; its own knob, torch.set_float32_matmul_precision("medium"), changes nothing on the CPU.
# Both run WARMUP untimed steps first (default 5): PyTorch's first three steps are up to twice as slow as its
# steady state, and with the 2 untimed steps of each side's own default the third one was timed.
set -euo pipefail
cd "$(dirname "$0")/../.."
threads=${1:-2}
steps=${2:-5}
rounds=${3:-1}
warmup=${4:-5}
[[ $rounds =~ ^[1-9][0-9]*$ ]] || { echo "pretrain.sh: ROUNDS must be a whole number >= 1, got '$rounds'" >&2; exit 1; }
[[ $steps =~ ^[1-9][0-9]*$ ]] || { echo "pretrain.sh: STEPS must be a whole number >= 1, got '$steps'" >&2; exit 1; }
[[ $warmup =~ ^[0-9]+$ ]] || { echo "pretrain.sh: WARMUP must be a whole number >= 0, got '$warmup'" >&2; exit 1; }
bin=${TINYVLM_BIN:-build/tinyvlm}
results=()
for ((r = 1; r <= rounds; ++r)); do
  ours=$("$bin" bench train --threads "$threads" --steps "$steps" --warmup "$warmup" --json)
  ours_bf16=$("$bin" bench train --threads "$threads" --steps "$steps" --warmup "$warmup" --json --matmul-precision bf16)
  peer=$(python3 scripts/bench/pretrain_peer.py --threads "$threads" --steps "$steps" --warmup "$warmup")
  results+=("$(python3 -c 'import json, sys; print(json.dumps([json.loads(a) for a in sys.argv[1:]]))' \
    "$ours" "$ours_bf16" "$peer")")
  [[ $rounds -gt 1 ]] && echo "round $r of $rounds done" >&2
done
WARMUP=$warmup python3 - "${results[@]}" <<'PY'
import json, os, statistics, sys
rounds = [json.loads(a) for a in sys.argv[1:]]
def g(d, *keys):
    for k in keys:
        if k in d: return d[k]
    return float("nan")
rows = [("train tokens/s (fp32 matmuls, both)",
         lambda o, b, p: (g(o, "train_tokens_per_s"), g(p, "train_tokens_per_s", "tokens_per_s"))),
        ("train tokens/s (tinyvlm: bf16 matmuls, fp32 accumulation; PyTorch: fp32)",
         lambda o, b, p: (g(b, "train_tokens_per_s"), g(p, "train_tokens_per_s", "tokens_per_s"))),
        ("generate tokens/s (tinyvlm: KV cache; PyTorch: none, as the original)",
         lambda o, b, p: (g(o, "generate_tokens_per_s_kv_cache"), g(p, "generate_tokens_per_s", "gen_tokens_per_s"))),
        ("generate tokens/s, both recomputing",
         lambda o, b, p: (g(o, "generate_tokens_per_s_no_cache"), g(p, "generate_tokens_per_s", "gen_tokens_per_s")))]
print(f"threads: {rounds[0][0]['threads']}, warmup steps: {os.environ['WARMUP']}, rounds: {len(rounds)}" + (" (medians; ratios taken within each round)"
                                                                       if len(rounds) > 1 else ""))
print(f"{'':72s} {'tinyvlm':>10s} {'PyTorch':>10s} {'ratio':>7s}")
for name, pick in rows:
    pairs = [pick(*r) for r in rounds]
    ours = statistics.median(a for a, _ in pairs)
    peer = statistics.median(b for _, b in pairs)
    ratios = [a / b for a, b in pairs]
    print(f"{name:72s} {ours:10.1f} {peer:10.1f} {statistics.median(ratios):6.2f}x")
    if len(rounds) > 1:
        print(f"{'':72s} per round: " + ", ".join(f"{x:.2f}x" for x in ratios))
PY
