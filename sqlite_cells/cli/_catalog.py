"""What ``sqlite-cells tables`` and ``sqlite-cells cells`` list, read without writing anything.

* :func:`list_tables`: for each database of each space, its tables with their columns (name,
  declared type, NOT NULL, default, primary key, generated: every column ``SELECT *`` returns;
  with collation, AUTOINCREMENT, UNIQUE, CHECK and REFERENCES), the table's own constraints,
  indexes and row counts;
* :func:`list_cells`: for each space, its cells (name when known, id, kind, rev, value with links
  shown by what they name) — database handles appear as kind ``database``.

Every file is opened read-only, one read transaction each (see ``_inspect``).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import apsw
import msgspec

from sqlite_cells.cli._inspect import (
    InspectError,
    QuarantinedHandleInfo,
    StoredTable,
    as_bytes,
    classify_cell,
    compare_unlocked,
    database_info,
    decoded,
    locked,
    name_text,
    one_line,
    read_handles,
    read_only,
    reported_watermark,
    row_count,
    shown,
    store_dir,
    store_file_names,
    stored_tables,
    with_moved_source,
    writes_refused_advice,
)
from sqlite_cells.cli._names import Namer
from sqlite_cells.codec import EncodingError, decode_value
from sqlite_cells.files import (
    TABLES_DIFFER,
    Action,
    Outcome,
    UnreadableFile,
    is_dropped,
    source_path,
    stored_json,
    table_differences,
    unreadable_outcome,
    writes_refused,
)
from sqlite_cells.read import LinkText
from sqlite_cells.schema import db_file_name, index_where, read_table_text
from sqlite_cells.sql import fold_ascii

__all__ = ["CellRow", "NotItsFile", "TableRow", "list_cells", "list_tables"]


@dataclass(frozen=True, slots=True)
class TableTexts:
    """The names of a table's columns and indexes as a line of text shows them."""

    columns: tuple[str, ...]
    # (index, its keys as SQL writes them: ``b desc``, ``c collate nocase``)
    indexes: tuple[tuple[str, tuple[str, ...]], ...]
    # The table's own constraints (UNIQUE or FOREIGN KEY over several columns, CHECK), as SQL
    # writes them: listed after its columns, as in a CREATE TABLE.
    constraints: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class TableRow:
    space: str
    database: str  # its name when the store records one, else its id
    db_id: str
    table: str
    # name, type, notnull, default, pk, generated ("virtual", "stored" or None), collation,
    # autoincrement, unique, checks, references (see _constraints)
    columns: tuple[dict[str, Any], ...]
    # name, columns, desc, collations (each key's), where (a partial index's condition), unique
    indexes: tuple[dict[str, Any], ...]
    rows: int | None  # None for a view: its rows are its query's, not counted
    # The names as a line of text lists them (``name_text``, made from the names' bytes):
    # each column's, and each index's with its columns', in the order of the two above.
    texts: TableTexts
    kind: str = "table"  # or "view" (an injected file's own, R60)
    # Why a view's columns are not listed (its query no longer prepares): SQLite's words.
    problem: str | None = None
    # The table's options as SQL writes them after its columns ("without rowid", "strict").
    options: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "space": self.space,
            "database": self.database,
            "db_id": self.db_id,
            "table": self.table,
            "kind": self.kind,
            "columns": list(self.columns),
            "constraints": list(self.texts.constraints),
            "indexes": list(self.indexes),
            "options": list(self.options),
            "rows": self.rows,
            **({} if self.problem is None else {"problem": self.problem}),
        }

    def to_flat(self) -> dict[str, Any]:
        """One line per table, for text and CSV output (its keys: :data:`TABLE_COLUMNS`)."""
        return {
            "space": self.space,
            "database": self.database,
            # A view is marked beside its name (JSON: its "kind").
            "table": self.table
            + (" (view)" if self.kind == "view" else "")
            + (f" ({', '.join(self.options)})" if self.options else ""),
            "columns": f"<{self.problem}>"
            if self.problem is not None
            else ", ".join(
                [
                    *(
                        _column_text(c, name, composite_key=_composite_key(self.columns))
                        for c, name in zip(self.columns, self.texts.columns, strict=True)
                    ),
                    *self.texts.constraints,
                ]
            ),
            "indexes": ", ".join(
                f"{name}({', '.join(keys)})"
                + (" unique" if i["unique"] else "")
                + (f" where {i['where']}" if i.get("where") is not None else "")
                for i, (name, keys) in zip(self.indexes, self.texts.indexes, strict=True)
            ),
            "rows": "" if self.rows is None else self.rows,
        }


