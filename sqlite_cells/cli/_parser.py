"""The argument parser of the ``sqlite-cells`` command (SPEC §6).

The options every command shares (``--store``, ``--timeout``, ``--json``/``--csv``/``--ndjson``)
are accepted before the command and after it; given after it they win. Every command takes
its store as the positional STORE before its other arguments or as ``--store`` alike; both at
once must name the same directory. A command's options may stand
anywhere among its positional arguments (``query STORE --json SPACE DB SQL``): each command's
arguments are parsed intermixed, so an option between STORE and the rest never shifts them.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib import metadata
from typing import Any, NoReturn

from sqlite_cells.cli._output import Format, one_line
from sqlite_cells.cli._status import FINDING, output_failure
from sqlite_cells.runtime import MAX_SECONDS

__all__ = ["DEFAULT_TIMEOUT", "literal_params", "param_pairs", "parser"]

DEFAULT_TIMEOUT = 5.0
_STORE_HELP = "store directory (default: $SQLITE_CELLS_STORE or ./.sqlite-cells)"


def _version() -> str:
    try:
        return metadata.version("sqlite-cells")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value <= MAX_SECONDS:
        raise argparse.ArgumentTypeError(
            f"{text!r}: the timeout must be a positive number of seconds, at most "
            f"{MAX_SECONDS:,} (about 23 days)"
        )
    return value


class _Parser(argparse.ArgumentParser):
    """A parser whose usage errors are escaped as the command's other error lines are: argparse
    quotes the words it did not take (``unrecognized arguments: …``) as they were given. No
    option is taken by a prefix of its name: ``gc --y`` must not be ``gc --yes`` (R74: removing
    needs the word itself), nor ``check --r`` a repair."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        super().error(one_line(message))

    def _print_message(self, message: str, file: Any = None) -> None:
        """argparse's, which drops an output that fails (``--help``, ``--version`` to a full
        disk) and exits 0: such a failure is status 1, said on standard error (a reader that
        went away, ``--help | head -c1``, quietly, as for any command's output)."""
        if not message:
            return
        stream = file if file is not None else sys.stderr
        try:
            stream.write(message)
            stream.flush()
        except BrokenPipeError:
            self.exit(FINDING)
        except OSError as exc:
            if stream is sys.stderr:
                return  # nowhere to say it: the status the caller exits with says it
            self.exit(FINDING, f"sqlite-cells: {output_failure(exc)}\n")


class _Intermixed(_Parser):
    """A command's parser: options anywhere among the positionals. Plain argparse fills the
    positionals chunk by chunk between options, so with the optional STORE first, ``query STORE
    --json SPACE DB SQL`` gave SPACE to STORE's neighbour and refused SQL."""

    _inside = False  # parse_known_intermixed_args calls parse_known_args itself

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        if self._inside:
            return super().parse_known_args(args, namespace)
        self._inside = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._inside = False


# Marks a -p NAME or VALUE that starts with "-": argparse takes "-abc" for an option even where
# a value must stand, so `-p a -abc` was bad usage (sqlite-utils takes the two words as they
# are). No argument the system passes holds NUL.
_LITERAL = "\0"
_PARAM_FLAGS = ("-p", "--param")


def literal_params(argv: Sequence[str]) -> list[str]:
    """``argv`` with the two words after each ``-p``/``--param`` of ``query`` kept as values,
    whatever they start with (``-p a -abc``, ``-p a --``); :func:`param_pairs` gives them back
    as typed. Another command's ``-p`` is left to argparse, which refuses it as it is."""
    marked: list[str] = []
    values = 0
    query = False
    for index, arg in enumerate(argv):
        if values:
            marked.append(_LITERAL + arg if arg.startswith("-") else arg)
            values -= 1
        elif arg == "--":  # the rest is positional
            marked.extend(argv[index:])
            break
        else:
            marked.append(arg)
            query = query or arg == "query"
            values = 2 if query and arg in _PARAM_FLAGS else 0
    return marked


def param_pairs(pairs: Sequence[Sequence[str]]) -> list[list[str]]:
    """The ``-p NAME VALUE`` pairs as the user typed them (see :func:`literal_params`)."""
    return [[word.removeprefix(_LITERAL) for word in pair] for pair in pairs]


