"""The commands that may write: ``check [--repair]``, ``link`` and ``gc [--yes]``."""

from __future__ import annotations

import argparse
import errno
import json
import re
import sys
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from sqlite_cells.cli._inspect import (
    INDEX_REBUILD_ADVICE,
    InspectError,
    OrphanInfo,
    StrayInfo,
    as_bytes,
    decoded,
    find_space,
    library_log_held,
    moved_out_then_rebuilt,
    orphan_advice,
    read_only,
    readable_watermark,
    reported_watermark,
    store_dir,
    writes_refused_advice,
)
from sqlite_cells.cli._linked import follow_input
from sqlite_cells.cli._names import Namer
from sqlite_cells.cli._output import (
    Format,
    OutputFailed,
    error_line,
    one_line,
    print_json,
    print_rows,
)
from sqlite_cells.cli._params import check_text
from sqlite_cells.cli._status import FINDING, INTERRUPTED, OK
from sqlite_cells.codec import Link, LinkDecodeError, SqliteCellsError, decode_value, derive_id
from sqlite_cells.files import (
    COPY_FAILED,
    COPY_FOLDER,
    DAMAGED_FILE,
    DISK_REFUSED,
    HANDLE_FINDING,
    INDEX_PAST_LOG,
    NO_FILE,
    OTHER_HISTORY,
    QUARANTINE_DIR,
    TABLES_DIFFER,
    Action,
    CheckFinished,
    DamagedSpace,
    Garbage,
    Outcome,
    check_store,
    gc_plan,
    io_failure,
    on_read_only_file_system,
    remove_garbage,
    source_path,
    stored_json,
    unreadable_advice,
    validate_disk_source,
    why_kept,
)
from sqlite_cells.runtime import (
    Cell,
    dangling_link,
    interrupts_held,
    space_file_advice,
    spelled_apart,
)

__all__ = ["check", "gc", "link"]


_PRIVATE_NAME = re.compile(r"\b_[A-Z]\w*: ")


def _shown(detail: str) -> str:
    """``detail`` on one line, without private class names or SQLite's banner lines."""
    detail = _PRIVATE_NAME.sub("", detail.replace("*** in database main ***", ""))
    joined = "; ".join(line.strip() for line in detail.splitlines() if line.strip())
    return joined.replace(":; ", ": ")


