#!/usr/bin/env bash
# Coverage-guided fuzzing of every reader of untrusted bytes (fuzz/, src/fuzzing.rs):
# builds the targets with cargo fuzz on the pinned nightly, writes the seeds,
# runs each target for SECONDS_PER_TARGET and reports executions per target.
#
#   scripts/fuzz.sh                      # every target, 60 s each (make fuzz)
#   SECONDS_PER_TARGET=1800 scripts/fuzz.sh image bundle
#
# A crash leaves its input in fuzz/artifacts/<target>/. Once fixed, copy the
# input to fuzz/regressions/<target>/: `make test` replays it (tests/fuzz_replay.rs).
# Executions per target go to bench/results/fuzz/<target>.json.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${SECONDS_PER_TARGET:-60}
nightly=$(cat scripts/nightly-toolchain)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(blob_frame gallery_blob export bundle image)

command -v cargo-fuzz >/dev/null || {
  echo "fuzz: installing cargo-fuzz (crates.io)"
  cargo install cargo-fuzz --locked --quiet
}
rustup run "$nightly" rustc --version >/dev/null 2>&1 || {
  echo "fuzz: installing the Rust toolchain $nightly"
  rustup toolchain install "$nightly" --profile minimal
}

if [ -z "$(ls -A fuzz/corpus 2>/dev/null)" ]; then
  echo "fuzz: writing the seeds to fuzz/corpus/"
  cargo test -q --workspace --test fuzz_replay -- --ignored write_seeds 2>&1 | grep -E "seeds in|panicked|error" || true
fi

echo "fuzz: building the targets (nightly $nightly, ASan, debug assertions)"
(cd fuzz && cargo "+$nightly" fuzz build -O --debug-assertions)

mkdir -p bench/results/fuzz
for target in "${targets[@]}"; do
  echo "fuzz: $target for $seconds s"
  log=fuzz/artifacts/$target.log
  mkdir -p "fuzz/artifacts/$target" "fuzz/corpus/$target"
  status=0
  # -rss_limit_mb and -malloc_limit_mb: an allocation the input cannot justify is a finding.
  (cd fuzz && cargo "+$nightly" fuzz run -O --debug-assertions "$target" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -malloc_limit_mb=1024 -max_len=262144 \
    -timeout=20 -print_final_stats=1) >"$log" 2>&1 || status=$?
  runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo 0)
  cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+' || echo 0)
  crashes=$(find "fuzz/artifacts/$target" -type f | wc -l)
  echo "fuzz: $target: $runs executions, coverage $cov, exit $status, $crashes inputs in fuzz/artifacts/$target/"
  [ "$status" -eq 0 ] || grep -vE '^#[0-9]+' "$log" | tail -40
  cat >"bench/results/fuzz/$target.json" <<JSON
{"target": "$target", "date": "$(date -u +%FT%TZ)", "commit": "$(git rev-parse --short HEAD)", "machine": "$(nproc) cores",
 "seconds": $seconds, "executions": $runs, "coverage": $cov, "exit": $status, "crash_inputs": $crashes}
JSON
done
