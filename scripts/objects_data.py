#!/usr/bin/env python3
"""Builds the objects data set (fine-tuning and our own few-shot evaluation) from
registry packages that scripts/objects-data.sh has unpacked into SRC.

    OUT/train/<class>/<image>           ImageFolder, classes of every source
    OUT/val/<class>/<image>             held-out classes (~10 % of every source)
    OUT/eval/<source>/<class>/enroll-N  3 clean examples of a held-out class
    OUT/eval/<source>/<class>/query-N   4 camera-like captures of it
    OUT/SOURCES.md                      packages, versions, licenses, counts

Class names are prefixed by their source (emoji-, clipart-, stamp-, photo-), so
train and val of every source share one ImageFolder. A class is in exactly one of
train, val and eval; photos are split by source photo, so regions of one photo
never straddle two splits. Every image is 160x160 RGB: drawings flattened on
white (PNG), photos JPEG q90, queries JPEG q30-60. Every random choice comes from
a generator seeded by (seed, what it is for), so a rebuild writes the same bytes.
"""
import argparse
import glob
import hashlib
import io
import json
import os
import random
import re
import shutil
import sys
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from PIL import Image, ImageFilter
from tqdm import tqdm

Image.MAX_IMAGE_PIXELS = None  # load_drawing skips huge posters itself, before decoding

SIZE = 160
DRAWING_Q = 90  # JPEG quality of drawings and emoji (--drawing-quality), as photos
FILL = 0.85  # a drawing's longer side, as a fraction of the frame (as glyphs.rs)
PRINT = 320  # the resolution a query is rendered from before the camera sees it

# The design held out of train and val: eval queries are drawn in it.
EMOJI_EVAL_DESIGN = "emojione"
EMOJI_TRAIN_DESIGNS = ["google", "twitter", "openmoji", "fluent-flat", "fluent"]
EMOJI_ENROLL_DESIGNS = ["google", "twitter", "openmoji"]


def rng_for(*parts):
    h = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return random.Random(int.from_bytes(h[:8], "little"))


def order_key(seed, source, key):
    return hashlib.sha256(f"{seed}/{source}/{key}".encode()).hexdigest()


def split_classes(seed, source, keys, n_eval, val_frac, n_train_max):
    """Deterministic split by class: eval first, then val (val_frac of the classes kept
    for train and val), then at most n_train_max to train."""
    keys = sorted(keys, key=lambda k: order_key(seed, source, k))
    ev, rest = keys[:n_eval], keys[n_eval:]
    n_val = max(1, round(min(len(rest), n_train_max / (1 - val_frac)) * val_frac))
    va, tr = rest[:n_val], rest[n_val:]
    return tr[:n_train_max], va, ev


# ---------------------------------------------------------------- drawing helpers


def flatten(im, bg=(255, 255, 255)):
    """Any mode to RGB over a flat background."""
    if "transparency" in im.info or im.mode in ("LA", "PA", "La", "RGBa"):
        im = im.convert("RGBA")
    if im.mode == "RGBA":
        base = Image.new("RGBA", im.size, bg + (255,))
        return Image.alpha_composite(base, im).convert("RGB")
    return im.convert("RGB")


def trim(rgb):
    """Crops to the bounding box of what is not (near) white."""
    a = np.asarray(rgb.convert("L"))
    ys, xs = np.nonzero(a < 245)
    if len(xs) == 0:
        return None
    return rgb.crop((xs.min(), ys.min(), xs.max() + 1, ys.max() + 1))


def fit(drawing, size, fill=FILL, scale=1.0, dx=0.0, dy=0.0, angle=0.0):
    """A trimmed drawing centred (then shifted by dx, dy of the free margin) on white."""
    w, h = drawing.size
    s = fill * scale * size / max(w, h)
    im = drawing.resize((max(1, round(w * s)), max(1, round(h * s))), Image.LANCZOS)
    if angle:
        im = im.rotate(angle, Image.BICUBIC, expand=True, fillcolor=(255, 255, 255))
    canvas = Image.new("RGB", (size, size), (255, 255, 255))
    fx, fy = max(0, size - im.width), max(0, size - im.height)
    canvas.paste(im, (round(fx / 2 + dx * fx / 2), round(fy / 2 + dy * fy / 2)))
    return canvas


def drawing_view(drawing, rng):
    """A second real example of a drawing: another size, place and slant on the page."""
    return fit(drawing, SIZE, scale=rng.uniform(0.7, 1.0), dx=rng.uniform(-1, 1), dy=rng.uniform(-1, 1),
               angle=rng.uniform(-12, 12))


# ---------------------------------------------------------------- camera captures


def homography(src, dst):
    """Coefficients for PIL's PERSPECTIVE transform mapping dst points to src points."""
    a, b = [], []
    for (x, y), (u, v) in zip(dst, src):
        a.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        a.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        b += [u, v]
    return np.linalg.solve(np.array(a, float), np.array(b, float)).tolist()