_HANDLE_KINDS = frozenset(("database", "dropped database", "disk source"))  # (see _kind)

# The columns of `tables` in text and CSV (:meth:`TableRow.to_flat`'s keys): the CSV header is
# printed when no table is listed too.
TABLE_COLUMNS = ("space", "database", "table", "columns", "indexes", "rows")


@dataclass(frozen=True, slots=True)
class CellRow:
    space: str
    name: str | None
    id: str
    kind: str  # "cell", "piece", "input", "database", "disk source", "dropped database" or
    # "quarantined database" (its handle cell holds no handle, R5)
    rev: int
    value: Any  # decoded, links still as codec Links
    # Why the stored value cannot be shown (another program wrote it): then ``value`` is None.
    problem: str | None = None

    def to_json(self, namer: Namer) -> dict[str, Any]:
        shown = {
            "space": self.space,
            "name": self.name,
            "id": self.id,
            "kind": self.kind,
            "rev": self.rev,
            "value": namer.shallow(self.value, as_json=True),
        }
        if self.problem is not None:  # (not a string value that says so: JSON tells them apart)
            shown["problem"] = self.problem
        return shown

    def to_flat(self, namer: Namer) -> dict[str, Any]:
        if self.problem is not None:
            shown: Any = f"<{self.problem}>"
        elif isinstance(self.value, str):
            # As JSON, as every other value is: the string "5" is not the number 5, nor "null"
            # None, nor a string that reads "→ alice" a link (shown unquoted, below).
            shown = msgspec.json.encode(self.value).decode()
        else:
            shown = namer.shallow(self.value, as_json=False, home=self.space)
            if isinstance(shown, str):  # the value is a link: `→ NAME`, printed as it is
                shown = LinkText(shown)
        if self.kind in _HANDLE_KINDS and isinstance(self.value, dict):
            # A handle's whole declaration is for JSON output; a line names its tables.
            where = source_path(self.value)
            tables = ", ".join(sorted(self.value.get("tables") or {})) or "its own tables"
            shown = f"rev {self.value.get('rev')}; " + (
                f"file {where}" if where is not None else f"tables {tables}"
            )
        return {
            "space": self.space,
            "name": self.name if self.name is not None else "",
            "id": self.id,
            "kind": self.kind,
            "rev": self.rev,
            "value": shown if isinstance(shown, str) else msgspec.json.encode(shown).decode(),
        }


def _composite_key(columns: Sequence[dict[str, Any]]) -> bool:
    """Whether the table's primary key spans several columns (``PRIMARY KEY (a, b)``, which
    only another program's file can hold: a declaration has one spec per column)."""
    return sum(1 for c in columns if c["pk"]) > 1


# A default SQL writes bare after DEFAULT: a literal (signed number, string, blob), NULL, TRUE,
# FALSE, CURRENT_TIME/DATE/TIMESTAMP, or a word (read as its text).
_BARE_DEFAULT = re.compile(
    r"[+-]?(?:(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|0[xX][0-9a-fA-F]+)"
    r"|'(?:[^']|'')*'|[xX]'[0-9a-fA-F]*'|[A-Za-z_][A-Za-z0-9_]*"
)


def _default_text(default: str) -> str:
    """A column's default as SQL writes it: SQLite reports an expression default without the
    parentheses its definition needs (``default (1+2)`` as ``1+2``), which read as another
    definition (``default 1`` and then ``+2``); such a default is listed in them."""
    return default if _BARE_DEFAULT.fullmatch(default) else f"({default})"


# What ``pragma_table_xinfo`` says of a generated column (its ``hidden``), as listed.
_GENERATED = {2: "virtual", 3: "stored"}


