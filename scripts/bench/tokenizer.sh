#!/usr/bin/env bash
# Tokenizer encode throughput: tinyvlm (1 thread, all threads) beside HuggingFace `tokenizers`
# (encode_batch, all threads), same run, same documents, same tokenizer.json.
#
#   bash scripts/bench/tokenizer.sh [--tinyvlm BIN] [--tokenizer T.json] [--input F ...]
#                                   [--bytes N] [--style hostile|prose] [--repeats R]
#
# Without --input, a synthetic corpus of --bytes bytes (default 32 MB) is generated with the
# generator of scripts/fixtures/tokenizer_fixtures.py (--style hostile: multilingual with long
# words, emoji, code...; prose: English-like text). Without --tokenizer, tinyvlm trains a
# 32000-token tokenizer on that corpus (min_frequency 2, as the original). The id checksums of
# both sides must agree: the same ids were produced.
set -euo pipefail
cd "$(dirname "$0")/../.."

BIN=build/tinyvlm
TOK=""
INPUTS=()
BYTES=32000000
STYLE=hostile
REPEATS=3
while [[ $# -gt 0 ]]; do
  case "$1" in
    --tinyvlm) BIN="$2"; shift 2 ;;
    --tokenizer) TOK="$2"; shift 2 ;;
    --input) shift; while [[ $# -gt 0 && "$1" != --* ]]; do INPUTS+=("$1"); shift; done ;;
    --bytes) BYTES="$2"; shift 2 ;;
    --style) STYLE="$2"; shift 2 ;;
    --repeats) REPEATS="$2"; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
if [[ ${#INPUTS[@]} -eq 0 ]]; then
  python3 scripts/bench/tokenizer_peer.py --make-corpus "$WORK/corpus.txt" --bytes "$BYTES" --style "$STYLE" >&2
  INPUTS=("$WORK/corpus.txt")
fi
if [[ -z "$TOK" ]]; then
  TOK="$WORK/tokenizer.json"
  "$BIN" tokenizer train --quiet --input "${INPUTS[@]}" --vocab-size 32000 --min-frequency 2 --out "$TOK"
fi

TV=$("$BIN" bench tokenizer --tokenizer "$TOK" --input "${INPUTS[@]}" --repeats "$REPEATS")
HF=$(python3 scripts/bench/tokenizer_peer.py --tokenizer "$TOK" --input "${INPUTS[@]}" --repeats "$REPEATS")
echo "$TV" | grep -v '^RESULT'
echo "$HF" | grep -v '^RESULT'
echo

get() { echo "$1" | grep '^RESULT' | tr ' ' '\n' | grep "^$2=" | cut -d= -f2; }
TV1=$(get "$TV" tinyvlm_1t_mbps)
TVN=$(get "$TV" tinyvlm_batch_mbps)
HFN=$(get "$HF" hf_batch_mbps)
THREADS=$(get "$TV" threads)
TVSUM=$(get "$TV" checksum)
HFSUM=$(get "$HF" checksum)
printf '%-46s %10s\n' "encode throughput ($(nproc) cores)" "MB/s"
printf '%-46s %10.2f\n' "HuggingFace tokenizers encode_batch, all threads" "$HFN"
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", a / b }'; }
printf '%-46s %10.2f   (%sx HF batch)\n' "tinyvlm, 1 thread" "$TV1" "$(ratio "$TV1" "$HFN")"
printf '%-46s %10.2f   (%sx HF batch)\n' "tinyvlm, $THREADS threads" "$TVN" "$(ratio "$TVN" "$HFN")"
if [[ "$TVSUM" == "$HFSUM" ]]; then
  echo "ids: identical (checksum $TVSUM)"
else
  echo "ids: DIFFERENT (tinyvlm $TVSUM, HuggingFace $HFSUM)"
  exit 1
fi
