"""``steerrec interpret``: codes -> concepts -> alignment -> labels -> tree -> neurons.json.

``interpret`` computes everything in memory (the report reuses it); ``write_interpretation`` adds
``neurons.json`` and ``concept_tree.json`` to the bundle and an ``interpret`` summary to the
manifest's metrics.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from steerrec import bundle as B

from . import alignment as AL
from . import concepts as CO
from .activations import Activations, bundle_activations, prefix_levels
from .hierarchy import Tree, TreeConfig, link_parents, tree_json
from .labels import DEAD, LOW, OK, LabelConfig, build_records, label_neurons
from .llm import LLMConfig, llm_label

USER_METADATA = "user_metadata.json"
"""Optional: ``{"columns": {"gender": ["F", ...], ...}}`` aligned with user rows."""


@dataclass
class InterpretConfig:
    min_support: int = 5
    """Concepts held by fewer items are not used (too rare to judge a neuron by)."""
    max_concepts_per_facet: int = 400
    """Most frequent concepts kept per facet (Last.FM has thousands of tags)."""
    ms_top: int = 200
    """Rows per neuron over which the monosemanticity scores are computed (its most activating)."""
    labels: LabelConfig = field(default_factory=LabelConfig)
    tree: TreeConfig = field(default_factory=TreeConfig)
    llm: LLMConfig | None = None
    """Optional LLM labeller; None (the default) leaves it off."""
    progress: bool = False

    def __post_init__(self) -> None:
        if self.min_support < 1 or self.max_concepts_per_facet < 1 or self.ms_top < 2:
            raise ValueError("min_support >= 1, max_concepts_per_facet >= 1 and ms_top >= 2 are required")


class Interpretation(NamedTuple):
    records: list[dict[str, Any]]
    """neurons.json rows."""
    tree: dict[str, Any]
    """concept_tree.json."""
    summary: dict[str, Any]
    """manifest.metrics["interpret"]."""
    concepts: CO.ConceptMatrix
    alignment: AL.Alignment
    activations: Activations
    level_L: np.ndarray
    prefixes: list[int]
    links: Tree
    popularity_I: np.ndarray
    titles: list[str]


def _content_matrix(cm: CO.ConceptMatrix) -> np.ndarray:
    """Concepts read from metadata (not derived popularity) for the metadata similarity."""
    mask = ~cm.facet_mask(CO.POPULARITY)
    return cm.matrix_IC[:, mask]


def _user_records(bundle: B.Bundle, z_UL: np.ndarray, cfg: InterpretConfig) -> list[list[dict]] | None:
    """Per neuron, the user concepts its top users share most (when the bundle has user metadata)."""
    if not bundle.has(USER_METADATA):
        return None
    raw = bundle.json(USER_METADATA)
    columns = raw.get("columns") if isinstance(raw, dict) else None
    if not isinstance(columns, dict):
        raise B.BundleError(f"{bundle.root / USER_METADATA}: expected {{\"columns\": {{name: [one value per user]}}}}")
    ucm = CO.user_concepts(columns, z_UL.shape[0], cfg.min_support, str(bundle.root / USER_METADATA))
    if ucm is None:
        return None
    ual = AL.align(z_UL, ucm.matrix_IC)
    out = []
    for i in range(z_UL.shape[1]):
        order = np.argsort(-ual.score[i])[:3]
        out.append([{"facet": ucm.concepts[j].facet, "concept": ucm.concepts[j].name,
                     "score": round(float(ual.score[i, j]), 4), "purity@20": round(float(ual.purity[20][i, j]), 4)}
                    for j in order if ual.score[i, j] > 0])
    return out


def interpret(bundle_dir: str | Path, cfg: InterpretConfig | None = None) -> Interpretation:
    cfg = cfg or InterpretConfig()
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    bundle = B.Bundle.open(bundle_dir)
    acts = bundle_activations(bundle)
    z_IL, z_UL = acts.items_IL, acts.users_UL
    n_latents = z_IL.shape[1]
    level_L, prefixes = prefix_levels(bundle, n_latents)
    meta = bundle.item_metadata()
    titles = [str(t) for t in meta["title"]]
    item_ids = bundle.item_ids()
    popularity = CO.item_popularity(bundle)
    cm = CO.item_concepts(meta, popularity, cfg.min_support, cfg.max_concepts_per_facet,
                          str(bundle.root / B.ITEM_METADATA))
    timings["load_encode"] = time.perf_counter() - t0

    t = time.perf_counter()
    al = AL.align(z_IL, cm.matrix_IC)
    pop_corr = AL.pearson(z_IL, np.log1p(popularity).astype(np.float64))
    year = meta.get("year")
    year_corr = None
    if year is not None:
        year_I = np.array([np.nan if y is None else float(y) for y in year])
        year_corr = AL.pearson(z_IL, year_I)
    top_ML, act_ML = AL.top_rows(z_IL, cfg.ms_top)
    lo_L = z_IL.min(0)
    ms_emb = AL.monosemanticity_embedding(top_ML, act_ML, bundle.factors()[1], lo_L)
    ms_meta = AL.monosemanticity_jaccard(top_ML, act_ML, _content_matrix(cm), lo_L)
    timings["alignment"] = time.perf_counter() - t

    t = time.perf_counter()
    alive = (z_IL > 0).any(0) | (z_UL > 0).any(0)
    anchors = bundle.manifest.metrics.get("sae", {}).get("anchors") or {"facet": "", "concepts": []}
    anchored = {i: cm.index(anchors["facet"], name) for i, name in enumerate(anchors["concepts"])
                if cm.has(anchors["facet"], name)}
    namings, slugs = label_neurons(al, cm, CO.narrower_than(cm), alive, cfg.labels, pop_corr, anchored)
    records = build_records(namings, slugs, al, cm, level_L, item_ids, titles, cfg.labels)
    users_by_neuron = _user_records(bundle, z_UL, cfg)
    positive_sum = (z_IL * (z_IL > 0)).sum(0) + (z_UL * (z_UL > 0)).sum(0)
    positive_n = (z_IL > 0).sum(0) + (z_UL > 0).sum(0)
    for i, rec in enumerate(records):
        rec["activation_rate_items"] = round(float((z_IL[:, i] > 0).mean()), 5)
        rec["activation_rate_users"] = round(float((z_UL[:, i] > 0).mean()), 5)
        rec["activation_scale"] = round(float(positive_sum[i] / positive_n[i]) if positive_n[i] else 0.0, 5)
        rec["ms_embedding"] = round(float(ms_emb[i]), 4)
        rec["ms_metadata"] = round(float(ms_meta[i]), 4)
        rec["popularity_corr"] = round(float(pop_corr[i]), 4)
        rec["popularity_neuron"] = bool(abs(pop_corr[i]) >= cfg.labels.popularity_min_corr and alive[i])
        if year_corr is not None:
            rec["year_corr"] = round(float(year_corr[i]), 4)
        names_decade = rec["status"] == OK and CO.DECADE in (
            rec.get("concept", {}).get("facet"), rec.get("qualifier", {}).get("facet"))
        rec["era_neuron"] = bool(names_decade or (year_corr is not None and alive[i]
                                                  and abs(year_corr[i]) >= cfg.labels.era_min_corr))
        if "closest_concept" in rec:
            c = rec["closest_concept"]
            thr, p, r, f = AL.best_threshold(z_IL[:, i], cm.matrix_IC[:, cm.index(c["facet"], c["name"])])
            rec |= {"threshold_best": round(thr, 5), "precision_best": round(p, 4), "recall_best": round(r, 4),
                    "f1_best": round(f, 4)}
        if users_by_neuron is not None:
            rec["user_concepts"] = users_by_neuron[i]
    for i, name in enumerate(anchors["concepts"]):  # a meaning taught from the metadata, not found: say so
        records[i]["anchor"] = {"facet": anchors["facet"], "name": name}
    timings["labels"] = time.perf_counter() - t

    t = time.perf_counter()
    W_dec = bundle.npz(B.SAE_WEIGHTS).get("W_dec")
    if W_dec is None or W_dec.shape[0] != n_latents:
        raise B.BundleError(f"{bundle.root / B.SAE_WEIGHTS}: expected W_dec [n_latents={n_latents}, d]")
    links = link_parents(np.concatenate([z_IL, z_UL]), W_dec, level_L, alive, cfg.tree)
    for i, rec in enumerate(records):
        rec["parent"] = None if links.parent_L[i] < 0 else int(links.parent_L[i])
    tree = tree_json(links, records, prefixes, cfg.tree)
    timings["tree"] = time.perf_counter() - t

    if cfg.llm is not None:
        t = time.perf_counter()
        facets = meta.get("facets") or {}
        item_facets = [{k: list(v[i]) for k, v in facets.items()} for i in range(len(titles))]
        llm_label(records, item_facets, cfg.llm, cfg.progress)
        timings["llm"] = time.perf_counter() - t

    timings["total"] = time.perf_counter() - t0
    summary = summarize(records, cm, al, level_L, prefixes, timings, cfg)
    return Interpretation(records, tree, summary, cm, al, acts, level_L, prefixes, links, popularity, titles)


def covered_concepts(records: list[dict[str, Any]], al: AL.Alignment, cm: CO.ConceptMatrix, facet: str,
                     min_purity: float = 0.8) -> tuple[int, int]:
    """(concepts of the facet named by an ok neuron's label with purity@10 >= min_purity, concepts)."""
    cols = np.flatnonzero(cm.facet_mask(facet))
    named = set()
    for rec in records:
        if rec["status"] != OK:
            continue
        for key in ("concept", "qualifier"):
            c = rec.get(key)
            if c and c["facet"] == facet:
                j = cm.index(facet, c["name"])
                if al.purity[10][rec["id"], j] >= min_purity:
                    named.add(j)
    return len(named), len(cols)


def summarize(records, cm, al, level_L, prefixes, timings, cfg) -> dict[str, Any]:
    status = [r["status"] for r in records]
    ok = [r for r in records if r["status"] == OK]
    live = [r for r in records if r["status"] != DEAD]
    out: dict[str, Any] = {
        "n_latents": len(records), "ok": status.count(OK), "low_confidence": status.count(LOW),
        "dead": status.count(DEAD), "concepts": len(cm.concepts),
        "ok_by_prefix": {str(p): sum(1 for r in ok if r["prefix"] == lv) for lv, p in enumerate(prefixes)},
        "kinds": {k: sum(1 for r in ok if r.get("kind") == k) for k in sorted({r.get("kind") for r in ok})},
        "median_purity@10_ok": round(float(np.median([r["purity@10"] for r in ok])), 4) if ok else None,
        "mean_ms_embedding_live": round(float(np.mean([r["ms_embedding"] for r in live])), 4) if live else None,
        "mean_ms_metadata_live": round(float(np.mean([r["ms_metadata"] for r in live])), 4) if live else None,
        "popularity_neurons": [{"id": r["id"], "slug": r["slug"], "corr": r["popularity_corr"]}
                               for r in sorted(live, key=lambda r: -abs(r["popularity_corr"]))
                               if r["popularity_neuron"]][:20],
        "era_neurons": [{"id": r["id"], "slug": r["slug"], "purity@10": r.get("purity@10"),
                         "year_corr": r.get("year_corr")} for r in live if r["era_neuron"]][:40],
        "seconds": {k: round(v, 3) for k, v in timings.items()},
    }
    for facet in cm.facets:
        if facet == CO.POPULARITY:
            continue
        named, total = covered_concepts(records, al, cm, facet)
        out[f"{facet}_named@10>=0.8"] = f"{named}/{total}"
    # The TF-IDF mapping of "From Knots to Knobs": the neuron carrying most of each concept.
    small = [j for j, c in enumerate(cm.concepts) if sum(1 for d in cm.concepts if d.facet == c.facet) <= 50]
    out["tfidf_neuron"] = {f"{cm.concepts[j].facet}:{cm.concepts[j].name}": int(np.argmax(al.tfidf[:, j]))
                           for j in small}
    if cfg.llm is not None:
        out["llm"] = {"model": cfg.llm.model, "labelled": sum(1 for r in records if "llm_label" in r)}
    return out


def write_interpretation(bundle_dir: str | Path, result: Interpretation) -> Path:
    """Validates every record against the bundle schema, then writes both files and the summary."""
    bundle = B.Bundle.open(bundle_dir)
    for rec in result.records:
        B.NeuronRecord.model_validate(rec)
    writer = B.BundleWriter(bundle.root, bundle.manifest)
    writer.add_json(B.NEURONS, result.records)
    writer.add_json(B.CONCEPT_TREE, result.tree)
    writer.manifest.metrics["interpret"] = result.summary
    root = writer.commit()
    B.Bundle.open(root).neurons()  # the reader's own checks: ids in order, unique slugs
    return root


def saved_interpretation(bundle_dir: str | Path, cfg: InterpretConfig | None = None) -> Interpretation:
    """The alignment recomputed (it is deterministic) with the labels, tree and summary the bundle
    holds, so a report shows exactly what the service steers by (LLM labels included)."""
    bundle = B.Bundle.open(bundle_dir)
    if not bundle.has(B.NEURONS) or not bundle.has(B.CONCEPT_TREE):
        raise B.BundleError(f"{bundle.root / B.NEURONS}: missing; run `steerrec interpret --bundle {bundle.root}` first")
    bundle.neurons()  # schema checks
    records, tree = bundle.json(B.NEURONS), bundle.json(B.CONCEPT_TREE)
    result = interpret(bundle_dir, cfg)
    def first_item(rec: dict) -> int | None:
        return rec["top_items"][0]["index"] if rec.get("top_items") else None

    # Top items depend only on the SAE: if they moved, the labels describe another SAE.
    if len(records) != len(result.records) or any(first_item(r) != first_item(s)
                                                  for r, s in zip(records, result.records)):
        raise B.BundleError(f"{bundle.root / B.NEURONS}: does not match the bundle's SAE any more; "
                            f"rerun `steerrec interpret --bundle {bundle.root}`")
    summary = dict(bundle.manifest.metrics.get("interpret") or result.summary)
    summary["seconds"] = dict(result.summary["seconds"])
    return result._replace(records=records, tree=tree, summary=summary)


def run_interpret(bundle_dir: str | Path, cfg: InterpretConfig | None = None) -> Interpretation:
    result = interpret(bundle_dir, cfg)
    write_interpretation(bundle_dir, result)
    return result
