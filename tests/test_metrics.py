"""Ranking metrics against direct reference computations."""

import numpy as np
import pytest
from scipy.stats import kendalltau

from steerrec import metrics


def test_top_k_orders_by_score_then_index():
    scores = np.array([[0.1, 0.9, 0.5, 0.9, -1.0]])
    assert metrics.top_k(scores, 3).tolist() == [[1, 3, 2]]


def test_recall_and_ndcg_follow_the_split_convention():
    # user 0: 3 test items, 2 hit at ranks 1 and 3; user 1: 30 test items (denominator capped at K)
    hits = np.zeros((2, 20), dtype=bool)
    hits[0, [0, 2]] = True
    hits[1, :5] = True
    s = metrics.ranking_scores(hits, np.array([3, 30]))
    assert s.recall.tolist() == pytest.approx([2 / 3, 5 / 20])
    disc = 1 / np.log2(np.arange(2, 22))
    assert s.ndcg[0] == pytest.approx((disc[0] + disc[2]) / disc[:3].sum())
    assert s.ndcg[1] == pytest.approx(disc[:5].sum() / disc[:20].sum())
    assert s.hit.tolist() == [1.0, 1.0]


def test_hits_matrix_uses_each_users_test_items():
    tops = np.array([[5, 1, 2], [0, 4, 3]])
    indptr = np.array([0, 2, 3, 3])
    indices = np.array([1, 5, 3])
    assert metrics.hits_matrix(tops, np.array([0, 1]), indptr, indices).tolist() == [
        [True, True, False], [False, False, True]]


def _rbo_reference(a, b, p):
    """Webber's RBO_ext written out term by term."""
    k = len(a)
    total = 0.0
    for d in range(1, k + 1):
        x_d = len(set(a[:d]) & set(b[:d]))
        total += x_d / d * p**d
    x_k = len(set(a) & set(b))
    return x_k / k * p**k + (1 - p) / p * total


def test_rbo_matches_reference_and_bounds():
    rng = np.random.default_rng(0)
    for _ in range(20):
        a = rng.permutation(50)[:30]
        b = rng.permutation(50)[:30]
        assert metrics.rbo(a, b, 0.9) == pytest.approx(_rbo_reference(list(a), list(b), 0.9))
    same = np.arange(30)
    assert metrics.rbo(same, same, 0.9) == pytest.approx(1.0)
    assert metrics.rbo(np.arange(30), np.arange(30, 60), 0.9) == 0.0


def test_kendall_tau_union_matches_scipy_tau_b():
    rng = np.random.default_rng(1)
    for _ in range(20):
        a = rng.permutation(40)[:20]
        b = rng.permutation(40)[:20]
        union = np.union1d(a, b)
        ra = [list(a).index(x) if x in a else len(a) for x in union]
        rb = [list(b).index(x) if x in b else len(b) for x in union]
        assert metrics.kendall_tau_union(a, b) == pytest.approx(kendalltau(ra, rb).statistic)
    assert metrics.kendall_tau_union(np.arange(10), np.arange(10)) == pytest.approx(1.0)
    assert metrics.kendall_tau_union(np.arange(10), np.arange(10)[::-1]) == pytest.approx(-1.0)


def test_coverage_and_popularity_bias():
    tops = np.array([[0, 1], [0, 2]])
    assert metrics.coverage(tops, 10) == pytest.approx(0.3)
    pop = np.array([10, 5, 1, 0, 0, 0, 0, 0, 0, 0])
    bias = metrics.popularity_bias(tops, pop)
    assert bias["arp"] == pytest.approx((10 + 5 + 10 + 1) / 4 / 10)
    # head = the 2 most popular items (items 0 and 1): only item 2 is long-tail
    assert bias["long_tail_share"] == pytest.approx(0.25)
