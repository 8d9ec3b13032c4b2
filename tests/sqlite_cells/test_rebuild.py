"""R13: a column ``ALTER TABLE`` cannot add is added by rebuilding the table, through the
runtime: the rows stay, live queries see the column, and a database file that lost the commit
that rebuilt it is replayed from its space's log (R71)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import apsw
import pytest

import sqlite_cells as sc

V1 = {"id": "integer primary key", "body": "text"}
V2 = {**V1, "loud": "text as (upper(body)) stored", "code": "text unique"}


def _db(rt: sc.Runtime, columns: dict[str, str]) -> sc.SqliteDb:
    return rt.space("s").sqlite_database("db", tables={"t": sc.table(columns)})


def test_rows_stay_and_live_queries_see_the_new_columns(store: Path) -> None:
    with sc.Runtime(store) as rt:
        db = _db(rt, V1)
        with rt.space("s").transact():
            db.exec("INSERT INTO t (body) VALUES ('a'), ('b')")
    with sc.Runtime(store) as rt:
        db = _db(rt, V2)
        query = db.query("SELECT id, body, loud, code FROM t ORDER BY id")
        rt.settle()
        with rt.space("s").transact():
            db.exec("INSERT INTO t (body, code) VALUES ('c', 'x')")
        rt.settle()
        assert query.get().result == [
            {"id": 1, "body": "a", "loud": "A", "code": None},
            {"id": 2, "body": "b", "loud": "B", "code": None},
            {"id": 3, "body": "c", "loud": "C", "code": "x"},
        ]
        try:
            with rt.space("s").transact():
                db.exec("INSERT INTO t (body, code) VALUES ('d', 'x')")
        except sc.ExecError as exc:
            assert "UNIQUE constraint failed" in str(exc)  # the constraint came with the column
        else:
            raise AssertionError("a duplicate code was stored")
        assert db.read("SELECT count(*) AS n FROM t") == [{"n": 3}]


def test_a_file_that_lost_the_rebuild_is_replayed(store: Path) -> None:
    with sc.Runtime(store) as rt:
        db = _db(rt, V1)
        with rt.space("s").transact():
            db.exec("INSERT INTO t (body) VALUES ('a')")
        path = db.declaration.path
    kept = store.parent / "before.sqlite"
    shutil.copyfile(path, kept)  # closed: the file is whole, no -wal
    with sc.Runtime(store) as rt:
        db = _db(rt, V2)
        with rt.space("s").transact():
            db.exec("INSERT INTO t (body, code) VALUES ('b', 'x')")
    shutil.copyfile(kept, path)  # the database lost the commit that rebuilt its table
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    # `check` tries the replay on a copy: the rebuild is made there as a repair makes it.
    looked = subprocess.run(
        [sys.executable, "-m", "sqlite_cells", "check", str(store)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert looked.returncode == 1 and ": behind\n" in looked.stdout, looked.stdout
    with sc.Runtime(store) as rt:
        db = _db(rt, V2)
        rows = db.read("SELECT id, body, loud, code FROM t ORDER BY id")
        assert rows == [
            {"id": 1, "body": "a", "loud": "A", "code": None},
            {"id": 2, "body": "b", "loud": "B", "code": "x"},
        ]


def test_a_rebuild_keeps_the_writes_deadline(store: Path) -> None:
    """R44: the rows a rebuild copies and computes count against exec_timeout."""
    with sc.Runtime(store) as rt:
        db = _db(rt, V1)
        with rt.space("s").transact():
            db.exec_many("INSERT INTO t (body) VALUES (?)", [[f"row {i}"] for i in range(20_000)])
    slow = "text as (replace(hex(zeroblob(4000)), '0', body)) stored"
    with sc.Runtime(store, exec_timeout=0.05) as rt:
        db = _db(rt, {**V1, "wide": slow})
        with (
            pytest.raises(sc.ExecTimeout, match=r"ran past exec_timeout=0\.05s"),
            rt.space("s").transact(),
        ):
            db.exec("INSERT INTO t (body) VALUES ('late')")
        assert db.rev == 1
    with sc.Runtime(store) as rt:
        db = _db(rt, V1)
        assert db.read("SELECT count(*) AS n FROM t") == [{"n": 20_000}]


def _with_a_gap(store: Path, columns: dict[str, str], key: str, gone: str) -> Path:
    """A table of ``columns`` whose rows, 'x', 'y', 'z' and 'w' in ``key``, lost ``gone``
    (rowids left: the others'); its file."""
    with sc.Runtime(store) as rt:
        db = _db(rt, columns)
        with rt.space("s").transact():
            db.exec(f"INSERT INTO t ({key}) VALUES ('x'), ('y'), ('z'), ('w')")
        with rt.space("s").transact():
            db.exec(f"DELETE FROM t WHERE {key} IN ({gone})")
        return Path(db.path)


def _rowids(path: Path, name: str = "_rowid_") -> list[tuple[object, ...]]:
    conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        return [tuple(r) for r in conn.execute(f"SELECT {name}, * FROM t ORDER BY {name}")]
    finally:
        conn.close()


@pytest.mark.parametrize("added", ["rowid", "oid", "ROWID"])
def test_a_rebuild_adding_a_column_named_as_the_rowid_keeps_each_row_s_rowid(
    store: Path, added: str
) -> None:
    """R13, R14: a declared column named ``rowid`` (or ``oid``) that SQLite's
    ``ADD COLUMN`` refuses is added by a rebuild as any other column: NULL in the rows there,
    and each row keeps its rowid (the changesets of a table without an INTEGER PRIMARY KEY name
    rows by rowid). The rows' rowids were written into the new column, and the rows renumbered."""
    plain = {"a": "text"}
    path = _with_a_gap(store, plain, "a", "'x', 'z'")
    assert _rowids(path) == [(2, "y"), (4, "w")]
    with sc.Runtime(store) as rt:
        db = _db(rt, {**plain, added: "integer unique"})
        with rt.space("s").transact():
            db.exec("INSERT INTO t (a) VALUES ('v')")
        assert db.read(f"SELECT a, {added} AS n FROM t ORDER BY a") == [
            {"a": "v", "n": None},
            {"a": "w", "n": None},
            {"a": "y", "n": None},
        ]
    other = "_rowid_"  # the rowid under a name the table left
    assert _rowids(path, other) == [(2, "y", None), (4, "w", None), (5, "v", None)]


def test_a_rebuild_of_a_keyed_table_taking_the_last_rowid_name_writes_no_rowid_in_it(
    store: Path,
) -> None:
    """A table with a PRIMARY KEY (its changesets name rows by that key) may have columns of all
    three of SQLite's names for the rowid once one is added: the new column is NULL in the rows
    there, never given their old rowids."""
    keyed = {"k": "text primary key", "rowid": "text", "_rowid_": "text"}
    _with_a_gap(store, keyed, "k", "'x', 'z', 'w'")
    with sc.Runtime(store) as rt:
        db = _db(rt, {**keyed, "oid": "integer unique"})
        with rt.space("s").transact():
            db.exec("INSERT INTO t (k) VALUES ('v')")
        assert db.read("SELECT k, oid FROM t ORDER BY k") == [
            {"k": "v", "oid": None},
            {"k": "y", "oid": None},
        ]


@pytest.mark.parametrize("name", ["_rowid_", "_ROWID_"])
def test_a_column_named_as_the_session_s_rowid_is_refused_without_a_primary_key(
    store: Path, name: str
) -> None:
    """R70: SQLite's session extension names the rowid of a table without a PRIMARY KEY
    ``_rowid_``; with a column of that name it reads the column instead, and the changesets it
    records are wrong (an INSERT recorded as nothing, an UPDATE as a DELETE), so a commit cannot
    be undone or replayed exactly. Such a column is refused where it is declared, as a new
    table's or as one a newer declaration adds; with a PRIMARY KEY it is a column as any other."""
    new = {"t": sc.table(a="text", **{name: "text"})}
    with sc.Runtime.ephemeral() as eph, pytest.raises(sc.SchemaError, match="named _rowid_"):
        eph.space("s").sqlite_database("db", tables=new)
    path = _with_a_gap(store, {"a": "text"}, "a", "'x'")
    with sc.Runtime(store) as rt, pytest.raises(sc.SchemaError, match="a column named _rowid_"):
        _db(rt, {"a": "text", name: "text"})
    assert _rowids(path) == [(2, "y"), (3, "z"), (4, "w")]
    with sc.Runtime(store) as rt:
        keyed = rt.space("s").sqlite_database(
            "keyed", tables={"t": sc.table(id="integer primary key", **{name: "text"})}
        )
        with rt.space("s").transact():
            keyed.exec(f"INSERT INTO t (id, {name}) VALUES (7, 'kept')")
        assert keyed.read(f"SELECT id, {name} AS v FROM t") == [{"id": 7, "v": "kept"}]


def test_a_stored_table_with_a_rowid_named_column_stays_readable_and_migrates(
    store: Path,
) -> None:
    """R73: a store an older version wrote with such a table (it accepted the declaration) is
    never quarantined for it: its handle reads back, its rows are served, and only a new
    declaration of that table is refused — with a way out that works, a new version whose
    migrate builds the table anew (SQLite renames no ``_rowid_``)."""
    with sc.Runtime(store) as rt:
        db = _db(rt, {"rid": "integer", "v": "text"})
        with rt.space("s").transact():
            db.exec("INSERT INTO t (rid, v) VALUES (10, 'a'), (20, 'b')")
        db_id, path = db.id, Path(db.path)
        (space_path,) = store.glob("space-*.sqlite")
    # As the older version left it: the column named _rowid_ in the file and in the handle.
    conn = apsw.Connection(str(path))
    conn.execute(
        'CREATE TABLE t_old ("_rowid_" integer, v text); '
        "INSERT INTO t_old SELECT rid, v FROM t; DROP TABLE t; ALTER TABLE t_old RENAME TO t;"
    )
    conn.close()
    conn = apsw.Connection(str(space_path))
    conn.execute(
        """UPDATE _cf_cells SET value = CAST(replace(CAST(value AS TEXT), '"rid"', '"_rowid_"')
           AS BLOB) WHERE id = ?""",
        (db_id,),
    )
    conn.close()
    old = {"_rowid_": "integer", "v": "text"}
    with sc.Runtime(store) as rt:
        with pytest.raises(sc.SchemaError, match="builds the table anew"):
            _db(rt, old)

        def rebuild(conn: Any, from_version: int) -> None:
            conn.execute("CREATE TABLE t_new (rid integer, v text)")
            conn.execute('INSERT INTO t_new (rid, v) SELECT "_rowid_", v FROM t')
            conn.execute("DROP TABLE t")
            conn.execute("ALTER TABLE t_new RENAME TO t")

        db = rt.space("s").sqlite_database(
            "db", tables={"t": sc.table(rid="integer", v="text")}, version=2, migrate=rebuild
        )
        assert db.get()["tables"]["t"]["columns"][0]["name"] == "_rowid_"  # read back, as is
        with rt.space("s").transact():
            db.exec("INSERT INTO t (rid, v) VALUES (30, 'c')")
        assert db.read("SELECT rid, v FROM t ORDER BY rid") == [
            {"rid": 10, "v": "a"},
            {"rid": 20, "v": "b"},
            {"rid": 30, "v": "c"},
        ]


@pytest.mark.parametrize("added", ["text", "text unique"])
def test_a_migration_keeps_the_stored_spelling_of_each_column(store: Path, added: str) -> None:
    """R13, R43: a declaration that spells a stored column in other letter case names the same
    column; adding a column — by ``ADD COLUMN`` or by a rebuild — renames none."""
    with sc.Runtime(store) as rt:
        db = _db(rt, {"ID": "integer primary key", "Body": "text"})
        with rt.space("s").transact():
            db.exec("INSERT INTO t (Body) VALUES ('a')")
        db = _db(rt, {"id": "integer primary key", "body": "text", "u": added})
        with rt.space("s").transact():
            db.exec("INSERT INTO t (body, u) VALUES ('b', 'x')")
        assert db.read("SELECT * FROM t ORDER BY 1") == [
            {"ID": 1, "Body": "a", "u": None},
            {"ID": 2, "Body": "b", "u": "x"},
        ]
    with apsw.Connection(str(db.declaration.path)) as conn:
        names = [row[1] for row in conn.execute("PRAGMA table_info(t)")]
    assert names == ["ID", "Body", "u"]
