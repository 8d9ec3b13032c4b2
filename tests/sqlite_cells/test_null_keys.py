"""A write that leaves a row whose primary key is NULL is refused at commit (R51, R70, R71, R31).

SQLite's session extension records no change to such a row, so the commit's changeset, which
live queries, replay, inversion and the link checks all read, would not have it."""

from __future__ import annotations

import shutil
from pathlib import Path

import apsw
import pytest

import sqlite_cells as sc
from sqlite_cells._runtime import Space
from sqlite_cells.files import decode_op_body
from sqlite_cells.runtime._space_file import SpaceFile
from sqlite_cells.write._keys import before_write, check_null_keys, nullable_keys
from sqlite_cells.write._links import link_columns

from .._files import copy_file

KV = {"kv": sc.table(k="text primary key", who_cf_link=sc.cf_link(), v="text")}


@pytest.fixture
def kv(space: Space) -> sc.SqliteDb:
    db = space.sqlite_database("kv", tables=KV)
    with space.transact():
        db.exec("INSERT INTO kv (k, v) VALUES ('a', '1')")
    return db


def _rows(db: sc.SqliteDb) -> list[dict[str, object]]:
    return db.read("SELECT k, v FROM kv ORDER BY v")


def _refused(space: Space, db: sc.SqliteDb, sql: str, params: object = None) -> sc.ExecError:
    with pytest.raises(sc.ExecError) as info, space.transact():
        db.exec(sql, params)
    return info.value


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO kv (k, v) VALUES (NULL, '2')",
        "INSERT INTO kv (v) VALUES ('2')",  # the key's default is NULL
        "UPDATE kv SET k = NULL WHERE k = 'a'",  # the changeset would say the row was deleted
        "INSERT INTO kv (k, v) SELECT NULLIF(k, k), v || '!' FROM kv",
    ],
)
def test_a_write_leaving_a_null_key_is_refused_and_writes_nothing(
    space: Space, kv: sc.SqliteDb, sql: str
) -> None:
    counter = space.cell("counter", default=0)
    with pytest.raises(sc.ExecError) as info, space.transact():
        counter.set(1)
        kv.exec("INSERT INTO kv (k, v) VALUES ('b', '3')")
        kv.exec(sql)
    error = info.value
    assert error.db_id == kv.id and error.sql == sql
    assert error.sqlite_error is None
    message = str(error)
    assert "primary key (kv.k) is NULL" in message
    assert "give the key a value, or declare it NOT NULL" in message
    assert "rolled back" in message
    # Nothing of the transaction was written: not the row before it, not the cell.
    assert _rows(kv) == [{"k": "a", "v": "1"}]
    assert counter.get() == 0 and kv.rev == 1
    # The runtime goes on as after any refused write.
    with space.transact() as tx:
        kv.exec("INSERT INTO kv (k, v) VALUES ('b', '2')")
    assert tx.seq == 2 and kv.rev == 2
    assert _rows(kv) == [{"k": "a", "v": "1"}, {"k": "b", "v": "2"}]


@pytest.mark.parametrize(
    ("spec", "refused"),
    [
        ("text primary key", True),
        ("int primary key", True),  # not the rowid's alias: only INTEGER is
        ("integer primary key desc", True),  # not the rowid's alias either
        ("integer primary key", False),  # the rowid: NULL takes the next rowid
        ("text", False),  # no key: the session captures the row by its rowid
    ],
)
def test_which_keys_may_hold_null(space: Space, spec: str, refused: bool) -> None:
    db = space.sqlite_database("t", tables={"t": sc.table(k=spec, v="text")})
    with space.transact():
        db.exec("INSERT INTO t (k, v) VALUES (1, 'a')")
    if refused:
        assert "primary key (t.k) is NULL" in str(
            _refused(space, db, "INSERT INTO t (k, v) VALUES (NULL, 'b')")
        )
        assert db.read("SELECT v FROM t") == [{"v": "a"}]
    else:
        with space.transact():
            db.exec("INSERT INTO t (k, v) VALUES (NULL, 'b')")
        assert db.read("SELECT v FROM t ORDER BY v") == [{"v": "a"}, {"v": "b"}]


def test_a_not_null_key_is_refused_by_sqlite_itself(space: Space) -> None:
    db = space.sqlite_database("t", tables={"t": sc.table(k="text primary key not null")})
    error = _refused(space, db, "INSERT INTO t (k) VALUES (NULL)")
    assert error.sqlite_code == apsw.SQLITE_CONSTRAINT_NOTNULL


