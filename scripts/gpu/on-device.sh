#!/usr/bin/env bash
# The GPU machine's half of training the default model (README: "Training the
# default model"). Runs in the repository root there, with the stripped trainer
# binary and the packed level-1 glyphs carried in .dev/ and the Vulkan loader
# in .gl/. Measures training throughput (burn's wgpu and cuda backends, PyTorch
# eager on the same network and batch), trains for about $TRAIN_SECONDS and
# leaves the bundle, the per-epoch metrics and the benchmark JSON in $OUT.
set -uo pipefail
BACKEND=${BACKEND:-wgpu}
TRAIN_SECONDS=${TRAIN_SECONDS:-360}
BATCH=256
ARCH=(--input-size 64 --widths 32,64,128,256 --embedding-dim 128)
source scripts/gpu/setup.sh

# The binary and the glyphs together exceed what one call may carry, so an
# earlier call on the same warm machine may have unpacked the glyphs already:
#   GLYPHS_ONLY=1 bash scripts/gpu/on-device.sh   (carrying .devdata)
if [ ! -f /tmp/l1.complete ]; then
  log "unpacking glyphs"
  python3 scripts/gpu/unpack-glyphs.py .devdata/l1-64.pack.xz /tmp/l1 2>&1 | tee -a "$OUT/log" && touch /tmp/l1.complete
fi
[ -n "${GLYPHS_ONLY:-}" ] && { ls /tmp/l1 | wc -l | tee -a "$OUT/log"; exit 0; }

# Where the time goes: cubecl's own per-kernel profile of a few cuda steps.
if [ -n "${PROFILE:-}" ]; then
  log "profiling cuda steps"
  CUBECL_DEBUG_LOG=/tmp/cubecl.log CUBECL_DEBUG_OPTION=profile timeout 90 "$BIN" bench-train --backend cuda \
    --batch-size $BATCH "${ARCH[@]}" --warmup 1 --steps 2 --json >"$OUT/profile-bench.json" 2>/dev/null
  grep -v '^ \|^$\|^\^' /tmp/cubecl.log | tail -c 4000000 >"$OUT/cubecl-profile.log"
fi

# wgpu runs ~100× slower than cuda here, so it gets fewer timed steps.
[ -n "${SKIP_BENCH:-}" ] || for b in wgpu cuda; do
  steps=40; [ "$b" = wgpu ] && steps=${WGPU_STEPS:-10}
  log "bench-train $b"
  timeout 120 "$BIN" bench-train --backend "$b" --batch-size $BATCH "${ARCH[@]}" --steps "$steps" --json \
    >"$OUT/bench-$b.json" 2>/tmp/bench.err || log "bench-train $b failed ($?)"
  cat "$OUT/bench-$b.json" | tee -a "$OUT/log"
done
[ -n "${SKIP_BENCH:-}" ] || python3 bench/torch_train.py --batch-size $BATCH --input-size 64 --widths 32,64,128,256 --steps 40 \
  >"$OUT/bench-torch.json" 2>>"$OUT/log"
cat "$OUT/bench-torch.json" 2>/dev/null | tee -a "$OUT/log"

# A backend whose benchmark failed cannot train either: fall back to wgpu.
[ -n "${SKIP_BENCH:-}" ] || grep -q images_per_sec "$OUT/bench-$BACKEND.json" 2>/dev/null || { log "$BACKEND unusable, training on wgpu"; BACKEND=wgpu; }
# Epochs that fit the time budget: an epoch shows every class once (P×K batches);
# augmentation, validation and checkpoints take the rest of the time.
ips=$(python3 -c "import json; print(json.load(open('$OUT/bench-$BACKEND.json'))['images_per_sec'])" 2>/dev/null || echo 500)
classes=$(ls /tmp/l1 | wc -l)
epochs=${EPOCHS:-$(python3 -c "print(max(1, int($TRAIN_SECONDS * $ips * 0.5 / ($classes * 4))))")}
CKPT=/tmp/ckpt-$(date +%s)
log "training on $BACKEND: $epochs epochs ($ips images/s measured, $classes classes)"
METRICANN_LOG=${METRICANN_LOG:-warn,metricann=info,metricann_trainer=info} timeout $((TRAIN_SECONDS + 60)) "$BIN" train --data /tmp/l1 --val-split 0.03 --backend "$BACKEND" --epochs "$epochs" \
  --batch-size $BATCH --per-class 4 --lr 2e-3 --patience 1000 "${ARCH[@]}" \
  --ckpt-dir "$CKPT" --model-out "$OUT/default.bundle" --json >"$OUT/train.json" 2>/tmp/train.err
log "train exited $?"
# cubecl 0.11's LLVM path prints every kernel's IR: keep only our own log lines.
grep -a metricann /tmp/train.err | tail -n 200 >>"$OUT/log"
# A run cut short by the timeout still has its best checkpoint.
[ -f "$OUT/default.bundle" ] || cp $CKPT/best.bundle "$OUT/default.bundle" 2>/dev/null
cp $CKPT/metrics.jsonl "$OUT/" 2>/dev/null
ls -la "$OUT" | tee -a "$OUT/log"
python3 scripts/plot-training.py "$OUT/metrics.jsonl" "$OUT/training.csv" "$OUT/training.png" 2>&1 | tee -a "$OUT/log"
# Kept for a following call on the same warm machine (scripts/eval-default.sh).
cp "$OUT/default.bundle" /tmp/final.bundle 2>/dev/null
