"""Argument helpers shared by several subcommands."""

from __future__ import annotations

import argparse
import json
from typing import Any


def parse_assignments(pairs: list[str] | None) -> dict[str, Any]:
    """``["alpha=3", "hidden=[64,32]", "solver=bpr"]`` -> dict; values parse as JSON when they can."""
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--set expects KEY=VALUE, got {pair!r}")
        try:
            out[key.replace("-", "_")] = json.loads(raw)
        except json.JSONDecodeError:
            out[key.replace("-", "_")] = raw
    return out


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("data")
    g.add_argument("--dataset", default="synthetic",
                   help="synthetic (default, embedded), ml-1m, ml-100k, lastfm-2k, amazon, csv")
    g.add_argument("--data-path", help="local directory or file of the dataset")
    g.add_argument("--min-rating", type=float, help="implicit threshold (default: 4 for rating datasets)")
    g.add_argument("--kcore", type=int, default=0, help="k-core filter on users and items (0: off)")
    g.add_argument("--split", choices=["random", "last", "files"], default=None,
                   help="random per-user holdout (default), leave-last-out, or given files")
    g.add_argument("--test-fraction", type=float, default=0.2)
    g.add_argument("--train-file", help="train.tsv of a given split (user<TAB>item with header)")
    g.add_argument("--test-file", help="test.tsv of a given split")
    g.add_argument("--seed", type=int, default=0)


def data_spec(args: argparse.Namespace):
    from steerrec.training.pipeline import DataSpec

    split = args.split or ("files" if args.train_file or args.test_file else "random")
    return DataSpec(dataset=args.dataset, path=args.data_path, min_rating=args.min_rating, kcore=args.kcore,
                    split=split, test_fraction=args.test_fraction, train_file=args.train_file,
                    test_file=args.test_file, seed=args.seed)
