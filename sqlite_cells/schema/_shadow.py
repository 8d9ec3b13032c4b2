"""Temporary stand-ins that make a file read as its declared schema before it is migrated (R14,
R41).

A file written under an older declaration can lack declared tables or columns until the next
write migrates it (R13). Reads never run DDL on the file, so a read connection shadows what is
missing with objects of its own ``temp`` schema, which SQLite searches before ``main`` when it
resolves an unqualified name:

* a declared table the file does not have: an empty ``temp`` table of the declared definition;
* a stored table that lacks declared columns: a ``temp`` view of the table's name selecting the
  stored columns in their stored order, then the missing ones in declared order — the order a
  migration's ``ADD COLUMN`` gives them, so ``SELECT *`` does not change when the file is
  migrated. The missing columns come from a one-row ``temp`` table (``_cf_shadow_<n>``) holding
  their declared defaults (NULL without one) under their declared type and collation: a view
  column that names a table column keeps its affinity and collation, so ``WHERE c = '7'`` and
  ``ORDER BY`` compare as they will once the column is real.

What a view cannot give: ``rowid`` (SQLite views have none), so a query naming ``rowid`` of a
table that lacks columns fails until the migration; and a missing *generated* column reads as
NULL.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import apsw

from sqlite_cells.schema._schema import Schema, create_table_sql, quote_ident
from sqlite_cells.schema._schema_diff import declared_report, rows_of, schema_objects
from sqlite_cells.sql import fold_ascii

__all__ = ["NO_SHADOWS", "SHADOW_PREFIX", "Shadows", "plan_shadows"]

SHADOW_PREFIX: Final = "_cf_shadow_"
_XINFO: Final = "SELECT name, hidden FROM pragma_table_xinfo(?, 'main')"


@dataclass(frozen=True, slots=True)
class Shadows:
    """What a read connection creates in ``temp`` (``create``, in order) and drops again
    (``drop``); ``tables`` are the lowercased declared names it shadows and ``helpers`` the
    lowercased names of the one-row default tables its views read."""

    create: tuple[str, ...]
    drop: tuple[str, ...]
    tables: frozenset[str]
    helpers: frozenset[str]

    def __bool__(self) -> bool:
        return bool(self.create)


NO_SHADOWS: Final = Shadows((), (), frozenset(), frozenset())


def plan_shadows(conn: apsw.Connection, schema: Schema) -> Shadows:
    """The ``temp`` objects that make ``main`` of ``conn`` read as ``schema``; reads only.

    Declared tables whose name the file uses for another kind of object are left alone (the
    query then reads that object, as before; writing raises :class:`UnsupportedMigration`)."""
    want_tables, _ = declared_report(schema)
    objects = schema_objects(conn, "main")
    create: list[str] = []
    drop: list[str] = []
    tables: set[str] = set()
    helpers: set[str] = set()
    for name, declared in schema.tables:
        kind, stored_name, _, _ = objects.get(fold_ascii(name), ("", "", "", None))
        if not kind:
            create.append(create_table_sql("temp", name, declared))
            drop.append(f"DROP TABLE IF EXISTS temp.{quote_ident(name)}")
            tables.add(fold_ascii(name))
            continue
        if kind != "table":
            continue
        stored = [str(n) for n, hidden in rows_of(conn, _XINFO, (stored_name,)) if hidden != 1]
        have = {fold_ascii(n) for n in stored}
        want = want_tables[fold_ascii(name)].columns
        keys = [fold_ascii(c.name) for c in declared.columns]
        missing = [want[key] for key in keys if key not in have]
        if not missing:
            continue
        helper = f"{SHADOW_PREFIX}{len(helpers)}"
        defs = []
        for col in missing:
            default = "" if col.default is None or col.generated else f" DEFAULT ({col.default})"
            defs.append(
                f"{quote_ident(col.name)} {col.type}{default} COLLATE {quote_ident(col.collation)}"
            )
        create.append(f"CREATE TABLE temp.{quote_ident(helper)} ({', '.join(defs)})")
        create.append(f"INSERT INTO temp.{quote_ident(helper)} DEFAULT VALUES")
        picks = [f"s.{quote_ident(n)} AS {quote_ident(n)}" for n in stored]
        picks += [f"d.{quote_ident(c.name)} AS {quote_ident(c.name)}" for c in missing]
        create.append(
            f"CREATE VIEW temp.{quote_ident(name)} AS SELECT {', '.join(picks)} "
            f"FROM main.{quote_ident(stored_name)} AS s CROSS JOIN temp.{quote_ident(helper)} AS d"
        )
        drop.append(f"DROP VIEW IF EXISTS temp.{quote_ident(name)}")
        drop.append(f"DROP TABLE IF EXISTS temp.{quote_ident(helper)}")
        tables.add(fold_ascii(name))
        helpers.add(fold_ascii(helper))
    return Shadows(tuple(create), tuple(drop), frozenset(tables), frozenset(helpers))
