#!/usr/bin/env bash
# Installs what the tests need, idempotently: Debian packages, the wasm target,
# wasm-bindgen-cli at the version Cargo.lock pins, and npm dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
for pkg in chromium chromium-driver mesa-vulkan-drivers binaryen ffmpeg; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${need_apt[@]}"
fi

rustup target list --installed | grep -q wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown

if [ -d pkg-config ]; then
  want=$(awk '/^name = "wasm-bindgen"$/{getline; gsub(/version = |"/, ""); print; exit}' Cargo.lock)
  have=$(wasm-bindgen --version 2>/dev/null | awk '{print $2}' || true)
  if [ -n "$want" ] && [ "$want" != "$have" ]; then
    echo "setup: installing wasm-bindgen-cli $want"
    # --locked first; its lock file can pin a crate version the registry no longer
    # serves (webpki-roots 1.0.11 for 0.2.130), then resolve afresh.
    cargo install --locked wasm-bindgen-cli --version "$want" ||
      cargo install wasm-bindgen-cli --version "$want"
  fi
fi

if [ -f tests/web/package.json ] && [ ! -d tests/web/node_modules ]; then
  (cd tests/web && npm ci --no-audit --no-fund)
fi
echo "setup: done"