def test_exec_many_with_one_null_key_writes_none_of_the_rows(space: Space, kv: sc.SqliteDb) -> None:
    rows = [("b", "2"), (None, "3"), ("c", "4")]
    leaves = r"leave 1 row\(s\) whose primary key"
    with pytest.raises(sc.ExecError, match=leaves), space.transact():
        kv.exec_many("INSERT INTO kv (k, v) VALUES (?, ?)", rows)
    assert _rows(kv) == [{"k": "a", "v": "1"}]


def test_a_live_query_shows_what_is_stored(rt: sc.Runtime, space: Space, kv: sc.SqliteDb) -> None:
    count = kv.query("SELECT count(*) AS n FROM kv")
    rt.settle(timeout=10)
    assert count.get().result == [{"n": 1}]
    _refused(space, kv, "INSERT INTO kv (k, v) VALUES (NULL, '2')")
    with space.transact() as tx:
        kv.exec("INSERT INTO kv (k, v) VALUES ('b', '2')")
    rt.settle(timeout=10)
    assert count.get().result == kv.read("SELECT count(*) AS n FROM kv") == [{"n": 2}]
    assert count.get().seq == tx.seq


def test_a_database_restored_behind_its_space_is_replayed_to_what_was_served(
    store: Path, tmp_path: Path
) -> None:
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("kv", tables=KV)
        with space.transact():
            db.exec("INSERT INTO kv (k, v) VALUES ('a', '1')")
        kept = tmp_path / "kept"
        kept.mkdir()
        # The file before the next commits, copied through a kept descriptor (the runtime has
        # it open), its metadata too (as shutil.copy2 would).
        copy_file(db.path, kept / db.path.name)
        shutil.copystat(db.path, kept / db.path.name)
        _refused(space, db, "INSERT INTO kv (k, v) VALUES (NULL, '2')")
        with space.transact():
            db.exec("INSERT INTO kv (k, v) VALUES ('b', '3')")
        served = _rows(db)
    shutil.copy2(kept / db.path.name, db.path)
    with sc.Runtime(store) as rt:
        db = rt.space("demo").sqlite_database("kv", tables=KV)
        assert _rows(db) == served == [{"k": "a", "v": "1"}, {"k": "b", "v": "3"}]


def test_r31_holds_for_a_row_with_a_null_key(space: Space, kv: sc.SqliteDb) -> None:
    """The changeset cannot show the link checks such a row: they read it from the file."""
    not_a_link = r"text that is not a link .* kv\.who_cf_link"
    with pytest.raises(sc.LinkEncodeError, match=not_a_link), space.transact():
        kv.exec("INSERT INTO kv (k, who_cf_link) VALUES (NULL, 'garbage')")
    with pytest.raises(sc.ExecError, match="not valid UTF-8"), space.transact():
        kv.exec("INSERT INTO kv (k, v) VALUES (NULL, CAST(x'fffe41' AS TEXT))")
    # A well-formed link: the key is what is wrong.
    cell = space.cell("c", default=1)
    error = _refused(space, kv, "INSERT INTO kv (k, who_cf_link) VALUES (NULL, ?)", [cell])
    assert "primary key (kv.k) is NULL" in str(error)
    assert _rows(kv) == [{"k": "a", "v": "1"}]


def _add_null_key_rows(db: sc.SqliteDb, *values: str) -> None:
    """NULL-key rows as an earlier version of the runtime let a write leave them."""
    conn = apsw.Connection(str(db.path))
    try:
        conn.setbusytimeout(5000)
        for value in values:
            conn.execute("INSERT INTO kv (k, v) VALUES (NULL, ?)", (value,))
    finally:
        conn.close()


def test_null_key_rows_from_before_can_be_kept_and_fixed(
    rt: sc.Runtime, space: Space, kv: sc.SqliteDb
) -> None:
    _add_null_key_rows(kv, "old1", "old2", "old3")
    # Writes that leave them as they are go through.
    with space.transact():
        kv.exec("INSERT INTO kv (k, v) VALUES ('b', '2')")
        kv.exec("UPDATE kv SET v = '1!' WHERE k = 'a'")
    # Changing one without giving it a key, or adding one, is refused.
    _refused(space, kv, "UPDATE kv SET v = 'new' WHERE v = 'old1'")
    error = _refused(space, kv, "INSERT INTO kv (k, v) VALUES (NULL, 'old1')")
    assert "leave 1 row(s)" in str(error)
    # Giving one a key, or deleting one, fixes it.
    names = kv.query("SELECT k FROM kv WHERE k IS NOT NULL ORDER BY k")
    rt.settle(timeout=10)
    with space.transact():
        kv.exec("UPDATE kv SET k = 'c' WHERE v = 'old1'")
        kv.exec("DELETE FROM kv WHERE v = 'old2'")
    rt.settle(timeout=10)
    assert names.get().result == [{"k": "a"}, {"k": "b"}, {"k": "c"}]
    assert _rows(kv) == [
        {"k": "a", "v": "1!"},
        {"k": "b", "v": "2"},
        {"k": "c", "v": "old1"},
        {"k": None, "v": "old3"},
    ]


