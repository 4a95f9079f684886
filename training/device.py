"""The one place that decides where torch work runs: CUDA when present, CPU otherwise."""

from __future__ import annotations

import torch


def pick_device(requested: str = "auto") -> torch.device:
    """``auto`` picks CUDA when ``torch.cuda.is_available()``; asking for CUDA without one fails
    with a clear message instead of a deep torch error."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(requested)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {requested!r} requested but torch sees no CUDA GPU; use --device auto or cpu")
    return device


def seed_everything(seed: int) -> torch.Generator:
    """Seeds torch's global generators (CPU and CUDA) and returns a CPU generator for sampling."""
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)
