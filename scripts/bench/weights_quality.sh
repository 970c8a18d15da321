#!/usr/bin/env bash
# Quality of the inference weight formats on a trained demo run (`tinyvlm demo --out DIR`):
#  1. perplexity of the phase-1 decoder on held-out text (the last DOCS documents of the demo corpus,
#     which lie in phase 1's validation split, the last 5% of the token stream), each document scored
#     on its own, cross-entropy averaged over all tokens, for fp32, bf16 and q8;
#  2. the phase-3 model's greedy answers to every question kind on the held-out images (phase 2's
#     validation images, the last 5%), for each format, listed where they differ from fp32's.
#   bash scripts/bench/weights_quality.sh DEMO_DIR [DOCS=100] [THREADS=1]
# TINYVLM_BIN selects the binary (default build/tinyvlm).
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=${1:?usage: weights_quality.sh DEMO_DIR [DOCS] [THREADS]}
docs=${2:-100}
threads=${3:-1}
bin=${TINYVLM_BIN:-build/tinyvlm}
[ -x "$bin" ] || { echo "no tinyvlm binary at $bin (build first, or set TINYVLM_BIN)" >&2; exit 1; }
for f in corpus.jsonl pretrain/best.safetensors instruct/best.safetensors images/conversations.jsonl; do
  [ -e "$dir/$f" ] || { echo "$dir/$f is missing: run tinyvlm demo --out $dir first" >&2; exit 1; }
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "== perplexity of $dir/pretrain/best.safetensors on the last $docs documents of the corpus"
python3 - "$dir/corpus.jsonl" "$docs" "$work" <<'EOF'
import json, sys
lines = open(sys.argv[1], encoding="utf-8").read().splitlines()[-int(sys.argv[2]):]
for i, l in enumerate(lines):
    open(f"{sys.argv[3]}/doc{i:04d}.txt", "w", encoding="utf-8").write(json.loads(l)["text"])
EOF
declare -A ce
for w in fp32 bf16 q8; do
  : > "$work/ppl_$w.jsonl"
  for t in "$work"/doc*.txt; do
    "$bin" perplexity --model "$dir/pretrain/best.safetensors" --text-file "$t" --weights "$w" --threads "$threads" \
      2>/dev/null >> "$work/ppl_$w.jsonl"
  done
  ce[$w]=$(python3 -c "
import json, math, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
n = sum(r['tokens'] for r in rows); s = sum(r['cross_entropy'] * r['tokens'] for r in rows)
print(f'{s / n:.6f} {math.exp(s / n):.4f} {n}')" "$work/ppl_$w.jsonl")
done
read -r ce32 p32 n32 <<<"${ce[fp32]}"
for w in fp32 bf16 q8; do
  read -r c p n <<<"${ce[$w]}"
  python3 -c "print(f'  $w: {$n} tokens, cross-entropy {$c:.5f}, perplexity {$p:.4f} ({100 * ($p / $p32 - 1):+.3f}% vs fp32)')"
done

echo "== greedy answers of $dir/instruct/best.safetensors on the held-out images"
mapfile -t questions < <(python3 -c "
import json, sys
qs = []
for l in open(sys.argv[1]):
    for c in json.loads(l)['conversations']:
        q = c['value'].replace('<image>\n', '')
        if c['from'] == 'human' and q not in qs: qs.append(q)
print('\n'.join(qs))" "$dir/images/conversations.jsonl")
mapfile -t images < <(ls "$dir"/images/img*.png | sort)
held=$(( ${#images[@]} / 20 )); [ "$held" -ge 1 ] || held=1
total=0; declare -A differ=([bf16]=0 [q8]=0)
for img in "${images[@]: -$held}"; do
  for q in "${questions[@]}"; do
    declare -A ans=()
    for w in fp32 bf16 q8; do
      ans[$w]=$("$bin" ask --model "$dir/instruct/best.safetensors" --image "$img" --prompt "$q" --max-tokens 6 \
        --weights "$w" --threads "$threads" 2>/dev/null | head -n1)
    done
    total=$((total + 1))
    for w in bf16 q8; do
      if [ "${ans[$w]}" != "${ans[fp32]}" ]; then
        differ[$w]=$((differ[$w] + 1))
        echo "  $(basename "$img") '$q': fp32 '${ans[fp32]}', $w '${ans[$w]}'"
      fi
    done
  done
done
echo "  $total answers ($held held-out images x ${#questions[@]} questions): bf16 differs from fp32 in ${differ[bf16]}," \
     "q8 in ${differ[q8]}"