def _advice(o: Outcome, *, repairing: bool = False) -> str:
    """What the user can do about ``o`` (empty when nothing is to be done); ``repairing``: it
    was found by `check --repair`, which repairs whatever it can write."""
    if _disk_refused(o):
        return (
            "nothing was lost: the file is as it was and its space's log still holds every "
            "commit; free space on the disk (or raise the file size limit, or check the "
            "device), then run `sqlite-cells check --repair` again"
        )
    if o.action in _REPAIRABLE:
        # A link to nothing at the file's path: no repair writes through it (as no runtime
        # does), whoever runs it.
        dangling = dangling_link(o.path, "database file")
        if dangling is not None:
            return f"nothing was changed: {dangling}"
    if repairing and o.action in _REPAIRABLE and on_read_only_file_system(o.path):
        return (
            "nothing was changed: `--repair` could not write it, as the file system holding "
            f"{o.path.name} is mounted read-only (no user may write there); remount it "
            "writable, or copy the store (with every -wal) to a writable place, then run "
            "`sqlite-cells check --repair` there"
        )
    if repairing and o.action in _REPAIRABLE:
        return (
            "nothing was changed: `--repair` could not write it, as this user may not write "
            f"{o.path.name} or its space file (or their folder); run `sqlite-cells check "
            "--repair` as a user who may (the store's owner)"
        )
    if o.action is Action.LOCKED:
        again = "check --repair" if repairing else "check"
        return (
            "nothing of it was changed, and the other databases were checked all the same: run "
            f"`sqlite-cells {again}` again once the program holding it lets go"
        )
    if o.action is Action.SPACE_LOCKED:
        again = "check --repair" if repairing else "check"
        return (
            "its databases not listed above were not checked, and nothing of them was changed "
            "(their commits are read from this file); the other spaces were checked all the "
            f"same: run `sqlite-cells {again}` again once the program holding it lets go"
        )
    if o.action is Action.UNREADABLE and io_failure(o.detail or ""):
        # (A full disk: SQLite cannot make the -shm it writes beside a file it opens.)
        return (
            "nothing was changed: the file system refused a read or a write — a full disk, a "
            "file size limit, a failing device (SQLite writes a -shm beside a file it reads): "
            "free space or check the disk, then run `sqlite-cells check` again"
        )
    if o.action is Action.UNREADABLE:
        return (
            "nothing was changed: let this user read and write the file (and its -wal and -shm), "
            "or free what stands in the way, then run `sqlite-cells check` again"
        )
    if o.action is Action.BEHIND:
        return "run `sqlite-cells check --repair` to re-apply the commits it misses"
    if o.action is Action.AHEAD:
        return (
            "run `sqlite-cells check --repair` to undo the one commit its space never recorded "
            "(a copy of the file is kept in the store's quarantine folder first)"
        )
    if o.action is Action.INDEX_INCOMPLETE:
        return INDEX_REBUILD_ADVICE
    if o.action is Action.DAMAGED:
        # (One the log cannot rebuild is quarantined, saying why: see below.)
        return (
            "run `sqlite-cells check --repair` to rebuild it from its space's log, which holds "
            "its whole history (the damaged file is moved to the store's quarantine folder)"
        )
    if o.action in (Action.INVERTED, Action.REBUILT, Action.REPLAYED) and o.kept is not None:
        # (A replay whose commits delete rows keeps a copy first too, R71.)
        return f"the file as it was before the repair is kept at {o.kept}"
    if o.action is Action.QUARANTINED and COPY_FOLDER in o.detail:
        # (Before the advice for a file ahead of its space: the folder is what stops the repair.)
        folder = o.path.parent / QUARANTINE_DIR
        return (
            "nothing was changed: a repair that removes rows first keeps a copy of the file in "
            f"the store's quarantine folder, and {folder} is no folder (a file or a symbolic "
            f"link stands there); move {folder} aside (out of the store, keeping it) so the "
            "folder can be made, then run `sqlite-cells check --repair` again"
        )
    if o.action is Action.QUARANTINED and COPY_FAILED in o.detail:
        # (A full disk is said above.) The copy, not the file or its space, stops the repair:
        # moving the file out or putting back a space file is no help.
        folder = o.path.parent / QUARANTINE_DIR
        return (
            "nothing was changed: a repair that removes rows first keeps a copy of the file in "
            f"the store's quarantine folder, and the copy could not be written into {folder} "
            "(see why above); let this user write that folder (on a file system mounted "
            "read-only, remount it writable), then run `sqlite-cells check --repair` again"
        )
    if o.action is Action.QUARANTINED and o.rebuild_refusal:
        # Moving the file out would not help: the rebuild that follows is the one refused.
        return _not_rebuildable_advice(o)
    # Another file first: its watermark ahead says nothing of the space's file then.
    if o.action is Action.QUARANTINED and (TABLES_DIFFER in o.detail or OTHER_HISTORY in o.detail):
        return (
            "nothing was changed: the file at its path is not this database's file (another "
            "database's, another program's or another store's), and `--repair` cannot make it "
            f"so. Move {moved_out_then_rebuilt(o.path.name)}"
        )
    if o.action is Action.WRITES_REFUSED:
        return writes_refused_advice(o.path.name, o.rebuild_refusal or None)
    if o.action is Action.QUARANTINED and o.detail.startswith(HANDLE_FINDING):
        # The handle's value is wrong, not the file: moving the file out would not help.
        return (
            "nothing was changed, and `--repair` cannot repair it: the value of the database's "
            "handle cell in its space file is not its handle (see why above), and its queries "
            f"and writes fail with Quarantined; {o.path.name} is kept as found: restore the "
            "space's file from a backup made before that value was written"
        )
    if o.action is Action.QUARANTINED and o.db_seq > o.space_seq:
        return (
            "nothing was changed, and `--repair` will not change it: its space's file lost "
            f"commits it had made. Either put back a copy of the space's file that reaches seq "
            f"{o.db_seq}, or give up the database's commits after seq {o.space_seq}: move "
            f"{moved_out_then_rebuilt(o.path.name)}"
        )
    if o.action is Action.QUARANTINED:
        return (
            "nothing was changed, and `--repair` cannot repair it as it is (see why above); the "
            "file is left as found, its queries and writes fail with Quarantined. While its "
            f"space's log holds the database's whole history, moving {o.path.name} (and its "
            "-wal, if any) out of the store, keeping it, then running `sqlite-cells check "
            "--repair` rebuilds the database from the log (it says so if the log cannot); "
            "else restore the file from a backup"
        )
    if o.action is Action.ORPHANED:
        return orphan_advice(o.path.name)
    if o.action is Action.SPACE_DAMAGED:
        return f"nothing was changed: {space_file_advice(o.detail or '')}"
    if o.action is Action.SPACE_UNREADABLE:
        return unreadable_advice(o.detail or "")
    return ""


