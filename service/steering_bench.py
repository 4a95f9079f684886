"""How well steering by a concept's neuron moves recommendations to (or away from) that concept.

For every value of a facet (every genre, say), the neuron its plain slug resolves to (the one
``steer=horror`` moves; the labeller gives the slug to the neuron that best names the concept, or as
an alias to a two-concept neuron when no neuron owns it) is boosted at each strength for every user
at once, with the service's own semantics (``steer=SLUG:+V``: the activation rises by V activation
scales, the SAE error term is kept), and the items it fires on are filtered (``filter=SLUG``).
Reported per concept: the share of the concept in users' top-K (seen items excluded), the fraction
of users whose top-K is at least ``target_share`` that concept, and the Recall@K cost on the
bundle's held-out test set.
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
    """The neuron the concept's plain slug resolves to, as its slug or an alias (None: neither)."""
    slug: str | None
    base_share: float
    """Mean share of the concept in unsteered top-K lists."""
    boosted: dict[float, tuple[float, float, float]]
    """strength -> (mean share, fraction of users at >= target_share, relative Recall@K change)."""
    filtered: tuple[float, float, float] | None
    """(mean share, fraction of users with none of the concept, relative Recall@K change)."""


class Ranker:
    """Top-K for a sample of users at once from (steered) user vectors, seen and dropped items
    excluded, and the Recall@K of such lists on the bundle's held-out test set."""

    def __init__(self, engine: SteeringEngine, users: int | np.ndarray, k: int):
        """``users``: user rows, or a count of users evenly spaced (a deterministic sample), 0 for all."""
        n_users = len(engine.user_ids)
        if isinstance(users, np.ndarray):
            self.users = users.astype(np.int64)
        else:
            self.users = np.arange(n_users) if not users or users >= n_users else \
                np.linspace(0, n_users - 1, users).round().astype(np.int64)
        self.items_ID = engine.index.vectors.astype(np.float64)
        self.bias_I = engine.index.bias.astype(np.float64)
        self.k = k
        indptr, indices = engine.seen_indptr, engine.seen_indices
        counts = np.diff(indptr)[self.users]
        self.seen_rows = np.repeat(np.arange(len(self.users)), counts)
        self.seen_cols = np.concatenate([indices[indptr[u]:indptr[u + 1]] for u in self.users]).astype(np.int64)
        self.test = load_test_set(engine.bundle)
        self.n_test = np.diff(self.test.indptr)[self.users] + self.test.unrankable[self.users]
        self.base_UD = engine.user_factors[self.users].astype(np.float64)
        self.base_top = self.top(self.base_UD)
        self.base_recall = self.recall(self.base_top)

    def top(self, users_UD: np.ndarray, dropped: np.ndarray | None = None) -> np.ndarray:
        scores = users_UD @ self.items_ID.T + self.bias_I
        scores[self.seen_rows, self.seen_cols] = -np.inf
        if dropped is not None and len(dropped):
            scores[:, dropped] = -np.inf
        return metrics.top_k(scores, self.k)

    def recall(self, top: np.ndarray) -> float:
        """Mean Recall@K over the sampled users with test items."""
        tested = self.n_test > 0
        hits = metrics.hits_matrix(top[tested], self.users[tested], self.test.indptr, self.test.indices)
        return float(metrics.ranking_scores(hits, self.n_test[tested]).recall.mean())

    def recall_change(self, top: np.ndarray) -> float:
        """Recall@K relative to the unsteered lists' (-0.1: 10% lower)."""
        return self.recall(top) / self.base_recall - 1


def concept_values(engine: SteeringEngine, facet: str, values: list[str] | None) -> tuple[dict, list[str]]:
    """The item metadata and the facet's values to measure (``values``, or all of them)."""
    if not engine.catalog.has_labels:
        raise ValueError(f"{engine.bundle.root}: no neurons.json; run `steerrec interpret --bundle "
                         f"{engine.bundle.root}` first")
    meta = engine.bundle.item_metadata()
    facet_values = meta.get("facets", {}).get(facet)
    if facet_values is None:
        raise ValueError(f"no facet {facet!r} in the item metadata (facets: {sorted(meta.get('facets', {}))})")
    return meta, values or sorted({str(v) for vs in facet_values for v in (vs if isinstance(vs, list) else [vs])})


def run_steering_bench(engine: SteeringEngine, cfg: SteeringBenchConfig) -> list[ConceptResult]:
    meta, values = concept_values(engine, cfg.facet, cfg.values)
    ranker = Ranker(engine, cfg.users, cfg.k)
    base_UD, base_top = ranker.base_UD, ranker.base_top
    results = []
    for value in values:
        mask = concept_mask(meta, f"{cfg.facet}={value}")
        base_share = float(mask[base_top].mean())
        slug = slugify(value)  # what steer=<concept> means: the neuron answering to the plain slug
        j = engine.catalog.slug_to_id.get(slug)
        if j is None:
            results.append(ConceptResult(value, None, None, base_share, {}, None))
            continue
        boosted = {}
        for v in cfg.strengths:
            # steer=SLUG:+V on every user: z_j += V * s_j, so u' = u + V * s_j * D_j (docs/steering.md).
            (steer,), _, _ = engine.parse(steer=[f"{slug}:+{v:g}"])
            u_steered = base_UD + steer.value * engine.scale[j] * engine.directions[j]
            top = ranker.top(u_steered)
            share = mask[top].mean(1)
            boosted[v] = (float(share.mean()), float((share >= cfg.target_share).mean()), ranker.recall_change(top))
        _, filters, _ = engine.parse(filter=[slug])
        dropped, _ = engine.filtered_rows(filters)
        top = ranker.top(base_UD, dropped)
        share = mask[top].mean(1)
        filtered = (float(share.mean()), float((share == 0).mean()), ranker.recall_change(top))
        results.append(ConceptResult(value, j, slug, base_share, boosted, filtered))
    return results


def best_strength(results: list[ConceptResult], cfg: SteeringBenchConfig, users_needed: float = 0.9) -> tuple[float, int]:
    """The strength that steers the most concepts (ties: the weakest), and that count."""
    counts = {v: sum(1 for r in results if r.boosted and r.boosted[v][1] >= users_needed) for v in cfg.strengths}
    best = max(cfg.strengths, key=lambda v: (counts[v], -v))
    return best, counts[best]
