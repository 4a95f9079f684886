"""The FastAPI application: routes over a loaded ``SteeringEngine``.

``create_app(SteerService(engine, ...))`` builds the same app for Ray Serve (deployment.py wraps
it) and for plain uvicorn (benchmarks, tests). Hot routes are ``async def`` because their work is a short CPU burst
(~0.1 ms) that would cost more to hand to a thread pool; event-store writes, which fsync, do go to
the thread pool. Responses are orjson-encoded dicts documented by the models in schemas.py.
"""

from __future__ import annotations

import inspect
import time
from collections import OrderedDict
from typing import Any

from fastapi import FastAPI, Path, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response
from starlette.routing import Match, Route

from .admin import install_admin_routes
from .config import ServiceConfig
from .engine import SteeringEngine
from .explorer import install_explorer
from .http_errors import (
    REQUEST_ID_KEY,
    OrjsonResponse,
    RequestIdConflict,
    ServiceUnavailable,
    allowed_forms,
    error_response,
    install_error_handlers,
)
from .limits import RequestLimits
from .metrics import ServiceMetrics, create_metrics
from .query import Param, openapi_parameters, parse_query
from .request_ids import RequestIds
from .schemas import (
    ErrorBody,
    ExplainResponse,
    FeedbackIn,
    FeedbackOut,
    Health,
    NeuronDetail,
    NeuronList,
    RecommendResponse,
)
from .steering import SpecError

RECENT_REQUESTS = 100_000
"""Request ids remembered per replica to label feedback metrics with their experiment arm."""
ERRORS = {404: {"model": ErrorBody}, 422: {"model": ErrorBody}}

DESCRIPTION = """Steerable recommendations: a matrix-factorisation model whose user embeddings are
edited through sparse-autoencoder neurons. See docs/api.md and docs/steering.md.

`steer=TARGET:OPVALUE` (repeatable; OP one of `+ - = *`; an unencoded `+` arrives as a space and
still means add), `filter=TARGET[:>T]`, `promote=[ITEM_ID@]TARGET:+V`. Values are in units of
each neuron's activation scale (`GET /neurons`). `exclude=FACET:VALUE` drops items by metadata."""


class PlainRoute(Route):
    """A Starlette route that, like FastAPI's own, leaves itself in ``scope["route"]`` (the
    metrics middleware labels requests with its path template)."""

    def matches(self, scope):
        match, child_scope = super().matches(scope)
        if match != Match.NONE:
            child_scope["route"] = self
        return match, child_scope


