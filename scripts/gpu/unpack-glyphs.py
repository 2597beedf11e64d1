#!/usr/bin/env python3
"""Unpacks what pack-glyphs.py packed into an ImageFolder of PNGs (needs Pillow).

usage: unpack-glyphs.py IN.pack.xz OUT_DIR
"""
import lzma
import multiprocessing
import os
import struct
import sys

from PIL import Image


def write(job):
    path, width, height, pixels = job
    Image.frombytes("L", (width, height), pixels).save(path, compress_level=1)


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    with lzma.open(sys.argv[1], "rb") as f:
        magic, width, height, count = struct.unpack("<4sIII", f.read(16))
        if magic != b"GLYP":
            raise SystemExit(f"{sys.argv[1]}: not a glyph pack")
        (n,) = struct.unpack("<I", f.read(4))
        names = f.read(n).decode().split("\n")
        data = f.read()
    if len(names) != count or len(data) != count * width * height:
        raise SystemExit(f"{sys.argv[1]}: truncated pack")
    out = sys.argv[2]
    for cls in {name.split("/")[0] for name in names}:
        os.makedirs(os.path.join(out, cls), exist_ok=True)
    step = width * height
    jobs = ((os.path.join(out, name), width, height, data[i * step : (i + 1) * step]) for i, name in enumerate(names))
    with multiprocessing.Pool() as pool:
        for _ in pool.imap_unordered(write, jobs, chunksize=512):
            pass
    print(f"{out}: {count} images of {width}x{height}")


if __name__ == "__main__":
    main()
