"""Full-ranking evaluation of a model (or of any user/item embeddings) on a split."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from steerrec import metrics

from .data.split import Split
from .models.base import Recommender, Validator


def _batch_rows(model: Recommender, n_items: int) -> int:
    # NCF materialises [B, n_items, width] activations: keep each batch near 256 MB.
    per_row = n_items * (4 if model.dot_product else 4 * 64)
    return int(max(16, min(4096, (256 << 20) // per_row)))


@torch.no_grad()
def top_k_items(model: Recommender, users: np.ndarray, exclude: tuple[np.ndarray, np.ndarray] | None,
                k: int, user_UD: Tensor | None = None, item_ID: Tensor | None = None) -> np.ndarray:
    """Top-k item indices for ``users``, best first, excluding each user's ``exclude`` items
    (CSR over all users). ``user_UD``/``item_ID`` replace the model's own embeddings (e.g. the
    SAE's reconstructions) while keeping its scoring function: int64 [len(users), k]."""
    user_UD = model.user_embeddings() if user_UD is None else user_UD
    device = user_UD.device
    out = np.empty((len(users), k), dtype=np.int64)
    step = _batch_rows(model, model.n_items)
    for s in range(0, len(users), step):
        batch = users[s: s + step]
        scores = model.score_users(user_UD[torch.as_tensor(batch, device=device)], item_ID)
        if exclude is not None:
            indptr, indices = exclude
            counts = np.diff(indptr)[batch]
            rows = np.repeat(np.arange(len(batch)), counts)
            cols = np.concatenate([indices[indptr[u]: indptr[u + 1]] for u in batch]) if counts.sum() else []
            scores[torch.as_tensor(rows, device=device), torch.as_tensor(np.asarray(cols, dtype=np.int64), device=device)] = -torch.inf
        top = torch.topk(scores, k, dim=1).indices
        out[s: s + len(batch)] = top.cpu().numpy()
    return out


def evaluate_tops(tops_BK: np.ndarray, users: np.ndarray, split: Split, ks=(10, 20, 50)) -> dict[str, float]:
    """Recall/NDCG/HR@K for precomputed top lists (K <= tops width), plus coverage and popularity."""
    test_indptr, test_indices = split.test.csr()
    n_test = split.test_counts()[users]
    hits = metrics.hits_matrix(tops_BK, users, test_indptr, test_indices)
    out: dict[str, float] = {"users": len(users)}
    for k in ks:
        s = metrics.ranking_scores(hits[:, :k], n_test)
        out[f"recall@{k}"] = float(s.recall.mean())
        out[f"ndcg@{k}"] = float(s.ndcg.mean())
        out[f"hr@{k}"] = float(s.hit.mean())
    k_ref = 20 if 20 in ks else max(ks)
    out[f"coverage@{k_ref}"] = metrics.coverage(tops_BK[:, :k_ref], split.train.n_items)
    pop = split.train.item_popularity()
    for key, value in metrics.popularity_bias(tops_BK[:, :k_ref], pop).items():
        out[f"{key}@{k_ref}"] = value
    return out


def evaluated_users(split: Split) -> np.ndarray:
    """Users with at least one test item (rankable or not), as the protocol averages over."""
    return np.flatnonzero(split.test_counts() > 0)


def evaluate(model: Recommender, split: Split, ks=(10, 20, 50), user_UD: Tensor | None = None,
             item_ID: Tensor | None = None) -> dict[str, float]:
    """Full ranking over every training item, training items excluded."""
    users = evaluated_users(split)
    tops = top_k_items(model, users, split.train.csr(), max(ks), user_UD, item_ID)
    return evaluate_tops(tops, users, split, ks)


def recall_validator(split: Split, k: int = 20, max_users: int = 3000, seed: int = 0) -> Validator:
    """Recall@k on (a fixed sample of) the split's users: the early-stopping signal."""
    users = evaluated_users(split)
    if len(users) > max_users:
        users = np.sort(np.random.default_rng(seed).choice(users, max_users, replace=False))
    exclude = split.train.csr()
    test_indptr, test_indices = split.test.csr()
    n_test = split.test_counts()[users]

    def validate(model: Recommender) -> float:
        tops = top_k_items(model, users, exclude, k)
        hits = metrics.hits_matrix(tops, users, test_indptr, test_indices)
        return float(metrics.ranking_scores(hits, n_test).recall.mean())

    return validate
