"""Async handlers, derived errors reaching on_error, completion on close, reprs (SPEC §3)."""

from __future__ import annotations

import asyncio
import functools
import inspect
import threading
from pathlib import Path
from typing import Any

import pytest

import sqlite_cells as sc
import sqlite_cells.runtime._scheduler as scheduler_module


def test_an_async_handler_runs_its_body_then_commits_off_the_loop(rt: sc.Runtime) -> None:
    space = rt.space("demo")
    log = space.cell("log", default=[])
    loop_thread: list[int] = []
    commit_threads: list[int] = []
    original = space.file.commit

    def spy(tx: Any) -> int:
        commit_threads.append(threading.get_ident())
        return original(tx)

    space.file.commit = spy  # type: ignore[method-assign]  # observe where the commit runs

    @sc.handler
    async def post(text: str, *, into: sc.Cell) -> None:
        loop_thread.append(threading.get_ident())
        await asyncio.sleep(0)
        into.update(lambda v: [*v, text])

    async def main() -> list[int | None]:
        return [await post("hi", into=log), await post("there", into=log)]

    assert asyncio.run(main()) == [1, 2]
    assert log.get() == ["hi", "there"]
    assert commit_threads and loop_thread[0] not in commit_threads
    assert list(inspect.signature(post).parameters) == ["text", "into"]


def test_an_async_handler_that_raises_commits_nothing(rt: sc.Runtime) -> None:
    space = rt.space("demo")
    c = space.cell("c", default=0)

    @sc.handler
    async def fail() -> None:
        c.set(1)
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        asyncio.run(fail())
    assert c.get() == 0 and space.file.seen_seq == 0


def test_an_async_handler_retries_on_conflict(rt: sc.Runtime) -> None:
    space = rt.space("demo")
    c = space.cell("c", default=0)
    runs: list[int] = []

    @sc.handler
    async def bump() -> None:
        value = c.get()
        runs.append(value)
        if len(runs) == 1:  # another writer commits between the read and the commit
            other = threading.Thread(target=write_elsewhere, args=(value + 10,))
            other.start()
            other.join()
        c.set(value + 1)

    def write_elsewhere(value: int) -> None:  # a new thread: no transaction of ours in context
        with space.transact():
            c.set(value)

    assert asyncio.run(bump()) == 2
    assert c.get() == 11 and runs == [0, 10]


