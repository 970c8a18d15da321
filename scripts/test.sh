#!/usr/bin/env bash
# Installs dependencies, builds (Release) and runs the whole test suite with CTest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install_deps.sh --test
# The server's integration test drives it with OpenAI's Python client (test-only; skipped without it).
python3 -c "import openai" 2>/dev/null || python3 -m pip install -q openai 2>/dev/null ||
  python3 -m pip install -q --break-system-packages openai || echo "pip could not install openai: the server test will be skipped"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build
ctest --test-dir build --output-on-failure -j "$(nproc)"
