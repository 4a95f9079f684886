"""Dataset loaders behind one interface: ``load_dataset(name, path)`` -> :class:`InteractionData`.

Every loader reads a local directory (or file); ``steerrec data download NAME`` fetches the
official archive first, checking its checksum. The synthetic default needs no files.
"""

from __future__ import annotations

from importlib import import_module
from pathlib import Path
from typing import Any

from .schema import DataError, InteractionData, ItemCatalog

# name -> "module:function"; imported lazily so that one loader's optional needs (pandas,
# pyarrow) do not burden the others.
LOADERS: dict[str, str] = {
    "synthetic": "steerrec.training.data.synthetic:load",
    "ml-1m": "steerrec.training.data.movielens:load_ml1m",
    "ml-100k": "steerrec.training.data.movielens:load_ml100k",
    "lastfm-2k": "steerrec.training.data.lastfm:load",
    "amazon": "steerrec.training.data.amazon:load",
    "csv": "steerrec.training.data.generic:load",
}


def load_dataset(name: str, path: str | Path | None = None, **options: Any) -> InteractionData:
    """Loads dataset ``name`` from ``path`` (a directory or file; unused for ``synthetic``)."""
    if name not in LOADERS:
        raise DataError(f"unknown dataset {name!r}; choose one of: {', '.join(LOADERS)}")
    module, func = LOADERS[name].split(":")
    loader = getattr(import_module(module), func)
    if name == "synthetic":
        return loader(**options)
    if path is None:
        raise DataError(f"dataset {name!r} needs a path (a local copy, or run `steerrec data download {name}`)")
    return loader(Path(path), **options)


__all__ = ["LOADERS", "DataError", "InteractionData", "ItemCatalog", "load_dataset"]