def _common(*, suppress: bool, formats_shown: bool = True) -> _Intermixed:
    """The shared options; after the command their defaults are suppressed so that a value
    given before the command is not overwritten. ``formats_shown``: the output formats are
    listed in the command's help (``demo`` takes them only to refuse them)."""
    default = argparse.SUPPRESS if suppress else None
    common = _Intermixed(add_help=False)
    common.add_argument("--store", dest="store_option", metavar="DIR", default=default,
                        help=_STORE_HELP)  # fmt: skip
    common.add_argument(
        "--timeout",
        type=_positive,
        metavar="SECONDS",
        default=argparse.SUPPRESS if suppress else DEFAULT_TIMEOUT,
        help=f"deadline of a query in seconds (R44; default {DEFAULT_TIMEOUT})",
    )
    formats = common.add_mutually_exclusive_group()
    fmt_default = argparse.SUPPRESS if suppress else Format.TEXT
    for flags, fmt, text in (
        (["--json"], Format.JSON, "print JSON"),
        (["--csv"], Format.CSV, "print CSV (one header line, then one line per row)"),
        (
            ["--ndjson", "--nl"],
            Format.NDJSON,
            "print newline-delimited JSON, one object per line (--nl as in sqlite-utils)",
        ),
    ):
        formats.add_argument(
            *flags,
            dest="fmt",
            action="store_const",
            const=fmt,
            default=fmt_default,
            help=text if formats_shown else argparse.SUPPRESS,
        )
    return common


def _store_positional(command: argparse.ArgumentParser) -> None:
    command.add_argument("store", nargs="?", metavar="STORE", help=_STORE_HELP)


def _names(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--name",
        dest="names",
        action="append",
        default=[],
        metavar="NAME",
        help="label the top-level cell and database called NAME in each space by that name "
        "(ids are one-way hashes of names; repeat for several)",
    )


def _query_parser(commands: argparse._SubParsersAction[_Intermixed]) -> None:
    query = commands.add_parser(
        "query",
        parents=[_common(suppress=True)],
        help="run a guarded read on a database cell",
        description="Run one SELECT through the statement guard and the read authorizer, on a "
        "read-only connection. Links in the rows show as the cells they name. The database is "
        "first compared with its space, as a runtime does (R71): one that is quarantined, "
        "damaged, behind or ahead of its space, or whose file is missing, is not read (`check "
        "--repair` repairs what can be). Exit 1 when it is refused or the query fails.",
    )
    _store_positional(query)
    query.add_argument("space", metavar="SPACE", help="space id (as given to rt.space)")
    query.add_argument(
        "db",
        metavar="DB",
        help="database name as given to space.sqlite_database(name), an injected file's "
        "name or path (as inspect shows it), its of:… id, or the name (or id) cells lists "
        "for a piece's input (PATTERN/KEY.INPUT): the database it links to",
    )
    query.add_argument("sql", metavar="SQL", help="one SELECT, VALUES or WITH … SELECT statement")
    query.add_argument(
        "-p",
        "--param",
        dest="params",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="bind :NAME (or the N-th ? with -p N VALUE) to the text VALUE; repeat for several. "
        "Compared (=, IS, IN) with a *_cf_link column only, VALUE is a cell's id (of:…, of "
        'SPACE) or a link as --json shows it ({"cell": "of:…", "space": "…"}), bound as its '
        "link",
    )
    _names(query)


