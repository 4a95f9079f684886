"""Ray Serve's fixed cost per request, with nothing of steerrec in the way: one trivial app (a route
that answers "ok") on plain uvicorn, as a Serve deployment behind the HAProxy ingress, and on the
replica's own HTTP port (direct ingress, HAProxy bypassed), with and without the header that
steerrec's HAProxy adds to every request to stop the replica watching for client disconnects
(service/ingress.py).

This is the floor every Serve deployment pays on this machine whatever its handler does, so it
bounds the latency targets that compare Serve with uvicorn (docs/api.md, "What bounds them").

A second table asks what a handler's memory traffic does to that floor: the same route reads
``kb`` kilobytes of an array before answering (``--read-kb``), the reads interleaved at concurrency
1 on each server, so HAProxy's hop (through HAProxy minus the replica's port) is measured against
how much of the caches the handler has just displaced.

    python benchmarks/serve_floor.py [--requests 3000] [--seconds 4] [--repeats 3] [--read-kb 0,512,2048]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import statistics
import subprocess
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve_latency import (
    NO_DISCONNECT_WATCH,
    ROOT,
    haproxy_replica_ports,
    run_load,
    run_paired,
    stop_server,
    wait_ready,
    wait_routed,
)
from steerrec.service.ingress import free_port

READ_LIMIT_KB = 16384
"""The trivial route's array (16 MB, several times a core's L2 here): the most ``kb`` may read."""


def trivial_app():
    import numpy as np
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    memory = np.ones(READ_LIMIT_KB * 256, dtype=np.float32)  # 256 float32 per kilobyte

    async def ok(request):
        kb = int(request.query_params.get("kb", "0"))
        if kb:
            memory[:kb * 256].sum()
        return PlainTextResponse("ok")

    return Starlette(routes=[Route("/noop", ok), Route("/healthz", ok)])


def serve_plain(port: int) -> None:
    import uvicorn

    uvicorn.run(trivial_app(), host="127.0.0.1", port=port, access_log=False, log_level="warning")


def serve_ray(port: int, state_dir: str) -> None:
    from steerrec.service.ingress import haproxy_environment

    os.environ.update(haproxy_environment(state_dir))
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # keep Ray's servers on loopback
    import ray
    from ray import serve
    from steerrec.service.deployment import (
        QUIET_LOGGING,
        _bind_replica_grpc_to_loopback,
    )

    @serve.deployment(max_ongoing_requests=64, ray_actor_options={"num_cpus": 0},
                      logging_config=QUIET_LOGGING)  # as steerrec's deployment
    @serve.ingress(trivial_app())
    class Trivial:
        def __init__(self):
            _bind_replica_grpc_to_loopback()

    ray.init(include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False, configure_logging=False)
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    serve.run(Trivial.bind(), route_prefix="/", blocking=False)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())  # shut Ray down (and its agents) on stop_server's SIGTERM
    try:
        stop.wait()
    finally:
        serve.shutdown()
        ray.shutdown()


def start(kind: str, port: int, state_dir: str, log: Path) -> subprocess.Popen:
    cmd = [sys.executable, __file__, "--server", kind, "--port", str(port), "--state-dir", state_dir]
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONUNBUFFERED": "1"}
    with open(log, "w") as out:
        return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


async def measure(port: int, args, headers: str = "") -> tuple[float, float]:
    """(median p50 at concurrency 1 over --repeats runs in ms, req/s at concurrency 32)."""
    p50s = [(await run_load(port, ["/noop"], 1, args.requests, args.seconds, 300, headers=headers))["p50"]
            for _ in range(args.repeats)]
    rps = (await run_load(port, ["/noop"], 32, 10 * args.requests, args.seconds, 1000, headers=headers))["rps"]
    return statistics.median(p50s), rps


async def measure_reads(port: int, args, headers: str = "") -> dict[int, float]:
    """Per ``--read-kb`` size, the median over --repeats runs of its p50 at concurrency 1 (ms), the
    sizes interleaved on one connection in a fresh random order every cycle."""
    scenarios = {kb: [f"/noop?kb={kb}"] for kb in args.read_kb}
    runs = [await run_paired(port, scenarios, args.requests, args.seconds, 300, seed=i, headers=headers)
            for i in range(args.repeats)]
    return {kb: statistics.median(run[kb]["p50"] for run in runs) for kb in args.read_kb}


async def bench(kind: str, args, log_dir: Path) -> tuple[dict[str, tuple[float, float]], dict[str, dict[int, float]]]:
    port = free_port()
    state_dir = f"/tmp/srf-{os.getpid()}"  # short: HAProxy caps its socket paths (ingress.py)
    log = log_dir / f"{kind}.log"
    proc = start(kind, port, state_dir, log)
    out, reads = {}, {}
    try:
        await wait_ready(port, proc, log)
        if kind == "uvicorn":
            out["uvicorn"] = await measure(port, args)
            reads["uvicorn"] = await measure_reads(port, args)
        else:
            await wait_routed(state_dir, 1)
            out["Serve, through HAProxy"] = await measure(port, args)
            direct = haproxy_replica_ports(state_dir)[0]
            out["Serve, replica port"] = await measure(direct, args, NO_DISCONNECT_WATCH)
            out["Serve, replica port, disconnect watch"] = await measure(direct, args)
            reads["through HAProxy"] = await measure_reads(port, args)
            reads["replica port"] = await measure_reads(direct, args, NO_DISCONNECT_WATCH)
    finally:
        stop_server(proc)
        shutil.rmtree(state_dir, ignore_errors=True)
    for name, (p50, rps) in out.items():
        print(f"  {name:24s} p50 {p50:.3f} ms  {rps:.0f} req/s", file=sys.stderr, flush=True)
    return out, reads


def reads_table(reads: dict[str, dict[int, float]], sizes: list[int]) -> str:
    from steerrec.table import markdown_table

    rows = []
    for kb in sizes:
        plain, haproxy, replica = reads["uvicorn"][kb], reads["through HAProxy"][kb], reads["replica port"][kb]
        rows.append([kb, round(plain, 3), round(haproxy, 3), round(replica, 3), round(1000 * (haproxy - replica)),
                     round(haproxy / plain, 2), round(replica / plain, 2)])
    return markdown_table(["handler reads KB", "uvicorn p50 ms", "through HAProxy p50 ms", "replica port p50 ms",
                           "HAProxy hop us", "through HAProxy / uvicorn", "replica port / uvicorn"], rows, digits=3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=3000, help="per concurrency-1 run, after warm-up")
    parser.add_argument("--seconds", type=float, default=4.0, help="per run, after warm-up")
    parser.add_argument("--repeats", type=int, default=3, help="concurrency-1 runs; the median p50 is reported")
    parser.add_argument("--read-kb", default="0,512,2048",
                        help=f"kilobytes the handler reads before answering, second table (at most {READ_LIMIT_KB})")
    parser.add_argument("--server", choices=["uvicorn", "serve"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--state-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.read_kb = [int(kb) for kb in args.read_kb.split(",")]
    if not all(0 <= kb <= READ_LIMIT_KB for kb in args.read_kb):
        parser.error(f"--read-kb sizes must be between 0 and {READ_LIMIT_KB}")
    if args.server == "uvicorn":
        return serve_plain(args.port)
    if args.server:
        return serve_ray(args.port, args.state_dir)
    try:
        import uvloop
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    import tempfile

    from steerrec.table import markdown_table

    log_dir = Path(tempfile.mkdtemp(prefix="serve-floor-"))
    results: dict[str, tuple[float, float]] = {}
    reads: dict[str, dict[int, float]] = {}
    for kind in ("uvicorn", "serve"):
        print(f"[{kind}] starting", file=sys.stderr, flush=True)
        out, kind_reads = asyncio.run(bench(kind, args, log_dir))
        results.update(out)
        reads.update(kind_reads)
    base_p50, base_rps = results["uvicorn"]
    rows = [[name, round(p50, 3), round(p50 / base_p50, 2), round(rps), round(rps / base_rps, 2)]
            for name, (p50, rps) in results.items()]
    print(f"\n{os.cpu_count()} CPUs; trivial app; p50 = median of {args.repeats} runs at concurrency 1\n")
    print(markdown_table(["server", "p50 ms c=1", "p50 / uvicorn", "req/s c=32", "req/s / uvicorn"], rows, digits=3))
    print(f"\nThe handler reading memory before it answers; p50 at concurrency 1, sizes interleaved, "
          f"median of {args.repeats} runs\n")
    print(reads_table(reads, args.read_kb))


if __name__ == "__main__":
    main()
