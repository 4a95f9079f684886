"""What the service knows about each SAE neuron: label, slug, activation statistics, top items.

Labels and slugs come from ``neurons.json`` when the bundle has one; without it every neuron is
"neuron 12", addressable by index only. Statistics are computed at load from the codes of every
user and item, so they always describe the SAE actually being served.
"""

from __future__ import annotations

import difflib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .codes import SparseCodes

TOP_ITEMS = 10
"""Top items listed by ``GET /neurons/{id}`` when neurons.json does not give them."""
CONCEPT_ITEMS = 50
"""Top items whose metadata make up a computed concept distribution."""
MAX_CONCEPTS = 20


class UnknownNeuron(LookupError):
    def __init__(self, target: str, suggestions: list[str], n_latents: int, has_slugs: bool):
        self.target, self.suggestions = target, suggestions
        how = "a neuron index 0.." + str(n_latents - 1) + (" or a neuron slug" if has_slugs else
                                                            " (this bundle has no neurons.json, so no slugs)")
        hint = f"; did you mean {', '.join(suggestions)}?" if suggestions else ""
        super().__init__(f"unknown neuron {target!r}: use {how}{hint}")


@dataclass(frozen=True)
class NeuronStats:
    activation_scale: np.ndarray
    """float64 [F]: mean positive activation over all users and items (the unit of steer values)."""
    user_active_fraction: np.ndarray
    item_active_fraction: np.ndarray
    dead: np.ndarray
    """bool [F]: never active on any user or item."""

    @classmethod
    def compute(cls, user_codes: SparseCodes, item_codes: SparseCodes) -> NeuronStats:
        total = user_codes.column_sums() + item_codes.column_sums()
        count = user_codes.column_counts() + item_codes.column_counts()
        dead = count == 0
        scale = np.divide(total, count, out=np.zeros_like(total), where=~dead)
        # A dead neuron has no natural unit; the median live one keeps "+3" meaningful and finite.
        scale[dead] = float(np.median(scale[~dead])) if (~dead).any() else 1.0
        return cls(scale, user_codes.column_counts() / max(user_codes.n_rows, 1),
                   item_codes.column_counts() / max(item_codes.n_rows, 1), dead)


def entry_values(entry: Any) -> list[str]:
    """One item's values of a facet: the metadata gives one value or a list per item."""
    return [str(v) for v in entry] if isinstance(entry, list) else [str(entry)]


def distinct_values(per_item: Sequence[Any]) -> list[str]:
    """Every value a facet takes over the items, sorted."""
    return sorted({v for entry in per_item for v in entry_values(entry)})


def facet_mask(facets: dict[str, list[Any]], facet: str, value: str) -> np.ndarray | None:
    """bool [items]: the items whose ``facet`` carries ``value`` (case-insensitive); None when the
    metadata has no such facet."""
    if facet not in facets:
        return None
    wanted = value.casefold()
    return np.array([any(v.casefold() == wanted for v in entry_values(entry)) for entry in facets[facet]],
                    dtype=bool)


