"""Train/test splits. Every split lives in the training set's index space: items that occur only
in test cannot be ranked by any model, so they are counted (``unrankable``) but not indexed."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .schema import DataError, InteractionData, ItemCatalog, index_ids


@dataclass
class Split:
    train: InteractionData
    test: InteractionData
    """Same users and items as ``train``; only test interactions whose item occurs in train."""
    unrankable: np.ndarray
    """int64 [n_users]: each user's test items that never occur in train (they still count in
    the denominator of Recall and NDCG, as the standard protocol asks)."""
    description: str

    def test_counts(self) -> np.ndarray:
        """All test items per user, rankable or not: int64 [n_users]."""
        indptr, _ = self.test.csr()
        return np.diff(indptr) + self.unrankable


def _project(full: InteractionData, train_mask: np.ndarray, description: str) -> Split:
    """Builds the split from a mask over ``full``: train is compacted, test mapped into it."""
    train = full.select(train_mask).compact()
    user_pos = {u: k for k, u in enumerate(train.user_ids)}
    item_pos = {i: k for k, i in enumerate(train.item_ids)}
    user_map = np.array([user_pos.get(u, -1) for u in full.user_ids], dtype=np.int64)
    item_map = np.array([item_pos.get(i, -1) for i in full.item_ids], dtype=np.int64)
    test_rows = ~train_mask & (user_map[full.user] >= 0)
    tu, ti = user_map[full.user[test_rows]], item_map[full.item[test_rows]]
    known = ti >= 0
    unrankable = np.bincount(tu[~known], minlength=train.n_users).astype(np.int64)
    test = InteractionData(
        name=full.name,
        user_ids=train.user_ids,
        item_ids=train.item_ids,
        user=tu[known],
        item=ti[known],
        weight=full.weight[test_rows][known],
        timestamp=None if full.timestamp is None else full.timestamp[test_rows][known],
        items=train.items,
        user_meta=train.user_meta,
    )
    return Split(train=train, test=test, unrankable=unrankable, description=description)


def random_holdout(data: InteractionData, test_fraction: float = 0.2, min_user_interactions: int = 5,
                   seed: int = 0) -> Split:
    """Per-user random holdout: floor(test_fraction * n) of each user's items go to test.

    Users are visited in index order with one shared ``numpy.random.default_rng(seed)``; each
    user's items are sorted by index and shuffled in place. Users with fewer than
    ``min_user_interactions`` stay wholly in train and draw nothing from the generator. On
    MovieLens-1M (ratings >= 4) this reproduces ``../shared/data/splits/ml-1m`` exactly.
    """
    if not 0 < test_fraction < 1:
        raise ValueError("test_fraction must be in (0, 1)")
    rng = np.random.default_rng(seed)
    order = np.lexsort((data.item, data.user))
    bounds = np.searchsorted(data.user[order], np.arange(data.n_users + 1))
    train_mask = np.ones(len(data), dtype=bool)
    for u in range(data.n_users):
        rows = order[bounds[u]: bounds[u + 1]].copy()
        if len(rows) < min_user_interactions:
            continue
        rng.shuffle(rows)
        train_mask[rows[: int(np.floor(test_fraction * len(rows)))]] = False
    return _project(data, train_mask, f"random holdout {test_fraction:g} (seed {seed})")


def leave_last_out(data: InteractionData, n_last: int = 1, min_user_interactions: int = 3) -> Split:
    """Each user's ``n_last`` latest interactions go to test (needs timestamps)."""
    if data.timestamp is None:
        raise DataError(f"dataset {data.name!r} has no timestamps; leave-last-out needs them (use random holdout)")
    order = np.lexsort((data.item, data.timestamp, data.user))
    bounds = np.searchsorted(data.user[order], np.arange(data.n_users + 1))
    train_mask = np.ones(len(data), dtype=bool)
    for u in range(data.n_users):
        rows = order[bounds[u]: bounds[u + 1]]
        if len(rows) >= min_user_interactions:
            train_mask[rows[len(rows) - n_last:]] = False
    return _project(data, train_mask, f"leave last {n_last} out")


