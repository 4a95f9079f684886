"""Scores that say how well each SAE neuron matches each metadata concept.

All functions take codes ``z_IL`` (rows: items, or users for user-side concepts; columns: latents)
and a boolean concept matrix ``C_IC``, and return [n_latents, n_concepts] arrays, computed with
whole-matrix numpy (ML-1M: 3.5k items x 512 latents x ~30 concepts is a few milliseconds).

* purity@K: share of the neuron's K most activating rows that carry the concept. Only active rows
  (z > 0) may fill the K slots; empty slots count as misses, so a neuron that fires on 3 items
  cannot score purity@10 above 0.3.
* precision / recall / F1 of "neuron active (z > 0)" as a detector of "row has concept"
  (RecSAE's interpretation confidence).
* point-biserial correlation: Pearson correlation of the activation with the 0/1 indicator.
* TF-IDF ("From Knots to Knobs"): a neuron is a document whose term frequencies are the shares of
  its activation mass falling on each concept; IDF = log(n_rows / rows with the concept), so a
  ubiquitous concept (Drama) needs more mass than a rare one (Film-Noir) to dominate.
* monosemanticity (Pach et al.): activation-weighted mean pairwise similarity of the rows a neuron
  fires on, with similarity from the base model's embeddings (cosine) or metadata (Jaccard).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

KS = (10, 20, 50)


def top_rows(z_IL: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k most activating rows per latent, strongest first: (index [k, L], activation [k, L]).
    Rows with z <= 0 may appear when fewer than k are active; callers mask them by activation."""
    k = min(k, z_IL.shape[0])
    part = np.argpartition(-z_IL, k - 1, axis=0)[:k]
    vals = np.take_along_axis(z_IL, part, 0)
    order = np.argsort(-vals, axis=0, kind="stable")
    return np.take_along_axis(part, order, 0), np.take_along_axis(vals, order, 0)


def cumulative_hits(top_KL: np.ndarray, act_KL: np.ndarray, C_IC: np.ndarray) -> np.ndarray:
    """int32 [K, L, C]: how many of each neuron's first k+1 active top rows carry each concept."""
    hits_KLC = C_IC[top_KL] & (act_KL > 0)[..., None]
    return np.cumsum(hits_KLC, axis=0, dtype=np.int32)


def purity_at(top_KL: np.ndarray, act_KL: np.ndarray, C_IC: np.ndarray, ks=KS) -> dict[int, np.ndarray]:
    """purity@k [L, C] for each k from one sorted top list (``top_rows`` with k >= max(ks))."""
    cum = cumulative_hits(top_KL, act_KL, C_IC)
    return {k: cum[min(k, len(cum)) - 1] / float(k) for k in ks}


def slots(k: int, n_active_L: np.ndarray, min_slots: int) -> np.ndarray:
    """Slots a neuron is judged on for the labelling score: k, or fewer for a neuron that fires on
    fewer than k rows (a 24-item "Star Trek" neuron is judged on 24), never below ``min_slots``."""
    return np.minimum(k, np.maximum(n_active_L, min_slots)).astype(np.int64)


def detection(z_IL: np.ndarray, C_IC: np.ndarray, threshold: float = 0.0) -> tuple[np.ndarray, ...]:
    """Precision, recall and F1 [L, C] of ``z > threshold`` as a detector of the concept."""
    active_IL = (z_IL > threshold).astype(np.float32)
    tp_LC = active_IL.T @ C_IC.astype(np.float32)
    n_active = active_IL.sum(0)[:, None]
    support = C_IC.sum(0)[None, :].astype(np.float32)
    precision = np.divide(tp_LC, n_active, out=np.zeros_like(tp_LC), where=n_active > 0)
    recall = np.divide(tp_LC, support, out=np.zeros_like(tp_LC), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp_LC), where=denom > 0)
    return precision, recall, f1


