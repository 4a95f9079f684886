"""One request id per request: in the response body, the ``x-request-id`` header and the events.

A request that brings its own ``x-request-id`` keeps it: a client's trace id, or Ray Serve's,
which Serve puts on every request it receives (generating one when the client sent none) and
echoes in the response itself. Without this, a response through Serve carried two different ids
in two ``x-request-id`` headers, and error bodies disagreed with the header. A client that retries
with the same id is telling the server it is the same request: its exposure is recorded once.
"""

from __future__ import annotations

import os
import re

from .http_errors import REQUEST_ID_KEY, error_response
from .metrics import ServiceMetrics

HEADER = b"x-request-id"
FORM = "1 to 100 visible ASCII characters (letters, digits, punctuation; no spaces)"
VALID = re.compile(r"[\x21-\x7e]{1,100}")


class RequestIds:
    """Plain ASGI middleware: puts the request id in ``scope[REQUEST_ID_KEY]``; with ``echo``, also
    in the response's ``x-request-id`` header (off under Ray Serve, which echoes it already)."""

    def __init__(self, app, metrics: ServiceMetrics, echo: bool = True):
        self.app, self.metrics, self.echo = app, metrics, echo

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        incoming = next((value for name, value in scope["headers"] if name == HEADER), None)
        if incoming is None:
            request_id = os.urandom(16).hex()  # as unique as uuid4, a third of the cost
        else:
            request_id = incoming.decode("latin-1")
            if not VALID.fullmatch(request_id):
                self.metrics.error("invalid_parameter")
                return await error_response(422, "invalid_parameter", "not a valid request id", "x-request-id",
                                            request_id, FORM)(scope, receive, send)
        scope[REQUEST_ID_KEY] = request_id
        if not self.echo:
            return await self.app(scope, receive, send)
        header = (HEADER, request_id.encode("latin-1"))

        async def send_with_id(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), header]}
            await send(message)

        await self.app(scope, receive, send_with_id)