BACKGROUNDS = [(200, 190, 170), (120, 95, 70), (60, 60, 65), (225, 225, 220), (150, 160, 170), (90, 110, 80)]


def capture(print_img, rng):
    """A phone pointed at a printed picture: tilted, rotated, partial and off-centre,
    darker or brighter, colour cast, blurred, noisy; returns (RGB image, JPEG quality)."""
    big = 2 * SIZE
    p = print_img.size[0]
    zoom = rng.uniform(0.8, 1.3)  # > 1: the print overflows the frame (partial)
    half = big / 2 * zoom
    cx = big / 2 + rng.uniform(-0.22, 0.22) * big
    cy = big / 2 + rng.uniform(-0.22, 0.22) * big
    th = np.radians(rng.uniform(-25, 25))
    c, s = np.cos(th), np.sin(th)
    dst = []
    for ux, uy in [(-1, -1), (1, -1), (1, 1), (-1, 1)]:
        x, y = ux * half, uy * half
        x, y = x * c - y * s, x * s + y * c
        dst.append((cx + x + rng.uniform(-0.12, 0.12) * half, cy + y + rng.uniform(-0.12, 0.12) * half))
    src = [(0, 0), (p, 0), (p, p), (0, p)]
    bg = tuple(min(255, max(0, v + rng.randint(-20, 20))) for v in rng.choice(BACKGROUNDS))
    im = print_img.transform((big, big), Image.PERSPECTIVE, homography(src, dst), Image.BICUBIC, fillcolor=bg)
    im = im.resize((SIZE, SIZE), Image.LANCZOS)
    a = np.asarray(im, np.float32)
    gain = rng.uniform(0.45, 0.8) if rng.random() < 0.5 else rng.uniform(1.15, 1.45)
    ramp = np.linspace(-1, 1, SIZE, dtype=np.float32)
    gx, gy = rng.uniform(-0.25, 0.25), rng.uniform(-0.25, 0.25)
    light = gain * (1 + gx * ramp[None, :] + gy * ramp[:, None])
    cast = np.array([rng.uniform(0.82, 1.18) for _ in range(3)], np.float32)
    mean = a.mean()
    a = (a - mean) * rng.uniform(0.75, 1.05) + mean  # contrast
    a = a * light[:, :, None] * cast[None, None, :]
    im = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))
    im = im.filter(ImageFilter.GaussianBlur(rng.uniform(0.4, 1.6)))
    noise = np.random.default_rng(rng.getrandbits(32)).normal(0, rng.uniform(2, 9), (SIZE, SIZE, 3))
    im = Image.fromarray(np.clip(np.asarray(im, np.float32) + noise, 0, 255).astype(np.uint8))
    return im, rng.randint(30, 60)


# ---------------------------------------------------------------- writing


