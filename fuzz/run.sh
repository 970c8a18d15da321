#!/usr/bin/env bash
# Runs every libFuzzer harness for a bounded time, seeded from fuzz/corpus/<name>/ (read-only: new inputs
# go to a scratch folder), and fails on the first crash, hang or out-of-memory. Prints executions and
# coverage per harness. Usage: fuzz/run.sh [seconds per harness, default 5] [build dir, default build-fuzz]
#                                          [harness names, default all]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-5}
build=${2:-build-fuzz}
shift $(( $# > 2 ? 2 : $# )) || true
names=("$@")
if [ ${#names[@]} -eq 0 ]; then
  for src in fuzz/fuzz_*.cpp; do n=$(basename "$src" .cpp); names+=("${n#fuzz_}"); done
fi
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
status=0
for name in "${names[@]}"; do
  bin="$build/fuzz/fuzz_$name"
  [ -x "$bin" ] || { echo "fuzz: $bin is not built (see docs/fuzzing.md)"; exit 1; }
  mkdir -p "$scratch/$name" "$scratch/artifacts/$name"
  log="$scratch/$name.log"
  if TMPDIR="$scratch" "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
       -artifact_prefix="$scratch/artifacts/$name/" "$scratch/$name" "fuzz/corpus/$name" >"$log" 2>&1; then
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo '?')
    ft=$(grep -o 'ft: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo '?')
    echo "fuzz_$name: ok, $runs executions in ${secs}s, coverage $cov edges, $ft features"
  else
    echo "fuzz_$name: FAILED"; tail -40 "$log"
    mkdir -p "$build/fuzz-artifacts" && cp -r "$scratch/artifacts/$name" "$build/fuzz-artifacts/" 2>/dev/null || true
    status=1
  fi
done
exit $status
