"""The ``sqlite-cells`` command (SPEC §6). Exit status: 0 success, 1 a finding, 2 bad usage,
130 interrupted (Ctrl-C).

* ``demo`` runs the chat example on the store;
* ``inspect [STORE]`` lists spaces, cells, databases, row counts, seqs and watermarks; a
  database whose watermark is not its space's last write to it, or whose file is damaged or
  missing although its space wrote it, an injected file whose path now names another file than
  the one registered (R60), an orphaned database file (holds commits, no readable space names
  it) and a damaged space file are findings (exit 1);
* ``tables [STORE]`` (alias ``schema``) lists each database's tables with columns, indexes and
  row counts; ``cells [STORE]`` lists each space's cells with names, values and kinds;
* ``query [STORE] SPACE DB SQL [-p NAME VALUE]…`` runs one guarded read, on a database that
  agrees with its space only (R71: the library's ``Quarantined``, or ``NeedsRepair`` naming
  what to run; it never repairs);
* ``check [STORE] [--repair]`` compares each database with its space (R71) and, with
  ``--repair``, repairs it; a divergence left unrepaired is a finding (exit 1);
* ``link sqlite:/abs/path.db SPACE PIECE FIELD`` registers an injected file and links it to a
  piece's input (R60–R61);
* ``gc [STORE] [--yes]`` lists database files no handle refers to, and removes them with
  ``--yes`` only (R74); while a space file is damaged it removes none that space may name.

A store a newer sqlite-cells wrote (a space file recording a newer store format, R73) is refused
by every command, as the library refuses it: exit 1, nothing read or written.

Every command takes the store as ``--store DIR`` (before or after the command) and, where the
SPEC shows one, as a positional STORE; the default is ``$SQLITE_CELLS_STORE`` or
``./.sqlite-cells``. ``--json``, ``--csv`` and ``--ndjson`` choose the output. Links print as the
cells they name, never as their stored JSON. Only ``demo``, ``check --repair``, ``link`` and
``gc --yes`` write; the others open files read-only and change no row (SQLite may still leave a
``-wal``/``-shm`` beside a database file it read, and checkpoint a ``-wal`` a crash left).

:func:`main` is one error boundary: a :class:`SqliteCellsError` (or an OS error) is one line on
stderr and exit 1, bad usage exit 2, Ctrl-C exit 130; no command prints a traceback.
"""

from __future__ import annotations

import argparse
import errno
import shlex
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from itertools import chain
from pathlib import Path
from typing import Any, TextIO, cast

import apsw
import msgspec

from sqlite_cells.cli._catalog import TABLE_COLUMNS, CellRow, list_cells, list_tables
from sqlite_cells.cli._entry import stop_output
from sqlite_cells.cli._inspect import (
    DamagedSpaceInfo,
    InspectError,
    QueryResult,
    StoreInfo,
    default_store,
    inspect_store,
    query_store,
    refuse_newer_format,
    store_dir,
)
from sqlite_cells.cli._linked import linked_database
from sqlite_cells.cli._maintenance import check, gc, link
from sqlite_cells.cli._names import Namer
from sqlite_cells.cli._output import (
    CheckedOutput,
    Format,
    OutputFailed,
    csv_cell,
    csv_line,
    error_kind,
    error_line,
    finite,
    json_for,
    on_terminal,
    one_line,
    print_json,
    print_rows,
    rows_for_json,
    rows_for_text,
)
from sqlite_cells.cli._params import (
    UsageError,
    bindings,
    check_linked,
    check_text,
    linked_bindings,
)
from sqlite_cells.cli._parser import literal_params, param_pairs, parser
from sqlite_cells.cli._status import FINDING, INTERRUPTED, OK, USAGE
from sqlite_cells.codec import (
    GuardViolation,
    QueryError,
    QueryTimeout,
    SqliteCellsError,
    brief_repr,
)
from sqlite_cells.files import orphans
from sqlite_cells.read import NEWER_DECLARATION_ADVICE, text_table
from sqlite_cells.runtime import (
    SPACE_FILES,
    interrupts_held,
    lock_waits,
    odd_kind,
    shown_path,
    waited_for_lock,
)
from sqlite_cells.sql import Mode, check_statement

__all__ = ["main"]

# Seconds a command other than ``query`` waits for one lock another connection holds on a file
# of the store (a runtime holds its locks for one commit) before it says so and stops.
LOCK_WAIT = 5.0


