"""Reactivity as the contract words it, attacked clause by clause (R50–R54, R42, §3): what a
subscriber may see of a commit that failed, what re-runs a live query (seen through the
public ``QueryState.seq``: a re-run takes the seq of the commit it reflects, R42), the order
of re-runs inside one commit, and subscribers that misbehave."""

from __future__ import annotations

import ast
import collections
import dataclasses
import glob
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import sqlite_cells as sc
from sqlite_cells._runtime import Space

TABLES = {
    "items": sc.table(
        id="integer primary key",
        name="text not null default '' unique",
        price="integer not null default 0",
        qty="integer not null default 0",
        note="text",
    ),
    "tags": sc.table(id="integer primary key", item_id="integer", tag="text"),
}

_SQLITE3_READER = """
import ast, sqlite3, sys
print("ready", flush=True)
for line in sys.stdin:
    path, sql, params = ast.literal_eval(line)
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        row = conn.execute(sql, params).fetchone()
    finally:
        conn.close()
    print(repr(row), flush=True)
"""


class Sqlite3Reader:
    """Fresh connections of Python's ``sqlite3`` (another SQLite library than the runtime's), one
    per read, in another process that stays up for the test (no process started per read).
    In this process such a connection would share the POSIX locks on the file with the runtime's
    connections: its unlocks and its close would drop theirs."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process = subprocess.Popen(
            [sys.executable, "-c", _SQLITE3_READER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._process.stdout is not None
        assert self._process.stdout.readline() == "ready\n"  # up before the first read

    def first_row(self, path: str | Path, sql: str, params: tuple[object, ...] = ()) -> Any:
        assert self._process.stdin is not None and self._process.stdout is not None
        with self._lock:
            self._process.stdin.write(repr((str(path), sql, params)) + "\n")
            self._process.stdin.flush()
            return ast.literal_eval(self._process.stdout.readline())

    def close(self) -> int:
        """The reader's exit status: 0 unless a read failed."""
        assert self._process.stdin is not None and self._process.stdout is not None
        self._process.stdin.close()
        self._process.stdout.close()
        return self._process.wait(timeout=60)


@pytest.fixture
def sqlite3_reader() -> Iterator[Sqlite3Reader]:
    reader = Sqlite3Reader()
    try:
        yield reader
    finally:
        assert reader.close() == 0


FAMILY = {
    "parents": sc.table(id="integer primary key", name="text"),
    "children": sc.table(
        id="integer primary key",
        parent_id="integer references parents(id) on delete cascade",
        name="text",
    ),
}