def _column_text(column: dict[str, Any], name: str, *, composite_key: bool = False) -> str:
    """``name`` and its column's definition as SQL writes it; ``composite_key``: the table's
    primary key spans several columns, listed once as the table's own constraint."""
    parts = [name, column["type"] or ""]
    if column["pk"] and not composite_key:
        parts.append("primary key")
    if column.get("autoincrement"):
        parts.append("autoincrement")
    if column["notnull"]:
        parts.append("not null")
    if column.get("unique"):
        parts.append("unique")
    if column["default"] is not None:
        parts.append(f"default {_default_text(column['default'])}")
    collation = column.get("collation")
    if collation is not None and collation.upper() != "BINARY":
        parts.append(f"collate {collation}")
    parts.extend(f"check ({check})" for check in column.get("checks") or ())
    if column.get("references") is not None:
        parts.append(f"references {column['references']}")
    if column.get("generated") is not None:
        parts.append(f"generated {column['generated']}")
    return " ".join(p for p in parts if p)


def _constraints(
    conn: apsw.Connection, table: StoredTable, columns: list[dict[str, Any]]
) -> list[str]:
    """Fill in each column's constraints that ``pragma_table_xinfo`` does not report (its
    collation, AUTOINCREMENT, UNIQUE, CHECK, REFERENCES) and return the table's own
    constraints (``unique (a, b)``, ``foreign key (a, b) references …``, ``check (…)``), as
    SQLite reports them or, for CHECK, as the table's text writes them (§6: a listing without
    them shows another table than the file holds). A column whose name is not UTF-8 cannot be
    asked about by name: its collation stays unknown (None)."""
    by_name = {c["name"]: c for c in columns}
    for column in columns:
        column.update(collation=None, autoincrement=False, unique=False, checks=[])
        column["references"] = None
    constraints: list[str] = []
    text = decoded(table.raw)
    if text is not None:
        for name, column in by_name.items():
            with contextlib.suppress(apsw.Error):  # (a virtual table's, a non-UTF-8 name)
                _, collation, _, _, autoinc = conn.column_metadata("main", text, name)
                column.update(collation=collation, autoincrement=bool(autoinc))
    for (index,) in conn.execute(
        f"SELECT {as_bytes('name')} FROM pragma_index_list(CAST(? AS TEXT)) "
        "WHERE origin = 'u' ORDER BY seq DESC",
        (table.raw,),
    ):
        names = [
            n
            for (n,) in conn.execute(
                f"SELECT {as_bytes('name')} FROM pragma_index_info(CAST(? AS TEXT)) ORDER BY seqno",
                (index,),
            )
        ]
        if len(names) == 1 and shown(names[0]) in by_name:
            by_name[shown(names[0])]["unique"] = True
        else:
            constraints.append(f"unique ({', '.join(_name_or_expr(n) for n in names)})")
    keys: dict[int, tuple[str, list[Any], list[Any]]] = {}
    for key, parent, child, target in conn.execute(
        "SELECT id, "
        + ", ".join(as_bytes(f'"{field}"') for field in ("table", "from", "to"))
        + " FROM pragma_foreign_key_list(CAST(? AS TEXT)) ORDER BY id DESC, seq",
        (table.raw,),
    ):
        keys.setdefault(key, (name_text(parent), [], []))[1].append(child)
        keys[key][2].append(target)
    for parent, children, targets in keys.values():
        to = ""
        if any(t is not None for t in targets):  # (none: the parent's primary key)
            to = f"({', '.join(_name_or_expr(t) for t in targets)})"
        if len(children) == 1 and shown(children[0]) in by_name:
            by_name[shown(children[0])]["references"] = f"{parent}{to}"
        else:
            constraints.append(
                f"foreign key ({', '.join(name_text(c) for c in children)}) references {parent}{to}"
            )
    row = conn.execute(
        f"SELECT {as_bytes('sql')} FROM sqlite_schema WHERE type = 'table' AND name = "
        "CAST(? AS TEXT)",
        (table.raw,),
    ).fetchone()
    sql = decoded(row[0]) if row is not None and row[0] is not None else None
    stored = read_table_text(sql) if sql is not None else None
    if stored is not None:
        for name, column in by_name.items():
            found = stored.columns.get(fold_ascii(name))
            if found is not None:
                column["checks"] = [check.shown for check in found.checks]
        constraints.extend(f"check ({check.shown})" for check in stored.checks)
    return constraints


