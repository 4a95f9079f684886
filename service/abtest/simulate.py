"""Offline replay of held-out interactions against an experiment's arms.

Every test user is ranked under every arm (a paired design: the arms see the same users, so the
differences between arms have far less noise than a split of users would give). Per arm:
Recall@K and NDCG@K with the project's convention (``steerrec.metrics``: test items outside the
catalogue count in the denominators, Recall@K = hits / min(K, n_test + unrankable)), and the share
of a concept (a facet value of the item metadata, e.g. genre=Horror) among the items returned.
Intervals are percentile bootstraps over users, with one set of resamples shared by all arms so the
difference to the control gets its own (paired) interval.

The ranking is any callable ``rank(user_index, assignment) -> item indices, best first``: the real
engine through ``engine_ranker``, or a fake in tests.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from steerrec.bundle import TEST_INTERACTIONS, Bundle, BundleError
from steerrec.metrics import hits_matrix, ranking_scores

from ..experiments import Assignment
from ..neurons import distinct_values, facet_mask

Ranker = Callable[[int, Assignment], np.ndarray]


class TestSet(NamedTuple):
    """Held-out items per user in the bundle's item index space (CSR)."""

    __test__ = False  # not a pytest class
    indptr: np.ndarray
    """int64 [n_users + 1]"""
    indices: np.ndarray
    """item indices of the test interactions"""
    unrankable: np.ndarray
    """int64 [n_users]: test items not in the catalogue; they count in the denominators"""

    @property
    def n_relevant(self) -> np.ndarray:
        return np.diff(self.indptr) + self.unrankable

    def users(self) -> np.ndarray:
        """Users with at least one test item (rankable or not): the evaluated users."""
        return np.flatnonzero(self.n_relevant > 0)


def load_test_set(bundle: str | Path | Bundle) -> TestSet:
    b = bundle if isinstance(bundle, Bundle) else Bundle.open(bundle)
    path = b.root / TEST_INTERACTIONS
    if not b.has(TEST_INTERACTIONS):
        raise BundleError(f"{path}: the bundle has no held-out test set to replay")
    data = b.npz(TEST_INTERACTIONS)
    missing = {"indptr", "indices"} - set(data)
    if missing:
        raise BundleError(f"{path}: missing arrays {sorted(missing)}")
    n_users, n_items = b.manifest.dataset.n_users, b.manifest.dataset.n_items
    indptr, indices = data["indptr"].astype(np.int64), data["indices"].astype(np.int64)
    unrankable = data.get("unrankable", np.zeros(n_users, dtype=np.int64)).astype(np.int64)
    if indptr.shape != (n_users + 1,) or indptr[-1] != len(indices) or unrankable.shape != (n_users,):
        raise BundleError(f"{path}: arrays do not match the bundle's {n_users} users")
    if len(indices) and (indices.min() < 0 or indices.max() >= n_items):
        raise BundleError(f"{path}: item indices outside 0..{n_items - 1}")
    return TestSet(indptr, indices, unrankable)


def concept_mask(metadata: dict[str, Any], spec: str) -> np.ndarray:
    """bool [n_items]: items whose facet carries the value, from ``FACET=VALUE`` (case-insensitive
    value). A facet entry may be one value or a list of values per item."""
    facet, sep, value = spec.partition("=")
    if not sep or not facet or not value:
        raise ValueError(f"--concept expects FACET=VALUE (e.g. genre=Horror), got {spec!r}")
    facets = metadata.get("facets", {})
    mask = facet_mask(facets, facet, value)
    if mask is None:
        raise ValueError(f"concept {spec!r}: no facet {facet!r} in the item metadata (facets: {sorted(facets)})")
    if not mask.any():
        known = distinct_values(facets[facet])[:40]
        raise ValueError(f"concept {spec!r}: no item has {facet}={value} (values: {known})")
    return mask


class Interval(NamedTuple):
    mean: float
    low: float
    high: float


class ArmResult(NamedTuple):
    arm: str
    control: bool
    recall: Interval
    ndcg: Interval
    share: Interval | None
    """Concept share of the returned items (None without a concept)."""
    d_recall: Interval | None
    """Paired difference to the control (None for the control or when there is none)."""
    d_ndcg: Interval | None
    d_share: Interval | None
    mean_returned: float
    """Average length of the returned lists (below K when filters empty the catalogue)."""


class Simulation(NamedTuple):
    arms: list[ArmResult]
    k: int
    users: int
    concept: str | None
    n_bootstrap: int
    confidence: float


