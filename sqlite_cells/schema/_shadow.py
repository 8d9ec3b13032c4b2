"""Temporary stand-ins that make a file read as its declared schema before it is migrated (R14,
R41).

A file written under an older declaration can lack declared tables or columns until the next
write migrates it (R13). Reads never run DDL on the file, so a read connection shadows what is
missing with objects of its own ``temp`` schema, which SQLite searches before ``main`` when it
resolves an unqualified name:

* a declared table the file does not have: an empty ``temp`` table of the declared definition,
  with its declared indexes (so ``INDEXED BY`` one of them works);
* a stored table that lacks declared columns: a ``temp`` view of the table's name selecting the
  stored columns in their stored order, then the missing ones in declared order — the order a
  migration's ``ADD COLUMN`` gives them (:func:`~sqlite_cells.schema._order.migrated_order`,
  which writes use too), so ``SELECT *`` does not change when the file is migrated. The
  missing columns come from a one-row ``temp`` table (``_cf_shadow_<n>``) holding their
  declared defaults (NULL without one) under their declared type and collation: a view
  column that names a table column keeps its affinity and collation, so ``WHERE c = '7'`` and
  ``ORDER BY`` compare as they will once the column is real.

A view has no index: ``INDEXED BY`` a table read through a view fails until the file is migrated,
as does ``INDEXED BY`` a declared index the file lacks on a table it holds complete (SQLite cannot
index a ``main`` table from ``temp``). A view has no ``rowid`` either: a statement that SQLite
refuses for naming the ``rowid`` of a view runs again on temporary tables holding a copy of the
stored rows (``copy``, then ``uncopy``), which costs a pass over the table per such statement
until the file is migrated. A missing *generated* column reads as NULL.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import apsw

from sqlite_cells.schema._order import migrated_order
from sqlite_cells.schema._schema import (
    Schema,
    create_index_sql,
    create_table_sql,
    quote_ident,
    standin_column,
)
from sqlite_cells.schema._schema_diff import (
    declared_report,
    readable_schema,
    rows_of,
    schema_objects,
)
from sqlite_cells.sql import fold_ascii

__all__ = ["NO_SHADOWS", "SHADOW_PREFIX", "Shadows", "plan_shadows"]

SHADOW_PREFIX: Final = "_cf_shadow_"
_XINFO: Final = "SELECT name, type, hidden FROM pragma_table_xinfo(?, 'main')"


@dataclass(frozen=True, slots=True)
class Shadows:
    """What a read connection creates in ``temp`` (``create``, in order); ``tables`` are the
    ASCII-folded declared names it shadows and ``helpers`` those of the one-row default tables
    its views read. ``copy`` turns each view into a temporary table holding a copy of the
    stored rows with their rowids (for a statement that names ``rowid``) and ``uncopy`` turns
    the copies back into the views."""

    create: tuple[str, ...]
    tables: frozenset[str]
    helpers: frozenset[str]
    copy: tuple[str, ...] = ()
    uncopy: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.create)


NO_SHADOWS: Final = Shadows((), frozenset(), frozenset())
_ROWID_NAMES: Final = ("rowid", "oid", "_rowid_")


def plan_shadows(conn: apsw.Connection, schema: Schema) -> Shadows:
    """The ``temp`` objects that make ``main`` of ``conn`` read as ``schema``; reads only.

    A declared table whose name the file uses for another kind of object (an index left by an
    earlier declaration) reads as declared and empty, as one the file lacks (R41); writing
    raises :class:`UnsupportedMigration` until a ``migrate`` removes that object."""
    with readable_schema(conn, "main"):
        return _plan_shadows(conn, schema)


def _plan_shadows(conn: apsw.Connection, schema: Schema) -> Shadows:
    want_tables, _ = declared_report(schema)
    objects = schema_objects(conn, "main")
    create: list[str] = []
    copy: list[str] = []
    uncopy: list[str] = []
    tables: set[str] = set()
    helpers: set[str] = set()
    for name, declared in schema.tables:
        kind, stored_name, _, _ = objects.get(fold_ascii(name), ("", "", "", None))
        if kind != "table":
            # No table of that name (none at all, or an index, a view or a trigger the file
            # holds under it, which no query reads as a table): read as declared, empty (R41).
            create.append(create_table_sql("temp", name, declared))
            create += [create_index_sql("temp", i, name, cols) for i, cols in declared.indexes]
            tables.add(fold_ascii(name))
            continue
        stored = [
            (str(n), str(t or "")) for n, t, hidden in rows_of(conn, _XINFO, (stored_name,))
            if hidden != 1
        ]  # fmt: skip
        have = {fold_ascii(n) for n, _ in stored}
        want = want_tables[fold_ascii(name)].columns
        order = migrated_order([n for n, _ in stored], declared.column_names)
        missing = [want[fold_ascii(n)] for n in order[len(stored) :]]
        if not missing:
            continue
        helper = f"{SHADOW_PREFIX}{len(helpers)}"
        added = []
        for col in missing:
            default = None if col.generated else col.default
            added.append(standin_column(col.name, col.type, default, col.collation))
        create.append(f"CREATE TABLE temp.{quote_ident(helper)} ({', '.join(added)})")
        create.append(f"INSERT INTO temp.{quote_ident(helper)} DEFAULT VALUES")
        picks = [f"s.{quote_ident(n)} AS {quote_ident(n)}" for n, _ in stored]
        picks += [f"d.{quote_ident(c.name)} AS {quote_ident(c.name)}" for c in missing]
        view = (
            f"CREATE VIEW temp.{quote_ident(name)} AS SELECT {', '.join(picks)} "
            f"FROM main.{quote_ident(stored_name)} AS s CROSS JOIN temp.{quote_ident(helper)} AS d"
        )
        create.append(view)
        copy += _copy(conn, name, stored_name, stored, added, have | set(want))
        uncopy += [f"DROP TABLE temp.{quote_ident(name)}", view]
        tables.add(fold_ascii(name))
        helpers.add(fold_ascii(helper))
    return Shadows(tuple(create), frozenset(tables), frozenset(helpers), tuple(copy), tuple(uncopy))


def _copy(
    conn: apsw.Connection,
    name: str,
    stored_name: str,
    stored: list[tuple[str, str]],
    added: list[str],
    names: set[str],
) -> list[str]:
    """Statements replacing the view ``name`` by a temporary table of the stored rows, rowids
    kept (unless every name of the rowid is a column's), and the added columns at their
    declared defaults: what the migrated table will hold."""
    defs = []
    keys = []
    for column, type_ in stored:
        try:
            metadata = conn.column_metadata("main", stored_name, column)
        except apsw.Error:
            metadata = (type_, "BINARY", False, False, False)
        collation = metadata[1] or "BINARY"
        defs.append(f"{quote_ident(column)} {type_} COLLATE {quote_ident(collation)}")
        if metadata[3]:
            keys.append((len(defs) - 1, type_))
    if (
        len(keys) == 1
        and keys[0][1].strip().upper() == "INTEGER"
        and not _key_index(conn, stored_name)
    ):
        # The stored table's INTEGER PRIMARY KEY is its rowid: so is the copy's, so that a
        # statement naming rowid sees the same column (and its name) as on the migrated file.
        # (Not so for one SQLite gave an index of its own: `INTEGER PRIMARY KEY DESC`.)
        at = keys[0][0]
        defs[at] = defs[at].replace(" COLLATE ", " PRIMARY KEY COLLATE ", 1)
        names = names | set(_ROWID_NAMES)  # the rowid moves with that column
    rowid = next((r for r in _ROWID_NAMES if r not in names), None)
    columns = [quote_ident(c) for c, _ in stored]
    moved = ", ".join(columns if rowid is None else [rowid, *columns])
    return [
        f"DROP VIEW temp.{quote_ident(name)}",
        f"CREATE TABLE temp.{quote_ident(name)} ({', '.join([*defs, *added])})",
        f"INSERT INTO temp.{quote_ident(name)} ({moved}) SELECT {moved} "
        f"FROM main.{quote_ident(stored_name)}",
    ]


def _key_index(conn: apsw.Connection, stored_name: str) -> bool:
    """Whether SQLite keeps the primary key of the stored table in an index of its own: then
    the key is not the rowid's alias, whatever its type."""
    sql = "SELECT 1 FROM pragma_index_list(?, 'main') WHERE origin = 'pk'"
    return bool(rows_of(conn, sql, (stored_name,)))
