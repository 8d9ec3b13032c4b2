"""Runtimes of one process on one store (R53): a transaction begun after a peer's commit
returned reads what that commit wrote. The peer's wake-up is asynchronous (the poller catches
up soon after), so without a catch-up where the transaction begins it read the value before,
and its commit refused its own read as a conflict."""

from __future__ import annotations

from pathlib import Path

import sqlite_cells as sc

NEVER = 1_000_000  # seconds: these runtimes' pollers never look on their own


def _not_woken(space: sc.Space) -> None:
    # Only what a transaction does may catch up: the asynchronous wake-up is taken out.
    space.file.wake = lambda: None


def test_a_transaction_begun_after_a_peer_commit_returned_reads_that_commit(store: Path) -> None:
    with (
        sc.Runtime(store, poll_interval=NEVER) as one,
        sc.Runtime(store, poll_interval=NEVER) as two,
    ):
        mine, theirs = one.space("demo"), two.space("demo")
        counter, same = mine.cell("c", default=0), theirs.cell("c", default=0)
        assert counter.get() == 0 and same.get() == 0  # (each runtime holds the value)
        _not_woken(mine)
        _not_woken(theirs)
        expected = 0
        for _ in range(3):
            with theirs.transact():
                same.set(same.get() + 1)  # theirs catches up with mine's last commit first
            expected += 1
            with mine.transact():  # read-modify-write: no ConflictError
                assert counter.get() == expected
                counter.set(expected * 10)
            expected *= 10
            with mine.transact():  # and a transaction that only reads
                assert counter.get() == expected
        with theirs.transact():
            assert same.get() == counter.get() == expected == 1110
