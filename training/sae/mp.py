"""Matching-pursuit SAE (MP-SAE; Costa et al. 2025, 'From Shallow Design to Matching Pursuit').

The encoder is an unrolled, non-negative matching pursuit over the decoder's own atoms: each of k
steps picks the atom most correlated with the current residual and subtracts its contribution.
Selection that adapts to the residual recovers far more of an embedding than a one-shot linear
encoder at the same L0 (docs/results.md measures the gap on ML-1M). With ``nested`` the early
steps may only pick from the first Matryoshka prefixes, so coarse concepts are explained first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from .base import SAEConfig, SAEOutput, SparseAutoencoder
from .matryoshka import default_prefixes


@dataclass
class MPConfig(SAEConfig):
    k: int = 16
    """Pursuit steps, hence at most k active latents per row."""
    prefixes: tuple[int, ...] = ()
    """Matryoshka prefix sizes for the loss (empty: halve from n_latents down to 64)."""
    nested: bool = True
    """Restrict step t to the prefix of rank floor(t * levels / k): coarse atoms first."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 < self.k <= self.n_latents:
            raise ValueError(f"k must be in [1, n_latents={self.n_latents}]")
        self.prefixes = default_prefixes(self.n_latents, self.prefixes)


class MatchingPursuitSAE(SparseAutoencoder):
    arch: ClassVar[str] = "mp"
    linear_encoder: ClassVar[bool] = False
    cfg: MPConfig

    def step_limits(self) -> list[int]:
        """How many leading latents pursuit step t may choose from."""
        prefixes, k = self.cfg.prefixes, self.cfg.k
        if not self.cfg.nested:
            return [self.n_latents] * k
        return [prefixes[min(len(prefixes) - 1, t * len(prefixes) // k)] for t in range(k)]

    def _pursuit(self, x_norm_BD: Tensor) -> tuple[Tensor, Tensor]:
        residual = x_norm_BD - self.b_dec
        if self.training:
            return self._pursuit_by_gram(residual)
        z = torch.zeros(x_norm_BD.shape[0], self.n_latents, dtype=x_norm_BD.dtype, device=x_norm_BD.device)
        for limit in self.step_limits():
            corr = residual @ self.W_dec[:limit].T
            best = corr.argmax(dim=1, keepdim=True)
            value = corr.gather(1, best).clamp(min=0)
            z = z.scatter_add(1, best, value)
            residual = residual - value * self.W_dec[best.squeeze(1)]
        return z, residual

    def _pursuit_by_gram(self, residual_BD: Tensor) -> tuple[Tensor, Tensor]:
        """The same pursuit, cheaper to train: the atoms are chosen without autograd by updating
        the correlations through the Gram matrix (residual @ W.T loses value * G[best] per step,
        one [B, F] update instead of a [B, F, D] product), then the values are recomputed with
        autograd on the chosen atoms alone. Same function, same gradients."""
        with torch.no_grad():
            corr = residual_BD @ self.W_dec.T
            gram = self._gram()
            chosen = []
            for limit in self.step_limits():
                best = corr[:, :limit].argmax(dim=1)
                value = corr.gather(1, best[:, None]).clamp(min=0)
                corr -= value * gram[best]
                chosen.append(best)
        values = []
        for best in chosen:
            atom = self.W_dec[best]
            value = (residual_BD * atom).sum(1, keepdim=True).clamp(min=0)
            values.append(value)
            residual_BD = residual_BD - value * atom
        z = torch.zeros(residual_BD.shape[0], self.n_latents, dtype=residual_BD.dtype, device=residual_BD.device)
        return z.scatter_add(1, torch.stack(chosen, 1), torch.cat(values, 1)), residual_BD

    def _gram(self) -> Tensor:
        """W_dec @ W_dec.T, computed once per version of the weights (a training step encodes
        twice: the batch, then the prediction-loss pairs)."""
        key = (self.W_dec.data_ptr(), self.W_dec._version, self.W_dec.device)
        if getattr(self, "_gram_key", None) != key:
            self._gram_cache, self._gram_key = self.W_dec.detach() @ self.W_dec.detach().T, key
        return self._gram_cache

    def encode(self, x_BD: Tensor) -> Tensor:
        return self._pursuit(self.normalize(x_BD))[0]

    def forward_train(self, x_norm_BD: Tensor) -> SAEOutput:
        z, _ = self._pursuit(x_norm_BD)
        # Pursuit has no pre-activations and no AuxK term (its atoms rarely die: every step
        # scores all of them); the codes stand in.
        return SAEOutput(z, self.decode_norm(z), z)

    def activate_train(self, pre_BF: Tensor) -> Tensor:  # pragma: no cover - encode is overridden
        raise NotImplementedError

    def activate(self, pre_BF: Tensor) -> Tensor:  # pragma: no cover - encode is overridden
        raise NotImplementedError

    def prefix_sizes(self) -> list[int]:
        return list(self.cfg.prefixes)

    def reconstruction_loss(self, x_norm_BD: Tensor, out: SAEOutput) -> Tensor:
        total = 0.0
        for size in self.cfg.prefixes:
            total = total + (out.z_BF[:, :size] @ self.W_dec[:size] + self.b_dec - x_norm_BD).pow(2).mean()
        return total / len(self.cfg.prefixes)
