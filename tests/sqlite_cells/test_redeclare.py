"""A re-declaration with an additive change reads at once (R14, R41): until the file is
migrated, a declared column it lacks reads as its declared default (or NULL), and a declared
table it lacks reads as empty. Reads never write the file (R7, R40)."""

from __future__ import annotations

import hashlib
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import apsw
import msgspec
import pytest

import sqlite_cells as sc
import sqlite_cells.read._workers as workers_module
from sqlite_cells._runtime import Space
from sqlite_cells.files import unwritten_handle
from sqlite_cells.read._reader import known_read_set
from sqlite_cells.schema import declare_tables

from .._files import read_bytes

OLD = {"t": sc.table(a="integer")}
NEW = {
    "t": sc.table(
        a="integer",
        c="integer not null default 7",
        n="text",
        l_cf_link=sc.cf_link(),
        k="text collate nocase default 'x'",
    ),
    "u": sc.table(x="int"),
}


def _write(space: Space, db: sc.SqliteDb, sql: str, params: list[object] | None = None) -> None:
    with space.transact():
        db.exec(sql, params)


def _fingerprint(path: Path) -> dict[str, str]:
    """The bytes of the database file and its WAL (absent and empty alike): a read must change
    none of them. Read through kept descriptors: a runtime may have the file open."""
    files = [path, path.with_name(path.name + "-wal")]
    found = {p.name: read_bytes(p) for p in files if p.exists()}
    return {name: hashlib.sha256(data).hexdigest() for name, data in found.items() if data}


def _stored_schema(path: Path) -> list[tuple[object, ...]]:
    conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        return [tuple(r) for r in conn.execute("SELECT type, name, sql FROM sqlite_schema")]
    finally:
        conn.close()


@pytest.fixture
def old_file(store: Path) -> Iterator[Path]:
    """A store whose database ``d`` was written under ``OLD`` (rows a=1, a=2), runtime closed."""
    with sc.Runtime(store, poll_interval=0.01) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("d", tables=OLD)
        _write(space, db, "INSERT INTO t (a) VALUES (1), (2)")
        path = db.path
    yield path


def test_added_columns_read_as_their_defaults_at_once(rt: sc.Runtime) -> None:
    space = rt.space("demo")
    db = space.sqlite_database("d", tables=OLD)
    _write(space, db, "INSERT INTO t (a) VALUES (1)")
    db = space.sqlite_database("d", tables=NEW)
    before, schema = _fingerprint(db.path), _stored_schema(db.path)

    assert db.read("SELECT a, c, n, l_cf_link FROM t") == [
        {"a": 1, "c": 7, "n": None, "l_cf_link": None}
    ]
    # SELECT * gives the stored columns, then the added ones in declared order: the order the
    # migration's ADD COLUMN gives them.
    assert db.read("SELECT * FROM t") == [{"a": 1, "c": 7, "n": None, "l_cf_link": None, "k": "x"}]
    assert list(db.read("SELECT * FROM t")[0]) == ["a", "c", "n", "l_cf_link", "k"]
    assert db.read("SELECT a FROM t WHERE c = 7") == [{"a": 1}]
    # The added columns compare as declared: integer affinity, NOCASE collation.
    assert db.read("SELECT a FROM t WHERE c = '7' AND k = 'X'") == [{"a": 1}]
    assert db.read("SELECT typeof(c) AS ty FROM t") == [{"ty": "integer"}]
    assert db.read("SELECT count(*) AS n FROM t") == [{"n": 1}]
    assert db.read("SELECT * FROM u") == []  # a declared table not in the file yet
    assert db.read("SELECT t.a, u.x FROM t LEFT JOIN u ON u.x = t.a") == [{"a": 1, "x": None}]
    q = db.query("SELECT a, c FROM t")
    rt.settle()
    assert q.get() == sc.QueryState(pending=False, result=[{"a": 1, "c": 7}], error=None, seq=1)

    with pytest.raises(sc.QueryError, match="declared tables"):
        db.read("SELECT * FROM nope")
    with pytest.raises(sc.GuardViolation) as info:
        db.read("SELECT * FROM _cf_shadow_0")
    assert info.value.kind == "reserved-name"
    assert _fingerprint(db.path) == before
    assert _stored_schema(db.path) == schema  # nothing of the shadows reached the file

    # The next write migrates the file; the stored values are read from then on.
    _write(space, db, "INSERT INTO t (a, c, k) VALUES (2, 5, 'y')")
    assert db.read("SELECT a, c, k FROM t ORDER BY a") == [
        {"a": 1, "c": 7, "k": "x"},
        {"a": 2, "c": 5, "k": "y"},
    ]
    rt.settle()
    assert q.get().result == [{"a": 1, "c": 7}, {"a": 2, "c": 5}]


