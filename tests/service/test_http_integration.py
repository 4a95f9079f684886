"""End to end: ``steerrec serve`` in a subprocess (Ray Serve, HAProxy ingress, loopback, a free
port), real HTTP requests including an unencoded '+', A/B events on disk, Prometheus metrics from
Ray's export port, and a clean stop on SIGTERM. One server for the whole module (~1 min)."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest
from steerrec.service.events import EventStore
from steerrec.service.ingress import free_port

from ._steer_helpers import REPO, genre_slug, labelled_bundle, labelled_engine

STARTUP_S = 240
STOP_S = 90


def _read_json_line(proc: subprocess.Popen, log: Path, deadline: float) -> dict:
    """The serve command prints one JSON line with its URLs once the application is up."""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"steerrec serve exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        for line in log.read_text().splitlines():
            if line.startswith("{") and '"url"' in line:
                return json.loads(line)
        time.sleep(0.5)
    pytest.fail(f"steerrec serve did not start within {STARTUP_S} s:\n{log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(STOP_S)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the group this test created (start_new_session)
            proc.wait(10)
            pytest.fail("steerrec serve did not stop within its deadline after SIGTERM")
    return proc.returncode


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("serve")
    horror = genre_slug(labelled_engine(), "Horror")
    experiments = tmp / "experiments.json"
    experiments.write_text(json.dumps({"experiments": [{
        "name": "genre", "salt": "genre-salt",
        "arms": [{"name": "control", "weight": 1}, {"name": "horror", "weight": 1, "steer": [f"{horror}:+3"]}]}]}))
    port, log = free_port(), tmp / "serve.log"
    state = Path(tempfile.mkdtemp(prefix="srh-", dir="/tmp"))  # short: HAProxy socket paths max 97 chars
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "steerrec.cli", "serve", "--bundle", str(labelled_bundle()), "--host", "127.0.0.1",
           "--port", str(port), "--experiments", str(experiments), "--events", str(tmp / "events.db"),
           "--num-cpus", "2", "--state-dir", str(state)]
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        urls = _read_json_line(proc, log, time.monotonic() + STARTUP_S)
        with httpx.Client(base_url=urls["url"], timeout=30) as client:
            deadline = time.monotonic() + 60
            while client.get("/healthz").status_code != 200:
                assert time.monotonic() < deadline, "healthz never answered 200"
                time.sleep(0.5)
            yield {"client": client, "proc": proc, "urls": urls, "port": port, "events": tmp / "events.db",
                   "horror": horror, "log": log, "haproxy": state}
    finally:
        code = _stop(proc)
        shutil.rmtree(state, ignore_errors=True)
    assert code == 0, log.read_text()[-3000:]


def raw_get(port: int, target: str) -> tuple[int, dict]:
    """Sends the request line byte for byte, as curl does with an unencoded '+'."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    if b"transfer-encoding: chunked" in head.lower():
        decoded, rest = b"", body
        while rest:
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line, 16)
            if size == 0:
                break
            decoded, rest = decoded + rest[:size], rest[size + 2:]
        body = decoded
    return int(head.split()[1]), json.loads(body)


def test_recommend_over_http_with_an_unencoded_plus(server):
    engine, user, horror = labelled_engine(), labelled_engine().user_ids[5], server["horror"]
    status, body = raw_get(server["port"], f"/recommend?user={user}&k=5&ab=off&steer={horror}:+3.0")
    assert status == 200
    assert (body["steers"][0]["slug"], body["steers"][0]["op"], body["steers"][0]["value"]) == (horror, "+", 3.0)
    expected = engine.recommend(user, 5, steer=[f"{horror}:+3.0"])
    assert [i["id"] for i in body["items"]] == [engine.item_ids[r] for r in expected.rows]


def test_errors_over_http(server):
    client = server["client"]
    bad = client.get("/recommend", params={"user": labelled_engine().user_ids[0], "steer": "horror:3"})
    assert bad.status_code == 422 and bad.json()["parameter"] == "steer" and "TARGET:OPVALUE" in bad.json()["allowed"]
    missing = client.get("/recommend", params={"user": "nobody"})
    assert missing.status_code == 404 and "not in this bundle" in missing.json()["problem"]
    assert client.get("/openapi.json").json()["info"]["title"] == "steerrec"


def test_one_request_id_through_serve(server):
    client, user = server["client"], labelled_engine().user_ids[0]
    for headers in ({}, {"x-request-id": "client-trace-7"}):
        for params in ({"user": user, "ab": "off"}, {"user": "nobody"}):
            r = client.get("/recommend", params=params, headers=headers)
            assert r.headers.get_list("x-request-id") == [r.json()["request_id"]], (headers, params)
            assert r.json()["request_id"] == headers.get("x-request-id", r.json()["request_id"])


def test_the_replica_runs_without_torch(server):
    runtime = server["client"].get("/healthz").json()["runtime"]
    assert runtime["torch_loaded"] is False and runtime["onnx"] in ("cpu", "cuda")


def test_ab_events_are_durable(server):
    client, user = server["client"], labelled_engine().user_ids[9]
    rec = client.get("/recommend", params={"user": user, "k": 3}).json()
    assert rec["experiment"] == "genre" and rec["arm"] in ("control", "horror")
    click = {"request_id": rec["request_id"], "user": user, "item": rec["items"][0]["id"], "kind": "click"}
    assert client.post("/feedback", json=click).json()["stored"] is True
    assert client.post("/feedback", json=click).json()["duplicate"] is True
    with EventStore(server["events"], readonly=True) as store:  # acknowledged means on disk
        assert [e.request_id for e in store.exposures()] == [rec["request_id"]]
        assert [(f.request_id, f.item) for f in store.feedback()] == [(click["request_id"], click["item"])]


def test_haproxy_config_as_the_wrapper_rewrote_it(server):
    configs = list(server["haproxy"].rglob("haproxy.cfg"))
    assert configs, "HAProxy ingress did not write its config"
    lines = configs[0].read_text().splitlines()
    binds = [line.split()[1] for line in lines if line.strip().startswith("bind ")]
    assert binds and all(b.startswith("127.0.0.1:") for b in binds), binds
    assert not [line for line in lines if line.strip().endswith("local0 info")]
    # HAProxy, serving the requests of the other tests, runs with the header rule the wrapper added
    frontend = lines.index("frontend http_frontend")
    assert lines[frontend + 1].split() == ["http-request", "set-header", "x-request-disconnect-disabled", "?1"]


def test_prometheus_metrics_from_rays_export_port(server):
    client = server["client"]
    for _ in range(5):
        client.get("/recommend", params={"user": labelled_engine().user_ids[1], "steer": "3:+1", "ab": "off"})
    deadline, text = time.monotonic() + 60, ""
    while time.monotonic() < deadline:  # Ray's agent exports every few seconds
        text = httpx.get(server["urls"]["metrics_url"], timeout=10).text
        if "ray_steerrec_steering_uses_total" in text and "ray_steerrec_http_requests_total" in text:
            break
        time.sleep(2)
    assert 'route="/recommend"' in text and "ray_steerrec_http_request_duration_seconds_bucket_total" in text
    assert "ray_steerrec_steering_uses_total" in text and "ray_steerrec_ab_exposures_total" in text
