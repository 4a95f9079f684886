"""The neuron explorer: a web page served by the service itself, and the JSON it needs.

The page is plain HTML, CSS and ES modules under ``static/`` (no build step); it lives at
``/explorer/`` and ``/`` redirects there. It calls the public API (``/recommend``, ``/neurons``) plus
the read-only routes below, which the API lacked:

- ``GET /concepts/tree``: the Matryoshka concept tree (``concept_tree.json``, or derived from the
  ``parent`` fields of ``neurons.json``, or the bare prefix levels of an uninterpreted bundle);
- ``GET /experiments[?user=U]``: experiments, their arms and specs, the override value that previews
  each arm (``ab=EXPERIMENT:ARM``), and the arm the user would be assigned to;
- ``GET /users?q=&limit=&offset=``: user ids, to pick one;
- ``GET /users/{user}``: a user's profile: training items and strongest neurons.

Routes read ``service.engine`` on every request, so they follow an engine swapped at run time.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi import Path as PathParam
from starlette.responses import RedirectResponse, Response
from starlette.routing import Match, Mount
from starlette.staticfiles import StaticFiles

from steerrec.bundle import CONCEPT_TREE, BundleError

from .http_errors import OrjsonResponse, ServiceUnavailable
from .query import Param, openapi_parameters, parse_query
from .schemas import ConceptTree, ErrorBody, ExperimentList, UserList, UserProfile
from .steering import SpecError

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
"""The page's assets, shipped as package data (pyproject.toml: ``static/*``)."""
MOUNT = "/explorer"
PROFILE_NEURONS = 12
"""Strongest neurons listed in a user profile."""
PROFILE_ITEMS = 10
"""Training items listed in a user profile."""
ERRORS = {404: {"model": ErrorBody}, 422: {"model": ErrorBody}}


class ExplorerMount(Mount):
    """A mount that leaves itself in ``scope["route"]``, so the metrics middleware counts every
    asset request under one ``/explorer`` series instead of ``unmatched``."""

    def matches(self, scope):
        match, child_scope = super().matches(scope)
        if match != Match.NONE:
            child_scope["route"] = self
        return match, child_scope


def _tree_from_records(engine) -> dict[str, Any]:
    """The tree a bundle without ``concept_tree.json`` implies: ``parent`` links of neurons.json,
    or, without labels, every live neuron a root of its prefix level."""
    catalog = engine.catalog
    prefixes = [int(p) for p in (engine.bundle.manifest.sae or {}).get("prefixes", [engine.n_latents])]
    nodes, children = [], {}
    for j in range(engine.n_latents):
        s = catalog.summary(j)
        if s["dead"] or s["status"] == "dead":
            continue
        prefix = s["prefix"] if s["prefix"] is not None else int(np.searchsorted(prefixes, j, side="right"))
        nodes.append({"id": j, "slug": s["slug"], "label": s["label"], "prefix": prefix, "status": s["status"],
                      "confidence": s["confidence"], "parent": s["parent"], "children": []})
        if s["parent"] is not None:
            children.setdefault(s["parent"], []).append(j)
    live = {n["id"] for n in nodes}
    for n in nodes:
        n["children"] = [c for c in children.get(n["id"], []) if c in live]
        if n["parent"] is not None and n["parent"] not in live:
            n["parent"] = None  # a link to a dead or unknown neuron would leave the node unreachable
    return {"source": "neurons.json" if catalog.has_labels else "computed", "prefixes": prefixes, "method": None,
            "roots": [n["id"] for n in nodes if n["parent"] is None], "nodes": nodes}


def _tree_from_file(engine) -> dict[str, Any]:
    """``concept_tree.json`` as the interpretation stage wrote it, checked against the served SAE."""
    raw = engine.bundle.json(CONCEPT_TREE)
    tree = ConceptTree.model_validate({"source": "concept_tree.json", "method": None, **raw})
    ids = {n.id for n in tree.nodes}
    if any(not 0 <= i < engine.n_latents for i in ids) or any(r not in ids for r in tree.roots):
        raise BundleError(f"{engine.bundle.path(CONCEPT_TREE)}: node ids do not match the SAE's "
                          f"{engine.n_latents} latents")
    return tree.model_dump()


def concept_tree(engine) -> dict[str, Any]:
    if engine.bundle.has(CONCEPT_TREE):
        try:
            return _tree_from_file(engine)
        except (BundleError, ValueError) as exc:  # pydantic's ValidationError is a ValueError
            log.warning("concept tree unusable, derived from the neuron records instead: %s", exc)
    return _tree_from_records(engine)