def test_a_derived_error_reaches_on_error_and_get_raises_it(rt: sc.Runtime) -> None:
    space = rt.space("demo")
    c = space.cell("c", default=1)
    d = sc.derive(c, lambda v: 10 // v)
    values: list[Any] = []
    errors: list[BaseException] = []
    d.observe().subscribe(values.append, errors.append)
    rt.settle()
    assert values == [10] and d.get() == 10
    with space.transact():
        c.set(0)
    rt.settle()
    assert len(errors) == 1 and isinstance(errors[0], ZeroDivisionError)
    with pytest.raises(ZeroDivisionError):
        d.get()
    assert "error" in repr(d)
    with space.transact():
        c.set(5)
    rt.settle()
    assert d.get() == 2


def test_close_completes_every_observable(store: Path) -> None:
    rt = sc.Runtime(store)
    space = rt.space("demo")
    c = space.cell("c", default=0)
    completed: list[str] = []
    c.observe().subscribe(on_completed=lambda: completed.append("cell"))
    sc.derive(c, lambda v: v).observe().subscribe(on_completed=lambda: completed.append("derived"))
    rt.settle()
    rt.close()
    assert sorted(completed) == ["cell", "derived"]


def test_close_completes_every_observable_after_a_subscriber_busy_past_its_wait(
    store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """close() waits ``CLOSE_WAIT`` for the scheduler thread to complete the subscribers; a
    subscriber busy longer held the thread, and close() dropped the completion with the queued
    work: no other subscriber was ever completed, and an ``async for`` over ``q.states()`` waited
    for ever. The thread completes them once back, then ends."""
    monkeypatch.setattr(scheduler_module, "CLOSE_WAIT", 0.2)
    rt = sc.Runtime(store)
    space = rt.space("demo")
    c = space.cell("c", default=0)
    busy, release = threading.Event(), threading.Event()

    def slow(value: int) -> None:
        if value == 1:
            busy.set()
            release.wait(30)  # a hang guard

    completed: list[str] = []
    ended = threading.Event()

    def complete(what: str) -> None:
        completed.append(what)
        if len(completed) == 2:
            ended.set()

    c.observe().subscribe(slow)
    c.observe().subscribe(on_completed=lambda: complete("cell"))
    sc.derive(c, lambda v: v).observe().subscribe(on_completed=lambda: complete("derived"))
    rt.settle()
    with space.transact():
        c.set(1)
    assert busy.wait(10)
    rt.close()  # returns while the subscriber is still busy (2 x CLOSE_WAIT)
    assert completed == []
    release.set()
    assert ended.wait(10)
    assert sorted(completed) == ["cell", "derived"]
    rt.scheduler._thread.join(10)
    assert not rt.scheduler._thread.is_alive()


def test_queries_made_just_before_close_end_with_on_completed_never_an_error(
    store: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A live query whose first run meets the runtime closing failed at nothing: its
    subscribers are told the stream ended (on_completed), as every subscriber at close is, not
    on_error(ClosedError) — which a one-argument subscriber cannot take, so the scheduler logged
    it as an error with a traceback. Several rounds: the first run races the close."""
    told: list[str] = []
    for _ in range(10):
        rt = sc.Runtime(store)
        db = rt.space("s").sqlite_database("d", tables={"t": sc.table(x="integer")})
        for k in range(10):
            query = db.query(f"SELECT count(*) AS n, {k} AS k FROM t")
            query.observe().subscribe(
                lambda _state: None,
                on_error=lambda exc: told.append(f"error {exc!r}"),
                on_completed=lambda: told.append("completed"),
            )
            query.observe().subscribe(lambda _state: None)  # no on_error of its own
        rt.close()
    assert told == ["completed"] * 100
    assert [r.getMessage() for r in caplog.records if r.levelname in ("ERROR", "WARNING")] == []


def test_cells_and_derived_cells_show_their_values(rt: sc.Runtime) -> None:
    space = rt.space("demo")
    c = space.cell("c", default={"n": 1})
    assert repr(c).endswith("= {'n': 1}>") and c.id in repr(c)
    assert "<pre>{&#x27;n&#x27;: 1}</pre>" in c._repr_html_()
    d = sc.derive(c, lambda v: v["n"] + 1)
    rt.settle()
    assert repr(d) == "<Derived '<lambda>' = 2>"
    assert "<pre>2</pre>" in d._repr_html_()
    with space.transact() as tx:
        repr(c)
        assert not tx.reads  # showing a cell records no read


def test_a_closed_runtime_makes_no_new_cells_or_databases_and_bad_options_leave_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import glob
    import tempfile

    # A folder of this test's own for temporary stores: another test running at the same time
    # makes its ephemeral stores in the shared one.
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    rt = sc.Runtime.ephemeral()
    space = rt.space("s")
    rt.close()
    with pytest.raises(sc.ClosedError):
        space.cell("z")
    with pytest.raises(sc.ClosedError):
        space.sqlite_database("db", tables={"t": sc.table(x="integer")})
    with pytest.raises(sc.ClosedError):
        space.register_disk_source("/etc/hostname")  # not even looked at
    pattern = f"{tempfile.gettempdir()}/sqlite-cells-*"
    before = set(glob.glob(pattern))
    for bad in ({"query_workers": 10**9}, {"poll_interval": -1}):
        with pytest.raises(sc.SqliteCellsError) as info:
            sc.Runtime.ephemeral(**bad)
        assert isinstance(info.value, ValueError)
    assert set(glob.glob(pattern)) <= before  # no temporary store left behind


def test_subscribing_after_close_completes_at_once(store: Path) -> None:
    """The stream of a closed runtime has ended: a late subscriber is told so (on_completed),
    as the subscribers of the moment of closing were, instead of waiting for nothing."""
    rt = sc.Runtime(store)
    c = rt.space("s").cell("c", default=1)
    d = sc.derive(c, lambda v: v + 1)
    fresh = rt.space("s").cell("fresh", default={"k": 1})  # never observed: no node before
    rt.settle()
    rt.close()
    # A cell (or key path) observed for the first time after the close ends the same way, not
    # with the ClosedError its first read of the closed file raised.
    for source in (c, d, fresh, fresh.key("k"), c.key("k")):
        events: list[object] = []
        subscription = source.observe().subscribe(
            events.append, events.append, functools.partial(events.append, "completed")
        )
        assert events == ["completed"]
        subscription.dispose()

    async def every_value() -> list[Any]:  # (subscribed with the loop's reactivex scheduler)
        import reactivex.operators as ops

        values: list[Any] = await fresh.key("k").observe().pipe(ops.to_list())
        return values

    assert asyncio.run(every_value()) == []
