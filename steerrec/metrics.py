"""Ranking metrics in plain numpy, shared by offline evaluation and the service's A/B simulator.

Conventions (those of ``../shared/data/splits/ml-1m``): Recall@K = hits / min(K, n_test);
NDCG@K uses binary relevance with the ideal DCG over min(K, n_test) positions; both are averaged
over users with at least one test item, counting test items no model can rank.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


def top_k(scores_BI: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest scores per row, best first: int64 [B, k]. Ties break by index."""
    k = min(k, scores_BI.shape[1])
    part = np.argpartition(-scores_BI, k - 1, axis=1)[:, :k]
    part_scores = np.take_along_axis(scores_BI, part, axis=1)
    order = np.lexsort((part, -part_scores), axis=1)
    return np.take_along_axis(part, order, axis=1)


def hits_matrix(top_BK: np.ndarray, users_B: np.ndarray, test_indptr: np.ndarray,
                test_indices: np.ndarray) -> np.ndarray:
    """bool [B, K]: whether each recommended item is among the user's test items."""
    hits = np.zeros(top_BK.shape, dtype=bool)
    for row, u in enumerate(users_B):
        truth = test_indices[test_indptr[u]: test_indptr[u + 1]]
        if len(truth):
            hits[row] = np.isin(top_BK[row], truth)
    return hits


class RankingScores(NamedTuple):
    """Per-user values, aligned with the evaluated users."""

    recall: np.ndarray
    """hits / min(K, n_test)"""
    ndcg: np.ndarray
    """DCG / ideal DCG over min(K, n_test) positions"""
    hit: np.ndarray
    """1.0 when at least one test item is in the top K"""


def ranking_scores(hits_BK: np.ndarray, n_test_B: np.ndarray) -> RankingScores:
    k = hits_BK.shape[1]
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    denom = np.minimum(k, n_test_B)
    ideal = np.concatenate([[0.0], np.cumsum(discount)])[denom]
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = hits_BK.sum(1) / denom
        ndcg = (hits_BK * discount).sum(1) / ideal
    return RankingScores(recall=recall, ndcg=ndcg, hit=hits_BK.any(1).astype(np.float64))


def coverage(top_BK: np.ndarray, n_items: int) -> float:
    """Share of the catalogue that appears in at least one top-K list."""
    return float(len(np.unique(top_BK)) / n_items)


def popularity_bias(top_BK: np.ndarray, popularity_I: np.ndarray) -> dict[str, float]:
    """Average popularity of recommended items against the catalogue's.

    ``arp``: mean training popularity (share of users) of recommended items; ``long_tail_share``:
    share of recommendations from outside the most popular 20% of items.
    """
    pop = popularity_I.astype(np.float64)
    head = np.zeros(len(pop), dtype=bool)
    head[np.argsort(-pop, kind="stable")[: max(1, int(0.2 * len(pop)))]] = True
    n_users = max(pop.max(), 1.0)
    return {
        "arp": float(pop[top_BK].mean() / n_users),
        "catalog_mean_popularity": float(pop.mean() / n_users),
        "long_tail_share": float((~head[top_BK]).mean()),
    }


def rbo(list_a: np.ndarray, list_b: np.ndarray, p: float = 0.9) -> float:
    """Extrapolated rank-biased overlap (Webber et al. 2010) of two rankings of equal depth k."""
    k = min(len(list_a), len(list_b))
    if k == 0:
        return 1.0
    a, b = list_a[:k], list_b[:k]
    overlap = np.array([len(set(a[:d]) & set(b[:d])) for d in range(1, k + 1)], dtype=np.float64)
    depth = np.arange(1, k + 1)
    weights = p ** depth
    return float(overlap[-1] / k * p**k + (1 - p) / p * np.sum(overlap / depth * weights))


def kendall_tau_union(list_a: np.ndarray, list_b: np.ndarray) -> float:
    """Kendall tau-b over the union of two top-k lists; an item missing from a list ranks last
    there (tied with the other missing items)."""
    union = np.union1d(list_a, list_b)
    rank_a = np.full(len(union), len(list_a), dtype=np.float64)
    rank_b = np.full(len(union), len(list_b), dtype=np.float64)
    rank_a[np.searchsorted(union, list_a)] = np.arange(len(list_a))
    rank_b[np.searchsorted(union, list_b)] = np.arange(len(list_b))
    da = np.sign(rank_a[:, None] - rank_a[None, :])
    db = np.sign(rank_b[:, None] - rank_b[None, :])
    upper = np.triu_indices(len(union), k=1)
    da, db = da[upper], db[upper]
    concordance = np.sum(da * db)
    norm = np.sqrt(np.sum(da != 0) * np.sum(db != 0))
    return float(concordance / norm) if norm else 1.0


def list_agreement(tops_a: np.ndarray, tops_b: np.ndarray, p: float = 0.9) -> dict[str, float]:
    """Mean RBO and Kendall tau between paired top-k lists (rows of two [B, k] arrays)."""
    rbos = [rbo(a, b, p) for a, b in zip(tops_a, tops_b)]
    taus = [kendall_tau_union(a, b) for a, b in zip(tops_a, tops_b)]
    return {"rbo": float(np.mean(rbos)), "kendall_tau": float(np.mean(taus))}
