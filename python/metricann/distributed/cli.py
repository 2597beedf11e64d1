"""`metricann-ray`: MetricANN's jobs on a Ray cluster."""

from __future__ import annotations

import argparse
import json
import logging
import sys

import metricann

EXAMPLES = """examples:
  # a local cluster: one head and one more node
  ray start --head --port=6379 --num-cpus=1
  ray start --address=127.0.0.1:6379 --num-cpus=1

  # embed an ImageFolder on every worker, then index it with the CLI
  metricann-ray extract --model objects.bundle --data photos/ --out emb/ --address auto
  metricann build-index --embeddings emb/ --out gallery/ --optimize
"""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="metricann-ray",
        description="MetricANN on a Ray cluster (docs/scale.md).",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", required=True)
    e = sub.add_parser(
        "extract",
        help="embed an image collection with one model per Ray worker",
        description="Embeds every image of an ImageFolder (or of a list of paths/URIs) on a Ray "
        "cluster; writes Parquet shards to OUT/shards and vectors.npy, labels.tsv and meta.json "
        "(what `metricann extract` writes) to OUT.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    e.add_argument("--model", required=True, help="the model bundle to embed with")
    e.add_argument("--data", help="ImageFolder: one subfolder per class")
    e.add_argument("--list", help="a file of image paths or URIs, one a line (class = parent folder)")
    e.add_argument("--out", required=True, help="folder to write the shards and embeddings to")
    e.add_argument("--workers", type=int, help="model actors (default: one per cluster CPU)")
    e.add_argument("--batch-size", type=int, default=32, help="images per embedding call")
    e.add_argument("--backend", default="ndarray", help="ndarray (CPU) or wgpu")
    e.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS, else a local one)")
    e.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    try:
        if args.command == "extract":
            from .extract import extract

            if bool(args.data) == bool(args.list):
                raise metricann.BadInputError("give exactly one of --data and --list")
            source = args.data
            if args.list:
                with open(args.list) as f:
                    source = [line.strip() for line in f if line.strip()]
            summary = extract(
                source,
                args.model,
                args.out,
                workers=args.workers,
                batch_size=args.batch_size,
                backend=args.backend,
                address=args.address,
            )
            if args.json:
                print(json.dumps(summary))
            else:
                print(f"{summary['images']} images ({summary['skipped']} skipped) -> {summary['out']}")
    except metricann.Error as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
