"""Names for neurons: a label, a unique steer slug, a confidence and a status for every latent.

A label is one concept, or two joined (``Horror (1980s)``, ``Action & Thriller``), chosen only
when the neuron's most activating items support it; the confidence is the normalised purity of
the label (see ``alignment.normalized_purity``). Slugs are then handed out so that the plain
concept slug (``horror``) goes to the neuron that best *means* that concept (purity of its top
items plus the point-biserial correlation of its activation with the concept over the whole
catalogue), and every other neuron labelled with it gets a longer, still readable slug
(``horror-1980s``, ``horror-2``). Unlabelled and dead neurons get ``n<id>`` so that no slug ever
claims a meaning the data does not back. A plain slug that no neuron owns but a two-concept label
names (``childrens`` for a "Children's & Animation" neuron that owns ``animation``) becomes that
neuron's alias, so every concept the labels name can be steered by its plain slug.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from .alignment import KS, Alignment, joint_score
from .concepts import DECADE, POPULARITY, ConceptMatrix

OK, LOW, DEAD = "ok", "low_confidence", "dead"
# Decades (often derived from years) name a neuron only when they beat every metadata concept clearly.
# Popularity never labels by purity: popular items have long factor rows, so they top almost every
# neuron's list; a popularity label needs a catalogue-wide correlation instead (``popularity_min_corr``).
DERIVED_FACETS = {DECADE: 1}


@dataclass
class LabelConfig:
    ok_threshold: float = 0.5
    """Confidence below this marks a neuron low_confidence (its label names no concept)."""
    tie_weight: float = 0.1
    """Weight of the point-biserial correlation when choosing among concepts of near-equal score."""
    facet_margin: float = 0.15
    """A decade or popularity concept must beat the best metadata concept by this much to label."""
    refine_margin: float = 0.15
    """A narrower concept (Horror/Slasher under Horror) replaces the broader one when its score
    is within this margin and at least ``ok_threshold``, and the activation correlates with it at
    least as well (point-biserial); otherwise it qualifies the broader one, ``Horror (mostly
    Horror/Slasher)``."""
    qualifier_min: float = 0.7
    """Score the two-concept label must reach before a qualifier is added."""
    qualifier_keep: float = 0.85
    """... and at least this share of the single-concept score."""
    qualifier_implied: float = 0.5
    """A qualifier must narrow: at most this share of the primary concept's items carry it."""
    qualifier_candidates: int = 6
    qualifier_min_support: int = 5
    """Items that must carry both concepts of a compound label (a pair held by 3 items is noise)."""
    era_min_corr: float = 0.4
    """|correlation| of activation with release year that flags an era neuron (old vs recent films)
    even when its label names a genre."""
    popularity_min_corr: float = 0.4
    """|correlation| of activation with log popularity over all items that makes a neuron no concept
    labels a popularity neuron ("Popular" or "Niche"; see also ``popularity_dominance``); its
    confidence is |r|."""
    popularity_dominance: float = 2.0
    """A neuron labelled by purity is relabelled Popular/Niche when |r| >= ``popularity_min_corr``
    and |r| >= this x its point-biserial correlation with the label's concept: its activation
    follows popularity over the whole catalogue far more than the concept its top items share."""
    top_items: int = 10
    distribution_k: int = 20
    """Top items over which the concept distribution is given."""
    distribution_size: int = 8

    def __post_init__(self) -> None:
        for name in ("ok_threshold", "qualifier_min", "qualifier_keep", "qualifier_implied"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1]")


class Naming(NamedTuple):
    """A neuron's label before slugs are assigned."""

    status: str
    primary: int | None
    """Concept column of the main concept (None for dead and low-confidence neurons)."""
    qualifier: int | None
    confidence: float
    label: str
    closest: int | None
    """Best concept even when too weak to label with."""
    lean: bool = False
    """The qualifier is a narrower concept the neuron's top items lean to (``Horror (mostly
    Horror/Slasher)``), not a second concept."""


def _priority(cm: ConceptMatrix) -> np.ndarray:
    """0 for metadata concepts, 1 for decades, -1 for concepts never chosen by purity."""
    return np.array([-1 if c.facet == POPULARITY else DERIVED_FACETS.get(c.facet, 0) for c in cm.concepts])


