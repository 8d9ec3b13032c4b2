"""Table declarations of a database cell (R10–R12).

``table()`` declares one table, ``declare_tables()`` a whole schema; both validate eagerly and
raise :class:`SchemaError` saying what is wrong, where, and what to do:

* R10 — ``table(**columns, indexes=…)`` or ``table({"col": spec, …}, indexes=…)`` (the mapping
  form serves names that are not Python identifiers, or are ``indexes``). A spec is one SQLite
  column definition (``"integer primary key"``, ``"text not null default ''"``) or
  ``cf_link()``. Column names are compared case-insensitively, as SQLite does.
* R11 — a column named ``*_cf_link`` must be ``cf_link()`` (stored as ``TEXT``), and ``cf_link()``
  only fits such a column.
* R12, R13 — table, column and index names the guard would refuse in a statement are reserved:
  names starting with ``_cf_``, ``sqlite_`` or ``pragma_`` (table-valued pragma functions), and
  the names of SQLite's eponymous virtual tables (``dbstat``, ``json_each``, ``json_tree``,
  ``fts3tokenize``, ``carray``), compared as SQLite does (ASCII case folding). A table may
  not be named ``main`` or ``temp`` either: the guard refuses ``main.column`` as a
  schema-qualified name, so its columns could not be qualified by the table's name.

A spec must be *one* column definition: no top-level ``,`` ``)`` or ``;``, no comments (checked
on the text), and SQLite must accept it — ``declare_tables`` builds every table in a scratch
``:memory:`` database and checks, with ``PRAGMA table_xinfo``, that exactly the declared columns
and nothing else came out.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Final

import apsw

from sqlite_cells.codec import MAX_NAME_BYTES, SchemaError, brief_repr, name_too_long
from sqlite_cells.runtime import (
    LENGTH_LIMIT,
    checked_arguments,
    plain_text,
    surrogate_at,
)
from sqlite_cells.schema._table_text import lone_word_default
from sqlite_cells.sql import (
    ALLOWED_SQLITE_FUNCTIONS,
    DATABASE_NAMES,
    LINK_SUFFIX,
    OP,
    QUOTED,
    STRING,
    WORD,
    Word,
    fold_ascii,
    is_forbidden_function,
    is_reserved,
    is_reserved_table,
    scan_sql,
)

__all__ = [
    "CfLink",
    "Column",
    "Schema",
    "Table",
    "cf_link",
    "create_index_sql",
    "create_table_sql",
    "declare_tables",
    "default_expression",
    "quote_ident",
    "render_ddl",
    "standin_column",
    "table",
    "use_long_calls",
]


_FINGERPRINT_PREFIX: Final = b"sqlite-cells schema v1\n"


_SHOWN_LIMIT: Final = 120
# The name SQLite's session extension gives the rowid of a table without a PRIMARY KEY.
_SESSION_ROWID: Final = "_rowid_"


def _shown(value: object, *, quote: bool = True) -> str:
    """``value`` as an error message shows it: its repr (its text with ``quote=False``), cut
    to a readable length, saying how long it was (a spec or name can be megabytes long)."""
    if quote or not isinstance(value, str):
        return brief_repr(value)  # (never raising, whatever the value)
    text = value
    if len(text) <= _SHOWN_LIMIT:
        return text
    return f"{text[: _SHOWN_LIMIT - 1]}… ({len(text)} characters)"


class CfLink:
    """Marker spec of a link column (R11); all instances are equal."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "sc.cf_link()"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CfLink)

    def __hash__(self) -> int:
        return hash(CfLink)


_CF_LINK: Final = CfLink()


@checked_arguments
def cf_link() -> CfLink:
    """The spec of a column holding a link to a cell (R11); the column must end in ``_cf_link``."""
    return _CF_LINK


def quote_ident(name: str) -> str:
    """``name`` as a double-quoted SQLite identifier."""
    return '"' + name.replace('"', '""') + '"'


def default_expression(default: str) -> str:
    """The default SQLite reports for a column (``dflt_value``) as an expression of the same
    value. A column definition reads a word or a quoted name standing alone after ``DEFAULT``
    (``default abc``, ``"dq"``, ``[dq]``, `` `dq` ``) as its text, while the same token in an
    expression is a column name, which a default cannot read: it becomes a string literal.
    Every other default SQLite reports is an expression already."""
    word = lone_word_default(default)
    return default if word is None else "'" + word.replace("'", "''") + "'"


_STANDIN: Final = '"_cf_standin"'


