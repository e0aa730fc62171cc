#!/usr/bin/env bash
# Configures and builds into a build folder.
#   scripts/build.sh [build-dir] [extra cmake args...]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:-$root/build}
shift || true
jobs=$(nproc)
cmake -S "$root" -B "$dir" -G Ninja "$@" >/dev/null
# The CUDA backend is built when nvcc is found (not in sanitizer / fuzz builds).
echo "build.sh: $(grep -E '^HS_CUDA:BOOL=' "$dir/CMakeCache.txt" || echo 'HS_CUDA:BOOL=OFF')" \
  "$(grep -E '^HS_CUDA_ARCHS:' "$dir/CMakeCache.txt" || true)"
cmake --build "$dir" -j "$jobs"
