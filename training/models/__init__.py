"""Base recommenders by name, and their reconstruction from a bundle (for SAE training)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, fields
from typing import Any

import numpy as np
import torch

from steerrec.bundle import MODEL_WEIGHTS, Bundle

from .base import FitResult, ModelConfig, Recommender
from .mf import MatrixFactorization, MFConfig, fit_mf
from .ncf import NCF, NCFConfig, fit_ncf

MODELS: dict[str, tuple[type[ModelConfig], Callable]] = {
    "mf": (MFConfig, fit_mf),
    "ncf": (NCFConfig, fit_ncf),
}


def make_config(kind: str, **overrides: Any) -> ModelConfig:
    if kind not in MODELS:
        raise ValueError(f"unknown model {kind!r}; choose one of: {', '.join(MODELS)}")
    cls = MODELS[kind][0]
    known = {f.name for f in fields(cls)}
    unknown = set(overrides) - known
    if unknown:
        raise ValueError(f"{kind} has no option(s) {sorted(unknown)}; options: {sorted(known)}")
    return cls(**overrides)


def config_dict(cfg: ModelConfig) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(cfg).items()}


def load_model(bundle: Bundle, device: str | torch.device = "cpu") -> Recommender:
    """Rebuilds the trained scorer from a bundle's factors (and network weights for NCF)."""
    info = bundle.manifest.model
    users, items, bias = bundle.factors()
    saved = {k: v for k, v in info.config.items() if k in {f.name for f in fields(MODELS[info.kind][0])}}
    if "hidden" in saved:
        saved["hidden"] = tuple(saved["hidden"])
    cfg = make_config(info.kind, **saved)
    if info.kind == "mf":
        model: Recommender = MatrixFactorization(len(users), len(items), info.dim)
        state = {"user": users, "item": items, "bias": bias}
    else:
        model = NCF(len(users), len(items), cfg)
        state = {"user": users, "item": items} | bundle.npz(MODEL_WEIGHTS)
    model.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in state.items()})
    return model.to(device).frozen()


__all__ = ["MODELS", "FitResult", "MFConfig", "NCFConfig", "Recommender", "config_dict", "load_model", "make_config"]