def wait_for(predicate: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return predicate()


@pytest.fixture
def space(rt: sc.Runtime) -> Space:
    return rt.space("demo")


@pytest.fixture
def db(rt: sc.Runtime, space: Space) -> sc.SqliteDb:
    db = space.sqlite_database("shop", tables=TABLES)
    with space.transact():
        db.exec(
            "INSERT INTO items (name, price, qty, note) VALUES (?, ?, ?, ?)",
            ["apple", 3, 10, "red"],
        )
    with space.transact():
        db.exec(
            "INSERT INTO items (name, price, qty, note) VALUES (?, ?, ?, ?)",
            ["pear", 5, 2, "green"],
        )
    with space.transact():
        db.exec("INSERT INTO tags (item_id, tag) VALUES (1, 'fruit'), (2, 'fruit')")
    assert rt.settle(10)
    return db


def write(space: Space, db: sc.SqliteDb, sql: str, params: Any = None) -> int:
    with space.transact() as tx:
        db.exec(sql, params)
    assert tx.seq is not None
    return tx.seq


def live(rt: sc.Runtime, db: sc.SqliteDb, sql: str, **kwargs: Any) -> sc.Query[Any]:
    q = db.query(sql, **kwargs)
    assert rt.settle(10)
    state = q.get()
    assert not state.pending and state.error is None, state
    return q


# --- R50: nothing rolled back is ever seen ------------------------------------------------------


def _recorders(
    space: Space, db: sc.SqliteDb
) -> tuple[sc.Cell, sc.Query[Any], list[Any], list[Any], list[Any]]:
    cell = space.cell("stock", default=0)
    q = db.query("SELECT name, qty FROM items ORDER BY id")
    doubled = sc.derive(cell, lambda v: v * 2)
    cells: list[Any] = []
    states: list[Any] = []
    derived: list[Any] = []
    cell.observe().subscribe(cells.append)
    q.observe().subscribe(states.append)
    doubled.observe().subscribe(derived.append)
    return cell, q, cells, states, derived


def _nothing_seen_of(
    value: int, rows: str, cells: list[Any], states: list[Any], derived: list[Any]
) -> None:
    assert value not in cells, cells
    assert value * 2 not in derived, derived
    assert all(rows not in [r["name"] for r in s.result or []] for s in states), states


def test_a_handler_that_raises_after_writing_shows_nothing(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb
) -> None:
    cell, q, cells, states, derived = _recorders(space, db)
    assert rt.settle(10)
    before = q.get()

    @sc.handler
    def fail(*, stock: sc.Cell) -> None:
        stock.set(666)
        db.exec("INSERT INTO items (name, qty) VALUES ('ghost', 666)")
        raise RuntimeError("changed my mind")

    with pytest.raises(RuntimeError, match="changed my mind"):
        fail(stock=cell)
    assert rt.settle(10)
    _nothing_seen_of(666, "ghost", cells, states, derived)
    assert cell.get() == 0 and q.get() == before
    assert db.read("SELECT count(*) AS n FROM items WHERE name = 'ghost'") == [{"n": 0}]


def test_a_commit_whose_database_write_fails_shows_no_cell_of_it(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb
) -> None:
    """A cell write, then a row that breaks a constraint at commit (R34): everything rolls
    back, the error is an ExecError naming the database, and nobody hears of the cell."""
    cell, _q, cells, states, derived = _recorders(space, db)
    assert rt.settle(10)
    rev = db.rev
    with pytest.raises(sc.ExecError) as info, space.transact():
        cell.set(777)
        db.exec("INSERT INTO items (name, qty) VALUES ('apple', 777)")  # name is unique
    assert info.value.db_id == db.id
    assert "UNIQUE" in str(info.value)
    assert rt.settle(10)
    _nothing_seen_of(777, "ghost", cells, states, derived)
    assert cell.get() == 0 and db.rev == rev
    assert [s.result for s in states if not s.pending][-1] == [
        {"name": "apple", "qty": 10},
        {"name": "pear", "qty": 2},
    ]


def test_a_commit_failing_on_its_second_statement_undoes_its_first(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb
) -> None:
    cell, _q, cells, states, derived = _recorders(space, db)
    assert rt.settle(10)
    with pytest.raises(sc.ExecError), space.transact():
        cell.set(888)
        db.exec("INSERT INTO items (name, qty) VALUES ('ghost', 888)")
        db.exec("UPDATE items SET qty = NULL WHERE name = 'ghost'")  # NOT NULL
    assert rt.settle(10)
    _nothing_seen_of(888, "ghost", cells, states, derived)
    assert db.read("SELECT count(*) AS n FROM items") == [{"n": 2}]


def test_a_conflicting_attempt_is_never_seen_only_the_retry(store: Path) -> None:
    """The first attempt of a handler conflicts (another runtime commits the cell it read in
    between); the retry commits. Subscribers — here and in the other runtime — never see the
    first attempt's writes."""
    with sc.Runtime(store, poll_interval=0.01) as a, sc.Runtime(store, poll_interval=0.01) as b:
        cell_a = a.space("demo").cell("n", default=0)
        cell_b = b.space("demo").cell("n", default=0)
        seen_a: list[Any] = []
        seen_b: list[Any] = []
        cell_a.observe().subscribe(seen_a.append)
        cell_b.observe().subscribe(seen_b.append)
        attempts: list[int] = []

        @sc.handler
        def bump(*, n: sc.Cell) -> None:
            attempts.append(n.get())
            if len(attempts) == 1:

                def other() -> None:  # another runtime, another thread: its own commit
                    with b.space("demo").transact():
                        cell_b.set(100)

                thread = threading.Thread(target=other)
                thread.start()
                thread.join(20)
            n.set(n.get() + 1 if len(attempts) > 1 else -1)

        seq = bump(n=cell_a)
        assert isinstance(seq, int)
        assert len(attempts) == 2 and attempts[1] == 100
        assert cell_a.get() == 101
        assert wait_for(lambda: seen_b[-1:] == [101])
        assert a.settle(10) and b.settle(10)
        assert -1 not in seen_a and -1 not in seen_b
        assert seen_a[-1] == 101


def test_subscribers_hear_of_a_commit_only_once_another_connection_can_read_it(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb, store: Path, sqlite3_reader: Sqlite3Reader
) -> None:
    """R50, durable first: when a subscriber is called, a fresh connection of another library
    (in another process) on the store's files already reads the commit (the cell in the space
    file, the rows in the database file)."""
    cell = space.cell("stock", default=0)
    q = db.query("SELECT count(*) AS n FROM items")
    space_files = glob.glob(str(store / "space-*.sqlite"))
    assert len(space_files) == 1
    problems: list[Any] = []

    def stored_cell() -> Any:
        sql = "SELECT value FROM _cf_cells WHERE id = ?"
        row = sqlite3_reader.first_row(space_files[0], sql, (cell.id,))
        return None if row is None else int(row[0])

    def stored_rows() -> int:
        return int(sqlite3_reader.first_row(db.path, "SELECT count(*) FROM items")[0])

    def on_cell(value: int) -> None:
        if value and stored_cell() != value:
            problems.append(("cell", value, stored_cell()))

    def on_rows(state: sc.QueryState[Any]) -> None:
        if state.result and stored_rows() < state.result[0]["n"]:
            problems.append(("rows", state.result, stored_rows()))

    cell.observe().subscribe(on_cell)
    q.observe().subscribe(on_rows)
    assert rt.settle(10)
    for n in range(1, 6):
        with space.transact():
            cell.set(n)
            db.exec("INSERT INTO items (name) VALUES (?)", [f"x{n}"])
        assert rt.settle(10)
    assert problems == []
    assert q.get().result == [{"n": 7}]


# --- R51: what re-runs a query ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "column"),
    [
        ("SELECT id FROM items WHERE qty > 5 ORDER BY id", "qty"),
        ("SELECT id FROM items ORDER BY price, id", "price"),
        ("SELECT t.tag FROM tags t JOIN items i ON i.price = t.item_id + 2 ORDER BY t.id", "price"),
        ("SELECT id FROM tags WHERE item_id IN (SELECT id FROM items WHERE qty > 5)", "qty"),
        (
            "WITH cheap AS (SELECT id FROM items WHERE price < 4) SELECT count(*) AS n FROM cheap",
            "price",
        ),
        ("SELECT id FROM items GROUP BY id HAVING max(note) IS NOT NULL", "note"),
        ("SELECT (SELECT max(qty) FROM items) AS m", "qty"),
        ("SELECT upper(name) AS n FROM items WHERE lower(note) LIKE '%e%'", "note"),
        ("SELECT id, sum(price) OVER (ORDER BY qty) AS s FROM items ORDER BY id", "qty"),
        ("SELECT count(*) FILTER (WHERE note IS NOT NULL) AS n FROM items", "note"),
        ("SELECT count(price) AS n FROM items", "price"),
        (
            "SELECT id FROM items ORDER BY id LIMIT (SELECT count(*) FROM items WHERE qty > 5)",
            "qty",
        ),
        ("SELECT CASE WHEN qty > 5 THEN 'many' ELSE 'few' END AS k FROM items ORDER BY id", "qty"),
        (
            "SELECT id FROM items i WHERE EXISTS (SELECT 1 FROM tags WHERE item_id = i.price)",
            "price",
        ),
        ("SELECT name FROM items WHERE qty > 5 UNION SELECT tag FROM tags", "qty"),
        ("SELECT j.value AS v FROM items, json_each('[' || items.price || ']') AS j", "price"),
        ("SELECT * FROM items ORDER BY id", "note"),
        ("SELECT i.* FROM tags JOIN items AS i ON i.id = tags.item_id ORDER BY tags.id", "qty"),
    ],
)
def test_a_column_read_in_any_clause_reruns_the_query_and_others_do_not(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb, sql: str, column: str
) -> None:
    q = live(rt, db, sql)
    seq = q.get().seq
    unread = {"qty": "note", "price": "note", "note": "qty"}[column]
    value = "'blue'" if unread == "note" else "99"
    if "*" not in sql.replace("count(*)", ""):
        write(space, db, f"UPDATE items SET {unread} = {value} WHERE id = 1")
        assert rt.settle(10)
        assert q.get().seq == seq, f"{sql} re-ran after an update of {unread}, unread"
    changed = "'white'" if column == "note" else "1"
    now = write(space, db, f"UPDATE items SET {column} = {changed} WHERE id = 1")
    assert rt.settle(10)
    assert q.get().seq == now, f"{sql} did not re-run after an update of {column}"


def test_count_star_reruns_on_insert_and_delete_not_update(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb
) -> None:
    q = live(rt, db, "SELECT count(*) AS n FROM items")
    seq = q.get().seq
    write(space, db, "UPDATE items SET qty = qty + 1, note = 'x', name = name || '!'")
    assert rt.settle(10)
    assert q.get().seq == seq
    inserted = write(space, db, "INSERT INTO items (name) VALUES ('fig')")
    assert rt.settle(10)
    assert q.get().seq == inserted and q.get().result == [{"n": 3}]
    deleted = write(space, db, "DELETE FROM items WHERE name = 'fig'")
    assert rt.settle(10)
    assert q.get().seq == deleted and q.get().result == [{"n": 2}]


