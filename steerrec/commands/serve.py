"""``steerrec serve``: serve a bundle over HTTP with Ray Serve until stopped (Ctrl-C or SIGTERM)."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import threading


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="serve steered recommendations over HTTP (Ray Serve)",
                       description="Load a bundle into Ray Serve replicas and answer GET /recommend?user=..&steer=.. "
                                   "until stopped. API: docs/api.md; OpenAPI at /docs and /openapi.json.")
    # Defaults from the environment so a container's CMD can be a bare `steerrec serve` (Dockerfile).
    env = os.environ
    p.add_argument("--bundle", default=env.get("STEERREC_BUNDLE"), required="STEERREC_BUNDLE" not in env,
                   help="bundle directory (with an SAE: steerrec sae); default $STEERREC_BUNDLE")
    p.add_argument("--host", default=env.get("STEERREC_HOST", "127.0.0.1"),
                   help="interface to listen on (default $STEERREC_HOST, else 127.0.0.1)")
    p.add_argument("--port", type=int, default=int(env.get("STEERREC_PORT", 8000)),
                   help="default $STEERREC_PORT, else 8000")
    p.add_argument("--replicas", type=int, default=1, help="replicas of the deployment (default 1)")
    p.add_argument("--experiments", default=env.get("STEERREC_EXPERIMENTS") or None,
                   help="A/B experiments file (JSON or TOML, docs/experiments.md); default $STEERREC_EXPERIMENTS")
    p.add_argument("--events", default=env.get("STEERREC_EVENTS") or None,
                   help="SQLite file for exposure and feedback events (default $STEERREC_EVENTS, else "
                        "steerrec-events.db in the working directory when --experiments is set)")
    p.add_argument("--ingress", choices=["haproxy", "proxy"], default="haproxy",
                   help="haproxy (default: HAProxy in front, replicas serve HTTP directly) or proxy "
                        "(Ray Serve's Python proxy, ~10x slower on small machines)")
    p.add_argument("--max-ongoing-requests", type=int, default=64, help="per replica (Serve's default, 5, "
                                                                          "collapses under concurrency)")
    p.add_argument("--access-log", action="store_true",
                   help="log every request (and INFO messages) in Serve's replica logs; off by default, replicas "
                        "log warnings and errors only: the Prometheus metrics count requests by route and status")
    p.add_argument("--haproxy-threads", type=int, help="HAProxy threads (default: a quarter of the cores, at least 1)")
    p.add_argument("--num-cpus", type=int, help="CPUs Ray may use (default: all)")
    p.add_argument("--metrics-port", type=int, default=int(env.get("STEERREC_METRICS_PORT", 0)),
                   help="Ray's metrics export port; Prometheus scrapes http://HOST:PORT/metrics (default: a free port)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="service setting (service/config.py), e.g. --set max_k=50 --set popularity_fallback=true")
    p.add_argument("--state-dir", help="directory for HAProxy's generated config and sockets (default: a temp dir)")
    p.set_defaults(handler=run)


def check_inputs(args: argparse.Namespace) -> dict:
    """Fails in the driver, with one clear line, before any Ray process starts."""
    from steerrec.bundle import Bundle
    from steerrec.service.admin import admin_token
    from steerrec.service.config import ServiceConfig

    from .common import parse_assignments

    bundle = Bundle.open(args.bundle)  # a corrupt file is refused here, named, before any Ray process starts
    if not bundle.manifest.model.dot_product:
        raise ValueError(f"{args.bundle}: model kind {bundle.manifest.model.kind!r} is not a dot-product model; "
                         "the service (FAISS retrieval, SAE steering) needs an MF bundle")
    if not bundle.has_sae:
        raise ValueError(f"{args.bundle}: no SAE in the bundle; run `steerrec sae --bundle {args.bundle}` first")
    settings = parse_assignments(args.set)
    if "admin_token" in settings:  # argv is visible to every local user, and the args reach Serve's config
        raise ValueError("give the admin token as STEERREC_ADMIN_TOKEN or --set admin_token_file=PATH, "
                         "not on the command line")
    admin_token(ServiceConfig.from_env().with_overrides(settings))  # a short token or a missing file fails here
    if args.experiments:
        from steerrec.service.experiments import ExperimentSet

        ExperimentSet.load(args.experiments)
    if args.replicas < 1:
        raise ValueError("--replicas must be >= 1")
    if args.haproxy_threads is not None and args.haproxy_threads < 1:
        raise ValueError("--haproxy-threads must be >= 1")
    return settings


def example_requests(base: str, bundle) -> str:
    """Copy-paste requests for the served bundle: its first user, first item and, when the neurons
    are labelled, the most confident neuron of the first Matryoshka level (else neuron 1)."""
    from steerrec.bundle import NEURONS

    user, item = bundle.user_ids()[0], bundle.item_ids()[0]
    steer, other = "1", "2"
    if bundle.has(NEURONS):
        ranked = sorted((r for r in bundle.neurons() if r.status == "ok"), key=lambda r: (r.prefix, -round(r.confidence, 2), len(r.slug)))
        if len(ranked) >= 2:
            steer, other = ranked[0].slug, ranked[1].slug
    return "\n".join([
        f"  curl '{base}/recommend?user={user}&k=10'",
        f"  curl '{base}/recommend?user={user}&k=10&steer={steer}:+3.0'",
        f"  curl '{base}/recommend?user={user}&k=10&steer={steer}:+2&filter={other}'",
        f"  curl '{base}/neurons?q={steer}'",
        f"  curl '{base}/explain?user={user}&item={item}'",
        f"  open {base}/explorer/ (neuron explorer) and {base}/docs (OpenAPI)",
    ])


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from steerrec.bundle import Bundle
    from steerrec.service.ingress import ingress_environment

    settings = check_inputs(args)
    events = args.events or ("steerrec-events.db" if args.experiments else None)
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    environment = ingress_environment(args.ingress, args.state_dir, args.haproxy_threads)
    os.environ.update(environment)  # read when Ray Serve is imported, here and in every Ray worker
    temporary_state = None if args.state_dir or not environment else \
        Path(environment["RAY_SERVE_HAPROXY_CONFIG_FILE_LOC"]).parent

    loopback = args.host in ("127.0.0.1", "localhost", "::1")
    if loopback:  # Ray swaps a loopback node address for the host's own and binds its servers on every
        # interface; this (despite its name) keeps it a single-node, loopback-only cluster. Read on `import ray`.
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    import ray
    from ray import serve

    from steerrec.service.deployment import build_app

    ray.init(include_dashboard=False, num_cpus=args.num_cpus, _metrics_export_port=args.metrics_port or None,
             _node_ip_address="127.0.0.1" if loopback else None, log_to_driver=False, configure_logging=False)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        serve.start(http_options={"host": args.host, "port": args.port})
        app_args = {"bundle": os.path.abspath(args.bundle), "settings": settings, "num_replicas": args.replicas,
                    "max_ongoing_requests": args.max_ongoing_requests, "access_log": args.access_log}
        if args.experiments:
            app_args["experiments"] = str(Path(args.experiments).resolve())
        if events:
            app_args["events"] = str(Path(events).resolve())
        serve.run(build_app(app_args), name="steerrec", route_prefix="/", blocking=False)
        metrics_port = ray._private.worker.global_worker.node.metrics_export_port
        base = f"http://{args.host}:{args.port}"
        bundle = Bundle.open(args.bundle, verify=False)
        print(f"steerrec serving {args.bundle} at {base} ({args.replicas} replica(s), {args.ingress} ingress)")
        print(f"Prometheus metrics: http://{args.host}:{metrics_port}/metrics (Ray's metrics export port)")
        print("try:\n" + example_requests(base, bundle))
        print(json.dumps({"url": base, "metrics_url": f"http://{args.host}:{metrics_port}/metrics"}), flush=True)
        stop.wait()
    finally:
        print("stopping ...", file=sys.stderr, flush=True)
        try:
            serve.shutdown()
        finally:
            ray.shutdown()
            if temporary_state is not None:
                shutil.rmtree(temporary_state, ignore_errors=True)
    return 0
