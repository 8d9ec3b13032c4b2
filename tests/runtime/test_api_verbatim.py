"""The public API exactly as SPEC §3 and §4 write it, each line run with real values filled in,
and the errors of §5 that those lines can raise."""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import json
import math
import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypedDict

import msgspec
import pytest

import sqlite_cells as sc

ROOT = Path(__file__).resolve().parents[2]


def _chat_tables() -> dict[str, Any]:
    return {
        "messages": sc.table(
            id="integer primary key",
            author_cf_link=sc.cf_link(),
            body="text not null",
            ts="integer not null default 0",
            indexes={"by_ts": ["ts"]},
        ),
    }


def _run_elsewhere(fn: Any, *args: Any) -> None:
    """Run ``fn`` in a new thread (no transaction of the caller's in its context) and wait."""
    failed: list[BaseException] = []

    def run() -> None:
        try:
            fn(*args)
        except BaseException as exc:  # handed to the caller
            failed.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if failed:
        raise failed[0]


# -- sc.Runtime(...) options ---------------------------------------------------------------------


def test_every_runtime_option_is_accepted_by_keyword_and_takes_effect(tmp_path: Path) -> None:
    store = tmp_path / "store"
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    inside = allowed / "ref.db"
    outside = tmp_path / "other.db"
    for path in (inside, outside):
        with sqlite3.connect(path) as conn:
            conn.execute("CREATE TABLE t (x)")
        conn.close()
    with sc.Runtime(
        store=store,
        poll_interval=0.05,
        query_workers=1,
        read_pool_size=1,
        query_timeout=0.3,
        disk_source_roots=[str(allowed)],
    ) as rt:
        assert rt.store == store
        space = rt.space("demo")
        h = space.register_disk_source(str(inside))
        assert h.read("SELECT count(*) AS n FROM t") == [{"n": 0}]
        with pytest.raises(sc.DiskSourceError):
            space.register_disk_source(str(outside))
        # Two databases read through a pool of one connection, one after the other.
        db = space.sqlite_database("chat", tables=_chat_tables())
        assert db.read("SELECT count(*) AS n FROM messages") == [{"n": 0}]
        assert h.read("SELECT count(*) AS n FROM t") == [{"n": 0}]
        # query_timeout: a read that runs for ever is stopped.
        with pytest.raises(sc.QueryTimeout):
            db.read(
                "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r) "
                "SELECT count(*) FROM r"
            )


BAD_OPTIONS = [
    *[("poll_interval", v) for v in (0, -1, -0.5, True, "0.02", None, math.nan, math.inf)],
    *[("query_workers", v) for v in (0, -1, 1.5, True, "2", None)],
    *[("read_pool_size", v) for v in (0, -3, 2.0, False, "64", None, 10**7, 10**400)],
    *[("query_timeout", v) for v in (0, -5.0, True, "5", None, math.nan, math.inf)],
    *[("disk_source_roots", v) for v in ("/tmp", b"/tmp", 5, [5], ["relative"], [None])],
]


@pytest.mark.parametrize(("option", "value"), BAD_OPTIONS)
def test_a_bad_runtime_option_is_our_value_or_type_error_and_makes_no_store(
    tmp_path: Path, option: str, value: object
) -> None:
    store = tmp_path / "store"
    with pytest.raises(sc.SqliteCellsError) as info:
        sc.Runtime(store, **{option: value})
    assert isinstance(info.value, ValueError | TypeError)
    assert option in str(info.value)
    assert not store.exists()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("option", "value"), BAD_OPTIONS[::5])
def test_a_bad_option_to_ephemeral_leaves_no_temporary_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, option: str, value: object
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with pytest.raises(sc.SqliteCellsError) as info:
        sc.Runtime.ephemeral(**{option: value})
    assert isinstance(info.value, ValueError | TypeError)
    assert list(tmp_path.iterdir()) == []


def test_an_ephemeral_runtime_takes_the_same_options(tmp_path: Path) -> None:
    with sc.Runtime.ephemeral(poll_interval=0.05, query_workers=1, query_timeout=1.0) as rt:
        assert rt.poll_interval == 0.05 and rt.query_timeout == 1.0
        store = rt.store
        with rt.space("demo").transact():
            rt.space("demo").cell("c").set(1)
        assert store.is_dir()
    assert not store.exists()


READ_ONLY = [
    ("store", "/elsewhere"),
    ("poll_interval", "soon"),
    ("query_timeout", 0.0),
    ("exec_timeout", None),
    ("disk_source_roots", ["/"]),
]


@pytest.mark.parametrize(("name", "value"), READ_ONLY)
def test_a_runtime_option_cannot_be_reassigned_after_the_runtime_is_made(
    name: str, value: object
) -> None:
    # Its threads and pool were built with it: an assignment would reach some paths only.
    with sc.Runtime.ephemeral(query_timeout=1.5) as rt:
        before = getattr(rt, name)
        with pytest.raises(AttributeError):
            setattr(rt, name, value)
        assert getattr(rt, name) == before
        db = rt.space("demo").sqlite_database("chat", tables=_chat_tables())
        assert db.read("SELECT count(*) AS n FROM messages") == [{"n": 0}]
    assert rt.query_timeout == 1.5 and rt.disk_source_roots is None


