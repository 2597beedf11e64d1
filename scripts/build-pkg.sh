#!/usr/bin/env bash
# Builds the npm package into pkg/ without wasm-pack (wasm-pack downloads
# wasm-bindgen and binaryen at run time; this machine reaches package registries only):
#   cargo build (wasm32) → wasm-bindgen --target web → wasm-opt (optimised profiles) → pkg-config/ files.
# Usage: scripts/build-pkg.sh [PROFILE]   (default: wasm, the size-optimised release build;
# web-test: the quick build the browser tests use)
set -euo pipefail
cd "$(dirname "$0")/.."
profile="${1:-wasm}"
out="${PKG_DIR:-pkg}"

cargo build -p metricann --lib --target wasm32-unknown-unknown --profile "$profile"
dir="$profile"; [ "$profile" = dev ] && dir=debug
wasm="target/wasm32-unknown-unknown/$dir/metricann.wasm"

rm -rf "$out"
mkdir -p "$out"
wasm-bindgen --target web --out-dir "$out" --out-name metricann "$wasm"

case "$profile" in
  wasm|release)
    # Rust's wasm32 target emits these post-MVP features by default.
    before=$(stat -c %s "$out/metricann_bg.wasm")
    wasm-opt -Oz --strip-debug --strip-producers \
      --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
      --enable-mutable-globals --enable-reference-types --enable-multivalue \
      "$out/metricann_bg.wasm" -o "$out/metricann_bg.opt.wasm"
    mv "$out/metricann_bg.opt.wasm" "$out/metricann_bg.wasm"
    echo "build-pkg: wasm-opt $before → $(stat -c %s "$out/metricann_bg.wasm") bytes"
    ;;
esac

cp pkg-config/index.js pkg-config/index.d.ts pkg-config/node.js pkg-config/worker.js pkg-config/README.md "$out/"
version=$(awk -F'"' '/^\[workspace.package\]/{w=1} w && /^version/{print $2; exit}' Cargo.toml)
node -e '
  const fs = require("fs");
  const [src, dst, version] = process.argv.slice(1);
  const pkg = JSON.parse(fs.readFileSync(src, "utf8"));
  pkg.version = version;
  fs.writeFileSync(dst, JSON.stringify(pkg, null, 2) + "\n");
' pkg-config/package.json "$out/package.json" "$version"
echo "build-pkg: $out/ ($profile): $(stat -c %s "$out/metricann_bg.wasm") bytes wasm, $(gzip -9c "$out/metricann_bg.wasm" | wc -c) gzipped"
