"""Swapping the served bundle without a restart, and keeping every replica on the same one.

The bundle path is fixed when the server starts (``--bundle``, or the deployment's ``bundle``
arg); a reload re-reads whatever that path holds now. An operator rolls out a new version by
pointing the path elsewhere (a symlink replaced with ``mv -T``) and calling ``POST /admin/reload``
(admin.py). The path never comes from a request.

A reload resolves the path once and loads from the directory it names at that moment, so a link
moved again mid-load cannot mix files of two versions, and the engine's later reads stay inside
one version. It builds a complete new engine in a worker thread while the old one keeps
answering, checks the A/B arms against it, then swaps one attribute: requests already running
finish on the engine they started with, later ones get the new one. A bundle that fails to load
(checksum mismatch, unreadable array, wrong model kind) is refused with the loader's message,
which names the broken file under the resolved directory (the version an operator must fix or
roll back; the configured path is added when it differs), and nothing changes.

Several Ray Serve replicas: the one that received the request reloads, then bumps a generation
number held by a small named Ray actor (``GenerationBoard``); every replica polls it and reloads
when it moves, so one call reaches them all within ``reload_poll_s``. A replica started later
(scale-up, restart after a crash) loads whatever the path holds, which is already the new bundle.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import time
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool

from steerrec.bundle import MANIFEST

log = logging.getLogger(__name__)

BOARD_NAMESPACE = "steerrec"


class ReloadRefused(Exception):
    """The reload did not happen; ``kind`` is the error code, ``problem`` says why."""

    def __init__(self, kind: str, problem: str):
        self.kind, self.problem = kind, problem
        super().__init__(problem)


def bundle_version(path: str | Path, target: str | None = None) -> dict[str, str]:
    """What a bundle path denotes: the directory it resolves to (``target``, or resolved now) and a
    hash of that directory's manifest (which lists the sha256 of every file, so it identifies the
    whole content)."""
    target = target or os.path.realpath(path)
    manifest = Path(target) / MANIFEST
    try:
        digest = hashlib.sha256(manifest.read_bytes()).hexdigest()[:16]
    except OSError as exc:
        raise ReloadRefused("reload_refused", f"{manifest}: cannot read the manifest: {exc.strerror or exc}"
                            + _via(path, target)) from None
    return {"path": str(path), "target": target, "manifest_sha256": digest}


def _via(path: str | Path, target: str) -> str:
    return "" if str(path) == target else f" (bundle path {path} -> {target})"


class Reloader:
    """Reloads a ``SteerService``'s engine from its configured bundle path."""

    def __init__(self, service, path: str | Path, board=None):
        self.service, self.path, self.board = service, Path(path), board
        # What the running engine was loaded from, not what the path holds now (it may have moved).
        self.version = bundle_version(self.path, os.path.realpath(service.engine.bundle.root))
        self.generation: int | None = 0
        """The board generation this replica last acted on (None: not polled yet)."""
        self.reloads = 0
        self.last_error: str | None = None
        self.loaded_at = time.time()
        self._lock = asyncio.Lock()

    def _load(self, target: str):
        from .engine import SteeringEngine

        engine = SteeringEngine(target, self.service.config)
        if self.service.experiments is not None:  # an arm naming a slug the new bundle lacks
            self.service.experiments.check_specs(lambda s, f, p: engine.parse(s, f, p))
        return engine

    async def reload(self, announce: bool = True) -> dict[str, Any]:
        """Loads, verifies and swaps in the bundle the path holds now. ``announce`` tells the other
        replicas (through the board) to do the same. Raises ReloadRefused, leaving the old engine."""
        if self._lock.locked():
            raise ReloadRefused("reload_in_progress", "a reload is already running on this replica; retry shortly")
        async with self._lock:
            previous, started = self.version, time.perf_counter()
            try:
                version = bundle_version(self.path)
                engine = await run_in_threadpool(self._load, version["target"])
            except ReloadRefused as exc:
                self.last_error = exc.problem
                raise
            except Exception as exc:  # noqa: BLE001  EngineError, BundleError, ONNX Runtime, experiments
                target = version["target"]
                problem = (str(exc) if target in str(exc) else f"{target}: {exc}") + _via(self.path, target)
                self.last_error = problem
                log.warning("bundle reload refused: %s", problem)
                raise ReloadRefused("reload_refused", problem) from None
            self.service.engine = engine  # one attribute: a request sees the old or the new engine, whole
            self.version, self.last_error, self.loaded_at = version, None, time.time()
            self.reloads += 1
        if announce and self.board is not None:
            self.generation = await self.board.bump()
        log.info("bundle reloaded: %s (manifest %s)", version["target"], version["manifest_sha256"])
        return {"reloaded": True, "previous": previous, "current": version,
                "load_seconds": round(time.perf_counter() - started, 3), "replica": replica_id(),
                "engine": engine.describe()}

    def status(self) -> dict[str, Any]:
        return {**self.version, "reloads": self.reloads, "last_error": self.last_error,
                "loaded_at": self.loaded_at, "replica": replica_id()}

    async def follow(self, interval_s: float) -> None:
        """Background loop of a replica: reload when another replica has announced one."""
        while True:
            await asyncio.sleep(interval_s)
            try:
                generation = await self.board.get()
            except Exception as exc:  # noqa: BLE001  the board restarting; the next poll tries again
                log.debug("reload board unreachable: %s", exc)
                continue
            if self.generation is None:  # first poll: adopt the count, unless a reload slipped past our load
                self.generation = generation
                try:
                    if bundle_version(self.path)["manifest_sha256"] == self.version["manifest_sha256"]:
                        continue
                except ReloadRefused:
                    continue
            elif generation == self.generation or self._lock.locked():
                continue
            try:
                await self.reload(announce=False)
            except ReloadRefused as exc:  # keep serving the old bundle; healthz shows last_error
                log.warning("reload announced by another replica refused here: %s", exc.problem)
            self.generation = generation  # acted on, even when refused: no retry loop on a bad bundle


