"""Size limits applied before any parsing: the request target (414) and the body (413).

The per-parameter limits (k, steers, magnitudes, each value's length) live in the routes and
answer 422; this bounds what a request can make the server read at all. A query string of
thousands of ``steer=`` parameters is refused here by its length, before it is split. Bodies are
counted whether or not they declare a Content-Length, so a chunked upload cannot exceed the limit.
"""

from __future__ import annotations

from .config import ServiceConfig
from .http_errors import REQUEST_ID_KEY, error_response
from .metrics import ServiceMetrics


class RequestLimits:
    """Plain ASGI middleware (no per-request task); one length check per request."""

    def __init__(self, app, config: ServiceConfig, metrics: ServiceMetrics):
        self.app, self.metrics = app, metrics
        self.max_target, self.max_body = config.max_target_length, config.max_body_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        target = len(scope.get("raw_path") or scope["path"].encode()) + len(scope.get("query_string", b""))
        if target > self.max_target:
            self.metrics.error("uri_too_long")
            return await error_response(
                414, "uri_too_long", f"the request target is {target} bytes, over the limit of {self.max_target}",
                allowed=f"at most {self.max_target} bytes of path and query string",
                request_id=scope.get(REQUEST_ID_KEY))(scope, receive, send)
        if scope["method"] in ("GET", "HEAD", "OPTIONS", "DELETE"):
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers", ())).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            return await self._too_large(int(declared), scope, receive, send)
        body, more = b"", True
        while more:  # read it all here (the routes would anyway), stopping at the limit
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_body:
                return await self._too_large(len(body), scope, receive, send)
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)

    async def _too_large(self, size: int, scope, receive, send):
        self.metrics.error("body_too_large")
        return await error_response(
            413, "body_too_large", f"the request body is {size}+ bytes, over the limit of {self.max_body}",
            parameter="body", allowed=f"at most {self.max_body} bytes", request_id=scope.get(REQUEST_ID_KEY))(
            scope, receive, send)
