"""The spaces of one process that share a file wake each other after a commit (R53): the
process keeps, per space file path, the spaces open on it. A path's entry goes when its last
space closes, so a process making and closing runtime after runtime (each ephemeral one on a
new path) does not pile up entries, and the spaces still open on a path keep waking each other
while others on it open and close."""

from __future__ import annotations

import threading
from pathlib import Path

import sqlite_cells as sc
from sqlite_cells.runtime._space_file import _bus

RUNTIMES = 30
NEVER = 1_000_000  # seconds: a runtime polling this rarely learns of a commit only when woken


def _paths() -> set[Path]:
    return set(_bus._by_path)


def test_closed_runtimes_leave_no_entries_behind() -> None:
    before = _paths()
    for _ in range(RUNTIMES):
        with sc.Runtime.ephemeral() as rt:
            space = rt.space("demo")
            with space.transact():
                space.cell("c").set(1)
            assert space.file.path in _paths()
    assert _paths() - before == set()


def test_spaces_open_on_a_path_still_wake_each_other_while_others_come_and_go(
    store: Path,
) -> None:
    with sc.Runtime(store, poll_interval=NEVER) as reader, sc.Runtime(store) as writer:
        watched = reader.space("demo").cell("c", default=0)
        written = writer.space("demo")
        arrived = threading.Event()

        def on_value(value: object) -> None:
            if value == 9:
                arrived.set()

        watched.observe().subscribe(on_value)
        reader.settle()

        def come_and_go() -> None:
            for _ in range(5):
                with sc.Runtime(store) as passing:
                    passing.space("demo").cell("c").get()

        threads = [threading.Thread(target=come_and_go) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        path = reader.space("demo").file.path
        assert len(_bus._by_path[path]) == 2  # the reader's and the writer's
        with written.transact():
            written.cell("c").set(9)
        assert arrived.wait(30)  # woken by the writer's commit: the reader never polls
        assert watched.get() == 9
    assert path not in _paths()
