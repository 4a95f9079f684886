"""``steerrec train``: dataset -> split -> base model -> evaluation -> bundle."""

from __future__ import annotations

import argparse

from .common import add_data_arguments, data_spec, parse_assignments


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a base recommender and export a bundle",
                       description="Train MF (or NCF) on a dataset, evaluate by full ranking, export a bundle.")
    add_data_arguments(p)
    p.add_argument("--model", choices=["mf", "ncf"], default="mf")
    p.add_argument("--dim", type=int, default=64, help="embedding width (default 64)")
    p.add_argument("--epochs", type=int, help="maximum epochs / ALS sweeps")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="any model option, e.g. --set solver=bpr --set alpha=3 (see docs/training.md)")
    p.add_argument("--no-early-stopping", action="store_true",
                   help="train for --epochs without a validation holdout")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--out", required=True, help="bundle directory to write")
    p.set_defaults(handler=run)


def model_overrides(args: argparse.Namespace) -> dict:
    overrides = {"dim": args.dim, "device": args.device, "seed": args.seed, "progress": not args.quiet}
    if args.epochs:
        overrides["epochs"] = args.epochs
    return overrides | parse_assignments(args.set)


def run(args: argparse.Namespace) -> int:
    from steerrec.training.pipeline import run_train

    from .report import print_eval

    path, metrics = run_train(data_spec(args), args.out, args.model, not args.no_early_stopping,
                              **model_overrides(args))
    print_eval(f"{args.model} on {args.dataset}", metrics)
    print(f"bundle written to {path}")
    return 0
