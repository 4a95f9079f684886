"""The FastAPI app in-process (no Ray): responses against their schemas, 4xx bodies that name the
parameter and the allowed form, A/B assignment with durable exposures and feedback, metrics."""

import math

import pytest
from fastapi.testclient import TestClient
from steerrec.service.app import SteerService, create_app, fastapi_options
from steerrec.service.config import ServiceConfig
from steerrec.service.engine import SteeringEngine
from steerrec.service.events import EventStore
from steerrec.service.experiments import ExperimentSet
from steerrec.service.metrics import PrometheusMetrics
from steerrec.service.schemas import (
    ErrorBody,
    ExplainResponse,
    Health,
    NeuronDetail,
    NeuronList,
    RecommendResponse,
)

from ._steer_helpers import genre_slug, labelled_engine, plain_engine, require_demo


@pytest.fixture(scope="module")
def engine():
    return labelled_engine()


@pytest.fixture(scope="module")
def experiments(engine):
    horror, comedy = genre_slug(engine, "Horror"), genre_slug(engine, "Comedy")
    return ExperimentSet.from_dict({"experiments": [{
        "name": "genre", "salt": "genre-salt", "traffic": 1.0,
        "arms": [{"name": "control", "weight": 1},
                 {"name": "horror", "weight": 1, "steer": [f"{horror}:+3.0"], "filter": [comedy]}]}]})


@pytest.fixture(scope="module")
def events(tmp_path_factory):
    store = EventStore(tmp_path_factory.mktemp("events") / "events.db")
    yield store
    store.close()


@pytest.fixture(scope="module")
def client(engine, experiments, events):
    with TestClient(create_app(SteerService(engine, experiments, events, PrometheusMetrics()))) as c:
        yield c


@pytest.fixture(scope="module")
def plain(engine):
    with TestClient(create_app(SteerService(plain_engine(), metrics=PrometheusMetrics()))) as c:
        yield c


def test_recommend_matches_its_schema_and_the_engine(plain):
    engine = plain_engine()
    r = plain.get("/recommend", params={"user": engine.user_ids[7], "k": 5})
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    body = RecommendResponse.model_validate(r.json())
    assert body.request_id == r.headers["x-request-id"]
    rec = engine.recommend(engine.user_ids[7], 5)
    assert [i.id for i in body.items] == [engine.item_ids[row] for row in rec.rows]
    assert [i.rank for i in body.items] == [1, 2, 3, 4, 5]
    assert [i.score for i in body.items] == pytest.approx(rec.scores.tolist(), abs=0)
    assert body.experiment is None and body.arm is None and body.fallback is None


def test_exclude_is_echoed_and_leaves_none_of_the_value(client, engine):
    genres = engine.bundle.item_metadata()["facets"]["genre"]
    r = client.get("/recommend", params={"user": engine.user_ids[2], "k": 50, "ab": "off",
                                         "exclude": ["genre:comedy", "genre:Horror"]})
    body = RecommendResponse.model_validate(r.json())
    assert [(e.facet, e.value, e.items_removed) for e in body.excludes] == [
        ("genre", g, sum(g in gs for gs in genres)) for g in ("Comedy", "Horror")]
    row = {item: i for i, item in enumerate(engine.item_ids)}
    assert not {"Comedy", "Horror"} & {g for i in body.items for g in genres[row[i.id]]}


def test_unencoded_plus_means_add(client, engine):
    user, horror = engine.user_ids[1], genre_slug(engine, "Horror")
    raw = client.get(f"/recommend?user={user}&ab=off&steer={horror}:+3.0")  # '+' reaches the server as ' '
    encoded = client.get("/recommend", params={"user": user, "ab": "off", "steer": f"{horror}:+3.0"})
    assert raw.status_code == encoded.status_code == 200
    assert [i["id"] for i in raw.json()["items"]] == [i["id"] for i in encoded.json()["items"]]
    steer = raw.json()["steers"][0]
    assert (steer["slug"], steer["op"], steer["value"]) == (horror, "+", 3.0)
    assert steer["neuron"] == engine.catalog.slug_to_id[horror]


