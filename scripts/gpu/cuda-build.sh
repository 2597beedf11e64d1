#!/usr/bin/env bash
# Builds the trainer with the CUDA backend on an offline Debian 12 machine and
# packs it for the GPU machine (.dev/metricann.xz, carried by scripts/gpu/on-device.sh).
#
# cubecl-cuda 0.11 compiles kernels through LLVM and its build script downloads a
# prebuilt LLVM ("tracel-llvm") from GitHub. With no network, Debian's LLVM 22
# stands in: the build script finds an "installed" bundle at the path it expects.
set -euo pipefail
cd "$(dirname "$0")/../.."
apt-get install -y llvm-22-dev libpolly-22-dev libz3-dev libzstd-dev libxml2-dev
bundle=~/.local/share/tracel/tracel-llvm-23.1.0-4
[ -e "$bundle" ] || { mkdir -p "$(dirname "$bundle")"; ln -s /usr/lib/llvm-22 "$bundle"; }
touch /usr/lib/llvm-22/.tracel-llvm-installed
# llvm-config names z3 as "libz3"; the linker then looks for liblibz3.
ln -sf /usr/lib/x86_64-linux-gnu/libz3.so /usr/lib/llvm-22/lib/liblibz3.so
CUDARC_CUDA_VERSION=13000 cargo build --release -p metricann-trainer --features cuda --target-dir target/cuda
mkdir -p .dev
strip -o /tmp/metricann-cuda target/cuda/release/metricann
xz -T0 -9e -c /tmp/metricann-cuda >.dev/metricann.xz
ls -la .dev/metricann.xz
