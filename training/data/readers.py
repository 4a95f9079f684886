"""Readers shared by the loaders: every problem becomes a :class:`DataError` naming the file and,
for a bad row, its 1-based line, so that a malformed download is found without a debugger."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .schema import DataError


def read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None


def read_lines(path: Path, encoding: str) -> list[str]:
    """The file's lines (CRLF or LF), decoded; a decoding error names its line."""
    raw = read_bytes(path)
    try:
        return raw.decode(encoding).splitlines()
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise DataError(f"{path} line {line}: not valid {encoding} text") from None


def first_bad_cell(cells: np.ndarray, dtype: type) -> int:
    """Index of the first cell that does not convert, found by bisection so it stays vectorised."""
    lo, hi = 0, len(cells)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        try:
            cells[lo:mid].astype(dtype)
        except (ValueError, OverflowError):
            hi = mid
        else:
            lo = mid
    return lo


def read_number_table(path: Path, sep: str, kinds: str, header: Sequence[str] | None = None) -> list[np.ndarray]:
    """Columns of a delimited all-numeric file; ``kinds`` has one letter per column, "i" (int64)
    or "f" (float64). ``header``, when given, must match the first line.

    Parsed in bulk with numpy (no Python object per line), so a million lines take about a second;
    a bad line is then located and reported by number.
    """
    raw = read_bytes(path).replace(b"\r\n", b"\n")
    first = 1
    if header is not None:
        head, _, raw = raw.partition(b"\n")
        if head.decode("latin-1").split(sep) != list(header):
            raise DataError(f"{path} line 1: expected header {sep.join(header)!r}, got {head.decode('latin-1')!r}")
        first = 2
    body = raw.rstrip(b"\n")
    ncols = len(kinds)
    if not body:
        return [np.empty(0, dtype=np.int64 if k == "i" else np.float64) for k in kinds]
    flat = body if sep == "\t" else body.replace(sep.encode(), b"\t")
    buf = np.frombuffer(flat, dtype=np.uint8)
    line_ends = np.flatnonzero(buf == ord("\n"))
    fields = 1 + np.bincount(np.searchsorted(line_ends, np.flatnonzero(buf == ord("\t"))), minlength=len(line_ends) + 1)
    bad = np.flatnonzero(fields != ncols)
    if len(bad):
        i = int(bad[0])
        text = body.split(b"\n")[i].decode("latin-1")[:120]
        raise DataError(
            f"{path} line {first + i}: expected {ncols} fields separated by {sep!r}, got {fields[i]}: {text!r}"
        )
    cells = np.array(flat.replace(b"\n", b"\t").split(b"\t")).reshape(-1, ncols)
    columns = []
    for j, kind in enumerate(kinds):
        dtype = np.int64 if kind == "i" else np.float64
        try:
            columns.append(cells[:, j].astype(dtype))
        except (ValueError, OverflowError):
            i = first_bad_cell(cells[:, j], dtype)
            what = "an integer" if kind == "i" else "a number"
            cell = cells[i, j].decode("latin-1")
            raise DataError(f"{path} line {first + i}: field {j + 1} ({cell!r}) is not {what}") from None
    return columns
