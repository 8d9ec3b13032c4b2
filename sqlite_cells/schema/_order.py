"""The order of a table's columns once its file is migrated to the declared schema (R13).

An additive migration adds the declared columns a stored table lacks with ``ALTER TABLE … ADD
COLUMN``, which appends: the migrated table holds its stored columns in their stored order, then
the added ones in declared order (:func:`migrated_order`). Reads of a file not yet migrated show
that order already (the shadows of R41); writes need it to know which column each value of
``INSERT INTO t VALUES (…)`` without a column list fills (R31): those are the columns SQLite
fills (:func:`fill_orders`), that order without the generated columns (``PRAGMA table_xinfo``
``hidden`` 2 and 3, and declared ones, which ``ADD COLUMN`` can only make ``VIRTUAL``) and
without the hidden columns of virtual tables (``hidden`` 1).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final

import apsw

from sqlite_cells.schema._schema import Schema
from sqlite_cells.schema._schema_diff import declared_report, rows_of
from sqlite_cells.sql import fold_ascii

__all__ = ["fill_orders", "migrated_order"]

_XINFO: Final = "SELECT name, hidden FROM pragma_table_xinfo(?, ?)"


def migrated_order(stored: Sequence[str], declared: Sequence[str]) -> list[str]:
    """The column names of a table once an additive migration brought its ``stored`` columns
    to the ``declared`` ones: the stored ones in stored order, then the declared ones it lacks
    in declared order (names compare ASCII-case-folded, as SQLite compares them)."""
    have = {fold_ascii(name) for name in stored}
    return [*stored, *(name for name in declared if fold_ascii(name) not in have)]


def fill_orders(
    conn: apsw.Connection | None, database: str, schema: Schema, tables: Iterable[str]
) -> dict[str, tuple[str, ...]]:
    """For each declared table of ``tables`` (by ASCII-folded name), the columns a ``VALUES``
    row of ``INSERT INTO table VALUES (…)`` fills once the file is migrated to ``schema``, in
    order. ``conn`` reads the file as ``database`` (None: there is no file yet, so every table
    will be created as declared). Undeclared tables are left out."""
    out: dict[str, tuple[str, ...]] = {}
    for name in tables:
        stored = () if conn is None else tuple(rows_of(conn, _XINFO, (name, database)))
        key = (schema.fingerprint, fold_ascii(name), stored)
        found = _filled.get(key)
        if found is None:
            found = _fill_order(schema, name, stored)
            if len(_filled) >= _CACHE_SIZE:  # drop the oldest; pop() tolerates a racing thread
                _filled.pop(next(iter(_filled), key), None)
            _filled[key] = found
        if found:
            out[key[1]] = found
    return out


# (schema fingerprint, folded table name, its stored xinfo rows) -> columns filled; () when
# the table is not declared
_filled: dict[tuple[str, str, tuple[tuple[object, ...], ...]], tuple[str, ...]] = {}
_CACHE_SIZE: Final = 256


def _fill_order(schema: Schema, name: str, stored: Sequence[tuple[object, ...]]) -> tuple[str, ...]:
    declared = schema.table(name)
    if declared is None:
        return ()
    names = migrated_order([str(row[0]) for row in stored], declared.column_names)
    # A stored column is filled as the file says; an added one as declared.
    added = declared_report(schema)[0][fold_ascii(name)].columns
    filled = [str(row[0]) for row in stored if row[1] == 0]
    filled += [n for n in names[len(stored) :] if not added[fold_ascii(n)].generated]
    return tuple(filled)
