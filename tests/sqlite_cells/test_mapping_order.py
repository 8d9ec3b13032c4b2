"""``INSERT INTO t VALUES (…)`` without a column list: each parameter targets the column SQLite
fills with it (R31) — the columns ``PRAGMA table_xinfo`` reports with ``hidden`` 0 (no generated
column), in the order the file has when the statement runs: migrated first (R13), so the stored
columns, then the declared ones it lacks, as ``ADD COLUMN`` appends them. The call maps with the
file as it is then; the commit checks that the link columns are still where the call found them
(another runtime, or a ``migrate``, may have changed the file between)."""

from __future__ import annotations

import threading
from pathlib import Path

import apsw
import pytest

import sqlite_cells as sc
from sqlite_cells._runtime import Space
from sqlite_cells.schema import declare_tables, fill_orders
from sqlite_cells.schema._migrate import MigrationConnection

GENERATED = {
    "g": sc.table(
        id="integer primary key",
        gen="integer generated always as (id * 2) virtual",
        a_cf_link=sc.cf_link(),
        body="text",
    ),
    "gs": sc.table(
        v="integer",
        gen="text generated always as ('x' || v) stored",
        a_cf_link=sc.cf_link(),
    ),
}
OLD = {"m": sc.table(id="integer primary key", body="text")}
NEW = {"m": sc.table(id="integer primary key", new_cf_link=sc.cf_link(), body="text")}
INSERT_M = "INSERT INTO m VALUES (?, ?, ?)"


def _rows(path: Path, sql: str) -> list[tuple[object, ...]]:
    conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        return [tuple(row) for row in conn.execute(sql)]
    finally:
        conn.close()


def _refused(space: Space, db: sc.SqliteDb, sql: str, params: list[object], match: str) -> None:
    rev = db.rev
    with pytest.raises(sc.LinkEncodeError, match=match), space.transact() as tx:
        try:
            db.exec(sql, params)
        finally:
            assert tx.ops == ()  # refused at the call: nothing recorded
    assert db.rev == rev


# -- generated columns are not filled --------------------------------------------------------


@pytest.mark.parametrize("file_exists", [False, True], ids=["no-file-yet", "file"])
def test_generated_columns_take_no_value(space: Space, file_exists: bool) -> None:
    alice = space.cell("alice")
    db = space.sqlite_database("gen", tables=GENERATED)
    if file_exists:
        with space.transact():
            db.exec("INSERT INTO g (id, body) VALUES (100, 'seed')")
    _refused(space, db, "INSERT INTO g VALUES (?, ?, ?)", [2, None, alice], "parameter 3 .*body")
    _refused(space, db, "INSERT INTO gs VALUES (?, ?)", [alice, None], "parameter 1 .*targets v")
    with space.transact():
        db.exec("INSERT INTO g VALUES (?, ?, ?)", [1, alice, "x"])
        db.exec_many("INSERT INTO gs VALUES (?, ?)", [[1, alice], [2, None]])
    assert _rows(db.path, "SELECT id, gen, a_cf_link, body FROM g WHERE id = 1") == [
        (1, 2, alice.link_str(), "x")
    ]
    assert _rows(db.path, "SELECT v, gen, a_cf_link FROM gs ORDER BY v") == [
        (1, "x1", alice.link_str()),
        (2, "x2", None),
    ]


# -- the file's order, not the declared one ----------------------------------------------------


def _old_file(space: Space) -> sc.SqliteDb:
    db = space.sqlite_database("m", tables=OLD)
    with space.transact():
        db.exec("INSERT INTO m (body) VALUES ('x')")
    return db


def test_a_write_that_migrates_maps_to_the_order_the_migration_leaves(space: Space) -> None:
    _old_file(space)
    alice = space.cell("alice")
    db = space.sqlite_database("m", tables=NEW)  # new_cf_link declared before body
    # Reads before the migration show the order it will leave (shadows, R41): writes use it too.
    assert list(db.read("SELECT * FROM m")[0]) == ["id", "body", "new_cf_link"]
    # The write migrates first (ADD COLUMN appends new_cf_link), then inserts: id, body, link.
    _refused(space, db, INSERT_M, [None, alice, "b"], "parameter 2 is a cell but targets body")
    with space.transact():
        db.exec(INSERT_M, [None, "b", alice])
    assert _rows(db.path, "SELECT name FROM pragma_table_info('m')") == [
        ("id",),
        ("body",),
        ("new_cf_link",),
    ]
    assert _rows(db.path, "SELECT id, body, new_cf_link FROM m ORDER BY id") == [
        (1, "x", None),
        (2, "b", alice.link_str()),
    ]
    assert list(db.read("SELECT * FROM m WHERE id = 2")[0]) == ["id", "body", "new_cf_link"]
    _refused(space, db, INSERT_M, [None, alice, "c"], "parameter 2 is a cell but targets body")


