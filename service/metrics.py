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
        (under Ray, each histogram is three counters, NAME_bucket, NAME_sum and NAME_count:
        RayMetrics)
    steerrec_steering_uses_total{kind,neuron}                kind: steer, filter, promote
    steerrec_errors_total{kind}                              invalid_parameter, unknown_user, ...
    steerrec_ab_exposures_total{experiment,arm}
    steerrec_ab_feedback_total{experiment,arm,kind}
"""

from __future__ import annotations

import logging
import threading
import time
from bisect import bisect_left
from itertools import accumulate
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

    Nothing reaches Ray on the request path. Counter increments are summed in a dict, and each
    histogram is kept here as bucket counts and a sum; a daemon thread hands both to Ray every
    ``flush_seconds``, as Serve does with its own metrics. A replica that dies loses at most that
    long of counts.

    A histogram goes to Ray as the counters a Prometheus histogram is made of: ``NAME_bucket``
    (cumulative, labelled ``le``), ``NAME_sum`` and ``NAME_count``, which Ray exports with its
    ``_total`` suffix. Ray's own Histogram would cost its agent one replayed observation per
    request (~8 us of CPU, ``benchmarks/ray_metrics_cost.py``), where a counter increment arrives
    summed; and the agent rebuilds a Histogram's sum from bucket midpoints, where this one is exact."""

    def __init__(self, flush_seconds: float = 0.1):
        from prometheus_client.utils import floatToGoString
        from ray.util.metrics import Counter

        self._metrics = {}
        self._buckets: dict[str, tuple[float, ...]] = {}
        self._le: dict[str, list[str]] = {}
        for name, (kind, doc, labels, buckets) in DEFINITIONS.items():
            if kind == "counter":
                self._metrics[name] = Counter(name, description=doc, tag_keys=labels)
                continue
            self._buckets[name] = buckets
            self._le[name] = [floatToGoString(b) for b in buckets] + ["+Inf"]
            self._metrics[f"{name}_bucket"] = Counter(f"{name}_bucket", description=f"{doc} (cumulative bucket counts)",
                                                      tag_keys=labels + ("le",))
            self._metrics[f"{name}_sum"] = Counter(f"{name}_sum", description=f"{doc} (sum, seconds)", tag_keys=labels)
            self._metrics[f"{name}_count"] = Counter(f"{name}_count", description=f"{doc} (count)", tag_keys=labels)
        self._counts: dict[tuple[str, tuple[tuple[str, str], ...]], int] = {}
        self._histograms: dict[tuple[str, tuple[tuple[str, str], ...]], list[float]] = {}
        self._lock = threading.Lock()
        self._flush_seconds = flush_seconds
        threading.Thread(target=self._flush_forever, name="steerrec-metrics", daemon=True).start()

    def _inc(self, name, labels):
        key = (name, tuple(labels.items()))
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + 1

    def _observe(self, name, value, labels):
        """Counts ``value`` in the first bucket whose upper bound is >= it (Prometheus' ``le``);
        the last slot before the sum is +Inf."""
        key = (name, tuple(labels.items()))
        slot = bisect_left(self._buckets[name], value)
        with self._lock:
            counts = self._histograms.get(key)
            if counts is None:
                counts = self._histograms[key] = [0] * (len(self._buckets[name]) + 1) + [0.0]
            counts[slot] += 1
            counts[-1] += value

    def flush(self) -> None:
        """Hands the counts summed since the last flush to Ray."""
        with self._lock:
            counts, self._counts = self._counts, {}
            histograms, self._histograms = self._histograms, {}
        for (name, labels), count in counts.items():
            self._metrics[name].inc(count, tags=dict(labels) or None)
        for (name, labels), slots in histograms.items():
            *bucket_counts, total_s = slots
            tags = dict(labels)
            for le, cumulative in zip(self._le[name], accumulate(bucket_counts)):
                if cumulative:  # Ray refuses a zero increment: a bucket's series starts when first reached
                    self._metrics[f"{name}_bucket"].inc(cumulative, tags={**tags, "le": le})
            if total_s > 0:
                self._metrics[f"{name}_sum"].inc(total_s, tags=tags or None)
            self._metrics[f"{name}_count"].inc(sum(bucket_counts), tags=tags or None)

    def _flush_forever(self) -> None:
        while True:
            time.sleep(self._flush_seconds)
            try:
                self.flush()
            except Exception:  # a metrics hiccup must not end the thread and silence every counter
                log.exception("could not hand metrics to Ray")


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
