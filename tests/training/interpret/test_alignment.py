"""Exact reference values of every alignment score on hand-made matrices."""

import math

import numpy as np
import pytest
from scipy import stats
from steerrec.training.interpret import alignment as AL

# 6 items, 2 latents. Latent 0 fires on items 0,1,2,5; latent 1 on items 3,4.
Z = np.array([[5, 0], [4, 0], [3, 0], [0, 2], [0, 1], [1, 0]], dtype=np.float32)
# Concept A: items 0,1,3. Concept B: items 2,4,5.
C = np.array([[1, 0], [1, 0], [0, 1], [1, 0], [0, 1], [0, 1]], dtype=bool)


def test_top_rows_sorted_strongest_first():
    top, act = AL.top_rows(Z, 3)
    assert top[:, 0].tolist() == [0, 1, 2]
    assert act[:, 0].tolist() == [5, 4, 3]
    assert top[:2, 1].tolist() == [3, 4] and act[2, 1] == 0  # only two active rows


def test_purity_counts_empty_slots_as_misses():
    top, act = AL.top_rows(Z, 3)
    p = AL.purity_at(top, act, C, ks=(2, 3))
    np.testing.assert_allclose(p[2], [[1.0, 0.0], [0.5, 0.5]])
    np.testing.assert_allclose(p[3], [[2 / 3, 1 / 3], [1 / 3, 1 / 3]])


def test_precision_recall_f1_of_neuron_active():
    precision, recall, f1 = AL.detection(Z, C)
    np.testing.assert_allclose(precision, [[0.5, 0.5], [0.5, 0.5]])
    np.testing.assert_allclose(recall, [[2 / 3, 2 / 3], [1 / 3, 1 / 3]], rtol=1e-6)
    np.testing.assert_allclose(f1, [[4 / 7, 4 / 7], [0.4, 0.4]], rtol=1e-6)


def test_detection_of_a_dead_latent_and_an_empty_concept_is_zero():
    z = np.zeros((4, 1), np.float32)
    c = np.zeros((4, 1), bool)
    assert [float(a[0, 0]) for a in AL.detection(z, c)] == [0.0, 0.0, 0.0]


def test_point_biserial_by_hand_and_against_scipy():
    r = AL.point_biserial(Z, C)
    # Latent 0, concept A: M1 = 3, M0 = 4/3, population std of z = sqrt(51/6 - (13/6)^2), p = q = 1/2.
    s = math.sqrt(51 / 6 - (13 / 6) ** 2)
    assert r[0, 0] == pytest.approx((3 - 4 / 3) / s * 0.5, abs=1e-6)
    for latent in range(2):
        for concept in range(2):
            ref = stats.pointbiserialr(C[:, concept], Z[:, latent]).statistic
            assert r[latent, concept] == pytest.approx(ref, abs=1e-6)


def test_pearson_ignores_missing_values():
    v = np.array([1.0, 2.0, np.nan, 4.0, 5.0, 6.0])
    ok = np.isfinite(v)
    ref = np.corrcoef(Z[ok, 0], v[ok])[0, 1]
    assert AL.pearson(Z, v)[0] == pytest.approx(ref, abs=1e-6)


def test_tfidf_is_activation_share_times_inverse_document_frequency():
    w = AL.tfidf(Z, C)
    np.testing.assert_allclose(w[0], [9 / 13 * math.log(2), 4 / 13 * math.log(2)], rtol=1e-6)
    np.testing.assert_allclose(w[1], [2 / 3 * math.log(2), 1 / 3 * math.log(2)], rtol=1e-6)


def test_normalized_purity_rescales_between_base_rate_and_best_reachable():
    # support 3 of 6 items: base rate 0.5; at k = 3 the best purity is 1, at k = 6 it is 0.5.
    p = np.array([[2 / 3, 0.4]])
    np.testing.assert_allclose(AL.normalized_purity(p, 3, np.array([3, 3]), 6), [[1 / 3, 0.0]])
    # A concept held by 2 items can reach purity 0.2 at k = 10: 0.2 is the best possible.
    np.testing.assert_allclose(AL.normalized_purity(np.array([[0.2]]), 10, np.array([2]), 100), [[1.0]])


def test_slots_follow_the_rows_a_neuron_fires_on():
    assert AL.slots(50, np.array([3, 24, 500]), 10).tolist() == [10, 24, 50]


def test_align_score_judges_a_narrow_neuron_on_its_active_rows():
    # A neuron active on 12 items, all with the concept, out of 200 items (concept held by 30).
    z = np.zeros((200, 1), np.float32)
    z[:12, 0] = np.arange(12, 0, -1)
    c = np.zeros((200, 1), bool)
    c[:30, 0] = True
    al = AL.align(z, c)
    assert al.purity[50][0, 0] == pytest.approx(12 / 50)  # the reported figure stays strict
    assert al.score[0, 0] == pytest.approx(1.0)  # k = 10, 12, 12 slots, all hits


