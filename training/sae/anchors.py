"""Concept anchors: a few latents, one per value of an item facet (genre=Drama, ...), trained to
fire on exactly the items that carry it.

An unsupervised SAE splits a broad genre over several partial neurons (Action over 8 on ML-1M),
so no one neuron's filter removes the genre. An anchored latent is taught the facet's labels
during training, as a margin loss on its pre-activation around the firing threshold, and is
otherwise an ordinary latent: it reconstructs, it is encoded from the embedding alone (so it
covers items the metadata does not label), and user-side steering goes through it. Items that
reach users' top lists weigh most, since those are the ones a filter must catch.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ..data.schema import ItemCatalog
from .base import SparseAutoencoder

MIN_ANCHOR_ITEMS = 5
"""A facet value carried by fewer items gets no anchor: too few labels to learn a detector from."""
UNEXPOSED_WEIGHT = 0.25
"""Weight of an item in no user's candidate list; the others add their exposure (``exposure_weights``)."""
MARGIN = 0.25
"""Positives must pass threshold * (1 + MARGIN), negatives stay under threshold * (1 - MARGIN)."""


def anchor_concepts(items: ItemCatalog | None, facet: str) -> tuple[list[str], np.ndarray]:
    """The facet's values with enough items, sorted, and the bool [n_items, n_values] matrix."""
    if items is None:
        raise ValueError(f"anchor facet {facet!r}: the dataset has no item metadata")
    if facet not in items.facets:
        known = ", ".join(sorted(items.facets)) or "none"
        raise ValueError(f"anchor facet {facet!r} is not in the item metadata (facets: {known})")
    values = sorted({v for row in items.facets[facet] for v in row})
    matrix = np.array([[v in row for v in values] for row in items.facets[facet]], dtype=bool).reshape(-1, len(values))
    keep = matrix.sum(0) >= MIN_ANCHOR_ITEMS
    if not keep.any():
        raise ValueError(f"no value of facet {facet!r} has {MIN_ANCHOR_ITEMS} items or more")
    return [v for v, k in zip(values, keep) if k], matrix[:, keep]


def exposure_weights(candidates_UC: np.ndarray, n_items: int) -> np.ndarray:
    """UNEXPOSED_WEIGHT, plus the item's count in users' candidate (top unseen) lists over the
    mean count of the items that appear in any: a miss on an item many lists hold fails many."""
    counts = np.bincount(candidates_UC.ravel(), minlength=n_items).astype(np.float64)
    return (UNEXPOSED_WEIGHT + counts / counts[counts > 0].mean()).astype(np.float32)


def anchor_loss(sae: SparseAutoencoder, items_norm_ID: Tensor, anchors_IC: Tensor, weights_I: Tensor) -> Tensor:
    """Squared hinge on the anchored latents' linear pre-activations (latent c for concept c), in
    units of the firing threshold; per concept, positives and negatives weigh alike."""
    n = anchors_IC.shape[1]
    pre_IC = (items_norm_ID - sae.b_dec) @ sae.W_enc[:, :n] + sae.b_enc[:n]
    theta = sae.threshold.clamp(min=1e-4)
    short = torch.relu(theta * (1 + MARGIN) - pre_IC) / theta
    over = torch.relu(pre_IC - theta * (1 - MARGIN)) / theta
    pos = anchors_IC.float() * weights_I[:, None]
    neg = (~anchors_IC).float() * weights_I[:, None]
    pos_loss = (short.pow(2) * pos).sum(0) / pos.sum(0).clamp(min=1e-8)
    neg_loss = (over.pow(2) * neg).sum(0) / neg.sum(0).clamp(min=1e-8)
    # A boost adds the decoder row: aligned with the detector, it raises the concept's items most.
    untied = 1 - torch.nn.functional.cosine_similarity(sae.W_dec[:n], sae.W_enc[:, :n].T, dim=1)
    return (pos_loss + neg_loss + untied).mean()


def check_anchorable(sae: SparseAutoencoder, n_concepts: int) -> None:
    """Anchors need a firing threshold to put the margin around, and room in the first prefix."""
    if not hasattr(sae, "threshold"):
        raise ValueError(f"anchors need a thresholded SAE (matryoshka or batchtopk), not {sae.arch}")
    first = sae.prefix_sizes()[0]
    if n_concepts > first:
        raise ValueError(f"{n_concepts} anchored concepts do not fit in the first prefix ({first} latents)")
