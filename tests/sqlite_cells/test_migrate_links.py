"""What a ``migrate`` callback leaves in link columns (R14, R31): NULL or a well-formed link in
its canonical form, else the migration fails with nothing written."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import apsw
import pytest

import sqlite_cells as sc
from sqlite_cells._runtime import Space
from sqlite_cells.schema._migrate import MigrationConnection

V1 = {"t": sc.table(id="integer primary key", a_cf_link=sc.cf_link())}


def raw(path: Path, sql: str) -> list[tuple[object, ...]]:
    conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        return [tuple(row) for row in conn.execute(sql)]
    finally:
        conn.close()


def stored_version(path: Path) -> object:
    return raw(path, "SELECT value FROM _cf_meta WHERE key = 'version'")[0][0]


def statements(*sql: str) -> Callable[[MigrationConnection, int], None]:
    def migrate(conn: MigrationConnection, _from: int) -> None:
        for statement in sql:
            conn.execute(statement)

    return migrate


def write(space: Space, call: Callable[[], None]) -> None:
    with space.transact():
        call()


def linked_db(space: Space) -> tuple[sc.SqliteDb, str]:
    """A database at version 1 whose one row links to a cell; the link's text."""
    target = space.cell("target")
    db = space.sqlite_database("m", tables=V1, version=1)
    with space.transact():
        db.exec("INSERT INTO t (id, a_cf_link) VALUES (1, ?)", [target])
    return db, target.link_str()


@pytest.mark.parametrize(
    ("sql", "problem", "shown"),
    [
        ("UPDATE t SET a_cf_link = 'junk'", "text that is not a link", "'junk'"),
        ("UPDATE t SET a_cf_link = ' ' || a_cf_link", "not in its canonical form", "' {"),
        ("INSERT INTO t (id, a_cf_link) VALUES (2, 42)", "text that is not a link", "'42'"),
        ("UPDATE t SET a_cf_link = x'00ff'", "a value of type blob", "b'\\x00\\xff'"),
        (
            "UPDATE t SET a_cf_link = CAST(x'ff' AS TEXT)",
            "text that is not a link",
            "b'\\xff', not UTF-8",
        ),
    ],
)
def test_migrate_leaving_a_bad_value_in_a_link_column_fails(
    space: Space, sql: str, problem: str, shown: str
) -> None:
    db, link = linked_db(space)
    before = raw(db.path, "SELECT id, a_cf_link FROM t")
    db2 = space.sqlite_database("m", tables=V1, version=2, migrate=statements(sql))
    with pytest.raises(sc.MigrationError) as caught:
        write(space, lambda: db2.exec("INSERT INTO t (id) VALUES (3)"))
    message = str(caught.value)
    assert "link column t.a_cf_link" in message and problem in message and shown in message
    cause = caught.value.__cause__
    assert isinstance(cause, sc.LinkEncodeError)
    assert "t.a_cf_link" in str(cause) and shown in str(cause)
    # Nothing written: rows, version and the write all as before the migration.
    assert raw(db.path, "SELECT id, a_cf_link FROM t") == before == [(1, link)]
    assert stored_version(db.path) == 1
    assert db.rev == 1


def test_a_renamed_text_column_is_checked_as_a_link_column(space: Space) -> None:
    db = space.sqlite_database("m", tables={"t": sc.table(id="integer primary key", author="text")})
    with space.transact():
        db.exec("INSERT INTO t (author) VALUES ('alice')")
    renamed = {"t": sc.table(id="integer primary key", author_cf_link=sc.cf_link())}
    migrate = statements("ALTER TABLE t RENAME COLUMN author TO author_cf_link")
    db2 = space.sqlite_database("m", tables=renamed, version=2, migrate=migrate)
    with pytest.raises(sc.MigrationError, match=r"t\.author_cf_link holds text that is not a link"):
        write(space, lambda: db2.exec("INSERT INTO t (author_cf_link) VALUES (NULL)"))
    assert raw(db.path, "SELECT author FROM t") == [("alice",)]
    assert stored_version(db.path) == 1


