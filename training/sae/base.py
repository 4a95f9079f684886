"""The small base every sparse autoencoder architecture builds on.

All architectures share the affine encoder/decoder, the dataset-level normalisation (one mean
vector and one scalar scale, kept as buffers so the exported graphs and the service use exactly
the training statistics) and unit-norm decoder rows. They differ in the activation that makes the
code sparse and in their sparsity losses.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import torch
from torch import Tensor, nn


@dataclass
class SAEConfig:
    """Fields every architecture has."""

    n_latents: int = 512
    """Dictionary size (number of neurons)."""
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n_latents < 1:
            raise ValueError("n_latents must be >= 1")


class SAEOutput(NamedTuple):
    """One training forward pass, in normalised space."""

    z_BF: Tensor
    """Sparse codes used for the reconstruction."""
    x_hat_BD: Tensor
    """Reconstruction with every latent."""
    pre_BF: Tensor
    """Pre-activations (after ReLU), for auxiliary losses on dead latents."""


class SparseAutoencoder(nn.Module):
    """z = act(ReLU((x_n - b_dec) W_enc + b_enc)); x_n_hat = z W_dec + b_dec; x_n = (x - mean) / scale."""

    arch: ClassVar[str]
    linear_encoder: ClassVar[bool] = True
    """False when the encoder is built from the decoder's atoms alone (matching pursuit)."""

    def __init__(self, d_in: int, cfg: SAEConfig, mean_D: Tensor, scale: float):
        super().__init__()
        self.cfg = cfg
        self.d_in = d_in
        gen = torch.Generator().manual_seed(cfg.seed)
        w_dec = torch.randn(cfg.n_latents, d_in, generator=gen)
        w_dec = w_dec / w_dec.norm(dim=1, keepdim=True)
        self.W_dec = nn.Parameter(w_dec)
        if self.linear_encoder:
            self.W_enc = nn.Parameter(w_dec.T.clone())
            self.b_enc = nn.Parameter(torch.zeros(cfg.n_latents))
        self.b_dec = nn.Parameter(torch.zeros(d_in))
        self.register_buffer("mean", mean_D.detach().clone().float())
        self.register_buffer("scale", torch.tensor(float(scale)))

    @property
    def n_latents(self) -> int:
        return self.cfg.n_latents

    def normalize(self, x_BD: Tensor) -> Tensor:
        return (x_BD - self.mean) / self.scale

    def denormalize(self, x_BD: Tensor) -> Tensor:
        return x_BD * self.scale + self.mean

    def pre_activations(self, x_norm_BD: Tensor) -> Tensor:
        return torch.relu((x_norm_BD - self.b_dec) @ self.W_enc + self.b_enc)

    @abstractmethod
    def activate_train(self, pre_BF: Tensor) -> Tensor:
        """Sparse codes during training (may update running statistics)."""

    @abstractmethod
    def activate(self, pre_BF: Tensor) -> Tensor:
        """Sparse codes at inference: a pure function of each row (what the ONNX encoder does)."""

    def decode_norm(self, z_BF: Tensor) -> Tensor:
        return z_BF @ self.W_dec + self.b_dec

    def encode(self, x_BD: Tensor) -> Tensor:
        """Raw embeddings -> sparse codes (inference)."""
        return self.activate(self.pre_activations(self.normalize(x_BD)))

    def decode(self, z_BF: Tensor) -> Tensor:
        """Sparse codes -> raw embeddings."""
        return self.denormalize(self.decode_norm(z_BF))

    def forward(self, x_BD: Tensor) -> Tensor:
        """Inference reconstruction in raw space."""
        return self.decode(self.encode(x_BD))

    def forward_train(self, x_norm_BD: Tensor) -> SAEOutput:
        pre = self.pre_activations(x_norm_BD)
        z = self.activate_train(pre)
        return SAEOutput(z, self.decode_norm(z), pre)

    def reconstruction_loss(self, x_norm_BD: Tensor, out: SAEOutput) -> Tensor:
        """Squared error per coordinate in normalised space, where E||x||^2 = d: about the fraction
        of variance left unexplained, so it is on the scale of the prediction-aware loss and beta
        reads as a relative weight (Matryoshka averages its prefixes)."""
        return (out.x_hat_BD - x_norm_BD).pow(2).mean()

    def sparsity_losses(self, x_norm_BD: Tensor, out: SAEOutput, dead_F: Tensor) -> dict[str, Tensor]:
        """Extra loss terms (AuxK for TopK families, L1/KL for ReLU); ``dead_F`` marks dead latents."""
        return {}

    @torch.no_grad()
    def normalize_decoder(self) -> None:
        self.W_dec.div_(self.W_dec.norm(dim=1, keepdim=True).clamp(min=1e-8))  # in place: bumps _version

    @torch.no_grad()
    def calibrate(self, x_norm_ND: Tensor) -> None:
        """Fixes inference-time statistics after training (BatchTopK's threshold); default none."""

    def prefix_sizes(self) -> list[int]:
        """Nested dictionary sizes that reconstruct on their own (one level unless Matryoshka)."""
        return [self.n_latents]

    def extra_state(self) -> dict[str, float]:
        """Scalars beyond the weights that inference needs (saved into the bundle's config)."""
        return {}