def _not_rebuildable_advice(o: Outcome) -> str:
    """What to do about a quarantined database whose space's log cannot rebuild its file
    (``o.rebuild_refusal``, said in the detail): bring back a file, as the reason says."""
    if o.detail.startswith(NO_FILE):
        return (
            "nothing was changed and no file was created, and `--repair` cannot rebuild it (see "
            "why above): its queries and writes fail with Quarantined until its file is put "
            f"back as {o.path.name} from a copy, as said above"
        )
    if o.rebuild_refusal.startswith(INDEX_PAST_LOG):
        return (
            "nothing was changed, and `--repair` does not change it: the space file's op index "
            f"holds a row no commit wrote (see why above); {o.path.name} is left as found, its "
            "queries and writes fail with Quarantined until that row is deleted as said above"
        )
    mended = (
        ", or have the damaged file repaired by other means"
        if o.detail.startswith(DAMAGED_FILE)
        else ""
    )
    return (
        "nothing was changed, and neither `--repair` nor moving the file out of the store helps: "
        "its space's log cannot rebuild the database (see why above). The file is left as "
        f"found, its queries and writes fail with Quarantined; put back {o.path.name} from a "
        f"copy, as said above{mended}"
    )


def _disk_refused(o: Outcome) -> bool:
    """Whether ``o`` is a repair (or a look) the disk stopped — full, a file size limit, a
    failing device: nothing was decided, and the same repair works once the disk takes the
    write (the database is not quarantined, R71)."""
    return o.transient and DISK_REFUSED in o.detail


def _shown_action(o: Outcome, *, repairing: bool) -> str:
    """What ``check`` calls the outcome ``o``: its action, save for a repair the disk stopped,
    which is no quarantine."""
    if _disk_refused(o):
        return "not repaired" if repairing else "not checked"
    return o.action.value


# What `check --repair` repairs when it may write the files.
_REPAIRABLE = frozenset({Action.BEHIND, Action.AHEAD, Action.DAMAGED, Action.INDEX_INCOMPLETE})
# What a repair made of them.
_REPAIRED = frozenset({Action.REPLAYED, Action.INVERTED, Action.REBUILT})
# The outcomes of a space file, not a database.
_SPACE_FILES = frozenset({Action.SPACE_DAMAGED, Action.SPACE_UNREADABLE, Action.SPACE_LOCKED})

# The columns of `check`'s rows (its CSV header, also when no database was checked).
_CHECK_COLUMNS = (
    "space", "db", "file", "watermark", "space_seq", "action", "commits", "detail", "kept",
    "advice", "name",
)  # fmt: skip


def check(store: str, args: argparse.Namespace, out: TextIO) -> int:
    """``check``: R71 for every runtime-owned database; exit 1 when one disagrees. Each outcome
    is printed with what to do about it; the library's own log lines, which say the same, are
    held back while it runs. A Ctrl-C that comes once a repair is made ends the check at the
    database it was at (the one being repaired is finished first, see ``check_store``): the
    outcomes so far are printed, then that it was interrupted, and the status is 130 (SPEC §6);
    before any repair is made it ends the command at once, as for every command."""
    outcomes: list[Outcome] = []
    interrupted = False  # by Ctrl-C, once a repair was made
    stopped = False  # so that a database was left unchecked
    try:
        with library_log_held():
            check_store(store_dir(store), repair=args.repair, found=outcomes)
    except KeyboardInterrupt as exc:
        if not any(o.action in _REPAIRED for o in outcomes):
            raise  # nothing was written
        interrupted = True
        # (during the last database's repair: every database was checked all the same)
        stopped = not isinstance(exc, CheckFinished)
    repaired = any(o.action in _REPAIRED for o in outcomes)
    try:
        # Once a repair is made it is said, whatever comes meanwhile.
        with interrupts_held() if repaired else nullcontext():
            status = _print_check(store, args, outcomes, out)
            out.flush()  # (its failure is said here, with the repairs made)
    except KeyboardInterrupt:
        if not repaired:
            raise
        interrupted = True
    except OutputFailed as exc:
        if not repaired:
            raise
        raise exc.after(_repairs_made(store, outcomes)) from exc.cause
    if not interrupted:
        return status
    rest = (
        " (a database not listed above was not checked: run `sqlite-cells check --repair` again)"
        if stopped
        else ""
    )
    sys.stderr.write(
        error_line(f"interrupted once the repairs above were made; they are kept{rest}")
    )
    return INTERRUPTED


