"""The ``sqlite-cells`` command (SPEC §6). Exit status: 0 success, 1 a finding, 2 bad usage."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from sqlite_cells._demo import run_demo

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sqlite-cells", description="A reactive cell runtime whose state lives in SQLite."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = commands.add_parser("demo", help="run the example app on the default store")
    demo.add_argument(
        "--store", help="store directory (default: $SQLITE_CELLS_STORE or ./.sqlite-cells)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "demo":
        return run_demo(args.store, out=sys.stdout)
    return 2


if __name__ == "__main__":
    sys.exit(main())
