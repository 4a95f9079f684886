"""Durable exposure and feedback events for A/B experiments.

Storage: one SQLite database in WAL mode with ``synchronous=FULL``. Why SQLite rather than an
fsynced append-only log:

- Durability. A write method returns only after its transaction has committed; with WAL and
  ``synchronous=FULL`` the commit fsyncs the WAL, so an acknowledged event survives the process
  being killed right after (it is already in the file) and also an OS crash or power loss (it is
  on disk). A log would need the same fsync plus its own torn-write recovery.
- Deduplication. Primary keys (request id for an exposure; request id + kind + item for feedback)
  with ``INSERT OR IGNORE`` make a retried or replayed event a no-op, atomically, across processes.
  A log would need a read-side dedupe pass and could not tell the caller "duplicate".
- Several writers. Replicas on one host open the same file; SQLite's locks serialise their
  transactions and the busy timeout (plus a bounded retry) waits out a competing writer instead of
  failing. WAL lets the report read while replicas write. SQLite locking does not work over
  network file systems: replicas on different hosts should each write their own file
  (``events-<replica>.db``); the report merges any number of files.

Feedback for an unknown request id is accepted and flagged (``matched = 0``), not rejected: with one
file per replica the exposure may sit in another replica's file, and a click must not be lost
because of routing. The report re-joins feedback to exposures across all the files it reads and
counts what still has no exposure as orphaned.

Each commit costs an fsync (3 to 4 ms on the development machine); an async app should call these
methods in a thread pool (``starlette.concurrency.run_in_threadpool``) rather than on the event
loop, and ``record_exposures`` commits a batch with one fsync.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple, TypeVar

if TYPE_CHECKING:
    from typing_extensions import Self  # typing.Self needs Python 3.11

BUSY_TIMEOUT_S = 30.0
"""How long one statement waits for another process's write lock before SQLite gives up."""
RETRIES = 5
"""Further attempts after a "database is locked" that outlived the busy timeout."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS exposures (
    request_id TEXT PRIMARY KEY,
    user       TEXT NOT NULL,
    experiment TEXT,
    arm        TEXT,
    items      TEXT NOT NULL,           -- JSON list of item ids, in the order shown
    ts         REAL NOT NULL,           -- unix seconds
    forced     INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS exposures_experiment ON exposures (experiment, arm);
CREATE TABLE IF NOT EXISTS feedback (
    request_id TEXT NOT NULL,
    kind       TEXT NOT NULL,
    item       TEXT NOT NULL,
    user       TEXT NOT NULL,
    ts         REAL NOT NULL,
    matched    INTEGER NOT NULL,        -- 1 when this file held the exposure at write time
    PRIMARY KEY (request_id, kind, item)
);
"""


class Exposure(NamedTuple):
    request_id: str
    user: str
    experiment: str | None
    """None for a request served outside any experiment."""
    arm: str | None
    items: list[str]
    """Item ids in the order shown."""
    ts: float
    forced: bool
    """The arm was forced by a QA override; reports leave these out."""


class Feedback(NamedTuple):
    request_id: str
    user: str
    item: str
    kind: str
    """"click" by default; any short word ("like", "purchase", "dismiss")."""
    ts: float
    matched: bool
    """Whether the exposure was in the same file when the feedback was written."""


T = TypeVar("T")


