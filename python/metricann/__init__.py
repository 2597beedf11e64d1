"""MetricANN for Python: embed images with a MetricANN model, keep classes of
examples in a gallery folder (the format the CLI and the browser package read),
and search them; or index raw vectors.

    import metricann
    model = metricann.Model.open("objects.mcm")
    gallery = metricann.Gallery.create("shop", model=model)
    gallery.enroll("mug", ["mug1.jpg", "mug2.jpg"], model=model)
    [result] = gallery.search(["query.jpg"], model=model, k=3)
    print(result.label, result.matches[0].score)

Errors are `metricann.Error` subclasses whose `.code` is the code the JS package
uses (`BAD_IMAGE`, `BAD_INPUT`, `NOT_FOUND`, ...).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence, Union

import numpy as np

from . import _metricann
from ._metricann import (
    AlreadyExistsError,
    BadImageError,
    BadInputError,
    CorruptError,
    Error,
    InternalError,
    IoError,
    LockedError,
    ModelMismatchError,
    NotFoundError,
    QuotaExceededError,
)

__version__ = _metricann.__version__

# Raised from Python too: the class carries the code the instance would.
for _cls, _code in [
    (Error, "INTERNAL"),
    (BadImageError, "BAD_IMAGE"),
    (BadInputError, "BAD_INPUT"),
    (CorruptError, "CORRUPT"),
    (ModelMismatchError, "MODEL_MISMATCH"),
    (NotFoundError, "NOT_FOUND"),
    (AlreadyExistsError, "ALREADY_EXISTS"),
    (QuotaExceededError, "QUOTA_EXCEEDED"),
    (LockedError, "LOCKED"),
    (IoError, "IO"),
    (InternalError, "INTERNAL"),
]:
    _cls.code = _code

__all__ = [
    "Model",
    "Gallery",
    "Index",
    "Match",
    "SearchResult",
    "Error",
    "BadImageError",
    "BadInputError",
    "CorruptError",
    "ModelMismatchError",
    "NotFoundError",
    "AlreadyExistsError",
    "QuotaExceededError",
    "LockedError",
    "IoError",
    "InternalError",
]

PathLike = Union[str, "os.PathLike[str]"]
ImageLike = Union[PathLike, bytes, np.ndarray, Any]


def _image_item(item: ImageLike) -> Union[bytes, np.ndarray]:
    """What the native module takes: encoded bytes or a uint8 pixel array."""
    if isinstance(item, (bytes, bytearray, memoryview)):
        return bytes(item)
    if isinstance(item, (str, os.PathLike)):
        try:
            return Path(item).read_bytes()
        except FileNotFoundError as e:
            raise NotFoundError(f"not found: {item}") from e
        except OSError as e:
            raise IoError(f"{item}: {e}") from e
    if isinstance(item, np.ndarray):
        if item.dtype != np.uint8:
            raise BadInputError(f"a pixel array must be uint8, not {item.dtype}")
        return np.ascontiguousarray(item)
    if hasattr(item, "convert") and hasattr(item, "mode"):  # a PIL image
        return np.asarray(item.convert("RGBA"), dtype=np.uint8)
    raise BadInputError(
        f"expected a path, bytes, a PIL image or a uint8 array, got {type(item).__name__}"
    )


def _images(items: Union[ImageLike, Iterable[ImageLike]]) -> list:
    if isinstance(items, (str, os.PathLike, bytes, bytearray, memoryview)):
        items = [items]
    elif isinstance(items, np.ndarray) and items.dtype == np.uint8 and items.ndim in (2, 3):
        if not (items.ndim == 3 and items.shape[-1] not in (1, 3, 4)):
            items = [items]
    elif hasattr(items, "convert") and hasattr(items, "mode"):
        items = [items]
    return [_image_item(i) for i in items]


def _vectors(vectors: Any) -> np.ndarray:
    """A C-contiguous float32 matrix; one vector becomes one row."""
    a = np.asarray(vectors, dtype=np.float32)
    if a.ndim == 1:
        a = a[None, :]
    if a.ndim != 2:
        raise BadInputError(f"vectors must be 1-D or 2-D, not {a.ndim}-D")
    return np.ascontiguousarray(a)


def _is_vectors(examples: Any) -> bool:
    if isinstance(examples, np.ndarray):
        return examples.dtype.kind == "f"
    if isinstance(examples, (list, tuple)) and examples:
        first = examples[0]
        return isinstance(first, (float, int, np.floating)) or (
            isinstance(first, (list, tuple, np.ndarray))
            and not (isinstance(first, np.ndarray) and first.dtype == np.uint8)
        )
    return False


class Model:
    """A MetricANN model bundle (`.mcm`), loaded for embedding."""

    def __init__(self, native: _metricann.Model):
        self._native = native

    @classmethod
    def open(cls, path: PathLike, backend: str = "ndarray") -> "Model":
        """Loads a bundle; `backend` is "ndarray" (CPU) or "wgpu" (GPU)."""
        return cls(_metricann.Model.open(os.fspath(path), backend))

    def embed(self, images: Union[ImageLike, Iterable[ImageLike]]) -> np.ndarray:
        """Unit embeddings, one row per image (paths, bytes, PIL images or
        uint8 arrays of H×W or H×W×1/3/4)."""
        return self._native.embed(_images(images))

    @property
    def dim(self) -> int:
        return self._native.dim

    @property
    def fingerprint(self) -> str:
        return self._native.fingerprint

    @property
    def threshold(self) -> Optional[float]:
        """The calibrated open-set threshold, when the bundle has one."""
        return self._native.threshold

    @property
    def header(self) -> dict:
        return json.loads(self._native.header_json)

    def __repr__(self) -> str:
        return repr(self._native)


@dataclass(frozen=True)
class Match:
    """One class of a search result."""

    label: str
    score: float
    distance: float
    metadata: Any = None


@dataclass(frozen=True)
class SearchResult:
    """The classes nearest one query, best first; `unknown` when nothing
    scored at or above the threshold."""

    matches: list = field(default_factory=list)
    unknown: bool = True

    @property
    def label(self) -> Optional[str]:
        """The best class, or None when the answer is unknown."""
        return None if self.unknown or not self.matches else self.matches[0].label

    def to_dict(self) -> dict:
        """The CLI's `search --json` shape of one result."""
        return {
            "unknown": self.unknown,
            "matches": [
                {"label": m.label, "score": m.score, "distance": m.distance, "metadata": m.metadata}
                for m in self.matches
            ],
        }


