#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole test suite, printing each
# stage's time. This is the README's test command and what CI runs.
#   scripts/test.sh            all stages
#   HS_STAGES="build" scripts/test.sh   only some (setup, python, build, asan, tsan, fuzz)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
stages=${HS_STAGES:-"setup python build asan tsan fuzz"}
jobs=$(nproc)
export CCACHE_DIR=${CCACHE_DIR:-$root/.ccache}
declare -a report=()
start_all=$(date +%s)

run_stage() {
  local name=$1; shift
  local t0; t0=$(date +%s)
  echo "=== stage $name"
  if "$@"; then
    report+=("$(printf '%-8s %5ss  ok' "$name" $(( $(date +%s) - t0 )))")
  else
    report+=("$(printf '%-8s %5ss  FAILED' "$name" $(( $(date +%s) - t0 )))")
    printf '%s\n' "=== stage times" "${report[@]}"
    exit 1
  fi
}

stage_setup() { bash scripts/setup.sh; }
stage_python() { HS_PYTHON=$(bash scripts/python_env.sh | tail -n1); export HS_PYTHON; }
stage_build() {
  bash scripts/build.sh build -DCMAKE_BUILD_TYPE=RelWithDebInfo ${HS_PYTHON:+-DHS_TEST_PYTHON=$HS_PYTHON}
  (cd build && ctest --output-on-failure -j "$jobs" --timeout 900)
}
stage_asan() {
  bash scripts/build.sh build-asan -DCMAKE_BUILD_TYPE=Debug -DHS_SANITIZE=ON ${HS_PYTHON:+-DHS_TEST_PYTHON=$HS_PYTHON}
  (cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
     ctest --output-on-failure -j "$jobs" --timeout 1800 -LE "no_sanitizer|cuda_emu_large")
}

stage_tsan() { bash scripts/tsan.sh build-tsan; }
stage_fuzz() { bash scripts/fuzz.sh "${HS_FUZZ_SECONDS:-30}"; }

for s in $stages; do
  # The python stage exports HS_PYTHON, so it runs in this shell.
  run_stage "$s" "stage_$s"
done
report+=("$(printf '%-8s %5ss' total $(( $(date +%s) - start_all )))")
printf '%s\n' "=== stage times" "${report[@]}"
