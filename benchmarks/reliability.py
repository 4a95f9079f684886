"""Reliability of the served application under load, on loopback: one command per scenario.

    python benchmarks/reliability.py soak     [--seconds 180] [--fraction 0.5]
    python benchmarks/reliability.py kill     [--seconds 30] [--retry-on 'conn-failure empty-response']
    python benchmarks/reliability.py rollout  [--seconds 30]          # symlink + POST /admin/reload
    python benchmarks/reliability.py corrupt  [--seconds 30]          # at start and at reload

Each starts `steerrec serve` (Ray Serve, HAProxy ingress, 127.0.0.1, a free port) on --bundle
(default bundles/demo), measures the maximum closed-loop throughput for a few seconds, then drives
an open-loop load at --fraction of it with a small asyncio HTTP/1.1 keep-alive client, and prints a
Markdown table. Latencies are measured from each request's scheduled time, so a stall shows up as
latency instead of being hidden by a slower send rate. A request that gets no answer counts as
failed, with status 0, except that a request whose kept-alive connection was closed before any
answer is sent once more on a fresh connection, as HTTP clients do. Every server is stopped
(SIGTERM, then SIGKILL of its process group) before the command exits; nothing listens beyond
127.0.0.1. Results: docs/deploy.md, "Reliability".

- soak: errors, p50/p99 per window, and the resident memory of the replicas and of the whole
  process tree at the start and end of the load (drift).
- kill: two replicas; each /recommend is followed by POST /feedback on its first item; a replica is
  SIGKILLed a third of the way in. Ray restarts it; counts failed requests, times the new replica's
  process and its first answer, then checks that every acknowledged feedback event is in the SQLite
  event store. --retry-on sets what HAProxy replays on another replica.
- rollout: the bundle path is a symlink; mid-load it is re-pointed at a second version (item biases
  perturbed, re-checksummed) and POST /admin/reload is called. Every request must succeed; reports
  the reload time and when every replica served the new version.
- corrupt: a copy of the bundle with one byte flipped in item_factors.npy. At start: a second
  `steerrec serve` on it exits with the file named, while the running server keeps serving. At
  reload: the symlink is pointed at it and POST /admin/reload answers 409 naming the file; every
  replica keeps the old version and every request succeeds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve_latency import (  # shared client and helpers
    process_stats,
    read_response,
    stop_server,
)

TOKEN = "reliability-benchmark-" + os.urandom(12).hex()
REPLICA_TITLE = b"ServeReplica:steerrec"


# -- the server ------------------------------------------------------------------------------------
class Server:
    """`steerrec serve` in its own process group, on 127.0.0.1."""

    def __init__(self, bundle: Path, workdir: Path, replicas: int = 1, events: Path | None = None,
                 admin: bool = False, name: str = "serve", retry_on: str | None = None):
        from steerrec.service.ingress import free_port

        self.port, self.log = free_port(), workdir / f"{name}.log"
        self.state = Path(tempfile.mkdtemp(prefix="srr-", dir="/tmp"))  # HAProxy socket paths: short
        cmd = [sys.executable, "-m", "steerrec.cli", "serve", "--bundle", str(bundle), "--host", "127.0.0.1",
               "--port", str(self.port), "--replicas", str(replicas), "--num-cpus", str(max(2, replicas)),
               "--state-dir", str(self.state)]
        if events is not None:
            cmd += ["--events", str(events)]
        env = {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONUNBUFFERED": "1"}
        if retry_on:  # what HAProxy replays on another replica (Serve's default: conn-failure only)
            env["RAY_SERVE_HAPROXY_RETRY_ON"] = retry_on
        if admin:
            env["STEERREC_ADMIN_TOKEN"] = TOKEN
        with open(self.log, "w") as out:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)

    async def ready(self, replicas: int, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                if (await request(self.port, "GET", "/healthz"))[0] == 200 and len(self.replicas()) >= replicas:
                    await asyncio.sleep(3)  # Serve updates HAProxy's backends as the last replicas register
                    return
            except (OSError, asyncio.IncompleteReadError):
                pass
            await asyncio.sleep(0.5)
        raise RuntimeError(f"server not ready after {timeout} s:\n{self.log.read_text()[-3000:]}")

    def tree(self) -> list[int]:
        """The server's process and all its descendants (Ray's GCS, raylet, workers, HAProxy)."""
        children: dict[int, list[int]] = {}
        for pid, fields in process_stats():
            children.setdefault(int(fields[1]), []).append(pid)
        found, todo = [], [self.proc.pid]
        while todo:
            pid = todo.pop()
            found.append(pid)
            todo += children.get(pid, [])
        return found

    def replicas(self) -> list[int]:
        return [pid for pid in self.tree() if REPLICA_TITLE in _cmdline(pid)]

    def rss_mb(self) -> tuple[float, float]:
        """(replicas, whole tree) resident memory in MB."""
        tree = self.tree()
        replicas = set(self.replicas())
        rss = {pid: _rss_kb(pid) for pid in tree}
        return sum(rss[p] for p in replicas) / 1024, sum(rss.values()) / 1024

    def stop(self) -> int:
        stop_server(self.proc)
        shutil.rmtree(self.state, ignore_errors=True)
        return self.proc.returncode


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


# -- the client ------------------------------------------------------------------------------------
def _message(method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None) -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    for key, value in (headers or {}).items():
        head += f"{key}: {value}\r\n"
    if method == "POST":
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return (head + "\r\n").encode() + body


async def request(port: int, method: str, path: str, body: bytes = b"",
                  headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(_message(method, path, body, headers))
        return await asyncio.wait_for(read_response(reader), 30)
    finally:
        writer.close()


class Load:
    """Open-loop load: requests are scheduled at a fixed rate and handed to a pool of keep-alive
    connections; each outcome is recorded with its scheduled time."""

    def __init__(self, port: int, paths: list[str], rate: float, seconds: float, connections: int = 16,
                 feedback: bool = False):
        self.port, self.paths, self.rate, self.seconds = port, paths, rate, seconds
        self.connections, self.feedback = connections, feedback
        self.records: list[tuple[float, float, int]] = []  # (scheduled offset s, latency s, status)
        self.acked: list[tuple[str, str]] = []  # (request_id, item) of feedback the server acknowledged
        self.feedback_failed: Counter = Counter()  # status (0: no answer) -> POSTs not acknowledged
        self.failure_bodies: list[str] = []  # the first few error answers, to tell whose error it was
        self.start = 0.0

    async def run(self) -> None:
        queue: asyncio.Queue = asyncio.Queue()
        self.start = time.perf_counter()
        workers = [asyncio.create_task(self._worker(queue)) for _ in range(self.connections)]
        n = int(self.rate * self.seconds)
        for i in range(n):
            due = self.start + i / self.rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            queue.put_nowait((due, self.paths[i % len(self.paths)]))
        for _ in workers:
            queue.put_nowait(None)
        await asyncio.gather(*workers)

    async def _exchange(self, conn, message: bytes):
        """One request on a kept-alive connection: (connection, status, body), status 0 for no answer.
        As HTTP clients do, when a reused connection is closed before any answer (HAProxy drops idle
        ones when Serve reloads its config) the request is sent once more on a fresh connection; a
        failure on a fresh connection is final. Both requests sent here are safe to repeat: a GET,
        and feedback, which the event store deduplicates."""
        while True:
            reused = conn is not None
            try:
                if conn is None:
                    conn = await asyncio.open_connection("127.0.0.1", self.port)
                reader, writer = conn
                writer.write(message)
                status, body = await asyncio.wait_for(read_response(reader), 30)
                return conn, status, body
            except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError) as exc:
                if conn is not None:
                    conn[1].close()
                conn = None
                unanswered = isinstance(exc, ConnectionError) or (
                    isinstance(exc, asyncio.IncompleteReadError) and not exc.partial)
                if not (reused and unanswered):
                    return None, 0, b""

    async def _worker(self, queue: asyncio.Queue) -> None:
        conn = None
        while (job := await queue.get()) is not None:
            due, path = job
            conn, status, body = await self._exchange(conn, _message("GET", path))
            self.records.append((due - self.start, time.perf_counter() - due, status))
            if status not in (0, 200) and len(self.failure_bodies) < 3:
                self.failure_bodies.append(f"{status} {body[:160].decode(errors='replace')}")
            if self.feedback and status == 200:
                conn = await self._send_feedback(conn, body)
        if conn is not None:
            conn[1].close()

    async def _send_feedback(self, conn, body: bytes):
        rec = json.loads(body)
        if not rec["items"]:
            return conn
        item = rec["items"][0]["id"]
        payload = json.dumps({"request_id": rec["request_id"], "user": rec["user"], "item": item,
                              "kind": "click"}).encode()
        conn, status, answer = await self._exchange(conn, _message("POST", "/feedback", payload))
        if status == 200:  # stored now, or a duplicate of a copy already stored: durable either way
            self.acked.append((rec["request_id"], item))
        else:
            self.feedback_failed[status] += 1
            if status and len(self.failure_bodies) < 3:
                self.failure_bodies.append(f"feedback {status} {answer[:160].decode(errors='replace')}")
        return conn

    def summary(self, since: float = 0.0, until: float = float("inf")) -> dict:
        rows = [r for r in self.records if since <= r[0] < until]
        ms = np.array([r[1] for r in rows]) * 1e3 if rows else np.zeros(1)
        return {"requests": len(rows), "failed": sum(r[2] != 200 for r in rows),
                "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
                "max_ms": float(ms.max())}


async def max_throughput(port: int, paths: list[str], seconds: float = 5, concurrency: int = 8) -> float:
    """Closed loop: requests per second that `concurrency` keep-alive connections sustain."""
    done, end = 0, time.perf_counter() + seconds

    async def worker(offset: int) -> None:
        nonlocal done
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        i = offset
        try:
            while time.perf_counter() < end:
                writer.write(_message("GET", paths[i % len(paths)]))
                try:
                    await read_response(reader)
                except (OSError, asyncio.IncompleteReadError):  # HAProxy reloaded its config: reconnect
                    writer.close()
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                    continue
                i += concurrency
                done += 1
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    return done / (time.perf_counter() - started)


def request_paths(bundle: Path) -> list[str]:
    """Unsteered and steered /recommend over 200 users; steers by neuron index (any bundle has them)."""
    from steerrec.bundle import Bundle

    users = Bundle.open(bundle, verify=False).user_ids()[:200]
    paths = []
    for i, user in enumerate(users):
        steer = "" if i % 2 else f"&steer={i % 64}:%2B2"
        paths.append(f"/recommend?user={user}&k=10{steer}")
    return paths


async def versions_seen(port: int, polls: int = 40) -> dict[str, str]:
    """replica -> manifest hash, from /healthz answered by whichever replica HAProxy picks."""
    seen = {}
    for _ in range(polls):
        status, body = await request(port, "GET", "/healthz")
        if status == 200:
            bundle = json.loads(body)["bundle"]
            seen[bundle["replica"]] = bundle["manifest_sha256"]
    return seen


def second_version(bundle: Path, target: Path) -> Path:
    """A copy of `bundle` whose item biases are shifted: different files, same shapes, valid checksums."""
    from steerrec.bundle import BundleWriter

    shutil.copytree(bundle, target)
    writer = BundleWriter.open(target)
    bias = np.load(target / "item_bias.npy")
    writer.add_array("item_bias.npy", (bias + np.random.default_rng(7).normal(0, 0.05, bias.shape)).astype(np.float32))
    writer.commit()
    return target


def corrupt_copy(bundle: Path, target: Path, victim: str = "item_factors.npy") -> Path:
    shutil.copytree(bundle, target)
    data = bytearray((target / victim).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (target / victim).write_bytes(bytes(data))
    return target


def point(link: Path, target: Path) -> None:
    tmp = link.with_name(link.name + ".tmp")
    os.symlink(target, tmp)
    os.replace(tmp, link)


def table(rows: list[tuple[str, object]]) -> str:
    width = max(len(k) for k, _ in rows)
    lines = [f"| {'measure':<{width}} | value |", f"|{'-' * (width + 2)}|-------|"]
    for key, value in rows:
        text = f"{value:.2f}" if isinstance(value, float) else " ".join(str(value).split()).replace("|", "/")
        lines.append(f"| {key:<{width}} | {text} |")
    return "\n".join(lines)


# -- scenarios -------------------------------------------------------------------------------------
async def calibrate(server: Server, paths: list[str], fraction: float) -> tuple[float, float]:
    peak = await max_throughput(server.port, paths)
    return peak, max(5.0, fraction * peak)


async def ready_and_calibrated(server: Server, args) -> tuple[list[str], float, float]:
    """Waits for both replicas, then measures the closed-loop peak and the offered rate."""
    await server.ready(2)
    paths = request_paths(args.bundle)
    peak, rate = await calibrate(server, paths, args.fraction)
    return paths, peak, rate


async def soak(args, work: Path) -> list[tuple[str, object]]:
    server = Server(args.bundle, work, replicas=1)
    try:
        await server.ready(1)
        paths = request_paths(args.bundle)
        peak, rate = await calibrate(server, paths, args.fraction)
        await asyncio.sleep(2)
        load = Load(server.port, paths, rate, args.seconds)
        running = asyncio.create_task(load.run())
        samples = []  # (offset s, replica MB, tree MB) every 5 s: growth that levels off is warm-up, not a leak
        while not running.done():
            samples.append((time.perf_counter() - (load.start or time.perf_counter()), *server.rss_mb()))
            await asyncio.wait([running], timeout=5)
        await running
        samples.append((args.seconds, *server.rss_mb()))
    finally:
        code = server.stop()
    total = load.summary()
    rows = [("max closed-loop req/s (c=8)", peak), ("offered req/s", rate), ("seconds", args.seconds),
            ("requests", total["requests"]), ("failed", total["failed"]), ("p50 ms", total["p50_ms"]),
            ("p99 ms", total["p99_ms"]), ("max ms", total["max_ms"])]
    window = args.seconds / 3
    for i in range(3):
        part = load.summary(i * window, (i + 1) * window)
        rows.append((f"p99 ms, third {i + 1}", part["p99_ms"]))
    def rss_at(t: float) -> tuple[float, float, float]:
        return min(samples, key=lambda sample: abs(sample[0] - t))

    start, third, end = rss_at(0), rss_at(window), samples[-1]
    for i in range(4):
        rows.append((f"replica RSS MB at {i}/3 of the run", rss_at(i * window)[1]))
    rows += [("replica RSS drift MB/min, whole run", (end[1] - start[1]) / (args.seconds / 60)),
             ("replica RSS drift MB/min, last 2/3", (end[1] - third[1]) / (2 * window / 60)),
             ("process tree RSS MB start", start[2]), ("process tree RSS MB end", end[2]),
             ("server exit code", code)]
    return rows


async def kill(args, work: Path) -> list[tuple[str, object]]:
    events = work / "events.db"
    # admin: /healthz names the replica that answered
    server = Server(args.bundle, work, replicas=2, events=events, admin=True, retry_on=args.retry_on)
    try:
        paths, peak, rate = await ready_and_calibrated(server, args)
        # Each /recommend is followed by a POST /feedback that commits to SQLite: a third of the rate.
        load = Load(server.port, paths, rate / 3, args.seconds, feedback=True)
        running = asyncio.create_task(load.run())
        await asyncio.sleep(args.seconds / 3)
        serving_before = set(await versions_seen(server.port, 20))
        before = set(server.replicas())
        victim = min(before)
        os.kill(victim, signal.SIGKILL)
        killed_at = time.perf_counter() - load.start
        replaced_at = serving_at = None
        while not running.done():
            now = set(server.replicas())
            if replaced_at is None and len(now - before) >= 1 and len(now) >= 2:
                replaced_at = time.perf_counter() - load.start
            polling = replaced_at is not None and serving_at is None
            answering = set(await versions_seen(server.port, 5)) if polling else set()
            if serving_at is None and answering - serving_before:  # the new replica answered /healthz
                serving_at = time.perf_counter() - load.start
            await asyncio.sleep(0.2)
        await running
        replicas_at_end = len(server.replicas())
        health_at_end = (await request(server.port, "GET", "/healthz"))[0]
    finally:
        code = server.stop()
    failures = [r for r in load.records if r[2] != 200]

    def by_status(counts: Counter) -> str:
        return ", ".join(f"{code or 'no answer'}: {n}" for code, n in sorted(counts.items())) or "-"

    statuses = by_status(Counter(r[2] for r in failures))
    stored = set()
    with sqlite3.connect(events) as db:
        for request_id, item in db.execute("SELECT request_id, item FROM feedback WHERE kind = 'click'"):
            stored.add((request_id, item))
    lost = [a for a in load.acked if a not in stored]
    total = load.summary()
    return [("max closed-loop req/s (c=8)", peak), ("offered rec+feedback pairs/s", rate / 3),
            ("seconds", args.seconds), ("HAProxy retry-on", args.retry_on or "conn-failure (Serve's default)"),
            ("replica SIGKILLed at s", killed_at),
            ("new replica process at s", replaced_at if replaced_at is not None else "not seen"),
            ("new replica answering at s", serving_at if serving_at is not None else "not seen"),
            ("requests", total["requests"]), ("failed requests", total["failed"]), ("failed, by status", statuses),
            ("first failure at s", failures[0][0] if failures else "-"),
            ("last failure at s", failures[-1][0] if failures else "-"),
            ("p99 ms before the kill", load.summary(until=killed_at)["p99_ms"]),
            ("p99 ms, 10 s after the kill", load.summary(killed_at, killed_at + 10)["p99_ms"]),
            ("p99 ms after that", load.summary(since=killed_at + 10)["p99_ms"]),
            ("feedback acknowledged", len(load.acked)),
            ("feedback not acknowledged (the client may retry)", by_status(load.feedback_failed)),
            ("acknowledged feedback lost", len(lost)),
            *((f"error answer {i + 1}", text) for i, text in enumerate(load.failure_bodies)),
            ("replica processes at the end", replicas_at_end), ("/healthz status at the end", health_at_end),
            ("server exit code", code)]


async def reload_call(port: int) -> tuple[int, dict, float]:
    started = time.perf_counter()
    status, body = await request(port, "POST", "/admin/reload", headers={"Authorization": f"Bearer {TOKEN}"})
    return status, json.loads(body), time.perf_counter() - started


async def wait_for_version(port: int, sha: str, replicas: int, timeout: float = 60) -> float | None:
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        seen = await versions_seen(port, 20)
        if len(seen) >= replicas and set(seen.values()) == {sha}:
            return time.perf_counter() - started
        await asyncio.sleep(0.2)
    return None


def linked_server(args, work: Path, name: str, make_other) -> tuple[Path, Path, Server]:
    """Two replicas with admin on, serving a copy of the bundle through the symlink ``current``
    (what a rollout re-points), and a second bundle ``make_other`` writes under ``name``."""
    v1 = shutil.copytree(args.bundle, work / "v1")
    other = make_other(args.bundle, work / name)
    link = work / "current"
    os.symlink(v1, link)
    return link, other, Server(link, work, replicas=2, admin=True)


async def rollout(args, work: Path) -> list[tuple[str, object]]:
    link, v2, server = linked_server(args, work, "v2", second_version)
    try:
        paths, peak, rate = await ready_and_calibrated(server, args)
        load = Load(server.port, paths, rate, args.seconds)
        running = asyncio.create_task(load.run())
        await asyncio.sleep(args.seconds / 3)
        point(link, v2)
        switch_at = time.perf_counter() - load.start
        status, answer, took = await reload_call(server.port)
        sha = answer.get("current", {}).get("manifest_sha256")
        everywhere = await wait_for_version(server.port, sha, 2) if status == 200 else None
        await running
    finally:
        code = server.stop()
    total, after = load.summary(), load.summary(since=switch_at)
    return [("max closed-loop req/s (c=8)", peak), ("offered req/s", rate), ("seconds", args.seconds),
            ("reload status", status), ("reload call s (load + verify + swap)", took),
            ("s until both replicas served v2", everywhere if everywhere is not None else "never"),
            ("requests", total["requests"]), ("failed", total["failed"]),
            ("requests after the switch", after["requests"]), ("failed after the switch", after["failed"]),
            ("p99 ms before the switch", load.summary(until=switch_at)["p99_ms"]),
            ("p99 ms after the switch", after["p99_ms"]), ("server exit code", code)]


async def corrupt(args, work: Path) -> list[tuple[str, object]]:
    link, bad, server = linked_server(args, work, "bad", corrupt_copy)
    try:
        paths, peak, rate = await ready_and_calibrated(server, args)
        v1_sha = (await versions_seen(server.port, 5)).popitem()[1]
        load = Load(server.port, paths, rate, args.seconds)
        running = asyncio.create_task(load.run())
        # At start: a second server on the corrupt bundle must refuse before starting Ray.
        started = time.perf_counter()
        second = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "steerrec.cli", "serve", "--bundle", str(bad), "--port", "0"],
            cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
            env={**os.environ, "RAY_AUTH_MODE": "disabled"})
        start_refusal_s = time.perf_counter() - started
        start_message = (second.stderr.strip().splitlines() or [""])[-1]
        # At reload: the link now names the corrupt bundle.
        point(link, bad)
        status, answer, took = await reload_call(server.port)
        await running
        seen = await versions_seen(server.port)
        point(link, work / "v1")  # as an operator would: a restarted replica must find a good bundle
    finally:
        code = server.stop()
    total = load.summary()
    return [("max closed-loop req/s (c=8)", peak), ("offered req/s", rate), ("seconds", args.seconds),
            ("start: exit code", second.returncode), ("start: seconds to refuse", start_refusal_s),
            ("start: names item_factors.npy", "item_factors.npy" in start_message),
            ("start: message", start_message[:160]),
            ("reload: status", status), ("reload: error", answer.get("error")),
            ("reload: names item_factors.npy", "item_factors.npy" in answer.get("problem", "")),
            ("reload: problem", answer.get("problem", "")[:240]),
            ("reload: seconds to refuse", took),
            ("replicas still on v1 / seen", f"{sum(v == v1_sha for v in seen.values())} / {len(seen)}"),
            ("requests", total["requests"]), ("failed", total["failed"]), ("p99 ms", total["p99_ms"]),
            ("server exit code", code)]


SCENARIOS = {"soak": soak, "kill": kill, "rollout": rollout, "corrupt": corrupt}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("scenario", choices=sorted(SCENARIOS))
    p.add_argument("--bundle", type=Path, default=ROOT / "bundles" / "demo", help="a bundle with an SAE")
    p.add_argument("--seconds", type=float, help="duration of the load (default: soak 180, others 30)")
    p.add_argument("--fraction", type=float, default=0.5, help="offered load as a fraction of the measured maximum")
    p.add_argument("--retry-on", help="kill: HAProxy retry-on conditions (RAY_SERVE_HAPROXY_RETRY_ON), e.g. "
                                      "'conn-failure empty-response'; default Serve's, conn-failure")
    p.add_argument("--json", action="store_true", help="print the figures as one JSON object after the table")
    args = p.parse_args(argv)
    args.seconds = args.seconds or (180.0 if args.scenario == "soak" else 30.0)
    args.bundle = args.bundle.resolve()
    work = Path(tempfile.mkdtemp(prefix=f"steerrec-{args.scenario}-"))
    try:
        rows = asyncio.run(SCENARIOS[args.scenario](args, work))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"## {args.scenario}\n\n{table(rows)}")
    if args.json:
        print(json.dumps({k: v for k, v in rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