def test_writes_that_change_nothing_rerun_nothing_but_react_on_db_re_runs(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb
) -> None:
    """A DELETE of no row and an UPDATE to the values already there change no column: the
    default query keeps its seq; a query with ``react_on=db`` re-runs after each (the handle's
    rev changed: a transaction wrote the database)."""
    q = live(rt, db, "SELECT name, qty FROM items ORDER BY id")
    every = live(rt, db, "SELECT name, qty FROM items ORDER BY id", react_on=db)
    seq, rev = q.get().seq, db.rev
    for sql in (
        "DELETE FROM items WHERE id = 999",
        "UPDATE items SET qty = qty",
        "UPDATE items SET qty = 10 WHERE name = 'apple'",
        "INSERT OR IGNORE INTO items (name) VALUES ('apple')",
    ):
        now = write(space, db, sql)
        assert rt.settle(10)
        assert q.get().seq == seq, sql
        assert every.get().seq == now, sql
    assert db.rev == rev + 4


def test_replace_and_upsert_rerun_what_they_changed(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb
) -> None:
    qty = live(rt, db, "SELECT name, qty FROM items ORDER BY id")
    ids = live(rt, db, "SELECT id, name FROM items ORDER BY id")
    write(
        space,
        db,
        "INSERT INTO items (name, qty) VALUES ('apple', 50) "
        "ON CONFLICT (name) DO UPDATE SET qty = excluded.qty",
    )
    assert rt.settle(10)
    assert qty.get().result == [{"name": "apple", "qty": 50}, {"name": "pear", "qty": 2}]
    # INSERT OR REPLACE on a unique column other than the key: the old row goes, a new id
    # comes, so a query of ids re-runs.
    write(space, db, "INSERT OR REPLACE INTO items (name, qty) VALUES ('pear', 7)")
    assert rt.settle(10)
    assert qty.get().result == [{"name": "apple", "qty": 50}, {"name": "pear", "qty": 7}]
    assert ids.get().result == [{"id": 1, "name": "apple"}, {"id": 3, "name": "pear"}]
    assert db.read("SELECT id, name, qty FROM items ORDER BY id") == [
        {"id": 1, "name": "apple", "qty": 50},
        {"id": 3, "name": "pear", "qty": 7},
    ]
    # REPLACE of the same key with the same other values but a new qty.
    write(
        space,
        db,
        "REPLACE INTO items (id, name, price, qty, note) VALUES (1, 'apple', 3, 51, 'red')",
    )
    assert rt.settle(10)
    assert qty.get().result == [{"name": "apple", "qty": 51}, {"name": "pear", "qty": 7}]


def test_a_write_to_another_database_of_the_same_commit_counts_only_there(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb
) -> None:
    other = space.sqlite_database("other", tables=TABLES)
    q = live(rt, db, "SELECT name FROM items ORDER BY id")
    seq = q.get().seq
    mine = live(rt, other, "SELECT name FROM items ORDER BY id")
    with space.transact():
        space.cell("unrelated").set(1)
        other.exec("INSERT INTO items (name) VALUES ('kiwi')")
    assert rt.settle(10)
    assert q.get().seq == seq
    assert mine.get().result == [{"name": "kiwi"}]


def test_foreign_key_clauses_do_not_act_and_queries_follow_the_file(
    rt: sc.Runtime, space: Space
) -> None:
    """Foreign keys are not enforced (docs/decisions.md, "Foreign keys"): deleting a parent
    leaves its children, and the query of the children neither re-runs nor disagrees with
    a read of the file; a query of the parents re-runs."""
    fam = space.sqlite_database("family", tables=FAMILY)
    with space.transact():
        fam.exec("INSERT INTO parents (id, name) VALUES (1, 'p'), (2, 'q')")
    with space.transact():
        fam.exec("INSERT INTO children (parent_id, name) VALUES (1, 'a'), (2, 'b')")
    kids = live(rt, fam, "SELECT name FROM children ORDER BY id")
    parents = live(rt, fam, "SELECT name FROM parents ORDER BY id")
    seq = kids.get().seq
    now = write(space, fam, "DELETE FROM parents WHERE id = 1")
    assert rt.settle(10)
    assert fam.read("SELECT name FROM children ORDER BY id") == [{"name": "a"}, {"name": "b"}]
    assert kids.get().result == [{"name": "a"}, {"name": "b"}] and kids.get().seq == seq
    assert parents.get().result == [{"name": "q"}] and parents.get().seq == now


def test_react_on_a_cell_replaces_the_default(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb
) -> None:
    tick = space.cell("tick", default=0)
    q = live(rt, db, "SELECT count(*) AS n FROM items", react_on=tick)
    assert q.get().result == [{"n": 2}]
    write(space, db, "INSERT INTO items (name) VALUES ('fig')")
    assert rt.settle(10)
    assert q.get().result == [{"n": 2}]  # a database write alone no longer re-runs it
    with space.transact() as tx:
        tick.set(1)
    assert rt.settle(10)
    assert q.get().result == [{"n": 3}]
    assert q.get().seq >= (tx.seq or 0) - 1
    # one commit that changes the cell and writes rows: the run sees the rows
    with space.transact():
        tick.set(2)
        db.exec("INSERT INTO items (name) VALUES ('kiwi')")
    assert rt.settle(10)
    assert q.get().result == [{"n": 4}]


@pytest.mark.parametrize("react_on", [None, 42, "x", {"a": 1}])
def test_react_on_a_plain_value_or_none_runs_once(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb, react_on: Any
) -> None:
    q = live(rt, db, "SELECT count(*) AS n FROM items", react_on=react_on)
    assert q.get().result == [{"n": 2}]
    seq = q.get().seq
    write(space, db, "INSERT INTO items (name) VALUES ('fig')")
    write(space, db, "DELETE FROM items WHERE name = 'apple'")
    assert rt.settle(10)
    assert q.get().result == [{"n": 2}] and q.get().seq == seq


def test_react_on_none_runs_again_for_new_params_given_as_cells(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb
) -> None:
    """``react_on=None``: once per sql/params; a cell among the params that changes is new
    params, so the query runs for them (once) and shows their rows."""
    floor = space.cell("floor", default=0)
    q = live(
        rt, db, "SELECT name FROM items WHERE qty > ? ORDER BY id", params=[floor], react_on=None
    )
    assert q.get().result == [{"name": "apple"}, {"name": "pear"}]
    write(space, db, "INSERT INTO items (name, qty) VALUES ('fig', 100)")
    assert rt.settle(10)
    assert q.get().result == [{"name": "apple"}, {"name": "pear"}]
    with space.transact():
        floor.set(5)
    assert rt.settle(10)
    assert q.get().result == [{"name": "apple"}, {"name": "fig"}]


