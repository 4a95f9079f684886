"""``steerrec demo``: the README's main job on the embedded synthetic dataset, end to end."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="generate the synthetic dataset, train, evaluate and export a bundle",
                       description="The main job on the embedded default dataset.")
    p.add_argument("--out", default="bundles/demo", help="bundle directory (default bundles/demo)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import time

    from steerrec.training.pipeline import DataSpec, run_train

    from .report import print_eval

    start = time.perf_counter()
    print("[1/1] synthetic data -> MF (ALS) -> evaluation -> bundle")
    path, metrics = run_train(DataSpec(dataset="synthetic", seed=args.seed), args.out, "mf",
                              seed=args.seed, progress=not args.quiet)
    print_eval("MF on the synthetic catalogue", metrics)
    print(f"\nbundle: {path}  ({time.perf_counter() - start:.1f} s in all)")
    return 0