def _print_check(store: str, args: argparse.Namespace, outcomes: list[Outcome], out: TextIO) -> int:
    """Print ``check``'s rows for ``outcomes``; its exit status for them."""
    # Each database's space and recorded name, as `inspect` gives them (none for a space file
    # or an orphaned file, whose space is not known).
    homes = _database_homes(store, {o.db_id for o in outcomes})
    rows: list[dict[str, Any]] = [
        {
            "space": homes[o.db_id][0] if o.db_id in homes else None,
            "db": o.db_id,
            "file": o.path.name,
            "watermark": reported_watermark(o),
            "space_seq": o.space_seq,
            "action": _shown_action(o, repairing=args.repair),
            "commits": o.commits,
            "detail": _shown(o.detail),
            "kept": str(o.kept) if o.kept is not None else None,
            "advice": _advice(o, repairing=args.repair),
            "name": homes[o.db_id][1] if o.db_id in homes else None,
        }
        for o in outcomes
    ]
    for row, o in zip(rows, outcomes, strict=True):
        if o.action in _SPACE_FILES:  # a space file: no database, watermark or seq
            row.update(space=None, db=None, watermark=None, space_seq=None, name=None)
        elif o.action is Action.ORPHANED:
            # No space names the file, so no id (ids are one-way hashes) and no space seq; its
            # watermark is the one it holds, none when it cannot be read (as `inspect` says).
            row.update(
                space=None, db=None, watermark=readable_watermark(o.path), space_seq=None, name=None
            )
        elif o.action is Action.LOCKED:
            row.update(watermark=None)  # not read: the file's lock was held all along
    checked = sum(o.action not in _SPACE_FILES for o in outcomes)
    if args.fmt is Format.TEXT:
        for row, o in zip(rows, outcomes, strict=True):
            if o.action is Action.ORPHANED:
                mark = row["watermark"] if row["watermark"] is not None else "unreadable"
                out.write(
                    f"orphaned database file {one_line(row['file'])}: watermark {mark} "
                    f"({one_line(row['detail'])})\n  {one_line(row['advice'])}\n"
                )
                continue
            if row["db"] is None:
                what = (
                    "damaged, cannot be read"
                    if o.action is Action.SPACE_DAMAGED
                    else "locked by another program"
                    if o.action is Action.SPACE_LOCKED
                    else "cannot be opened"
                    if io_failure(o.detail or "")
                    else "cannot be opened by this user"
                )
                out.write(
                    f"space file {one_line(row['file'])}: {what} ({one_line(row['detail'])})\n"
                )
                out.write(f"  {one_line(row['advice'])}\n")
                continue
            mark = row["watermark"]
            if mark is None:
                mark = "not read" if o.action is Action.LOCKED else "unreadable"
            out.write(
                (
                    one_line(f"database {row['name']!r} of space {row['space']!r}, ")
                    if row["name"] is not None
                    else ""
                )
                + f"{row['db']} ({one_line(row['file'])}): watermark {mark}, "
                f"space seq {row['space_seq']}: {row['action']}"
                + (f", {row['commits']} commit(s) applied" if row["commits"] else "")
                + (f" ({one_line(row['detail'])})" if row["detail"] else "")
                + "\n"
            )
            if row["advice"]:
                out.write(f"  {one_line(row['advice'])}\n")
        out.write(f"{checked} database(s) checked\n")
    elif args.fmt is Format.JSON:
        print_json(rows, out)
    else:
        print_rows(rows, args.fmt, out, columns=_CHECK_COLUMNS)
    return FINDING if any(not o.agrees for o in outcomes) else OK


def _repairs_made(store: str, outcomes: list[Outcome]) -> str:
    """What ``check --repair`` says it did when its output could not be written: each repair
    made (it is kept), and where a copy of a file was kept before one — the output that would
    have said so is lost, and a run again finds those databases in sync."""
    homes = _database_homes(store, {o.db_id for o in outcomes})
    made = []
    for o in outcomes:
        if o.action not in _REPAIRED:
            continue
        space, name = homes.get(o.db_id, (None, None))
        who = f"database {name!r} of space {space!r} ({o.db_id})" if name else o.db_id
        kept = f", a copy of the file as it was is kept at {o.kept}" if o.kept else ""
        applied = f", {o.commits} commit(s) applied" if o.commits else ""
        made.append(f"{who}: {o.action.value}{applied}{kept}")
    return (
        f"the repairs were made all the same and are kept ({'; '.join(made)}): "
        "`sqlite-cells check` shows the store as it is now"
    )


def _database_homes(store: str, db_ids: set[str]) -> dict[str, tuple[str, str | None]]:
    """The space of each of ``db_ids`` whose handle a space of the store holds, and its name
    when that space records it (as ``inspect`` names it; a database made inside a pattern has
    none). Nothing for the spaces that cannot be read (a space file damaged or unreadable: said
    anyway)."""
    found: dict[str, tuple[str, str | None]] = {}
    wanted = json.dumps(sorted(db_ids))
    try:
        with Namer(store_dir(store), skip_damaged=True) as namer:
            for space_id, path in namer.spaces().items():
                with read_only(path) as conn:
                    held = conn.execute(
                        f"SELECT {as_bytes('id')} FROM _cf_cells "
                        "WHERE id IN (SELECT value FROM json_each(?))",
                        (wanted,),
                    ).fetchall()
                for (raw_id,) in held:
                    db_id = decoded(raw_id)
                    if db_id is None:
                        continue
                    named = namer.named(space_id, db_id)
                    recorded = named is not None and named.kind in ("database", "sqlite")
                    found[db_id] = (space_id, named.name if named and recorded else None)
    except (SqliteCellsError, OSError):
        return found
    return found


