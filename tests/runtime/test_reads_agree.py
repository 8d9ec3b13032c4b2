"""A cell read never lags rows its own runtime already shows (R40: a read sees exactly the
commits that finished before it started). A commit that writes rows and a cell together is
visible to ``db.read`` the moment SQLite's COMMIT returns; the runtime's committed-value cache
takes it in just after. A ``get()`` of a cell that commit wrote, made in between, waits for the
commit to be taken in, instead of answering from the cache it is about to replace."""

from __future__ import annotations

import threading

import sqlite_cells as sc

from ..conftest import threads_running

_COMMITS = 300


def test_a_cell_read_after_a_row_read_is_never_older_than_the_rows(rt: sc.Runtime) -> None:
    space = rt.space("s")
    db = space.sqlite_database("d", tables={"t": sc.table(x="integer")})
    count = space.cell("count", default=0)
    done = threading.Event()
    seen: list[tuple[int, int]] = []  # (rows read, cell value read just after)

    @sc.handler
    def post(n: int) -> None:
        db.exec("INSERT INTO t (x) VALUES (?)", [n])
        count.set(n)

    def read() -> None:
        while not done.is_set():
            rows = db.read("SELECT count(*) AS n FROM t")[0]["n"]
            seen.append((rows, count.get()))

    with threads_running(read, stop=done):
        for n in range(1, _COMMITS + 1):
            post(n)
    behind = [(rows, value) for rows, value in seen if value < rows]
    assert behind == [], f"{len(behind)} of {len(seen)} cell reads lagged the rows: {behind[:5]}"
    assert count.get() == _COMMITS
    assert db.read("SELECT count(*) AS n FROM t") == [{"n": _COMMITS}]
    assert any(rows > 0 for rows, _ in seen)  # the reader overlapped the writes
