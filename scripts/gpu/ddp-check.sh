#!/usr/bin/env bash
# The GPU machine's check of data-parallel training (docs/training.md, "Several
# GPUs"): one training run through the single-device loop and the same run
# through the data-parallel path on that one GPU (`--devices all`: burn's
# collective, an NCCL all-reduce over one rank), same seed and data; then the
# data-parallel run's checkpoint resumed by the single-device loop. Compares
# the loss curves, validation metrics and images/s into $OUT/ddp-one-gpu.json.
#
# Carries .dev/metricann.xz (scripts/gpu/cuda-build.sh) and
# .devdata/ddp-glyphs.pack.xz (scripts/gpu/pack-glyphs.py of
# `metricann dataset glyphs --chars U+4E00..U+52FF --fonts <scripts/fonts.sh>`):
#   device: bash scripts/gpu/ddp-check.sh   (carry .dev .devdata)
set -uo pipefail
EPOCHS=${EPOCHS:-4}
source scripts/gpu/setup.sh

# NCCL comes with PyTorch's wheels as libnccl.so.2; cudarc opens libnccl.so.
nccl=$(python3 -c "import nvidia.nccl, os; print(os.path.join(list(nvidia.nccl.__path__)[0], 'lib'))" 2>/dev/null ||
  dirname "$(find / -name 'libnccl.so*' -print -quit 2>/dev/null)")
log "NCCL from $nccl: $(ls "$nccl" 2>&1 | tr '\n' ' ')"
mkdir -p /tmp/nccl && ln -sf "$nccl/libnccl.so.2" /tmp/nccl/libnccl.so
export LD_LIBRARY_PATH=/tmp/nccl:${LD_LIBRARY_PATH:-}

[ -d /tmp/g ] || python3 scripts/gpu/unpack-glyphs.py .devdata/ddp-glyphs.pack.xz /tmp/g 2>&1 | tail -1 | tee -a "$OUT/log"

train() { # name, extra arguments
  local name=$1
  shift
  log "train $name: $*"
  rm -rf "/tmp/ck-$name"
  timeout 190 "$BIN" train --data /tmp/g --val-split 0.05 --epochs "$EPOCHS" --batch-size 256 --per-class 4 \
    --backend cuda --input-size 64 --patience 0 --seed 1 --ckpt-dir "/tmp/ck-$name" \
    --model-out "/tmp/$name.bundle" --json "$@" >"$OUT/train-$name.json" 2>"$OUT/train-$name.log"
  log "train $name: exit $?"
  tail -3 "$OUT/train-$name.log" | cut -c1-400 | tee -a "$OUT/log"
  cp "/tmp/ck-$name/metrics.jsonl" "$OUT/metrics-$name.jsonl" 2>/dev/null
}

nvidia-smi -L | tee -a "$OUT/log"
train single
train parallel --devices all
train single-again
# The data-parallel run's epoch-2 checkpoint, alone in a new directory, resumed
# on the single-device loop to the same last epoch.
mkdir -p /tmp/ck-resumed && cp /tmp/ck-parallel/epoch-002.* /tmp/ck-resumed/ 2>/dev/null
log "resume the data-parallel epoch 2 on one device"
timeout 150 "$BIN" train --data /tmp/g --val-split 0.05 --epochs "$EPOCHS" --batch-size 256 --per-class 4 --backend cuda \
  --input-size 64 --patience 0 --seed 1 --ckpt-dir /tmp/ck-resumed --model-out /tmp/resumed.bundle \
  --resume /tmp/ck-resumed/epoch-002.bundle --json >"$OUT/train-resumed.json" 2>"$OUT/train-resumed.log"
log "resume: exit $?"
cp /tmp/ck-resumed/metrics.jsonl "$OUT/metrics-resumed.jsonl" 2>/dev/null

python3 - "$OUT" <<'EOF' | tee -a "$OUT/log"
import json, os, sys
out = sys.argv[1]
runs = {}
for name in ["single", "parallel", "single-again", "resumed"]:
    path = os.path.join(out, f"metrics-{name}.jsonl")
    if os.path.exists(path):
        runs[name] = [json.loads(line) for line in open(path)]
def steady(rows):  # a run's epochs after its first, whose time includes compiling the kernels
    speeds = [r["images_per_sec"] for r in rows if r.get("images_per_sec")][1:]
    return sum(speeds) / len(speeds) if speeds else None
summary = {name: {"epochs": [{k: r.get(k) for k in ("epoch", "train_loss", "val_map_at_r", "val_precision_at_1", "images_per_sec")} for r in rows],
                  "steady_images_per_sec": steady(rows)} for name, rows in runs.items()}
single = [summary[n]["steady_images_per_sec"] for n in ("single", "single-again") if n in summary and summary[n]["steady_images_per_sec"]]
if single and "parallel" in summary and summary["parallel"]["steady_images_per_sec"]:
    summary["parallel_over_single_images_per_sec"] = summary["parallel"]["steady_images_per_sec"] / (sum(single) / len(single))
json.dump(summary, open(os.path.join(out, "ddp-one-gpu.json"), "w"), indent=1)
print(json.dumps(summary, indent=1))
EOF
