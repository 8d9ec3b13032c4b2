"""What a name the command line's ``query`` is given leads to, when it names no database:
a piece's input as ``cells`` lists it (``PATTERN/KEY.INPUT``, or its id), followed to the
database it links to as a runtime follows it; a piece, with what to give instead (SPEC §6)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlite_cells.cli._inspect import InspectError
from sqlite_cells.cli._names import Namer
from sqlite_cells.codec import Link, derive_id
from sqlite_cells.files import holds_handle, is_dropped
from sqlite_cells.read import LINKS_FOLLOWED

__all__ = ["LinkedTarget", "follow_input", "linked_database"]


def linked_database(namer: Namer, space_id: str, name: str) -> tuple[str, str] | None:
    """The database (its space and id) that the input ``name`` of space ``space_id`` leads to,
    ``name`` being a piece input's name as ``cells`` lists it (``PATTERN/KEY.INPUT``) or its
    id; None when ``name`` is no piece's nor input's name or id there (nor a database's, which
    comes first). An input linked to another piece's input leads where that one does, as a
    runtime follows it (:func:`follow_input`). Raises :class:`InspectError` (``not-a-database``)
    when it names a piece, an input that leads to no database, or several cells, saying which
    name to give instead; (``database-not-found``) for an input that leads to a dropped
    database."""
    if name.startswith("of:"):
        known = namer.named(space_id, name)
        found = [(name, known)] if known is not None and known.kind in ("piece", "input") else []
    elif namer.named(space_id, derive_id("sqlite", space_id, name)):
        return None
    else:
        found = [(i, n) for i, n in namer.ids_named(space_id, name) if n.kind in ("piece", "input")]
    if not found:
        return None
    if len(found) > 1:
        raise InspectError(
            "not-a-database",
            f"{name!r} names {len(found)} cells of space {space_id!r} (pieces of other pieces: "
            f"{', '.join(i for i, _ in found)}): give the id of the database to read, as "
            "`sqlite-cells inspect` lists it",
        )
    ((cell_id, named),) = found
    # Where: the space, and the id (or, for an id given, the name `cells` lists beside it).
    where = f"of space {space_id!r} ({named.name if name == cell_id else cell_id})"
    if named.kind == "piece":
        raise InspectError(
            "not-a-database",
            f"{name!r} names a piece {where}, not a database: "
            + _piece_advice(namer, space_id, cell_id, named.name),
        )
    target = follow_input(namer, space_id, cell_id)
    if target is None:
        value = namer.value(Link(cell_id, space_id, "space"))
        holds = (
            "nothing yet"
            if value is None
            else f"a link to the cell {namer.label(value, space_id)}"
            if isinstance(value, Link)
            else "a value"
        )
        raise InspectError(
            "not-a-database",
            f"{name!r} names an input {where} that links to no database (it holds {holds}): "
            "give the name of an input that links to a database, or a database's name or id "
            "(`sqlite-cells cells` lists them with their kinds)",
        )
    db_space, db_id = target.space, target.id
    database = namer.label(Link(db_id, db_space, "space"), space_id)
    shown = db_id if database == db_id else f"{database!r} ({db_id})"
    if target.unlinked_input:
        raise InspectError(
            "database-not-found",
            f"{name!r} names an input {where} that links to pattern input {shown}, which is "
            "not linked to a database yet: it has no rows; link a database to either with "
            f"`sqlite-cells link sqlite:/abs/path.db {space_id} PIECE FIELD`, then query it",
        )
    if not target.written:
        raise InspectError(
            "database-not-found",
            f"{name!r} names an input {where} that links to the cell {shown}, which holds "
            "nothing yet: a database declared but not written yet (its file is created by its "
            "first write) has no rows yet; query it once a program has written it",
        )
    if target.dropped:
        raise InspectError(
            "database-not-found",
            f"{name!r} names an input {where} that links to the database {shown}, which was "
            "dropped: it has no rows",
        )
    return db_space, db_id


def _piece_advice(namer: Namer, space_id: str, piece_id: str, label: str) -> str:
    """Which names to give instead of the piece ``piece_id`` (named ``label``): its inputs
    that lead to a database not dropped, the databases it made itself, and — only where there
    is one — an input holding nothing yet, which ``link`` can link a file to (a parameter
    typed ``sc.SqliteDb`` that was given no value; an input holding another cell's link is
    none)."""
    record = namer.value(Link(piece_id, space_id, "space"))
    inputs = record.get("inputs") if isinstance(record, dict) else None
    linked, empty = [], []
    for field_name in inputs if isinstance(inputs, list) else []:
        input_id = derive_id("input", piece_id, str(field_name))
        target = follow_input(namer, space_id, input_id)
        if target is not None and target.written and not target.dropped:
            linked.append(f"{label}.{field_name}")
        elif target is None and namer.value(Link(input_id, space_id, "space")) is None:
            empty.append(field_name)
    owned = _made_by(namer, space_id, piece_id)
    advice = []
    if linked:
        advice.append(
            "give the name of one of its inputs that links to a database: "
            + ", ".join(repr(n) for n in linked)
        )
    if owned:
        advice.append("give the id of a database it made: " + ", ".join(owned))
    if empty:
        fields = ", ".join(repr(str(n)) for n in empty)
        advice.append(
            f"`sqlite-cells link sqlite:/abs/path.db {space_id} {label} FIELD` links a file to "
            f"an input of it that holds nothing yet (a parameter typed sc.SqliteDb): {fields}"
        )
    if not advice:
        return (
            "none of its inputs links to a database, and the store holds no database it made "
            "(`sqlite-cells cells` lists each cell with its kind)"
        )
    return "; or ".join(advice)


def _made_by(namer: Namer, space_id: str, piece_id: str) -> list[str]:
    """The databases (not dropped) the piece ``piece_id`` made in its pattern's body, as
    ``query`` takes them: by id, with the name it gave one when the store tells it. Their ids
    derive from the piece (R1): by that name, or by its place among the unnamed ones."""
    held = namer.databases(space_id)
    made = []
    for db_id in held:
        known = namer.named(space_id, db_id)
        if known is not None and derive_id("sqlite", "piece", piece_id, known.name) == db_id:
            made.append(f"{db_id} ({known.name!r})")
    unnamed = {derive_id("sqlite", "piece", piece_id, "#", place) for place in range(len(held))}
    made += [db_id for db_id in held if db_id in unnamed]
    return made


@dataclass(frozen=True, slots=True)
class LinkedTarget:
    """Where a database input's links lead: the cell holding a database handle (``dropped``:
    that handle is a dropped database's), or a cell that holds nothing yet (``written``
    False), as a database declared but never written does (the runtime that declares it
    knows it as a database; the store holds nothing of it until its first write) — or as
    another piece's database input not linked to a database yet does (``unlinked_input``:
    the store names the cell as a piece's input; a runtime says the input "links to pattern
    input …, which is not linked to a database yet")."""

    space: str
    id: str
    written: bool
    dropped: bool = False
    unlinked_input: bool = False


def follow_input(namer: Namer, space_id: str, input_id: str) -> LinkedTarget | None:
    """The database the input cell ``input_id`` leads to: the cell it links to, through other
    pieces' inputs as a runtime follows them (``SqliteDb``'s ``_follow``:
    :data:`LINKS_FOLLOWED` cells at most, ending where a cycle meets a cell twice), when that
    cell holds a handle or nothing yet; None when the input holds no link or leads to a cell
    holding another value."""
    seen = {(space_id, input_id)}
    value = namer.value(Link(input_id, space_id, "space"))
    for _ in range(LINKS_FOLLOWED + 1):
        if not isinstance(value, Link) or value.path:
            return None
        onward = namer.value(value)
        if holds_handle(value.id, onward):
            return LinkedTarget(value.space, value.id, written=True, dropped=is_dropped(onward))
        if onward is None:
            named = namer.named(value.space, value.id)
            is_input = named is not None and named.kind == "input"
            return LinkedTarget(value.space, value.id, written=False, unlinked_input=is_input)
        if (value.space, value.id) in seen:
            return None
        seen.add((value.space, value.id))
        value = onward
    return None
