#!/usr/bin/env bash
# `make demo`'s set-up on a machine without the wasm32 target: in a private copy of
# RUSTUP_HOME whose toolchain lacks the target, `scripts/setup.sh demo` must install
# it and print exactly one line, then print nothing when run again; and with
# everything present (as after `make setup`), `scripts/setup.sh test` prints nothing.
# The copy hard-links the toolchain's files (seconds, no disk), and makes real copies
# of the metadata files rustup rewrites, so the installed toolchain is never touched.
set -euo pipefail
cd "$(dirname "$0")/../.."

skip() { echo "test-setup: skipped: $1"; exit 0; }
pass() { echo "test-setup: ok: $1"; }
die() { echo "test-setup: FAILED: $1" >&2; exit 1; }

command -v rustup >/dev/null 2>&1 || skip "no rustup on PATH"
target=wasm32-unknown-unknown
sysroot=$(rustc --print sysroot)
toolchain=$(basename "$sysroot")
rustup_home=$(dirname "$(dirname "$sysroot")")
[ -d "$rustup_home/toolchains/$toolchain" ] || skip "the toolchain at $sysroot is not managed by rustup"
dist="${RUSTUP_DIST_SERVER:-https://static.rust-lang.org}"
curl -sfI --max-time 15 "$dist/dist/channel-rust-stable.toml.sha256" >/dev/null ||
  skip "the rustup dist server ($dist) is unreachable, so the target cannot be installed"

mkdir -p target
work=$(mktemp -d target/test-setup.XXXXXX)
trap 'rm -rf "$work"' EXIT
home="$work/rustup"
mkdir -p "$home/toolchains"
cp -al "$sysroot" "$home/toolchains/$toolchain" 2>/dev/null ||
  skip "cannot hard-link $sysroot into target/ (another file system?)"
for f in "$home/toolchains/$toolchain"/lib/rustlib/*; do
  [ -f "$f" ] && cp --remove-destination "$sysroot/lib/rustlib/$(basename "$f")" "$f"
done
# The threaded build's nightly, when installed, comes along, so the wasm target is
# the only thing missing.
nightly="$(cat scripts/nightly-toolchain)-$(rustc -vV | awk '/^host:/{print $2}')"
[ -d "$rustup_home/toolchains/$nightly" ] && cp -al "$rustup_home/toolchains/$nightly" "$home/toolchains/$nightly"
printf 'version = "12"\ndefault_toolchain = "%s"\nprofile = "minimal"\n' "$toolchain" >"$home/settings.toml"

export RUSTUP_HOME="$home" RUSTUP_TOOLCHAIN="$toolchain" SETUP_LOG="$work/setup.log"
if rustup target list --installed | grep -qx "$target"; then
  rustup target remove "$target" >/dev/null 2>&1 || die "could not remove $target from the copy"
fi
rustup target list --installed | grep -qx "$target" && die "the copy still has $target"

# A failed install must say so and show the installer's output, which a successful
# run keeps to the log.
out=$(RUSTUP_DIST_SERVER=http://127.0.0.1:9 RUSTUP_MAX_RETRIES=0 scripts/setup.sh demo 2>&1) &&
  die "the set-up succeeded with no dist server to download from: $out"
grep -q "^setup: rustup target add $target failed; its output" <<<"$out" ||
  die "a failed install printed '$out', without the log"
pass "a failed install exits non-zero and prints the installer's log"

out=$(scripts/setup.sh demo 2>&1) || die "scripts/setup.sh demo failed: $out"
want="setup: installing the Rust target $target"
[ "$out" = "$want" ] || die "the first run printed '$out', not '$want'"
rustup target list --installed | grep -qx "$target" || die "$target is still missing after the set-up"
[ -d "$home/toolchains/$toolchain/lib/rustlib/$target/lib" ] || die "$target's library is not in the copy"
pass "a missing wasm target is installed, with one line"

out=$(scripts/setup.sh demo 2>&1) || die "the second run failed: $out"
[ -z "$out" ] || die "the second run printed '$out', not nothing"
pass "a second run prints nothing"

unset RUSTUP_HOME RUSTUP_TOOLCHAIN
# The installers stand in for themselves here (stubs first on PATH): what is checked is
# what the set-up prints around them, not the installs, which the first part did.
stubs="$work/stubs"
mkdir -p "$stubs"
want_wb=$(awk '/^name = "wasm-bindgen"$/{getline; gsub(/version = |"/, ""); print; exit}' Cargo.lock)
printf '#!/bin/sh\necho "wasm-bindgen 0.0.0"\n' >"$stubs/wasm-bindgen"
cat >"$stubs/cargo" <<STUB
#!/bin/sh
case "\$*" in
  *--locked*) echo "error: failed to select a version for the requirement" >&2; exit 101 ;;
  install*) echo "  Installing wasm-bindgen-cli" >&2
            printf '#!/bin/sh\\necho "wasm-bindgen $want_wb"\\n' >"$stubs/wasm-bindgen"; exit 0 ;;
esac
exec "$(command -v cargo)" "\$@"
STUB
chmod +x "$stubs"/*
out=$(PATH="$stubs:$PATH" scripts/setup.sh demo 2>&1) || die "the stubbed wasm-bindgen install failed: $out"
[ "$out" = "setup: installing wasm-bindgen-cli $want_wb" ] ||
  die "a locked install that falls back printed '$out', not one line"
pass "a locked wasm-bindgen-cli install that cannot resolve falls back without printing its error"

out=$(scripts/setup.sh test 2>&1) || die "scripts/setup.sh test failed: $out"
[ -z "$out" ] || die "scripts/setup.sh test, with everything installed, printed '$out'"
pass "the test set-up prints nothing when nothing is missing"
