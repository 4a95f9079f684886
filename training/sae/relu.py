"""ReLU SAE with L1 and KL sparsity (the objective of Arviv et al., 'Extracting Interaction-Aware
Monosemantic Concepts in Recommender Systems'): the KL term pulls each neuron's batch-mean
activation towards a target firing rate, so no neuron fires on everything and none stays silent."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from .base import SAEConfig, SAEOutput, SparseAutoencoder


@dataclass
class ReLUConfig(SAEConfig):
    l1_coef: float = 1e-3
    """Weight of the L1 norm of the codes (decoder rows have unit norm)."""
    kl_coef: float = 1e-2
    """Weight of the KL sparsity term."""
    target_rate: float = 0.02
    """Target mean activation rho of each neuron (activations squashed by tanh into [0, 1))."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 < self.target_rate < 1:
            raise ValueError("target_rate must be in (0, 1)")
        if self.l1_coef < 0 or self.kl_coef < 0:
            raise ValueError("l1_coef and kl_coef must be >= 0")


class ReLUSAE(SparseAutoencoder):
    arch: ClassVar[str] = "relu"
    cfg: ReLUConfig

    def activate_train(self, pre_BF: Tensor) -> Tensor:
        return pre_BF

    def activate(self, pre_BF: Tensor) -> Tensor:
        return pre_BF

    def sparsity_losses(self, x_norm_BD: Tensor, out: SAEOutput, dead_F: Tensor) -> dict[str, Tensor]:
        rho = self.cfg.target_rate
        rho_hat = torch.tanh(out.z_BF).mean(0).clamp(1e-6, 1 - 1e-6)
        kl = rho * torch.log(rho / rho_hat) + (1 - rho) * torch.log((1 - rho) / (1 - rho_hat))
        return {"l1": self.cfg.l1_coef * out.z_BF.abs().sum(-1).mean(), "kl": self.cfg.kl_coef * kl.sum()}
