"""A/B experiments whose arms are steering configurations, and deterministic user assignment.

Configuration: a JSON file (``.json``) or TOML file (``.toml``, read with the standard library's
tomllib); both describe the same document, see ``deploy/experiments.example.json`` and
``docs/experiments.md``::

    {"layer_salt": "steerrec-layer",
     "experiments": [
       {"name": "genre-boost", "salt": "genre-boost-2024-06", "enabled": true, "traffic": 0.5,
        "control": "control",
        "arms": [{"name": "control", "weight": 2},
                 {"name": "horror", "weight": 1, "steer": ["horror:+3.0"]}]}]}

Assignment is two independent hashes of the user id:

1. Layering. ``sha256(layer_salt:user)`` maps the user to a point in [0, 1). Experiments own
   consecutive slices of that interval in file order, each as wide as its ``traffic``; disabled
   experiments keep their slice (its users get no experiment) so that switching one off never moves
   the users of another. A user is therefore in at most one experiment; points past the last slice
   are in none.
2. Arm. ``sha256(salt:user)`` with the experiment's own salt picks the arm by cumulative weight.
   A second hash is needed: reusing the layer point would put a narrow slice entirely in one arm.

Everything here is plain Python (no numpy, no torch) so the HTTP app can import it cheaply.
"""

from __future__ import annotations

import bisect
import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomllib
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
"""Experiment and arm names: no ``:`` (the override separator) and no spaces."""
OFF = "off"
"""Override value that opts a request out of every experiment."""
DEFAULT_LAYER_SALT = "steerrec-layer"


class ExperimentConfigError(ValueError):
    """An unusable experiments file; the message names the file and the field at fault."""


class OverrideError(ValueError):
    """A malformed or unknown ``EXPERIMENT:ARM`` override (the app answers 422 with ``allowed``)."""

    def __init__(self, value: str, problem: str, allowed: list[str]):
        self.value, self.problem, self.allowed = value, problem, allowed
        super().__init__(f"experiment override {value!r}: {problem}; allowed: {allowed}")


def unit_hash(salt: str, user_id: str) -> float:
    """Uniform in [0, 1): the first 8 bytes of sha256("salt:user") over 2**64. Stable across
    processes and Python versions (unlike ``hash``), so every replica agrees."""
    digest = hashlib.sha256(f"{salt}:{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


class ArmConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=NAME_PATTERN)
    weight: float = Field(gt=0, allow_inf_nan=False)
    """Relative share of the experiment's users; weights need not sum to anything."""
    steer: list[str] = []
    """User-side steers, ``TARGET:OPVALUE`` (``horror:+3.0``)."""
    filter: list[str] = []
    """Item filters, ``TARGET`` or ``TARGET:>T``."""
    promote: list[str] = []
    """Item promotions, ``TARGET:+V`` or ``ITEM_ID@TARGET:+V``."""

    @field_validator("steer", "filter", "promote")
    @classmethod
    def _non_blank(cls, specs: list[str]) -> list[str]:
        for spec in specs:
            if not spec.strip():
                raise ValueError("specs must be non-empty strings")
        return [spec.strip() for spec in specs]


class ExperimentConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=NAME_PATTERN)
    salt: str = Field(min_length=1)
    """Seeds the arm hash; change it to reshuffle users between arms."""
    enabled: bool = True
    traffic: float = Field(default=1.0, gt=0, le=1, allow_inf_nan=False)
    """Width of this experiment's slice of users (fraction of all users)."""
    arms: list[ArmConfig] = Field(min_length=1)
    control: str | None = None
    """Arm the others are compared with; default: the arm named "control", else the first arm."""

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, name: str) -> str:
        if name.lower() == OFF:
            raise ValueError(f"{OFF!r} is reserved for the override that disables experiments")
        return name

    @field_validator("arms")
    @classmethod
    def _unique_arms(cls, arms: list[ArmConfig]) -> list[ArmConfig]:
        names = [arm.name for arm in arms]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"arm names must be unique within an experiment; repeated: {repeated}")
        return arms

    @field_validator("control")
    @classmethod
    def _control_is_an_arm(cls, control: str | None, info) -> str | None:
        arms = info.data.get("arms")
        if control is not None and arms is not None and control not in [a.name for a in arms]:
            raise ValueError(f"{control!r} is not an arm of this experiment (arms: {[a.name for a in arms]})")
        return control

    @property
    def control_arm(self) -> str:
        if self.control is not None:
            return self.control
        names = [arm.name for arm in self.arms]
        return "control" if "control" in names else names[0]

    def arm(self, name: str) -> ArmConfig:
        for arm in self.arms:
            if arm.name == name:
                return arm
        raise KeyError(name)


class ExperimentsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    layer_salt: str = Field(default=DEFAULT_LAYER_SALT, min_length=1)
    """Seeds the layering hash that splits users between experiments."""
    experiments: list[ExperimentConfig] = []

    @field_validator("experiments")
    @classmethod
    def _exclusive(cls, experiments: list[ExperimentConfig], info) -> list[ExperimentConfig]:
        names = [e.name for e in experiments]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"experiment names must be unique; repeated: {repeated}")
        total = sum(e.traffic for e in experiments)
        if total > 1 + 1e-9:
            raise ValueError(
                f"traffic sums to {total:g} over all experiments (enabled or not); a user is in at most "
                "one experiment, so the slices must fit in 1.0: lower some `traffic` values"
            )
        layer_salt = info.data.get("layer_salt", DEFAULT_LAYER_SALT)
        for e in experiments:
            if e.salt == layer_salt:
                # The arm would then be a function of the slice position: a narrow slice lands in one arm.
                raise ValueError(f"experiment {e.name!r}: salt must differ from layer_salt {layer_salt!r}")
        return experiments


@dataclass(frozen=True)
class Assignment:
    """The experiment and arm serving one request, and the arm's steering to apply."""

    experiment: str
    arm: str
    steer: list[str] = field(default_factory=list)
    filter: list[str] = field(default_factory=list)
    promote: list[str] = field(default_factory=list)
    forced: bool = False
    """True when a QA override chose the arm; such exposures are kept out of reports."""
    control: bool = False
    """True when this arm is the experiment's control."""