def choose_primary(score_C: np.ndarray, corr_C: np.ndarray, priority_C: np.ndarray, narrower_CC: np.ndarray,
                   cfg: LabelConfig) -> tuple[int, int | None]:
    """Best concept for one neuron: highest score (correlation breaks near-ties), metadata facets
    first unless a decade wins by ``facet_margin``, then refined to a narrower concept that fits as
    well. Returns (primary, lean): ``lean`` is a narrower concept that the top items share but
    the activation follows less than the primary (a Horror neuron whose strongest items are
    slashers), else None."""
    rank = np.where(priority_C >= 0, score_C + cfg.tie_weight * corr_C, -np.inf)
    first = 0 if (priority_C == 0).any() else int(priority_C[priority_C >= 0].min())
    best = int(np.argmax(np.where(priority_C == first, rank, -np.inf)))
    for level in sorted(set(priority_C.tolist()) - {first, -1}):
        mask = priority_C == level
        other = int(np.argmax(np.where(mask, rank, -np.inf)))
        if rank[other] > rank[best] + cfg.facet_margin:
            best = other
    while True:  # Horror -> Horror/Slasher when the neuron is really about slashers
        # Only within the same kind of facet: a popularity bucket or a decade that happens to sit
        # inside a genre is not a refinement of it.
        finer = np.flatnonzero(narrower_CC[:, best] & (priority_C == priority_C[best])
                               & (score_C >= max(cfg.ok_threshold, score_C[best] - cfg.refine_margin)))
        if not len(finer):
            return best, None
        nxt = int(finer[np.argmax(rank[finer])])
        # Purity looks at the top items only; the point-biserial correlation looks at the whole
        # catalogue. A broad neuron that fires on nearly all of Horror, most strongly on slashers,
        # correlates better with Horror: it stays Horror, leaning to Horror/Slasher.
        if corr_C[nxt] < corr_C[best]:
            return best, nxt
        best = nxt


def popularity_concept(cm: ConceptMatrix, corr: float) -> int | None:
    """Column of "Popular (top 20%)" (r > 0) or "Niche (bottom 20%)" (r < 0), if present."""
    cols = np.flatnonzero(cm.facet_mask(POPULARITY))
    return None if not len(cols) else int(cols[0] if corr > 0 else cols[-1])


def name_neuron(latent: int, al: Alignment, cm: ConceptMatrix, narrower_CC: np.ndarray, implied_CC: np.ndarray,
                cfg: LabelConfig, alive: bool, pop_corr: float = 0.0) -> Naming:
    if not alive:
        return Naming(DEAD, None, None, 0.0, f"dead #{latent}", None)
    score = al.score[latent].astype(np.float64)
    priority = _priority(cm)
    if not (priority >= 0).any():
        return Naming(LOW, None, None, 0.0, f"mixed #{latent}", None)
    primary, lean = choose_primary(score, al.point_biserial[latent], priority, narrower_CC, cfg)
    confidence = float(score[primary])
    pop = popularity_concept(cm, pop_corr)
    if pop is not None and abs(pop_corr) >= cfg.popularity_min_corr and (
            confidence < cfg.ok_threshold
            or abs(pop_corr) >= cfg.popularity_dominance * max(float(al.point_biserial[latent, primary]), 0.0)):
        label = "Popular" if pop_corr > 0 else "Niche"
        return Naming(OK, pop, None, min(1.0, abs(pop_corr)), label, pop)
    if confidence < cfg.ok_threshold:
        return Naming(LOW, None, None, confidence, f"mixed #{latent}", primary)
    if lean is not None:  # confidence: the narrower claim's score (>= ok_threshold, see choose_primary)
        return Naming(OK, primary, lean, float(score[lean]), compose_label(cm, primary, lean, lean=True), primary,
                      lean=True)
    # A qualifier narrows the label when the neuron's top items share a second concept that the
    # primary concept's items mostly lack (1980s among Horror, Thriller among Action).
    qualifier, best_joint = None, 0.0
    candidates = np.argsort(-score)[: cfg.qualifier_candidates + 1]
    for q in candidates:
        q = int(q)
        if q == primary or priority[q] < 0 or implied_CC[primary, q] > cfg.qualifier_implied \
                or narrower_CC[q, primary] or narrower_CC[primary, q]:
            continue
        both = cm.matrix_IC[:, primary] & cm.matrix_IC[:, q]
        if both.sum() < cfg.qualifier_min_support:
            continue
        joint = joint_score(al, latent, both)
        if joint >= cfg.qualifier_min and joint >= cfg.qualifier_keep * confidence and joint > best_joint:
            qualifier, best_joint = q, joint
    label = compose_label(cm, primary, qualifier)
    return Naming(OK, primary, qualifier, best_joint if qualifier is not None else confidence, label, primary)