def _stored(space_file: Path, cell_id: str) -> bytes | None:
    with read_only(space_file) as conn:
        row = conn.execute("SELECT value FROM _cf_cells WHERE id = ?", (cell_id,)).fetchone()
    return stored_json(row[0]) if row is not None else None


def _pieces(space_file: Path, space_id: str) -> dict[str, dict[str, Any]]:
    """The space's pieces: each cell holding a piece record ``{"piece", "key", "inputs"}``
    (written by ``Space.run`` in the cell of the piece's id) whose id is the one its pattern
    name and key derive — in the space, or in another piece of it (a pattern that runs
    another) — by id. A plain cell holding such a value is no piece."""
    records: dict[str, dict[str, Any]] = {}
    with read_only(space_file) as conn:
        for raw_id, data in conn.execute(
            f"SELECT {as_bytes('id')}, {as_bytes('value')} FROM _cf_cells WHERE id LIKE 'of:%'"
        ):
            cell_id = decoded(raw_id)
            try:
                record = json.loads(stored_json(data) or b"")
            except ValueError:
                continue
            shaped = isinstance(record, dict) and {"piece", "key", "inputs"} <= record.keys()
            if cell_id is not None and shaped:
                records[cell_id] = record
    found: dict[str, dict[str, Any]] = {}
    parents: list[str | None] = [None]  # the space itself, then each piece found
    while parents:
        parent = parents.pop()
        for cell_id, record in records.items():
            name, key = str(record["piece"]), str(record["key"])
            cause = ("piece", space_id) if parent is None else ("piece", "piece", parent)
            if cell_id not in found and derive_id(*cause, name, key) == cell_id:
                found[cell_id] = record
                parents.append(cell_id)
    return found


def _piece_id(pieces: dict[str, dict[str, Any]], space_id: str, piece: str) -> str:
    """The id of the piece given as ``piece``: its id (``of:…``, ``piece.id`` in Python), or
    its name as `cells` lists it (``PATTERN/KEY``), looked up among ``pieces``."""
    if piece.startswith("of:"):
        return piece
    labels = {cell_id: f"{r['piece']}/{r['key']}" for cell_id, r in pieces.items()}
    named = sorted(cell_id for cell_id, label in labels.items() if label == piece)
    if len(named) == 1:
        return named[0]
    if named:
        raise InspectError(
            "piece-not-found",
            f"{len(named)} pieces of space {space_id!r} are named {piece!r} (pieces of other "
            f"pieces): give the id of the one to link ({', '.join(named)})",
        )
    known = ", ".join(repr(label) for label in sorted(labels.values())[:20]) or "none yet"
    raise InspectError(
        "piece-not-found",
        f"no piece {piece!r} in space {space_id!r}: give a piece's id (it starts with 'of:', "
        f"piece.id in Python) or its name as `sqlite-cells cells` lists it (pieces: {known})",
    )


def _check_piece(pieces: dict[str, dict[str, Any]], space_id: str, piece: str, field: str) -> None:
    """Refuse a piece or field the space does not know (see :func:`_pieces`)."""
    record = pieces.get(piece)
    if record is None:
        raise InspectError(
            "piece-not-found",
            f"no piece {piece} in space {space_id!r}: run the pattern once (space.run) first",
        )
    inputs = record.get("inputs")
    if not isinstance(inputs, list) or field not in inputs:
        known = ", ".join(map(str, inputs)) if isinstance(inputs, list) else "none"
        alike = (
            spelled_apart(field, [n for n in inputs if isinstance(n, str)])
            if isinstance(inputs, list)
            else ""
        )
        raise InspectError(
            "field-not-found",
            f"piece {piece} has no input {field!r} (its inputs: {known}){alike}",
        )


@dataclass(frozen=True, slots=True)
class _Linked:
    """The database an input is linked to now: its handle id and what it is."""

    id: str
    what: str  # the injected file's path, or "database cell"
    # The cell the input itself links to when it leads there through another piece's input
    # (as a runtime follows it): linking the input to that same database still writes its link.
    through: str | None = None


