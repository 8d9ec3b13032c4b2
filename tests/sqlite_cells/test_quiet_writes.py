"""A commit to a database no live query watches stays on the committing thread (the commit
hook of the live queries absorbs it); one to a watched database reaches the scheduler and
re-runs its queries as before."""

from __future__ import annotations

import sqlite_cells as sc
from sqlite_cells._runtime import Space

TABLES = {"items": sc.table(id="integer primary key", v="integer not null")}


def test_writes_to_unwatched_databases_do_not_wake_the_scheduler(
    rt: sc.Runtime, space: Space, woken: list[int]
) -> None:
    scheduler = rt.scheduler
    watched = space.sqlite_database("watched", tables=TABLES)
    quiet = space.sqlite_database("quiet", tables=TABLES)

    def insert(db: sc.SqliteDb, v: int) -> None:
        with space.transact():
            db.exec("INSERT INTO items (v) VALUES (?)", [v])

    insert(quiet, 1)
    rt.settle()
    query = watched.query("SELECT v FROM items ORDER BY id")
    seen: list[list[int]] = []
    query.observe().subscribe(lambda s: seen.append([r["v"] for r in s.result or []]))
    rt.settle()
    woken.clear()
    before = rt.live_queries.reads_started
    for v in (2, 3):
        insert(quiet, v)
    rt.settle()
    assert woken == []  # taken in on this thread, nothing re-ran
    assert rt.live_queries.reads_started == before
    insert(watched, 7)
    rt.settle()
    assert woken == [scheduler.processed_seq(space.file)]
    assert seen[-1] == [7]
    assert quiet.read("SELECT count(*) AS n FROM items") == [{"n": 3}]
