#!/usr/bin/env python3
"""Prepares the browser benchmark at sizes too large to build inside a tab (1M).

A single-threaded wasm build of a million-vector graph takes hours, on either
side. Both libraries therefore get an index built natively, with the same
vectors and parameters, and the browser measures what an app does with it:
import it into IndexedDB, search, enroll + persist, reload in a fresh page.

  - ours:    `metricann build-index --optimize --ef-construction E [--quantize int8]` over the
             vectors, labelled v0, v1, … (one class per vector), tagged with
             the default model's fingerprint; then `metricann export`.
  - hnswlib: the PyPI package (the same C++ that npm hnswlib-wasm compiles),
             M and ef_construction as ours, saved with `save_index`: the file
             hnswlib-wasm's `readIndex` reads.

The vectors are bench/ann_vs_hnswlib.py's clustered unit vectors (cached under
target/bench-data). Writes, under target/bench-data/<name>/browser/:
metricann-<storage>.export, hnswlib.bin (and hnswlib-wasm32.bin, the same
file with hnswlib's size_t fields narrowed for wasm32), queries.f32, gt.u32, extra.f32 and
meta.json; then `node bench/web/ann.mjs --import DIR` runs the browser side
(`make bench-web-ann-1m` does both).

  target/bench-venv/bin/python bench/browser_import.py --n 1000000 --quantize int8
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ann_vs_hnswlib import ROOT, clustered, dataset  # noqa: E402


def log(msg):
    print(f"browser_import: {msg}", file=sys.stderr, flush=True)


def run_json(cmd):
    log(" ".join(map(str, cmd)))
    out = subprocess.run([str(c) for c in cmd], check=True, stdout=subprocess.PIPE, text=True).stdout
    return json.loads(out)


def hnswlib_for_wasm32(native, out):
    """Rewrites a `save_index` file of 64-bit hnswlib for hnswlib-wasm.

    hnswlib writes its header's `size_t` fields and each element's label
    (`labeltype` = `size_t`) as they are in memory: 8 bytes on x86-64, 4 in
    wasm32, so hnswlib-wasm refuses a native file ("Index seems to be corrupted
    or unsupported"). The graph, vectors and links are the same bytes; this
    narrows those fields, giving the file hnswlib-wasm writes for that graph.
    """
    raw = np.fromfile(native, dtype=np.uint8)
    z, i32, f64 = "<u8", "<i4", "<f8"
    fields = [("offsetLevel0", z), ("max_elements", z), ("cur_element_count", z), ("size_data_per_element", z),
              ("label_offset", z), ("offsetData", z), ("maxlevel", i32), ("enterpoint_node", "<u4"),
              ("maxM", z), ("maxM0", z), ("M", z), ("mult", f64), ("ef_construction", z)]
    header = np.frombuffer(raw[: np.dtype(fields).itemsize].tobytes(), dtype=fields)[0]
    narrow = [(n, "<u4" if t == z else t) for n, t in fields]
    out_header = np.array([tuple(header[n] for n, _ in fields)], dtype=narrow)
    n, per, label_at = int(header["cur_element_count"]), int(header["size_data_per_element"]), int(header["label_offset"])
    if per != label_at + 8:
        raise SystemExit(f"{native}: unexpected element layout ({per} bytes, label at {label_at})")
    if int(header["max_elements"]) >= 2**32:
        raise SystemExit(f"{native}: too many elements for wasm32")
    out_header["size_data_per_element"] = per - 4
    start = np.dtype(fields).itemsize
    level0 = raw[start : start + n * per].reshape(n, per)
    if level0[:, label_at + 4 :].any():
        raise SystemExit(f"{native}: a label does not fit 32 bits")
    with open(out, "wb") as f:
        f.write(out_header.tobytes())
        f.write(np.ascontiguousarray(level0[:, : label_at + 4]).tobytes())
        f.write(raw[start + n * per :].tobytes())


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=1_000_000)
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--nq", type=int, default=1000, help="queries in the cached data set (the browser uses --queries of them)")
    p.add_argument("--queries", type=int, default=200)
    p.add_argument("--extra", type=int, default=30, help="vectors to enroll one by one in the browser")
    p.add_argument("--per-cluster", type=int, default=100)
    p.add_argument("--spread", type=float, default=1.5)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--m", type=int, default=32)
    p.add_argument("--ef-construction", type=int, default=100)
    p.add_argument("--ef", type=int, default=64, help="search ef in the browser (both sides)")
    p.add_argument("--quantize", default="int8", help="our storage: none or int8")
    p.add_argument("--threads", type=int, default=0, help="hnswlib build threads (0: all cores; ours uses all)")
    p.add_argument("--model", default=str(ROOT / "www" / "models" / "default.bundle"))
    p.add_argument("--bin", default=str(ROOT / "target" / "release" / "metricann"))
    p.add_argument("--sides", default="metricann,hnswlib", help="which indexes to build (each is kept once built)")
    a = p.parse_args()
    sides = a.sides.split(",")
    a.base = None

    name, (base_path, queries_path, gt_path) = dataset(a)
    work = base_path.parent
    out = work / "browser"
    out.mkdir(exist_ok=True)
    meta_path = out / "meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    meta.update(
        data=name, n=a.n, dim=a.dim, k=a.k, m=a.m, efConstruction=a.ef_construction, ef=a.ef,
        queries=a.queries, extra=a.extra,
    )

    queries = np.load(queries_path)[: a.queries]
    gt = np.load(gt_path)[: a.queries, : a.k]
    queries.astype("<f4").tofile(out / "queries.f32")
    gt.astype("<u4").tofile(out / "gt.u32")
    _, extra = clustered(a.extra * 100, a.extra, a.dim, a.per_cluster, a.spread, a.seed + 7)
    extra.astype("<f4").tofile(out / "extra.f32")

    # Ours: an embeddings folder as `metricann extract` writes it, for the
    # default model, then one graph over it, exported.
    export = out / f"metricann-{a.quantize}.export"
    if "metricann" in sides and not export.exists():
        emb = work / "emb"
        emb.mkdir(exist_ok=True)
        if not (emb / "vectors.npy").exists():
            os.symlink(base_path, emb / "vectors.npy")
        with open(emb / "labels.tsv", "w") as f:
            f.write("path\tlabel\n")
            f.writelines(f"{i}\tv{i}\n" for i in range(a.n))
        fingerprint = run_json([a.bin, "inspect", "--model", a.model])["fingerprint"]
        (emb / "meta.json").write_text(json.dumps({"fingerprint": fingerprint, "dim": a.dim, "count": a.n}))
        gallery = work / f"gallery-{a.quantize}"
        if gallery.exists():
            subprocess.run(["rm", "-rf", str(gallery)], check=True)
        t = time.perf_counter()
        built = run_json([
            a.bin, "build-index", "--embeddings", emb, "--out", gallery, "--optimize",
            "--quantize", a.quantize, "--ef-construction", a.ef_construction, "--json",
        ])
        seconds = time.perf_counter() - t
        exported = run_json([a.bin, "export", "--index", gallery, "--out", export, "--json"])
        meta[f"metricann-{a.quantize}"] = {
            "build_seconds": seconds,
            "build_threads": os.cpu_count(),
            "segments": built["segments"],
            "export_bytes": exported["export_bytes"],
        }
        log(f"ours: {seconds:.0f} s, {exported['export_bytes'] / 1e6:.0f} MB export")

    # hnswlib: the same vectors, parameters and seed.
    hnsw = out / "hnswlib.bin"
    if "hnswlib" in sides and not hnsw.exists():
        import hnswlib

        base = np.load(base_path)
        index = hnswlib.Index(space="ip", dim=a.dim)
        index.init_index(max_elements=len(base), ef_construction=a.ef_construction, M=a.m, random_seed=a.seed)
        threads = a.threads or os.cpu_count()
        index.set_num_threads(threads)
        t = time.perf_counter()
        index.add_items(base, np.arange(len(base)))
        seconds = time.perf_counter() - t
        index.save_index(str(hnsw))
        meta["hnswlib"] = {"build_seconds": seconds, "build_threads": threads, "bytes": hnsw.stat().st_size}
        log(f"hnswlib: {seconds:.0f} s, {hnsw.stat().st_size / 1e6:.0f} MB")
    wasm32 = out / "hnswlib-wasm32.bin"
    if hnsw.exists() and not wasm32.exists():
        hnswlib_for_wasm32(hnsw, wasm32)
        meta.setdefault("hnswlib", {})["wasm32_bytes"] = wasm32.stat().st_size

    meta_path.write_text(json.dumps(meta, indent=1))
    print(out)


if __name__ == "__main__":
    main()
