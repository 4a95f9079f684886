"""deploy/serve.yaml is a valid Serve config that builds, and the HAProxy wrapper moves the side
listeners to loopback, drops the access log and turns off the replicas' disconnect watch without
touching the client-facing frontend's bind."""

import shlex
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from ray.serve._private import constants as serve_constants
from ray.serve.schema import ServeDeploySchema
from steerrec.service import ingress
from steerrec.service.deployment import build_app

from ._ops_helpers import DEPLOY, dockerfile_stages
from ._steer_helpers import REPO

# The lines of Ray's HAProxy template that the wrapper must change (and one it must not).
TEMPLATE = """global
    log 127.0.0.1:514 local0 info
    stats socket /tmp/x/admin.sock mode 666 level admin expose-fd listeners
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend prometheus
    bind :{metrics}
    mode http
frontend http_frontend
    bind *:8000
listen stats
  bind *:{stats}
  stats enable
"""


def test_serve_yaml_is_a_valid_config_that_builds():
    config = yaml.safe_load((REPO / "deploy" / "serve.yaml").read_text())
    schema = ServeDeploySchema.model_validate(config)
    app = schema.applications[0]
    assert app.import_path == "steerrec.service.deployment:build_app"
    deployment = app.deployments[0]
    assert deployment.name == "steerrec" and deployment.max_ongoing_requests > 5
    assert deployment.ray_actor_options.num_gpus == 0 and deployment.autoscaling_config["max_replicas"] >= 2
    built = build_app(dict(app.args))
    assert Path(built._bound_deployment.init_kwargs["bundle"]).is_absolute()


def test_wrapper_rewrites_side_listeners_log_and_disconnect_watch(tmp_path, monkeypatch):
    monkeypatch.setattr(ingress, "real_haproxy_binary", lambda: "/bin/true")
    wrapper = ingress.write_wrapper(tmp_path, stats_port=18404, metrics_port=19101)
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(TEMPLATE.format(metrics=19101, stats=18404))
    for _ in range(2):  # HAProxy reloads run the wrapper again, on a fresh config or on the same one
        subprocess.run([str(wrapper), "-db", "-f", str(cfg), "-sf", "123"], check=True)
    text = cfg.read_text()
    assert "    bind 127.0.0.1:19101\n" in text and "  bind 127.0.0.1:18404\n" in text
    assert "    bind *:8000\n" in text  # the frontend keeps the host Serve was given
    assert "local0 info" not in text and "stats socket" in text
    header = "    http-request set-header x-request-disconnect-disabled ?1\n"
    assert text.count(header) == 1 and "frontend http_frontend\n" + header in text


def test_haproxy_environment_is_private_and_short(tmp_path):
    env = ingress.haproxy_environment()
    state = Path(env["RAY_SERVE_HAPROXY_CONFIG_FILE_LOC"]).parent
    try:
        assert env["RAY_SERVE_ENABLE_HA_PROXY"] == "1" and env["RAY_SERVE_HAPROXY_METRICS_ENABLED"] == "0"
        assert len(str(state)) <= ingress.MAX_STATE_DIR_LENGTH
        assert Path(env["RAY_SERVE_HAPROXY_BINARY_PATH"]).is_file()
        assert int(env["RAY_SERVE_HAPROXY_STATS_PORT"]) != int(env["RAY_SERVE_HAPROXY_METRICS_PORT"])
        assert env["RAY_SERVE_HAPROXY_NBTHREAD"] == str(ingress.default_haproxy_threads())
    finally:
        for p in state.iterdir():
            p.unlink()
        state.rmdir()
    try:
        ingress.haproxy_environment(tmp_path / ("x" * 40))
    except ValueError as exc:
        assert "too long" in str(exc)
    else:
        raise AssertionError("a state directory too long for HAProxy's socket paths was accepted")