def test_a_fresh_runtime_reads_the_added_columns_of_an_existing_file(
    store: Path, old_file: Path
) -> None:
    before = _fingerprint(old_file)
    with sc.Runtime(store, poll_interval=0.01) as rt:
        db = rt.space("demo").sqlite_database("d", tables=NEW)
        assert db.read("SELECT a, c, n FROM t ORDER BY a") == [
            {"a": 1, "c": 7, "n": None},
            {"a": 2, "c": 7, "n": None},
        ]
        assert db.read("SELECT x FROM u") == []
    assert _fingerprint(old_file) == before


class Row(msgspec.Struct):
    a: int
    c: int
    n: str | None
    l_cf_link: sc.Cell | None


def test_typed_rows_read_the_added_columns(store: Path, old_file: Path) -> None:
    with sc.Runtime(store, poll_interval=0.01) as rt:
        db = rt.space("demo").sqlite_database("d", tables=NEW)
        rows = db.read("SELECT a, c, n, l_cf_link FROM t ORDER BY a", row=Row)
        assert rows == [Row(1, 7, None, None), Row(2, 7, None, None)]
        q = db.query("SELECT a, c, n, l_cf_link FROM t ORDER BY a", row=Row)
        rt.settle()
        assert q.get().result == rows


def _wait_for(query: sc.Query[object], want: object) -> None:
    """Wait for a state with ``want`` as its result (commits of another runtime arrive by
    polling: wait for the state, not for time)."""
    reached = threading.Event()
    query.observe().subscribe(lambda state: state.result == want and reached.set())
    assert reached.wait(30), query.get()


def test_a_live_query_of_an_added_column_reruns_when_a_row_is_inserted(
    store: Path, old_file: Path
) -> None:
    """An added column has no stored value to change until the migration, so a query reading
    it reacts to INSERT and DELETE of its table, here written by a runtime that still declares
    the old schema (so the file stays unmigrated). Its read set names the declared columns it
    reads, not every stored column the shadow selects."""
    with (
        sc.Runtime(store, poll_interval=0.01) as writer,
        sc.Runtime(store, poll_interval=0.01) as reader,
    ):
        old = writer.space("demo").sqlite_database("d", tables=OLD)
        new = reader.space("demo").sqlite_database("d", tables=NEW)
        sql = "SELECT c, n FROM t"
        q = new.query(sql)
        reader.settle()
        assert q.get().result == [{"c": 7, "n": None}, {"c": 7, "n": None}]
        assert known_read_set(new.declaration, sql) == {"t": frozenset({"c", "n"})}
        _write(writer.space("demo"), old, "INSERT INTO t (a) VALUES (3)")
        _wait_for(q, [{"c": 7, "n": None}] * 3)
        _write(writer.space("demo"), old, "DELETE FROM t WHERE a = 1")
        _wait_for(q, [{"c": 7, "n": None}] * 2)
        assert "c" not in [r[1] for r in _stored_schema(old_file)]  # still not migrated


def test_an_update_of_a_stored_column_it_does_not_read_reruns_no_shadowed_query(
    store: Path, old_file: Path
) -> None:
    """R51 on a file read through stand-ins: the commit's changeset has the file's columns, so
    its write set is taken from the file's own table, not from the stand-in (which has more
    columns): an UPDATE of ``a`` by a runtime on the old declaration re-runs no query of ``c``."""
    with (
        sc.Runtime(store, poll_interval=0.01) as writer,
        sc.Runtime(store, poll_interval=0.01) as reader,
    ):
        old = writer.space("demo").sqlite_database("d", tables=OLD)
        new = reader.space("demo").sqlite_database("d", tables=NEW)
        of_c = new.query("SELECT c FROM t")
        of_a = new.query("SELECT a FROM t ORDER BY a")
        reader.settle()
        before = of_c.get().seq
        _write(writer.space("demo"), old, "UPDATE t SET a = a + 10")
        _wait_for(of_a, [{"a": 11}, {"a": 12}])
        assert of_c.get().seq == before  # not re-run: it reads no column the UPDATE changed


def test_the_shadows_go_when_another_runtime_migrates_the_file(store: Path, old_file: Path) -> None:
    with (
        sc.Runtime(store, poll_interval=0.01) as reader,
        sc.Runtime(store, poll_interval=0.01) as migrator,
    ):
        db = reader.space("demo").sqlite_database("d", tables=NEW)
        assert db.read("SELECT a, c FROM t ORDER BY a") == [{"a": 1, "c": 7}, {"a": 2, "c": 7}]
        other = migrator.space("demo").sqlite_database("d", tables=NEW)
        _write(migrator.space("demo"), other, "UPDATE t SET c = a * 10")
        # The reader's pooled connection held shadows; the file's schema moved, so it reads
        # the real columns now.
        assert db.read("SELECT a, c FROM t ORDER BY a") == [{"a": 1, "c": 10}, {"a": 2, "c": 20}]
        assert db.read("SELECT rowid AS r FROM t ORDER BY a") == [{"r": 1}, {"r": 2}]


