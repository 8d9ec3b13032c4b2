"""The ``sqlite-cells`` command (SPEC §6). Exit status: 0 success, 1 a finding, 2 bad usage.

* ``demo [--store DIR]`` runs the chat example on the default store (or ``DIR``);
* ``inspect [STORE] [--json]`` lists spaces, cells, databases, row counts, seqs and watermarks;
  a database whose watermark is not its space's last write to it is a finding (exit 1);
* ``query STORE SPACE DB SQL [--json]`` runs one guarded read;
* ``check [STORE] [--repair] [--json]`` compares each database with its space (R71) and, with
  ``--repair``, repairs it; a divergence left unrepaired is a finding (exit 1);
* ``link sqlite:/abs/path.db SPACE PIECE FIELD [--store DIR]`` registers an injected file and
  links it to a piece's input (R60–R61);
* ``gc [STORE]`` removes database files no handle refers to.

``inspect`` and ``query`` never create a store or a database file: a missing store is a finding.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import msgspec

from sqlite_cells.cli._inspect import (
    InspectError,
    StoreInfo,
    default_store,
    inspect_store,
    query_store,
)
from sqlite_cells.codec import GuardViolation, SqliteCellsError, derive_id
from sqlite_cells.files import check_store, collect_garbage
from sqlite_cells.read import text_table
from sqlite_cells.runtime import Cell

__all__ = ["main"]

OK, FINDING, USAGE = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sqlite-cells",
        description="A reactive cell runtime whose state lives in SQLite.",
        epilog="Exit status: 0 success, 1 a finding (an error, a missing store), 2 bad usage.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser(
        "demo",
        help="run the example chat app on the default store",
        description="Run the example chat app: a database cell, a live query, a rename that "
        "does not re-run the query, and a rolled-back write. Running it again continues the "
        "same database.",
    )
    demo.add_argument(
        "--store", help="store directory (default: $SQLITE_CELLS_STORE or ./.sqlite-cells)"
    )

    inspect = commands.add_parser(
        "inspect",
        help="list spaces, cells, databases, seqs and watermarks",
        description="List a store's spaces (cells, last seq) and database cells (tables, row "
        "counts, last write seq, watermark). Read-only. Exit 1 when the store does not exist "
        "or a database's watermark disagrees with its space.",
    )
    inspect.add_argument(
        "store",
        nargs="?",
        help="store directory (default: $SQLITE_CELLS_STORE or ./.sqlite-cells)",
    )
    inspect.add_argument("--json", action="store_true", help="print JSON for scripts")

    query = commands.add_parser(
        "query",
        help="run a guarded read on a database cell",
        description="Run one SELECT through the statement guard and the read authorizer, on a "
        "read-only connection. Exit 1 when the guard refuses it or it fails.",
    )
    query.add_argument("store", help="store directory")
    query.add_argument("space", help="space id (as given to rt.space)")
    query.add_argument(
        "db", help="database name as given to space.sqlite_database(name), or its of:… id"
    )
    query.add_argument("sql", help="one SELECT, VALUES or WITH … SELECT statement")
    query.add_argument("--json", action="store_true", help="print JSON for scripts")

    check = commands.add_parser(
        "check",
        help="compare each database with its space's log, and repair with --repair",
        description="For every database cell of the store, compare its watermark with the last "
        "seq of its space that wrote it (R71). With --repair, replay or undo changesets so they "
        "agree. Exit 1 when a database diverged and was not repaired.",
    )
    check.add_argument("store", nargs="?", help="store directory (default: the default store)")
    check.add_argument("--repair", action="store_true", help="repair what diverged")
    check.add_argument("--json", action="store_true", help="print JSON for scripts")

    link = commands.add_parser(
        "link",
        help="register an SQLite file and link it to a piece's input",
        description="Register sqlite:/abs/path.db as a read-only source of SPACE (R60) and link "
        "it to the input FIELD of the piece PIECE (its of:… id): a committed write, so the piece "
        "finds it after a restart.",
    )
    link.add_argument("url", help="sqlite:/absolute/path/to/file.db")
    link.add_argument("space", help="space id")
    link.add_argument("piece", help="the piece's id (of:…)")
    link.add_argument("field", help="the pattern parameter to link")
    link.add_argument("--store", help="store directory (default: the default store)")

    gc = commands.add_parser(
        "gc",
        help="remove database files no handle refers to",
        description="Remove the store's cell-*.sqlite files (with -wal/-shm) that no handle of "
        "any space names. Run it while no runtime is creating a new database.",
    )
    gc.add_argument("store", nargs="?", help="store directory (default: the default store)")
    return parser


def _print_json(value: Any, out: TextIO) -> None:
    # msgspec writes bytes as base64 and keeps the key order of the rows.
    out.write(msgspec.json.format(msgspec.json.encode(value), indent=2).decode() + "\n")


def _print_store(info: StoreInfo, out: TextIO) -> None:
    out.write(f"store {info.store}\n")
    if not info.spaces:
        out.write("  (no spaces)\n")
    for space in info.spaces:
        out.write(
            f"space {space.id!r} ({space.file}): {space.cells} cell(s), last seq {space.last_seq}\n"
        )
        if not space.databases:
            out.write("  no database cells written yet\n")
        for db in space.databases:
            if not db.exists:
                state = "no file"
            elif db.in_sync:
                state = f"watermark {db.watermark} (in sync)"
            else:
                state = f"watermark {db.watermark} (OUT OF SYNC)"
            out.write(
                f"  database {db.id}\n"
                f"    file {db.file}: rev {db.rev}, last write at seq {db.last_write_seq}, "
                f"{state}\n"
            )
            rows = [{"table": t.name, "rows": t.rows} for t in db.tables]
            table = text_table(rows, columns=["table", "rows"])
            out.write("".join(f"      {line}\n" for line in table.splitlines()))
    for name in info.unreferenced_files:
        out.write(f"unreferenced database file {name} (no handle cell names it)\n")
    for finding in info.findings():
        out.write(f"finding: {finding}\n")


def _inspect(args: argparse.Namespace, out: TextIO) -> int:
    info = inspect_store(args.store if args.store is not None else default_store())
    if args.json:
        _print_json(info.to_json(), out)
    else:
        _print_store(info, out)
    return FINDING if info.findings() else OK


def _query(args: argparse.Namespace, out: TextIO) -> int:
    result = query_store(args.store, args.space, args.db, args.sql)
    if args.json:
        _print_json(result.to_json(), out)
    else:
        out.write(text_table(result.rows) + "\n")
        out.write(f"({len(result.rows)} row(s); database {result.db_id} at seq {result.seq})\n")
    return OK


def _existing_store(given: str | None, why: str) -> Path:
    store = Path(given if given is not None else default_store())
    if not store.is_dir():
        raise InspectError("store-not-found", f"no store at {store}: {why}")
    return store


def _check(args: argparse.Namespace, out: TextIO) -> int:
    store = _existing_store(args.store, "nothing to check")
    outcomes = check_store(store, repair=args.repair)
    if args.json:
        _print_json(
            [
                {
                    "db": o.db_id,
                    "file": o.path.name,
                    "watermark": o.db_seq,
                    "space_seq": o.space_seq,
                    "action": o.action.value,
                    "commits": o.commits,
                    "detail": o.detail,
                }
                for o in outcomes
            ],
            out,
        )
    else:
        for o in outcomes:
            out.write(
                f"{o.db_id} ({o.path.name}): watermark {o.db_seq}, space seq {o.space_seq}: "
                f"{o.action.value}"
                + (f", {o.commits} commit(s) applied" if o.commits else "")
                + (f" ({o.detail})" if o.detail else "")
                + "\n"
            )
        out.write(f"{len(outcomes)} database(s) checked\n")
    return FINDING if any(not o.agrees for o in outcomes) else OK


def _link(args: argparse.Namespace, out: TextIO) -> int:
    if not args.url.startswith("sqlite:"):
        raise _Usage(f"{args.url!r} is not a sqlite:/absolute/path URL")
    from sqlite_cells import Runtime

    with Runtime(args.store) as rt:
        space = rt.space(args.space)
        handle = space.register_disk_source(args.url.removeprefix("sqlite:"))
        field = Cell(space, derive_id("input", args.piece, args.field))
        field.link(handle)
        out.write(f"linked {handle.path} ({handle.id}) to {args.field} of piece {args.piece}\n")
    return OK


def _gc(args: argparse.Namespace, out: TextIO) -> int:
    store = _existing_store(args.store, "nothing to collect")
    removed = collect_garbage(store)
    for path in removed:
        out.write(f"removed {path.name}\n")
    out.write(f"{len(removed)} file(s) removed\n")
    return OK


class _Usage(Exception):
    """Bad usage that argparse cannot see (exit 2)."""


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    out, err = sys.stdout, sys.stderr
    try:
        if args.command == "demo":
            from sqlite_cells.cli._demo import run_demo  # imports the whole public API

            return run_demo(args.store, out=out)
        if args.command == "inspect":
            return _inspect(args, out)
        if args.command == "query":
            return _query(args, out)
        if args.command == "check":
            return _check(args, out)
        if args.command == "link":
            return _link(args, out)
        if args.command == "gc":
            return _gc(args, out)
    except _Usage as exc:
        err.write(f"sqlite-cells: {exc}\n")
        return USAGE
    except BrokenPipeError:
        # The reader went away (`sqlite-cells inspect | head`): stop quietly, as other tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return FINDING
    except GuardViolation as exc:
        err.write(f"sqlite-cells: refused by the statement guard: {exc}\n")
        return FINDING
    except SqliteCellsError as exc:
        err.write(f"sqlite-cells: {type(exc).__name__}: {exc}\n")
        return FINDING
    return USAGE


if __name__ == "__main__":
    sys.exit(main())
