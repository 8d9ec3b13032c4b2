"""Keep a read connection's shadows of not-yet-migrated tables and columns in step with its file
(R14, R41).

:func:`sync_shadows` runs at the start of each read transaction of a database cell's file. A
connection remembers the schema fingerprints its file was found complete for (additive
migrations never take a column away again, so those reads cost a set look-up and nothing
more). Otherwise it plans the ``temp`` objects of :func:`plan_shadows`, creates them, and keeps
them for the next reads as long as neither ``main``'s nor ``temp``'s schema cookie moves:
``main``'s moves when the file is migrated (the shadows then go, and the real columns are read),
``temp``'s when a rolled-back read transaction took the shadows with it.

A file whose stored version is newer than the declared one (a newer declaration, perhaps in
another process, migrated it) gets no shadows: what it lacks may have been renamed or dropped on
purpose, and reading it as NULL or as empty would serve made-up rows. It reads as it is, and a
statement naming what it lacks fails saying both versions (see ``_reader``).

The shadows are the runtime's own objects: they are created outside the gate's user state, and
a user statement reads them under :func:`allowing_shadows`, which lets it read the shadowing
``temp`` names and the one-row default tables (``_cf_shadow_<n>``, which no statement can name:
the guard refuses ``_cf_`` names). The read set of a statement prepared against shadows names
the declared columns it reads, taken from the declared schema, not every stored column a view
selects, and the stored columns the declaration does not name that it reaches on the file (see
``_reader``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Final

import apsw

from sqlite_cells.schema import (
    Declaration,
    Shadows,
    SourceKind,
    plan_shadows,
    quote_ident,
    version_sql,
)
from sqlite_cells.sql import Authorizer, fold_ascii

if TYPE_CHECKING:
    from sqlite_cells.read._pool import PooledConnection

__all__ = [
    "ShadowState",
    "allowing_shadows",
    "copied_shadows",
    "drop_shadows",
    "forget_complete",
    "newer_version",
    "sync_shadows",
]

_COMPLETE_LIMIT: Final = 64
_READ: Final = apsw.SQLITE_READ
_OK: Final = apsw.SQLITE_OK


@dataclass(frozen=True, slots=True)
class ShadowState:
    """The shadows a connection holds: for which schema, at which (main, temp) schema cookies,
    and the read policy that lets user statements read them."""

    fingerprint: str
    cookies: tuple[int, int]
    shadows: Shadows
    policy: Authorizer


def _cookies(cursor: apsw.Cursor) -> tuple[int, int]:
    main = cursor.execute("PRAGMA main.schema_version").fetchall()[0][0]
    temp = cursor.execute("PRAGMA temp.schema_version").fetchall()[0][0]
    return int(str(main)), int(str(temp))


def sync_shadows(
    pooled: PooledConnection, decl: Declaration, cursor: apsw.Cursor, policy: Authorizer
) -> Authorizer | None:
    """Make ``pooled``'s file read as ``decl``'s schema in the read transaction open on
    ``cursor``'s connection; return the read policy that also allows the shadows, or None when
    the file needs none (then ``policy`` applies as it is)."""
    schema = decl.schema
    if schema is None or decl.kind is not SourceKind.CELL:
        return None
    fingerprint = schema.fingerprint
    state = pooled.shadow
    if state is None and fingerprint in pooled.complete:
        return None
    if state is not None:
        if state.fingerprint == fingerprint and _cookies(cursor) == state.cookies:
            return state.policy
        drop_shadows(pooled, cursor)
    if newer_version(cursor, decl) is not None:
        # Another declaration, newer than this one, migrated the file: what it lacks of this
        # declaration was renamed or dropped on purpose, so it is not made up (see
        # newer_version); the file reads as it is.
        return None
    shadows = plan_shadows(pooled.conn, schema)
    if not shadows:
        if len(pooled.complete) >= _COMPLETE_LIMIT:
            pooled.complete.clear()
        pooled.complete.add(fingerprint)
        return None
    try:
        for sql in shadows.create:
            cursor.execute(sql).fetchall()
    except BaseException:
        _clear(cursor)
        raise
    made = ShadowState(fingerprint, _cookies(cursor), shadows, allowing_shadows(policy, shadows))
    pooled.shadow = made
    return made.policy


_VERSION_SQL: Final = version_sql("main")


def newer_version(cursor: apsw.Cursor, decl: Declaration) -> int | None:
    """The version stored in the file open on ``cursor``'s connection (in a read transaction)
    when it is newer than ``decl``'s, else None. Such a file was migrated by a newer
    declaration: a column or table of ``decl`` it lacks may have been renamed or dropped
    there, so no shadow stands in for it (it would read as NULL, or as empty, with no error);
    a statement naming it fails, saying both versions (R14, R41)."""
    try:
        rows = cursor.execute(_VERSION_SQL).fetchall()
    except apsw.SQLError:
        return None  # no _cf_meta: a file no runtime wrote
    stored = rows[0][0] if rows else None
    if isinstance(stored, int) and not isinstance(stored, bool) and stored > decl.version:
        return stored
    return None


def _clear(cursor: apsw.Cursor) -> None:
    """Drop every table and view of ``temp``: a read connection holds only its shadows there."""
    found = cursor.execute(
        "SELECT type, name FROM temp.sqlite_schema WHERE type IN ('view', 'table') "
        "ORDER BY type = 'table'"
    ).fetchall()
    for kind, name in found:
        cursor.execute(
            f"DROP {'VIEW' if kind == 'view' else 'TABLE'} temp.{quote_ident(str(name))}"
        )


def drop_shadows(pooled: PooledConnection, cursor: apsw.Cursor) -> None:
    """Remove the connection's shadows (whatever a rollback left of them). If that fails, the
    state stays and the next read tries again."""
    _clear(cursor)
    pooled.shadow = None


@contextmanager
def copied_shadows(pooled: PooledConnection) -> Iterator[None]:
    """For one statement that names the ``rowid`` of a shadowing view: the views become
    temporary tables holding a copy of the stored rows, rowids kept, and views again after."""
    state = pooled.shadow
    if state is None or not state.shadows.copy:
        yield
        return
    cursor = pooled.conn.cursor()
    try:
        for sql in state.shadows.copy:
            cursor.execute(sql).fetchall()
        yield
    finally:
        try:
            for sql in state.shadows.uncopy:
                cursor.execute(sql).fetchall()
            pooled.shadow = replace(state, cookies=_cookies(cursor))
        except apsw.Error:
            # Half copied (an interrupt, a lock): the next read sees other cookies, clears
            # the temp schema and makes the shadows again.
            pooled.shadow = replace(state, cookies=(-1, -1))


def forget_complete(pooled: PooledConnection, decl: Declaration) -> None:
    """The file turned out to lack what it had (a ``migrate`` of another declaration removed
    it): check it again at the next :func:`sync_shadows`."""
    if decl.schema is not None:
        pooled.complete.discard(decl.schema.fingerprint)


def allowing_shadows(inner: Authorizer, shadows: Shadows) -> Authorizer:
    """``inner``, also allowing reads of the shadowing ``temp`` objects: the tables and views
    named like declared tables, and the default tables only from inside those views (or with no
    column named: SQLite reports so the flattened ``count(*)`` of a view)."""
    tables, helpers = shadows.tables, shadows.helpers

    def authorize(
        action: int, a: str | None, b: str | None, database: str | None, view: str | None
    ) -> int:
        if action == _READ and database == "temp" and a is not None:
            name = fold_ascii(a)
            if name in tables:
                return _OK
            if name in helpers and (not b or (view is not None and fold_ascii(view) in tables)):
                return _OK
        return inner(action, a, b, database, view)

    return authorize
