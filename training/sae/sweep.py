"""``steerrec sae --sweep beta=...``: the fidelity/sparsity trade-off of the prediction-aware loss."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from steerrec import bundle as B
from steerrec.table import markdown_table

from ..models import load_model
from .pipeline import fit_and_measure, split_from_bundle
from .trainer import SAETrainConfig

COLUMNS = ("beta", "l0", "ev_users", "ev_items", "rbo@30", "kendall_tau@30", "recall@20_change",
           "ndcg@20_change", "dead_fraction", "train_seconds")


def parse_sweep(spec: str) -> list[float]:
    key, sep, values = spec.partition("=")
    if key.strip() != "beta" or not sep:
        raise ValueError(f"--sweep expects beta=V1,V2,..., got {spec!r}")
    try:
        return [float(v) for v in values.split(",") if v.strip()]
    except ValueError as exc:
        raise ValueError(f"--sweep values must be numbers: {values!r}") from exc


def run_sweep(bundle_dir: str | Path, arch: str, sae_options: dict[str, Any], train_options: dict[str, Any],
              spec: str, plot: str | None = None) -> list[dict[str, Any]]:
    bundle = B.Bundle.open(bundle_dir)
    model, split = load_model(bundle), split_from_bundle(bundle)
    results = []
    for beta in parse_sweep(spec):
        run = fit_and_measure(model, split, arch, sae_options, SAETrainConfig(**(train_options | {"beta": beta})))
        results.append(run.metrics)
        print(f"beta={beta:g}: rbo@30 {run.metrics['rbo@30']:.4f} kendall_tau@30 {run.metrics['kendall_tau@30']:.4f}",
              flush=True)
    print(markdown_table(COLUMNS, [[m[c] for c in COLUMNS] for m in results]))
    path = Path(plot) if plot else bundle.root / "sae_beta_sweep.png"
    plot_sweep(results, path)
    print(f"plot written to {path}")
    return results


def plot_sweep(results: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    betas = [m["beta"] for m in results]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for key, label in (("rbo@30", "RBO@30 (p=0.9)"), ("kendall_tau@30", "Kendall tau@30")):
        ax1.plot(betas, [m[key] for m in results], marker="o", label=label)
    ax1.set_xlabel("beta (prediction-aware loss weight)")
    ax1.set_title("Top-30 agreement with the base model")
    ax1.legend()
    for key, label in (("ev_users", "EV users"), ("ev_items", "EV items")):
        ax2.plot(betas, [m[key] for m in results], marker="o", label=label)
    ax2.set_xlabel("beta")
    ax2.set_title(f"Explained variance at mean L0 {results[0]['l0']:.1f}")
    ax2.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
