#!/usr/bin/env bash
# `tinyvlm ask` latency beside the PyTorch reference on the same random phase-3 checkpoint (the original's
# naming, torch.save), same image, question and threads: time to the first token, then tokens/s. tinyvlm
# runs with its KV cache and, like the reference, recomputing the whole sequence per token (--no-cache).
# ROUNDS alternates the three that many times (a shared machine's load changes between runs) and prints
# every round, in wall time and in process CPU time (which a busy machine inflates far less); both sides
# must give the same greedy tokens.
#   bash scripts/bench/ask.sh [ROUNDS=3] [THREADS=all cores] [MAX_TOKENS=32]
# WEIGHTS="fp32 bf16 q8" also times tinyvlm with those --weights formats each round (default: fp32 only).
# TINYVLM_BIN selects the binary (default build/tinyvlm); the model is written once under
# ${ASK_BENCH_DIR:-/tmp/tinyvlm_ask_bench}.
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-3}
threads=${2:-$(nproc)}
max_tokens=${3:-32}
weights=${WEIGHTS:-fp32}
[[ "$rounds" =~ ^[1-9][0-9]*$ ]] || { echo "ROUNDS must be a positive integer, got '$rounds'" >&2; exit 1; }
bin=${TINYVLM_BIN:-build/tinyvlm}
[ -x "$bin" ] || { echo "no tinyvlm binary at $bin (build first, or set TINYVLM_BIN)" >&2; exit 1; }
dir=${ASK_BENCH_DIR:-/tmp/tinyvlm_ask_bench}
[ -f "$dir/tokenizer.json" ] || python3 scripts/bench/ask_peer.py --make "$dir"
fix=tests/fixtures/torch
q="What colour is the shape?"
echo "== ask: decoder d_model 256, 4 layers, 8 experts, vocab 8192; ViT 224/16 6 layers 192 hidden (196 vision tokens);"
echo "   $threads threads, at most $max_tokens new tokens, greedy"
ours() {  # prints: first_ms tok_per_s first_cpu_ms tok_per_cpu_s ids...
  local out
  out=$("$bin" ask --model "$dir/instruct.pt" --config "$dir/config.toml" --tokenizer "$dir/tokenizer.json" \
    --image $fix/ask_image.png --prompt "$q" --max-tokens "$max_tokens" --print-ids --threads "$threads" "$@" 2>&1)
  local first rate first_cpu rate_cpu
  first=$(sed -n 's/.*first token at \([0-9.]*\) ms.*/\1/p' <<<"$out")
  first_cpu=$(sed -n 's/.*first token at [0-9.]* ms (\([0-9.]*\) ms CPU).*/\1/p' <<<"$out")
  rate=$(sed -n 's/.*then \([0-9.]*\) tok\/s.*/\1/p' <<<"$out")
  rate_cpu=$(sed -n 's/.*tok\/s (\([0-9.]*\) per CPU second.*/\1/p' <<<"$out")
  echo "$first $rate $first_cpu $rate_cpu $(grep -v '^ask:' <<<"$out" | head -n1)"
}
for r in $(seq 1 "$rounds"); do
  a=$(ours)
  b=$(ours --no-cache)
  pf=$(python3 scripts/bench/ask_peer.py --run "$dir" --threads "$threads" --max-tokens "$max_tokens" --question "$q" --plain)
  read -r af ar afc arc aids <<<"$a"
  read -r bf br bfc brc _ <<<"$b"
  read -r pff pr pfc prc pids <<<"$pf"
  same=$([ "$(echo $aids)" = "$(echo $pids)" ] && echo "same tokens" || echo "TOKENS DIFFER")
  echo "round $r: first token ms   tinyvlm $af (no cache $bf)  pytorch $pff  | then tokens/s  tinyvlm $ar" \
       "(no cache $br)  pytorch $pr  | $same"
  echo "         in CPU time: ms   tinyvlm $afc (no cache $bfc)  pytorch $pfc  | tokens/CPU-s  tinyvlm $arc" \
       "(no cache $brc)  pytorch $prc"
  for w in $weights; do
    [ "$w" = fp32 ] && continue
    read -r wf wr wfc wrc wids <<<"$(ours --weights "$w")"
    wsame=$([ "$(echo $wids)" = "$(echo $pids)" ] && echo "same tokens as pytorch" || echo "tokens differ from pytorch")
    echo "         --weights $w: first token ms $wf ($wfc CPU)  | then tokens/s $wr ($wrc per CPU-s)  | $wsame"
  done
done
