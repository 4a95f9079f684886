"""What the service's own code costs a request, without HTTP: the app called through its ASGI
interface (middleware, query parsing, engine, response), and the engine's ``recommend`` alone.

The same request kinds as ``serve_latency.py`` (the filtered and promoted neuron is the one active on
the share of items closest to 30%), interleaved in a fresh random order every cycle, over 200
users; medians in microseconds, and each kind's excess over the no-op route (ASGI) or over the
unsteered request (engine). The app is timed twice: back to back, and with the process sleeping
``--idle-us`` before each call, as a server at concurrency 1 idles between requests while the
client reads the answer and sends the next (its caches and the CPU it wakes on are then colder).

    python benchmarks/handler_cost.py [--bundle bundles/demo] [--cycles 4000] [--idle-us 300]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time

from steerrec.service.app import SteerService, create_app
from steerrec.service.engine import SteeringEngine
from steerrec.table import markdown_table


def request_kinds(engine: SteeringEngine) -> dict[str, dict]:
    """Engine keyword arguments per kind, as serve_latency.py's scenarios build them."""
    reach = sorted(range(engine.n_latents), key=lambda j: abs(
        len(engine.catalog.items_by_neuron.row(j)[0]) / len(engine.item_ids) - 0.3))
    group, steer = reach[0], reach[1:5]
    return {"unsteered": {}, "1 steer": {"steer": [f"{steer[0]}:+2"]},
            "4 steers": {"steer": [f"{j}:+{1 + i}" for i, j in enumerate(steer)]},
            "filter": {"filter": [str(group)]}, "promote": {"promote": [f"{group}:+1"]}}


def query_string(user: str, kwargs: dict) -> str:
    parts = [f"user={user}", "k=10"]
    for name, values in kwargs.items():
        parts += [f"{name}={v.replace('+', '%2B')}" for v in values]
    return "&".join(parts)


async def asgi_call(app, path: str, query: str) -> int:
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
             "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": query.encode(),
             "root_path": "", "headers": [(b"host", b"127.0.0.1")], "client": ("127.0.0.1", 1),
             "server": ("127.0.0.1", 80)}
    status = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        if message["type"] == "http.response.start":
            status.append(message["status"])

    await app(scope, receive, send)
    return status[0]


async def time_asgi(app, users: list[str], kinds: dict[str, dict], cycles: int,
                    idle_s: float = 0.0) -> dict[str, float]:
    calls = {"noop": lambda u: ("/noop", "")} | {
        name: (lambda u, kw=kw: ("/recommend", query_string(u, kw))) for name, kw in kinds.items()}
    times: dict[str, list[float]] = {name: [] for name in calls}
    for cycle in range(cycles + 200):  # the first 200 cycles warm up
        order = list(calls.items())
        random.shuffle(order)
        for name, call in order:
            path, query = call(users[cycle % len(users)])
            if idle_s:  # blocking on purpose: the event loop's timers would round 300 us up to a millisecond
                time.sleep(idle_s)  # noqa: ASYNC251
            started = time.perf_counter()
            status = await asgi_call(app, path, query)
            elapsed = time.perf_counter() - started
            assert status == 200, (name, status)
            if cycle >= 200:
                times[name].append(elapsed)
    return {name: statistics.median(t) * 1e6 for name, t in times.items()}


def time_engine(engine: SteeringEngine, users: list[str], kinds: dict[str, dict], cycles: int) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name in kinds}
    for cycle in range(cycles + 200):
        order = list(kinds.items())
        random.shuffle(order)
        for name, kwargs in order:
            started = time.perf_counter()
            engine.recommend(users[cycle % len(users)], 10, **kwargs)
            if cycle >= 200:
                times[name].append(time.perf_counter() - started)
    return {name: statistics.median(t) * 1e6 for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", default="bundles/demo")
    parser.add_argument("--cycles", type=int, default=4000)
    parser.add_argument("--idle-us", type=float, default=300.0,
                        help="sleep before each call in the second timing of the app (default 300 us, about the "
                             "time a concurrency-1 client takes to turn a response into the next request here)")
    args = parser.parse_args()
    random.seed(0)
    engine = SteeringEngine(args.bundle)
    app = create_app(SteerService(engine))
    users = list(engine.user_ids[:200])
    kinds = request_kinds(engine)
    handler = asyncio.run(time_asgi(app, users, kinds, args.cycles))
    idle = asyncio.run(time_asgi(app, users, kinds, args.cycles, args.idle_us / 1e6))
    alone = time_engine(engine, users, kinds, args.cycles)
    rows = [["noop", f"{handler['noop']:.1f}", "-", f"{idle['noop']:.1f}", "-", "-", "-"]]
    rows += [[name, f"{handler[name]:.1f}", f"{handler[name] - handler['noop']:.1f}", f"{idle[name]:.1f}",
              f"{idle[name] - idle['noop']:.1f}", f"{alone[name]:.1f}", f"{alone[name] - alone['unsteered']:.1f}"]
             for name in kinds]
    print(f"{args.bundle}: {len(engine.item_ids)} items; medians of {args.cycles} interleaved cycles; "
          f"idle: {args.idle_us:.0f} us asleep before each call\n")
    print(markdown_table(["request", "ASGI us", "ASGI over no-op us", "ASGI us, idle", "ASGI over no-op us, idle",
                          "engine us", "engine over unsteered us"], rows))


if __name__ == "__main__":
    main()