def per_user_metrics(rank: Ranker, assignment: Assignment, users: np.ndarray, test: TestSet, k: int,
                     mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(recall, ndcg, concept share, list length), each float64 [n_users]. Lists shorter than k
    are padded with -1, which is never a test item; the share is over the items returned (0 when
    none are)."""
    top = np.full((len(users), k), -1, dtype=np.int64)
    share = np.zeros(len(users))
    length = np.zeros(len(users))
    for row, u in enumerate(users):
        items = np.asarray(rank(int(u), assignment), dtype=np.int64)[:k]
        if len(np.unique(items)) != len(items):
            raise ValueError(f"ranker returned duplicate items for user {u} under arm {assignment.arm!r}")
        top[row, : len(items)] = items
        length[row] = len(items)
        if mask is not None and len(items):
            share[row] = mask[items].mean()
    hits = hits_matrix(top, users, test.indptr, test.indices) & (top >= 0)
    scores = ranking_scores(hits, test.n_relevant[users])
    return scores.recall, scores.ndcg, share, length


def bootstrap_intervals(values_MU: np.ndarray, n_bootstrap: int, confidence: float, seed: int,
                        chunk: int = 100) -> list[Interval]:
    """Percentile bootstrap of the mean of each row of ``values_MU`` (metrics x users), resampling
    users once for all rows so paired differences stay paired."""
    m, n = values_MU.shape
    means = values_MU.mean(axis=1)
    if n_bootstrap <= 0 or n == 0:
        return [Interval(float(x), float("nan"), float("nan")) for x in means]
    rng = np.random.default_rng(seed)
    boots = np.empty((n_bootstrap, m))
    for start in range(0, n_bootstrap, chunk):
        size = min(chunk, n_bootstrap - start)
        counts_BU = rng.multinomial(n, np.full(n, 1.0 / n), size=size).astype(np.float64)
        boots[start: start + size] = counts_BU @ values_MU.T / n
    alpha = (1 - confidence) / 2
    low, high = np.quantile(boots, [alpha, 1 - alpha], axis=0)
    return [Interval(float(a), float(b), float(c)) for a, b, c in zip(means, low, high, strict=True)]


def simulate(rank: Ranker, arms: Sequence[Assignment], test: TestSet, k: int = 20,
             mask: np.ndarray | None = None, concept: str | None = None, n_bootstrap: int = 1000,
             confidence: float = 0.95, seed: int = 0, users: np.ndarray | None = None) -> Simulation:
    """Replays the test set through every arm. ``users`` restricts (or subsamples) the evaluated
    users; by default every user with a test item. The control is the arm flagged ``control``."""
    if k <= 0:
        raise ValueError(f"k must be positive, got {k}")
    if not arms:
        raise ValueError("no arms to simulate")
    users = test.users() if users is None else np.asarray(users, dtype=np.int64)
    users = users[test.n_relevant[users] > 0]
    if len(users) == 0:
        raise ValueError("no test user has held-out items")
    per_arm = [per_user_metrics(rank, a, users, test, k, mask) for a in arms]
    control = next((i for i, a in enumerate(arms) if a.control), None)

    # One matrix of rows to bootstrap: each arm's three metrics, then each arm's differences.
    rows = [m for r, n, s, _ in per_arm for m in (r, n, s)]
    if control is not None:
        cr, cn, cs, _ = per_arm[control]
        rows += [m for r, n, s, _ in per_arm for m in (r - cr, n - cn, s - cs)]
    ivals = bootstrap_intervals(np.vstack(rows), n_bootstrap, confidence, seed)

    results = []
    n_arms = len(arms)
    for i, a in enumerate(arms):
        recall, ndcg, share = ivals[3 * i: 3 * i + 3]
        deltas: list[Interval | None] = [None, None, None]
        if control is not None and i != control:
            deltas = ivals[3 * n_arms + 3 * i: 3 * n_arms + 3 * i + 3]
        results.append(ArmResult(
            arm=a.arm, control=a.control, recall=recall, ndcg=ndcg, share=share if mask is not None else None,
            d_recall=deltas[0], d_ndcg=deltas[1], d_share=deltas[2] if mask is not None else None,
            mean_returned=float(per_arm[i][3].mean())))
    return Simulation(results, k, len(users), concept, n_bootstrap, confidence)


def engine_ranker(engine: Any, k: int, exclude_seen: bool = True, user_ids: Sequence[str] | None = None) -> Ranker:
    """Adapts the steering engine's ``recommend(user, k, steer, filter, promote, exclude_seen)`` to a
    Ranker. ``user_ids`` (the bundle's, in row order) maps the row index to the id the engine takes;
    without it the row index is passed. The engine may return an object with ``rows`` (or
    ``indices``) holding item rows, or an (indices, scores) pair.
    """

    def rank(user_index: int, a: Assignment) -> np.ndarray:
        user = user_ids[user_index] if user_ids is not None else user_index
        result = engine.recommend(user, k, steer=list(a.steer), filter=list(a.filter),
                                  promote=list(a.promote), exclude_seen=exclude_seen)
        for name in ("rows", "indices"):
            if hasattr(result, name):
                result = getattr(result, name)
                break
        else:
            if isinstance(result, tuple):
                result = result[0]
        return np.asarray(result, dtype=np.int64)

    return rank


def format_simulation(sim: Simulation) -> str:
    from steerrec.table import markdown_table

    k, pct = sim.k, f"{sim.confidence * 100:g}%"
    headers = ["arm", f"Recall@{k}", f"NDCG@{k}"]
    if sim.concept:
        headers.append(f"{sim.concept} share")
    headers += [f"ΔRecall@{k} vs control", f"ΔNDCG@{k}"]
    if sim.concept:
        headers.append("Δshare")
    headers.append("mean list length")
    body = []
    for r in sim.arms:
        row = [r.arm + (" (control)" if r.control else ""), _ci(r.recall), _ci(r.ndcg)]
        if sim.concept:
            row.append(_ci(r.share))
        row += [_ci(r.d_recall, signed=True), _ci(r.d_ndcg, signed=True)]
        if sim.concept:
            row.append(_ci(r.d_share, signed=True))
        row.append(f"{r.mean_returned:.1f}")
        body.append(row)
    title = (f"{sim.users} test users, top-{k}; {pct} bootstrap intervals over users "
             f"({sim.n_bootstrap} resamples, paired across arms)")
    return title + "\n\n" + markdown_table(headers, body)


def _ci(iv: Interval | None, signed: bool = False) -> str:
    if iv is None:
        return "-"
    f = "{:+.4f}" if signed else "{:.4f}"
    if np.isnan(iv.low):
        return f.format(iv.mean)
    return f"{f.format(iv.mean)} [{f.format(iv.low)}, {f.format(iv.high)}]"
