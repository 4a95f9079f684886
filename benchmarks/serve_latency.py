"""HTTP latency and throughput of the steering service: Ray Serve (HAProxy ingress and the default
Python proxy) against the same app on plain uvicorn, in one run, on loopback.

For every server configuration and concurrency (1, 8, 32), a bounded closed-loop load (at most
--requests requests and --seconds seconds after a warm-up) hits: a no-op endpoint, unsteered
/recommend, 1 steer, 4 steers, a filter and a promote. At concurrency 1 these six are interleaved
on one connection (each cycle one request of each, in random order), so their p50s are measured
side by side; at higher concurrency one scenario is served at a time, in 0.5 s slices taken in
turn until each has had its seconds, so that each is measured across the whole 10 s cycle of
Ray's metrics export. Prints p50, p99, throughput and the
server's CPU time per request (every process of the server: for Ray Serve, its replicas, HAProxy
and Ray's own processes; steadier than throughput on a shared machine), then the ratios the
targets are stated in, as Markdown. The client is a minimal asyncio HTTP/1.1 keep-alive
client (uvloop when installed) so it costs the shared cores as little as possible.

    python benchmarks/serve_latency.py --bundle bundles/demo [--configs uvicorn,haproxy,proxy]
        [--concurrency 1,8,32] [--requests 2000] [--seconds 5] [--replicas 1] [--rounds 1]

A config may name a replica count and Serve's access log: haproxy:2, haproxy+log, haproxy:2+log;
haproxy+port sends every request to the one replica's own HTTP port instead, bypassing HAProxy (with
the header steerrec's HAProxy adds), which splits Serve's cost between HAProxy's hop and the replica;
haproxy+tcp puts a second HAProxy in front of that port as a bare TCP relay (mode tcp: no HTTP
parsing, routing or rules; the client sends the header itself), the cheapest hop a proxy can add;
uvicorn+tcp puts the same relay in front of plain uvicorn.
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Self
from urllib.parse import quote

import numpy as np
from steerrec.service.ingress import DISCONNECT_HEADER

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ("noop", "unsteered", "1 steer", "4 steers", "filter", "promote")
NO_DISCONNECT_WATCH = f"{DISCONNECT_HEADER}: ?1\r\n"
"""The header line steerrec's HAProxy adds (service/ingress.py), for requests sent to a replica directly."""


# -- servers ---------------------------------------------------------------------------------------
def serve_plain(bundle: str, port: int) -> None:
    """The app on plain uvicorn: same handler, same metrics, no Ray."""
    import uvicorn
    from steerrec.service.app import SteerService, create_app
    from steerrec.service.engine import SteeringEngine

    app = create_app(SteerService(SteeringEngine(bundle)))
    uvicorn.run(app, host="127.0.0.1", port=port, access_log=False, log_level="warning")


def start_server(kind: str, bundle: str, port: int, replicas: int, log: Path, access_log: bool = False,
                 haproxy_threads: int | None = None, state_dir: str | None = None) -> subprocess.Popen:
    if kind == "uvicorn":
        cmd = [sys.executable, __file__, "--plain-server", "--bundle", bundle, "--port", str(port)]
    else:
        cmd = [sys.executable, "-m", "steerrec.cli", "serve", "--bundle", bundle, "--port", str(port),
               "--ingress", kind, "--replicas", str(replicas), "--num-cpus", str(os.cpu_count() or 2)]
        cmd += ["--access-log"] if access_log else []
        cmd += ["--haproxy-threads", str(haproxy_threads)] if haproxy_threads and kind == "haproxy" else []
        cmd += ["--state-dir", state_dir] if state_dir and kind == "haproxy" else []
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONUNBUFFERED": "1"}
    with open(log, "w") as out:
        return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


TCP_RELAY = """global
    nbthread {threads}
    maxconn 4096
defaults
    mode tcp
    timeout connect 5s
    timeout client 3600s
    timeout server 3600s
frontend relay
    bind 127.0.0.1:{port}
    default_backend replicas
backend replicas
    balance roundrobin
{servers}
"""
"""HAProxy as a bare TCP relay: what a proxy costs a request with none of HTTP mode's work."""