def test_a_link_column_added_with_a_default_is_a_difference(space: Space) -> None:
    db, _ = linked_db(space)
    declared = {
        "t": sc.table(id="integer primary key", a_cf_link=sc.cf_link(), b_cf_link=sc.cf_link())
    }
    migrate = statements("ALTER TABLE t ADD COLUMN b_cf_link TEXT DEFAULT 'junk'")
    db2 = space.sqlite_database("m", tables=declared, version=2, migrate=migrate)
    with pytest.raises(sc.MigrationError, match="b_cf_link: default 'junk'"):
        write(space, lambda: db2.exec("INSERT INTO t (id) VALUES (2)"))
    assert stored_version(db.path) == 1


def test_links_and_nulls_a_migration_leaves_pass(space: Space) -> None:
    db, link = linked_db(space)
    other = space.cell("other").link_str()
    declared = {"t": sc.table(id="integer primary key", a_cf_link=sc.cf_link(), n="integer")}
    migrate = statements(
        "ALTER TABLE t ADD COLUMN n integer",
        "INSERT INTO t (id, a_cf_link) VALUES (2, NULL)",
        f"INSERT INTO t (id, a_cf_link) SELECT 3, '{other}'",
    )
    db2 = space.sqlite_database("m", tables=declared, version=2, migrate=migrate)
    with space.transact():
        db2.exec("INSERT INTO t (id) VALUES (4)")
    assert raw(db.path, "SELECT id, a_cf_link FROM t ORDER BY id") == [
        (1, link),
        (2, None),
        (3, other),
        (4, None),
    ]
    assert stored_version(db.path) == 2


def test_a_rebuilt_table_is_checked_too(space: Space) -> None:
    """A table rebuilt under the same name (create, copy, drop, rename) is read in full."""
    db, link = linked_db(space)
    migrate = statements(
        "CREATE TABLE t2 (id integer primary key, a_cf_link TEXT)",
        "INSERT INTO t2 SELECT id, upper(a_cf_link) FROM t",
        "DROP TABLE t",
        "ALTER TABLE t2 RENAME TO t",
    )
    db2 = space.sqlite_database("m", tables=V1, version=2, migrate=migrate)
    with pytest.raises(sc.MigrationError, match=r"link column t\.a_cf_link holds text that is not"):
        write(space, lambda: db2.exec("INSERT INTO t (id) VALUES (2)"))
    assert raw(db.path, "SELECT id, a_cf_link FROM t") == [(1, link)]


@pytest.mark.parametrize("params", ["list", "dict"])
def test_a_cell_bound_in_a_migrate_statement_says_to_bind_its_link_text(
    space: Space, params: str
) -> None:
    """A Cell among a migrate statement's parameters is refused saying how a migration stores a
    link (its text, cell.link_str()), not only that its type cannot be bound; nothing is
    written; the statement with the advice taken runs."""
    db, link = linked_db(space)
    other = space.cell("other")
    sql = (
        "INSERT INTO t (id, a_cf_link) VALUES (2, :v)"
        if params == "dict"
        else ("INSERT INTO t (id, a_cf_link) VALUES (2, ?)")
    )

    def bind(value: object) -> Callable[[MigrationConnection, int], None]:
        def migrate(conn: MigrationConnection, _from: int) -> None:
            conn.execute(sql, {"v": value} if params == "dict" else [value])

        return migrate

    db2 = space.sqlite_database("m", tables=V1, version=2, migrate=bind(other))
    with pytest.raises(sc.MigrationError) as caught:
        write(space, lambda: db2.exec("INSERT INTO t (id) VALUES (3)"))
    message = str(caught.value)
    shown = "'v'" if params == "dict" else "1"
    assert f"parameter {shown} is a Cell ({other.id!r})" in message
    assert "cell.link_str()" in message and "Bad binding" not in message
    assert raw(db.path, "SELECT id, a_cf_link FROM t") == [(1, link)]
    assert stored_version(db.path) == 1 and db.rev == 1

    db3 = space.sqlite_database("m", tables=V1, version=2, migrate=bind(other.link_str()))
    write(space, lambda: db3.exec("INSERT INTO t (id) VALUES (3)"))
    assert raw(db.path, "SELECT id, a_cf_link FROM t ORDER BY id") == [
        (1, link),
        (2, other.link_str()),
        (3, None),
    ]
    assert stored_version(db.path) == 2
