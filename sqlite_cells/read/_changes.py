"""Write sets: what a commit changed in each database, from the changesets in its record (R51).

A ``sqlite`` op in a commit record carries the session changeset of its effect on the database
file (R70), so the write set is known for commits of this runtime, of another runtime and of
another process alike. In a changeset an INSERT or a DELETE changes every column of its table;
an UPDATE carries a new value only for the columns it changed (others are ``apsw.no_change``);
an upsert of an existing key is an UPDATE; foreign-key cascades appear as changes of their own.
A table captured by rowid (no explicit primary key) has the rowid as an extra first column.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Final

import apsw

from sqlite_cells.codec import Op
from sqlite_cells.files import DROP_KIND, KIND, decode_op_body
from sqlite_cells.sql import fold_ascii

__all__ = ["ALL_COLUMNS", "ColumnNames", "WriteSet", "affects", "write_sets"]

ALL_COLUMNS: Final[frozenset[str]] = frozenset({"*"})  # an INSERT or DELETE: every column
WriteSet = dict[str, frozenset[str]]  # table (ASCII-folded) -> changed columns or ALL_COLUMNS
# (db id, table, changeset width) -> the changeset's column names ("" for a rowid), or None
ColumnNames = Callable[[str, str, int], "list[str] | None"]


def write_sets(ops: Iterable[Op], columns: ColumnNames) -> dict[str, WriteSet | None]:
    """The write set of each database written by ``ops`` (keyed by database id). None for a
    database whose op carries no changeset (capture switched off) and for a dropped one: it
    changed, but not column by column, so everything that reads it re-runs."""
    # The ops of one database are combined first: what one op did and a later one undid (a row
    # inserted, then deleted) is no change of the commit's.
    combined: dict[str, bytes | None] = {}
    for op in ops:
        if op.kind == DROP_KIND:  # the file goes away: whatever read it reads nothing now
            combined[op.target] = None
            continue
        if op.kind != KIND:
            continue
        changeset = decode_op_body(op).changeset
        if op.target not in combined:
            combined[op.target] = changeset
            continue
        held = combined[op.target]
        combined[op.target] = (
            None if held is None or changeset is None else apsw.Changeset.concat(held, changeset)
        )
    found: dict[str, WriteSet | None] = {}
    for target, changeset in combined.items():
        if changeset is None:
            found[target] = None
            continue
        into: WriteSet = {}
        _add_changes(into, changeset, target, columns)
        found[target] = into
    return found


def _add_changes(into: WriteSet, changeset: bytes, db_id: str, columns: ColumnNames) -> None:
    changed: dict[str, set[int]] = {}
    widths: dict[str, int] = {}
    for change in apsw.Changeset.iter(changeset):
        table = change.name
        if into.get(fold_ascii(table)) is ALL_COLUMNS:
            continue
        if change.op != "UPDATE":
            into[fold_ascii(table)] = ALL_COLUMNS
            continue
        new = change.new or ()
        indexes = changed.setdefault(table, set())
        indexes.update(i for i, value in enumerate(new) if value is not apsw.no_change)
        widths[table] = change.column_count
    for table, indexes in changed.items():
        key = fold_ascii(table)
        if into.get(key) is ALL_COLUMNS:
            continue
        names = columns(db_id, table, widths[table])
        if names is None:
            into[key] = ALL_COLUMNS  # the shape is not known: be safe rather than exact
            continue
        found = {fold_ascii(names[i]) for i in indexes if names[i]}
        into[key] = frozenset(into.get(key, frozenset()) | found)


def affects(write: WriteSet | None, read: Mapping[str, frozenset[str]] | None) -> bool:
    """Whether a write of ``write`` changed something a query reading ``read`` reads (R51):
    a table read without naming a column ("") only by INSERT or DELETE. Unknown sets (None)
    affect each other."""
    if write is None or read is None:
        return True
    for table, columns in read.items():
        written = write.get(table)
        if written is None:
            continue
        if written is ALL_COLUMNS or not written.isdisjoint(columns):
            return True
    return False


TableShape = tuple[list[str], bool]  # column names in file order, whether it has a primary key


class TableColumns:
    """The changeset column names of database tables (:data:`ColumnNames`), from the file's own
    schema, cached by (path, table). A table captured by rowid (no explicit primary key) has the
    rowid as an extra first column. The shape changes only by an additive migration, which
    shows as a changeset wider than the cached shape: the cache is read again then."""

    def __init__(
        self, lookup: Callable[[str], Path], read: Callable[[Path, str], TableShape]
    ) -> None:
        self._lookup = lookup
        self._read = read
        self._lock = threading.Lock()  # guards _cache
        self._cache: dict[tuple[Path, str], TableShape] = {}

    def __call__(self, db_id: str, table: str, width: int) -> list[str] | None:
        try:
            key = (self._lookup(db_id), fold_ascii(table))
        except Exception:  # not declared here: the caller assumes every column changed
            return None
        with self._lock:
            shape = self._cache.get(key)
        for attempt in range(2):
            if shape is None or attempt:
                try:
                    shape = self._read(key[0], table)
                except Exception:
                    return None
                with self._lock:
                    self._cache[key] = shape
            names, has_pk = shape
            found = names if has_pk else ["", *names]
            if len(found) == width:
                return found
        return None

    def forget(self, path: Path) -> None:
        with self._lock:
            for key in [k for k in self._cache if k[0] == path]:
                del self._cache[key]