def test_params_given_as_cells_and_derived_cells_rerun_the_default_query(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb
) -> None:
    floor = space.cell("floor", default=0)
    half = sc.derive(floor, lambda v: v // 2)
    named = {"f": half}
    q = live(rt, db, "SELECT name FROM items WHERE qty > :f ORDER BY id", params=named)
    assert q.get().result == [{"name": "apple"}, {"name": "pear"}]
    with space.transact():
        floor.set(10)  # half: 5
    assert rt.settle(10)
    assert q.get().result == [{"name": "apple"}]
    with space.transact():
        floor.set(11)  # half: still 5 -> same rows
    assert rt.settle(10)
    assert q.get().result == [{"name": "apple"}]


def test_settle_waits_for_first_runs_of_queries_and_derived_cells(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb
) -> None:
    spin = (
        "(WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < 300000) "
        "SELECT count(*) FROM r)"
    )
    queries = [db.query(f"SELECT count(*) + {k} AS n, {spin} AS s FROM items") for k in range(4)]
    total = sc.lift(lambda *states: sum(s.result[0]["n"] for s in states if s.result))(*queries)
    assert rt.settle(20)
    assert all(not q.get().pending and q.get().result for q in queries)
    assert total.get() == 2 + 3 + 4 + 5


# --- R54: once per commit, after what it depends on --------------------------------------------


def test_a_diamond_over_a_query_runs_once_per_commit_and_never_mixes(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb
) -> None:
    q = db.query("SELECT sum(qty) AS s FROM items")
    total = sc.derive(q, lambda st: st.result[0]["s"] if st.result else None)
    b = sc.derive(total, lambda v: None if v is None else v + 1)
    c = sc.derive(total, lambda v: None if v is None else v * 10)
    runs: list[tuple[Any, Any]] = []

    def join(x: Any, y: Any) -> tuple[Any, Any]:
        runs.append((x, y))
        return (x, y)

    d = sc.lift(join)(b, c)
    seen: list[Any] = []
    d.observe().subscribe(seen.append)
    assert rt.settle(10)
    runs.clear()
    for n in range(1, 6):
        write(space, db, "UPDATE items SET qty = qty + 1 WHERE id = 1")
        assert rt.settle(10)
        assert len(runs) == 1, runs
        assert runs[-1] == (12 + n + 1, (12 + n) * 10)
        runs.clear()
    assert all(x is None or y == (x - 1) * 10 for x, y in seen), seen


def test_a_derived_cell_over_two_queries_of_one_database_sees_both_new_at_once(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb
) -> None:
    items = db.query("SELECT count(*) AS n FROM items")
    tags = db.query("SELECT count(*) AS n FROM tags")
    runs: list[tuple[Any, Any]] = []

    def pair(a: sc.QueryState[Any], b: sc.QueryState[Any]) -> tuple[Any, Any]:
        value = (a.result and a.result[0]["n"], b.result and b.result[0]["n"])
        runs.append(value)
        return value

    both = sc.lift(pair)(items, tags)
    both.observe().subscribe(lambda _v: None)
    assert rt.settle(10)
    assert both.get() == (2, 2)
    runs.clear()
    for n in range(3, 8):
        with space.transact():
            db.exec("INSERT INTO items (name) VALUES (?)", [f"i{n}"])
            db.exec("INSERT INTO tags (item_id, tag) VALUES (?, 'x')", [n])
        assert rt.settle(10)
        assert runs == [(n, n)], runs
        runs.clear()


def test_a_chain_of_derived_cells_runs_each_once_per_commit(rt: sc.Runtime, space: Space) -> None:
    a = space.cell("a", default=0)
    counts = [0] * 6
    node: Any = a

    def step(i: int) -> Callable[[int], int]:
        def f(v: int) -> int:
            counts[i] += 1
            return v + 1

        return f

    for i in range(6):
        node = sc.derive(node, step(i))
    seen: list[int] = []
    node.observe().subscribe(seen.append)
    assert rt.settle(10)
    start = list(counts)
    for n in range(1, 4):
        with space.transact():
            a.set(n)
        assert rt.settle(10)
    assert [c - s for c, s in zip(counts, start, strict=True)] == [3] * 6
    assert seen == [6, 7, 8, 9]


def test_a_query_whose_params_are_a_derived_cell_written_with_its_rows_in_one_commit(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb
) -> None:
    """One commit writes the cell a derived parameter comes from and rows the new parameter
    selects: the query runs for the new parameter and sees the new rows; a cell derived from
    the cell and the query never pairs the new cell with old rows, nor the reverse."""
    want = space.cell("want", default="apple")
    upper = sc.derive(want, lambda v: v)
    q = db.query("SELECT name FROM items WHERE name = ?", params=[upper])
    pairs: list[tuple[Any, Any]] = []

    def pair(w: str, st: sc.QueryState[Any]) -> tuple[Any, Any]:
        value = (w, [r["name"] for r in st.result] if st.result is not None else None)
        pairs.append(value)
        return value

    sc.lift(pair)(want, q).observe().subscribe(lambda _v: None)
    assert rt.settle(10)
    for n in range(5):
        name = f"new{n}"
        with space.transact():
            want.set(name)
            db.exec("INSERT INTO items (name) VALUES (?)", [name])
        assert rt.settle(10)
        assert q.get().result == [{"name": name}]
    settled = [(w, rows) for w, rows in pairs if rows is not None]
    assert [(w, rows) for w, rows in settled if rows != [w]] == [], settled


# --- subscribers ------------------------------------------------------------------------------


def test_a_subscriber_that_unsubscribes_itself_is_called_no_more(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb
) -> None:
    cell = space.cell("n", default=0)
    q = db.query("SELECT count(*) AS n FROM items")
    calls: list[Any] = []
    qcalls: list[Any] = []
    holder: dict[str, Any] = {}

    def once(value: Any) -> None:
        calls.append(value)
        if value == 1:
            holder["cell"].dispose()

    def qonce(state: sc.QueryState[Any]) -> None:
        qcalls.append(state)
        if state.result == [{"n": 3}]:
            holder["q"].dispose()

    holder["cell"] = cell.observe().subscribe(once)
    holder["q"] = q.observe().subscribe(qonce)
    assert rt.settle(10)
    for n in range(1, 4):
        with space.transact():
            cell.set(n)
            db.exec("INSERT INTO items (name) VALUES (?)", [f"x{n}"])
        assert rt.settle(10)
    assert calls == [0, 1]
    assert [s.result for s in qcalls if not s.pending][-1] == [{"n": 3}]
    assert q.get().result == [{"n": 5}]


def test_unsubscribe_from_another_thread_then_no_more_calls(rt: sc.Runtime, space: Space) -> None:
    cell = space.cell("n", default=0)
    calls: list[Any] = []
    sub = cell.observe().subscribe(calls.append)
    assert rt.settle(10)
    sub.dispose()
    for n in range(1, 4):
        with space.transact():
            cell.set(n)
    assert rt.settle(10)
    assert calls == [0]


def test_close_completes_live_subscriptions(store: Path) -> None:
    rt = sc.Runtime(store, poll_interval=0.01)
    space = rt.space("demo")
    db = space.sqlite_database("shop", tables=TABLES)
    cell = space.cell("n", default=0)
    q = db.query("SELECT count(*) AS n FROM items")
    d = sc.derive(cell, lambda v: v + 1)
    completed: list[str] = []
    errors: list[Any] = []
    for name, source in (("cell", cell), ("query", q), ("derived", d)):
        source.observe().subscribe(
            on_next=lambda _v: None,
            on_error=errors.append,
            on_completed=lambda name=name: completed.append(name),
        )
    assert rt.settle(10)
    rt.close()
    assert sorted(completed) == ["cell", "derived", "query"]
    assert errors == []


def test_very_many_subscribers_each_hear_each_commit_once(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb
) -> None:
    cell = space.cell("n", default=0)
    q = db.query("SELECT count(*) AS n FROM items")
    heard: list[list[Any]] = [[] for _ in range(2000)]
    for i, bucket in enumerate(heard):
        (cell if i % 2 else q).observe().subscribe(bucket.append)
    assert rt.settle(20)
    for n in range(1, 4):
        with space.transact():
            cell.set(n)
            db.exec("INSERT INTO items (name) VALUES (?)", [f"x{n}"])
        assert rt.settle(20)
    for i, bucket in enumerate(heard):
        if i % 2:
            assert bucket == [0, 1, 2, 3], (i, bucket)
        else:
            assert [s.result for s in bucket if not s.pending] == [
                [{"n": 2}],
                [{"n": 3}],
                [{"n": 4}],
                [{"n": 5}],
            ], (i, bucket)


def test_a_subscriber_that_writes_and_settles_in_a_chain_converges(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb
) -> None:
    """A subscriber of a query commits through a handler (which re-runs the same query),
    until a bound: each commit is heard once, in order, and settle waits for the whole chain."""
    q = db.query("SELECT count(*) AS n FROM items")
    heard: list[int] = []

    @sc.handler
    def grow(n: int) -> None:
        db.exec("INSERT INTO items (name) VALUES (?)", [f"g{n}"])

    def on_state(state: sc.QueryState[Any]) -> None:
        if not state.result:
            return
        n = state.result[0]["n"]
        heard.append(n)
        if n < 12:
            grow(n)

    q.observe().subscribe(on_state)
    assert rt.settle(20)
    assert wait_for(lambda: q.get().result == [{"n": 12}])
    assert rt.settle(20)
    assert heard == list(range(2, 13))


def test_a_subscriber_error_in_one_runtime_thread_does_not_stop_derived_cells(
    rt: sc.Runtime, space: Space
) -> None:
    cell = space.cell("n", default=0)
    d = sc.derive(cell, lambda v: v * 3)
    heard: list[int] = []

    def boom(_v: Any) -> None:
        raise ValueError("subscriber bug")

    d.observe().subscribe(boom)
    cell.observe().subscribe(boom)
    d.observe().subscribe(heard.append)
    for n in range(1, 4):
        with space.transact():
            cell.set(n)
    assert rt.settle(10)
    assert heard == [0, 3, 6, 9] and d.get() == 9


def test_a_derive_function_that_raises_keeps_delivering_other_nodes(
    rt: sc.Runtime, space: Space
) -> None:
    cell = space.cell("n", default=1)

    def picky(v: int) -> int:
        if v == 0:
            raise ZeroDivisionError("no zero")
        return 12 // v

    d = sc.derive(cell, picky)
    other = sc.derive(cell, lambda v: v + 1)
    heard: list[int] = []
    other.observe().subscribe(heard.append)
    assert rt.settle(10)
    with space.transact():
        cell.set(0)
    assert rt.settle(10)
    with space.transact():
        cell.set(4)
    assert rt.settle(10)
    assert heard == [2, 1, 5]
    assert d.get() == 3


def test_a_derived_cell_here_never_pairs_another_runtime_s_cell_with_rows_the_file_lacked(
    tmp_path: Path,
) -> None:
    """Another runtime's commit reaches the space file a moment before the database file
    (SQLite commits the two one after the other). A query re-run in that moment reads the
    file without the commit and is read again; meanwhile a cell derived from it and from a
    cell of that commit waits, rather than pairing the new cell with the old rows (R54, R53).
    (Repeated: the moment is short; a database that has no file yet widens it.)"""
    for trial in range(15):
        store = tmp_path / f"store-{trial}"
        store.mkdir()
        with (
            sc.Runtime(store, poll_interval=0.01) as here,
            sc.Runtime(store, poll_interval=0.01) as there,
        ):
            writer = there.space("demo")
            writer_db = writer.sqlite_database("shop", tables=TABLES)
            writer_cell = writer.cell("n", default=0)
            space = here.space("demo")
            cell = space.cell("n", default=0)
            q = space.sqlite_database("shop", tables=TABLES).query(
                "SELECT count(*) AS c FROM items"
            )
            pairs: list[tuple[int, Any]] = []

            def pair(v: int, st: sc.QueryState[Any], pairs: list[Any] = pairs) -> tuple[int, Any]:
                value = (v, st.result[0]["c"] if st.result else None)
                pairs.append(value)
                return value

            sc.lift(pair)(cell, q).observe().subscribe(lambda _v: None)
            assert here.settle(10)
            for n in range(1, 4):
                with writer.transact():
                    writer_cell.set(n)
                    writer_db.exec("INSERT INTO items (name) VALUES (?)", [f"x{n}"])
            assert wait_for(lambda pairs=pairs: pairs[-1] == (3, 3)), pairs
            assert here.settle(10)
            assert [p for p in pairs if p[1] is not None and p[0] != p[1]] == [], (trial, pairs)


def test_react_on_another_database_a_query_or_a_path_of_a_cell(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb
) -> None:
    """``react_on`` may be any cell (R51): another database's handle (its writes), another
    query (its state), a path inside a cell (that path's changes only); the query's own
    database writes no longer re-run it."""
    other = space.sqlite_database("other", tables=TABLES)
    cfg = space.cell("cfg", default={"a": 1, "b": 1})
    sql = "SELECT count(*) AS n FROM items"
    by_other = live(rt, db, sql, react_on=other)
    by_query = live(rt, db, sql, react_on=other.query(sql))
    by_path = live(rt, db, sql, react_on=cfg.key("a"))
    queries = (by_other, by_query, by_path)

    def counts() -> list[Any]:
        return [(q.get().result or [{"n": None}])[0]["n"] for q in queries]

    assert counts() == [2, 2, 2]
    write(space, db, "INSERT INTO items (name) VALUES ('fig')")
    assert rt.settle(10)
    assert counts() == [2, 2, 2]
    write(space, other, "INSERT INTO items (name) VALUES ('kiwi')")
    assert rt.settle(10)
    assert counts() == [3, 3, 2]
    with space.transact():
        cfg.key("b").set(2)
    assert rt.settle(10)
    assert counts() == [3, 3, 2]
    with space.transact():
        cfg.key("a").set(2)
    assert rt.settle(10)
    assert by_path.get().result == [{"n": 3}]


def test_a_cell_derived_from_a_cell_and_a_query_that_reacts_on_it_never_mixes(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb
) -> None:
    """A query with ``react_on=cell`` and a derived cell over both: one commit writes the cell
    and rows; the derived cell waits for the query's run for that commit (R54)."""
    tick = space.cell("tick", default=0)
    q = db.query("SELECT count(*) AS n FROM items", react_on=tick)
    pairs: list[tuple[int, Any]] = []

    def pair(t: int, st: sc.QueryState[Any]) -> tuple[int, Any]:
        value = (t, st.result[0]["n"] if st.result else None)
        pairs.append(value)
        return value

    sc.lift(pair)(tick, q).observe().subscribe(lambda _v: None)
    assert rt.settle(10)
    for n in range(1, 8):
        with space.transact():
            tick.set(n)
            db.exec("INSERT INTO items (name) VALUES (?)", [f"x{n}"])
    assert rt.settle(10)
    assert pairs[-1] == (7, 9)
    assert [p for p in pairs if p[1] is not None and p[1] != p[0] + 2] == [], pairs


def test_a_query_whose_params_come_from_another_query_follows_it_without_mixing(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb
) -> None:
    """A chain of queries: the newest item's id (a query), made a parameter of a query of its
    tags. One commit inserts an item and its tag; a cell derived from both queries never pairs
    one commit's newest item with another's tags (R54)."""
    newest = db.query("SELECT max(id) AS id FROM items")
    newest_id = sc.derive(newest, lambda st: st.result[0]["id"] if st.result else 0)
    tags = db.query("SELECT tag FROM tags WHERE item_id = ? ORDER BY id", params=[newest_id])
    pairs: list[tuple[Any, Any]] = []

    def pair(a: sc.QueryState[Any], b: sc.QueryState[Any]) -> tuple[Any, Any]:
        value = (
            a.result[0]["id"] if a.result else None,
            [r["tag"] for r in b.result] if b.result is not None and not b.pending else None,
        )
        pairs.append(value)
        return value

    sc.lift(pair)(newest, tags).observe().subscribe(lambda _v: None)
    assert rt.settle(10)
    assert pairs[-1] == (2, ["fruit"])
    for n in range(3, 9):
        with space.transact():
            db.exec("INSERT INTO items (id, name) VALUES (?, ?)", [n, f"x{n}"])
            db.exec("INSERT INTO tags (item_id, tag) VALUES (?, ?)", [n, f"t{n}"])
    assert rt.settle(10)
    assert pairs[-1] == (8, ["t8"])
    shown = [p for p in pairs if p[0] is not None and p[1] is not None]
    assert [p for p in shown if p[1] != ([f"t{p[0]}"] if p[0] > 2 else ["fruit"])] == [], pairs


LINKED = {
    "posts": sc.table(id="integer primary key", author_cf_link=sc.cf_link(), body="text"),
}


@pytest.mark.parametrize("failure", ["migrate", "timeout", "link"])
def test_a_commit_that_fails_at_its_database_step_shows_none_of_its_cells(
    store: Path, failure: str
) -> None:
    """R50 for each way a commit's database step can fail after its cell writes: a ``migrate``
    callback that raises (MigrationError), a write past ``exec_timeout`` (ExecTimeout), a
    statement that stores a malformed link (LinkEncodeError). Nothing of the commit is seen."""
    with sc.Runtime(store, poll_interval=0.01, exec_timeout=0.3) as rt:
        space = rt.space("demo")
        posts = space.sqlite_database("posts", tables=LINKED)
        with space.transact():
            posts.exec("INSERT INTO posts (body) VALUES ('first')")
        cell = space.cell("n", default=0)
        seen: list[Any] = []
        cell.observe().subscribe(seen.append)
        q = posts.query("SELECT body FROM posts ORDER BY id")
        states: list[Any] = []
        q.observe().subscribe(states.append)
        assert rt.settle(10)

        def migrate(conn: Any, from_version: int) -> None:
            raise RuntimeError("no way")

        expected: type[sc.SqliteCellsError] = sc.MigrationError
        if failure == "migrate":
            db = space.sqlite_database("posts", tables=LINKED, version=2, migrate=migrate)
            sql = "INSERT INTO posts (body) VALUES ('second')"
        elif failure == "timeout":
            db, expected = posts, sc.ExecTimeout
            sql = (
                "INSERT INTO posts (body) WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL "
                "SELECT i + 1 FROM r WHERE i < 1000000000) SELECT 'x' FROM r WHERE i = -1"
            )
        else:
            db, expected = posts, sc.LinkEncodeError
            sql = "INSERT INTO posts (author_cf_link, body) VALUES ('not a link', 'second')"
        with pytest.raises(expected), space.transact():
            cell.set(666)
            db.exec(sql)
        assert rt.settle(10)
        assert seen == [0] and cell.get() == 0
        assert [s.result for s in states if not s.pending] == [[{"body": "first"}]]
        assert db.read("SELECT count(*) AS n FROM posts") == [{"n": 1}]
        with space.transact():
            cell.set(1)
        assert rt.settle(10)
        assert seen == [0, 1]


@pytest.mark.parametrize("name", ["rowid", "oid", "_rowid_", "id"])
def test_a_query_of_the_rowid_by_any_name_follows_an_update_of_the_key(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb, name: str
) -> None:
    q = live(rt, db, f"SELECT {name} AS k FROM items ORDER BY {name}")
    seq = q.get().seq
    write(space, db, "UPDATE items SET note = 'x', qty = 0")
    assert rt.settle(10)
    assert q.get().seq == seq
    write(space, db, "UPDATE items SET id = 10 WHERE id = 1")
    assert rt.settle(10)
    assert q.get().result == [{"k": 2}, {"k": 10}]


def test_an_async_handler_s_commit_is_heard_after_it_is_durable_and_a_failed_one_never(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb, store: Path, sqlite3_reader: Sqlite3Reader
) -> None:
    import asyncio

    cell = space.cell("n", default=0)
    (space_file,) = glob.glob(str(store / "space-*.sqlite"))
    heard: list[tuple[int, Any]] = []

    def stored() -> Any:
        sql = "SELECT value FROM _cf_cells WHERE id = ?"
        row = sqlite3_reader.first_row(space_file, sql, (cell.id,))
        return None if row is None else int(row[0])

    cell.observe().subscribe(lambda v: heard.append((v, stored())))

    @sc.handler
    async def post(value: int, *, n: sc.Cell) -> None:
        await asyncio.sleep(0)
        n.set(value)
        db.exec("INSERT INTO items (name) VALUES (?)", [f"p{value}"])
        await asyncio.sleep(0)
        if value < 0:
            raise ValueError("refused")

    async def main() -> None:
        await post(1, n=cell)
        with pytest.raises(ValueError, match="refused"):
            await post(-1, n=cell)
        await post(2, n=cell)
        await rt.settled()

    asyncio.run(main())
    assert [v for v, _ in heard] == [0, 1, 2]
    # Durable when heard: the store holds that commit already (or a later one, which may have
    # landed before the subscriber ran).
    assert [v for v, s in heard if v and (s is None or s < v)] == [], heard
    assert db.read("SELECT name FROM items WHERE name GLOB 'p[0-9]*' ORDER BY id") == [
        {"name": "p1"},
        {"name": "p2"},
    ]


@pytest.mark.parametrize("raised", [SystemExit, KeyboardInterrupt])
def test_a_subscriber_or_derive_function_raising_systemexit_does_not_end_reactivity(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb, raised: type[BaseException]
) -> None:
    """A subscriber (or a derive function) that raises SystemExit or KeyboardInterrupt runs on
    the runtime's thread: it fails like any other subscriber or function (logged; the
    function's error kept for ``get``), and every other subscriber, derived cell, query and
    ``settle`` carries on."""
    cell = space.cell("n", default=0)

    def bad(value: int) -> None:
        if value == 1:
            raise raised("from a subscriber")

    def picky(value: int) -> int:
        if value == 2:
            raise raised("from a derive function")
        return value * 10

    cell.observe().subscribe(bad)
    tens = sc.derive(cell, picky)
    tens.observe().subscribe(lambda _v: None, on_error=lambda _e: None)
    plus = sc.derive(cell, lambda v: v + 100)
    q = db.query("SELECT count(*) AS n FROM items")
    heard: list[Any] = []
    cell.observe().subscribe(heard.append)
    plus.observe().subscribe(heard.append)
    assert rt.settle(10)
    for n in range(1, 4):
        with space.transact():
            cell.set(n)
            db.exec("INSERT INTO items (name) VALUES (?)", [f"x{n}"])
        assert rt.settle(10)
    assert heard == [0, 100, 1, 101, 2, 102, 3, 103]
    assert q.get().result == [{"n": 5}]
    assert tens.get() == 30
    with space.transact():
        cell.set(2)
    assert rt.settle(10)
    with pytest.raises(raised, match="from a derive function"):
        tens.get()
    late = sc.derive(cell, picky)  # its first computation raises
    with pytest.raises(raised, match="from a derive function"):
        late.get()
    assert rt.settle(10)


class RowTypeStop(BaseException):
    """A BaseException of the row type's own."""


@dataclasses.dataclass
class Picky:
    name: str

    def __post_init__(self) -> None:
        raised = {
            "SystemExit": SystemExit,
            "GeneratorExit": GeneratorExit,
            "RowTypeStop": RowTypeStop,
        }
        if self.name in raised:
            raise raised[self.name]("a row type that stops")


@pytest.mark.parametrize("raised", ["SystemExit", "GeneratorExit", "RowTypeStop"])
def test_a_row_type_raising_a_base_exception_is_its_query_s_error_and_nothing_else_s(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb, raised: str
) -> None:
    """A row type's own code runs where the rows are built (a query worker or the runtime's
    thread): a SystemExit, GeneratorExit or BaseException of its own that it raises fails that
    query with QueryError naming the row type (R42, R43), like any other exception it raises,
    at once (not at query_timeout, with no thread's traceback); the other queries of the
    database, and this one at the next commit, run as before."""
    q = db.query("SELECT name FROM items ORDER BY id", row=Picky)
    count = db.query("SELECT count(*) AS n FROM items")
    assert rt.settle(10)
    assert q.get().result == [Picky("apple"), Picky("pear")]
    now = write(space, db, f"INSERT INTO items (name) VALUES ('{raised}')")
    assert rt.settle(10)
    state = q.get()
    assert state.result is None and isinstance(state.error, sc.QueryError)
    assert "Picky" in str(state.error) and raised in str(state.error)
    assert count.get().result == [{"n": 3}] and count.get().seq == now
    with pytest.raises(sc.QueryError, match=raised):
        db.read("SELECT name FROM items ORDER BY id", row=Picky)
    now = write(space, db, f"DELETE FROM items WHERE name = '{raised}'")
    assert rt.settle(10)
    assert q.get().result == [Picky("apple"), Picky("pear")] and q.get().error is None
    assert count.get().result == [{"n": 2}] and count.get().seq == now


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO nope (name) VALUES ('x')",
        "INSERT INTO items (name VALUES ('x')",
        "INSERT INTO items (nope) VALUES ('x')",
        "UPDATE items SET qty = 'many' || zzz",
        "INSERT INTO items (name) VALUES (abs(-9223372036854775808))",
    ],
)
def test_bad_sql_after_a_cell_write_shows_nothing_and_says_what_was_wrong(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb, sql: str
) -> None:
    cell = space.cell("n", default=0)
    seen: list[Any] = []
    cell.observe().subscribe(seen.append)
    q = db.query("SELECT name, qty FROM items ORDER BY id")
    states: list[Any] = []
    q.observe().subscribe(states.append)
    assert rt.settle(10)
    rev = db.rev
    with pytest.raises(sc.SqliteCellsError) as info, space.transact():
        cell.set(666)
        db.exec(sql)
    assert isinstance(info.value, sc.StatementError | sc.ExecError), info.value
    assert "Traceback" not in str(info.value) and len(str(info.value)) > 20
    assert rt.settle(10)
    assert seen == [0] and cell.get() == 0 and db.rev == rev
    assert len([s for s in states if not s.pending]) == 1