def _table_options(conn: apsw.Connection, table: StoredTable) -> tuple[str, ...]:
    """The table's options as SQL writes them after its columns: ``without rowid`` (no rowid
    to select) and ``strict`` (a value of another type than its column's is refused), which
    only another program's file holds (a declaration has one spec per column)."""
    row = conn.execute(
        "SELECT wr, strict FROM pragma_table_list(CAST(? AS TEXT)) WHERE schema = 'main'",
        (table.raw,),
    ).fetchone()
    if row is None:
        return ()
    return tuple(name for name, on in zip(("without rowid", "strict"), row, strict=True) if on)


def _name_or_expr(name: Any) -> str:
    return "<expression>" if name is None else name_text(name)


@dataclass(frozen=True, slots=True)
class FileTable:
    """A table or view of a file as :func:`_file_tables` finds it."""

    name: str
    columns: list[dict[str, Any]]
    indexes: list[Any]
    rows: int | None
    texts: TableTexts
    kind: str = "table"
    problem: str | None = None
    options: tuple[str, ...] = ()


def _file_tables(
    conn: apsw.Connection, counted: dict[str, int] | None = None, *, views: bool = False
) -> list[FileTable]:
    """Each table of the file with its columns, indexes and rows, then, with ``views`` (an
    injected file's: queries of the runtime's own databases read their declared tables only),
    each view (:func:`_file_views`; ``counted``: rows already counted, by table name, which are
    not counted again). The schema is read through
    the pragmas' table-valued forms, which take a name as a value and give names as their
    bytes: a name another program wrote that is not UTF-8 is shown as its bytes
    (``_inspect.shown``), as a space's rows are, instead of failing the whole listing."""
    found = []
    for table in stored_tables(conn):
        if table.reserved():
            continue
        try:
            read: list[tuple[Any, ...]] = conn.execute(
                f'SELECT {as_bytes("name")}, {as_bytes("type")}, "notnull", '
                f"{as_bytes('dflt_value')}, pk, hidden "
                "FROM pragma_table_xinfo(CAST(? AS TEXT)) WHERE hidden IS NOT 1 ORDER BY cid",
                (table.raw,),
            ).fetchall()
        except apsw.SQLError as exc:
            # A virtual table whose module (an extension of the file's program) is not loaded
            # here: no damage; listed with SQLite's words, the other tables as they are.
            problem = f"not readable here: {one_line(str(exc))}"
            found.append(FileTable(table.name, [], [], None, TableTexts((), ()), problem=problem))
            continue
        columns = [
            {
                "name": shown(col),
                "type": shown(kind),
                "notnull": bool(notnull),
                "default": None if default is None else shown(default),
                "pk": pk,
                "generated": _GENERATED.get(hidden),
            }
            # The extended form lists generated columns too, which `SELECT *` returns; a
            # virtual table's hidden columns (1), which it does not, are left out.
            for col, kind, notnull, default, pk, hidden in read
        ]
        # (first: it finds each column's collation, which an index's key inherits)
        constraints = tuple(_constraints(conn, table, columns))
        indexes = []
        index_texts = []
        for index, unique, origin, partial in conn.execute(
            f'SELECT {as_bytes("name")}, "unique", origin, partial '
            "FROM pragma_index_list(CAST(? AS TEXT)) ORDER BY seq",
            (table.raw,),
        ):
            if origin != "c" or bytes(index).lower().startswith((b"_cf_", b"sqlite_")):
                continue  # constraints' automatic indexes show as the columns' constraints
            listed, keys = _index(conn, index, columns, unique=unique, partial=partial)
            indexes.append(listed)
            index_texts.append((name_text(index), keys))
        count = counted.get(table.name) if counted is not None else None
        # A key over several columns is the table's own constraint, as SQL writes it: marked
        # on each of its columns, it read as several primary keys (which SQLite refuses).
        keyed = sorted((row for row in read if row[4]), key=lambda row: row[4])
        if len(keyed) > 1:
            key = f"primary key ({', '.join(name_text(row[0]) for row in keyed)})"
            constraints = (key, *constraints)
        texts = TableTexts(
            tuple(name_text(row[0]) for row in read), tuple(index_texts), constraints
        )
        rows = row_count(conn, table) if count is None else count
        options = _table_options(conn, table)
        found.append(FileTable(table.name, columns, indexes, rows, texts, options=options))
    return found + _file_views(conn) if views else found