def _same_path(a: str, b: str) -> bool:
    """Whether ``a`` and ``b`` name one directory (as given, when the system cannot tell:
    the command then says what is wrong with the one it uses)."""
    try:
        return Path(a).expanduser().resolve() == Path(b).expanduser().resolve()
    except (OSError, RuntimeError):  # no such home directory, a link loop, a name too long
        return a == b


def resolve_store(args: argparse.Namespace) -> str:
    """The store the command works on: the positional STORE or ``--store`` (the same one when
    both are given), else the default store (SPEC §2)."""
    positional: str | None = getattr(args, "store", None)
    option: str | None = args.store_option
    if positional is not None and option is not None and not _same_path(positional, option):
        raise UsageError(
            f"two stores given ({positional!r} and --store {option!r}): give one of them"
        )
    chosen = positional if positional is not None else option
    return chosen if chosen is not None else default_store()


def _watermark(seq: int | None) -> str:
    """A database file's watermark as ``inspect`` prints it: none when the file holds no
    watermark this runtime wrote (it cannot be read, or is not this database's file)."""
    return "no watermark" if seq is None else f"watermark {seq}"


# How many cells `inspect` shows per space (each on one line, its value cut to _VALUE_SHOWN
# characters); `cells` lists them all, whole.
_CELLS_SHOWN = 20
_VALUE_SHOWN = 100


def _plain_cells(store: str, namer: Namer) -> dict[str, list[CellRow]]:
    """The cells of each readable space that are not database handles (those are listed as
    databases), by space id; none when the cells cannot be read (the rest still is)."""
    found: dict[str, list[CellRow]] = {}
    try:
        rows = list_cells(store, namer)
    except SqliteCellsError:
        return found
    for row in rows:
        if row.kind in ("cell", "piece", "input"):
            found.setdefault(row.space, []).append(row)
    return found