def test_close_while_a_query_runs_and_a_derived_cell_waits_completes_every_subscriber(
    store: Path,
) -> None:
    rt = sc.Runtime(store, poll_interval=0.01, query_timeout=30.0)
    space = rt.space("demo")
    db = space.sqlite_database("shop", tables=TABLES)
    cell = space.cell("n", default=0)
    spin = (
        "(WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < 2000000000) "
        "SELECT count(*) FROM r)"
    )
    slow = db.query(f"SELECT count(*) AS c, {spin} AS s FROM items")
    both = sc.lift(lambda v, st: (v, st.pending))(cell, slow)
    completed: list[str] = []
    for name, node in (("cell", cell), ("slow", slow), ("both", both)):
        node.observe().subscribe(
            on_next=lambda _v: None, on_completed=lambda name=name: completed.append(name)
        )
    with space.transact():
        cell.set(1)
    assert not rt.settle(0.2)  # the slow query's first run is in flight
    started = time.monotonic()
    rt.close()
    assert time.monotonic() - started < 10
    assert sorted(completed) == ["both", "cell", "slow"]
    with pytest.raises(sc.ClosedError):
        rt.settle(1)


def test_a_rerun_the_close_interrupts_ends_its_subscribers_without_an_error_state(
    store: Path,
) -> None:
    """A live query whose re-run is in flight when the runtime closes: its subscribers keep
    the last rows they were given and are told the stream ended (``on_completed``), as those of
    a computation that meets the close are — no state with ``result=None`` and a
    ``ClosedError`` first."""
    rt = sc.Runtime(store, query_timeout=30.0)
    space = rt.space("demo")
    db = space.sqlite_database("shop", tables=TABLES)
    write(space, db, "INSERT INTO items (name) VALUES ('fig')")
    spin = (
        "(WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r "
        "WHERE i < (SELECT 2000000 * count(*) FROM items)) SELECT count(*) FROM r)"
    )
    slow = db.query(f"SELECT count(*) AS c, {spin} AS s FROM items")
    seen: list[Any] = []
    slow.observe().subscribe(on_next=seen.append, on_completed=lambda: seen.append("completed"))
    assert rt.settle(30)
    write(space, db, "INSERT INTO items (name) VALUES ('kiwi')")
    time.sleep(0.1)  # its re-run, counting twice as far as the first run, is in flight by now
    rt.close()
    assert seen[-1] == "completed"
    states = [s for s in seen if s != "completed"]
    assert all(s.error is None for s in states), states
    assert states[-1].result is not None


