#!/usr/bin/env bash
# Regenerates the default model from scratch: renders the glyph data set (GB2312
# level-1 for training, level-2 for unseen-class evaluation), trains, and
# evaluates (scripts/eval-default.sh). The committed bundle was trained on an
# H100 through scripts/gpu/ (README, "Training the default model"); this script
# runs the same recipe on whatever backend this machine has:
#
#   scripts/train-default.sh cuda      # NVIDIA GPU (a --features cuda build)
#   scripts/train-default.sh wgpu      # any Vulkan/Metal/DX12 GPU
#   EPOCHS=3 scripts/train-default.sh ndarray   # the CPU: slow, hours for the full run
set -euo pipefail
cd "$(dirname "$0")/.."
BACKEND=${1:-wgpu}
EPOCHS=${EPOCHS:-12}
DATA=${DATA:-data}
OUTDIR=${OUTDIR:-target/default-model}
source scripts/fonts.sh

features=()
[ "$BACKEND" = cuda ] && features=(--features cuda)
cargo build --release -p metricann-trainer "${features[@]}"
BIN=target/release/metricann

for level in 1 2; do
  [ -d "$DATA/gb2312-$level" ] || "$BIN" dataset glyphs --chars "gb2312-$level" --fonts "${FONTS[@]}" \
    --out "$DATA/gb2312-$level" --size 64 --min-fonts 8
done

mkdir -p "$OUTDIR"
"$BIN" train --data "$DATA/gb2312-1" --val-split 0.03 --backend "$BACKEND" --epochs "$EPOCHS" \
  --batch-size 256 --per-class 4 --lr 2e-3 --patience 1000 \
  --input-size 64 --widths 32,64,128,256 --embedding-dim 128 \
  --ckpt-dir "$OUTDIR/ckpt" --model-out "$OUTDIR/default.bundle"
# The header records what the bundle was trained on (fonts, characters).
fonts=$(printf '"%s",' "${FONTS[@]##*/}")
"$BIN" inspect --model "$OUTDIR/default.bundle" --set "fonts=[${fonts%,}]" --set chars=gb2312-1 \
  --set glyph_size=64 --out "$OUTDIR/default.bundle" >/dev/null
python3 scripts/plot-training.py "$OUTDIR/ckpt/metrics.jsonl" "$OUTDIR/training.csv" "$OUTDIR/training.png"
scripts/eval-default.sh "$OUTDIR/default.bundle" "$DATA/gb2312-2" "$OUTDIR/eval.jsonl"
