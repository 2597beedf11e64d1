#!/usr/bin/env bash
# Few-shot quality on characters never seen in training (GB2312 level-2): the
# trained bundle, the same architecture untrained, and raw pixels, each through
# the same gallery. Protocols: the full gallery with 1, 3 and 5 shots (top-1,
# top-5, MRR, MAP@R) and 1000 Prototypical-Networks episodes, 5- and 20-way,
# 1- and 5-shot. Writes one JSON object per (model, protocol) to OUT.
#
#   scripts/eval-default.sh www/models/glyphs.bundle data/gb2312-2 docs/eval.jsonl
#   BACKEND=cuda BIN=/tmp/metricann scripts/eval-default.sh ...   (embedding on a GPU)
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=$1 DATA=$2 OUT=$3
BIN=${BIN:-target/release/metricann}
WORK=${WORK:-target/eval}
BACKEND=${BACKEND:-ndarray}
mkdir -p "$WORK" "$(dirname "$OUT")"
: >"$OUT"

# The untrained twin: same architecture and input, fresh weights (--epochs 0).
"$BIN" train --data tests/fixtures/glyphs/train --epochs 0 --seed 42 --backend ndarray \
  --input-size 64 --widths 32,64,128,256 --embedding-dim 128 \
  --ckpt-dir "$WORK/untrained-ckpt" --model-out "$WORK/untrained.bundle" --json >/dev/null

"$BIN" extract --model "$MODEL" --data "$DATA" --out "$WORK/trained" --backend "$BACKEND" --batch-size 256 --json
"$BIN" extract --model "$WORK/untrained.bundle" --data "$DATA" --out "$WORK/untrained" --backend "$BACKEND" --batch-size 256 --json

run() { # name, source args..., then protocol args
  local name=$1; shift
  "$BIN" eval "$@" --seed 0 --json | python3 -c "import json,sys; r=json.load(sys.stdin); r['model']='$name'; print(json.dumps(r))" >>"$OUT"
  tail -n 1 "$OUT"
}
for protocol in "--shots 1 --ways 20" "--shots 1 --ways 5" "--shots 5 --ways 20" "--shots 5 --ways 5" "--shots 3"; do
  # shellcheck disable=SC2086
  run trained --embeddings "$WORK/trained" $protocol --episodes 1000
  # shellcheck disable=SC2086
  run untrained --embeddings "$WORK/untrained" $protocol --episodes 1000
  # shellcheck disable=SC2086
  run pixels --baseline pixels --data "$DATA" $protocol --episodes 1000
done