def _loc(loc: Iterable[Any]) -> str:
    """("experiments", 0, "arms", 1, "weight") -> "experiments[0].arms[1].weight"."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _read_document(path: Path) -> Any:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ExperimentConfigError(f"{path}: experiments file does not exist") from None
    except OSError as exc:
        raise ExperimentConfigError(f"{path}: cannot read: {exc.strerror}") from None
    if path.suffix.lower() == ".toml":
        try:
            return tomllib.loads(raw.decode())
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ExperimentConfigError(f"{path}: invalid TOML: {exc}") from None
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ExperimentConfigError(f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    except UnicodeDecodeError as exc:
        raise ExperimentConfigError(f"{path}: not UTF-8 text: {exc}") from None


class ExperimentSet:
    """A validated experiments file: look-ups, assignment and QA overrides."""

    def __init__(self, config: ExperimentsFile, source: str = "<config>"):
        self.config = config
        self.source = source
        self._by_name = {e.name: e for e in config.experiments}
        # Slices [start, end) of the layer interval, in file order.
        self._slice_ends: list[float] = []
        end = 0.0
        for e in config.experiments:
            end += e.traffic
            self._slice_ends.append(end)
        self._arm_bounds = {e.name: _cumulative([a.weight for a in e.arms]) for e in config.experiments}

    @classmethod
    def load(cls, path: str | Path) -> ExperimentSet:
        path = Path(path)
        return cls.from_dict(_read_document(path), source=str(path))

    @classmethod
    def from_dict(cls, data: Any, source: str = "<config>") -> ExperimentSet:
        try:
            config = ExperimentsFile.model_validate(data)
        except ValidationError as exc:
            lines = [f"{source}: {_loc(err['loc'])}: {err['msg']}" for err in exc.errors()]
            raise ExperimentConfigError("\n".join(lines)) from None
        return cls(config, source)

    @classmethod
    def empty(cls) -> ExperimentSet:
        return cls(ExperimentsFile())

    @property
    def experiments(self) -> list[ExperimentConfig]:
        return list(self.config.experiments)

    def get(self, name: str) -> ExperimentConfig:
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"{self.source}: no experiment named {name!r} (experiments: {list(self._by_name)})") from None

    def assignment_for(self, experiment: str, arm: str, forced: bool = False) -> Assignment:
        e = self.get(experiment)
        a = e.arm(arm)
        return Assignment(experiment=e.name, arm=a.name, steer=list(a.steer), filter=list(a.filter),
                          promote=list(a.promote), forced=forced, control=a.name == e.control_arm)

    def experiment_of(self, user_id: str) -> ExperimentConfig | None:
        """The experiment whose slice holds this user, enabled or not (None past the last slice)."""
        point = unit_hash(self.config.layer_salt, user_id)
        index = bisect.bisect_right(self._slice_ends, point)
        return self.config.experiments[index] if index < len(self.config.experiments) else None

    def assign(self, user_id: str, override: str | None = None) -> Assignment | None:
        """The user's experiment and arm, or None when the user is in no running experiment.

        ``override`` is the request's QA parameter: ``EXPERIMENT:ARM`` forces that arm (also for
        a disabled experiment, so it can be checked before launch), ``off`` opts out, None or ""
        assigns by hash. A malformed or unknown override raises OverrideError (a ValueError) whose
        ``allowed`` lists every accepted value.
        """
        if override is not None and override.strip():
            return self._forced(override.strip())
        e = self.experiment_of(str(user_id))
        if e is None or not e.enabled:
            return None
        bounds = self._arm_bounds[e.name]
        index = min(bisect.bisect_right(bounds, unit_hash(e.salt, str(user_id))), len(bounds) - 1)
        return self.assignment_for(e.name, e.arms[index].name)

    def _forced(self, override: str) -> Assignment | None:
        if override.lower() == OFF:
            return None
        name, sep, arm = override.partition(":")
        if not sep or not name or not arm:
            raise OverrideError(override, f"must be EXPERIMENT:ARM or {OFF!r}", self.override_values())
        if name not in self._by_name:
            raise OverrideError(override, f"no experiment named {name!r}", self.override_values())
        arms = [a.name for a in self._by_name[name].arms]
        if arm not in arms:
            raise OverrideError(override, f"experiment {name!r} has no arm {arm!r}; arms: {arms}",
                                self.override_values())
        return self.assignment_for(name, arm, forced=True)

    def override_values(self) -> list[str]:
        """Every accepted override value, for error messages and API docs."""
        return [OFF] + [f"{e.name}:{a.name}" for e in self.config.experiments for a in e.arms]

    def check_specs(self, check: Callable[[list[str], list[str], list[str]], None]) -> None:
        """Validates every arm's specs with the engine's parser, at startup rather than per request.

        ``check(steer, filter, promote)`` raises ValueError for a spec the engine cannot apply
        (unknown slug, bad grammar); the error is re-raised naming the file and the arm.
        """
        for i, e in enumerate(self.config.experiments):
            for j, a in enumerate(e.arms):
                try:
                    check(list(a.steer), list(a.filter), list(a.promote))
                except ValueError as exc:
                    raise ExperimentConfigError(
                        f"{self.source}: experiments[{i}].arms[{j}] ({e.name}:{a.name}): {exc}") from None


def _cumulative(weights: list[float]) -> list[float]:
    """Upper bounds of each arm's share of [0, 1), the last forced to exactly 1."""
    total = sum(weights)
    bounds, running = [], 0.0
    for w in weights:
        running += w
        bounds.append(running / total)
    bounds[-1] = 1.0
    return bounds
