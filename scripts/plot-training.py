#!/usr/bin/env python3
"""Training curves: metrics.jsonl (one object per epoch, as `metricann train`
writes it) → a CSV and a PNG of train loss and validation MAP@R / P@1.

usage: plot-training.py METRICS.jsonl OUT.csv OUT.png   (the PNG needs matplotlib)
"""
import csv
import json
import sys


def main():
    if len(sys.argv) != 4:
        raise SystemExit(__doc__)
    rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
    fields = ["epoch", "train_loss", "val_map_at_r", "val_precision_at_1", "lr", "images_per_sec", "seconds"]
    with open(sys.argv[2], "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: wrote the CSV only")
        return
    epochs = [r["epoch"] for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6), dpi=100)
    trained = [r for r in rows if r.get("train_loss") is not None]
    left.plot([r["epoch"] for r in trained], [r["train_loss"] for r in trained], color="tab:red")
    left.set(title="training loss (batch-hard triplet)", xlabel="epoch")
    right.plot(epochs, [r["val_map_at_r"] for r in rows], label="MAP@R")
    right.plot(epochs, [r["val_precision_at_1"] for r in rows], label="P@1")
    right.set(title="validation (held-out level-1 classes)", xlabel="epoch", ylim=(0, 1))
    right.legend()
    for ax in (left, right):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(sys.argv[3])
    print(f"wrote {sys.argv[2]} and {sys.argv[3]}")


if __name__ == "__main__":
    main()
