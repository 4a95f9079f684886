"""Request limits as an operator sets them (service/config.py, service/limits.py): k, the number of
steers, magnitudes, the search query's length, the request target (414) and the body (413). Each
refusal is a 4xx with the limit named, counted in steerrec_errors_total, and changes nothing."""

import json

import pytest
from fastapi.testclient import TestClient
from steerrec.service.app import SteerService, create_app
from steerrec.service.config import ServiceConfig
from steerrec.service.engine import SteeringEngine
from steerrec.service.metrics import PrometheusMetrics

from ._steer_helpers import require_demo

TIGHT = {"max_k": 20, "max_steers": 2, "max_magnitude": 5.0, "max_query_length": 10, "max_target_length": 1024,
         "max_body_bytes": 512}


@pytest.fixture(scope="module")
def client():
    engine = SteeringEngine(require_demo(), ServiceConfig(**TIGHT))
    with TestClient(create_app(SteerService(engine, metrics=PrometheusMetrics()))) as c:
        yield c


@pytest.fixture(scope="module")
def user():
    return SteeringEngine(require_demo()).user_ids[0]


def _refused(r, status: int, error: str, parameter: str | None, problem: str) -> dict:
    body = r.json()
    assert (r.status_code, body["error"], body.get("parameter")) == (status, error, parameter), body
    assert problem in body["problem"], body["problem"]
    return body


def test_k_is_bounded_by_max_k(client, user):
    assert len(client.get("/recommend", params={"user": user, "k": 20}).json()["items"]) == 20
    body = _refused(client.get("/recommend", params={"user": user, "k": 21}), 422, "invalid_parameter", "k",
                    "out of range 1..20")
    assert body["value"] == "21"


def test_number_of_steers_is_bounded(client, user):
    ok = client.get("/recommend", params={"user": user, "steer": ["0:+1", "1:+1"]})
    assert ok.status_code == 200 and len(ok.json()["steers"]) == 2
    _refused(client.get("/recommend", params={"user": user, "steer": ["0:+1", "1:+1", "2:+1"]}),
             422, "invalid_parameter", "steer", "3 given; at most 2")


@pytest.mark.parametrize("spec, problem", [("3:+5.5", "at most 5"), ("3:-6", "at most 5"),
                                           ("3:*6", "at most 5"), ("3:=1e300", "at most 5"),
                                           ("3:+nan", "not of the form TARGET:OPVALUE"),
                                           ("3:+inf", "not of the form TARGET:OPVALUE")])
def test_steer_magnitudes_are_bounded(client, user, spec, problem):
    _refused(client.get("/recommend", params={"user": user, "steer": spec}), 422, "invalid_parameter", "steer",
             problem)


def test_promote_magnitude_is_bounded(client, user):
    _refused(client.get("/recommend", params={"user": user, "promote": "3:+6"}), 422, "invalid_parameter",
             "promote", "at most 5")


def test_search_query_length_is_bounded(client):
    assert client.get("/neurons", params={"q": "h" * 10}).status_code == 200
    _refused(client.get("/neurons", params={"q": "h" * 11}), 422, "invalid_parameter", "q", "longer than 10")


def test_an_oversized_request_target_is_refused_before_parsing(client, user):
    query = "&".join(["steer=3:%2B1"] * 80)  # 80 steers, 1 kB: refused by length, not counted
    r = client.get(f"/recommend?user={user}&{query}")
    body = _refused(r, 414, "uri_too_long", None, "over the limit of 1024")
    assert "at most 1024 bytes" in body["allowed"]
    assert 'steerrec_errors_total{kind="uri_too_long"} 1.0' in client.get("/metrics").text


def test_an_oversized_body_is_refused_declared_or_chunked(client, user):
    big = json.dumps({"request_id": "r" * 600, "user": user, "item": "i1", "kind": "click"}).encode()
    declared = client.post("/feedback", content=big, headers={"content-type": "application/json"})
    _refused(declared, 413, "body_too_large", "body", f"the request body is {len(big)}+ bytes, over the limit of 512")

    def chunks():  # no Content-Length: counted as it arrives
        for i in range(0, len(big), 100):
            yield big[i:i + 100]

    chunked = client.post("/feedback", content=chunks(), headers={"content-type": "application/json"})
    _refused(chunked, 413, "body_too_large", "body", "over the limit of 512")
    small = client.post("/feedback", json={"request_id": "r1", "user": user, "item": "i1", "kind": "click"})
    assert small.status_code == 503 and small.json()["error"] == "feedback_disabled"  # past the limit: the route


def test_limits_come_from_the_environment_and_are_validated():
    config = ServiceConfig.from_env({"STEERREC_MAX_K": "7", "STEERREC_DEFAULT_K": "5", "STEERREC_MAX_MAGNITUDE": "2.5",
                                     "STEERREC_MAX_BODY_BYTES": "100"})
    assert (config.max_k, config.default_k, config.max_magnitude, config.max_body_bytes) == (7, 5, 2.5, 100)
    with pytest.raises(ValueError, match="max_target_length must be >= 0"):
        ServiceConfig(max_target_length=-1)
    with pytest.raises(ValueError, match="max_magnitude and max_threshold must be > 0"):
        ServiceConfig(max_magnitude=0)
    with pytest.raises(ValueError, match=r"default_k must be in 1..max_k \(5\)"):
        ServiceConfig(max_k=5)
