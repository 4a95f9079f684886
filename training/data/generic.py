"""A user's own interactions from CSV/TSV or Parquet, with an optional item table."""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from .readers import first_bad_cell, read_lines
from .schema import DataError, InteractionData, ItemCatalog, index_ids


@dataclass
class _Table:
    """Requested columns of a user file as strings; ``where(i)`` names row i for messages."""

    path: Path
    cells: dict[str, list[str]]
    where: Callable[[int], str]

    def __len__(self) -> int:
        return len(next(iter(self.cells.values()), []))


def _missing(path: Path, wanted: Sequence[str], available: Sequence[str]) -> DataError:
    absent = ", ".join(repr(c) for c in wanted if c not in available)
    return DataError(f"{path}: no column {absent}; available columns: {', '.join(map(str, available))}")


def _read_parquet(path: Path, wanted: Sequence[str]) -> _Table:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError(f"{path}: reading Parquet needs pyarrow: pip install pyarrow") from None
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        available = pq.read_schema(path).names
    except (OSError, ValueError) as e:  # pyarrow's ArrowInvalid is a ValueError
        raise DataError(f"{path}: not a readable Parquet file ({e})") from None
    if any(c not in available for c in wanted):
        raise _missing(path, wanted, available)
    columns = pq.read_table(path, columns=list(wanted)).to_pydict()
    cells = {c: ["" if v is None else str(v) for v in columns[c]] for c in wanted}
    return _Table(path, cells, lambda i: f"row {i + 1}")


def _read_delimited(path: Path, sep: str, wanted: Sequence[str]) -> _Table:
    lines = read_lines(path, "utf-8-sig")
    reader = csv.reader(lines, delimiter=sep)
    header = next(reader, None)
    if header is None:
        raise DataError(f"{path}: empty file (a header row is required)")
    if any(c not in header for c in wanted):
        raise _missing(path, wanted, header)
    positions = [header.index(c) for c in wanted]
    cells: dict[str, list[str]] = {c: [] for c in wanted}
    line_numbers: list[int] = []
    for row in reader:
        if not row:
            continue
        if len(row) != len(header):
            raise DataError(f"{path} line {reader.line_num}: expected {len(header)} fields, got {len(row)}")
        for c, p in zip(wanted, positions):
            cells[c].append(row[p].strip())
        line_numbers.append(reader.line_num)
    return _Table(path, cells, lambda i: f"line {line_numbers[i]}")


def _read_table(path: Path, sep: str | None, wanted: Sequence[str]) -> _Table:
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return _read_parquet(path, wanted)
    if sep is None:
        sep = "\t" if suffix in (".tsv", ".tab") else ","
    return _read_delimited(path, sep, wanted)


def _require(table: _Table, column: str) -> list[str]:
    values = table.cells[column]
    for i, v in enumerate(values):
        if not v:
            raise DataError(f"{table.path} {table.where(i)}: empty {column!r}")
    return values


def _index(values: list[str]) -> tuple[list[str], np.ndarray]:
    """index_ids over strings, using integers when every id is a plain integer (natural order)."""
    raw = np.array(values)
    try:
        as_int = raw.astype(np.int64)
    except (ValueError, OverflowError):
        return index_ids(raw)
    return index_ids(as_int) if (as_int.astype(str) == raw).all() else index_ids(raw)


def _floats(table: _Table, column: str) -> np.ndarray:
    values = np.array(_require(table, column))
    try:
        return values.astype(np.float64)
    except ValueError:
        i = first_bad_cell(values, np.float64)
        raise DataError(f"{table.path} {table.where(i)}: {column!r} value {str(values[i])!r} is not a number") from None


def _epoch_seconds(value: str) -> int:
    """An integer (epoch seconds) or an ISO 8601 date/time; times without a zone are taken as UTC."""
    try:
        return int(value)
    except ValueError:
        moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp())


def _timestamps(table: _Table, column: str) -> np.ndarray:
    out = np.empty(len(table), dtype=np.int64)
    for i, v in enumerate(_require(table, column)):
        try:
            out[i] = _epoch_seconds(v)
        except ValueError:
            raise DataError(
                f"{table.path} {table.where(i)}: {column!r} value {v!r} is neither epoch seconds nor an ISO date"
            ) from None
    return out


def _catalog(
    items_path: Path,
    item_ids: list[str],
    id_col: str,
    title_col: str | None,
    facet_cols: Sequence[str],
    sep: str | None,
    list_sep: str,
) -> ItemCatalog:
    """Item rows aligned with ``item_ids``; items absent from the table keep their id as title."""
    wanted = [id_col, *([title_col] if title_col else []), *facet_cols]
    table = _read_table(items_path, sep, list(dict.fromkeys(wanted)))
    rows: dict[str, int] = {}
    for i, item in enumerate(_require(table, id_col)):
        if item in rows:
            raise DataError(f"{items_path} {table.where(i)}: item {item!r} is listed twice")
        rows[item] = i
    found = [rows.get(item) for item in item_ids]
    titles = list(item_ids)
    if title_col:
        titles = [(r is not None and table.cells[title_col][r]) or item for item, r in zip(item_ids, found)]

    def concepts(cell: str) -> tuple[str, ...]:
        return tuple(v.strip() for v in cell.split(list_sep) if v.strip())

    facets = {col: [() if r is None else concepts(table.cells[col][r]) for r in found] for col in facet_cols}
    return ItemCatalog(titles=titles, facets=facets)


def load(
    path: Path,
    user_col: str = "user",
    item_col: str = "item",
    weight_col: str | None = None,
    timestamp_col: str | None = None,
    sep: str | None = None,
    items_path: Path | None = None,
    item_id_col: str | None = None,
    title_col: str | None = None,
    facet_cols: Sequence[str] = (),
    list_sep: str = "|",
    name: str | None = None,
) -> InteractionData:
    """Interactions from ``path`` (CSV, TSV or Parquet with a header); weight 1.0 without ``weight_col``.

    ``items_path`` optionally describes items: ``item_id_col`` (default ``item_col``), a title
    and facet columns whose cells hold ``list_sep``-separated concepts. ``sep`` overrides the
    separator guessed from the extension (.tsv/.tab: tab, otherwise comma) for both files.
    """
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path}: expected a CSV, TSV or Parquet file, not a directory")
    wanted = [user_col, item_col] + [c for c in (weight_col, timestamp_col) if c]
    table = _read_table(path, sep, list(dict.fromkeys(wanted)))
    user_ids, user = _index(_require(table, user_col))
    item_ids, item = _index(_require(table, item_col))
    weight = _floats(table, weight_col) if weight_col else np.ones(len(table), dtype=np.float32)
    timestamp = _timestamps(table, timestamp_col) if timestamp_col else None
    items = None
    if items_path is not None:
        items = _catalog(Path(items_path), item_ids, item_id_col or item_col, title_col, facet_cols, sep, list_sep)
    return InteractionData(
        name=name or path.stem,
        user_ids=user_ids,
        item_ids=item_ids,
        user=user,
        item=item,
        weight=weight,
        timestamp=timestamp,
        items=items,
    )
