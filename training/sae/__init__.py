"""Sparse autoencoders over recommender embeddings: one module per architecture, a registry by
name, typed configs that extend each other (SAEConfig -> TopKConfig -> BatchTopKConfig ->
MatryoshkaConfig; SAEConfig -> ReLUConfig)."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from torch import Tensor

from .base import SAEConfig, SparseAutoencoder
from .batchtopk import BatchTopKConfig, BatchTopKSAE
from .matryoshka import MatryoshkaConfig, MatryoshkaSAE
from .mp import MatchingPursuitSAE, MPConfig
from .relu import ReLUConfig, ReLUSAE
from .topk import TopKConfig, TopKSAE

SAES: dict[str, tuple[type[SAEConfig], type[SparseAutoencoder]]] = {
    "matryoshka": (MatryoshkaConfig, MatryoshkaSAE),
    "batchtopk": (BatchTopKConfig, BatchTopKSAE),
    "topk": (TopKConfig, TopKSAE),
    "relu": (ReLUConfig, ReLUSAE),
    "mp": (MPConfig, MatchingPursuitSAE),
}
DEFAULT_ARCH = "matryoshka"


def make_sae_config(arch: str = DEFAULT_ARCH, **options: Any) -> SAEConfig:
    if arch not in SAES:
        raise ValueError(f"unknown SAE architecture {arch!r}; choose one of: {', '.join(SAES)}")
    cls = SAES[arch][0]
    known = {f.name for f in fields(cls)}
    unknown = set(options) - known
    if unknown:
        raise ValueError(f"SAE {arch} has no option(s) {sorted(unknown)}; options: {sorted(known)}")
    return cls(**options)


def build_sae(arch: str, cfg: SAEConfig, d_in: int, mean_D: Tensor, scale: float) -> SparseAutoencoder:
    return SAES[arch][1](d_in, cfg, mean_D, scale)


__all__ = ["DEFAULT_ARCH", "SAES", "SAEConfig", "SparseAutoencoder", "build_sae", "make_sae_config"]
