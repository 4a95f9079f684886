"""Export of a trained SAE into the bundle: two ONNX graphs (dynamic batch), raw weights and config.

``sae_encoder.onnx``: x float32 [batch, d] (raw factors) -> z float32 [batch, n_latents].
``sae_decoder.onnx``: z -> x_hat float32 [batch, d]. Normalisation happens inside both graphs with
the training statistics, so the service needs nothing but the graphs.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .base import SparseAutoencoder


class _Encoder(nn.Module):
    def __init__(self, sae: SparseAutoencoder):
        super().__init__()
        self.sae = sae

    def forward(self, x):
        return self.sae.encode(x)


class _Decoder(nn.Module):
    def __init__(self, sae: SparseAutoencoder):
        super().__init__()
        self.sae = sae

    def forward(self, z):
        return self.sae.decode(z)


def _export(module: nn.Module, example: torch.Tensor, path: Path, input_name: str, output_name: str) -> None:
    batch = torch.export.Dim("batch", min=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.getLogger("torch.onnx").setLevel(logging.ERROR)
        program = torch.onnx.export(
            module.eval(), (example,), dynamo=True, input_names=[input_name], output_names=[output_name],
            dynamic_shapes={input_name: {0: batch}}, external_data=False,
            verbose=False,
        )
    program.save(str(path), external_data=False)


def sae_config_dict(arch: str, sae: SparseAutoencoder, train_cfg: Any) -> dict[str, Any]:
    cfg = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(sae.cfg).items()}
    return {
        "arch": arch,
        "d_in": sae.d_in,
        "n_latents": sae.n_latents,
        "prefixes": sae.prefix_sizes(),
        "sae": cfg,
        "inference": sae.extra_state(),
        "normalization": {"kind": "dataset mean and scalar scale", "scale": float(sae.scale)},
        "training": asdict(train_cfg),
        "onnx": {"encoder": {"input": "x", "output": "z"}, "decoder": {"input": "z", "output": "x_hat"}},
    }


def export_sae(sae: SparseAutoencoder, encoder_path: Path, decoder_path: Path) -> None:
    sae = sae.cpu().eval()
    x = torch.randn(4, sae.d_in)
    with torch.no_grad():
        z = sae.encode(x)
    _export(_Encoder(sae), x, encoder_path, "x", "z")
    _export(_Decoder(sae), z, decoder_path, "z", "x_hat")


def sae_weights(sae: SparseAutoencoder) -> dict[str, np.ndarray]:
    weights = {k: v.detach().cpu().numpy().astype(np.float32) for k, v in sae.state_dict().items()}
    return weights
