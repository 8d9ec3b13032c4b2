"""A runtime belongs to the process that opened it: a forked child (``multiprocessing`` with the
``fork`` start method, ``os.fork``) inherits its objects but none of its threads, and its SQLite
connections share the parent's open files. Using it there is a ``ClosedError`` that says what to
do, closing it there touches nothing, and the files the parent has open are refused to a runtime
the child opens itself (``runtime/_fork.py``, ``runtime/_file_kind.py``)."""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import sqlite_cells as sc
from sqlite_cells.runtime._space_file import _Landing

TABLES = {"t": sc.table(id="integer primary key", v="text")}


def _in_child(work: Callable[[], object]) -> dict[str, object]:
    """Run ``work`` in a forked child; what it returned, or the error it raised."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report and leave at once, whatever happens
        try:
            try:
                out: dict[str, object] = {"value": work()}
            except BaseException as exc:  # reported to the parent, which asserts on it
                out = {"error": type(exc).__name__, "kind": getattr(exc, "kind", None)}
                out["message"] = str(exc)
            os.write(write, json.dumps(out, default=repr).encode())
        finally:
            os._exit(0)
    os.close(write)
    chunks = []
    while chunk := os.read(read, 65536):
        chunks.append(chunk)
    os.close(read)
    os.waitpid(pid, 0)
    return dict(json.loads(b"".join(chunks)))


def test_a_forked_child_cannot_use_its_parents_runtime(rt: sc.Runtime) -> None:
    space = rt.space("demo")
    db = space.sqlite_database("d", tables=TABLES)
    counter = space.cell("counter", default=0)
    with space.transact():
        counter.set(1)
        db.exec("INSERT INTO t (v) VALUES ('parent')")
    query = db.query("SELECT v FROM t")
    rt.settle()

    def write() -> object:
        with space.transact():
            counter.set(2)
        return "written"

    for work in (
        lambda: space.cell("never-read", default=0).get(),  # (a value read before is memory)
        # A derived cell made there waited for ever for its first value (no scheduler thread).
        lambda: sc.derive(counter, lambda v: v * 2).get(),
        write,
        lambda: db.read("SELECT v FROM t"),
        lambda: rt.space("other").cell("x", default=0).get(),
        # A subscriber, or a coroutine waiting for a query's state, was told nothing for ever.
        lambda: counter.observe().subscribe(print),
        lambda: db.query("SELECT v FROM t").observe(),
        lambda: asyncio.run(query.first()),
    ):
        out = _in_child(work)
        assert out["error"] == "ClosedError", out
        assert "forked" in str(out["message"]) and "spawn" in str(out["message"])
    assert _in_child(lambda: (rt.close(), rt.is_open)[1]) == {"value": False}
    # The parent's runtime is untouched by all of it.
    assert rt.is_open
    with space.transact():
        counter.set(3)
        db.exec("INSERT INTO t (v) VALUES ('parent again')")
    assert counter.get() == 3
    assert [r["v"] for r in db.read("SELECT v FROM t ORDER BY id")] == ["parent", "parent again"]


def test_a_child_is_refused_the_files_its_parent_has_open(rt: sc.Runtime, store: Path) -> None:
    """R72: a child forked while the parent had the store open opened its own runtime on it, as
    the advice said. But its SQLite is a copy of the parent's — which files it has open, which
    locks it holds, through descriptors that share the parent's open file descriptions — so the
    child's connections took the parent's own locks and excluded none of its writers: with a
    parent thread committing meanwhile, commits the parent had acknowledged were lost and
    children hung. The child is refused those files (``DatabaseError``, naming the fork and what
    to do), the parent goes on untouched, and a store the parent does not have open is the
    child's to use."""
    space = rt.space("demo")
    db = space.sqlite_database("d", tables=TABLES)
    with space.transact():
        db.exec("INSERT INTO t (v) VALUES ('parent')")

    def own_runtime() -> object:
        with sc.Runtime(store) as child:
            child_space = child.space("demo")
            with child_space.transact():
                child_space.cell("by", default="").set("child")
        return "written"

    out = _in_child(own_runtime)
    assert out["error"] == "DatabaseError", out
    assert "forked from" in str(out["message"]) and "spawn" in str(out["message"])

    def elsewhere() -> object:
        with sc.Runtime.ephemeral() as other:
            other_space = other.space("demo")
            other_db = other_space.sqlite_database("d", tables=TABLES)
            with other_space.transact():
                other_db.exec("INSERT INTO t (v) VALUES ('child')")
            return [r["v"] for r in other_db.read("SELECT v FROM t")]

    assert _in_child(elsewhere) == {"value": ["child"]}
    with space.transact():
        db.exec("INSERT INTO t (v) VALUES ('parent again')")
    assert [r["v"] for r in db.read("SELECT v FROM t ORDER BY id")] == ["parent", "parent again"]
    assert space.cell("by", default="").get() == ""


def test_a_child_forked_while_a_commit_lands_is_refused_the_cells_it_writes(
    rt: sc.Runtime,
) -> None:
    """A cell read waits while another thread's commit of it lands (between its ``COMMIT``
    and the cache taking its value, ``_Landing``). In a child forked meanwhile that thread is
    the parent's, and ``get()`` of such a cell waited for ever (17 children of 20 forked beside
    a thread committing in a loop). It is the ``ClosedError`` every other use there is."""
    space = rt.space("demo")
    counter = space.cell("counter", default=0)
    with space.transact():
        counter.set(1)
    file = space.file
    record = SimpleNamespace(writes=[SimpleNamespace(id=counter.id)])
    landing: list[_Landing] = []
    made = threading.Thread(target=lambda: landing.append(_Landing([record])))  # type: ignore[list-item]  # (the one field _Landing reads)
    made.start()
    made.join()
    file._landing = landing[0]  # as a commit of that thread, made durable and not landed yet
    try:
        out = _in_child(counter.get)
    finally:
        file._landing = None
        landing[0].end()
    assert out["error"] == "ClosedError", out
    assert "forked" in str(out["message"]) and "spawn" in str(out["message"])
    assert counter.get() == 1