def _index(
    conn: apsw.Connection, index: Any, columns: list[dict[str, Any]], *, unique: int, partial: int
) -> tuple[dict[str, Any], tuple[str, ...]]:
    """An index of the file as listed (its name, columns, each key's order and collation, and
    a partial index's condition, as its ``CREATE INDEX`` text writes it) and its keys as SQL
    writes them: ``b desc``, ``c collate nocase`` — a collation only where it is not the one
    the key inherits from its column (or BINARY), which the listing of the column shows."""
    inherited = {c["name"]: (c.get("collation") or "BINARY").upper() for c in columns}
    names, desc, collations, keys = [], [], [], []
    for cid, raw, descending, coll in conn.execute(
        f"SELECT cid, {as_bytes('name')}, desc, {as_bytes('coll')} "
        "FROM pragma_index_xinfo(CAST(? AS TEXT)) WHERE key = 1 ORDER BY seqno",
        (index,),
    ):
        column = raw if raw is not None else ("rowid" if cid == -1 else "<expression>")
        collation = shown(coll)
        names.append(shown(column))
        desc.append(bool(descending))
        collations.append(collation)
        key = name_text(column)
        if collation.upper() != inherited.get(shown(column), "BINARY"):
            key += f" collate {name_text(coll)}"
        keys.append(key + (" desc" if descending else ""))
    where = None
    if partial:
        row = conn.execute(
            f"SELECT {as_bytes('sql')} FROM sqlite_schema WHERE type = 'index' AND name = "
            "CAST(? AS TEXT)",
            (index,),
        ).fetchone()
        text = decoded(row[0]) if row is not None and row[0] is not None else None
        where = index_where(text) if text is not None else None
    listed = {"name": shown(index), "columns": names, "unique": bool(unique), "desc": desc}
    return {**listed, "collations": collations, "where": where}, tuple(keys)


def _file_views(conn: apsw.Connection) -> list[FileTable]:
    """Each view of the file (another program's, in an injected file, R60: a runtime's own
    files hold none), with its columns: a query reads it as it reads a table. Its rows are not
    counted (counting runs its query, which may take as long as any), and a view whose query no
    longer prepares (a table it reads dropped) is listed with SQLite's words instead of its
    columns."""
    found = []
    for view in stored_tables(conn, "view"):
        if view.reserved():
            continue
        try:
            read: list[tuple[Any, ...]] = conn.execute(
                f"SELECT {as_bytes('name')}, {as_bytes('type')} "
                "FROM pragma_table_xinfo(CAST(? AS TEXT)) ORDER BY cid",
                (view.raw,),
            ).fetchall()
        except apsw.SQLError as exc:
            found.append(
                FileTable(
                    view.name,
                    [],
                    [],
                    None,
                    TableTexts((), ()),
                    "view",
                    f"its query fails: {one_line(str(exc))}",
                )
            )
            continue
        columns = [
            {
                "name": shown(col),
                "type": shown(kind),
                "notnull": False,
                "default": None,
                "pk": 0,
                "generated": None,
            }
            for col, kind in read
        ]
        texts = TableTexts(tuple(name_text(row[0]) for row in read), ())
        found.append(FileTable(view.name, columns, [], None, texts, "view"))
    return found


def _verdict(space_file: Path, db_id: str, path: Path, tables: dict[str, Any]) -> Outcome:
    """What ``check`` finds for the database (R71: its file against its space, SQLite's
    integrity check included; in sync, whether its file holds what its declaration ``tables``
    does not, so that every write is refused: ``files.writes_refused``), without writing: in
    sync when never written (nothing stands at its path, and its space never wrote it), behind
    when its file is missing though its space wrote it (not taken for one never written).
    Something else than a file there (a directory, a named pipe) is judged as ``check`` judges
    it: the database cannot be read. The space is read again for the comparison, outside the
    read of its handles, so that a commit on its way from the space file to the database file
    is no disagreement (``compare_unlocked``, R70)."""
    try:
        found = compare_unlocked(space_file, db_id, path, wait_ms=_LOCK_WAIT_MS)
    except (apsw.BusyError, apsw.LockedError) as exc:
        raise InspectError("locked", locked(f"{path} or its space file {space_file}")) from exc
    except UnreadableFile as exc:  # listed as not read; the other databases are
        return unreadable_outcome(db_id, path, 0, exc)
    return writes_refused(found, tables, space_file) if found.action is Action.IN_SYNC else found