def user_profile(engine, user: str) -> dict[str, Any]:
    row = engine.user_index(user)  # UnknownUser -> 404
    seen = engine.seen_rows(row)
    cols, vals = engine.user_codes.row(row)
    units = vals.astype(np.float64) / engine.scale[cols]
    order = np.lexsort((cols, -units))[:PROFILE_NEURONS]
    catalog = engine.catalog
    neurons = [{"neuron": int(cols[i]), "slug": catalog.slug(int(cols[i])), "label": catalog.label(int(cols[i])),
                "activation": float(vals[i]), "activation_units": float(units[i])} for i in order]
    return {"user": user, "n_seen": len(seen),
            "seen": [{"id": engine.item_ids[r], "title": engine.titles[r]} for r in seen[:PROFILE_ITEMS].tolist()],
            "neurons": neurons}


def experiments_listing(service, user: str | None) -> dict[str, Any]:
    experiments = service.experiments
    out: dict[str, Any] = {"experiments": [], "user": user, "assignment": None}
    if experiments is None:
        return out
    for e in experiments.experiments:
        control = e.control_arm
        out["experiments"].append({
            "name": e.name, "enabled": e.enabled, "traffic": e.traffic, "control": control,
            "arms": [{"name": a.name, "weight": a.weight, "control": a.name == control, "override": f"{e.name}:{a.name}",
                      "steer": list(a.steer), "filter": list(a.filter), "promote": list(a.promote)} for a in e.arms]})
    if user:
        assignment = experiments.assign(user)
        if assignment is not None:
            out["assignment"] = {"experiment": assignment.experiment, "arm": assignment.arm}
    return out


def install_explorer(app: FastAPI, service) -> None:
    """Adds the explorer's page and JSON routes to the app built by ``app.create_app``."""
    config = service.config
    users_params = (Param("q", "string"), Param("limit", "integer", default=50, minimum=1,
                                                maximum=config.max_list_limit),
                    Param("offset", "integer", default=0, minimum=0, maximum=10**9))
    experiments_params = (Param("user", "string"),)
    trees: dict[int, tuple[Any, dict[str, Any]]] = {}

    def query(request: Request, params: tuple[Param, ...] = (), lengths: dict[str, int] | None = None) -> dict:
        return parse_query(request, params, service.forms, service.config.max_param_length, lengths)

    @app.get("/", include_in_schema=False)
    async def root() -> Response:
        return RedirectResponse("explorer/", status_code=307)  # relative: works behind a path prefix

    @app.get("/concepts/tree", response_class=OrjsonResponse, responses={200: {"model": ConceptTree}},
             summary="The Matryoshka concept tree: live neurons linked to parents in earlier prefixes")
    async def tree(request: Request) -> Response:
        query(request)
        engine = service.engine
        cached = trees.get(id(engine))
        if cached is None or cached[0] is not engine:
            trees.clear()
            cached = trees[id(engine)] = (engine, concept_tree(engine))
        return OrjsonResponse(cached[1])

    @app.get("/experiments", response_class=OrjsonResponse, responses={200: {"model": ExperimentList}, **ERRORS},
             openapi_extra=openapi_parameters(experiments_params, service.forms),
             summary="A/B experiments, their arms and the ab= value that previews each arm")
    async def experiments(request: Request) -> Response:
        p = query(request, experiments_params)
        return OrjsonResponse(experiments_listing(service, p["user"]))

    @app.get("/users", response_class=OrjsonResponse, responses={200: {"model": UserList}, **ERRORS},
             openapi_extra=openapi_parameters(users_params, service.forms),
             summary="User ids of the served bundle; search with q=")
    async def users(request: Request) -> Response:
        p = query(request, users_params, {"q": config.max_query_length})
        ids, q = service.engine.user_ids, (p["q"] or "").strip()
        if q:
            needle = q.lower()
            prefix = [u for u in ids if u.lower().startswith(needle)]
            inside = [u for u in ids if needle in u.lower() and not u.lower().startswith(needle)]
            hits = sorted(prefix, key=lambda u: (len(u), u)) + inside
        else:
            hits = ids
        return OrjsonResponse({"total": len(hits), "offset": p["offset"], "limit": p["limit"], "query": p["q"],
                               "users": hits[p["offset"]:p["offset"] + p["limit"]]})

    @app.get("/users/{user}", response_class=OrjsonResponse, responses={200: {"model": UserProfile}, **ERRORS},
             summary="A user's training items and strongest neurons (activation in scale units)")
    async def user(request: Request, user: str = PathParam(description=service.forms["user"])) -> Response:
        query(request)
        if len(user) > config.max_param_length:
            raise SpecError("user", user, f"longer than {config.max_param_length} characters", service.forms["user"])
        return OrjsonResponse(user_profile(service.engine, user))

    if (STATIC / "index.html").is_file():
        app.router.routes.append(ExplorerMount(MOUNT, StaticFiles(directory=STATIC, html=True), name="explorer"))
    else:  # an install without the package data: say so rather than a bare 404
        @app.get(MOUNT + "/{path:path}", include_in_schema=False)
        async def missing(path: str) -> Response:
            raise ServiceUnavailable("explorer_unavailable",
                                     f"the explorer's assets are not installed ({STATIC} has no index.html); "
                                     "reinstall steerrec with its package data")