def best_threshold(z_I: np.ndarray, c_I: np.ndarray) -> tuple[float, float, float, float]:
    """The detector "z >= t" at the threshold t that maximises F1 on these rows:
    (t, precision, recall, F1); all 0 for a neuron that never fires or an empty concept.
    An in-sample operating point: it says how well the activation *ranks* the concept, where
    ``detection`` says how well "fires at all" detects it."""
    active = np.flatnonzero(z_I > 0)
    support = int(c_I.sum())
    if not len(active) or not support:
        return 0.0, 0.0, 0.0, 0.0
    order = active[np.argsort(-z_I[active], kind="stable")]
    tp = np.cumsum(c_I[order])
    # Only cut between distinct activations: tied rows pass or fail together.
    vals = z_I[order]
    cut = np.flatnonzero(np.r_[vals[1:] != vals[:-1], True])
    precision = tp[cut] / (cut + 1.0)
    recall = tp[cut] / support
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros_like(precision),
                   where=(precision + recall) > 0)
    best = int(np.argmax(f1))
    return float(vals[cut[best]]), float(precision[best]), float(recall[best]), float(f1[best])


def point_biserial(z_IL: np.ndarray, C_IC: np.ndarray) -> np.ndarray:
    """Pearson correlation [L, C] between each latent's activation and each 0/1 concept column
    (0 where either is constant)."""
    n = z_IL.shape[0]
    z = z_IL.astype(np.float64)
    zc = z - z.mean(0)
    c = C_IC.astype(np.float64)
    cov = zc.T @ c / n  # centring one side is enough: sum((z - zbar) * (c - cbar)) = sum((z - zbar) * c)
    sz = zc.std(0)[:, None]
    p = c.mean(0)[None, :]
    sc = np.sqrt(p * (1 - p))
    denom = sz * sc
    return np.divide(cov, denom, out=np.zeros_like(cov), where=denom > 0).astype(np.float32)


def pearson(z_IL: np.ndarray, v_I: np.ndarray) -> np.ndarray:
    """Correlation [L] of each latent with one numeric row property (NaN rows ignored)."""
    ok = np.isfinite(v_I)
    z = z_IL[ok].astype(np.float64)
    v = v_I[ok].astype(np.float64)
    zc, vc = z - z.mean(0), v - v.mean()
    denom = np.sqrt((zc ** 2).sum(0) * (vc ** 2).sum())
    return np.divide(zc.T @ vc, denom, out=np.zeros(z.shape[1]), where=denom > 0).astype(np.float32)


def tfidf(z_IL: np.ndarray, C_IC: np.ndarray) -> np.ndarray:
    """TF-IDF weight [L, C] of each concept in each neuron's activation mass."""
    mass_L = z_IL.sum(0, dtype=np.float64)
    tf = (z_IL.T.astype(np.float64) @ C_IC.astype(np.float64))
    tf = np.divide(tf, mass_L[:, None], out=np.zeros_like(tf), where=mass_L[:, None] > 0)
    support = C_IC.sum(0)
    idf = np.log(C_IC.shape[0] / np.maximum(support, 1))
    return (tf * idf[None, :]).astype(np.float32)


def normalized_purity(purity_LC: np.ndarray, k, support_C: np.ndarray, n_rows: int) -> np.ndarray:
    """Purity rescaled so 0 = the concept's base rate and 1 = the best purity the concept can reach
    in k slots (a concept held by 6 items cannot fill 10): clip((p - b) / (p_max - b), 0, 1).
    ``k`` is a number or an array broadcasting against ``purity_LC`` (per-neuron slots)."""
    base = (np.asarray(support_C, dtype=np.float64) / float(n_rows))[None, :]
    best = np.minimum(1.0, np.asarray(support_C, dtype=np.float64)[None, :] / np.asarray(k, dtype=np.float64))
    span = np.broadcast_to(best - base, np.shape(purity_LC))
    out = np.divide(purity_LC - base, span, out=np.zeros(np.shape(purity_LC)), where=span > 0)
    return np.clip(out, 0.0, 1.0)