def test_a_cells_path_is_read_only_like_its_id() -> None:
    with sc.Runtime.ephemeral() as rt:
        space = rt.space("demo")
        profile = space.cell("profile")
        name = profile.key("name")
        with space.transact():
            profile.set({"name": "Ada", "age": 36})
        with pytest.raises(AttributeError):
            name.value_path = ("age",)  # type: ignore[misc]
        assert name.value_path == ("name",) and name.get() == "Ada"
        assert {name: 1}[profile.key("name")] == 1  # its hash cannot change under a dict


def _program(code: str, cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


WRITE_ONE = """
import sqlite_cells as sc
rt = sc.Runtime()
space = rt.space("demo")
c = space.cell("counter", default=0)
with space.transact():
    c.set(c.get() + 1)
print(rt.store, c.get())
rt.close()
"""


def test_the_default_store_is_dot_sqlite_cells_in_the_current_directory(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "SQLITE_CELLS_STORE"}
    assert _program(WRITE_ONE, tmp_path, env).endswith(" 1")
    assert (tmp_path / ".sqlite-cells").is_dir()
    assert any((tmp_path / ".sqlite-cells").iterdir())
    assert _program(WRITE_ONE, tmp_path, env).endswith(" 2")  # the same store again


def test_the_default_store_is_sqlite_cells_store_when_it_is_set(tmp_path: Path) -> None:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    store = tmp_path / "elsewhere"
    env = {**os.environ, "SQLITE_CELLS_STORE": str(store)}
    out = _program(WRITE_ONE, cwd, env)
    assert out == f"{store} 1"
    assert any(store.iterdir())
    assert list(cwd.iterdir()) == []


# -- cells -------------------------------------------------------------------------------------


def test_get_inside_a_transaction_sees_its_own_writes_and_others_see_the_committed_value(
    rt: sc.Runtime,
) -> None:
    space = rt.space("demo")
    c = space.cell("counter", default=0)
    seen_elsewhere: list[Any] = []
    with space.transact():
        c.set(c.get() + 1)
        assert c.get() == 1
        c.update(lambda v: v + 1)
        assert c.get() == 2
        _run_elsewhere(lambda: seen_elsewhere.append(c.get()))
    assert seen_elsewhere == [0]
    assert c.get() == 2


def test_a_cell_at_a_path_reads_writes_and_observes_that_path(rt: sc.Runtime) -> None:
    space = rt.space("demo")
    c = space.cell("doc", default={"a": [10, 20], "b": 1})
    at = c.key("a").key(0)
    assert at.get() == 10
    assert space.cell("other").key("a").key(0).get() is None  # nothing there yet
    seen: list[Any] = []
    at.observe().subscribe(seen.append)
    rt.settle()
    with space.transact():
        at.set(11)
        assert at.get() == 11
    with space.transact():
        c.key("b").set(2)  # beside the path: the path's observer hears nothing new
    rt.settle()
    assert c.get() == {"a": [11, 20], "b": 2}
    assert seen == [10, 11]
    with space.transact():
        at.update(lambda v: v + 1)
    assert c.get() == {"a": [12, 20], "b": 2}


def test_a_link_round_trips_through_cell_from_link_in_both_forms(rt: sc.Runtime) -> None:
    space = rt.space("demo")
    c = space.cell("counter", default=0)
    with space.transact():
        c.set({"a": [5]})
    for cell in (c, c.key("a").key(0)):
        for form in (cell.link(), cell.link_str()):
            back = rt.cell_from_link(form)
            assert back == cell
            assert back.id == cell.id
            assert back.get() == cell.get()
            assert back.link_str() == cell.link_str()
    assert json.loads(c.link_str()) == {
        "/": {"link@1": {"id": c.id, "space": "demo", "scope": "space"}}
    }
    assert json.loads(c.key("a").key(0).link_str()) == {
        "/": {"link@1": {"id": c.id, "space": "demo", "scope": "space", "path": ["a", 0]}}
    }
    assert c.id.startswith("of:")


def test_observe_gives_the_committed_value_first_then_each_change_never_a_rolled_back_one(
    rt: sc.Runtime,
) -> None:
    space = rt.space("demo")
    c = space.cell("counter", default=0)
    with space.transact():
        c.set(5)
    seen: list[Any] = []
    c.observe().subscribe(seen.append)
    rt.settle()
    assert seen == [5]
    with pytest.raises(ZeroDivisionError), space.transact():
        c.set(99)
        _ = 1 / 0
    with space.transact():
        c.set(6)
    rt.settle()
    assert seen == [5, 6]
    assert c.get() == 6


# -- transactions --------------------------------------------------------------------------------


def test_a_nested_transaction_joins_the_outer_and_falls_with_it(rt: sc.Runtime) -> None:
    space = rt.space("demo")
    c = space.cell("counter", default=0)
    d = space.cell("other", default=0)
    with pytest.raises(RuntimeError, match="outer fails"), space.transact() as outer:
        c.set(1)
        with space.transact() as inner:
            d.set(1)
        assert d.get() == 1
        _run_elsewhere(lambda: assert_equal(d.get(), 0))  # not committed by the inner block
        del outer, inner
        raise RuntimeError("outer fails")
    assert (c.get(), d.get()) == (0, 0)
    with space.transact():
        with space.transact():
            d.set(2)
        c.set(2)
    assert (c.get(), d.get()) == (2, 2)


def assert_equal(a: object, b: object) -> None:
    assert a == b


def test_two_spaces_in_one_transaction_is_cross_space_write_and_commits_nothing(
    rt: sc.Runtime,
) -> None:
    one, two = rt.space("one"), rt.space("two")
    a, b = one.cell("a", default=0), two.cell("b", default=0)
    with pytest.raises(sc.CrossSpaceWrite) as info, one.transact():
        a.set(1)
        b.set(1)
    assert isinstance(info.value, sc.SqliteCellsError)
    assert "'two'" in str(info.value) or "two" in str(info.value)
    assert (a.get(), b.get()) == (0, 0)
    assert not any(p.name.endswith(".sqlite") for p in rt.store.iterdir() if "two" in p.name)


def test_a_write_outside_a_transaction_is_no_transaction(rt: sc.Runtime) -> None:
    c = rt.space("demo").cell("counter", default=0)
    for call in (lambda: c.set(1), lambda: c.update(lambda v: v + 1), lambda: c.key("a").set(1)):
        with pytest.raises(sc.NoTransaction) as info:
            call()
        assert isinstance(info.value, sc.SqliteCellsError)
        assert "transact" in str(info.value)
    assert c.get() == 0


# -- handlers ------------------------------------------------------------------------------------


def test_a_handler_as_written_returns_the_commit_seq_and_keeps_its_signature(
    rt: sc.Runtime,
) -> None:
    space = rt.space("demo")
    c = space.cell("counter", default=0)

    @sc.handler
    def bump(n: int, *, counter: sc.Cell) -> None:
        counter.update(lambda v: v + n)

    assert bump(3, counter=c) == 1
    assert bump(n=4, counter=c) == 2
    assert c.get() == 7
    sig = inspect.signature(bump)
    assert list(sig.parameters) == ["n", "counter"]
    assert sig.parameters["counter"].kind is inspect.Parameter.KEYWORD_ONLY
    assert sig.parameters["n"].annotation in (int, "int")
    assert bump.__name__ == "bump"


def test_a_handler_retries_a_real_conflict_with_another_runtime(rt: sc.Runtime) -> None:
    other = sc.Runtime(rt.store, poll_interval=0.01)
    try:
        space = rt.space("demo")
        c = space.cell("counter", default=0)
        theirs = other.space("demo").cell("counter", default=0)
        runs: list[int] = []

        def write_theirs(value: int) -> None:
            with other.space("demo").transact():
                theirs.set(value)

        @sc.handler
        def bump(n: int, *, counter: sc.Cell) -> None:
            value = counter.get()
            runs.append(value)
            if len(runs) <= 2:  # another runtime commits between this read and this commit
                _run_elsewhere(write_theirs, value + 100)
            counter.set(value + n)

        seq = bump(1, counter=c)
        assert runs == [0, 100, 200]
        assert c.get() == 201
        assert seq == 3
        other.settle()
        assert theirs.get() == 201
    finally:
        other.close()


def test_a_handler_that_keeps_conflicting_raises_conflict_error_after_its_tries(
    rt: sc.Runtime,
) -> None:
    other = sc.Runtime(rt.store, poll_interval=0.01)
    try:
        c = rt.space("demo").cell("counter", default=0)
        theirs = other.space("demo").cell("counter", default=0)
        runs: list[int] = []

        def write_theirs(value: int) -> None:
            with other.space("demo").transact():
                theirs.set(value)

        @sc.handler(tries=3)
        def bump(*, counter: sc.Cell) -> None:
            value = counter.get()
            runs.append(value)
            _run_elsewhere(write_theirs, value + 100)
            counter.set(value + 1)

        with pytest.raises(sc.ConflictError) as info:
            bump(counter=c)
        assert isinstance(info.value, sc.SqliteCellsError)
        assert len(runs) == 3
        assert c.get() == 300  # only the other runtime's writes
        # It says what the handler did, not "run it again" (the handler did, three times).
        message = str(info.value)
        assert "ran its body 3 time(s)" in message and "nothing was written" in message
        assert "Call the handler again later" in message
        assert info.value.cell_ids == (c.id,) and info.value.space_id == "demo"
        assert isinstance(info.value.__cause__, sc.ConflictError)
    finally:
        other.close()


def test_a_handler_tries_at_most_ten_times_in_all(rt: sc.Runtime) -> None:
    c = rt.space("demo").cell("counter", default=0)
    runs: list[int] = []

    @sc.handler
    def bump(*, counter: sc.Cell) -> None:
        runs.append(1)
        counter.set(len(runs))
        raise sc.ConflictError("demo", [counter.id])

    with pytest.raises(sc.ConflictError):
        bump(counter=c)
    assert len(runs) == 10
    assert c.get() == 0
    with pytest.raises(sc.SqliteCellsError) as info:
        sc.handler(tries=11)
    assert isinstance(info.value, ValueError | TypeError)


def test_a_body_may_ask_for_another_try_with_a_conflict_of_its_own_words(rt: sc.Runtime) -> None:
    """``raise sc.ConflictError("busy")``: its one argument is its message (it was a raw
    TypeError, the class asking for a space id and cell ids)."""
    c = rt.space("demo").cell("counter", default=0)
    runs: list[int] = []

    @sc.handler
    def bump() -> None:
        runs.append(1)
        c.set(len(runs))
        if len(runs) < 3:
            raise sc.ConflictError("busy")

    assert bump() == 1
    assert (len(runs), c.get()) == (3, 3)
    error = sc.ConflictError("busy")
    assert (str(error), error.space_id, error.cell_ids) == ("busy", "", ())


def test_an_exception_in_a_handler_rolls_back_and_propagates_unchanged(rt: sc.Runtime) -> None:
    c = rt.space("demo").cell("counter", default=0)
    raised = KeyError("mine")

    @sc.handler
    def bump(*, counter: sc.Cell) -> None:
        counter.set(1)
        raise raised

    with pytest.raises(KeyError) as info:
        bump(counter=c)
    assert info.value is raised
    assert c.get() == 0
    assert rt.space("demo").file.seen_seq == 0


def test_an_async_handler_commits_while_the_event_loop_runs_other_tasks(rt: sc.Runtime) -> None:
    """The commit waits for the space's write lock held by another writer; that writer lets go
    only when a task on the loop says so, which it can only do if the loop is not blocked."""
    space = rt.space("demo")
    log = space.cell("log", default=[])
    other = space.cell("other", default=0)
    holding = threading.Event()
    release = threading.Event()

    @sc.handler
    def hold() -> None:
        other.set(1)
        holding.set()
        assert release.wait(30)

    @sc.handler
    async def post(text: str, *, log: sc.Cell) -> None:
        log.update(lambda v: [*v, text])

    async def main() -> int | None:
        holder = threading.Thread(target=hold)
        holder.start()
        await asyncio.to_thread(holding.wait, 30)

        async def let_go() -> None:
            await asyncio.sleep(0.05)
            release.set()

        task = asyncio.create_task(let_go())
        seq = await post("hi", log=log)
        await task
        await asyncio.to_thread(holder.join)
        assert await rt.settled() is True
        return seq

    seq = asyncio.run(main())
    assert log.get() == ["hi"] and other.get() == 1
    assert seq in (1, 2)


# -- derive, lift, settle ------------------------------------------------------------------------


def test_derive_and_lift_as_written_update_a_diamond_once_per_commit(rt: sc.Runtime) -> None:
    space = rt.space("demo")
    c = space.cell("counter", default=0)
    d = sc.derive(c, lambda v: v * 2)
    calls: list[tuple[int, int]] = []

    def add(a: int, b: int) -> int:
        calls.append((a, b))
        return a + b

    s = sc.lift(add)(c, d)
    seen: list[int] = []
    s.observe().subscribe(seen.append)
    assert rt.settle(timeout=10) is True
    assert (d.get(), s.get()) == (0, 0)
    for n in (1, 2, 3):
        with space.transact():
            c.set(n)
        assert rt.settle(timeout=10) is True
        assert s.get() == 3 * n
    assert seen == [0, 3, 6, 9]
    assert all(b == 2 * a for a, b in calls)  # never a mixed state
    assert len(calls) == 4


# -- patterns ------------------------------------------------------------------------------------


def _room(space: sc.Space) -> Any:
    @sc.pattern
    def room(me: sc.Cell) -> dict[str, Any]:
        db = space.sqlite_database(tables=_chat_tables())  # name omitted: causal id
        seen = space.cell(default=0)  # nameless: causal id too
        return {"db": db, "seen": seen}

    return room


def test_a_pattern_run_with_the_same_key_binds_the_same_cells_and_databases(store: Path) -> None:
    ids: list[tuple[str, ...]] = []
    for _ in range(2):
        with sc.Runtime(store) as rt:
            space = rt.space("demo")
            alice = space.cell("alice", default={"name": "Alice"})

            room = _room(space)
            piece = space.run(room, key="main", me=alice)
            again = space.run(room, key="main", me=alice)
            assert again.id == piece.id
            db, seen = piece.outputs["db"], piece.outputs["seen"]
            assert piece.inputs["me"].get() == alice
            with space.transact():
                db.exec(
                    "INSERT INTO messages (author_cf_link, body, ts) VALUES (?, ?, ?)",
                    [alice, "hi", len(ids)],
                )
                seen.update(lambda v: v + 1)
            ids.append((piece.id, db.id, str(db.path), seen.id))
            assert db.read("SELECT count(*) AS n FROM messages") == [{"n": len(ids)}]
            assert seen.get() == len(ids)
            other = space.run(room, key="other", me=alice)
            assert other.outputs["db"].id != db.id
    assert ids[0] == ids[1]


def test_a_disk_source_is_wired_into_a_pattern_input_with_link(
    rt: sc.Runtime, tmp_path: Path
) -> None:
    ref = tmp_path / "reference.db"
    with sqlite3.connect(ref) as conn:
        conn.execute("CREATE TABLE words (w TEXT)")
        conn.execute("INSERT INTO words VALUES ('hello')")
    conn.close()
    space = rt.space("demo")

    @sc.pattern
    def lookup(db: sc.SqliteDb) -> sc.Query[Any]:
        return db.query("SELECT w FROM words")

    piece = space.run(lookup, key="main")
    q = piece.outputs
    rt.settle()
    assert q.get().pending is True
    h = space.register_disk_source(str(ref))
    piece.inputs["db"].link(h)  # as §4 writes it: a commit of its own
    rt.settle()
    assert q.get().pending is False
    assert q.get().result == [{"w": "hello"}]


# -- database cells ------------------------------------------------------------------------------


class Msg(msgspec.Struct):
    id: int
    body: str
    author_cf_link: sc.Cell


@dataclasses.dataclass
class MsgData:
    id: int
    body: str
    author_cf_link: sc.Cell


class MsgDict(TypedDict):
    id: int
    body: str
    author_cf_link: sc.Cell


@pytest.fixture
def chat_db(rt: sc.Runtime) -> Iterator[tuple[sc.Space, sc.SqliteDb, sc.Cell]]:
    space = rt.space("demo")
    alice = space.cell("alice", default={"name": "Alice"})
    db = space.sqlite_database("chat", tables=_chat_tables(), version=1, migrate=None)
    yield space, db, alice


def test_the_database_call_as_written_creates_its_table_and_index_on_first_write(
    rt: sc.Runtime, chat_db: tuple[sc.Space, sc.SqliteDb, sc.Cell]
) -> None:
    space, db, alice = chat_db
    assert db.rev == 0 and not db.path.exists()
    assert db.path.parent == rt.store
    assert db.path.name.startswith("cell-") and db.path.name.endswith(".sqlite")
    assert set(db.tables) == {"messages"}
    assert db.id.startswith("of:")
    rows = [("a", 2), ("b", 3)]
    with space.transact():
        db.exec(
            "INSERT INTO messages (author_cf_link, body, ts) VALUES (?, ?, ?)", [alice, "hi", 1]
        )
        db.exec_many("INSERT INTO messages (body, ts) VALUES (?, ?)", rows)
    assert db.rev == 1
    assert db.get() == {"id": db.id, "tables": db.get()["tables"], "rev": 1}
    assert db.read("SELECT count(*) AS n FROM messages") == [{"n": 3}]
    conn = sqlite3.connect(f"file:{db.path}?mode=ro", uri=True)
    try:
        found = conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'messages' "
            "AND sql IS NOT NULL"
        ).fetchall()
    finally:
        conn.close()
    assert [name for (name,) in found] == ["by_ts"]


