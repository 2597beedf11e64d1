#!/usr/bin/env python3
"""Packs a 64×64 grey glyph ImageFolder into one small file for the GPU machine.

The device tool carries at most 64 MiB, and level-1 as PNGs is 140 MB. Raw pixels
quantised to 16 grey levels and compressed together with xz come to about a
fifth of that: the anti-aliasing keeps its shape and the camera-like
augmentation adds far more noise than the quantisation removes.

usage: pack-glyphs.py IMAGE_FOLDER OUT.pack.xz
unpack with unpack-glyphs.py (on the GPU machine, where Pillow is installed).
"""
import lzma
import multiprocessing
import os
import struct
import sys
import zlib


def decode_grey_png(path):
    """The pixels of an 8-bit greyscale, non-interlaced PNG (what `dataset glyphs` writes)."""
    data = open(path, "rb").read()
    pos, idat, width, height = 8, b"", 0, 0
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + n]
        pos += 12 + n
        if kind == b"IHDR":
            width, height = struct.unpack(">II", body[:8])
            if body[8] != 8 or body[9] != 0 or body[12] != 0:
                raise SystemExit(f"{path}: not an 8-bit grey non-interlaced PNG")
        elif kind == b"IDAT":
            idat += body
    raw = zlib.decompress(idat)
    out, prev = bytearray(), bytearray(width)
    for y in range(height):
        kind = raw[y * (width + 1)]
        line = bytearray(raw[y * (width + 1) + 1 : (y + 1) * (width + 1)])
        for x in range(width):
            a = line[x - 1] if x else 0
            b = prev[x]
            c = prev[x - 1] if x else 0
            if kind == 1:
                line[x] = (line[x] + a) & 255
            elif kind == 2:
                line[x] = (line[x] + b) & 255
            elif kind == 3:
                line[x] = (line[x] + ((a + b) >> 1)) & 255
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        out += line
        prev = line
    return width, height, bytes((v >> 4) * 17 for v in out)


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    root, out = sys.argv[1], sys.argv[2]
    items = sorted(
        (cls, name)
        for cls in os.listdir(root)
        if os.path.isdir(os.path.join(root, cls))
        for name in os.listdir(os.path.join(root, cls))
        if name.endswith(".png")
    )
    with multiprocessing.Pool() as pool:
        decoded = pool.map(decode_grey_png, [os.path.join(root, c, n) for c, n in items], chunksize=256)
    sizes = {(w, h) for w, h, _ in decoded}
    if len(sizes) != 1:
        raise SystemExit(f"images of several sizes: {sizes}")
    (width, height), = sizes
    index = "\n".join(f"{c}/{n}" for c, n in items).encode()
    with lzma.open(out, "wb", preset=9 | lzma.PRESET_EXTREME) as f:
        f.write(struct.pack("<4sIII", b"GLYP", width, height, len(items)))
        f.write(struct.pack("<I", len(index)) + index)
        for _, _, pixels in decoded:
            f.write(pixels)
    print(f"{out}: {len(items)} images of {width}x{height}, {os.path.getsize(out) / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
