"""Queries react to what they read (R51): read sets from SQLite, write sets from changesets."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import apsw
import pytest

import sqlite_cells as sc
import sqlite_cells.read._changes as changes_module
import sqlite_cells.read._live as live_module
import sqlite_cells.read._workers as workers_module
from sqlite_cells._runtime import Space
from sqlite_cells.codec import Op
from sqlite_cells.files import KIND, OpBody, encode_op_body
from sqlite_cells.read._changes import ALL_COLUMNS, affects, write_sets
from sqlite_cells.runtime import CommitEvent

TABLES = {
    "messages": sc.table(
        id="integer primary key",
        author_cf_link=sc.cf_link(),
        body="text not null",
        ts="integer not null default 0",
    ),
    "people": sc.table(id="integer primary key", name="text"),
    "notes": sc.table(text="text", score="integer"),  # no primary key: captured by rowid
}

BODIES = "SELECT body FROM messages ORDER BY id"
COUNT = "SELECT count(*) AS n FROM messages"
BY_TS = "SELECT id FROM messages WHERE ts > 5 ORDER BY id"
NAMES = "SELECT name FROM people ORDER BY id"
SCORES = "SELECT score FROM notes ORDER BY rowid"


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """How many times each statement was run by a worker (a spy around the real read)."""
    counted: Counter[str] = Counter()
    real = workers_module.read_batch

    def counting(*args: Any, **kwargs: Any) -> Any:
        counted.update(stmt.sql for stmt in args[2][kwargs.get("start", 0) :])
        return real(*args, **kwargs)

    monkeypatch.setattr(workers_module, "read_batch", counting)  # reads on the workers
    monkeypatch.setattr(live_module, "read_batch", counting)  # cheap ones on the scheduler
    return counted


@pytest.fixture
def space(rt: sc.Runtime) -> Space:
    return rt.space("demo")


@pytest.fixture
def db(rt: sc.Runtime, space: Space) -> sc.SqliteDb:
    db = space.sqlite_database("chat", tables=TABLES)
    _exec(space, db, "INSERT INTO messages (body, ts) VALUES ('a', 1), ('b', 10)")
    _exec(space, db, "INSERT INTO people (name) VALUES ('ann')")
    _exec(space, db, "INSERT INTO notes (text, score) VALUES ('n', 1)")
    rt.settle()
    return db


def _exec(space: Space, db: sc.SqliteDb, sql: str, params: Any = None) -> None:
    with space.transact():
        db.exec(sql, params)


def _live(rt: sc.Runtime, db: sc.SqliteDb, calls: Counter[str], *sqls: str) -> list[sc.Query]:
    queries = [db.query(sql) for sql in sqls]
    rt.settle()
    assert all(q.get().error is None for q in queries), [q.get() for q in queries]
    calls.clear()
    return queries


def _after(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb, calls: Counter[str], sql: str
) -> Counter[str]:
    calls.clear()
    _exec(space, db, sql)
    rt.settle()
    return Counter(calls)


def test_an_update_reruns_only_queries_reading_a_changed_column(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb, calls: Counter[str]
) -> None:
    bodies, count, by_ts = _live(rt, db, calls, BODIES, COUNT, BY_TS)
    ran = _after(rt, space, db, calls, "UPDATE messages SET body = 'A' WHERE id = 1")
    assert ran == Counter({BODIES: 1})
    assert bodies.get().result == [{"body": "A"}, {"body": "b"}]
    # A column read only in WHERE counts too (any clause).
    ran = _after(rt, space, db, calls, "UPDATE messages SET ts = 20 WHERE id = 1")
    assert ran == Counter({BY_TS: 1})
    assert by_ts.get().result == [{"id": 1}, {"id": 2}]
    assert count.get().result == [{"n": 2}]


def test_an_update_of_an_unread_column_reruns_nothing(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb, calls: Counter[str]
) -> None:
    _live(rt, db, calls, BODIES, COUNT, BY_TS)
    ran = _after(rt, space, db, calls, "UPDATE messages SET author_cf_link = NULL")
    assert ran == Counter()


def test_an_update_that_changes_no_value_reruns_nothing(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb, calls: Counter[str]
) -> None:
    _live(rt, db, calls, BODIES)
    assert _after(rt, space, db, calls, "UPDATE messages SET body = body") == Counter()


def test_count_star_reruns_on_insert_and_delete_only(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb, calls: Counter[str]
) -> None:
    (count,) = _live(rt, db, calls, COUNT)
    assert _after(rt, space, db, calls, "UPDATE messages SET body = 'x', ts = 3") == Counter()
    assert _after(rt, space, db, calls, "INSERT INTO messages (body) VALUES ('c')") == Counter(
        {COUNT: 1}
    )
    assert count.get().result == [{"n": 3}]
    assert _after(rt, space, db, calls, "DELETE FROM messages WHERE id = 1") == Counter({COUNT: 1})
    assert count.get().result == [{"n": 2}]


def test_what_one_write_undid_in_the_same_commit_reruns_nothing(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb, calls: Counter[str]
) -> None:
    """The write set is the commit's net change: a row inserted and deleted again by two writes
    of one transaction changed nothing a query reads."""
    (count,) = _live(rt, db, calls, COUNT)
    with space.transact():
        db.exec("INSERT INTO messages (id, body) VALUES (50, 'tmp')")
        db.exec("DELETE FROM messages WHERE id = 50")
    rt.settle()
    assert calls == Counter()
    with space.transact():  # two writes that both stay are still seen
        db.exec("INSERT INTO messages (id, body) VALUES (51, 'kept')")
        db.exec("UPDATE people SET name = 'bo'")
    rt.settle()
    assert calls == Counter({COUNT: 1})
    assert count.get().result == [{"n": 3}]


def test_the_net_change_of_many_writes_of_one_commit_is_its_write_set(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb, calls: Counter[str]
) -> None:
    """Many ops of one commit are combined as one (a change group: a concatenation per op
    made a commit of 20,000 ops take 25 s before its queries heard of it): 300 inserts each
    deleted again by a later op change nothing; one row kept among them is seen, once."""
    (count,) = _live(rt, db, calls, COUNT)
    with space.transact():
        for n in range(100, 400):
            db.exec("INSERT INTO messages (id, body) VALUES (?, 'tmp')", [n])
        for n in range(100, 400):
            db.exec("DELETE FROM messages WHERE id = ?", [n])
    rt.settle()
    assert calls == Counter()
    with space.transact():
        for n in range(100, 400):
            db.exec("INSERT INTO messages (id, body) VALUES (?, 'tmp')", [n])
        for n in range(100, 400):
            if n != 250:
                db.exec("DELETE FROM messages WHERE id = ?", [n])
    rt.settle()
    assert calls == Counter({COUNT: 1})
    assert count.get().result == [{"n": 3}]


def test_writes_to_another_table_rerun_nothing(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb, calls: Counter[str]
) -> None:
    _live(rt, db, calls, BODIES, COUNT)
    assert _after(rt, space, db, calls, "INSERT INTO people (name) VALUES ('bo')") == Counter()
    assert _after(rt, space, db, calls, "DELETE FROM notes") == Counter()


def test_rowid_tables_map_changed_columns_exactly(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb, calls: Counter[str]
) -> None:
    (scores,) = _live(rt, db, calls, SCORES)
    assert _after(rt, space, db, calls, "UPDATE notes SET text = 'm'") == Counter()
    assert _after(rt, space, db, calls, "UPDATE notes SET score = 5") == Counter({SCORES: 1})
    assert scores.get().result == [{"score": 5}]


def test_a_join_reads_both_tables(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb, calls: Counter[str]
) -> None:
    join = "SELECT m.body, p.name FROM messages m JOIN people p ON p.id = m.id"
    (q,) = _live(rt, db, calls, join)
    assert _after(rt, space, db, calls, "UPDATE people SET name = 'anna'") == Counter({join: 1})
    assert q.get().result == [{"body": "a", "name": "anna"}]
    assert _after(rt, space, db, calls, "UPDATE messages SET ts = 0") == Counter()


JOINED = {
    "t": sc.table(id="integer primary key", a="integer", b="integer"),
    "u": sc.table(id="integer primary key", a="integer", x="integer", note="text"),
    "other": sc.table(v="integer"),
}


@pytest.mark.parametrize(
    "join",
    [
        "SELECT b FROM t JOIN u USING (a) ORDER BY b",
        "SELECT b FROM t NATURAL JOIN u ORDER BY b",
        "SELECT count(*) AS n FROM t LEFT JOIN u USING (a) WHERE x IS NULL",
    ],
)
def test_a_join_by_column_name_reruns_when_its_key_changes_in_either_table(
    rt: sc.Runtime, space: Space, calls: Counter[str], join: str
) -> None:
    """SQLite does not tell the authorizer it reads the columns a NATURAL join or USING (…)
    matches: such a query kept its rows when only a key changed. The keys are added to its
    read set (for NATURAL, the columns its tables share: `id` and `a` here), nothing more."""
    db = space.sqlite_database("joined", tables=JOINED)
    with space.transact():
        db.exec("INSERT INTO t (id, a, b) VALUES (1, 1, 1), (2, 2, 2), (3, 3, 3)")
        db.exec("INSERT INTO u (id, a, x) VALUES (1, 1, 10), (2, 2, 20)")
    (q,) = _live(rt, db, calls, join)
    before = q.get().result
    for update in ("UPDATE u SET a = a + 100 WHERE id = 1", "UPDATE t SET a = a + 200"):
        assert _after(rt, space, db, calls, update) == Counter({join: 1})
        assert q.get().result == db.read(join)
    assert q.get().result != before
    assert _after(rt, space, db, calls, "UPDATE u SET note = 'unread'") == Counter()
    assert _after(rt, space, db, calls, "INSERT INTO other (v) VALUES (1)") == Counter()


@pytest.mark.parametrize(
    "join",
    [
        "SELECT t.id FROM t NATURAL JOIN (SELECT x AS b FROM u) ORDER BY t.id",
        "WITH s(b) AS (SELECT x FROM u) SELECT t.id FROM t NATURAL JOIN s ORDER BY t.id",
    ],
)
def test_a_natural_join_on_a_renamed_column_reruns_when_that_key_changes(
    rt: sc.Runtime, space: Space, calls: Counter[str], join: str
) -> None:
    """The key `b` is no column `t` and `u` share: a subquery's alias (or a CTE's column list)
    makes it one, so the names the statement spells count as keys of a NATURAL join."""
    db = space.sqlite_database("joined", tables=JOINED)
    with space.transact():
        db.exec("INSERT INTO t (id, a, b) VALUES (1, 1, 1), (2, 2, 2)")
        db.exec("INSERT INTO u (id, a, x) VALUES (1, 1, 10)")
    (q,) = _live(rt, db, calls, join)
    assert q.get().result == []
    assert _after(rt, space, db, calls, "UPDATE t SET b = 10 WHERE id = 2") == Counter({join: 1})
    assert q.get().result == [{"id": 2}] == db.read(join)
    assert _after(rt, space, db, calls, "UPDATE u SET note = 'unread'") == Counter()


@pytest.mark.parametrize(
    "join",
    [
        "SELECT t.id FROM t NATURAL JOIN t AS t2 ORDER BY t.id",
        "SELECT t.id FROM t NATURAL LEFT JOIN t AS t2 WHERE t2.id IS NOT NULL ORDER BY t.id",
    ],
)
def test_a_natural_self_join_reruns_when_any_of_its_columns_changes(
    rt: sc.Runtime, space: Space, calls: Counter[str], join: str
) -> None:
    """A table joined to itself by NATURAL shares every column with itself: each is a key,
    though the statement names the table's name only once in its set of tables."""
    db = space.sqlite_database("joined", tables=JOINED)
    with space.transact():
        db.exec("INSERT INTO t (id, a, b) VALUES (1, 1, 1), (2, 2, 2)")
    (q,) = _live(rt, db, calls, join)
    assert q.get().result == [{"id": 1}, {"id": 2}]
    # NULL = NULL is not true: row 1 no longer joins itself.
    assert _after(rt, space, db, calls, "UPDATE t SET b = NULL WHERE id = 1") == Counter({join: 1})
    assert q.get().result == [{"id": 2}] == db.read(join)
    assert _after(rt, space, db, calls, "UPDATE u SET note = 'unread'") == Counter()