def test_react_on_a_list_or_dict_of_cells_reacts_to_each_of_them(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb
) -> None:
    """``react_on`` holding cells in a list, tuple or dict reacts to each of them, as
    ``params`` do (docs/decisions.md); the database's writes alone do not re-run it."""
    a = space.cell("a", default=0)
    b = space.cell("b", default=0)
    sql = "SELECT count(*) AS n FROM items"
    queries = [live(rt, db, sql, react_on=on) for on in ([a, b], (a, 5), {"x": b})]

    def counts() -> list[Any]:
        return [(q.get().result or [{"n": None}])[0]["n"] for q in queries]

    write(space, db, "INSERT INTO items (name) VALUES ('fig')")
    assert rt.settle(10)
    assert counts() == [2, 2, 2]
    with space.transact():
        b.set(1)
    assert rt.settle(10)
    assert counts() == [3, 2, 3]
    write(space, db, "INSERT INTO items (name) VALUES ('kiwi')")
    with space.transact():
        a.set(1)
    assert rt.settle(10)
    assert counts() == [4, 4, 3]


@pytest.mark.parametrize(
    ("shape", "said"),
    [
        (lambda c: [[c]], "holds a list at position 0"),
        (lambda c: {"k": [c]}, "holds a list under key 'k'"),
        (lambda c: ([c],), "holds a list at position 0"),
        (lambda c: {c}, "is a set"),
        (lambda c: (x for x in [c]), "is a generator"),
        (lambda c: {"k": c}.values(), "is a dict_values"),
        (lambda c: [collections.deque([c])], "holds a deque at position 0"),
    ],
    ids=["list in list", "list in dict", "list in tuple", "set", "generator", "view", "deque"],
)
def test_react_on_refuses_cells_nested_deeper_or_in_a_set_or_generator_as_params_does(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb, shape: Callable[[Any], Any], said: str
) -> None:
    """R51, Errors: ``react_on`` is read as ``params`` are (docs/decisions.md), one level deep.
    A cell one level deeper, in a set or in a generator was taken as a constant: the query ran
    once and never again when the cell changed, with no error, where ``params`` of those shapes
    are refused at the call. They are refused the same way."""
    c = space.cell("c", default=0)
    with pytest.raises(sc.QueryError) as info:
        db.query("SELECT count(*) AS n FROM items", react_on=shape(c))
    assert isinstance(info.value, TypeError) and type(info.value).__name__ == "QueryArgumentError"
    text = str(info.value)
    assert f"react_on {said}, which holds cells that would never re-run the query" in text, text
    assert "a list, tuple or dict of them one level deep, as params does" in text, text
    assert "Traceback" not in text
    given = shape(c)
    sql = "SELECT :k AS x" if isinstance(given, dict) else "SELECT ? AS x"
    with pytest.raises(sc.QueryError) as as_params:  # the same shape among params
        db.query(sql, params=given)
    assert type(as_params.value) is type(info.value)
    assert "parameter" in str(as_params.value)
    ok = db.query("SELECT count(*) AS n FROM items", react_on=[c])  # one level: followed
    assert rt.settle(10) and ok.get().result == [{"n": 2}]
    write(space, db, "INSERT INTO items (name) VALUES ('fig')")
    with space.transact():
        c.set(1)
    assert rt.settle(10) and ok.get().result == [{"n": 3}]