def _print_store(
    info: StoreInfo, out: TextIO, namer: Namer, cells: dict[str, list[CellRow]]
) -> None:
    out.write(f"store {one_line(info.store)}\n")
    if not info.spaces:
        out.write("  (no readable spaces)\n" if info.damaged_space_files else "  (no spaces)\n")
    for damaged in info.damaged_space_files:
        what = "UNREADABLE, cannot be opened" if damaged.unreadable else "DAMAGED, cannot be read"
        out.write(f"space file {one_line(damaged.file)}: {what} ({one_line(damaged.reason)})\n")
    for space in info.spaces:
        out.write(
            f"space {one_line(repr(space.id))} ({one_line(space.file)}): {space.cells} cell(s), "
            f"last seq {space.last_seq}\n"
        )
        listed = cells.get(space.id, [])
        for row in listed[:_CELLS_SHOWN]:
            flat = row.to_flat(namer)
            label = f"{flat['name']!r} ({row.id})" if flat["name"] else row.id
            value = one_line(flat["value"])
            if len(value) > _VALUE_SHOWN:
                value = value[: _VALUE_SHOWN - 1] + "…"
            out.write(f"  cell {one_line(label)} rev {row.rev}: {value}\n")
        if len(listed) > _CELLS_SHOWN:
            command = f"sqlite-cells cells --space={shlex.quote(space.id)}"
            out.write(
                f"  … and {len(listed) - _CELLS_SHOWN} more cell(s): `{one_line(command)}` "
                "lists them all\n"
            )
        if not space.databases and not space.quarantined:
            out.write("  no database cells written yet\n")
        for held in space.quarantined:
            known = namer.named(space.id, held.id)
            named = f"{known.name!r} ({held.id})" if known is not None else held.id
            out.write(
                f"  database {one_line(named)}\n"
                f"    file {one_line(held.file)}: QUARANTINED: {one_line(held.why)} (R5)\n"
            )
        for db in space.databases:
            if db.missing and info.not_a_file(db):
                state = "NOT A REGULAR FILE where the database file belongs (move it out)"
            elif db.missing:
                state = "NO FILE, although its space wrote it (MISSING)"
            elif db.gone:
                kind = odd_kind(db.file)
                state = (
                    "GONE: the injected file is not there (MISSING)"
                    if kind is None
                    else f"NOT A REGULAR FILE: {kind} stands where the injected file was "
                    "registered (MISSING)"
                )
            elif not db.exists and db.dropped and db.never_written:
                state = "dropped, no file"
            elif not db.exists and db.dropped:
                state = "dropped, no file (removed)"
            elif db.moved_to is not None:
                state = (
                    f"UNUSED: the file moved to {db.moved_to}, is registered again there, and "
                    "no cell links to this handle any more"
                )
            elif not db.exists:
                state = "no file"
            elif db.dropped:
                state = f"{_watermark(db.watermark)}, dropped (`sqlite-cells gc --yes` removes it)"
            elif db.damage is not None:
                state = f"{_watermark(db.watermark)}, DAMAGED: {db.damage}"
            elif db.unreadable is not None:
                state = f"UNREADABLE: {db.unreadable}"
            elif db.swapped:
                state = "SWAPPED: the path names another file than the one registered"
            elif db.history is not None:
                state = f"{_watermark(db.watermark)}, ANOTHER HISTORY: {db.history} (QUARANTINED)"
            elif db.writes_refused is not None:
                state = f"{_watermark(db.watermark)}, WRITES REFUSED: {db.writes_refused}"
            elif db.index_incomplete is not None:
                state = (
                    f"{_watermark(db.watermark)}, SPACE FILE INDEX INCOMPLETE: "
                    f"{db.index_incomplete}"
                )
            elif db.in_sync:
                state = f"{_watermark(db.watermark)} (in sync)"
            else:
                state = f"{_watermark(db.watermark)} (OUT OF SYNC)"
            known = namer.named(space.id, db.id)
            named = f"{known.name!r} ({db.id})" if known is not None else db.id
            written = (
                "never written" if db.never_written else f"last write at seq {db.last_write_seq}"
            )
            out.write(
                f"  database {one_line(named)}\n"
                f"    file {one_line(db.file)}: rev {db.rev}, {written}, {one_line(state)}\n"
            )
            rows = [
                {"table": t.name, "rows": t.rows if t.rows is not None else "not readable here"}
                for t in db.tables
            ]
            table = text_table(rows, columns=["table", "rows"])
            out.write("".join(f"      {line}\n" for line in table.splitlines()))
    for name in info.unreferenced_files:
        out.write(
            f"unreferenced database file {one_line(name)} (no handle names it, or its database was "
            "dropped: `gc` lists it)\n"
        )
    for orphan in info.orphaned_files:
        mark = "unreadable" if orphan.watermark is None else orphan.watermark
        out.write(
            f"orphaned database file {one_line(orphan.file)}: watermark {mark}, "
            "no readable space names it\n"
        )
    for name in info.in_use_files:
        out.write(
            f"database file {one_line(name)} in use: no space names it yet, and another "
            "connection held it all through the look (a new database's first write under way?)\n"
        )
    for stray in info.stray_files:
        out.write(
            f"leftover file {one_line(stray.file)}: no database file beside it (`gc` lists it)\n"
        )
    for finding in info.findings():
        out.write(f"finding: {one_line(finding)}\n")


# `inspect --csv`: one line per database, with the keys of its JSON (`StoreInfo.to_json`) but its
# tables, and its name; the header is printed for an empty store too.
_INSPECT_COLUMNS = (
    "space", "id", "file", "kind", "dropped", "exists", "missing", "gone", "rev", "last_write_seq",
    "watermark", "in_sync", "damage", "swapped", "history", "writes_refused", "declared_tables",
    "name", "moved_to", "index_incomplete",
)  # fmt: skip


