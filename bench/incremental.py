#!/usr/bin/env python3
"""Incremental enrollment: N new classes one by one into a gallery of B, against hnswlib.

Data: clustered unit vectors as in ann_vs_hnswlib.py (B + N rows of one draw;
the first B are the starting gallery, the last N are enrolled one at a time).

  - ours:    metricann bench-enroll --base B.npy --add N.npy --json
             (maintenance on a background thread, a search thread running, each
             enrollment's change set applied to an in-memory store)
  - hnswlib: this script with --worker hnswlib: add_items of the B rows on
             --threads threads, then one add_items call per new row on one
             thread (no persistence: hnswlib saves only whole files)

Writes bench/results/incremental-<name>.json with both reports and the ratios.
With --skip one side runs, and the other side's report from an earlier run of
the same data is kept, so that the two can run in separate sessions (on the lent
machine, where one command may run 10 minutes). Our starting gallery is saved
under target/bench-data/<name>/ (--keep-base) and loaded by the next run.

  python3 bench/incremental.py --base-n 900000 --add-n 100000 --threads 16
  python3 bench/incremental.py --base-n 20000 --add-n 5000        # a quick run
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
from ann_vs_hnswlib import ROOT, clustered, rss  # noqa: E402


def data(a):
    name = f"clustered-{a.base_n}+{a.add_n}x{a.dim}-c{a.per_cluster}-s{a.spread}-seed{a.seed}"
    d = ROOT / "target" / "bench-data" / name
    paths = [d / "base.npy", d / "add.npy", d / "queries.npy"]
    if not all(p.exists() for p in paths):
        d.mkdir(parents=True, exist_ok=True)
        rows, queries = clustered(a.base_n + a.add_n, 1000, a.dim, a.per_cluster, a.spread, a.seed)
        rng = np.random.default_rng(a.seed + 1)
        rows = rows[rng.permutation(len(rows))]
        np.save(paths[0], rows[: a.base_n])
        np.save(paths[1], rows[a.base_n :])
        np.save(paths[2], queries)
    return name, paths


def summary(ms):
    ms = sorted(ms)
    pick = lambda p: ms[min(len(ms) - 1, round(p * (len(ms) - 1)))]  # noqa: E731
    return {
        "count": len(ms),
        "mean_ms": sum(ms) / len(ms),
        "p50_ms": pick(0.5),
        "p99_ms": pick(0.99),
        "max_ms": ms[-1],
    }


def hnswlib_worker(a):
    import hnswlib

    base, add, queries = (np.load(p) for p in (a.base_path, a.add_path, a.queries_path))
    index = hnswlib.Index(space="ip", dim=base.shape[1])
    index.init_index(max_elements=len(base) + len(add), ef_construction=a.ef_construction, M=a.m, random_seed=a.seed)
    index.set_num_threads(a.threads or os.cpu_count())
    t = time.perf_counter()
    index.add_items(base, np.arange(len(base)))
    base_seconds = time.perf_counter() - t
    index.set_num_threads(1)
    index.set_ef(64)
    ms, search_ms = [], []
    t0 = time.perf_counter()
    for i, v in enumerate(add):
        t = time.perf_counter()
        index.add_items(v[None, :], np.array([len(base) + i]))
        ms.append((time.perf_counter() - t) * 1e3)
        if i % 10 == 0:  # interleaved searches: the index is in one thread's hands
            t = time.perf_counter()
            index.knn_query(queries[i % len(queries)], k=a.k)
            search_ms.append((time.perf_counter() - t) * 1e3)
    enroll_seconds = time.perf_counter() - t0
    sample = range(0, len(add), max(1, len(add) // 1000))
    found = sum(int(index.knn_query(add[i], k=1)[0][0][0] == len(base) + i) for i in sample)
    print(
        json.dumps(
            {
                "library": f"hnswlib {getattr(hnswlib, '__version__', '')}".strip(),
                "base": len(base),
                "added": len(add),
                "build_threads": a.threads or os.cpu_count(),
                "base_build_seconds": base_seconds,
                "enroll_seconds": enroll_seconds,
                "enroll": summary(ms),
                "search": summary(search_ms),
                "added_found_top1": found / len(sample),
                "peak_rss_bytes": rss("VmHWM"),
            }
        )
    )


def run_side(name, cmd):
    """Runs one side in its own process; its last stdout line is its JSON report."""
    t = time.time()
    # stderr (progress logs) passes through, so that a run cut short says how far it got.
    r = subprocess.run([str(c) for c in cmd], stdout=subprocess.PIPE, text=True)
    if r.returncode != 0:
        sys.exit(f"{name} failed (exit {r.returncode})")
    print(f"{name}: {time.time() - t:.0f} s", file=sys.stderr)
    return json.loads(r.stdout.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base-n", type=int, default=900_000)
    p.add_argument("--add-n", type=int, default=100_000)
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--per-cluster", type=int, default=100)
    p.add_argument("--spread", type=float, default=1.5)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--m", type=int, default=32)
    p.add_argument("--ef-construction", type=int, default=100)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--bin", default=str(ROOT / "target" / "release" / "metricann"))
    p.add_argument("--skip", choices=["metricann", "hnswlib"])
    p.add_argument("--keep-base", action="store_true",
                   help="save our starting gallery, or load it when an earlier run saved it")
    p.add_argument("--out", default=str(ROOT / "bench" / "results"))
    p.add_argument("--worker", choices=["hnswlib"], help=argparse.SUPPRESS)
    for hidden in ("--base-path", "--add-path", "--queries-path"):
        p.add_argument(hidden, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker:
        return hnswlib_worker(a)

    name, (base, add, queries) = data(a)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"incremental-{name}.json"
    result = {"name": name, "k": a.k}
    if a.skip and path.exists():
        kept = json.loads(path.read_text())
        result |= {a.skip: kept[a.skip]} if a.skip in kept else {}
    if a.skip != "metricann":
        cmd = [a.bin, "bench-enroll", "--base", base, "--add", add, "--queries", queries, "--k", str(a.k), "--json"]
        if a.threads:
            cmd += ["--threads", str(a.threads)]
        if a.keep_base:
            cmd += ["--base-gallery", base.parent / "gallery"]
        result["metricann"] = run_side("metricann", cmd)
    if a.skip != "hnswlib":
        cmd = [sys.executable, __file__, "--worker", "hnswlib", "--base-path", base, "--add-path", add,
               "--queries-path", queries, "--k", str(a.k), "--m", str(a.m),
               "--ef-construction", str(a.ef_construction), "--threads", str(a.threads), "--seed", str(a.seed)]
        result["hnswlib"] = run_side("hnswlib", cmd)
    if "metricann" in result and "hnswlib" in result:
        ours, theirs = result["metricann"], result["hnswlib"]
        result["ratios"] = {
            "enroll_mean": ours["enroll"]["mean_ms"] / theirs["enroll"]["mean_ms"],
            "enroll_p99": ours["enroll"]["p99_ms"] / theirs["enroll"]["p99_ms"],
            "base_build_seconds": ours["base_build_seconds"] / theirs["base_build_seconds"],
        }
    path.write_text(json.dumps(result, indent=1))
    print(json.dumps({k: v for k, v in result.items() if k != "metricann"} | {
        "metricann": {k: v for k, v in result.get("metricann", {}).items() if k != "maintenance"}}, indent=1))
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