class Gallery:
    """Classes of examples in a folder: the format `metricann build-index`
    writes and the browser package imports (through `export`)."""

    def __init__(self, native: _metricann.Gallery, model: Optional[Model] = None):
        self._native = native
        self.model = model

    @classmethod
    def create(
        cls,
        dir: PathLike,
        model: Optional[Model] = None,
        *,
        dim: Optional[int] = None,
        fingerprint: Optional[str] = None,
        m: int = 16,
        ef_construction: int = 100,
        segment_size: int = 1024,
        quantize: str = "none",
    ) -> "Gallery":
        """A new gallery in `dir` for `model`'s vectors (or for vectors of `dim`
        made by the model with `fingerprint`). `quantize`: how sealed graphs
        store vectors, "none" (float32), "int8" (a quarter of the memory, a
        little recall) or "int8-residual" (about half, float32's recall)."""
        if model is not None:
            dim = model.dim if dim is None else dim
            fingerprint = model.fingerprint if fingerprint is None else fingerprint
        if dim is None or fingerprint is None:
            raise BadInputError("give a model, or dim and fingerprint")
        native = _metricann.Gallery.create(
            os.fspath(dir), dim, fingerprint, m, ef_construction, segment_size, quantize
        )
        return cls(native, model)

    @classmethod
    def open(
        cls,
        dir: PathLike,
        model: Optional[Model] = None,
        *,
        read_only: bool = False,
        skip_damaged: bool = False,
    ) -> "Gallery":
        """Opens the gallery in `dir`; writable galleries hold its lock until
        `close`. With a `model`, its fingerprint must be the gallery's."""
        native = _metricann.Gallery.open(os.fspath(dir), read_only, skip_damaged)
        if model is not None and model.fingerprint != native.fingerprint:
            found = native.fingerprint
            native.close()
            raise ModelMismatchError(
                f"model mismatch: gallery {dir} was built by model {found}, "
                f"but the loaded model is {model.fingerprint}"
            )
        return cls(native, model)

    @classmethod
    def import_file(cls, path: PathLike, dir: PathLike, model: Optional[Model] = None) -> "Gallery":
        """Unpacks an export file (from `export`, the CLI or the browser) into
        the new gallery folder `dir`."""
        return cls(_metricann.Gallery.import_file(os.fspath(path), os.fspath(dir)), model)

    def _model(self, model: Optional[Model]) -> Model:
        model = model or self.model
        if model is None:
            raise BadInputError("images need a model: pass model= here or to open/create")
        return model

    def embed(self, images: Union[ImageLike, Iterable[ImageLike]], model: Optional[Model] = None) -> np.ndarray:
        """Embeds images as this gallery's vectors are (with its adapted head, if any)."""
        return self._native.embed(self._model(model)._native, _images(images))

    def _as_vectors(self, examples: Any, model: Optional[Model]) -> np.ndarray:
        if _is_vectors(examples):
            return _vectors(examples)
        return self.embed(examples, model)

    def enroll(
        self,
        label: str,
        examples: Any,
        metadata: Any = None,
        *,
        model: Optional[Model] = None,
    ) -> int:
        """Adds examples (vectors, or images the model embeds) to class
        `label`, creating it; `metadata` (JSON-serialisable) replaces the
        class's. Returns the number of examples added."""
        meta = None if metadata is None else json.dumps(metadata)
        return self._native.enroll(label, self._as_vectors(examples, model), meta)

    def enroll_many(self, labels: Sequence[str], vectors: Any, *, sealed: bool = False) -> int:
        """Row `i` of `vectors` is an example of `labels[i]`; all in one write.
        `sealed` builds one graph over the batch (bulk loads)."""
        return self._native.enroll_many(list(labels), _vectors(vectors), sealed)

    def remove(self, label: str) -> None:
        """Removes class `label` and its examples."""
        self._native.remove(label)

    def rename(self, old: str, new: str) -> None:
        self._native.rename(old, new)

    def set_metadata(self, label: str, metadata: Any) -> None:
        self._native.set_metadata(label, None if metadata is None else json.dumps(metadata))

    def search(
        self,
        queries: Any,
        k: int = 5,
        threshold: Optional[float] = None,
        *,
        model: Optional[Model] = None,
    ) -> list:
        """One `SearchResult` per query (vectors, or images the model embeds):
        the `k` nearest classes. A best score below `threshold` is unknown
        (default: the model's calibrated threshold when a model is known)."""
        vectors = self._as_vectors(queries, model)
        if threshold is None:
            known = model or self.model
            threshold = known.threshold if known is not None else None
        out = []
        for unknown, matches in self._native.search(vectors, k, threshold):
            out.append(
                SearchResult(
                    matches=[
                        Match(label, score, distance, None if meta is None else json.loads(meta))
                        for label, score, distance, meta in matches
                    ],
                    unknown=unknown,
                )
            )
        return out

    def optimize(self) -> bool:
        """Rebuilds every segment into one graph; False when there was nothing to do."""
        return self._native.optimize()

    def export(self, path: PathLike) -> int:
        """Writes the gallery as one file the browser package imports; returns its size."""
        return self._native.export(os.fspath(path))

    def classes(self) -> list:
        """Every class: {"label", "examples", "metadata", "has_images"}."""
        return json.loads(self._native.classes_json())

    def stats(self) -> dict:
        """Classes, vectors, deleted, segments, bytes, memory_bytes, quantization."""
        return json.loads(self._native.stats_json())

    @property
    def fingerprint(self) -> str:
        return self._native.fingerprint

    @property
    def dim(self) -> int:
        return self._native.dim

    @property
    def dir(self) -> str:
        return self._native.dir

    @property
    def read_only(self) -> bool:
        return self._native.read_only

    @property
    def damaged(self) -> list:
        """Blobs that `skip_damaged` left out, as "name: reason"."""
        return self._native.damaged

    def __len__(self) -> int:
        return len(self._native)

    def close(self) -> None:
        """Releases the folder and its lock."""
        self._native.close()

    def __enter__(self) -> "Gallery":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Gallery({self._native.dir!r}, classes={len(self)})"