def _inspect(args: argparse.Namespace, out: TextIO) -> int:
    store = resolve_store(args)
    info = inspect_store(store)
    namer = Namer(store_dir(store), skip_damaged=True)
    cells = _plain_cells(store, namer)
    if args.fmt is Format.TEXT:
        _print_store(info, out, namer, cells)
        return FINDING if info.findings() else OK
    data = info.to_json()
    for space in data["spaces"]:
        for db in space["databases"]:
            known = namer.named(space["id"], db["id"])
            db["name"] = known.name if known is not None else None
        space["cell_values"] = [
            {k: v for k, v in row.to_json(namer).items() if k != "space"}
            for row in cells.get(space["id"], [])
        ]
    if args.fmt is Format.JSON:
        print_json(data, out)
    else:  # one line per database, the flat view of the same facts
        flat = [
            {"space": space["id"], **{k: v for k, v in db.items() if k != "tables"}}
            for space in data["spaces"]
            for db in space["databases"]
        ]
        blank = dict.fromkeys(_INSPECT_COLUMNS)
        flat += [
            {**blank, "file": o["file"], "kind": "orphaned", "watermark": o["watermark"]}
            for o in data["orphaned_files"]
        ]
        flat += [{**blank, "file": name, "kind": "in use"} for name in data["in_use_files"]]
        flat += [
            {**blank, "file": f["file"], "id": f["db_id"], "kind": "leftover"}
            for f in data["stray_files"]
        ]
        flat += [
            {
                **blank,
                "space": space["id"],
                "id": q["id"],
                "file": q["file"],
                "kind": "quarantined handle",
                "damage": q["reason"],
            }
            for space in data["spaces"]
            for q in space["quarantined_handles"]
        ]
        flat += [
            {
                **blank,
                "file": d["file"],
                "kind": "unreadable space file" if d["unreadable"] else "damaged space file",
                "damage": d["reason"],
            }
            for d in data["damaged_space_files"]
        ]
        print_rows(flat, args.fmt, out, columns=_INSPECT_COLUMNS)
    return FINDING if info.findings() else OK


def _query(args: argparse.Namespace, out: TextIO) -> int:
    store = resolve_store(args)
    args.space = check_text(args.space, "SPACE")
    args.db = check_text(args.db, "DB")
    args.sql = check_text(args.sql, "SQL")
    try:
        check_statement(args.sql, Mode.READ)  # a refused statement is reported before its params
    except GuardViolation as exc:
        _one_left_out(args, store, exc)
        raise
    _one_left_out(args, store, None)
    # A value compared with a link column that cannot be a link is bound as it is and refused
    # once the read has run (`check_linked`): a statement the read refuses (no such table) is
    # said as the read says it, not as a value that would match no row.
    linked = linked_bindings(args.sql, bindings(args.sql, param_pairs(args.params)), args.space)
    params = linked.params
    try:
        result = _read(store, args, args.space, args.db, params)
    except InspectError as exc:
        if exc.kind not in ("database-not-found", "not-a-database"):
            raise
        # DB may be the name `cells` lists for a piece's input (PATTERN/KEY.INPUT): what that
        # input links to is read; a piece's name, or an input linking to no database, is
        # refused saying which name to give.
        try:
            with Namer(store_dir(store), tuple(args.names)) as namer:
                target = linked_database(namer, args.space, args.db)
        except InspectError as refused:
            if refused.kind not in ("not-a-database", "database-not-found"):
                raise exc from None  # (another space file that cannot be read: not asked)
            raise
        if target is None:
            raise
        result = _read(store, args, *target, params)
    # The names and linked values are read once the result is: --timeout bounds the read and
    # every lock wait of the command (`main`), and the naming costs one connection per space
    # file and one look-up per linked cell (Namer), not a wait of its own.
    # Another space's file that cannot be read leaves its links unnamed, as `cells` does.
    if result.batches is None:
        with Namer(
            store_dir(store), tuple(args.names), home=args.space, skip_damaged=True
        ) as namer:
            check_linked(linked, namer, args.space)
            _print_result(result, args.fmt, namer, out)
        return OK
    # --csv, --ndjson and --json print the rows as they are read, a batch at a time (one read
    # transaction all along); the statement has run to its first batch (or its end) before
    # anything is printed, so that a read it refuses is said before a link parameter is.
    batches = result.batches
    try:
        first = next(batches)
        with Namer(
            store_dir(store), tuple(args.names), home=args.space, skip_damaged=True
        ) as namer:
            check_linked(linked, namer, args.space)
            _print_streamed(result, first, batches, args.fmt, namer, out)
    finally:
        batches.close()
    return OK


def _read(
    store: str,
    args: argparse.Namespace,
    space_id: str,
    database: str,
    params: tuple[Any, ...] | dict[str, Any],
) -> QueryResult:
    """``query``'s read of ``database`` of ``space_id`` (see ``query_store``)."""
    try:
        return query_store(
            store,
            space_id,
            database,
            args.sql,
            params,
            timeout=args.timeout,
            timeout_setting="--timeout",
            stream=args.fmt is not Format.TEXT,
        )
    except SqliteCellsError as exc:
        if isinstance(exc, QueryError) or not waited_for_lock(exc):
            raise
        # R44: a wait for a lock on the space file is part of the read, within its deadline.
        raise QueryTimeout(
            database,
            args.sql,
            f"waited {args.timeout}s for a lock another connection holds on a file of space "
            f"{space_id!r}; nothing was read: try again once that connection lets go",
        ) from exc


