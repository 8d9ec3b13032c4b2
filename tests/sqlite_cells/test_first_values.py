"""The first value of a derived cell over another still waiting for its own (R54, §2): it is
computed from that input's first value, never from its absence."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import sqlite_cells as sc

# A count a few milliseconds long, so that commits keep wanting another run while one is in
# flight (the recursive part only makes it slow; the bound it computes is below every value).
SLOW_COUNT = (
    "SELECT count(*) AS n FROM t WHERE v > (SELECT count(*) FROM (WITH RECURSIVE r(i) AS "
    "(SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < 20000) SELECT i FROM r)) - 100000000"
)


@sc.handler
def _bump(*, counter: sc.Cell, db: sc.SqliteDb) -> None:
    n = counter.get()
    counter.set(n + 1)
    db.exec("INSERT INTO t (v) VALUES (?)", [n + 1])


def test_a_derived_cell_over_one_held_before_its_first_value_waits_for_that_value(
    tmp_path: Path,
) -> None:
    """A lift over a cell and a live query is held back at its making while the query's run is
    in flight (R54); a derived cell over the lift is held with it. When the run landed while a
    later commit already wanted another, the lift was held again — and the derived cell was
    released and computed from the lift's missing value (None): ``get()`` and its subscribers
    got ``f(None)`` (up to 6 trials in 10). It waits for the lift's first value."""
    with sc.Runtime(tmp_path) as rt:
        space = rt.space("s")
        counter = space.cell("counter", default=0)
        db = space.sqlite_database(
            "d", tables={"t": sc.table(id="integer primary key", v="integer")}
        )
        _bump(counter=counter, db=db)
        query = db.query(SLOW_COUNT)
        rt.settle()
        stop = threading.Event()

        def writer() -> None:
            while not stop.is_set():
                _bump(counter=counter, db=db)
                time.sleep(0.002)

        thread = threading.Thread(target=writer)
        thread.start()
        seen: list[Any] = []
        try:
            for _ in range(60):
                inner = sc.lift(lambda n, state: (n, state))(counter, query)
                outer = sc.derive(inner, lambda value: ("of", value))
                outer.observe().subscribe(seen.append)
                assert outer.get()[1] is not None
        finally:
            stop.set()
            thread.join()
        rt.settle()
    assert seen and all(value[1] is not None for value in seen)
