"""A live query lives as long as the `Query` its caller holds, a subscriber of it, or a derived
cell or query made from it: once all are gone it stops re-running and leaves the graph (a
notebook cell run again and again does not pile up live queries). Derived cells keep running:
their function may act on each value."""

from __future__ import annotations

import gc
import logging
import weakref
from typing import Any

import pytest

import sqlite_cells as sc
from sqlite_cells.runtime import Space

MESSAGES = {"messages": sc.table(id="integer primary key", body="text not null")}


def _commit(space: Space, c: sc.Cell, value: Any) -> None:
    with space.transact():
        c.set(value)


def _forget(rt: sc.Runtime) -> None:
    """Let go of what nothing holds: collected, then looked at by the scheduler's next work."""
    gc.collect()
    rt.settle()


def test_a_derived_cell_nobody_holds_keeps_running(rt: sc.Runtime) -> None:
    """Its function may act on each value: it runs while the runtime does (unlike a query)."""
    space = rt.space("demo")
    c = space.cell("c", default=1)
    seen: list[int] = []
    sc.derive(c, seen.append)
    _forget(rt)
    _commit(space, c, 2)
    rt.settle()
    assert seen == [1, 2]


def test_a_query_read_by_a_derived_cell_lives_with_it(rt: sc.Runtime) -> None:
    space = rt.space("demo")
    db = space.sqlite_database("chat", tables=MESSAGES)
    counts: list[int] = []
    sc.derive(db.query("SELECT count(*) AS n FROM messages"), lambda s: counts.append(s.result))
    _forget(rt)
    with space.transact():
        db.exec("INSERT INTO messages (body) VALUES ('a')")
    rt.settle()
    assert counts[-1] == [{"n": 1}]


def test_an_observable_subscribed_after_its_query_was_dropped_is_live(rt: sc.Runtime) -> None:
    space = rt.space("demo")
    db = space.sqlite_database("chat", tables=MESSAGES)
    stream = db.query("SELECT count(*) AS n FROM messages").observe()
    _forget(rt)
    seen: list[Any] = []
    stream.subscribe(lambda state: seen.append(state.result))
    rt.settle()
    with space.transact():
        db.exec("INSERT INTO messages (body) VALUES ('a')")
    rt.settle()
    assert seen[-1] == [{"n": 1}]


def test_a_disposed_subscription_lets_a_dropped_query_go(rt: sc.Runtime) -> None:
    space = rt.space("demo")
    db = space.sqlite_database("chat", tables=MESSAGES)
    seen: list[Any] = []
    subscription = (
        db.query("SELECT count(*) AS n FROM messages")
        .observe()
        .subscribe(lambda state: seen.append(state.result))
    )
    _forget(rt)
    with space.transact():
        db.exec("INSERT INTO messages (body) VALUES ('a')")
    rt.settle()
    assert seen[-1] == [{"n": 1}]
    subscription.dispose()
    _forget(rt)
    before = rt.live_queries.reads_started
    with space.transact():
        db.exec("INSERT INTO messages (body) VALUES ('b')")
    rt.settle()
    assert rt.live_queries.reads_started == before
    assert seen[-1] == [{"n": 1}]


def test_a_query_made_again_and_again_reads_once_per_write(rt: sc.Runtime) -> None:
    space = rt.space("demo")
    db = space.sqlite_database("chat", tables=MESSAGES)
    with space.transact():
        db.exec("INSERT INTO messages (body) VALUES ('a')")
    for n in range(30):  # distinct parameters: each query its own read
        q = db.query("SELECT body FROM messages WHERE id > ?", [-n])
        rt.settle()
    _forget(rt)
    hub = rt.live_queries
    before = hub.reads_started
    with space.transact():
        db.exec("INSERT INTO messages (body) VALUES ('b')")
    rt.settle()
    assert hub.reads_started - before == 1
    assert q.get().result == [{"body": "a"}, {"body": "b"}]
    seen: list[Any] = []
    q.observe().subscribe(lambda state: seen.append(state.result))
    del q
    _forget(rt)
    with space.transact():
        db.exec("INSERT INTO messages (body) VALUES ('c')")
    rt.settle()
    # Subscribed: still live without its Query object.
    assert seen[-1] == [{"body": "a"}, {"body": "b"}, {"body": "c"}]


def test_a_query_with_a_cell_parameter_dropped_leaves_the_cells_dependents(
    rt: sc.Runtime,
) -> None:
    space = rt.space("demo")
    db = space.sqlite_database("chat", tables=MESSAGES)
    floor = space.cell("floor", default=0)
    q = db.query("SELECT body FROM messages WHERE id > ?", [floor])
    rt.settle()
    assert q.get().result == []
    assert len(floor._node().dependents) == 1
    del q
    _forget(rt)
    assert floor._node().dependents == []
    before = rt.live_queries.reads_started
    _commit(space, floor, 1)
    with space.transact():
        db.exec("INSERT INTO messages (body) VALUES ('a')")
    rt.settle()
    assert rt.live_queries.reads_started == before


def _live_query_nodes() -> int:
    gc.collect()
    return sum(type(o).__name__ == "_QueryNode" for o in gc.get_objects())


