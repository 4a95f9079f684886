"""The explorer's JSON routes and static assets, in-process (no browser): /concepts/tree from each
source, /experiments with assignments and override values, /users search and profiles, the
redirect from /, the assets' types, and that they ship as package data."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from steerrec.service.app import SteerService, create_app
from steerrec.service.engine import SteeringEngine
from steerrec.service.experiments import ExperimentSet
from steerrec.service.explorer import STATIC
from steerrec.service.metrics import PrometheusMetrics
from steerrec.service.schemas import (
    ConceptTree,
    ErrorBody,
    ExperimentList,
    UserList,
    UserProfile,
)

from ._explorer_helpers import explorer_bundles
from ._steer_helpers import REPO


@pytest.fixture(scope="module")
def bundles():
    return explorer_bundles()


@pytest.fixture(scope="module")
def engine(bundles):
    return SteeringEngine(bundles.interpreted)


@pytest.fixture(scope="module")
def plain_engine(bundles):
    return SteeringEngine(bundles.plain)


@pytest.fixture(scope="module")
def experiments(engine):
    slugs = engine.catalog.slug_to_id
    steer = "horror:+3" if "horror" in slugs else "1:+3"
    return ExperimentSet.from_dict({"experiments": [
        {"name": "genre", "salt": "g-salt", "traffic": 0.7,
         "arms": [{"name": "control", "weight": 1}, {"name": "boost", "weight": 1, "steer": [steer], "filter": ["2"]}]},
        {"name": "later", "salt": "l-salt", "traffic": 0.3, "enabled": False, "control": "base",
         "arms": [{"name": "base", "weight": 1}, {"name": "promo", "weight": 3, "promote": ["3:+2"]}]}]})


@pytest.fixture(scope="module")
def client(engine, experiments):
    with TestClient(create_app(SteerService(engine, experiments, metrics=PrometheusMetrics())),
                    follow_redirects=False) as c:
        yield c


@pytest.fixture(scope="module")
def plain(plain_engine):
    with TestClient(create_app(SteerService(plain_engine, metrics=PrometheusMetrics()))) as c:
        yield c


def test_root_redirects_to_the_explorer_page(client):
    r = client.get("/")
    assert r.status_code == 307 and r.headers["location"] == "explorer/"
    page = client.get("/explorer/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="js/main.js">' in page.text
    assert client.get("/explorer").status_code in (307, 308)  # to the trailing slash


def test_every_asset_the_page_references_is_served_with_its_type(client):
    page = client.get("/explorer/").text
    css = client.get("/explorer/explorer.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    modules = sorted(p.name for p in (STATIC / "js").glob("*.js"))
    assert "main.js" in modules and "diff.js" in modules
    for name in modules:
        r = client.get(f"/explorer/js/{name}")
        assert r.status_code == 200 and "javascript" in r.headers["content-type"], name
        for imported in re.findall(r"from '\./([a-z]+\.js)'", r.text):  # every import resolves
            assert (STATIC / "js" / imported).is_file(), f"{name} imports missing {imported}"
    assert "explorer.css" in page
    assert not re.search(r"(src|href)=\"https?://", page), "the page must not load anything from outside"
    missing = client.get("/explorer/js/nope.js")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"


def test_static_assets_are_declared_as_package_data():
    tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from Python 3.11")
    data = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    patterns = data["steerrec.service"]
    files = [p.relative_to(STATIC.parent).as_posix() for p in STATIC.rglob("*") if p.is_file()]
    assert files
    for f in files:
        assert any(Path(f).match(pattern) or (pattern.endswith("**/*") and f.startswith(pattern[:-4]))
                   for pattern in patterns), f"{f} is not covered by {patterns}"


def test_concept_tree_from_the_bundle_file(client, engine):
    r = client.get("/concepts/tree")
    assert r.status_code == 200
    tree = ConceptTree.model_validate(r.json())
    on_disk = json.loads((engine.bundle.root / "concept_tree.json").read_text()) \
        if engine.bundle.has("concept_tree.json") else None
    if on_disk is None:
        pytest.skip("the interpretation stage is absent: no concept_tree.json")
    assert tree.source == "concept_tree.json" and tree.roots == on_disk["roots"]
    assert [n.id for n in tree.nodes] == [n["id"] for n in on_disk["nodes"]]
    by_id = {n.id: n for n in tree.nodes}
    for n in tree.nodes:  # parent and children links agree
        assert all(by_id[c].parent == n.id for c in n.children)
        assert (n.parent is None) == (n.id in tree.roots)


def test_concept_tree_derived_from_neuron_records(monkeypatch, bundles):
    engine = SteeringEngine(bundles.labelled)  # neurons.json from the test labeller, no concept_tree.json
    live = [j for j in range(engine.n_latents) if not engine.stats.dead[j] and engine.catalog.summary(j)["status"] != "dead"]
    a, b, c, d, orphan, dead = live[:6]
    monkeypatch.setitem(engine.catalog._summaries[dead], "status", "dead")  # labelled dead: left out
    live.remove(dead)
    parents = {b: a, c: a, d: b, orphan: dead}  # a link to a dead neuron makes a root
    for child, parent in parents.items():
        monkeypatch.setattr(engine.catalog.records[child], "parent", parent)
        monkeypatch.setitem(engine.catalog._summaries[child], "parent", parent)
    from steerrec.service.explorer import concept_tree

    tree = ConceptTree.model_validate(concept_tree(engine))
    assert tree.source == "neurons.json" and tree.method is None
    by_id = {n.id: n for n in tree.nodes}
    assert sorted(by_id) == live
    assert by_id[a].children == [b, c] and by_id[b].children == [d] and by_id[d].parent == b
    assert b not in tree.roots and a in tree.roots and orphan in tree.roots and by_id[orphan].parent is None
    assert by_id[a].label == engine.catalog.label(a) and by_id[a].slug == engine.catalog.slug(a)


def test_concept_tree_of_an_uninterpreted_bundle(plain, plain_engine):
    tree = ConceptTree.model_validate(plain.get("/concepts/tree").json())
    engine = plain_engine
    assert tree.source == "computed" and tree.prefixes == engine.bundle.manifest.sae["prefixes"]
    assert all(n.parent is None and n.children == [] for n in tree.nodes)
    assert tree.roots == [n.id for n in tree.nodes] == [j for j in range(engine.n_latents) if not engine.stats.dead[j]]
    levels = np.searchsorted(tree.prefixes, [n.id for n in tree.nodes], side="right")
    assert [n.prefix for n in tree.nodes] == levels.tolist()


def test_experiments_listing_and_assignment(client, experiments, engine):
    body = ExperimentList.model_validate(client.get("/experiments").json())
    assert [e.name for e in body.experiments] == ["genre", "later"] and body.assignment is None
    genre, later = body.experiments
    assert [(a.name, a.override, a.control) for a in genre.arms] == [
        ("control", "genre:control", True), ("boost", "genre:boost", False)]
    assert genre.arms[1].filter == ["2"] and later.control == "base" and later.enabled is False
    assert [a.weight for a in later.arms] == [1, 3] and later.arms[1].promote == ["3:+2"]
    for user in engine.user_ids[:40]:
        r = client.get("/experiments", params={"user": user}).json()
        expected = experiments.assign(user)
        assert r["user"] == user
        assert r["assignment"] == (None if expected is None else {"experiment": expected.experiment, "arm": expected.arm})


def test_every_override_of_the_listing_is_accepted_by_recommend(client, engine):
    user = engine.user_ids[3]
    for e in client.get("/experiments").json()["experiments"]:
        for arm in e["arms"]:
            r = client.get("/recommend", params={"user": user, "ab": arm["override"]})
            assert r.status_code == 200 and (r.json()["experiment"], r.json()["arm"]) == (e["name"], arm["name"])


def test_experiments_without_an_experiments_file(plain):
    assert plain.get("/experiments", params={"user": "u1"}).json() == {"experiments": [], "user": "u1",
                                                                       "assignment": None}


def test_users_search_and_pages(client, engine):
    first = UserList.model_validate(client.get("/users", params={"limit": 5}).json())
    assert first.total == len(engine.user_ids) and first.users == engine.user_ids[:5]
    page = client.get("/users", params={"limit": 3, "offset": 10}).json()
    assert page["users"] == engine.user_ids[10:13]
    q = engine.user_ids[12][:3]
    hits = client.get("/users", params={"q": q, "limit": 1000}).json()
    assert hits["total"] == sum(q in u.lower() for u in engine.user_ids)
    prefixed = [u for u in hits["users"] if u.lower().startswith(q)]
    assert hits["users"][:len(prefixed)] == prefixed  # prefix matches first, shortest first
    assert [len(u) for u in prefixed] == sorted(len(u) for u in prefixed)


@pytest.mark.parametrize("query, parameter", [("limit=0", "limit"), ("limit=x", "limit"), ("offset=-1", "offset"),
                                              ("qq=1", "qq"), ("q=a&q=b", "q")])
def test_users_rejects_bad_parameters(client, query, parameter):
    r = client.get(f"/users?{query}")
    assert r.status_code == 422
    body = ErrorBody.model_validate(r.json())
    assert body.parameter == parameter and body.error == "invalid_parameter"


def test_user_profile(client, engine):
    user = engine.user_ids[5]
    profile = UserProfile.model_validate(client.get(f"/users/{user}").json())
    row = engine.user_row[user]
    seen = engine.seen_rows(row)
    assert profile.n_seen == len(seen) and [s.id for s in profile.seen] == [engine.item_ids[r] for r in seen[:10]]
    cols, vals = engine.user_codes.row(row)
    units = vals / engine.scale[cols]
    assert [n.neuron for n in profile.neurons] == cols[np.lexsort((cols, -units))][:12].tolist()
    top = profile.neurons[0]
    assert top.activation_units == pytest.approx(top.activation / engine.scale[top.neuron])
    assert top.label == engine.catalog.label(top.neuron)


def test_user_profile_of_an_unknown_user(client):
    r = client.get("/users/nobody")
    assert r.status_code == 404 and r.json()["error"] == "unknown_user" and r.json()["parameter"] == "user"


def test_new_routes_are_in_the_openapi_schema(client):
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/concepts/tree", "/experiments", "/users", "/users/{user}"):
        assert "get" in paths[path], path
    assert {p["name"] for p in paths["/users"]["get"]["parameters"]} == {"q", "limit", "offset"}
    assert "/" not in paths and not any(p.startswith("/explorer") for p in paths)


def test_page_requests_are_one_metrics_series(client, engine):
    for path in ("/explorer/", "/explorer/explorer.css", "/explorer/js/main.js", "/explorer/js/nope.js"):
        client.get(path)
    client.get(f"/users/{engine.user_ids[0]}")
    text = client.get("/metrics").text
    assert 'steerrec_http_requests_total{method="GET",route="/explorer",status="200"}' in text
    assert 'steerrec_http_requests_total{method="GET",route="/explorer",status="404"}' in text
    assert 'steerrec_http_requests_total{method="GET",route="/users/{user}",status="200"}' in text
    assert "/explorer/js" not in text