@pytest.mark.parametrize("attribute", ["id", "tables", "rev", "path"])
def test_the_handle_attributes_are_read_only(
    chat_db: tuple[sc.Space, sc.SqliteDb, sc.Cell], attribute: str
) -> None:
    _, db, _ = chat_db
    before = getattr(db, attribute)
    with pytest.raises(AttributeError):
        setattr(db, attribute, before)
    with pytest.raises(AttributeError):
        delattr(db, attribute)
    assert getattr(db, attribute) == before


@pytest.mark.parametrize("row", [Msg, MsgData, MsgDict])
def test_a_query_as_written_gives_typed_rows_of_each_kind(
    rt: sc.Runtime, chat_db: tuple[sc.Space, sc.SqliteDb, sc.Cell], row: Any
) -> None:
    space, db, alice = chat_db
    q = db.query(
        "SELECT id, body, author_cf_link FROM messages ORDER BY ts DESC LIMIT 20",
        params=None,
        row=row,
        react_on=db,
    )
    rt.settle()
    assert q.get() == sc.QueryState(pending=False, result=[], error=None, seq=0)
    with space.transact():
        db.exec(
            "INSERT INTO messages (author_cf_link, body, ts) VALUES (?, ?, ?)", [alice, "hi", 1]
        )
    with space.transact():
        db.exec("INSERT INTO messages (body, ts) VALUES (?, ?)", ["no one", 2])
    rt.settle()
    state = q.get()
    assert isinstance(state, sc.QueryState)
    assert (state.pending, state.error, state.seq) == (False, None, 2)
    assert state.result is not None
    first, second = state.result
    if row is MsgDict:
        assert first == {"id": 2, "body": "no one", "author_cf_link": None}
        assert second["author_cf_link"] == alice
        assert second["author_cf_link"].get() == {"name": "Alice"}
    else:
        assert isinstance(first, row)
        assert (first.id, first.body, first.author_cf_link) == (2, "no one", None)
        assert second.author_cf_link == alice
        assert isinstance(second.author_cf_link, sc.Cell)
        assert second.author_cf_link.get() == {"name": "Alice"}
    seen: list[Any] = []
    q.observe().subscribe(seen.append)
    rt.settle()
    assert seen == [state]


