"""Create and migrate a database file to its declared schema, additively (R13, R14).

Call order of :func:`ensure_schema` (inside the caller's write transaction, on the first write
for each distinct declared schema; reads never run DDL):

1. ``SAVEPOINT``; everything below is rolled back to it if anything raises, then re-raised.
2. Create the runtime tables ``_cf_meta`` and ``_cf_watermark`` (row ``(0, 0)``) if missing.
3. Read the stored version. Newer than the declared one → :class:`UnsupportedMigration`.
4. Stored and older than declared, with ``migrate`` → ``migrate(MigrationConnection, stored)``.
   If it raises, :class:`MigrationError` (``from`` the original) and nothing is written. A file
   with no stored version (new) never calls ``migrate``.
5. Compare declared and stored schema; any non-additive difference → ``UnsupportedMigration``
   listing every one. Otherwise create missing tables, ``ADD COLUMN`` missing columns, create
   missing indexes. An ``ALTER`` SQLite refuses (e.g. a non-constant default) is a difference too.
6. Store the declared version; ``RELEASE``.

Step 5's comparison (by what SQLite reports, and what it cannot compare) is described in
:mod:`sqlite_cells.schema._schema_diff`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from typing import Final

import apsw

from sqlite_cells.codec import (
    ClosedError,
    MigrationError,
    SchemaError,
    UnsupportedMigration,
)
from sqlite_cells.schema._schema import Schema, quote_ident
from sqlite_cells.schema._schema_diff import MigrationPlan, diff_of, plan_migration, rows_of
from sqlite_cells.sql import OP, QUOTED, STRING, WORD, Word, scan_sql

__all__ = ["MigrationConnection", "MigrationPlan", "ensure_schema", "plan_migration"]

_SAVEPOINT: Final = "_cf_ensure_schema"

_IN_TRANSACTION: Final = "migrate runs inside the runtime's transaction; raise to abort it"
_ATTACH: Final = "ATTACH/DETACH would change the files the connection sees"
_REFUSED: Final = {
    **dict.fromkeys(
        ("BEGIN", "COMMIT", "END", "ROLLBACK", "SAVEPOINT", "RELEASE"), _IN_TRANSACTION
    ),
    **dict.fromkeys(("ATTACH", "DETACH"), _ATTACH),
    "VACUUM": "VACUUM cannot run inside a transaction",
}
_SCHEMA_TABLES: Final = ("sqlite_master", "sqlite_schema")


class MigrationConnection:
    """The connection handed to ``migrate(conn, from_version)`` (R14): unguarded statements
    (DDL included) on the database file only, inside the runtime's transaction.

    On the write connection the file is attached (as ``_cf_db``) next to the space file
    (``main``), so ``execute`` rewrites and refuses, lexically, before SQLite sees the text:

    * ``CREATE TABLE/INDEX/VIEW/TRIGGER name`` gets ``name`` qualified with the file's schema (an
      unqualified CREATE would land in ``main``). The text is spliced, not regenerated: sqlglot
      regenerates SQLite DDL lossily (``INT PRIMARY KEY`` becomes ``INTEGER PRIMARY KEY``, a
      rowid alias; ``varchar`` becomes ``TEXT``) and cannot parse triggers.
    * ``PRAGMA name…`` and reads of ``sqlite_master``/``sqlite_schema`` are qualified the same way.
    * Other names resolve by SQLite's search order to the file, since ``main`` holds only
      ``_cf_*`` tables; hence names starting with ``_cf_`` (runtime tables) are refused.
    * Refused with :class:`MigrationError`: naming another schema (``main.t``, ``temp.t``),
      ``CREATE TEMP``, ATTACH/DETACH, transaction control, VACUUM, several statements at once.

    It is closed when ``migrate`` returns; using it later raises :class:`ClosedError`.
    """

    __slots__ = ("_closed", "_conn", "_database", "_db_id")

    def __init__(self, conn: apsw.Connection, database: str, db_id: str) -> None:
        self._conn, self._database, self._db_id, self._closed = conn, database, db_id, False

    def execute(
        self, sql: str, params: Sequence[object] | Mapping[str, object] = ()
    ) -> list[tuple[object, ...]]:
        """Run one statement on the database file and return all its rows."""
        if self._closed:
            raise ClosedError(
                f"database {self._db_id}: the migration connection was used after migrate() "
                f"returned; run every migration statement inside migrate()"
            )
        bindings = dict(params) if isinstance(params, Mapping) else tuple(params)
        return [tuple(row) for row in self._conn.execute(self._prepare(sql), bindings)]

    def close(self) -> None:
        self._closed = True

    def _refuse(self, sql: str, why: str) -> MigrationError:
        return MigrationError(self._db_id, f"migrate statement {sql!r} refused: {why}")

    def _prepare(self, sql: str) -> str:
        words = scan_sql(sql).words()
        if not words:
            raise self._refuse(sql, "it is empty")
        for i, tok in enumerate(words):
            # apsw.complete is sqlite3_complete: it knows a ';' inside CREATE TRIGGER … END.
            if tok.kind == OP and tok.text == ";" and apsw.complete(sql[: tok.start + 1]):
                if any(w.text != ";" for w in words[i + 1 :]):
                    raise self._refuse(sql, "it holds several statements; run one per call")
                break
        upper = [w.text.upper() if w.kind == WORD else w.text for w in words]
        if upper[0] in _REFUSED:
            raise self._refuse(sql, _REFUSED[upper[0]])
        own = self._database.lower()
        others = {n.lower() for n in self._conn.db_names()} | {"main", "temp"}
        others.discard(own)
        for i, tok in enumerate(words):
            name = tok.name.lower() if tok.kind in (WORD, QUOTED) else ""
            if name in others and upper[i + 1 : i + 2] == ["."]:
                raise self._refuse(sql, f"it names schema {tok.name!r}; leave names unqualified")
            if name.startswith("_cf_") and name != own:
                raise self._refuse(sql, f"{tok.name!r} is a runtime name (_cf_*)")
        if upper[0] == "CREATE":
            at = self._created_name(sql, words, upper)
        elif upper[0] == "PRAGMA":
            at = [words[1]] if len(words) > 1 and upper[2:3] != ["."] else []
        else:
            at = [
                tok
                for i, tok in enumerate(words)
                if tok.kind in (WORD, QUOTED)
                and tok.name.lower() in _SCHEMA_TABLES
                and (i == 0 or upper[i - 1] != ".")
            ]
        for tok in reversed(at):
            sql = f"{sql[: tok.start]}{quote_ident(self._database)}.{sql[tok.start :]}"
        return sql

    def _created_name(self, sql: str, words: list[Word], upper: list[str]) -> list[Word]:
        i = 1
        if upper[i : i + 1] in (["TEMP"], ["TEMPORARY"]):
            raise self._refuse(sql, "temporary objects do not belong in the database file")
        while upper[i : i + 1] in (["UNIQUE"], ["VIRTUAL"]):
            i += 1
        if upper[i : i + 1] not in (["TABLE"], ["INDEX"], ["VIEW"], ["TRIGGER"]):
            raise self._refuse(sql, "it is not CREATE TABLE/INDEX/VIEW/TRIGGER")
        i += 4 if upper[i + 1 : i + 4] == ["IF", "NOT", "EXISTS"] else 1
        if i >= len(words) or words[i].kind not in (WORD, QUOTED, STRING):
            return []  # incomplete: SQLite reports the syntax error
        return [] if upper[i + 1 : i + 2] == ["."] else [words[i]]


def _stored_version(conn: apsw.Connection, database: str, db_id: str) -> int | None:
    rows = rows_of(
        conn, f"SELECT value FROM {quote_ident(database)}._cf_meta WHERE key = 'version'"
    )
    if rows and not isinstance(rows[0][0], int):
        damaged = f"_cf_meta.version holds {rows[0][0]!r}, not an integer: the file is damaged"
        raise UnsupportedMigration(db_id, [damaged])
    return rows[0][0] if rows else None  # type: ignore[return-value]


def ensure_runtime_tables(conn: apsw.Connection, database: str) -> None:
    # IF NOT EXISTS, not a look-up first: another connection may have created them since this
    # connection last loaded the schema, and only a prepared statement re-reads it.
    db = quote_ident(database)
    conn.execute(f"CREATE TABLE IF NOT EXISTS {db}._cf_meta(key TEXT PRIMARY KEY, value)")
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS {db}._cf_watermark(id INTEGER PRIMARY KEY CHECK (id = 0), "
        "seq INTEGER NOT NULL)"
    )
    conn.execute(f"INSERT OR IGNORE INTO {db}._cf_watermark(id, seq) VALUES (0, 0)")
    # The file's own journal of recent changesets, to undo commits its space lost (R71). No
    # index: it holds only the newest commits, and an index would cost every write ~15%.
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS {db}._cf_changes("
        "seq INTEGER NOT NULL, changeset BLOB NOT NULL)"
    )


Migrate = Callable[[MigrationConnection, int], None]


def ensure_schema(
    conn: apsw.Connection,
    database: str,
    schema: Schema,
    *,
    db_id: str,
    version: int,
    migrate: Migrate | None,
) -> None:
    """Bring the file visible as ``database`` to ``schema`` at ``version`` (R13, R14).

    Runs inside the caller's open transaction (it only uses a SAVEPOINT); the call order is in the
    module docstring. Raises :class:`UnsupportedMigration` (every non-additive difference, or a
    stored version newer than ``version``) or :class:`MigrationError` (``migrate`` raised, as
    ``__cause__``); in both cases, and on any other error, nothing it did remains.
    """
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise SchemaError(f"database {db_id}: version={version!r} must be an integer >= 0")
    conn.execute(f"SAVEPOINT {_SAVEPOINT}")
    try:
        _ensure(conn, database, schema, db_id, version, migrate)
    except BaseException:
        # If SQLite already rolled the whole transaction back, the savepoint is gone too.
        with contextlib.suppress(apsw.Error):
            conn.execute(f"ROLLBACK TO {_SAVEPOINT}; RELEASE {_SAVEPOINT}")
        raise
    conn.execute(f"RELEASE {_SAVEPOINT}")


def _ensure(
    conn: apsw.Connection, database: str, schema: Schema, db_id: str, version: int,
    migrate: Migrate | None,
) -> None:  # fmt: skip
    ensure_runtime_tables(conn, database)
    stored = _stored_version(conn, database, db_id)
    if stored is not None and stored > version:
        newer = (
            f"the file is at version {stored}, newer than the declared version={version}: it "
            f"was written by a newer declaration; run that code, not an older one"
        )
        raise UnsupportedMigration(db_id, [newer])
    if stored is not None and stored < version and migrate is not None:
        handle = MigrationConnection(conn, database, db_id)
        try:
            migrate(handle, stored)
        except Exception as exc:
            raised = f"{type(exc).__name__}: {exc}; nothing was written"
            raise MigrationError(
                db_id, f"migrate(conn, from_version={stored}) raised {raised}"
            ) from exc
        finally:
            handle.close()
    statements, diffs = diff_of(conn, database, schema)
    if not diffs:
        for subject, sql in statements:
            try:
                conn.execute(sql)
            except apsw.Error as exc:  # e.g. ADD COLUMN with a non-constant default
                diffs.append(f"{subject}: SQLite refused {sql!r}: {exc}")
    if diffs:
        raise UnsupportedMigration(db_id, diffs)
    if stored != version:
        upsert = "ON CONFLICT(key) DO UPDATE SET value = excluded.value"
        meta = f"{quote_ident(database)}._cf_meta"
        conn.execute(f"INSERT INTO {meta}(key, value) VALUES ('version', ?) {upsert}", (version,))
