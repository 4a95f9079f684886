"""``steerrec data``: list the known datasets, download an official archive with its checksum."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="list or download datasets")
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    lst = dsub.add_parser("list", help="datasets that can be downloaded")
    lst.set_defaults(handler=run_list)
    dl = dsub.add_parser("download", help="fetch an official archive and verify its checksum")
    dl.add_argument("name")
    dl.add_argument("--dest", default="data", help="directory to download into (default ./data)")
    dl.set_defaults(handler=run_download)


def run_list(args: argparse.Namespace) -> int:
    from steerrec.table import markdown_table
    from steerrec.training.data.download import DOWNLOADS

    print(markdown_table(["name", "url", "checksum"], [(n, s.url, s.checksum) for n, s in DOWNLOADS.items()]))
    return 0


def run_download(args: argparse.Namespace) -> int:
    from pathlib import Path

    from steerrec.training.data.download import dataset_for_download, download

    path = download(args.name, Path(args.dest))
    print(f"{args.name} ready in {path}; train with:\n"
          f"  steerrec train --dataset {dataset_for_download(args.name)} --data-path {path} --out bundles/{args.name}")
    return 0
