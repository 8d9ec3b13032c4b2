"""Apply a commit's changeset again, or its inverse, exactly (R70, R71).

SQLite's session extension keys the changes of a changeset by their primary keys compared byte for
byte, but SQLite finds two different keys equal when the key column's collation says so (``'A'``
and ``'a'`` under ``NOCASE``, ``'A'`` and ``'A '`` under ``RTRIM``) or when they are the same
number of two types (``1`` and ``1.0`` in a column without affinity). A commit that changes a key
to such an equal one (``UPDATE t SET k = 'a' WHERE k = 'A'``, or a delete and an insert of the
two in one commit) is captured as an UPDATE whose key changes, next to an INSERT of the new row:
a form the session extension cannot apply (``SQL logic error``), and whose inverse deletes the
row it should restore (the inverted UPDATE finds the new row by the equal old key). Reconciling
a database behind its space quarantined it; undoing the commit in flight of one ahead lost the
row and then reported the file in sync.

:func:`apply_exactly` looks for such UPDATEs and, when it finds one, rewrites the changeset as
what the commit did: a DELETE of the old row (its values are the UPDATE's old ones, and for the
columns the UPDATE did not change, the INSERT's) and the INSERT of the new one. It applies the
DELETEs first, then the UPDATEs, then the INSERTs, so the new key never meets the old row.

A table with a constraint that resolves conflicts by REPLACE (``u integer unique on conflict
replace``) needs the same order. The session extension stores a commit's changes by the hash of
their keys, not in the order they were made: a commit whose INSERT replaced a row holds that
INSERT and the DELETE of the replaced row, perhaps in that order. Applied so, the INSERT meets
the row still there, and the table's own REPLACE deletes it without a conflict for the handler
to see; the DELETE then finds no row, and the database could neither catch up nor be rebuilt
from its log. Rows a commit deleted go first, then rows it changed (which may free a value a new
row takes), then its new rows: a row the table's REPLACE still deletes on the way is one the
commit changes later (a chain of UPDATEs taking each other's values), whose own change then
finds it gone — a conflict, never a row lost without a word. Every other changeset is applied as
it is, in one pass. Foreign keys are not enforced on the runtime's connections (SQLite's
default, which the runtime keeps), so the passes fire no action and check nothing between them.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

import apsw

from sqlite_cells.sql import resolves_by_replace

__all__ = ["Inexact", "apply_exactly", "same_value"]

Conflict = Callable[[int, apsw.TableChange], int]
# (table, op, indirect, old values, new values, primary key column indexes)
# (an INSERT's old values and a DELETE's new ones are empty)
_Change = tuple[str, str, bool, tuple[Any, ...], tuple[Any, ...], tuple[int, ...]]


class Inexact(Exception):
    """A changeset with an UPDATE of a key to an equal one that it cannot be rewritten from."""


def apply_exactly(
    conn: apsw.Connection, changeset: bytes, *, conflict: Conflict, invert: bool = False
) -> None:
    """Apply ``changeset`` (its inverse with ``invert``) to ``conn``'s ``main`` database, with
    ``conflict`` as the conflict handler of every change (see the module docstring)."""
    exact = _rewritten(conn, changeset)
    if exact is None and not _replacing(conn):
        apsw.Changeset.apply(
            apsw.Changeset.invert(changeset) if invert else changeset, conn, conflict=conflict
        )
        return
    if exact is None:
        exact = changeset
    if invert:
        exact = apsw.Changeset.invert(exact)
    for only in _PASSES:
        apsw.Changeset.apply(exact, conn, filter_change=only, conflict=conflict)


def _is_delete(change: apsw.TableChange) -> bool:
    return change.opcode == apsw.SQLITE_DELETE


def _is_update(change: apsw.TableChange) -> bool:
    return change.opcode == apsw.SQLITE_UPDATE


def _is_insert(change: apsw.TableChange) -> bool:
    return change.opcode == apsw.SQLITE_INSERT


_PASSES = (_is_delete, _is_update, _is_insert)


def _replacing(conn: apsw.Connection) -> bool:
    """Whether a table of ``conn``'s ``main`` database resolves conflicts by REPLACE."""
    return any(
        text is not None and resolves_by_replace(str(text))
        for (text,) in conn.execute("SELECT sql FROM main.sqlite_schema WHERE type = 'table'")
    )


def _rewritten(conn: apsw.Connection, changeset: bytes) -> bytes | None:
    """``changeset`` with each UPDATE of a key to an equal one made a DELETE of the old row;
    None when it has none (the usual case: only UPDATEs are looked at)."""
    if not any(
        change.opcode == apsw.SQLITE_UPDATE and _key_changed(change)
        for change in apsw.Changeset.iter(changeset)
    ):
        return None
    changes: list[_Change] = [
        (c.name, c.op, c.indirect, c.old or (), c.new or (), tuple(sorted(c.pk_columns)))
        for c in apsw.Changeset.iter(changeset)
    ]
    inserted = {(name, _key(new, pk)): new for name, op, _, _, new, pk in changes if op == "INSERT"}
    builder = apsw.ChangesetBuilder()  # type: ignore[no-untyped-call]
    try:
        builder.schema(conn, "main")
        for name, op, indirect, old, new, pk in changes:
            if op == "INSERT":
                builder.add_insert(name, indirect, new)
            elif op == "DELETE":
                builder.add_delete(name, indirect, old)
            elif _changes_key(old, new, pk):
                after = inserted.get((name, _key(_merged(new, old), pk)))
                if after is None:
                    raise Inexact(
                        f"an UPDATE in table {name} changed a key to one SQLite finds equal, "
                        "and the commit kept no row with the new key to rebuild it from"
                    )
                builder.add_delete(name, indirect, _merged(old, after))
            else:
                builder.add_update(name, indirect, old, new)
        return builder.output()
    finally:
        builder.close()


def _key_changed(change: apsw.TableChange) -> bool:
    old, new = change.old, change.new
    return old is not None and new is not None and _changes_key(old, new, change.pk_columns)


def _changes_key(old: tuple[Any, ...], new: tuple[Any, ...], pk: Any) -> bool:
    """Whether an UPDATE's new values change one of its key columns (a value given that is not
    the old one, byte for byte: a valid changeset never does)."""
    return any(new[i] is not apsw.no_change and not same_value(old[i], new[i]) for i in pk)


def same_value(a: object, b: object) -> bool:
    """The same SQLite value: same type, same value (``-0.0`` is not ``0.0``)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return struct.pack("<d", a) == struct.pack("<d", b)
    return a == b


def _merged(given: tuple[Any, ...], rest: tuple[Any, ...]) -> tuple[Any, ...]:
    """``given``'s values, and ``rest``'s where ``given`` has none (``apsw.no_change``)."""
    return tuple(r if g is apsw.no_change else g for g, r in zip(given, rest, strict=True))


def _key(values: tuple[Any, ...], pk: tuple[int, ...]) -> tuple[tuple[type, Any], ...]:
    """The primary key of ``values``, byte for byte (as the session extension keys changes)."""
    return tuple(
        (type(v), struct.pack("<d", v) if isinstance(v, float) else v)
        for v in (values[i] for i in pk)
    )
