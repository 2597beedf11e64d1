#!/usr/bin/env bash
# The GPU machine's half of training the objects model (docs/models.md). Runs in
# the repository root there. A call carries at most 64 MiB and runs at most ten
# minutes; when the data and the binary exceed that together, PHASE=data carrying
# the data first unpacks it on the same warm machine.
#   PHASE=train carrying target/objects-train.tar.xz and .dev/ (metricann.xz, imagenet-f16.bundle.xz):
#               throughput (burn cuda and PyTorch eager, same network and batch), then training;
#               returns objects-f32.bundle
#   PHASE=bench carrying .dev/metricann.xz: training throughput only, burn (wgpu and cuda, each
#               given BENCH_SECONDS to compile its kernels and run) and PyTorch eager
#   PHASE=eval  carrying target/objects-eval.tar.xz and .dev/ (metricann.xz, imagenet-f16.bundle.xz,
#               objects-f32.bundle.xz): the shipped bundle (16-bit weights, its "unknown"
#               threshold chosen on val), then every model on every held-out source
# Everything it makes goes to $OUT.
set -uo pipefail
BIN=/tmp/metricann
DATA=/tmp/objects
TRAIN_SECONDS=${TRAIN_SECONDS:-330}
SIZE=${SIZE:-160}
log() { echo "[$(date +%T)] $*" | tee -a "$OUT/log"; }
unxz_to() { python3 -c "import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], 'wb'))" "$1" "$2"; }
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do
  [ -d "$d" ] && export LD_LIBRARY_PATH=$d:${LD_LIBRARY_PATH:-}
done

unpack() { for t in target/objects-*.tar.xz; do [ -f "$t" ] && mkdir -p "$DATA" && tar -xJf "$t" -C "$DATA"; done; }

case "${PHASE:-}" in
data)
  unpack
  ls "$DATA" | tee -a "$OUT/log"
  ;;
train)
  unpack
  [ -d "$DATA/train" ] || { log "no data: carry target/objects-train.tar.xz, or run PHASE=data on the same machine first"; exit 1; }
  log "data: $(ls "$DATA/train" | wc -l) training classes, $(ls "$DATA/val" | wc -l) validation classes"
  nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee -a "$OUT/log"
  unxz_to .dev/metricann.xz "$BIN" && chmod +x "$BIN"
  unxz_to .dev/imagenet-f16.bundle.xz /tmp/imagenet.bundle
  log "bench-train burn cuda"
  timeout 120 "$BIN" bench-train --backend cuda --arch efficientnet-lite0 --batch-size 128 --per-class 2 \
    --input-size "$SIZE" --warmup 5 --steps 20 --json >"$OUT/bench-burn-cuda.json" 2>>"$OUT/log"
  log "bench-train torch eager"
  timeout 80 python3 bench/torch_train.py --arch efficientnet-lite0 --batch-size 128 --per-class 2 \
    --input-size "$SIZE" --steps 20 >"$OUT/bench-torch.json" 2>>"$OUT/log"
  cat "$OUT"/bench-*.json | tee -a "$OUT/log"
  log "train for ${TRAIN_SECONDS}s"
  mkdir -p /tmp/ckpt
  timeout "$TRAIN_SECONDS" "$BIN" train --backend cuda --arch efficientnet-lite0 --init /tmp/imagenet.bundle \
    --data "$DATA/train" --val-data "$DATA/val" --input-size "$SIZE" --embedding-dim 128 \
    --batch-size 128 --per-class 2 --epochs "${EPOCHS:-40}" --lr 1e-3 --backbone-lr-scale 0.1 \
    --freeze-backbone-epochs 1 --flip --crop-min 0.35 --jpeg-prob 0.3 --patience 8 \
    --ckpt-dir /tmp/ckpt --model-out /tmp/objects-f32.bundle --json >"$OUT/train.json" 2>>"$OUT/log"
  log "train exit $?"
  cp /tmp/ckpt/metrics.jsonl "$OUT/" 2>/dev/null
  [ -f /tmp/objects-f32.bundle ] || cp /tmp/ckpt/best.bundle /tmp/objects-f32.bundle
  cp /tmp/objects-f32.bundle "$OUT/"
  ls -la "$OUT/objects-f32.bundle" | tee -a "$OUT/log"
  ;;
