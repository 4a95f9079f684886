"""BatchTopK SAE (Bussmann et al. 2024): the batch as a whole keeps k * batch activations, so rows
use as many latents as they need; inference replaces the batch rule by a threshold, calibrated
after training on all rows (rather than a running estimate) so that mean L0 is k exactly."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from .topk import TopKConfig, TopKSAE


@dataclass
class BatchTopKConfig(TopKConfig):
    """No fields of its own: k is the mean number of active latents per row."""


_EXACT_LIMIT = 1 << 18
_STRIDE = 7  # coprime with power-of-two dictionary sizes, so the sample spans every latent


def batch_threshold(pre_BF: Tensor, k: int) -> Tensor:
    """The activation that k * batch values reach. Exact for small batches; for large ones the
    same quantile of a strided 1/7 sample, which costs a seventh and differs by a few activations
    per batch (the kept count is checked in tests)."""
    flat = pre_BF.detach().flatten()
    n_keep = min(k * pre_BF.shape[0], flat.numel())
    if flat.numel() <= _EXACT_LIMIT:
        return flat.kthvalue(flat.numel() - n_keep + 1).values
    sample = flat[::_STRIDE]
    keep = max(1, round(n_keep * sample.numel() / flat.numel()))
    return sample.kthvalue(sample.numel() - keep + 1).values


class BatchTopKSAE(TopKSAE):
    arch: ClassVar[str] = "batchtopk"
    cfg: BatchTopKConfig

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.register_buffer("threshold", torch.tensor(0.0))

    def activate_train(self, pre_BF: Tensor) -> Tensor:
        threshold = batch_threshold(pre_BF, self.cfg.k)
        # A running estimate lets the inference rule be used during training too (the
        # prediction-aware loss encodes skewed batches of users and items through it).
        with torch.no_grad():
            self.threshold.mul_(0.9).add_(0.1 * threshold)
        return pre_BF * (pre_BF >= threshold)

    def activate(self, pre_BF: Tensor) -> Tensor:
        return pre_BF * (pre_BF > self.threshold)

    @torch.no_grad()
    def calibrate(self, x_norm_ND: Tensor) -> None:
        """Sets the threshold so that inference keeps exactly as many activations over the training
        rows as the batch rule would: the (k * N)-th largest pre-activation."""
        pre = self.pre_activations(x_norm_ND).flatten()
        n_keep = min(self.cfg.k * x_norm_ND.shape[0], pre.numel())
        kth = pre.topk(n_keep).values[-1]
        self.threshold.copy_(kth)

    def extra_state(self) -> dict[str, float]:
        return {"threshold": float(self.threshold)}
