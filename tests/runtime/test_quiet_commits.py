"""A commit nobody watches does not wake the scheduler thread (the write path's CPU per commit);
one that someone watches is delivered as before."""

from __future__ import annotations

import sqlite_cells as sc


def test_quiet_commits_do_not_wake_the_scheduler(rt: sc.Runtime, woken: list[int]) -> None:
    scheduler = rt.scheduler
    space = rt.space("demo")
    watched, quiet = space.cell("watched", default=0), space.cell("quiet", default=0)
    rt.settle()  # work queued while the runtime started is not a commit's
    for n in range(1, 4):
        with space.transact():
            quiet.set(n)
    rt.settle()
    assert woken == []
    assert scheduler.processed_seq(space.file) == 3  # taken in all the same
    seen: list[object] = []
    watched.observe().subscribe(seen.append)
    rt.settle()
    with space.transact():
        watched.set(1)
    with space.transact():
        quiet.set(4)
    rt.settle()
    assert seen == [0, 1]
    assert 4 in woken
    assert scheduler.processed_seq(space.file) == 5
    doubled = sc.derive(quiet, lambda v: v * 2)
    rt.settle()
    with space.transact():
        quiet.set(5)
    rt.settle()
    assert doubled.get() == 10
