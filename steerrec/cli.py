"""The ``steerrec`` command: one subcommand per stage. Heavy imports (torch, ray) happen inside
each handler, so ``steerrec serve`` never loads torch and ``--help`` is instant."""

from __future__ import annotations

import argparse
import sys
from importlib import import_module

# Each module defines register(subparsers) and its handlers.
COMMAND_MODULES = ("demo", "data", "train", "sae", "interpret", "serve", "ab", "bench")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="steerrec",
        description="Steerable, interpretable recommendations: train, explain, steer and serve.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        import_module(f"steerrec.commands.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # user-facing errors: one clear line, no traceback
        from steerrec.errors import is_user_error

        if not is_user_error(exc):
            raise
        print(f"steerrec {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