def replica_id() -> str:
    try:
        from ray import serve

        return serve.get_replica_context().replica_tag
    except Exception:  # noqa: BLE001  outside Ray Serve (uvicorn, tests)
        return f"pid-{os.getpid()}"


class GenerationBoard:
    """A counter shared by the replicas of one application (a detached Ray actor)."""

    def __init__(self):
        self.generation = 0

    def bump(self) -> int:
        self.generation += 1
        return self.generation

    def get(self) -> int:
        return self.generation


class RayBoard:
    """Async access to the application's ``GenerationBoard`` actor, created by whichever replica
    comes first (``get_if_exists``); detached so no single replica's death takes it down."""

    def __init__(self, app_name: str):
        import ray

        actor = ray.remote(GenerationBoard).options(
            name=f"reload-board-{app_name}", namespace=BOARD_NAMESPACE, get_if_exists=True, lifetime="detached",
            num_cpus=0, max_restarts=-1)
        self.actor = actor.remote()

    async def bump(self) -> int:
        return await self.actor.bump.remote()

    async def get(self) -> int:
        return await self.actor.get.remote()


def attach_to_replica(service, bundle_path: str | Path) -> Reloader | None:
    """In a Ray Serve replica with administration enabled: a reloader wired to the application's
    board, and the background task that follows other replicas' reloads. None elsewhere."""
    from .admin import admin_token
    from .metrics import _inside_ray_worker

    if admin_token(service.config) is None or not _inside_ray_worker():
        return None
    from ray import serve

    board = RayBoard(serve.get_replica_context().app_name)
    reloader = Reloader(service, bundle_path, board)
    reloader.generation = None  # adopted from the board on the first poll
    service.reloader = reloader
    asyncio.get_running_loop().create_task(reloader.follow(service.config.reload_poll_s))
    return reloader
