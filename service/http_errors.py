"""Every failure answered as JSON that names the parameter, what was wrong and what is allowed.

FastAPI's own validation errors, unknown or repeated query parameters, grammar errors from the
steering parser and unknown users, items or neurons all end here as 4xx with the same body shape
(``schemas.ErrorBody``). Only a genuine bug becomes a 500, and then without internals.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from .config import ServiceConfig
from .engine import UnknownItem, UnknownUser
from .metrics import ServiceMetrics
from .neurons import UnknownNeuron
from .steering import EXCLUDE_FORM, FILTER_FORM, PROMOTE_FORM, STEER_FORM, SpecError

log = logging.getLogger(__name__)


REQUEST_ID_KEY = "steerrec.request_id"
"""Where a route leaves its request id in the ASGI scope, for the error handlers."""


class OrjsonResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)


class ServiceUnavailable(Exception):
    def __init__(self, kind: str, problem: str):
        self.kind, self.problem = kind, problem
        super().__init__(problem)


class RequestIdConflict(Exception):
    """A request id that already names another request's exposure (a client reusing its
    x-request-id): answering would leave that exposure unrecorded."""

    def __init__(self, request_id: str, user: str, experiment: str | None, arm: str | None):
        self.request_id = request_id
        super().__init__(f"request id {request_id!r} already names an exposure of user {user!r} "
                         f"(experiment {experiment!r}, arm {arm!r}); send a new x-request-id for a new request")


def allowed_forms(config: ServiceConfig, ab_values: list[str]) -> dict[str, str]:
    """The allowed form of every parameter, quoted in 422 bodies."""
    return {
        "user": "a user id of the served bundle",
        "item": "an item id of the served bundle",
        "k": f"an integer 1..{config.max_k} (default {config.default_k})",
        "steer": f"{STEER_FORM}; at most {config.max_steers} per request, |VALUE| <= {config.max_magnitude:g}",
        "filter": f"{FILTER_FORM}; at most {config.max_filters} per request",
        "promote": f"{PROMOTE_FORM}; at most {config.max_promotes} per request, |V| <= {config.max_magnitude:g}",
        "exclude": f"{EXCLUDE_FORM}; at most {config.max_excludes} per request",
        "exclude_seen": "true or false (default true)",
        "ab": "EXPERIMENT:ARM to force an arm, or off; one of " + ", ".join(ab_values[:20]),
        "q": f"text to search neuron labels and slugs for, at most {config.max_query_length} characters",
        "limit": f"an integer 1..{config.max_list_limit}",
        "offset": "an integer >= 0",
        "neuron": "a neuron index or slug (GET /neurons lists them)",
        "request_id": "the request_id of a /recommend response (1..100 characters)",
        "kind": "a lower-case word such as click, like or purchase",
    }


def error_response(status: int, error: str, problem: str, parameter: str | None = None, value: Any = None,
                   allowed: str | None = None, request_id: str | None = None) -> OrjsonResponse:
    if isinstance(value, str) and len(value) > 300:
        value = value[:300] + "..."
    body = {"error": error, "parameter": parameter, "value": value, "problem": problem, "allowed": allowed,
            "request_id": request_id}
    return OrjsonResponse(body, status_code=status)


def install_error_handlers(app: FastAPI, metrics: ServiceMetrics, forms: dict[str, str]) -> None:
    def request_id(request: Request) -> str | None:
        return request.scope.get(REQUEST_ID_KEY)

    @app.exception_handler(SpecError)
    async def _spec(request: Request, exc: SpecError):
        metrics.error("invalid_parameter")
        return error_response(422, "invalid_parameter", exc.problem, exc.parameter, exc.value,
                              exc.allowed or forms.get(exc.parameter), request_id(request))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):
        metrics.error("invalid_parameter")
        first = exc.errors()[0] if exc.errors() else {}
        loc = [str(p) for p in first.get("loc", ())]
        parameter = loc[-1] if loc else None
        problem = first.get("msg", "invalid request")
        if loc and loc[0] == "body" and (len(loc) == 1 or first.get("type") == "json_invalid"):
            parameter = "body"  # a JSON syntax error is located by character position, not by field
            detail = (first.get("ctx") or {}).get("error")
            problem = f"{problem}: {detail} (character {loc[-1]})" if detail and len(loc) > 1 else problem
        value = first.get("input")
        if not isinstance(value, (str, int, float, bool)):
            value = None  # echo scalars only, never a whole body
        body_form = "a JSON object {request_id, user, item, kind}" if parameter == "body" else None
        allowed = forms.get(parameter or "", body_form)
        return error_response(422, "invalid_parameter", problem, parameter, value, allowed, request_id(request))

    @app.exception_handler(UnknownUser)
    async def _user(request: Request, exc: UnknownUser):
        metrics.error("unknown_user")
        return error_response(404, "unknown_user", exc.reason, "user", exc.user, forms["user"], request_id(request))

    @app.exception_handler(UnknownItem)
    async def _item(request: Request, exc: UnknownItem):
        metrics.error("unknown_item")
        return error_response(404, "unknown_item", str(exc), "item", exc.item, forms["item"], request_id(request))

    @app.exception_handler(UnknownNeuron)
    async def _neuron(request: Request, exc: UnknownNeuron):
        metrics.error("unknown_neuron")
        return error_response(404, "unknown_neuron", str(exc), "neuron", exc.target, forms["neuron"],
                              request_id(request))

    @app.exception_handler(RequestIdConflict)
    async def _conflict(request: Request, exc: RequestIdConflict):
        metrics.error("request_id_conflict")
        return error_response(409, "request_id_conflict", str(exc), "x-request-id", exc.request_id,
                              "a request id not used before, or the one of a retry of the same request",
                              request_id(request))

    @app.exception_handler(ServiceUnavailable)
    async def _unavailable(request: Request, exc: ServiceUnavailable):
        metrics.error(exc.kind)
        return error_response(503, exc.kind, exc.problem, request_id=request_id(request))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        kind = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        metrics.error(kind)
        problem = (f"no route {request.method} {request.url.path}; see /docs" if exc.status_code in (404, 405)
                   else str(exc.detail))
        return error_response(exc.status_code, kind, problem, request_id=request_id(request))

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        metrics.error("internal_error")
        return error_response(500, "internal_error", "the server failed to answer; the error is logged",
                              request_id=request_id(request))
