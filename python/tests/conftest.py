"""Shared fixtures: the demo's objects model, the ImageNet sample images, and
the CLI binary for the interoperability tests."""

import os
import shutil
from pathlib import Path

import pytest

import metricann

REPO = Path(__file__).resolve().parents[2]
MODEL = REPO / "www" / "models" / "objects.bundle"
IMAGES = REPO / "tests" / "fixtures" / "imagenet"
NAMES = ["astronaut", "chelsea", "coffee", "rocket"]


@pytest.fixture(scope="session")
def model():
    return metricann.Model.open(MODEL)


@pytest.fixture(scope="session")
def image_paths():
    return {name: IMAGES / f"{name}.png" for name in NAMES}


@pytest.fixture(scope="session")
def image_vectors(model, image_paths):
    """The sample images' embeddings, by name (embedded once: the tests'
    build of the model is unoptimised)."""
    return dict(zip(image_paths, model.embed(list(image_paths.values()))))


@pytest.fixture(scope="session")
def cli():
    """The `metricann` CLI, built by `cargo test --workspace` (METRICANN_CLI
    names another). With METRICANN_REQUIRE_CLI set, its absence fails."""
    path = os.environ.get("METRICANN_CLI") or str(REPO / "target" / "debug" / "metricann")
    if not Path(path).is_file():
        found = shutil.which("metricann")
        if found is None:
            if os.environ.get("METRICANN_REQUIRE_CLI"):
                pytest.fail(f"the metricann CLI is not at {path} (cargo build -p metricann-trainer)")
            pytest.skip(f"skipped: the metricann CLI is not at {path}; build it with cargo build -p metricann-trainer")
        path = found
    return path