_LOCK_WAIT_MS = 5_000  # how long a lock held elsewhere is waited for (as ``read_only`` does)


@dataclass(frozen=True, slots=True)
class NotInSync:
    """A database whose file does not agree with its space (behind, ahead, damaged or
    quarantined, R71): as ``query`` reads nothing of it, its tables are not listed."""

    space: str
    label: str
    db_id: str
    file: str
    outcome: Outcome

    def message(self) -> str:
        shown = f"{self.label!r} ({self.db_id})" if self.label != self.db_id else self.db_id
        found = self.outcome
        detail = one_line(found.detail)
        if found.action is Action.UNREADABLE:  # nothing was read: no seq to show
            return f"left out database {shown} of space {self.space!r} (file {self.file}): {detail}"
        if found.action is Action.WRITES_REFUSED:  # in sync: no repair, nor a runtime's, helps
            return (
                f"left out database {shown} of space {self.space!r} (file {self.file}): "
                f"watermark {found.db_seq}, space seq {found.space_seq}: writes refused "
                f"({detail}); {writes_refused_advice(self.file, found.rebuild_refusal or None)}"
            )
        return (
            f"left out database {shown} of space {self.space!r} (file {self.file}): "
            f"{found.action.value} (watermark {_shown_seq(reported_watermark(found))}, "
            f"space seq {found.space_seq}: {detail or 'see check'}); "
            "a runtime repairs it before its first use when it can (R71): `sqlite-cells check` "
            "says what it finds and what to do"
        )


def _shown_seq(seq: int | None) -> str:
    return "unreadable" if seq is None else f"seq {seq}"


@dataclass(frozen=True, slots=True)
class NotItsFile:
    """A runtime-owned database whose file's tables differ from its declared ones in ways no
    repair adds: the file at its path is not its file, and its tables are not listed."""

    space: str
    db_id: str
    file: str
    differences: tuple[str, ...]

    def message(self) -> str:
        return (
            f"left out database {self.db_id} of space {self.space!r}: the file {self.file} at "
            f"its path is not its file ({TABLES_DIFFER}: {list(self.differences)}); "
            "`sqlite-cells check` says what to do"
        )


@dataclass(frozen=True, slots=True)
class UnreadSource:
    """An injected file (R60) that cannot be read as the file registered: what ``inspect``
    finds of it (:meth:`DatabaseInfo.source_finding`); its tables are not listed."""

    finding: str

    def message(self) -> str:
        return f"left out {self.finding}"


@dataclass(frozen=True, slots=True)
class QuarantinedDatabase:
    """A database whose handle cell holds no handle (R5): its tables are not listed."""

    space: str
    held: QuarantinedHandleInfo

    def message(self) -> str:
        return f"left out {self.held.finding(self.space)}"


LeftOut = NotItsFile | NotInSync | UnreadSource | QuarantinedDatabase


