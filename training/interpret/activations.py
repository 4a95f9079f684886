"""SAE codes of every item and user, computed through the bundle's exported ``sae_encoder.onnx``.

Interpretation reads the same graph the service runs, so a label describes exactly the codes that
a ``steer=`` request edits, not a re-implementation of the encoder that could drift from it.
"""

from __future__ import annotations

import time
from itertools import pairwise
from pathlib import Path
from typing import NamedTuple

import numpy as np

from steerrec import bundle as B


class Activations(NamedTuple):
    items_IL: np.ndarray
    """float32 [n_items, n_latents]: codes of the item factor rows."""
    users_UL: np.ndarray
    """float32 [n_users, n_latents]: codes of the user factor rows."""
    seconds: float
    """Wall time of the encoding."""


def onnx_providers() -> list[str]:
    """CUDA when this onnxruntime build has it, CPU otherwise (the service decides the same way)."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available] or available


def encoder_session(path: str | Path):
    import onnxruntime as ort

    path = Path(path)
    if not path.is_file():
        raise B.BundleError(f"{path}: SAE encoder missing; run `steerrec sae --bundle {path.parent}` first")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), options, providers=onnx_providers())
    except Exception as exc:  # onnxruntime raises its own exception types; name the file
        raise B.BundleError(f"{path}: cannot load ONNX graph: {exc}") from exc


def encode(session, x_ND: np.ndarray, batch_size: int = 16384) -> np.ndarray:
    """Runs the encoder in batches; input ``x`` [batch, d] -> output ``z`` [batch, n_latents]."""
    x_ND = np.ascontiguousarray(x_ND, dtype=np.float32)
    inputs = [i.name for i in session.get_inputs()]
    if inputs != ["x"]:
        raise B.BundleError(f"SAE encoder takes inputs {inputs}; the bundle contract says one input named 'x'")
    out = [session.run(["z"], {"x": x_ND[s:s + batch_size]})[0] for s in range(0, len(x_ND), batch_size)]
    return np.concatenate(out).astype(np.float32, copy=False) if out else np.zeros((0, 0), np.float32)


def bundle_activations(bundle: B.Bundle) -> Activations:
    """Codes of all items and users of a bundle that has an SAE."""
    if not bundle.has_sae:
        missing = [n for n in B.SAE_FILES if not bundle.has(n)]
        raise B.BundleError(f"{bundle.root}: no SAE ({', '.join(missing)} missing); run `steerrec sae --bundle "
                            f"{bundle.root}` first")
    start = time.perf_counter()
    users, items, _ = bundle.factors()
    session = encoder_session(bundle.path(B.SAE_ENCODER))
    z_items = encode(session, items)
    z_users = encode(session, users)
    n_latents = (bundle.manifest.sae or {}).get("n_latents", z_items.shape[1])
    if z_items.shape[1] != n_latents:
        raise B.BundleError(f"{bundle.path(B.SAE_ENCODER)}: output z has {z_items.shape[1]} columns, "
                            f"manifest says n_latents={n_latents}")
    return Activations(z_items, z_users, time.perf_counter() - start)


def prefix_levels(bundle: B.Bundle, n_latents: int) -> tuple[np.ndarray, list[int]]:
    """Matryoshka level of each latent (index of the first prefix size > id) and the prefix sizes.

    Architectures without nested prefixes have one level holding every latent."""
    sae = bundle.manifest.sae or {}
    prefixes = [int(p) for p in (sae.get("prefixes") or [n_latents])]
    if prefixes[-1] != n_latents or any(b <= a for a, b in pairwise(prefixes)):
        raise B.BundleError(f"{bundle.root / B.MANIFEST}: sae.prefixes {prefixes} must increase and end at "
                            f"n_latents={n_latents}")
    level_L = np.searchsorted(np.asarray(prefixes), np.arange(n_latents), side="right")
    return level_L.astype(np.int64), prefixes
