"""Write sets: what a commit changed in each database, from the changesets in its record (R51).

A ``sqlite`` op in a commit record carries the session changeset of its effect on the database
file (R70), so the write set is known for commits of this runtime, of another runtime and of
another process alike. In a changeset an INSERT or a DELETE changes every column of its table;
an UPDATE carries a new value only for the columns it changed (others are ``apsw.no_change``);
an upsert of an existing key is an UPDATE; foreign-key cascades appear as changes of their own.
A table captured by rowid (no explicit primary key) has the rowid as an extra first column.

A changeset leaves out generated columns: an UPDATE also changes each generated column whose
expression names a column it changed (directly or through another generated column), read from
the table's ``CREATE TABLE`` text in the file. It also leaves out the rowid of a table keyed
otherwise (``k text primary key``: its rows are named by ``k``), and an INSERT OR REPLACE of an
existing key, which deletes the row and inserts it again under a new rowid, is an UPDATE there:
so an UPDATE of such a table also changes its hidden rowid (:func:`with_hidden_rowid`), and
so does a statement that may move a row without changing a value (:func:`moving_target`).

A commit that changed the file's schema (its op says so: an additive migration or a ``migrate``
callback ran) changed what ``SELECT *`` and views return even where no row changed: its write
set is the whole database, like a drop's; so is an op's that deleted or changed a row whose
primary key is NULL, of which SQLite records nothing (its op says so too).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Collection, Iterable, Mapping
from pathlib import Path
from typing import Final

import apsw

from sqlite_cells.codec import Op, UnreadableRecord
from sqlite_cells.files import DROP_KIND, KIND, decode_op_body
from sqlite_cells.read._changescan import scan
from sqlite_cells.schema import read_table_text
from sqlite_cells.sql import QUOTED, STRING, WORD, fold_ascii, scan_sql, unquote

__all__ = [
    "ALL_COLUMNS",
    "HIDDEN_ROWID",
    "ColumnNames",
    "GeneratedColumns",
    "WriteSet",
    "affects",
    "generated_sources",
    "with_hidden_rowid",
    "write_sets",
]

ALL_COLUMNS: Final[frozenset[str]] = frozenset({"*"})  # an INSERT or DELETE: every column
# How SQLite's authorizer names, in a query's read set, a rowid that no column aliases
# (``rowid``, ``oid`` and ``_rowid_`` alike), ASCII-folded.
HIDDEN_ROWID: Final = "rowid"
WriteSet = dict[str, frozenset[str]]  # table (ASCII-folded) -> changed columns or ALL_COLUMNS
# (db id, table, changeset width, the file's schema cookie its commit ran at or None when its
# record does not say) -> the changeset's column names ("" for a rowid), or None
ColumnNames = Callable[[str, str, int, "int | None"], "list[str] | None"]
# (db id, table) -> each generated column (ASCII-folded), and a hidden rowid, with the stored
# columns its value is computed from; None when not known (then an UPDATE of the table changes
# every column)
GeneratedColumns = Callable[[str, str], "Mapping[str, frozenset[str]] | None"]


def _no_generated(_db_id: str, _table: str) -> Mapping[str, frozenset[str]]:
    return {}


def write_sets(
    ops: Iterable[Op],
    columns: ColumnNames,
    generated: GeneratedColumns = _no_generated,
    reshaped: Callable[[str], None] | None = None,
    versions: dict[str, int] | None = None,
    replacing: Callable[[str, str], bool] | None = None,
) -> dict[str, WriteSet | None]:
    """The write set of each database written by ``ops`` (keyed by database id). None for a
    database whose op carries no changeset (capture switched off), whose schema the commit
    changed, and for a dropped one: it changed, but not column by column, so everything that
    reads it re-runs. ``reshaped`` is told of each such database (its tables' shapes may have
    changed). ``versions`` holds the declared version each database's last op was written at
    (kept up to date here): an op that found its file at another version was preceded by a
    ``migrate`` no commit recorded (its write failed), whose changes no changeset holds — the
    whole database changed too. ``replacing(db_id, table)`` tells whether a constraint of the
    table resolves conflicts by REPLACE: then any INSERT into it may move a row (see
    :func:`moving_target`). A changeset that cannot be read changed the whole database too."""
    # The ops of one database are combined first: what one op did and a later one undid (a row
    # inserted, then deleted) is no change of the commit's. All at once (one change group): a
    # concatenation per op copied what the ones before had made, and a commit of 20,000 ops
    # took 25 s here.
    parts: dict[str, list[bytes] | None] = {}
    cookies: dict[str, int | None] = {}  # the schema cookie all ops of a database ran at
    targets: dict[str, set[str]] = {}  # the tables whose rows each database's ops may have moved
    for op in ops:
        if op.kind == DROP_KIND:  # the file goes away: whatever read it reads nothing now
            parts[op.target] = None
            continue
        if op.kind != KIND:
            continue
        try:
            body = decode_op_body(op)
        except UnreadableRecord:  # written by another program: nothing is known of it
            parts[op.target] = None
            continue
        target = moving_target(body.sql)
        if target is None and replacing is not None:
            inserted = inserted_table(body.sql)
            if inserted is not None and replacing(op.target, inserted):
                target = inserted
        if target is not None:
            targets.setdefault(op.target, set()).add(target)
        changeset = None if body.schema or body.unseen else body.changeset
        if versions is not None and body.version is not None:
            before = versions.get(op.target)
            versions[op.target] = body.version
            if before is not None and body.from_version not in (None, before):
                changeset = None  # migrated outside the log (see above)
        if cookies.setdefault(op.target, body.cookie) != body.cookie:
            changeset = None  # the schema changed between two ops of the commit
        held = parts.setdefault(op.target, [])
        if held is not None and changeset is not None:
            held.append(changeset)
        else:
            parts[op.target] = None  # (changed, but not column by column: see above)
    found: dict[str, WriteSet | None] = {}
    for target, changesets in parts.items():
        changeset = None if changesets is None else _combined(changesets)
        if changeset is None:
            found[target] = None
            if reshaped is not None:
                reshaped(target)
            continue
        into: WriteSet = {}
        if not _add_changes(into, changeset, target, cookies.get(target), columns, generated):
            found[target] = None
            continue
        moved = targets.get(target, set())
        if changesets is not None and len(changesets) > 1:
            moved = moved | _rows_inserted_or_deleted(changesets)
        _add_hidden_rowids(into, moved, target, generated)
        found[target] = into
    return found


def _rows_inserted_or_deleted(changesets: list[bytes]) -> set[str]:
    """The tables (ASCII-folded) in which one of ``changesets`` inserted or deleted a row. Ops
    combined cancel what they undo: a row deleted and inserted again by two ops of a commit,
    with the values it had, is no change at all in their combination — but in a table keyed
    otherwise it has a new hidden rowid (see :func:`moving_target`)."""
    found: set[str] = set()
    for changeset in changesets:
        try:
            tables = scan(changeset)
        except ValueError:
            continue  # (its combination is not read either: the whole database changed)
        found.update(
            fold_ascii(table) for table, (_w, indexes) in tables.items() if indexes is None
        )
    return found


def _combined(changesets: list[bytes]) -> bytes | None:
    """The changesets of one database's ops, in order, as one; None when one of them is not a
    changeset SQLite can read (another program wrote the record)."""
    if len(changesets) == 1:
        return changesets[0]
    group = apsw.ChangesetBuilder()  # type: ignore[no-untyped-call]  # (apsw types it so)
    try:
        for changeset in changesets:
            group.add(changeset)
        return group.output()
    except apsw.Error:
        return None
    finally:
        group.close()


def _add_changes(
    into: WriteSet,
    changeset: bytes,
    db_id: str,
    cookie: int | None,
    columns: ColumnNames,
    generated: GeneratedColumns,
) -> bool:
    """Add what ``changeset`` changed of each table to ``into``; False when the bytes are not a
    changeset SQLite wrote, or name a table the database does not have (then nothing is known
    column by column). The changeset is read in C (``_changescan.c``), off the GIL: its values
    are passed over, only their types tell — a one-row UPDATE read change by change with apsw's
    iterator held the scheduler thread ≈ 20 µs, an UPDATE of a million rows held it, and every
    subscriber of the runtime, ≈ 2 s."""
    try:
        tables = scan(changeset)
    except ValueError:
        return False
    for table, (width, indexes) in tables.items():
        computed = generated(db_id, table)
        if computed is None:
            # A table the file does not have (a name damaged in a record another program
            # wrote): what the changeset says changed is not known, so everything did.
            return False
        key = fold_ascii(table)
        if into.get(key) is ALL_COLUMNS:
            continue
        # (indexes None: a row inserted or deleted — every column — or a key changed: to one
        # SQLite finds equal, 'a' to 'A' under NOCASE, 1 to 1.0, the session records an INSERT
        # of the new spelling beside the UPDATE, which a DELETE of the row by a later op
        # cancels when the ops are combined — the row is gone and only the UPDATE is left;
        # such a key change counts as the INSERT or DELETE it stands for)
        found = (
            None
            if indexes is None
            else _named(db_id, table, indexes, width, cookie, columns, computed)
        )
        # (None: the shape is not known, be safe rather than exact)
        into[key] = ALL_COLUMNS if found is None else frozenset(into.get(key, frozenset()) | found)
    return True


def _named(
    db_id: str,
    table: str,
    indexes: Collection[int],
    width: int,
    cookie: int | None,
    columns: ColumnNames,
    computed: Mapping[str, frozenset[str]],
) -> frozenset[str] | None:
    """The columns (ASCII-folded) an UPDATE of ``table`` changed at ``indexes``, with each
    generated column (``computed``: see :data:`GeneratedColumns`) computed from one of them;
    None when the table's shape is not known."""
    names = columns(db_id, table, width, cookie)
    if names is None:
        return None
    found = {fold_ascii(names[i]) for i in indexes if names[i]}
    # Generated columns: each whose value is computed from a column the UPDATE changed.
    found.update(name for name, sources in computed.items() if not sources.isdisjoint(found))
    return frozenset(found)