def test_sqlite_query_is_the_same_as_db_query(
    rt: sc.Runtime, chat_db: tuple[sc.Space, sc.SqliteDb, sc.Cell]
) -> None:
    space, db, alice = chat_db
    sql = "SELECT id, body, author_cf_link FROM messages ORDER BY ts DESC LIMIT 20"
    a = db.query(sql, row=Msg)
    b = sc.sqlite_query(db=db, sql=sql, row=Msg)
    with space.transact():
        db.exec("INSERT INTO messages (author_cf_link, body, ts) VALUES (?, ?, ?)", [alice, "x", 1])
    rt.settle()
    assert a.get() == b.get()
    assert b.get().result == [Msg(id=1, body="x", author_cf_link=alice)]


def test_react_on_db_given_explicitly_reruns_after_every_write(
    rt: sc.Runtime, chat_db: tuple[sc.Space, sc.SqliteDb, sc.Cell]
) -> None:
    space, db, _ = chat_db
    q = db.query("SELECT count(*) AS n FROM messages WHERE ts > 100", react_on=db)
    seqs: list[int] = []
    q.observe().subscribe(lambda s: seqs.append(s.seq))
    rt.settle()
    with space.transact():
        db.exec("INSERT INTO messages (body, ts) VALUES ('a', 1)")
    with space.transact():
        db.exec("UPDATE messages SET body = 'b'")  # a column the query does not read
    rt.settle()
    assert q.get().seq == 2
    assert q.get().result == [{"n": 0}]


