"""How faithful and how sparse an SAE is: explained variance, L0, dead latents, and how much the
recommender's top lists and accuracy change when it scores reconstructed embeddings."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from steerrec import metrics

from .. import evaluate
from ..data.split import Split
from ..models.base import Recommender
from .base import SparseAutoencoder


def explained_variance(x_ND: Tensor, x_hat_ND: Tensor) -> float:
    """1 - residual energy / energy around the rows' own mean."""
    resid = (x_ND - x_hat_ND).pow(2).sum()
    total = (x_ND - x_ND.mean(0)).pow(2).sum()
    return float(1 - resid / total)


@torch.no_grad()
def code_stats(sae: SparseAutoencoder, users_UD: Tensor, items_ID: Tensor) -> dict:
    """Explained variance (overall and per Matryoshka prefix), L0 and dead latents, per side,
    with the inference encoder that is exported."""
    out: dict = {}
    fired = torch.zeros(sae.n_latents, dtype=torch.bool)
    for side, x in (("users", users_UD), ("items", items_ID)):
        z = sae.encode(x)
        fired |= (z > 0).any(0)
        out[f"ev_{side}"] = explained_variance(x, sae.decode(z))
        out[f"l0_{side}"] = float((z > 0).sum(1).float().mean())
        prefixes = sae.prefix_sizes()
        if len(prefixes) > 1:
            out[f"ev_{side}_by_prefix"] = {
                str(size): explained_variance(x, sae.denormalize(z[:, :size] @ sae.W_dec[:size] + sae.b_dec))
                for size in prefixes
            }
    n = len(users_UD) + len(items_ID)
    out["l0"] = (out["l0_users"] * len(users_UD) + out["l0_items"] * len(items_ID)) / n
    out["dead_fraction"] = float((~fired).float().mean())
    out["n_dead"] = int((~fired).sum())
    return out


@torch.no_grad()
def ranking_fidelity(sae: SparseAutoencoder, model: Recommender, split: Split, depth: int = 30,
                     p: float = 0.9) -> dict:
    """Pure reconstruction against the base model: top-``depth`` agreement (RBO with parameter p,
    Kendall tau over the union) for every user, and the change in test Recall/NDCG@20."""
    users_all = np.arange(split.train.n_users)
    exclude = split.train.csr()
    u, v = model.user_embeddings(), model.item_embeddings()
    u_hat, v_hat = sae(u), sae(v)
    base_top = evaluate.top_k_items(model, users_all, exclude, depth)
    rec_top = evaluate.top_k_items(model, users_all, exclude, depth, u_hat, v_hat)
    agreement = metrics.list_agreement(base_top, rec_top, p)
    tested = evaluate.evaluated_users(split)
    base = evaluate.evaluate_tops(base_top[tested], tested, split, ks=(20,))
    rec = evaluate.evaluate_tops(rec_top[tested], tested, split, ks=(20,))
    out = {f"rbo@{depth}": agreement["rbo"], f"kendall_tau@{depth}": agreement["kendall_tau"]}
    for key in ("recall@20", "ndcg@20"):
        out[f"base_{key}"] = base[key]
        out[f"recon_{key}"] = rec[key]
        out[f"{key}_change"] = (rec[key] - base[key]) / base[key]
    return out
