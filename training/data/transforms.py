"""Dataset transforms applied before splitting: implicit-feedback conversion and k-core filtering."""

from __future__ import annotations

import numpy as np

from .schema import InteractionData


def to_implicit(data: InteractionData, min_rating: float | None = 4.0) -> InteractionData:
    """Keeps interactions whose weight (rating) is >= ``min_rating``, deduplicated per (user, item).

    ``min_rating=None`` keeps every interaction (play counts, clicks). The kept weight is the
    largest seen for the pair; timestamps keep the earliest occurrence.
    """
    mask = np.ones(len(data), dtype=bool) if min_rating is None else data.weight >= min_rating
    kept = data.select(mask)
    key = kept.user.astype(np.int64) * kept.n_items + kept.item
    # Stable order: sort by key then by descending weight so the first of each pair is the max.
    order = np.lexsort((-kept.weight, key))
    first = np.ones(len(order), dtype=bool)
    first[1:] = key[order][1:] != key[order][:-1]
    rows = order[first]
    timestamp = None
    if kept.timestamp is not None:
        earliest = np.full(len(rows), np.iinfo(np.int64).max)
        group = np.cumsum(first) - 1
        np.minimum.at(earliest, group, kept.timestamp[order])
        timestamp = earliest
    rows_sorted = np.argsort(rows, kind="stable")  # back to input order
    out = InteractionData(
        name=data.name,
        user_ids=data.user_ids,
        item_ids=data.item_ids,
        user=kept.user[rows][rows_sorted],
        item=kept.item[rows][rows_sorted],
        weight=kept.weight[rows][rows_sorted],
        timestamp=None if timestamp is None else timestamp[rows_sorted],
        items=data.items,
        user_meta=data.user_meta,
    )
    return out.compact()


def k_core(data: InteractionData, user_k: int = 5, item_k: int = 5) -> InteractionData:
    """Repeatedly drops users with < ``user_k`` and items with < ``item_k`` interactions."""
    mask = np.ones(len(data), dtype=bool)
    while True:
        users = np.bincount(data.user[mask], minlength=data.n_users)
        items = np.bincount(data.item[mask], minlength=data.n_items)
        keep = mask & (users[data.user] >= user_k) & (items[data.item] >= item_k)
        if keep.sum() == mask.sum():
            break
        mask = keep
    return data.select(mask).compact()
