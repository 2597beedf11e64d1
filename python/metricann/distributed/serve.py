"""A sharded gallery on Ray Serve: one deployment per shard (replicas for
throughput), and a router that fans each query out to every shard and merges
their top-K classes, and sends each enrollment and removal to the shard that
owns the label (`shard_of`).

HTTP, JSON in and out (the CLI's `--json` shapes):
  POST /search  {"vectors": [[...], ...], "k": 5, "threshold": 0.5}
                -> {"results": [{"unknown": false, "matches": [{"label", "score", "distance", "metadata"}]}]}
  POST /enroll  {"label": "mug", "vectors": [[...]], "metadata": {...}} -> {"added": 1, "shard": 0}
  POST /remove  {"label": "mug"} -> {"removed": "mug", "shard": 0}
  GET  /stats   -> {"classes", "vectors", "shards": [...]}
Errors: HTTP 400 (the caller's) or 500 with {"error": {"code", "message"}}.

Consistency: an enrollment is acknowledged once it is on the shard's disk (an
atomic commit); every replica of the shard sees it at its next request. A
replica killed mid-write loses nothing acknowledged.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Optional

import numpy as np
from ray import serve

import metricann

from .shards import merge_top_k, shard_dirs, shard_of

# How long a write waits for another replica of its shard to release the lock.
LOCK_WAIT_S = 30.0


def _stamp(folder: str):
    """Changes whenever a commit replaces the manifest (written by rename)."""
    s = os.stat(os.path.join(folder, "manifest"))
    return (s.st_ino, s.st_mtime_ns, s.st_size)


class ShardReplica:
    """One replica of one shard: a read-only view of the shard's folder,
    reopened when another replica's commit changed it; writes take the
    folder's lock for their duration."""

    def __init__(self, folder: str):
        self.folder = folder
        self.stamp = None
        self.gallery = None
        self._refresh()

    def _refresh(self) -> None:
        for attempt in range(20):
            try:
                stamp = _stamp(self.folder)
                if stamp == self.stamp:
                    return
                self.gallery = metricann.Gallery.open(self.folder, read_only=True)
                self.stamp = stamp
                return
            except (metricann.NotFoundError, metricann.CorruptError):
                # A commit deleted a blob of the manifest being read: read the new one.
                time.sleep(0.01 * (attempt + 1))
        self.gallery = metricann.Gallery.open(self.folder, read_only=True)
        self.stamp = _stamp(self.folder)

    def _writer(self) -> metricann.Gallery:
        deadline = time.monotonic() + LOCK_WAIT_S
        while True:
            try:
                return metricann.Gallery.open(self.folder)
            except metricann.LockedError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def search(self, vectors, k: int) -> list:
        self._refresh()
        queries = np.asarray(vectors, dtype=np.float32)
        return [r.to_dict() for r in self.gallery.search(queries, k, -1.0)]

    def enroll(self, label: str, vectors, metadata=None) -> int:
        with self._writer() as g:
            added = g.enroll(label, np.asarray(vectors, dtype=np.float32), metadata)
        self._refresh()
        return added

    def remove(self, label: str) -> None:
        with self._writer() as g:
            g.remove(label)
        self._refresh()

    def stats(self) -> dict:
        self._refresh()
        return self.gallery.stats()


class Router:
    """Fans queries out to every shard; routes writes to the owning shard."""

    def __init__(self, shards: list):
        self.shards = shards

    async def search(self, vectors, k: int = 5, threshold: Optional[float] = None) -> list:
        per_shard = await asyncio.gather(*[s.search.remote(vectors, k) for s in self.shards])
        return [merge_top_k([r[q] for r in per_shard], k, threshold) for q in range(len(vectors))]

    async def enroll(self, label: str, vectors, metadata=None) -> dict:
        shard = shard_of(label, len(self.shards))
        added = await self.shards[shard].enroll.remote(label, vectors, metadata)
        return {"added": added, "shard": shard}

    async def remove(self, label: str) -> dict:
        shard = shard_of(label, len(self.shards))
        await self.shards[shard].remove.remote(label)
        return {"removed": label, "shard": shard}

    async def stats(self) -> dict:
        per_shard = await asyncio.gather(*[s.stats.remote() for s in self.shards])
        return {
            "classes": sum(s["classes"] for s in per_shard),
            "vectors": sum(s["vectors"] for s in per_shard),
            "shards": per_shard,
        }

    async def __call__(self, request):
        from starlette.responses import JSONResponse

        route = request.url.path.rstrip("/").rsplit("/", 1)[-1]
        try:
            body = await request.json() if request.method == "POST" else {}
            if route == "search" and request.method == "POST":
                results = await self.search(body["vectors"], int(body.get("k", 5)), body.get("threshold"))
                return JSONResponse({"results": results})
            if route == "enroll" and request.method == "POST":
                return JSONResponse(await self.enroll(body["label"], body["vectors"], body.get("metadata")))
            if route == "remove" and request.method == "POST":
                return JSONResponse(await self.remove(body["label"]))
            if route == "stats":
                return JSONResponse(await self.stats())
            return JSONResponse({"error": {"code": "NOT_FOUND", "message": f"no route {request.url.path}"}}, 404)
        except metricann.Error as e:
            status = 500 if e.code in ("INTERNAL", "IO") else 400
            return JSONResponse({"error": {"code": e.code, "message": str(e)}}, status)
        except (KeyError, TypeError, ValueError, json.JSONDecodeError) as e:
            return JSONResponse({"error": {"code": "BAD_INPUT", "message": f"bad request: {e!r}"}}, 400)
        except Exception as e:  # a shard replica died mid-call: the client may retry
            return JSONResponse({"error": {"code": "INTERNAL", "message": repr(e)}}, 500)


def app(root: str, replicas: int = 2, num_cpus: float = 0.0):
    """The Serve application over the shards `build_shards` wrote to `root`."""
    meta = json.loads((Path(root) / "shards.json").read_text())
    options = {"num_cpus": num_cpus}
    shard = serve.deployment(ShardReplica)
    shards = [
        shard.options(name=f"shard-{i}", num_replicas=replicas, ray_actor_options=options).bind(str(folder))
        for i, folder in enumerate(shard_dirs(root, meta["shards"]))
    ]
    router = serve.deployment(Router).options(name="router", ray_actor_options=options)
    return router.bind(shards)
