#!/usr/bin/env bash
# Phase-1 throughput: one process with 2 threads against 2 MPI ranks with 1 thread each, on the same
# global batch (grad_accum micro-batches), alternated ROUNDS times; prints tokens/s of each round and the
# communication time per step of the 2-rank runs (from metrics.jsonl, comm_s). On a shared machine the
# absolute figures move with the load: compare the two sides of one round.
# Usage: scripts/bench/mpi_pretrain.sh [build/tinyvlm]   (env: STEPS=30 ROUNDS=3 WARMUP=5)
set -euo pipefail
BIN=${1:-build/tinyvlm}
STEPS=${STEPS:-30}
ROUNDS=${ROUNDS:-3}
WARMUP=${WARMUP:-5}
[[ "$STEPS" =~ ^[0-9]+$ && "$STEPS" -gt "$WARMUP" ]] || { echo "STEPS must be a number above WARMUP ($WARMUP)" >&2; exit 2; }
command -v mpirun >/dev/null || { echo "mpirun not found (scripts/install_deps.sh installs openmpi-bin)" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 - "$work" <<'PY'
import json, random, sys
random.seed(1)
words = "the a model learns from text and images with experts routing tokens in layers of attention".split()
with open(sys.argv[1] + "/corpus.jsonl", "w") as f:
    for _ in range(8000):
        f.write(json.dumps({"text": " ".join(random.choice(words) for _ in range(60))}) + "\n")
PY
# The model of `tinyvlm bench train` (the original's phase-1 shape): 8 x 256 tokens per step, here as
# 2 micro-batches of 4 so that 2 ranks each run one.
cat > "$work/config.toml" <<'TOML'
vocab_size = 8192
d_model = 256
n_heads = 8
n_kv_heads = 4
n_layers = 4
max_seq_len = 256
num_experts = 8
num_experts_per_tok = 2
d_expert = 256
d_ff_standard = 512
rope_layers_ratio = 0.75
rope_theta = 10000
chunk_size = 64
batch_size = 4
grad_accum = 2
lr = 1e-3
warmup_steps = 5
val_every = 0
log_interval = 1000
TOML
"$BIN" tokenizer train --input "$work/corpus.jsonl" --vocab-size 400 --out "$work/tok.json" >/dev/null 2>&1
# tokens/s over the steps after WARMUP, from the run's own metrics: tokens per step x steps / wall time.
run() {  # $1 name, $2 threads per rank, rest: launcher
  local name=$1 threads=$2; shift 2
  local t0 t1
  "$@" "$BIN" pretrain --config "$work/config.toml" --data "$work/corpus.jsonl" --tokenizer "$work/tok.json" \
    --out "$work/$name" --threads "$threads" --steps "$WARMUP" >/dev/null 2>"$work/err" || { cat "$work/err" >&2; exit 1; }
  t0=$(date +%s.%N)
  "$@" "$BIN" pretrain --config "$work/config.toml" --data "$work/corpus.jsonl" --tokenizer "$work/tok.json" \
    --out "$work/$name" --threads "$threads" --steps "$STEPS" --resume >/dev/null 2>&1
  t1=$(date +%s.%N)
  python3 - "$work/$name/metrics.jsonl" "$t0" "$t1" "$WARMUP" "$STEPS" <<'PY'
import json, sys
path, t0, t1, warm, steps = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
rows = [json.loads(l) for l in open(path) if '"train"' in l]
timed = [r for r in rows if r["step"] > warm]
tokens = 4 * 2 * 256 * len(timed)  # batch_size x grad_accum x max_seq_len per step
comm = [r["comm_s"] for r in timed if "comm_s" in r]
sent = [r["comm_bytes"] for r in timed if "comm_bytes" in r]
extra = f"  comm {1e3 * sum(comm) / len(comm):.1f} ms/step, {sum(sent) / len(sent) / 1e6:.2f} MB sent/step by rank 0" if comm else ""
print(f"{tokens / (t1 - t0):9.0f} tok/s (incl. start-up){extra}")
PY
}
for r in $(seq 1 "$ROUNDS"); do
  rm -rf "$work/one" "$work/two"
  printf 'round %d  1 rank x 2 threads : ' "$r"; run one 2 env
  printf 'round %d  2 ranks x 1 thread : ' "$r"
  run two 1 mpirun --oversubscribe --allow-run-as-root -np 2 -x OMP_NUM_THREADS=1 --bind-to none
done