def compose_label(cm: ConceptMatrix, primary: int, qualifier: int | None, lean: bool = False) -> str:
    p = cm.concepts[primary]
    if qualifier is None:
        return p.name
    q = cm.concepts[qualifier]
    if lean:
        return f"{p.name} (mostly {q.name})"
    return f"{p.name} & {q.name}" if q.facet == p.facet else f"{p.name} ({q.name})"


def _safe(slug: str, facet: str) -> str:
    """Slugs that look like neuron ids (``123``, ``n12``) would be ambiguous as steer targets."""
    return f"{facet}-{slug}" if re.fullmatch(r"n?\d+", slug) else slug


def _plain_slugs(cm: ConceptMatrix) -> dict[int, str]:
    return {j: _safe(c.slug, c.facet) for j, c in enumerate(cm.concepts)}


def _owner_pairs(namings: list[Naming], al: Alignment, cm: ConceptMatrix) -> list[tuple[float, int, int]]:
    """(score, neuron, concept) for every concept an ok neuron's label names, best first. The
    score, purity of the top items + point-biserial correlation, rewards a neuron whose activation
    separates the concept from the rest of the catalogue (a general Romance neuron) over one that
    fires on a corner of it."""
    pairs = []
    for i, nm in enumerate(namings):
        if nm.status != OK:
            continue
        # "Children's & Animation" names both genres; "Horror (1980s)" is about Horror and must not
        # become what steer=1980s means.
        same_facet = nm.qualifier is not None and cm.concepts[nm.qualifier].facet == cm.concepts[nm.primary].facet
        for c in (nm.primary, nm.qualifier if same_facet else None):
            if c is not None:
                # Popularity labels come from a correlation, not purity: rank those by it.
                fit = nm.confidence if cm.concepts[c].facet == POPULARITY else al.score[i, c]
                pairs.append((float(fit + max(float(al.point_biserial[i, c]), 0.0)), i, c))
    return sorted(pairs, key=lambda t: (-t[0], t[1], t[2]))


def assign_slugs(namings: list[Naming], al: Alignment, cm: ConceptMatrix,
                 anchors: dict[int, int] | None = None) -> list[str]:
    """Unique slugs: each concept's plain slug goes to the neuron naming it with the best owner
    score (``_owner_pairs``), or first to the latent anchored to it (``anchors``: latent ->
    concept) if its label names it: it was trained to mean exactly that; the rest get
    ``<primary>-<qualifier>`` or ``<primary>-2``, ``-3``... by the same rank."""
    n = len(namings)
    slug_of = _plain_slugs(cm)
    pairs = _owner_pairs(namings, al, cm)
    anchors = anchors or {}
    pairs.sort(key=lambda t: anchors.get(t[1]) != t[2])  # stable: anchored pairs first, else by score
    score_of = {(i, c): score for score, i, c in pairs}
    slugs: list[str | None] = [None] * n
    taken: set[str] = {f"n{i}" for i in range(n)}
    # Best (neuron, concept) pairs first; a neuron holds one plain slug at most.
    for _, i, c in pairs:
        if slugs[i] is None and slug_of[c] not in taken:
            slugs[i] = slug_of[c]
            taken.add(slug_of[c])
    rest = [i for i, nm in enumerate(namings) if nm.status == OK and slugs[i] is None]
    rest.sort(key=lambda i: (-score_of[i, namings[i].primary], i))
    for i in rest:
        nm = namings[i]
        base = slug_of[nm.primary]
        if nm.qualifier is not None:
            base = f"{base}-{'mostly-' if nm.lean else ''}{cm.concepts[nm.qualifier].slug}"
        slug, k = base, 2
        while slug in taken:
            slug, k = f"{base}-{k}", k + 1
        slugs[i] = slug
        taken.add(slug)
    return [s if s is not None else f"n{i}" for i, s in enumerate(slugs)]


def assign_aliases(namings: list[Naming], slugs: list[str], al: Alignment, cm: ConceptMatrix) -> list[list[str]]:
    """Per neuron, the plain slugs it answers to besides its own: those of concepts its label names
    that no neuron owns (the second genre of "Children's & Animation" when the neuron owns the
    first), each given to the best-scoring neuron naming it."""
    slug_of = _plain_slugs(cm)
    taken = set(slugs)
    aliases: list[list[str]] = [[] for _ in namings]
    for _, i, c in _owner_pairs(namings, al, cm):
        if slug_of[c] not in taken:
            aliases[i].append(slug_of[c])
            taken.add(slug_of[c])
    return aliases


