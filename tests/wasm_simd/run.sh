#!/usr/bin/env bash
# Compiles src/index/distance.rs alone for wasm32, without and with simd128, and
# checks both kernels under Node against the scalar reference (see check.rs).
set -euo pipefail
cd "$(dirname "$0")/../.."
out="target/wasm-simd-check"
mkdir -p "$out"
for v in plain simd128; do
  flags=()
  [ "$v" = simd128 ] && flags=(-C target-feature=+simd128)
  rustc --edition 2024 --crate-type cdylib --target wasm32-unknown-unknown -O \
    "${flags[@]}" tests/wasm_simd/check.rs -o "$out/$v.wasm"
done
node tests/wasm_simd/run.mjs "$out"
