"""int8's recall ceiling on the clustered data of ann_vs_hnswlib.py.

Prints, per size, the recall@k of an exact scan over the int8 codes (one max-abs
scale a vector, as the index quantises): no search over those codes can score
higher, so it separates a graph that stops short of a recall target from codes
that cannot reach it. Also how close the k-th and (k+1)-th true neighbours are,
against the error the codes add to one score.

    python3 bench/int8_ceiling.py --n 100000 1000000 [--out bench/results/int8-ceiling.json]
"""

import argparse
import json
import sys
import time

import numpy as np

from ann_vs_hnswlib import clustered, exact_topk, int8_dequantized, machine, recall


def ceiling(n, a):
    base, queries = clustered(n, a.nq, a.dim, a.per_cluster, a.spread, a.seed)
    truth = exact_topk(base, queries, a.k + 1)
    codes = int8_dequantized(base)
    found = exact_topk(codes, queries, a.k)
    scores = np.einsum("qd,qkd->qk", queries, base[truth])
    coded = np.einsum("qd,qkd->qk", queries, codes[truth])
    return {
        "n": n,
        f"recall_at_{a.k}_exact_scan_over_codes": recall(found, truth, a.k),
        f"median_gap_between_neighbour_{a.k}_and_{a.k + 1}": float(np.median(scores[:, a.k - 1] - scores[:, a.k])),
        "median_abs_score_error_of_codes": float(np.median(np.abs(coded - scores))),
    }


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, nargs="+", default=[100_000])
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--nq", type=int, default=1000)
    p.add_argument("--per-cluster", type=int, default=100)
    p.add_argument("--spread", type=float, default=1.5)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", help="write the rows as JSON here")
    a = p.parse_args()
    rows = []
    for n in a.n:
        t = time.time()
        rows.append(ceiling(n, a))
        print(json.dumps(rows[-1]), f"({time.time() - t:.0f} s)", file=sys.stderr)
    report = {"benchmark": "int8_ceiling", "data": "clustered", "args": vars(a), "machine": machine(), "rows": rows}
    if a.out:
        with open(a.out, "w") as f:
            f.write(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
