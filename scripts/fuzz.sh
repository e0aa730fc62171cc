#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan) and runs each for a
# bounded time, first replaying tests/fuzz/regressions/<target>/ (inputs that
# once crashed). A crash fails the script and leaves the input in build-fuzz/.
#   scripts/fuzz.sh [seconds per target, default 30]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
seconds=${1:-30}
export CCACHE_DIR=${CCACHE_DIR:-$root/.ccache}
targets=(safetensors config tokenizer_load tokenizer_codec)
CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DHS_FUZZ=ON -DHS_BUILD_TESTS=OFF -DCMAKE_CXX_FLAGS=-Wno-ambiguous-reversed-operator >/dev/null
cmake --build build-fuzz -j "$(nproc)" --target "${targets[@]/#/fuzz_}"

# Seed corpora from files the project already has (kept out of git).
work=build-fuzz/corpus
mkdir -p "$work"/{safetensors,config,tokenizer_load,tokenizer_codec}
for f in tests/golden/fixtures/*/model*.safetensors; do
  head -c 4096 "$f" > "$work/safetensors/$(basename "$(dirname "$f")")_$(basename "$f")"
done
cp tests/golden/fixtures/*/config.json "$work/config/" 2>/dev/null || true
for f in tests/golden/fixtures/*/config.json; do cp "$f" "$work/config/$(basename "$(dirname "$f")").json"; done
tiny=build-fuzz/tiny-tokenizer
if [ ! -f "$tiny/tokenizer.json" ]; then
  bash scripts/build.sh build >/dev/null
  build/tools/hs_make_tiny_model --preset tiny --out "$tiny" >/dev/null
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

for t in "${targets[@]}"; do
  bin=build-fuzz/tests/fuzz/fuzz_$t
  reg=tests/fuzz/regressions/$t
  if [ -d "$reg" ] && [ -n "$(ls -A "$reg")" ]; then
    echo "=== fuzz_$t: replaying $(ls "$reg" | wc -l) regression inputs"
    "$bin" "$reg"/*
  fi
  max_len=4096
  [ "$t" = tokenizer_load ] && max_len=65536
  echo "=== fuzz_$t: ${seconds}s"
  (cd build-fuzz && "tests/fuzz/fuzz_$t" -max_total_time="$seconds" -max_len="$max_len" \
     -print_final_stats=1 -artifact_prefix="crash-$t-" "corpus/$t" 2>&1 | tail -n 4)
done
