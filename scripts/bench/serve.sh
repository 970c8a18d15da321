#!/usr/bin/env bash
# `tinyvlm serve` under 1, 4 and 16 concurrent streaming clients: aggregate tokens/s and time to first
# token, with --parallel 16 (every client decodes in its own slot, new requests join between steps, all
# running slots advance in one batched decode step) against --parallel 16 --no-batch (the same slots
# stepped one after another) and --parallel 1 (one request at a time, the rest queued). Same random
# phase-3 checkpoint as
# scripts/bench/ask.sh (196 vision tokens). Each round runs the three servers one after the other, so that the
# shared machine's changing load hits both alike.
#   bash scripts/bench/serve.sh [ROUNDS=2] [MAX_TOKENS=32] [THREADS=all cores]
# TINYVLM_BIN selects the binary (default build/tinyvlm).
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-2}
max_tokens=${2:-32}
threads=${3:-$(nproc)}
[[ "$rounds" =~ ^[1-9][0-9]*$ ]] || { echo "ROUNDS must be a positive integer, got '$rounds'" >&2; exit 1; }
bin=${TINYVLM_BIN:-build/tinyvlm}
[ -x "$bin" ] || { echo "no tinyvlm binary at $bin (build first, or set TINYVLM_BIN)" >&2; exit 1; }
dir=${ASK_BENCH_DIR:-/tmp/tinyvlm_ask_bench}
[ -f "$dir/tokenizer.json" ] || python3 scripts/bench/ask_peer.py --make "$dir"
image=tests/fixtures/torch/ask_image.png
log=$(mktemp)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -f "$log"' EXIT

start() {  # start PARALLEL [--no-batch] -> sets pid and port
  "$bin" serve --model "$dir/instruct.pt" --config "$dir/config.toml" --tokenizer "$dir/tokenizer.json" \
    --port 0 --parallel "$@" --queue 64 --ctx 512 --threads "$threads" 2>"$log" &
  pid=$!
  for _ in $(seq 1 600); do
    port=$(sed -n 's/.*listening on http:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$log")
    [ -n "$port" ] && return 0
    kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; exit 1; }
    sleep 0.1
  done
  echo "the server did not start" >&2; exit 1
}
stop() { kill "$pid"; wait "$pid" || true; pid=; }
# The server's CPU seconds so far (user + system): on a shared machine, tokens per CPU second of the
# server are less at the mercy of the other jobs' load than wall-clock rates.
tck=$(getconf CLK_TCK)
cpu_s() { awk -v t="$tck" '{ printf "%.2f", ($14 + $15) / t }' "/proc/$pid/stat"; }

echo "== serve: random phase-3 model (decoder d_model 256, 4 layers, 8 experts; 196 vision tokens), $threads threads,"
echo "   $max_tokens new tokens per request, greedy, streaming; requests per client: 4 (1 client), 2 (4), 1 (16)"
echo "   columns: clients requests tokens wall_s tok/s ttft_mean_ms ttft_median_ms errors server_cpu_s tok/cpu_s"
for r in $(seq 1 "$rounds"); do
  for mode in "16" "16 --no-batch" "1"; do
    # shellcheck disable=SC2086
    start $mode
    python3 scripts/bench/serve_client.py "$port" 1 1 4 "$image" >/dev/null  # warm-up
    for c in 1 4 16; do
      per=$(( c == 1 ? 4 : (c == 4 ? 2 : 1) ))
      c0=$(cpu_s)
      line=$(python3 scripts/bench/serve_client.py "$port" "$c" "$per" "$max_tokens" "$image")
      c1=$(cpu_s)
      echo "round $r --parallel $mode: $line $(awk -v a="$c0" -v b="$c1" -v l="$line" \
        'BEGIN { split(l, f, " "); d = b - a; printf "%.2f %.1f", d, (d > 0 ? f[3] / d : 0) }')"
    done
    stop
  done
done
