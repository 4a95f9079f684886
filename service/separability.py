"""Why ``filter=CONCEPT`` can leave part of a concept behind: how separable its items are.

A filter drops the items a neuron fires on, so it removes a concept completely only if the neuron
fires on every item of the concept. For each value of a facet this measures, over the catalogue:
the recall and false-positive rate of the filter's item set (``filter=SLUG``), of the union of
every neuron whose label names the concept, and of the best linear read-out of the item
embeddings themselves (a logistic-regression probe on ``[v_i, b_i]``, fit and scored on the same
items, which flatters it): the share of other items it must also drop to catch 95%, 99% and 100% of the
concept. An SAE neuron's pre-activation is a linear function of the embedding, so when even the
probe cannot separate a concept, a filter on any neuron of an SAE trained on these embeddings
faces the same overlap. ``probe_filters`` asks the same of users' top-K lists, where a filter is
judged: what ``filter=SLUG`` leaves there, and the best any one neuron's filter leaves, against
the fewest items the probe must drop. ``neuron_readouts`` takes the threshold out of the question:
a neuron fires where its linear read-out of the embedding passes a cut-off, so the best AUC of any
neuron's read-out, and the fewest other items the best-separating read-outs must drop to empty the
lists, tell what a filter on the SAE's best detectors of a concept can do at any threshold.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from steerrec.bundle import SAE_WEIGHTS
from steerrec.slugs import slugify

from .abtest.simulate import concept_mask
from .engine import SteeringEngine
from .steering_bench import Ranker, concept_values

PROBE_RECALLS = (0.95, 0.99, 1.0)
READOUT_CANDIDATES = 5
"""Neurons (highest read-out AUC first) whose read-out is tried as a filter at any threshold."""


class Separability(NamedTuple):
    concept: str
    items: int
    """Items of the catalogue with the concept."""
    filter_recall: float | None
    """Share of the concept's items that ``filter=SLUG`` drops (None: no neuron owns the slug)."""
    filter_fpr: float | None
    """Share of the other items it drops too."""
    labelled: int
    """Neurons whose label names the concept (see ``names_concept``)."""
    union_recall: float
    union_fpr: float
    readout_neuron: int
    """The neuron whose read-out (``neuron_readouts``) best separates the concept."""
    readout_auc: float
    """Its AUC: no threshold on any neuron of the SAE detects the concept better than this."""
    probe_auc: float
    probe_fpr: dict[float, float]
    """recall -> share of other items the probe also drops at the threshold reaching that recall."""


class ProbeFilter(NamedTuple):
    """A filter's effect on users' top-K lists: ``filter=SLUG`` against the linear probe's items."""
    concept: str
    filter_none: float | None
    """Share of users whose top-K has none of the concept under ``filter=SLUG`` (None: no such slug)."""
    filter_recall_change: float | None
    best_neuron: int | None
    """Of the neurons firing on at least half of the concept's items, the one whose filter leaves
    the most users with none of it, of those the one dropping the fewest other items (None: no
    neuron fires on half of them)."""
    best_none: float | None
    best_fpr: float | None
    """Share of the other items its filter drops: a neuron firing on most of the catalogue (a
    popularity neuron) empties every list, at this price."""
    readout_neuron: int
    """Of the ``READOUT_CANDIDATES`` neurons whose read-out best separates the concept, the one
    that empties enough lists dropping the fewest other items, at whatever threshold that takes."""
    readout_fpr: float
    """Share of the other items it drops there."""
    readout_recall_change: float
    dropped: int
    """Fewest of the probe's highest-scored items whose removal leaves ``none_share`` of the users
    with none of the concept (the boundary bisection finds)."""
    recall: float
    fpr: float
    none: float
    recall_change: float
    """Recall@K relative to the unfiltered lists'."""


def logistic_probe(x_NF: np.ndarray, y_N: np.ndarray, l2: float = 1e-2, max_steps: int = 100) -> np.ndarray:
    """Scores of a logistic regression of ``y`` on standardised ``x`` plus an intercept, fit by
    Newton's method with a small L2 penalty. Each step is halved until the penalised loss falls:
    on nearly separable data a full Newton step overshoots and the iterates diverge (seen on a
    128-dimensional ML-1M embedding, where the undamped fit ended at AUC 0.67 instead of 0.99)."""
    x = np.asarray(x_NF, np.float64)
    x = (x - x.mean(0)) / np.where(x.std(0) > 0, x.std(0), 1.0)
    x = np.hstack([x, np.ones((len(x), 1))])
    y = np.asarray(y_N, np.float64)

    def loss(w: np.ndarray) -> float:
        s = x @ w
        return float(np.logaddexp(0.0, s).sum() - y @ s + 0.5 * l2 * w @ w)

    w = np.zeros(x.shape[1])
    current = loss(w)
    for _ in range(max_steps):
        p = 0.5 * (1.0 + np.tanh(0.5 * (x @ w)))  # the logistic function, without overflow
        gradient = x.T @ (p - y) + l2 * w
        hessian = (x * (p * (1 - p))[:, None]).T @ x + l2 * np.eye(len(w))
        step = np.linalg.solve(hessian, gradient)
        decrement = float(gradient @ step)  # Newton decrement squared: the predicted fall, times 2
        if decrement < 1e-12:
            break
        t = 1.0
        while (trial := loss(w - t * step)) > current - 0.25 * t * decrement and t > 1e-10:
            t *= 0.5  # Armijo backtracking
        w, current = w - t * step, trial
    return x @ w


