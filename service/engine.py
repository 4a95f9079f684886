"""The steering engine: a loaded bundle answering steered recommendations and explanations.

Plain numpy (plus ONNX Runtime and FAISS); no web framework and no Ray, so it is tested directly.
At load it verifies the bundle, encodes every user and item through the SAE encoder once, derives
each neuron's activation scale and decoder direction, and builds the FAISS index. A request then
costs one sparse code lookup, a few vector additions and one index search (on a CPU, one pass over
a catalogue of up to ``scan_max_items`` items instead: retrieval.py).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from steerrec.bundle import (
    NEURONS,
    SAE_DECODER,
    SAE_ENCODER,
    SAE_WEIGHTS,
    Bundle,
    BundleError,
)

from .codes import encode_sparse
from .config import ServiceConfig
from .neurons import NeuronCatalog, NeuronStats, distinct_values, facet_mask
from .retrieval import Boosts, ItemIndex
from .runtime import detect_runtime, onnx_session, session_device, set_cpu_threads
from .steering import (
    EXCLUDE_FORM,
    FILTER_FORM,
    PROMOTE_FORM,
    STEER_FORM,
    Exclude,
    Filter,
    Promote,
    SpecError,
    Steer,
    apply_steers,
    check_count,
    parse_exclude,
    parse_filter,
    parse_promote,
    parse_steer,
)

PARSED_SPECS = 4096
"""Parsed steer/filter/promote/exclude specs remembered per engine (forgotten all at once when full)."""


class EngineError(Exception):
    """A bundle this service cannot serve (the message says why and what to do)."""


class UnknownUser(LookupError):
    def __init__(self, user: str, reason: str):
        self.user, self.reason = user, reason
        super().__init__(reason)


class UnknownItem(LookupError):
    def __init__(self, item: str):
        self.item = item
        super().__init__(f"item {item!r} is not in this bundle's catalogue")


@dataclass
class Recommendation:
    user: str
    rows: np.ndarray
    """Item rows, best first."""
    scores: np.ndarray
    steers: list[dict[str, Any]] = field(default_factory=list)
    filters: list[dict[str, Any]] = field(default_factory=list)
    promotes: list[dict[str, Any]] = field(default_factory=list)
    excludes: list[dict[str, Any]] = field(default_factory=list)
    fallback: str | None = None
    encode_s: float = 0.0
    retrieval_s: float = 0.0


def _decoder_directions(decoder, weights: dict[str, np.ndarray], path: Path) -> tuple[np.ndarray, np.ndarray, bool]:
    """Per-neuron decoder directions (W_dec rows times the SAE scale), the decoder's constant
    dec(0), and whether the graph is affine, i.e. dec(z) = dec(0) + z @ directions."""
    w_dec = weights["W_dec"].astype(np.float64)
    directions = w_dec * float(np.asarray(weights.get("scale", 1.0)))
    n_latents = w_dec.shape[0]
    run = lambda z: decoder.run(["x_hat"], {"z": z.astype(np.float32)})[0].astype(np.float64)
    const = run(np.zeros((1, n_latents)))[0]
    graph_directions = run(np.eye(n_latents)) - const
    tol = 1e-4 * max(1.0, float(np.abs(directions).max()))
    if np.abs(graph_directions - directions).max() > tol:
        raise EngineError(f"{path}: the decoder graph disagrees with W_dec * scale in {SAE_WEIGHTS}; "
                          "re-export the SAE so both come from the same weights")
    probe = np.random.default_rng(0).random((8, n_latents)) * (np.random.default_rng(1).random((8, n_latents)) < 0.05)
    affine = bool(np.allclose(run(probe), const + probe @ directions, atol=tol, rtol=1e-4))
    return directions, const, affine


class FilterEffect(NamedTuple):
    rows: np.ndarray
    """int64 rows of the items the filter drops."""
    concept_items: int | None
    """Items carrying the neuron's labelled concept (``NeuronCatalog.labelled_items``), or None."""
    concept_items_removed: int | None
    """How many of them the filter drops: below ``concept_items``, some of the concept remains."""