def _database_input(
    root: Path, space_file: Path, space_id: str, piece: str, field: str
) -> _Linked | None:
    """What the input ``field`` of ``piece`` is linked to now, refusing an input that is not a
    database input. The piece's record names its inputs but not their types, so the input
    cell's committed value decides: nothing (never given a value, as an input typed
    ``sc.SqliteDb`` is until something is linked to it, R61) or a link that leads, as a runtime
    follows it (through other pieces' database inputs), to a database handle or to a cell that
    holds nothing yet (a database declared but not written yet, or another piece's input not
    linked to a database yet) is a database input; anything else (a plain value, a link to an
    ordinary cell) is not."""
    input_id = derive_id("input", piece, field)
    data = _stored(space_file, input_id)
    try:
        value = decode_value(data) if data is not None else None
    except (LinkDecodeError, ValueError):
        value = "<a value that does not decode>"
    if value is None:
        return None
    if isinstance(value, Link) and not value.path:
        with Namer(root) as namer:
            target = follow_input(namer, space_id, input_id)
            at = Link(target.id, target.space, "space") if target else None
            handle = namer.value(at) if at else None
            label = namer.label(at, space_id) if at else ""
        through = value.id if target is not None and target.id != value.id else None
        via = f", through the input {through}" if through is not None else ""
        if target is not None and target.unlinked_input:
            named = f" {label!r}" if label != target.id else ""
            what = f"pattern input{named}, not linked to a database yet{via}"
            return _Linked(target.id, what, through)
        if target is not None and not target.written:
            return _Linked(target.id, f"database cell, not written yet{via}", through)
        if target is not None and isinstance(handle, dict):
            where = source_path(handle)
            what = str(where) if where is not None else "database cell"
            return _Linked(target.id, what + via, through)
    if isinstance(value, Link):
        shown = f"a link to the cell {value.id}, which is not a database"
    else:
        text = json.dumps(value, ensure_ascii=False)
        shown = f"the value {text[:80] + '…' if len(text) > 80 else text}"
    raise InspectError(
        "not-a-database-input",
        f"input {field!r} of piece {piece} is not a database input: it holds {shown}. `link` "
        "links a file only to an input that holds nothing yet (a parameter typed sc.SqliteDb "
        "that was given no value) or that is already linked to a database; nothing was changed",
    )


def link(store: str, path: str, args: argparse.Namespace, out: TextIO) -> int:
    """``link``: register ``path`` in the space and link it to the piece's input. The handle is
    written in a commit of its own when it changes, as ``register_disk_source`` always does (the
    handle a link names is stored first), then the input's link. A Ctrl-C that comes once the
    first is made waits for the second: the command then says what it linked, that it was
    interrupted once it was made, and exits 130 (a crash between the two leaves the file
    registered and nothing linking it; running ``link`` again finishes). The
    store, the space and the piece must exist and the input must be a database input (see
    :func:`_database_input`): otherwise nothing is opened for writing and no file appears. An
    input already linked to a database is re-linked, and the output says
    what it was linked to; linked again to the same file, nothing is written (no commit), and
    to the same path where the file was replaced, only the handle's new pin is (R60)."""
    root = store_dir(store)
    args.space = check_text(args.space, "SPACE")
    args.piece = check_text(args.piece, "PIECE")
    args.field = check_text(args.field, "FIELD")
    space_file = find_space(root, args.space)
    validate_disk_source(path, store=root, roots=None)  # the file first: it is the argument given
    pieces = _pieces(space_file, args.space)
    args.piece = _piece_id(pieces, args.space, args.piece)
    _check_piece(pieces, args.space, args.piece, args.field)
    before = _database_input(root, space_file, args.space, args.piece, args.field)
    pin = _stored(space_file, before.id) if before is not None else None
    from sqlite_cells import Runtime  # the whole runtime, only for the one command that writes

    rt = Runtime(root, query_timeout=args.timeout)
    done = False
    try:
        space = rt.space(args.space)
        start = space.file.seen_seq
        # Ctrl-C ends the command at once until a commit of it is made (opening the store,
        # waiting for its write lock); from then on it waits until the input is linked, the
        # runtime closed and the output written: it never lands between the two commits, nor
        # after them with nothing said.
        with interrupts_held(lambda: space.file.seen_seq > start):
            handle = space.register_disk_source(path)  # writes the handle when it changes
            if before is None or before.id != handle.id or before.through is not None:
                with space.transact():
                    Cell(space, derive_id("input", args.piece, args.field)).link(handle)
            rt.close()  # (what is reported is read from the files, once the runtime let go)
            try:
                _report(args, space_file, before, pin, str(handle.path), handle.id, out)
                out.flush()  # (its failure is said here, with the link made)
            except OutputFailed as exc:
                made = (
                    f"{handle.path} ({handle.id}) is linked to {args.field} of piece {args.piece}"
                )
                raise exc.after(
                    f"the link was made all the same: {made}; `sqlite-cells cells` shows it"
                ) from exc.cause
            done = True
    except KeyboardInterrupt:
        if not done:
            raise  # nothing was written, or the link failed and its error came first
        sys.stderr.write(error_line("interrupted once the link above was made; it is kept"))
        return INTERRUPTED
    finally:
        rt.close()  # (again when it stopped before: closing is idempotent)
    return OK


