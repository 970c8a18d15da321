#!/usr/bin/env bash
# Installs dependencies, builds (Release) and runs the main job: `tinyvlm demo`, the pipeline end to end
# on the built-in dataset (corpus, tokenizer, shards, phase-1 pretraining, generation) on the CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install_deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build --target tinyvlm
./build/tinyvlm demo --out runs/demo "$@"