def test_rowid_of_a_table_with_added_columns_reads_before_the_migration(
    store: Path, old_file: Path
) -> None:
    """A view has no rowid: a statement naming it runs on a copy of the stored rows, rowids
    kept, and the views are back for the next statement."""
    with sc.Runtime(store, poll_interval=0.01) as rt:
        db = rt.space("demo").sqlite_database("d", tables=NEW)
        before = _fingerprint(old_file)
        want = [{"r": 1, "c": 7}, {"r": 2, "c": 7}]
        assert db.read("SELECT rowid AS r, c FROM t ORDER BY a") == want
        assert db.read("SELECT t.oid AS r, c FROM t ORDER BY a") == want
        assert db.read("SELECT _rowid_ AS r, c FROM t WHERE c = '7' ORDER BY a") == want
        assert db.read("SELECT * FROM t WHERE a = 2") == [
            {"a": 2, "c": 7, "n": None, "l_cf_link": None, "k": "x"}
        ]
        q = db.query("SELECT rowid AS r, c FROM t ORDER BY a")
        rt.settle()
        assert q.get().result == want
        assert known_read_set(db.declaration, "SELECT rowid AS r, c FROM t ORDER BY a") == {
            "t": frozenset({"rowid", "c", "a"})
        }
        assert _fingerprint(old_file) == before
        _write(rt.space("demo"), db, "INSERT INTO t (a, c) VALUES (3, 1)")
        assert db.read("SELECT rowid AS r, c FROM t ORDER BY a") == [*want, {"r": 3, "c": 1}]
        rt.settle()
        assert q.get().result == [*want, {"r": 3, "c": 1}]


def test_rowid_of_a_table_with_an_integer_primary_key_reads_the_same_before_and_after(
    store: Path,
) -> None:
    """A stored INTEGER PRIMARY KEY is the table's rowid: statements naming rowid give the same
    rows under the same column names before the migration (through a copy) and after."""
    old = {"t": sc.table(id="integer primary key", a="integer")}
    new = {"t": sc.table(id="integer primary key", a="integer", c="int default 7")}
    statements = [
        "SELECT rowid FROM t ORDER BY a",
        "SELECT oid, _rowid_, id FROM t ORDER BY a",
        "SELECT * FROM t WHERE rowid = 2",
    ]
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("d", tables=old)
        _write(space, db, "INSERT INTO t (a) VALUES (10), (20)")
        db = space.sqlite_database("d", tables=new)
        before = [db.read(sql) for sql in statements]
        _write(space, db, "INSERT INTO t (a) VALUES (30)")  # migrates the file
        after = [db.read(sql)[:2] if "ORDER" in sql else db.read(sql) for sql in statements]
    assert before == after
    assert before[0] == [{"id": 1}, {"id": 2}]


def test_rowid_of_a_table_keyed_integer_primary_key_desc_is_not_its_key(store: Path) -> None:
    """SQLite keeps an `INTEGER PRIMARY KEY DESC` in an index of its own: it is not the rowid's
    alias. The copy a statement naming rowid reads before the migration made it one: rowid read
    as the key, under the key's name, and `WHERE rowid = 1` found nothing."""
    old = {"t": sc.table(id="integer primary key desc", a="text")}
    new = {"t": sc.table(id="integer primary key desc", a="text", b="integer default 7")}
    statements = ["SELECT rowid AS r, id, a FROM t ORDER BY id", "SELECT a FROM t WHERE rowid = 1"]
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("d", tables=old)
        _write(space, db, "INSERT INTO t (id, a) VALUES (10, 'ten'), (20, 'twenty')")
        file_before = [db.read(sql) for sql in statements]
        db = space.sqlite_database("d", tables=new)
        shadowed = [db.read(sql) for sql in statements]
        _write(space, db, "DELETE FROM t WHERE 0")  # migrates the file
        migrated = [db.read(sql) for sql in statements]
    assert file_before == shadowed == migrated
    assert shadowed == [
        [{"r": 1, "id": 10, "a": "ten"}, {"r": 2, "id": 20, "a": "twenty"}],
        [{"a": "ten"}],
    ]