def test_decode_cf_link_as_written(
    rt: sc.Runtime, chat_db: tuple[sc.Space, sc.SqliteDb, sc.Cell]
) -> None:
    _, _, alice = chat_db
    assert sc.decode_cf_link(None, rt) is None
    back = sc.decode_cf_link(alice.link_str(), rt)
    assert back == alice and back.get() == {"name": "Alice"}
    for bad in ("", "not json", '{"/": 1}', "[]", '{"/": {"link@1": {"id": "of:x"}}}', "\ud800"):
        with pytest.raises(sc.LinkDecodeError) as info:
            sc.decode_cf_link(bad, rt)
        assert isinstance(info.value, sc.SqliteCellsError)
        assert isinstance(info.value, ValueError)
    with pytest.raises(sc.SqliteCellsError) as wrong:
        sc.decode_cf_link(5, rt)  # type: ignore[arg-type]
    assert isinstance(wrong.value, TypeError | ValueError)


# -- close ---------------------------------------------------------------------------------------


def test_close_twice_and_then_every_entry_point_is_closed_error(store: Path) -> None:
    rt = sc.Runtime(store)
    space = rt.space("demo")
    c = space.cell("counter", default=0)
    db = space.sqlite_database("chat", tables=_chat_tables())

    @sc.handler
    async def post(text: str, *, log: sc.Cell) -> None:
        log.set(text)

    rt.close()
    rt.close()
    calls: dict[str, Any] = {
        "space": lambda: rt.space("demo"),
        "get": c.get,
        "observe": lambda: c.observe().subscribe(lambda _: None),
        "transact": lambda: space.transact().__enter__(),
        "cell": lambda: space.cell("new", default=1).get(),
        "sqlite_database": lambda: space.sqlite_database("other", tables=_chat_tables()),
        "async handler": lambda: asyncio.run(post("hi", log=c)),
        "settled": lambda: asyncio.run(rt.settled()),
        "settle": rt.settle,
        "db.read": lambda: db.read("SELECT count(*) AS n FROM messages"),
        "db.query": lambda: db.query("SELECT count(*) AS n FROM messages"),
    }
    for what, call in calls.items():
        try:
            call()
        except sc.ClosedError as exc:
            assert "closed" in str(exc), what
        else:
            if what not in ("observe",):
                raise AssertionError(f"{what} did not raise ClosedError")


