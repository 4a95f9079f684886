"""Item (and user) x concept indicator matrices built from a bundle's metadata.

Every facet of ``item_metadata.json`` becomes a family of binary concepts (genre=Horror,
decade=1990s, tag=jazz). Two families are derived because the metadata does not carry them:
popularity quintiles from the training interactions, and decades from ``year`` when the catalogue
has years but no decade facet. Concepts too rare to judge a neuron by are dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from steerrec import bundle as B
from steerrec.slugs import slugify

POPULARITY = "popularity"
DECADE = "decade"
# Quintiles of training popularity, most popular first: (concept name, slug).
POPULARITY_BUCKETS = (
    ("Popular (top 20%)", "popular"),
    ("Popularity 20-40%", "popularity-20-40"),
    ("Popularity 40-60%", "popularity-40-60"),
    ("Popularity 60-80%", "popularity-60-80"),
    ("Niche (bottom 20%)", "niche"),
)


@dataclass(frozen=True)
class Concept:
    facet: str
    """Family: genre, subgenre, decade, tag, popularity, ..."""
    name: str
    """Display name as the metadata spells it."""
    slug: str
    """Steer-friendly form of the name."""


class ConceptMatrix(NamedTuple):
    concepts: list[Concept]
    matrix_IC: np.ndarray
    """bool [n_rows, n_concepts]: row (item or user) carries concept."""

    @property
    def support_C(self) -> np.ndarray:
        """Rows carrying each concept, int64 [n_concepts]."""
        return self.matrix_IC.sum(0, dtype=np.int64)

    @property
    def facets(self) -> list[str]:
        return list(dict.fromkeys(c.facet for c in self.concepts))

    def facet_mask(self, facet: str) -> np.ndarray:
        return np.array([c.facet == facet for c in self.concepts], dtype=bool)

    def index(self, facet: str, name: str) -> int:
        for j, c in enumerate(self.concepts):
            if c.facet == facet and c.name == name:
                return j
        raise KeyError(f"no concept {facet}={name!r}")

    def has(self, facet: str, name: str) -> bool:
        return any(c.facet == facet and c.name == name for c in self.concepts)


def _facet_matrix(facet: str, values: Sequence[Sequence[str]], min_support: int,
                  max_concepts: int) -> ConceptMatrix:
    """One facet's concepts, most frequent first, keeping those with >= ``min_support`` rows.

    Spellings that slugify alike (``hip-hop``, ``Hip Hop``) are one concept: the union of their
    rows, named by the most frequent spelling. Otherwise two concepts would compete for one slug."""
    names, counts = np.unique([v for row in values for v in dict.fromkeys(row) if v], return_counts=True)
    order = np.lexsort((names, -counts))  # frequency, then name: deterministic
    canonical: dict[str, str] = {}  # slug -> most frequent spelling
    alias: dict[str, str] = {}
    for i in order:
        name = str(names[i])
        slug = slugify(name) or f"{facet}-{len(canonical)}"
        alias[name] = canonical.setdefault(slug, name)
    groups: dict[str, set[int]] = {}
    for i, row in enumerate(values):
        for v in row:
            if v in alias:
                groups.setdefault(alias[v], set()).add(i)
    ranked = sorted(groups, key=lambda n: (-len(groups[n]), n))
    kept = [n for n in ranked if len(groups[n]) >= min_support][:max_concepts]
    matrix = np.zeros((len(values), len(kept)), dtype=bool)
    for j, name in enumerate(kept):
        matrix[sorted(groups[name]), j] = True
    return ConceptMatrix([Concept(facet, name, slugify(name) or f"{facet}-{j}") for j, name in enumerate(kept)],
                         matrix)


def popularity_quintiles(popularity_I: np.ndarray) -> ConceptMatrix:
    """Five equal-size buckets by training popularity (ties broken by item row, so buckets are
    exactly balanced and deterministic)."""
    n = len(popularity_I)
    order = np.lexsort((np.arange(n), -np.asarray(popularity_I)))  # most popular first
    bucket_I = np.empty(n, dtype=np.int64)
    bucket_I[order] = np.arange(n) * len(POPULARITY_BUCKETS) // max(n, 1)
    matrix = bucket_I[:, None] == np.arange(len(POPULARITY_BUCKETS))[None, :]
    return ConceptMatrix([Concept(POPULARITY, name, slug) for name, slug in POPULARITY_BUCKETS], matrix)


def decades_from_year(year: Sequence[float | None]) -> list[tuple[str, ...]]:
    """``1994`` -> ``("1990s",)``; unknown years carry no decade."""
    out = []
    for y in year:
        ok = y is not None and np.isfinite(float(y))
        out.append((f"{int(float(y)) // 10 * 10}s",) if ok else ())
    return out


def concat(parts: Sequence[ConceptMatrix]) -> ConceptMatrix:
    """Facets side by side; a slug already used by an earlier facet gets its facet as prefix
    (genre ``horror`` and tag ``tag-horror``), so every concept slug is unique."""
    parts = [p for p in parts if p.concepts]
    if not parts:
        raise ValueError("no concepts")
    concepts, seen = [], set()
    for c in (c for p in parts for c in p.concepts):
        if c.slug in seen:
            c = Concept(c.facet, c.name, f"{slugify(c.facet)}-{c.slug}")
        seen.add(c.slug)
        concepts.append(c)
    return ConceptMatrix(concepts, np.concatenate([p.matrix_IC for p in parts], 1))


def item_popularity(bundle: B.Bundle) -> np.ndarray:
    """Distinct training users per item, int64 [n_items]."""
    _, indices = bundle.train_interactions()
    return np.bincount(indices, minlength=bundle.manifest.dataset.n_items).astype(np.int64)


def item_concepts(meta: dict, popularity_I: np.ndarray, min_support: int = 5,
                  max_concepts_per_facet: int = 400, path: str = B.ITEM_METADATA) -> ConceptMatrix:
    """Concepts of every facet in ``item_metadata.json`` plus popularity quintiles (and decades
    from ``year`` when no facet gives them). ``path`` only names the file in errors."""
    n_items = len(popularity_I)
    facets = meta.get("facets") or {}
    if not isinstance(facets, dict):
        raise B.BundleError(f"{path}: 'facets' must map a facet name to one list of concepts per item")
    families = dict(facets)
    if DECADE not in families and meta.get("year") is not None:
        families[DECADE] = decades_from_year(meta["year"])
    parts = []
    for facet, values in families.items():
        if not isinstance(values, list) or len(values) != n_items:
            raise B.BundleError(f"{path}: facet {facet!r} has {len(values) if isinstance(values, list) else '?'} "
                                f"rows for {n_items} items")
        rows = [tuple(str(x) for x in v) if isinstance(v, (list, tuple)) else (str(v),) for v in values]
        parts.append(_facet_matrix(facet, rows, min_support, max_concepts_per_facet))
    parts.append(popularity_quintiles(popularity_I))
    return concat(parts)


def user_concepts(columns: dict[str, list], n_users: int, min_support: int = 5,
                  path: str = "user_metadata.json") -> ConceptMatrix | None:
    """Concepts from categorical user columns (``{"gender": ["F", "M", ...], ...}``), or None."""
    parts = []
    for name, values in columns.items():
        if not isinstance(values, list) or len(values) != n_users:
            raise B.BundleError(f"{path}: column {name!r} must hold one value per user ({n_users})")
        parts.append(_facet_matrix(name, [(str(v),) if v is not None else () for v in values], min_support, 100))
    parts = [p for p in parts if p.concepts]
    return concat(parts) if parts else None


def narrower_than(cm: ConceptMatrix, containment: float = 0.9) -> np.ndarray:
    """bool [C, C]: ``out[a, b]`` when concept a is a refinement of b (at least ``containment`` of
    a's rows also carry b, and b is strictly broader), e.g. Horror/Slasher -> Horror."""
    m = cm.matrix_IC.astype(np.float32)
    overlap_CC = m.T @ m
    support = np.diag(overlap_CC).copy()
    share = overlap_CC / np.maximum(support[:, None], 1)
    out = (share >= containment) & (support[None, :] > support[:, None])
    np.fill_diagonal(out, False)
    return out
