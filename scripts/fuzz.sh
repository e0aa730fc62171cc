#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan) and runs each for a
# bounded time, first replaying tests/fuzz/regressions/<target>/ (inputs that
# once crashed). A crash fails the script and leaves the input in the build
# folder ($HS_FUZZ_BUILD_DIR, default build-fuzz/).
#   scripts/fuzz.sh [seconds per target, default 30] [target ...]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
seconds=${1:-30}
shift || true
export CCACHE_DIR=${CCACHE_DIR:-$root/.ccache}
bd=${HS_FUZZ_BUILD_DIR:-build-fuzz}
targets=(safetensors config tokenizer_load tokenizer_codec generate_request)
[ $# -gt 0 ] && targets=("$@")
CC=clang CXX=clang++ cmake -S . -B "$bd" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DHS_FUZZ=ON -DHS_BUILD_TESTS=OFF -DCMAKE_CXX_FLAGS=-Wno-ambiguous-reversed-operator >/dev/null
cmake --build "$bd" -j "$(nproc)" --target "${targets[@]/#/fuzz_}"

# Seed corpora from files the project already has (kept out of git).
work=$bd/corpus
mkdir -p "$work"/{safetensors,config,tokenizer_load,tokenizer_codec,generate_request}
for f in tests/golden/fixtures/*/model*.safetensors; do
  head -c 4096 "$f" > "$work/safetensors/$(basename "$(dirname "$f")")_$(basename "$f")"
done
cp tests/golden/fixtures/*/config.json "$work/config/" 2>/dev/null || true
for f in tests/golden/fixtures/*/config.json; do cp "$f" "$work/config/$(basename "$(dirname "$f")").json"; done
tiny=$bd/tiny-tokenizer
if [ ! -f "$tiny/tokenizer.json" ]; then
  maker=${HS_MAKE_TINY_MODEL_BIN:-build/tools/hs_make_tiny_model}
  [ -x "$maker" ] || bash scripts/build.sh build >/dev/null
  "$maker" --preset tiny --out "$tiny" >/dev/null
fi
cp "$tiny/tokenizer.json" "$work/tokenizer_load/tiny.json"
head -c 2000 tests/tokenizer/corpus.jsonl > "$work/tokenizer_codec/corpus_head.txt"
tok_dir="$root/../shared/testdata/tokenizers/llama3"
if [ ! -f "$tok_dir/tokenizer.json" ]; then
  echo "fuzz: shared Llama-3 tokenizer missing; tokenizer_codec uses the tiny byte-level one"
  tok_dir="$root/$tiny"
fi
export HS_FUZZ_TOKENIZER="$tok_dir"
export UBSAN_OPTIONS="suppressions=$root/tests/fuzz/ubsan.supp:print_stacktrace=1"
# Serialized valid GenerateRequests, written by the target itself.
export HS_FUZZ_WRITE_SEEDS="$(cd "$work/generate_request" && pwd)"

failed=()
for t in "${targets[@]}"; do
  bin=$bd/tests/fuzz/fuzz_$t
  reg=tests/fuzz/regressions/$t
  if [ -d "$reg" ] && [ -n "$(ls -A "$reg")" ]; then
    echo "=== fuzz_$t: replaying $(ls "$reg" | wc -l) regression inputs"
    "$bin" "$reg"/*
  fi
  max_len=4096
  [ "$t" = tokenizer_load ] && max_len=65536
  echo "=== fuzz_$t: ${seconds}s"
  log=$bd/fuzz_$t.log
  touch "$bd/fuzz_$t.start"
  if (cd "$bd" && "tests/fuzz/fuzz_$t" -max_total_time="$seconds" -max_len="$max_len" \
        -print_final_stats=1 -artifact_prefix="crash-$t-" "corpus/$t" >"fuzz_$t.log" 2>&1); then
    tail -n 4 "$log"
  else
    # The whole report (sanitizer trace, the input's bytes) is what a reader
    # of CI needs to reproduce the failure; the artifact stays in $bd.
    echo "fuzz_$t FAILED; its log ($log) ends:"
    tail -n 80 "$log"
    for a in "$bd"/crash-"$t"-*; do
      [ -f "$a" ] && [ "$a" -nt "$bd/fuzz_$t.start" ] || continue
      echo "--- artifact $a (base64):"
      head -c 8192 "$a" | base64
    done
    failed+=("$t")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: failing targets: ${failed[*]}"
  exit 1
fi
