"""Writes a trained base model and its data into a bundle directory (format: docs/bundle.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from steerrec import bundle as B

from .data.split import Split, catalog_or_placeholder
from .models import Recommender


def export_base_model(out: str | Path, split: Split, model: Recommender, config: dict[str, Any],
                      metrics: dict[str, Any]) -> Path:
    """Writes factors, ids, training interactions and item metadata, then the manifest."""
    train = split.train
    users = model.user_embeddings().detach().cpu().numpy().astype(np.float32)
    items = model.item_embeddings().detach().cpu().numpy().astype(np.float32)
    bias = model.item_bias()
    writer = B.BundleWriter.create(
        out,
        dataset=B.DatasetInfo(name=train.name, n_users=train.n_users, n_items=train.n_items,
                              n_train_interactions=len(train), split=split.description),
        model=B.ModelInfo(kind=model.kind, dim=users.shape[1], has_item_bias=bias is not None,
                          dot_product=model.dot_product, config=config),
    )
    # A re-export replaces a whole bundle: files from an earlier SAE or interpretation would not
    # match the new factors.
    for stale in (*B.SAE_FILES, B.NEURONS, B.CONCEPT_TREE, B.MODEL_WEIGHTS):
        (writer.root / stale).unlink(missing_ok=True)
    writer.add_json(B.USER_IDS, list(train.user_ids))
    writer.add_json(B.ITEM_IDS, list(train.item_ids))
    writer.add_array(B.USER_FACTORS, users)
    writer.add_array(B.ITEM_FACTORS, items)
    if bias is not None:
        writer.add_array(B.ITEM_BIAS, bias.detach().cpu().numpy().astype(np.float32))
    indptr, indices = train.csr()
    writer.add_npz(B.TRAIN_INTERACTIONS, indptr=indptr.astype(np.int64), indices=indices.astype(np.int32))
    # The held-out test set travels too, so SAE fidelity, steering benchmarks and A/B simulation
    # evaluate on the same split without the original files.
    test_indptr, test_indices = split.test.csr()
    writer.add_npz(B.TEST_INTERACTIONS, indptr=test_indptr.astype(np.int64), indices=test_indices.astype(np.int32),
                   unrankable=split.unrankable.astype(np.int64))
    writer.add_json(B.ITEM_METADATA, catalog_or_placeholder(train).to_json())
    extra = model.extra_weights()
    if extra:
        writer.add_npz(B.MODEL_WEIGHTS, **extra)
    writer.manifest.metrics = metrics
    return writer.commit()
