"""ItemIndex: exact steered top-k against brute force, selectors, boosts, ties, ANN and the GPU path."""

import numpy as np
import pytest
from steerrec.service.config import ServiceConfig
from steerrec.service.retrieval import GPU_MAX_K, Boosts, ItemIndex
from steerrec.service.runtime import Runtime, detect_runtime

from ._steer_helpers import reference_top_k

CPU = Runtime(onnx_providers=("CPUExecutionProvider",), faiss_gpus=0)


def make_index(n=800, d=16, seed=0, **config):
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(n, d)).astype(np.float32)
    bias = rng.normal(scale=0.3, size=n).astype(np.float32)
    return ItemIndex(vectors, bias, ServiceConfig(**config), CPU), rng


def brute(index, query, k, exclude, boosts):
    scores = index.vectors.astype(np.float64) @ query + index.bias
    scores[boosts.ids] += boosts.deltas
    return reference_top_k(scores, exclude, k)


def random_boosts(rng, n):
    ids = np.unique(rng.choice(n, size=rng.integers(1, 60), replace=False)).astype(np.int64)
    return Boosts(rng.permutation(ids), rng.normal(scale=2.0, size=len(ids)))


BOTH_PATHS = pytest.mark.parametrize("scan_max_items", [0, ServiceConfig().scan_max_items],
                                     ids=["index search", "one pass"])


@BOTH_PATHS
def test_flat_index_equals_brute_force_with_exclusions_and_boosts(scan_max_items):
    index, rng = make_index(scan_max_items=scan_max_items)
    assert index.kind == "flat" and index.exact and index.scans(0) == (scan_max_items > 0)
    for case in range(300):
        query = rng.normal(size=index.dim)
        k = int(rng.integers(1, 60))
        exclude = rng.choice(index.n_items, size=int(rng.integers(0, 700)), replace=True)  # duplicates allowed
        boosts = random_boosts(rng, index.n_items) if case % 2 else Boosts.empty()
        rows, scores = index.top_k(query, k, exclude, boosts)
        assert rows.tolist() == brute(index, query, k, exclude, boosts), case
        assert np.all(np.diff(scores) <= 0)


def test_promoting_a_large_group_ranks_from_one_pass_and_equals_brute_force():
    index, rng = make_index(n=400)
    index.gpu_index = SelectorIgnoringIndex(index.cpu_index)  # counts index searches
    for case in range(200):
        query = rng.normal(size=index.dim)
        k = int(rng.integers(1, 60))
        ids = rng.choice(index.n_items, size=int(rng.integers(160, 400)), replace=False).astype(np.int64)
        boosts = Boosts(ids, rng.normal(scale=2.0, size=len(ids)) + (case % 3 == 0) * 50.0)
        exclude = rng.choice(index.n_items, size=int(rng.integers(0, 60)), replace=True)  # >= 100 promoted stay
        rows, scores = index.top_k(query, k, exclude, boosts)
        assert rows.tolist() == brute(index, query, k, exclude, boosts), case
        expected = index.vectors[rows].astype(np.float64) @ query + index.bias[rows]
        expected += np.array([boosts.deltas[ids.tolist().index(r)] if r in ids else 0.0 for r in rows])
        np.testing.assert_allclose(scores, expected, rtol=1e-12)
    assert index.gpu_index.calls == 0


def count_searches(monkeypatch) -> list:
    searches = []
    raw_search = ItemIndex._raw_search
    monkeypatch.setattr(ItemIndex, "_raw_search", staticmethod(lambda *a: searches.append(1) or raw_search(*a)))
    return searches


def promote_cases(index, rng, sizes: tuple[int, int], cases: int = 60):
    for case in range(cases):
        query = rng.normal(size=index.dim)
        ids = rng.choice(index.n_items, size=int(rng.integers(*sizes)), replace=False).astype(np.int64)
        boosts = Boosts(ids, rng.normal(scale=2.0, size=len(ids)))
        exclude = rng.choice(index.n_items, size=int(rng.integers(0, 300)), replace=True)
        rows, _ = index.top_k(query, 20, exclude, boosts)
        assert rows.tolist() == brute(index, query, 20, exclude, boosts), case


def test_a_cpu_flat_index_ranks_from_one_pass_up_to_scan_max_items_and_then_only_large_promotes(monkeypatch):
    searches = count_searches(monkeypatch)
    small, rng = make_index(n=400, scan_max_items=400)
    for case in range(100):
        query = rng.normal(size=small.dim)
        exclude = rng.choice(small.n_items, size=int(rng.integers(0, 300)), replace=True)
        boosts = random_boosts(rng, small.n_items) if case % 2 else Boosts.empty()
        rows, _ = small.top_k(query, 20, exclude, boosts)
        assert rows.tolist() == brute(small, query, 20, exclude, boosts), case
    assert searches == []

    large, rng = make_index(n=1280, scan_max_items=1279)  # beyond: a group of 1/128 of the catalogue or more
    assert not large.scans(0) and not large.scans(9) and large.scans(10)
    promote_cases(large, rng, (10, 200), cases=30)
    assert searches == []
    promote_cases(large, rng, (1, 10), cases=30)
    assert len(searches) == 30  # smaller groups: the index search and the group's own ranking
    large.top_k(rng.normal(size=large.dim), 20, np.arange(5), Boosts.empty())
    assert len(searches) == 31  # and without a promote the index answers