def test_score_judges_a_small_concept_on_as_many_slots_as_it_has_items():
    # 22 active items alternating between two 10-item concepts (and 2 others): neither concept
    # fills the neuron's first 10 slots, so neither may look perfect.
    z = np.zeros((100, 1), np.float32)
    z[:22, 0] = np.arange(22, 0, -1)
    c = np.zeros((100, 2), bool)
    c[0:20:2, 0] = True
    c[1:20:2, 1] = True
    al = AL.align(z, c)
    base = 10 / 100
    np.testing.assert_allclose(al.score[0], [(0.5 - base) / (1 - base)] * 2, rtol=1e-6)


def _ms_bruteforce(a, sim):
    a = a / a.max()
    num = den = 0.0
    for m in range(len(a)):
        for n in range(len(a)):
            if m != n:
                num += a[m] * a[n] * sim[m, n]
                den += a[m] * a[n]
    return num / den


def test_monosemanticity_by_hand():
    top = np.array([[0], [1], [2]])
    act = np.array([[1.0], [0.5], [0.5]])
    E = np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 0.0]])  # cosines: (0,1)=0, (0,2)=1, (1,2)=0
    assert AL.monosemanticity_embedding(top, act, E)[0] == pytest.approx(0.5 / 1.25)
    sets = np.array([[1, 1], [1, 0], [0, 1]], bool)  # Jaccard: (0,1)=1/2, (0,2)=1/2, (1,2)=0
    assert AL.monosemanticity_jaccard(top, act, sets)[0] == pytest.approx(0.5 / 1.25)


def test_monosemanticity_matches_the_pairwise_definition():
    rng = np.random.default_rng(0)
    E = rng.normal(size=(30, 5))
    C_ = rng.random((30, 130)) < 0.05  # more than 64 concepts: several bitset words
    z = np.maximum(rng.normal(size=(30, 4)), 0).astype(np.float32)
    z[:, 3] = 0
    top, act = AL.top_rows(z, 30)
    En = E / np.linalg.norm(E, axis=1, keepdims=True)
    inter = C_.astype(float) @ C_.T.astype(float)
    sizes = C_.sum(1)
    union = sizes[:, None] + sizes[None, :] - inter
    jac = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    ms_e = AL.monosemanticity_embedding(top, act, E)
    ms_j = AL.monosemanticity_jaccard(top, act, C_)
    for j in range(3):
        assert ms_e[j] == pytest.approx(_ms_bruteforce(z[:, j].astype(float), En @ En.T), abs=1e-5)
        assert ms_j[j] == pytest.approx(_ms_bruteforce(z[:, j].astype(float), jac), abs=1e-5)
    assert ms_e[3] == 0 and ms_j[3] == 0  # a dead neuron has no pairs


def test_joint_score_equals_score_of_a_concept_column():
    z = np.maximum(np.random.default_rng(1).normal(size=(80, 5)), 0).astype(np.float32)
    c = np.random.default_rng(2).random((80, 3)) < 0.3
    al = AL.align(z, c)
    for latent in range(5):
        assert AL.joint_score(al, latent, c[:, 1]) == pytest.approx(al.score[latent, 1], abs=1e-6)


def test_best_threshold_picks_the_f1_optimal_cut():
    z = np.array([5, 4, 3, 3, 2, 1, 0], dtype=np.float32)
    c = np.array([1, 1, 0, 1, 0, 1, 1], dtype=bool)
    # Cuts: >=5: P 1, R 1/5; >=4: P 1, R 2/5; >=3 (ties together): P 3/4, R 3/5; >=2: 3/5, 3/5; >=1: 4/6, 4/5.
    t, p, r, f = AL.best_threshold(z, c)
    assert (t, p, r) == (1.0, pytest.approx(4 / 6), pytest.approx(4 / 5))
    assert f == pytest.approx(2 * (4 / 6) * (4 / 5) / (4 / 6 + 4 / 5))
    assert AL.best_threshold(np.zeros(3, np.float32), c[:3]) == (0.0, 0.0, 0.0, 0.0)


def test_popcount_fallback_matches_numpy(monkeypatch):
    x = np.array([[0, 1, 2**63 + 5], [2**64 - 1, 12345678901234, 7]], dtype=np.uint64)
    ref = [[int(v).bit_count() for v in row] for row in x]
    assert AL._popcount(x).tolist() == ref
    monkeypatch.delattr(np, "bitwise_count", raising=False)
    assert AL._popcount(x).tolist() == ref
