#!/usr/bin/env python3
"""MetricANN past one machine, measured (issue: the Python package and Ray).

1. Extraction throughput: images/s embedding an ImageFolder in one process
   (`Model.embed`), and with `metricann-ray extract` on 1 and on N workers.
2. Sharded search: a gallery of N vectors split over 1, 2 and 4 shards on Ray
   Serve (one replica each), queried over HTTP by C client threads for D
   seconds: QPS, p50 and p99 latency; against one process searching the
   unsharded gallery in-process (the same client threads, no HTTP), and the
   per-query overhead Ray Serve adds (Serve with one shard minus in-process p50).

Needs the release wheel (`scripts/python.sh release`) and `ray[serve]`,
`pyarrow`, `pillow` in the running interpreter. Results: bench/results/python-scale.json.

    python bench/python_scale.py --vectors 1000000 --dim 128 --images 128
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

import metricann
from metricann.distributed.extract import extract
from metricann.distributed.shards import build_shards

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "www" / "models" / "objects.bundle"
SAMPLES = REPO / "tests" / "fixtures" / "imagenet"


def image_folder(root: Path, count: int) -> Path:
    """`count` images over the four sample pictures, each a different crop."""
    from PIL import Image

    names = ["astronaut", "chelsea", "coffee", "rocket"]
    for i in range(count):
        name = names[i % 4]
        img = Image.open(SAMPLES / f"{name}.png").convert("RGB")
        w, h = img.size
        d = (i // 4) % 20
        (root / name).mkdir(parents=True, exist_ok=True)
        img.crop((d, d, w - d, h - d)).save(root / name / f"{i:05d}.jpg", quality=90)
    return root


def bench_extraction(tmp: Path, images: int, workers: list) -> dict:
    import ray

    ray.init(include_dashboard=False, logging_level="ERROR")
    folder = image_folder(tmp / "images", images)
    paths = sorted(str(p) for p in folder.rglob("*.jpg"))
    model = metricann.Model.open(MODEL)
    model.embed(paths[:4])
    started = time.perf_counter()
    for i in range(0, len(paths), 32):
        model.embed(paths[i : i + 32])
    one_process = len(paths) / (time.perf_counter() - started)
    out = {"images": len(paths), "one_process_images_per_s": one_process, "ray": []}
    print(f"extraction: one process {one_process:.1f} images/s")
    for n in workers:
        shutil.rmtree(tmp / f"emb-{n}", ignore_errors=True)
        summary = extract(folder, MODEL, tmp / f"emb-{n}", workers=n, batch_size=16)
        rate = summary["images"] / summary["seconds"]
        out["ray"].append({"workers": n, "seconds": summary["seconds"], "images_per_s": rate})
        print(f"extraction: Ray, {n} worker(s): {rate:.1f} images/s ({summary['seconds']:.1f} s end to end)")
    ray.shutdown()
    return out


def embeddings(tmp: Path, n: int, dim: int, per_class: int) -> tuple:
    rng = np.random.default_rng(1)
    classes = n // per_class
    centres = rng.normal(size=(classes, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    vectors = np.repeat(centres, per_class, axis=0)
    vectors += rng.normal(scale=0.3 / np.sqrt(dim), size=vectors.shape).astype(np.float32)
    folder = tmp / "vectors"
    folder.mkdir()
    np.save(folder / "vectors.npy", vectors)
    labels = "".join(f"v{i}\tc{i // per_class}\n" for i in range(len(vectors)))
    (folder / "labels.tsv").write_text("path\tclass\n" + labels)
    (folder / "meta.json").write_text(json.dumps({"fingerprint": "0123456789abcdef", "dim": dim}))
    queries = centres[rng.integers(0, classes, 2000)]
    queries = queries + rng.normal(scale=0.3 / np.sqrt(dim), size=queries.shape).astype(np.float32)
    return folder, queries.astype(np.float32)


def load(call, queries: np.ndarray, clients: int, seconds: float) -> dict:
    """`clients` threads calling `call(query)` back to back for `seconds`."""
    latencies, errors = [], []
    stop = time.monotonic() + seconds

    def client(offset: int) -> None:
        i = offset
        while time.monotonic() < stop:
            q = queries[i % len(queries)]
            t = time.perf_counter()
            try:
                call(q)
                latencies.append(time.perf_counter() - t)
            except Exception as e:  # counted, not raised: a failed query is a result
                errors.append(repr(e))
            i += clients

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    ms = np.array(latencies) * 1000
    return {
        "queries": len(latencies),
        "errors": len(errors),
        "qps": len(latencies) / elapsed,
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
    }


def bench_search(tmp: Path, n: int, dim: int, shard_counts: list, clients: int, seconds: float) -> dict:
    import ray
    from ray import serve

    from metricann.distributed.serve import app

    folder, queries = embeddings(tmp, n, dim, per_class=4)
    out = {"vectors": n, "dim": dim, "per_class": 4, "clients": clients, "seconds": seconds, "runs": []}
    one_dir = tmp / "one"
    started = time.perf_counter()
    build_shards(folder, one_dir, 1)
    out["build_one_s"] = time.perf_counter() - started
    gallery = metricann.Gallery.open(one_dir / "shard-000", read_only=True)
    baseline = load(lambda q: gallery.search(q, k=5, threshold=-1), queries, clients, seconds)
    baseline.update(shards="one process, in-process calls")
    out["runs"].append(baseline)
    print(f"search: one process {baseline['qps']:.0f} QPS, p50 {baseline['p50_ms']:.2f} ms, p99 {baseline['p99_ms']:.2f} ms")
    gallery.close()
    ray.init(include_dashboard=False, logging_level="ERROR")
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    url = f"http://127.0.0.1:{port}/mc/search"

    def over_http(q):
        body = json.dumps({"vectors": [q.tolist()], "k": 5}).encode()
        request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as r:
            json.loads(r.read())

    for shards in shard_counts:
        root = one_dir if shards == 1 else tmp / f"shards-{shards}"
        if shards != 1:
            started = time.perf_counter()
            build_shards(folder, root, shards)
            print(f"search: built {shards} shards in {time.perf_counter() - started:.0f} s")
        serve.run(app(str(root), replicas=1), name="mc", route_prefix="/mc")
        over_http(queries[0])
        run = load(over_http, queries, clients, seconds)
        run.update(shards=shards)
        out["runs"].append(run)
        print(f"search: {shards} shard(s) on Serve {run['qps']:.0f} QPS, p50 {run['p50_ms']:.2f} ms, p99 {run['p99_ms']:.2f} ms")
        serve.delete("mc")
    serve.shutdown()
    ray.shutdown()
    serve_one = next(r for r in out["runs"] if r["shards"] == 1)
    out["serve_overhead_p50_ms"] = serve_one["p50_ms"] - baseline["p50_ms"]
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--vectors", type=int, default=1_000_000)
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--shards", default="1,2,4")
    p.add_argument("--images", type=int, default=128)
    p.add_argument("--workers", default="1,2")
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--seconds", type=float, default=15)
    p.add_argument("--skip", default="", help="extraction and/or search")
    p.add_argument("--out", default=str(REPO / "bench" / "results" / "python-scale.json"))
    a = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="mc-scale-"))
    result = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "date": time.strftime("%Y-%m-%d"),
        "metricann": metricann.__version__,
    }
    try:
        if "extraction" not in a.skip:
            result["extraction"] = bench_extraction(tmp, a.images, [int(w) for w in a.workers.split(",")])
        if "search" not in a.skip:
            shards = [int(s) for s in a.shards.split(",")]
            result["search"] = bench_search(tmp, a.vectors, a.dim, shards, a.clients, a.seconds)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    Path(a.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
