"""A gallery written by Python is the CLI's, and the other way round."""

import json
import subprocess

import numpy as np

import metricann
from conftest import MODEL


def run(cli, *args):
    out = subprocess.run([cli, *map(str, args), "--json"], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_the_cli_reads_a_python_gallery(tmp_path, cli, model, image_paths):
    g = metricann.Gallery.create(tmp_path / "g", model)
    for name, path in image_paths.items():
        g.enroll(name, [path])
    g.close()
    stats = run(cli, "stats", "--index", tmp_path / "g")
    assert stats["classes"] == 4 and stats["vectors"] == 4
    found = run(cli, "search", "--model", MODEL, "--index", tmp_path / "g", "--image", image_paths["chelsea"], "--k", 2, "--threshold=-1")
    assert found["results"][0]["matches"][0]["label"] == "chelsea"
    again = metricann.Gallery.open(tmp_path / "g", model, read_only=True)
    [mine] = again.search(image_paths["chelsea"], k=2, threshold=-1)
    theirs = found["results"][0]["matches"]
    assert [m.label for m in mine.matches] == [m["label"] for m in theirs]
    np.testing.assert_allclose([m.score for m in mine.matches], [m["score"] for m in theirs], atol=1e-5)


def test_python_reads_a_cli_gallery_and_its_export(tmp_path, cli, model, image_paths):
    folder = tmp_path / "folder"
    for name, path in image_paths.items():
        (folder / name).mkdir(parents=True)
        (folder / name / path.name).write_bytes(path.read_bytes())
    run(cli, "extract", "--model", MODEL, "--data", folder, "--out", tmp_path / "emb")
    run(cli, "build-index", "--embeddings", tmp_path / "emb", "--out", tmp_path / "cli")
    g = metricann.Gallery.open(tmp_path / "cli", model)
    assert sorted(c["label"] for c in g.classes()) == sorted(image_paths)
    [r] = g.search(image_paths["rocket"], threshold=-1)
    assert r.label == "rocket"
    g.enroll("rocket", [image_paths["rocket"]])
    g.close()
    run(cli, "export", "--index", tmp_path / "cli", "--out", tmp_path / "cli.export")
    copy = metricann.Gallery.import_file(tmp_path / "cli.export", tmp_path / "copy")
    assert {c["label"]: c["examples"] for c in copy.classes()}["rocket"] == 2