def fpr_at_recall(scores_N: np.ndarray, y_N: np.ndarray, recall: float) -> float:
    """Share of negatives scoring at least the threshold that keeps ``recall`` of the positives."""
    positives = np.sort(scores_N[y_N])[::-1]
    threshold = positives[max(int(np.ceil(recall * len(positives))) - 1, 0)]
    return float((scores_N[~y_N] >= threshold).mean())


def auc(scores_N: np.ndarray, y_N: np.ndarray) -> float:
    """Probability that a random positive outscores a random negative (ties count half)."""
    _, inverse, counts = np.unique(scores_N, return_inverse=True, return_counts=True)
    ranks = (np.cumsum(counts) - (counts - 1) / 2)[inverse]  # 1-based, ties share their mean rank
    n_pos, n_neg = int(y_N.sum()), int((~y_N).sum())
    return float((ranks[y_N].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def neuron_readouts(engine: SteeringEngine) -> np.ndarray:
    """Every item's linear read-out by every neuron, float64 [items, F]: the encoder's
    pre-activation before the ReLU, or for an SAE without a linear encoder (matching pursuit) the
    correlation with the neuron's atom, which decides its first pick. A BatchTopK (Matryoshka) or
    ReLU SAE fires a neuron exactly where its read-out passes a cut-off, so ``filter=J:>T`` drops a
    head of the items sorted by it, whatever T; a per-row TopK also asks it to be among the row's
    k largest."""
    w = engine.bundle.npz(SAE_WEIGHTS)
    x = (engine.index.vectors.astype(np.float64) - w["mean"]) / float(w["scale"]) - w["b_dec"]
    if "W_enc" in w:
        return x @ w["W_enc"].astype(np.float64) + w["b_enc"]
    return x @ w["W_dec"].astype(np.float64).T


def readout_aucs(readouts_IF: np.ndarray, y_I: np.ndarray) -> np.ndarray:
    """Each neuron's read-out AUC as a detector of the concept ``y``."""
    return np.array([auc(readouts_IF[:, j], y_I) for j in range(readouts_IF.shape[1])])


def _rates(dropped_N: np.ndarray, y_N: np.ndarray) -> tuple[float, float]:
    return float(dropped_N[y_N].mean()), float(dropped_N[~y_N].mean())


def names_concept(label: str, value: str) -> bool:
    """``Comedy``, ``Comedy (1980s)`` and ``Children's & Comedy`` name Comedy; the qualifier in
    brackets does not (``Drama (1980s)`` does not name 1980s)."""
    return value in label.split(" (")[0].split(" & ")


def run_separability(engine: SteeringEngine, facet: str = "genre", values: list[str] | None = None) -> list[Separability]:
    catalog = engine.catalog
    meta, values = concept_values(engine, facet, values)
    n_items = len(engine.item_ids)
    embedding = np.hstack([engine.index.vectors, engine.index.bias[:, None]])
    readouts = neuron_readouts(engine)
    results = []
    for value in values:
        y = concept_mask(meta, f"{facet}={value}")
        if y.all() or not y.any():
            continue  # nothing to separate
        slug = slugify(value)
        filter_rates = (None, None)
        if slug in catalog.slug_to_id:
            _, filters, _ = engine.parse(filter=[slug])
            dropped = np.zeros(n_items, bool)
            dropped[engine.filtered_rows(filters)[0]] = True
            filter_rates = _rates(dropped, y)
        labelled = [j for j in range(engine.n_latents) if names_concept(catalog.label(j) or "", value)]
        union = np.zeros(n_items, bool)
        for j in labelled:
            union[catalog.items_by_neuron.row(j)[0]] = True
        aucs = readout_aucs(readouts, y)
        best = int(np.argmax(aucs))
        scores = logistic_probe(embedding, y)
        results.append(Separability(value, int(y.sum()), *filter_rates, len(labelled), *_rates(union, y),
                                    best, float(aucs[best]), auc(scores, y),
                                    {r: fpr_at_recall(scores, y, r) for r in PROBE_RECALLS}))
    return results


def _none_left(ranker: Ranker, y_I: np.ndarray, dropped: np.ndarray) -> tuple[float, np.ndarray]:
    """(share of users whose top-K shows no item of the concept, the top-K) with ``dropped`` removed."""
    top = ranker.top(ranker.base_UD, dropped)
    shown = np.ones(len(y_I), bool)
    shown[dropped] = False  # a list shorter than K is padded with excluded rows: not shown
    return float((~(y_I & shown)[top]).all(1).mean()), top


def _best_neuron(engine: SteeringEngine, ranker: Ranker,
                 y_I: np.ndarray) -> tuple[int | None, float | None, float | None]:
    """Whether another neuron than the slug's would filter the concept better: tries every neuron
    that fires on at least half of its items (one firing on fewer leaves too much of it behind).
    (neuron, share of users with none, FPR); equal shares go to the neuron dropping fewer others."""
    best: tuple[int | None, float | None, float | None] = (None, None, None)
    for j in range(engine.n_latents):
        rows = engine.catalog.items_by_neuron.row(j)[0]
        if 2 * y_I[rows].sum() < y_I.sum():
            continue
        none = _none_left(ranker, y_I, rows)[0]
        fpr = float(_mask(len(y_I), rows)[~y_I].mean())
        if best[1] is None or (none, -fpr) > (best[1], -best[2]):
            best = (j, none, fpr)
    return best


def _fewest(ranker: Ranker, y_I: np.ndarray, order: np.ndarray, none_share: float) -> int:
    """Fewest items from the head of ``order`` whose removal leaves ``none_share`` of the users with
    none of the concept (a bisection: the share grows with every item dropped)."""
    lo, hi = 0, int(np.flatnonzero(y_I[order])[-1]) + 1  # dropping through the last item of the concept: none left
    while lo < hi:
        mid = (lo + hi) // 2
        if _none_left(ranker, y_I, order[:mid])[0] >= none_share:
            hi = mid
        else:
            lo = mid + 1
    return lo


def _mask(n: int, rows: np.ndarray) -> np.ndarray:
    mask = np.zeros(n, bool)
    mask[rows] = True
    return mask


def _best_readout(ranker: Ranker, y_I: np.ndarray, readouts_IF: np.ndarray,
                  none_share: float) -> tuple[int, float, float]:
    """(neuron, FPR, Recall@K change) of the read-out that empties enough lists dropping the fewest
    other items, among the ``READOUT_CANDIDATES`` that separate the concept best (by AUC)."""
    aucs = readout_aucs(readouts_IF, y_I)
    best: tuple[int, float, np.ndarray] | None = None
    for j in np.argsort(-aucs, kind="stable")[:READOUT_CANDIDATES]:
        order = np.argsort(-readouts_IF[:, j], kind="stable")
        dropped = order[:_fewest(ranker, y_I, order, none_share)]
        fpr = float(_mask(len(y_I), dropped)[~y_I].mean())
        if best is None or fpr < best[1]:
            best = (int(j), fpr, dropped)
    return best[0], best[1], ranker.recall_change(_none_left(ranker, y_I, best[2])[1])


def probe_filters(engine: SteeringEngine, facet: str = "genre", values: list[str] | None = None, k: int = 20,
                  users: int = 1000, none_share: float = 0.96) -> list[ProbeFilter]:
    """For each concept, what ``filter=SLUG`` leaves in users' top-K, against the fewest items the
    linear probe must drop so that ``none_share`` of the users see none of the concept: where the
    probe gets there cheaply and the neuron does not, the embedding could be filtered and the SAE
    is what falls short. The probe is fit with the concept's labels on the same items, so it is
    a best case for any linear read-out, not a filter the service could ship. The best neuron's
    filter tells whether the SAE has a better detector of the concept than the slug's neuron."""
    meta, values = concept_values(engine, facet, values)
    ranker = Ranker(engine, users, k)
    embedding = np.hstack([engine.index.vectors, engine.index.bias[:, None]])
    readouts = neuron_readouts(engine)
    results = []
    for value in values:
        y = concept_mask(meta, f"{facet}={value}")
        if y.all() or not y.any():
            continue
        filter_none = filter_change = None
        slug = slugify(value)
        if slug in engine.catalog.slug_to_id:
            _, filters, _ = engine.parse(filter=[slug])
            filter_none, top = _none_left(ranker, y, engine.filtered_rows(filters)[0])
            filter_change = ranker.recall_change(top)
        order = np.argsort(-logistic_probe(embedding, y), kind="stable")
        lo = _fewest(ranker, y, order, none_share)
        none, top = _none_left(ranker, y, order[:lo])
        results.append(ProbeFilter(value, filter_none, filter_change, *_best_neuron(engine, ranker, y),
                                   *_best_readout(ranker, y, readouts, none_share), lo,
                                   *_rates(_mask(len(y), order[:lo]), y), none, ranker.recall_change(top)))
    return results