def start_tcp_relay(port: int, replica_ports: list[int], state_dir: str, log: Path) -> subprocess.Popen:
    """The same HAProxy binary and thread count as the ingress, relaying TCP to the replicas' ports."""
    from steerrec.service.ingress import default_haproxy_threads, real_haproxy_binary

    cfg = Path(state_dir) / "tcp-relay.cfg"
    servers = "\n".join(f"    server replica{i} 127.0.0.1:{p}" for i, p in enumerate(replica_ports))
    cfg.write_text(TCP_RELAY.format(threads=default_haproxy_threads(), port=port, servers=servers))
    with open(log, "w") as out:
        return subprocess.Popen([real_haproxy_binary(), "-f", str(cfg)], stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(90)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the group this script created
            proc.wait(10)


async def wait_ready(port: int, proc: subprocess.Popen, log: Path, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{log.read_text()[-2000:]}")
        try:
            status, _ = await fetch(port, "/healthz")
            if status == 200:
                return
        except (OSError, asyncio.IncompleteReadError):  # HAProxy is up before the app is
            pass
        await asyncio.sleep(0.5)
    raise RuntimeError(f"server not ready after {timeout} s:\n{log.read_text()[-2000:]}")


RELOAD_SETTLE_S = 2.0
"""A graceful HAProxy reload took ~0.6 s here; the warm-up after it absorbs the reconnects."""


def haproxy_replica_ports(state_dir: str) -> list[int]:
    """The replicas' direct-ingress ports in the HAProxy config Serve generated under ``state_dir``."""
    return [int(port) for cfg in glob.glob(f"{state_dir}/*/haproxy.cfg")
            for port in re.findall(r"server\s+SERVE_REPLICA\S*\s+127\.0\.0\.1:(\d+)", Path(cfg).read_text())]


async def wait_routed(state_dir: str, replicas: int, timeout: float = 60) -> None:
    """Wait until HAProxy routes to every replica. Serve reloads HAProxy as replicas register, the
    last time about when the app first answers; the old HAProxy process then closes its kept-alive
    connections, so a measurement started at once would pay for that reload and the reconnects."""
    deadline = time.monotonic() + timeout
    while len(haproxy_replica_ports(state_dir)) < replicas:
        if time.monotonic() > deadline:
            raise RuntimeError(f"HAProxy does not route to {replicas} replicas after {timeout} s")
        await asyncio.sleep(0.5)
    await asyncio.sleep(RELOAD_SETTLE_S)


# -- client ----------------------------------------------------------------------------------------
def request_bytes(path: str, headers: str = "") -> bytes:
    """A GET request; ``headers`` are extra header lines, each ending in CRLF."""
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}\r\n".encode()


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    lower = head.lower()
    at = lower.find(b"content-length:")
    if at >= 0:
        length = int(lower[at + 15:lower.index(b"\r\n", at)])
        return status, await reader.readexactly(length)
    body = b""  # chunked
    while True:
        size = int((await reader.readuntil(b"\r\n"))[:-2], 16)
        chunk = await reader.readexactly(size + 2)
        if size == 0:
            return status, body
        body += chunk[:-2]


async def fetch(port: int, path: str) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request_bytes(path))
        return await read_response(reader)
    finally:
        writer.close()


class KeepAlive:
    """One keep-alive client connection that times requests. HAProxy closes idle keep-alive
    connections when Serve reloads its config: a request that meets a closed connection
    reconnects and is left out of the figures (``send`` returns None), counted in ``reconnects``."""

    def __init__(self, port: int):
        self.port, self.reconnects = port, 0

    async def __aenter__(self) -> Self:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc) -> None:
        self.writer.close()

    async def send(self, request: bytes) -> tuple[int, float] | None:
        """(status, seconds) of one request, or None after a reconnect."""
        start = time.perf_counter()
        try:
            self.writer.write(request)
            status, _ = await read_response(self.reader)
        except (asyncio.IncompleteReadError, ConnectionError):
            self.writer.close()
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
            self.reconnects += 1
            return None
        return status, time.perf_counter() - start


CLK_TCK = os.sysconf("SC_CLK_TCK")


