#!/usr/bin/env bash
# The native ANN benchmark (bench/ann_vs_hnswlib.py) on the lent machine's CPU
# cores: the 2-core development machine cannot build a million-vector graph in
# the time one command may take. No GPU is used; both sides build on the same
# $THREADS threads and query on one.
#
# Carried (none of it is in git): .dev/metricann.xz (the release trainer built
# here, `xz -T0 -6`), .whl/ (hnswlib 0.8.0 built for the machine's Python 3.12
# with -mavx2 -mfma and HNSWLIB_NO_NATIVE=1, so that both sides run AVX2+FMA
# distance kernels). Results (JSON + PNG per size) go to $OUT.
#
#   SIZES="100000 1000000" THREADS=16 bash scripts/gpu/ann-bench.sh
set -uo pipefail
OUT=${OUT:-bench/results}
SIZES=${SIZES:-100000 1000000}
THREADS=${THREADS:-$(nproc)}
BIN=/tmp/metricann
log() { echo "[$(date +%T)] $*" | tee -a "$OUT/log"; }

mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  && export PYTHONPATH=/tmp/site || { log "hnswlib wheel did not install"; exit 1; }
[ -x "$BIN" ] || { python3 -c "import lzma, shutil; shutil.copyfileobj(lzma.open('.dev/metricann.xz'), open('$BIN', 'wb'))" && chmod +x "$BIN"; }
log "$(grep -m1 'model name' /proc/cpuinfo), $(nproc) cores; building on $THREADS"
for n in $SIZES; do
  log "n = $n"
  PYTHONUNBUFFERED=1 python3 bench/ann_vs_hnswlib.py --n "$n" --bin "$BIN" --out "$OUT" \
    --threads "$THREADS" ${ANN_ARGS:-} 2>&1 | tee -a "$OUT/log"
done
log "done"