def test_a_cell_derived_from_the_handle_and_a_query_never_mixes(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb
) -> None:
    """The database handle is a cell whose ``rev`` moves with each write: a cell derived from
    it and from a query of the database sees both as of one commit (R54)."""
    q = db.query("SELECT count(*) AS n FROM items")
    pairs: list[tuple[int, Any]] = []

    def pair(handle: dict[str, Any], st: sc.QueryState[Any]) -> tuple[int, Any]:
        value = (handle["rev"], st.result[0]["n"] if st.result else None)
        pairs.append(value)
        return value

    sc.lift(pair)(db, q).observe().subscribe(lambda _v: None)
    assert rt.settle(10)
    for n in range(5):
        write(space, db, "INSERT INTO items (name) VALUES (?)", [f"x{n}"])
    assert rt.settle(10)
    assert pairs[-1] == (8, 7)
    assert [p for p in pairs if p[1] is not None and p[0] != p[1] + 1] == [], pairs


def test_a_derived_cell_made_and_read_on_the_scheduler_thread_is_computed(
    rt: sc.Runtime,
) -> None:
    """§3, R54: a subscriber (it runs on the scheduler thread) made a derived cell over a live
    query whose re-run for the commit being delivered was in flight, and read it: ``get()``
    returned ``None``, a value its function never made (the cell was held back for the query
    and not computed). It is computed then, with what its inputs hold, and again when the
    query lands. A cell made over such a held-back cell is held back too (it was computed at
    once from its input's missing value, ``None``), and read, computes its inputs first."""
    space = rt.space("demo")
    a = space.cell("a", default=0)
    db = space.sqlite_database("d", tables={"t": sc.table(id="integer primary key")})
    query = db.query("SELECT count(*) AS n FROM t")
    seen: list[object] = []
    made: list[sc.Cell] = []

    def both(state: sc.QueryState[Any], value: int) -> tuple[object, int]:
        return (state.result, value)

    def subscriber(value: int) -> None:
        if value == 1:
            made.append(sc.lift(both)(query, a))
            made.append(sc.lift(lambda inner: ("outer", inner))(made[0]))  # over one held back
            seen.append(made[1].get())  # the outer first: it reads the inner's value
            seen.append(made[0].get())

    a.observe().subscribe(subscriber)
    rt.settle()
    with space.transact():
        a.set(1)
        db.exec("INSERT INTO t (id) VALUES (1)")
    rt.settle()
    assert seen == [("outer", ([{"n": 0}], 1)), ([{"n": 0}], 1)]
    assert made[0].get() == ([{"n": 1}], 1)
    assert made[1].get() == ("outer", ([{"n": 1}], 1))


