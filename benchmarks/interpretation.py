"""Neuron interpretation quality and speed on one bundle (issue 9's targets).

Copies the bundle to a temporary directory (the input is never modified), runs `steerrec
interpret` and `steerrec report` on the copy, times both, and prints Markdown tables:

* genre facet (ML-1M): for each genre, the best purity@10 of any neuron (what the SAE offers,
  labelled or not), the neuron that owns the genre's plain slug (what
  `steer=<genre>:+2` moves), its purity@10, precision and recall as a detector of the genre
  ("fires at all", z > 0, and at the F1-optimal activation threshold); how many genres have a
  neuron whose label names them with purity@10 >= 0.8; how many labelled genre neurons have
  precision and recall >= 0.5;
* decade (era) neurons and popularity neurons with their purity / correlation;
* tag facet (Last.FM): distinct tags named by a neuron with purity@10 >= 0.8.

    python benchmarks/interpretation.py --bundle bundles/ml1m
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from steerrec.training.interpret import alignment as AL
from steerrec.training.interpret.pipeline import run_interpret, saved_interpretation
from steerrec.training.interpret.report import write_report

from steerrec.table import markdown_table


def names(rec: dict, facet: str) -> list[str]:
    """Concepts of ``facet`` that an ok neuron's label names."""
    if rec["status"] != "ok":
        return []
    return [rec[k]["name"] for k in ("concept", "qualifier") if rec.get(k) and rec[k]["facet"] == facet]


def facet_table(res, facet: str, min_purity: float = 0.8) -> tuple[list[tuple], dict]:
    cm, al, records = res.concepts, res.alignment, res.records
    by_slug = {r["slug"]: r for r in records}
    z = res.activations.items_IL
    rows, named_ok, owners_pr, owners_pr_best, all_pr, all_pr_best, all_named = [], 0, 0, 0, 0, 0, 0
    reachable = 0
    for j in np.flatnonzero(cm.facet_mask(facet)):
        concept = cm.concepts[j]
        # The SAE's ceiling: the best purity@10 of any neuron, labelled or not.
        ceiling = round(float(al.purity[10][:, j].max()), 2)
        reachable += ceiling >= min_purity
        named = [r for r in records if concept.name in names(r, facet)]
        good = [r for r in named if al.purity[10][r["id"], j] >= min_purity]
        owner = by_slug.get(concept.slug) or by_slug.get(f"{facet}-{concept.slug}")
        if owner is not None and concept.name not in names(owner, facet):
            owner = None
        named_ok += bool(good)
        pr = [r for r in named if al.precision[r["id"], j] >= 0.5 and al.recall[r["id"], j] >= 0.5]
        best = [AL.best_threshold(z[:, r["id"]], cm.matrix_IC[:, j]) for r in named]
        all_named += len(named)
        all_pr += len(pr)
        all_pr_best += sum(pb >= 0.5 and rb >= 0.5 for _, pb, rb, _ in best)
        if owner is None:
            rows.append((concept.name, int(cm.support_C[j]), ceiling) + ("-",) * 8 + (len(named), len(good)))
            continue
        i = owner["id"]
        p, r = float(al.precision[i, j]), float(al.recall[i, j])
        _, pb, rb, _ = AL.best_threshold(z[:, i], cm.matrix_IC[:, j])
        owners_pr += p >= 0.5 and r >= 0.5
        owners_pr_best += pb >= 0.5 and rb >= 0.5
        rows.append((concept.name, int(cm.support_C[j]), ceiling, owner["slug"], i, owner["prefix"],
                     round(float(al.purity[10][i, j]), 2), round(p, 3), round(r, 3), round(pb, 3), round(rb, 3),
                     len(named), len(good)))
    stats = {"concepts": len(rows), f"with any neuron (labelled or not) at purity@10 >= {min_purity}": reachable,
             f"named by a label with purity@10 >= {min_purity}": named_ok,
             "slug owners with P and R >= 0.5 (z > 0)": owners_pr,
             "slug owners with P and R >= 0.5 (best threshold)": owners_pr_best,
             "labelled neurons naming the facet": all_named, "of which P and R >= 0.5 (z > 0)": all_pr,
             "of which P and R >= 0.5 (best threshold)": all_pr_best}
    return rows, stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", required=True, help="bundle with an SAE (never modified: a copy is used)")
    parser.add_argument("--min-purity", type=float, default=0.8)
    args = parser.parse_args()
    src = Path(args.bundle)
    with tempfile.TemporaryDirectory(prefix="steerrec-interp-") as tmp:
        work = Path(tmp) / src.name
        shutil.copytree(src, work, ignore=shutil.ignore_patterns("report", "neurons.json", "concept_tree.json"))
        # A copied manifest may still list the interpretation files we skipped: re-interpreting
        # rewrites them, so drop the entries first.
        manifest = json.loads((work / "manifest.json").read_text())
        for name in ("neurons.json", "concept_tree.json"):
            manifest["files"].pop(name, None)
        (work / "manifest.json").write_text(json.dumps(manifest, indent=1))

        start = time.perf_counter()
        res = run_interpret(work)
        t_interpret = time.perf_counter() - start
        start = time.perf_counter()
        write_report(saved_interpretation(work), work)
        t_report = time.perf_counter() - start
        facets = res.concepts.facets

        print(f"bundle {src}: {res.summary['n_latents']} latents, prefixes {res.prefixes}; "
              f"{res.summary['ok']} labelled, {res.summary['low_confidence']} low confidence, "
              f"{res.summary['dead']} dead; {len(res.concepts.concepts)} concepts")
        for facet in ("genre", "tag", "subgenre"):
            if facet not in facets:
                continue
            rows, stats = facet_table(res, facet, args.min_purity)
            if facet == "tag":  # hundreds of tags: list the named ones only, most frequent first
                rows = [r for r in rows if r[-1] > 0]
            print(f"\n## {facet}\n")
            print(markdown_table([facet, "items", "best purity@10 (any neuron)", "slug owner", "id", "prefix",
                                  "purity@10", "precision", "recall",
                                  "P best t", "R best t", "neurons naming it",
                                  f"... with purity@10 >= {args.min_purity}"], rows))
            print()
            print(markdown_table(["figure", "value"], list(stats.items())))

        era = [r for r in res.records if r.get("era_neuron")]
        print("\n## era (decade) neurons\n")
        print(markdown_table(["id", "slug", "label", "prefix", "decade purity@10", "corr with year"],
                             [(r["id"], r["slug"], r["label"], r["prefix"], _decade_purity(res, r), r.get("year_corr"))
                              for r in era]) if era else "none")
        pop = sorted((r for r in res.records if r.get("popularity_neuron")), key=lambda r: -abs(r["popularity_corr"]))
        print("\n## popularity neurons (|corr with log popularity| >= threshold)\n")
        print(markdown_table(["id", "slug", "label", "prefix", "corr with log popularity"],
                             [(r["id"], r["slug"], r["label"], r["prefix"], r["popularity_corr"]) for r in pop])
              if pop else "none")
        print("\n## time\n")
        print(markdown_table(["step", "seconds"], [("interpret (encode, align, label, tree, write)", round(t_interpret, 2)),
                                                   ("report (recompute + plots + HTML)", round(t_report, 2)),
                                                   ("total", round(t_interpret + t_report, 2))]))


def _decade_purity(res, rec: dict) -> float | None:
    for key in ("concept", "qualifier"):
        c = rec.get(key)
        if c and c["facet"] == "decade":
            return round(float(res.alignment.purity[10][rec["id"], res.concepts.index("decade", c["name"])]), 2)
    return None


if __name__ == "__main__":
    main()