bench)
  nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee -a "$OUT/log"
  unxz_to .dev/metricann.xz "$BIN" && chmod +x "$BIN"
  for backend in wgpu cuda; do
    log "bench-train burn $backend"
    timeout "${BENCH_SECONDS:-240}" "$BIN" bench-train --backend "$backend" \
      --arch efficientnet-lite0 --batch-size 128 --per-class 2 --input-size "$SIZE" --warmup 5 \
      --steps 20 --json >"$OUT/bench-burn-$backend.json" 2>>"$OUT/log"
    log "bench-train burn $backend exit $?"
  done
  log "bench-train torch eager"
  timeout 80 python3 bench/torch_train.py --arch efficientnet-lite0 --batch-size 128 --per-class 2 \
    --input-size "$SIZE" --steps 20 >"$OUT/bench-torch.json" 2>>"$OUT/log"
  cat "$OUT"/bench-*.json | tee -a "$OUT/log"
  ;;
torch-train)
  # The same recipe in PyTorch (scripts/gpu/torch_finetune.py), for when the burn
  # CUDA build cannot compile its kernels in time on the machine (docs/models.md).
  unpack
  [ -d "$DATA/train" ] || { log "no data: carry target/objects-train.tar.xz"; exit 1; }
  log "torch fine-tune for ${TRAIN_SECONDS}s"
  timeout $((TRAIN_SECONDS + 150)) python3 scripts/gpu/torch_finetune.py \
    --weights target/pretrained/efficientnet-lite0-57934424.pth --train "$DATA/train" --val "$DATA/val" \
    --size "$SIZE" --seconds "$TRAIN_SECONDS" --out "$OUT" 2>>"$OUT/torch.log" | tee -a "$OUT/log"
  log "torch fine-tune exit ${PIPESTATUS[0]}"
  ;;
torch-eval)
  # Embeddings of every held-out source by both Lite0 networks, for `metricann eval
  # --embeddings` (scripts/gpu/torch_embed.py); carries .dev/objects.pth.
  unpack
  timeout 300 python3 scripts/gpu/torch_embed.py --imagenet target/pretrained/efficientnet-lite0-57934424.pth \
    --objects .dev/objects.pth --eval "$DATA/eval" --val "$DATA/val" --size "$SIZE" \
    --fingerprints "${FINGERPRINTS:-{\}}" --out "$OUT/embeddings" 2>>"$OUT/torch.log" | tee -a "$OUT/log"
  log "torch-eval exit ${PIPESTATUS[0]}"
  ;;
eval)
  unpack
  unxz_to .dev/metricann.xz "$BIN" && chmod +x "$BIN"
  unxz_to .dev/imagenet-f16.bundle.xz /tmp/imagenet.bundle
  unxz_to .dev/objects-f32.bundle.xz /tmp/objects-f32.bundle
  log "calibrate (16-bit weights, threshold on val)"
  timeout 120 "$BIN" calibrate --model /tmp/objects-f32.bundle --data "$DATA/val" --half --backend cuda \
    --out "$OUT/objects.bundle" --json >"$OUT/calibrate.json" 2>>"$OUT/log"
  timeout 120 "$BIN" calibrate --model /tmp/imagenet.bundle --data "$DATA/val" --backend cuda \
    --out "$OUT/imagenet-calibrated.bundle" --json >"$OUT/calibrate-imagenet.json" 2>>"$OUT/log"
  for model in "$OUT/objects.bundle" /tmp/objects-f32.bundle /tmp/imagenet.bundle www/models/glyphs.bundle pixels; do
    name=$(basename "$model" .bundle)
    log "eval $name"
    what=(--model "$model"); [ "$model" = pixels ] && what=(--baseline pixels)
    timeout 150 "$BIN" eval "${what[@]}" --data "$DATA/eval" --per-source --shots 1,3 --support-prefix enroll- \
      --backend cuda --json 2>>"$OUT/log" |
      python3 -c "import json,sys; [print(json.dumps({'model': '$name', **json.loads(l)})) for l in sys.stdin if l.strip()]" \
      | tee -a "$OUT/eval.jsonl"
  done
  log "done"
  ;;
*)
  echo "PHASE must be data, train, bench, torch-train, torch-eval or eval" >&2
  exit 2
  ;;
esac
