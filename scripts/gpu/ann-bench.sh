#!/usr/bin/env bash
# The native index benchmarks on the lent machine's CPU cores (the 2-core
# development machine cannot build million-vector graphs in the time one command
# may take). Both sides build on the same $THREADS threads and query on one.
#
#   SIZES="100000 1000000" bash scripts/gpu/ann-bench.sh            bench/ann_vs_hnswlib.py, clustered data
#   GLYPHS=1 bash scripts/gpu/ann-bench.sh                          the same on real glyph embeddings
#   BASE=.devdata/x.npy MS="16 32" THREAD_LIST="1 2 16" bash scripts/gpu/ann-bench.sh
#                                                                   embeddings made elsewhere, every M × threads
#   INCREMENTAL="900000 100000" bash scripts/gpu/ann-bench.sh       bench/incremental.py
#   INCREMENTAL="900000 100000" INCREMENTAL_ARGS="--skip hnswlib --keep-base" bash scripts/gpu/ann-bench.sh
#   NO_HNSWLIB=1 SIZES=1000000 ANN_ARGS="--quantize none,int8 --skip hnswlib" bash scripts/gpu/ann-bench.sh
#
# Carried (none of it is in git): .dev/metricann.xz (the release trainer built
# here, `xz -T0 -6`), .whl/ (hnswlib 0.8.0 built for the machine's Python 3.12
# with -mavx2 -mfma and HNSWLIB_NO_NATIVE=1, or its sdist, compiled there the
# same way, so that both sides run AVX2+FMA distance kernels). GLYPHS=1 also needs .devdata/l2-64.pack.xz
# (scripts/gpu/pack-glyphs.py of the GB2312 level-2 rendering). Results
# (JSON + PNG) go to $OUT.
set -uo pipefail
OUT=${OUT:-bench/results}
SIZES=${SIZES:-}
THREADS=${THREADS:-$(nproc)}
mkdir -p "$OUT"
BIN=/tmp/metricann
log() { echo "[$(date +%T)] $*" | tee -a "$OUT/log"; }
[ -x "$BIN" ] || { python3 -c "import lzma, shutil; shutil.copyfileobj(lzma.open('.dev/metricann.xz'), open('$BIN', 'wb'))" && chmod +x "$BIN"; }
# hnswlib: a carried wheel, or else its sdist compiled here (the machine has
# g++, pybind11 and numpy), with the same AVX2+FMA flags.
if [ -n "${NO_HNSWLIB:-}" ]; then
  true  # only our side runs (--skip hnswlib)
elif ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
else
  HNSWLIB_NO_NATIVE=1 CFLAGS="-mavx2 -mfma" python3 -m pip install -q --no-index --no-deps --no-build-isolation \
    --no-cache-dir --target /tmp/site .whl/hnswlib-*.tar.gz
fi && export PYTHONPATH=/tmp/site || { log "hnswlib did not install"; exit 1; }
log "$(grep -m1 'model name' /proc/cpuinfo), $(nproc) cores; building on $THREADS"

# Results stay in target/ann-results between the calls of a warm machine, and
# start from the committed ones, so that ANN_ARGS="--skip hnswlib" and then
# "--skip metricann" can run the sides in separate 10-minute commands (a side
# measured in an earlier call travels as its JSON in bench/results/).
mkdir -p target/ann-results
cp -n bench/results/ann_vs_hnswlib-*.json target/ann-results/ 2>/dev/null
for n in $SIZES; do
  log "n = $n"
  touch /tmp/ann-stamp
  PYTHONUNBUFFERED=1 python3 bench/ann_vs_hnswlib.py --n "$n" --bin "$BIN" --out target/ann-results \
    --threads "$THREADS" ${ANN_ARGS:-} 2>&1 | tee -a "$OUT/log"
  find target/ann-results -newer /tmp/ann-stamp -type f | xargs -r cp -t "$OUT"
done

