"""One in-memory form for every dataset: interactions over contiguous indices plus metadata.

Loaders turn files into an :class:`InteractionData`; splits, models, evaluation and export all
work on it and never on raw files.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


class DataError(ValueError):
    """A dataset file that is missing or malformed; the message names the file (and line)."""


@dataclass
class ItemCatalog:
    """Item metadata aligned with ``InteractionData.item_ids`` (row i describes item i)."""

    titles: list[str]
    facets: dict[str, list[tuple[str, ...]]] = field(default_factory=dict)
    """Concept families, e.g. ``{"genre": [("Action", "Thriller"), ...], "decade": [("1990s",), ...]}``:
    one tuple of concept names per item. Interpretation aligns neurons with every facet."""
    year: np.ndarray | None = None
    """float32 [n_items], NaN where unknown."""

    def __post_init__(self) -> None:
        n = len(self.titles)
        for name, values in self.facets.items():
            if len(values) != n:
                raise ValueError(f"facet {name!r} has {len(values)} rows for {n} items")
        if self.year is not None and len(self.year) != n:
            raise ValueError(f"year has {len(self.year)} rows for {n} items")

    def subset(self, rows: np.ndarray) -> ItemCatalog:
        return ItemCatalog(
            titles=[self.titles[r] for r in rows],
            facets={k: [v[r] for r in rows] for k, v in self.facets.items()},
            year=None if self.year is None else self.year[rows],
        )

    def to_json(self) -> dict:
        """The bundle's ``item_metadata.json`` form: columnar lists."""
        out: dict = {"title": list(self.titles), "facets": {k: [list(t) for t in v] for k, v in self.facets.items()}}
        if self.year is not None:
            out["year"] = [None if np.isnan(y) else int(y) for y in self.year]
        return out

    @classmethod
    def from_json(cls, obj: dict) -> ItemCatalog:
        year = obj.get("year")
        return cls(
            titles=list(obj["title"]),
            facets={k: [tuple(t) for t in v] for k, v in obj.get("facets", {}).items()},
            year=None if year is None else np.array([np.nan if y is None else y for y in year], dtype=np.float32),
        )


@dataclass
class InteractionData:
    """Interactions as parallel arrays over contiguous user and item indices.

    ``user_ids[u]`` and ``item_ids[i]`` are the raw ids (strings). ``weight`` holds the rating or
    play count (1.0 for plain implicit data); ``timestamp`` is seconds since the epoch or None.
    """

    name: str
    user_ids: list[str]
    item_ids: list[str]
    user: np.ndarray
    """int32 [n_interactions]"""
    item: np.ndarray
    """int32 [n_interactions]"""
    weight: np.ndarray
    """float32 [n_interactions]"""
    timestamp: np.ndarray | None = None
    """int64 [n_interactions] or None"""
    items: ItemCatalog | None = None
    user_meta: dict[str, list[str]] | None = None
    """Per-user categorical columns aligned with ``user_ids`` (gender, age, occupation...)."""

    def __post_init__(self) -> None:
        self.user = np.asarray(self.user, dtype=np.int32)
        self.item = np.asarray(self.item, dtype=np.int32)
        self.weight = np.asarray(self.weight, dtype=np.float32)
        n = len(self.user)
        if len(self.item) != n or len(self.weight) != n or (self.timestamp is not None and len(self.timestamp) != n):
            raise ValueError("interaction arrays differ in length")
        if self.items is not None and len(self.items.titles) != len(self.item_ids):
            raise ValueError(f"catalog has {len(self.items.titles)} rows for {len(self.item_ids)} items")

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def __len__(self) -> int:
        return len(self.user)

    def csr(self) -> tuple[np.ndarray, np.ndarray]:
        """Each user's distinct items, sorted: (indptr [n_users + 1], indices)."""
        key = np.unique(self.user.astype(np.int64) * self.n_items + self.item)
        users, items = key // self.n_items, key % self.n_items
        indptr = np.zeros(self.n_users + 1, dtype=np.int64)
        np.cumsum(np.bincount(users, minlength=self.n_users), out=indptr[1:])
        return indptr, items.astype(np.int32)

    def item_popularity(self) -> np.ndarray:
        """Number of distinct users per item, int64 [n_items]."""
        _indptr, indices = self.csr()
        return np.bincount(indices, minlength=self.n_items)

    def select(self, mask: np.ndarray) -> InteractionData:
        """The same users and items (same index space), keeping only the masked interactions."""
        return InteractionData(
            name=self.name,
            user_ids=self.user_ids,
            item_ids=self.item_ids,
            user=self.user[mask],
            item=self.item[mask],
            weight=self.weight[mask],
            timestamp=None if self.timestamp is None else self.timestamp[mask],
            items=self.items,
            user_meta=self.user_meta,
        )

    def compact(self) -> InteractionData:
        """Drops users and items with no interaction and renumbers the rest (order kept)."""
        users = np.unique(self.user)
        items = np.unique(self.item)
        user_map = np.full(self.n_users, -1, dtype=np.int64)
        user_map[users] = np.arange(len(users))
        item_map = np.full(self.n_items, -1, dtype=np.int64)
        item_map[items] = np.arange(len(items))
        return InteractionData(
            name=self.name,
            user_ids=[self.user_ids[u] for u in users],
            item_ids=[self.item_ids[i] for i in items],
            user=user_map[self.user],
            item=item_map[self.item],
            weight=self.weight,
            timestamp=self.timestamp,
            items=None if self.items is None else self.items.subset(items),
            user_meta=None
            if self.user_meta is None
            else {k: [v[u] for u in users] for k, v in self.user_meta.items()},
        )


def index_ids(raw: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Maps raw ids to contiguous indices in order of first appearance after sorting.

    Numeric-looking ids sort numerically so that MovieLens users keep their natural order.
    """
    raw = np.asarray(raw)
    uniq, inverse = np.unique(raw, return_inverse=True)
    if uniq.dtype.kind in "iu":
        ids = [str(int(x)) for x in uniq]
    else:
        ids = [str(x) for x in uniq]
    return ids, inverse.astype(np.int32)
