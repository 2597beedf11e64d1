#!/usr/bin/env python3
"""Summarises a cubecl debug log (CUBECL_DEBUG_OPTION=debug) into GPU time per
kernel for the steady state: only launches after the last autotune entry and the
last kernel compilation count, so tuning candidates and first launches stay out.

    python3 scripts/gpu/kernel-profile.py /tmp/cubecl.log > kernels.txt
"""
import collections
import re
import sys

UNITS = {"ns": 1e-9, "µs": 1e-6, "us": 1e-6, "ms": 1e-3, "s": 1.0}
LAUNCH = re.compile(r"^\| *([0-9.]+)(ns|µs|us|ms|s) *\| *([^|\n]+)")


def base(name):
    return re.sub(r"_[0-9a-f]{8}$", "", name.strip())


lines = open(sys.argv[1], encoding="utf-8", errors="replace").read().splitlines()
last_setup = max((i for i, l in enumerate(lines)
                  if "START_KERNEL_COMPILATION" in l or "autotune" in l.lower()), default=-1)
seconds, count = collections.Counter(), collections.Counter()
for l in lines[last_setup + 1:]:
    m = LAUNCH.match(l)
    if m:
        k = base(m.group(3))
        seconds[k] += float(m.group(1)) * UNITS[m.group(2)]
        count[k] += 1
total = sum(seconds.values())
print(f"log lines {len(lines)}, steady state from line {last_setup + 1}: "
      f"{sum(count.values())} launches, {total:.4f} s of kernel time")
print(f"{'seconds':>9} {'share':>6} {'launches':>8}  kernel")
for k, s in seconds.most_common(25):
    print(f"{s:9.4f} {100 * s / max(total, 1e-12):5.1f}% {count[k]:8d}  {k}")