def test_queries_dropped_before_their_first_run_lands_are_let_go(rt: sc.Runtime) -> None:
    """Dropped at once (subscribed and disposed, or not), before their first run lands: the
    run in flight does not register them again, and nothing keeps the batch that ran them."""
    space = rt.space("demo")
    db = space.sqlite_database("chat", tables=MESSAGES)
    with space.transact():
        db.exec("INSERT INTO messages (body) VALUES ('a')")
    before = _live_query_nodes()
    for i in range(200):
        q = db.query(f"SELECT count(*) AS k{i} FROM messages")
        if i % 2:
            q.observe().subscribe(lambda state: None).dispose()
        del q
    _forget(rt)
    with space.transact():  # the scheduler's next work lets them go
        db.exec("INSERT INTO messages (body) VALUES ('b')")
    rt.settle()
    assert _live_query_nodes() == before
    assert not rt.live_queries._reads.get(db.id)


def test_databases_whose_queries_are_all_gone_leave_no_interest_behind(rt: sc.Runtime) -> None:
    """The hub kept an entry per database ever watched, and looked at every one whenever a
    query was watched or let go: a new query of one database cost 1.2 ms after 3,000 others
    had each been watched once (0.33 ms after 10). A database's entries go with its last
    query; watched again, its queries re-run on its writes as before."""
    space = rt.space("demo")
    dbs = [space.sqlite_database(f"d{i}", tables=MESSAGES) for i in range(40)]
    for db in dbs:
        query = db.query("SELECT body FROM messages")
        rt.settle()
        assert query.get().result == []
        del query
    _forget(rt)
    hub = rt.live_queries
    assert (hub._reads, hub._by_table, hub._unknown, hub._watched) == ({}, {}, {}, {})
    again = dbs[7].query("SELECT body FROM messages WHERE id > ?", [0])
    other = dbs[8].query("SELECT count(*) AS n FROM messages")
    rt.settle()
    assert set(hub._reads) == {dbs[7].id, dbs[8].id}
    with space.transact():
        dbs[7].exec("INSERT INTO messages (body) VALUES ('hi')")
    rt.settle()
    assert again.get().result == [{"body": "hi"}]
    assert other.get().result == [{"n": 0}]
    del other
    _forget(rt)
    assert set(hub._reads) == {dbs[7].id} and set(hub._watched.values()) == {dbs[7].id}


def test_the_read_times_kept_after_a_query_hold_no_long_parameter_text(rt: sc.Runtime) -> None:
    """A statement's last read time is kept after its query moves on or goes (up to 65,536
    statements), keyed by its sql and parameters: a query whose cell parameter took 200 KB of
    text after another kept every one of those texts for the runtime's life (12 MB here, and
    more with each new value). A long text is kept as its start and a digest now."""
    space = rt.space("demo")
    db = space.sqlite_database("d", tables=MESSAGES)
    with space.transact():
        db.exec("INSERT INTO messages (body) VALUES ('hi')")
    term = space.cell("term", default="")
    query = db.query("SELECT count(*) AS n FROM messages WHERE body = ?", params=[term])
    rt.settle()
    for i in range(60):
        _commit(space, term, f"{i}" + "x" * 200_000)
        rt.settle()
        assert query.get().result == [{"n": 0}]
    _commit(space, term, "hi")
    rt.settle()
    assert query.get().result == [{"n": 1}]
    del query
    _forget(rt)
    costs = rt.live_queries._costs
    assert len(costs) == 62
    assert sum(len(text) for key in costs for text in key) < 62 * 1_000


def test_queries_reading_no_table_are_let_go_without_an_error(
    rt: sc.Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    """A statement that reads no table (`SELECT ?`) watches its database with an empty read
    set: the first such query let go removed the database's (empty) table entry, and letting go
    of the next raised KeyError in the hub, logged, leaving that query live for good."""
    space = rt.space("demo")
    db = space.sqlite_database("chat", tables=MESSAGES)
    before = _live_query_nodes()
    queries = [db.query("SELECT ? AS x", [n]) for n in range(3)]
    rt.settle()
    assert [q.get().result for q in queries] == [[{"x": 0}], [{"x": 1}], [{"x": 2}]]
    del queries
    with caplog.at_level(logging.ERROR):
        _forget(rt)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert _live_query_nodes() == before
    hub = rt.live_queries
    assert (hub._reads, hub._by_table, hub._watched, hub._queries) == ({}, {}, {}, {})


def test_a_query_a_derived_cell_made_is_let_go_when_it_runs_again(
    rt: sc.Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    """Its value is the query of its last run: the ones of earlier runs go (the derived cell
    itself is never released, and holds its last value)."""
    space = rt.space("demo")
    db = space.sqlite_database("chat", tables=MESSAGES)
    p = space.cell("p", default=0)
    made: list[weakref.ref[sc.Query[Any]]] = []

    def query_of(v: int) -> sc.Query[Any]:
        q = db.query("SELECT ? AS x", [v])
        made.append(weakref.ref(q))
        return q

    before = _live_query_nodes()
    with caplog.at_level(logging.ERROR):
        for _ in range(5):
            sc.derive(p, query_of)
        rt.settle()
        for v in range(1, 4):
            _commit(space, p, v)
            rt.settle()
        _forget(rt)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert len(made) == 20
    alive = [ref() for ref in made if ref() is not None]
    assert len(alive) == 5
    assert [q.get().result for q in alive] == [[{"x": 3}]] * 5
    assert _live_query_nodes() == before + 5
