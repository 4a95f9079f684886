"""Query-string parsing for the hot routes, and the OpenAPI description of those parameters.

FastAPI's per-parameter validation costs ~85 us a request on this hardware (measured against a bare
route), more than the steering engine itself; these routes decode the raw query string themselves
(``query_items``, as Starlette would) and validate with the same rules and the same 422 bodies.
Their parameters are published in the OpenAPI schema through ``openapi_extra`` so the
documentation still lists every one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, unquote_to_bytes

from starlette.requests import Request

from .steering import SpecError

INTEGER = re.compile(r"^[+-]?[0-9]{1,18}$")
TRUE = {"true", "1", "yes", "on"}
FALSE = {"false", "0", "no", "off"}


@dataclass(frozen=True)
class Param:
    name: str
    kind: str
    """"string", "integer", "boolean" or "array" (a repeatable string)."""
    required: bool = False
    default: Any = None
    minimum: int | None = None
    maximum: int | None = None

    def openapi(self, description: str) -> dict[str, Any]:
        if self.kind == "array":
            schema: dict[str, Any] = {"type": "array", "items": {"type": "string"}}
        else:
            schema = {"type": self.kind}
            if self.default is not None:
                schema["default"] = self.default
            if self.minimum is not None:
                schema["minimum"] = self.minimum
            if self.maximum is not None:
                schema["maximum"] = self.maximum
        spec = {"name": self.name, "in": "query", "required": self.required, "schema": schema,
                "description": description}
        if self.kind == "array":
            spec |= {"style": "form", "explode": True}
        return spec


def openapi_parameters(params: tuple[Param, ...], forms: dict[str, str]) -> dict[str, Any]:
    return {"parameters": [p.openapi(forms.get(p.name, "")) for p in params]}


def query_items(query_string: bytes) -> list[tuple[str, str]]:
    """The (name, value) pairs of a raw query string, decoded exactly as Starlette's
    ``request.query_params`` decodes them (latin-1 bytes, ``+`` as space, %-escapes as UTF-8,
    blank values kept) at a third of the cost: most parameters need no unquoting."""
    items = []
    for part in query_string.decode("latin-1").split("&"):
        if part:
            name, _, value = part.partition("=")
            items.append((_unquote(name), _unquote(value)))
    return items


def _unquote(text: str) -> str:
    if "%" not in text and "+" not in text:
        return text
    text = text.replace("+", " ")
    if text.isascii():  # what unquote does with an ASCII string, without its generic splitting
        return unquote_to_bytes(text).decode("utf-8", "replace")
    return unquote(text)


def parse_query(request: Request, params: tuple[Param, ...], forms: dict[str, str], max_length: int,
                lengths: dict[str, int] | None = None) -> dict[str, Any]:
    """Validated values by name. Unknown, repeated-but-scalar and over-long parameters are errors,
    never silently ignored; so are missing required ones and values of the wrong type or range."""
    by_name = {p.name: p for p in params}
    raw: dict[str, list[str]] = {}
    for key, value in query_items(request.scope["query_string"]):
        p = by_name.get(key)
        if p is None:
            raise SpecError(key or "(empty name)", value, "unknown parameter",
                            "parameters of this route: " + ", ".join(sorted(by_name)) if by_name else "none")
        limit = (lengths or {}).get(key, max_length)
        if len(value) > limit:
            raise SpecError(key, value, f"longer than {limit} characters", forms.get(key, ""))
        if key in raw and p.kind != "array":
            raise SpecError(key, value, "given more than once; give it once", forms.get(key, ""))
        raw.setdefault(key, []).append(value)
    out: dict[str, Any] = {}
    for p in params:
        values = raw.get(p.name)
        if values is None:
            if p.required:
                raise SpecError(p.name, None, "required parameter is missing", forms.get(p.name, ""))
            out[p.name] = [] if p.kind == "array" else p.default
        elif p.kind == "array":
            out[p.name] = values
        elif p.kind == "integer":
            out[p.name] = _integer(p, values[0], forms)
        elif p.kind == "boolean":
            out[p.name] = _boolean(p, values[0], forms)
        else:
            out[p.name] = values[0]
    return out


def _integer(p: Param, value: str, forms: dict[str, str]) -> int:
    text = value.strip()
    if not INTEGER.match(text):
        raise SpecError(p.name, value, "not an integer", forms.get(p.name, ""))
    number = int(text)
    if (p.minimum is not None and number < p.minimum) or (p.maximum is not None and number > p.maximum):
        raise SpecError(p.name, value, f"out of range {p.minimum}..{p.maximum}", forms.get(p.name, ""))
    return number


def _boolean(p: Param, value: str, forms: dict[str, str]) -> bool:
    text = value.strip().lower()
    if text in TRUE:
        return True
    if text in FALSE:
        return False
    raise SpecError(p.name, value, "not a boolean", forms.get(p.name, ""))