class Index:
    """Raw vectors under integer ids, searched by cosine similarity (HNSW).
    `quantize` is "none", "int8" or "int8-residual", as for `Gallery.create`."""

    def __init__(
        self,
        dim: int,
        *,
        m: int = 16,
        ef_construction: int = 100,
        ef_search: int = 64,
        quantize: str = "none",
    ):
        self._native = _metricann.Index(dim, m, ef_construction, ef_search, quantize)
        self._next_id = 0

    def add(self, vectors: Any, ids: Any = None) -> None:
        """Adds rows of `vectors` under `ids` (new, distinct, non-negative;
        default: counting on from the largest id added so far)."""
        vectors = _vectors(vectors)
        if ids is None:
            ids = np.arange(self._next_id, self._next_id + len(vectors), dtype=np.uint64)
        else:
            ids = np.asarray(ids)
            if ids.ndim != 1 or ids.dtype.kind not in "iu" or (ids.size and ids.min() < 0):
                raise BadInputError("ids must be a 1-D array of non-negative integers")
            ids = np.ascontiguousarray(ids, dtype=np.uint64)
        self._native.add(ids, vectors)
        if ids.size:
            self._next_id = max(self._next_id, int(ids.max()) + 1)

    def search(self, queries: Any, k: int = 10, ef: Optional[int] = None):
        """`(ids, scores)`, each `len(queries) × k`, best first; id -1 and score
        NaN pad rows with fewer than `k` hits."""
        return self._native.search(_vectors(queries), k, ef)

    def remove(self, ids: Any) -> int:
        """Deletes ids (unknown ones are ignored); returns how many were deleted."""
        ids = np.asarray(ids).reshape(-1)
        if ids.dtype.kind not in "iu" or (ids.size and ids.min() < 0):
            raise BadInputError("ids must be non-negative integers")
        return self._native.remove(np.ascontiguousarray(ids, dtype=np.uint64))

    @property
    def ef_search(self) -> int:
        return self._native.ef_search

    @ef_search.setter
    def ef_search(self, ef: int) -> None:
        self._native.ef_search = ef

    @property
    def dim(self) -> int:
        return self._native.dim

    @property
    def memory_bytes(self) -> int:
        return self._native.memory_bytes

    def __len__(self) -> int:
        return len(self._native)

    def __repr__(self) -> str:
        return f"Index(dim={self.dim}, vectors={len(self)})"