def test_free_ports_come_from_the_band_no_one_hands_out(monkeypatch):
    """Ports are picked above Ray's worker range, below Serve's replica ports and the kernel's
    ephemeral range, so Ray starting up cannot take one before our server binds it; a taken port is
    skipped."""
    low, high = ingress.RAY_MAX_WORKER_PORT + 1, min(ingress.SERVE_MIN_REPLICA_PORT, ingress.ephemeral_port_floor())
    assert ingress.SERVE_MIN_REPLICA_PORT == serve_constants.RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT
    ports = {ingress.free_port() for _ in range(20)}
    assert all(low <= port < high for port in ports) and len(ports) > 1
    with socket.socket() as taken:
        busy, quiet = min(ports), max(ports)
        taken.bind(("127.0.0.1", busy))
        monkeypatch.setattr(ingress.random, "sample", lambda population, k: [busy, quiet])
        assert ingress.free_port(attempts=2) == quiet
        monkeypatch.setattr(ingress.random, "sample", lambda population, k: [busy])
        with pytest.raises(OSError, match="no free port on 127.0.0.1 among 1 tried"):
            ingress.free_port(attempts=1)


def test_free_port_falls_back_to_the_kernel_without_a_quiet_band(monkeypatch):
    floor = ingress.ephemeral_port_floor()
    monkeypatch.setattr(ingress, "ephemeral_port_floor", lambda: ingress.RAY_MAX_WORKER_PORT + 10)
    assert ingress.free_port() >= floor  # the kernel's pick, from its ephemeral range


def test_haproxy_threads_leave_the_cores_to_the_replicas(monkeypatch):
    for cores, threads in ((1, 1), (2, 1), (8, 2), (16, 4)):
        monkeypatch.setattr(ingress.os, "cpu_count", lambda cores=cores: cores)
        assert ingress.default_haproxy_threads() == threads
    env = ingress.haproxy_environment(threads=3)
    shutil.rmtree(Path(env["RAY_SERVE_HAPROXY_CONFIG_FILE_LOC"]).parent)
    assert env["RAY_SERVE_HAPROXY_NBTHREAD"] == "3"
    with pytest.raises(ValueError, match="at least one thread"):
        ingress.haproxy_environment(threads=0)


def test_kuberay_pods_run_haproxy_through_the_images_wrapper(tmp_path):
    """KubeRay sets Ray's environment from the manifest, so `steerrec serve` never writes a wrapper
    there: the serving image carries one, written for the ports the manifest gives HAProxy, and
    the manifest points Ray at it. The image's own command, run here, writes a wrapper whose
    rewritten config the real HAProxy accepts."""
    commands = [command for keyword, rest in dockerfile_stages()["serve"] if keyword == "RUN"
                for command in rest.split("&&") if "steerrec.service.ingress" in command]
    assert len(commands) == 1, commands
    argv = shlex.split(commands[0])
    assert argv[:3] == ["python", "-m", "steerrec.service.ingress"]
    directory = argv[argv.index("--write-wrapper") + 1]
    cluster = yaml.safe_load((DEPLOY / "kuberay" / "rayservice.yaml").read_text())["spec"]["rayClusterConfig"]
    pods = [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]
    for pod in pods:
        env = {e["name"]: e.get("value") for e in pod["template"]["spec"]["containers"][0]["env"]}
        assert env["RAY_SERVE_HAPROXY_BINARY_PATH"] == f"{directory}/{ingress.WRAPPER_NAME}"
        assert int(env["RAY_SERVE_HAPROXY_STATS_PORT"]) == ingress.RAY_STATS_PORT
        assert int(env["RAY_SERVE_HAPROXY_METRICS_PORT"]) == ingress.RAY_METRICS_PORT

    argv[argv.index("--write-wrapper") + 1] = str(tmp_path)
    written = subprocess.run([sys.executable, *argv[1:]], check=True, capture_output=True, text=True).stdout
    assert written.strip() == str(tmp_path / ingress.WRAPPER_NAME)
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(TEMPLATE.format(metrics=ingress.RAY_METRICS_PORT, stats=ingress.RAY_STATS_PORT))
    check = subprocess.run([written.strip(), "-c", "-f", str(cfg)], capture_output=True, text=True)
    assert check.returncode == 0 and "ignored" not in check.stderr, check.stderr  # HAProxy's config check
    text = cfg.read_text()
    assert f"bind 127.0.0.1:{ingress.RAY_STATS_PORT}" in text and f"bind 127.0.0.1:{ingress.RAY_METRICS_PORT}" in text
    assert "frontend http_frontend\n    http-request set-header x-request-disconnect-disabled ?1\n" in text