def _scaled(act_ML: np.ndarray, lo_L: np.ndarray | None) -> np.ndarray:
    """Min-max scaling of each neuron's activations (Pach et al.). The minimum is over *all* rows
    (``lo_L``, default 0: sparse codes are 0 somewhere), not over the top rows kept, so truncating
    to the top rows drops the weakest pairs without re-weighting the rest."""
    a = np.maximum(act_ML, 0).astype(np.float64)
    lo = np.zeros(a.shape[1]) if lo_L is None else np.maximum(np.asarray(lo_L, dtype=np.float64), 0)
    span = a.max(0) - lo
    return np.clip(np.divide(a - lo, span, out=np.zeros_like(a), where=span > 0), 0.0, 1.0)


def _weighted_mean_similarity(a_ML: np.ndarray, pair_sum_L: np.ndarray, self_sum_L: np.ndarray) -> np.ndarray:
    """sum_{m != n} a_m a_n s_mn / sum_{m != n} a_m a_n, from the full quadratic form and its diagonal."""
    total, sq = a_ML.sum(0), (a_ML ** 2).sum(0)
    den = total ** 2 - sq
    return np.divide(pair_sum_L - self_sum_L, den, out=np.zeros_like(den), where=den > 1e-12).astype(np.float32)


def monosemanticity_embedding(top_ML: np.ndarray, act_ML: np.ndarray, E_ID: np.ndarray,
                              lo_L: np.ndarray | None = None) -> np.ndarray:
    """Pach et al.'s MS [L] over each neuron's M top rows, cosine similarity of base-model rows.
    ``lo_L``: each neuron's minimum activation over all rows (default 0)."""
    norms = np.linalg.norm(E_ID, axis=1, keepdims=True)
    En = np.divide(E_ID, norms, out=np.zeros_like(E_ID, dtype=np.float64), where=norms > 0)
    a = _scaled(act_ML, lo_L)
    e_LMD = np.transpose(En[top_ML], (1, 0, 2))
    v_LD = (a.T[:, None, :] @ e_LMD)[:, 0, :]  # activation-weighted sum of unit rows
    pair = (v_LD ** 2).sum(1)
    self_ = ((a ** 2) * (norms[top_ML, 0] > 0)).sum(0)  # s_mm = 1 for every non-zero row
    return _weighted_mean_similarity(a, pair, self_)