def list_tables(
    store: str | os.PathLike[str], namer: Namer | None = None
) -> tuple[list[TableRow], list[LeftOut]]:
    """The tables of every live database of the store, in space then database order, and the
    databases left out: the file at their path is not theirs, does not agree with its space
    (``check`` finds it behind, ahead, damaged or quarantined: R71), their injected file cannot
    be read (as ``inspect`` finds it), or their handle cell holds no handle (R5). The space
    files ``namer`` leaves out for damage are the caller's to report. A database never written
    has no file and lists no tables (its declared tables
    are in ``sqlite-cells cells``, in its handle's value)."""
    root = store_dir(store)
    namer = namer if namer is not None else Namer(root)
    rows: list[TableRow] = []
    left_out: list[LeftOut] = []
    files = store_file_names(root)
    for space_id, space_file in sorted(namer.spaces().items()):
        with read_only(space_file) as conn:
            handles, quarantined, _ = read_handles(conn, files)
        verdicts = {
            db_id: _verdict(space_file, db_id, root / db_file_name(db_id), handle["tables"])
            for db_id, handle, _rev in handles
            if source_path(handle) is None and not is_dropped(handle)
        }
        left_out.extend(QuarantinedDatabase(space_id, held) for held in quarantined)
        for db_id, handle, rev in handles:
            source = source_path(handle)
            path = source if source is not None else root / db_file_name(db_id)
            if is_dropped(handle):
                continue
            known = namer.named(space_id, db_id)
            label = known.name if known is not None else db_id
            counted = None
            if source is not None:
                info = with_moved_source(root, database_info(root, db_id, handle, rev), handles)
                finding = info.source_finding(space_id)
                if finding is not None:
                    left_out.append(UnreadSource(finding))
                    continue
                counted = {t.name: t.rows for t in info.tables if t.rows is not None}  # (not again)
            verdict = verdicts.get(db_id)
            if (
                verdict is not None
                and verdict.action is not Action.IN_SYNC
                and TABLES_DIFFER not in verdict.detail  # (said below, with the differences)
            ):
                left_out.append(NotInSync(space_id, label, db_id, path.name, verdict))
                continue
            if not path.is_file():
                continue
            # In sync, the verdict has judged the file's tables already (writes refused, or a
            # file a `migrate` brought past its recorded declaration: listed as it is).
            judged = source is not None or (
                verdict is not None and verdict.action is Action.IN_SYNC
            )
            with read_only(path, source=source is not None) as conn:
                differences = [] if judged else table_differences(conn, handle["tables"])
                tables = _file_tables(conn, counted, views=source is not None)
            if differences:
                left_out.append(NotItsFile(space_id, db_id, path.name, tuple(differences)))
                continue
            rows.extend(
                TableRow(
                    space_id,
                    label,
                    db_id,
                    t.name,
                    tuple(t.columns),
                    tuple(t.indexes),
                    t.rows,
                    t.texts,
                    t.kind,
                    t.problem,
                    t.options,
                )
                for t in tables
            )
    return rows, left_out


def _kind(handle: dict[str, Any] | None, quarantined: bool) -> str:
    """A cell's kind from :func:`classify_cell`'s verdict on it."""
    if quarantined:
        return "quarantined database"  # its handle cell holds no handle (R5)
    if handle is None:
        return "cell"
    if handle.get("dropped") is True:
        return "dropped database"
    return "disk source" if source_path(handle) is not None else "database"


def list_cells(store: str | os.PathLike[str], namer: Namer | None = None) -> list[CellRow]:
    """Every cell of every space, in space then id order, with its decoded value."""
    root = store_dir(store)
    namer = namer if namer is not None else Namer(root)
    rows: list[CellRow] = []
    files = store_file_names(root)
    for space_id, space_file in sorted(namer.spaces().items()):
        with read_only(space_file) as conn:
            stored = conn.execute(
                f"SELECT {as_bytes('id')}, {as_bytes('value')}, rev FROM _cf_cells ORDER BY id"
            ).fetchall()
        for raw_id, data, rev in stored:
            cell_id = shown(raw_id)
            raw = stored_json(data)
            value: Any = None
            problem = None
            if raw is None:  # written by another program: a number or NULL, no JSON
                problem = f"a stored {type(data).__name__}, not a JSON value"
            else:
                try:
                    value = decode_value(raw)
                except (msgspec.DecodeError, EncodingError):  # LinkDecodeError is one
                    problem = f"undecodable value of {len(raw)} bytes"
            known = namer.named(space_id, str(cell_id))
            handle, why = classify_cell(decoded(raw_id), data, rev, files, space_id)
            kind = _kind(handle, why is not None)
            if kind == "cell" and known is not None and known.kind in ("piece", "input"):
                kind = known.kind
            rows.append(
                CellRow(
                    space_id,
                    known.name if known is not None else None,
                    str(cell_id),
                    kind,
                    rev if type(rev) is int else -1,  # -1: not an integer (another program)
                    value,
                    problem,
                )
            )
    return rows
