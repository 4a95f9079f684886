"""Sparse SAE codes of every user and item, computed once at load through the ONNX encoder.

Users are kept by row (a request reads one user's code); items are kept by neuron as well (a
filter or promote asks "which items are active on neuron j, and how strongly").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ENCODE_CHUNK = 4096


@dataclass(frozen=True)
class SparseCodes:
    """Compressed sparse rows: row r holds ``indices[indptr[r]:indptr[r+1]]`` with ``values``."""

    indptr: np.ndarray
    """int64 [n_rows + 1]."""
    indices: np.ndarray
    """int32 [nnz], column of each stored value."""
    values: np.ndarray
    """float32 [nnz], strictly positive activations."""
    n_cols: int

    @property
    def n_rows(self) -> int:
        return len(self.indptr) - 1

    def row(self, r: int) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = self.indptr[r], self.indptr[r + 1]
        return self.indices[lo:hi], self.values[lo:hi]

    def dense_row(self, r: int) -> np.ndarray:
        out = np.zeros(self.n_cols, dtype=np.float32)
        cols, vals = self.row(r)
        out[cols] = vals
        return out

    def row_counts(self) -> np.ndarray:
        return np.diff(self.indptr)

    def transpose(self, sort_values_desc: bool = True) -> SparseCodes:
        """Column-major copy (rows become columns); within a row, largest values first."""
        rows = np.repeat(np.arange(self.n_rows, dtype=np.int32), self.row_counts())
        key_secondary = -self.values if sort_values_desc else rows
        order = np.lexsort((rows, key_secondary, self.indices))
        cols = self.indices[order]
        indptr = np.zeros(self.n_cols + 1, dtype=np.int64)
        np.cumsum(np.bincount(cols, minlength=self.n_cols), out=indptr[1:])
        return SparseCodes(indptr, rows[order], self.values[order], self.n_rows)

    def column_sums(self) -> np.ndarray:
        return np.bincount(self.indices, weights=self.values, minlength=self.n_cols)

    def column_counts(self) -> np.ndarray:
        return np.bincount(self.indices, minlength=self.n_cols)


def encode_dense(session, x_BD: np.ndarray) -> np.ndarray:
    """Runs the encoder graph (input ``x``, output ``z``) on a float32 batch."""
    return session.run(["z"], {"x": np.ascontiguousarray(x_BD, dtype=np.float32)})[0]


def encode_sparse(session, x_ND: np.ndarray, n_latents: int, chunk: int = ENCODE_CHUNK) -> SparseCodes:
    """Encodes every row in chunks and keeps only the positive activations."""
    counts, cols, vals = [], [], []
    for start in range(0, len(x_ND), chunk):
        z = encode_dense(session, x_ND[start:start + chunk])
        if z.shape[1] != n_latents:
            raise ValueError(f"encoder returned {z.shape[1]} latents, the bundle declares {n_latents}")
        active = z > 0
        counts.append(active.sum(axis=1))
        r, c = np.nonzero(active)
        cols.append(c.astype(np.int32))
        vals.append(z[r, c].astype(np.float32))
    indptr = np.zeros(len(x_ND) + 1, dtype=np.int64)
    if counts:
        np.cumsum(np.concatenate(counts), out=indptr[1:])
    indices = np.concatenate(cols) if cols else np.zeros(0, np.int32)
    values = np.concatenate(vals) if vals else np.zeros(0, np.float32)
    return SparseCodes(indptr, indices, values, n_latents)
