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
case "$profile" in
  wasm|release)
    # wasm-opt runs on cargo's output, before wasm-bindgen: Debian's binaryen 108
    # rewrites wasm-bindgen's externref table on a round trip (even with no pass),
    # and the module then fails to instantiate ("Table.set(): Argument 1 is invalid").
    # The flags are the post-MVP features Rust's wasm32 target emits by default,
    # plus SIMD (.cargo/config.toml builds wasm32 with +simd128).
    opt="target/wasm32-unknown-unknown/$dir/metricann.opt.wasm"
    # -O3 as the cargo profile: -Oz on the opt-level-3 module breaks its function
    # table for wasm-bindgen ("failed to find `0` in function table").
    wasm-opt -O3 --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
      --enable-mutable-globals --enable-reference-types --enable-multivalue --enable-simd \
      "$wasm" -o "$opt"
    echo "build-pkg: wasm-opt $(stat -c %s "$wasm") → $(stat -c %s "$opt") bytes"
    wasm="$opt"
    ;;
esac
wasm-bindgen --target web --out-dir "$out" --out-name metricann "$wasm"

cp pkg-config/index.js pkg-config/index.d.ts pkg-config/node.js pkg-config/worker.js pkg-config/workerd.js pkg-config/README.md "$out/"
# The shipped models travel with the package: `MetricAnn.open({ model: 'objects' })`.
mkdir -p "$out/models"
cp www/models/*.bundle "$out/models/"
version=$(awk -F'"' '/^\[workspace.package\]/{w=1} w && /^version/{print $2; exit}' Cargo.toml)
node -e '
  const fs = require("fs");
  const [src, dst, version] = process.argv.slice(1);
  const pkg = JSON.parse(fs.readFileSync(src, "utf8"));
  pkg.version = version;
  fs.writeFileSync(dst, JSON.stringify(pkg, null, 2) + "\n");
' pkg-config/package.json "$out/package.json" "$version"
echo "build-pkg: $out/ ($profile): $(stat -c %s "$out/metricann_bg.wasm") bytes wasm, $(gzip -9c "$out/metricann_bg.wasm" | wc -c) gzipped"
