"""Shared helpers of the service tests: bundle copies, a neurons.json writer, brute-force references.

Until the interpretation stage (issue 9) writes neurons.json, ``write_neurons`` labels each neuron
from the genre that dominates its top items, so tests can steer by slug ("horror").
"""

from __future__ import annotations

import atexit
import functools
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from steerrec.bundle import NEURONS, BundleWriter

REPO = Path(__file__).resolve().parents[2]

# MF on the synthetic catalogue (seed 0) and the SAE with `steerrec sae`'s defaults, through the library calls, so it depends on neither command's
# flags. In a subprocess: the serving tests' own process stays free of torch.
BUILD_DEMO = """
import sys
from steerrec.training.pipeline import DataSpec, run_train
from steerrec.training.sae.pipeline import run_sae
from steerrec.training.sae.trainer import SAETrainConfig
path, _ = run_train(DataSpec(dataset="synthetic", seed=0), sys.argv[1], "mf", seed=0, progress=False)
run_sae(path, tcfg=SAETrainConfig(progress=False))
"""


@functools.cache
def require_demo() -> Path:
    """The synthetic bundle with the default SAE (512 latents, 3000 steps) and no neurons.json,
    built once per session in a scratch directory whatever bundles/ holds, so that every run tests
    the same bundle (about a minute on two idle cores)."""
    path = _scratch() / "built-demo"
    done = subprocess.run([sys.executable, "-c", BUILD_DEMO, str(path)], cwd=REPO, capture_output=True, text=True,
                          check=False)
    if done.returncode != 0:
        pytest.fail(f"building the demo bundle in {path} failed:\n{done.stderr[-3000:]}")
    return path


@functools.cache
def _scratch() -> Path:
    root = Path(tempfile.mkdtemp(prefix="steerrec-service-tests-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    return root


def copy_bundle(name: str, source: Path | None = None) -> Path:
    """A private, writable copy of the demo bundle (the shared one is read-only)."""
    target = _scratch() / name
    if not target.exists():
        shutil.copytree(source or require_demo(), target)
    return target


def slugify(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "n"


def neuron_records(engine) -> list[dict]:
    """One record per latent, labelled with the genre that dominates its top items. Among the
    neurons of one genre, the one whose decoder direction most separates that genre's items from
    the rest gets the bare slug ("horror"); the others get "horror-2", "horror-3", ..."""
    prefixes = (engine.bundle.manifest.sae or {}).get("prefixes", [engine.n_latents])
    genres = engine.bundle.item_metadata()["facets"]["genre"]
    along = engine.index.vectors.astype(np.float64) @ engine.directions.T  # [items, latents]
    labels, confidence, separation = [], [], []
    for j in range(engine.n_latents):
        concepts = [c for c in engine.catalog.concepts(j) if c["facet"] == "genre"]
        if concepts and not engine.stats.dead[j] and concepts[0]["share"] >= 0.5:
            genre = concepts[0]["concept"]
            member = np.array([genre in g for g in genres])
            labels.append(genre)
            confidence.append(concepts[0]["share"])
            separation.append(engine.scale[j] * (along[member, j].mean() - along[~member, j].mean()))
        else:
            labels.append(f"neuron {j}")
            confidence.append(0.0)
            separation.append(0.0)
    slugs: dict[int, str] = {}
    for label in set(labels):
        members = sorted((j for j in range(engine.n_latents) if labels[j] == label), key=lambda j: -separation[j])
        for rank, j in enumerate(members, start=1):
            slugs[j] = f"n{j}" if label == f"neuron {j}" else slugify(label) + ("" if rank == 1 else f"-{rank}")
    return [{"id": j, "label": labels[j], "slug": slugs[j], "confidence": float(confidence[j]),
             "prefix": int(np.searchsorted(prefixes, j, side="right")),
             "status": "dead" if engine.stats.dead[j] else "ok",
             "top_items": engine.catalog.top_items(j, 5), "concepts": engine.catalog.concepts(j)[:5], "parent": None,
             # what `steerrec interpret` adds for a labelled concept
             **({"concept": {"facet": "genre", "name": labels[j]}} if confidence[j] else {})}
            for j in range(engine.n_latents)]


@functools.cache
def labelled_bundle() -> Path:
    """A copy of the demo bundle with a neurons.json."""
    from steerrec.service.engine import SteeringEngine

    path = copy_bundle("labelled")
    if not (path / NEURONS).exists():
        records = neuron_records(SteeringEngine(path))
        writer = BundleWriter.open(path)
        writer.add_json(NEURONS, records)
        writer.commit()
    return path


@functools.cache
def labelled_engine():
    from steerrec.service.engine import SteeringEngine

    return SteeringEngine(labelled_bundle())


@functools.cache
def plain_engine():
    """The read-only demo bundle as shipped: no neurons.json."""
    from steerrec.service.engine import SteeringEngine

    return SteeringEngine(require_demo())


def genre_slug(engine, genre: str) -> str:
    slug = slugify(genre)
    if slug not in engine.catalog.slug_to_id:
        pytest.skip(f"no neuron labelled {genre!r} in this bundle")
    return slug


def reference_top_k(scores_I: np.ndarray, excluded: np.ndarray, k: int) -> list[int]:
    """Brute force: every item scored, excluded ones dropped, sorted by (score desc, row asc)."""
    rows = np.arange(len(scores_I))
    keep = np.ones(len(scores_I), bool)
    keep[np.asarray(excluded, dtype=np.int64)] = False
    rows, scores = rows[keep], scores_I[keep]
    return rows[np.lexsort((rows, -scores))][:k].tolist()
