#!/usr/bin/env python3
"""On-device adaptation, natively: top-1 of camera-like queries of classes the
objects model never saw, with its shipped projection head and with the head
retrained on the enrolled images (`metricann bench-adapt`, the same Rust code the
npm package runs in wasm).

Data: the objects model's own evaluation folders (scripts/objects-data.sh writes
them to target/objects-data/eval/): per source (photo, emoji, clipart, stamp),
classes never trained on, each with enroll-* images and query-* captures. For
every source, class count and shot count, one run; the defaults of
metricann::adapt::AdaptOptions, not tuned on these folders.

  target/data-venv/bin/python bench/adapt.py   # all sources (the venv of scripts/objects-data.sh has tqdm), 20 and 100 classes, 1 and 3 shots
  target/data-venv/bin/python bench/adapt.py --sources photo --classes 20

Writes bench/results/adapt-native.json.
"""

import argparse
import json
import subprocess
import sys
from datetime import date
from pathlib import Path

from tqdm import tqdm

ROOT = Path(__file__).resolve().parent.parent


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--binary", help="the metricann CLI (default: target/release/metricann, built first)")
    p.add_argument("--model", default=str(ROOT / "www/models/objects.bundle"), help="model bundle")
    p.add_argument("--data", default=str(ROOT / "target/objects-data/eval"), help="evaluation folders, one per source")
    p.add_argument("--sources", default="photo,emoji,clipart,stamp", help="comma-separated sources")
    p.add_argument("--classes", default="20,100", help="comma-separated class counts")
    p.add_argument("--shots", default="1,3", help="comma-separated enrolled images per class")
    p.add_argument("--loss", default="triplet", choices=["triplet", "proxy"], help="the metric loss")
    p.add_argument("--out", help="results file (default bench/results/adapt-native.json, -proxy for the proxy loss)")
    a = p.parse_args()
    if a.out is None:
        suffix = "" if a.loss == "triplet" else f"-{a.loss}"
        a.out = str(ROOT / f"bench/results/adapt-native{suffix}.json")
    if a.binary is None:
        # A stale binary would measure old code: cargo rebuilds what changed.
        subprocess.run(["cargo", "build", "--release", "-p", "metricann-trainer"], check=True, cwd=ROOT)
        a.binary = str(ROOT / "target/release/metricann")
    runs = [(s, int(n), int(k)) for s in a.sources.split(",") for n in a.classes.split(",") for k in a.shots.split(",")]
    results = []
    for source, classes, shots in tqdm(runs, desc="bench-adapt"):
        cmd = [a.binary, "bench-adapt", "--model", a.model, "--data", f"{a.data}/{source}",
               "--classes", str(classes), "--shots", str(shots), "--loss", a.loss, "--json"]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        report = json.loads(out.strip().splitlines()[-1])
        report["source"] = source
        results.append(report)
        tqdm.write(f"{source} {report['classes']}×{shots}: top-1 {report['top1_before']:.3f} → {report['top1_after']:.3f}"
                   f" (kept {report['adaptation']['kept']})")
    Path(a.out).write_text(json.dumps({
        "date": date.today().isoformat(),
        "machine": "this 2-core VM, native CPU (burn ndarray), release build",
        "model": Path(a.model).name,
        "results": results,
    }, indent=2) + "\n")
    print(f"results: {a.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