def _packed_sets(C_IC: np.ndarray) -> np.ndarray:
    """Each row's concept set as a bitset: uint64 [I, ceil(C / 64)]."""
    n, c = C_IC.shape
    width = max(1, -(-c // 64))
    padded = np.zeros((n, width * 64), dtype=bool)
    padded[:, :c] = C_IC
    return np.packbits(padded, axis=1, bitorder="little").view(np.uint64).reshape(n, width)


_BYTE_POPCOUNT = np.array([i.bit_count() for i in range(256)], dtype=np.uint8)


def _popcount(x: np.ndarray) -> np.ndarray:
    """Set bits per uint64 element (``np.bitwise_count`` needs numpy >= 2; the project allows 1.26)."""
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(x)
    as_bytes = np.ascontiguousarray(x).view(np.uint8).reshape(*x.shape, 8)
    return _BYTE_POPCOUNT[as_bytes].sum(-1, dtype=np.uint8)


def monosemanticity_jaccard(top_ML: np.ndarray, act_ML: np.ndarray, C_IC: np.ndarray,
                            lo_L: np.ndarray | None = None, chunk: int = 32) -> np.ndarray:
    """MS [L] with metadata similarity: Jaccard index of two rows' concept sets (bitset popcounts,
    so Last.FM's hundreds of tags cost no more than a few machine words per pair)."""
    a = _scaled(act_ML, lo_L).astype(np.float32)
    bits_IW = _packed_sets(C_IC)
    size_I = C_IC.sum(1).astype(np.float32)
    n_latents = top_ML.shape[1]
    out_pair = np.zeros(n_latents)
    out_self = np.zeros(n_latents)
    for s in range(0, n_latents, chunk):
        idx = top_ML[:, s:s + chunk].T  # [l, M]
        b = bits_IW[idx]  # [l, M, W]
        inter = np.zeros(idx.shape + (idx.shape[1],), dtype=np.float32)
        for w in range(b.shape[-1]):
            inter += _popcount(b[:, :, None, w] & b[:, None, :, w])
        size = size_I[idx]
        union = size[:, :, None] + size[:, None, :] - inter
        jac = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
        al = a[:, s:s + chunk].T  # [l, M]
        out_pair[s:s + chunk] = ((jac @ al[:, :, None])[:, :, 0] * al).sum(1)
        out_self[s:s + chunk] = ((al ** 2) * (size > 0)).sum(1)  # J(m, m) = 1 for a non-empty set
    return _weighted_mean_similarity(a.astype(np.float64), out_pair, out_self)


class Alignment(NamedTuple):
    """Every score of every (neuron, concept) pair; arrays are [n_latents, n_concepts]."""

    purity: dict[int, np.ndarray]
    """K -> purity@K."""
    score: np.ndarray
    """Mean over K of the normalised purity, each K capped at the rows the neuron fires on (at
    least ``min_slots``) and at the concept's size: the labelling score, basis of confidence."""
    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    point_biserial: np.ndarray
    tfidf: np.ndarray
    top_KL: np.ndarray
    """int [max K, L]: most activating rows per neuron, strongest first."""
    act_KL: np.ndarray
    """float [max K, L]: their activations (<= 0 where the neuron fires on fewer rows)."""
    n_active_L: np.ndarray
    """Rows on which each neuron fires."""
    min_slots: int
    """Fewest slots a neuron is judged on in ``score`` (see ``slots``)."""


def align(z_IL: np.ndarray, C_IC: np.ndarray, ks=KS, min_slots: int = 10) -> Alignment:
    top, act = top_rows(z_IL, max(ks))
    cum = cumulative_hits(top, act, C_IC)
    kmax = len(cum)
    purity = {k: cum[min(k, kmax) - 1] / float(k) for k in ks}
    support = C_IC.sum(0)
    n_active = (z_IL > 0).sum(0)
    scores = [normalized_purity(*_judged_purity(cum, k, n_active, support, min_slots), support, z_IL.shape[0])
              for k in ks]
    precision, recall, f1 = detection(z_IL, C_IC)
    return Alignment(purity, np.mean(scores, axis=0).astype(np.float32), precision, recall, f1,
                     point_biserial(z_IL, C_IC), tfidf(z_IL, C_IC), top, act, n_active, min_slots)


def _judged_purity(cum_KLC: np.ndarray, k: int, n_active_L: np.ndarray, support_C: np.ndarray,
                   min_slots: int) -> tuple[np.ndarray, np.ndarray]:
    """Purity over k slots, fewer for a neuron that fires on fewer rows (``slots``) and never more
    than the concept has rows, so a 10-item concept is judged on the neuron's first 10 rows and
    cannot look perfect by merely appearing among its top 22. Returns (purity [L, C], slots [L, C])."""
    k_LC = np.minimum(slots(k, n_active_L, min_slots)[:, None], np.maximum(support_C, 1)[None, :])
    k_LC = np.minimum(k_LC, len(cum_KLC))
    hits = np.take_along_axis(cum_KLC, (k_LC - 1)[None], 0)[0]
    return hits / k_LC, k_LC


def joint_score(al: Alignment, latent: int, column_I: np.ndarray, ks=KS) -> float:
    """The labelling score of one neuron against an arbitrary 0/1 row column (used for compound
    labels such as Horror AND 1980s), computed exactly like ``Alignment.score``."""
    top, act = al.top_KL[:, latent], al.act_KL[:, latent]
    cum = np.cumsum(column_I[top] & (act > 0)).astype(np.int32)[:, None, None]
    support = np.array([int(column_I.sum())])
    n_active = al.n_active_L[latent:latent + 1]
    norm = [normalized_purity(*_judged_purity(cum, k, n_active, support, al.min_slots), support, len(column_I))
            for k in ks]
    return float(np.mean(norm))