def test_a_fresh_runtime_maps_to_the_migrated_files_order(store: Path) -> None:
    with sc.Runtime(store, poll_interval=0.01) as rt:
        space = rt.space("demo")
        _old_file(space)
        with space.transact():
            space.sqlite_database("m", tables=NEW).exec("INSERT INTO m (body) VALUES ('y')")
    with sc.Runtime(store, poll_interval=0.01) as rt:
        space = rt.space("demo")
        alice = space.cell("alice")
        db = space.sqlite_database("m", tables=NEW)
        _refused(space, db, INSERT_M, [None, alice, None], "parameter 2 is a cell but targets body")
        with space.transact():
            db.exec(INSERT_M, [None, None, alice])
        assert db.read("SELECT body, new_cf_link FROM m WHERE id = 3") == [
            {"body": None, "new_cf_link": alice.link_str()}
        ]


# -- the file changed between the call and the commit ------------------------------------------


SWAPPED_OLD = {"s": sc.table(id="integer primary key", body="text")}
SWAPPED_A = {"s": sc.table(id="integer primary key", body="text", x_cf_link=sc.cf_link(), y="text")}
SWAPPED_B = {"s": sc.table(id="integer primary key", body="text", y="text", x_cf_link=sc.cf_link())}
INSERT_S = "INSERT INTO s VALUES (?, ?, ?, ?)"


def test_a_file_migrated_by_another_runtime_meanwhile_is_caught_at_commit(store: Path) -> None:
    with (
        sc.Runtime(store, poll_interval=0.01) as rt_a,
        sc.Runtime(store, poll_interval=0.01) as rt_b,
    ):
        space_a, space_b = rt_a.space("demo"), rt_b.space("demo")
        with space_a.transact():
            space_a.sqlite_database("s", tables=SWAPPED_OLD).exec("INSERT INTO s (body) VALUES (1)")
        alice = space_a.cell("alice")
        db_a = space_a.sqlite_database("s", tables=SWAPPED_A)
        db_b = space_b.sqlite_database("s", tables=SWAPPED_B)

        def migrate_in_b() -> None:
            with space_b.transact():
                db_b.exec("INSERT INTO s (body) VALUES ('by b')")

        # A maps its parameters to id, body, x_cf_link, y (its declared order for what the file
        # lacks); B migrates the file to id, body, y, x_cf_link before A commits.
        with (
            pytest.raises(sc.LinkEncodeError, match="was migrated since"),
            space_a.transact(),
        ):
            db_a.exec(INSERT_S, [None, "a", alice, "y"])
            thread = threading.Thread(target=migrate_in_b)
            thread.start()
            thread.join()
        assert _rows(db_a.path, "SELECT body, y, x_cf_link FROM s ORDER BY id") == [
            ("1", None, None),
            ("by b", None, None),
        ]
        # The next call reads the file again: the same statement now maps to B's order.
        _refused(space_a, db_a, INSERT_S, [None, "a", alice, "y"], "parameter 3 .* targets y")
        with space_a.transact():
            db_a.exec(INSERT_S, [None, "a", "y", alice])
        assert db_a.read("SELECT body, y, x_cf_link FROM s WHERE body = 'a'") == [
            {"body": "a", "y": "y", "x_cf_link": alice.link_str()}
        ]


def test_a_migrate_that_rebuilds_the_table_is_caught_at_commit(space: Space) -> None:
    _old_file(space)
    alice = space.cell("alice")

    def rebuild(conn: MigrationConnection, from_version: int) -> None:
        conn.execute("CREATE TABLE m2 (id integer primary key, new_cf_link text, body text)")
        conn.execute("INSERT INTO m2 (id, body) SELECT id, body FROM m")
        conn.execute("DROP TABLE m")
        conn.execute("ALTER TABLE m2 RENAME TO m")

    db = space.sqlite_database("m", tables=NEW, version=2, migrate=rebuild)
    # The call sees the file before migrate runs (id, body; new_cf_link to be appended) ...
    with pytest.raises(sc.LinkEncodeError, match="was migrated since"), space.transact():
        db.exec(INSERT_M, [None, "b", alice])
    # ... the commit ran migrate, which put new_cf_link second: nothing was written.
    assert _rows(db.path, "SELECT * FROM m") == [(1, None, "x")]
    with space.transact():
        db.exec(INSERT_M, [None, alice, "b"])  # mapped to the file as it is now
    assert _rows(db.path, "SELECT * FROM m ORDER BY id") == [
        (1, None, "x"),
        (2, alice.link_str(), "b"),
    ]


# -- the order itself --------------------------------------------------------------------------


def test_fill_orders_skip_generated_columns_stored_or_declared(tmp_path: Path) -> None:
    conn = apsw.Connection(str(tmp_path / "f.sqlite"))
    conn.execute(
        "CREATE TABLE t (id integer primary key, s text generated always as ('x') stored, "
        "body text)"
    )
    schema = declare_tables(
        {
            "t": sc.table(
                id="integer primary key",
                new_cf_link=sc.cf_link(),
                v="integer generated always as (id + 1) virtual",
                s="text generated always as ('x') stored",
                body="text",
                later="integer",
            ),
            "u": sc.table(a="integer", g="integer generated always as (a) virtual", b="text"),
        }
    )
    assert fill_orders(conn, "main", schema, ["T", "u", "undeclared"]) == {
        "t": ("id", "body", "new_cf_link", "later"),
        "u": ("a", "b"),
    }
    assert fill_orders(None, "main", schema, ["t"]) == {"t": ("id", "new_cf_link", "body", "later")}