def test_removing_a_table_or_an_index_from_the_declaration_is_not_additive(
    rt: sc.Runtime,
) -> None:
    """R13: dropping is not additive, for tables and indexes as for columns. The write raises
    UnsupportedMigration naming each difference and writes nothing; a version bump with a
    migrate that drops them is the way (R14)."""
    space = rt.space("demo")
    full = {
        "t": sc.table(a="integer", indexes={"by_a": ["a"]}),
        "gone": sc.table(z="text"),
    }
    db = space.sqlite_database("d", tables=full)
    _write(space, db, "INSERT INTO t (a) VALUES (1)")
    shrunk = {"t": sc.table(a="integer")}
    db = space.sqlite_database("d", tables=shrunk)
    schema = _stored_schema(db.path)
    with pytest.raises(sc.UnsupportedMigration) as info:
        _write(space, db, "INSERT INTO t (a) VALUES (2)")
    assert isinstance(info.value, sc.SqliteCellsError)
    assert info.value.differences == (
        "index by_a: the stored index on t is not declared (dropping an index is not "
        "additive); declare it, or bump version= with a migrate that drops it",
        "gone: the stored table is not declared (dropping a table is not additive); declare "
        "it, or bump version= with a migrate that drops it",
    )
    assert db.rev == 1
    assert _stored_schema(db.path) == schema
    assert db.read("SELECT a FROM t") == [{"a": 1}]

    def drop(conn: Any, from_version: int) -> None:
        assert from_version == 1
        conn.execute("DROP TABLE gone")
        conn.execute("DROP INDEX by_a")

    db = space.sqlite_database("d", tables=shrunk, version=2, migrate=drop)
    _write(space, db, "INSERT INTO t (a) VALUES (2)")
    assert db.rev == 2
    assert db.read("SELECT a FROM t ORDER BY a") == [{"a": 1}, {"a": 2}]
    assert {
        r[1] for r in _stored_schema(db.path) if not str(r[1]).startswith(("_cf_", "sqlite_"))
    } == {"t"}


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"version": "2"}, "is a str"),
        ({"version": True}, "is a bool"),
        ({"version": 2.0}, "is a float"),
        ({"version": 0}, "out of range"),
        ({"version": -1}, "out of range"),
        ({"version": 2**63}, "out of range"),
        ({"version": 2**70}, "out of range"),
        ({"version": 2, "migrate": 5}, "not callable"),
    ],
)
def test_bad_version_or_migrate_is_refused_at_declaration(
    rt: sc.Runtime, options: dict[str, object], words: str
) -> None:
    space = rt.space("demo")
    with pytest.raises(sc.SchemaError, match=words) as info:
        space.sqlite_database("d", tables=OLD, **options)  # type: ignore[arg-type]  # on purpose
    assert isinstance(info.value, ValueError)
    assert not list(rt.store.glob("cell-*"))