def standin_column(name: str, type_: str, default: str | None, collation: str) -> str:
    """The definition of a column standing in for ``name`` in a one-row table holding its
    default (NULL without one), under its type and collation, as SQLite reports them: what a
    read of a file that lacks the column reads (R14, R41)."""
    value = "" if default is None else f" DEFAULT ({default_expression(default)})"
    return f"{quote_ident(name)} {type_}{value} COLLATE {quote_ident(collation)}"


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    spec: str  # the SQLite column definition after the name; "TEXT" for links
    is_link: bool

    def ddl(self) -> str:
        return f"{quote_ident(self.name)} {self.spec}"


@dataclass(frozen=True, slots=True)
class Table:
    """One declared table: columns in declaration order, indexes sorted by name."""

    columns: tuple[Column, ...]
    indexes: tuple[tuple[str, tuple[str, ...]], ...]

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def link_columns(self) -> frozenset[str]:
        """Lowercased names of the ``cf_link()`` columns."""
        return frozenset(fold_ascii(c.name) for c in self.columns if c.is_link)

    def column(self, name: str) -> Column | None:
        """The column called ``name`` (case-insensitive), or ``None``."""
        key = fold_ascii(name)
        return next((c for c in self.columns if fold_ascii(c.name) == key), None)

    def to_json(self) -> dict[str, object]:
        return {
            "columns": [{"name": c.name, "spec": c.spec, "link": c.is_link} for c in self.columns],
            "indexes": {name: list(cols) for name, cols in self.indexes},
        }


