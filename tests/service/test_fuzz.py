"""A bounded fuzz over every route and parameter: no response may be a 5xx, and every 4xx must be
the JSON error body. Values mix valid ids and specs with hostile ones (huge or signed numbers,
nan, unicode, control characters, broken percent-escapes, repeated and unknown parameters)."""

import json
import random
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from steerrec.service.app import SteerService, create_app
from steerrec.service.events import EventStore
from steerrec.service.experiments import ExperimentSet
from steerrec.service.metrics import NullMetrics

from ._steer_helpers import labelled_engine

REQUESTS = 2500
SEED = 20260525


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    engine = labelled_engine()
    experiments = ExperimentSet.from_dict({"experiments": [{
        "name": "exp", "salt": "exp-salt", "traffic": 0.5,
        "arms": [{"name": "a", "weight": 1}, {"name": "b", "weight": 1, "steer": ["1:+2"], "promote": ["2:+1"]}]}]})
    events = EventStore(tmp_path_factory.mktemp("fuzz") / "events.db")
    with TestClient(create_app(SteerService(engine, experiments, events, NullMetrics())),
                    raise_server_exceptions=False) as c:
        yield c, engine
    events.close()


class Generator:
    def __init__(self, engine, rng: random.Random):
        self.engine, self.rng = engine, rng
        self.slugs = list(engine.catalog.slug_to_id)

    def number(self) -> str:
        return self.rng.choice(["0", "1", "-1", "3.5", "1e308", "-1e308", "1e-320", "nan", "inf", "-inf", "+5",
                                "0x10", "1_000", str(self.rng.randint(-10**12, 10**12)), ".5", "5.", "", " 2"])

    def junk(self) -> str:
        alphabet = "aZ09:+-=*>@%&#?/\\ \t\n\x00éß漢😀\"'<>{}[],;."
        return "".join(self.rng.choice(alphabet) for _ in range(self.rng.randint(0, 30)))

    def target(self) -> str:
        return self.rng.choice([self.rng.choice(self.slugs), str(self.rng.randint(-5, 600)), self.junk(), "", "00012"])

    def spec(self, kind: str) -> str:
        op = self.rng.choice(["+", "-", "=", "*", " ", ">", "", "++", ":"])
        item = self.rng.choice(self.engine.item_ids + ["nope", ""])
        forms = {"steer": f"{self.target()}:{op}{self.number()}",
                 "filter": self.rng.choice([self.target(), f"{self.target()}:>{self.number()}"]),
                 "promote": self.rng.choice([f"{self.target()}:{op}{self.number()}",
                                             f"{item}@{self.target()}:{op}{self.number()}"])}
        return forms[kind] if self.rng.random() < 0.9 else self.junk()

    def value(self, name: str) -> str:
        r, e = self.rng, self.engine
        if name in ("steer", "filter", "promote"):
            return self.spec(name)
        choices = {
            "user": [r.choice(e.user_ids), "nobody", self.junk(), "x" * r.choice([255, 256, 257, 5000])],
            "item": [r.choice(e.item_ids), "nope", self.junk()],
            "k": [self.number(), str(r.randint(-3, 200))],
            "exclude_seen": ["true", "false", "1", "0", "yes", "maybe", ""],
            "ab": ["off", "exp:a", "exp:b", "exp:c", "exp", ":", self.junk()],
            "q": [r.choice(self.slugs), self.junk(), "h" * 101],
            "limit": [self.number(), str(r.randint(-1, 2000))],
            "offset": [self.number(), str(r.randint(-1, 10**10))],
        }
        return r.choice(choices.get(name, [self.junk()]))

    def query(self, names: list[str]) -> str:
        parts = []
        for name in names:
            for _ in range(self.rng.choice([0, 1, 1, 1, 2])):
                value = self.value(name)
                if self.rng.random() < 0.8:
                    encoded = quote(value, safe="")
                else:  # left unencoded, as a careless client sends it ('+' arrives as a space)
                    encoded = "".join(c for c in value if c not in "&#" and (c.isprintable() or not c.isascii()))
                parts.append(f"{name}={encoded}")
        if self.rng.random() < 0.1:
            parts.append(self.rng.choice(["stear=1", "%zz=1", "k=%ff", "=", "&&", "user", "%00=%00"]))
        self.rng.shuffle(parts)
        return "&".join(parts)

    def request(self):
        r = self.rng
        route = r.choice(["recommend"] * 5 + ["neurons", "neuron", "explain", "explain", "healthz", "feedback",
                                              "feedback"])
        if route == "recommend":
            names = ["user", "k", "steer", "filter", "promote", "exclude_seen", "ab"]
            return "GET", "/recommend?" + self.query(names), None
        if route == "neurons":
            return "GET", "/neurons?" + self.query(["q", "limit", "offset"]), None
        if route == "neuron":
            return "GET", "/neurons/" + quote(self.target() or "x", safe=""), None
        if route == "explain":
            return "GET", "/explain?" + self.query(["user", "item", "steer"]), None
        if route == "healthz":
            return "GET", "/healthz" + r.choice(["", "?x=1"]), None
        body = {"request_id": r.choice(["r1", "", self.junk(), "x" * 101]), "user": self.value("user"),
                "item": self.value("item"), "kind": r.choice(["click", "Click", "", self.junk(), 3])}
        if r.random() < 0.2:
            body = r.choice([[], "x", None, {**body, "extra": 1}, {"request_id": 1}])
        raw = json.dumps(body).encode() if r.random() < 0.9 else self.junk().encode()
        return "POST", "/feedback", raw


def test_no_5xx_over_every_parameter(client):
    client, engine = client
    gen = Generator(engine, random.Random(SEED))
    statuses = {}
    for _ in range(REQUESTS):
        method, url, body = gen.request()
        r = client.request(method, url, content=body, headers={"content-type": "application/json"} if body else None)
        statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
        assert r.status_code < 500, (method, url, body, r.text[:500])
        if r.status_code >= 400:
            err = r.json()
            assert err["error"] and err["problem"], (url, err)
            if r.status_code == 422:
                assert err["parameter"], (url, err)
    assert statuses.get(200, 0) > REQUESTS // 10 and statuses.get(422, 0) > REQUESTS // 10, statuses
