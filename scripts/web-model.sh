#!/usr/bin/env bash
# Model bundles for the web tests, in $1 (default target/web-model):
#   default.bundle: the glyph model, www/models/glyphs.bundle, when it exists, else one epoch of
#                   `metricann train` on the glyph fixture, else a random init;
#   other.bundle:   a random init (another fingerprint, for MODEL_MISMATCH).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-target/web-model}"
mkdir -p "$out"
[ -f "$out/default.bundle" ] && [ -f "$out/other.bundle" ] && { echo "web-model: $out is ready"; exit 0; }

# --keep-going: the example needs only the root crate; a broken target elsewhere
# is test-native's to report.
cargo build --workspace --all-targets --keep-going || echo "web-model: some targets failed to build; going on"
[ -x target/debug/examples/web_bundles ] || { echo "web-model: examples/web_bundles did not build" >&2; exit 1; }
target/debug/examples/web_bundles "$out/random" 32 64 >/dev/null
cp "$out/random/other.bundle" "$out/other.bundle"

if [ -f www/models/glyphs.bundle ]; then
  cp www/models/glyphs.bundle "$out/default.bundle"
  echo "web-model: default.bundle = www/models/glyphs.bundle"
elif [ -x target/debug/metricann ] && [ -d tests/fixtures/glyphs/train ] &&
  target/debug/metricann train --data tests/fixtures/glyphs/train --val-data tests/fixtures/glyphs/val \
    --epochs 1 --batch-size 32 --input-size 32 --widths 8,16,32 --embedding-dim 64 --backend ndarray \
    --ckpt-dir target/web-model-ckpt --model-out "$out/default.bundle" --json >"$out/train.json" 2>"$out/train.log"; then
  echo "web-model: default.bundle trained for 1 epoch on the glyph fixture"
else
  cp "$out/random/default.bundle" "$out/default.bundle"
  echo "web-model: default.bundle is a random init (no www/models/glyphs.bundle, and target/debug/metricann is missing or its training failed: $out/train.log)"
fi
