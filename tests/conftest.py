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
