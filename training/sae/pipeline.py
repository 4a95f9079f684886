"""``steerrec sae``: train an SAE on a bundle's embeddings, measure it, and add it to the bundle."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

from steerrec import bundle as B

from ..data.split import Split, split_from_csr
from ..models import Recommender, load_model
from . import DEFAULT_ARCH, make_sae_config
from .anchors import anchor_concepts
from .fidelity import code_stats, ranking_fidelity
from .onnx_export import export_sae, sae_config_dict, sae_weights
from .trainer import SAETrainConfig, TrainedSAE, train_sae


def split_from_bundle(bundle: B.Bundle) -> Split:
    """The bundle's training and held-out interactions, in its index space."""
    test = bundle.npz(B.TEST_INTERACTIONS) if bundle.has(B.TEST_INTERACTIONS) else None
    if test is None:
        raise B.BundleError(f"{bundle.root / B.TEST_INTERACTIONS}: missing; re-export the bundle with `steerrec train`")
    from ..data.schema import ItemCatalog

    items = ItemCatalog.from_json(bundle.item_metadata())
    return split_from_csr(bundle.manifest.dataset.name, bundle.user_ids(), bundle.item_ids(),
                          bundle.train_interactions(), (test["indptr"], test["indices"]), test["unrankable"],
                          items, bundle.manifest.dataset.split)


class SAERun(NamedTuple):
    trained: TrainedSAE
    metrics: dict[str, Any]
    """Code statistics, ranking fidelity and timing, as written into the manifest."""


def fit_and_measure(model: Recommender, split: Split, arch: str, sae_options: dict[str, Any],
                    tcfg: SAETrainConfig) -> SAERun:
    cfg = make_sae_config(arch, **sae_options)
    anchored, anchors_IC = anchor_concepts(split.train.items, tcfg.anchor_facet) if tcfg.anchor_facet else ([], None)
    trained = train_sae(model, arch, cfg, tcfg, split.train.csr(), anchors_IC)
    model = model.cpu()
    stats = code_stats(trained.sae, model.user_embeddings().detach(), model.item_embeddings().detach())
    fidelity = ranking_fidelity(trained.sae, model, split)
    metrics = {"arch": arch, "beta": tcfg.beta, "train_seconds": round(trained.seconds, 2),
               "dead_fraction_train": trained.dead_fraction_train} | stats | fidelity
    if anchored:
        metrics["anchors"] = {"facet": tcfg.anchor_facet, "concepts": anchored}
    metrics["history"] = trained.history
    return SAERun(trained, metrics)


def run_sae(bundle_dir: str | Path, arch: str = DEFAULT_ARCH, sae_options: dict[str, Any] | None = None,
            tcfg: SAETrainConfig | None = None) -> SAERun:
    """Trains, measures and writes the SAE files into the bundle (replacing an earlier SAE and
    the neuron labels that described it)."""
    tcfg = tcfg or SAETrainConfig()
    bundle = B.Bundle.open(bundle_dir)
    model = load_model(bundle)
    run = fit_and_measure(model, split_from_bundle(bundle), arch, sae_options or {}, tcfg)
    writer = B.BundleWriter(bundle.root, bundle.manifest)
    for stale in (B.NEURONS, B.CONCEPT_TREE):
        writer.remove(stale)
    export_sae(run.trained.sae, bundle.root / B.SAE_ENCODER, bundle.root / B.SAE_DECODER)
    writer.add_file(B.SAE_ENCODER)
    writer.add_file(B.SAE_DECODER)
    writer.add_npz(B.SAE_WEIGHTS, **sae_weights(run.trained.sae))
    config = sae_config_dict(arch, run.trained.sae, tcfg)
    writer.add_json(B.SAE_CONFIG, config)
    writer.manifest.sae = {k: config[k] for k in ("arch", "d_in", "n_latents", "prefixes")}
    writer.manifest.metrics["sae"] = {k: v for k, v in run.metrics.items() if k != "history"}
    writer.commit()
    return run


def summary_rows(metrics: dict[str, Any]) -> list[tuple[str, Any]]:
    """The figures ``steerrec sae`` prints, in order."""
    keys = ["arch", "beta", "l0", "l0_users", "l0_items", "ev_users", "ev_items", "dead_fraction",
            "rbo@30", "kendall_tau@30", "base_recall@20", "recon_recall@20", "recall@20_change",
            "base_ndcg@20", "recon_ndcg@20", "ndcg@20_change", "train_seconds"]
    rows = [(k, metrics[k]) for k in keys if k in metrics]
    if "anchors" in metrics:
        n = len(metrics["anchors"]["concepts"])
        rows.append(("anchors", f"{metrics['anchors']['facet']}: latents 0-{n - 1}"))
    for side in ("users", "items"):
        for size, ev in metrics.get(f"ev_{side}_by_prefix", {}).items():
            rows.append((f"ev_{side} prefix {size}", ev))
    return rows

