#!/usr/bin/env bash
# Phase-4 (DPO) training throughput and peak memory: tinyvlm beside the PyTorch reference, same model, same
# pairs, same machine, same thread count, one process per measurement (so that each peak RSS is its own), with
# a live reference and with precomputed reference log-probs.
#   bash scripts/bench/dpo.sh [THREADS] [STEPS] [ROUNDS] [WARMUP]
# On a shared machine the load changes from minute to minute: the summary is the median over ROUNDS of the
# figures and of the per-round ratios.
set -euo pipefail
cd "$(dirname "$0")/../.."
threads=${1:-2}
steps=${2:-3}
rounds=${3:-2}
warmup=${4:-1}
for v in "$steps" "$rounds"; do
  [[ $v =~ ^[1-9][0-9]*$ ]] || { echo "dpo.sh: STEPS and ROUNDS must be whole numbers >= 1, got '$v'" >&2; exit 1; }
done
[[ $warmup =~ ^[0-9]+$ ]] || { echo "dpo.sh: WARMUP must be a whole number >= 0, got '$warmup'" >&2; exit 1; }
bin=${TINYVLM_BIN:-build/tinyvlm}
results=()
for ((r = 1; r <= rounds; ++r)); do
  a=$("$bin" bench dpo --threads "$threads" --steps "$steps" --warmup "$warmup" --json)
  b=$("$bin" bench dpo --threads "$threads" --steps "$steps" --warmup "$warmup" --json --precomputed)
  c=$(python3 scripts/bench/dpo_peer.py --threads "$threads" --steps "$steps" --warmup "$warmup")
  d=$(python3 scripts/bench/dpo_peer.py --threads "$threads" --steps "$steps" --warmup "$warmup" --precomputed)
  results+=("$(python3 -c 'import json, sys; print(json.dumps([json.loads(x) for x in sys.argv[1:]]))' "$a" "$b" "$c" "$d")")
  echo "round $r of $rounds done" >&2
done
python3 - "${results[@]}" <<'PY'
import json, statistics, sys
rounds = [json.loads(a) for a in sys.argv[1:]]
print(f"threads {rounds[0][0]['threads']}, batch {rounds[0][0]['batch']} pairs, {len(rounds)} round(s), medians; "
      "ratios taken within each round")
print(f"{'':36s} {'tinyvlm':>10s} {'PyTorch':>10s} {'ratio':>7s}")
for key, name, fmt in (("pairs_per_s", "pairs/s", "10.2f"), ("peak_rss_mib", "peak RSS (MiB)", "10.0f")):
    for i, ref in ((0, "live reference"), (1, "precomputed reference")):
        ours = [r[i][key] for r in rounds]
        peer = [r[i + 2][key] for r in rounds]
        ratios = [a / b for a, b in zip(ours, peer)]
        print(f"{name + ', ' + ref:36s} {statistics.median(ours):{fmt}} {statistics.median(peer):{fmt}} "
              f"{statistics.median(ratios):6.2f}x")
for i, impl in ((0, "tinyvlm"), (2, "PyTorch")):
    gain = [r[i + 1]["pairs_per_s"] / r[i]["pairs_per_s"] for r in rounds]
    print(f"{impl}: precomputed instead of live reference: {statistics.median(gain):.2f}x pairs/s "
          f"(per round: {', '.join(f'{g:.2f}x' for g in gain)})")
print("per round, pairs/s (tinyvlm live, precomputed; PyTorch live, precomputed): " +
      "; ".join(", ".join(f"{x['pairs_per_s']:.2f}" for x in r) for r in rounds))
PY
