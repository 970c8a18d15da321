#!/usr/bin/env bash
# Installs the Debian 12 packages tinyvlm needs to build, test and run. Idempotent.
set -euo pipefail
pkgs=(build-essential cmake ninja-build ccache pkg-config
      libopenblas-dev libopenblas-openmp-dev libomp-dev libtomlplusplus-dev nlohmann-json3-dev libcli11-dev
      libjpeg62-turbo-dev libpng-dev libutf8proc-dev libsnappy-dev libzstd-dev zlib1g-dev
      libgtest-dev libgmock-dev libbenchmark-dev libcpp-httplib-dev
      libopenmpi-dev openmpi-bin  # MPI: data-parallel training (docs/distributed.md)
      clang libclang-rt-dev)  # clang + libFuzzer/ASan/UBSan runtimes: the fuzz harnesses (docs/fuzzing.md)
# --test (scripts/test.sh): also what only the test suite needs, a headless browser and the report's font
# for the report rendering test (docs/report.md); the demo does not download them.
if [ "${1:-}" = "--test" ]; then pkgs+=(chromium fonts-dejavu-core); fi
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
