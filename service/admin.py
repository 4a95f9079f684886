"""Administrative routes: ``POST /admin/reload``, behind a bearer token.

The token comes from the server's own configuration (``STEERREC_ADMIN_TOKEN``, or a file named by
``admin_token_file``, e.g. a mounted Kubernetes Secret), never from a request. Without a token the
routes are not registered at all: the server has no administrative surface and ``/admin/*`` is a
plain 404. Tokens are compared in constant time; a missing or malformed ``Authorization`` header
is 401 (with ``WWW-Authenticate``), a wrong token 403.

The reload takes no parameters and no body: the bundle path is the one the server was started
with (reload.py), so a request can never make the server read a file of its choosing.
"""

from __future__ import annotations

import hmac
from pathlib import Path

from fastapi import FastAPI, Request
from starlette.responses import Response

from .config import ServiceConfig
from .http_errors import OrjsonResponse, error_response
from .query import parse_query
from .reload import Reloader, ReloadRefused

MIN_TOKEN_LENGTH = 16
"""Shorter tokens are refused at startup: the token is the only thing guarding a reload."""


def admin_token(config: ServiceConfig) -> str | None:
    """The configured token, or None when administration is disabled."""
    token = config.admin_token
    if config.admin_token_file:
        path = Path(config.admin_token_file)
        try:
            token = path.read_text().strip()
        except OSError as exc:
            raise ValueError(f"{path}: cannot read the admin token file: {exc.strerror or exc}") from None
    if token is not None and len(token) < MIN_TOKEN_LENGTH:
        raise ValueError(f"the admin token must be at least {MIN_TOKEN_LENGTH} characters "
                         "(generate one with `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)")
    return token or None


def _authorize(request: Request, token: str) -> Response | None:
    """None when the request carries the token, else the 401/403 response to send."""
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        response = error_response(401, "unauthorized", "administrative routes need an 'Authorization: Bearer "
                                  "<token>' header", parameter="authorization",
                                  allowed="Bearer <the server's admin token>")
        response.headers["www-authenticate"] = 'Bearer realm="steerrec-admin"'
        return response
    if not hmac.compare_digest(given.strip().encode(), token.encode()):
        return error_response(403, "forbidden", "the admin token is not valid", parameter="authorization",
                              allowed="Bearer <the server's admin token>")
    return None


def install_admin_routes(app: FastAPI, service) -> Reloader | None:
    """Registers /admin/reload when a token is configured; returns the service's reloader."""
    token = admin_token(service.config)
    if token is None:
        return None
    if getattr(service, "reloader", None) is None:
        service.reloader = Reloader(service, service.engine.bundle.root)
    forms: dict[str, str] = {}

    @app.post("/admin/reload", response_class=OrjsonResponse, tags=["admin"],
              summary="Reload the bundle from the path the server was started with (bearer token)")
    async def reload(request: Request) -> Response:
        denied = _authorize(request, token)
        if denied is not None:
            service.metrics.error("unauthorized" if denied.status_code == 401 else "forbidden")
            return denied
        parse_query(request, (), forms, service.config.max_param_length)  # any parameter is a 422
        if await request.body():
            service.metrics.error("invalid_parameter")
            return error_response(422, "invalid_parameter", "this route takes no body: the bundle path is fixed "
                                  "on the server (--bundle)", parameter="body", allowed="an empty body")
        try:
            return OrjsonResponse(await service.reloader.reload())
        except ReloadRefused as exc:
            service.metrics.error(exc.kind)
            serving = service.reloader.version
            return error_response(409, exc.kind, f"{exc.problem}; still serving {serving['target']} (manifest "
                                  f"{serving['manifest_sha256']})", allowed="a loadable bundle at the server's "
                                  f"bundle path, {service.reloader.path}")

    return service.reloader
