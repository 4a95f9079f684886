"""POST /admin/reload in-process: the token (absent, wrong, right), a reload that follows a flipped
symlink, a corrupt bundle refused with the file named while the old one keeps serving, requests
answered while a reload runs, and replicas following each other's reloads."""

import asyncio
import os
import shutil

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from steerrec.service.admin import admin_token
from steerrec.service.app import SteerService, create_app
from steerrec.service.config import ServiceConfig
from steerrec.service.engine import SteeringEngine
from steerrec.service.metrics import PrometheusMetrics
from steerrec.service.reload import Reloader, ReloadRefused

from ._steer_helpers import copy_bundle, labelled_bundle, labelled_engine

TOKEN = "t0ken-for-tests-" + "x" * 16
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def corrupt_copy(name: str, victim: str = "item_factors.npy") -> str:
    """A bundle copy whose `victim` no longer matches its manifest checksum (same size)."""
    path = copy_bundle(name)
    data = bytearray((path / victim).read_bytes())
    data[-1] ^= 0xFF
    (path / victim).write_bytes(bytes(data))
    return str(path)


def point(link, target) -> None:
    """Atomically re-point a symlink, as an operator would (ln -s new tmp && mv -T tmp link)."""
    tmp = f"{link}.tmp"
    os.symlink(target, tmp)
    os.replace(tmp, link)


@pytest.fixture()
def served(tmp_path):
    """An app serving a symlink that points at the plain demo copy, with admin enabled."""
    link = tmp_path / "current"
    os.symlink(copy_bundle("admin-plain"), link)
    config = ServiceConfig(admin_token=TOKEN)
    service = SteerService(SteeringEngine(link, config), metrics=PrometheusMetrics())
    with TestClient(create_app(service)) as client:
        yield client, service, link


def test_admin_routes_are_absent_without_a_token():
    service = SteerService(labelled_engine(), metrics=PrometheusMetrics())
    with TestClient(create_app(service)) as client:
        r = client.post("/admin/reload", headers=AUTH)
        assert r.status_code == 404 and r.json()["error"] == "not_found"
        assert client.get("/healthz").json()["bundle"] is None
        assert "/admin/reload" not in client.get("/openapi.json").json()["paths"]


@pytest.mark.parametrize("headers, status, error", [
    ({}, 401, "unauthorized"),
    ({"Authorization": TOKEN}, 401, "unauthorized"),                    # no scheme
    ({"Authorization": f"Basic {TOKEN}"}, 401, "unauthorized"),
    ({"Authorization": "Bearer "}, 401, "unauthorized"),
    ({"Authorization": "Bearer " + TOKEN[:-1]}, 403, "forbidden"),
    ({"Authorization": "Bearer " + TOKEN + "x"}, 403, "forbidden"),
])
def test_the_token_is_required(served, headers, status, error):
    client, service, _ = served
    before = service.engine
    r = client.post("/admin/reload", headers=headers)
    assert r.status_code == status and r.json()["error"] == error and r.json()["problem"]
    if status == 401:
        assert r.headers["www-authenticate"].startswith("Bearer")
    assert service.engine is before and service.reloader.reloads == 0
    assert f'steerrec_errors_total{{kind="{error}"}}' in client.get("/metrics").text


def test_token_configuration(tmp_path):
    assert admin_token(ServiceConfig()) is None
    with pytest.raises(ValueError, match="at least 16 characters"):
        admin_token(ServiceConfig(admin_token="short"))
    (tmp_path / "token").write_text(TOKEN + "\n")
    assert admin_token(ServiceConfig(admin_token_file=str(tmp_path / "token"))) == TOKEN
    with pytest.raises(ValueError, match="missing-token"):
        admin_token(ServiceConfig(admin_token_file=str(tmp_path / "missing-token")))
    assert ServiceConfig.from_env({"STEERREC_ADMIN_TOKEN": TOKEN}).admin_token == TOKEN
    assert TOKEN not in repr(ServiceConfig(admin_token=TOKEN))  # never in a log line