class MetricsMiddleware:
    """Plain ASGI (no BaseHTTPMiddleware, which costs a task per request): times every request
    and labels it with the matched route template, so /neurons/{neuron} is one series."""

    def __init__(self, app, metrics: ServiceMetrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start, status = time.perf_counter(), 500

        async def send_and_watch(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_watch)
        finally:
            route = scope.get("route")
            self.metrics.request(getattr(route, "path", "unmatched"), scope["method"], status,
                                 time.perf_counter() - start)


class SteerService:
    """What the routes do, apart from HTTP: A/B assignment, the engine call, metrics, exposures.
    Ray Serve handle calls (deployment.py) reach the same methods."""

    def __init__(self, engine: SteeringEngine, experiments=None, events=None, metrics: ServiceMetrics | None = None):
        self.engine, self.experiments, self.events = engine, experiments, events
        self.config: ServiceConfig = engine.config
        self.metrics = metrics or create_metrics()
        if experiments is not None:  # a bad arm spec fails at startup, naming the file and the arm
            experiments.check_specs(lambda s, f, p: engine.parse(s, f, p))
        self.forms = allowed_forms(self.config, experiments.override_values() if experiments is not None else ["off"])
        self.arm_of_request: OrderedDict[str, tuple[str, str]] = OrderedDict()
        self.reloader = None  # reload.Reloader, set by admin.py when administration is enabled

    def assign(self, user: str, ab: str | None):
        if self.experiments is None:
            if ab not in (None, "", "off"):
                raise SpecError("ab", ab, "no A/B experiments are configured on this server", self.forms["ab"])
            return None
        try:
            return self.experiments.assign(user, ab)
        except ValueError as exc:  # experiments.OverrideError: unknown experiment or arm
            raise SpecError("ab", ab, getattr(exc, "problem", str(exc)), self.forms["ab"]) from None

    async def recommend(self, request_id: str, user: str, k: int | None = None, steer: list[str] = (),
                        filter: list[str] = (), promote: list[str] = (), exclude_seen: bool = True,
                        ab: str | None = None, exclude: list[str] = ()) -> dict[str, Any]:
        engine, metrics = self.engine, self.metrics
        steer, filter, promote = list(steer), list(filter), list(promote)
        assignment = self.assign(user, ab)
        if assignment is not None:  # the arm's steering first, then the request's own
            steer, filter, promote = (assignment.steer + steer, assignment.filter + filter,
                                      assignment.promote + promote)
        rec = engine.recommend(user, k, steer, filter, promote, exclude_seen, exclude)
        item_ids, titles = engine.item_ids, engine.titles
        ranked = [{"id": item_ids[r], "title": titles[r], "score": s, "rank": i}
                  for i, (r, s) in enumerate(zip(rec.rows.tolist(), rec.scores.tolist()), start=1)]
        metrics.stages(rec.encode_s, rec.retrieval_s)
        for kind, rows in (("steer", rec.steers), ("filter", rec.filters), ("promote", rec.promotes)):
            for row in rows:
                metrics.steering(kind, row["slug"] or str(row["neuron"]))
        experiment = arm = None
        if assignment is not None:
            experiment, arm = assignment.experiment, assignment.arm
            if self.events is not None:  # durable before the client can act on the list
                stored = await run_in_threadpool(self.events.record_exposure, request_id, user, experiment, arm,
                                                 [r["id"] for r in ranked], time.time(), assignment.forced)
                if not stored:  # a retry under the same id is fine; another request under it is not
                    owner = await run_in_threadpool(self.events.exposure_owner, request_id)
                    if owner != (user, experiment, arm):
                        raise RequestIdConflict(request_id, *owner)
            metrics.exposure(experiment, arm)
            self.arm_of_request[request_id] = (experiment, arm)
            if len(self.arm_of_request) > RECENT_REQUESTS:
                self.arm_of_request.popitem(last=False)
        return {"request_id": request_id, "user": user, "k": k or self.config.default_k, "exclude_seen": exclude_seen,
                "items": ranked, "steers": rec.steers, "filters": rec.filters, "promotes": rec.promotes,
                "excludes": rec.excludes,
                "experiment": experiment, "arm": arm, "fallback": rec.fallback}

    async def feedback(self, request_id: str, user: str, item: str, kind: str) -> dict[str, Any]:
        if self.events is None:
            raise ServiceUnavailable("feedback_disabled", "this server has no event store; start it with --events PATH")
        stored = await run_in_threadpool(self.events.record_feedback, request_id, user, item, kind, time.time())
        experiment, arm = self.arm_of_request.get(request_id, (None, None))
        if stored:
            self.metrics.feedback(experiment or "none", arm or "none", kind)
        return {"stored": stored, "duplicate": not stored, "experiment": experiment, "arm": arm}

    def health(self) -> dict[str, Any]:
        return {"status": "ok", "engine": self.engine.describe(), "runtime": self.engine.runtime.describe(),
                "experiments": [e.name for e in self.experiments.experiments] if self.experiments else [],
                "events": self.events is not None, "bundle": self.reloader.status() if self.reloader else None}


def fastapi_options(config: ServiceConfig) -> dict[str, Any]:
    """FastAPI releases with native telemetry accept ``telemetry=``; older ones do not."""
    if config.fastapi_telemetry or "telemetry" not in inspect.signature(FastAPI.__init__).parameters:
        return {}
    return {"telemetry": {"tracing": False, "metrics": False, "logs": False}}


def create_app(service: SteerService, title: str = "steerrec", echo_request_id: bool = True) -> FastAPI:
    """The HTTP face of a ``SteerService`` (build one with ``SteerService(engine, experiments,
    events, metrics)``; ``experiments`` is an ``ExperimentSet``, ``events`` an ``EventStore``).
    ``echo_request_id=False`` under Ray Serve, which puts the request id in the response header
    itself (request_ids.py)."""
    config, metrics, forms = service.config, service.metrics, service.forms  # service.engine may be swapped
    app = FastAPI(title=title, description=DESCRIPTION, version="1", **fastapi_options(config))
    app.add_middleware(RequestLimits, config=config, metrics=metrics)  # innermost
    app.add_middleware(RequestIds, metrics=metrics, echo=echo_request_id)
    app.add_middleware(MetricsMiddleware, metrics=metrics)  # outermost: times and counts everything
    install_error_handlers(app, metrics, forms)

    def start(request: Request) -> str:
        return request.scope[REQUEST_ID_KEY]  # set by RequestIds; the error handlers read it too

    def hot_route(path: str, endpoint, params: tuple[Param, ...], model, summary: str,
                  errors: dict[int, dict] = ERRORS) -> None:
        """A route documented in OpenAPI by FastAPI but served by a plain Starlette route placed
        first in the router: FastAPI's dependency machinery costs ~25 us a request, and these
        routes read their query themselves (query.py)."""
        app.add_api_route(path, endpoint, methods=["GET"], response_class=OrjsonResponse, summary=summary,
                          responses={200: {"model": model}, **errors} if model else None,
                          openapi_extra=openapi_parameters(params, forms) if params else None)
        app.router.routes.insert(0, PlainRoute(path, endpoint, methods=["GET"]))

    recommend_params = (
        Param("user", "string", required=True), Param("k", "integer", default=config.default_k, minimum=1,
                                                          maximum=config.max_k),
        Param("steer", "array"), Param("filter", "array"), Param("promote", "array"), Param("exclude", "array"),
        Param("exclude_seen", "boolean", default=True), Param("ab", "string"))
    neurons_params = (Param("q", "string"), Param("limit", "integer", default=50, minimum=1,
                                                  maximum=config.max_list_limit),
                      Param("offset", "integer", default=0, minimum=0, maximum=10**9))
    explain_params = (Param("user", "string", required=True), Param("item", "string", required=True),
                      Param("steer", "array"))

    def query(request: Request, params: tuple[Param, ...], lengths: dict[str, int] | None = None) -> dict[str, Any]:
        return parse_query(request, params, forms, config.max_param_length, lengths)

    async def recommend(request: Request) -> Response:
        request_id = start(request)
        p = query(request, recommend_params)
        body = await service.recommend(request_id, p["user"], p["k"], p["steer"], p["filter"], p["promote"],
                                       p["exclude_seen"], p["ab"], p["exclude"])
        return OrjsonResponse(body)

    hot_route("/recommend", recommend, recommend_params, RecommendResponse,
              "Top-k items for a user, optionally steered", {**ERRORS, 409: {"model": ErrorBody}})

    @app.get("/neurons", response_class=OrjsonResponse, responses={200: {"model": NeuronList}, **ERRORS},
             openapi_extra=openapi_parameters(neurons_params, forms),
             summary="Neurons with labels and activation statistics; search with q=")
    async def neurons(request: Request) -> Response:
        start(request)
        p = query(request, neurons_params, {"q": config.max_query_length})
        total, rows = service.engine.catalog.search(p["q"], p["limit"], p["offset"])
        return OrjsonResponse({"total": total, "offset": p["offset"], "limit": p["limit"], "query": p["q"],
                               "neurons": rows})

    @app.get("/neurons/{neuron}", response_class=OrjsonResponse, responses={200: {"model": NeuronDetail}, **ERRORS},
             summary="One neuron: top items and concept distribution")
    async def neuron(request: Request, neuron: str = Path(description=forms["neuron"])) -> Response:
        start(request)
        query(request, ())
        if len(neuron) > 200:
            raise SpecError("neuron", neuron, "longer than 200 characters", forms["neuron"])
        catalog = service.engine.catalog
        return OrjsonResponse(catalog.detail(catalog.resolve(neuron.strip())))

    @app.get("/explain", response_class=OrjsonResponse, responses={200: {"model": ExplainResponse}, **ERRORS},
             openapi_extra=openapi_parameters(explain_params, forms),
             summary="A user-item score split into neuron contributions")
    async def explain(request: Request) -> Response:
        request_id = start(request)
        p = query(request, explain_params)
        return OrjsonResponse({"request_id": request_id, **service.engine.explain(p["user"], p["item"], p["steer"])})

    @app.get("/healthz", response_class=OrjsonResponse, responses={200: {"model": Health}},
             summary="Liveness and what is being served")
    async def healthz(request: Request) -> Response:
        query(request, ())
        return OrjsonResponse(service.health())

    @app.post("/feedback", response_class=OrjsonResponse, responses={200: {"model": FeedbackOut}, **ERRORS,
                                                                       503: {"model": ErrorBody}},
              summary="Record a click (or other feedback) on a recommended item")
    async def feedback(request: Request, body: FeedbackIn) -> Response:
        start(request)
        query(request, ())
        return OrjsonResponse(await service.feedback(body.request_id, body.user, body.item, body.kind))

    @app.get("/metrics", include_in_schema=False)
    async def metrics_route() -> Response:
        text = metrics.exposition()
        if text is None:
            return error_response(404, "not_found", "inside Ray Serve, metrics are exported by Ray's metrics agent",
                                  allowed="http://<node>:<ray metrics export port>/metrics (docs/api.md)")
        return Response(text, media_type="text/plain; version=0.0.4")

    async def noop(request: Request) -> Response:
        return OrjsonResponse({"ok": True})

    hot_route("/noop", noop, (), None, "Does nothing: the latency floor the benchmarks compare /recommend with")

    install_admin_routes(app, service)  # POST /admin/reload when a token is configured (admin.py)
    install_explorer(app, service)  # the page at /explorer/ and its JSON routes (explorer.py)
    return app