def _one_left_out(args: argparse.Namespace, store: str, refused: GuardViolation | None) -> None:
    """``query STORE SPACE DB SQL`` with one argument left out reads as ``query SPACE DB SQL``
    (STORE is optional): the store's path is taken for SPACE. When no store was given as an
    argument, SPACE names a directory holding space files, and the command would fail anyway —
    no store where one is looked for, or the guard refusing a single word (DB taken for the
    SQL) — that is bad usage (exit 2), said with how the three arguments were read. A refused
    statement of more than one word is the guard's to report (exit 1), as for any query."""
    if args.store is not None or args.store_option is not None or not args.space.strip():
        return
    if refused is not None:
        if len(args.sql.split()) != 1:
            return
        why = f"{brief_repr(args.sql)} is no statement: the SQL seems to be missing"
    elif not Path(store).exists():
        why = f"there is no store at {shown_path(Path(store))}"
    else:
        return
    if not _looks_like_a_store(args.space):
        return
    raise UsageError(
        f"only three arguments were given, so {brief_repr(args.space)}, a store's directory, "
        f"was taken for SPACE, {brief_repr(args.db)} for DB and {brief_repr(args.sql)} for "
        f"SQL, and {why}; give all four: sqlite-cells query STORE SPACE DB SQL"
    ) from refused


def _looks_like_a_store(path: str) -> bool:
    """Whether ``path`` is a directory with space files in it (a space id never is one)."""
    try:
        return any(Path(path).glob(SPACE_FILES))
    except (OSError, ValueError):  # not a directory, a name the system refuses
        return False


def _print_result(result: QueryResult, fmt: Format, namer: Namer, out: TextIO) -> None:
    """``query``'s result in ``fmt``, its links named by ``namer``."""
    # Without rows, the header comes from the statement's own columns (sqlite-utils prints it).
    columns = None if result.rows or not result.columns else list(result.columns)
    if fmt is Format.JSON:
        data = result.to_json()
        data["rows"] = rows_for_json(result.rows, namer)
        print_json(data, out)
    elif fmt is Format.TEXT:
        print_rows(rows_for_text(result.rows, namer), Format.TEXT, out, columns=columns)
        out.write(f"({len(result.rows)} row(s); database {result.db_id} at seq {result.seq})\n")
    elif fmt is Format.NDJSON:  # each format names the links its own way, and only its way
        print_rows(rows_for_json(result.rows, namer), fmt, out)
    else:
        print_rows(rows_for_text(result.rows, namer), fmt, out, columns=columns)


def _print_streamed(
    result: QueryResult,
    first: tuple[int, tuple[str, ...], list[dict[str, Any]]],
    batches: Iterator[tuple[int, tuple[str, ...], list[dict[str, Any]]]],
    fmt: Format,
    namer: Namer,
    out: TextIO,
) -> None:
    """``query``'s result in ``fmt`` (not the text table) as :func:`_print_result` prints it,
    written a batch at a time as the rows are read: ``first`` is the first batch (its rows
    empty for a result without rows), ``batches`` the rest. An error of the read met after some
    rows were written leaves them written and is raised (the command says it and exits 1); a
    JSON document is then left unclosed, so that no reader takes it for the whole result."""
    seq, names, rows = first
    if fmt is Format.JSON:
        head = json_for(
            msgspec.json.format(
                msgspec.json.encode(replace(result, seq=seq, batches=None).to_json()), indent=2
            ).decode(),
            out,
        )
        # "rows" is the object's last member: its empty array is opened here, closed at the end.
        head = head.removesuffix("[]\n}")
        out.write(head + "[")
        written = False
        for _seq, _names, batch in chain([first], batches):
            if not batch:
                continue
            encoded = msgspec.json.encode(finite(rows_for_json(batch, namer)))
            # The batch's array as print_json indents it, without its brackets, one level in.
            text = msgspec.json.format(encoded, indent=2).decode()[1:-2].replace("\n", "\n  ")
            out.write(("," if written else "") + json_for(text, out))
            written = True
        out.write("\n  ]\n}\n" if written else "]\n}\n")
    elif fmt is Format.NDJSON:
        for _seq, _names, batch in chain([first], batches):
            print_rows(rows_for_json(batch, namer), fmt, out)
    else:
        header = list(names) if rows else list(result.columns)
        line = csv_line(on_terminal=on_terminal(out))
        out.write(line(header))
        for _seq, _names, batch in chain([first], batches):
            for row in rows_for_text(batch, namer):
                out.write(line([csv_cell(finite(row.get(name))) for name in header]))


