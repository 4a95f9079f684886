"""Per-arm click rates from logged events, with Wilson intervals and a test against control.

Definitions (``docs/experiments.md``):

- The unit of analysis is the user by default: assignment is per user, so a user's requests are
  not independent trials. rate = users with at least one click in the arm / users exposed in the
  arm. ``unit="exposure"`` uses requests instead (rate = exposures with a click / exposures); its
  intervals are too narrow when users make many requests.
- A click counts when its request id matches a logged exposure (in any of the files read) and the
  clicked item was among the items shown. Orphaned clicks (no exposure) and clicks on items not
  shown are counted in the notes, not in the rates.
- Forced exposures (QA overrides) and requests outside any experiment are left out.
- Each arm is compared with its experiment's control by a pooled two-proportion z-test
  (two-sided); with several arms the Holm-adjusted p-value is given too.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal, NamedTuple

from ..events import EventStore, Exposure, Feedback
from ..experiments import ExperimentSet
from .stats import holm, two_proportion_ztest, wilson_interval

Unit = Literal["user", "exposure"]


class ArmRow(NamedTuple):
    experiment: str
    arm: str
    control: bool
    exposures: int
    """Requests served by this arm (forced ones excluded)."""
    users: int
    """Distinct users exposed."""
    clicks: int
    """Valid click events (matched to an exposure, on a shown item)."""
    units: int
    """Trials: users or exposures, per the report's unit."""
    converted: int
    """Units with at least one valid click."""
    rate: float
    """converted / units (nan with no units)."""
    ci_low: float
    ci_high: float
    lift: float
    """rate / control rate - 1 (nan for the control, or when the control's rate is 0)."""
    z: float
    p_value: float
    """Two-sided z-test against the control (nan for the control itself)."""
    p_holm: float
    """Holm-adjusted over the experiment's non-control arms."""


class Report(NamedTuple):
    rows: list[ArmRow]
    unit: Unit
    kind: str
    confidence: float
    notes: list[str]


def load_events(paths: Sequence[str | Path]) -> tuple[list[Exposure], list[Feedback]]:
    """Reads and merges event files (one per replica), dropping cross-file duplicates."""
    exposures: dict[str, Exposure] = {}
    feedback: dict[tuple[str, str, str], Feedback] = {}
    for path in paths:
        with EventStore(path, readonly=True) as store:
            for e in store.exposures():
                exposures.setdefault(e.request_id, e)
            for f in store.feedback():
                feedback.setdefault((f.request_id, f.kind, f.item), f)
    return list(exposures.values()), list(feedback.values())


def build_report(exposures: Iterable[Exposure], feedback: Iterable[Feedback],
                 experiments: ExperimentSet | None = None, experiment: str | None = None,
                 kind: str = "click", unit: Unit = "user", confidence: float = 0.95) -> Report:
    if unit not in ("user", "exposure"):
        raise ValueError(f"unit must be 'user' or 'exposure', got {unit!r}")
    if experiments is not None and experiment is not None:
        try:
            experiments.get(experiment)
        except KeyError as exc:
            raise ValueError(exc.args[0]) from None
    by_request = {e.request_id: e for e in exposures}
    notes: list[str] = []

    # Exposures per arm, in config order first so zero-traffic arms still show.
    arms: dict[tuple[str, str], list[Exposure]] = {}
    if experiments is not None:
        for exp in experiments.experiments:
            if experiment in (None, exp.name):
                for a in exp.arms:
                    arms[(exp.name, a.name)] = []
    forced = outside = 0
    for e in by_request.values():
        if e.experiment is None:
            outside += 1
        elif e.forced:
            forced += 1
        elif experiment in (None, e.experiment):
            arms.setdefault((e.experiment, e.arm or ""), []).append(e)

    # Valid clicks per request id.
    clicked: dict[str, int] = defaultdict(int)
    orphaned = not_shown = 0
    for f in feedback:
        if f.kind != kind:
            continue
        e = by_request.get(f.request_id)
        if e is None:
            orphaned += 1
        elif f.item not in e.items:
            not_shown += 1
        else:
            clicked[f.request_id] += 1

    rows = []
    for exp_name in dict.fromkeys(name for name, _ in arms):
        by_arm = {arm: members for (name, arm), members in arms.items() if name == exp_name}
        control = _control_arm(exp_name, list(by_arm), experiments)
        rows += _experiment_rows(exp_name, by_arm, control, clicked, unit, confidence)
        if control is None:
            notes.append(f"{exp_name}: no control arm (no config and no arm named 'control'); no tests")
        overlap = _users_in_several_arms(by_arm.values())
        if unit == "user" and overlap:
            notes.append(f"{exp_name}: {overlap} users were exposed in more than one arm "
                         "(weights or salt changed mid-experiment?); they count in each")

    if forced:
        notes.append(f"{forced} forced (QA override) exposures left out")
    if outside:
        notes.append(f"{outside} exposures outside any experiment left out")
    if orphaned:
        notes.append(f"{orphaned} '{kind}' events with no logged exposure (orphaned) left out")
    if not_shown:
        notes.append(f"{not_shown} '{kind}' events on items that were not shown left out")
    return Report(rows, unit, kind, confidence, notes)


