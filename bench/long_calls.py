"""What the overridden builtins cost a write that calls them per row (``write/_calls.py``, R44):
``db.exec`` of an UPDATE whose WHERE calls ``LIKE`` (or whose SET calls ``trim``) on each of
10,000 rows, against the same runtime whose write connection never had the overrides
(SQLite cannot give a connection its builtin back: unregistering an override leaves the name
with no function), alternating run by run in one process; and the bare
statement on a plain apsw connection with and without the overrides. Not part of ``python -m
bench`` (no target in the SPEC); run it on demand.

    python -m bench.long_calls [--quick] [--runs N]
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import apsw

import sqlite_cells as sc
from bench._common import Figure, Row, median, p, parse
from sqlite_cells.write import _conn
from sqlite_cells.write._calls import override_long_calls

ROWS = 10_000
TABLES = {"t": sc.table(id="integer primary key", name="text not null", x="integer default 0")}
STATEMENTS = {
    "LIKE, 1/3 of the rows match": "UPDATE t SET x = x + 1 WHERE name LIKE 'a%'",
    "LIKE, no row matches": "UPDATE t SET x = x + 1 WHERE name LIKE 'zz%'",
    "trim in SET, every row": "UPDATE t SET x = length(trim(name, 'a0'))",
}


class _Owner:
    deadline: float | None = None


def _names() -> list[list[object]]:
    return [[("a" if i % 3 == 0 else "b") + f"{i:06d}"] for i in range(ROWS)]


def _runtime(directory: Path, *, builtin: bool) -> tuple[sc.Runtime, sc.SqliteDb]:
    rt = sc.Runtime(directory)
    space = rt.space("bench")
    db = space.sqlite_database("d", tables=TABLES)
    # The write connection's state is made at its first database write: for the baseline,
    # made without the overrides.
    if builtin:
        _conn.override_long_calls = lambda _conn, _owner: None
    try:
        with space.transact():
            db.exec_many("INSERT INTO t (name) VALUES (?)", _names())
    finally:
        _conn.override_long_calls = override_long_calls
    return rt, db


def _commit_ms(rt: sc.Runtime, db: sc.SqliteDb, sql: str) -> float:
    space = rt.space("bench")
    start = time.perf_counter()
    with space.transact():
        db.exec(sql)
    return (time.perf_counter() - start) * 1000


def _plain(*, overridden: bool) -> apsw.Connection:
    conn = apsw.Connection(":memory:")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL, x INTEGER)")
    conn.executemany("INSERT INTO t (name) VALUES (?)", _names())
    if overridden:
        owner = _Owner()
        owner.deadline = time.monotonic() + 3600  # as in a user write: the size check runs
        override_long_calls(conn, owner)
    return conn


def _statement_ms(conn: apsw.Connection, sql: str) -> float:
    start = time.perf_counter()
    conn.execute(sql)
    return (time.perf_counter() - start) * 1000


def main() -> None:
    args = parse(__doc__ or "")
    started = time.perf_counter()
    runs = 3 if args.quick else max(args.runs, 3) * 4
    figure = Figure(
        "long_calls",
        "Overridden builtins in a write (R44): cost per statement",
        "python -m bench.long_calls",
    )
    with tempfile.TemporaryDirectory() as tmp:
        ours_rt, ours_db = _runtime(Path(tmp) / "ours", builtin=False)
        base_rt, base_db = _runtime(Path(tmp) / "builtin", builtin=True)
        ours_conn, base_conn = _plain(overridden=True), _plain(overridden=False)
        try:
            for label, sql in STATEMENTS.items():
                ours: list[float] = []
                base: list[float] = []
                bare_ours: list[float] = []
                bare_base: list[float] = []
                for _ in range(runs):
                    ours.append(_commit_ms(ours_rt, ours_db, sql))
                    base.append(_commit_ms(base_rt, base_db, sql))
                    bare_ours.append(_statement_ms(ours_conn, sql))
                    bare_base.append(_statement_ms(base_conn, sql))
                for what, mine, theirs in (
                    ("db.exec commit", ours, base),
                    ("bare statement (apsw)", bare_ours, bare_base),
                ):
                    figure.add(
                        Row(
                            f"{label}: {what}, ms",
                            "ms",
                            median(mine),
                            p(mine, 0.9),
                            baseline=median(theirs),
                            ratio=median(theirs) / median(mine),
                        )
                    )
                extra_us = (median(bare_ours) - median(bare_base)) * 1000 / ROWS
                figure.notes.append(f"{label}: {extra_us:.2f} µs more per row (bare statement)")
        finally:
            ours_rt.close()
            base_rt.close()
    figure.notes.append(
        f"{ROWS:,} rows; {runs} runs of each, alternating; baseline = SQLite's own builtins "
        "(a write connection without the overrides); ratio = builtin time / ours (below 1: "
        "ours is slower)"
    )
    figure.finish(args, started)


if __name__ == "__main__":
    main()