def _add_hidden_rowids(
    into: WriteSet, tables: Iterable[str], db_id: str, generated: GeneratedColumns
) -> None:
    """The hidden rowid of each table keyed otherwise in ``tables`` (see :func:`moving_target`):
    such a statement may give a row a new rowid that its changeset does not show at all — a
    replace of an existing key with the values the row had, ``UPDATE t SET rowid = …`` — so a
    query reading that rowid re-runs after it (its rows may come out equal: then only ``seq``
    moves, R42). See :func:`with_hidden_rowid`."""
    for table in tables:
        written = into.get(table)
        if written is ALL_COLUMNS:
            continue
        computed = generated(db_id, table)
        if computed is not None and HIDDEN_ROWID in computed:
            into[table] = (written or frozenset()) | {HIDDEN_ROWID}


@functools.lru_cache(maxsize=1024)
def moving_target(sql: str) -> str | None:
    """The table (ASCII-folded) a statement writes when it may give a row a new rowid: an
    INSERT or REPLACE resolving conflicts by REPLACE (``REPLACE INTO``, ``INSERT OR REPLACE``),
    an UPDATE or an upsert's ``DO UPDATE`` that names a rowid, in any quoting (``SET rowid =
    …``, ``SET "oid" = …``); the table is the name after ``INTO`` or ``UPDATE [OR …]``, after any
    WITH list. None for any other statement. A word REPLACE or a rowid's name elsewhere in it
    (a ``replace()`` call, a WHERE) counts too: over, never under. (A plain INSERT moves a row
    too when the table's own constraint resolves conflicts by REPLACE: see
    :func:`inserted_table`.)"""
    folded = sql.lower()
    if "oid" not in folded and "rowid" not in folded and "replace" not in folded:
        return None  # (a statement's text is often new, and the scan not cached: none)
    statement = scan_sql(sql)
    verb, tokens, body, i = statement.verb, statement.tokens, statement.body, statement.verb_index
    words = {key for kind, key, _start, _end in tokens[i:body] if kind == WORD}
    names = {
        fold_ascii(unquote(sql[start:end])) if kind == QUOTED else key.lower()
        for kind, key, start, end in tokens[i:body]
        if kind in (WORD, QUOTED)
    }
    rowid = not names.isdisjoint(_ROWID_NAMES)
    if verb == "UPDATE":
        moves = rowid
    else:
        moves = verb in ("INSERT", "REPLACE") and ("REPLACE" in words or rowid)
    return _written_table(sql) if moves else None