class EventStore:
    """Exposure and feedback events in one SQLite file; safe to share between processes.

    One connection per process (reopened after a fork), guarded by a lock so threads of one
    process can share the store.
    """

    def __init__(self, path: str | Path, readonly: bool = False):
        """``readonly`` opens an existing file for reports without creating or altering it."""
        self.path = Path(path)
        self.readonly = readonly
        if readonly and not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: events database does not exist")
        if not readonly:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._pid = -1
        with self._lock:
            self._connection()

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None or self._pid != os.getpid():
            # A connection inherited through fork must not be used by the child (SQLite forbids it).
            if self.readonly:
                conn = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True,
                                       timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
                self._with_retries(lambda: self._check_schema(conn))
            else:
                conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None,
                                       check_same_thread=False)
                self._with_retries(lambda: self._setup(conn))
            self._conn, self._pid = conn, os.getpid()
        return self._conn

    @staticmethod
    def _setup(conn: sqlite3.Connection) -> None:
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise sqlite3.OperationalError(f"cannot switch the events database to WAL (got {mode!r})")
        conn.execute("PRAGMA synchronous=FULL")
        conn.executescript(SCHEMA)

    def _check_schema(self, conn: sqlite3.Connection) -> None:
        try:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.DatabaseError as exc:
            raise ValueError(f"{self.path}: not an events database: {exc}") from None
        missing = {"exposures", "feedback"} - tables
        if missing:
            raise ValueError(f"{self.path}: not an events database (missing tables {sorted(missing)})")

    @staticmethod
    def _with_retries(fn: Callable[[], T]) -> T:
        for attempt in range(RETRIES + 1):
            try:
                return fn()
            except sqlite3.OperationalError as exc:
                busy = "locked" in str(exc) or "busy" in str(exc)
                if not busy or attempt == RETRIES:
                    raise
                time.sleep(0.05 * 2**attempt)
        raise AssertionError("unreachable")

    def _write(self, sql: str, rows: Sequence[Sequence]) -> list[bool]:
        """Runs INSERT OR IGNORE for every row in one immediate transaction; per row, whether it was
        added. Returns only after COMMIT, i.e. after the WAL fsync, so one fsync covers the batch."""
        if self.readonly:
            raise PermissionError(f"{self.path}: opened read-only")

        def attempt() -> list[bool]:
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
            try:
                added = [conn.execute(sql, params).rowcount == 1 for params in rows]
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            return added

        with self._lock:
            return self._with_retries(attempt)

    def record_exposure(self, request_id: str, user: str, experiment: str | None, arm: str | None,
                        items: Sequence[str], ts: float | None = None, forced: bool = False) -> bool:
        """Stores that ``items`` were shown to ``user`` under (experiment, arm).

        Returns False, storing nothing, when this request id was already recorded.
        """
        return self.record_exposures([(request_id, user, experiment, arm, items, ts, forced)])[0]

    def record_exposures(self, exposures: Sequence[tuple]) -> list[bool]:
        """Batch form of ``record_exposure`` (tuples of its arguments, ``ts`` and ``forced`` may be
        omitted): one transaction and one fsync for the batch, e.g. for a ``@serve.batch`` handler."""
        rows = []
        for request_id, user, experiment, arm, items, *rest in exposures:
            ts = rest[0] if rest else None
            forced = rest[1] if len(rest) > 1 else False
            if not request_id:
                raise ValueError("request_id must be a non-empty string")
            rows.append((request_id, str(user), experiment, arm, json.dumps([str(i) for i in items]),
                         time.time() if ts is None else float(ts), int(bool(forced))))
        return self._write(
            "INSERT OR IGNORE INTO exposures (request_id, user, experiment, arm, items, ts, forced) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)", rows)

    def record_feedback(self, request_id: str, user: str, item: str, kind: str = "click",
                        ts: float | None = None) -> bool:
        """Stores one feedback event; False when the same (request id, kind, item) is already stored.

        An unknown request id is accepted and flagged ``matched = False`` (see the module docstring).
        """
        if not request_id or not kind or item is None or str(item) == "":
            raise ValueError("request_id, item and kind must be non-empty")
        return self._write(
            "INSERT OR IGNORE INTO feedback (request_id, kind, item, user, ts, matched) "
            "VALUES (?, ?, ?, ?, ?, EXISTS (SELECT 1 FROM exposures WHERE request_id = ?))",
            [(request_id, kind, str(item), str(user), time.time() if ts is None else float(ts), request_id)],
        )[0]

    def exposure_owner(self, request_id: str) -> tuple[str, str | None, str | None] | None:
        """(user, experiment, arm) of the request's stored exposure, None when there is none."""
        with self._lock:
            row = self._connection().execute("SELECT user, experiment, arm FROM exposures WHERE request_id = ?",
                                             (request_id,)).fetchone()
        return None if row is None else tuple(row)

    # -- readers ------------------------------------------------------------------------------

    def exposures(self, experiment: str | None = None) -> Iterator[Exposure]:
        """Exposures in write order, optionally of one experiment."""
        sql = "SELECT request_id, user, experiment, arm, items, ts, forced FROM exposures"
        params: tuple = ()
        if experiment is not None:
            sql, params = sql + " WHERE experiment = ?", (experiment,)
        with self._lock:
            rows = self._connection().execute(sql + " ORDER BY rowid", params).fetchall()
        for rid, user, exp, arm, items, ts, forced in rows:
            yield Exposure(rid, user, exp, arm, json.loads(items), ts, bool(forced))

    def feedback(self, kind: str | None = None) -> Iterator[Feedback]:
        """Feedback events in write order, optionally of one kind."""
        sql = "SELECT request_id, user, item, kind, ts, matched FROM feedback"
        params: tuple = ()
        if kind is not None:
            sql, params = sql + " WHERE kind = ?", (kind,)
        with self._lock:
            rows = self._connection().execute(sql + " ORDER BY rowid", params).fetchall()
        for rid, user, item, k, ts, matched in rows:
            yield Feedback(rid, user, item, k, ts, bool(matched))

    def counts(self) -> dict[str, int]:
        with self._lock:
            conn = self._connection()
            exposures = conn.execute("SELECT COUNT(*) FROM exposures").fetchone()[0]
            feedback = conn.execute("SELECT COUNT(*) FROM feedback").fetchone()[0]
        return {"exposures": exposures, "feedback": feedback}

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
