#!/usr/bin/env bash
# Where burn's training step spends its time on the GPU machine, against
# PyTorch's (README, "Training throughput against PyTorch"). Carries .dev/ and
# .gl/ like on-device.sh. STAGE=1: the cold run (autotuning), the same run warm
# from cubecl's environment cache, GPU utilisation sampled throughout, and an
# nsys kernel summary when the toolkit has nsys. STAGE=2: cubecl's per-kernel
# times after tuning, and PyTorch's kernel time per step.
set -uo pipefail
STAGE=${STAGE:-1}
ARCH=(--input-size 64 --widths 32,64,128,256 --embedding-dim 128)
source scripts/gpu/setup.sh
export PATH=$PATH:/usr/local/cuda/bin:/opt/nvidia/nsight-systems/bin
log "nsys: $(command -v nsys || echo none)"

nvidia-smi --query-gpu=timestamp,utilization.gpu --format=csv,noheader -lms 250 >"$OUT/util-$STAGE.csv" &
sampler=$!
bench() { # tag, timeout, backend, batch, steps
  log "start $1"
  timeout "$2" "$BIN" bench-train --backend "$3" --batch-size "$4" "${ARCH[@]}" --warmup 5 --steps "$5" --json \
    >"$OUT/$1.json" 2>/dev/null || log "$1 exited $?"
  log "end $1: $(cat "$OUT/$1.json" 2>/dev/null)"
}

if [ "$STAGE" = 1 ]; then
  bench cuda-cold 330 cuda 256 40
  bench cuda-warm 120 cuda 256 100
  if command -v nsys >/dev/null; then
    log "start nsys"
    timeout 150 nsys profile -t cuda -o /tmp/burn --force-overwrite true \
      "$BIN" bench-train --backend cuda --batch-size 256 "${ARCH[@]}" --warmup 5 --steps 50 --json >/dev/null 2>&1
    nsys stats -r cuda_gpu_kern_sum,cuda_api_sum -f csv -o /tmp/burn-stats /tmp/burn.nsys-rep >/dev/null 2>&1
    for f in /tmp/burn-stats*.csv; do head -c 60000 "$f" >"$OUT/nsys-$(basename "$f")"; done
    log "end nsys"
  fi
else
  # Every kernel's GPU time after tuning (cubecl's profiler times each launch).
  log "start cuda profile"
  CUBECL_DEBUG_LOG=/tmp/cubecl.log CUBECL_DEBUG_OPTION=debug timeout 420 "$BIN" bench-train --backend cuda \
    --batch-size 256 "${ARCH[@]}" --warmup 5 --steps 10 --json >"$OUT/cuda-profiled.json" 2>/dev/null
  log "end cuda profile ($?): $(cat "$OUT/cuda-profiled.json") $(du -h /tmp/cubecl.log)"
  python3 scripts/gpu/kernel-profile.py /tmp/cubecl.log >"$OUT/cuda-kernels.txt" 2>&1
  grep -i -m 20 autotune /tmp/cubecl.log | cut -c 1-300 >"$OUT/autotune-sample.txt"
  log "start torch"
  python3 bench/torch_train.py --batch-size 256 --input-size 64 --widths 32,64,128,256 --steps 40 --profile \
    >"$OUT/torch-profile.json" 2>>"$OUT/log"
  log "end torch: $(head -c 300 "$OUT/torch-profile.json")"
fi
kill $sampler