def _tables(args: argparse.Namespace, out: TextIO) -> int:
    store = resolve_store(args)
    namer = Namer(store_dir(store), tuple(args.names), skip_damaged=True, check_pages=True)
    rows, left_out = list_tables(store, namer)
    if args.fmt is Format.TEXT and not rows and (left_out or namer.damaged):
        out.write("(no tables listed)\n")
    elif args.fmt is Format.TEXT and not rows and orphans(namer.root):
        out.write(
            "(no tables: no space of this store names a written database; database files "
            "that no space names are in the store: `sqlite-cells inspect` lists them)\n"
        )
    elif args.fmt is Format.TEXT and not rows:
        # (an injected file is listed by its own tables: one may hold none yet, R60)
        out.write(
            "(no tables: no database of this store has been written yet, and no injected file "
            "holds a table)\n"
        )
    else:
        flat, json_rows = [r.to_flat() for r in rows], [r.to_json() for r in rows]
        print_rows(flat, args.fmt, out, json_rows=json_rows, columns=TABLE_COLUMNS)
    status = _left_out(namer, out)
    if left_out:
        out.flush()
        for db in left_out:
            sys.stderr.write(error_line(db.message()))
        return FINDING
    return status


def _left_out(namer: Namer, out: TextIO) -> int:
    """Once the rest is listed: each space file left out for damage is a finding, said as
    ``inspect`` says it (:meth:`DamagedSpaceInfo.finding`), on standard error; a space file
    whose space id is not UTF-8 text (another program wrote it) was left out, and that is an
    error naming the file and the row. FINDING when a space file was left out, else OK."""
    out.flush()
    for damaged in namer.damaged:  # (named by its path: no line above names the store)
        found = replace(DamagedSpaceInfo.of(damaged), file=str(damaged.path))
        sys.stderr.write(error_line(found.finding()))
    if namer.unnamed:
        files = ", ".join(str(path) for path in namer.unnamed)
        raise InspectError(
            "space-id-not-text",
            f"left out {files}: its _cf_meta row 'space_id' holds text that is not valid UTF-8 "
            "(another program wrote it), so no space can be named by it; restore that file "
            "from a backup, or move it out of the store",
        )
    return FINDING if namer.damaged else OK


def _cells(args: argparse.Namespace, out: TextIO) -> int:
    store = resolve_store(args)
    namer = Namer(store_dir(store), tuple(args.names), skip_damaged=True, check_pages=True)
    if args.space is not None and args.space not in namer.spaces():
        _left_out(namer, out)
        maybe = " (or its space file is one that cannot be read, said above)"
        maybe = maybe if namer.damaged else ""
        raise InspectError(
            "space-not-found",
            f"no space {args.space!r} in {namer.root}{maybe}: `sqlite-cells cells` without "
            "--space lists every space",
        )
    rows = [r for r in list_cells(store, namer) if args.space in (None, r.space)]
    columns = ["space", "name", "id", "kind", "rev", "value"]
    if args.fmt is Format.TEXT and not rows:
        out.write("(no cells)\n")
    else:
        print_rows(
            [r.to_flat(namer) for r in rows],
            args.fmt,
            out,
            json_rows=[r.to_json(namer) for r in rows],
            columns=columns,
        )
    return _left_out(namer, out)


def _refuse_empty_store(args: argparse.Namespace) -> None:
    """An empty store path is bad usage for every command (it names no directory; taken as the
    current one, ``check --repair`` or ``gc --yes`` would work on whatever is there)."""
    given = (getattr(args, "store", None), getattr(args, "store_option", None))
    if "" in given:
        raise UsageError(
            "the store path is empty: give the store's directory (--store DIR), or leave the "
            "option out for the default store ($SQLITE_CELLS_STORE or ./.sqlite-cells)"
        )