def _read_pairs(path: Path) -> tuple[np.ndarray, np.ndarray]:
    if not path.is_file():
        raise DataError(f"{path}: split file not found")
    users, items = [], []
    with open(path, newline="") as handle:
        reader = csv.reader(handle, delimiter="\t")
        header = next(reader, None)
        if header is None or [h.strip().lower() for h in header[:2]] != ["user", "item"]:
            raise DataError(f"{path}:1: expected a header starting 'user<TAB>item', got {header!r}")
        for line_no, row in enumerate(reader, start=2):
            if len(row) < 2 or not row[0].strip() or not row[1].strip():
                raise DataError(f"{path}:{line_no}: expected 'user<TAB>item', got {row!r}")
            users.append(row[0].strip())
            items.append(row[1].strip())
    return np.array(users), np.array(items)


def _as_ids(values: np.ndarray) -> np.ndarray:
    """Numeric ids stay numeric so that index order is numeric order (as in the loaders)."""
    try:
        return values.astype(np.int64)
    except ValueError:
        return values


def from_files(train_path: str | Path, test_path: str | Path,
               catalog: InteractionData | None = None) -> Split:
    """A given split: tab-separated ``user<TAB>item`` files with a header (raw ids).

    ``catalog`` (the full dataset, e.g. ``load_dataset("ml-1m", ...)``) supplies item titles and
    facets, matched by raw item id.
    """
    train_u, train_i = _read_pairs(Path(train_path))
    test_u, test_i = _read_pairs(Path(test_path))
    all_u = _as_ids(np.concatenate([train_u, test_u]))
    all_i = _as_ids(np.concatenate([train_i, test_i]))
    user_ids, user = index_ids(all_u)
    item_ids, item = index_ids(all_i)
    items = None
    if catalog is not None and catalog.items is not None:
        pos = {i: k for k, i in enumerate(catalog.item_ids)}
        rows = [pos.get(i, -1) for i in item_ids]
        if min(rows, default=0) < 0:
            missing = [i for i, r in zip(item_ids, rows) if r < 0][:5]
            raise DataError(f"{train_path}: items {missing} are not in the {catalog.name} catalogue")
        items = catalog.items.subset(np.array(rows))
    user_meta = None
    if catalog is not None and catalog.user_meta is not None:
        upos = {u: k for k, u in enumerate(catalog.user_ids)}
        if all(u in upos for u in user_ids):
            user_meta = {k: [v[upos[u]] for u in user_ids] for k, v in catalog.user_meta.items()}
    full = InteractionData(
        name=catalog.name if catalog is not None else Path(train_path).parent.name,
        user_ids=user_ids,
        item_ids=item_ids,
        user=user,
        item=item,
        weight=np.ones(len(user), dtype=np.float32),
        items=items,
        user_meta=user_meta,
    )
    train_mask = np.zeros(len(user), dtype=bool)
    train_mask[: len(train_u)] = True
    return _project(full, train_mask, f"given files {Path(train_path).name} / {Path(test_path).name}")


def catalog_or_placeholder(data: InteractionData) -> ItemCatalog:
    """Datasets without metadata still display something: the raw id as the title."""
    return data.items if data.items is not None else ItemCatalog(titles=list(data.item_ids))


def split_from_csr(name: str, user_ids: list[str], item_ids: list[str], train_csr, test_csr,
                   unrankable: np.ndarray, items: ItemCatalog | None, description: str) -> Split:
    """Rebuilds a split from CSR arrays (as stored in a bundle)."""

    def data(csr) -> InteractionData:
        indptr, indices = csr
        users = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
        return InteractionData(name, user_ids, item_ids, users, indices, np.ones(len(indices), np.float32),
                               items=items)

    return Split(train=data(train_csr), test=data(test_csr), unrankable=np.asarray(unrankable, np.int64),
                 description=description)
