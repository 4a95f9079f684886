"""``steerrec interpret`` and ``steerrec report``: name the SAE's neurons and show them."""

from __future__ import annotations

import argparse

from .common import parse_assignments

LABEL_KEYS = ("ok_threshold", "tie_weight", "facet_margin", "refine_margin", "qualifier_min", "qualifier_keep",
              "qualifier_implied", "qualifier_min_support", "era_min_corr", "popularity_min_corr", "popularity_dominance",
              "top_items")
TREE_KEYS = ("coactivation_weight", "min_score")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("interpret", help="label the SAE's neurons from item metadata; write neurons.json",
                       description="Align every SAE neuron with the bundle's metadata concepts (purity@K, "
                                   "precision/recall, point-biserial, TF-IDF, monosemanticity), give it a label, a "
                                   "unique steer slug and a confidence, link Matryoshka levels into a concept tree, "
                                   "and write neurons.json and concept_tree.json into the bundle.")
    p.add_argument("--bundle", required=True)
    p.add_argument("--llm-url", help="OpenAI-compatible endpoint (base URL or .../chat/completions); "
                                     "default $STEERREC_LLM_URL; the LLM labeller is off without one")
    p.add_argument("--llm-model", help="model name for the LLM labeller (default $STEERREC_LLM_MODEL)")
    p.add_argument("--llm-max-neurons", type=int, default=64, help="neurons to ask the LLM about")
    p.add_argument("--min-support", type=int, default=5, help="fewest items a concept needs to be used")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help=f"labelling or tree option: {', '.join(LABEL_KEYS + TREE_KEYS)}")
    p.add_argument("--report", action="store_true", help="also write the HTML report (<bundle>/report/)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(handler=run_interpret_cmd)

    r = sub.add_parser("report", help="write the HTML interpretation report with its plots",
                       description="Write an HTML report (concept x neuron heatmap, top items per neuron, concept "
                                   "tree, purity distribution, SAE beta trade-off) for an interpreted bundle.")
    r.add_argument("--bundle", required=True)
    r.add_argument("--out", help="HTML file or directory (default <bundle>/report/index.html)")
    r.set_defaults(handler=run_report_cmd)


def build_config(args: argparse.Namespace):
    from steerrec.training.interpret.hierarchy import TreeConfig
    from steerrec.training.interpret.labels import LabelConfig
    from steerrec.training.interpret.llm import LLMConfig
    from steerrec.training.interpret.pipeline import InterpretConfig

    options = parse_assignments(args.set)
    unknown = set(options) - set(LABEL_KEYS) - set(TREE_KEYS)
    if unknown:
        raise ValueError(f"unknown --set option(s) {sorted(unknown)}; options: {', '.join(LABEL_KEYS + TREE_KEYS)}")
    llm = LLMConfig.resolve(args.llm_url, args.llm_model, max_neurons=args.llm_max_neurons)
    return InterpretConfig(min_support=args.min_support,
                           labels=LabelConfig(**{k: v for k, v in options.items() if k in LABEL_KEYS}),
                           tree=TreeConfig(**{k: v for k, v in options.items() if k in TREE_KEYS}),
                           llm=llm, progress=not args.quiet)


def summary_rows(summary: dict) -> list[tuple[str, object]]:
    keys = ["n_latents", "ok", "low_confidence", "dead", "concepts", "median_purity@10_ok",
            "mean_ms_embedding_live", "mean_ms_metadata_live"]
    rows = [(k, summary[k]) for k in keys if k in summary]
    rows += [(k, v) for k, v in summary.items() if k.endswith("_named@10>=0.8")]
    rows += [(f"ok in prefix {p}", n) for p, n in summary.get("ok_by_prefix", {}).items()]
    rows.append(("popularity neurons", ", ".join(f"{p['slug']} (r={p['corr']:.2f})"
                                                 for p in summary.get("popularity_neurons", [])[:6]) or "none"))
    rows.append(("era neurons", ", ".join(e["slug"] for e in summary.get("era_neurons", [])[:8]) or "none"))
    rows += [(f"seconds {k}", v) for k, v in summary.get("seconds", {}).items()]
    return rows


def run_interpret_cmd(args: argparse.Namespace) -> int:
    import sys
    import time

    from steerrec.table import markdown_table
    from steerrec.training.interpret.llm import LLMError
    from steerrec.training.interpret.pipeline import run_interpret

    start = time.perf_counter()
    try:
        result = run_interpret(args.bundle, build_config(args))
    except LLMError as exc:  # the endpoint's fault, not a bug: one clear line
        print(f"steerrec interpret: LLM labeller failed: {exc}", file=sys.stderr)
        return 2
    ok = [r for r in result.records if r["status"] == "ok"]
    ok.sort(key=lambda r: (r["prefix"], -r["confidence"]))
    print(markdown_table(["id", "slug", "label", "prefix", "confidence", "purity@10", "precision", "recall"],
                         [(r["id"], r["slug"], r["label"], r["prefix"], r["confidence"], r.get("purity@10"),
                           r.get("precision"), r.get("recall")) for r in ok[:30]]))
    if len(ok) > 30:
        print(f"... and {len(ok) - 30} more labelled neurons in neurons.json")
    print()
    print(markdown_table(["figure", "value"], summary_rows(result.summary)))
    print(f"neurons.json and concept_tree.json written into {args.bundle}")
    if args.report:
        from steerrec.training.interpret.report import write_report

        print(f"report: {write_report(result, args.bundle)}")
    print(f"({time.perf_counter() - start:.1f} s in all)")
    return 0


def run_report_cmd(args: argparse.Namespace) -> int:
    import time

    from steerrec.training.interpret.pipeline import saved_interpretation
    from steerrec.training.interpret.report import write_report

    start = time.perf_counter()
    path = write_report(saved_interpretation(args.bundle), args.bundle, args.out)
    print(f"report: {path} ({time.perf_counter() - start:.1f} s)")
    return 0
