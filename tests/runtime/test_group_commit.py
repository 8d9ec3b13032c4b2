"""Group commit: transactions of one space that wait while another commit runs are committed
together, in one SQLite transaction (one COMMIT, one fsync), each as its own commit."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import apsw

import sqlite_cells as sc
from sqlite_cells.runtime import Space

Body = Callable[[], None]


def commit_queued(space: Space, bodies: list[Body]) -> tuple[list[Any], list[str]]:
    """Run each body in its own transaction on its own thread, all queued behind the space's
    write lock (in this order) before any commits; return each outcome (seq or exception) and
    the statements run on the write connection meanwhile."""
    outcomes: list[Any] = [None] * len(bodies)
    statements: list[str] = []

    def run(i: int, body: Body) -> None:
        try:
            with space.transact() as tx:
                body()
            outcomes[i] = tx.seq
        except Exception as exc:
            outcomes[i] = exc

    threads = []
    with space.file.write_connection() as conn:
        for i, body in enumerate(bodies):
            thread = threading.Thread(target=run, args=(i, body))
            thread.start()
            threads.append(thread)
            deadline = time.monotonic() + 10
            while len(space.file._waiting) < i + 1:  # wait until it is queued, in order
                assert time.monotonic() < deadline, "a committer never queued"
                time.sleep(0.001)

        def trace(_cursor: apsw.Cursor, sql: str, _bindings: object) -> bool:
            statements.append(sql)
            return True

        conn.exec_trace = trace
    for thread in threads:
        thread.join()
    with space.file.write_connection() as conn:
        conn.exec_trace = None
    return outcomes, statements


def test_waiting_commits_share_one_transaction(rt: sc.Runtime) -> None:
    space = rt.space("demo")
    cells = [space.cell(f"c{i}", default=0) for i in range(5)]
    seen: list[object] = []
    cells[2].observe().subscribe(seen.append)
    rt.settle()
    bodies: list[Body] = [lambda c=c, i=i: c.set(i + 1) for i, c in enumerate(cells)]
    outcomes, statements = commit_queued(space, bodies)
    assert outcomes == [1, 2, 3, 4, 5]
    assert statements.count("COMMIT") == 1 and statements.count("BEGIN IMMEDIATE") == 1
    assert [c.get() for c in cells] == [1, 2, 3, 4, 5]
    rt.settle()
    assert seen == [0, 3]
    with space.file.write_connection() as conn:
        assert [s for (s,) in conn.execute("SELECT seq FROM _cf_log ORDER BY seq")] == [
            1,
            2,
            3,
            4,
            5,
        ]


def test_a_failing_member_fails_alone(rt: sc.Runtime) -> None:
    space = rt.space("demo")
    x, y, z = space.cell("x", default=0), space.cell("y", default=0), space.cell("z", default=0)

    def read_x_write_y() -> None:
        y.set(x.get() + 1)  # read x at rev 0; the member before it writes x

    outcomes, statements = commit_queued(
        space, [lambda: x.set(10), read_x_write_y, lambda: z.set(2)]
    )
    assert outcomes[0] == 1 and outcomes[2] == 2
    assert isinstance(outcomes[1], sc.ConflictError)
    assert list(outcomes[1].cell_ids) == [x.id]
    assert (x.get(), y.get(), z.get()) == (10, 0, 2)
    assert statements.count("COMMIT") == 1


def test_handlers_still_retry_conflicts_under_load(rt: sc.Runtime) -> None:
    space = rt.space("demo")
    c = space.cell("c", default=0)

    @sc.handler
    def bump() -> None:
        c.update(lambda v: v + 1)

    def work() -> None:
        for _ in range(25):
            bump()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert c.get() == 100
    with space.file.write_connection() as conn:
        seqs = [s for (s,) in conn.execute("SELECT seq FROM _cf_log ORDER BY seq")]
    assert seqs == list(range(1, 101))