def concept_distribution(al: Alignment, cm: ConceptMatrix, latent: int, k: int, size: int) -> list[dict]:
    """Shares of the concepts among the neuron's top-k active items, largest first."""
    top, act = al.top_KL[:k, latent], al.act_KL[:k, latent]
    rows = top[act > 0]
    if not len(rows):
        return []
    share = cm.matrix_IC[rows].sum(0) / float(k)
    order = [j for j in np.lexsort((np.arange(len(share)), -share)) if share[j] > 0][:size]
    return [{"facet": cm.concepts[j].facet, "concept": cm.concepts[j].name, "share": round(float(share[j]), 4)}
            for j in order]


def top_items(al: Alignment, latent: int, k: int, item_ids: list[str], titles: list[str]) -> list[dict]:
    top, act = al.top_KL[:k, latent], al.act_KL[:k, latent]
    return [{"index": int(i), "item": item_ids[i], "title": titles[i], "activation": round(float(a), 5)}
            for i, a in zip(top, act) if a > 0]


def concept_stats(al: Alignment, latent: int, concept: int) -> dict[str, float]:
    out = {f"purity@{k}": round(float(al.purity[k][latent, concept]), 4) for k in KS}
    out |= {"precision": round(float(al.precision[latent, concept]), 4),
            "recall": round(float(al.recall[latent, concept]), 4),
            "f1": round(float(al.f1[latent, concept]), 4),
            "point_biserial": round(float(al.point_biserial[latent, concept]), 4),
            "tfidf": round(float(al.tfidf[latent, concept]), 4)}
    return out


def build_records(namings: list[Naming], slugs: list[str], al: Alignment, cm: ConceptMatrix, level_L: np.ndarray,
                  item_ids: list[str], titles: list[str], cfg: LabelConfig) -> list[dict[str, Any]]:
    """``neurons.json`` rows: the NeuronRecord fields plus the alignment figures of the label."""
    aliases = assign_aliases(namings, slugs, al, cm)
    records = []
    for i, (nm, slug) in enumerate(zip(namings, slugs)):
        rec: dict[str, Any] = {"id": i, "label": nm.label, "slug": slug, "aliases": aliases[i],
                               "confidence": round(min(max(nm.confidence, 0.0), 1.0), 4),
                               "prefix": int(level_L[i]), "status": nm.status,
                               "top_items": top_items(al, i, cfg.top_items, item_ids, titles),
                               "concepts": concept_distribution(al, cm, i, cfg.distribution_k, cfg.distribution_size),
                               "parent": None}
        rec["kind"] = {OK: None, LOW: "mixed", DEAD: "dead"}[nm.status]
        if nm.primary is not None:
            c = cm.concepts[nm.primary]
            rec["kind"] = c.facet
            rec["concept"] = {"facet": c.facet, "name": c.name}
            if nm.qualifier is not None:
                q = cm.concepts[nm.qualifier]
                rec["qualifier"] = {"facet": q.facet, "name": q.name}
        if nm.closest is not None:
            c = cm.concepts[nm.closest]
            rec["closest_concept"] = {"facet": c.facet, "name": c.name}
            rec |= concept_stats(al, i, nm.closest)
        tf = int(np.argmax(al.tfidf[i])) if al.n_active_L[i] else None
        rec["tfidf_concept"] = None if tf is None else {"facet": cm.concepts[tf].facet, "name": cm.concepts[tf].name}
        records.append(rec)
    return records


def label_neurons(al: Alignment, cm: ConceptMatrix, narrower_CC: np.ndarray, alive_L: np.ndarray,
                  cfg: LabelConfig, pop_corr_L: np.ndarray | None = None,
                  anchors: dict[int, int] | None = None) -> tuple[list[Naming], list[str]]:
    """Names every latent; ``pop_corr_L`` is each neuron's correlation with log item popularity,
    ``anchors`` maps anchored latents to their concept (``assign_slugs``)."""
    m = cm.matrix_IC.astype(np.float32)
    overlap = m.T @ m
    implied_CC = overlap / np.maximum(np.diag(overlap)[:, None], 1)  # [a, b] = P(b | a) over items
    pop = np.zeros(len(alive_L)) if pop_corr_L is None else pop_corr_L
    namings = [name_neuron(i, al, cm, narrower_CC, implied_CC, cfg, bool(alive_L[i]), float(pop[i]))
               for i in range(len(alive_L))]
    return namings, assign_slugs(namings, al, cm, anchors)