if [ -n "${GLYPHS:-}" ]; then
  # The first $GLYPH_CLASSES characters (every font of each), embedded by the
  # default model on the CPU (ndarray), one process per core on a shard of
  # the classes: this machine's wgpu finds no Vulkan adapter, and the binary
  # carries no CUDA backend.
  log "unpacking glyphs"
  python3 scripts/gpu/unpack-glyphs.py .devdata/l2-64.pack.xz /tmp/l2 2>&1 | tail -1 | tee -a "$OUT/log"
  ls /tmp/l2 | sort | head -n "${GLYPH_CLASSES:-900}" >/tmp/classes
  shards=$(nproc)
  i=0
  while read -r c; do mkdir -p /tmp/shard$((i % shards)) && mv "/tmp/l2/$c" /tmp/shard$((i % shards))/; i=$((i + 1)); done </tmp/classes
  log "embedding $(find /tmp/shard* -type f | wc -l) glyph images of $i classes on $shards cores"
  for s in $(seq 0 $((shards - 1))); do
    "$BIN" extract --model www/models/glyphs.bundle --data /tmp/shard$s --out /tmp/emb$s --backend ndarray \
      --batch-size 64 --json >/tmp/emb$s.json 2>/tmp/emb$s.err &
  done
  wait
  python3 - "$shards" "$OUT" <<'PY' || { log "embedding failed: $(tail -3 /tmp/emb0.err)"; exit 1; }
import json, sys
import numpy as np
shards, out = int(sys.argv[1]), sys.argv[2]
parts = [np.load(f"/tmp/emb{s}/vectors.npy") for s in range(shards)]
x = np.concatenate(parts)
np.save("/tmp/glyphs-l2-default.npy", x)
reports = [json.loads(open(f"/tmp/emb{s}.json").read().strip().splitlines()[-1]) for s in range(shards)]
json.dump({"vectors": list(x.shape), "shards": reports}, open(f"{out}/glyphs-l2-default-extract.json", "w"), indent=1)
print(f"glyph embeddings: {x.shape}")
PY
  log "embeddings: $(python3 -c 'import numpy; print(numpy.load("/tmp/glyphs-l2-default.npy").shape)')"
  # The file name names the results: ann_vs_hnswlib-file-glyphs-l2-default-...
  PYTHONUNBUFFERED=1 python3 bench/ann_vs_hnswlib.py --base /tmp/glyphs-l2-default.npy --nq "${GLYPH_NQ:-1000}" --bin "$BIN" \
    --out "$OUT" --threads "$THREADS" ${ANN_ARGS:-} 2>&1 | tee -a "$OUT/log"
fi

if [ -n "${BASE:-}" ]; then
  # The file name names the results: ann_vs_hnswlib-file-<stem>-...-M<m>-...-t<threads>.
  for m in ${MS:-16}; do
    for t in ${THREAD_LIST:-$THREADS}; do
      log "$BASE: M $m, $t threads"
      PYTHONUNBUFFERED=1 python3 bench/ann_vs_hnswlib.py --base "$BASE" --nq "${BASE_NQ:-1000}" --m "$m" --bin "$BIN" \
        --out "$OUT" --threads "$t" ${ANN_ARGS:-} 2>&1 | tee -a "$OUT/log"
    done
  done
fi

if [ -n "${INCREMENTAL:-}" ]; then
  read -r base add <<<"$INCREMENTAL"
  log "incremental: $add one by one into $base"
  # Results and the saved base gallery stay in target/ between the calls of one
  # warm machine, so INCREMENTAL_ARGS="--skip hnswlib --keep-base" and then
  # "--skip metricann" can run the sides in separate 10-minute commands.
  mkdir -p target/incremental-results
  PYTHONUNBUFFERED=1 python3 bench/incremental.py --base-n "$base" --add-n "$add" --bin "$BIN" \
    --out target/incremental-results --threads "$THREADS" ${INCREMENTAL_ARGS:-} 2>&1 | tee -a "$OUT/log"
  # $OUT takes no '+' in a file name.
  for f in target/incremental-results/*.json; do cp "$f" "$OUT/$(basename "$f" | tr + _)"; done
fi
log "done"
