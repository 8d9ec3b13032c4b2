"""The commands that may write: ``check [--repair]``, ``link`` and ``gc [--yes]``."""

from __future__ import annotations

import argparse
import inspect
import json
from pathlib import Path
from typing import Any, TextIO, cast

from sqlite_cells.cli._inspect import (
    InspectError,
    find_space,
    inspect_store,
    read_only,
    store_dir,
)
from sqlite_cells.cli._output import Format, print_json, print_rows
from sqlite_cells.cli._status import FINDING, OK
from sqlite_cells.codec import derive_id
from sqlite_cells.files import check_store, collect_garbage, validate_disk_source
from sqlite_cells.runtime import Cell

__all__ = ["check", "gc", "link"]


def check(store: str, args: argparse.Namespace, out: TextIO) -> int:
    """``check``: R71 for every runtime-owned database; exit 1 when one disagrees."""
    outcomes = check_store(store_dir(store), repair=args.repair)
    rows = [
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
    ]
    if args.fmt is Format.TEXT:
        for o in outcomes:
            out.write(
                f"{o.db_id} ({o.path.name}): watermark {o.db_seq}, space seq {o.space_seq}: "
                f"{o.action.value}"
                + (f", {o.commits} commit(s) applied" if o.commits else "")
                + (f" ({o.detail})" if o.detail else "")
                + "\n"
            )
        out.write(f"{len(outcomes)} database(s) checked\n")
    elif args.fmt is Format.JSON:
        print_json(rows, out)
    else:
        print_rows(rows, args.fmt, out, columns=list(rows[0]) if rows else ["db"])
    return FINDING if any(not o.agrees for o in outcomes) else OK


def _check_piece(space_file: Path, piece: str, field: str) -> None:
    """Refuse a piece or field the space does not know: a piece is recorded, by its first run,
    in the cell of its own id as ``{"piece", "key", "inputs"}`` (see ``Space.run``)."""
    if not piece.startswith("of:"):
        raise InspectError(
            "piece-not-found",
            f"{piece!r} is not a piece id: a piece id starts with 'of:' (piece.id in Python)",
        )
    with read_only(space_file) as conn:
        row = conn.execute("SELECT value FROM _cf_cells WHERE id = ?", (piece,)).fetchone()
    try:
        record = json.loads(bytes(row[0])) if row is not None else None
    except ValueError:
        record = None
    if not isinstance(record, dict) or "piece" not in record:
        raise InspectError(
            "piece-not-found",
            f"no piece {piece} in {space_file.name}: run the pattern once (space.run) first",
        )
    inputs = record.get("inputs")
    if not isinstance(inputs, list) or field not in inputs:
        known = ", ".join(map(str, inputs)) if isinstance(inputs, list) else "none"
        raise InspectError(
            "field-not-found", f"piece {piece} has no input {field!r} (its inputs: {known})"
        )


def link(store: str, path: str, args: argparse.Namespace, out: TextIO) -> int:
    """``link``: register ``path`` in the space and link it to the piece's input, in one
    transaction. The store, the space and (where recorded) the piece and its input must exist:
    otherwise nothing is opened for writing and no file appears."""
    root = store_dir(store)
    space_file = find_space(root, args.space)
    validate_disk_source(path, store=root, roots=None)  # the file first: it is the argument given
    _check_piece(space_file, args.piece, args.field)
    from sqlite_cells import Runtime  # the whole runtime, only for the one command that writes

    with Runtime(root, query_timeout=args.timeout) as rt:
        space = rt.space(args.space)
        with space.transact():
            handle = space.register_disk_source(path)
            Cell(space, derive_id("input", args.piece, args.field)).link(handle)
        out.write(f"linked {handle.path} ({handle.id}) to {args.field} of piece {args.piece}\n")
    return OK


def _garbage(root: Path, *, remove: bool) -> list[Path]:
    """``collect_garbage(root, remove=…)`` (R74: list, or remove). A ``collect_garbage`` that
    does not take ``remove`` yet removes whatever it finds, so only ``remove=True`` calls it;
    a listing then comes from the read-only inspection."""
    if "remove" in inspect.signature(collect_garbage).parameters:
        collect = cast(Any, collect_garbage)
        return list(collect(root, remove=remove))
    if remove:
        return collect_garbage(root)
    return [root / name for name in inspect_store(root).unreferenced_files]


def gc(store: str, args: argparse.Namespace, out: TextIO) -> int:
    """``gc``: list what would be removed; remove it only with ``--yes`` (R74)."""
    root = store_dir(store)
    paths = _garbage(root, remove=args.yes)
    verb = "removed" if args.yes else "would remove"
    rows = [{"file": p.name, "action": verb} for p in paths]
    if args.fmt is Format.TEXT:
        for p in paths:
            out.write(f"{verb} {p.name}\n")
        if args.yes:
            out.write(f"{len(paths)} file(s) removed\n")
        elif paths:
            out.write(f"{len(paths)} file(s) to remove: run again with --yes to remove them\n")
        else:
            out.write("nothing to remove\n")
    elif args.fmt is Format.JSON:
        print_json({"removed": args.yes, "files": [p.name for p in paths]}, out)
    else:
        print_rows(rows, args.fmt, out, columns=["file", "action"])
    return OK
