"""What a pattern input typed ``sc.SqliteDb`` takes from ``space.run`` (R61, R3, Errors): a
database, a cell that holds a handle, or ``None`` / nothing (no database linked yet: its
queries are pending). Anything else is refused at the call, before anything is recorded."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import apsw
import pytest

import sqlite_cells as sc
from sqlite_cells._runtime import Space

from .conftest import MESSAGES


@sc.pattern
def count(inp: sc.SqliteDb) -> Any:
    return inp.query("SELECT count(*) AS n FROM messages")


def _write_one(space: Space, db: sc.SqliteDb) -> None:
    with space.transact():
        db.exec("INSERT INTO messages (body) VALUES ('a')")


def test_none_is_a_database_input_with_nothing_linked(rt: sc.Runtime, space: Space) -> None:
    """R61: None is "nothing linked": the queries wait, and linking a handle later runs them."""
    piece = space.run(count, key="k", inp=None)
    rt.settle()
    state = piece.outputs.get()
    assert (state.pending, state.result, state.error) == (True, None, None)
    db = space.sqlite_database("chat", tables=MESSAGES)
    _write_one(space, db)
    piece.inputs["inp"].link(db)
    rt.settle()
    assert piece.outputs.get().result == [{"n": 1}]


def test_a_database_given_at_the_run_is_followed_through_a_relink(
    rt: sc.Runtime, space: Space
) -> None:
    """The body's database is the one its input links to, however the input got it (R61): a
    database given at the run, then another linked, moves the piece's queries and writes to the
    other one, as for an input given nothing and linked later. (Given a database, the body got
    that database itself and kept reading and writing it, while the input named the other.)"""
    first = space.sqlite_database("first", tables=MESSAGES)
    second = space.sqlite_database("second", tables=MESSAGES)
    _write_one(space, first)
    _write_one(space, first)

    @sc.pattern
    def counts(inp: sc.SqliteDb) -> Any:
        @sc.handler
        def add() -> None:
            inp.exec("INSERT INTO messages (body) VALUES ('b')")

        return {"count": inp.query("SELECT count(*) AS n FROM messages"), "add": add}

    piece = space.run(counts, key="k", inp=first)
    rt.settle()
    out = piece.outputs
    assert out["count"].get().result == [{"n": 2}]
    piece.inputs["inp"].link(second)
    rt.settle()
    assert out["count"].get().result == [{"n": 0}]
    out["add"]()
    rt.settle()
    assert out["count"].get().result == [{"n": 1}]
    assert second.read("SELECT count(*) AS n FROM messages") == [{"n": 1}]
    assert first.read("SELECT count(*) AS n FROM messages") == [{"n": 2}]


def test_a_relinked_input_s_queries_are_pending_until_the_new_database_answers(
    rt: sc.Runtime, space: Space
) -> None:
    """A pattern input's database is part of what its queries are: linked anew, each is
    pending until the new database's first result, the old rows visible meanwhile, as for new
    params (R42, R61) — it showed the old database's rows as a settled result until then. No
    state after the relink is a result of the old database with ``pending`` false."""
    first = space.sqlite_database("first", tables=MESSAGES)
    second = space.sqlite_database("second", tables=MESSAGES)
    _write_one(space, first)
    piece = space.run(count, key="k", inp=first)
    rt.settle()
    seen: list[sc.QueryState[Any]] = []
    piece.outputs.observe().subscribe(seen.append)
    rt.settle()
    assert [(s.pending, s.result) for s in seen] == [(False, [{"n": 1}])]
    piece.inputs["inp"].link(second)
    rt.settle()
    states = [(s.pending, s.result) for s in seen]
    assert states == [(False, [{"n": 1}]), (True, [{"n": 1}]), (False, [{"n": 0}])], states


def test_a_failing_run_after_a_relink_carries_the_new_database_s_seq(
    rt: sc.Runtime, space: Space, tmp_path: Path
) -> None:
    """R42, R60, R61: a run that fails keeps the higher seq of its own database only. Relinked
    from a database cell (seq 1) to a source that lacks the table, the error carried the old
    database's seq 1, and the source's rows later came with seq 0: the seq went back for one
    database. Both states of the source now carry its seq, 0."""
    path = tmp_path / "ref.db"
    conn = apsw.Connection(str(path))
    conn.execute("CREATE TABLE other(x)")
    conn.close()
    db = space.sqlite_database("chat", tables=MESSAGES)
    _write_one(space, db)
    piece = space.run(count, key="k", inp=db)
    rt.settle()
    assert (piece.outputs.get().result, piece.outputs.get().seq) == ([{"n": 1}], 1)
    piece.inputs["inp"].link(space.register_disk_source(str(path)))
    rt.settle()
    state = piece.outputs.get()
    assert (state.pending, state.result, type(state.error), state.seq) == (
        False,
        None,
        sc.QueryError,
        0,
    ), state
    assert "no such table: messages" in str(state.error)
    rows = threading.Event()
    piece.outputs.observe().subscribe(lambda s: rows.set() if s.result == [{"n": 3}] else None)
    conn = apsw.Connection(str(path))
    conn.execute("CREATE TABLE messages(id, body)")
    conn.execute("INSERT INTO messages VALUES (1, 'z'), (2, 'w'), (3, 'v')")
    conn.close()
    assert rows.wait(30), piece.outputs.get()
    rt.settle()
    state = piece.outputs.get()
    assert (state.pending, state.result, state.error, state.seq) == (False, [{"n": 3}], None, 0)


def test_none_unlinks_what_the_input_was_linked_to(rt: sc.Runtime, space: Space) -> None:
    db = space.sqlite_database("chat", tables=MESSAGES)
    _write_one(space, db)
    space.run(count, key="k", inp=db)
    piece = space.run(count, key="k", inp=None)
    rt.settle()
    assert piece.inputs["inp"].get() is None
    assert piece.outputs.get().pending is True


@pytest.mark.parametrize("value", [5, "/abs/path/reference.db", {"id": "of:x"}, [1]])
def test_a_plain_value_is_refused_and_records_nothing(
    rt: sc.Runtime, space: Space, store: Path, value: Any
) -> None:
    with pytest.raises(sc.SqliteCellsError) as info:
        space.run(count, key="k", inp=value)
    assert isinstance(info.value, TypeError)
    assert f"input 'inp' is typed sc.SqliteDb and takes a database, not {value!r}" in str(
        info.value
    )
    assert "nothing was recorded" in str(info.value)
    assert space.file.seen_seq == 0
    assert not list(store.glob("space-*"))


def test_a_cell_that_holds_no_handle_is_refused_and_records_nothing(
    rt: sc.Runtime, space: Space
) -> None:
    plain = space.cell("plain", default=3)
    db = space.sqlite_database("chat", tables=MESSAGES)
    _write_one(space, db)
    seq = space.file.seen_seq
    for cell in (plain, sc.Cell(space, db.id).key("rev")):
        with pytest.raises(sc.SqliteCellsError) as info:
            space.run(count, key="k", inp=cell)
        assert isinstance(info.value, TypeError)
        assert f"but cell {cell.id} in 'demo'" in str(info.value)
        assert "holds no database handle" in str(info.value)
    assert space.file.seen_seq == seq


def test_a_cell_that_holds_a_link_to_a_database_is_refused_saying_so(
    rt: sc.Runtime, space: Space
) -> None:
    db = space.sqlite_database("chat", tables=MESSAGES)
    holder = space.cell("holder")
    holder.link(db)
    piece = space.run(count, key="k")
    seq = space.file.seen_seq
    with pytest.raises(sc.SqliteCellsError) as info:
        piece.inputs["inp"].link(holder)
    assert isinstance(info.value, TypeError)
    assert str(info.value) == (
        f"{piece.inputs['inp'].id} is a pattern's database input (typed sc.SqliteDb), but cell "
        f"{holder.id} in 'demo' holds a link to database {db.id}, and a cell that holds a link "
        "to a database is not accepted: link the database itself (piece.inputs[name].link(db)); "
        "nothing was written"
    )
    assert space.file.seen_seq == seq
    piece.inputs["inp"].link(db)  # as the message says
    rt.settle()
    assert piece.outputs.get().result == [{"n": 0}]


def test_a_plain_cell_almost_shaped_like_a_handle_linked_later_is_no_database(
    rt: sc.Runtime, space: Space
) -> None:
    """A plain cell holding ``{"id": <its id>, "tables": {}, "rev": "draft"}`` (not a handle's
    shape, so ``set`` takes it) linked to a database input made the query fail as a
    *quarantined database* "written by an older or foreign program", whose advice was a
    ``check`` that finds no database. It is a ``SourceError``, as for any other value. (``link``
    itself refuses such a cell at the call; a link set as the input's value gets here.)"""
    plain = space.cell("notes")
    with space.transact():
        plain.set({"id": plain.id, "tables": {}, "rev": "draft"})
    piece = space.run(count, key="k")
    with pytest.raises(sc.SqliteCellsError, match="holds no database handle"):
        piece.inputs["inp"].link(plain)
    with space.transact():
        piece.inputs["inp"].set(plain)
    rt.settle()
    error = piece.outputs.get().error
    assert type(error) is sc.SourceError
    assert "does not hold a database handle" in str(error)
    assert not list(rt.store.glob("cell-*.sqlite"))


def test_a_cell_that_holds_a_handle_gives_the_body_its_database(
    store: Path, rt: sc.Runtime, space: Space
) -> None:
    db = space.sqlite_database("chat", tables=MESSAGES)
    _write_one(space, db)
    piece = space.run(count, key="k", inp=rt.cell_from_link(db.link_str()))
    rt.settle()
    assert piece.outputs.get().result == [{"n": 1}]
    rt.close()
    with sc.Runtime(store) as again:  # nothing declared: the committed handle says it all
        demo = again.space("demo")
        piece = demo.run(count, key="k", inp=again.cell_from_link(db.link_str()))
        again.settle()
        assert piece.outputs.get().result == [{"n": 1}]


@sc.pattern
def passes(inp: sc.SqliteDb) -> sc.SqliteDb:
    return inp


@sc.pattern
def optional_count(inp: sc.SqliteDb | None = None) -> Any:
    return None if inp is None else inp.query("SELECT count(*) AS n FROM messages")


@sc.pattern
def limited(limit: int = 5) -> Any:
    return limit if isinstance(limit, int) else limit.get()


def test_a_python_default_gives_way_to_an_input_linked_before_the_run(store: Path) -> None:
    """An input linked between runs (as ``sqlite-cells link`` does) is what the next run's body
    gets, even where the parameter has a Python default; a default stands in for nothing."""
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        piece = space.run(optional_count, key="k")
        assert piece.outputs is None  # nothing linked yet: the default
        db = space.sqlite_database("chat", tables=MESSAGES)
        _write_one(space, db)
        piece.inputs["inp"].link(db)
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        piece = space.run(optional_count, key="k")
        rt.settle()
        assert piece.outputs is not None and piece.outputs.get().result == [{"n": 1}]


def test_a_python_default_gives_way_to_a_value_set_on_the_input(space: Space) -> None:
    assert space.run(limited, key="k").outputs == 5
    piece = space.run(limited, key="k")
    with space.transact():
        piece.inputs["limit"].set(7)
    assert space.run(limited, key="k").outputs == 7
    assert space.run(limited, key="k", limit=9).outputs == 9


@sc.pattern
def defaulted(inp: sc.SqliteDb | None = None, limit: int = 5) -> Any:
    return {"inp": inp, "limit": limit}


@sc.pattern
def undefaulted(limit: int) -> Any:
    return limit


def test_an_input_cleared_with_set_none_gives_way_to_the_python_default(
    rt: sc.Runtime, space: Space
) -> None:
    """R61, §6: an input cell holding null holds nothing, as one never written does: a run
    given nothing gets the parameter's Python default (``None``, not a pending database; 5,
    not a cell holding null). It was taken for a value held."""
    piece = space.run(defaulted, key="k")
    db = space.sqlite_database("chat", tables=MESSAGES)
    _write_one(space, db)
    piece.inputs["inp"].link(db)
    with space.transact():
        piece.inputs["limit"].set(7)
    outputs = space.run(defaulted, key="k").outputs
    assert isinstance(outputs["inp"], sc.SqliteDb)
    query = outputs["inp"].query("SELECT count(*) AS n FROM messages")
    rt.settle()
    assert query.get().result == [{"n": 1}]
    assert isinstance(outputs["limit"], sc.Cell) and outputs["limit"].get() == 7
    with space.transact():
        piece.inputs["inp"].set(None)
        piece.inputs["limit"].set(None)
    assert space.run(defaulted, key="k").outputs == {"inp": None, "limit": 5}


def test_an_input_given_none_is_none_for_that_run_and_the_default_after(space: Space) -> None:
    """R61, §6: ``None`` given to ``space.run`` is what that run's body gets (the input cell,
    holding null); the next run given nothing gets the Python default again, as for a cleared
    input. A parameter without a default still gets its input cell holding null."""
    assert space.run(defaulted, key="k").outputs == {"inp": None, "limit": 5}
    given = space.run(defaulted, key="k", limit=None).outputs["limit"]
    assert isinstance(given, sc.Cell) and given.get() is None
    assert space.run(defaulted, key="k").outputs == {"inp": None, "limit": 5}
    piece = space.run(undefaulted, key="k", limit=None)
    assert piece.outputs is piece.inputs["limit"]
    again = space.run(undefaulted, key="k").outputs
    assert isinstance(again, sc.Cell) and again.id == piece.inputs["limit"].id
    assert again.get() is None


def _settled(
    rt: sc.Runtime, query: sc.Query[Any], done: Callable[[sc.QueryState[Any]], bool]
) -> sc.QueryState[Any]:
    """The query's state once ``done`` says so, or its last one (bounded wait: another
    runtime's commit takes a poll_interval to be seen here)."""
    for _ in range(300):
        rt.settle()
        if done(query.get()):
            break
        time.sleep(0.01)
    state: sc.QueryState[Any] = query.get()
    return state


def test_a_link_to_a_database_another_runtime_writes_later_runs_once_written(
    store: Path,
) -> None:
    """R53, R61: runtime A links the input to a database it declared but has not written, so
    runtime B, on the same store, finds no handle in that cell yet: B's query is pending (it
    was a SourceError saying to link a handle, which A had done) and a write through B's input
    is ``PendingValue``. A's first write creates the handle: B's query resolves the link again
    and reads the rows, as A's does, and follows the writes after it."""
    with (
        sc.Runtime(store, poll_interval=0.01) as rt_a,
        sc.Runtime(store, poll_interval=0.01) as rt_b,
    ):
        space_a, space_b = rt_a.space("demo"), rt_b.space("demo")
        piece_a = space_a.run(count, key="k")
        piece_b = space_b.run(count, key="k")
        db = space_a.sqlite_database("chat", tables=MESSAGES)
        piece_a.inputs["inp"].link(db)
        rt_a.settle()
        for _ in range(300):  # B sees the link (a commit of A's: within a poll interval)
            if isinstance(piece_b.inputs["inp"].get(), sc.Cell):
                break
            time.sleep(0.01)
        rt_b.settle()
        state = piece_b.outputs.get()
        assert state.pending and state.error is None, state
        through_b = space_b.run(passes, key="w", inp=piece_b.inputs["inp"]).outputs
        # (B never declared the database: its first write is A's to make.)
        with (
            pytest.raises(sc.PendingValue, match="holds no database handle yet"),
            space_b.transact(),
        ):
            through_b.exec("INSERT INTO messages (body) VALUES ('from B')")
        _write_one(space_a, db)
        state = _settled(rt_b, piece_b.outputs, lambda s: s.result == [{"n": 1}])
        assert (state.result, state.error) == ([{"n": 1}], None)
        _write_one(space_a, db)
        state = _settled(rt_b, piece_b.outputs, lambda s: s.result == [{"n": 2}])
        assert state.result == [{"n": 2}]
        rt_a.settle()
        assert piece_a.outputs.get().result == [{"n": 2}]


@sc.handler
def _post(body: str, *, db: sc.SqliteDb) -> None:
    db.exec("INSERT INTO messages (body) VALUES (?)", [body])


def test_a_database_reached_only_through_an_input_follows_what_its_owner_declares(
    store: Path,
) -> None:
    """R14, R61: a runtime that never declared a database, reaching it through a pattern
    input, knows it from its handle's value — once: after the declaring runtime added a column
    its writes were refused as "not declared" (advice to bump a version it never declared), and
    since a handle records no version, after a ``migrate`` to version 2 no such runtime could
    ever write it again. It follows the handle's tables, and takes the file's version."""
    wider = {
        "messages": sc.table(
            id="integer primary key",
            author_cf_link=sc.cf_link(),
            body="text not null",
            ts="integer not null default 0",
            n="integer default 7",
            indexes={"by_ts": ["ts"]},
        )
    }
    with sc.Runtime(store) as owner, sc.Runtime(store) as other:
        declared = owner.space("demo").sqlite_database("chat", tables=MESSAGES)
        _post("one", db=declared)
        through = (
            other.space("demo")
            .run(passes, key="k", inp=other.cell_from_link(declared.link_str()))
            .outputs
        )
        _post("two", db=through)
        declared = owner.space("demo").sqlite_database("chat", tables=wider)
        _post("three", db=declared)
        handle = other.cell_from_link(declared.link_str())
        for _ in range(300):  # (the owner's commit reaches the other runtime's view)
            columns = handle.get()["tables"]["messages"]["columns"]
            if "n" in [column["name"] for column in columns]:
                break
            time.sleep(0.01)
        _post("four", db=through)
        owner.space("demo").sqlite_database(
            "chat", tables=wider, version=2, migrate=lambda conn, version: None
        )
        _post("five", db=owner.space("demo").sqlite_database("chat", tables=wider, version=2))
    with sc.Runtime(store) as fresh:
        through = fresh.space("demo").run(passes, key="k").outputs
        _post("six", db=through)
        rows = through.read("SELECT body, n FROM messages ORDER BY id")
    assert [row["body"] for row in rows] == ["one", "two", "three", "four", "five", "six"]
    assert rows[-1]["n"] == 7


_SLOW_COUNT = (
    "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < 1500000) "
    "SELECT (SELECT count(*) FROM r) > 0 AS ok, (SELECT group_concat(body) FROM messages) AS b"
)


@sc.pattern
def slow(inp: sc.SqliteDb) -> Any:
    return inp.query(_SLOW_COUNT)


def test_a_run_in_flight_when_the_input_is_relinked_is_dropped(
    rt: sc.Runtime, space: Space
) -> None:
    """R42, R61: relinked while a run on the former database was in flight, the query showed
    that run's rows as its final, non-pending result under the new link (then the new
    database's, with a seq going back). The run is dropped when it lands, as one for former
    parameters is (fixed parameters too): pending, then the new database's rows."""
    d1, d2 = (space.sqlite_database(name, tables=MESSAGES) for name in ("d1", "d2"))
    for db, body in ((d1, "one"), (d2, "two")):
        with space.transact():
            db.exec("INSERT INTO messages (body) VALUES (?)", [body])
    piece = space.run(slow, key="k", inp=d1)
    assert rt.settle(30)
    seen: list[tuple[bool, str | None]] = []
    piece.outputs.observe().subscribe(
        lambda s: seen.append((s.pending, s.result[0]["b"] if s.result else None))
    )
    with space.transact():
        d1.exec("INSERT INTO messages (body) VALUES ('eleven')")  # a slow run on d1 starts
    time.sleep(0.05)
    piece.inputs["inp"].link(d2)  # while it runs
    assert rt.settle(30)
    assert "one,eleven" not in [b for pending, b in seen if not pending], seen
    assert seen[-1] == (False, "two") and piece.outputs.get().result == [{"ok": 1, "b": "two"}]


@sc.pattern
def counts_on(inp: sc.SqliteDb, other: int) -> Any:
    return {
        "list": inp.query("SELECT count(*) AS n FROM messages", react_on=[inp, other]),
        "tuple": inp.query("SELECT count(*) AS n FROM messages", react_on=(inp,)),
        "dict": inp.query("SELECT count(*) AS n FROM messages", react_on={"db": inp}),
    }


def test_a_database_input_among_react_on_cells_reacts_to_its_writes(
    rt: sc.Runtime, space: Space
) -> None:
    """R51: ``react_on=[db, cell]`` re-runs after every write to ``db``; a pattern's database
    input in such a list (tuple, dict) stood for its input cell alone, and the query missed
    every write to the database linked."""
    db = space.sqlite_database("chat", tables=MESSAGES)
    piece = space.run(counts_on, key="k", inp=db, other=0)
    assert rt.settle(10)
    _write_one(space, db)
    assert rt.settle(10)
    assert {name: q.get().result for name, q in piece.outputs.items()} == {
        "list": [{"n": 1}],
        "tuple": [{"n": 1}],
        "dict": [{"n": 1}],
    }


_RUNS = "SELECT count(*) AS n, random() AS run FROM messages"  # (each run reads another `run`)


@sc.pattern
def on_other(inp: sc.SqliteDb, other: sc.SqliteDb) -> Any:
    own = inp.space.sqlite_database("own", tables=MESSAGES)
    return {
        "alone": inp.query(_RUNS, react_on=other),
        "list": inp.query(_RUNS, react_on=[inp, other]),
        "own": own.query(_RUNS, react_on={"o": other}),
    }


def test_another_database_input_in_react_on_stands_for_the_database_it_links_to(
    rt: sc.Runtime, space: Space
) -> None:
    """R51, R61: a pattern's database input in ``react_on`` of a query of another database
    (the other input's, the piece's own) stood for its input cell only: writes to the database
    linked to it never re-ran the query, where ``react_on=db`` re-runs after each write to
    ``db``. It re-runs after each committed write to the database linked now, alone or in a
    list or dict, and follows a relink."""
    d1, d2, d3 = (space.sqlite_database(name, tables=MESSAGES) for name in ("d1", "d2", "d3"))
    piece = space.run(on_other, key="k", inp=d1, other=d2)
    assert rt.settle(10)

    def runs() -> dict[str, Any]:
        assert rt.settle(10)
        states = {name: q.get() for name, q in piece.outputs.items()}
        assert all(st.error is None and not st.pending for st in states.values()), states
        return {name: st.result[0]["run"] for name, st in states.items()}

    first = runs()
    _write_one(space, d2)
    after_d2 = runs()
    assert {name: after_d2[name] != first[name] for name in first} == dict.fromkeys(first, True)
    _write_one(space, d3)  # not linked: nothing re-runs
    assert runs() == after_d2
    piece.inputs["other"].link(d3)
    relinked = runs()
    _write_one(space, d2)  # linked no more
    assert runs() == relinked
    _write_one(space, d3)
    after_d3 = runs()
    assert {name: after_d3[name] != relinked[name] for name in first} == dict.fromkeys(first, True)
    assert piece.outputs["alone"].get().result[0]["n"] == 0  # (d1's rows, never written)


def test_a_query_through_an_input_of_a_database_this_transaction_writes_is_refused(
    rt: sc.Runtime, space: Space
) -> None:
    """R35 through a pattern's database input: `inp.read` was refused after a pending
    `db.exec` on the database it links to, but `inp.query` was accepted."""

    @sc.pattern
    def given(inp: sc.SqliteDb) -> Any:
        return inp

    db = space.sqlite_database("chat", tables=MESSAGES)
    inp = space.run(given, key="k", inp=db).outputs
    sql = "SELECT count(*) AS n FROM messages"
    with space.transact():
        db.exec("INSERT INTO messages (body) VALUES ('a')")
        for call in (inp.query, inp.read, db.query, db.read):
            with pytest.raises(sc.ReadAfterWriteUnsupported, match=r"pending db\.exec"):
                call(sql)
    assert inp.read(sql) == [{"n": 1}]  # (the transaction went on and committed)
    with space.transact():
        unlinked = space.run(given, key="none", inp=None).outputs
        db.exec("INSERT INTO messages (body) VALUES ('b')")
        query = unlinked.query(sql)  # nothing linked: nothing written through it
    rt.settle()
    assert query.get().pending


@sc.pattern
def handed_on(inp: sc.SqliteDb) -> Any:
    return inp


def test_an_unlinked_input_refuses_what_the_guard_refuses_before_saying_it_is_not_linked(
    rt: sc.Runtime, space: Space
) -> None:
    """R20, R24: every statement passes the guard at the call. On an input linked to nothing
    yet, a statement that could never run is refused as such by read, exec and exec_many, as by
    query — not answered "not linked yet", which would send the caller waiting for nothing. A
    statement the guard lets through still says the input is not linked."""
    inp = space.run(handed_on, key="k", inp=None).outputs
    with pytest.raises(sc.GuardViolation) as refused:
        inp.read("SELECT * FROM _cf_watermark")
    assert refused.value.kind == "reserved-name"
    with space.transact():
        with pytest.raises(sc.GuardViolation) as refused:
            inp.exec("ATTACH DATABASE 'x.db' AS x")
        assert refused.value.kind == "forbidden-statement"
        with pytest.raises(sc.GuardViolation) as refused:
            inp.exec_many("DELETE FROM sqlite_master WHERE name = ?", [["t"]])
        assert refused.value.kind == "reserved-name"
        with pytest.raises(sc.PendingValue, match="not linked to a database yet"):
            inp.exec("INSERT INTO messages (body) VALUES ('a')")
    with pytest.raises(sc.PendingValue, match="not linked to a database yet"):
        inp.read("SELECT count(*) AS n FROM messages")
    db = space.sqlite_database("chat", tables=MESSAGES)
    space.run(handed_on, key="k", inp=db)
    with space.transact():
        inp.exec("INSERT INTO messages (body) VALUES ('a')")
    assert inp.read("SELECT count(*) AS n FROM messages") == [{"n": 1}]


def test_link_refuses_a_cell_that_holds_no_handle_as_run_does(rt: sc.Runtime, space: Space) -> None:
    """R61, R3: linking a database input to a plain cell is refused as space.run refuses it,
    before anything is written; before, the link was committed and the piece's queries failed
    (and after a restart stayed pending) for a link nobody meant. A database, a cell that holds
    a handle and another piece's database input are linked as before."""
    plain = space.cell("plain", default=3)
    with pytest.raises(sc.SqliteCellsError, match="holds no database handle") as refused:
        space.run(count, key="k", inp=plain)
    assert isinstance(refused.value, ValueError | TypeError)
    piece = space.run(count, key="k")
    with pytest.raises(sc.SqliteCellsError, match="holds no database handle") as refused:
        piece.inputs["inp"].link(plain)
    assert isinstance(refused.value, ValueError | TypeError)
    assert piece.inputs["inp"].get() is None  # nothing written
    db = space.sqlite_database("chat", tables=MESSAGES)
    _write_one(space, db)
    other = space.run(count, key="other", inp=db)
    piece.inputs["inp"].link(other.inputs["inp"])  # another piece's database input
    rt.settle()
    assert piece.outputs.get().result == [{"n": 1}]
    piece.inputs["inp"].link(db)
    rt.settle()
    assert piece.outputs.get().result == [{"n": 1}]


def test_an_input_linked_to_a_database_never_written_runs_once_a_restart_declares_it(
    store: Path,
) -> None:
    """R41, R61: after a restart, a piece's input links to a database declared in the earlier
    run and never written: its cell holds no handle, so the query is pending until this runtime
    declares the database. Declared after ``space.run``, the query stayed pending for good
    (only the database's first write woke it), though ``d.read`` answered at once. It runs on
    the declaration, as when the database is declared before the run; no file is made."""
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("chat", tables=MESSAGES)
        piece = space.run(count, key="k", inp=db)
        assert rt.settle(10)
        assert piece.outputs.get().result == [{"n": 0}]
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        piece = space.run(count, key="k")
        assert rt.settle(10)
        state = piece.outputs.get()
        assert (state.pending, state.result, state.error) == (True, None, None)
        db = space.sqlite_database("chat", tables=MESSAGES)
        assert rt.settle(10)
        state = piece.outputs.get()
        assert (state.pending, state.result, state.error) == (False, [{"n": 0}], None)
        assert not db.path.exists()  # R41: read as declared, no file made for it
        _write_one(space, db)
        assert rt.settle(10)
        assert piece.outputs.get().result == [{"n": 1}]


def test_an_input_linked_to_a_vm_database_fails_again_once_a_restart_declares_it(
    store: Path,
) -> None:
    """R62, R61: a ``VmSource`` database is never written, so after a restart its cell holds
    no handle and a piece linked to it was pending for good, even once the program declared it
    again. Its queries fail with ``NotImplementedSource`` on the declaration, as in the first
    run."""
    source = sc.VmSource("vm", "/data/app.db")
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        vm = space.sqlite_database("vm", tables=MESSAGES, source=source)
        piece = space.run(count, key="k", inp=vm)
        assert rt.settle(10)
        first = piece.outputs.get().error
        assert isinstance(first, sc.NotImplementedSource)
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        piece = space.run(count, key="k")
        assert rt.settle(10)
        assert piece.outputs.get().pending
        space.sqlite_database("vm", tables=MESSAGES, source=source)
        assert rt.settle(10)
        state = piece.outputs.get()
        assert (state.pending, state.result) == (False, None)
        assert isinstance(state.error, sc.NotImplementedSource)
        assert str(state.error) == str(first) and "lives in a VM" in str(state.error)


def test_a_dropped_database_is_refused_by_run_and_link(rt: sc.Runtime, space: Space) -> None:
    """A dropped database leads to no rows for good: given to ``space.run`` or linked to an
    input it was accepted and recorded, and the piece's queries only failed ("was dropped").
    Refused at once now, recording nothing; the input keeps what it was linked to."""
    gone = space.sqlite_database("gone", tables=MESSAGES)
    kept = space.sqlite_database("kept", tables=MESSAGES)
    _write_one(space, gone)
    _write_one(space, kept)
    with space.transact():
        gone.drop()
    piece = space.run(count, key="k", inp=kept)
    seq = space.file.seen_seq
    for refused in (
        lambda: space.run(count, key="k", inp=gone),
        lambda: space.run(count, key="other", inp=gone),
        lambda: piece.inputs["inp"].link(gone),
        lambda: piece.inputs["inp"].link(rt.cell_from_link(gone.link())),  # its handle cell
    ):
        with pytest.raises(ValueError) as info:
            refused()
        assert isinstance(info.value, sc.SqliteCellsError)
        assert f"database {gone.id} of space 'demo' was dropped (db.drop())" in str(info.value)
        assert "nothing was" in str(info.value)
    assert space.file.seen_seq == seq
    rt.settle()
    assert piece.outputs.get().result == [{"n": 1}]


def test_a_database_of_another_store_is_refused_with_advice_that_works(
    rt: sc.Runtime, space: Space, tmp_path: Path
) -> None:
    """R6, R60: a handle of a runtime on another store cannot be linked here, and a database has
    no value to store in its place: the refusal says to open both spaces from one store or to
    register its file as a disk source — which then serves its rows."""
    with sc.Runtime(tmp_path / "other") as other:
        theirs = other.space("demo").sqlite_database("chat", tables=MESSAGES)
        _write_one(other.space("demo"), theirs)
        piece = space.run(count, key="k")
        seq = space.file.seen_seq
        for refused in (
            lambda: space.run(count, key="k2", inp=theirs),
            lambda: piece.inputs["inp"].link(theirs),
        ):
            with pytest.raises(sc.ValueEncodeError) as info:
                refused()
            assert isinstance(info.value, ValueError)
            assert (
                f"a cell of the runtime on {other.store}, but it is stored in {rt.store}: a link "
                "names a cell of its own store only; a database has no value to store in its "
                "place: open both spaces from one store, or register its file as a disk source "
                f"where it is used (space.register_disk_source({str(theirs.path)!r}))"
            ) in str(info.value)
            assert "cell.get()" not in str(info.value)
        assert space.file.seen_seq == seq
        piece.inputs["inp"].link(space.register_disk_source(str(theirs.path)))  # as it says
        rt.settle()
        assert piece.outputs.get().result == [{"n": 1}]
