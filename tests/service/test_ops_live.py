"""The serving image's entrypoint run outside Docker, scraped by a real Prometheus.

One server for the module: the Dockerfile's `serve` CMD (a bare `steerrec serve`) with that stage's
ENV, except that it listens on 127.0.0.1 (these machines serve loopback only) and on free ports.
Then: the image's HEALTHCHECK command passes against it; every socket its process tree listens on
is a loopback one; and a Prometheus server (the Debian package's binary) scrapes Ray's metrics
export port every second, loads deploy/prometheus/alerts.yml, and answers, through its HTTP query
API, with the service's series and their labels, every metric the dashboard and the rules use, and
every one of their expressions."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml
from steerrec.service.ingress import free_port

from ._ops_helpers import (
    ALERTS,
    all_exprs,
    dockerfile_stages,
    exec_form,
    referenced_metrics,
    serving_bundle,
    stage_env,
)

pytestmark = pytest.mark.slow  # starts Ray (~20-60 s on two shared cores)

STARTUP_S = 240
PROMETHEUS_S = 60
"""Budget of the Prometheus part: start, scrape, every query."""
ONLY_WITH_AUTOSCALING = {"ray_serve_autoscaling_target_replicas"}
"""Dashboard series that Ray Serve exports only for a deployment with an autoscaling_config
(deploy/serve.yaml, the RayService); `steerrec serve` runs a fixed number of replicas."""


def _stop(proc: subprocess.Popen, grace: float) -> int | None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the process group this module started
            proc.wait(10)
    return proc.returncode


def _image_environment(tmp: Path) -> dict[str, str]:
    """The serve stage's ENV, adapted: loopback, free ports, a bundle built here, the venv first on
    PATH as /opt/venv/bin is in the image; plus an experiment and an event store for the A/B series."""
    env = stage_env(dockerfile_stages()["serve"])
    assert env["STEERREC_HOST"] == "0.0.0.0" and env["STEERREC_BUNDLE"] == "/srv/bundle"
    experiments = tmp / "experiments.json"
    experiments.write_text(json.dumps({"experiments": [{"name": "genre", "salt": "s", "arms": [
        {"name": "control", "weight": 1}, {"name": "boost", "weight": 1, "steer": ["3:+2"]}]}]}))
    return {**os.environ, **env, "STEERREC_BUNDLE": str(serving_bundle()), "STEERREC_HOST": "127.0.0.1",
            "STEERREC_PORT": str(free_port()), "STEERREC_METRICS_PORT": str(free_port()),
            "STEERREC_EXPERIMENTS": str(experiments), "STEERREC_EVENTS": str(tmp / "events.db"),
            "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "RAY_AUTH_MODE": "disabled"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("image")
    env = _image_environment(tmp)
    command = exec_form(dockerfile_stages()["serve"], "CMD")
    log = tmp / "serve.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(command, cwd=tmp, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        deadline, urls = time.monotonic() + STARTUP_S, None
        while urls is None:
            if proc.poll() is not None:
                pytest.fail(f"{command} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"{command} did not start within {STARTUP_S} s:\n{log.read_text()[-3000:]}")
            urls = next((json.loads(line) for line in log.read_text().splitlines()
                         if line.startswith("{") and '"url"' in line), None)
            time.sleep(0.5)
        with httpx.Client(base_url=urls["url"], timeout=30) as client:
            while client.get("/healthz").status_code != 200:
                assert time.monotonic() < deadline, "healthz never answered 200"
                time.sleep(0.5)
            yield {"proc": proc, "env": env, "urls": urls, "client": client, "tmp": tmp, "log": log}
    finally:
        code = _stop(proc, 90)
    assert code == 0, log.read_text()[-3000:]


def test_the_image_healthcheck_passes_and_fails(server):
    healthcheck = exec_form(dockerfile_stages()["serve"], "HEALTHCHECK")
    ok = subprocess.run(healthcheck, env=server["env"], capture_output=True, text=True, timeout=30, check=False)
    assert ok.returncode == 0, ok.stderr
    down = {**server["env"], "STEERREC_PORT": str(free_port())}  # nothing listens there
    failed = subprocess.run(healthcheck, env=down, capture_output=True, text=True, timeout=30, check=False)
    assert failed.returncode != 0 and "Connection refused" in failed.stderr


def _process_tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            children.setdefault(int(stat[stat.rindex(")") + 2:].split()[1]), []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, [])
    return found


def _listening(pids: list[int]) -> list[tuple[str, int, int]]:
    """(address, port, pid) of every TCP socket in LISTEN state held by these processes."""
    inodes: dict[str, int] = {}
    for pid in pids:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes[target[8:-1]] = pid
        except OSError:
            continue
    found = []
    # /proc/net hex addresses: 127.0.0.1, ::1 and the IPv4-mapped ::ffff:127.0.0.1.
    loopback = {"0100007F", "00000000000000000000000001000000", "0000000000000000FFFF00000100007F"}
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            address, port = fields[1].split(":")
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                found.append(("loopback" if address in loopback else address, int(port, 16), inodes[fields[9]]))
    return found


def test_every_listening_socket_is_on_loopback(server):
    sockets = _listening(_process_tree(server["proc"].pid))
    ports = {port for _, port, _ in sockets}
    assert int(server["env"]["STEERREC_PORT"]) in ports and int(server["env"]["STEERREC_METRICS_PORT"]) in ports
    exposed = [(a, p, Path(f"/proc/{pid}/cmdline").read_bytes()[:80]) for a, p, pid in sockets if a != "loopback"]
    assert not exposed, exposed


# -- a real Prometheus -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def prometheus(server):
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("the prometheus binary is absent (Debian package prometheus; .ci/run installs it)")
    tmp = server["tmp"] / "prometheus"
    tmp.mkdir()
    shutil.copy(ALERTS, tmp / "alerts.yml")
    target = server["urls"]["metrics_url"].removeprefix("http://").removesuffix("/metrics")
    (tmp / "prometheus.yml").write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": ["alerts.yml"],
        "scrape_configs": [{"job_name": "steerrec", "static_configs": [{"targets": [target]}]}]}))
    port = free_port()
    started = time.monotonic()
    with open(tmp / "prometheus.log", "w") as out:
        proc = subprocess.Popen([binary, f"--config.file={tmp / 'prometheus.yml'}", f"--storage.tsdb.path={tmp / 'data'}",
                                 f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=1h"],
                                cwd=tmp, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as api:
            while True:
                try:
                    if api.get("/-/ready").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if proc.poll() is not None or time.monotonic() - started > 20:
                    pytest.fail(f"prometheus did not start:\n{(tmp / 'prometheus.log').read_text()[-2000:]}")
                time.sleep(0.2)
            yield {"api": api, "started": started}
    finally:
        _stop(proc, 10)


def _query(api: httpx.Client, expr: str) -> list[dict]:
    body = api.get("/api/v1/query", params={"query": expr}).json()
    assert body["status"] == "success", (expr, body)
    return body["data"]["result"]


def _traffic(client: httpx.Client) -> dict:
    """Recommendations (steered, in the experiment's arms), a click, and one refused request."""
    from steerrec.bundle import Bundle

    users = Bundle.open(serving_bundle(), verify=False).user_ids()[:20]
    served = [client.get("/recommend", params={"user": u, "k": 5, "steer": "7:+1"}).json() for u in users]
    in_arm = next(r for r in served if r["arm"] is not None)
    click = {"request_id": in_arm["request_id"], "user": in_arm["user"], "item": in_arm["items"][0]["id"],
             "kind": "click"}
    assert client.post("/feedback", json=click).json()["stored"] is True
    assert client.get("/recommend", params={"user": users[0], "steer": "7:3"}).status_code == 422
    return in_arm


def test_prometheus_receives_the_service_metrics_with_their_labels(server, prometheus):
    api, started = prometheus["api"], prometheus["started"]
    in_arm = _traffic(server["client"])
    wanted = {
        'ray_steerrec_http_requests_total{route="/recommend",method="GET",status="200"}': {"route", "method", "status"},
        'ray_steerrec_http_request_duration_seconds_bucket_total{route="/recommend",le="+Inf"}': {"route", "le"},
        'ray_steerrec_steering_uses_total{kind="steer",neuron="7"}': {"kind", "neuron"},
        'ray_steerrec_errors_total{kind="invalid_parameter"}': {"kind"},
        f'ray_steerrec_ab_exposures_total{{experiment="genre",arm="{in_arm["arm"]}"}}': {"experiment", "arm"},
        f'ray_steerrec_ab_feedback_total{{experiment="genre",arm="{in_arm["arm"]}",kind="click"}}':
            {"experiment", "arm", "kind"},
        'ray_steerrec_encode_duration_seconds_count_total': set(),
        'up{job="steerrec"}': set(),
    }
    results: dict[str, list[dict]] = {}
    while time.monotonic() - started < PROMETHEUS_S:  # Ray's agent exports every few seconds
        results = {expr: _query(api, expr) for expr in wanted}
        if all(results.values()):
            break
        time.sleep(1)
    missing = [expr for expr, r in results.items() if not r]
    assert not missing, f"not in Prometheus after {PROMETHEUS_S} s: {missing}"
    for expr, labels in wanted.items():
        series = results[expr][0]["metric"]
        assert labels <= set(series), (expr, series)
        assert series["job"] == "steerrec" and series["instance"].startswith("127.0.0.1:")
    assert float(results['up{job="steerrec"}'][0]["value"][1]) == 1
    steered = results['ray_steerrec_steering_uses_total{kind="steer",neuron="7"}']
    assert sum(float(s["value"][1]) for s in steered) >= 19  # 20 requests steered neuron 7 (1 refused)
    assert time.monotonic() - started < PROMETHEUS_S


def test_every_dashboard_and_alert_metric_and_expression_is_answered(server, prometheus):
    api, started = prometheus["api"], prometheus["started"]
    names: set[str] = set()
    while time.monotonic() - started < PROMETHEUS_S:
        names = set(api.get("/api/v1/label/__name__/values").json()["data"])
        if referenced_metrics() - ONLY_WITH_AUTOSCALING <= names:
            break
        time.sleep(1)
    assert referenced_metrics() - ONLY_WITH_AUTOSCALING - names == set()
    for expr in all_exprs():
        _query(api, expr)  # parses and evaluates in the real server
    rules = api.get("/api/v1/rules").json()["data"]["groups"][0]["rules"]
    assert len(rules) == 6 and {r["health"] for r in rules} == {"ok"}, rules
    assert time.monotonic() - started < PROMETHEUS_S