class SteeringEngine:
    def __init__(self, bundle_dir: str | Path, config: ServiceConfig | None = None):
        self.config = config or ServiceConfig()
        started = time.perf_counter()
        try:
            bundle = Bundle.open(bundle_dir, verify=self.config.verify_bundle)
        except BundleError as exc:
            raise EngineError(str(exc)) from exc
        model = bundle.manifest.model
        if not model.dot_product:
            raise EngineError(
                f"{bundle.root}: model kind {model.kind!r} does not score by a dot product, so FAISS retrieval "
                "and SAE steering of the user embedding cannot reproduce its ranking; serve an MF bundle")
        if not bundle.has_sae:
            raise EngineError(f"{bundle.root}: no SAE in the bundle; run `steerrec sae --bundle {bundle.root}` first")
        self.bundle = bundle
        self.user_factors, item_factors, item_bias = bundle.factors()
        self.user_ids, self.item_ids = bundle.user_ids(), bundle.item_ids()
        self.user_row = {u: i for i, u in enumerate(self.user_ids)}
        self.item_row = {it: i for i, it in enumerate(self.item_ids)}
        meta = bundle.item_metadata()
        self.titles: list[str] = [str(t) for t in meta["title"]]
        self.facets: dict[str, list[Any]] = meta.get("facets") or {}
        self.facet_values = {f.casefold(): {v.casefold(): v for v in distinct_values(per_item)}
                             for f, per_item in self.facets.items()}
        self._facet_key = {f.casefold(): f for f in self.facets}
        self.seen_indptr, self.seen_indices = bundle.train_interactions()
        self.popularity = np.bincount(self.seen_indices, minlength=len(self.item_ids))
        self.popular_rows = np.argsort(-self.popularity, kind="stable")

        self.runtime = detect_runtime(self.config.use_gpu)
        set_cpu_threads(1)
        encoder = onnx_session(bundle.path(SAE_ENCODER), self.runtime)  # used at load only: all cores
        # One thread for the per-request decode: on these tiny runs ONNX Runtime's default pool keeps
        # a second thread spinning, which about doubles their CPU time and makes them no faster.
        self.decoder = onnx_session(bundle.path(SAE_DECODER), self.runtime, threads=1)
        self.onnx_device = session_device(encoder)
        self.directions, self.decoder_const, self.decoder_affine = _decoder_directions(
            self.decoder, bundle.npz(SAE_WEIGHTS), bundle.path(SAE_DECODER))
        self.n_latents = self.directions.shape[0]

        self.user_codes = encode_sparse(encoder, self.user_factors, self.n_latents)
        item_codes = encode_sparse(encoder, item_factors, self.n_latents)
        self.stats = NeuronStats.compute(self.user_codes, item_codes)
        self.scale = self.stats.activation_scale
        self.scale_units = self.scale.tolist()  # Python floats: steers' arithmetic on scalars
        records = bundle.neurons() if bundle.has(NEURONS) else None
        if records is not None and len(records) != self.n_latents:
            raise EngineError(f"{bundle.path(NEURONS)}: {len(records)} records for {self.n_latents} latents")
        self.catalog = NeuronCatalog(self.n_latents, records, self.stats, item_codes.transpose(), self.item_ids,
                                     self.titles, self.facets)
        self.index = ItemIndex(item_factors, item_bias, self.config, self.runtime)
        self._specs: dict[tuple[Any, str], Steer | Filter | Promote] = {}
        self._filter_effects: dict[tuple[int, float], FilterEffect] = {}
        self._excluded: dict[tuple[str, str], np.ndarray] = {}
        self.load_seconds = time.perf_counter() - started

    # -- parsing -------------------------------------------------------------------------------
    def parse(self, steer: Sequence[str] = (), filter: Sequence[str] = (),
              promote: Sequence[str] = ()) -> tuple[list[Steer], list[Filter], list[Promote]]:
        """Raw parameter strings -> resolved interventions; SpecError names the bad one."""
        c = self.config
        check_count("steer", list(steer), c.max_steers, STEER_FORM)
        check_count("filter", list(filter), c.max_filters, FILTER_FORM)
        check_count("promote", list(promote), c.max_promotes, PROMOTE_FORM)
        steers = [self._parsed(parse_steer, s, c.max_magnitude) for s in steer]
        filters = [self._parsed(parse_filter, f, c.max_threshold) for f in filter]
        promotes = [self._parsed(parse_promote, p, c.max_magnitude) for p in promote]
        for p in promotes:
            if p.item is not None and p.item not in self.item_row:
                raise SpecError("promote", p.raw, f"unknown item id {p.item!r}", PROMOTE_FORM)
        return steers, filters, promotes

    def _parsed(self, parser, raw: str, limit: float):
        """``parser(raw, ...)``, remembered: the same few specs (A/B arms, UI buttons) recur on every
        request, and parsing one costs ~2 us. The specs are immutable and resolve against this
        engine's catalogue, which never changes (a reload builds a new engine)."""
        key = (parser, raw)
        spec = self._specs.get(key)
        if spec is None:
            spec = parser(raw, self.catalog.resolve, limit)  # a SpecError is raised, not remembered
            if len(self._specs) >= PARSED_SPECS:
                self._specs.clear()
            self._specs[key] = spec
        return spec

    def parse_excludes(self, exclude: Sequence[str]) -> list[Exclude]:
        check_count("exclude", list(exclude), self.config.max_excludes, EXCLUDE_FORM)
        return [self._parsed(self._parse_exclude, e, 0.0) for e in exclude]

    def _parse_exclude(self, raw: str, _resolve, _limit) -> Exclude:
        return parse_exclude(raw, self.facet_values)  # values, not neurons: the catalogue's resolver is unused

    def excluded_rows(self, excludes: list[Exclude]) -> tuple[np.ndarray, list[int]]:
        """Rows of the items whose metadata carry an excluded value, and how many per exclusion."""
        per = []
        for e in excludes:
            rows = self._excluded.get((e.facet, e.value))
            if rows is None:
                rows = np.flatnonzero(facet_mask(self.facets, self._facet_key[e.facet], e.value)).astype(np.int64)
                self._excluded[(e.facet, e.value)] = rows  # bounded by the metadata's distinct values
            per.append(rows)
        return (np.concatenate(per) if per else np.zeros(0, np.int64)), [len(r) for r in per]

    @staticmethod
    def _excludes_understood(excludes: list[Exclude], counts: list[int]) -> list[dict[str, Any]]:
        return [{"facet": e.facet, "value": e.value, "items_removed": n} for e, n in zip(excludes, counts)]

    def _neuron_fields(self, j: int) -> dict[str, Any]:
        return {"neuron": j, "slug": self.catalog.slug(j), "label": self.catalog.label(j)}

    # -- user side -----------------------------------------------------------------------------
    def user_index(self, user: str) -> int:
        row = self.user_row.get(user)
        if row is None:
            raise UnknownUser(user, f"user {user!r} is not in this bundle ({len(self.user_ids)} users trained)")
        return row

    def steered_user(self, row: int, steers: list[Steer]) -> tuple[np.ndarray, dict[int, tuple[float, float]]]:
        """(u' float64 [d], {neuron: (before, after)} for the touched neurons).
        u' = u + dec(z') - dec(z): the SAE error term is kept, so no steer leaves u unchanged."""
        u = self.user_factors[row].astype(np.float64)
        if not steers:
            return u, {}
        cols, values = self.user_codes.row(row)  # sparse: a dense code row costs more than the steers
        touched = apply_steers(dict(zip(cols.tolist(), values.tolist())), steers, self.scale_units)
        if self.decoder_affine:
            for j, (before, after) in touched.items():
                u += (after - before) * self.directions[j]
            return u, touched
        z = self.user_codes.dense_row(row)
        z_steered = z.copy()
        for j, (_, after) in touched.items():
            z_steered[j] = after
        x_hat = self.decoder.run(["x_hat"], {"z": np.stack([z_steered, z]).astype(np.float32)})[0]
        return u + (x_hat[0].astype(np.float64) - x_hat[1]), touched

    def steered_code(self, row: int, touched: dict[int, tuple[float, float]]) -> np.ndarray:
        """The user's dense code z' after the steers (float64 [F])."""
        z = self.user_codes.dense_row(row).astype(np.float64)
        for j, (_, after) in touched.items():
            z[j] = after
        return z

    # -- item side -----------------------------------------------------------------------------
    def filter_effect(self, f: Filter) -> FilterEffect:
        """The rows ``f`` drops and how much of its neuron's labelled concept they are, remembered
        per (neuron, threshold): the same few filters recur, and the concept count scans them."""
        key = (f.neuron, f.threshold)
        effect = self._filter_effects.get(key)
        if effect is None:
            rows, acts = self.catalog.items_by_neuron.row(f.neuron)
            hit = rows[acts > f.threshold * self.scale[f.neuron]].astype(np.int64)
            concept = self.catalog.labelled_items(f.neuron)
            effect = FilterEffect(hit, None if concept is None else int(concept.sum()),
                                  None if concept is None else int(concept[hit].sum()))
            if len(self._filter_effects) >= PARSED_SPECS:
                self._filter_effects.clear()
            self._filter_effects[key] = effect
        return effect

    def filtered_rows(self, filters: list[Filter]) -> tuple[np.ndarray, list[FilterEffect]]:
        effects = [self.filter_effect(f) for f in filters]
        dropped = np.concatenate([e.rows for e in effects]) if effects else np.zeros(0, np.int64)
        return dropped, effects

    def _filters_understood(self, filters: list[Filter], effects: list[FilterEffect]) -> list[dict[str, Any]]:
        return [{"target": f.target, **self._neuron_fields(f.neuron), "threshold": f.threshold,
                 "items_removed": len(e.rows), "concept_items": e.concept_items,
                 "concept_items_removed": e.concept_items_removed} for f, e in zip(filters, effects)]

    def boosts(self, query_D: np.ndarray, promotes: list[Promote]) -> tuple[Boosts, list[int]]:
        """A promote raises an item's activation on neuron j by V scale units, i.e. moves its vector
        by V * scale_j * direction_j, which changes its score by that times u'.direction_j."""
        if not promotes:
            return Boosts.empty(), []
        ids, deltas, counts = [], [], []
        for p in promotes:
            rows = (np.array([self.item_row[p.item]]) if p.item is not None
                    else self.catalog.items_by_neuron.row(p.neuron)[0])
            gain = p.value * self.scale[p.neuron] * float(self.directions[p.neuron] @ query_D)
            ids.append(rows.astype(np.int64))
            deltas.append(np.full(len(rows), gain))
            counts.append(len(rows))
        if len(ids) == 1:  # one neuron's items, or one item: already unique
            return Boosts(ids[0], deltas[0]), counts
        uniq, inverse = np.unique(np.concatenate(ids), return_inverse=True)
        return Boosts(uniq, np.bincount(inverse, weights=np.concatenate(deltas), minlength=len(uniq))), counts

    def seen_rows(self, row: int) -> np.ndarray:
        return self.seen_indices[self.seen_indptr[row]:self.seen_indptr[row + 1]]

    # -- requests ------------------------------------------------------------------------------
    def recommend(self, user: str, k: int | None = None, steer: Sequence[str] = (), filter: Sequence[str] = (),
                  promote: Sequence[str] = (), exclude_seen: bool = True,
                  exclude: Sequence[str] = ()) -> Recommendation:
        k = self.config.default_k if k is None else k
        if not 1 <= k <= self.config.max_k:
            limit = self.config.max_k
            raise SpecError("k", str(k), f"must be between 1 and {limit}", f"an integer 1..{limit}")
        steers, filters, promotes = self.parse(steer, filter, promote)
        excludes = self.parse_excludes(exclude) if exclude else []
        if user not in self.user_row and self.config.popularity_fallback:
            return self._popular(user, k, steers, filters, promotes, excludes)
        row = self.user_index(user)
        t0 = time.perf_counter()
        query, touched = self.steered_user(row, steers)
        t1 = time.perf_counter()
        dropped, effects = self.filtered_rows(filters)
        excluded_counts: list[int] = []
        if excludes:
            ruled_out, excluded_counts = self.excluded_rows(excludes)
            dropped = np.concatenate([dropped, ruled_out])
        boosts, boosted_counts = self.boosts(query, promotes)
        unseen = np.concatenate([self.seen_rows(row), dropped]) if exclude_seen else dropped
        rows, scores = self.index.top_k(query, k, unseen, boosts)
        t2 = time.perf_counter()
        return Recommendation(
            user, rows, scores,
            steers=[{"target": s.target, **self._neuron_fields(s.neuron), "op": s.op, "value": s.value,
                     "activation_scale": self.scale_units[s.neuron],
                     "activation_before": touched[s.neuron][0], "activation_after": touched[s.neuron][1]}
                    for s in steers],
            filters=self._filters_understood(filters, effects),
            promotes=[{"target": p.target, **self._neuron_fields(p.neuron), "item": p.item, "value": p.value,
                       "items_affected": n} for p, n in zip(promotes, boosted_counts)],
            excludes=self._excludes_understood(excludes, excluded_counts),
            encode_s=t1 - t0, retrieval_s=t2 - t1)

    def _popular(self, user: str, k: int, steers, filters, promotes, excludes) -> Recommendation:
        if steers or promotes:
            raise UnknownUser(user, f"user {user!r} is not in this bundle; the popularity fallback has no "
                                    "embedding to steer, so it serves requests without steer= or promote= only")
        dropped, effects = self.filtered_rows(filters)
        ruled_out, excluded_counts = self.excluded_rows(excludes)
        dropped = np.concatenate([dropped, ruled_out])
        order = self.popular_rows[~np.isin(self.popular_rows, dropped)][:k] if len(dropped) else self.popular_rows[:k]
        return Recommendation(user, order, self.popularity[order].astype(np.float64), fallback="popularity",
                              filters=self._filters_understood(filters, effects),
                              excludes=self._excludes_understood(excludes, excluded_counts))

    def explain(self, user: str, item: str, steer: Sequence[str] = ()) -> dict[str, Any]:
        """The score of (user, item) split into per-neuron contributions z'_j * direction_j . v,
        the decoder's constant, the SAE error term and the item bias; the parts sum to the score."""
        steers, _, _ = self.parse(steer)
        row = self.user_index(user)
        irow = self.item_row.get(item)
        if irow is None:
            raise UnknownItem(item)
        query, touched = self.steered_user(row, steers)
        z_steered = self.steered_code(row, touched)
        u = self.user_factors[row].astype(np.float64)
        z = self.user_codes.dense_row(row).astype(np.float64)
        v = self.index.vectors[irow].astype(np.float64)
        per_direction = self.directions @ v
        active = np.flatnonzero(z_steered)
        contributions = z_steered[active] * per_direction[active]
        error = u - (z @ self.directions + self.decoder_const)
        parts = {"decoder_constant": float(self.decoder_const @ v), "error_term": float(error @ v),
                 "item_bias": float(self.index.bias[irow])}
        score = float(self.index.scores(query, np.array([irow]))[0])
        if not self.decoder_affine:  # contributions are the linear part; the remainder joins the error term
            parts["error_term"] = score - float(contributions.sum()) - parts["decoder_constant"] - parts["item_bias"]
        order = np.argsort(-np.abs(contributions), kind="stable")
        return {
            "user": user, "item": item, "title": self.titles[irow], "score": score,
            "steers": [{"target": s.target, **self._neuron_fields(s.neuron), "op": s.op, "value": s.value}
                       for s in steers],
            "neurons": [{**self._neuron_fields(int(active[i])), "activation": float(z_steered[active[i]]),
                         "contribution": float(contributions[i])} for i in order],
            "parts": parts,
            "sum_of_parts": float(contributions.sum() + sum(parts.values())),
        }

    def describe(self) -> dict[str, Any]:
        m = self.bundle.manifest
        return {"bundle": str(self.bundle.root), "dataset": m.dataset.name, "model": m.model.kind,
                "users": len(self.user_ids), "items": len(self.item_ids), "latents": self.n_latents,
                "neuron_labels": self.catalog.has_labels, "index": self.index.kind, "index_device": self.index.device,
                "onnx_device": self.onnx_device, "decoder_affine": self.decoder_affine,
                "load_seconds": round(self.load_seconds, 3)}
