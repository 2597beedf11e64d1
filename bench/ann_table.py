#!/usr/bin/env python3
"""The markdown table of bench/README.md from ann_vs_hnswlib.py result files.

Each file is one run of both sides; several files of the same data and M (the
repeated runs of one session) give one table of medians, because the lent
machine moves a query row by a third between runs. Every storage measured
(none, int8-residual, int8) gets its columns beside hnswlib's.

    target/bench-venv/bin/python bench/ann_table.py bench/results/ann-2026-12-06-residual/r*-…-100000x128-…-M16-*.json
"""

import argparse
import json
import statistics
import sys

from ann_vs_hnswlib import TARGETS, qps_at, runs_of

STORAGES = ("none", "int8-residual", "int8")


def runs_by_ef(side, storage):
    return {r["ef"]: r for r in runs_of(side, storage)}


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def threads(report):
    """The build threads both sides ran on (the --threads of our command line)."""
    words = report.get("metricann_command", "").split()
    return words[words.index("--threads") + 1] if "--threads" in words else "?"


def fmt(qps, recall=None):
    if qps is None:
        return "–"
    text = f"{qps:,.0f}"
    return f"{text} ({recall:.3f})" if recall is not None else text


def table(reports):
    ours = [r["metricann"] for r in reports]
    theirs = [r["hnswlib"] for r in reports]
    storages = [s for s in STORAGES if runs_of(ours[0], s)]
    names = [s if s != "none" else "f32" for s in storages]
    runs = f"median of {len(reports)} runs" if len(reports) > 1 else "one run"
    rows = [[f"| {ours[0]['n']:,} × {ours[0]['dim']}, M {ours[0]['m']} ({runs})",
             *[f"metricann {n}" for n in names], "hnswlib 0.8.0", *[f"{n} ÷ hnswlib" for n in names]]]
    build = [med([o["build_seconds"] for o in ours]), med([t["build_seconds"] for t in theirs])]
    rows.append([f"build, {threads(reports[0])} threads",
                 f"{build[0]:.3g} s", *["" for _ in storages[1:]], f"{build[1]:.3g} s",
                 f"{build[0] / build[1]:.2f}", *["" for _ in storages[1:]]])
    for target in TARGETS:
        cells, ratios = [], []
        hn = [qps_at(runs_of(t), target) for t in theirs]
        for s in storages:
            mine = [qps_at(runs_of(o, s), target) for o in ours]
            cells.append(fmt(med(mine)))
            per_run = [a / b for a, b in zip(mine, hn) if a and b]
            ratios.append(f"{med(per_run):.2f}" if per_run else "–")
        rows.append([f"QPS at recall@10 ≥ {target:.2f}", *cells, fmt(med(hn)), *ratios])
    for ef in sorted(runs_by_ef(ours[0], "none")):
        cells, ratios = [], []
        hq = [t["runs"][[r["ef"] for r in t["runs"]].index(ef)] for t in theirs]
        for s in storages:
            mine = [runs_by_ef(o, s)[ef] for o in ours]
            cells.append(fmt(med([m["qps"] for m in mine]), med([m["recall_at_k"] for m in mine])))
            ratios.append(f"{med([m['qps'] / h['qps'] for m, h in zip(mine, hq)]):.2f}")
        rows.append([f"ef {ef}: QPS (recall@10)", *cells,
                     fmt(med([h["qps"] for h in hq]), med([h["recall_at_k"] for h in hq])), *ratios])
    memory = [fmt(med([runs_of(o, s)[0].get("index_memory_bytes") for o in ours]) / 1e6)
              + " MB" for s in storages]
    rows.append(["index memory (vectors, links, ids)", *memory, "", *["" for _ in storages]])
    rss = [med([o["memory"].get("peak_rss_build_bytes") for o in ours]),
           med([t["memory"].get("peak_rss_build_bytes") for t in theirs])]
    rows.append(["peak RSS of the build", fmt(rss[0] / 1e6) + " MB", *["" for _ in storages[1:]],
                 fmt(rss[1] / 1e6) + " MB", f"{rss[0] / rss[1]:.2f}", *["" for _ in storages[1:]]])
    lines = [" | ".join(rows[0]) + " |", "| --- |" + " ---: |" * (len(rows[0]) - 1)]
    lines += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("files", nargs="+", help="ann_vs_hnswlib result files of one data set and M")
    a = p.parse_args()
    reports = [json.load(open(f)) for f in a.files]
    keys = {(r["data"], r["metricann"]["m"]) for r in reports}
    if len(keys) != 1:
        sys.exit(f"one data set and M a table, got {sorted(keys)}")
    print(table(reports))


if __name__ == "__main__":
    main()
