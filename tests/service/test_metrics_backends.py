"""RayMetrics sums counter increments and histogram buckets and hands them to Ray from a thread (no
Ray needed here: Ray's Counter is replaced by a recorder); PrometheusMetrics remembers its labelled
series."""

import time

import pytest
import ray.util.metrics
import steerrec.service.metrics as metrics_module
from prometheus_client.parser import text_string_to_metric_families
from steerrec.service.metrics import PrometheusMetrics, RayMetrics


class Recorder:
    def __init__(self, name, description="", tag_keys=(), boundaries=None):
        self.name, self.calls = name, []

    def inc(self, value=1.0, tags=None):
        self.calls.append((value, tags))


@pytest.fixture
def recorded(monkeypatch):
    monkeypatch.setattr(ray.util.metrics, "Counter", Recorder)


def test_counter_increments_are_summed_per_label_set(recorded):
    metrics = RayMetrics(flush_seconds=3600)  # flushed by hand below
    for neuron in ("horror", "horror", "comedy", "horror"):
        metrics.steering("steer", neuron)
    metrics.request("/recommend", "GET", 200, 0.0004)
    uses = metrics._metrics["steerrec_steering_uses_total"]
    assert uses.calls == [] and metrics._metrics["steerrec_http_request_duration_seconds_count"].calls == []
    metrics.flush()
    assert sorted(uses.calls, key=lambda c: c[0]) == [(1, {"kind": "steer", "neuron": "comedy"}),
                                                       (3, {"kind": "steer", "neuron": "horror"})]
    assert metrics._metrics["steerrec_http_requests_total"].calls == [
        (1, {"route": "/recommend", "method": "GET", "status": "200"})]
    metrics.flush()
    assert len(uses.calls) == 2  # counts are handed over once


def ray_histogram(metrics: RayMetrics, name: str) -> dict[tuple, float]:
    """What the counters of one histogram received, summed per series, as the samples
    prometheus_client would name them."""
    totals = {}
    for suffix in ("bucket", "sum", "count"):
        for value, tags in metrics._metrics[f"{name}_{suffix}"].calls:
            key = (f"{name}_{suffix}", tuple(sorted((tags or {}).items())))
            totals[key] = totals.get(key, 0) + value
    return totals


def test_ray_histograms_are_the_counters_of_a_prometheus_histogram(recorded):
    ray_metrics, reference = RayMetrics(flush_seconds=3600), PrometheusMetrics()
    # bucket bounds themselves (le is <=), both ends, and two flushes that must add up
    batches = [[0.0001, 0.0002, 0.0003, 0.001, 0.004], [0.0003, 3.0, 0.0004, 2.5]]
    for batch in batches:
        for seconds in batch:
            for m in (ray_metrics, reference):
                m.request("/recommend", "GET", 200, seconds)
                m.stages(seconds / 2, seconds / 4)
        ray_metrics.flush()
    for name in ("steerrec_http_request_duration_seconds", "steerrec_encode_duration_seconds",
                 "steerrec_retrieval_duration_seconds"):
        expected = {(sample, labels): value for sample in (f"{name}_bucket", f"{name}_sum", f"{name}_count")
                    for labels, value in samples(reference, sample).items() if value}
        got = ray_histogram(ray_metrics, name)
        assert got.keys() == expected.keys()
        for key, value in expected.items():
            assert got[key] == pytest.approx(value, rel=1e-12), key
    lowest = samples(reference, "steerrec_http_request_duration_seconds_bucket")
    assert lowest[(("le", "0.0002"), ("route", "/recommend"))] == 2.0  # 0.0001 and the bound 0.0002


def test_the_thread_flushes_on_its_own(recorded):
    metrics = RayMetrics(flush_seconds=0.01)
    metrics.error("unknown_user")
    errors = metrics._metrics["steerrec_errors_total"]
    deadline = time.monotonic() + 5
    while not errors.calls and time.monotonic() < deadline:
        time.sleep(0.01)
    assert errors.calls == [(1, {"kind": "unknown_user"})]


def samples(metrics: PrometheusMetrics, name: str) -> dict[tuple, float]:
    return {tuple(sorted(s.labels.items())): s.value for family in text_string_to_metric_families(
        metrics.exposition().decode()) for s in family.samples if s.name == name}


def test_prometheus_series_are_remembered_and_counted_past_the_cache_bound(monkeypatch):
    monkeypatch.setattr(metrics_module, "CHILDREN", 2)
    metrics = PrometheusMetrics()
    for neuron in ("horror", "comedy", "horror", "war", "war", "war"):  # "war" is past the bound
        metrics.steering("steer", neuron)
    for seconds in (0.0001, 0.003):
        metrics.request("/recommend", "GET", 200, seconds)
    assert samples(metrics, "steerrec_steering_uses_total") == {
        (("kind", "steer"), ("neuron", "comedy")): 1.0, (("kind", "steer"), ("neuron", "horror")): 2.0,
        (("kind", "steer"), ("neuron", "war")): 3.0}
    assert len(metrics._children) == 2
    assert samples(metrics, "steerrec_http_request_duration_seconds_count") == {(("route", "/recommend"),): 2.0}
    assert samples(metrics, "steerrec_http_request_duration_seconds_sum")[(("route", "/recommend"),)] == \
        pytest.approx(0.0031)