def save(im, path, quality=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if path.endswith(".png"):
        im.save(path, optimize=True)
    else:
        im.save(path, quality=quality, optimize=True)


def write_drawing_class(job):
    """job: (source, split, cls, [(name, loader_args)], seed, opts). Renders one class."""
    kind, args = job
    return KINDS[kind](*args)


def class_dir(out, split, source, cls):
    if split == "eval":
        return os.path.join(out, "eval", source, cls)
    return os.path.join(out, split, f"{source}-{cls}")


# ---------------------------------------------------------------- emoji


def norm_hex(h):
    return "-".join(p for p in h.upper().split("-") if p != "FE0F")


def slug(s):
    return re.sub(r"[^a-z0-9]+", "-", s.lower().replace("’", "").replace("'", "")).strip("-")


def iconify_svg(icons, name, size):
    d = icons["icons"]
    flip = False
    if name not in d and name in icons.get("aliases", {}):
        al = icons["aliases"][name]
        flip = al.get("hFlip", False)
        name = al["parent"]
    ic = d[name]
    w, h = ic.get("width", icons.get("width", 16)), ic.get("height", icons.get("height", 16))
    body = ic["body"]
    if flip:
        body = f'<g transform="translate({w} 0) scale(-1 1)">{body}</g>'
    return (f'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
            f'width="{size}" height="{size}" viewBox="0 0 {w} {h}">{body}</svg>')


class EmojiSource:
    def __init__(self, src):
        self.src = src
        npm = os.path.join(src, "npmx")
        self.raster = {}
        for design in ["google", "twitter"]:
            base = os.path.join(npm, design, "package")
            for e in json.load(open(os.path.join(base, "emoji.json"))):
                if e["category"] == "Component" or not e.get(f"has_img_{design}"):
                    continue
                self.raster.setdefault(norm_hex(e["unified"]), {})[design] = (
                    os.path.join(base, "img", design, "64", e["image"]))
        self.names = {}
        om = os.path.join(npm, "openmoji", "package")
        for e in json.load(open(os.path.join(om, "data", "openmoji.json"))):
            if e["skintone"] or e["group"] in ("extras-openmoji", "extras-unicode", "component"):
                continue
            k = norm_hex(e["hexcode"])
            self.names.setdefault(slug(e["annotation"]), k)
            p = os.path.join(om, "color", "svg", e["hexcode"] + ".svg")
            if os.path.exists(p):
                self.raster.setdefault(k, {})["openmoji"] = p
        self.iconify = {}
        flat_chars = json.load(open(os.path.join(npm, "fluent-emoji-flat", "package", "chars.json")))
        by_name = {}
        for ch, name in flat_chars.items():
            by_name.setdefault(name, norm_hex(ch))
        for design, pkg in [("fluent-flat", "fluent-emoji-flat"), ("fluent", "fluent-emoji"), ("emojione", "emojione")]:
            icons = json.load(open(os.path.join(npm, pkg, "package", "icons.json")))
            names = set(icons["icons"]) | set(icons.get("aliases", {}))
            for name in names:
                k = by_name.get(name) if design.startswith("fluent") else self.names.get(name)
                if k and k in self.raster:
                    self.raster[k][design] = ("iconify", pkg, name)

    def classes(self):
        need = set(EMOJI_ENROLL_DESIGNS)
        return {k: v for k, v in self.raster.items() if need <= set(v) and len(set(v) & set(EMOJI_TRAIN_DESIGNS)) >= 4}


_ICONIFY = {}


def load_emoji(src, ref):
    """One emoji design as a trimmed RGB drawing on white; None where it cannot be drawn."""
    try:
        return _load_emoji(src, ref)
    except (MemoryError, OSError, ValueError):
        return None  # a few SVGs make cairo fail


def _load_emoji(src, ref):
    if isinstance(ref, tuple):
        import cairosvg
        _, pkg, name = ref
        if pkg not in _ICONIFY:
            _ICONIFY[pkg] = json.load(open(os.path.join(src, "npmx", pkg, "package", "icons.json")))
        png = cairosvg.svg2png(bytestring=iconify_svg(_ICONIFY[pkg], name, PRINT).encode())
        im = Image.open(io.BytesIO(png))
    elif ref.endswith(".svg"):
        import cairosvg
        im = Image.open(io.BytesIO(cairosvg.svg2png(url=ref, output_width=PRINT, output_height=PRINT)))
    else:
        im = Image.open(ref)
    return trim(flatten(im))


def emoji_class(src, out, split, key, refs, seed):
    cls = key.lower()
    d = class_dir(out, split, "emoji", cls)
    n = 0
    if split == "eval":
        for design in EMOJI_ENROLL_DESIGNS + ["fluent-flat"]:
            dr = load_emoji(src, refs[design])
            if dr is not None and n < 3:
                save(fit(dr, SIZE), os.path.join(d, f"enroll-{n}-{design}.jpg"), DRAWING_Q)
                n += 1
        dr = load_emoji(src, refs[EMOJI_EVAL_DESIGN])
        page = fit(dr, PRINT)
        for i in range(4):
            im, q = capture(page, rng_for(seed, "emoji", key, "query", i))
            save(im, os.path.join(d, f"query-{i}-{EMOJI_EVAL_DESIGN}.jpg"), q)
            n += 1
        return n
    # Four of the five designs, a different one left out for each class: K = 4 for
    # P x K batches, and every design still in most classes.
    designs = [x for x in EMOJI_TRAIN_DESIGNS if x in refs]
    rng_for(seed, "emoji", key, "designs").shuffle(designs)
    for design in designs:
        dr = load_emoji(src, refs[design]) if n < 4 else None
        if dr is not None:
            save(fit(dr, SIZE), os.path.join(d, f"{design}.jpg"), DRAWING_Q)
            n += 1
    return n


# ---------------------------------------------------------------- clipart and stamps


def tiny(rgb):
    return np.asarray(rgb.convert("L").resize((12, 12), Image.BILINEAR), np.float32)


def drawing_files(src):
    """Every usable openclipart and Tux Paint drawing: (source, class key, path)."""
    out = []
    oc = os.path.join(src, "x", "openclipart-png", "usr", "share", "openclipart", "png")
    per_dir = {}
    for p in sorted(glob.glob(os.path.join(oc, "**", "*.png"), recursive=True)):
        rel = os.path.relpath(p, oc)
        d = os.path.dirname(rel)
        if d.startswith(("unsorted/duplicates", "special/gradients", "special/patterns")):
            continue
        per_dir[d] = per_dir.get(d, 0) + 1
        if per_dir[d] > 60:  # shapes/stars alone has 1,378 near-identical stars
            continue
        out.append(("clipart", slug(rel[:-4])[:80], p))
    tp = os.path.join(src, "x", "tuxpaint-stamps-default", "usr", "share", "tuxpaint", "stamps")
    for p in sorted(glob.glob(os.path.join(tp, "**", "*.png"), recursive=True)):
        rel = os.path.relpath(p, tp)
        if rel.startswith(("symbols/alphabets", "symbols/math")) or p.endswith("_mirror.png"):
            continue
        out.append(("stamp", slug(rel[:-4])[:80], p))
    return out


def load_drawing(path):
    im = Image.open(path)
    if max(im.size) < 96 or im.width * im.height > 40_000_000:
        return None  # too small to draw at 160 px; or a 168-Mpx poster, slow to decode
    im.draft("RGB", (PRINT * 2, PRINT * 2))
    im = flatten(im)
    if max(im.size) > 2 * PRINT:
        im.thumbnail((2 * PRINT, 2 * PRINT), Image.LANCZOS)
    t = trim(im)
    if t is None or min(t.size) < 8:
        return None
    return t


def probe_drawing(item):
    source, key, path = item
    try:
        dr = load_drawing(path)
    except Exception:
        return None
    if dr is None:
        return None
    return source, key, path, tiny(fit(dr, 48))


def drawing_class(out, split, source, key, path, seed, k):
    dr = load_drawing(path)
    d = class_dir(out, split, source, key)
    if split == "eval":
        save(fit(dr, SIZE), os.path.join(d, "enroll-0.jpg"), DRAWING_Q)
        for i in (1, 2):
            save(drawing_view(dr, rng_for(seed, source, key, "enroll", i)), os.path.join(d, f"enroll-{i}.jpg"),
                 DRAWING_Q)
        page = fit(dr, PRINT)
        for i in range(4):
            im, q = capture(page, rng_for(seed, source, key, "query", i))
            save(im, os.path.join(d, f"query-{i}.jpg"), q)
        return 7
    save(fit(dr, SIZE), os.path.join(d, "view-0.jpg"), DRAWING_Q)
    for i in range(1, k):
        save(drawing_view(dr, rng_for(seed, source, key, "view", i)), os.path.join(d, f"view-{i}.jpg"), DRAWING_Q)
    return k


# ---------------------------------------------------------------- photos

# scikit-image's sample photos whose docs state CC0 or public domain (not moon, page:
# no statement; not the Middlebury stereo pair).
SKIMAGE = ["astronaut", "brick", "camera", "chelsea", "coffee", "coins", "grass", "gravel", "hubble_deep_field",
           "ihc", "retina", "rocket", "text", "cell", "clock_motion"]


# The source photos that are photographs (the rest are rendered or painted art).
REAL_PHOTOS = {
    "plasma-bythewater", "plasma-coldripple", "plasma-colorfulcups", "plasma-darkesthour", "plasma-eveningglow",
    "plasma-fallenleaf", "plasma-grey", "plasma-kite", "plasma-onestandsout", "plasma-path", "plasma-summer-1am",
    "plasma-volna", "skimage-astronaut", "skimage-brick", "skimage-camera", "skimage-chelsea", "skimage-coffee",
    "skimage-coins", "skimage-grass", "skimage-gravel", "skimage-hubble-deep-field", "skimage-ihc",
    "skimage-retina", "skimage-rocket", "skimage-text", "skimage-cell", "skimage-clock-motion", "sklearn-china",
    "sklearn-flower", "mpl-grace-hopper",
}
EVAL_REGIONS = 8


def photo_files(src):
    """(group, package, path): one group per source photo."""
    x = os.path.join(src, "x")
    out = []
    for wd in sorted(glob.glob(os.path.join(x, "plasma-workspace-wallpapers/usr/share/wallpapers/*"))):
        imgs = glob.glob(os.path.join(wd, "contents/images/*.*"))
        sized = []
        for p in imgs:
            m = re.match(r"(\d+)x(\d+)\.", os.path.basename(p))
            if m and int(m.group(1)) > int(m.group(2)):
                sized.append((int(m.group(1)) * int(m.group(2)), p))
        if sized:
            out.append((f"plasma-{slug(os.path.basename(wd))}", "plasma-workspace-wallpapers", max(sized)[1]))
    for p in sorted(glob.glob(os.path.join(x, "ukui-wallpapers/usr/share/backgrounds/*.*"))):
        out.append((f"ukui-{slug(os.path.basename(p).rsplit('.', 1)[0])}", "ukui-wallpapers", p))
    for p in sorted(glob.glob(os.path.join(x, "xfdesktop4-data/usr/share/backgrounds/xfce/*.*"))):
        if not p.endswith(".svg"):
            out.append((f"xfce-{slug(os.path.basename(p).rsplit('.', 1)[0])}", "xfdesktop4-data", p))
    out.append(("sway-blue", "sway-backgrounds", os.path.join(x, "sway-backgrounds/usr/share/backgrounds/sway/Sway_Wallpaper_Blue_2048x1536.png")))
    px = os.path.join(src, "pypix")
    for name in SKIMAGE:
        p = glob.glob(os.path.join(px, "skimage/data", name + ".*"))[0]
        out.append((f"skimage-{slug(name)}", "scikit-image", p))
    for name in ["china", "flower"]:
        out.append((f"sklearn-{name}", "scikit-learn", os.path.join(px, "sklearn/datasets/images", name + ".jpg")))
    out.append(("mpl-grace-hopper", "matplotlib", os.path.join(px, "matplotlib/mpl-data/sample_data/grace_hopper.jpg")))
    return out


def load_photo(path):
    im = Image.open(path)
    im.draft("RGB", (1600, 1600))
    im = flatten(im, (0, 0, 0))
    if min(im.size) > 1200:
        s = 1200 / min(im.size)
        im = im.resize((round(im.width * s), round(im.height * s)), Image.LANCZOS)
    return im


def photo_regions(item):
    """The distinct, detailed square regions of one photo: [(index, box)]."""
    group, pkg, path = item
    im = load_photo(path)
    w, h = im.size
    rows = 4 if min(w, h) >= 1000 else 2 if min(w, h) >= 400 else 1
    side = min(w, h) // rows
    cols = w // side
    rows = h // side
    ox, oy = (w - cols * side) // 2, (h - rows * side) // 2
    kept, thumbs = [], []
    for r in range(rows):
        for c in range(cols):
            box = (ox + c * side, oy + r * side, ox + (c + 1) * side, oy + (r + 1) * side)
            g = np.asarray(im.crop(box).convert("L").resize((64, 64), Image.BILINEAR), np.float32)
            detail = np.abs(np.diff(g, axis=0)).mean() + np.abs(np.diff(g, axis=1)).mean()
            if g.std() < 12 or detail < 2.0:
                continue  # sky, flat colour: nothing to recognise
            t = np.asarray(im.crop(box).resize((12, 12), Image.BILINEAR), np.float32)
            if any(np.abs(t - u).mean() < 10 for u in thumbs):
                continue  # looks like a region already kept
            thumbs.append(t)
            kept.append((len(kept), box))
    return group, pkg, path, im.size, kept


def sub_box(box, rng, lo=0.72):
    """A crop inside box: another framing of the same region."""
    x0, y0, x1, y1 = box
    side = x1 - x0
    s = side * rng.uniform(lo, 0.95)
    x = x0 + rng.uniform(0, side - s)
    y = y0 + rng.uniform(0, side - s)
    return (x, y, x + s, y + s)


def photo_class(out, split, group, path, idx, box, seed, k):
    im = load_photo(path)
    key = f"{group}-r{idx}"
    d = class_dir(out, split, "photo", key)

    def crop(b):
        return im.resize((SIZE, SIZE), Image.LANCZOS, box=b)

    if split == "eval":
        save(crop(box), os.path.join(d, "enroll-0.jpg"), 90)
        for i in (1, 2):
            save(crop(sub_box(box, rng_for(seed, "photo", key, "enroll", i))), os.path.join(d, f"enroll-{i}.jpg"), 90)
        page = im.resize((PRINT, PRINT), Image.LANCZOS, box=box)
        for i in range(4):
            q_im, q = capture(page, rng_for(seed, "photo", key, "query", i))
            save(q_im, os.path.join(d, f"query-{i}.jpg"), q)
        return 7
    save(crop(box), os.path.join(d, "view-0.jpg"), 90)
    for i in range(1, k):
        save(crop(sub_box(box, rng_for(seed, "photo", key, "view", i))), os.path.join(d, f"view-{i}.jpg"), 90)
    return k


# ---------------------------------------------------------------- glyphs

# Seven faces of seven Debian font packages that the glyph data set also uses
# (scripts/fonts.sh); GB2312 level-2 characters, which the glyph model never
# trains on (it trains on level 1).
GLYPH_FACES = [
    ("fonts-wqy-microhei", "truetype/wqy/wqy-microhei.ttc", 0),
    ("fonts-wqy-zenhei", "truetype/wqy/wqy-zenhei.ttc", 0),
    ("fonts-arphic-uming", "truetype/arphic/uming.ttc", 0),
    ("fonts-arphic-ukai", "truetype/arphic/ukai.ttc", 0),
    ("fonts-droid-fallback", "truetype/droid/DroidSansFallbackFull.ttf", 0),
    ("fonts-vlgothic", "truetype/vlgothic/VL-Gothic-Regular.ttf", 0),
    ("fonts-ipafont-gothic", "opentype/ipafont-gothic/ipag.ttf", 0),
]


def glyph_faces(src):
    return [(pkg, os.path.join(src, "x", pkg, "usr/share/fonts", rel), idx) for pkg, rel, idx in GLYPH_FACES]


def gb2312_level2():
    out = []
    for hi in range(0xD8, 0xF8):
        for lo in range(0xA1, 0xFF):
            try:
                out.append(bytes([hi, lo]).decode("gb2312"))
            except UnicodeDecodeError:
                pass
    return out


def glyph_chars(src):
    """Level-2 characters that every face has."""
    from fontTools.ttLib import TTFont
    chars = gb2312_level2()
    for _, path, idx in glyph_faces(src):
        cmap = TTFont(path, fontNumber=idx, lazy=True).getBestCmap()
        chars = [c for c in chars if ord(c) in cmap]
    return chars


def render_char(path, idx, c):
    from PIL import ImageDraw, ImageFont
    font = ImageFont.truetype(path, PRINT, index=idx)
    im = Image.new("RGB", (2 * PRINT, 2 * PRINT), (255, 255, 255))
    ImageDraw.Draw(im).text((PRINT // 2, PRINT // 4), c, font=font, fill=(0, 0, 0))
    return trim(im)


def glyph_class(src, out, c, seed):
    """One character: 3 faces enrolled clean, 4 other faces captured by the camera."""
    faces = glyph_faces(src)
    rng_for(seed, "glyphs", c, "faces").shuffle(faces)
    cls = f"u{ord(c):04x}"
    d = class_dir(out, "eval", "glyphs", cls)
    for i, (pkg, path, idx) in enumerate(faces[:3]):
        save(fit(render_char(path, idx, c), SIZE), os.path.join(d, f"enroll-{i}-{pkg[6:]}.jpg"), DRAWING_Q)
    for i, (pkg, path, idx) in enumerate(faces[3:7]):
        page = fit(render_char(path, idx, c), PRINT)
        q_im, q = capture(page, rng_for(seed, "glyphs", c, "query", i))
        save(q_im, os.path.join(d, f"query-{i}-{pkg[6:]}.jpg"), q)
    return 7


KINDS = {"emoji": emoji_class, "drawing": drawing_class, "photo": photo_class, "glyph": glyph_class}


LICENSES = {
    "emoji-datasource-google": ("MIT (package); images Apache-2.0 (Noto Emoji)", "emoji design `google`"),
    "emoji-datasource-twitter": ("MIT (package); images CC-BY-4.0 (Twemoji)", "emoji design `twitter`"),
    "openmoji": ("CC-BY-SA-4.0", "emoji design `openmoji`"),
    "@iconify-json/fluent-emoji-flat": ("MIT (Microsoft Fluent Emoji)", "emoji design `fluent-flat`; codepoints"),
    "@iconify-json/fluent-emoji": ("MIT (Microsoft Fluent Emoji)", "emoji design `fluent`"),
    "@iconify-json/emojione": ("CC-BY-4.0 (Emoji One)", "emoji design `emojione`: eval queries only"),
    "openclipart-png": ("Public domain (CC Public Domain Dedication)", "clipart"),
    "tuxpaint-stamps-default": ("GPL-2+", "stamp (photo cut-outs and drawings)"),
    "plasma-workspace-wallpapers": ("GPL-2+ (KDE Visual Design Group)", "photo"),
    "ukui-wallpapers": ("CC-BY-SA-3.0", "photo"),
    "xfdesktop4-data": ("GPL-2+", "photo (the raster backgrounds)"),
    "sway-backgrounds": ("Expat (MIT)", "photo (one wallpaper)"),
    "scikit-image": ("BSD-3-Clause; the photos used are CC0 or public domain per `skimage.data` docs", "photo"),
    "scikit-learn": ("BSD-3-Clause; china.jpg, flower.jpg CC-BY-2.0 (Flickr)", "photo"),
    "fonts-wqy-microhei": ("Apache-2.0 or GPL-3+ with font exception", "glyphs (eval only)"),
    "fonts-wqy-zenhei": ("GPL-2 with font embedding exception", "glyphs (eval only)"),
    "fonts-arphic-uming": ("Arphic Public License", "glyphs (eval only)"),
    "fonts-arphic-ukai": ("Arphic Public License", "glyphs (eval only)"),
    "fonts-droid-fallback": ("Apache-2.0", "glyphs (eval only)"),
    "fonts-vlgothic": ("M+ / Sazanami (BSD-3-Clause)", "glyphs (eval only)"),
    "fonts-ipafont-gothic": ("IPA-1.0", "glyphs (eval only)"),
    "matplotlib": ("Matplotlib license (PSF-based); grace_hopper.jpg public domain (US Navy)", "photo"),
}


def write_sources(path, a, counts, photo_meta, available):
    sources = ["emoji", "clipart", "stamp", "photo", "glyphs"]
    L = ["# Objects data set: sources and counts", "",
         f"Built by `scripts/objects-data.sh` (seed {a.seed}); see docs/data.md. Images are 160x160 RGB.", "",
         "## Packages", "", "| registry | package | version | license | used for |", "| --- | --- | --- | --- | --- |"]
    for line in open(a.manifest) if a.manifest else []:
        spec, reg = line.rstrip("\n").split("\t")
        if reg == "npm":
            name, ver = spec.rsplit("@", 1)
        elif reg == "debian":
            name, ver = spec.split("=", 1)
        else:
            name, ver = spec.split("==", 1)
        lic, use = LICENSES.get(name, ("?", "?"))
        L.append(f"| {reg} | `{name}` | {ver} | {lic} | {use} |")
    L += ["", "## Classes / images per split", "",
          "| source | train | val | eval (3 enroll + 4 query each) | usable classes before the caps |",
          "| --- | ---: | ---: | ---: | ---: |"]
    tot = {sp: [0, 0] for sp in ("train", "val", "eval")}
    for s in sources:
        row = []
        for sp in ("train", "val", "eval"):
            c, n = counts.get((s, sp), [0, 0])
            tot[sp][0] += c
            tot[sp][1] += n
            row.append(f"{c} / {n}" if c else "-")
        L.append(f"| {s} | " + " | ".join(row) + f" | {available.get(s, '-')} |")
    L.append("| **all** | " + " | ".join(f"{tot[sp][0]} / {tot[sp][1]}" for sp in tot) + " | |")
    L += ["", f"Total: {sum(v[0] for v in tot.values())} classes, {sum(v[1] for v in tot.values())} images "
          f"(train {tot['train'][0]} classes / {tot['train'][1]} images, val {tot['val'][0]} / {tot['val'][1]}, "
          f"eval {tot['eval'][0]} / {tot['eval'][1]}).", "",
          "## Photos: source photo -> package, split, regions (classes)", "",
          "| photo | package | kind | split | regions |", "| --- | --- | --- | --- | ---: |"]
    for g in sorted(photo_meta):
        pkg, sp, n, real = photo_meta[g]
        L.append(f"| {g} | {pkg} | {'photograph' if real else 'art'} | {sp} | {n} |")
    open(path, "w").write("\n".join(L) + "\n")


KINDS = {"emoji": emoji_class, "drawing": drawing_class, "photo": photo_class, "glyph": glyph_class}


# ---------------------------------------------------------------- main


def run_jobs(pool, jobs, desc):
    total = 0
    with tqdm(total=len(jobs), desc=desc, unit="class", leave=False, disable=None) as bar:
        for n in pool.map(write_drawing_class, jobs, chunksize=8):
            total += n
            bar.update()
    return total


def emoji_splits(a, ecl):
    """The emoji classes of train, val and eval, as main() draws them."""
    evable = [k for k in sorted(ecl, key=lambda k: order_key(a.seed, "emoji-eval", k)) if EMOJI_EVAL_DESIGN in ecl[k]]
    ev = evable[:a.eval]
    rest = [k for k in ecl if k not in set(ev)]
    tr, va, _ = split_classes(a.seed, "emoji", rest, 0, 0.1, a.emoji_train)
    return tr, va, ev, evable


def adapt_emoji(a):
    es = EmojiSource(a.src)
    ecl = es.classes()
    tr, va, ev, evable = emoji_splits(a, ecl)
    used = set(tr) | set(va) | set(ev)
    keys = [k for k in evable if k not in used][:a.adapt_emoji]
    if len(keys) < a.adapt_emoji:
        print(f"objects-data: only {len(keys)} unused emoji classes have an {EMOJI_EVAL_DESIGN} design", flush=True)
    tmp = a.out + ".partial"
    shutil.rmtree(tmp, ignore_errors=True)
    with ProcessPoolExecutor(a.jobs) as pool:
        n = run_jobs(pool, [("emoji", (a.src, tmp, "eval", k, ecl[k], a.seed)) for k in keys], "emoji adapt")
    print(f"objects-data: {len(keys)} emoji classes, {n} images in {a.out}/eval/emoji", flush=True)
    shutil.rmtree(a.out, ignore_errors=True)
    os.rename(tmp, a.out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--src", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=2)
    # The counts and quality keep target/objects-data.tar.xz under 40 MB.
    ap.add_argument("--emoji-train", type=int, default=600, help="most emoji classes in train")
    ap.add_argument("--drawing-train", type=int, default=700, help="most clipart (and stamp) classes in train")
    ap.add_argument("--drawing-quality", type=int, default=90, help="JPEG quality of drawings and emoji")
    ap.add_argument("--eval", type=int, default=100, help="eval classes per source (photos: about)")
    ap.add_argument("--manifest", help="TSV of pinned packages (spec, registry) for SOURCES.md")
    ap.add_argument("--adapt-emoji", type=int, metavar="N",
                    help="instead: only OUT/eval/emoji, N more eval-style emoji classes that none of "
                         "train, val and eval holds (the on-device adaptation benchmark's larger galleries)")
    a = ap.parse_args()
    global DRAWING_Q
    DRAWING_Q = a.drawing_quality
    if a.adapt_emoji:
        return adapt_emoji(a)
    out = a.out
    tmp = out + ".partial"
    shutil.rmtree(tmp, ignore_errors=True)
    counts = {}  # (source, split) -> [classes, images]
    available = {}  # source -> usable classes before the caps
    pool = ProcessPoolExecutor(a.jobs)

    def add(source, split, jobs, desc):
        n = run_jobs(pool, jobs, desc)
        counts[(source, split)] = [len(jobs), n]

    # Emoji: one emoji is a class, one design an example; emojione is never trained on.
    print("objects-data: emoji", flush=True)
    es = EmojiSource(a.src)
    ecl = es.classes()
    available["emoji"] = len(ecl)
    tr, va, ev, _ = emoji_splits(a, ecl)
    for split, keys in (("train", tr), ("val", va), ("eval", ev)):
        add("emoji", split, [("emoji", (a.src, tmp, split, k, ecl[k], a.seed)) for k in keys], f"emoji {split}")

    # Clipart and Tux Paint stamps: a drawing is a class; near-duplicates dropped.
    print("objects-data: clipart and stamps", flush=True)
    items = list(tqdm(pool.map(probe_drawing, drawing_files(a.src), chunksize=16), desc="probe drawings",
                      leave=False, disable=None, total=len(drawing_files(a.src))))
    items = [it for it in items if it is not None]
    seen, n_seen, uniq = np.zeros((len(items), 144), np.float32), 0, {"clipart": [], "stamp": []}
    for source, key, path, t in items:
        t = t.reshape(-1)
        if n_seen and np.abs(seen[:n_seen] - t).mean(axis=1).min() < 6:
            continue  # the same drawing again (another size, or in both packages)
        seen[n_seen], n_seen = t, n_seen + 1
        uniq[source].append((key, path))
    for source, n_eval in (("clipart", a.eval), ("stamp", 64)):
        paths = dict(uniq[source])
        available[source] = len(paths)
        tr, va, ev = split_classes(a.seed, source, list(paths), n_eval, 0.1, a.drawing_train)
        for split, keys in (("train", tr), ("val", va), ("eval", ev)):
            add(source, split, [("drawing", (tmp, split, source, k, paths[k], a.seed, 2)) for k in keys],
                f"{source} {split}")

    # Photos: a distinct region of a photo is a class; split by photo.
    print("objects-data: photos", flush=True)
    regions = list(tqdm(pool.map(photo_regions, photo_files(a.src)), desc="photo regions", leave=False,
                        disable=None, total=len(photo_files(a.src))))
    regions = [r for r in regions if r[4]]
    regions.sort(key=lambda r: order_key(a.seed, "photo", r[0]))
    total = sum(len(r[4]) for r in regions)
    available["photo"] = total
    # Eval: whole source photos, real photographs first (the camera use case), and
    # at most EVAL_REGIONS regions of each, so that many scenes are in it; the other
    # regions of an eval photo are dropped, never trained on.
    split_of, n_ev, n_va = {}, {True: 0, False: 0}, 0
    want = {True: 48, False: 16}
    for r in regions:
        real = r[0] in REAL_PHOTOS
        if n_ev[real] < want[real]:
            split_of[r[0]] = "eval"
            r[4][:] = r[4][::-(-len(r[4]) // EVAL_REGIONS)]  # spread over the photo
            n_ev[real] += len(r[4])
        elif n_va < 0.1 * (total - sum(n_ev.values())):
            split_of[r[0]], n_va = "val", n_va + len(r[4])
        else:
            split_of[r[0]] = "train"
    photo_meta = {}
    for split in ("train", "val", "eval"):
        jobs = []
        for group, pkg, path, size, kept in regions:
            if split_of[group] == split:
                photo_meta[group] = (pkg, split, len(kept), group in REAL_PHOTOS)
                jobs += [("photo", (tmp, split, group, path, i, box, a.seed, 3)) for i, box in kept]
        add("photo", split, jobs, f"photo {split}")

    # Glyphs (eval only): unseen characters in faces the glyph model knows.
    print("objects-data: glyphs", flush=True)
    chars = glyph_chars(a.src)
    available["glyphs"] = len(chars)
    chars = sorted(chars, key=lambda c: order_key(a.seed, "glyphs", c))[:a.eval]
    add("glyphs", "eval", [("glyph", (a.src, tmp, c, a.seed)) for c in chars], "glyphs eval")
    pool.shutdown()

    json.dump({"counts": {f"{s}/{sp}": v for (s, sp), v in sorted(counts.items())},
               "photos": photo_meta, "seed": a.seed}, open(os.path.join(tmp, "counts.json"), "w"), indent=1)
    write_sources(os.path.join(tmp, "SOURCES.md"), a, counts, photo_meta, available)
    shutil.rmtree(out, ignore_errors=True)
    os.rename(tmp, out)


if __name__ == "__main__":
    sys.exit(main())
