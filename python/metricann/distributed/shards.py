"""A gallery split by class over S shard galleries: all examples of a class
live in the shard its label hashes to, so a class-level top-K over the whole
gallery is the best K of the shards' top-Ks."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Union

import numpy as np

import metricann

log = logging.getLogger("metricann.distributed")


def shard_of(label: str, shards: int) -> int:
    """The shard that owns class `label`: stable across processes, machines
    and Python versions (unlike `hash`)."""
    digest = hashlib.blake2b(label.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little") % shards


def shard_dirs(root: Union[str, os.PathLike], shards: int) -> list:
    return [Path(root) / f"shard-{i:03d}" for i in range(shards)]


def read_embeddings(folder: Union[str, os.PathLike]):
    """vectors, labels and fingerprint from an embeddings folder (what
    `metricann extract` and `metricann-ray extract` write)."""
    folder = Path(folder)
    vectors = np.load(folder / "vectors.npy").astype(np.float32, copy=False)
    rows = (folder / "labels.tsv").read_text(encoding="utf-8").splitlines()[1:]
    labels = [r.rsplit("\t", 1)[1] for r in rows if r]
    if len(labels) != len(vectors):
        raise metricann.BadInputError(f"{folder}: {len(labels)} labels for {len(vectors)} vectors")
    fingerprint = json.loads((folder / "meta.json").read_text())["fingerprint"]
    return vectors, labels, fingerprint


def build_shards(
    embeddings: Union[str, os.PathLike],
    out: Union[str, os.PathLike],
    shards: int,
    *,
    m: int = 16,
    quantize: str = "none",
) -> list:
    """Builds `shards` galleries under `out` (shard-000, shard-001, ...) from
    an embeddings folder, each class in the shard its label hashes to, each
    shard one graph. Returns the vectors per shard."""
    if shards < 1:
        raise metricann.BadInputError("shards must be at least 1")
    vectors, labels, fingerprint = read_embeddings(embeddings)
    owner = np.array([shard_of(label, shards) for label in labels])
    counts = []
    for i, folder in enumerate(shard_dirs(out, shards)):
        rows = np.flatnonzero(owner == i)
        g = metricann.Gallery.create(
            folder, dim=vectors.shape[1], fingerprint=fingerprint, m=m, quantize=quantize
        )
        with g:
            if len(rows):
                g.enroll_many([labels[r] for r in rows], vectors[rows], sealed=True)
        counts.append(len(rows))
        log.info("shard %d: %d vectors", i, len(rows))
    (Path(out) / "shards.json").write_text(
        json.dumps({"shards": shards, "fingerprint": fingerprint, "dim": int(vectors.shape[1])})
    )
    return counts


def merge_top_k(per_shard: list, k: int, threshold) -> dict:
    """One query's results from every shard merged into the best `k`
    classes, in the CLI's `search --json` shape."""
    matches = [m for result in per_shard for m in result["matches"]]
    matches.sort(key=lambda m: (-m["score"], m["label"]))
    matches = matches[:k]
    unknown = not matches or (threshold is not None and matches[0]["score"] < threshold)
    return {"unknown": unknown, "matches": matches}