@functools.lru_cache(maxsize=1024)
def inserted_table(sql: str) -> str | None:
    """The table (ASCII-folded) an INSERT or REPLACE statement writes; None for any other
    statement. A plain INSERT into a table with a constraint of its own that says ``ON
    CONFLICT REPLACE`` replaces a row whose key it repeats, which moves that row as ``REPLACE
    INTO`` does (see :func:`moving_target`)."""
    folded = sql.lower()
    if "insert" not in folded and "replace" not in folded:
        return None  # (no such statement lacks both words: no scan)
    return _written_table(sql) if scan_sql(sql).verb in ("INSERT", "REPLACE") else None


def _written_table(sql: str) -> str | None:
    """The table an INSERT, REPLACE or UPDATE writes: the name after ``INTO`` or ``UPDATE [OR
    …]``, after any WITH list."""
    statement = scan_sql(sql)
    verb, tokens, body = statement.verb, statement.tokens, statement.body
    i = statement.verb_index + 1
    if i < body and tokens[i][1] == "OR":
        i += 2
    if verb != "UPDATE" and i < body and tokens[i][1] == "INTO":
        i += 1
    if i >= body or tokens[i][0] not in (WORD, QUOTED, STRING):
        return None
    return fold_ascii(unquote(sql[tokens[i][2] : tokens[i][3]]))