# -- reads of another space (§2: "fails with a conflict when a cell it read changed since") ----


def test_a_transaction_whose_read_of_another_space_changed_since_is_a_conflict(
    rt: sc.Runtime,
) -> None:
    one, two = rt.space("one"), rt.space("two")
    a, b = one.cell("a", default=0), two.cell("b", default=0)

    def write_a() -> None:
        with one.transact():
            a.set(a.get() + 10)

    with pytest.raises(sc.ConflictError) as info, two.transact():
        seen = a.get()
        _run_elsewhere(write_a)
        b.set(seen + 1)  # would store a sum from a value that is gone
    assert info.value.space_id == "one" and info.value.cell_ids == (a.id,)
    assert (a.get(), b.get()) == (10, 0)
    with two.transact():  # unchanged since read: commits
        b.set(a.get() + 1)
    assert b.get() == 11


def test_a_handler_reading_another_space_retries_until_its_read_holds(store: Path) -> None:
    rt = sc.Runtime(store, poll_interval=60)  # nothing but the commit itself looks again
    other = sc.Runtime(store, poll_interval=60)
    try:
        a = rt.space("one").cell("a", default=0)
        b = rt.space("two").cell("b", default=0)
        theirs = other.space("one").cell("a", default=0)
        assert a.get() == 0  # cached here
        runs: list[int] = []

        def write_theirs(value: int) -> None:
            with other.space("one").transact():
                theirs.set(value)

        @sc.handler
        def copy(*, source: sc.Cell, into: sc.Cell) -> None:
            value = source.get()
            runs.append(value)
            if len(runs) == 1:  # another runtime changes the source after it was read
                _run_elsewhere(write_theirs, 5)
            into.set(value)

        assert copy(source=a, into=b) == 1
        assert runs == [0, 5]
        assert b.get() == 5
    finally:
        other.close()
        rt.close()