def test_reload_follows_the_configured_path(served):
    client, _, link = served
    user = labelled_engine().user_ids[3]
    assert client.get("/neurons/horror").status_code == 404  # the plain bundle has no labels
    point(link, labelled_bundle())
    r = client.post("/admin/reload", headers=AUTH)
    assert r.status_code == 200, r.json()
    body = r.json()
    assert body["current"]["target"] == str(labelled_bundle()) and body["previous"]["target"] != body["current"]["target"]
    assert body["current"]["manifest_sha256"] != body["previous"]["manifest_sha256"]
    assert client.get("/neurons/horror").status_code == 200
    health = client.get("/healthz").json()
    assert health["engine"]["neuron_labels"] is True and health["bundle"]["target"] == str(labelled_bundle())
    steered = client.get("/recommend", params={"user": user, "k": 5, "steer": "horror:+2"}).json()
    expected = labelled_engine().recommend(user, 5, steer=["horror:+2"])
    assert [i["id"] for i in steered["items"]] == [labelled_engine().item_ids[r] for r in expected.rows]


def test_the_path_never_comes_from_the_request(served, tmp_path):
    client, service, link = served
    elsewhere = str(labelled_bundle())
    for kwargs in ({"params": {"bundle": elsewhere}}, {"params": {"path": elsewhere}}, {"content": elsewhere.encode()},
                   {"json": {"bundle": elsewhere}}):
        r = client.post("/admin/reload", headers=AUTH, **kwargs)
        assert r.status_code == 422 and r.json()["error"] == "invalid_parameter", r.json()
    assert service.reloader.reloads == 0 and service.engine.bundle.root == link


@pytest.mark.parametrize("victim", ["item_factors.npy", "sae_decoder.onnx", "manifest.json"])
def test_a_corrupt_bundle_is_refused_and_the_old_one_keeps_serving(served, victim):
    client, service, link = served
    user = service.engine.user_ids[0]
    before = client.get("/recommend", params={"user": user, "k": 5}).json()["items"]
    serving = os.path.realpath(link)
    if victim == "manifest.json":  # a bundle whose manifest is gone: a partial copy
        bad = copy_bundle("admin-no-manifest")
        (bad / "manifest.json").unlink(missing_ok=True)
        bad = str(bad)
    else:
        bad = corrupt_copy(f"admin-corrupt-{victim}", victim)
    point(link, bad)
    r = client.post("/admin/reload", headers=AUTH)
    assert r.status_code == 409 and r.json()["error"] == "reload_refused"
    problem = r.json()["problem"]
    # The broken file under the directory the link resolved to (the version to fix or roll back),
    # then the configured path it was reached through, then what keeps serving.
    broken = os.path.join(os.path.realpath(bad), victim)
    assert problem.startswith(broken + ":"), problem
    assert f"(bundle path {link} -> {os.path.realpath(bad)})" in problem, problem
    assert f"still serving {serving} (manifest " in problem, problem
    assert client.get("/recommend", params={"user": user, "k": 5}).json()["items"] == before
    health = client.get("/healthz").json()["bundle"]
    assert health["target"] == serving and health["last_error"] == problem.split("; still serving")[0]


def test_a_bundle_that_breaks_an_experiment_arm_is_refused(tmp_path):
    from steerrec.service.experiments import ExperimentSet

    link = tmp_path / "current"
    os.symlink(labelled_bundle(), link)
    config = ServiceConfig(admin_token=TOKEN)
    experiments = ExperimentSet.from_dict({"experiments": [{"name": "g", "salt": "s", "arms": [
        {"name": "control", "weight": 1}, {"name": "horror", "weight": 1, "steer": ["horror:+2"]}]}]})
    service = SteerService(SteeringEngine(link, config), experiments, metrics=PrometheusMetrics())
    with TestClient(create_app(service)) as client:
        point(link, copy_bundle("admin-plain"))  # no neuron labels: the arm's "horror" does not resolve
        r = client.post("/admin/reload", headers=AUTH)
        assert r.status_code == 409 and "horror" in r.json()["problem"]
        assert service.engine.catalog.has_labels


