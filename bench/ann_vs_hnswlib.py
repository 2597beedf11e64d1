#!/usr/bin/env python3
"""Native ANN benchmark: `metricann bench` against hnswlib, same data, same M and ef.

Generates clustered unit vectors (numpy, seeded; cached under target/bench-data),
computes the exact top-k with numpy, then runs, each in its own process (so each
has its own peak RSS):

  - our CLI:  metricann bench --base B --queries Q --gt G --k K --ef ... --m M
              --quantize none[,int8-residual][,int8] --json (the same graph
              measured again for each storage after the first: one curve each)
  - hnswlib:  this script with --worker hnswlib (space "ip", the same M,
              ef_construction and ef list)

Both build on --threads threads and query on one thread. A machine whose speed
drifts while one side runs after the other (a shared, lent one) moves a single
run's ratios by tens of per cent: --rounds N builds each graph once, saves it
(`metricann bench --save-index`, hnswlib's save_index), and queries the two again,
alternating, N - 1 more times (`--index`, load_index); each QPS is then the median
of the rounds, and each round's own ratios are kept. Writes
bench/results/<name>.json (both reports, QPS at recall 0.90/0.95/0.99 and the
ratios) and bench/results/<name>.png (recall@k against QPS).

Setup (once; the venv is under target/, which git ignores):
  python3 -m venv target/bench-venv && target/bench-venv/bin/pip install numpy hnswlib matplotlib
  cargo build --release -p metricann-trainer
Run:
  target/bench-venv/bin/python bench/ann_vs_hnswlib.py --n 100000
  target/bench-venv/bin/python bench/ann_vs_hnswlib.py --n 20000 --neighbors diverse
  target/bench-venv/bin/python bench/ann_vs_hnswlib.py --base emb/vectors.npy --nq 1000   # real embeddings
  target/bench-venv/bin/python bench/ann_vs_hnswlib.py --n 100000 --m 32 --rounds 5       # alternating
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
TARGETS = (0.90, 0.95, 0.99)


def rss(field):
    """A /proc/self/status field in bytes (VmRSS, VmHWM), or None."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def unit(x):
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def clustered(n, nq, dim, per_cluster, spread, seed):
    """n + nq unit vectors around n / per_cluster random centres: a centre plus
    Gaussian noise of norm ≈ spread (spread 1: cosine ≈ 0.7 to the centre,
    ≈ 0.5 between two members), like embeddings of classes. Queries are fresh
    draws around random centres."""
    rng = np.random.default_rng(seed)
    centres = unit(rng.standard_normal((max(1, n // per_cluster), dim)))

    def draw(count, which):
        noise = rng.standard_normal((count, dim)).astype(np.float32) * (spread / np.sqrt(dim))
        return unit(centres[which] + noise)

    base = draw(n, np.arange(n) % len(centres))
    queries = draw(nq, rng.integers(0, len(centres), nq))
    return base, queries


def exact_topk(base, queries, k):
    out = np.empty((len(queries), k), dtype=np.int64)
    for s in range(0, len(queries), 256):
        sims = queries[s : s + 256] @ base.T
        top = np.argpartition(-sims, k, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(sims, top, axis=1), axis=1)
        out[s : s + 256] = np.take_along_axis(top, order, axis=1)
    return out


def dataset(a):
    """Paths of base.npy, queries.npy, gt.npy, made (or reused) under target/bench-data."""
    if a.base:
        name = f"file-{Path(a.base).stem}-{a.nq}q"
    else:
        name = f"clustered-{a.n}x{a.dim}-c{a.per_cluster}-s{a.spread}-{a.nq}q-seed{a.seed}"
    d = ROOT / "target" / "bench-data" / name
    paths = [d / f for f in ("base.npy", "queries.npy", f"gt{a.k}.npy")]
    if all(p.exists() for p in paths):
        return name, paths
    d.mkdir(parents=True, exist_ok=True)
    if a.base:
        x = unit(np.load(a.base).astype(np.float32))
        rng = np.random.default_rng(a.seed)
        perm = rng.permutation(len(x))
        queries, base = x[perm[: a.nq]], x[perm[a.nq :]]
    else:
        base, queries = clustered(a.n, a.nq, a.dim, a.per_cluster, a.spread, a.seed)
    t = time.time()
    gt = exact_topk(base, queries, a.k)
    print(f"data: {name}: ground truth in {time.time() - t:.1f} s", file=sys.stderr)
    np.save(paths[0], base)
    np.save(paths[1], queries)
    np.save(paths[2], gt)
    return name, paths


def recall(found, gt, k):
    return float(np.mean([len(set(f[:k]) & set(g[:k])) / k for f, g in zip(found, gt)]))


def int8_dequantized(base):
    """What the index's int8 codes stand for: one max-abs scale a vector, times
    the rounded codes (distance::quantize_i8)."""
    scale = np.abs(base).max(axis=1, keepdims=True) / np.float32(127)
    codes = np.clip(np.round(base / np.where(scale == 0, 1, scale)), -127, 127)
    return (codes * scale).astype(np.float32)


def int8_recall_ceiling(base_path, queries_path, gt_path, k):
    """recall@k of an exact scan over the int8 codes: no search over those codes
    can score higher."""
    found = exact_topk(int8_dequantized(np.load(base_path)), np.load(queries_path), k)
    return recall(found, np.load(gt_path), k)


def hnswlib_worker(a):
    """Runs in its own process: builds and queries hnswlib, prints one JSON object."""
    import hnswlib

    base = np.load(a.base_path)
    queries = np.load(a.queries_path)
    gt = np.load(a.gt_path)
    rss_inputs = rss("VmRSS")
    try:
        Path("/proc/self/clear_refs").write_text("5")  # reset the peak RSS
    except OSError:
        pass
    index = hnswlib.Index(space="ip", dim=base.shape[1])
    t = time.perf_counter()
    if a.load_path:  # a later round: the graph an earlier one saved, no build
        index.load_index(a.load_path, max_elements=len(base))
    else:
        index.init_index(max_elements=len(base), ef_construction=a.ef_construction, M=a.m, random_seed=a.seed)
        index.set_num_threads(a.threads or os.cpu_count())
        index.add_items(base, np.arange(len(base)))
    build_seconds = 0.0 if a.load_path else time.perf_counter() - t
    peak = rss("VmHWM")
    del base
    saved = Path(a.save_path or a.load_path or ROOT / "target" / "bench-data" / "hnswlib-tmp.bin")
    if not a.load_path:
        index.save_index(str(saved))
    index_bytes = saved.stat().st_size
    if not (a.save_path or a.load_path):
        saved.unlink()
    index.set_num_threads(1)
    runs = []
    for ef in a.ef:
        index.set_ef(ef)
        index.knn_query(queries[:10], k=a.k)
        t = time.perf_counter()
        labels, _ = index.knn_query(queries, k=a.k, num_threads=1)
        seconds = time.perf_counter() - t
        # Latencies one query at a time (these include ~µs of Python call overhead).
        ms = []
        for q in queries[: min(len(queries), 1000)]:
            t1 = time.perf_counter()
            index.knn_query(q, k=a.k)
            ms.append((time.perf_counter() - t1) * 1e3)
        ms.sort()
        runs.append(
            {
                "ef": ef,
                "qps": len(queries) / seconds,
                "mean_ms": seconds * 1e3 / len(queries),
                "p50_ms": ms[len(ms) // 2],
                "p99_ms": ms[min(len(ms) - 1, round(0.99 * (len(ms) - 1)))],
                "recall_at_k": recall(labels, gt, a.k),
            }
        )
    print(
        json.dumps(
            {
                "library": f"hnswlib {getattr(hnswlib, '__version__', '')}".strip(),
                "n": index.get_current_count(),
                "dim": queries.shape[1],
                "nq": len(queries),
                "k": a.k,
                "m": a.m,
                "ef_construction": a.ef_construction,
                "build_threads": a.threads or os.cpu_count(),
                "build_seconds": build_seconds,
                "memory": {
                    "rss_inputs_bytes": rss_inputs,
                    "peak_rss_build_bytes": peak,
                    "rss_after_build_bytes": rss("VmRSS"),
                    "index_bytes": index_bytes,
                },
                "runs": runs,
            }
        )
    )


def runs_of(report, quantization="none"):
    """The runs of one vector storage (hnswlib's runs, and older reports, are "none")."""
    return [r for r in report["runs"] if r.get("quantization", "none") == quantization]


def qps_at(runs, target):
    """The best QPS among the runs reaching recall ≥ target (None if none does)."""
    ok = [r["qps"] for r in runs if r["recall_at_k"] >= target]
    return max(ok) if ok else None


def qps_interpolated(runs, target):
    """QPS at recall exactly `target`: log(QPS) interpolated linearly in recall
    between the two runs around it (None outside the measured range)."""
    pts = sorted((r["recall_at_k"], r["qps"]) for r in runs)
    for (r0, q0), (r1, q1) in zip(pts, pts[1:]):
        if r0 <= target <= r1 and r1 > r0:
            w = (target - r0) / (r1 - r0)
            return float(np.exp(np.log(q0) + w * (np.log(q1) - np.log(q0))))
    return None


def plot(results, png, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    curves = [("metricann", q, style) for q, style in (("none", "o-"), ("int8-residual", "v-"), ("int8", "^-"))
              if runs_of(results["metricann"], q)]
    curves.append(("hnswlib", "none", "s--"))
    for key, q, style in curves:
        r = results[key]
        runs = runs_of(r, q)
        xs = [x["recall_at_k"] for x in runs]
        ys = [x["qps"] for x in runs]
        label = key if q == "none" else f"{key} {q}"
        ax.plot(xs, ys, style, label=f"{label} (build {r['build_seconds']:.0f} s)")
        for x, y, run in zip(xs, ys, runs):
            ax.annotate(f"ef {run['ef']}", (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_yscale("log")
    ax.set_xlabel(f"recall@{results['k']}")
    ax.set_ylabel("queries per second (1 thread)")
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(png)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=100_000, help="base vectors (generated data)")
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--nq", type=int, default=1000, help="queries")
    p.add_argument("--per-cluster", type=int, default=100, help="vectors per cluster")
    p.add_argument("--spread", type=float, default=1.5, help="noise norm around a centre")
    p.add_argument("--base", help="use this N×D .npy (e.g. extracted embeddings) instead; --nq rows become queries")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--m", type=int, default=16, help="HNSW M, the same for both")
    p.add_argument("--ef-construction", type=int, default=100)
    p.add_argument("--ef", type=lambda s: [int(x) for x in s.split(",")], default=[10, 16, 32, 64, 128, 256])
    p.add_argument("--neighbors", default="diverse", help="our build's neighbour selection (diverse is hnswlib's)")
    p.add_argument("--quantize", default="none",
                   help="our vector storage(s), in this order: none, int8-residual, int8 (e.g. none,int8-residual,int8)")
    p.add_argument("--threads", type=int, default=0, help="build threads for both (0: all cores)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--bin", default=str(ROOT / "target" / "release" / "metricann"))
    p.add_argument("--skip", choices=["metricann", "hnswlib"], help="reuse that side from an earlier result file")
    p.add_argument("--out", default=str(ROOT / "bench" / "results"))
    p.add_argument("--worker", choices=["hnswlib"], help=argparse.SUPPRESS)
    p.add_argument("--base-path", help=argparse.SUPPRESS)
    p.add_argument("--queries-path", help=argparse.SUPPRESS)
    p.add_argument("--gt-path", help=argparse.SUPPRESS)
    p.add_argument("--save-path", help=argparse.SUPPRESS)
    p.add_argument("--load-path", help=argparse.SUPPRESS)
    p.add_argument("--rounds", type=int, default=1,
                   help="query both graphs this many times, alternating sides (each built once, saved, "
                        "and loaded again for rounds 2..N); QPS is then the median of the rounds")
    a = p.parse_args()
    if a.worker:
        return hnswlib_worker(a)

    name, (base, queries, gt) = dataset(a)
    ef = ",".join(map(str, a.ef))
    storage = "" if a.quantize == "none" else "-" + a.quantize.replace(",", "-")
    tag = f"{name}-M{a.m}-efc{a.ef_construction}-{a.neighbors}{storage}-t{a.threads}"
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    result_path = out / f"ann_vs_hnswlib-{tag}.json"
    # --skip: the other side of an earlier result with the same settings, or
    # else of the latest on the same data, M, efC and threads.
    previous = {}
    if a.skip:
        pattern = f"ann_vs_hnswlib-{name}-M{a.m}-efc{a.ef_construction}-*-t{a.threads}.json"
        earlier = sorted(out.glob(pattern), key=lambda p: p.stat().st_mtime)
        if result_path.exists():
            earlier.append(result_path)
        if not earlier:
            sys.exit(f"--skip {a.skip}: no earlier {pattern} in {out}")
        print(f"--skip {a.skip}: its side from {earlier[-1].name}", file=sys.stderr)
        previous = json.loads(earlier[-1].read_text())

    results = {"benchmark": "ann_vs_hnswlib", "data": name, "k": a.k, "machine": machine()}
    if a.rounds > 1 and a.skip:
        sys.exit("--rounds needs both sides (no --skip)")
    saved = ROOT / "target" / "bench-data" / name
    ours_saved, theirs_saved = saved / f"metricann-graph-{tag}", saved / f"hnswlib-{tag}.bin"
    rounds = []
    for r in range(a.rounds):
        again, ours_runs = r > 0, None
        if a.skip != "metricann":
            cmd = [a.bin, "bench", "--base", str(base), "--queries", str(queries), "--gt", str(gt), "--k", str(a.k),
                   "--ef", ef, "--m", str(a.m), "--ef-construction", str(a.ef_construction),
                   "--neighbors", a.neighbors, "--threads", str(a.threads), "--quantize", a.quantize, "--json"]
            if a.rounds > 1:
                cmd += ["--index" if again else "--save-index", str(ours_saved)]
            print(f"run {r + 1}/{a.rounds}:", " ".join(cmd), file=sys.stderr)
            report = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
            if not again:
                results["metricann"], results["metricann_command"] = report, " ".join(cmd)
            ours_runs = report["runs"]
        if a.skip != "hnswlib":
            cmd = [sys.executable, __file__, "--worker", "hnswlib", "--base-path", str(base), "--queries-path",
                   str(queries), "--gt-path", str(gt), "--k", str(a.k), "--ef", ef, "--m", str(a.m),
                   "--ef-construction", str(a.ef_construction), "--threads", str(a.threads), "--seed", str(a.seed)]
            if a.rounds > 1:
                cmd += ["--load-path" if again else "--save-path", str(theirs_saved)]
            print(f"run {r + 1}/{a.rounds}: hnswlib worker", file=sys.stderr)
            report = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
            if not again:
                results["hnswlib"] = report
            if ours_runs is not None:
                rounds.append({"metricann": ours_runs, "hnswlib": report["runs"]})
    if a.skip:
        results[a.skip] = previous[a.skip]
    if a.rounds > 1:
        median_of_rounds(results, rounds)
        shutil.rmtree(ours_saved, ignore_errors=True)
        theirs_saved.unlink(missing_ok=True)

    ours, theirs = results["metricann"], results["hnswlib"]
    summary = {"build_seconds_ratio": ours["build_seconds"] / theirs["build_seconds"]}
    theirs_runs = runs_of(theirs)
    for quantization in ("none", "int8-residual", "int8"):
        ours_runs = runs_of(ours, quantization)
        if not ours_runs:
            continue
        prefix = "" if quantization == "none" else quantization.replace("-", "_") + "_"
        for t in TARGETS:
            for key, at in (("qps_at_recall", qps_at), ("qps_interpolated_at_recall", qps_interpolated)):
                q1, q2 = at(ours_runs, t), at(theirs_runs, t)
                summary[f"{prefix}{key}_{t:.2f}"] = {"metricann": q1, "hnswlib": q2,
                                                      "ratio": (q1 / q2) if q1 and q2 else None}
        summary[f"{prefix}index_memory_bytes"] = ours_runs[0].get("index_memory_bytes")
        if quantization == "int8":
            summary["int8_recall_ceiling"] = int8_recall_ceiling(base, queries, gt, a.k)
    for key in ("index_bytes", "peak_rss_build_bytes"):
        a1, a2 = ours["memory"].get(key), theirs["memory"].get(key)
        summary[f"{key}_ratio"] = (a1 / a2) if a1 and a2 else None
    results["summary"] = summary
    result_path.write_text(json.dumps(results, indent=2) + "\n")
    plot(results, result_path.with_suffix(".png"),
         f"{name}, k={a.k}, M={a.m}, efC={a.ef_construction}, ours: {a.neighbors}")
    print(json.dumps(summary, indent=2))
    print(f"wrote {result_path} and {result_path.with_suffix('.png')}", file=sys.stderr)


def median_of_rounds(results, rounds):
    """Each side's QPS at each (storage, ef) becomes the median of its rounds; the
    rounds themselves, and each round's own ratio, stay in results["rounds"]."""
    key = lambda run: (run.get("quantization", "none"), run["ef"])
    for side in ("metricann", "hnswlib"):
        for run in results[side]["runs"]:
            qps = [x["qps"] for rnd in rounds for x in rnd[side] if key(x) == key(run)]
            run["qps"], run["qps_rounds"] = statistics.median(qps), qps
    for rnd in rounds:
        theirs = {x["ef"]: x["qps"] for x in rnd["hnswlib"]}
        rnd["ratio"] = [{"quantization": x.get("quantization", "none"), "ef": x["ef"], "ratio": x["qps"] / theirs[x["ef"]]}
                        for x in rnd["metricann"] if x["ef"] in theirs]
    results["rounds"] = rounds


def machine():
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count()}


if __name__ == "__main__":
    main()
