"""Data -> split -> base model -> evaluation -> bundle: what ``steerrec train`` runs."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from . import evaluate
from .data import load_dataset
from .data.split import Split, from_files, leave_last_out, random_holdout
from .data.transforms import k_core, to_implicit
from .export import export_base_model
from .models import MODELS, FitResult, Recommender, config_dict, make_config

# Rating datasets become implicit feedback at rating >= 4 (the standard ML-1M protocol);
# play counts and synthetic interactions are already implicit.
DEFAULT_MIN_RATING = {"ml-1m": 4.0, "ml-100k": 4.0, "amazon": 4.0}


@dataclass
class DataSpec:
    """Where the interactions come from and how they are split."""

    dataset: str = "synthetic"
    path: str | None = None
    min_rating: float | None = None
    """Keep interactions with weight >= this (None: the dataset's default, see DEFAULT_MIN_RATING)."""
    kcore: int = 0
    """Drop users and items with fewer interactions, repeatedly (0: off)."""
    split: str = "random"
    """"random" (per-user holdout), "last" (leave-last-out, needs timestamps) or "files"."""
    test_fraction: float = 0.2
    train_file: str | None = None
    test_file: str | None = None
    seed: int = 0


def prepare_split(spec: DataSpec) -> Split:
    if spec.split == "files":
        if not (spec.train_file and spec.test_file):
            raise ValueError("split 'files' needs --train-file and --test-file")
        catalog = load_dataset(spec.dataset, spec.path) if spec.path else None
        return from_files(spec.train_file, spec.test_file, catalog)
    data = load_dataset(spec.dataset, spec.path)
    min_rating = spec.min_rating if spec.min_rating is not None else DEFAULT_MIN_RATING.get(spec.dataset)
    data = to_implicit(data, min_rating)
    if spec.kcore:
        data = k_core(data, spec.kcore, spec.kcore)
    if spec.split == "random":
        return random_holdout(data, spec.test_fraction, seed=spec.seed)
    if spec.split == "last":
        return leave_last_out(data)
    raise ValueError(f"unknown split {spec.split!r}; choose random, last or files")


def train_base(split: Split, kind: str = "mf", early_stopping: bool = True, valid_fraction: float = 0.1,
               **overrides: Any) -> tuple[Recommender, FitResult, dict[str, Any]]:
    """Fits the base model. With early stopping, the epoch count is chosen on a validation
    holdout carved from the training set, then the model is refit on all training data."""
    cfg = make_config(kind, **overrides)
    fit = MODELS[kind][1]
    info: dict[str, Any] = {"config": config_dict(cfg)}
    epochs = None
    if early_stopping:
        valid = random_holdout(split.train, valid_fraction, seed=cfg.seed + 1)
        _, probe = fit(valid.train, cfg, evaluate.recall_validator(valid))
        epochs = probe.best_epoch
        info["early_stopping"] = {"best_epoch": probe.best_epoch, "epochs_run": probe.epochs_run,
                                  "history": probe.history, "seconds": round(probe.seconds, 2)}
    model, result = fit(split.train, cfg, None, epochs=epochs)
    info["fit_seconds"] = round(result.seconds, 2)
    return model, result, info


def run_train(spec: DataSpec, out: str | Path, kind: str = "mf", early_stopping: bool = True,
              **overrides: Any) -> tuple[Path, dict[str, Any]]:
    """The whole ``steerrec train``: returns the bundle path and the metrics written into it."""
    start = time.perf_counter()
    split = prepare_split(spec)
    model, _, info = train_base(split, kind, early_stopping, **overrides)
    test = evaluate.evaluate(model, split)
    total = time.perf_counter() - start
    metrics = {
        "train": {"seconds_total": round(total, 2), "data": asdict(spec)} | info,
        "eval": {"split": split.description} | {k: round(v, 5) for k, v in test.items()},
    }
    path = export_base_model(out, split, model, info["config"], metrics)
    return path, metrics
