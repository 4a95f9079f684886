"""Base recommenders on the standard ML-1M split (../shared/data/splits/ml-1m).

Trains on train.tsv, evaluates on test.tsv by full ranking over training items with training items
excluded (Recall@K = hits / min(K, n_test)). Compares MF solved by ALS (BM25 confidence, our
default), plain ALS (uniform confidence: the `implicit` library's formulation), MF with BPR, and
NCF. Prints a Markdown table.

    python benchmarks/base_models.py [--data ../shared/data] [--models als,als-plain,bpr,ncf]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch
from steerrec.training import evaluate
from steerrec.training.data.split import from_files
from steerrec.training.pipeline import train_base

from steerrec.table import markdown_table

VARIANTS = {
    "als": ("mf", {}),
    "als-plain": ("mf", {"weighting": "none", "reg_exponent": 0.0, "reg": 30.0}),
    "bpr": ("mf", {"solver": "bpr", "epochs": 60}),
    "ncf": ("ncf", {}),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=os.environ.get("STEERREC_DATA", "../shared/data"))
    parser.add_argument("--models", default="als,als-plain,bpr,ncf")
    parser.add_argument("--dim", type=int, default=64)
    args = parser.parse_args()
    root = Path(args.data)
    split = from_files(root / "splits/ml-1m/train.tsv", root / "splits/ml-1m/test.tsv")
    print(f"ML-1M standard split: {split.train.n_users} users, {split.train.n_items} items, "
          f"{len(split.train)} train / {len(split.test)} rankable test interactions; "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"device {'cuda' if torch.cuda.is_available() else 'cpu'}")
    rows = []
    for name in args.models.split(","):
        kind, overrides = VARIANTS[name]
        start = time.perf_counter()
        model, result, _info = train_base(split, kind, early_stopping=True, dim=args.dim, progress=False, **overrides)
        train_seconds = time.perf_counter() - start
        m = evaluate.evaluate(model, split)
        rows.append((name, m["recall@20"], m["ndcg@20"], m["recall@10"], m["ndcg@10"], m["coverage@20"],
                     result.epochs_run, round(train_seconds, 1), round(result.seconds, 1)))
        print(f"  {name}: recall@20 {m['recall@20']:.4f} ndcg@20 {m['ndcg@20']:.4f} in {train_seconds:.1f} s", flush=True)
    print()
    print(markdown_table(["model", "Recall@20", "NDCG@20", "Recall@10", "NDCG@10", "coverage@20", "epochs",
                          "train s (with early stopping)", "final fit s"], rows))


if __name__ == "__main__":
    main()
