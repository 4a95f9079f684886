"""``steerrec ab``: analyse A/B experiments whose arms are steering configurations.

``ab report`` reads logged exposure and feedback events; ``ab simulate`` replays a bundle's
held-out interactions through every arm (or interleaves two arms) with the steering engine.
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ab", help="A/B experiments: click-rate report from events, offline simulation",
                       description="Analyse experiments defined in an experiments file (docs/experiments.md).")
    ab = p.add_subparsers(dest="ab_command", metavar="ACTION", required=True)

    r = ab.add_parser("report", help="per-arm click rate, confidence intervals and tests against control",
                      description="Per-arm exposures, clicks and click rate with Wilson intervals, and a "
                                  "two-proportion z-test of each arm against its experiment's control.")
    r.add_argument("--events", required=True, nargs="+", metavar="PATH",
                   help="events database(s); several files (one per replica) are merged")
    r.add_argument("--experiments", metavar="FILE", help="experiments file: names the controls, lists idle arms")
    r.add_argument("--experiment", metavar="NAME", help="only this experiment")
    r.add_argument("--kind", default="click", help="feedback kind counted as a success (default: click)")
    r.add_argument("--unit", choices=["user", "exposure"], default="user",
                   help="unit of analysis: user (default; assignment is per user) or exposure (request)")
    r.add_argument("--confidence", type=float, default=0.95)
    r.set_defaults(handler=run_report)

    s = ab.add_parser("simulate", help="replay held-out interactions against the arms",
                      description="Rank every test user under every arm; per-arm Recall@K, NDCG@K and concept "
                                  "share with bootstrap intervals, or team-draft interleaving of two arms.")
    s.add_argument("--bundle", required=True, metavar="DIR")
    s.add_argument("--experiments", required=True, metavar="FILE")
    s.add_argument("--experiment", metavar="NAME", help="which experiment (needed when the file has several)")
    s.add_argument("--k", type=int, default=20)
    s.add_argument("--concept", metavar="FACET=VALUE", help="report the share of this concept, e.g. genre=Horror")
    s.add_argument("--bootstrap", type=int, default=1000, metavar="N", help="bootstrap resamples (0: none)")
    s.add_argument("--confidence", type=float, default=0.95)
    s.add_argument("--interleave", metavar="ARM_A,ARM_B", help="team-draft interleave two arms instead")
    s.add_argument("--users", type=int, metavar="N", help="replay a random sample of N test users")
    s.add_argument("--include-seen", action="store_true", help="do not exclude training items")
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(handler=run_simulate)


def run_report(args: argparse.Namespace) -> int:
    from steerrec.service.abtest.report import build_report, format_report, load_events
    from steerrec.service.experiments import ExperimentSet

    experiments = ExperimentSet.load(args.experiments) if args.experiments else None
    exposures, feedback = load_events(args.events)
    report = build_report(exposures, feedback, experiments, args.experiment, kind=args.kind, unit=args.unit,
                          confidence=args.confidence)
    print(format_report(report))
    return 0


def pick_experiment(experiments, name: str | None):
    if name is not None:
        try:
            return experiments.get(name)
        except KeyError as exc:
            raise ValueError(exc.args[0]) from None
    if len(experiments.experiments) != 1:
        raise ValueError(f"{experiments.source}: holds {len(experiments.experiments)} experiments; choose one "
                         f"with --experiment ({[e.name for e in experiments.experiments]})")
    return experiments.experiments[0]


def run_simulate(args: argparse.Namespace) -> int:
    import numpy as np

    from steerrec.bundle import Bundle
    from steerrec.service.abtest.simulate import (
        concept_mask,
        engine_ranker,
        format_simulation,
        load_test_set,
        simulate,
    )
    from steerrec.service.experiments import ExperimentSet

    experiments = ExperimentSet.load(args.experiments)
    exp = pick_experiment(experiments, args.experiment)
    bundle = Bundle.open(args.bundle)
    test = load_test_set(bundle)
    users = test.users()
    if args.users is not None and args.users < len(users):
        users = np.sort(np.random.default_rng(args.seed).choice(users, size=args.users, replace=False))

    arms = [experiments.assignment_for(exp.name, a.name) for a in exp.arms]
    if args.interleave:
        names = [n.strip() for n in args.interleave.split(",")]
        known = {a.arm: a for a in arms}
        if len(names) != 2 or names[0] == names[1] or not all(n in known for n in names):
            raise ValueError(f"--interleave expects two different arms of {exp.name!r} as A,B; "
                             f"arms: {list(known)}")
    mask = concept_mask(bundle.item_metadata(), args.concept) if args.concept else None

    # Imported here: the engine pulls in onnxruntime and faiss, which `ab report` never needs.
    from steerrec.service.engine import SteeringEngine

    engine = SteeringEngine(bundle.root)
    experiments.check_specs(engine.parse)  # an arm the engine cannot apply fails now, naming file and arm
    rank = engine_ranker(engine, args.k, exclude_seen=not args.include_seen, user_ids=bundle.user_ids())
    if args.interleave:
        from steerrec.service.abtest.interleave import (
            format_interleaving,
            simulate_interleaving,
        )

        result = simulate_interleaving(rank, known[names[0]], known[names[1]], test, args.k, args.seed, users)
        print(format_interleaving(result))
        return 0
    sim = simulate(rank, arms, test, k=args.k, mask=mask, concept=args.concept, n_bootstrap=args.bootstrap,
                   confidence=args.confidence, seed=args.seed, users=users)
    print(f"experiment {exp.name}, bundle {bundle.root}")
    print(format_simulation(sim))
    return 0