@pytest.mark.parametrize("fn", [5, None, "a + b"])
def test_lift_refuses_what_is_not_a_function_where_it_is_called(fn: object) -> None:
    with pytest.raises(sc.SqliteCellsError, match="derive/lift takes a function") as info:
        sc.lift(fn)  # type: ignore[arg-type]  # on purpose
    assert isinstance(info.value, TypeError)


def test_a_generator_function_is_refused_as_a_handler_body() -> None:
    def gen(*, counter: sc.Cell) -> Iterator[int]:
        counter.set(1)
        yield 1

    async def agen(*, counter: sc.Cell) -> Any:
        counter.set(1)
        yield 1

    for body in (gen, agen):
        with pytest.raises(sc.SqliteCellsError, match="generator function") as info:
            sc.handler(body)
        assert isinstance(info.value, TypeError)


def test_a_handler_body_that_returns_a_coroutine_unrun_is_refused_and_writes_nothing(
    rt: sc.Runtime,
) -> None:
    space = rt.space("demo")
    c = space.cell("counter", default=0)

    class Post:  # an async __call__: the object is not an async def function itself
        async def __call__(self, *, counter: sc.Cell) -> None:
            counter.set(1)

    post = sc.handler(Post())
    with pytest.raises(sc.SqliteCellsError, match="async def") as info:
        post(counter=c)
    assert isinstance(info.value, TypeError)
    with space.transact():  # joined to an outer transaction: refused the same way
        with pytest.raises(sc.SqliteCellsError, match="async def"):
            post(counter=c)
        c.set(2)
    assert c.get() == 2
    assert space.file.seen_seq == 1


def test_an_async_body_that_returns_a_coroutine_it_did_not_await_is_refused(
    rt: sc.Runtime,
) -> None:
    """``return other()`` for ``return await other()`` in an ``async def`` body: the inner write
    never happened and the call returned None, reporting success."""
    space = rt.space("demo")
    c, d = space.cell("c", default=0), space.cell("d", default=0)

    @sc.handler
    async def write_it() -> None:
        c.set(1)

    @sc.handler
    async def outer() -> Any:
        d.set(1)
        return write_it()  # not awaited

    with pytest.raises(sc.SqliteCellsError, match="returned a coroutine it did not await") as info:
        asyncio.run(outer())
    assert isinstance(info.value, TypeError) and "await it in the body" in str(info.value)
    assert (c.get(), d.get()) == (0, 0)  # nothing was written

    async def joined() -> None:
        with space.transact():  # joined to an outer transaction: refused the same way
            with pytest.raises(sc.SqliteCellsError, match="did not await"):
                await outer()
            c.set(2)

    asyncio.run(joined())
    assert (c.get(), d.get()) == (2, 0)
    assert space.file.seen_seq == 1


def test_an_async_handler_tries_at_most_ten_times_in_all_too(rt: sc.Runtime) -> None:
    c = rt.space("demo").cell("counter", default=0)
    runs: list[int] = []

    @sc.handler
    async def post(text: str, *, log: sc.Cell) -> None:
        runs.append(1)
        log.set(text)
        await asyncio.sleep(0)
        raise sc.ConflictError("demo", [log.id])

    with pytest.raises(sc.ConflictError):
        asyncio.run(post("hi", log=c))
    assert len(runs) == 10
    assert c.get() == 0


