"""Embedding an image collection on a Ray cluster.

Ray Data reads the files (local paths or any URI pyarrow reaches), an actor
pool holding one `metricann.Model` per worker embeds them in batches, and the
vectors land in Parquet shards of (path, label, vector, error). `collect` turns
the shards into the folder `metricann extract` writes (vectors.npy, labels.tsv,
meta.json), which `metricann build-index` and `Gallery.enroll_many` take.
"""

from __future__ import annotations

import json
import logging
import os
import posixpath
import time
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np

import metricann

log = logging.getLogger("metricann.distributed")

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp")

# CPUs a file-reading task asks for: reads must find room beside a pool of
# model actors that would otherwise hold every CPU and starve them.
READ_CPUS = 0.5


def image_folder(root: Union[str, os.PathLike]) -> list:
    """The images of an ImageFolder (one subfolder per class, searched
    recursively; hidden files and folders left out, as `metricann extract`
    does), sorted."""
    root = Path(root)
    if not root.is_dir():
        raise metricann.NotFoundError(f"not found: {root}")
    paths = []
    for class_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for f in sorted(class_dir.rglob("*")):
            hidden = any(part.startswith(".") for part in f.relative_to(class_dir).parts)
            if f.is_file() and not hidden and f.suffix.lower() in IMAGE_EXTENSIONS:
                paths.append(str(f.resolve()))
    if not paths:
        raise metricann.BadInputError(f"{root}: no images in class subfolders")
    return paths


def label_of(path: str, root: Optional[str] = None) -> str:
    """An image's class: the folder under `root` it is in (an ImageFolder's
    class subfolder), or without a root the folder that holds it."""
    path = path.replace(os.sep, "/")
    if root is not None:
        rel = posixpath.relpath(path, root.replace(os.sep, "/"))
        if not rel.startswith("../") and "/" in rel:
            return rel.split("/", 1)[0]
    return posixpath.basename(posixpath.dirname(path))


class Embedder:
    """The Ray Data actor: one model, loaded once, embedding batches of
    (bytes, path). An image the model cannot read gets a zero vector and its
    error, so one bad file does not stop a crawl of millions."""

    def __init__(self, model_path: str, backend: str = "ndarray", root: Optional[str] = None):
        self.model = metricann.Model.open(model_path, backend)
        self.root = root

    def __call__(self, batch: dict) -> "pyarrow.Table":  # noqa: F821
        import pyarrow as pa

        data, paths = list(batch["bytes"]), [str(p) for p in batch["path"]]
        vectors = np.zeros((len(data), self.model.dim), dtype=np.float32)
        errors = [""] * len(data)
        try:
            vectors[:] = self.model.embed(data)
        except metricann.BadImageError:
            for i, item in enumerate(data):
                try:
                    vectors[i] = self.model.embed([item])[0]
                except metricann.BadImageError as e:
                    errors[i] = str(e)
        flat = pa.array(vectors.reshape(-1), type=pa.float32())
        return pa.table(
            {
                "path": pa.array(paths, type=pa.string()),
                "label": pa.array([label_of(p, self.root) for p in paths], type=pa.string()),
                "vector": pa.FixedSizeListArray.from_arrays(flat, self.model.dim),
                "error": pa.array(errors, type=pa.string()),
            }
        )


def extract(
    source: Union[str, os.PathLike, Sequence[str]],
    model: Union[str, os.PathLike],
    out: Union[str, os.PathLike],
    *,
    workers: Optional[int] = None,
    batch_size: int = 32,
    backend: str = "ndarray",
    address: Optional[str] = None,
) -> dict:
    """Embeds every image of `source` (an ImageFolder, or a list of paths or
    URIs whose parent folder names the class) with the bundle `model` on
    `workers` actors (default: one per CPU of the cluster, less room for reading), writing Parquet
    shards to `out/shards` and the embeddings folder to `out`. Connects to the
    Ray cluster at `address` (default: RAY_ADDRESS, else a local one).
    Returns a summary: images, skipped, dim, fingerprint, seconds."""
    import ray

    started = time.perf_counter()
    model_path = str(Path(model).resolve())
    fingerprint = metricann.Model.open(model_path, backend).fingerprint
    root = None
    if isinstance(source, (str, os.PathLike)):
        root = str(Path(source).resolve())
        paths = image_folder(root)
    else:
        paths = list(source)
    if not paths:
        raise metricann.BadInputError("no images to embed")
    if not ray.is_initialized():
        ray.init(address=address, logging_level=logging.WARNING)
    cpus = float(ray.cluster_resources().get("CPU", 1))
    if workers is None:
        workers = max(1, int(cpus - READ_CPUS))
    actor_cpus = min(1.0, max(0.1, (cpus - READ_CPUS) / workers))
    out = Path(out)
    shards = out / "shards"
    log.info("embedding %d images on %d workers into %s", len(paths), workers, shards)
    ds = ray.data.read_binary_files(paths, include_paths=True, num_cpus=READ_CPUS)
    ds = ds.map_batches(
        Embedder,
        fn_constructor_args=(model_path, backend, root),
        batch_size=batch_size,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=workers),
        num_cpus=actor_cpus,
    )
    ds.write_parquet(str(shards))
    summary = collect(shards, out, fingerprint=fingerprint, model=model_path)
    summary.update(workers=workers, seconds=time.perf_counter() - started)
    log.info("extracted %(images)d images (%(skipped)d skipped) in %(seconds).1f s", summary)
    return summary


def collect(
    shards: Union[str, os.PathLike],
    out: Union[str, os.PathLike],
    *,
    fingerprint: str,
    model: str = "",
) -> dict:
    """Reads Parquet shards of (path, label, vector, error) and writes the
    embeddings folder `metricann extract` writes: vectors.npy, labels.tsv
    (path, class), meta.json; plus skipped.tsv for images that failed."""
    import pyarrow.parquet as pq

    table = pq.read_table(str(shards)).sort_by("path")
    paths = table.column("path").to_pylist()
    labels = table.column("label").to_pylist()
    errors = table.column("error").to_pylist()
    vector = table.column("vector").combine_chunks()
    dim = vector.type.list_size
    vectors = vector.flatten().to_numpy(zero_copy_only=False).reshape(-1, dim)
    good = np.array([not e for e in errors], dtype=bool)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "vectors.npy", np.ascontiguousarray(vectors[good], dtype=np.float32))
    kept = [(p, l) for p, l, g in zip(paths, labels, good) if g]
    (out / "labels.tsv").write_text("path\tclass\n" + "".join(f"{p}\t{l}\n" for p, l in kept))
    skipped = [(p, e) for p, e in zip(paths, errors) if e]
    if skipped:
        (out / "skipped.tsv").write_text("path\terror\n" + "".join(f"{p}\t{e}\n" for p, e in skipped))
    meta = {"fingerprint": fingerprint, "dim": dim, "model": model, "count": len(kept)}
    (out / "meta.json").write_text(json.dumps(meta))
    return {"images": len(kept), "skipped": len(skipped), "dim": dim, "fingerprint": fingerprint, "out": str(out)}
