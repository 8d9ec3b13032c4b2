"""Reads and live queries (R40–R44, R50–R52)."""

from __future__ import annotations

import dataclasses
import html as html_module
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypedDict

import msgspec
import pytest

import sqlite_cells as sc
import sqlite_cells.read._live as live_module
import sqlite_cells.read._workers as workers_module
from sqlite_cells._runtime import Space

from .conftest import MESSAGES

INSERT = "INSERT INTO messages (author_cf_link, body, ts) VALUES (?, ?, ?)"


@pytest.fixture
def runs(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Counts the statements reads run (a spy around the real read of the workers)."""
    calls: list[str] = []
    real = workers_module.read_batch

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.extend(stmt.sql for stmt in args[2][kwargs.get("start", 0) :])
        return real(*args, **kwargs)

    monkeypatch.setattr(workers_module, "read_batch", counting)  # reads on the workers
    monkeypatch.setattr(live_module, "read_batch", counting)  # cheap ones on the scheduler
    yield calls


def _post(space: Space, db: sc.SqliteDb, body: str, ts: int, author: sc.Cell | None = None) -> int:
    with space.transact() as tx:
        db.exec(INSERT, [author, body, ts])
    assert tx.seq is not None
    return tx.seq


def test_a_never_written_database_reads_as_its_declared_tables(db: sc.SqliteDb) -> None:
    assert db.read("SELECT * FROM messages") == []
    assert db.read("SELECT count(*) AS n FROM messages") == [{"n": 0}]
    with pytest.raises(sc.QueryError, match="declared tables") as info:
        db.read("SELECT * FROM nope")
    assert info.value.db_id == db.id
    assert not db.path.exists()


def test_undeclared_tables_fail_once_written_too(space: Space, db: sc.SqliteDb) -> None:
    _post(space, db, "a", 1)
    with pytest.raises(sc.QueryError):
        db.read("SELECT * FROM nope")
    with pytest.raises(sc.GuardViolation) as info:
        db.read("SELECT * FROM _cf_watermark")
    assert info.value.kind == "reserved-name"


def test_live_query_updates_after_each_commit(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb
) -> None:
    q = db.query("SELECT body FROM messages ORDER BY ts")
    seen: list[sc.QueryState] = []
    q.observe().subscribe(seen.append)
    rt.settle()
    assert q.get() == sc.QueryState(pending=False, result=[], error=None, seq=0)
    s1 = _post(space, db, "a", 1)
    s2 = _post(space, db, "b", 2)
    rt.settle()
    assert q.get() == sc.QueryState(False, [{"body": "a"}, {"body": "b"}], None, s2)
    # The first state seen is the one before the first result, or that result itself when the
    # first run (which starts as the query is made) landed before the subscription; once a
    # result is there the query is never pending again (R42).
    assert seen[0].pending or seen[0] == sc.QueryState(False, [], None, 0)
    assert not any(s.pending for s in seen[1:])
    assert [s.result for s in seen if not s.pending][-1] == [{"body": "a"}, {"body": "b"}]
    assert all(s.seq in (0, s1, s2) for s in seen)


def test_equal_rows_update_seq_but_notify_nobody(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb
) -> None:
    _post(space, db, "a", 1)
    q = db.query("SELECT body FROM messages WHERE ts < 10")
    seen: list[sc.QueryState] = []
    q.observe().subscribe(seen.append)
    rt.settle()
    before = len(seen)
    s2 = _post(space, db, "late", 50)  # not in the result
    rt.settle()
    assert len(seen) == before
    assert q.get().seq == s2 and q.get().result == [{"body": "a"}]
    # The state the seq moved to is a QueryState as any other: equal to one made anew, frozen.
    state = q.get()
    assert type(state) is sc.QueryState and not state.pending and state.error is None
    assert state == sc.QueryState(False, [{"body": "a"}], None, s2)
    assert dataclasses.replace(state, seq=0) == sc.QueryState(False, [{"body": "a"}], None, 0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        state.seq = 1  # type: ignore[misc]
    assert (
        repr(state) == f"QueryState(pending=False, result=[{{'body': 'a'}}], error=None, seq={s2})"
    )


def test_writes_to_another_database_never_rerun_a_query(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb, runs: list[str]
) -> None:
    other = space.sqlite_database("other", tables=MESSAGES)
    q = db.query("SELECT * FROM messages")  # held: a query nobody holds stops re-running
    rt.settle()
    assert len(runs) == 1
    _post(space, other, "x", 1)
    _post(space, other, "y", 2)
    rt.settle()
    assert len(runs) == 1
    _post(space, db, "z", 3)
    rt.settle()
    assert len(runs) == 2
    assert [r["body"] for r in q.get().result or []] == ["z"]


def test_react_on_none_runs_once_and_react_on_a_cell_replaces_the_default(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb, runs: list[str]
) -> None:
    once = db.query("SELECT count(*) AS n FROM messages", react_on=None)
    trigger = space.cell("trigger", default=0)
    on_cell = db.query("SELECT count(*) AS m FROM messages", react_on=trigger)
    rt.settle()
    _post(space, db, "a", 1)
    rt.settle()
    assert once.get().result == [{"n": 0}]
    assert on_cell.get().result == [{"m": 0}]  # a database write alone does not re-run it
    with space.transact():
        trigger.set(1)
    rt.settle()
    assert on_cell.get().result == [{"m": 1}]
    assert sorted(runs) == sorted(
        ["SELECT count(*) AS n FROM messages"] + ["SELECT count(*) AS m FROM messages"] * 2
    )


def test_params_given_as_cells_rerun_the_query(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb
) -> None:
    for i in range(5):
        _post(space, db, f"m{i}", i)
    limit = space.cell("limit", default=2)
    q = db.query("SELECT body FROM messages ORDER BY ts LIMIT ?", params=[limit])
    rt.settle()
    assert q.get().result == [{"body": "m0"}, {"body": "m1"}]
    with space.transact():
        limit.set(3)
    rt.settle()
    assert q.get().result == [{"body": "m0"}, {"body": "m1"}, {"body": "m2"}]
    assert q.get().pending is False


def test_params_holding_a_cell_are_taken_as_given_at_the_call(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb
) -> None:
    """R42: a live query bound again, at each re-run, the caller's list or dict of parameters
    when it held a cell: changed by the caller later, the query read other rows (no pending
    state between), or failed with SQLite's raw count of bindings the call would have refused."""
    for i in range(5):
        _post(space, db, f"m{i}", i)
    low = space.cell("low", default=0)
    listed = [low, 1]
    named = {"low": low, "high": 1}
    grown = [low, 1]
    sql = "SELECT body FROM messages WHERE ts BETWEEN ? AND ? ORDER BY ts"
    queries = [
        db.query(sql, listed),
        db.query("SELECT body FROM messages WHERE ts BETWEEN :low AND :high ORDER BY ts", named),
        db.query(sql, grown),
    ]
    rt.settle()
    listed[1] = 4
    named["high"] = 4
    grown.append(7)
    _post(space, db, "m5", 5)  # re-runs them all
    with space.transact():
        low.set(1)  # and so does a change of the cell they hold
    rt.settle()
    for query in queries:
        assert query.get() == sc.QueryState(False, [{"body": "m1"}], None, 6)


def test_a_pending_param_keeps_the_query_pending(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb
) -> None:
    source = space.cell("source", default=None)
    gate = sc.derive(source, lambda v: sc.PENDING if v is None else v)
    q = db.query("SELECT count(*) AS n FROM messages WHERE ts >= ?", params=[gate])
    rt.settle()
    assert q.get().pending is True and q.get().result is None
    with space.transact():
        source.set(0)
    rt.settle()
    assert q.get() == sc.QueryState(False, [{"n": 0}], None, 0)


def test_a_param_not_ready_while_a_run_is_in_flight_keeps_the_query_pending(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb
) -> None:
    """R42: a parameter that became not ready (``sc.PENDING``) while the run for its former
    value was in flight left the query ``pending=False`` with that run's rows once it landed —
    rows of parameters it no longer has. The run is dropped; the query stays pending."""
    building = threading.Event()
    go_on = threading.Event()

    @dataclasses.dataclass
    class Row:
        n: int

        def __post_init__(self) -> None:  # holds the run in flight (rows build on a worker)
            building.set()
            go_on.wait(30)

    source = space.cell("source", default=None)
    gate = sc.derive(source, lambda v: sc.PENDING if v is None else v)
    q = db.query("SELECT ? AS n", params=[gate], row=Row)
    rt.settle()
    assert q.get().pending is True
    with space.transact():
        source.set(1)
    assert building.wait(30)  # the run for 1 is in flight
    with space.transact():
        source.set(None)
    go_on.set()
    rt.settle()
    assert q.get() == sc.QueryState(True, None, None, 0)
    with space.transact():
        source.set(1)
    rt.settle()
    assert q.get() == sc.QueryState(False, [Row(1)], None, 0)


class MsgStruct(msgspec.Struct):
    id: int
    body: str
    who: sc.Cell | None


@dataclasses.dataclass
class MsgData:
    id: int
    body: str
    who: sc.Cell | None


class MsgDict(TypedDict):
    id: int
    body: str
    who: sc.Cell | None


@pytest.mark.parametrize("row", [MsgStruct, MsgData, MsgDict])
def test_typed_rows_decode_link_fields_even_behind_an_alias(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb, row: type
) -> None:
    alice = space.cell("alice", default={"name": "Alice"})
    _post(space, db, "hi", 1, alice)
    _post(space, db, "anon", 2)
    sql = "SELECT id, body, author_cf_link AS who FROM messages ORDER BY id"
    rows = db.read(sql, row=row)
    first, second = (
        r
        if isinstance(r, dict)
        else vars(r)
        if dataclasses.is_dataclass(r)
        else msgspec.structs.asdict(r)
        for r in rows
    )
    assert first["who"] == alice and isinstance(first["who"], sc.Cell)
    assert second["who"] is None
    assert db.read(sql) == [
        {"id": 1, "body": "hi", "who": alice.link_str()},  # untyped rows keep the raw string
        {"id": 2, "body": "anon", "who": None},
    ]
    live = db.query(sql, row=row)
    rt.settle()
    assert live.get().result == rows


def test_a_malformed_link_decodes_to_none_without_failing(space: Space, db: sc.SqliteDb) -> None:
    # Only the runtime writes link columns, but a file can be damaged: read what is there.
    with space.transact():
        db.exec("INSERT INTO messages (body) VALUES ('x')")
    import apsw

    conn = apsw.Connection(str(db.path))
    conn.execute("UPDATE messages SET author_cf_link = 'garbage'")
    conn.close()
    rows = db.read("SELECT id, body, author_cf_link AS who FROM messages", row=MsgStruct)
    assert rows == [MsgStruct(1, "x", None)]
    alice = space.cell("alice")
    with space.transact():  # a good link beside the bad one: each row decodes on its own merits
        db.exec("INSERT INTO messages (body, author_cf_link) VALUES ('y', ?)", [alice])
    rows = db.read("SELECT id, body, author_cf_link AS who FROM messages", row=MsgStruct)
    assert rows == [MsgStruct(1, "x", None), MsgStruct(2, "y", alice)]


def test_decoded_author_cells_are_live_without_rerunning_the_query(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb, runs: list[str]
) -> None:
    alice = space.cell("alice", default={"name": "Alice"})
    with space.transact():
        alice.set({"name": "Alice"})
    _post(space, db, "hi", 1, alice)
    q = db.query("SELECT id, body, author_cf_link AS who FROM messages", row=MsgStruct)
    rt.settle()
    author = q.get().result[0].who
    names: list[Any] = []
    author.key("name").observe().subscribe(names.append)
    with space.transact():
        alice.key("name").set("Alicia")
    rt.settle()
    assert names == ["Alice", "Alicia"]
    assert len(runs) == 1  # R52: the linked cell's change did not re-run the query


def test_a_failing_query_reports_its_error(rt: sc.Runtime, space: Space, db: sc.SqliteDb) -> None:
    _post(space, db, "a", 1)
    q = db.query("SELECT * FROM missing_table")
    rt.settle()
    state = q.get()
    assert state.pending is False and state.result is None
    assert isinstance(state.error, sc.QueryError) and state.error.db_id == db.id


def test_a_query_failing_in_sqlite_reflects_the_commit_it_ran_at(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb
) -> None:
    # R42: seq is the commit the state reflects, an error's as a result's; a run that fails
    # in SQLite (json_extract of text that is not JSON) and one whose rows fail to build agree.
    class Row(msgspec.Struct):
        body: int

    in_sqlite = db.query("SELECT body FROM messages WHERE json_extract(body, '$.k') = 1")
    building = db.query("SELECT body FROM messages", row=Row)
    rt.settle()
    told: list[sc.QueryState[Any]] = []
    in_sqlite.observe().subscribe(told.append)
    for ts in (1, 2, 3):
        seq = _post(space, db, "not json", ts)
        rt.settle()
        for q in (in_sqlite, building):
            state = q.get()
            assert isinstance(state.error, sc.QueryError), state
            assert (state.result, state.seq) == (None, seq)
    assert [state.error is not None for state in told] == [False, True]  # the same error: once


def test_runaway_queries_time_out(store: Any) -> None:
    with sc.Runtime(store, query_timeout=0.2) as rt:
        db = rt.space("demo").sqlite_database("chat", tables=MESSAGES)
        runaway = (
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT count(*) FROM n"
        )
        with pytest.raises(sc.QueryTimeout) as info:
            db.read(runaway)
        assert info.value.db_id == db.id
        q = db.query(runaway)
        rt.settle()
        assert isinstance(q.get().error, sc.QueryTimeout)
        assert db.read("SELECT count(*) AS n FROM messages") == [{"n": 0}]


def test_guard_verdicts_raise_at_the_query_call(db: sc.SqliteDb) -> None:
    with pytest.raises(sc.GuardViolation) as info:
        db.query("DELETE FROM messages")
    assert info.value.kind == "not-read-only"
    with pytest.raises(sc.GuardViolation) as info:
        db.read("PRAGMA table_info(messages)")
    assert info.value.kind == "forbidden-statement"


def test_query_results_are_never_delivered_before_their_commit(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb
) -> None:
    marker = space.cell("marker", default=0)
    told: list[int] = []
    marker.observe().subscribe(told.append)
    violations: list[tuple[int, list[int]]] = []

    def check(state: sc.QueryState) -> None:
        if state.result:
            newest = max(r["ts"] for r in state.result)
            if newest not in told:
                violations.append((newest, list(told)))

    db.query("SELECT ts FROM messages").observe().subscribe(check)
    for i in range(1, 30):
        with space.transact():
            marker.set(i)
            db.exec("INSERT INTO messages (body, ts) VALUES ('x', ?)", [i])
    rt.settle()
    assert told[-1] == 29
    assert violations == []


def test_sqlite_query_is_the_same_node_kind(rt: sc.Runtime, space: Space, db: sc.SqliteDb) -> None:
    _post(space, db, "a", 1)
    q = sc.sqlite_query(db=db, sql="SELECT body FROM messages", row=None)
    rt.settle()
    assert q.get().result == [{"body": "a"}]


def test_decode_cf_link(rt: sc.Runtime, space: Space) -> None:
    alice = space.cell("alice")
    assert sc.decode_cf_link(None, rt) is None
    assert sc.decode_cf_link(alice.link_str(), rt) == alice
    with pytest.raises(sc.LinkDecodeError):
        sc.decode_cf_link("{}", rt)


def test_read_pool_stays_bounded(store: Any) -> None:
    with sc.Runtime(store, read_pool_size=2) as rt:
        space = rt.space("demo")
        dbs = [space.sqlite_database(f"db{i}", tables=MESSAGES) for i in range(5)]
        for db in dbs:
            with space.transact():
                db.exec(INSERT, [None, db.id, 1])
        for db in dbs:
            assert db.read("SELECT body FROM messages") == [{"body": db.id}]
            assert rt.read_pool.open_connections <= 2


class Strict(msgspec.Struct):
    id: int
    body: int  # the stored value is text: it does not fit


@dataclasses.dataclass(frozen=True)
class StrictData:
    id: int
    body: int


class StrictDict(TypedDict):
    id: int
    body: int


@pytest.mark.parametrize("row", [Strict, StrictData, StrictDict])
def test_a_value_that_does_not_fit_its_field_fails_the_query_naming_the_column(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb, row: type
) -> None:
    _post(space, db, "good", 1)
    with pytest.raises(sc.QueryError) as info:
        db.read("SELECT id, body FROM messages", row=row)
    assert "'body'" in str(info.value) and "Expected `int`, got `str`" in str(info.value)
    q = db.query("SELECT id, body FROM messages", row=row)
    rt.settle()
    assert isinstance(q.get().error, sc.QueryError) and "'body'" in str(q.get().error)
    assert q.get().result is None


class Typed(msgspec.Struct, frozen=True):
    id: int
    who: sc.Cell  # not Optional: NULL and broken links still read as None (R43)


def test_cell_fields_take_none_whatever_their_annotation(space: Space, db: sc.SqliteDb) -> None:
    alice = space.cell("alice")
    _post(space, db, "a", 1, alice)
    _post(space, db, "b", 2)
    rows = db.read("SELECT id, author_cf_link AS who FROM messages ORDER BY id", row=Typed)
    assert rows == [Typed(1, alice), Typed(2, None)]  # type: ignore[arg-type]
    assert rows[1].who is None


def test_missing_columns_name_the_fields_to_alias(space: Space, db: sc.SqliteDb) -> None:
    _post(space, db, "a", 1)
    with pytest.raises(sc.QueryError) as info:
        db.read("SELECT id FROM messages", row=Typed)
    assert "name the columns like the fields" in str(info.value)


def test_typed_queries_and_async_helpers(rt: sc.Runtime, space: Space, db: sc.SqliteDb) -> None:
    import asyncio

    q: sc.Query[MsgStruct] = db.query(
        "SELECT id, body, author_cf_link AS who FROM messages ORDER BY id", row=MsgStruct
    )

    async def scenario() -> tuple[sc.QueryState[MsgStruct], list[int]]:
        first = await q.first()
        seen: list[int] = []
        async for state in q.states():
            seen.append(len(state.result or []))
            if len(seen) == 1:
                await asyncio.to_thread(_post, space, db, "later", 5)
            else:
                break
        return first, seen

    first, seen = asyncio.run(scenario())
    assert first.pending is False and first.result == []
    assert seen == [0, 1]
    rt.settle()
    state = q.get()
    assert state.result == [MsgStruct(1, "later", None)]


def test_reprs_say_what_a_query_holds(rt: sc.Runtime, space: Space, db: sc.SqliteDb) -> None:
    for i in range(12):
        _post(space, db, f"m{i}", i)
    q = db.query("SELECT body FROM messages ORDER BY id")
    rt.settle()
    assert (
        repr(q) == f"<Query 'SELECT body FROM messages ORDER BY id' on {db.id}: 12 row(s), seq 12>"
    )
    text = repr(q.get())
    assert text.startswith("QueryState(pending=False, result=[{'body': 'm0'}")
    assert "... (12 rows)], error=None, seq=12)" in text
    html = q._repr_html_()
    assert "<td>m11</td>" in html and "12 row(s)" in html


def test_the_html_of_a_large_result_shows_its_first_rows_and_its_count(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb
) -> None:
    """A notebook shows a query's HTML as the value of a cell: a result of 100,000 rows sent
    every one (3.8 MB, again at each update). It shows the first 100 and says how many."""
    with space.transact():
        db.exec_many(
            "INSERT INTO messages (body, ts) VALUES (?, ?)", [[f"m{i}", i] for i in range(2_000)]
        )
    q = db.query("SELECT body FROM messages ORDER BY id")
    rt.settle()
    html = q._repr_html_()
    assert html.count("<tr>") == 101  # the header and 100 rows
    assert "<td>m99</td>" in html and "<td>m100</td>" not in html
    assert "2,000 row(s) (the first 100 shown)" in html


def test_what_a_notebook_shows_of_a_state_cuts_each_value(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb
) -> None:
    """The HTML table and the repr of a query state showed each value whole (one text of 3 MB
    made a 3 MB page, again at each update), and a linked cell's whole value on each row (50
    rows linking a 1 MB cell: 50 MB). A value is cut as a text table cuts it, a cell shown as
    its repr (which cuts its value)."""
    big = space.cell("big")
    with space.transact():
        big.set({"bio": "x" * 1_000_000})
        db.exec_many(INSERT, [[big, "y" * 300_000, i] for i in range(20)])
    query = db.query("SELECT body, author_cf_link AS who FROM messages", row=Linked)
    rt.settle()
    state = query.get()
    assert state.result is not None and len(state.result) == 20
    html = state._repr_html_()
    assert len(html) < 100_000
    assert html.count("…[cut: 300,000 characters]") == 20
    assert html.count(html_module.escape(repr(big))) == 20
    text = repr(state)
    assert len(text) < 30_000 and "… (20 rows)]" not in text  # (cut values, then the count)
    assert text.count("…[cut: ") == 10 and "... (20 rows)]" in text


def test_what_a_notebook_shows_of_a_wide_state_is_bounded_and_says_what_was_left_out(
    rt: sc.Runtime, space: Space
) -> None:
    """The HTML table cut each value and showed 100 rows, but every column: 500 columns of
    long text in 100 rows made a 51.7 MB page, sent again at each update of q.display(). It
    shows HTML_COLUMNS columns and no more rows once they hold HTML_CHARACTERS characters; its
    caption says what it left out."""
    from sqlite_cells.read._display import HTML_CHARACTERS, HTML_COLUMNS

    db = space.sqlite_database("wide", tables={"t": sc.table(id="integer primary key", s="text")})
    with space.transact():
        db.exec_many("INSERT INTO t (id, s) VALUES (?, ?)", [[i, "x" * 5000] for i in range(100)])
    columns = ", ".join(f"s AS c{i}" for i in range(500))
    query = db.query(f"SELECT id, {columns} FROM t ORDER BY id")
    rt.settle()
    html = query.get()._repr_html_()
    assert len(html) < HTML_CHARACTERS + 100_000
    assert html.count("<th>") == HTML_COLUMNS and "<th>c98</th>" in html and "c99" not in html
    shown = html.count("<tr><td>")
    assert 0 < shown < 100 and f"<tr><td>{shown - 1}</td>" in html
    assert (
        f"<caption>QueryState: seq 1, 100 row(s) (the first {shown} shown), 501 columns (the "
        f"first {HTML_COLUMNS} shown)</caption>"
    ) in html
    narrow = db.query("SELECT id FROM t ORDER BY id")
    rt.settle()
    html = narrow.get()._repr_html_()
    assert (
        html.count("<tr><td>") == 100 and "<caption>QueryState: seq 1, 100 row(s)</caption>" in html
    )


def test_a_cell_linked_from_many_rows_is_looked_at_once_and_a_large_one_never_decoded(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A query state's HTML and repr decoded and repr()'d a linked cell's whole value once per
    row, then cut it to 200 characters: 100 rows linking one 5 MB cell took seconds, on the
    scheduler thread after every commit under q.display(). A cell is looked at once per
    rendering, its repr cut as it is built, and a stored value over SHOWN_DECODED bytes is
    shown by its size and the beginning of its JSON, never decoded."""
    import sqlite_cells.runtime._cell as cell_module
    from sqlite_cells.runtime._shown import SHOWN_DECODED

    big, small = space.cell("big"), space.cell("small")
    with space.transact():
        big.set({"bio": "x" * 5_000_000})
        small.set({"n": "y" * 10_000, "m": [1, 2]})
        db.exec_many(INSERT, [[big if i % 2 else small, "b", i] for i in range(100)])
    query = db.query("SELECT body, author_cf_link AS who FROM messages", row=Linked)
    rt.settle()
    state = query.get()
    decoded: list[int] = []
    real = cell_module.decode_value

    def counting(data: bytes, *args: Any) -> Any:
        decoded.append(len(data))
        return real(data, *args)

    monkeypatch.setattr(cell_module, "decode_value", counting)
    html = state._repr_html_()
    assert len(decoded) == 1 and decoded[0] < SHOWN_DECODED  # the small cell, once
    assert html.count(html_module.escape('<5,000,010 bytes of JSON> {"bio":"xxx')) == 50
    assert html.count(html_module.escape("= {'m': [1, 2], 'n': 'yyy")) == 50
    decoded.clear()
    text = repr(state)
    assert len(decoded) == 1 and text.count('<5,000,010 bytes of JSON> {"bio":"xxx') == 5
    decoded.clear()
    shown = repr(big)
    assert shown.endswith("xxx…>") and len(shown) < 300
    assert repr(big.key("bio")).endswith("= <inside 5,000,010 bytes of JSON: get() reads it>>")
    assert decoded == []
    shown = repr(small)
    assert shown.endswith("= {'m': [1, 2], 'n': '" + "y" * 179 + "…>") and len(decoded) == 1


class Linked(msgspec.Struct):
    body: str
    who: sc.Cell | None


def test_display_returns_a_handle_that_stops(rt: sc.Runtime, db: sc.SqliteDb) -> None:
    pytest.importorskip("IPython")
    q = db.query("SELECT body FROM messages")
    rt.settle()
    handle = q.display()
    handle.stop()
    handle.stop()  # twice is harmless
    assert "stopped" in repr(handle)


def test_decoding_links_to_unknown_spaces_creates_no_file(
    rt: sc.Runtime, store: Any, space: Space, db: sc.SqliteDb
) -> None:
    """R7: 300 links to spaces the store does not hold decode to cells reading None."""
    from sqlite_cells.codec import Link, encode_link

    links = [
        encode_link(Link(id=f"of:x{i}", space=f"elsewhere-{i}", scope="space", path=())).decode()
        for i in range(300)
    ]
    with space.transact():
        db.exec_many("INSERT INTO messages (body) VALUES (?)", [[str(i)] for i in range(300)])
    import apsw

    conn = apsw.Connection(str(db.path))  # links the runtime never wrote itself
    conn.executemany(
        "UPDATE messages SET author_cf_link = ? WHERE body = ?",
        [(link, str(i)) for i, link in enumerate(links)],
    )
    conn.close()
    before = sorted(p.name for p in store.iterdir())
    rows = db.read("SELECT id, body, author_cf_link AS who FROM messages", row=MsgStruct)
    assert len(rows) == 300 and all(isinstance(r.who, sc.Cell) for r in rows)
    assert {r.who.get() for r in rows} == {None}
    cells = [rt.cell_from_link(link) for link in links[:5]]
    assert [c.get() for c in cells] == [None] * 5
    assert sc.decode_cf_link(links[0], rt).get() is None
    assert sorted(p.name for p in store.iterdir()) == before
    # Writing there creates the space, and the cells read before see it.
    target = cells[0]
    with target.space.transact():
        target.set("now written")
    assert rows[0].who.get() == "now written"
    spaces_before = [n for n in before if n.startswith("space-") and n.endswith(".sqlite")]
    assert len(list(store.glob("space-*.sqlite"))) == len(spaces_before) + 1


def test_a_cell_of_a_space_not_yet_in_the_store_is_observable(rt: sc.Runtime, store: Any) -> None:
    from sqlite_cells.codec import Link

    cell = rt.cell_for(Link(id="of:later", space="later", scope="space", path=()))
    seen: list[Any] = []
    cell.observe().subscribe(seen.append)
    rt.settle()
    assert seen == [None] and not list(store.glob("space-*.sqlite"))
    with rt.space("later").transact():
        cell.set({"now": 1})
    rt.settle()
    assert seen == [None, {"now": 1}]


def test_a_derived_cell_over_a_cell_and_a_query_runs_once_per_commit_with_both_new(
    space: Space, db: sc.SqliteDb
) -> None:
    """R54: one commit writes a cell and a row; a cell derived from both re-runs once, after
    the query's re-run for that commit has landed — never with the new cell and the old rows."""
    rt = space.runtime
    counter = space.cell("counter", default=0)
    q = db.query("SELECT count(*) AS n FROM messages")
    seen: list[tuple[int, int | None, int]] = []

    def both(value: int, state: sc.QueryState[dict[str, Any]]) -> int:
        seen.append((value, state.result[0]["n"] if state.result else None, state.seq))
        return value

    derived = sc.lift(both)(counter, q)
    assert rt.settle(10)
    assert derived.get() == 0
    seen.clear()
    for n in range(1, 5):
        with space.transact() as tx:
            counter.set(n)
            db.exec("INSERT INTO messages (body) VALUES ('x')")
        assert rt.settle(10)
        assert seen == [(n, n, tx.seq)], seen
        seen.clear()


def test_a_derived_cell_never_pairs_a_cell_with_older_rows_when_commits_outrun_the_query(
    space: Space, db: sc.SqliteDb
) -> None:
    """R54 when commits come faster than the query runs: a run that lands after later commits
    (which asked for another run) is older than the cell the scheduler holds, so the derived
    cell waits for a result as of the latest commit instead of mixing the two."""
    rt = space.runtime
    counter = space.cell("counter", default=0)
    spin = "(WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < 100000) "
    q = db.query(f"SELECT count(*) AS n, {spin}SELECT count(*) FROM r) AS spin FROM messages")
    pairs: list[tuple[int, int, int]] = []

    def both(value: int, state: sc.QueryState[dict[str, Any]]) -> int:
        if state.result:
            pairs.append((value, state.result[0]["n"], state.seq))
        return value

    sc.lift(both)(counter, q).observe().subscribe(lambda _value: None)
    assert rt.settle(30)

    @sc.handler
    def post() -> None:
        counter.set(counter.get() + 1)
        db.exec("INSERT INTO messages (body) VALUES ('x')")

    for _ in range(30):
        post()
    assert rt.settle(30)
    assert pairs[-1] == (30, 30, space.file.seen_seq)
    assert [p for p in pairs if p[0] != p[1]] == []


def test_a_cell_derived_through_a_derived_cell_of_a_query_is_glitch_free_too(
    space: Space, db: sc.SqliteDb
) -> None:
    """R54 at any depth: ``lift(posts, derive(q))`` waits for the query's run of a commit that
    wrote both, though the cell between them did not re-run in that round; and it still re-runs
    when the query's new rows leave that cell as it was."""
    rt = space.runtime
    posts = space.cell("posts", default=0)
    q = db.query("SELECT count(*) AS n, group_concat(body) AS bodies FROM messages")
    count = sc.derive(q, lambda state: state.result[0]["n"] if state.result else None)
    seen: list[tuple[int, int | None]] = []

    def pair(p: int, n: int | None) -> tuple[int, int | None]:
        seen.append((p, n))
        return (p, n)

    both = sc.lift(pair)(posts, count)
    assert rt.settle(10)
    seen.clear()
    for n in range(1, 5):
        with space.transact():
            posts.set(n)
            db.exec("INSERT INTO messages (body) VALUES ('x')")
        assert rt.settle(10)
        assert seen == [(n, n)], seen
        seen.clear()
    with space.transact():  # the query re-runs (it reads body), its count stays 4
        posts.set(10)
        db.exec("UPDATE messages SET body = 'y'")
    assert rt.settle(10)
    assert seen == [(10, 4)] and both.get() == (10, 4)


def test_a_derived_cell_made_while_a_query_re_runs_starts_from_one_commit(
    space: Space, db: sc.SqliteDb
) -> None:
    """R54 for a node made mid-flight: a ``lift(c, q)`` created right after a commit that wrote
    both, while q's run for that commit is still in flight, waits for that run before its first
    value, instead of pairing the new ``c`` with the rows of the commit before. (A query's first
    run in flight does not make it wait: its state says it has no result yet.)"""
    rt = space.runtime
    counter = space.cell("counter", default=0)
    spin = "(WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < 300000) "
    q = db.query(f"SELECT count(*) AS n, {spin}SELECT count(*) FROM r) AS spin FROM messages")
    early = sc.lift(lambda v, state: (v, state.pending))(counter, q)
    assert early.get() == (0, True)  # made before the first result: not held back for it
    assert rt.settle(30)
    firsts = []
    for n in range(1, 5):
        with space.transact():
            counter.set(n)
            db.exec("INSERT INTO messages (body) VALUES ('x')")
        pair = sc.lift(lambda v, state: (v, state.result[0]["n"] if state.result else None))
        firsts.append(pair(counter, q).get())
        assert rt.settle(30)
    assert firsts == [(1, 1), (2, 2), (3, 3), (4, 4)]


def test_a_query_whose_cell_parameter_changes_never_shows_a_state_no_commit_had(
    space: Space, db: sc.SqliteDb
) -> None:
    """Each commit sets the parameter to n and inserts ts = n, so at every seq exactly one row
    has ts >= the parameter: a run read with the previous parameter against a newer file would
    show two (R42: a result is the rows of the commit it names)."""
    rt = space.runtime
    since = space.cell("since", default=0)
    q = db.query("SELECT count(*) AS n FROM messages WHERE ts >= ?", [since])
    states: list[sc.QueryState[dict[str, Any]]] = []
    q.observe().subscribe(states.append)
    assert rt.settle(10)
    for n in range(1, 40):
        with space.transact():
            since.set(n)
            db.exec("INSERT INTO messages (body, ts) VALUES ('x', ?)", [n])
    assert rt.settle(10)
    shown = [s.result[0]["n"] for s in states if not s.pending and s.seq and s.result]
    assert shown and set(shown) == {1}, shown


def test_a_query_whose_parameter_is_derived_from_a_query_never_shows_a_state_no_commit_had(
    space: Space,
) -> None:
    """R54, R42: the parameter of ``rows`` is derived from ``newest``, another query of the
    same table. Commit n bumps row n - 1 and adds row n, so after commit n the newest id is n
    and ``rows`` (the row of that id) is always (n, 0). A run of ``rows`` that landed while
    ``newest`` was still in flight paired the parameter of commit n - 1 with the file of commit
    n: (n - 1, 1) under seq n (in 8 of 9 runs of 40 commits)."""
    rt = space.runtime
    db = space.sqlite_database("ids", tables={"t": sc.table(id="integer primary key", v="integer")})
    with space.transact():
        db.exec("INSERT INTO t (id, v) VALUES (1, 0)")
    newest = db.query("SELECT max(id) AS m FROM t")
    param = sc.derive(newest, lambda s: None if s.result is None else s.result[0]["m"])
    rows = db.query("SELECT id, v FROM t WHERE id = ?", [param])
    states: list[sc.QueryState[dict[str, Any]]] = []
    rows.observe().subscribe(states.append)
    assert rt.settle(10)
    for k in range(1, 41):
        with space.transact():
            db.exec("UPDATE t SET v = v + 1 WHERE id = ?", [k])
            db.exec("INSERT INTO t (id, v) VALUES (?, 0)", [k + 1])
    assert rt.settle(10)
    shown = [(s.seq, [(r["id"], r["v"]) for r in s.result]) for s in states if s.result]
    assert shown and all(got == [(seq, 0)] for seq, got in shown), shown
    assert rows.get() == sc.QueryState(False, [{"id": 41, "v": 0}], None, 41)


def test_a_column_called_temp_is_ordinary_sql(space: Space) -> None:
    """R21 refuses TEMP *objects*; ``temp`` as a column, an alias or a table name is a name, as
    in SQLite (``temp.x`` stays schema-qualified)."""
    db = space.sqlite_database(
        "weather", tables={"readings": sc.table(id="integer primary key", temp="real")}
    )
    with space.transact():
        db.exec("INSERT INTO readings (temp) VALUES (?)", [21.5])
        db.exec("UPDATE readings SET temp = temp + 1 WHERE temp > ?", [20])
    q = db.query("SELECT temp FROM readings AS temporary ORDER BY temp")
    space.runtime.settle()
    assert q.get().result == [{"temp": 22.5}]
    assert db.read("SELECT max(temp) AS temp FROM readings") == [{"temp": 22.5}]
    with pytest.raises(sc.GuardViolation) as info:
        db.read("SELECT temp.temp FROM readings AS temp")
    assert info.value.kind == "schema-qualified"


def test_a_live_query_refuses_cells_of_another_runtime_as_derive_does(tmp_path: Path) -> None:
    """R54: derive and lift refuse inputs of two runtimes; a live query took a parameter (or a
    react_on cell) of another Runtime, re-ran twice per commit with a state no commit had in
    between, and stayed stale for good once that runtime closed. Refused at the call."""
    store = tmp_path / "store"
    with sc.Runtime(store) as rt, sc.Runtime(store) as other:
        db = rt.space("s").sqlite_database("x", tables={"t": sc.table(v="integer")})
        theirs = other.space("s").cell("a", default=0)
        cases: list[tuple[str, dict[str, Any]]] = [
            ("SELECT ? AS p", {"params": [theirs]}),
            ("SELECT :a AS p", {"params": {"a": theirs}}),
            ("SELECT 1", {"react_on": theirs}),
        ]
        for sql, options in cases:
            with pytest.raises(sc.QueryError) as info:
                db.query(sql, **options)
            assert isinstance(info.value, ValueError) and isinstance(info.value, TypeError)
            assert "hold a cell (or derived cell, or query) of another Runtime" in str(info.value)
        ours = rt.space("s").cell("a", default=0)
        q = db.query("SELECT ? AS p", params=[ours])
        rt.settle()
        assert q.get().result == [{"p": 0}]