def test_react_on_db_reruns_after_every_write(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb, calls: Counter[str]
) -> None:
    q = db.query(COUNT, react_on=db)
    rt.settle()
    before = q.get().seq
    assert _after(rt, space, db, calls, "UPDATE people SET name = 'x'") == Counter({COUNT: 1})
    assert q.get().seq > before and q.get().result == [{"n": 2}]


def test_identical_queries_share_one_read(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb, calls: Counter[str]
) -> None:
    queries = [db.query(BODIES) for _ in range(50)]
    rt.settle()
    # First runs are shared too when they meet in flight; how many meet depends on timing.
    assert 1 <= calls[BODIES] < 50
    ran = _after(rt, space, db, calls, "UPDATE messages SET body = 'z' WHERE id = 2")
    assert ran == Counter({BODIES: 1})
    assert {repr(q.get().result) for q in queries} == {repr([{"body": "a"}, {"body": "z"}])}
    assert len({q.get().seq for q in queries}) == 1


def test_a_commit_of_another_process_reruns_exactly_the_affected_queries(
    store: Path, calls: Counter[str]
) -> None:
    script = textwrap.dedent(
        f"""
        import sys
        import sqlite_cells as sc
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_read_sets import TABLES
        with sc.Runtime(sys.argv[1]) as rt:
            space = rt.space("demo")
            db = space.sqlite_database("chat", tables=TABLES)
            with space.transact():
                db.exec(sys.argv[2])
        """
    )

    def other_process(sql: str) -> None:
        done = subprocess.run(
            [sys.executable, "-c", script, str(store), sql], capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr

    other_process("INSERT INTO messages (body, ts) VALUES ('a', 1)")
    with sc.Runtime(store, poll_interval=0.01) as rt:
        db = rt.space("demo").sqlite_database("chat", tables=TABLES)
        bodies, names = db.query(BODIES), db.query(NAMES)
        rt.settle()
        calls.clear()
        other_process("UPDATE messages SET body = 'from afar'")
        # Commits of another process arrive by polling: wait for the state, not for time.
        reached = threading.Event()
        bodies.observe().subscribe(
            lambda state: state.result == [{"body": "from afar"}] and reached.set()
        )
        assert reached.wait(30), bodies.get()
        rt.settle()
        # Only the query reading the changed column re-ran. It may have run more than once:
        # the other process commits the space file first, and a read that lands before the
        # database file's commit sees an older watermark and is done again after a back-off
        # (see read/_live.py), as often as a slow writer keeps it early.
        assert set(calls) == {BODIES}
        assert calls[BODIES] >= 1
        assert names.get().result == []


def test_write_sets_name_changed_columns_and_cascades() -> None:
    """The write set of a changeset: INSERT/DELETE all columns, UPDATE the changed ones,
    foreign-key cascades included (unit level: the runtime's files do not enable FKs)."""
    conn = apsw.Connection(":memory:")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute(
        "CREATE TABLE p (id INTEGER PRIMARY KEY, name TEXT);"
        "CREATE TABLE k (id INTEGER PRIMARY KEY, p INTEGER REFERENCES p(id) ON DELETE CASCADE,"
        " v TEXT);"
        "INSERT INTO p VALUES (1, 'a'), (2, 'b'); INSERT INTO k VALUES (1, 1, 'x');"
    )
    session = apsw.Session(conn, "main")
    session.attach()
    conn.execute("UPDATE p SET name = 'c' WHERE id = 2; DELETE FROM p WHERE id = 1")
    changeset = session.changeset()
    op = Op(KIND, "of:db", encode_op_body(OpBody("DELETE …", [], False, changeset)))

    def columns(_db: str, table: str, width: int, _cookie: int | None) -> list[str] | None:
        names = {"p": ["id", "name"], "k": ["id", "p", "v"]}[table]
        return names if len(names) == width else None

    found = write_sets([op], columns)
    assert found == {"of:db": {"p": ALL_COLUMNS, "k": ALL_COLUMNS}}
    assert affects(found["of:db"], {"k": frozenset({"v"})})
    assert not affects({"p": frozenset({"name"})}, {"p": frozenset({""})})
    assert affects({"p": ALL_COLUMNS}, {"p": frozenset({""})})


def test_events_carry_what_the_hook_needs(rt: sc.Runtime, space: Space, db: sc.SqliteDb) -> None:
    seen: list[CommitEvent] = []

    def hook(event: CommitEvent) -> list[Any]:
        seen.append(event)
        return []

    rt.scheduler.add_commit_hook(hook)
    _exec(space, db, "UPDATE people SET name = 'z'")
    rt.settle()
    (event,) = [e for e in seen if e.ops]
    found = write_sets(event.ops, rt.live_queries._columns)
    assert found == {db.id: {"people": frozenset({"name"})}}


def test_one_commit_that_changes_a_param_and_a_read_column_reruns_once(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb, calls: Counter[str]
) -> None:
    """R54: the commit hook and the graph dependency meet in one round."""
    after = space.cell("after", default=0)
    sql = "SELECT body FROM messages WHERE ts > ? ORDER BY id"
    q = db.query(sql, params=[after])
    rt.settle()
    calls.clear()
    seen: list[Any] = []
    q.observe().subscribe(seen.append)
    rt.settle()
    with space.transact():
        after.set(5)
        db.exec("UPDATE messages SET body = 'B' WHERE id = 2")
    rt.settle()
    assert calls == Counter({sql: 1})
    assert q.get().result == [{"body": "B"}]
    # New params: pending (old rows kept visible, R42), then the one new result.
    assert [(s.pending, s.result) for s in seen] == [
        (False, [{"body": "a"}, {"body": "b"}]),
        (True, [{"body": "a"}, {"body": "b"}]),
        (False, [{"body": "B"}]),
    ]


def test_a_read_that_ran_before_the_file_caught_up_is_done_again(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process's commit reaches the space file before the database file: a re-run can
    read the file too early (its watermark is older than the commit). It is read again."""
    q = db.query(BODIES)
    rt.settle()
    lag = [True]
    reads: list[int] = []
    real = workers_module.read_batch

    def lagging(*args: Any, **kwargs: Any) -> Any:
        seq, results = real(*args, **kwargs)
        reads.append(seq)
        if lag[0]:
            lag[0] = False
            return seq - 1, results  # as if the file still held the previous commit
        return seq, results

    monkeypatch.setattr(workers_module, "read_batch", lagging)
    monkeypatch.setattr(live_module, "read_batch", lagging)
    with space.transact() as tx:
        db.exec("UPDATE messages SET body = 'late' WHERE id = 1")
    rt.settle()
    assert len(reads) == 2 and q.get().seq == tx.seq
    assert q.get().result == [{"body": "late"}, {"body": "b"}]


@pytest.mark.parametrize(
    ("key", "stored", "renamed"),
    [
        ("text primary key collate nocase", "a", "A"),
        ("text primary key collate rtrim", "a", "a "),
        ("blob primary key", 1, 1.0),
    ],
)
@pytest.mark.parametrize("other_runtime", [False, True])
def test_a_row_renamed_to_an_equal_key_then_deleted_in_one_commit_reruns_its_readers(
    rt: sc.Runtime, store: Path, key: str, stored: Any, renamed: Any, other_runtime: bool
) -> None:
    """A key changed to one SQLite finds equal is recorded by the session as an INSERT of the
    new spelling and an UPDATE of the key; combined with a later DELETE of that row, the INSERT
    and the DELETE cancelled and the commit's write set was an UPDATE of the key alone: count(*)
    and a sum of another column kept the deleted row, here and in another runtime (R51, R53)."""
    space = rt.space("keys")
    tables = {"kv": sc.table(k=key, n="integer")}
    db = space.sqlite_database("d", tables=tables)
    with space.transact():
        db.exec_many("INSERT INTO kv (k, n) VALUES (?, ?)", [(stored, 1), ("b", 2)])
    sql = "SELECT count(*) AS c, sum(n) AS s FROM kv"
    with sc.Runtime(store) if other_runtime else rt as watcher:
        seen = watcher.space("keys").sqlite_database("d", tables=tables)
        query = seen.query(sql)
        watcher.settle()
        assert query.get().result == [{"c": 2, "s": 3}]
        with space.transact():
            db.exec("UPDATE kv SET k = ? WHERE k = ?", [renamed, stored])
            db.exec("DELETE FROM kv WHERE k = ?", [renamed])
        rt.settle()
        deadline = time.monotonic() + 5
        while query.get().result != [{"c": 1, "s": 2}] and time.monotonic() < deadline:
            watcher.settle()
            time.sleep(0.01)
        assert seen.read(sql) == [{"c": 1, "s": 2}]
        assert query.get().result == [{"c": 1, "s": 2}], query.get()


def test_a_key_changed_to_an_equal_one_counts_as_every_column(tmp_path: Path) -> None:
    """The combined changeset of a rename to an equal key and a DELETE of the row is an UPDATE of
    the key alone; a real key change is a DELETE and an INSERT to the session, so an UPDATE that
    changes a key column stands for one (R51). A row deleted and inserted again with one value
    changed stays an UPDATE of that value."""
    conn = apsw.Connection(str(tmp_path / "d.sqlite"))
    conn.execute("CREATE TABLE kv (k TEXT PRIMARY KEY COLLATE NOCASE, n, m)")
    conn.execute("INSERT INTO kv VALUES ('a', 1, 1), ('b', 2, 2)")

    def op(sql: str) -> Op:
        session = apsw.Session(conn, "main")
        session.attach()
        conn.execute(sql)
        body = OpBody(sql, [], False, session.changeset())
        session.close()
        return Op(KIND, "db", encode_op_body(body))

    def names(db_id: str, table: str, width: int, cookie: int | None) -> list[str]:
        return ["k", "n", "m"]

    renamed = [op("UPDATE kv SET k = 'A' WHERE k = 'a'"), op("DELETE FROM kv WHERE k = 'A'")]
    assert write_sets(renamed, names) == {"db": {"kv": ALL_COLUMNS}}
    again = [op("DELETE FROM kv WHERE k = 'b'"), op("INSERT INTO kv VALUES ('b', 2, 5)")]
    assert write_sets(again, names) == {"db": {"kv": {"m"}}}


def test_a_large_update_s_write_set_is_read_table_by_table_not_change_by_change(
    rt: sc.Runtime,
    space: Space,
    db: sc.SqliteDb,
    calls: Counter[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """R51, R44, R53: a commit's write set is worked out on the scheduler thread; read change
    by change in Python, an UPDATE of a million rows held every subscriber of the runtime ≈ 2
    s, also when it changed a column no query reads (a later change may change one that is
    read, so every change was looked at). The changeset is read in C, off the GIL, and Python
    sees each table once — and still exactly the queries reading a changed column re-run."""
    _exec(space, db, "INSERT INTO notes (text, score) SELECT 'x', value FROM json_each(?)",
          [json_list(20_000)])  # fmt: skip
    by_ts, scores = _live(rt, db, calls, BY_TS, SCORES)
    looked = Counter[str]()
    real_fold = changes_module.fold_ascii

    def counting(name: str) -> str:
        looked[name] += 1
        return real_fold(name)

    monkeypatch.setattr(changes_module, "fold_ascii", counting)
    ran = _after(rt, space, db, calls, "UPDATE notes SET score = score + 1")
    assert ran == Counter({SCORES: 1})  # (no query reads messages)
    assert scores.get().result is not None and len(scores.get().result) == 20_001
    assert sum(looked.values()) < 100, looked  # (each of the 20,001 changes was looked at)
    looked.clear()
    # A column no query reads: nothing re-runs, and the changes are not looked at one by one.
    assert _after(rt, space, db, calls, "UPDATE notes SET text = 'y'") == Counter()
    assert by_ts.get().error is None
    assert sum(looked.values()) < 100, looked


def json_list(n: int) -> str:
    return "[" + ",".join(str(i) for i in range(n)) + "]"


def test_the_cookies_of_files_read_are_kept_for_a_bounded_number_of_files(
    rt: sc.Runtime, space: Space, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The schema cookie each database file had at its last read keys the read sets; it was
    kept for every file any runtime of the process ever read, closed runtimes' included
    (≈ 2.5 MB per 1,000 ephemeral runtimes). At most ``_COOKIES_SIZE`` files are kept; a file
    whose cookie went reads as before (its read set is worked out again)."""
    import sqlite_cells.read._reader as reader_module

    monkeypatch.setattr(reader_module, "_COOKIES", {})
    monkeypatch.setattr(reader_module, "_COOKIES_SIZE", 3)
    tables = {"t": sc.table(id="integer primary key", v="text")}
    dbs = [space.sqlite_database(f"d{n}", tables=tables) for n in range(5)]
    for n, db in enumerate(dbs):
        _exec(space, db, "INSERT INTO t (v) VALUES (?)", [f"v{n}"])
        assert db.read("SELECT v FROM t") == [{"v": f"v{n}"}]
    assert len(reader_module._COOKIES) == 3
    assert dbs[0].path not in reader_module._COOKIES
    assert dbs[0].read("SELECT v FROM t") == [{"v": "v0"}]  # read again, noted again
    assert dbs[0].path in reader_module._COOKIES and len(reader_module._COOKIES) == 3
