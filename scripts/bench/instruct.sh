#!/usr/bin/env bash
# Phase-3 training throughput: tinyvlm beside the PyTorch reference, same model, same batches, same machine,
# same thread count, one after the other, each padded to the batch and to the maximum (512, the original's).
#   bash scripts/bench/instruct.sh [THREADS] [STEPS] [ROUNDS] [WARMUP]
# Tokens/s count real positions only (196 vision tokens + the conversation), so padding shows as lost speed;
# labelled tokens/s count the assistant tokens the loss is taken over. On a shared machine the load changes
# from minute to minute: the summary is the median over ROUNDS of the figures and of the per-round ratios.
set -euo pipefail
cd "$(dirname "$0")/../.."
threads=${1:-2}
steps=${2:-3}
rounds=${3:-2}
warmup=${4:-1}
for v in "$steps" "$rounds"; do
  [[ $v =~ ^[1-9][0-9]*$ ]] || { echo "instruct.sh: STEPS and ROUNDS must be whole numbers >= 1, got '$v'" >&2; exit 1; }
done
[[ $warmup =~ ^[0-9]+$ ]] || { echo "instruct.sh: WARMUP must be a whole number >= 0, got '$warmup'" >&2; exit 1; }
bin=${TINYVLM_BIN:-build/tinyvlm}
results=()
for ((r = 1; r <= rounds; ++r)); do
  a=$("$bin" bench instruct --threads "$threads" --steps "$steps" --warmup "$warmup" --json)
  b=$("$bin" bench instruct --threads "$threads" --steps "$steps" --warmup "$warmup" --json --pad-to-max)
  c=$(python3 scripts/bench/instruct_peer.py --threads "$threads" --steps "$steps" --warmup "$warmup")
  d=$(python3 scripts/bench/instruct_peer.py --threads "$threads" --steps "$steps" --warmup "$warmup" --pad-to-max)
  results+=("$(python3 -c 'import json, sys; print(json.dumps([json.loads(x) for x in sys.argv[1:]]))' "$a" "$b" "$c" "$d")")
  echo "round $r of $rounds done" >&2
done
python3 - "${results[@]}" <<'PY'
import json, statistics, sys
rounds = [json.loads(a) for a in sys.argv[1:]]
print(f"threads {rounds[0][0]['threads']}, {len(rounds)} round(s), medians; ratios taken within each round")
print(f"{'':44s} {'tinyvlm':>10s} {'PyTorch':>10s} {'ratio':>7s}")
for key, name in (("tokens_per_s", "tokens/s"), ("labelled_tokens_per_s", "labelled tokens/s")):
    for i, pad in ((0, "batch"), (1, "max")):
        ours = [r[i][key] for r in rounds]
        peer = [r[i + 2][key] for r in rounds]
        ratios = [a / b for a, b in zip(ours, peer)]
        print(f"{name + ', padded to the ' + pad:44s} {statistics.median(ours):10.1f} {statistics.median(peer):10.1f} "
              f"{statistics.median(ratios):6.2f}x")
for i, impl in ((0, "tinyvlm"), (2, "PyTorch")):
    gain = [r[i]["tokens_per_s"] / r[i + 1]["tokens_per_s"] for r in rounds]
    print(f"{impl}: padding to the batch instead of the maximum: {statistics.median(gain):.2f}x tokens/s "
          f"(per round: {', '.join(f'{g:.2f}x' for g in gain)})")
PY