_ROWID_NAMES: Final = frozenset({"rowid", "oid", "_rowid_"})


def generated_sources(
    create_sql: str | None, stored: Iterable[str], generated: Iterable[str]
) -> dict[str, frozenset[str]]:
    """Each generated column of a table (ASCII-folded) and the stored columns its value is
    computed from, read from the table's ``CREATE TABLE`` text: every column its expression
    names, through other generated columns too. A column whose expression cannot be read is
    computed from every stored column (a write then changes it whatever it changed)."""
    stored_set = frozenset(fold_ascii(name) for name in stored)
    pending = [fold_ascii(name) for name in generated]
    text = read_table_text(create_sql) if create_sql else None
    named: dict[str, set[str] | None] = {}
    for name in pending:
        column = text.columns.get(name) if text is not None else None
        if column is None or column.generated is None:
            named[name] = None
            continue
        words = scan_sql(column.generated.shown).words()
        named[name] = {fold_ascii(w.name) for w in words if w.kind in (WORD, QUOTED)}
    found: dict[str, frozenset[str]] = {}

    def sources(name: str, seen: frozenset[str]) -> frozenset[str]:
        held = found.get(name)
        if held is not None:
            return held
        names = named.get(name)
        if names is None or name in seen:  # unreadable (or a cycle SQLite would refuse)
            return stored_set
        result = frozenset(names & stored_set)
        for other in names & named.keys():
            result |= sources(other, seen | {name})
        return result

    for name in pending:
        found[name] = sources(name, frozenset())
    return found


