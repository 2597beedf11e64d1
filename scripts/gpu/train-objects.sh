#!/usr/bin/env bash
# The GPU machine's half of training the objects model (docs/models.md).
# Runs in the repository root there. Two calls on one warm machine, because the
# data and the binary together exceed what one call may carry:
#   DATA_ONLY=1 bash scripts/gpu/train-objects.sh    carrying target/objects-data.tar.xz
#   bash scripts/gpu/train-objects.sh                carrying .dev/ (metricann.xz, imagenet.bundle.xz)
# Leaves the bundle, per-epoch metrics, the evaluation and the throughput
# benchmarks (burn cuda and PyTorch eager, same network and batch) in $OUT.
set -uo pipefail
BIN=/tmp/metricann
DATA=/tmp/objects
TRAIN_SECONDS=${TRAIN_SECONDS:-300}
SIZE=${SIZE:-160}
log() { echo "[$(date +%T)] $*" | tee -a "$OUT/log"; }

if [ -n "${DATA_ONLY:-}" ]; then
  mkdir -p "$DATA" && tar -xJf target/objects-data.tar.xz -C "$DATA" && touch /tmp/objects.complete
  ls "$DATA"; ls "$DATA/train" | wc -l
  exit 0
fi
[ -f /tmp/objects.complete ] || { log "no data: run with DATA_ONLY=1 first on the same machine"; exit 1; }
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do
  [ -d "$d" ] && export LD_LIBRARY_PATH=$d:${LD_LIBRARY_PATH:-}
done
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee -a "$OUT/log"
python3 -c "import lzma, shutil; shutil.copyfileobj(lzma.open('.dev/metricann.xz'), open('$BIN', 'wb'))" && chmod +x "$BIN"
python3 -c "import lzma, shutil; shutil.copyfileobj(lzma.open('.dev/imagenet.bundle.xz'), open('/tmp/imagenet.bundle', 'wb'))"

log "bench-train cuda"
timeout 120 "$BIN" bench-train --backend cuda --arch efficientnet-lite0 --batch-size 128 --per-class 2 \
  --input-size "$SIZE" --warmup 5 --steps 20 --json >"$OUT/bench-burn-cuda.json" 2>>"$OUT/log"
cat "$OUT/bench-burn-cuda.json" | tee -a "$OUT/log"
timeout 120 python3 bench/torch_train.py --arch efficientnet-lite0 --batch-size 128 --per-class 2 \
  --input-size "$SIZE" --steps 20 >"$OUT/bench-torch.json" 2>>"$OUT/log"
cat "$OUT/bench-torch.json" | tee -a "$OUT/log"

log "train"
mkdir -p /tmp/ckpt
timeout "$TRAIN_SECONDS" "$BIN" train --backend cuda --arch efficientnet-lite0 --init /tmp/imagenet.bundle \
  --data "$DATA/train" --val-data "$DATA/val" --input-size "$SIZE" --embedding-dim 128 \
  --batch-size 128 --per-class 2 --epochs "${EPOCHS:-40}" --lr 1e-3 --backbone-lr-scale 0.1 \
  --freeze-backbone-epochs 1 --flip --crop-min 0.35 --jpeg-prob 0.3 --patience 8 \
  --ckpt-dir /tmp/ckpt --model-out /tmp/objects.bundle --json >"$OUT/train.json" 2>>"$OUT/log"
log "train exit $?"
cp /tmp/ckpt/metrics.jsonl "$OUT/" 2>/dev/null
[ -f /tmp/objects.bundle ] || cp /tmp/ckpt/best.bundle /tmp/objects.bundle
cp /tmp/objects.bundle "$OUT/objects.bundle"

log "eval"
for source in $(ls "$DATA/eval"); do
  for model in /tmp/objects.bundle /tmp/imagenet.bundle www/models/default.bundle pixels; do
    what=(--model "$model"); [ "$model" = pixels ] && what=(--baseline pixels)
    timeout 120 "$BIN" eval "${what[@]}" --data "$DATA/eval/$source" --shots 1,3 --support-prefix enroll- \
      --backend cuda --json 2>>"$OUT/log" |
      python3 -c "import json,sys; [print(json.dumps({'source': '$source', 'model': '$(basename $model)', **json.loads(l)})) for l in sys.stdin if l.strip()]" \
      | tee -a "$OUT/eval.jsonl"
  done
done
log "done"