class _RaisingList(list[Any]):
    def __iter__(self) -> Any:
        raise KeyError("the caller's own bug")


@pytest.mark.parametrize(
    "value",
    [frozenset({1}), {"k": [1, 2]}, [[1, 2]], ("v1", ("a",)), {"when": {"y": 1}}],
    ids=["frozenset", "list in dict", "list in list", "tuple in tuple", "dict in dict"],
)
def test_react_on_takes_a_plain_value_of_any_shape_as_a_constant(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb, value: Any
) -> None:
    """R51: react_on may be "any cell or value". Only a cell where it would never re-run the
    query is refused; a nested value with no cell in it is a constant, as before."""
    q = db.query("SELECT count(*) AS n FROM items", react_on=value)
    assert rt.settle(10) and q.get().result == [{"n": 2}] and q.get().error is None
    write(space, db, "INSERT INTO items (name) VALUES ('fig')")  # (a constant: no re-run)
    assert rt.settle(10) and q.get().result == [{"n": 2}]


def test_react_on_whose_own_code_raises_as_it_is_read_is_a_query_argument_error(
    db: sc.SqliteDb,
) -> None:
    with pytest.raises(sc.QueryError, match=r"reading react_on .* raised KeyError") as info:
        db.query("SELECT count(*) AS n FROM items", react_on=_RaisingList([1]))
    assert isinstance(info.value, TypeError) and isinstance(info.value.__cause__, KeyError)
