"""Printing of evaluation figures shared by the training commands (not a subcommand)."""

from __future__ import annotations

from steerrec.table import markdown_table

KEYS = ("recall@10", "recall@20", "ndcg@10", "ndcg@20", "hr@20", "coverage@20", "arp@20")


def print_eval(title: str, metrics: dict) -> None:
    ev = metrics["eval"]
    train = metrics["train"]
    print(f"\n{title}: {ev['split']}, {ev['users']} test users, trained in {train['fit_seconds']} s "
          f"({train['seconds_total']} s with data, early stopping and evaluation)")
    print(markdown_table(["metric", "value"], [(k, ev[k]) for k in KEYS if k in ev]))