@pytest.mark.parametrize("query, status, parameter, problem", [
    ("user=u1&k=0", 422, "k", "out of range 1..100"),
    ("user=u1&k=101", 422, "k", "out of range 1..100"),
    ("user=u1&k=ten", 422, "k", "not an integer"),
    ("user=u1&k=%C2%B2", 422, "k", "not an integer"),
    ("k=3", 422, "user", "required parameter is missing"),
    ("user=u1&exclude_seen=maybe", 422, "exclude_seen", "not a boolean"),
    ("user=u1&steer=horror:3", 422, "steer", "missing operator"),
    ("user=u1&steer=horror:+1e6", 422, "steer", "at most 50"),
    ("user=u1&steer=hor:+1", 422, "steer", "did you mean horror"),
    ("user=u1&steer=9999:+1", 422, "steer", "unknown neuron"),
    ("user=u1&filter=horror:<1", 422, "filter", "TARGET or TARGET:>T"),
    ("user=u1&promote=nope@horror:+1", 422, "promote", "unknown item id"),
    ("user=u1&promote=horror:*2", 422, "promote", "[ITEM_ID@]TARGET:+V"),
    ("user=u1&exclude=genre:Horor", 422, "exclude", "did you mean Horror"),
    ("user=u1&exclude=horror", 422, "exclude", "FACET:VALUE"),
    ("user=u1&stear=horror:+1", 422, "stear", "unknown parameter"),
    ("user=u1&k=3&k=4", 422, "k", "more than once"),
    ("user=u1&ab=genre:nope", 422, "ab", "has no arm"),
    ("user=u1&ab=bogus", 422, "ab", "EXPERIMENT:ARM"),
    ("user=" + "x" * 300, 422, "user", "longer than 256"),
    ("user=nobody", 404, "user", "not in this bundle"),
])
def test_bad_recommend_requests_get_a_json_reason(client, query, status, parameter, problem):
    r = client.get("/recommend?" + query + ("&ab=off" if "ab=" not in query and status != 404 else ""))
    assert r.status_code == status, r.text
    body = ErrorBody.model_validate(r.json())
    assert body.parameter == parameter
    assert problem in body.problem
    assert body.allowed


def test_too_many_steers(client, engine):
    r = client.get("/recommend", params={"user": engine.user_ids[0], "steer": ["0:+1"] * 9, "ab": "off"})
    assert r.status_code == 422 and "9 given; at most 8" in r.json()["problem"]


def test_neurons_listing_search_and_detail(client, engine):
    horror = genre_slug(engine, "Horror")
    listing = NeuronList.model_validate(client.get("/neurons", params={"limit": 5}).json())
    assert listing.total == engine.n_latents and [n.id for n in listing.neurons] == [0, 1, 2, 3, 4]
    found = NeuronList.model_validate(client.get("/neurons", params={"q": "HORROR", "limit": 1000}).json())
    assert found.total > 0 and all("horror" in (n.slug or "") or "horror" in n.label.lower() for n in found.neurons)
    assert found.neurons[0].slug == horror  # the exact slug match first
    by_slug = client.get(f"/neurons/{horror}").json()
    by_id = client.get(f"/neurons/{engine.catalog.slug_to_id[horror]}").json()
    assert by_slug == by_id
    detail = NeuronDetail.model_validate(by_slug)
    assert detail.top_items and detail.concepts and detail.activation_scale > 0
    missing = client.get("/neurons/not-a-neuron")
    assert missing.status_code == 404 and missing.json()["error"] == "unknown_neuron"
    assert client.get("/neurons", params={"limit": 0}).json()["parameter"] == "limit"


def test_explain_sums_to_the_recommended_score(client, engine):
    user = engine.user_ids[2]
    rec = client.get("/recommend", params={"user": user, "k": 1, "steer": "1:+2", "ab": "off"}).json()
    out = client.get("/explain", params={"user": user, "item": rec["items"][0]["id"], "steer": "1:+2"})
    body = ExplainResponse.model_validate(out.json())
    assert body.score == pytest.approx(rec["items"][0]["score"], abs=1e-9)
    assert body.sum_of_parts == pytest.approx(body.score, abs=1e-6)
    assert client.get("/explain", params={"user": user, "item": "nope"}).status_code == 404


