import io

import numpy as np
import pytest

import metricann


def test_embeddings_are_unit_rows_of_the_models_dimension(model, image_paths):
    v = model.embed(list(image_paths.values()))
    assert v.dtype == np.float32
    assert v.shape == (4, model.dim)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-4)


def test_a_path_and_its_bytes_embed_the_same(model, image_paths):
    path = image_paths["chelsea"]
    by_path = model.embed(path)
    by_bytes = model.embed(path.read_bytes())
    np.testing.assert_array_equal(by_path, by_bytes)


def test_pil_images_and_pixel_arrays_embed_like_the_file(model, image_paths):
    Image = pytest.importorskip("PIL.Image")
    path = image_paths["coffee"]
    pil = Image.open(path)
    rgb = np.asarray(pil.convert("RGB"))
    gray = np.asarray(pil.convert("L"))
    v = model.embed([path, pil, rgb])
    assert float(v[0] @ v[1]) > 0.9999
    assert float(v[0] @ v[2]) > 0.9999
    assert model.embed(gray).shape == (1, model.dim)


def test_different_things_embed_apart(model, image_paths):
    v = model.embed([image_paths["chelsea"], image_paths["rocket"]])
    assert float(v[0] @ v[1]) < 0.9


def test_bad_images_raise_bad_image_with_its_code(model):
    with pytest.raises(metricann.BadImageError) as e:
        model.embed(b"not an image")
    assert e.value.code == "BAD_IMAGE"
    assert isinstance(e.value, metricann.Error)


def test_a_missing_file_is_not_found(model, tmp_path):
    with pytest.raises(metricann.NotFoundError) as e:
        model.embed(tmp_path / "nope.png")
    assert e.value.code == "NOT_FOUND"


def test_wrong_inputs_are_bad_input(model):
    with pytest.raises(metricann.BadInputError):
        model.embed([])
    with pytest.raises(metricann.BadInputError):
        model.embed([np.zeros((4, 4, 2), dtype=np.uint8)])
    with pytest.raises(metricann.BadInputError):
        model.embed([np.zeros((4, 4, 3), dtype=np.float32)])
    with pytest.raises(metricann.BadInputError):
        model.embed([3.5])


def test_a_missing_or_corrupt_bundle_raises(tmp_path):
    with pytest.raises(metricann.NotFoundError):
        metricann.Model.open(tmp_path / "missing.bundle")
    bad = tmp_path / "bad.bundle"
    bad.write_bytes(b"\0" * 100)
    with pytest.raises(metricann.CorruptError) as e:
        metricann.Model.open(bad)
    assert e.value.code == "CORRUPT"
    with pytest.raises(metricann.BadInputError):
        metricann.Model.open(bad, backend="tpu")


def test_the_model_describes_itself(model):
    assert len(model.fingerprint) == 16
    assert model.header["embedding_dim"] == model.dim
    assert model.threshold is None or -1.0 <= model.threshold <= 1.0
    assert model.fingerprint in repr(model)
