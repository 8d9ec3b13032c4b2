"""Compare a file's schema with its declared schema: additive statements and differences (R13).

Comparison is by what SQLite *reports*: the declared schema is built in a scratch ``:memory:``
database (cached per fingerprint) and both sides are read with ``table_xinfo`` (type, NOT NULL,
default, primary key position, generated), ``sqlite3_table_column_metadata`` (collation,
AUTOINCREMENT), ``index_list``/``index_xinfo`` (UNIQUE constraints; the primary key's own index,
so whether an INTEGER PRIMARY KEY is the rowid's alias — ``integer primary key desc`` is not;
declared indexes: columns, order, collation, unique, partial), ``table_list`` (WITHOUT ROWID,
STRICT) and ``foreign_key_list``. Types and defaults are compared after normalizing case and
spacing, so ``"integer primary key"`` equals ``"INTEGER PRIMARY KEY"``. Column names match
case-insensitively and column order is ignored (added columns always go last).

What SQLite keeps only in the ``CREATE TABLE`` text is read from both texts
(:mod:`sqlite_cells.schema._table_text`) and compared normalized the same way (name quoting
aside too): CHECK expressions of columns and of the table, generated-column expressions, the
``ON CONFLICT`` resolution of PRIMARY KEY, NOT NULL and UNIQUE constraints, and whether a
foreign key is ``DEFERRABLE INITIALLY DEFERRED`` (every other spelling is immediate). Not
compared: what SQLite does not keep at all (the ``CONSTRAINT`` names, ``ASC`` on a key), and a
partial index's ``WHERE`` text (only whether it is partial; declarations cannot make one).

Whatever the file holds that is not declared is a difference, as dropping is not additive: a
stored column, table, index, view or trigger (the runtime's ``_cf_*`` tables and SQLite's own
``sqlite_*`` objects aside). A declaration shrinks with a version bump and a ``migrate`` that drops
what it no longer declares (R14).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Final

import apsw

from sqlite_cells.codec import DatabaseError
from sqlite_cells.schema._schema import (
    Schema,
    Table,
    create_index_sql,
    create_table_sql,
    default_expression,
    quote_ident,
    render_ddl,
)
from sqlite_cells.schema._table_text import (
    Expr,
    TableText,
    norm,
    norm_default,
    read_table_text,
)
from sqlite_cells.sql import WORD, fold_ascii, scan_sql

__all__ = [
    "MigrationPlan",
    "SchemaTextError",
    "declared_report",
    "plan_migration",
    "readable_schema",
    "schema_objects",
]

_CACHE_SIZE: Final = 64
_GENERATED: Final = {0: "no", 1: "hidden", 2: "virtual", 3: "stored"}
_CANNOT: Final = "cannot be added to an existing table"


@dataclass(frozen=True, slots=True)
class MigrationPlan:
    """Additive statements to run, and the non-additive differences (empty when none)."""

    statements: tuple[str, ...]
    differences: tuple[str, ...]


_norm = norm


def rows_of(
    conn: apsw.Connection, sql: str, args: Sequence[object] = ()
) -> list[tuple[object, ...]]:
    return [tuple(r) for r in conn.execute(sql, tuple(args)).fetchall()]


class SchemaTextError(DatabaseError):
    """A database file's schema holds a name that is not UTF-8 text in a table the runtime
    declared: another program wrote it (SQLite takes any bytes as a name), and the file cannot
    be compared with its declaration.  Private: callers catch ``DatabaseError``; reads raise it
    as a ``QueryError``."""


@contextmanager
def readable_schema(conn: apsw.Connection, database: str) -> Iterator[None]:
    """Turn apsw's failure to decode a name of ``database``'s schema into
    :class:`SchemaTextError`, naming the file and what to do."""
    try:
        yield
    except UnicodeDecodeError as exc:
        raise SchemaTextError(
            f"the database file {conn.db_filename(database)} holds a name that is not valid "
            f"UTF-8 text in its schema ({exc.reason} at byte {exc.start} of "
            f"{exc.object[:40]!r}): another program changed the file, and the runtime cannot "
            "compare it with the declared tables; rename that column or table with SQLite, or "
            "restore the file from a copy"
        ) from exc


@dataclass(frozen=True, slots=True)
class Step:
    """One statement of an additive migration. ``adds_to`` is the declared name of the table
    an ``ALTER TABLE … ADD COLUMN`` adds to (None for any other statement), for the rebuild
    that adds what that statement cannot (:mod:`sqlite_cells.schema._rebuild`)."""

    subject: str
    sql: str
    adds_to: str | None = None


@dataclass(frozen=True, slots=True)
class _Col:
    name: str
    type: str
    notnull: bool
    default: str | None
    pk: int
    generated: int  # table_xinfo "hidden": 2 virtual, 3 stored
    collation: str
    autoinc: bool


def _as_stored(col: _Col) -> str:
    """The stored column ``col`` as a declaration would give it (name and spec), for a message:
    its type, NOT NULL, DEFAULT and collation; a generated column by its name alone."""
    if col.generated:
        return f"{col.name}, a generated column"
    parts = [col.type.lower()] if col.type else []
    if col.notnull:
        parts.append("not null")
    if col.default is not None:
        parts.append(f"default {col.default}")
    if col.collation and col.collation.upper() != "BINARY":
        parts.append(f"collate {col.collation}")
    return f"{col.name} {' '.join(parts)}".rstrip()


# (from columns, referenced table, referenced columns, on update, on delete, match, whether
# DEFERRABLE INITIALLY DEFERRED)
_Fk = tuple[tuple[str, ...], str, tuple[str, ...], str, str, str, bool]
_PkKeys = tuple[tuple[str | None, bool, str], ...]


@dataclass(frozen=True, slots=True)
class _TableInfo:
    name: str
    columns: Mapping[str, _Col]  # by lowercased name
    uniques: frozenset[_PkKeys]  # the keys of each UNIQUE constraint's index
    fkeys: frozenset[_Fk]
    # The keys of the PRIMARY KEY's own index: None when the key is the rowid (an INTEGER
    # PRIMARY KEY that SQLite made the rowid's alias, or no key at all).
    pk_index: _PkKeys | None
    without_rowid: bool
    strict: bool
    text: TableText | None  # None: the CREATE TABLE text is not a plain table definition


@dataclass(frozen=True, slots=True)
class _IndexInfo:
    table: str
    unique: bool
    partial: bool
    keys: tuple[tuple[str | None, bool, str], ...]  # (column, descending, collation)


def _table_info(conn: apsw.Connection, db: str, name: str, sql: object) -> _TableInfo:
    columns: dict[str, _Col] = {}
    xinfo = 'SELECT name, type, "notnull", dflt_value, pk, hidden FROM pragma_table_xinfo(?, ?)'
    for cname, ctype, notnull, dflt, pk, hidden in rows_of(conn, xinfo, (name, db)):
        _, coll, _, _, autoinc = conn.column_metadata(db, name, str(cname))
        columns[fold_ascii(str(cname))] = _Col(
            str(cname), str(ctype or ""), bool(notnull), None if dflt is None else str(dflt),
            int(str(pk)), int(str(hidden)), str(coll or "BINARY").upper(), bool(autoinc),
        )  # fmt: skip
    indexes = rows_of(conn, "SELECT name, origin FROM pragma_index_list(?, ?)", (name, db))
    uniques = frozenset(
        tuple(_index_keys(conn, db, str(index))) for index, origin in indexes if origin == "u"
    )
    pk_index = next(
        (tuple(_index_keys(conn, db, str(index))) for index, origin in indexes if origin == "pk"),
        None,
    )
    flags = "SELECT wr, strict FROM pragma_table_list(?) WHERE schema = ?"
    without_rowid, strict = (rows_of(conn, flags, (name, db)) or [(0, 0)])[0]
    text = read_table_text(str(sql)) if sql is not None else None
    deferred = text.deferred if text is not None else {}
    refs: dict[object, list[tuple[object, ...]]] = {}
    for row in rows_of(
        conn, "SELECT * FROM pragma_foreign_key_list(?, ?) ORDER BY seq", (name, db)
    ):
        refs.setdefault(row[0], []).append(row)
    fkeys = frozenset(
        (tuple(fold_ascii(str(r[3])) for r in rs), fold_ascii(str(rs[0][2])),
         tuple(fold_ascii(str(r[4] or "")) for r in rs),
         str(rs[0][5]), str(rs[0][6]), str(rs[0][7]),
         deferred.get(tuple(fold_ascii(str(r[3])) for r in rs), False))
        for rs in refs.values()
    )  # fmt: skip
    return _TableInfo(
        name, columns, uniques, fkeys, pk_index, bool(without_rowid), bool(strict), text
    )


def _index_keys(conn: apsw.Connection, db: str, index: str) -> list[tuple[str | None, bool, str]]:
    xinfo = 'SELECT name, "desc", coll FROM pragma_index_xinfo(?, ?) WHERE key'
    rows = rows_of(conn, xinfo, (index, db))
    return [
        (None if n is None else fold_ascii(str(n)), bool(d), str(c).upper()) for n, d, c in rows
    ]


def _index_info(conn: apsw.Connection, db: str, index: str, table_name: str) -> _IndexInfo:
    flags = 'SELECT "unique", partial FROM pragma_index_list(?, ?) WHERE name = ?'
    unique, partial = (rows_of(conn, flags, (table_name, db, index)) or [(0, 0)])[0]
    keys = tuple(_index_keys(conn, db, index))
    return _IndexInfo(fold_ascii(table_name), bool(unique), bool(partial), keys)


def schema_objects(conn: apsw.Connection, db: str) -> dict[str, tuple[str, str, str, object]]:
    """Every schema object of ``db`` by lowercased name: (type, name, table name, sql).

    The text is read as bytes: another program may have named an object with bytes that are
    not UTF-8 (SQLite takes any bytes as a name).  Such an object cannot be one the runtime
    declared (declared names are text) and is left out, as any undeclared object is; other
    text that is not UTF-8 reads with U+FFFD in its place, so that it differs from the
    declaration."""
    rows = rows_of(
        conn,
        "SELECT CAST(type AS BLOB), CAST(name AS BLOB), CAST(tbl_name AS BLOB), "
        f"CAST(sql AS BLOB) FROM {quote_ident(db)}.sqlite_schema",
    )
    objects: dict[str, tuple[str, str, str, object]] = {}
    for kind, name, table_name, sql in rows:
        try:
            text = name.decode() if isinstance(name, bytes) else None
        except UnicodeDecodeError:
            continue
        if text is None:
            continue
        objects[fold_ascii(text)] = (_text(kind) or "", text, _text(table_name) or "", _text(sql))
    return objects


def _text(value: object) -> str | None:
    return value.decode(errors="replace") if isinstance(value, bytes) else None


_Declared = tuple[dict[str, _TableInfo], dict[str, _IndexInfo]]
_declared_cache: dict[str, _Declared] = {}  # fingerprint -> what SQLite reports for the schema


def declared_report(schema: Schema) -> _Declared:
    """What SQLite reports for ``schema``, built in a scratch database (bounded cache)."""
    cached = _declared_cache.get(schema.fingerprint)
    if cached is not None:
        return cached
    scratch = apsw.Connection(":memory:")
    try:
        for statement in render_ddl(schema, "main"):
            scratch.execute(statement)
        objects = schema_objects(scratch, "main")
        tables = {
            fold_ascii(n): _table_info(scratch, "main", n, objects[fold_ascii(n)][3])
            for n, _ in schema.tables
        }
        indexes = {
            fold_ascii(i): _index_info(scratch, "main", i, n)
            for n, t in schema.tables
            for i, _ in t.indexes
        }
        result = (tables, indexes)
    finally:
        scratch.close()
    if len(_declared_cache) >= _CACHE_SIZE:  # drop the oldest; pop() tolerates a racing thread
        _declared_cache.pop(next(iter(_declared_cache), ""), None)
    _declared_cache[schema.fingerprint] = result
    return result


def _show(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return "(none)" if value is None or value == "" else str(value)


def _fk_text(fk: _Fk) -> str:
    cols, table, to, on_update, on_delete, _, deferred = fk
    target = f"{table}({', '.join(to)})" if any(to) else table
    return (
        f"FOREIGN KEY({', '.join(cols)}) REFERENCES {target} "
        f"ON UPDATE {on_update} ON DELETE {on_delete}"
        + (" DEFERRABLE INITIALLY DEFERRED" if deferred else "")
    )


def _pk_text(table: str, info: _TableInfo) -> str:
    if info.pk_index is None:
        return "the rowid's alias (INTEGER PRIMARY KEY)"
    return f"not the rowid: an index ON {table}({_key_text(info.pk_index)})"


def _key_names(keys: _PkKeys) -> list[str]:
    return [c or "<expr>" for c, _, _ in keys]


def _key_text(keys: _PkKeys) -> str:
    return ", ".join(
        (c or "<expr>") + (" DESC" if d else "") + ("" if coll == "BINARY" else f" COLLATE {coll}")
        for c, d, coll in keys
    )


def _index_text(info: _IndexInfo) -> str:
    keys = _key_text(info.keys)
    unique, partial = "UNIQUE " if info.unique else "", " WHERE …" if info.partial else ""
    return f"{unique}ON {info.table}({keys}){partial}"


def _column_differences(t: str, want: _Col, have: _Col) -> list[str]:
    generated = (_GENERATED.get(have.generated), _GENERATED.get(want.generated))
    pairs: list[tuple[str, object, object, bool]] = [
        ("type", have.type, want.type, _norm(have.type) == _norm(want.type)),
        ("NOT NULL", have.notnull, want.notnull, have.notnull == want.notnull),
        (
            "default",
            have.default,
            want.default,
            norm_default(have.default) == norm_default(want.default),
        ),
        ("primary key position", have.pk, want.pk, have.pk == want.pk),
        ("AUTOINCREMENT", have.autoinc, want.autoinc, have.autoinc == want.autoinc),
        ("collation", have.collation, want.collation, have.collation == want.collation),
        ("generated", *generated, generated[0] == generated[1]),
    ]
    return [f"{t}.{want.name}: {k} {_show(a)} → {_show(b)}" for k, a, b, same in pairs if not same]


def _cannot_add(want: _Col) -> str | None:
    """Why ALTER TABLE … ADD COLUMN cannot add ``want`` (None: it may; SQLite has the last say)."""
    if want.pk:
        return f"a new PRIMARY KEY column {_CANNOT}"
    # A generated column needs no default: SQLite computes its value for every row the table
    # holds, and refuses the ALTER (or the rebuild) when one of them would be NULL.
    if want.notnull and not want.generated and (want.default is None or _is_null(want.default)):
        return (
            "a new NOT NULL column without a default cannot be added (existing rows need a value)"
        )
    # A UNIQUE or STORED generated column is refused by ALTER TABLE but added by rebuilding the
    # table (see _rebuild): its rows stay. One whose default is not a constant is refused by
    # SQLite when the ALTER runs, and stays refused (see add_missing).
    return None


def _is_null(default: str) -> bool:
    """Whether a column default as SQLite reports it is NULL (``default null``, ``DEFAULT (NULL)``,
    ``DEFAULT (CAST(NULL AS INT))``, ``DEFAULT -NULL``): no default for a NOT NULL column.

    SQLite's ``ADD COLUMN`` refuses a NOT NULL column only for a default spelled ``NULL``; one
    that computes NULL otherwise it adds, leaving NULL in every row the table holds. Such a
    default names ``NULL`` (a constant the ALTER takes has no other way to be NULL), so only
    then is it computed — it was computed already when declared (R44)."""
    if default.strip().strip("()").strip().upper() == "NULL":
        return True
    if not any(w.kind == WORD and fold_ascii(w.name) == "null" for w in scan_sql(default).words()):
        return False
    scratch = apsw.Connection(":memory:")
    try:
        rows = rows_of(scratch, f"SELECT ({default_expression(default)}) IS NULL")
    except apsw.Error:
        return False  # SQLite has the last say, when the ALTER runs
    finally:
        scratch.close()
    return bool(rows[0][0])


def _diff_table(
    database: str, name: str, declared: Table, want: _TableInfo, have: _TableInfo
) -> tuple[list[Step], list[str]]:
    statements: list[Step] = []
    diffs: list[str] = []
    missing = {k for k in want.columns if k not in have.columns}
    for column in declared.columns:
        key = fold_ascii(column.name)
        if key not in missing:
            diffs += _column_differences(name, want.columns[key], have.columns[key])
        elif reason := _cannot_add(want.columns[key]):
            diffs.append(f"{name}.{column.name}: {reason}")
        else:
            target = f"{quote_ident(database)}.{quote_ident(have.name)}"
            sql = f"ALTER TABLE {target} ADD COLUMN {column.ddl()}"
            statements.append(Step(f"{name}.{column.name}", sql, adds_to=name))
    diffs += [
        f"{name}.{col.name}: the stored column is not declared (dropping or renaming a column "
        f"is not additive; a column a newer declaration added is declared as the file has it: "
        f"{_as_stored(col)})"
        for key, col in have.columns.items()
        if key not in want.columns
    ]
    # A UNIQUE or FOREIGN KEY on a column still to be added is reported with (or added by) it.
    for keys in sorted(have.uniques - want.uniques, key=_key_text):
        diffs.append(f"{name}: UNIQUE({_key_text(keys)}) is stored but not declared")
    for keys in sorted(want.uniques - have.uniques, key=_key_text):
        if not missing.intersection(_key_names(keys)):
            diffs.append(f"{name}: UNIQUE({_key_text(keys)}) is declared but not stored")
    for fk in sorted(have.fkeys - want.fkeys):
        diffs.append(f"{name}: {_fk_text(fk)} is stored but not declared")
    for fk in sorted(want.fkeys - have.fkeys):
        if not missing.intersection(fk[0]):
            diffs.append(f"{name}: {_fk_text(fk)} is declared but not stored")
    if want.without_rowid != have.without_rowid:
        diffs.append(
            f"{name}: WITHOUT ROWID {_show(have.without_rowid)} → {_show(want.without_rowid)}"
        )
    if want.strict != have.strict:
        diffs.append(f"{name}: STRICT {_show(have.strict)} → {_show(want.strict)}")
    same_key = all(
        want.columns[k].pk == have.columns[k].pk for k in want.columns.keys() & have.columns.keys()
    ) and not any(want.columns[k].pk for k in missing)
    if same_key and want.pk_index != have.pk_index:
        # e.g. "integer primary key desc" is no rowid alias: its rows get id NULL.
        diffs.append(f"{name}: PRIMARY KEY {_pk_text(name, have)} → {_pk_text(name, want)}")
    if want.text is not None and have.text is not None:
        diffs += _text_differences(name, want, have.text, missing)
    return statements, diffs


def _keys(exprs: tuple[Expr, ...]) -> list[str]:
    return sorted(e.key for e in exprs)


def _all_checks(text: TableText, missing: set[str]) -> list[str]:
    """Every CHECK of a table, of its columns (but those in ``missing``) and of the table."""
    found = [e.key for key, c in text.columns.items() if key not in missing for e in c.checks]
    return sorted([*found, *(e.key for e in text.checks)])


def _text_differences(name: str, want: _TableInfo, have: TableText, missing: set[str]) -> list[str]:
    """What differs in what only the CREATE TABLE texts say (see ``_table_text``)."""
    assert want.text is not None
    wanted = want.text
    diffs: list[str] = []

    def shown(exprs: tuple[Expr, ...]) -> str:
        return " AND ".join(e.shown for e in exprs) or "(none)"

    # SQLite checks a column's CHECK and a table's alike (either may name any column): the
    # table's CHECKs are compared as one collection, wherever each is written (a migrate that
    # rebuilt the table may have moved one), and differences are named where they are written.
    checks_differ = _all_checks(wanted, missing) != _all_checks(have, set())
    for key, column in wanted.columns.items():
        stored = have.columns.get(key)
        if stored is None or key in missing:
            continue
        col = want.columns[key].name
        if checks_differ and _keys(column.checks) != _keys(stored.checks):
            diffs.append(f"{name}.{col}: CHECK {shown(stored.checks)} → {shown(column.checks)}")
        old, new = stored.generated, column.generated
        if old is not None and new is not None and old.key != new.key:
            diffs.append(f"{name}.{col}: generated AS ({old.shown}) → ({new.shown})")
    if checks_differ and _keys(wanted.checks) != _keys(have.checks):
        diffs.append(f"{name}: table CHECK {shown(have.checks)} → {shown(wanted.checks)}")
    # A constraint on one side only is reported above (NOT NULL, key, UNIQUE); here, the
    # ON CONFLICT resolution of those both sides have.
    for constraint in sorted(wanted.conflicts.keys() & have.conflicts.keys()):
        was, now = have.conflicts[constraint], wanted.conflicts[constraint]
        if was != now:
            kind, cols = constraint
            names = [want.columns[c].name if c in want.columns else c for c in cols]
            where = f"{name}.{names[0]}: {kind}" if len(names) == 1 else f"{name}: {kind}"
            where += "" if len(names) == 1 else f"({', '.join(names)})"
            diffs.append(f"{where} ON CONFLICT {was} → {now}")
    return diffs


def diff_of(conn: apsw.Connection, database: str, schema: Schema) -> tuple[list[Step], list[str]]:
    """The statements to run, and the non-additive differences."""
    with readable_schema(conn, database):
        return _diff_of(conn, database, schema)


def _diff_of(conn: apsw.Connection, database: str, schema: Schema) -> tuple[list[Step], list[str]]:
    want_tables, want_indexes = declared_report(schema)
    objects = schema_objects(conn, database)
    statements: list[Step] = []
    diffs: list[str] = []
    for name, declared in schema.tables:
        kind, stored_name, _, sql = objects.get(fold_ascii(name), ("", "", "", None))
        if not kind:
            statements.append(Step(name, create_table_sql(database, name, declared)))
        elif kind != "table":
            diffs.append(f"{name}: the file holds an object ({kind}) of that name, not a table")
            continue
        else:
            have = _table_info(conn, database, stored_name, sql)
            more, found = _diff_table(database, name, declared, want_tables[fold_ascii(name)], have)
            statements += more
            diffs += found
        for index, cols in declared.indexes:
            kind, stored_name, on_table, _ = objects.get(fold_ascii(index), ("", "", "", None))
            if not kind:
                statements.append(
                    Step(f"index {index}", create_index_sql(database, index, name, cols))
                )
            elif kind != "index" or fold_ascii(on_table) != fold_ascii(name):
                diffs.append(
                    f"index {index}: the file holds an object ({kind}) of that name on {on_table}, "
                    f"not an index on {name}"
                )
            else:
                want = want_indexes[fold_ascii(index)]
                have_index = _index_info(conn, database, stored_name, on_table)
                if want != have_index:
                    diffs.append(f"index {index}: {_index_text(have_index)} → {_index_text(want)}")
    return statements, diffs + _undeclared(schema, objects)


_DROP_IT: Final = "declare it, or bump version= with a migrate that drops it"
_VIRTUAL: Final = re.compile(r"\s*CREATE\s+VIRTUAL\s", re.IGNORECASE)
_NOT_OURS: Final = (
    "its name is reserved for the runtime, which made no such object: another program did; "
    "remove it from the file (or bump version= with a migrate that drops it)"
)
# The runtime's own tables in a database file (see _migrate): no declaration names them.
RUNTIME_TABLES: Final = frozenset({"_cf_meta", "_cf_watermark", "_cf_changes"})


def _undeclared(schema: Schema, objects: Mapping[str, tuple[str, str, str, object]]) -> list[str]:
    """The file's objects the declaration does not have (R13: dropping is not additive)."""
    declared = {fold_ascii(n) for n, _ in schema.tables}
    declared |= {fold_ascii(i) for _, t in schema.tables for i, _ in t.indexes}
    diffs = []
    for key, (kind, name, on_table, sql) in sorted(objects.items()):
        # SQLite's own objects (a key's automatic index), and the runtime's tables; any other
        # object, whatever its name (another program may have named a trigger `_cf_…`).
        if (
            key in declared
            or key.startswith("sqlite_")
            or (kind == "table" and key in RUNTIME_TABLES)
        ):
            continue
        if kind == "table":
            what = f"{name}: the stored table is not declared (dropping a table is not additive)"
        elif kind == "index":
            what = (
                f"index {name}: the stored index on {on_table} is not declared (dropping an "
                "index is not additive)"
            )
        else:
            what = f"{name}: the file holds a {kind} that is not declared"
        reserved = key.startswith("_cf_")  # (no declaration may name it: R12)
        virtual = isinstance(sql, str) and _VIRTUAL.match(sql) is not None
        if reserved:
            advice = _NOT_OURS
        elif kind not in ("table", "index") or virtual:  # a view, a trigger, a virtual table
            shown = "virtual table" if virtual else kind
            advice = f"no declaration holds a {shown}: bump version= with a migrate that drops it"
        else:
            advice = _DROP_IT
        diffs.append(f"{what}; {advice}")
    return diffs


def plan_migration(conn: apsw.Connection, database: str, schema: Schema) -> MigrationPlan:
    """What :func:`ensure_schema` would do to reach ``schema``; reads only (R13).

    ``differences`` lists the non-additive ones. An ``ADD COLUMN`` among the statements that
    SQLite refuses for a UNIQUE or STORED generated column is done by rebuilding the table
    instead (:mod:`sqlite_cells.schema._rebuild`); one refused for a default that is not a
    constant only shows as a difference when applied.
    """
    statements, diffs = diff_of(conn, database, schema)
    return MigrationPlan(tuple(step.sql for step in statements), tuple(diffs))
