"""TopK SAE (Gao et al. 2024): each row keeps its k largest pre-activations.

Dead latents are revived with the AuxK loss: the latents that have not fired for a while
reconstruct the residual the live ones leave, which pulls them back towards the data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from .base import SAEConfig, SAEOutput, SparseAutoencoder


@dataclass
class TopKConfig(SAEConfig):
    k: int = 16
    """Active latents per row (on average over a batch for BatchTopK)."""
    aux_k: int = 64
    """Dead latents used by the AuxK loss per row."""
    aux_coef: float = 1 / 32
    """Weight of the AuxK loss."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 < self.k <= self.n_latents:
            raise ValueError(f"k must be in [1, n_latents={self.n_latents}]")
        if self.aux_k < 0 or self.aux_coef < 0:
            raise ValueError("aux_k and aux_coef must be >= 0")


def keep_top_k_per_row(pre_BF: Tensor, k: int) -> Tensor:
    values, idx = pre_BF.topk(k, dim=-1)
    return torch.zeros_like(pre_BF).scatter(-1, idx, values)


class TopKSAE(SparseAutoencoder):
    arch: ClassVar[str] = "topk"
    cfg: TopKConfig

    def activate_train(self, pre_BF: Tensor) -> Tensor:
        return keep_top_k_per_row(pre_BF, self.cfg.k)

    def activate(self, pre_BF: Tensor) -> Tensor:
        return keep_top_k_per_row(pre_BF, self.cfg.k)

    def sparsity_losses(self, x_norm_BD: Tensor, out: SAEOutput, dead_F: Tensor) -> dict[str, Tensor]:
        n_dead = int(dead_F.sum())
        if n_dead == 0 or self.cfg.aux_k == 0 or self.cfg.aux_coef == 0:
            return {}
        residual = (x_norm_BD - out.x_hat_BD).detach()
        dead_pre = out.pre_BF * dead_F  # live latents contribute nothing
        z_aux = keep_top_k_per_row(dead_pre, min(self.cfg.aux_k, n_dead))
        aux = (z_aux @ self.W_dec - residual).pow(2).sum(-1).mean()
        # Normalised by the residual's own size so the term stays O(1) as reconstruction improves.
        scale = residual.pow(2).sum(-1).mean().clamp(min=1e-8)
        return {"auxk": self.cfg.aux_coef * aux / scale}