@BOTH_PATHS
def test_fewer_items_than_k_and_everything_excluded(scan_max_items):
    index, rng = make_index(n=50, scan_max_items=scan_max_items)
    query = rng.normal(size=index.dim)
    rows, _ = index.top_k(query, 40, np.arange(30), Boosts.empty())
    assert sorted(rows.tolist()) == list(range(30, 50))
    rows, _ = index.top_k(query, 10, np.arange(50), Boosts(np.array([3]), np.array([1.0])))
    assert rows.tolist() == []
    group = Boosts(np.arange(20, 50), np.ones(30))  # large enough to be ranked from one pass
    rows, _ = index.top_k(query, 40, np.arange(30), group)
    assert sorted(rows.tolist()) == list(range(30, 50))
    rows, _ = index.top_k(query, 10, np.arange(50), group)
    assert rows.tolist() == []


@BOTH_PATHS
def test_excluded_items_stay_out_even_when_promoted(scan_max_items):
    index, rng = make_index(n=100, scan_max_items=scan_max_items)
    query = rng.normal(size=index.dim)
    rows, _ = index.top_k(query, 100, np.array([5, 6]), Boosts(np.array([5, 7]), np.array([100.0, 100.0])))
    assert 5 not in rows and 6 not in rows and rows[0] == 7


@BOTH_PATHS
def test_ties_are_broken_by_row(scan_max_items):
    vectors = np.tile(np.array([[1.0, 0.0]], np.float32), (6, 1))
    index = ItemIndex(vectors, np.zeros(6, np.float32), ServiceConfig(scan_max_items=scan_max_items), CPU)
    rows, _ = index.top_k(np.array([1.0, 0.0]), 4, np.array([1]), Boosts.empty())
    assert rows.tolist() == [0, 2, 3, 4]


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_approximate_indexes_above_the_flat_limit(kind):
    index, rng = make_index(n=3000, d=16, flat_index_max_items=1000, ann_kind=kind, hnsw_ef_search=128, ivf_nprobe=32)
    assert index.kind == kind and not index.exact
    recalls = []
    for _ in range(50):
        query = rng.normal(size=index.dim)
        exclude = rng.choice(index.n_items, size=100, replace=False)
        rows, _ = index.top_k(query, 10, exclude, Boosts.empty())
        assert not set(rows.tolist()) & set(exclude.tolist())
        recalls.append(len(set(rows.tolist()) & set(brute(index, query, 10, exclude, Boosts.empty()))) / 10)
    assert np.mean(recalls) >= 0.9


class SelectorIgnoringIndex:
    """Stands in for a FAISS GPU index: answers searches but ignores ID selectors."""

    def __init__(self, cpu_index):
        self.inner = cpu_index
        self.calls = 0

    def search(self, x, k):
        self.calls += 1
        return self.inner.search(x, k)


def test_gpu_path_over_fetches_and_drops_blocked_items():
    index, rng = make_index(n=600)
    index.gpu_index = SelectorIgnoringIndex(index.cpu_index)
    for case in range(100):
        query = rng.normal(size=index.dim)
        k = int(rng.integers(1, 30))
        exclude = rng.choice(index.n_items, size=int(rng.integers(0, 200)), replace=False)
        boosts = random_boosts(rng, index.n_items) if case % 2 else Boosts.empty()
        rows, _ = index.top_k(query, k, exclude, boosts)
        assert rows.tolist() == brute(index, query, k, exclude, boosts)
    assert index.gpu_index.calls == 100


@pytest.mark.skipif(detect_runtime(use_gpu=True).faiss_gpus == 0,
                    reason="needs a FAISS GPU build whose kernels run on this machine's GPU")
def test_a_real_gpu_index_equals_brute_force():
    rng = np.random.default_rng(3)
    n, d = 6000, 32
    vectors = rng.normal(size=(n, d)).astype(np.float32)
    bias = rng.normal(scale=0.3, size=n).astype(np.float32)
    index = ItemIndex(vectors, bias, ServiceConfig(), detect_runtime(use_gpu=True))
    assert index.device == "cuda" and not index.scans(0)
    for case in range(300):
        query = rng.normal(size=d)
        k = int(rng.integers(1, 60))
        # a third of the cases block more rows than a GPU search may return: those go to the CPU index
        exclude = rng.choice(n, size=int(rng.integers(GPU_MAX_K, 3000) if case % 3 == 0 else rng.integers(0, 500)))
        boosts = random_boosts(rng, n) if case % 2 else Boosts.empty()
        rows, _ = index.top_k(query, k, exclude, boosts)
        assert rows.tolist() == brute(index, query, k, exclude, boosts), case