def _maintenance_parsers(commands: argparse._SubParsersAction[_Intermixed]) -> None:
    check = commands.add_parser(
        "check",
        parents=[_common(suppress=True)],
        help="compare each database with its space's log, and repair with --repair",
        description="For every database cell of the store, compare its watermark with the last "
        "seq of its space that wrote it (R71). With --repair, replay or undo changesets so they "
        "agree. Exit 1 when a database diverged and was not repaired.",
    )
    _store_positional(check)
    check.add_argument("--repair", action="store_true", help="repair what diverged")

    link = commands.add_parser(
        "link",
        parents=[_common(suppress=True)],
        help="register an SQLite file and link it to a piece's input",
        description="Register sqlite:/abs/path.db as a read-only source of SPACE (R60) and link "
        "it to the input FIELD of the piece PIECE (its of:… id, or its name as `cells` lists it: "
        "PATTERN/KEY): a committed write, so the piece "
        "finds it after a restart. The store and the space must exist; nothing is created when "
        "anything is wrong.",
    )
    _store_positional(link)
    link.add_argument("url", metavar="URL", help="sqlite:/absolute/path/to/file.db")
    link.add_argument("space", metavar="SPACE", help="space id")
    link.add_argument(
        "piece",
        metavar="PIECE",
        help="the piece's id (of:…) or name (PATTERN/KEY, as `cells` lists it)",
    )
    link.add_argument("field", metavar="FIELD", help="the pattern parameter to link")

    gc = commands.add_parser(
        "gc",
        parents=[_common(suppress=True)],
        help="list unused or dropped database files; remove them with --yes",
        description="List the store's cell-*.sqlite files of databases dropped with db.drop() "
        "and those that no handle of any space names and that never held a commit (R74). "
        "Nothing is removed without --yes. A file that holds commits but that no space names "
        "(orphaned: its space file lost) is listed as kept and never removed. A file that never "
        "held a commit is kept while any connection has it open (a new "
        "database's first write may be running: gc says so and exits 1). A -wal, -shm or "
        "-journal with no database file beside it is listed as kept, with what to do (removed "
        "with --yes only when its database was dropped).",
    )
    _store_positional(gc)
    gc.add_argument("--yes", action="store_true", help="remove the files listed")


def parser() -> argparse.ArgumentParser:
    main = _Parser(
        prog="sqlite-cells",
        parents=[_common(suppress=False)],
        description="A reactive cell runtime whose state lives in SQLite.",
        epilog="Exit status: 0 success, 1 a finding (an error, a missing store), 2 bad usage, "
        "130 interrupted.",
    )
    main.add_argument("--version", action="version", version=f"sqlite-cells {_version()}")
    commands = main.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=_Intermixed
    )
    common = _common(suppress=True)

    demo = commands.add_parser(
        "demo",
        parents=[_common(suppress=True, formats_shown=False)],
        help="run the example chat app (on STORE, else the default store)",
        description="Run the example chat app: a database cell, a live query, a rename that "
        "does not re-run the query, and a rolled-back write. Running it again continues the "
        "same database. It prints a walkthrough as text: --json, --csv and --ndjson do not "
        "apply to it.",
    )
    _store_positional(demo)
    inspect = commands.add_parser(
        "inspect",
        parents=[common],
        help="list spaces, cells, databases, seqs and watermarks",
        description="List a store's spaces (cells, last seq) and database cells (tables, row "
        "counts, last write seq, watermark). Read-only. Exit 1 when the store does not exist "
        "or a database's watermark disagrees with its space, or its file is damaged or missing.",
    )
    _store_positional(inspect)
    tables = commands.add_parser(
        "tables",
        aliases=["schema"],
        parents=[common],
        help="list the tables of each database: columns, indexes, row counts",
        description="For each database of each space: its tables, their columns (type, primary "
        "key, AUTOINCREMENT, NOT NULL, UNIQUE, default, COLLATE, CHECK, REFERENCES, generated; "
        "a name that is not a plain identifier shown double-quoted as in SQL) and the table's "
        "own constraints over several columns, its options (WITHOUT ROWID, STRICT: marked beside "
        'its name, JSON "options"), indexes and row counts; then an injected file\'s '
        'views, marked (view) (JSON: "kind": "view"), with their columns, rows not counted. '
        "Read-only.",
    )
    _store_positional(tables)
    _names(tables)
    cells = commands.add_parser(
        "cells",
        parents=[common],
        help="list the cells of each space: names, values, databases",
        description="For each space: its cells with their name (when known), id, kind (cell, "
        "database, disk source), rev and value; links show as the cells they name. Read-only.",
    )
    _store_positional(cells)
    cells.add_argument("--space", help="only this space")
    _names(cells)
    _query_parser(commands)
    _maintenance_parsers(commands)
    return main
