"""Distributed extraction on a real local Ray cluster: a head and a worker
node, each its own `ray start` process tree."""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

import metricann
from conftest import MODEL

# Ray is a test requirement (requirements-ray.txt): its absence is a failure.
# Only a cluster that cannot start on this machine skips, saying why.
import ray  # noqa: E402

from metricann.distributed import extract, image_folder  # noqa: E402

RAY = str(Path(sys.executable).parent / "ray")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ray_cli(*args, timeout=120):
    return subprocess.run([RAY, *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def cluster():
    # A token in ~/.ray/auth_token (any earlier `ray.init()` leaves one) turns
    # on token authentication in `ray start --head` but not in the nodes that
    # join it: this loopback-only cluster runs every process without.
    saved_auth = os.environ.get("RAY_AUTH_MODE")
    os.environ["RAY_AUTH_MODE"] = "disabled"
    port = free_port()
    temp = tempfile.mkdtemp(prefix="mc-ray-")
    common = ["--num-cpus=2", "--object-store-memory=150000000", "--disable-usage-stats"]
    head = ray_cli(
        "start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1",
        "--include-dashboard=false", f"--temp-dir={temp}", *common,
    )
    if head.returncode != 0:
        pytest.skip(f"skipped: Ray cannot start a head node on this machine: {head.stderr[-2000:]}")
    address = f"127.0.0.1:{port}"
    try:
        worker = ray_cli("start", f"--address={address}", "--node-ip-address=127.0.0.1", *common)
        if worker.returncode != 0:
            pytest.skip(f"skipped: Ray cannot start a second node on this machine: {worker.stderr[-2000:]}")
        ray.init(address=address, logging_level="WARNING")
        alive = [n for n in ray.nodes() if n["Alive"]]
        assert len(alive) == 2, f"expected a head and a worker node, got {len(alive)}"
        yield address
    finally:
        if ray.is_initialized():
            ray.shutdown()
        # A graceful stop first: the head's GCS tells its clients it is going
        # away, where SIGKILL leaves them to find out by timing out.
        if ray_cli("stop", "--grace-period=30", timeout=90).returncode != 0:
            ray_cli("stop", "--force")
        shutil.rmtree(temp, ignore_errors=True)
        if saved_auth is None:
            os.environ.pop("RAY_AUTH_MODE", None)
        else:
            os.environ["RAY_AUTH_MODE"] = saved_auth


@pytest.fixture(scope="module")
def folder(tmp_path_factory, image_paths):
    from PIL import Image

    root = tmp_path_factory.mktemp("folder")
    for name, path in image_paths.items():
        (root / name).mkdir()
        img = Image.open(path).convert("RGB")
        img.save(root / name / "a.png")
        img.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(root / name / "b.jpg", quality=90)
        img.resize((img.width // 2, img.height // 2)).save(root / name / "c.webp")
    (root / "coffee" / "broken.png").write_bytes(b"\x89PNG not really")
    return root


def test_ray_extraction_equals_the_cli(cluster, folder, tmp_path, cli):
    summary = extract(folder, MODEL, tmp_path / "ray", workers=2, batch_size=4, address=cluster)
    assert summary["images"] == 12 and summary["skipped"] == 1
    assert (tmp_path / "ray" / "shards").is_dir()
    skipped = (tmp_path / "ray" / "skipped.tsv").read_text()
    assert "broken.png" in skipped

    (folder / "coffee" / "broken.png").rename(tmp_path / "broken.png")
    try:
        subprocess.run(
            [cli, "extract", "--model", str(MODEL), "--data", str(folder), "--out", str(tmp_path / "cli"), "--json"],
            check=True, capture_output=True,
        )
    finally:
        (tmp_path / "broken.png").rename(folder / "coffee" / "broken.png")
    ours = read_embeddings(tmp_path / "ray")
    theirs = read_embeddings(tmp_path / "cli")
    assert ours.keys() == theirs.keys()
    for path, (label, v) in ours.items():
        assert label == theirs[path][0]
        cosine = float(v @ theirs[path][1] / np.linalg.norm(v) / np.linalg.norm(theirs[path][1]))
        assert cosine >= 0.9999, (path, cosine)
    meta = json.loads((tmp_path / "ray" / "meta.json").read_text())
    assert meta["fingerprint"] == json.loads((tmp_path / "cli" / "meta.json").read_text())["fingerprint"]


def test_ray_embeddings_build_a_gallery_with_the_cli(cluster, folder, tmp_path, cli, model, image_vectors):
    listed = tmp_path / "images.txt"
    listed.write_text("".join(f"{folder / name / 'a.png'}\n" for name in sorted(image_vectors)))
    env = dict(os.environ, RAY_ADDRESS=cluster)
    out = subprocess.run(
        [str(Path(sys.executable).parent / "metricann-ray"), "extract", "--model", str(MODEL),
         "--list", str(listed), "--out", str(tmp_path / "emb"), "--workers", "2", "--json"],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout.strip().splitlines()[-1])["images"] == 4
    subprocess.run(
        [cli, "build-index", "--embeddings", str(tmp_path / "emb"), "--out", str(tmp_path / "g"), "--json"],
        check=True, capture_output=True,
    )
    g = metricann.Gallery.open(tmp_path / "g", model, read_only=True)
    assert sorted(c["label"] for c in g.classes()) == sorted(image_vectors)
    assert g.search(image_vectors["chelsea"], threshold=-1)[0].label == "chelsea"


def test_metricann_ray_has_help_with_examples():
    out = subprocess.run(
        [str(Path(sys.executable).parent / "metricann-ray"), "extract", "--help"],
        capture_output=True, text=True, check=True,
    )
    assert "examples:" in out.stdout and "--workers" in out.stdout


def read_embeddings(folder):
    vectors = np.load(folder / "vectors.npy")
    rows = (folder / "labels.tsv").read_text().splitlines()[1:]
    out = {}
    for row, v in zip(rows, vectors):
        path, label = row.rsplit("\t", 1)
        out[str(Path(path).resolve())] = (label, v)
    assert len(out) == len(vectors)
    return out


def post(url, body, timeout=60):
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


@pytest.fixture(scope="module")
def clustered(tmp_path_factory):
    """An embeddings folder of 120 classes × 3 examples around distinct centres."""
    rng = np.random.default_rng(7)
    centres = rng.normal(size=(120, 32)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    vectors = np.repeat(centres, 3, axis=0) + 0.05 * rng.normal(size=(360, 32)).astype(np.float32)
    labels = [f"item-{i:03d}" for i in range(120) for _ in range(3)]
    folder = tmp_path_factory.mktemp("clustered")
    np.save(folder / "vectors.npy", vectors.astype(np.float32))
    (folder / "labels.tsv").write_text("path\tclass\n" + "".join(f"v{i}\t{l}\n" for i, l in enumerate(labels)))
    (folder / "meta.json").write_text(json.dumps({"fingerprint": "0123456789abcdef", "dim": 32}))
    return folder, centres


def test_sharded_serving_answers_like_one_gallery_and_survives_a_killed_replica(cluster, clustered, tmp_path):
    import threading

    from ray import serve

    from metricann.distributed.serve import app
    from metricann.distributed.shards import build_shards, shard_of

    folder, centres = clustered
    counts = build_shards(folder, tmp_path / "shards", 2)
    assert sum(counts) == 360 and min(counts) > 0
    build_shards(folder, tmp_path / "one", 1)
    one = metricann.Gallery.open(tmp_path / "one" / "shard-000", read_only=True)

    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    try:
        serve.run(app(str(tmp_path / "shards"), replicas=2), name="mc", route_prefix="/mc")
        url = f"http://127.0.0.1:{port}/mc"
        rng = np.random.default_rng(8)
        queries = centres[:40] + 0.1 * rng.normal(size=(40, 32)).astype(np.float32)
        status, body = post(f"{url}/search", {"vectors": queries.tolist(), "k": 5})
        assert status == 200, body
        expected = one.search(queries, k=5, threshold=-1)
        for got, want in zip(body["results"], expected):
            assert [m["label"] for m in got["matches"]] == [m.label for m in want.matches]
        status, body = post(f"{url}/search", {"vectors": [[1.0] * 3]})
        assert status == 400 and body["error"]["code"] == "BAD_INPUT"

        acked, answered, failed_queries = [], [], []
        stop = threading.Event()

        def enroll_all():
            for i in range(30):
                label = f"new-{i:02d}"
                vector = rng.normal(size=32).tolist()
                status, _ = post(f"{url}/enroll", {"label": label, "vectors": [vector]})
                if status == 200:
                    acked.append((label, vector))

        def query_all():
            while not stop.is_set():
                status, _ = post(f"{url}/search", {"vectors": queries[:4].tolist(), "k": 3})
                (answered if status == 200 else failed_queries).append(time.monotonic())

        writer, reader = threading.Thread(target=enroll_all), threading.Thread(target=query_all)
        writer.start()
        reader.start()
        while len(acked) < 8:
            time.sleep(0.05)
        victim = next(a for a in ray.util.list_named_actors(all_namespaces=True) if "#shard-0#" in a["name"])
        ray.kill(ray.get_actor(victim["name"], namespace=victim["namespace"]), no_restart=True)
        killed_at = time.monotonic()
        writer.join(timeout=300)
        time.sleep(2)
        stop.set()
        reader.join(timeout=60)

        print(f"kill mid-load: {len(acked)}/30 enrollments acknowledged, {len(answered)} queries answered "
              f"({sum(t > killed_at for t in answered)} after the kill), {len(failed_queries)} failed")
        assert len(acked) >= 25, f"only {len(acked)} of 30 enrollments were acknowledged"
        assert sum(t > killed_at for t in answered) > 0, "no query was answered after the kill"
        assert len(failed_queries) <= 2, f"{len(failed_queries)} queries failed"
        labels = [label for label, _ in acked]
        vectors = [vector for _, vector in acked]
        status, body = post(f"{url}/search", {"vectors": vectors, "k": 1})
        assert status == 200
        assert [r["matches"][0]["label"] for r in body["results"]] == labels, "an acknowledged enrollment was lost"
        assert {shard_of(l, 2) for l in labels} == {0, 1}
        status, stats = post(f"{url}/stats", {})
        assert stats["classes"] == 120 + len(acked)
    finally:
        serve.shutdown()