def process_stats():
    """(pid, the fields of /proc/PID/stat after the command name) for every live process: index 0
    is the state, 1 ppid, 2 pgrp, 3 session, 11 utime, 12 stime (in clock ticks)."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:  # exited meanwhile
                continue
            yield int(entry), stat[stat.rindex(")") + 2:].split()


def session_cpu_seconds(sessions: tuple[int, ...]) -> float:
    """CPU time used so far by the live processes of some sessions: each server started with
    ``start_new_session`` and, for Ray Serve, its GCS, raylet, actors, replicas and HAProxy."""
    return sum(int(f[11]) + int(f[12]) for _, f in process_stats() if int(f[3]) in sessions) / CLK_TCK


async def run_load(port: int, paths: list[str], concurrency: int, max_requests: int, max_seconds: float,
                   warmup: int, sessions: tuple[int, ...] = (), headers: str = "") -> dict:
    """Closed-loop load; with ``sessions``, also the server's CPU time per measured request."""
    requests = [request_bytes(p, headers) for p in paths]
    latencies: list[float] = []
    errors = reconnects = 0
    state = {"next": 0}

    async def worker(budget_end: float, quota: list[int], record: bool) -> None:
        nonlocal errors, reconnects
        async with KeepAlive(port) as conn:
            while quota[0] > 0 and time.perf_counter() < budget_end:
                quota[0] -= 1
                i = state["next"] = state["next"] + 1
                sent = await conn.send(requests[i % len(requests)])
                if record and sent:
                    latencies.append(sent[1])
                    errors += sent[0] != 200
        reconnects += conn.reconnects

    await asyncio.gather(*(worker(time.perf_counter() + 30, [warmup // concurrency + 1], False)
                           for _ in range(concurrency)))
    quota = [max_requests]
    cpu_before = session_cpu_seconds(sessions) if sessions else 0.0
    started = time.perf_counter()
    await asyncio.gather(*(worker(started + max_seconds, quota, True) for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    cpu = session_cpu_seconds(sessions) - cpu_before if sessions else float("nan")
    return figures(latencies, len(latencies) / elapsed, 1e6 * cpu / max(1, len(latencies)), errors, reconnects)


def figures(latencies_s: list[float], rps: float, cpu_us: float, errors: int, reconnects: int) -> dict:
    ms = np.array(latencies_s) * 1e3
    return {"n": len(ms), "p50": float(np.percentile(ms, 50)), "p99": float(np.percentile(ms, 99)), "rps": rps,
            "cpu_us": cpu_us, "errors": errors, "reconnects": reconnects}


async def run_paired(port: int, scenarios: dict[str, list[str]], max_requests: int, max_seconds: float,
                     warmup: int, seed: int = 0, headers: str = "") -> dict[str, dict]:
    """Concurrency 1 with the scenarios interleaved on one connection: each cycle sends one request
    of every scenario, in a fresh random order. Ratios of their p50s then compare requests served
    side by side, so a slow spell of the shared machine, or drift over the server's life, cannot
    favour one scenario (measured one after the other, 1 steer vs unsteered swung 1.04x to 1.24x
    between runs of the same code)."""
    names = list(scenarios)
    requests = {n: [request_bytes(p, headers) for p in paths] for n, paths in scenarios.items()}
    latencies: dict[str, list[float]] = {n: [] for n in names}
    errors = dict.fromkeys(names, 0)
    rng = np.random.default_rng(seed)
    warmup_cycles = warmup // len(names) + 1
    async with KeepAlive(port) as conn:
        for cycle in range(warmup_cycles + max_requests):
            record = cycle >= warmup_cycles
            if cycle == warmup_cycles:
                deadline = time.perf_counter() + max_seconds * len(names)
            elif record and time.perf_counter() > deadline:
                break
            for n in rng.permutation(names):
                sent = await conn.send(requests[n][cycle % len(requests[n])])
                if record and sent:
                    latencies[n].append(sent[1])
                    errors[n] += sent[0] != 200
    nan = float("nan")  # one connection carries every scenario: no per-scenario throughput or CPU
    return {n: figures(latencies[n], nan, nan, errors[n], conn.reconnects) for n in names}


SLICE_S = 0.5
"""Seconds per slice in run_sliced."""


async def run_sliced(port: int, scenarios: dict[str, list[str]], concurrency: int, max_requests: int,
                     max_seconds: float, warmup: int, sessions: tuple[int, ...] = (),
                     slice_s: float = SLICE_S, headers: str = "") -> dict[str, dict]:
    """Closed-loop load at ``concurrency`` that switches from one scenario to the next every
    ``slice_s`` seconds, round after round, until each has had ``max_seconds`` (or ``max_requests``
    requests). Ray's metrics agent exports every 10 s and takes most of a core for about a second
    when it does; a scenario measured in one unbroken window of a few seconds got that burst or
    not depending on its place in the schedule, which is the same from one server start to the
    next: the same scenario then lost 20% to 30% of its throughput in every round. Six scenarios
    in 0.5 s slices come back to each scenario every 3 s, so its slices fall at spread-out phases
    of the agent's cycle. A request counts for the scenario it was sent under; the server's CPU
    time during a slice is charged to that slice's scenario."""
    names = list(scenarios)
    requests = {n: [request_bytes(p, headers) for p in paths] for n, paths in scenarios.items()}
    latencies: dict[str, list[float]] = {n: [] for n in names}
    errors = dict.fromkeys(names, 0)
    elapsed = dict.fromkeys(names, 0.0)
    cpu = dict.fromkeys(names, 0.0)
    state = {"scenario": names[0], "record": False, "stop": False, "next": 0, "reconnects": 0}

    async def worker() -> None:
        async with KeepAlive(port) as conn:
            while not state["stop"]:
                name, record = state["scenario"], state["record"]
                i = state["next"] = state["next"] + 1
                sent = await conn.send(requests[name][i % len(requests[name])])
                if record and sent:
                    latencies[name].append(sent[1])
                    errors[name] += sent[0] != 200
        state["reconnects"] += conn.reconnects

    workers = [asyncio.ensure_future(worker()) for _ in range(concurrency)]
    try:
        for name in names:  # warm-up, unrecorded: about `warmup` requests of each scenario
            state["scenario"] = name
            target = state["next"] + warmup
            while state["next"] < target:
                await asyncio.sleep(0.01)
        state["record"] = True
        while True:
            todo = [n for n in names if elapsed[n] < max_seconds and len(latencies[n]) < max_requests]
            if not todo:
                break
            for name in todo:
                state["scenario"] = name
                cpu_before = session_cpu_seconds(sessions) if sessions else 0.0
                started = time.perf_counter()
                await asyncio.sleep(slice_s)
                elapsed[name] += time.perf_counter() - started
                if sessions:
                    cpu[name] += session_cpu_seconds(sessions) - cpu_before
    finally:
        state["stop"] = True
        await asyncio.gather(*workers, return_exceptions=True)
    return {n: figures(latencies[n], len(latencies[n]) / elapsed[n],
                       1e6 * cpu[n] / max(1, len(latencies[n])) if sessions else float("nan"), errors[n],
                       state["reconnects"]) for n in names}


# -- scenarios -------------------------------------------------------------------------------------
def scenario_paths(bundle: str, neurons: list[dict]) -> dict[str, list[str]]:
    """Request paths per scenario, cycling over 200 users; neurons chosen among live ones, the
    filtered/promoted one active on about a third of the items (a realistic, not tiny, set)."""
    from steerrec.bundle import Bundle

    users = Bundle.open(bundle, verify=False).user_ids()[:200]
    live = [n for n in neurons if not n["dead"]]
    by_reach = sorted(live, key=lambda n: abs(n["item_active_fraction"] - 0.3))
    group, steer = by_reach[0]["id"], [n["id"] for n in by_reach[1:5]]

    def paths(extra: str) -> list[str]:
        return [f"/recommend?user={quote(u)}&k=10{extra}" for u in users]

    return {
        "noop": ["/noop"],
        "unsteered": paths(""),
        "1 steer": paths(f"&steer={steer[0]}:%2B2"),
        "4 steers": paths("".join(f"&steer={j}:%2B{1 + i}" for i, j in enumerate(steer))),
        "filter": paths(f"&filter={group}"),
        "promote": paths(f"&promote={group}:%2B1"),
    }


async def bench_config(name: str, args, log_dir: Path) -> dict:
    """``name`` is uvicorn, haproxy or proxy, optionally with a replica count (haproxy:2) and
    Serve's per-request access log (haproxy+log, haproxy:2+log), or haproxy+port: the load goes to
    the replica's own port, HAProxy bypassed, or haproxy+tcp / uvicorn+tcp: through a bare TCP relay
    to that port or to uvicorn's."""
    from steerrec.service.ingress import free_port

    spec, _, option = name.partition("+")
    kind, _, replicas = spec.partition(":")
    if option not in ("", "log", "port", "tcp"):
        raise ValueError(f"unknown server option {option!r} in {name!r}; the options are +log, +port and +tcp")
    one_replica_port = option == "port" or (option == "tcp" and kind != "uvicorn")
    if one_replica_port and (kind != "haproxy" or int(replicas or args.replicas) != 1):
        needs = "uvicorn, or the HAProxy ingress with one replica" if option == "tcp" else \
            "the HAProxy ingress with one replica"
        raise ValueError(f"{name!r}: +{option} needs {needs} (one port to send the load to)")
    port = free_port()
    log = log_dir / f"{kind}-{replicas or args.replicas}{option}.log"
    replicas = int(replicas or args.replicas)
    state_dir = f"/tmp/srl-{os.getpid()}-{port}"  # short: HAProxy caps its socket paths (ingress.py)
    proc = start_server(kind, args.bundle, port, replicas, log, access_log=option == "log",
                        haproxy_threads=args.haproxy_threads, state_dir=state_dir)
    results, sessions, relay = {}, (proc.pid,), None
    try:
        await wait_ready(port, proc, log)
        if kind == "haproxy":
            await wait_routed(state_dir, replicas)
        headers = ""
        if option == "port":  # as HAProxy forwards it: with the header that turns off the disconnect watch
            port, headers = haproxy_replica_ports(state_dir)[0], NO_DISCONNECT_WATCH
        elif option == "tcp":  # the relay cannot add the header: the client sends it
            Path(state_dir).mkdir(exist_ok=True)  # uvicorn's run has none of its own
            relay_port, relay_log = free_port(), log_dir / f"{kind}-tcp-relay.log"
            relay = start_tcp_relay(relay_port, haproxy_replica_ports(state_dir) if kind == "haproxy" else [port],
                                    state_dir, relay_log)
            port, headers, sessions = relay_port, NO_DISCONNECT_WATCH, (proc.pid, relay.pid)
            await wait_ready(port, relay, relay_log, timeout=30)
        status, body = await fetch(port, "/neurons?limit=1000")
        assert status == 200, body[:300]
        scenarios = scenario_paths(args.bundle, json.loads(body)["neurons"])
        for scenario, paths in scenarios.items():
            status, body = await fetch(port, paths[0])
            assert status == 200, (name, scenario, body[:300])
        for c in args.concurrency:
            if c == 1:  # side by side (run_paired); throughput and CPU need one scenario at a time
                cells = await run_paired(port, scenarios, args.requests, args.seconds, args.warmup, headers=headers)
            else:  # one scenario at a time, in short slices taken in turn (run_sliced)
                cells = await run_sliced(port, scenarios, c, args.requests, args.seconds, args.warmup,
                                         sessions=sessions, headers=headers)
            for scenario, r in cells.items():
                results[(scenario, c)] = r
                print(f"  {name:9s} {scenario:10s} c={c:<3d} p50 {r['p50']:.3f} ms  p99 {r['p99']:.3f} ms  "
                      f"{r['rps']:.0f} req/s  server CPU {r['cpu_us']:.0f} us/req  n={r['n']} errors={r['errors']} "
                      f"reconnects={r['reconnects']}",
                      file=sys.stderr, flush=True)
    finally:
        if relay is not None:
            stop_server(relay)
        stop_server(proc)
        shutil.rmtree(state_dir, ignore_errors=True)
    return results


def median_cells(runs: list[dict]) -> dict:
    """Per (scenario, concurrency), the median of each figure over the rounds."""
    return {cell: {key: float(np.median([run[cell][key] for run in runs])) for key in ("p50", "p99", "rps", "cpu_us")}
            for cell in runs[0]}


def ratios(rounds: dict[str, list[dict]], kind: str, name: str, low: int, high: int) -> list:
    """The target ratios of one request on one server, each taken within a round (against that
    round's unsteered, no-op and uvicorn figures) and then the median over the rounds."""
    def median(fn):
        value = float(np.median([fn(i) for i in range(len(rounds[kind]))]))
        return "-" if np.isnan(value) else round(value, 3)  # "-": throughput and CPU need concurrency > 1

    res = rounds[kind]
    row = [median(lambda i: res[i][(name, low)]["p50"] / res[i][("unsteered", low)]["p50"]),
           median(lambda i: res[i][(name, low)]["p50"] / res[i][("noop", low)]["p50"])]
    if "uvicorn" not in rounds or kind == "uvicorn":
        return row + ["-", "-", "-"]
    base = rounds["uvicorn"]
    return row + [median(lambda i: res[i][(name, low)]["p50"] / base[i][(name, low)]["p50"]),
                  median(lambda i: res[i][(name, high)]["rps"] / base[i][(name, high)]["rps"]),
                  median(lambda i: res[i][(name, high)]["cpu_us"] / base[i][(name, high)]["cpu_us"])]


def whole(x: float) -> int | str:
    return "-" if np.isnan(x) else round(x)  # "-": not measured (concurrency 1 is interleaved)


def tables(rounds: dict[str, list[dict]], concurrency: list[int]) -> str:
    from steerrec.table import markdown_table

    rows = []
    for kind, runs in rounds.items():
        res = median_cells(runs)
        for name in SCENARIOS:
            row = [kind, name]
            for c in concurrency:
                r = res[(name, c)]
                row += [round(r["p50"], 3), round(r["p99"], 3), whole(r["rps"]), whole(r["cpu_us"])]
            rows.append(row)
    headers = ["server", "request"] + [f"{m} c={c}" for c in concurrency
                                       for m in ("p50 ms", "p99 ms", "req/s", "CPU us/req")]
    out = [markdown_table(headers, rows, digits=3)]

    low, high = min(concurrency), max(concurrency)
    ratio_rows = [[kind, name, *ratios(rounds, kind, name, low, high)] for kind in rounds for name in SCENARIOS[1:]]
    out.append(markdown_table(
        ["server", "request", f"p50 / unsteered c={low}", f"p50 / no-op c={low}", f"p50 / uvicorn c={low}",
         f"req/s / uvicorn c={high}", f"CPU per request / uvicorn c={high}"], ratio_rows, digits=3))
    return "\n\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", default="bundles/demo")
    parser.add_argument("--configs", default="uvicorn,haproxy,proxy",
                        help="uvicorn, haproxy, proxy; haproxy:2 for two replicas, haproxy+log with Serve's "
                             "access log, haproxy+port on the replica's own port (HAProxy bypassed), "
                             "haproxy+tcp / uvicorn+tcp through a bare TCP relay to that port / to uvicorn")
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument("--requests", type=int, default=2000, help="per measurement, after warm-up")
    parser.add_argument("--seconds", type=float, default=5.0, help="per measurement, after warm-up")
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--replicas", type=int, default=1)
    parser.add_argument("--haproxy-threads", type=int, help="passed to steerrec serve (default: its own)")
    parser.add_argument("--rounds", type=int, default=1, help="repeat every config this many times, "
                                                             "alternating, and report medians")
    parser.add_argument("--logs", default=None, help="directory for server logs (default: a temp dir)")
    parser.add_argument("--plain-server", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.bundle = str(Path(args.bundle).resolve())
    if args.plain_server:
        serve_plain(args.bundle, args.port)
        return
    args.concurrency = [int(c) for c in args.concurrency.split(",")]
    try:
        import uvloop
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    import tempfile

    log_dir = Path(args.logs or tempfile.mkdtemp(prefix="serve-latency-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    rounds: dict[str, list[dict]] = {}
    for r in range(args.rounds):  # configs alternate, so a slow spell of the machine hits them all
        for kind in args.configs.split(","):
            print(f"[{kind}] starting (round {r + 1} of {args.rounds})", file=sys.stderr, flush=True)
            rounds.setdefault(kind, []).append(asyncio.run(bench_config(kind, args, log_dir)))
    print(f"\n{os.cpu_count()} CPUs, {args.replicas} replica(s), bundle {args.bundle}, "
          f"<= {args.requests} requests / {args.seconds:g} s per cell after {args.warmup} warm-up requests"
          + (f"; medians of {args.rounds} rounds (ratios taken within each round)" if args.rounds > 1 else "")
          + "\n")
    print(tables(rounds, args.concurrency))


if __name__ == "__main__":
    main()