def _scratch(ddl: str) -> apsw.Connection:
    conn = apsw.Connection(":memory:")
    conn.execute(ddl)
    return conn


def test_probed_tables_are_those_whose_key_may_hold_null() -> None:
    """Most schemas have none, and their writes run no probe at all."""
    conn = _scratch(
        "CREATE TABLE alias(id INTEGER PRIMARY KEY, v); CREATE TABLE nokey(v);"
        "CREATE TABLE nn(k TEXT PRIMARY KEY NOT NULL, v);"
        "CREATE TABLE wr(k TEXT PRIMARY KEY, v) WITHOUT ROWID;"
        "CREATE TABLE txt(k TEXT PRIMARY KEY, v); CREATE TABLE desc_(k INTEGER PRIMARY KEY DESC);"
        "CREATE TABLE pair(a, b NOT NULL, c, v, PRIMARY KEY (c, a, b))"
    )
    tables = ["alias", "nokey", "nn", "wr", "txt", "desc_", "pair"]
    found = {probe.table: probe.columns for probe in nullable_keys(conn, "main", tables)}
    assert found == {"txt": ("k",), "desc_": ("k",), "pair": ("c", "a")}
    assert nullable_keys(conn, "main", ["alias", "nokey", "nn", "wr"]) == ()


@pytest.mark.parametrize(
    ("row", "refused"), [((None, 1, 1), True), ((1, 1, None), True), ((1, 1, 1), False)]
)
def test_a_composite_key_is_checked_on_each_of_its_columns(
    row: tuple[object, ...], refused: bool
) -> None:
    """Declarations cannot make a composite key (each spec is one column): checked here on a
    file made by hand, as the write path would."""
    conn = _scratch("CREATE TABLE pair(a, b NOT NULL, c, a_cf_link, PRIMARY KEY (a, b, c))")
    probes = nullable_keys(conn, "main", ["pair"])
    links = link_columns(conn, "main", ["pair"])
    before = before_write(conn, probes)
    conn.execute("INSERT INTO pair (a, b, c) VALUES (?, ?, ?)", row)
    if refused:
        with pytest.raises(sc.ExecError, match=r"primary key \(pair\.a, pair\.c\) is NULL"):
            check_null_keys(conn, probes, before, links, db_id="d", sql="s")
    else:
        check_null_keys(conn, probes, before, links, db_id="d", sql="s")
    conn.execute("INSERT INTO pair (a, b, c, a_cf_link) VALUES (NULL, 2, 2, 'junk')")
    with pytest.raises(sc.LinkEncodeError, match=r"pair\.a_cf_link"):
        check_null_keys(conn, probes, before, links, db_id="d", sql="s")


def test_deleting_a_null_key_row_alone_re_runs_what_reads_the_table(
    rt: sc.Runtime, space: Space, kv: sc.SqliteDb
) -> None:
    """SQLite's session records nothing of a row whose key is NULL, deleted or given a key: the
    commit's changeset is empty. Its op says so, and its write set is the whole database, so
    live queries of the table re-run (R51) instead of keeping the row for good."""
    _add_null_key_rows(kv, "old1", "old2")
    rows = kv.query("SELECT k, v FROM kv ORDER BY v")
    count = kv.query("SELECT count(*) AS n FROM kv")
    rt.settle(timeout=10)
    assert count.get().result == [{"n": 3}]
    with space.transact():
        kv.exec("DELETE FROM kv WHERE v = 'old1'")
    rt.settle(timeout=10)
    assert count.get().result == [{"n": 2}]
    assert rows.get().result == [{"k": "a", "v": "1"}, {"k": None, "v": "old2"}]
    with space.transact():
        kv.exec("UPDATE kv SET k = 'b' WHERE v = 'old2'")
    rt.settle(timeout=10)
    assert rows.get().result == [{"k": "a", "v": "1"}, {"k": "b", "v": "old2"}]
    assert count.get().result == [{"n": 2}]
    # A write that leaves them as they are still re-runs only what it changed: its op says
    # nothing unseen.
    _add_null_key_rows(kv, "old3")
    with space.transact():
        kv.exec("UPDATE kv SET v = 'a2' WHERE k = 'a'")
    conn = apsw.Connection(str(space.file.path), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        unseen = [decode_op_body(op).unseen for _, op in SpaceFile.ops_for(conn, kv.id, 0, 10)]
    finally:
        conn.close()
    # The first write, the delete, the key given, the last write.
    assert unseen == [False, True, True, False]
