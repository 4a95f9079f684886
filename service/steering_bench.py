"""How well steering by a concept's neuron moves recommendations to (or away from) that concept.

For every value of a facet (every genre, say), the neuron that owns its plain slug (the one
``steer=horror`` moves; the labeller gives it to the neuron that best names the concept) is
boosted at each strength for every user at once, with the service's own semantics
(``steer=SLUG:+V``: the activation rises by V activation scales, the SAE error term is kept), and
the items it fires on are filtered (``filter=SLUG``). Reported per concept: the share of the concept in users' top-K
(seen items excluded), the fraction of users whose top-K is at least ``target_share`` that
concept, and the Recall@K cost on the bundle's held-out test set.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from steerrec import metrics
from steerrec.slugs import slugify

from .abtest.simulate import concept_mask, load_test_set
from .engine import SteeringEngine


@dataclass
class SteeringBenchConfig:
    facet: str = "genre"
    """Item metadata facet whose values are the concepts."""
    strengths: tuple[float, ...] = (2.0, 4.0, 8.0, 16.0)
    """Boost values V of ``steer=SLUG:+V``, in activation scales."""
    k: int = 20
    target_share: float = 0.8
    """A user is "steered" when at least this share of the top-K has the concept."""
    users: int = 0
    """Users to steer (0: all), taken evenly spaced so the sample is deterministic."""
    values: list[str] = field(default_factory=list)
    """Concepts to test (empty: every value of the facet)."""


class ConceptResult(NamedTuple):
    concept: str
    neuron: int | None
    """The neuron owning the concept's plain slug (None: no such slug)."""
    slug: str | None
    base_share: float
    """Mean share of the concept in unsteered top-K lists."""
    boosted: dict[float, tuple[float, float, float]]
    """strength -> (mean share, fraction of users at >= target_share, relative Recall@K change)."""
    filtered: tuple[float, float, float] | None
    """(mean share, fraction of users with none of the concept, relative Recall@K change)."""


class Ranker:
    """Top-K for many users at once from (steered) user vectors, seen and dropped items excluded."""

    def __init__(self, engine: SteeringEngine, users: np.ndarray, k: int):
        self.items_ID = engine.index.vectors.astype(np.float64)
        self.bias_I = engine.index.bias.astype(np.float64)
        self.users, self.k = users, k
        indptr, indices = engine.seen_indptr, engine.seen_indices
        counts = np.diff(indptr)[users]
        self.seen_rows = np.repeat(np.arange(len(users)), counts)
        self.seen_cols = np.concatenate([indices[indptr[u]:indptr[u + 1]] for u in users]).astype(np.int64)

    def top(self, users_UD: np.ndarray, dropped: np.ndarray | None = None) -> np.ndarray:
        scores = users_UD @ self.items_ID.T + self.bias_I
        scores[self.seen_rows, self.seen_cols] = -np.inf
        if dropped is not None and len(dropped):
            scores[:, dropped] = -np.inf
        return metrics.top_k(scores, self.k)


def run_steering_bench(engine: SteeringEngine, cfg: SteeringBenchConfig) -> list[ConceptResult]:
    if not engine.catalog.has_labels:
        raise ValueError(f"{engine.bundle.root}: no neurons.json; run `steerrec interpret --bundle "
                         f"{engine.bundle.root}` first")
    meta = engine.bundle.item_metadata()
    facet_values = meta.get("facets", {}).get(cfg.facet)
    if facet_values is None:
        raise ValueError(f"no facet {cfg.facet!r} in the item metadata (facets: {sorted(meta.get('facets', {}))})")
    values = cfg.values or sorted({str(v) for vs in facet_values for v in (vs if isinstance(vs, list) else [vs])})
    n_users = len(engine.user_ids)
    users = np.arange(n_users) if not cfg.users or cfg.users >= n_users else \
        np.linspace(0, n_users - 1, cfg.users).round().astype(np.int64)
    test = load_test_set(engine.bundle)
    n_test = np.diff(test.indptr)[users] + test.unrankable[users]
    tested = n_test > 0

    def recall(top: np.ndarray) -> float:
        hits = metrics.hits_matrix(top[tested], users[tested], test.indptr, test.indices)
        return float(metrics.ranking_scores(hits, n_test[tested]).recall.mean())

    ranker = Ranker(engine, users, cfg.k)
    base_UD = engine.user_factors[users].astype(np.float64)
    base_top = ranker.top(base_UD)
    base_recall = recall(base_top)
    results = []
    for value in values:
        mask = concept_mask(meta, f"{cfg.facet}={value}")
        base_share = float(mask[base_top].mean())
        slug = slugify(value)  # what steer=<concept> means: the neuron owning the concept's plain slug
        j = engine.catalog.slug_to_id.get(slug)
        if j is None:
            results.append(ConceptResult(value, None, None, base_share, {}, None))
            continue
        boosted = {}
        for v in cfg.strengths:
            # steer=SLUG:+V on every user: z_j += V * s_j, so u' = u + V * s_j * D_j (docs/steering.md).
            (steer,), _, _ = engine.parse(steer=[f"{slug}:+{v:g}"])
            u_steered = base_UD + steer.value * engine.scale[j] * engine.directions[j]
            share = mask[ranker.top(u_steered)].mean(1)
            boosted[v] = (float(share.mean()), float((share >= cfg.target_share).mean()),
                          recall(ranker.top(u_steered)) / base_recall - 1)
        _, filters, _ = engine.parse(filter=[slug])
        dropped, _ = engine.filtered_rows(filters)
        top = ranker.top(base_UD, dropped)
        share = mask[top].mean(1)
        filtered = (float(share.mean()), float((share == 0).mean()), recall(top) / base_recall - 1)
        results.append(ConceptResult(value, j, slug, base_share, boosted, filtered))
    return results


def best_strength(results: list[ConceptResult], cfg: SteeringBenchConfig, users_needed: float = 0.9) -> tuple[float, int]:
    """The strength that steers the most concepts (ties: the weakest), and that count."""
    counts = {v: sum(1 for r in results if r.boosted and r.boosted[v][1] >= users_needed) for v in cfg.strengths}
    best = max(cfg.strengths, key=lambda v: (counts[v], -v))
    return best, counts[best]
