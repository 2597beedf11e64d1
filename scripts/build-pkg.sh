#!/usr/bin/env bash
# Builds the npm package into pkg/ without wasm-pack (wasm-pack downloads
# wasm-bindgen and binaryen at run time; this machine reaches package registries only):
#   cargo build (wasm32, twice: one thread and threads) → wasm-opt (optimised profiles)
#   → wasm-bindgen --target web → pkg-config/ files.
# Usage: scripts/build-pkg.sh [PROFILE]   (default: wasm, the size-optimised release build;
# web-test: the quick build the browser tests use)
set -euo pipefail
cd "$(dirname "$0")/.."
profile="${1:-wasm}"
out="${PKG_DIR:-pkg}"
dir="$profile"; [ "$profile" = dev ] && dir=debug

# optimise WASM OUT [FLAGS]: prints the module to bind: OUT, made by wasm-opt, on the
# optimised profiles; WASM itself otherwise.
# It runs on cargo's output, before wasm-bindgen: Debian's binaryen 108 rewrites
# wasm-bindgen's externref table on a round trip (even with no pass), and the
# module then fails to instantiate ("Table.set(): Argument 1 is invalid"). The
# flags are the post-MVP features Rust's wasm32 target emits by default, plus SIMD
# (.cargo/config.toml builds wasm32 with +simd128). -O3 as the cargo profile: -Oz
# on the opt-level-3 module breaks its function table for wasm-bindgen ("failed
# to find `0` in function table").
optimise() {
  local wasm="$1" opt="$2"; shift 2
  case "$profile" in
    wasm|release)
      wasm-opt -O3 --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
        --enable-mutable-globals --enable-reference-types --enable-multivalue --enable-simd "$@" \
        "$wasm" -o "$opt"
      echo "build-pkg: wasm-opt $(stat -c %s "$wasm") → $(stat -c %s "$opt") bytes" >&2
      echo "$opt"
      ;;
    *) echo "$wasm" ;;
  esac
}

# The single-threaded build: every runtime.
cargo build -p metricann --lib --target wasm32-unknown-unknown --profile "$profile"
single=target/wasm32-unknown-unknown/$dir/metricann
single=$(optimise "$single.wasm" "$single.opt.wasm")

# The threaded build (pkg/threads/), for cross-origin isolated pages: shared memory
# and atomics need the standard library rebuilt with them, which takes the nightly
# toolchain that scripts/setup.sh installs. Its own target dir keeps the two builds'
# artifacts apart. RUSTFLAGS replace .cargo/config.toml's wasm32 flags, so they are
# repeated; the memory may grow to 4 GiB as the single-threaded build's may. No
# WebGPU here: wgpu's WebGPU objects are not Send, and cubecl-wgpu needs them to be
# once atomics make wasm multi-threaded.
nightly=$(cat scripts/nightly-toolchain)
# Since rust-lang/rust#147225 (nightlies from late 2025) +atomics no longer implies a shared
# memory: the linker is asked for it, and for the thread-local storage symbols
# wasm-bindgen's thread set-up calls, as rustc used to do.
flags=(--cfg 'getrandom_backend="wasm_js"' -C target-feature=+simd128,+atomics,+bulk-memory)
for arg in --shared-memory --import-memory --max-memory=4294967296 --export=__wasm_init_tls \
  --export=__tls_size --export=__tls_align --export=__tls_base; do
  flags+=(-C "link-arg=$arg")
done
CARGO_ENCODED_RUSTFLAGS=$(IFS=$'\x1f'; echo "${flags[*]}") \
  cargo "+$nightly" build -Z build-std=panic_abort,std -p metricann --lib --no-default-features --features adapt \
  --target wasm32-unknown-unknown --profile "$profile" --target-dir target/threads
threaded=target/threads/wasm32-unknown-unknown/$dir/metricann
threaded=$(optimise "$threaded.wasm" "$threaded.opt.wasm" --enable-threads)

rm -rf "$out"
mkdir -p "$out/threads"
wasm-bindgen --target web --out-dir "$out" --out-name metricann "$single"
wasm-bindgen --target web --out-dir "$out/threads" --out-name metricann "$threaded"

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
for w in "$out/metricann_bg.wasm" "$out/threads/metricann_bg.wasm"; do
  echo "build-pkg: $w ($profile): $(stat -c %s "$w") bytes, $(gzip -9c "$w" | wc -c) gzipped"
done
