"""Amazon product reviews (McAuley lab, 2018 and 2023 releases) from JSON Lines, plain or gzipped.

The layout is detected from the first record. Facets: ``category`` (the item's category path)
and ``brand`` (2018 ``brand``, 2023 ``store``). A leading category that every described item
shares (the file's own top level, e.g. "Clothing, Shoes & Jewelry") says nothing about an item
and is dropped. Items without metadata keep their id as title and get empty facets.
Repeated (user, item) reviews are all kept, as the file has them; deduplication is the
caller's choice (``InteractionData.csr`` already counts distinct pairs).
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from .schema import DataError, InteractionData, ItemCatalog, index_ids

_SUFFIXES = (".json", ".jsonl", ".json.gz", ".jsonl.gz")


@dataclass(frozen=True)
class _Layout:
    user: str
    item: str
    rating: str
    time: str
    time_divisor: int
    meta_item: str
    category: str
    brand: str


_2018 = _Layout("reviewerID", "asin", "overall", "unixReviewTime", 1, "asin", "category", "brand")
_2023 = _Layout("user_id", "parent_asin", "rating", "timestamp", 1000, "parent_asin", "categories", "store")


def _records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(1-based line, object) for each non-blank line; gzip is recognised by its magic bytes."""
    try:
        with open(path, "rb") as probe:
            zipped = probe.read(2) == b"\x1f\x8b"
        with (gzip.open(path, "rb") if zipped else open(path, "rb")) as lines:
            for n, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                try:
                    record = orjson.loads(line)
                except orjson.JSONDecodeError as e:
                    raise DataError(f"{path} line {n}: not valid JSON ({e})") from None
                if not isinstance(record, dict):
                    raise DataError(f"{path} line {n}: expected a JSON object")
                yield n, record
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (OSError, EOFError) as e:  # gzip reports truncation as EOFError, corruption as OSError
        raise DataError(f"{path}: cannot read ({e})") from None


def _find_files(directory: Path) -> tuple[Path, Path | None]:
    """The review file and the ``meta*`` file (if any) among the folder's JSON Lines files."""
    files = sorted(p for p in directory.iterdir() if p.is_file() and p.name.lower().endswith(_SUFFIXES))
    reviews = [p for p in files if not p.name.lower().startswith("meta")]
    metas = [p for p in files if p.name.lower().startswith("meta")]
    if len(reviews) != 1 or len(metas) > 1:
        found = ", ".join(p.name for p in files) or "none"
        raise DataError(
            f"{directory}: expected one review file and at most one meta_* file"
            f" (.json or .jsonl, optionally .gz); found: {found}"
        )
    return reviews[0], metas[0] if metas else None


def _field(path: Path, n: int, record: dict[str, Any], key: str) -> Any:
    value = record.get(key)
    if value is None or value == "":
        raise DataError(f"{path} line {n}: missing {key!r}")
    return value


def _reviews(path: Path) -> tuple[_Layout, list[str], list[str], np.ndarray, np.ndarray]:
    layout = None
    users: list[str] = []
    items: list[str] = []
    ratings: list[float] = []
    times: list[int] = []
    for n, record in _records(path):
        if layout is None:
            layout = _2018 if "reviewerID" in record else _2023 if "user_id" in record else None
            if layout is None:
                raise DataError(
                    f"{path} line {n}: neither the 2018 (reviewerID, asin) nor the 2023 (user_id, parent_asin) layout"
                )
        users.append(str(_field(path, n, record, layout.user)))
        items.append(str(_field(path, n, record, layout.item)))
        try:
            ratings.append(float(_field(path, n, record, layout.rating)))
            times.append(int(_field(path, n, record, layout.time)) // layout.time_divisor)
        except (TypeError, ValueError):
            raise DataError(f"{path} line {n}: {layout.rating!r} and {layout.time!r} must be numbers") from None
    if layout is None:
        raise DataError(f"{path}: no reviews")
    return layout, users, items, np.array(ratings, dtype=np.float32), np.array(times, dtype=np.int64)


def _strings(value: Any) -> tuple[str, ...]:
    values = value if isinstance(value, list) else [value]
    return tuple(v.strip() for v in values if isinstance(v, str) and v.strip())


def _described(meta: Path, layout: _Layout, wanted: set[str]) -> dict[str, dict[str, Any]]:
    """The first metadata record of each wanted item."""
    described: dict[str, dict[str, Any]] = {}
    for _, record in _records(meta):
        item = record.get(layout.meta_item)
        if item in wanted and item not in described:
            described[item] = record
    return described


def _catalog(described: dict[str, dict[str, Any]], layout: _Layout, item_ids: list[str]) -> ItemCatalog:
    paths = {item: _strings(r.get(layout.category)) for item, r in described.items()}
    if len({p[0] for p in paths.values() if p}) == 1 and all(paths.values()):
        paths = {item: p[1:] for item, p in paths.items()}
    titles, brands = [], []
    for item in item_ids:
        record = described.get(item, {})
        titles.append(next(iter(_strings(record.get("title"))), item))
        brands.append(_strings(record.get(layout.brand))[:1])
    return ItemCatalog(titles=titles, facets={"category": [paths.get(i, ()) for i in item_ids], "brand": brands})


def load(path: Path, meta: Path | None = None) -> InteractionData:
    """Reviews from ``path`` (a file, or a folder holding it and optionally ``meta_*``).

    Weight = star rating; timestamps in seconds (2023's milliseconds are divided by 1000).
    """
    path = Path(path)
    if path.is_dir():
        path, found_meta = _find_files(path)
        meta = meta or found_meta
    layout, users, items, rating, timestamp = _reviews(path)
    user_ids, user = index_ids(np.array(users))
    item_ids, item = index_ids(np.array(items))
    described = {} if meta is None else _described(Path(meta), layout, set(item_ids))
    return InteractionData(
        name="amazon",
        user_ids=user_ids,
        item_ids=item_ids,
        user=user,
        item=item,
        weight=rating,
        timestamp=timestamp,
        items=_catalog(described, layout, item_ids),
    )