@dataclass(frozen=True, slots=True)
class Schema:
    """A validated set of tables, sorted by name; hashable, compared by content.

    ``fingerprint`` is a stable sha256 hex of the canonical JSON form, so the runtime can remember
    which schemas were already ensured on a file. The JSON form and the table names are made once:
    every write of a database puts them in its handle value and its write policy.
    """

    tables: tuple[tuple[str, Table], ...]
    fingerprint: str = field(init=False, repr=False, compare=False)
    table_names: frozenset[str] = field(init=False, repr=False, compare=False)
    _json: dict[str, object] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        made = {name: t.to_json() for name, t in self.tables}
        object.__setattr__(self, "_json", made)
        names = frozenset(fold_ascii(name) for name, _ in self.tables)
        object.__setattr__(self, "table_names", names)
        canonical = json.dumps(made, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        digest = hashlib.sha256(_FINGERPRINT_PREFIX + canonical.encode()).hexdigest()
        object.__setattr__(self, "fingerprint", digest)

    def table(self, name: str) -> Table | None:
        """The table called ``name`` (case-insensitive), or ``None``."""
        key = fold_ascii(name)
        return next((t for n, t in self.tables if fold_ascii(n) == key), None)

    def to_json(self) -> dict[str, object]:
        """JSON-able description (stored in the handle cell's value as ``"tables"``). Shared:
        read it, copy it to change it."""
        return self._json


def _check_name(kind: str, name: object, where: str) -> str:
    if not isinstance(name, str):
        raise SchemaError(f"{where}: {kind} name {_shown(name)} is not a string; names are strings")
    if not name:
        article = "an" if kind[:1] in "aeiou" else "a"
        raise SchemaError(f"{where}: {article} {kind} name is empty; give it a name")
    if "\x00" in name:
        raise SchemaError(f"{where}: {kind} name {_shown(name)} contains NUL; remove it")
    position = surrogate_at(name)
    if position is not None:
        raise SchemaError(
            f"{where}: {kind} name {_shown(name)} is not valid Unicode text (a lone surrogate at "
            f"position {position}): SQLite stores names as UTF-8; decode the text properly first"
        )
    if name_too_long(name):
        raise SchemaError(
            f"{where}: {kind} name {_shown(name)} is {len(name.encode('utf-8')):,} bytes of "
            f"UTF-8, over the limit of {MAX_NAME_BYTES:,} for a name; give it a shorter name"
        )
    if is_reserved_table(name):
        raise SchemaError(
            f"{where}: {kind} name {_shown(name)} is reserved (names starting with '_cf_', "
            f"'sqlite_' or 'pragma_', and SQLite's virtual tables such as dbstat and json_each, "
            f"belong to the runtime and SQLite, R12/R13); rename it"
        )
    # A str subclass (an enum member, a tagged string) names what its text names, as a cell's
    # or a database's name does.
    return plain_text(name)


def _entries(mapping: Mapping[Any, Any], what: str) -> list[tuple[Any, Any]]:
    """The items of a mapping the caller gave; what its own code raises is a SchemaError."""
    try:
        return list(mapping.items())
    except Exception as exc:
        raise SchemaError(
            f"{what}: reading the mapping given raised {type(exc).__name__}: {exc}; give a "
            "plain dict"
        ) from exc


def _check_spec_text(column: str, spec: str) -> None:
    """Refuse text that is not a single column definition (before SQLite ever sees it)."""
    where = f"column {_shown(column)}"
    if not spec.strip():
        raise SchemaError(f"{where}: the spec is empty; give a type such as 'text' or 'integer'")
    if "\x00" in spec:
        raise SchemaError(f"{where}: the spec {_shown(spec)} contains NUL; remove it")
    position = surrogate_at(spec)
    if position is not None:
        raise SchemaError(
            f"{where}: the spec {_shown(spec)} is not valid Unicode text (a lone surrogate at "
            f"position {position}): SQLite reads specs as UTF-8; decode the text properly first"
        )
    statement = scan_sql(spec)
    if statement.problem is not None and statement.problem[0] == "syntax":
        # Text SQLite cannot read on its own (an unterminated quote): joined with the next
        # column's spec in the table's DDL, it would read as something else — a quote opened
        # here and closed there ends the CREATE TABLE and runs what follows (R10, R13). (A
        # second statement is refused below, where its ";" is met.)
        _kind, offset, message = statement.problem
        raise SchemaError(
            f"{where}: the spec {_shown(spec)} is not a column definition SQLite can read on its "
            f"own ({message.partition(';')[0]} at offset {offset}); declare one whole column per "
            "spec"
        )
    depth = 0
    words = statement.words()
    names = _string_names(words)
    for i, tok in enumerate(words):
        if (tok.kind in (WORD, QUOTED) or i in names) and is_reserved(tok.name):
            called = i + 1 < len(words) and words[i + 1].text == "("
            if not (called and fold_ascii(tok.name) in ALLOWED_SQLITE_FUNCTIONS):
                raise SchemaError(
                    f"{where}: the spec {_shown(spec)} names {_shown(tok.name)}, a reserved "
                    "name (R12): a column may refer only to the database's own tables and columns"
                )
        called = i + 1 < len(words) and words[i + 1].text == "("
        if called and tok.kind in (WORD, QUOTED) and is_forbidden_function(tok.name):
            raise SchemaError(
                f"{where}: the spec {_shown(spec)} calls {_shown(tok.name)}(), which no "
                "statement of the database may call (R21, R23): every read and write of the "
                "table would be refused; remove the call"
            )
        if tok.kind != OP:
            continue
        depth += (tok.text == "(") - (tok.text == ")")
        if depth < 0 or tok.text == ";" or (depth == 0 and tok.text == ","):
            raise SchemaError(
                f"{where}: the spec {_shown(spec)} is not a single column definition (unexpected "
                f"{tok.text!r} at offset {tok.start}); declare one column per spec"
            )
    if statement.has_comment:
        raise SchemaError(f"{where}: the spec {_shown(spec)} contains a comment; remove it")
    if depth:
        raise SchemaError(f"{where}: the spec {_shown(spec)} has an unclosed '('; close it")


def _string_names(words: Sequence[Word]) -> frozenset[int]:
    """The positions of the string literals SQLite reads as names in a column definition: the
    table after ``REFERENCES`` and the columns of its list (``references 'parent'('id')``), as
    the guard takes a string literal where SQLite reads a name (R24). Elsewhere in a spec a
    string literal is data (``default '_cf_x'``)."""
    found: set[int] = set()
    for i, tok in enumerate(words):
        if tok.kind != WORD or tok.text.upper() != "REFERENCES" or i + 1 >= len(words):
            continue
        found.add(i + 1)
        if i + 2 < len(words) and words[i + 2].text == "(":
            j = i + 3
            while j < len(words) and words[j].text != ")":
                found.add(j)
                j += 1
    return frozenset(j for j in found if words[j].kind == STRING)


def _column(name: str, spec: object) -> Column:
    is_link_name = fold_ascii(name).endswith(LINK_SUFFIX)
    if isinstance(spec, CfLink):
        if not is_link_name:
            raise SchemaError(
                f"column {_shown(name)}: sc.cf_link() is only for columns whose name ends in "
                f"'{LINK_SUFFIX}' (R11); rename it to {_shown(name + LINK_SUFFIX)} or give a SQL "
                "type"
            )
        return Column(name, "TEXT", True)
    if not isinstance(spec, str):
        raise SchemaError(
            f"column {_shown(name)}: spec {_shown(spec)} is a {type(spec).__name__}; a spec is "
            "a SQLite column definition string or sc.cf_link()"
        )
    if is_link_name:
        raise SchemaError(
            f"column {_shown(name)}: a column ending in '{LINK_SUFFIX}' holds links and must be "
            f"declared as sc.cf_link(), not {_shown(spec)} (R11)"
        )
    _check_spec_text(name, spec)
    return Column(name, spec.strip(), False)


@checked_arguments
def table(
    mapping: Mapping[str, str | CfLink] | None = None,
    /,
    *,
    indexes: Mapping[str, Sequence[str]] | None = None,
    **columns: str | CfLink,
) -> Table:
    """Declare a table (R10): columns as keywords and/or one mapping, indexes as name → columns."""
    if mapping is not None and not isinstance(mapping, Mapping):
        raise SchemaError(
            f"table(): the positional argument must be a mapping, not {_shown(mapping)}"
        )
    declared: list[Column] = []
    seen: set[str] = set()
    for name, spec in [*_entries(mapping or {}, "table()"), *columns.items()]:
        name = _check_name("column", name, "table()")
        if fold_ascii(name) in seen:
            raise SchemaError(
                f"table(): column {_shown(name)} is declared twice (SQLite names are "
                f"case-insensitive); keep one"
            )
        seen.add(fold_ascii(name))
        declared.append(_column(name, spec))
    if not declared:
        raise SchemaError("table(): a table needs at least one column")
    bare = Table(tuple(declared), ())
    return Table(bare.columns, _indexes(bare, {} if indexes is None else indexes))


def _indexes(
    declared: Table, indexes: Mapping[str, Sequence[str]]
) -> tuple[tuple[str, tuple[str, ...]], ...]:
    if not isinstance(indexes, Mapping):
        raise SchemaError(
            f"table(): indexes= must map index names to column lists: {_shown(indexes)}"
        )
    out: dict[str, tuple[str, tuple[str, ...]]] = {}
    for name, cols in _entries(indexes, "table(indexes=)"):
        name = _check_name("index", name, "table()")
        where = f"index {_shown(name)}"
        if fold_ascii(name) in out:
            raise SchemaError(f"{where} is declared twice (case-insensitive); keep one")
        if isinstance(cols, str) or not isinstance(cols, Sequence):
            raise SchemaError(
                f"{where}: columns must be a list of names, not the text {_shown(cols)}: "
                f"write [{_shown(cols)}]"
                if isinstance(cols, str)
                else f"{where}: columns must be a list of column names, not {_shown(cols)} (of "
                f"type {type(cols).__name__}), such as ['a'] or ['a', 'b']"
            )
        if not cols:
            raise SchemaError(f"{where}: the column list is empty; name at least one column")
        resolved: list[str] = []
        for col in cols:
            found = declared.column(col) if isinstance(col, str) else None
            if found is None:
                raise SchemaError(
                    f"{where}: column {_shown(col)} is not a column of the table "
                    f"({', '.join(declared.column_names)}); index declared columns"
                )
            resolved.append(found.name)
        out[fold_ascii(name)] = (name, tuple(resolved))
    return tuple(sorted(out.values()))


def create_table_sql(database: str, name: str, declared: Table) -> str:
    """The table's ``CREATE TABLE``: one statement, whatever its specs hold (each was checked
    to be one column definition; checked again here as a whole, before any connection runs it,
    as SQLite runs every statement of a text it is given)."""
    cols = ", ".join(c.ddl() for c in declared.columns)
    sql = f"CREATE TABLE {quote_ident(database)}.{quote_ident(name)} ({cols})"
    problem = scan_sql(sql).problem
    if problem is not None:
        raise SchemaError(
            f"table {_shown(name)}: its columns do not make one CREATE TABLE statement "
            f"({problem[2].partition(':')[0]} at offset {problem[1]} of {_shown(sql)}); declare "
            "one whole column definition per spec"
        )
    return sql


def create_index_sql(database: str, index: str, table_name: str, columns: Sequence[str]) -> str:
    # CREATE INDEX qualifies the index name; the table must be unqualified (same schema).
    cols = ", ".join(quote_ident(c) for c in columns)
    return (
        f"CREATE INDEX {quote_ident(database)}.{quote_ident(index)} "
        f"ON {quote_ident(table_name)} ({cols})"
    )


def render_ddl(schema: Schema, database: str) -> list[str]:
    """CREATE TABLE / CREATE INDEX statements of ``schema`` in ``database``, table by table."""
    out: list[str] = []
    for name, declared in schema.tables:
        out.append(create_table_sql(database, name, declared))
        out.extend(create_index_sql(database, i, name, cols) for i, cols in declared.indexes)
    return out


def declare_tables(tables: Mapping[str, Table], *, recorded: bool = False) -> Schema:
    """Validate a whole declaration (R10–R12) and return it as a :class:`Schema`. ``recorded``:
    the tables a handle recorded, read back — an older version may have accepted there what a
    declaration is refused now (a column named ``_rowid_``): its data is never hidden for it
    (R73), and only a new declaration is refused."""
    if not isinstance(tables, Mapping):
        raise SchemaError(
            f"tables= takes a mapping of table name → sc.table(…), not {_shown(tables)}: "
            'e.g. tables={"messages": sc.table(id="integer primary key", body="text")}'
        )
    names: dict[str, str] = {}
    entries: list[tuple[str, Table]] = []
    for name, declared in _entries(tables, "tables="):
        name = _check_name("table", name, "tables=")
        if fold_ascii(name) in DATABASE_NAMES:
            raise SchemaError(
                f"table {_shown(name)} has the name of a database SQLite knows (main, temp): the "
                f"guard refuses {name}.column as a schema-qualified name (R21), so no statement "
                "could qualify the table's columns by it (R13); rename it"
            )
        if not isinstance(declared, Table):
            raise SchemaError(
                f"table {_shown(name)}: {_shown(declared)} is not a sc.table(…) declaration"
            )
        _recheck(name, declared)
        if fold_ascii(name) in names:
            raise SchemaError(
                f"table {_shown(name)} is declared twice (case-insensitive); keep one"
            )
        names[fold_ascii(name)] = name
        entries.append((name, declared))
    owners: dict[str, str] = {}
    for name, declared in entries:
        for index, _ in declared.indexes:
            clash = owners.get(fold_ascii(index)) or names.get(fold_ascii(index))
            if clash is not None:
                raise SchemaError(
                    f"table {_shown(name)}: index {_shown(index)} has the name of another index "
                    f"or table ({_shown(clash)}); index and table names share one namespace in "
                    "SQLite"
                )
            owners[fold_ascii(index)] = name
    schema = Schema(tuple(sorted(entries, key=lambda item: (fold_ascii(item[0]), item[0]))))
    # SQLite judged this very schema already in this process (a declaration's, or the one its
    # handle records, read back at each commit that writes the database): not again. Building
    # it computes each default, which may take long — and a commit does so holding the space's
    # write lock, which R44 bounds by exec_timeout.
    judged = _JUDGED.get(schema.fingerprint)
    if judged is None or (judged and not recorded):
        _check_with_sqlite(schema, recorded=recorded)
        with _JUDGED_LOCK:
            if len(_JUDGED) >= _JUDGED_MOST:
                _JUDGED.pop(next(iter(_JUDGED)))
            _JUDGED[schema.fingerprint] = recorded and _JUDGED.get(schema.fingerprint, True)
    return schema


# Fingerprints of the schemas SQLite judged in this process -> whether as recorded only (some
# checks are left out for what a handle recorded: a new declaration of it is judged again).
_JUDGED: dict[str, bool] = {}
_JUDGED_LOCK = threading.Lock()
_JUDGED_MOST: Final = 1024


def _recheck(name: str, declared: Table) -> None:
    """A Table built directly, not by table(), gets the same checks."""
    specs = {c.name: cf_link() if c.is_link else c.spec for c in declared.columns}
    try:
        rebuilt = table(specs, indexes={i: list(cols) for i, cols in declared.indexes})
    except SchemaError as exc:
        raise SchemaError(f"table {_shown(name)}: {exc}") from exc
    if rebuilt != declared:
        raise SchemaError(
            f"table {_shown(name)}: {_shown(declared)} was not built by sc.table(…); use it"
        )


# R44: computing a declared default is bounded as a write's statements are. A default is a
# constant, but one call of a builtin may take minutes (instr of a long needle in a long text),
# where no progress handler is called and no Ctrl-C reaches: the top layer gives the overrides
# that compute such calls in Python under a deadline (``use_long_calls``), as on the write
# connection; without them, the progress handler alone bounds what runs in steps.
DEFAULT_SECONDS: Final = 5.0
LongCalls = Callable[[apsw.Connection, Any], None]
_long_calls: list[LongCalls] = []


def use_long_calls(override: LongCalls) -> None:
    """Compute the declared defaults with ``override(conn, owner)`` installed (``owner`` has a
    ``deadline``: a ``time.monotonic()`` value, or None for none)."""
    _long_calls[:] = [override]


class _Budget:
    """The deadline of the default being computed (None between them)."""

    __slots__ = ("deadline",)

    def __init__(self) -> None:
        self.deadline: float | None = None

    def past(self) -> bool:
        return self.deadline is not None and time.monotonic() > self.deadline

    @contextmanager
    def within(self, seconds: float) -> Iterator[None]:
        """A block whose computations stop (``apsw.InterruptError``) ``seconds`` from now."""
        self.deadline = time.monotonic() + seconds
        try:
            yield
        finally:
            self.deadline = None


def _check_with_sqlite(schema: Schema, *, recorded: bool = False) -> None:
    """Build every table in a scratch database; SQLite is the judge of each spec."""
    scratch = apsw.Connection(":memory:")
    scratch.limit(apsw.SQLITE_LIMIT_LENGTH, LENGTH_LIMIT)  # R44, as everywhere
    budget = _Budget()
    for override in _long_calls:
        override(scratch, budget)
    scratch.set_progress_handler(budget.past, 1000)
    try:
        for name, declared in schema.tables:
            try:
                scratch.execute(create_table_sql("main", name, declared))
            except apsw.Error as exc:
                raise _blame(scratch, name, declared, exc) from exc
            xinfo = scratch.execute(f"PRAGMA table_xinfo({quote_ident(name)})").fetchall()
            got = [fold_ascii(str(r[1])) for r in xinfo]
            want = [fold_ascii(c) for c in declared.column_names]
            if got != want:
                raise SchemaError(
                    f"table {_shown(name)}: SQLite built columns {got} from the specs, not {want}; "
                    f"each spec must be exactly one column definition"
                )
            if not recorded and not any(row[5] for row in xinfo) and _SESSION_ROWID in got:
                raise SchemaError(
                    f"table {_shown(name)} has no PRIMARY KEY and a column named _rowid_: the "
                    "runtime records the changes of such a table by rowid (R70), and SQLite's "
                    "session extension, which records them, names the rowid _rowid_ and would "
                    "read that column instead; rename the column or declare a primary key (a "
                    "database written already: declare a new version= whose migrate builds the "
                    "table anew — CREATE TABLE t_new (…); INSERT INTO t_new SELECT …; DROP "
                    "TABLE t; ALTER TABLE t_new RENAME TO t — as SQLite renames no _rowid_)"
                )
            standins = [
                _check_default(scratch, name, str(column), str(type_ or ""), str(default), budget)
                for _, column, type_, _, default, _, hidden in xinfo
                if default is not None and hidden == 0
            ]
            if len(standins) > 1:
                _check_defaults_together(scratch, name, standins, budget)
            if not recorded:
                _check_trial_row(scratch, name, xinfo)
            for index, cols in declared.indexes:
                try:
                    scratch.execute(create_index_sql("main", index, name, cols))
                except apsw.Error as exc:
                    raise SchemaError(
                        f"table {_shown(name)}, index {_shown(index)}: SQLite refused it: {exc}"
                    ) from exc
        made = scratch.execute(
            "SELECT count(*) FROM sqlite_schema WHERE type IN ('table', 'view', 'trigger') "
            "AND name NOT LIKE 'sqlite^_%' ESCAPE '^'"  # SQLite's own: sqlite_ (R12), not sqlitex
        ).fetchall()[0][0]
        if made != len(schema.tables):
            raise SchemaError(
                f"the specs created {made} tables/views/triggers instead of {len(schema.tables)}; "
                f"a spec must not contain other statements"
            )
    finally:
        scratch.close()


def _check_default(
    scratch: apsw.Connection, name: str, column: str, type_: str, default: str, budget: _Budget
) -> str:
    """R44, R14: a column's default must be computable, within SQLite's length limit and in
    :data:`DEFAULT_SECONDS`, as every read of a file that lacks the column computes it (a
    re-declared column reads as its default, from the stand-in column :func:`standin_column`
    builds, which must take it too): one that fails would make every read of the file fail.
    Returns the stand-in column."""
    collation = scratch.column_metadata("main", name, column)[1] or "BINARY"
    standin = standin_column(column, type_, default, collation)
    try:
        with budget.within(DEFAULT_SECONDS):
            scratch.execute(f"SELECT typeof(({default_expression(default)}))").fetchall()
            _fill_standin(scratch, standin)
        _check_added_alike(scratch, name, column, type_, default)
    except apsw.InterruptError as exc:
        raise SchemaError(
            f"table {_shown(name)}, column {_shown(column)}: the default "
            f"{_shown(default, quote=False)} takes SQLite longer than {DEFAULT_SECONDS:g}s to "
            "compute, and every read of a file written before the column was declared "
            "computes it: give a default that is quick to compute (its value, as a literal)"
        ) from exc
    except apsw.Error as exc:
        limit = LENGTH_LIMIT // (1 << 20)
        raise SchemaError(
            f"table {_shown(name)}, column {_shown(column)}: SQLite cannot compute the default "
            f"{_shown(default, quote=False)}: "
            f"{type(exc).__name__}: {exc}; give a default SQLite can compute, a value of at "
            f"most {limit} MiB (SQLite's length limit)"
        ) from exc
    return standin


# A number written as a literal (the defaults SQLite keeps the spelling of in one place).
_NUMBER_LITERAL: Final = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def _may_be_a_number(default: str) -> bool:
    """Whether a column default (as SQLite reports it) may be a number written otherwise than
    SQLite writes it: a numeric literal, signed (a space after the sign too), with ``_`` digit
    separators, or an expression (which may compute one). A string, a blob, ``NULL``,
    ``TRUE``/``FALSE`` and ``CURRENT_…`` are not."""
    text = default.strip()
    if _NOT_A_NUMBER.fullmatch(text) is not None:
        return False
    text = re.sub(r"^([+-])\s+", r"\1", text).replace("_", "")
    if _NUMBER_LITERAL.fullmatch(text) is not None:
        return True
    # Anything else is an expression (SQLite reports one without its parentheses: `cast(1.50
    # as text)`), which may compute a number: the scratch check tells.
    return not text.startswith(("'", '"', "x'", "X'"))


# Defaults that are no number however stored: NULL, TRUE/FALSE, the CURRENT_… keywords.
_NOT_A_NUMBER: Final = re.compile(
    r"(?i)null|true|false|current_time|current_date|current_timestamp"
)


def _check_added_alike(
    scratch: apsw.Connection, name: str, column: str, type_: str, default: str
) -> None:
    """R13, R14: a TEXT column's default written as a number with a fraction or an exponent
    (``default 1.50``, ``default 1e2``) is stored by SQLite as the number's text ('1.5',
    '100.0') in a row written after the column exists, but read as the literal's spelling
    ('1.50', '1e2') in a row that ``ALTER TABLE … ADD COLUMN`` gave the column: one
    declaration, two values, depending on how the file got the column (and a file rebuilt
    from its log, or migrated by a table rebuild, holds the other one). Such a default is
    refused; a string says the text meant."""
    if _affinity(type_) != "TEXT" or not _may_be_a_number(default):
        return
    probe = "temp._cf_added_column"
    try:
        scratch.execute(f"CREATE TABLE {probe} (x); INSERT INTO {probe} VALUES (1)")
        try:
            scratch.execute(f"ALTER TABLE {probe} ADD COLUMN c {type_} DEFAULT ({default})")
        except apsw.SQLError:
            return  # (a default no column can be added with: not a number's spelling)
        scratch.execute(f"INSERT INTO {probe} (x) VALUES (2)")
        added, written = (r[0] for r in scratch.execute(f"SELECT c FROM {probe} ORDER BY x"))
    finally:
        scratch.execute(f"DROP TABLE IF EXISTS {probe}")
    if added != written:
        raise SchemaError(
            f"table {_shown(name)}, column {_shown(column)}: the default {default} of a TEXT "
            f"column is stored as {written!r} in rows written after the column exists, but "
            f"read as {added!r} in rows a migration adds the column to (SQLite keeps the "
            f"number's spelling there): write the text meant as a string, default {written!r} "
            f"or default {added!r}"
        )


def _check_trial_row(scratch: apsw.Connection, name: str, xinfo: list[Any]) -> None:
    """R10, R13: a generated column or CHECK constraint that calls a date and time function
    with ``'now'`` (or with no time value) is accepted by ``CREATE TABLE``, but SQLite refuses
    it when it computes it ("non-deterministic use of datetime() in a generated column"): every
    row written into the table would fail. One row is written into the scratch table and rolled
    back — columns ``NOT NULL`` without a default given a value of their type, the others left
    to their defaults — and that refusal is a ``SchemaError`` here, as are a generated column
    that depends on itself and a collation SQLite does not have named inside a CHECK, which
    ``CREATE TABLE`` takes as well. Any other failure of the row (a constraint the made-up
    values break) says nothing of the declaration."""
    given = [
        (quote_ident(str(column)), _TRIAL_VALUE[_affinity(str(type_ or ""))])
        for _, column, type_, notnull, default, pk, hidden in xinfo
        if notnull and default is None and hidden == 0
    ]
    sql = (
        f"INSERT INTO main.{quote_ident(name)} ({', '.join(c for c, _ in given)}) "
        f"VALUES ({', '.join(v for _, v in given)})"
        if given
        else f"INSERT INTO main.{quote_ident(name)} DEFAULT VALUES"
    )
    scratch.execute("SAVEPOINT trial")
    try:
        scratch.execute(sql)
    except apsw.Error as exc:
        if _NON_DETERMINISTIC in str(exc):
            raise SchemaError(
                f"table {_shown(name)}: SQLite refuses every row written into it: {exc}; a "
                "generated column or CHECK constraint may not call a date and time function "
                "with 'now' (or with no time value: its result changes from call to call): "
                "compute that value in the statement that writes the row instead (INSERT … "
                "VALUES (…, datetime('now')))"
            ) from exc
        if str(exc).startswith(_BROKEN_DECLARATION):
            raise SchemaError(
                f"table {_shown(name)}: SQLite refuses every row written into it: {exc}; "
                "correct its column definitions (a generated column may not depend on itself, "
                "through others either; a collation named in a CHECK or generated expression "
                "must be one SQLite has: BINARY, NOCASE or RTRIM)"
            ) from exc
    finally:
        scratch.execute("ROLLBACK TO trial; RELEASE trial")


# SQLite's words when a function whose result can change is computed where it may not be.
_NON_DETERMINISTIC: Final = "non-deterministic use of"
# SQLite's words for a fault of the declaration that no value of the row has a part in: its
# CREATE TABLE takes both, and every row written is refused.
_BROKEN_DECLARATION: Final = ("generated column loop", "no such collation sequence")
# A value of each affinity for the trial row (see _check_trial_row).
_TRIAL_VALUE: Final = {
    "INTEGER": "1",
    "REAL": "1.0",
    "NUMERIC": "1",
    "TEXT": "'x'",
    "BLOB": "x'78'",
}


def _affinity(declared_type: str) -> str:
    """The affinity SQLite gives a column of ``declared_type`` (its rules, in their order)."""
    folded = declared_type.upper()
    if "INT" in folded:
        return "INTEGER"
    if any(word in folded for word in ("CHAR", "CLOB", "TEXT")):
        return "TEXT"
    if "BLOB" in folded or not folded.strip():
        return "BLOB"
    if any(word in folded for word in ("REAL", "FLOA", "DOUB")):
        return "REAL"
    return "NUMERIC"


def _fill_standin(scratch: apsw.Connection, columns: str) -> None:
    """Make the one row of defaults a read of a file lacking ``columns`` makes (see
    ``schema/_shadow.py``), and drop it again; raises what SQLite raises."""
    scratch.execute(f"CREATE TEMP TABLE {_STANDIN} ({columns})")
    try:
        scratch.execute(f"INSERT INTO temp.{_STANDIN} DEFAULT VALUES")
    finally:
        scratch.execute(f"DROP TABLE temp.{_STANDIN}")


def _check_defaults_together(
    scratch: apsw.Connection, name: str, standins: list[str], budget: _Budget
) -> None:
    """R44: the defaults of a table that each fit may not fit together — a read of a file that
    lacks those columns holds them in one row, and a row is under the same length limit — so
    they are made together too (a file lacking fewer of them makes a smaller row)."""
    try:
        with budget.within(DEFAULT_SECONDS * len(standins)):
            _fill_standin(scratch, ", ".join(standins))
    except apsw.InterruptError as exc:
        raise SchemaError(
            f"table {_shown(name)}: its defaults together take SQLite longer than "
            f"{DEFAULT_SECONDS * len(standins):g}s to compute: give defaults that are quick to "
            "compute (their values, as literals)"
        ) from exc
    except apsw.Error as exc:
        limit = LENGTH_LIMIT // (1 << 20)
        raise SchemaError(
            f"table {_shown(name)}: SQLite cannot hold the defaults of its columns in one row: "
            f"{type(exc).__name__}: {exc}; a file written before those columns were declared "
            "reads them as one row of defaults until it is migrated, and a row is at most "
            f"{limit} MiB (SQLite's length limit): make the defaults smaller"
        ) from exc


def _blame(scratch: apsw.Connection, name: str, declared: Table, exc: apsw.Error) -> SchemaError:
    """Find the column whose spec SQLite refuses: each one is tried next to the other names alone
    (so references between columns still resolve while their constraints cannot clash). When
    SQLite refuses the names alone (more columns than its limit), no spec is to blame: the
    table is."""
    names = ", ".join(quote_ident(c) for c in declared.column_names)
    bare = f"CREATE TABLE {quote_ident(name)} ({names})"
    try:
        scratch.execute(bare)
        scratch.execute(f"DROP TABLE {quote_ident(name)}")
    except apsw.Error as table_exc:
        limit = scratch.limit(apsw.SQLITE_LIMIT_COLUMN)
        return SchemaError(
            f"table {_shown(name)}: SQLite refuses a table of these {len(declared.columns)} "
            f"columns whatever their specs: {table_exc}; a table holds at most {limit} "
            "columns: split it into several tables"
        )
    for col in declared.columns:
        others = [quote_ident(c.name) for c in declared.columns if c is not col]
        probe = f'CREATE TABLE "probe" ({", ".join([*others, col.ddl()])})'
        try:
            scratch.execute(probe)
            scratch.execute('DROP TABLE "probe"')
        except apsw.Error as col_exc:
            return SchemaError(
                f"table {_shown(name)}, column {_shown(col.name)}: SQLite cannot use the spec "
                f"{_shown(col.spec)}: {col_exc}; write it as a SQLite column definition such as "
                "'text not null'"
            )
    return SchemaError(
        f"table {_shown(name)}: SQLite refused the declaration: {exc}; fix the specs"
    )
