"""FAISS retrieval with exact steered top-k.

The index holds ``[v_i, b_i]`` per item, so the inner product with ``[u', 1]`` is the model's score
``u'.v_i + b_i``; a user-side steer only changes the query. Item-side interventions touch a sparse
set of items: filtered and seen items are excluded from the search (by over-fetching and dropping
them when they are few or the index is on a GPU, which ignores selectors; by a FAISS ID selector
otherwise), promoted items are excluded too and ranked on their own by their boosted score, and the
two candidate lists are merged. On a flat CPU index a query is instead ranked from one pass over
every item (a float32 matrix-vector product) when that is cheaper (``scans``): any query up to
``scan_max_items`` items, beyond only a promote of a large group; on a GPU only a promote of a
quarter of the catalogue or more is, since its boosted scores need every item anyway.
Every candidate is finally rescored in float64 numpy and sorted by (score desc, row asc), so with a
flat index the answer equals brute-force numpy on the steered embeddings, ties included.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from .config import ServiceConfig
from .runtime import Runtime, to_gpu_index

log = logging.getLogger(__name__)

GPU_MAX_K = 2048
"""FAISS GPU searches cannot return more neighbours than this; larger fetches use the CPU index."""
OVERFETCH_MAX_BLOCKED = 256
"""Up to this many blocked rows, a flat search over-fetches and drops them (cheaper than building a
FAISS ID selector per request); beyond, a selector skips them inside the search."""
SCAN_PROMOTE_MIN_SHARE = 1 / 128
"""Above ``scan_max_items`` a promote is ranked from one pass once its group is at least this share
of the catalogue; a smaller group is cheaper to gather, rank and keep out of FAISS's search, which
is faster than the pass over a large catalogue (docs/api.md, "Retrieval at scale")."""


@dataclass(frozen=True)
class Boosts:
    """Score additions for a sparse set of items (promotes): ``score_i += deltas[k]`` for ``ids[k]``."""

    ids: np.ndarray
    """int64, unique (any order)."""
    deltas: np.ndarray
    """float64, same length."""

    @staticmethod
    def empty() -> Boosts:
        return Boosts(np.zeros(0, np.int64), np.zeros(0, np.float64))


def mips_to_l2(x_NE: np.ndarray) -> np.ndarray:
    """Appends sqrt(M^2 - |x|^2) to every row (M the largest norm), so that the nearest neighbour
    in L2 of the query [q, 0] is the row of largest inner product with q (Bachrach et al., 2014).
    Graph and cluster indexes work far better in this metric space than on raw inner products."""
    norms = np.einsum("ij,ij->i", x_NE, x_NE, dtype=np.float64)
    extra = np.sqrt(np.maximum(norms.max() - norms, 0.0)).astype(np.float32)
    return np.hstack([x_NE, extra[:, None]])


def build_index(x_NE: np.ndarray, config: ServiceConfig):
    """Flat inner-product index up to ``flat_index_max_items``; beyond, HNSW or IVF over the
    L2-transformed rows (``mips_to_l2``: query them with a trailing 0)."""
    import faiss

    n = len(x_NE)
    if n <= config.flat_index_max_items:
        index = faiss.IndexFlatIP(x_NE.shape[1])
        index.add(x_NE)
        return index
    x_NE = mips_to_l2(x_NE)
    dim = x_NE.shape[1]
    if config.ann_kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, config.hnsw_m)
        index.hnsw.efConstruction = max(64, 2 * config.hnsw_m)
        index.hnsw.efSearch = config.hnsw_ef_search
    else:
        nlist = int(max(1, min(65536, 2 * np.sqrt(n), n // 39)))  # faiss wants >= 39 training points per list
        index = faiss.IndexIVFFlat(faiss.IndexFlatL2(dim), dim, nlist)  # faiss keeps the quantizer referenced
        index.train(x_NE[np.random.default_rng(0).choice(n, size=min(n, 50 * nlist), replace=False)])
        index.nprobe = config.ivf_nprobe
    index.add(x_NE)
    return index


class ItemIndex:
    """The catalogue's item vectors, biases and FAISS index, answering steered top-k queries."""

    def __init__(self, item_factors_ID: np.ndarray, item_bias_I: np.ndarray, config: ServiceConfig,
                 runtime: Runtime):
        self.vectors = np.ascontiguousarray(item_factors_ID, dtype=np.float32)
        self.bias = np.ascontiguousarray(item_bias_I, dtype=np.float32)
        self.n_items, self.dim = self.vectors.shape
        self.margin = config.candidate_margin
        self.config = config
        self.cpu_index = build_index(np.hstack([self.vectors, self.bias[:, None]]), config)
        self.query_width = self.cpu_index.d
        self.gpu_index = to_gpu_index(self.cpu_index, runtime) if self.exact else None

    @property
    def exact(self) -> bool:
        return self.n_items <= self.config.flat_index_max_items

    @property
    def kind(self) -> str:
        return "flat" if self.exact else self.config.ann_kind

    @property
    def device(self) -> str:
        return "cuda" if self.gpu_index is not None else "cpu"

    def scores(self, query_D: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """Exact float64 scores of some items: the single definition every ranking is sorted by."""
        return self.vectors[ids].astype(np.float64) @ query_D.astype(np.float64) + self.bias[ids]

    def top_k(self, query_D: np.ndarray, k: int, exclude: np.ndarray, boosts: Boosts) -> tuple[np.ndarray, np.ndarray]:
        """Top-k rows (int64) and scores (float64) for the query ``[u', 1]`` over every item not in
        ``exclude`` (duplicates allowed), with ``boosts`` added to the scores of their items."""
        exclude = exclude.astype(np.int64, copy=False)
        boost_ids, boost_deltas, blocked = boosts.ids, boosts.deltas, exclude
        if self.scans(len(boost_ids)):  # the pass drops excluded items after adding the boosts
            return self._full_scan(query_D, k, exclude, boost_ids, boost_deltas)
        if len(boost_ids):
            if len(exclude):  # an excluded item (seen, filtered) stays out even when promoted
                excluded = np.zeros(self.n_items, bool)
                excluded[exclude] = True
                keep = ~excluded[boost_ids]
                boost_ids, boost_deltas = boost_ids[keep], boost_deltas[keep]
            blocked = np.concatenate([exclude, boost_ids])
        query32 = np.zeros((1, self.query_width), np.float32)  # [u', 1] (flat) or [u', 1, 0] (L2 transform)
        query32[0, :self.dim] = query_D
        query32[0, self.dim] = 1.0
        cand = self._search(query32, min(k + self.margin, self.n_items), blocked)
        scores = self.scores(query_D, cand)
        if len(boost_ids):
            best = self._top_boosted(query_D, boost_ids, boost_deltas, k + self.margin)
            cand = np.concatenate([cand, boost_ids[best]])
            scores = np.concatenate([scores, self.scores(query_D, boost_ids[best]) + boost_deltas[best]])
        order = np.lexsort((cand, -scores))[:k]
        return cand[order], scores[order]

    def scans(self, n_promoted: int) -> bool:
        """Whether a query promoting ``n_promoted`` items (0: none) is ranked from one pass over the
        catalogue (exact on a flat index) rather than by the index search, plus the promoted items'
        own ranking."""
        if not self.exact:
            return False
        if self.gpu_index is not None:
            return n_promoted > 0 and 4 * n_promoted >= self.n_items
        if self.n_items <= self.config.scan_max_items:
            return True
        return n_promoted > 0 and n_promoted >= SCAN_PROMOTE_MIN_SHARE * self.n_items

    def _full_scan(self, query_D: np.ndarray, k: int, exclude: np.ndarray, boost_ids: np.ndarray,
                   boost_deltas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Top-k from one pass over every item, exact on a flat index: it saves the index search
        (with a selector or an over-fetch, since excluded and promoted items must be kept out of it)
        and the separate ranking of the promoted items."""
        pre = self.vectors @ query_D.astype(np.float32)
        pre += self.bias
        if len(boost_ids):
            pre[boost_ids] += boost_deltas.astype(np.float32)
        pre[exclude] = -np.inf
        fetch = min(k + self.margin, self.n_items)
        start = self.n_items - fetch  # the fetch largest pre-scores end the partition
        cand = np.argpartition(pre, start)[start:] if start else np.arange(self.n_items)
        cand = cand[pre[cand] > -np.inf]
        scores = self.scores(query_D, cand)
        if len(boost_ids):
            delta = np.zeros(self.n_items)
            delta[boost_ids] = boost_deltas
            scores += delta[cand]
        order = np.lexsort((cand, -scores))[:k]
        return cand[order], scores[order]

    def _top_boosted(self, query_D: np.ndarray, ids: np.ndarray, deltas: np.ndarray, n: int) -> np.ndarray:
        """Positions of the best ``n`` boosted items by a float32 pre-score (float64 decides later)."""
        if len(ids) <= n:
            return np.arange(len(ids))
        q32 = query_D.astype(np.float32)
        if 4 * len(ids) >= self.n_items:  # a large group: one contiguous pass beats gathering its rows
            pre = (self.vectors @ q32)[ids]
        else:
            pre = self.vectors[ids] @ q32
        pre += self.bias[ids] + deltas
        return np.argpartition(-pre, n)[:n]

    def _search(self, query32: np.ndarray, fetch: int, blocked: np.ndarray) -> np.ndarray:
        """Index candidates outside ``blocked``; rows the index could not fill (-1) are dropped."""
        if self.gpu_index is not None and fetch + len(blocked) <= GPU_MAX_K:
            return self._search_over(self.gpu_index, query32, fetch, blocked)  # GPU indexes ignore selectors
        if self.exact and len(blocked) <= OVERFETCH_MAX_BLOCKED:
            return self._search_over(self.cpu_index, query32, fetch, blocked)
        params, keep_alive = self._params(blocked)
        ids = self._raw_search(self.cpu_index, query32, fetch, params)
        del keep_alive  # the selector objects had to outlive the search call
        return ids[ids >= 0]

    def _search_over(self, index, query32: np.ndarray, fetch: int, blocked: np.ndarray) -> np.ndarray:
        """Exact without a selector: fetch as many more rows as are blocked, then drop those."""
        ids = self._raw_search(index, query32, min(self.n_items, fetch + len(blocked)), None)
        ids = ids[ids >= 0]
        if len(blocked):
            mask = np.zeros(self.n_items, bool)
            mask[blocked] = True
            ids = ids[~mask[ids]]
        return ids[:fetch]

    @staticmethod
    def _raw_search(index, query32: np.ndarray, k: int, params) -> np.ndarray:
        """search_c on our own buffers: the Python wrapper's checks cost as much as a small search."""
        import faiss

        if not hasattr(index, "search_c"):  # GPU and other wrapped indexes: the ordinary call
            return index.search(query32, k)[1][0]
        distances = np.empty((1, k), np.float32)
        ids = np.empty((1, k), np.int64)
        index.search_c(1, faiss.swig_ptr(query32), k, faiss.swig_ptr(distances), faiss.swig_ptr(ids), params)
        return ids[0]

    def _params(self, blocked: np.ndarray):
        """Search parameters excluding ``blocked`` rows, and the objects they point to."""
        import faiss

        if not len(blocked) and self.exact:
            return None, ()
        if self.kind == "hnsw":
            params = faiss.SearchParametersHNSW()
            params.efSearch = self.config.hnsw_ef_search
        elif self.kind == "ivf":
            params = faiss.SearchParametersIVF()
            params.nprobe = self.config.ivf_nprobe
        else:
            params = faiss.SearchParameters()
        if not len(blocked):
            return params, ()
        blocked = np.ascontiguousarray(blocked, dtype=np.int64)
        if len(blocked) * 32 >= self.n_items:
            # Many blocked rows: a bitmap of allowed rows is cheaper to build than a hash set.
            allowed = np.ones(self.n_items, bool)
            allowed[blocked] = False
            bitmap = np.packbits(allowed, bitorder="little")
            selector = faiss.IDSelectorBitmap(len(bitmap) * 8, faiss.swig_ptr(bitmap))
            keep_alive = (bitmap, selector)
        else:
            inner = faiss.IDSelectorBatch(len(blocked), faiss.swig_ptr(blocked))
            selector = faiss.IDSelectorNot(inner)
            keep_alive = (blocked, inner, selector)
        params.sel = selector
        return params, keep_alive
