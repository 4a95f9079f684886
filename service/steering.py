"""The steering grammar and what each intervention does to an SAE code.

    steer=TARGET:OPVALUE       user side; OP one of + - = * ; repeatable
    filter=TARGET[:>T]         drop items whose activation on TARGET exceeds T (default 0)
    promote=[ITEM@]TARGET:+V   raise the activation on TARGET of its items (or of ITEM) by V
    exclude=FACET:VALUE        drop items whose metadata carry VALUE (a rule, not a neuron)

TARGET is a neuron index or slug. Values of ``+ - =`` and of promote/filter thresholds are in
units of the neuron's activation scale (its mean positive activation), so ``+1`` means "one
typical activation more" on every neuron; ``*`` multiplies. In a query string an unencoded ``+``
arrives as a space, so whitespace where the operator belongs reads as ``+``.

Parsing is pure text; resolution maps targets to neuron ids through a ``resolve`` callable and
turns every problem into a ``SpecError`` that names the parameter and the allowed form.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

Op = Literal["+", "-", "=", "*"]

STEER_FORM = ("TARGET:OPVALUE, TARGET a neuron index or slug, OP one of + - = * (add, subtract, set, "
              "scale), VALUE a number; e.g. steer=horror:+3 or steer=12:*0.5 (a '+' left unencoded in a "
              "URL arrives as a space and still means add)")
FILTER_FORM = ("TARGET or TARGET:>T, TARGET a neuron index or slug, T a number >= 0; "
               "e.g. filter=horror or filter=12:>0.5")
PROMOTE_FORM = ("TARGET:+V or ITEM_ID@TARGET:+V (or :-V), TARGET a neuron index or slug, V a number; "
                "e.g. promote=horror:+2 or promote=1193@horror:+2")

EXCLUDE_FORM = ("FACET:VALUE, an item metadata facet and one of its values (case-insensitive); "
                "e.g. exclude=genre:Drama")

_TARGET = r"(?P<target>[A-Za-z0-9][A-Za-z0-9_-]*)"
_NUMBER = r"(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_STEER_RE = re.compile(rf"^\s*{_TARGET}\s*:(?:(?P<op>[-+=*])|(?P<space>\s+))(?P<value>[-+]?{_NUMBER})\s*$")
_FILTER_RE = re.compile(rf"^\s*{_TARGET}\s*(?::\s*>\s*(?P<value>{_NUMBER}))?\s*$")
_EXCLUDE_RE = re.compile(r"^\s*(?P<facet>[A-Za-z0-9_-]+)\s*:\s*(?P<value>\S(?:.*\S)?)\s*$")
_PROMOTE_RE = re.compile(rf"^\s*(?:(?P<item>[^@\s][^@]*?)\s*@\s*)?{_TARGET}\s*:(?:(?P<op>[-+])|(?P<space>\s+))"
                         rf"(?P<value>{_NUMBER})\s*$")


class SpecError(ValueError):
    """A malformed or out-of-range request parameter (answered with 422)."""

    def __init__(self, parameter: str, value: str | None, problem: str, allowed: str):
        self.parameter, self.value, self.problem, self.allowed = parameter, value, problem, allowed
        super().__init__(f"{parameter}={value!r}: {problem}")

    def to_dict(self) -> dict:
        return {"error": "invalid_parameter", "parameter": self.parameter, "value": self.value,
                "problem": self.problem, "allowed": self.allowed}


@dataclass(frozen=True)
class Steer:
    raw: str
    target: str
    neuron: int
    op: Op
    value: float


@dataclass(frozen=True)
class Filter:
    raw: str
    target: str
    neuron: int
    threshold: float
    """In activation-scale units; items with activation > threshold * scale are dropped."""


@dataclass(frozen=True)
class Promote:
    raw: str
    target: str
    neuron: int
    value: float
    """Signed, in activation-scale units."""
    item: str | None
    """Raw item id for a single-item promote; None promotes every item active on the neuron."""


@dataclass(frozen=True)
class Exclude:
    raw: str
    facet: str
    value: str
    """As the item metadata spells it."""


Resolver = Callable[[str], int]


def _check_magnitude(param: str, raw: str, value: float, limit: float, allowed: str) -> None:
    if not math.isfinite(value) or abs(value) > limit:
        raise SpecError(param, raw, f"|value| must be at most {limit:g}", allowed)


def _resolve(param: str, raw: str, target: str, resolve: Resolver, allowed: str) -> int:
    try:
        return resolve(target)
    except LookupError as exc:
        raise SpecError(param, raw, str(exc.args[0]) if exc.args else f"unknown neuron {target!r}", allowed) from None


def parse_steer(raw: str, resolve: Resolver, max_magnitude: float) -> Steer:
    m = _STEER_RE.match(raw)
    if not m:
        problem = "not of the form TARGET:OPVALUE"
        if re.match(rf"^\s*{_TARGET}\s*:\s*{_NUMBER}\s*$", raw) and not re.search(r":\s", raw):
            problem = "missing operator before the value (write :+V to add, :=V to set)"
        raise SpecError("steer", raw, problem, STEER_FORM)
    op: Op = "+" if m["space"] else m["op"]  # type: ignore[assignment]
    text = m["value"]
    if text[0] in "+-" and op in "+-":
        raise SpecError("steer", raw, "a sign after + or - is ambiguous; give one operator", STEER_FORM)
    value = float(text)
    _check_magnitude("steer", raw, value, max_magnitude, STEER_FORM)
    neuron = _resolve("steer", raw, m["target"], resolve, STEER_FORM)
    return Steer(raw, m["target"], neuron, op, value)


def parse_filter(raw: str, resolve: Resolver, max_threshold: float) -> Filter:
    m = _FILTER_RE.match(raw)
    if not m:
        raise SpecError("filter", raw, "not of the form TARGET or TARGET:>T", FILTER_FORM)
    threshold = float(m["value"]) if m["value"] is not None else 0.0
    _check_magnitude("filter", raw, threshold, max_threshold, FILTER_FORM)
    neuron = _resolve("filter", raw, m["target"], resolve, FILTER_FORM)
    return Filter(raw, m["target"], neuron, threshold)


def parse_promote(raw: str, resolve: Resolver, max_magnitude: float) -> Promote:
    m = _PROMOTE_RE.match(raw)
    if not m:
        raise SpecError("promote", raw, "not of the form [ITEM_ID@]TARGET:+V", PROMOTE_FORM)
    value = float(m["value"]) * (-1.0 if m["op"] == "-" else 1.0)
    _check_magnitude("promote", raw, value, max_magnitude, PROMOTE_FORM)
    neuron = _resolve("promote", raw, m["target"], resolve, PROMOTE_FORM)
    return Promote(raw, m["target"], neuron, value, m["item"])


def parse_exclude(raw: str, facet_values: Mapping[str, Mapping[str, str]]) -> Exclude:
    """``facet_values``: facet -> {value casefolded: value as the metadata spells it}."""
    m = _EXCLUDE_RE.match(raw)
    if not m:
        raise SpecError("exclude", raw, "not of the form FACET:VALUE", EXCLUDE_FORM)
    facet = m["facet"].casefold()
    if facet not in facet_values:
        known = ", ".join(sorted(facet_values)) if facet_values else "none (this bundle's items have no facets)"
        raise SpecError("exclude", raw, f"unknown facet {m['facet']!r}; facets: {known}", EXCLUDE_FORM)
    values = facet_values[facet]
    value = values.get(m["value"].casefold())
    if value is None:
        close = difflib.get_close_matches(m["value"].casefold(), values, n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(values[c] for c in close)}?" if close else \
            f"; values: {', '.join(sorted(values.values())[:30])}"
        raise SpecError("exclude", raw, f"no item has {facet}={m['value']!r}{hint}", EXCLUDE_FORM)
    return Exclude(raw, facet, value)


def check_count(param: str, values: list[str], limit: int, allowed: str) -> None:
    if len(values) > limit:
        raise SpecError(param, None, f"{len(values)} given; at most {limit} per request", allowed)


def apply_steers(code: Mapping[int, float], steers: list[Steer],
                 scale_F: Sequence[float]) -> dict[int, tuple[float, float]]:
    """Applies the steers in order to a user's code ({neuron: activation}, absent = 0); returns
    {neuron: (before, after)} for every touched neuron (raw activations). Several steers on one
    neuron compose left to right. Activations may go negative: the decoder is linear, so that
    pushes away from the concept."""
    touched: dict[int, tuple[float, float]] = {}
    for s in steers:
        first, before = touched.get(s.neuron) or (code.get(s.neuron, 0.0),) * 2
        unit = scale_F[s.neuron]
        if s.op == "+":
            after = before + s.value * unit
        elif s.op == "-":
            after = before - s.value * unit
        elif s.op == "=":
            after = s.value * unit
        else:
            after = before * s.value
        touched[s.neuron] = (first, after)
    return touched