def _control_arm(experiment: str, arms: list[str], experiments: ExperimentSet | None) -> str | None:
    if experiments is not None:
        try:
            return experiments.get(experiment).control_arm
        except KeyError:
            pass
    return "control" if "control" in arms else None


class _Counts(NamedTuple):
    exposures: int
    users: int
    clicks: int
    units: int
    converted: int


def _arm_counts(exposures: list[Exposure], clicked: dict[str, int], unit: Unit) -> _Counts:
    users = {e.user for e in exposures}
    clicks = sum(clicked.get(e.request_id, 0) for e in exposures)
    if unit == "user":
        converted = len({e.user for e in exposures if clicked.get(e.request_id)})
        return _Counts(len(exposures), len(users), clicks, len(users), converted)
    converted = sum(1 for e in exposures if clicked.get(e.request_id))
    return _Counts(len(exposures), len(users), clicks, len(exposures), converted)


def _experiment_rows(experiment: str, by_arm: dict[str, list[Exposure]], control: str | None,
                     clicked: dict[str, int], unit: Unit, confidence: float) -> list[ArmRow]:
    counts = {arm: _arm_counts(members, clicked, unit) for arm, members in by_arm.items()}
    ctrl = counts.get(control) if control else None
    tests = {arm: (two_proportion_ztest(c.converted, c.units, ctrl.converted, ctrl.units)
                   if ctrl is not None and arm != control else (math.nan, math.nan))
             for arm, c in counts.items()}
    adjusted = dict(zip(tests, holm([p for _, p in tests.values()]), strict=True))
    ctrl_rate = ctrl.converted / ctrl.units if ctrl is not None and ctrl.units else math.nan
    rows = []
    for arm, c in counts.items():
        rate = c.converted / c.units if c.units else math.nan
        lift = rate / ctrl_rate - 1 if arm != control and ctrl_rate > 0 else math.nan
        low, high = wilson_interval(c.converted, c.units, confidence)
        z, p = tests[arm]
        rows.append(ArmRow(experiment, arm, arm == control, c.exposures, c.users, c.clicks, c.units, c.converted,
                           rate, low, high, lift, z, p, adjusted[arm]))
    return rows


def _users_in_several_arms(arms: Iterable[list[Exposure]]) -> int:
    seen: set[str] = set()
    overlap: set[str] = set()
    for members in arms:
        users = {e.user for e in members}
        overlap |= seen & users
        seen |= users
    return len(overlap)


def format_report(report: Report) -> str:
    """Markdown table plus notes."""
    from steerrec.table import markdown_table

    pct = round(report.confidence * 100, 2)
    headers = ["experiment", "arm", "exposures", "users", "clicks", f"{report.unit}s clicked",
               f"click rate ({report.unit})", f"{pct:g}% CI", "lift", "z", "p", "p (Holm)"]
    body = []
    for r in report.rows:
        body.append([r.experiment, r.arm + (" (control)" if r.control else ""), r.exposures, r.users, r.clicks,
                     f"{r.converted}/{r.units}", _num(r.rate),
                     f"[{r.ci_low:.4f}, {r.ci_high:.4f}]" if r.units else "-",
                     _pct(r.lift), _num(r.z, 3), _p(r.p_value), _p(r.p_holm)])
    out = markdown_table(headers, body) if body else "no exposures"
    if report.notes:
        out += "\n\n" + "\n".join(f"- {note}" for note in report.notes)
    return out


def _num(x: float, digits: int = 4) -> str:
    return "-" if math.isnan(x) else f"{x:.{digits}f}"


def _pct(x: float) -> str:
    return "-" if math.isnan(x) else f"{x * 100:+.1f}%"


def _p(x: float) -> str:
    if math.isnan(x):
        return "-"
    return f"{x:.2e}" if x < 1e-4 else f"{x:.4f}"