def with_hidden_rowid(
    computed: Mapping[str, frozenset[str]], stored: Iterable[str]
) -> dict[str, frozenset[str]]:
    """``computed`` (see :func:`generated_sources`) for a table whose primary key is not its
    rowid: its hidden rowid counts as computed from every stored column. Its changeset names
    rows by the key, and an INSERT OR REPLACE (or a REPLACE conflict resolution) of an existing
    key gives the row a new rowid but shows as an UPDATE of the other columns it changed, which
    cannot be told from a plain UPDATE: so a query that reads the rowid re-runs after any
    UPDATE of the table that changed a value (R51). One that changed no value, or only the
    rowid (``UPDATE t SET rowid = …``), leaves no change in the changeset at all: its
    statement says it (:func:`moving_target`)."""
    every = frozenset(fold_ascii(name) for name in stored)
    found = dict(computed)
    found[HIDDEN_ROWID] = found.get(HIDDEN_ROWID, frozenset()) | every
    return found


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


# A table's stored column names in file order (what a changeset has), whether it has a primary
# key, the columns its changesets leave out with the stored columns each is computed from (its
# generated columns, see generated_sources, and a hidden rowid, see with_hidden_rowid), and
# whether a constraint of its own resolves conflicts by REPLACE.
TableShape = tuple[list[str], bool, Mapping[str, frozenset[str]], bool]


class TableColumns:
    """The changeset column names of database tables (:data:`ColumnNames`) and their generated
    columns (:meth:`generated`), from the file's own schema, cached by (database, table) with
    the file's schema cookie they were read at. A table captured by rowid (no explicit primary
    key) has the rowid as an extra first column. A changeset is named by the shape read at the
    cookie its op records: another cookie reads the shape again, and a file whose schema has
    changed since that commit names none of it (every column changed). Older records carry no
    cookie: then a changeset of another width than the cached shape reads it again."""

    def __init__(
        self,
        lookup: Callable[[str], Path],
        read: Callable[[Path, str], tuple[TableShape, int]],
    ) -> None:
        self._lookup = lookup
        self._read = read
        self._lock = threading.Lock()  # guards _cache
        # Keyed by database id (one file each), not by path: a str hashes in C, a Path in Python.
        self._cache: dict[str, dict[str, tuple[TableShape, int]]] = {}

    def _shape(self, db_id: str, table: str, fresh: bool) -> tuple[TableShape, int] | None:
        key = fold_ascii(table)
        if not fresh:
            with self._lock:
                shape = self._cache.get(db_id, {}).get(key)
            if shape is not None:
                return shape
        try:
            shape = self._read(self._lookup(db_id), table)
        except Exception:  # not declared here, or unreadable: the caller assumes the worst
            return None
        with self._lock:
            self._cache.setdefault(db_id, {})[key] = shape
        return shape

    def __call__(self, db_id: str, table: str, width: int, cookie: int | None) -> list[str] | None:
        for fresh in (False, True):
            read = self._shape(db_id, table, fresh)
            if read is None:
                return None
            (names, has_pk, _generated, _replaces), at = read
            if cookie is not None and at != cookie:
                continue  # read at another schema: read again, or the shape then is gone
            found = names if has_pk else ["", *names]
            if len(found) == width:
                return found
        return None

    def generated(self, db_id: str, table: str) -> Mapping[str, frozenset[str]] | None:
        """The generated columns of ``table`` and the stored columns each is computed from."""
        read = self._shape(db_id, table, False)
        return None if read is None else read[0][2]

    def replaces(self, db_id: str, table: str) -> bool:
        """Whether a constraint of ``table`` resolves conflicts by REPLACE (``k text primary
        key on conflict replace``); True when its shape cannot be read (over, never under)."""
        read = self._shape(db_id, table, False)
        return True if read is None else read[0][3]

    def forget(self, db_id: str) -> None:
        """The tables of ``db_id`` may have another shape now: read them again when needed."""
        with self._lock:
            self._cache.pop(db_id, None)
