"""Helpers of the deployment tests: the files under deploy/, the metric names their PromQL refers
to, and the Dockerfile's stages."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import yaml

from ._steer_helpers import REPO, require_demo

DEPLOY = REPO / "deploy"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
DASHBOARD = DEPLOY / "grafana" / "steerrec.json"

# PromQL words that look like metric names but are not (functions, aggregations, keywords).
_PROMQL_WORDS = {"sum", "min", "max", "avg", "count", "topk", "bottomk", "rate", "increase", "irate", "absent",
                 "histogram_quantile", "by", "without", "or", "and", "unless", "on", "ignoring", "bool",
                 "group_left", "group_right", "offset", "le", "inf", "nan"}
_NAME = re.compile(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()")
_SELECTOR = re.compile(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^}]*)\}")
_MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)\s*\"")
_GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")


def strip_strings(expr: str) -> str:
    """The expression without label values, durations and numbers, so only identifiers remain."""
    expr = re.sub(r'"[^"]*"', '""', expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)
    return re.sub(r"\b\d+(\.\d+)?[a-z]*\b", "", expr)


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression (heuristic: identifiers that are neither functions nor
    keywords nor label names inside {...} or by (...))."""
    text = strip_strings(expr)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = _GROUPING.sub("", text)
    return {n for n in _NAME.findall(text) if n.lower() not in _PROMQL_WORDS}


def label_uses(expr: str) -> tuple[dict[str, set[str]], set[str]]:
    """({metric: label names it is matched on}, label names grouped by in the expression)."""
    matched: dict[str, set[str]] = {}
    for name, inside in _SELECTOR.findall(expr):
        matched.setdefault(name, set()).update(_MATCHER.findall(inside))
    grouped = {label.strip() for group in _GROUPING.findall(expr) for label in group.split(",") if label.strip()}
    return matched, grouped


def alert_rules() -> list[dict]:
    return [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def dashboard_exprs() -> list[str]:
    return [t["expr"] for p in dashboard()["panels"] for t in p.get("targets", [])]


def all_exprs() -> list[str]:
    return [r["expr"] for r in alert_rules()] + dashboard_exprs()


def referenced_metrics() -> set[str]:
    return set().union(*(metric_names(e) for e in all_exprs()))


# -- Dockerfile ------------------------------------------------------------------------------------
def dockerfile_stages() -> dict[str, list[tuple[str, str]]]:
    """Stage name -> its instructions as (KEYWORD, rest), continuation lines joined."""
    text = re.sub(r"\\\n", " ", (REPO / "Dockerfile").read_text())
    stages: dict[str, list[tuple[str, str]]] = {}
    current = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            current = rest.split()[-1] if " AS " in rest.upper() else rest
            stages[current] = []
        if current is not None:
            stages[current].append((keyword, rest.strip()))
    return stages


def stage_env(instructions: list[tuple[str, str]]) -> dict[str, str]:
    env = {}
    for keyword, rest in instructions:
        if keyword == "ENV":
            for pair in shlex.split(rest):
                key, _, value = pair.partition("=")
                env[key] = value
    return env


def exec_form(instructions: list[tuple[str, str]], keyword: str) -> list[str]:
    """The JSON (exec) form of the last CMD or HEALTHCHECK CMD of a stage."""
    rest = [r for k, r in instructions if k == keyword][-1]
    return json.loads(rest[rest.index("CMD") + 3:] if keyword == "HEALTHCHECK" else rest)


# -- a bundle to serve -----------------------------------------------------------------------------
def serving_bundle() -> Path:
    """The demo bundle (built once per session when bundles/demo is absent: _steer_helpers)."""
    return require_demo()