def _refuse_link_missing_an_argument(args: argparse.Namespace) -> None:
    """``link STORE sqlite:… SPACE PIECE`` (FIELD left out): argparse takes the store for URL
    and each argument after it for the next one; said as how the four were read, as ``query``
    says it of three, not as a bad URL."""
    if args.store is not None or args.store_option is not None:
        return
    if args.url.startswith("sqlite:") or not args.space.startswith("sqlite:"):
        return
    raise UsageError(
        f"only four arguments were given, so {brief_repr(args.url)} was taken for URL, "
        f"{brief_repr(args.space)} for SPACE, {brief_repr(args.piece)} for PIECE and "
        f"{brief_repr(args.field)} for FIELD: FIELD seems to be missing; give all five: "
        "sqlite-cells link STORE sqlite:/absolute/path.db SPACE PIECE FIELD"
    )


def _source_path(url: str) -> str:
    """The file a ``link`` URL names: ``sqlite:`` and the path, as the SPEC writes it
    (``sqlite:/abs/path.db``). A URL with an authority (``sqlite://…``) is bad usage: read as a
    URL, ``sqlite://tmp/x.db`` names the file ``/x.db`` on the host ``tmp``, and SQLAlchemy
    reads ``sqlite:///x.db`` as the relative path ``x.db``; taken as a path, both named
    another file than either reading, so none of them is guessed."""
    if not url.startswith("sqlite:"):
        raise UsageError(f"{url!r} is not a sqlite:/absolute/path URL")
    path = url.removeprefix("sqlite:")
    if path.startswith("//"):
        raise UsageError(
            f"{url!r} starts with sqlite:// (a URL's host part, even an empty one), which tools "
            "read differently (sqlite:///x.db is the relative path x.db to SQLAlchemy, the "
            "absolute /x.db to others): give the file as sqlite:/absolute/path.db"
        )
    return path


def _dispatch(args: argparse.Namespace, out: TextIO) -> int:
    command = args.command
    _refuse_empty_store(args)
    if hasattr(args, "names"):
        args.names = [check_text(name, "--name") for name in args.names]
    if command == "cells" and args.space is not None:
        args.space = check_text(args.space, "--space")
    if command == "demo":
        if getattr(args, "fmt", Format.TEXT) is not Format.TEXT:
            raise UsageError(
                "demo prints a walkthrough as text: --json, --csv and --ndjson do not apply"
            )
        from sqlite_cells.cli._demo import run_demo  # imports the whole public API

        given = resolve_store(args) if args.store is not None else args.store_option
        return run_demo(given, out=out, err=sys.stderr)
    if command == "link":
        _refuse_link_missing_an_argument(args)
    source = _source_path(args.url) if command == "link" else ""
    # Every other command reads the store as this version understands it: a store a newer
    # version wrote is refused as the library refuses it (R73), before anything is read or
    # written (the demo opens it through the library, which refuses it itself).
    refuse_newer_format(resolve_store(args))
    if command == "link":
        return link(resolve_store(args), source, args, out)
    handlers = {
        "inspect": _inspect,
        "tables": _tables,
        "schema": _tables,
        "cells": _cells,
        "query": _query,
    }
    if command in ("check", "gc"):
        return (check if command == "check" else gc)(resolve_store(args), args, out)
    return handlers[command](args, out)


# A query reads with the declaration its space recorded at its last write to the database: a
# newer one reaches the space with a write of the program that declares it, not from here.
_NEWER_DECLARATION_HERE = (
    "this command reads it with the declaration its space recorded last, which the program "
    "using the store replaces with the newer one at its next write to this database: run "
    "that program, then query again (`sqlite-cells cells` shows the tables recorded)"
)


