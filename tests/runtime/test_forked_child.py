"""A runtime belongs to the process that opened it: a forked child (``multiprocessing`` with the
``fork`` start method, ``os.fork``) inherits its objects but none of its threads, and its SQLite
connections share the parent's open files. Using it there is a ``ClosedError`` that says what to
do, closing it there touches nothing, and a runtime the child opens itself works beside the
parent's (``runtime/_fork.py``)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import sqlite_cells as sc

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

    def write() -> object:
        with space.transact():
            counter.set(2)
        return "written"

    for work in (
        lambda: space.cell("never-read", default=0).get(),  # (a value read before is memory)
        write,
        lambda: db.read("SELECT v FROM t"),
        lambda: rt.space("other").cell("x", default=0).get(),
    ):
        out = _in_child(work)
        assert out["error"] == "ClosedError", out
        assert "forked" in str(out["message"]) and "open a new Runtime" in str(out["message"])
    assert _in_child(lambda: (rt.close(), rt.is_open)[1]) == {"value": False}
    # The parent's runtime is untouched by all of it.
    assert rt.is_open
    with space.transact():
        counter.set(3)
        db.exec("INSERT INTO t (v) VALUES ('parent again')")
    assert counter.get() == 3
    assert [r["v"] for r in db.read("SELECT v FROM t ORDER BY id")] == ["parent", "parent again"]


def test_a_runtime_the_child_opens_works_beside_the_parents(rt: sc.Runtime, store: Path) -> None:
    space = rt.space("demo")
    db = space.sqlite_database("d", tables=TABLES)
    with space.transact():
        db.exec("INSERT INTO t (v) VALUES ('parent')")

    def own_runtime() -> object:
        with sc.Runtime(store) as child:
            child_space = child.space("demo")
            child_db = child_space.sqlite_database("d", tables=TABLES)
            with child_space.transact():
                child_db.exec("INSERT INTO t (v) VALUES ('child')")
                child_space.cell("by", default="").set("child")
            return [r["v"] for r in child_db.read("SELECT v FROM t ORDER BY id")]

    assert _in_child(own_runtime) == {"value": ["parent", "child"]}
    with space.transact():
        db.exec("INSERT INTO t (v) VALUES ('parent again')")
    assert [r["v"] for r in db.read("SELECT v FROM t ORDER BY id")] == [
        "parent",
        "child",
        "parent again",
    ]
    assert space.cell("by", default="").get() == "child"