def test_requests_are_answered_while_a_reload_runs(tmp_path):
    """The new engine is built in a worker thread: the event loop keeps answering, and every
    response comes whole from one engine or the other."""
    link = tmp_path / "current"
    os.symlink(copy_bundle("admin-plain"), link)
    service = SteerService(SteeringEngine(link, ServiceConfig(admin_token=TOKEN)), metrics=PrometheusMetrics())
    app = create_app(service)
    users = service.engine.user_ids[:50]

    async def scenario():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            point(link, labelled_bundle())
            reload = asyncio.create_task(client.post("/admin/reload", headers=AUTH))
            statuses = []
            while not reload.done():
                r = await client.get("/recommend", params={"user": users[len(statuses) % 50], "k": 3})
                statuses.append(r.status_code)
                await asyncio.sleep(0)
            return (await reload).status_code, statuses

    status, statuses = asyncio.run(scenario())
    assert status == 200 and statuses and set(statuses) == {200}
    assert service.engine.catalog.has_labels


class FakeBoard:
    def __init__(self):
        self.generation = 0

    async def bump(self):
        self.generation += 1
        return self.generation

    async def get(self):
        return self.generation


def test_replicas_follow_a_reload_and_one_reload_runs_at_a_time(tmp_path):
    link = tmp_path / "current"
    os.symlink(copy_bundle("admin-plain"), link)
    config = ServiceConfig(admin_token=TOKEN)
    board = FakeBoard()
    a, b = (SteerService(SteeringEngine(link, config), metrics=PrometheusMetrics()) for _ in range(2))
    a.reloader, b.reloader = Reloader(a, link, board), Reloader(b, link, board)

    async def scenario():
        follower = asyncio.create_task(b.reloader.follow(0.02))
        point(link, labelled_bundle())
        first = asyncio.create_task(a.reloader.reload())
        await asyncio.sleep(0)
        with pytest.raises(ReloadRefused, match="already running"):
            await a.reloader.reload()
        await first
        for _ in range(500):  # b notices the bumped generation and reloads itself
            if b.reloader.reloads:
                break
            await asyncio.sleep(0.02)
        follower.cancel()

    asyncio.run(scenario())
    assert board.generation == 1 and a.reloader.reloads == 1 and b.reloader.reloads == 1
    assert a.engine.catalog.has_labels and b.engine.catalog.has_labels
    assert np.array_equal(a.engine.user_factors, b.engine.user_factors)


def test_a_serve_deployment_keeps_the_symlink(tmp_path):
    from steerrec.service.deployment import build_app

    link = tmp_path / "current"
    os.symlink(labelled_bundle(), link)
    app = build_app({"bundle": str(link)})
    assert app._bound_deployment.init_kwargs["bundle"] == str(link)  # not resolved: a reload re-reads the link
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_a_corrupt_bundle_is_refused_at_start_naming_the_file(capsys, monkeypatch):
    """`steerrec serve` verifies every checksum before it starts Ray (so nothing is left running)."""
    from steerrec.cli import main

    monkeypatch.setattr("ray.init", lambda *a, **k: pytest.fail("Ray started for a corrupt bundle"))
    bad = corrupt_copy("start-corrupt", "sae_encoder.onnx")
    assert main(["serve", "--bundle", bad]) == 2
    assert capsys.readouterr().err.strip() == (f"steerrec serve: error: {bad}/sae_encoder.onnx: sha256 does not "
                                               "match manifest.json; file is corrupt")


def test_the_admin_token_is_refused_on_the_command_line(capsys, monkeypatch, tmp_path):
    from steerrec.cli import main

    monkeypatch.setattr("ray.init", lambda *a, **k: pytest.fail("Ray started"))
    bundle = str(copy_bundle("admin-plain"))
    assert main(["serve", "--bundle", bundle, "--set", f"admin_token={TOKEN}"]) == 2
    assert "give the admin token as STEERREC_ADMIN_TOKEN or --set admin_token_file=PATH" in capsys.readouterr().err
    monkeypatch.setenv("STEERREC_ADMIN_TOKEN", "short")
    assert main(["serve", "--bundle", bundle]) == 2
    assert "at least 16 characters" in capsys.readouterr().err
    monkeypatch.delenv("STEERREC_ADMIN_TOKEN")
    assert main(["serve", "--bundle", bundle, "--set", f"admin_token_file={tmp_path / 'absent'}"]) == 2
    assert f"{tmp_path / 'absent'}: cannot read the admin token file" in capsys.readouterr().err
