import numpy as np
import pytest

import metricann


def flipped(path):
    Image = pytest.importorskip("PIL.Image")
    img = Image.open(path).convert("RGB")
    w, h = img.size
    return img.transpose(Image.Transpose.FLIP_LEFT_RIGHT).crop((w // 10, h // 10, w, h))


@pytest.fixture
def gallery(tmp_path, model, image_vectors):
    g = metricann.Gallery.create(tmp_path / "g", model)
    for name, vector in image_vectors.items():
        g.enroll(name, vector, metadata={"name": name, "price": len(name)})
    yield g
    g.close()


def test_an_altered_photo_finds_its_class(gallery, image_paths):
    queries = [flipped(p) for p in image_paths.values()]
    results = gallery.search(queries, k=2, threshold=-1)
    assert [r.label for r in results] == list(image_paths)
    best = results[1].matches[0]
    assert best.metadata == {"name": "chelsea", "price": 7}
    assert abs(best.distance - (1 - best.score)) < 1e-6
    assert len(results[0].matches) == 2
    assert results[0].matches[0].score >= results[0].matches[1].score


def test_images_enroll_as_their_embeddings(tmp_path, model, image_paths, image_vectors):
    g = metricann.Gallery.create(tmp_path / "i", model)
    assert g.enroll("cat", [image_paths["chelsea"]]) == 1
    [r] = g.search(image_vectors["chelsea"], k=1, threshold=-1)
    assert r.label == "cat" and r.matches[0].score > 0.9999


def test_a_threshold_above_every_score_answers_unknown(gallery, image_vectors):
    [r] = gallery.search(image_vectors["rocket"], threshold=1.01)
    assert r.unknown and r.label is None
    assert r.matches, "an unknown result still lists the nearest classes"


def test_vectors_enroll_and_search_like_images(tmp_path):
    rng = np.random.default_rng(1)
    g = metricann.Gallery.create(tmp_path / "v", dim=8, fingerprint="0123456789abcdef")
    centres = rng.normal(size=(20, 8)).astype(np.float32)
    labels = [f"class-{i}" for i in range(20) for _ in range(3)]
    examples = np.repeat(centres, 3, axis=0) + 0.01 * rng.normal(size=(60, 8))
    assert g.enroll_many(labels, examples) == 60
    results = g.search(centres, k=1)
    assert [r.label for r in results] == [f"class-{i}" for i in range(20)]
    assert len(g) == 20 and g.stats()["vectors"] == 60


def test_changes_are_on_disk_when_the_call_returns(gallery, tmp_path, image_paths):
    gallery.rename("coffee", "espresso")
    gallery.remove("astronaut")
    gallery.set_metadata("rocket", {"fuel": "liquid"})
    gallery.close()
    again = metricann.Gallery.open(tmp_path / "g", read_only=True)
    labels = {c["label"]: c for c in again.classes()}
    assert set(labels) == {"chelsea", "espresso", "rocket"}
    assert labels["rocket"]["metadata"] == {"fuel": "liquid"}
    assert labels["espresso"]["examples"] == 1
    stats = again.stats()
    assert stats["classes"] == 3 and stats["vectors"] == 3


def test_errors_carry_the_js_codes(gallery):
    with pytest.raises(metricann.NotFoundError) as e:
        gallery.remove("no such class")
    assert e.value.code == "NOT_FOUND"
    with pytest.raises(metricann.AlreadyExistsError) as e:
        gallery.rename("chelsea", "rocket")
    assert e.value.code == "ALREADY_EXISTS"
    with pytest.raises(metricann.BadInputError):
        gallery.enroll("", np.ones((1, gallery.dim), dtype=np.float32))
    with pytest.raises(metricann.BadInputError):
        gallery.enroll("wrong dim", np.ones((1, 3), dtype=np.float32))
    with pytest.raises(metricann.BadInputError):
        gallery.enroll("nan", np.full((1, gallery.dim), np.nan, dtype=np.float32))
    with pytest.raises(metricann.BadInputError):
        gallery.search(np.ones((1, gallery.dim), dtype=np.float32), k=0)
    assert len(gallery) == 4, "bad input changes nothing"


def test_one_writer_at_a_time(gallery, tmp_path):
    with pytest.raises(metricann.LockedError) as e:
        metricann.Gallery.open(tmp_path / "g")
    assert e.value.code == "LOCKED"
    reader = metricann.Gallery.open(tmp_path / "g", read_only=True)
    assert len(reader) == 4
    with pytest.raises(metricann.BadInputError):
        reader.remove("chelsea")
    gallery.close()
    with pytest.raises(metricann.BadInputError):
        len(gallery)
    metricann.Gallery.open(tmp_path / "g").close()


def test_a_gallery_of_another_model_is_refused(gallery, tmp_path, model):
    gallery.close()
    other = metricann.Gallery.create(tmp_path / "other", dim=model.dim, fingerprint="ffffffffffffffff")
    other.close()
    with pytest.raises(metricann.ModelMismatchError):
        metricann.Gallery.open(tmp_path / "other", model)
    with pytest.raises(metricann.BadInputError):
        metricann.Gallery.create(tmp_path / "other", model)


def test_export_then_import_is_the_same_gallery(gallery, tmp_path, image_vectors, model):
    size = gallery.export(tmp_path / "shop.metricann")
    assert size == (tmp_path / "shop.metricann").stat().st_size
    copy = metricann.Gallery.import_file(tmp_path / "shop.metricann", tmp_path / "copy", model)
    assert copy.classes() == gallery.classes()
    q = image_vectors["coffee"]
    assert copy.search(q)[0].to_dict() == gallery.search(q)[0].to_dict()
    with pytest.raises(metricann.CorruptError):
        (tmp_path / "bad").write_bytes(b"MAEX" + b"\0" * 64)
        metricann.Gallery.import_file(tmp_path / "bad", tmp_path / "bad-copy")


def test_optimize_keeps_every_answer(tmp_path):
    rng = np.random.default_rng(2)
    g = metricann.Gallery.create(tmp_path / "o", dim=16, fingerprint="0123456789abcdef", segment_size=64)
    vectors = rng.normal(size=(300, 16)).astype(np.float32)
    for i in range(0, 300, 50):
        g.enroll_many([f"c{j}" for j in range(i, i + 50)], vectors[i : i + 50])
    before = [r.to_dict() for r in g.search(vectors[:20], k=3)]
    assert g.optimize() is True
    assert len(g.stats()["segments"]) == 1
    after = [r.to_dict() for r in g.search(vectors[:20], k=3)]
    assert [r["matches"][0]["label"] for r in after] == [r["matches"][0]["label"] for r in before]
