"""Limits and settings of the steering service, in one typed object.

Every request limit lives here so the 422 messages, the OpenAPI descriptions and the fuzz tests all
read the same numbers. Settings can come from the command line, a Ray Serve ``user_config``-style
dict, or ``STEERREC_<FIELD>`` environment variables.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Literal


@dataclass(frozen=True)
class ServiceConfig:
    max_k: int = 100
    """Largest ``k`` a request may ask for."""
    default_k: int = 10
    """``k`` when the request does not give one."""
    max_steers: int = 8
    """Most ``steer=`` parameters in one request."""
    max_filters: int = 8
    """Most ``filter=`` parameters in one request."""
    max_promotes: int = 8
    """Most ``promote=`` parameters in one request."""
    max_excludes: int = 8
    """Most ``exclude=`` parameters in one request."""
    max_magnitude: float = 50.0
    """Largest |value| of a steer or promote, in activation-scale units (also bounds ``*`` factors)."""
    max_threshold: float = 1000.0
    """Largest filter threshold, in activation-scale units."""
    max_query_length: int = 100
    """Longest ``q=`` neuron search string."""
    max_param_length: int = 256
    """Longest value of any other query parameter (ids, specs)."""
    max_list_limit: int = 1000
    """Most neurons one ``GET /neurons`` page returns."""
    popularity_fallback: bool = False
    """Serve the most popular unseen items to unknown users instead of answering 404."""
    flat_index_max_items: int = 200_000
    """Catalogues up to this size get an exact flat index; larger ones get ``ann_kind``."""
    ann_kind: Literal["hnsw", "ivf"] = "ivf"
    """Approximate index above ``flat_index_max_items``."""
    hnsw_m: int = 32
    """HNSW graph degree."""
    hnsw_ef_search: int = 256
    """HNSW search breadth (recall against speed)."""
    ivf_nprobe: int = 32
    """IVF lists probed per query."""
    scan_max_items: int = 32_768
    """Flat CPU catalogues up to this size rank every query from one numpy pass over the items,
    which is as fast as FAISS's search or faster there, the more so the more seen items it must
    skip (docs/steering.md); beyond, the index searches, and only a promote of at least 1/128 of the
    catalogue takes the pass. 0: that rule at every size."""
    candidate_margin: int = 16
    """Extra candidates fetched beyond k so float32 index scores never decide the float64 order."""
    use_gpu: bool = True
    """Use a GPU for ONNX Runtime and FAISS when one is present (runtime.py decides)."""
    verify_bundle: bool = True
    """Check every bundle checksum at load."""
    fastapi_telemetry: bool = False
    """FastAPI's own OpenTelemetry instrumentation. Off: it asks the global providers on every
    request (~20 us here) and the service exports its own Prometheus metrics."""
    max_target_length: int = 8192
    """Longest request target (path and query string) in bytes; longer is a 414 (limits.py)."""
    max_body_bytes: int = 16384
    """Largest request body in bytes; larger is a 413."""
    admin_token: str | None = field(default=None, repr=False)
    """Bearer token of the admin routes (admin.py), at least 16 characters; None disables them. Give
    it as STEERREC_ADMIN_TOKEN or through ``admin_token_file``, not on a command line."""
    admin_token_file: str | None = None
    """File holding the admin token (e.g. a mounted Kubernetes Secret); read at startup."""
    reload_poll_s: float = 1.0
    """How often a Ray Serve replica checks whether another one reloaded the bundle."""

    def __post_init__(self) -> None:
        if not 1 <= self.default_k <= self.max_k:
            raise ValueError(f"default_k must be in 1..max_k ({self.max_k}), got {self.default_k}")
        for name in ("max_steers", "max_filters", "max_promotes", "max_excludes", "max_query_length", "max_param_length",
                     "max_list_limit", "max_target_length", "max_body_bytes", "scan_max_items"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.max_magnitude <= 0 or self.max_threshold <= 0:
            raise ValueError("max_magnitude and max_threshold must be > 0")
        if self.reload_poll_s <= 0:
            raise ValueError("reload_poll_s must be > 0")
        if self.ann_kind not in ("hnsw", "ivf"):
            raise ValueError(f"ann_kind must be 'hnsw' or 'ivf', got {self.ann_kind!r}")

    def with_overrides(self, overrides: dict[str, Any] | None) -> ServiceConfig:
        """A copy with some fields replaced; unknown keys are an error, not a silent ignore."""
        if not overrides:
            return self
        known = {f.name for f in fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"unknown service setting(s) {unknown}; known: {sorted(known)}")
        return replace(self, **overrides)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> ServiceConfig:
        """Defaults overridden by ``STEERREC_MAX_K=50``-style variables (typed by the field)."""
        environ = os.environ if environ is None else environ
        base = cls()
        overrides: dict[str, Any] = {}
        for f in fields(cls):
            raw = environ.get(f"STEERREC_{f.name.upper()}")
            if raw is None:
                continue
            current = getattr(base, f.name)
            if isinstance(current, bool):
                overrides[f.name] = raw.strip().lower() in ("1", "true", "yes", "on")
            elif isinstance(current, int):
                overrides[f.name] = int(raw)
            elif isinstance(current, float):
                overrides[f.name] = float(raw)
            else:
                overrides[f.name] = raw
        return base.with_overrides(overrides)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