class NeuronCatalog:
    def __init__(self, n_latents: int, records: Sequence[Any] | None, stats: NeuronStats,
                 items_by_neuron: SparseCodes, item_ids: Sequence[str], titles: Sequence[str],
                 facets: dict[str, list[list[str]]] | None):
        self.n_latents = n_latents
        self.records = list(records) if records else None
        self.stats = stats
        self.items_by_neuron = items_by_neuron
        self.item_ids, self.titles, self.facets = item_ids, titles, facets or {}
        # A neuron answers to its slug and its aliases (plain concept slugs no other neuron owns).
        self.slug_to_id = {name: r.id for r in self.records or () for name in (r.slug, *r.aliases)}
        self._summaries = [self._summary(j) for j in range(n_latents)]
        self._labelled: dict[int, np.ndarray | None] = {}

    @property
    def has_labels(self) -> bool:
        return self.records is not None

    def slug(self, j: int) -> str | None:
        return self.records[j].slug if self.records else None

    def aliases(self, j: int) -> list[str]:
        return list(self.records[j].aliases) if self.records else []

    def label(self, j: int) -> str:
        return self.records[j].label if self.records else f"neuron {j}"

    def resolve(self, target: str) -> int:
        """Neuron index for a steer target: digits are an index, anything else a slug."""
        if target.isdigit():
            j = int(target)
            if j < self.n_latents:
                return j
            raise UnknownNeuron(target, [], self.n_latents, self.has_labels)
        j = self.slug_to_id.get(target.lower())
        if j is None:
            close = difflib.get_close_matches(target.lower(), self.slug_to_id, n=3, cutoff=0.6)
            raise UnknownNeuron(target, close, self.n_latents, self.has_labels)
        return j

    def labelled_items(self, j: int) -> np.ndarray | None:
        """bool [items]: the items whose metadata carry what neuron j's label names, its concept
        and, for a qualified label, its qualifier too ("Comedy (1980s)": comedies of the 1980s);
        None when the label names nothing the item metadata has (mixed, popularity, no labels)."""
        if j not in self._labelled:
            mask = None
            record = self.records[j] if self.records else None
            parts = [getattr(record, name, None) for name in ("concept", "qualifier")] if record else []
            parts = [p for p in parts if isinstance(p, dict) and "facet" in p and "name" in p]
            if parts:
                masks = [facet_mask(self.facets, p["facet"], str(p["name"])) for p in parts]
                if all(m is not None for m in masks):
                    mask = np.logical_and.reduce(masks)
            self._labelled[j] = mask
        return self._labelled[j]

    def _summary(self, j: int) -> dict[str, Any]:
        r = self.records[j] if self.records else None
        status = r.status if r else ("dead" if self.stats.dead[j] else "ok")
        return {
            "id": j, "label": self.label(j), "slug": self.slug(j), "aliases": self.aliases(j),
            "confidence": r.confidence if r else None, "prefix": r.prefix if r else None,
            "status": status, "parent": r.parent if r else None,
            "activation_scale": float(self.stats.activation_scale[j]),
            "user_active_fraction": float(self.stats.user_active_fraction[j]),
            "item_active_fraction": float(self.stats.item_active_fraction[j]),
            "dead": bool(self.stats.dead[j]),
        }

    def summary(self, j: int) -> dict[str, Any]:
        return self._summaries[j]

    def search(self, query: str | None, limit: int, offset: int) -> tuple[int, list[dict[str, Any]]]:
        """Neurons whose label, slug or an alias contains ``query`` (case-insensitive); exact slug
        or alias and label-prefix matches first, then by confidence. No query: all neurons by id."""
        if not query:
            hits = list(range(self.n_latents))
        else:
            q = query.strip().lower()

            def names(j: int) -> list[str]:
                return [self.slug(j) or "", *self.aliases(j)]

            def rank(j: int) -> tuple:
                label = self.label(j).lower()
                conf = self._summaries[j]["confidence"] or 0.0
                return (q not in names(j), label != q, not label.startswith(q), -conf, j)

            hits = sorted((j for j in range(self.n_latents)
                           if q in self.label(j).lower() or any(q in name for name in names(j))), key=rank)
        return len(hits), [self._summaries[j] for j in hits[offset:offset + limit]]

    def top_items(self, j: int, n: int = TOP_ITEMS) -> list[dict[str, Any]]:
        if self.records and self.records[j].top_items:
            return [t.model_dump() for t in self.records[j].top_items[:n]]
        rows, acts = self.items_by_neuron.row(j)  # already sorted by activation, largest first
        return [{"index": int(i), "item": self.item_ids[i], "title": self.titles[i], "activation": float(a)}
                for i, a in zip(rows[:n], acts[:n])]

    def concepts(self, j: int) -> list[dict[str, Any]]:
        if self.records and self.records[j].concepts:
            return [c.model_dump() for c in self.records[j].concepts]
        rows = self.items_by_neuron.row(j)[0][:CONCEPT_ITEMS]
        if not len(rows):
            return []
        shares = []
        for facet, per_item in self.facets.items():
            counts = Counter(c for i in rows for c in set(per_item[i] or ()))
            shares += [{"facet": facet, "concept": c, "share": n / len(rows)} for c, n in counts.items()]
        shares.sort(key=lambda s: (-s["share"], s["facet"], s["concept"]))
        return shares[:MAX_CONCEPTS]

    def detail(self, j: int) -> dict[str, Any]:
        extra = {}
        if self.records:  # fields neurons.json may grow beyond the contract, passed through
            known = {"id", "label", "slug", "aliases", "confidence", "prefix", "status", "top_items", "concepts",
                     "parent"}
            extra = {k: v for k, v in self.records[j].model_dump().items() if k not in known}
        return {**self._summaries[j], "top_items": self.top_items(j), "concepts": self.concepts(j),
                "concepts_source": "neurons.json" if self.records and self.records[j].concepts else "item metadata",
                "extra": extra}
