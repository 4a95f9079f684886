"""The Ray Serve deployment: a thin shell that loads the engine in each replica and serves the
FastAPI app of app.py as its ingress.

Three ways in:
- ``steerrec serve --bundle DIR`` (steerrec/commands/serve.py) calls ``build_app`` and ``serve.run``;
- ``serve run deploy/serve.yaml`` / ``serve deploy`` import ``steerrec.service.deployment:build_app``
  with the args of the config file;
- tests call ``serve.run(build_app({...}), _local_testing_mode=True)``.

No ``@serve.batch``: benchmarks/serve_latency.py measured it (docs/api.md) and a request's engine
work (~0.1 ms) is too small for batching to pay for the wait it adds.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

from ray import serve

from .app import SteerService, create_app
from .config import ServiceConfig
from .engine import SteeringEngine
from .reload import attach_to_replica

DEFAULT_MAX_ONGOING_REQUESTS = 64
"""Serve's default of 5 queues requests in the proxy at concurrency 32 and collapses throughput."""

QUIET_LOGGING = {"enable_access_log": False, "log_level": "WARNING"}
"""Serve logs one access line per request from each replica, and even with the access log off it
builds the record before dropping it at INFO level; at WARNING it does not, which cut the Serve
node's CPU per request by 13% to 21% at concurrency 32 (docs/api.md). The service's own metrics count requests by route and status, so
replicas log warnings and errors only, unless asked for the access log (``access_log: true`` in
the app args, ``steerrec serve --access-log``), which brings back INFO."""
ACCESS_LOGGING = {"enable_access_log": True, "log_level": "INFO"}


def _bind_replica_grpc_to_loopback() -> bool:
    """On a loopback-only node (``steerrec serve --host 127.0.0.1``), make the replica's internal
    gRPC server bind 127.0.0.1 too: Ray Serve 2.60 binds it on ``[::]`` whatever the node address
    (ray/serve/_private/replica.py), which would expose it on every interface. Nothing off the
    node can reach a loopback node's replicas anyway, so this changes no reachable route. Returns
    whether the patch applied (tests/service/test_ops_live.py checks every listening socket)."""
    import ray
    from ray.serve._private import replica

    original = getattr(replica, "add_port_to_grpc_server", None)
    if original is None or ray.util.get_node_ip_address() != "127.0.0.1":
        return False
    if getattr(original, "loopback_patch", False):
        return True

    def add_port(server, address: str):
        return original(server, address.replace("[::]:", "127.0.0.1:", 1))

    add_port.loopback_patch = True
    replica.add_port_to_grpc_server = add_port
    return True


@serve.deployment(name="steerrec", max_ongoing_requests=DEFAULT_MAX_ONGOING_REQUESTS,
                  ray_actor_options={"num_cpus": 0}, logging_config=QUIET_LOGGING)
@serve.ingress()
class SteerRecDeployment:
    def __init__(self, bundle: str, settings: dict[str, Any] | None = None, experiments: str | None = None,
                 events: str | None = None, metrics: str = "auto"):
        from .metrics import _inside_ray_worker, create_metrics

        if _inside_ray_worker():  # Serve starts the replica's gRPC server once this constructor returns
            _bind_replica_grpc_to_loopback()
        config = ServiceConfig.from_env().with_overrides(settings)
        # Loaded from what the path resolves to now, so its later reads stay in one version if the path is
        # re-pointed; held by the service only, so a reload can free it.
        engine = SteeringEngine(os.path.realpath(bundle), config)
        self.experiments = self.events = None
        if experiments:
            from .experiments import ExperimentSet

            self.experiments = ExperimentSet.load(experiments)
        if events:
            from .events import EventStore

            self.events = EventStore(events)
        self.service = SteerService(engine, self.experiments, self.events, create_metrics(metrics))
        attach_to_replica(self.service, bundle)  # follows other replicas' /admin/reload (reload.py)

    def __serve_build_asgi_app__(self):
        return create_app(self.service, echo_request_id=False)  # Serve sends x-request-id itself

    # Handle calls (another deployment, or tests in local testing mode) skip HTTP but run the same code.
    async def recommend(self, user: str, k: int | None = None, steer: list[str] = (), filter: list[str] = (),
                        promote: list[str] = (), exclude_seen: bool = True, ab: str | None = None,
                        exclude: list[str] = ()) -> dict[str, Any]:
        return await self.service.recommend(uuid.uuid4().hex, user, k, steer, filter, promote, exclude_seen, ab,
                                            exclude)

    def explain(self, user: str, item: str, steer: list[str] = ()) -> dict[str, Any]:
        return self.service.engine.explain(user, item, steer)

    def healthz(self) -> dict[str, Any]:
        return self.service.health()


def build_app(args: dict[str, Any]) -> serve.Application:
    """Application builder for ``serve run``/``serve deploy``: ``args`` holds ``bundle`` and,
    optionally, ``settings`` (ServiceConfig fields), ``experiments``, ``events``, ``metrics``,
    plus deployment options ``num_replicas``, ``max_ongoing_requests``, ``num_cpus``, ``num_gpus``,
    ``access_log`` (Serve's per-request log line and INFO logs; off by default).
    Options set in a config file's ``deployments:`` section override these."""
    args = dict(args)
    if "bundle" not in args:
        raise ValueError("build_app needs a 'bundle' argument (the bundle directory)")
    options: dict[str, Any] = {}
    if "num_replicas" in args:
        options["num_replicas"] = args.pop("num_replicas")
    if "max_ongoing_requests" in args:
        options["max_ongoing_requests"] = int(args.pop("max_ongoing_requests"))
    if args.pop("access_log", False):
        options["logging_config"] = ACCESS_LOGGING
    actor = {k: float(args.pop(k)) for k in ("num_cpus", "num_gpus") if k in args}
    if actor:
        options["ray_actor_options"] = actor
    deployment = SteerRecDeployment.options(**options) if options else SteerRecDeployment
    for key in ("bundle", "experiments", "events"):  # replicas may not share the builder's working directory
        if args.get(key):
            args[key] = os.path.abspath(args[key])  # absolute, but a symlink stays one: reloads follow it
    known = {"bundle", "settings", "experiments", "events", "metrics"}
    unknown = sorted(set(args) - known)
    if unknown:
        options = {"num_replicas", "max_ongoing_requests", "num_cpus", "num_gpus", "access_log"}
        raise ValueError(f"unknown application args {unknown}; known: {sorted(known | options)}")
    return deployment.bind(**args)
