"""Write sets that see what a changeset leaves out (R51, R53): generated columns, and commits
that change a database file's schema; read sets taken again once the file's schema changed."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import msgspec
import pytest

import sqlite_cells as sc
from sqlite_cells._runtime import Space
from sqlite_cells.codec import Op
from sqlite_cells.files import KIND, OpBody, decode_op_body
from sqlite_cells.read._changes import generated_sources, write_sets
from sqlite_cells.read._reader import known_read_set

GENERATED = {
    "t": sc.table(
        id="integer primary key",
        a="integer",
        d="integer",
        c="integer generated always as (a * 2) virtual",
        s="integer generated always as (a * 3) stored",
        cc='integer generated always as ("C" + 1) virtual',  # through another generated one
    )
}
V1 = {"t": sc.table(id="integer primary key", a="text"), "u": sc.table(x="integer")}
V2 = {
    "t": sc.table(id="integer primary key", a="text", b="integer default 5"),
    "u": sc.table(x="integer"),
}


def _write(space: Space, db: sc.SqliteDb, sql: str) -> int:
    with space.transact() as tx:
        db.exec(sql)
    return tx.seq


def _wait_for(query: sc.Query[Any], want: object) -> None:
    """Wait for a state with ``want`` as its result (another runtime's commits arrive by
    polling: wait for the state, not for time)."""
    reached = threading.Event()
    query.observe().subscribe(lambda state: state.result == want and reached.set())
    assert reached.wait(30), query.get()


def _op_bodies(space: Space, seq: int) -> list[dict[str, Any]]:
    """The op bodies of commit ``seq`` as its record keeps them."""
    with space.file.write_connection() as conn:
        row = conn.execute("SELECT record FROM _cf_log WHERE seq = ?", (seq,)).fetchone()
    assert row is not None
    _, _writes, ops = msgspec.json.decode(row[0])
    return [op[2] for op in ops]


# -- generated columns -------------------------------------------------------------------------


def test_an_update_reruns_queries_of_the_generated_columns_computed_from_it(
    rt: sc.Runtime,
) -> None:
    space = rt.space("demo")
    db = space.sqlite_database("gen", tables=GENERATED)
    _write(space, db, "INSERT INTO t (id, a, d) VALUES (1, 1, 1)")
    of_c, of_s, of_cc = (db.query(f"SELECT {col} FROM t") for col in ("c", "s", "cc"))
    rt.settle()
    assert (of_c.get().result, of_s.get().result) == ([{"c": 2}], [{"s": 3}])
    assert of_cc.get().result == [{"cc": 3}]
    seq = _write(space, db, "UPDATE t SET a = 5")
    rt.settle()
    assert (of_c.get().result, of_s.get().result) == ([{"c": 10}], [{"s": 15}])
    assert of_cc.get().result == [{"cc": 11}]
    assert of_c.get().seq == seq
    # An UPDATE of a column no generated column is computed from re-runs none of them.
    _write(space, db, "UPDATE t SET d = 9")
    rt.settle()
    assert (of_c.get().seq, of_s.get().seq, of_cc.get().seq) == (seq, seq, seq)


def test_generated_columns_rerun_after_another_runtimes_update(store: Path) -> None:
    """R51 across runtimes: the write set is rebuilt from the commit record."""
    with (
        sc.Runtime(store, poll_interval=0.01) as reader,
        sc.Runtime(store, poll_interval=0.01) as writer,
    ):
        db = reader.space("demo").sqlite_database("gen", tables=GENERATED)
        _write(reader.space("demo"), db, "INSERT INTO t (id, a) VALUES (1, 1)")
        of_s = db.query("SELECT s FROM t")
        reader.settle()
        assert of_s.get().result == [{"s": 3}]
        other = writer.space("demo").sqlite_database("gen", tables=GENERATED)
        _write(writer.space("demo"), other, "UPDATE t SET a = 4")
        _wait_for(of_s, [{"s": 12}])


def test_another_process_s_commits_rerun_generated_and_star_queries(store: Path) -> None:
    """R51, R53 across processes: the commit record rebuilt in this process says which generated
    columns an UPDATE changed, and that a commit changed the file's schema."""
    script = textwrap.dedent(
        f"""
        import sys
        import sqlite_cells as sc
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_write_sets_schema import GENERATED, V2
        with sc.Runtime(sys.argv[1]) as rt:
            space = rt.space("demo")
            tables = GENERATED if sys.argv[2] == "gen" else V2
            db = space.sqlite_database(sys.argv[2], tables=tables)
            with space.transact():
                db.exec(sys.argv[3])
        """
    )

    def other_process(name: str, sql: str) -> None:
        done = subprocess.run(
            [sys.executable, "-c", script, str(store), name, sql], capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr

    with sc.Runtime(store, poll_interval=0.01) as rt:
        space = rt.space("demo")
        gen = space.sqlite_database("gen", tables=GENERATED)
        _write(space, gen, "INSERT INTO t (id, a) VALUES (1, 1)")
        m = space.sqlite_database("m", tables=V1)
        _write(space, m, "INSERT INTO t (id, a) VALUES (1, 'x')")
        of_c, star = gen.query("SELECT c FROM t"), m.query("SELECT * FROM t")
        rt.settle()
        other_process("gen", "UPDATE t SET a = 7")
        _wait_for(of_c, [{"c": 14}])
        other_process("m", "INSERT INTO u (x) VALUES (1)")
        _wait_for(star, [{"id": 1, "a": "x", "b": 5}])
        other_process("m", "UPDATE t SET b = 6")
        _wait_for(star, [{"id": 1, "a": "x", "b": 6}])


def test_generated_sources_follow_expressions_through_generated_columns() -> None:
    sql = (
        'CREATE TABLE t (id INTEGER PRIMARY KEY, a, "B" TEXT, d, g1 AS (a + 1), '
        "g2 INTEGER GENERATED ALWAYS AS (g1 * b) STORED, g3 AS ('d' || 1))"
    )
    found = generated_sources(sql, ["id", "a", "B", "d"], ["g1", "g2", "G3"])
    assert found == {
        "g1": frozenset({"a"}),
        "g2": frozenset({"a", "b"}),
        "g3": frozenset(),  # a string literal names no column
    }
    # Text that cannot be read: each generated column is computed from every stored column.
    assert generated_sources("CREATE VIRTUAL TABLE t USING x", ["a"], ["g"]) == {
        "g": frozenset({"a"})
    }


# -- commits that change the file's schema -----------------------------------------------------


def test_star_query_follows_a_column_another_runtime_adds(store: Path) -> None:
    """A live ``SELECT *`` on the old declaration: the commit that migrates the file re-runs it
    (no row of ``t`` changed), and its read set, taken again on the migrated file, names the
    added column, so a later UPDATE of only that column re-runs it too."""
    with (
        sc.Runtime(store, poll_interval=0.01) as r1,
        sc.Runtime(store, poll_interval=0.01) as r2,
    ):
        d1 = r1.space("demo").sqlite_database("m", tables=V1)
        _write(r1.space("demo"), d1, "INSERT INTO t (id, a) VALUES (1, 'x')")
        q = d1.query("SELECT * FROM t")
        r1.settle()
        assert q.get().result == [{"id": 1, "a": "x"}]
        d2 = r2.space("demo").sqlite_database("m", tables=V2)
        _write(r2.space("demo"), d2, "INSERT INTO u (x) VALUES (1)")
        _wait_for(q, [{"id": 1, "a": "x", "b": 5}])
        _write(r2.space("demo"), d2, "UPDATE t SET b = 9")
        _wait_for(q, [{"id": 1, "a": "x", "b": 9}])
        assert d1.read("SELECT * FROM t") == [{"id": 1, "a": "x", "b": 9}]


def test_star_query_follows_a_redeclaration_in_the_same_runtime(
    rt: sc.Runtime, space: Space
) -> None:
    d1 = space.sqlite_database("m", tables=V1)
    _write(space, d1, "INSERT INTO t (id, a) VALUES (1, 'x')")
    q = d1.query("SELECT * FROM t")
    rt.settle()
    assert known_read_set(d1.declaration, "SELECT * FROM t") == {"t": frozenset({"id", "a"})}
    d2 = space.sqlite_database("m", tables=V2)
    seq = _write(space, d2, "INSERT INTO u (x) VALUES (1)")
    rt.settle()
    assert q.get().result == [{"id": 1, "a": "x", "b": 5}]
    assert q.get().seq == seq
    assert known_read_set(d1.declaration, "SELECT * FROM t") == {"t": frozenset({"id", "a", "b"})}
    _write(space, d2, "UPDATE t SET b = 9")
    rt.settle()
    assert q.get().result == [{"id": 1, "a": "x", "b": 9}]


def test_a_migrate_callback_reruns_every_query_of_the_database(
    rt: sc.Runtime, space: Space
) -> None:
    """Rows a ``migrate`` wrote are in no changeset: the commit it ran before says the schema
    changed, and every query of the database re-runs."""
    d1 = space.sqlite_database("m", tables=V1)
    _write(space, d1, "INSERT INTO t (id, a) VALUES (1, 'x')")
    star = d1.query("SELECT * FROM t")
    of_a = d1.query("SELECT a FROM t")
    rt.settle()

    def migrate(conn: Any, from_version: int) -> None:
        conn.execute("ALTER TABLE t ADD COLUMN b integer default 5")
        conn.execute("UPDATE t SET b = 7, a = 'y'")

    d2 = space.sqlite_database("m", tables=V2, version=2, migrate=migrate)
    seq = _write(space, d2, "INSERT INTO u (x) VALUES (1)")
    rt.settle()
    assert star.get().result == [{"id": 1, "a": "y", "b": 7}]
    assert of_a.get().result == [{"a": "y"}]
    assert _op_bodies(space, seq)[0]["schema"] is True
    # The next commit changes no schema: the record says nothing of it, and only what it
    # writes re-runs.
    later = _write(space, d2, "INSERT INTO u (x) VALUES (2)")
    assert "schema" not in _op_bodies(space, later)[0]
    rt.settle()
    assert (star.get().seq, of_a.get().seq) == (seq, seq)


def test_a_migration_whose_write_failed_in_another_process_reruns_queries_at_the_next_write(
    store: Path,
) -> None:
    """R14, R51, R53: a ``migrate`` commits in the database file on its own; when the write
    that needed it then fails, no commit of the space says so, and the runtime that migrated
    may stop before it writes again. The next commit of the database, from any runtime, finds
    the tables its space recorded last are not the ones it records: every query re-runs, here
    one reading a column that commit does not write (it kept the rows from before the
    migration for good)."""
    script = textwrap.dedent(
        f"""
        import sys
        import sqlite_cells as sc
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_write_sets_schema import V2

        def migrate(conn, from_version):
            conn.execute("ALTER TABLE t ADD COLUMN b integer default 5")
            conn.execute("UPDATE t SET a = 'migrated'")

        with sc.Runtime(sys.argv[1]) as rt:
            space = rt.space("demo")
            db = space.sqlite_database("m", tables=V2, version=2, migrate=migrate)
            try:
                with space.transact():
                    db.exec(sys.argv[2])
            except sc.ExecError:
                print("failed")
            else:
                print("committed")
        """
    )

    def other_process(sql: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", script, str(store), sql], capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    with sc.Runtime(store, poll_interval=0.01) as rt:
        space = rt.space("demo")
        m = space.sqlite_database("m", tables=V1)
        _write(space, m, "INSERT INTO t (id, a) VALUES (1, 'x')")
        of_a = m.query("SELECT a FROM t")
        rt.settle()
        assert other_process("INSERT INTO t (id, a) VALUES (1, 'again')") == "failed"
        assert m.read("SELECT a FROM t") == [{"a": "migrated"}]  # durable, told to no query
        assert other_process("INSERT INTO u (x) VALUES (1)") == "committed"
        _wait_for(of_a, [{"a": "migrated"}])
        assert of_a.get().seq == 2


def test_a_changeset_is_named_by_the_columns_its_file_had_when_it_was_written(
    store: Path,
) -> None:
    """R14, R51: a ``migrate`` whose write then failed rebuilt a table with its columns in
    another order, and no commit says so (the declaration is alike: same columns). A runtime
    that read the table's column order before named later changesets by it: an UPDATE of ``a``
    re-ran the query of ``b`` and left the query of ``a`` stale. Each op records the file's
    schema cookie; a shape read at another one is read again."""
    before = {"t": sc.table(id="integer primary key", a="integer", b="integer unique")}
    after = {"t": sc.table(id="integer primary key", b="integer unique", a="integer")}

    def rebuild(conn: Any, _from: int) -> None:
        conn.execute("CREATE TABLE t2 (id integer primary key, b integer unique, a integer)")
        conn.execute("INSERT INTO t2 (id, b, a) SELECT id, b, a FROM t")
        conn.execute("DROP TABLE t")
        conn.execute("ALTER TABLE t2 RENAME TO t")

    with sc.Runtime(store, poll_interval=0.01) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("d", tables=before)
        _write(space, db, "INSERT INTO t (a, b) VALUES (1, 1), (2, 2)")
        of_a = db.query("SELECT id, a FROM t ORDER BY id")
        of_b = db.query("SELECT id, b FROM t ORDER BY id")
        rt.settle()
        _write(space, db, "UPDATE t SET a = 3 WHERE id = 2")  # the shape is read (a before b)
        rt.settle()
        with sc.Runtime(store) as migrating:
            other = migrating.space("demo")
            moved = other.sqlite_database("d", tables=after, version=2, migrate=rebuild)
            with pytest.raises(sc.ExecError):
                _write(other, moved, "INSERT INTO t (a, b) VALUES (9, 1)")  # UNIQUE (b)
        with sc.Runtime(store) as writer:
            third = writer.space("demo")
            _write(
                third,
                third.sqlite_database("d", tables=after, version=2),
                "UPDATE t SET a = 99 WHERE id = 1",
            )
        _wait_for(of_a, [{"id": 1, "a": 99}, {"id": 2, "a": 3}])
        assert of_b.get().result == [{"id": 1, "b": 1}, {"id": 2, "b": 2}]


def test_rows_a_migrate_changed_before_its_write_failed_reach_live_queries(store: Path) -> None:
    """R14, R51: a ``migrate`` that changes rows commits in the file on its own; when the write
    that ran it fails, no commit says so. The migrating runtime re-runs its live queries at
    once; another runtime's, which saw the commit before at version 1, re-run at the next
    commit of the database — by anyone, here a third runtime writing another table — whose
    op found the file at another version than the last op recorded."""
    tables = {"t": sc.table(id="integer primary key", a="text"), "u": sc.table(x="int unique")}

    def upper(conn: Any, _from: int) -> None:
        conn.execute("UPDATE t SET a = upper(a)")

    with sc.Runtime(store, poll_interval=0.01) as watching:
        space = watching.space("demo")
        db = space.sqlite_database("d", tables=tables)
        _write(space, db, "INSERT INTO u (x) VALUES (0)")
        of_a = db.query("SELECT a FROM t ORDER BY id")
        watching.settle()
        _write(space, db, "INSERT INTO t (a) VALUES ('x'), ('y')")
        _wait_for(of_a, [{"a": "x"}, {"a": "y"}])
        with sc.Runtime(store) as migrating:
            other = migrating.space("demo")
            moved = other.sqlite_database("d", tables=tables, version=2, migrate=upper)
            here = moved.query("SELECT a FROM t ORDER BY id")
            migrating.settle()
            assert here.get().result == [{"a": "x"}, {"a": "y"}]
            with pytest.raises(sc.ExecError):
                _write(other, moved, "INSERT INTO u (x) VALUES (0)")  # UNIQUE
            migrating.settle()
            assert here.get().result == [{"a": "X"}, {"a": "Y"}]
        assert db.read("SELECT a FROM t ORDER BY id") == [{"a": "X"}, {"a": "Y"}]
        with sc.Runtime(store) as writer:
            third = writer.space("demo")
            _write(third, third.sqlite_database("d", tables=tables, version=2), "DELETE FROM u")
        _wait_for(of_a, [{"a": "X"}, {"a": "Y"}])


def test_a_runtime_that_saw_no_op_learns_of_a_failed_migration_at_the_next_commit(
    store: Path,
) -> None:
    """R53, R51: the runtime watching the database started after its last commit, so it had
    seen no op of it (and no version) when another runtime's `migrate` changed the rows and its
    write failed: a later commit by a third runtime, writing another table, left its query on the
    rows from before for good. The version the file holds when a query of it is first watched
    is the one its rows are as of: the later op, at another version, re-runs it."""
    tables = {"t": sc.table(id="integer primary key", qty="integer"), "u": sc.table(x="int unique")}

    def times10(conn: Any, _from: int) -> None:
        conn.execute("UPDATE t SET qty = qty * 10")

    with sc.Runtime(store) as first:
        space = first.space("demo")
        written = space.sqlite_database("d", tables=tables)
        _write(space, written, "INSERT INTO t (qty) VALUES (1), (2)")
        _write(space, written, "INSERT INTO u (x) VALUES (0)")
    with sc.Runtime(store, poll_interval=0.01) as watching:
        db = watching.space("demo").sqlite_database("d", tables=tables, version=2, migrate=times10)
        q = db.query("SELECT qty FROM t ORDER BY id")
        watching.settle()
        assert q.get().result == [{"qty": 1}, {"qty": 2}]
        with sc.Runtime(store) as migrating:
            other = migrating.space("demo")
            moved = other.sqlite_database("d", tables=tables, version=2, migrate=times10)
            with pytest.raises(sc.ExecError):
                _write(other, moved, "INSERT INTO u (x) VALUES (0)")  # UNIQUE: the write fails
        with sc.Runtime(store) as writer:
            third = writer.space("demo")
            _write(third, third.sqlite_database("d", tables=tables, version=2), "DELETE FROM u")
        _wait_for(q, [{"qty": 10}, {"qty": 20}])


def test_declarations_spelled_differently_rerun_no_query_they_do_not_change(store: Path) -> None:
    """R13, R51: two runtimes declare the same tables, spelled differently (a type's case, a
    name's case, the columns' order); each commit records its own spelling in the handle. What
    SQLite reports for both is the same, so no commit is a schema change: a query of columns the
    commits do not write keeps its seq (it re-ran at every commit)."""
    spelled = [
        {"t": sc.table(id="integer primary key", a="text", b="integer")},
        {"T": sc.table(id="INTEGER PRIMARY KEY", B="INTEGER", a="TEXT")},
    ]
    with sc.Runtime(store, poll_interval=0.01) as rt, sc.Runtime(store) as other:
        dbs = [
            runtime.space("demo").sqlite_database("m", tables=tables)
            for runtime, tables in zip((rt, other), spelled, strict=True)
        ]
        first = _write(rt.space("demo"), dbs[0], "INSERT INTO t (id, a, b) VALUES (1, 'x', 0)")
        of_a = dbs[0].query("SELECT id, a FROM t")
        rt.settle()
        for n in range(1, 7):
            runtime = (rt, other)[n % 2]
            _write(runtime.space("demo"), dbs[n % 2], f"UPDATE t SET b = {n}")
        rt.settle()
        assert dbs[0].read("SELECT b FROM t") == [{"b": 6}]
        assert of_a.get().seq == first and of_a.get().result == [{"id": 1, "a": "x"}]


def test_the_record_says_which_commit_changed_the_schema(rt: sc.Runtime, space: Space) -> None:
    d1 = space.sqlite_database("m", tables=V1)
    first = _write(space, d1, "INSERT INTO t (id, a) VALUES (1, 'x')")
    # The first write creates the file at the declared schema: nothing read changes by that.
    assert "schema" not in _op_bodies(space, first)[0]
    d2 = space.sqlite_database("m", tables=V2)
    added = _write(space, d2, "INSERT INTO u (x) VALUES (1)")
    assert _op_bodies(space, added)[0]["schema"] is True
    again = _write(space, d2, "INSERT INTO u (x) VALUES (2)")
    assert "schema" not in _op_bodies(space, again)[0]


def test_the_first_write_of_a_database_reruns_only_what_it_changed(
    rt: sc.Runtime, space: Space
) -> None:
    db = space.sqlite_database("m", tables=V1)
    of_t = db.query("SELECT * FROM t")
    of_u = db.query("SELECT x FROM u")
    rt.settle()
    before = of_u.get().seq
    seq = _write(space, db, "INSERT INTO t (id, a) VALUES (1, 'x')")
    rt.settle()
    assert of_t.get().result == [{"id": 1, "a": "x"}] and of_t.get().seq == seq
    assert of_u.get().seq == before


def test_write_sets_of_a_schema_change_are_the_whole_database() -> None:
    """Old records (no ``schema`` field) read as before (R73); a record saying the schema
    changed is the whole database, and its tables' shapes are forgotten."""
    old = Op(KIND, "of:db", msgspec.Raw(b'{"sql":"x","rows":[],"many":false,"changeset":null}'))
    assert decode_op_body(old) == OpBody("x", [], False, None, schema=False)
    empty = b"\x00" * 0
    plain = Op(KIND, "of:db", msgspec.Raw(msgspec.json.encode(OpBody("x", [], False, empty))))
    reshaped = Op(
        KIND, "of:db", msgspec.Raw(msgspec.json.encode(OpBody("x", [], False, empty, schema=True)))
    )
    told: list[str] = []

    def columns(_db: str, _table: str, _width: int, _cookie: int | None) -> list[str] | None:
        pytest.fail("no changeset column to name")

    assert write_sets([plain], columns, reshaped=told.append) == {"of:db": {}}
    assert told == []
    assert write_sets([plain, reshaped], columns, reshaped=told.append) == {"of:db": None}
    assert told == ["of:db"]
