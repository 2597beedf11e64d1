import threading
import time

import numpy as np
import pytest

import metricann


def unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_recall_against_brute_force():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(5000, 32)).astype(np.float32)
    queries = rng.normal(size=(100, 32)).astype(np.float32)
    index = metricann.Index(32)
    index.add(base)
    assert len(index) == 5000
    ids, scores = index.search(queries, k=10, ef=128)
    assert ids.shape == (100, 10) and ids.dtype == np.int64
    exact = np.argsort(-(unit(queries) @ unit(base).T), axis=1)[:, :10]
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids, exact)])
    assert recall >= 0.95, recall
    np.testing.assert_allclose(scores[:, 0], (unit(queries) * unit(base)[ids[:, 0]]).sum(1), atol=1e-4)
    assert np.all(np.diff(scores, axis=1) <= 1e-6)


def test_ids_are_the_callers_and_removed_ones_stay_gone():
    index = metricann.Index(4)
    vectors = np.eye(4, dtype=np.float32)
    index.add(vectors, ids=[10, 20, 30, 40])
    ids, _ = index.search(vectors, k=1)
    assert ids[:, 0].tolist() == [10, 20, 30, 40]
    assert index.remove([20, 99]) == 1
    ids, scores = index.search(vectors[1], k=5)
    assert 20 not in ids[0]
    assert ids[0, -1] == -1 and np.isnan(scores[0, -1]), "rows short of k are padded"
    index.add(np.ones((1, 4)))
    assert index.search(np.ones(4), k=1)[0][0, 0] == 41


def test_bad_input_is_refused():
    index = metricann.Index(4)
    index.add(np.eye(4), ids=[1, 2, 3, 4])
    with pytest.raises(metricann.BadInputError):
        index.add(np.eye(4), ids=[5, 6, 7, 1]), "an id already present"
    with pytest.raises(metricann.BadInputError):
        index.add(np.ones((2, 5)))
    with pytest.raises(metricann.BadInputError):
        index.add(np.ones((2, 4)), ids=[-1, 5])
    with pytest.raises(metricann.BadInputError):
        index.add(np.ones((2, 4)), ids=[8])
    with pytest.raises(metricann.BadInputError):
        index.search(np.zeros((1, 4)))
    with pytest.raises(metricann.BadInputError):
        index.search(np.ones((1, 4)), k=0)
    with pytest.raises(metricann.BadInputError):
        metricann.Index(4, quantize="int3")
    assert len(index) == 4


def test_the_gil_is_released_while_the_index_builds():
    rng = np.random.default_rng(1)
    base = rng.normal(size=(5000, 32)).astype(np.float32)
    index = metricann.Index(32)
    ticks = 0
    done = threading.Event()

    def build():
        index.add(base)
        done.set()

    worker = threading.Thread(target=build)
    started = time.perf_counter()
    worker.start()
    while not done.is_set():
        ticks += 1
        time.sleep(0.001)
    worker.join()
    elapsed = time.perf_counter() - started
    assert len(index) == 5000
    # Holding the GIL through the build would leave this thread one or two ticks.
    assert ticks > min(20, elapsed * 100), (ticks, elapsed)


def test_int8_residual_storage_scores_as_float():
    rng = np.random.default_rng(4)
    base = rng.normal(size=(3000, 32)).astype(np.float32)
    unit = base / np.linalg.norm(base, axis=1, keepdims=True)
    error = {}
    for mode in ("int8", "int8-residual"):
        index = metricann.Index(32, quantize=mode, ef_search=128)
        index.add(base)
        ids, scores = index.search(base[:50], k=5)
        exact = np.einsum("qd,qkd->qk", unit[:50], unit[ids])
        error[mode] = float(np.abs(scores - exact).max())
    # The residual codes take int8's rounding down by about 250 times.
    assert error["int8-residual"] < 2e-4, error
    assert error["int8-residual"] < error["int8"] / 10, error


def test_int8_storage_searches_nearly_as_well():
    rng = np.random.default_rng(3)
    base = rng.normal(size=(3000, 32)).astype(np.float32)
    index = metricann.Index(32, quantize="int8", ef_search=128)
    index.add(base)
    ids, _ = index.search(base[:50], k=1)
    assert np.mean(ids[:, 0] == np.arange(50)) >= 0.95
    assert index.ef_search == 128
    index.ef_search = 32
    assert index.ef_search == 32
    assert index.memory_bytes > 0
