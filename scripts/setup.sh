#!/usr/bin/env bash
# Installs what is missing, idempotently, for one of two purposes:
#   scripts/setup.sh demo   what `make demo` and `make pkg` need: the wasm32 target,
#                           the pinned nightly toolchain with rust-src (the threaded
#                           build), wasm-bindgen-cli at the version Cargo.lock pins,
#                           binaryen's wasm-opt, Node.js and npm;
#   scripts/setup.sh test   (the default) all of that, plus what only the tests need:
#                           Chromium and its driver, Mesa's Vulkan drivers, ffmpeg, and
#                           the npm dependencies of tests/web and tests/edge (the
#                           edge runtimes: wrangler with workerd, Deno, Bun).
# It prints one line per thing it installs and nothing when nothing is missing. The
# installers' own output goes to a log (SETUP_LOG, default target/setup.log), printed
# only when an install fails.
set -euo pipefail
cd "$(dirname "$0")/.."

mode="${1:-test}"
case "$mode" in
  demo | test) ;;
  *) echo "usage: scripts/setup.sh [demo|test]" >&2; exit 2 ;;
esac

log="${SETUP_LOG:-target/setup.log}"
mkdir -p "$(dirname "$log")"
: >"$log"

fail() {
  echo "setup: $1 failed; its output ($log):" >&2
  cat "$log" >&2
  exit 1
}

# The Rust toolchain itself is the one thing this script does not install: rustup
# decides where it lives and which shell profile it edits, a choice for the user.
for tool in cargo rustup; do
  command -v "$tool" >/dev/null 2>&1 ||
    { echo "setup: $tool is missing; install Rust with rustup (https://rustup.rs), then run this again" >&2; exit 1; }
done

# ---- Debian packages ----
apt_pkgs=(binaryen)
command -v node >/dev/null 2>&1 || apt_pkgs+=(nodejs)
command -v npm >/dev/null 2>&1 || apt_pkgs+=(npm)
[ "$mode" = test ] && apt_pkgs+=(chromium chromium-driver mesa-vulkan-drivers ffmpeg)
need_apt=()
for pkg in "${apt_pkgs[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  for pkg in "${need_apt[@]}"; do echo "setup: installing $pkg (Debian package)"; done
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 ||
      { echo "setup: installing ${need_apt[*]} needs root or sudo" >&2; exit 1; }
    SUDO="sudo"
  fi
  {
    $SUDO apt-get update -q &&
      DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${need_apt[@]}"
  } >>"$log" 2>&1 || fail "apt-get install ${need_apt[*]}"
fi

# ---- The Rust target the library compiles to ----
target=wasm32-unknown-unknown
installed=$(rustup target list --installed 2>>"$log") || fail "rustup target list --installed"
if ! grep -qx "$target" <<<"$installed"; then
  echo "setup: installing the Rust target $target"
  rustup target add "$target" >>"$log" 2>&1 || fail "rustup target add $target"
fi

# ---- The nightly toolchain of the threaded wasm build (scripts/build-pkg.sh) ----
# Shared-memory wasm needs the standard library rebuilt with atomics (-Z build-std),
# which only nightly does; pinned, so a new nightly cannot break the package build.
nightly=$(cat scripts/nightly-toolchain)
nightly_root=$(rustup run "$nightly" rustc --print sysroot 2>/dev/null || true)
if [ -z "$nightly_root" ] || [ ! -d "$nightly_root/lib/rustlib/src/rust/library" ]; then
  echo "setup: installing the Rust toolchain $nightly with rust-src (the threaded wasm build)"
  rustup toolchain install "$nightly" --profile minimal --component rust-src >>"$log" 2>&1 ||
    fail "rustup toolchain install $nightly"
fi

# ---- wasm-bindgen-cli, at the version of the wasm-bindgen crate in Cargo.lock ----
# The CLI and the crate must agree exactly, or the generated JS does not fit the wasm.
want=$(awk '/^name = "wasm-bindgen"$/{getline; gsub(/version = |"/, ""); print; exit}' Cargo.lock)
have=$(wasm-bindgen --version 2>/dev/null | awk '{print $2}' || true)
if [ -n "$want" ] && [ "$want" != "$have" ]; then
  echo "setup: installing wasm-bindgen-cli $want"
  # The published lock file of some releases pins a crate version the registry has
  # since yanked (webpki-roots 1.0.11 for 0.2.130), and `--locked` then cannot
  # resolve; the second attempt resolves afresh. Both write only to the log.
  cargo install --locked wasm-bindgen-cli --version "$want" >>"$log" 2>&1 || {
    echo "setup: the locked install failed; resolving the dependencies afresh" >>"$log"
    cargo install wasm-bindgen-cli --version "$want" >>"$log" 2>&1
  } || fail "cargo install wasm-bindgen-cli $want"
  have=$(wasm-bindgen --version 2>/dev/null | awk '{print $2}' || true)
  [ "$have" = "$want" ] ||
    { echo "setup: wasm-bindgen $want was installed, but the one on PATH is '${have:-none}': put cargo's bin directory (~/.cargo/bin) first on PATH" >&2; exit 1; }
fi

# ---- npm dependencies of the web and edge tests ----
for dir in tests/web tests/edge; do
  if [ "$mode" = test ] && [ -f "$dir/package.json" ] && [ ! -d "$dir/node_modules" ]; then
    echo "setup: installing the npm dependencies of $dir"
    (cd "$dir" && npm ci --no-audit --no-fund) >>"$log" 2>&1 || fail "npm ci in $dir"
  fi
done
