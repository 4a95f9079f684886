"""Prometheus metrics of the steering service.

Inside Ray Serve the metrics go through ``ray.util.metrics``: Ray's metrics agent on every node
exports them (prefixed ``ray_``) at ``http://<node>:<metrics-export-port>/metrics``, the port given
by ``ray start --metrics-export-port`` (``steerrec serve --metrics-port``; Ray picks a free one
otherwise and writes it to the session's ``metrics_export_port``). Outside Ray (plain uvicorn,
tests) they go to a private ``prometheus_client`` registry the app serves at ``GET /metrics``.

Names follow Prometheus conventions: base units (seconds), ``_total`` on counters.

    steerrec_http_requests_total{route,method,status}
    steerrec_http_request_duration_seconds{route}            histogram
    steerrec_encode_duration_seconds                         histogram (code lookup + steering)
    steerrec_retrieval_duration_seconds                      histogram (filters, promotes, search)
        (these two time one /recommend in ServiceConfig.stage_metrics_every: docs/api.md, Metrics)
    steerrec_steering_uses_total{kind,neuron}                kind: steer, filter, promote
    steerrec_errors_total{kind}                              invalid_parameter, unknown_user, ...
    steerrec_ab_exposures_total{experiment,arm}
    steerrec_ab_feedback_total{experiment,arm,kind}
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Literal

log = logging.getLogger(__name__)

CHILDREN = 10_000
"""Labelled series PrometheusMetrics remembers."""
LATENCY_BUCKETS = (0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
STAGE_BUCKETS = (0.00002, 0.00005, 0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.25)

# name -> (kind, description, labels, buckets)
DEFINITIONS = {
    "steerrec_http_requests_total": ("counter", "HTTP requests by route template, method and status code",
                                     ("route", "method", "status"), None),
    "steerrec_http_request_duration_seconds": ("histogram", "Time from request start to response end",
                                               ("route",), LATENCY_BUCKETS),
    "steerrec_encode_duration_seconds": ("histogram", "User code lookup and user-side steering per request",
                                         (), STAGE_BUCKETS),
    "steerrec_retrieval_duration_seconds": ("histogram", "Item-side interventions and index search per request",
                                            (), STAGE_BUCKETS),
    "steerrec_steering_uses_total": ("counter", "Interventions by kind and neuron (slug, or index without labels)",
                                     ("kind", "neuron"), None),
    "steerrec_errors_total": ("counter", "Error responses by kind", ("kind",), None),
    "steerrec_ab_exposures_total": ("counter", "Recommendation lists served per experiment arm",
                                    ("experiment", "arm"), None),
    "steerrec_ab_feedback_total": ("counter", "Feedback events per experiment arm and kind",
                                   ("experiment", "arm", "kind"), None),
}

Backend = Literal["auto", "ray", "prometheus", "none"]


class ServiceMetrics:
    """Records service events; subclasses decide where they go."""

    def request(self, route: str, method: str, status: int, seconds: float) -> None:
        self._inc("steerrec_http_requests_total", {"route": route, "method": method, "status": str(status)})
        self._observe("steerrec_http_request_duration_seconds", seconds, {"route": route})

    def stages(self, encode_s: float, retrieval_s: float) -> None:
        self._observe("steerrec_encode_duration_seconds", encode_s, {})
        self._observe("steerrec_retrieval_duration_seconds", retrieval_s, {})

    def steering(self, kind: str, neuron: str) -> None:
        self._inc("steerrec_steering_uses_total", {"kind": kind, "neuron": neuron})

    def error(self, kind: str) -> None:
        self._inc("steerrec_errors_total", {"kind": kind})

    def exposure(self, experiment: str, arm: str) -> None:
        self._inc("steerrec_ab_exposures_total", {"experiment": experiment, "arm": arm})

    def feedback(self, experiment: str, arm: str, kind: str) -> None:
        self._inc("steerrec_ab_feedback_total", {"experiment": experiment, "arm": arm, "kind": kind})

    def exposition(self) -> bytes | None:
        """Text exposition for ``GET /metrics``; None when another process exports (Ray)."""
        return None

    def _inc(self, name: str, labels: dict[str, str]) -> None:
        pass

    def _observe(self, name: str, value: float, labels: dict[str, str]) -> None:
        pass


class NullMetrics(ServiceMetrics):
    """Records nothing (benchmarks of the bare handler)."""


class PrometheusMetrics(ServiceMetrics):
    """A private prometheus_client registry, so several apps in one process never collide."""

    def __init__(self):
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.registry = CollectorRegistry()
        self._metrics = {}
        for name, (kind, doc, labels, buckets) in DEFINITIONS.items():
            if kind == "counter":  # prometheus_client appends _total itself
                self._metrics[name] = Counter(name.removesuffix("_total"), doc, labels, registry=self.registry)
            else:
                self._metrics[name] = Histogram(name, doc, labels, buckets=buckets, registry=self.registry)

        self._children: dict[tuple[str, tuple[tuple[str, str], ...]], Any] = {}

    def _child(self, name: str, labels: dict[str, str]):
        """The labelled series, remembered: ``labels()`` costs ~2 us (a lock and a tuple of
        strings) and every request makes several. Label values are bounded (routes, statuses,
        neurons, arms), and past CHILDREN the cache simply stops growing."""
        key = (name, tuple(labels.items()))
        child = self._children.get(key)
        if child is None:
            metric = self._metrics[name]
            child = metric.labels(**labels) if labels else metric
            if len(self._children) < CHILDREN:
                self._children[key] = child
        return child

    def _inc(self, name, labels):
        self._child(name, labels).inc()

    def _observe(self, name, value, labels):
        self._child(name, labels).observe(value)

    def exposition(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)


class RayMetrics(ServiceMetrics):
    """``ray.util.metrics``, aggregated and exported by Ray's per-node metrics agent.

    A Ray metric call costs ~3.5 us, and a steered request makes one per steer: counter increments
    are summed in a dict and handed to Ray every ``flush_seconds`` by a daemon thread, as Serve does
    with its own metrics (Ray's agent exports every few seconds anyway). A replica that dies loses
    at most that long of counts; histograms are recorded directly."""

    def __init__(self, flush_seconds: float = 0.1):
        from ray.util.metrics import Counter, Histogram

        self._metrics = {}
        for name, (kind, doc, labels, buckets) in DEFINITIONS.items():
            if kind == "counter":
                self._metrics[name] = Counter(name, description=doc, tag_keys=labels)
            else:
                self._metrics[name] = Histogram(name, description=doc, boundaries=list(buckets), tag_keys=labels)
        self._counts: dict[tuple[str, tuple[tuple[str, str], ...]], int] = {}
        self._lock = threading.Lock()
        self._flush_seconds = flush_seconds
        threading.Thread(target=self._flush_forever, name="steerrec-metrics", daemon=True).start()

    def _inc(self, name, labels):
        key = (name, tuple(labels.items()))
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + 1

    def flush(self) -> None:
        """Hands the counts summed since the last flush to Ray."""
        with self._lock:
            counts, self._counts = self._counts, {}
        for (name, labels), count in counts.items():
            self._metrics[name].inc(count, tags=dict(labels) or None)

    def _flush_forever(self) -> None:
        while True:
            time.sleep(self._flush_seconds)
            try:
                self.flush()
            except Exception:  # a metrics hiccup must not end the thread and silence every counter
                log.exception("could not hand metrics to Ray")

    def _observe(self, name, value, labels):
        self._metrics[name].observe(value, tags=labels or None)


def _inside_ray_worker() -> bool:
    try:
        import ray
    except ImportError:
        return False
    return ray.is_initialized() and ray.get_runtime_context().worker.mode == ray.WORKER_MODE


def create_metrics(backend: Backend = "auto") -> ServiceMetrics:
    """``auto``: Ray's metrics inside a Ray worker (a Serve replica), prometheus_client elsewhere."""
    if backend == "auto":
        backend = "ray" if _inside_ray_worker() else "prometheus"
    if backend == "ray":
        return RayMetrics()
    if backend == "prometheus":
        return PrometheusMetrics()
    if backend == "none":
        return NullMetrics()
    raise ValueError(f"unknown metrics backend {backend!r}; use auto, ray, prometheus or none")