def _report(
    args: argparse.Namespace,
    space_file: Path,
    before: _Linked | None,
    pin: bytes | None,
    linked: str,
    handle_id: str,
    out: TextIO,
) -> None:
    replaced = before is not None and (before.id != handle_id or before.through is not None)
    repinned = before is not None and not replaced and _stored(space_file, handle_id) != pin
    if args.fmt is Format.TEXT:
        # (Escaped as every line of text output is: a path may hold a newline or a
        # terminal's escape sequence, and the piece and field are as the user typed them.)
        out.write(
            f"linked {one_line(linked)} ({handle_id}) to {one_line(args.field)} of piece "
            f"{one_line(args.piece)}\n"
        )
        if before is not None and replaced:
            out.write(f"  it replaces the link to {one_line(before.what)} ({before.id})\n")
        elif repinned:
            out.write(
                "  it was already linked to this path, but the file there was replaced: the "
                "handle now records the new file (one commit)\n"
            )
        elif before is not None:
            out.write("  it was already linked to this file: nothing was written\n")
    else:
        data = {
            "space": args.space,
            "piece": args.piece,
            "field": args.field,
            "file": linked,
            "handle": handle_id,
            "replaced": {"handle": before.id, "file": before.what} if replaced and before else None,
            "repinned": repinned,
            "written": before is None or replaced or repinned,
        }
        if args.fmt is Format.JSON:
            print_json(data, out)
        else:
            print_rows([{**data, "replaced": before.id if replaced and before else None}],
                       args.fmt, out)  # fmt: skip


def _skipped(root: Path) -> list[tuple[Path, str]]:
    """Entries named like a database file that are not one (a directory, a dangling link), with
    why: quarantined where they stand, never listed nor removed by gc (docs/decisions.md)."""
    return [
        (
            p,
            (
                "a symbolic link"
                if p.is_symlink()
                else "a directory"
                if p.is_dir()
                else "not a regular file"
            )
            + " where a database file belongs: gc removes only database files it can tell "
            "are unused; look at it and move it out of the store yourself",
        )
        for p in sorted(root.glob("cell-*.sqlite"))
        if p.is_symlink() or not p.is_file()
    ]


# Why gc lists a file (R74).
_GIVEN_UP = "its database was dropped (db.drop()), and no space names it otherwise"
_UNUSED = "no space names it, and it holds no commit"
_UNFINISHED = (
    "an unfinished rebuild of a damaged database file (`check --repair` stopped before its "
    "end); the database is rebuilt from its space's log"
)