def test_health_and_openapi(client):
    health = Health.model_validate(client.get("/healthz").json())
    assert health.engine["index"] == "flat" and health.experiments == ["genre"] and health.events
    spec = client.get("/openapi.json").json()
    assert {"/recommend", "/neurons", "/neurons/{neuron}", "/explain", "/healthz", "/feedback"} <= set(spec["paths"])
    assert "ErrorBody" in str(spec["paths"]["/recommend"]["get"]["responses"]["422"])
    params = {p["name"] for p in spec["paths"]["/recommend"]["get"]["parameters"]}
    assert params == {"user", "k", "steer", "filter", "promote", "exclude", "exclude_seen", "ab"}


def test_ab_assignment_exposures_and_feedback(client, engine, experiments, events):
    served = {}
    for user in engine.user_ids[:40]:
        body = client.get("/recommend", params={"user": user, "k": 5}).json()
        expected = experiments.assign(user)
        assert (body["experiment"], body["arm"]) == (expected.experiment, expected.arm)
        assert len(body["steers"]) == len(expected.steer)
        served[body["request_id"]] = body
    assert {b["arm"] for b in served.values()} == {"control", "horror"}
    forced = client.get("/recommend", params={"user": engine.user_ids[0], "ab": "genre:horror"}).json()
    assert forced["arm"] == "horror" and forced["steers"] and forced["filters"]
    off = client.get("/recommend", params={"user": engine.user_ids[0], "ab": "off"}).json()
    assert off["experiment"] is None and not off["steers"]

    logged = {e.request_id: e for e in events.exposures()}
    for request_id, body in served.items():
        assert logged[request_id].items == [i["id"] for i in body["items"]]
        assert (logged[request_id].experiment, logged[request_id].arm) == (body["experiment"], body["arm"])
    assert logged[forced["request_id"]].forced

    request_id, body = next(iter(served.items()))
    click = {"request_id": request_id, "user": body["user"], "item": body["items"][0]["id"], "kind": "click"}
    first, again = client.post("/feedback", json=click), client.post("/feedback", json=click)
    assert first.json() == {"stored": True, "duplicate": False, "experiment": "genre", "arm": body["arm"]}
    assert again.json()["stored"] is False and again.json()["duplicate"] is True
    assert [f.item for f in events.feedback() if f.request_id == request_id] == [click["item"]]
    bad = client.post("/feedback", json={**click, "kind": "Click!"})
    assert bad.status_code == 422 and bad.json()["parameter"] == "kind"
    extra = client.post("/feedback", json={**click, "extra": 1})
    assert extra.status_code == 422
    broken = client.post("/feedback", content=b'{"request_id": "r",', headers={"content-type": "application/json"})
    assert broken.status_code == 422 and broken.json()["parameter"] == "body"
    assert broken.json()["problem"].startswith("JSON decode error: ") and "character" in broken.json()["problem"]
    assert broken.json()["allowed"] == "a JSON object {request_id, user, item, kind}"


def test_one_request_id_in_body_header_and_events(client, engine, events):
    user = engine.user_ids[3]
    made = client.get("/recommend", params={"user": user})
    assert made.headers.get_list("x-request-id") == [made.json()["request_id"]]
    assert len(made.json()["request_id"]) == 32
    missing = client.get("/recommend", params={"user": "nobody"})
    assert missing.status_code == 404
    assert missing.headers.get_list("x-request-id") == [missing.json()["request_id"]]
    # A client's (or Ray Serve's) id is kept, in the body, the header and the exposure event.
    given = client.get("/recommend", params={"user": user}, headers={"x-request-id": "trace-42/a"})
    assert given.json()["request_id"] == "trace-42/a" and given.headers.get_list("x-request-id") == ["trace-42/a"]
    assert [e.user for e in events.exposures() if e.request_id == "trace-42/a"] == [user]
    retried = client.get("/recommend", params={"user": user}, headers={"x-request-id": "trace-42/a"})
    assert retried.status_code == 200 and [e.request_id for e in events.exposures()].count("trace-42/a") == 1
    assert client.get("/healthz", headers={"x-request-id": "h1"}).headers["x-request-id"] == "h1"
    # The same id for another user's request would leave that exposure unrecorded: refused.
    other = client.get("/recommend", params={"user": engine.user_ids[4]}, headers={"x-request-id": "trace-42/a"})
    assert other.status_code == 409 and other.json()["error"] == "request_id_conflict"
    assert other.json()["parameter"] == "x-request-id" and repr(user) in other.json()["problem"]
    assert [e.user for e in events.exposures() if e.request_id == "trace-42/a"] == [user]