def test_the_largest_version_is_stored(rt: sc.Runtime) -> None:
    space = rt.space("demo")
    db = space.sqlite_database("d", tables=OLD, version=2**63 - 1)
    _write(space, db, "INSERT INTO t (a) VALUES (1)")
    conn = apsw.Connection(str(db.path), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        stored = conn.execute("SELECT value FROM _cf_meta WHERE key = 'version'").fetchall()
    finally:
        conn.close()
    assert stored == [(2**63 - 1,)]


def test_table_names_fold_ascii_case_only_as_sqlite_does(rt: sc.Runtime) -> None:
    """SQLite folds only ASCII letters: "É" and "é" are two tables, "T" and "t" one name."""
    with pytest.raises(sc.SchemaError, match="declared twice"):
        sc.table({"T": "text", "t": "int"})
    with pytest.raises(sc.SchemaError, match="declared twice"):
        rt.space("demo").sqlite_database("x", tables={"T": sc.table(v="text"), "t": OLD["t"]})
    columns = sc.table({"É": "text", "é": "int"})
    assert [c.name for c in columns.columns] == ["É", "é"]
    space = rt.space("demo")
    db = space.sqlite_database(
        "d", tables={"É": sc.table(v="text"), "é": sc.table(w="text"), "u": columns}
    )
    _write(space, db, 'INSERT INTO "É" (v) VALUES (1)')
    _write(space, db, 'INSERT INTO u ("é") VALUES (2)')
    assert db.read('SELECT v FROM "É"') == [{"v": "1"}]
    assert db.read('SELECT w FROM "é"') == []
    assert db.read('SELECT "É", "é" FROM u') == [{"É": None, "é": 2}]


FOREVER = "(WITH RECURSIVE k(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM k) SELECT max(x) FROM k)"


def test_shadows_survive_a_read_interrupted_at_its_deadline(store: Path, old_file: Path) -> None:
    """An interrupt ends the read transaction, and with it the temp objects it made: the next
    read makes them again, and never reads the stored table through stale ones."""
    with sc.Runtime(store, poll_interval=0.01, query_timeout=0.3) as rt:
        db = rt.space("demo").sqlite_database("d", tables=NEW)
        for sql in (f"SELECT c, {FOREVER} FROM t", f"SELECT rowid, {FOREVER} FROM t"):
            with pytest.raises(sc.QueryTimeout):
                db.read(sql)
            assert db.read("SELECT a, c FROM t ORDER BY a") == [{"a": 1, "c": 7}, {"a": 2, "c": 7}]
            assert db.read("SELECT rowid AS r, n FROM t ORDER BY a") == [
                {"r": 1, "n": None},
                {"r": 2, "n": None},
            ]


def test_the_authorizer_alone_keeps_the_default_tables_out_of_reach(
    store: Path, old_file: Path
) -> None:
    """Behind the guard (which refuses every ``_cf_`` name), the read authorizer lets a
    statement read a one-row default table only through its view (R23)."""
    from sqlite_cells.read import ReadPool, read_rows

    with sc.Runtime(store, poll_interval=0.01) as rt:
        decl = rt.space("demo").sqlite_database("d", tables=NEW).declaration
        pool = ReadPool(1)
        try:
            rows, _ = read_rows(pool, decl, "SELECT c FROM t", (), timeout=5)
            assert rows == [{"c": 7}, {"c": 7}]
            for sql in ("SELECT c FROM _cf_shadow_0", "SELECT * FROM temp._cf_shadow_0"):
                with pytest.raises(sc.QueryError, match="not authorized"):
                    read_rows(pool, decl, sql, (), timeout=5)
            rows, _ = read_rows(pool, decl, "SELECT a, c FROM t ORDER BY a", (), timeout=5)
            assert rows == [{"a": 1, "c": 7}, {"a": 2, "c": 7}]
        finally:
            pool.close()


@pytest.mark.parametrize(
    ("spec", "why"),
    [
        ("blob default (zeroblob(70000000))", "TooBigError"),
        ("blob default (randomblob(67108865))", "TooBigError"),
        ("integer default (abs(-9223372036854775808))", "integer overflow"),
        ("text default (json('x'))", "malformed JSON"),
    ],
)
def test_a_default_sqlite_cannot_compute_is_refused_and_the_file_stays_readable(
    store: Path, old_file: Path, spec: str, why: str
) -> None:
    """R44, R14: a re-declared column reads as its default until the file has it, so a default
    over the length limit (or one that fails) would make every read of the table fail. It is
    refused at declaration, and the stored columns read as before."""
    with sc.Runtime(store, poll_interval=0.01) as rt:
        space = rt.space("demo")
        with pytest.raises(sc.SchemaError) as info:
            space.sqlite_database("d", tables={"t": sc.table(a="integer", z=spec)})
        message = str(info.value)
        assert "table 't', column 'z'" in message
        assert why in message
        assert "64 MiB" in message
        db = space.sqlite_database("d", tables=OLD)
        assert db.read("SELECT a FROM t ORDER BY a") == [{"a": 1}, {"a": 2}]
    with pytest.raises(sc.SchemaError):
        declare_tables({"t": sc.table(a="integer", z=spec)})


def test_defaults_that_fit_alone_but_not_together_are_refused(store: Path, old_file: Path) -> None:
    """R44: a file lacking several declared columns reads their defaults from one row, which
    is under the length limit too: five defaults of 20 MB each fit one by one and made every
    read of the database fail together. They are refused at declaration, naming the table."""
    five = {f"c{i}": "blob default (zeroblob(20000000))" for i in range(5)}
    with sc.Runtime(store, poll_interval=0.01) as rt:
        space = rt.space("demo")
        with pytest.raises(sc.SchemaError) as info:
            space.sqlite_database("d", tables={"t": sc.table(a="integer", **five)})
        assert str(info.value).startswith(
            "table 't': SQLite cannot hold the defaults of its columns in one row: TooBigError"
        )
        assert "64 MiB" in str(info.value)
        db = space.sqlite_database("d", tables=OLD)
        assert db.read("SELECT a FROM t ORDER BY a") == [{"a": 1}, {"a": 2}]
        three = {f"c{i}": "blob default (zeroblob(20000000))" for i in range(3)}
        db = space.sqlite_database("d", tables={"t": sc.table(a="integer", **three)})
        assert db.read("SELECT a, length(c2) AS n FROM t ORDER BY a") == [
            {"a": 1, "n": 20000000},
            {"a": 2, "n": 20000000},
        ]


def test_a_large_default_within_the_length_limit_is_read_as_declared(
    store: Path, old_file: Path
) -> None:
    with sc.Runtime(store, poll_interval=0.01) as rt:
        db = rt.space("demo").sqlite_database(
            "d", tables={"t": sc.table(a="integer", z="blob default (zeroblob(1000000))")}
        )
        assert db.read("SELECT a, length(z) AS n FROM t ORDER BY a") == [
            {"a": 1, "n": 1000000},
            {"a": 2, "n": 1000000},
        ]


def test_a_write_recorded_before_its_runtime_declared_the_database_anew_runs_again(
    rt: sc.Runtime,
) -> None:
    """R13, §3: a handler's write is recorded under a declaration; before it commits, its own
    runtime declares the database anew with an added column and another commit puts that column
    in the file. The write as recorded no longer fits the file — it was refused as a destructive
    migration ("bump version="), once, for good. It is a conflict: the handler runs again,
    under the new declaration, and commits."""
    space = rt.space("s")
    db = space.sqlite_database("d", tables={"t": sc.table(id="integer primary key", a="text")})
    with space.transact():
        db.exec("INSERT INTO t (a) VALUES ('seed')")
    recorded, go = threading.Event(), threading.Event()
    tries: list[int] = []
    outcome: list[object] = []

    @sc.handler
    def add(text: str) -> None:
        db.exec("INSERT INTO t (a) VALUES (?)", [text])
        tries.append(1)
        recorded.set()
        go.wait(10)

    def run() -> None:
        try:
            outcome.append(add("in flight"))
        except Exception as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    assert recorded.wait(10)
    wider = {"t": sc.table(id="integer primary key", a="text", c="integer default 1")}
    again = space.sqlite_database("d", tables=wider)
    with space.transact():
        again.exec("INSERT INTO t (a) VALUES ('other')")
    go.set()
    thread.join(20)
    assert len(tries) == 2 and isinstance(outcome[0], int), outcome
    rows = again.read("SELECT a, c FROM t ORDER BY id")
    assert rows == [{"a": "seed", "c": 1}, {"a": "other", "c": 1}, {"a": "in flight", "c": 1}]


@pytest.mark.parametrize("migrate", ["none", "a new function each time"])
def test_a_write_whose_runtime_declared_the_database_again_the_same_is_refused_as_before(
    store: Path, migrate: str
) -> None:
    """R13: only a declaration that changed makes the pending write a conflict. Declared again
    the same (a pattern run again), while another runtime's different declaration migrates
    the file first, the write is refused as any write of the older schema is, naming the
    stored column it does not declare (it was a ConflictError, which a handler retried 10
    times in vain)."""
    narrow = {"t": sc.table(id="integer primary key", a="text")}
    wide = {"t": sc.table(id="integer primary key", a="text", c="integer default 1")}

    def declare(space: Space) -> sc.SqliteDb:
        if migrate == "none":
            return space.sqlite_database("d", tables=narrow)
        # (a pattern run again declares with a new lambda: the same declaration all the same)
        return space.sqlite_database(
            "d", tables=narrow, version=2, migrate=lambda conn, version: None
        )

    with sc.Runtime(store) as first, sc.Runtime(store) as second:
        space = first.space("s")
        db = declare(space)
        with space.transact():
            db.exec("INSERT INTO t (a) VALUES ('seed')")

        def migrate_elsewhere() -> None:
            other = second.space("s")
            version = 1 if migrate == "none" else 3
            wider = other.sqlite_database(
                "d",
                tables=wide,
                version=version,
                migrate=lambda conn, _: conn.execute(
                    "ALTER TABLE t ADD COLUMN c integer default 1"
                ),
            )
            with other.transact():
                wider.exec("INSERT INTO t (a) VALUES ('b')")

        with pytest.raises(sc.UnsupportedMigration) as raised, space.transact():
            db.exec("INSERT INTO t (a) VALUES ('a')")
            declare(space)  # declared again, the same
            helper = threading.Thread(target=migrate_elsewhere)
            helper.start()
            helper.join(20)
        said = "t.c" if migrate == "none" else "written by a newer declaration"
        assert said in str(raised.value)


def test_a_read_of_rowid_stopped_while_it_reads_a_copy_says_why(store: Path) -> None:
    """Until the file is migrated, a statement naming ``rowid`` of a re-declared table reads a
    copy of the whole table (a view has no rowid). On a large table a point lookup ran past
    ``query_timeout`` each time, and the error said to narrow the query, which was as narrow as
    it gets."""
    # (exec_timeout: the 300,000 rows written first must not time out on a busy host)
    with sc.Runtime(store, query_timeout=0.01, exec_timeout=120) as rt:
        space = rt.space("demo")
        old = {"t": sc.table(k="text primary key", a="text")}
        db = space.sqlite_database("d", tables=old)
        _write(
            space,
            db,
            "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 300000) "
            "INSERT INTO t (k, a) SELECT 'k' || i, hex(randomblob(16)) FROM c",
        )
        new = {"t": sc.table(k="text primary key", a="text", b="integer default 7")}
        db = space.sqlite_database("d", tables=new)
        with pytest.raises(sc.QueryTimeout) as info:
            db.read("SELECT rowid, b FROM t WHERE k = 'k5'")
        assert "read a copy of the whole table" in str(info.value)
        assert "leave rowid out" in str(info.value)
        assert db.read("SELECT b FROM t WHERE k = 'k5'") == [{"b": 7}]


def test_a_live_query_through_shadows_follows_stored_columns_its_declaration_lacks(
    tmp_path: Path,
) -> None:
    """Read through shadows (the reader declares a table the file does not hold yet), a
    statement also reaches stored columns another program declared and this declaration does
    not: a ``*`` returns them, and an unqualified name resolves to them. A write of such a
    column re-runs the query (R51): its read set is the declared one and those columns."""
    written = {
        "t": sc.table(id="integer primary key", x="integer", e="integer"),
        "u": sc.table(uid="integer primary key", x="integer"),
    }
    declared = {
        "t": sc.table(id="integer primary key", x="integer"),
        "u": sc.table(uid="integer primary key"),
        "v": sc.table(y="integer"),  # not in the file yet: reads go through shadows
    }
    with (
        sc.Runtime(tmp_path, poll_interval=0.01) as writer,
        sc.Runtime(tmp_path, poll_interval=0.01) as reader,
    ):
        old = writer.space("s").sqlite_database("d", tables=written)
        _write(writer.space("s"), old, "INSERT INTO t (id, x, e) VALUES (1, 0, 1)")
        _write(writer.space("s"), old, "INSERT INTO u (uid, x) VALUES (1, 0)")
        new = reader.space("s").sqlite_database("d", tables=declared)
        star = new.query("SELECT * FROM t")
        resolved = new.query(
            "SELECT id FROM t WHERE EXISTS (SELECT 1 FROM u WHERE uid = t.id AND x = 5)"
        )
        reader.settle()
        assert star.get().result == [{"id": 1, "x": 0, "e": 1}]
        assert resolved.get().result == []
        _write(writer.space("s"), old, "UPDATE t SET e = 99")
        _wait_for(star, [{"id": 1, "x": 0, "e": 99}])
        _write(writer.space("s"), old, "UPDATE u SET x = 5")  # u.x: the subquery's x
        _wait_for(resolved, [{"id": 1}])


def test_an_additive_redeclaration_reruns_queries_made_with_react_on_too(rt: sc.Runtime) -> None:
    """R14 ("visible to reads at once"): a re-declaration re-runs every live query of the
    database — also those made with ``react_on=db`` or ``react_on=<cell>``, which used to keep
    the old rows until their next trigger, while queries reacting to what they read showed the
    added column at once. Nothing is written."""
    space = rt.space("demo")
    db = space.sqlite_database("d", tables=OLD)
    _write(space, db, "INSERT INTO t (a) VALUES (1)")
    c = space.cell("c", default=0)
    queries = {
        "by reads": db.query("SELECT * FROM t"),
        "react_on=db": db.query("SELECT * FROM t", react_on=db),
        "react_on=cell": db.query("SELECT * FROM t", react_on=c),
    }
    rt.settle()
    assert {k: q.get().result for k, q in queries.items()} == {k: [{"a": 1}] for k in queries}
    before = _fingerprint(db.path)
    space.sqlite_database("d", tables=NEW)
    rt.settle()
    row = {"a": 1, "c": 7, "n": None, "l_cf_link": None, "k": "x"}
    assert {k: q.get().result for k, q in queries.items()} == {k: [row] for k in queries}
    assert _fingerprint(db.path) == before and db.rev == 1


def test_a_query_made_after_a_redeclaration_never_shares_a_read_sent_before_it(
    rt: sc.Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """R14, R42: a live query asking for the rows of a statement another query of its database
    is reading shares that read only when it was sent under the same declaration. A query made
    after a re-declaration that added a column, while a read of its statement sent before it
    was still on a worker, took that read's rows (without the column) and kept them until the
    next write, while ``db.read`` showed the column. The read is held on its worker (a spy
    around the real read) until the second query has asked for its rows."""
    space = rt.space("demo")
    db = space.sqlite_database("d", tables=OLD)
    _write(space, db, "INSERT INTO t (a) VALUES (1)")
    sql = "SELECT * FROM t"
    started, release = threading.Event(), threading.Event()
    real = workers_module.read_batch

    def held(*args: Any, **kwargs: Any) -> Any:
        started.set()
        assert release.wait(10)
        return real(*args, **kwargs)

    monkeypatch.setattr(workers_module, "read_batch", held)
    first = db.query(sql)
    assert started.wait(10)  # its read is on a worker, sent under OLD
    again = space.sqlite_database("d", tables=NEW)
    second = again.query(sql)
    rt.scheduler.submit(release.set)  # after the second query's first run asked for its rows
    rt.settle()
    row = {"a": 1, "c": 7, "n": None, "l_cf_link": None, "k": "x"}
    assert again.read(sql) == [row]
    assert first.get().result == [row]
    assert second.get().result == [row]
    assert db.rev == 1


@pytest.mark.parametrize("tables", ["the same, with a new migrate each call", "other columns"])
def test_two_threads_declaring_one_database_at_once_each_get_a_handle(
    space: Space, tables: str
) -> None:
    """R1, R3, R14: two threads call ``sqlite_database`` for one database at once, 3000 times
    each. Each call returned a handle, as when the calls are made one after the other; a
    declaration recorded by the other thread between a call's own and the making of its handle
    made that call fail with InvalidArgument ("this declaration was not made by this runtime")
    or HandleNotWritable (its default no longer the declared one). Without the fix this fails
    only sometimes (the window is narrow; many calls and a short switch interval make it
    likely); with it, it passes every time. The later declaration is every handle's, and
    nothing is written (R13)."""
    columns = ("a", "a") if tables.startswith("the same") else ("a", "b")
    errors: list[BaseException] = []
    last: list[sc.SqliteDb] = []
    start = threading.Barrier(2)

    def declare(column: str) -> None:
        start.wait()
        db = None
        for _ in range(3000):
            try:
                db = space.sqlite_database(
                    "d",
                    tables={"t": sc.table(**{column: "integer"})},
                    version=2,
                    migrate=lambda conn, version: None,
                )
            except BaseException as exc:  # handed to the asserts
                errors.append(exc)
        if db is not None:
            last.append(db)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        workers = [threading.Thread(target=declare, args=(c,)) for c in columns]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    finally:
        sys.setswitchinterval(interval)
    assert [f"{type(e).__name__}: {e}" for e in errors] == []
    assert len(last) == 2
    latest = space.runtime.declaration(last[0].id)
    for db in last:
        assert db.declaration is latest
        assert latest.schema is not None and db.tables == dict(latest.schema.tables)
        assert db.get() == unwritten_handle(latest) and db.rev == 0
    assert not last[0].path.exists()


def test_a_database_input_resolves_while_another_thread_declares_its_database_again(
    rt: sc.Runtime, space: Space
) -> None:
    """R3, R14, R61: a pattern's database input finds its database at each use, while another
    thread declares that database again (the same tables, a new ``migrate`` function each
    call), 3000 times each. Each use found the database; a declaration recorded between the
    input's look-up of the declaration and the making of its handle made the use fail with
    InvalidArgument ("this declaration was not made by this runtime"). Without the fix this
    fails only sometimes (the window is narrow; many calls and a short switch interval make it
    likely); with it, it passes every time."""
    db = space.sqlite_database("d", tables=OLD)
    given: dict[str, sc.SqliteDb] = {}

    @sc.pattern
    def viewer(notes: sc.SqliteDb) -> dict[str, Any]:
        given["notes"] = notes
        return {}

    space.run(viewer, key="k", notes=db)
    rt.settle(10)
    linked = given["notes"]
    errors: list[BaseException] = []
    found: set[str] = set()
    start = threading.Barrier(2)

    def declare() -> None:
        start.wait()
        for _ in range(3000):
            try:
                space.sqlite_database("d", tables=OLD, migrate=lambda conn, version: None)
            except BaseException as exc:  # handed to the asserts
                errors.append(exc)

    def resolve() -> None:
        start.wait()
        for _ in range(3000):
            try:
                found.add(linked.target().id)  # type: ignore[attr-defined]  # a LinkedDb
            except BaseException as exc:  # handed to the asserts
                errors.append(exc)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        workers = [threading.Thread(target=work) for work in (declare, resolve)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    finally:
        sys.setswitchinterval(interval)
    assert [f"{type(e).__name__}: {e}" for e in errors] == []
    assert found == {db.id}
    assert linked.declaration is rt.declaration(db.id) and not db.path.exists()


@pytest.mark.parametrize("then", ["another that does not fit", "one that fits"])
def test_a_write_recorded_under_a_declaration_the_file_never_fit_is_no_conflict(
    store: Path, then: str
) -> None:
    """R13: a write recorded under a declaration the file does not fit (a column dropped) is
    refused with that declaration's differences, though the runtime declared the database anew
    before the commit, when the new declaration does not fit either: it was a ConflictError
    saying the file "now has the new declaration's tables", which it did not, and no retry
    could commit. When the new declaration fits, it is a conflict still (run again, the write
    commits), and the message no longer says that another commit changed the file."""
    with sc.Runtime(store) as rt:
        space = rt.space("s")
        db = space.sqlite_database("d", tables={"t": sc.table(a="integer", b="text")})
        _write(space, db, "INSERT INTO t (a, b) VALUES (1, 'x')")
        files = [db.path, Path(f"{db.path}-wal")]
        before = [read_bytes(f) if f.exists() else None for f in files]
        dropped = {"t": sc.table(a="integer")}
        later = (
            {"t": sc.table(a="integer", c="integer not null")}
            if then == "another that does not fit"
            else {"t": sc.table(a="integer", b="text", c="integer default 7")}
        )
        expected = (
            sc.UnsupportedMigration if then == "another that does not fit" else sc.ConflictError
        )
        with pytest.raises(expected) as raised, space.transact():
            space.sqlite_database("d", tables=dropped).exec("INSERT INTO t (a) VALUES (2)")
            space.sqlite_database("d", tables=later)
        said = str(raised.value)
        if expected is sc.UnsupportedMigration:
            assert "t.b: the stored column is not declared" in said, said
        else:
            assert "which the file's tables do not fit, while the new declaration does" in said
            assert "now has" not in said
        assert [read_bytes(f) if f.exists() else None for f in files] == before
        assert db.rev == 1
        if then == "one that fits":
            _write(space, db, "INSERT INTO t (a) VALUES (3)")
            assert db.read("SELECT a, b, c FROM t ORDER BY a") == [
                {"a": 1, "b": "x", "c": 7},
                {"a": 3, "b": None, "c": 7},
            ]