def test_a_lift_over_a_cell_and_a_query_written_in_one_commit_never_sees_them_apart(
    rt: sc.Runtime,
) -> None:
    space = rt.space("demo")
    n = space.cell("n", default=0)
    db = space.sqlite_database("chat", tables=_chat_tables())
    q = db.query("SELECT count(*) AS c FROM messages")
    calls: list[tuple[int, int | None]] = []

    def pair(count: int, state: sc.QueryState[dict[str, Any]]) -> tuple[int, int | None]:
        got = (count, None if state.result is None else state.result[0]["c"])
        calls.append(got)
        return got

    s = sc.lift(pair)(n, q)
    seen: list[tuple[int, int | None]] = []
    s.observe().subscribe(seen.append)
    rt.settle()

    @sc.handler
    def post(body: str, *, n: sc.Cell) -> None:
        n.update(lambda v: v + 1)
        db.exec("INSERT INTO messages (body) VALUES (?)", [body])

    for body in "abcd":
        post(body, n=n)
    rt.settle()
    # Before its first run the query is pending (result None): a state of its own, not a mix.
    # The lift may compute it before the subscription is made, which then starts from the
    # first result: each list drops it on its own.
    if seen[0] == (0, None):
        del seen[0]
    if calls[0] == (0, None):
        del calls[0]
    # Never a mixed state; at most once per commit (commits that arrive together while the
    # query re-runs may be taken in one step), and the last commit is always reached.
    assert all(n_seen == count for n_seen, count in seen), seen
    assert seen[0] == (0, 0) and seen[-1] == (4, 4)
    assert [n_seen for n_seen, _ in seen] == sorted({n_seen for n_seen, _ in seen})
    assert calls == seen


def test_a_commit_that_fails_in_sqlite_is_never_observed(
    rt: sc.Runtime, chat_db: tuple[sc.Space, sc.SqliteDb, sc.Cell]
) -> None:
    space, db, _ = chat_db
    c = space.cell("counter", default=0)
    seen: list[Any] = []
    states: list[Any] = []
    c.observe().subscribe(seen.append)
    db.query("SELECT count(*) AS n FROM messages").observe().subscribe(states.append)
    rt.settle()
    with pytest.raises(sc.ExecError) as info, space.transact():
        c.set(1)
        db.exec("INSERT INTO messages (body) VALUES (NULL)")  # body is NOT NULL
    assert info.value.__cause__ is not None
    assert "NOT NULL" in str(info.value)
    with space.transact():
        c.set(2)
    rt.settle()
    assert seen == [0, 2]
    assert [s.result for s in states if not s.pending] == [[{"n": 0}]]
    assert (db.rev, space.file.seen_seq) == (0, 1)


def test_a_handler_body_that_returns_a_generator_it_made_has_run_and_commits(
    rt: sc.Runtime,
) -> None:
    c = rt.space("demo").cell("counter", default=0)

    @sc.handler
    def bump(*, counter: sc.Cell) -> Iterator[int]:
        counter.set(1)
        return (n for n in range(3))

    assert bump(counter=c) == 1
    assert c.get() == 1


def test_argument_errors_name_what_the_caller_wrote() -> None:
    """A refusal names the argument as the caller writes it (`tables=`, not an internal
    function) and shows defaults as words, not a sentinel object's address."""
    with sc.Runtime.ephemeral() as rt:
        space = rt.space("demo")
        for tables in (None, [1], {5: sc.table(x="integer")}):
            with pytest.raises(sc.SchemaError) as info:
                space.sqlite_database("chat", tables=tables)  # type: ignore[arg-type]
            assert str(info.value).startswith("tables=") and "declare_tables" not in str(info.value)
        db = space.sqlite_database("chat", tables=_chat_tables())
        for call in (lambda: sc.sqlite_query(db=db), lambda: db.query()):  # type: ignore[call-overload]
            with pytest.raises(sc.SqliteCellsError) as refused:
                call()
            assert "react_on=<what it reads>" in str(refused.value)
            assert "object at" not in str(refused.value)


def test_ephemeral_given_a_store_says_to_call_runtime_with_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``ephemeral`` makes its own store: one given is refused naming this call and what to
    call instead (it was refused as ``Runtime()`` given two stores, whose advice was to call
    ``Runtime(store=None, …)``), and no temporary directory is left."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    mine = tmp_path / "mine"
    with pytest.raises(sc.SqliteCellsError) as info:
        sc.Runtime.ephemeral(store=str(mine))  # type: ignore[call-arg]  # (the mistake tested)
    assert isinstance(info.value, ValueError) and isinstance(info.value, TypeError)
    message = str(info.value)
    assert "Runtime.ephemeral() makes its own temporary store" in message
    assert f"sc.Runtime({str(mine)!r})" in message
    assert list((tmp_path / "tmp").iterdir()) == [] and not mine.exists()
