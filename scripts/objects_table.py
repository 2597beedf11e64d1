#!/usr/bin/env python3
"""The objects model's evaluation table (docs/models.md) from docs/objects-eval.jsonl:
one row per model and shot count, top-1 per source, then the mean MRR and MAP@R.

    python3 scripts/objects_table.py docs/objects-eval.jsonl
"""
import json
import sys

MODELS = [("objects", "objects (fine-tuned)"), ("imagenet", "ImageNet Lite0, off the shelf"),
          ("glyphs", "glyph model"), ("pixels", "raw pixels 16×16")]
SOURCES = ["photo", "emoji", "clipart", "stamp", "glyphs"]


def main(path):
    rows = [json.loads(line) for line in open(path) if line.strip()]
    by = {(r["model"], r["shots"], r["source"]): r for r in rows}
    print("| model | shots | " + " | ".join(f"{s} top-1" for s in SOURCES) + " | mean top-5 | mean MRR | mean MAP@R |")
    print("| --- | ---: | " + " | ".join("---:" for _ in SOURCES) + " | ---: | ---: | ---: |")
    for shots in (1, 3):
        for key, name in MODELS:
            cells = [by.get((key, shots, s)) for s in SOURCES]
            if not all(cells):
                continue
            mean = lambda k: sum(c[k] for c in cells) / len(cells)
            print(f"| {name} | {shots} | " + " | ".join(f"{c['top1']:.3f}" for c in cells)
                  + f" | {mean('top5'):.3f} | {mean('mrr'):.3f} | {mean('map_at_r'):.3f} |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "docs/objects-eval.jsonl")