@pytest.mark.parametrize("bad", ["has space", "x" * 101, "tab\there", "caf\u00e9"])
def test_unusable_request_ids_are_refused(client, engine, bad):
    r = client.get("/recommend", params={"user": engine.user_ids[0]},
                   headers=[("x-request-id", bad.encode("latin-1"))])
    assert r.status_code == 422 and r.json()["parameter"] == "x-request-id"
    assert r.json()["allowed"].startswith("1 to 100 visible ASCII characters") and "x-request-id" not in r.headers


def test_under_serve_the_app_leaves_the_header_to_serve(engine):
    with TestClient(create_app(SteerService(engine, metrics=PrometheusMetrics()), echo_request_id=False)) as c:
        r = c.get("/recommend", params={"user": engine.user_ids[0]}, headers={"x-request-id": "from-serve"})
    assert r.json()["request_id"] == "from-serve" and "x-request-id" not in r.headers


def test_feedback_without_an_event_store_is_refused_clearly(plain):
    r = plain.post("/feedback", json={"request_id": "r", "user": "u", "item": "i", "kind": "click"})
    assert r.status_code == 503 and "--events" in r.json()["problem"]


def test_metrics_exposition(client, engine):
    client.get(f"/neurons/{genre_slug(engine, 'Horror')}")
    client.get("/recommend", params={"user": engine.user_ids[0], "steer": "2:+1", "ab": "off"})
    client.get("/recommend", params={"user": "nobody"})
    text = client.get("/metrics").text
    assert 'steerrec_http_requests_total{method="GET",route="/neurons/{neuron}",status="200"}' in text
    assert 'steerrec_http_requests_total{method="GET",route="/recommend",status="404"}' in text
    assert f'steerrec_steering_uses_total{{kind="steer",neuron="{engine.catalog.slug(2)}"}}' in text
    assert 'steerrec_errors_total{kind="unknown_user"}' in text
    assert 'steerrec_ab_exposures_total{arm="control",experiment="genre"}' in text
    assert "steerrec_encode_duration_seconds_bucket" in text and "steerrec_retrieval_duration_seconds_count" in text
    assert 'steerrec_http_request_duration_seconds_bucket{le="0.001",route="/recommend"}' in text


def _histogram_count(text: str, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(f"{name}_count"))


def test_stage_histograms_time_every_recommendation():
    engine = SteeringEngine(require_demo())
    with TestClient(create_app(SteerService(engine, metrics=PrometheusMetrics()))) as c:
        for user in engine.user_ids[:7]:
            assert c.get("/recommend", params={"user": user}).status_code == 200
        c.get("/recommend", params={"user": "nobody"})  # a 404 reaches no stage
        text = c.get("/metrics").text
    assert _histogram_count(text, "steerrec_encode_duration_seconds") == 7
    assert _histogram_count(text, "steerrec_retrieval_duration_seconds") == 7
    assert 'steerrec_http_request_duration_seconds_count{route="/recommend"} 8.0' in text


def test_unknown_route_and_method(client):
    r = client.get("/nothing-here")
    assert r.status_code == 404 and r.json()["error"] == "not_found"
    assert client.delete("/recommend").status_code == 405
    assert not math.isnan(client.get("/noop").json()["ok"])


def test_fastapi_telemetry_is_off_unless_configured():
    import inspect

    from fastapi import FastAPI

    if "telemetry" not in inspect.signature(FastAPI.__init__).parameters:
        assert fastapi_options(ServiceConfig()) == {}  # an older FastAPI without the option
    else:
        app = FastAPI(**fastapi_options(ServiceConfig()))
        assert not app._native_telemetry.enabled()
        assert not any(fastapi_options(ServiceConfig()).get("telemetry", {}).values())
    assert fastapi_options(ServiceConfig(fastapi_telemetry=True)) == {}