def _remove_all(found: list[Garbage]) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Remove each file with its companions, going on past one that cannot be removed (or
    that a first write may be writing), so gc never stops halfway: (removed, [(not removed,
    why)])."""
    removed: list[Path] = []
    failed: list[tuple[Path, str]] = []
    for garbage in found:
        try:
            if remove_garbage(garbage):
                removed.append(garbage.path)
            else:
                failed.append((garbage.path, why_kept(garbage.path)))
        except OSError as exc:
            why = exc.strerror or str(exc)
            if exc.errno in (errno.EACCES, errno.EPERM):
                where = garbage.path.parent
                why += f": this user may not remove it (from {where}); run gc as a user who may"
            failed.append((garbage.path, why))
    return removed, failed


def gc(store: str, args: argparse.Namespace, out: TextIO) -> int:
    """``gc``: list what would be removed; remove it only with ``--yes`` (R74). Something named
    like a database file that is not a regular file is reported as skipped, never touched.
    A damaged space file is reported, and no file it may name is removed. Exit 1 when a listed
    file could not be removed (the others are removed all the same) or a space file is
    damaged."""
    root = store_dir(store)
    skipped = _skipped(root)
    plan = gc_plan(root)  # (kept: files no space names that gc cannot tell are unused)
    found, damaged = plan.garbage, plan.damaged
    kept = [(p, _why_unnamed_kept(p, mark, in_use=p in plan.in_use)) for p, mark in plan.kept]
    kept += [(f.path, StrayInfo(f.path.name, f.suffix, f.db_id).finding()) for f in plan.strays]
    paths = [g.path for g in found]
    reasons = {
        g.path: _GIVEN_UP if g.dropped else _UNFINISHED if g.rebuild else _UNUSED for g in found
    }
    # Each file's space and its database's recorded name, as `check`'s rows give them (None
    # for a file no space names, and for what gc skips or keeps, which no space names either).
    homes = _database_homes(store, {g.db_id for g in found if g.db_id is not None})
    home = {g.path: homes.get(g.db_id, (None, None)) if g.db_id else (None, None) for g in found}
    failed: list[tuple[Path, str]] = []
    if args.yes:
        paths, failed = _remove_all(found)
    verb = "removed" if args.yes else "would remove"
    try:
        if args.fmt is Format.TEXT:
            for p in paths:
                out.write(f"{verb} {one_line(p.name)}{_shown_home(*home[p])}\n")
            for p, why in skipped:
                out.write(f"skipped {one_line(p.name)}: {why}\n")
            for p, why in kept:
                out.write(f"kept {one_line(p.name)}: {one_line(why)}\n")
            for p, why in failed:
                out.write(
                    f"could not remove {one_line(p.name)}{_shown_home(*home[p])}: {one_line(why)}\n"
                )
            for d in damaged:
                out.write(
                    f"{_space_file_kind(d)} {one_line(d.path.name)} ({one_line(d.reason)}): "
                    f"{_kept_for(d)}\n"
                )
            if args.yes:
                out.write(f"{len(paths)} file(s) removed\n")
            elif paths:
                out.write(f"{len(paths)} file(s) to remove: run again with --yes to remove them\n")
            else:
                out.write("nothing to remove\n")
        elif args.fmt is Format.JSON:
            data: dict[str, Any] = {"removed": args.yes, "files": [p.name for p in paths]}
            # (`files` names them, as it always did; `databases` says whose each one is)
            data["databases"] = [
                {"space": home[p][0], "file": p.name, "name": home[p][1]} for p in paths
            ]
            if skipped:
                data["skipped"] = [_gc_entry(p, why) for p, why in skipped]
            if kept:
                data["kept"] = [_gc_entry(p, why) for p, why in kept]
            if failed:
                data["failed"] = [_gc_entry(p, why, home[p]) for p, why in failed]
            if damaged:
                data["damaged_space_files"] = [
                    {"file": d.path.name, "reason": d.reason, "unreadable": d.unreadable,
                     "why": _kept_for(d)}
                    for d in damaged
                ]  # fmt: skip
            print_json(data, out)
        else:
            rows = [_gc_row(p, verb, reasons[p], home[p]) for p in paths]
            rows += [_gc_row(p, "skipped", why) for p, why in skipped]
            rows += [_gc_row(p, "kept", why) for p, why in kept]
            rows += [_gc_row(p, "not removed", why, home[p]) for p, why in failed]
            rows += [_gc_row(d.path, _space_file_kind(d), _kept_for(d)) for d in damaged]
            print_rows(rows, args.fmt, out, columns=_GC_COLUMNS)
        out.flush()
    except OutputFailed as exc:
        if not args.yes:
            raise
        not_removed = f", {len(failed)} could not be" if failed else ""
        raise exc.after(
            f"the removal was done all the same ({len(paths)} file(s) removed{not_removed}): "
            "`sqlite-cells gc` lists what is left"
        ) from exc.cause
    return FINDING if failed or damaged else OK


# The columns of `gc`'s CSV and NDJSON rows: `space` first and `name` last, as `check`'s.
_GC_COLUMNS = ("space", "file", "action", "why", "name")


def _gc_row(
    path: Path, action: str, why: str, home: tuple[str | None, str | None] = (None, None)
) -> dict[str, Any]:
    """One of `gc`'s rows: ``home`` is the space of the file's database and its recorded name
    (None where no space names the file, or does not name the database)."""
    return {"space": home[0], "file": path.name, "action": action, "why": why, "name": home[1]}


def _gc_entry(
    path: Path, why: str, home: tuple[str | None, str | None] = (None, None)
) -> dict[str, Any]:
    """An entry of `gc --json`'s `skipped`, `kept` and `failed` lists: a row without its
    action, which the list's name says."""
    entry = _gc_row(path, "", why, home)
    del entry["action"]
    return entry


def _shown_home(space: str | None, name: str | None) -> str:
    """What gc's text says of whose a file is: `` (database 'x' of space 'a')``, or of a
    database its space records no name for `` (a database of space 'a')``; nothing when no
    space names it."""
    if space is None:
        return ""
    what = f"database {name!r}" if name is not None else "a database"
    return one_line(f" ({what} of space {space!r})")


def _why_unnamed_kept(path: Path, watermark: int | None, *, in_use: bool) -> str:
    """Why gc keeps ``path``, a database file no space names (``watermark``: its own, None when
    it cannot be read as a database; ``in_use``: another connection held it as gc read it, so
    neither says anything of it)."""
    if in_use:  # R74: a new database's file exists before its first commit names it
        return (
            "no space names it yet, and another connection held it while gc read it: it may "
            "be a new database's first write under way, which names it in its space as it "
            "commits; nothing was changed: run gc again once that write is done"
        )
    if watermark != 0:  # holds commits, or cannot be read: an orphan, as `check` reports it
        return OrphanInfo(path.name, watermark).finding()
    return (
        "no space names it, and it holds no commit of the runtime's but rows of tables that "
        "are not the runtime's, or bytes that do not begin as an SQLite database's: gc never "
        f"removes it; look at it, and move {path.name} out of the store yourself"
    )


def _space_file_kind(d: DamagedSpace) -> str:
    return "unreadable space file" if d.unreadable else "damaged space file"


def _kept_for(d: DamagedSpace) -> str:
    state = "cannot be read" if d.unreadable else "is damaged"
    return (
        f"no database file is removed while it {state} (it may name any, a file another "
        f"space dropped too); {d.advice}"
    )
