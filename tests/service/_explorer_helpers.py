"""Shared by the explorer tests: a small bundle trained for the test session, the app served by
uvicorn in a background thread on a free loopback port, and headless Chromium driven by Playwright.

The bundle does not come from the git-ignored ``bundles/``: ``explorer_bundles`` trains one (a
reduced synthetic catalogue, MF, a 64-latent Matryoshka SAE; 15-40 s on two cores) into a scratch
directory once per session, then labels copies of it. Without torch (a serving-only install) the
tests that need it are skipped with the reason.

Chromium comes from the system (Debian's ``chromium`` package; Playwright's own browser download
is not used): ``STEERREC_CHROMIUM`` overrides the path. Browser tests are skipped, with the reason,
when Playwright or the executable is absent.
"""

from __future__ import annotations

import functools
import os
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import pytest

from steerrec.bundle import NEURONS, BundleWriter

from ._steer_helpers import _scratch, neuron_records

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

# The test bundle: big enough for every planted genre to get a neuron, small enough to train fast.
N_USERS, N_ITEMS, DIM, EPOCHS = 800, 300, 32, 10
SAE_OPTIONS = {"n_latents": 64, "prefixes": (16, 32, 64)}
SAE_STEPS = 60


class ExplorerBundles(NamedTuple):
    plain: Path
    """Base model and SAE, no neurons.json (as ``steerrec sae`` leaves a bundle)."""
    labelled: Path
    """plain + neurons.json from the test labeller (genre of the top items; no parents, no tree)."""
    interpreted: Path
    """plain + neurons.json and concept_tree.json from ``steerrec interpret`` (training/interpret/);
    the labelled bundle when that stage cannot be imported."""


def _train_plain(out: Path) -> Path:
    from steerrec.training.data import load_dataset
    from steerrec.training.data.split import random_holdout
    from steerrec.training.export import export_base_model
    from steerrec.training.pipeline import train_base
    from steerrec.training.sae.pipeline import run_sae
    from steerrec.training.sae.trainer import SAETrainConfig

    split = random_holdout(load_dataset("synthetic", n_users=N_USERS, n_items=N_ITEMS, seed=0), 0.2, seed=0)
    model, _, info = train_base(split, "mf", early_stopping=False, seed=0, epochs=EPOCHS, dim=DIM, progress=False)
    export_base_model(out, split, model, info["config"], {"train": info})
    run_sae(out, "matryoshka", dict(SAE_OPTIONS),
            SAETrainConfig(steps=SAE_STEPS, batch_size=512, pairs_per_step=512, progress=False))
    return out


def _copy(source: Path, name: str) -> Path:
    target = _scratch() / name
    shutil.copytree(source, target)
    return target


@functools.cache
def explorer_bundles() -> ExplorerBundles:
    """Trained once per test session (cached), in a scratch directory removed at exit."""
    try:
        import torch  # noqa: F401  (the training stack; the service itself never imports it)
    except ImportError:
        pytest.skip("building the explorer's test bundle needs torch (the training install, see README)")
    from steerrec.service.engine import SteeringEngine

    plain = _train_plain(_scratch() / "explorer-plain")
    labelled = _copy(plain, "explorer-labelled")
    writer = BundleWriter.open(labelled)
    writer.add_json(NEURONS, neuron_records(SteeringEngine(labelled)))
    writer.commit()
    try:
        from steerrec.training.interpret.pipeline import InterpretConfig, run_interpret
    except ImportError:
        return ExplorerBundles(plain, labelled, labelled)
    interpreted = _copy(plain, "explorer-interpreted")
    run_interpret(interpreted, InterpretConfig(progress=False))
    return ExplorerBundles(plain, labelled, interpreted)


def chromium_path() -> str:
    explicit = os.environ.get("STEERREC_CHROMIUM")
    if explicit:
        return explicit
    return shutil.which("chromium") or shutil.which("chromium-browser") or "/usr/bin/chromium"


def require_browser():
    """(playwright.sync_api module, chromium executable) or a skip saying what to install."""
    try:
        from playwright import sync_api
    except ImportError:
        pytest.skip("playwright is not installed: pip install playwright (the browser itself comes from "
                    "Debian's chromium package, not from `playwright install`)")
    path = chromium_path()
    if not Path(path).is_file() or not os.access(path, os.X_OK):
        pytest.skip(f"no Chromium at {path}: apt-get install -y chromium (or set STEERREC_CHROMIUM)")
    return sync_api, path


class ServerThread:
    """uvicorn serving an ASGI app on 127.0.0.1 from a daemon thread; ``stop`` waits for a clean exit."""

    def __init__(self, app, port: int):
        import uvicorn

        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                                    lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, name=f"uvicorn-{port}", daemon=True)

    def start(self, timeout: float = 30.0) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn did not start on port {self.port}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)


@dataclass
class ConsoleLog:
    """Console errors and warnings of a page, and uncaught exceptions (``pageerror``). Chromium's
    own "Failed to load resource" line for each 4xx answer is kept apart: tests that provoke API
    errors on purpose check those separately."""

    errors: list[str] = field(default_factory=list)
    failed_resources: list[str] = field(default_factory=list)

    def attach(self, page) -> ConsoleLog:
        def on_console(message):
            if message.type not in ("error", "warning"):
                return
            text = f"console.{message.type}: {message.text} ({message.location.get('url', '')})"
            if message.type == "error" and message.text.startswith("Failed to load resource"):
                self.failed_resources.append(text)
            else:
                self.errors.append(text)

        page.on("console", on_console)
        page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))
        return self

    def all(self) -> list[str]:
        return self.errors + self.failed_resources
