"""Shared fixtures. Real-data tests read STEERREC_DATA (set by .ci/run to ../shared/data)."""

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def data_root() -> Path:
    """Root of the real datasets; tests that need it are skipped, with the reason, when unset."""
    value = os.environ.get("STEERREC_DATA")
    if not value:
        pytest.skip("STEERREC_DATA is not set: point it at a directory holding ml-1m/, ml-100k/, ...")
    root = Path(value)
    if not root.is_dir():
        pytest.skip(f"STEERREC_DATA={value} is not a directory")
    return root


def dataset_dir(root: Path, name: str) -> Path:
    path = root / name
    if not path.is_dir():
        pytest.skip(f"{path} is absent")
    return path


@pytest.fixture(scope="session")
def ml1m_bundle(data_root, tmp_path_factory) -> Path:
    """MF and the default SAE trained on ML-1M's standard split, once per session: the engine's
    exactness test and the interpretation tests share it (the latter add neurons.json to it)."""
    from steerrec.training.pipeline import DataSpec, run_train
    from steerrec.training.sae.pipeline import run_sae
    from steerrec.training.sae.trainer import SAETrainConfig

    from tests.training.interpret._threads import one_torch_thread

    splits = dataset_dir(data_root, "splits/ml-1m")
    out = tmp_path_factory.mktemp("ml1m") / "bundle"
    spec = DataSpec(dataset="ml-1m", path=str(dataset_dir(data_root, "ml-1m")), split="files",
                    train_file=str(splits / "train.tsv"), test_file=str(splits / "test.tsv"))
    run_train(spec, out, "mf", progress=False)  # ALS's batched solves use both cores
    with one_torch_thread():
        run_sae(out, "matryoshka", {}, SAETrainConfig(progress=False))
    return out
