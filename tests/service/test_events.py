"""Durable event store: dedupe, concurrent writers from several processes, SIGKILL after ack."""

import multiprocessing as mp
import os
import signal

import pytest
from steerrec.service.events import EventStore

FORK = mp.get_context("fork")


def test_exposures_and_feedback_round_trip_and_dedupe(tmp_path):
    store = EventStore(tmp_path / "events.db")
    assert store.record_exposure("r1", "u1", "boost", "horror", ["i3", "i1"], ts=10.0)
    assert not store.record_exposure("r1", "u1", "boost", "control", ["i9"], ts=11.0)  # same request id
    assert store.record_exposure("r2", "u2", None, None, [], ts=12.0, forced=False)
    assert store.record_exposure("r3", "u3", "boost", "control", [7, 8], ts=13.0, forced=True)

    assert store.record_feedback("r1", "u1", "i3", "click", ts=20.0)
    assert not store.record_feedback("r1", "u1", "i3", "click", ts=21.0)  # duplicate
    assert store.record_feedback("r1", "u1", "i3", "like", ts=22.0)  # another kind
    assert store.record_feedback("r1", "u1", "i1", "click", ts=23.0)  # another item
    assert store.record_feedback("ghost", "u9", "i1", "click", ts=24.0)  # unknown id: accepted, flagged

    exposures = list(store.exposures())
    assert [(e.request_id, e.arm, e.items, e.ts, e.forced) for e in exposures] == [
        ("r1", "horror", ["i3", "i1"], 10.0, False), ("r2", None, [], 12.0, False), ("r3", "control", ["7", "8"], 13.0, True)]
    assert [e.request_id for e in store.exposures("boost")] == ["r1", "r3"]
    clicks = list(store.feedback("click"))
    assert [(f.request_id, f.item, f.matched) for f in clicks] == [("r1", "i3", True), ("r1", "i1", True), ("ghost", "i1", False)]
    assert store.counts() == {"exposures": 3, "feedback": 4}
    assert store.exposure_owner("r1") is not None and store.exposure_owner("ghost") is None
    store.close()


def test_batched_exposures_commit_together_and_dedupe(tmp_path):
    store = EventStore(tmp_path / "events.db")
    store.record_exposure("r2", "u", "e", "a", ["x"], ts=1.0)
    added = store.record_exposures([("r1", "u1", "e", "a", ["i1"], 5.0), ("r2", "u2", "e", "b", []),
                                    ("r3", "u3", "e", "control", ["i2", "i3"], 6.0, True), ("r1", "u1", "e", "a", [])])
    assert added == [True, False, True, False]
    assert [(e.request_id, e.user, e.items, e.ts, e.forced) for e in store.exposures()] == [
        ("r2", "u", ["x"], 1.0, False), ("r1", "u1", ["i1"], 5.0, False), ("r3", "u3", ["i2", "i3"], 6.0, True)]
    with pytest.raises(ValueError):
        store.record_exposures([("ok", "u", "e", "a", []), ("", "u", "e", "a", [])])
    assert store.exposure_owner("ok") is None  # a bad row rejects the batch before anything is written


def test_durability_settings(tmp_path):
    store = EventStore(tmp_path / "events.db")
    conn = store._connection()
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 30_000


def test_bad_arguments_and_read_only(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        EventStore(tmp_path / "absent.db", readonly=True)
    assert not (tmp_path / "absent.db").exists()
    store = EventStore(tmp_path / "events.db")
    with pytest.raises(ValueError):
        store.record_exposure("", "u", "e", "a", [])
    with pytest.raises(ValueError):
        store.record_feedback("r", "u", "", "click")
    store.record_exposure("r1", "u1", "e", "a", ["x"])
    reader = EventStore(tmp_path / "events.db", readonly=True)
    assert [e.request_id for e in reader.exposures()] == ["r1"]
    with pytest.raises(PermissionError):
        reader.record_exposure("r2", "u", "e", "a", [])
    (tmp_path / "other.db").write_bytes(b"not a database at all" * 100)
    with pytest.raises(ValueError, match="not an events database"):
        EventStore(tmp_path / "other.db", readonly=True).counts()


def _writer(path, worker, n, barrier):
    store = EventStore(path)
    barrier.wait()
    for i in range(n):
        store.record_exposure(f"w{worker}-{i}", f"u{i}", "boost", "control", [f"i{i}"])
        store.record_exposure(f"shared-{i}", f"u{i}", "boost", "control", [f"i{i}"])  # every worker
        store.record_feedback(f"shared-{i}", f"u{i}", f"i{i}", "click")  # every worker: one survives
    store.close()


def test_concurrent_writers_in_several_processes_lose_nothing_and_dedupe(tmp_path):
    path, workers, n = tmp_path / "events.db", 4, 40
    EventStore(path).close()
    barrier = FORK.Barrier(workers)
    procs = [FORK.Process(target=_writer, args=(path, w, n, barrier)) for w in range(workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    store = EventStore(path, readonly=True)
    ids = [e.request_id for e in store.exposures()]
    assert len(ids) == len(set(ids)) == workers * n + n
    assert set(ids) == {f"w{w}-{i}" for w in range(workers) for i in range(n)} | {f"shared-{i}" for i in range(n)}
    feedback = list(store.feedback())
    assert sorted(f.request_id for f in feedback) == sorted(f"shared-{i}" for i in range(n))
    assert all(f.matched for f in feedback)


def _acking_writer(path, pipe):
    store = EventStore(path)
    i = 0
    while True:  # until killed
        store.record_exposure(f"r{i}", "u", "boost", "horror", ["a", "b"])
        store.record_feedback(f"r{i}", "u", "a", "click")
        pipe.send(i)  # acknowledged: both calls returned
        i += 1


def test_acknowledged_events_survive_sigkill(tmp_path):
    path = tmp_path / "events.db"
    receiver, sender = FORK.Pipe(duplex=False)
    child = FORK.Process(target=_acking_writer, args=(path, sender))
    child.start()
    sender.close()
    acked = []
    while len(acked) < 60:
        assert receiver.poll(60), "writer stopped acknowledging"
        acked.append(receiver.recv())
    os.kill(child.pid, signal.SIGKILL)  # most likely in the middle of the next transaction
    child.join(30)
    assert child.exitcode == -signal.SIGKILL
    try:
        while receiver.poll():  # acks sent before the kill landed
            acked.append(receiver.recv())
    except EOFError:  # the pipe's only writer is gone
        pass

    store = EventStore(path)  # recovers the WAL the killed writer left behind
    assert store._connection().execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    exposures = {e.request_id for e in store.exposures()}
    clicks = {f.request_id for f in store.feedback("click")}
    for i in acked:
        assert f"r{i}" in exposures and f"r{i}" in clicks
    # At most the one event in flight when the kill landed is stored without an ack.
    assert len(acked) <= len(exposures) <= len(acked) + 1
    assert store.record_exposure("after", "u", "boost", "control", [])  # still writable


def test_store_reopens_its_connection_after_fork(tmp_path):
    store = EventStore(tmp_path / "events.db")
    store.record_exposure("parent", "u", "e", "a", [])

    def child():
        os._exit(0 if store.record_exposure("child", "u", "e", "a", []) else 1)

    p = FORK.Process(target=child)
    p.start()
    p.join(30)
    assert p.exitcode == 0
    assert {e.request_id for e in store.exposures()} == {"parent", "child"}
