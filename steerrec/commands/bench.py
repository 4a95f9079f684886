"""``steerrec bench``: measurements of a built bundle (the latency and scale benchmarks live in
benchmarks/, since they start servers)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="measure a bundle: steering effectiveness, concept separability",
                       description="Benchmarks that read a bundle and print a table.")
    bench = p.add_subparsers(dest="bench_command", metavar="BENCHMARK", required=True)
    s = bench.add_parser(
        "steering", help="share of each concept in top-K as its neuron is boosted, and after filtering",
        description="For every value of a facet (every genre by default), boost the neuron its slug names "
                    "for all users (steer=SLUG:+V at each strength) and filter its items (filter=SLUG); print "
                    "the concept's share of the top-K, the fraction of users at the target share, and the "
                    "Recall@K cost on the held-out test set. Needs neurons.json (steerrec interpret).")
    s.add_argument("--bundle", required=True, metavar="DIR")
    s.add_argument("--facet", default="genre", help="item metadata facet (default genre)")
    s.add_argument("--strengths", default="2,4,8,16", help="boost values, comma-separated (default 2,4,8,16)")
    s.add_argument("--k", type=int, default=20)
    s.add_argument("--target-share", type=float, default=0.8, help="share that counts as steered (default 0.8)")
    s.add_argument("--users", type=int, default=0, help="evenly spaced sample of users (default 0: all)")
    s.set_defaults(handler=run_steering)
    s = bench.add_parser(
        "separability", help="how much of each concept filter=SLUG removes, and what any filter could",
        description="For every value of a facet: the share of the concept's items (recall) and of the other "
                    "items (false-positive rate) that filter=SLUG drops, the same for the union of the neurons "
                    "whose label names the concept, and how many other items a linear probe on the item "
                    "embeddings must also drop to catch 95%%, 99%% and 100%% of the concept (a bound for any "
                    "neuron); then, in users' top-K lists, the share of users with none of the concept under "
                    "filter=SLUG against the fewest items the probe must drop to leave --none-share of them "
                    "with none. Needs neurons.json (steerrec interpret).")
    s.add_argument("--bundle", required=True, metavar="DIR")
    s.add_argument("--facet", default="genre", help="item metadata facet (default genre)")
    s.add_argument("--k", type=int, default=20, help="list length (default 20)")
    s.add_argument("--users", type=int, default=1000, help="evenly spaced sample of users (default 1000; 0: all)")
    s.add_argument("--none-share", type=float, default=0.96,
                   help="share of users who must see none of the concept (default 0.96)")
    s.set_defaults(handler=run_separability)


def run_steering(args: argparse.Namespace) -> int:
    import time

    from steerrec.service.engine import SteeringEngine
    from steerrec.service.steering_bench import (
        SteeringBenchConfig,
        best_strength,
        run_steering_bench,
    )
    from steerrec.table import markdown_table

    try:
        strengths = tuple(float(v) for v in args.strengths.split(","))
    except ValueError:
        raise ValueError(f"--strengths expects numbers separated by commas, got {args.strengths!r}") from None
    cfg = SteeringBenchConfig(facet=args.facet, strengths=strengths, k=args.k, target_share=args.target_share,
                              users=args.users)
    start = time.perf_counter()
    engine = SteeringEngine(args.bundle)
    results = run_steering_bench(engine, cfg)
    k = cfg.k
    headers = ["concept", "neuron", f"base share@{k}"]
    for v in strengths:
        headers += [f"+{v:g} share", f"+{v:g} users>={cfg.target_share:g}", f"+{v:g} recall"]
    headers += ["filter share", "filter users=0", "filter recall"]
    rows = []
    for r in results:
        row = [r.concept, r.slug or "(none)", r.base_share]
        for v in strengths:
            row += list(r.boosted[v]) if r.boosted else ["-", "-", "-"]
        row += list(r.filtered) if r.filtered else ["-", "-", "-"]
        rows.append(row)
    print(markdown_table(headers, rows, digits=3))
    best, count = best_strength(results, cfg)
    print(f"\n{count} of {len(results)} {cfg.facet} values reach >= {cfg.target_share:.0%} of the top-{k} for >= 90% "
          f"of users at strength +{best:g} (recall columns: relative Recall@{k} change; "
          f"{len(engine.user_ids) if not cfg.users else cfg.users} users; {time.perf_counter() - start:.1f} s)")
    return 0


def run_separability(args: argparse.Namespace) -> int:
    from steerrec.service.engine import SteeringEngine
    from steerrec.service.separability import (
        PROBE_RECALLS,
        READOUT_CANDIDATES,
        probe_filters,
        run_separability,
    )
    from steerrec.table import markdown_table

    engine = SteeringEngine(args.bundle)
    results = run_separability(engine, args.facet)
    headers = ["concept", "items", "filter recall", "filter FPR", "labelled neurons", "union recall", "union FPR",
               "best read-out", "best read-out AUC", "probe AUC"] + [f"probe FPR @ recall {r:g}" for r in PROBE_RECALLS]
    rows = [[r.concept, r.items, "-" if r.filter_recall is None else r.filter_recall,
             "-" if r.filter_fpr is None else r.filter_fpr, r.labelled, r.union_recall, r.union_fpr,
             r.readout_neuron, r.readout_auc, r.probe_auc] + [r.probe_fpr[x] for x in PROBE_RECALLS] for r in results]
    print(markdown_table(headers, rows, digits=3))
    print("\nrecall / FPR: share of the concept's items / of the other items dropped. The probe is a logistic "
          "regression on the item embeddings fit and scored on the same items; a neuron's pre-activation is "
          "linear in the embedding, so where the probe's FPR is high a neuron's filter cannot do much better. "
          "Best read-out: the neuron whose pre-activation (any threshold) best separates the concept, by AUC.")
    k = args.k
    dash = lambda x: "-" if x is None else x
    named = lambda j: "-" if j is None else f"{j} ({engine.catalog.label(j) or 'unlabelled'})"
    rows = [[r.concept, dash(r.filter_none), dash(r.filter_recall_change), named(r.best_neuron), dash(r.best_none), dash(r.best_fpr),
             named(r.readout_neuron), r.readout_fpr, r.readout_recall_change,
             r.dropped, r.recall, r.fpr, r.none, r.recall_change]
            for r in probe_filters(engine, args.facet, k=k, users=args.users, none_share=args.none_share)]
    print()
    print(markdown_table(["concept", "filter: users with none", f"filter: Recall@{k} change", "best neuron",
                          "best neuron: users with none", "best neuron: FPR", "best read-out", "best read-out: FPR",
                          f"best read-out: Recall@{k} change", "probe: items dropped", "probe: recall", "probe: FPR",
                          "probe: users with none", f"probe: Recall@{k} change"], rows, digits=3))
    print(f"\nIn top-{k} lists of {args.users or len(engine.user_ids)} users: filter=SLUG against the fewest of "
          f"the probe's highest-scored items whose removal leaves >= {args.none_share:g} of the users with none "
          "of the concept (found by bisection). Where the probe does it with a low FPR and the filter does not, "
          "the embedding separates the concept and the SAE's neuron is what falls short. Best neuron: of the "
          "neurons firing on at least half of the concept's items, the one whose filter leaves the most users "
          "with none, ties going to the one dropping fewer other items (whether another neuron than the slug's "
          "would do, and at what FPR). Best read-out: of the "
          f"{READOUT_CANDIDATES} neurons whose pre-activation separates the concept best, the one that empties "
          "as many lists dropping the fewest other items, at whatever threshold that takes (filter=J:>T drops a "
          "head of the items sorted by J's pre-activation).")
    return 0