def _message(exc: SqliteCellsError) -> str:
    """The error's message with the name of the Python or SQLite error behind a failed query
    replaced by what it means (the message of a query error carries it)."""
    cause = exc.__cause__
    text = str(exc)
    if isinstance(exc, QueryTimeout):
        # (The read names the deadline --timeout already: query_store's timeout_setting.)
        return text.replace("narrow the query", "narrow the query, or give a larger --timeout")
    if isinstance(exc, QueryError):
        text = text.replace(NEWER_DECLARATION_ADVICE, _NEWER_DECLARATION_HERE)
    if not isinstance(exc, QueryError) or cause is None:
        return text
    if isinstance(cause, SqliteCellsError):
        return text
    raw = f"{type(cause).__name__}: "
    if isinstance(cause, UnicodeError):
        meaning = (
            "a value of the result is text that is not valid UTF-8, which cannot be shown "
            "(select it as hex(…) or CAST(… AS BLOB)); "
        )
        return text.replace(raw, meaning, 1)
    if isinstance(cause, apsw.CorruptError | apsw.NotADBError):
        meaning = "the database file is damaged (`sqlite-cells check` says more): "
        return text.replace(raw, meaning, 1)
    return text.replace(raw, "", 1)


def _os_message(exc: OSError) -> str:
    """What to say of an OS error a layer below let through: what the system refused, the path
    it refused (cut to its start when huge) and what to do."""
    what = exc.strerror or str(exc)
    where = f" at {shown_path(exc.filename)}" if exc.filename is not None else ""
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        remedy = (
            "make the store's directory and files readable and writable by the user running "
            "sqlite-cells (or run it as their owner)"
        )
    elif exc.errno == errno.ENAMETOOLONG:
        remedy = "give a shorter store path (move the store, or use a symbolic link to it)"
    elif exc.errno == errno.ENOSPC:
        remedy = "free space on the disk and run the command again"
    else:
        remedy = "check the path and the disk, then run `sqlite-cells check`"
    return f"{what}{where}: {remedy}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns its exit status (argparse exits 2 itself on bad usage)."""
    # (What the command writes to standard output, its failure said as the output's own.)
    out, err = cast(TextIO, CheckedOutput(sys.stdout)), sys.stderr
    try:
        # A KeyboardInterrupt inside argparse's intermixed parsing makes its own clean-up fail
        # (an AttributeError): Ctrl-C is answered once the arguments are read.
        with interrupts_held():
            args = parser().parse_args(literal_params(sys.argv[1:] if argv is None else argv))
        if args.command == "query":  # R44: the --timeout deadline bounds every wait of the read
            waits = lock_waits(deadline=time.monotonic() + args.timeout)
        else:
            waits = lock_waits(longest=LOCK_WAIT)
        with waits:
            code = _dispatch(args, out)
        out.flush()  # (a failure of the last of it is said here, as any other)
        return code
    except UsageError as exc:
        err.write(error_line(str(exc)))
        return USAGE
    except KeyboardInterrupt:
        # While the arguments were read, nothing had begun; a write in progress is one SQLite
        # transaction: interrupted, it is rolled back whole.
        err.write(error_line("interrupted"))
        return INTERRUPTED
    except BrokenPipeError:
        stop_output()
        return FINDING
    except OutputFailed as exc:
        stop_output()  # (what is left in its buffer is not tried again as the process ends)
        err.write(error_line(str(exc)))
        return FINDING
    except GuardViolation as exc:
        err.write(error_line(f"refused by the statement guard: {exc}"))
        return FINDING
    except SqliteCellsError as exc:
        err.write(error_line(f"{error_kind(exc)}: {_message(exc)}"))
        return FINDING
    except OSError as exc:
        err.write(error_line(_os_message(exc)))
        return FINDING
    except (MemoryError, apsw.NoMemError):
        err.write(error_line(_OUT_OF_MEMORY))
        return FINDING
    except apsw.Error as exc:
        # A layer below let SQLite's own error through (a damaged or foreign file).
        err.write(
            error_line(
                f"SQLite: {type(exc).__name__}: {exc}: a file of the store cannot be read as a "
                "database; `sqlite-cells check` names the damaged ones"
            )
        )
        return FINDING
    except Exception as exc:  # the contract is: never a traceback (SPEC §6)
        err.write(error_line(f"internal error, please report it: {type(exc).__name__}: {exc}"))
        return FINDING


# (The text table reads a query's whole result, in one read transaction, before it aligns its
# columns; --csv, --ndjson and --json print the rows as they are read.)
_OUT_OF_MEMORY = (
    "the command ran out of memory (a query's result is read whole before it is printed as a "
    "table): select fewer rows or columns (LIMIT and OFFSET read it in parts), print it with "
    "--csv, --ndjson or --json, which print the rows as they are read, or give the process "
    "more memory; nothing was written"
)


if __name__ == "__main__":
    sys.exit(main())
