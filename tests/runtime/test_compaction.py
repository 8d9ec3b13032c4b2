"""Cost that does not grow with history: a bounded value cache, a scheduler view of watched
cells only, and a compacted log that a runtime behind it still catches up from."""

from __future__ import annotations

import threading
from pathlib import Path

import apsw

import sqlite_cells as sc
from sqlite_cells.runtime import FORMAT_VERSION, SpaceFile
from sqlite_cells.runtime._cell import CellSource, Reactive, observe_node
from sqlite_cells.runtime._scheduler import Node
from sqlite_cells.runtime._space_file import COMPACT_BYTES


class _Held(Reactive):
    """What holds a node made here, as a Cell or a Query does (what observe_node streams)."""

    def __init__(self, node: Node) -> None:
        self._held = node

    def _node(self) -> Node:
        return self._held


def _small(file: SpaceFile, *, keep: int = 3, every: int = 4) -> None:
    file.compact_keep = keep
    file.compact_every = every
    file.keep_per_target = 2


def _log(path: Path) -> tuple[list[int], int]:
    conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        seqs = [int(s) for (s,) in conn.execute("SELECT seq FROM _cf_log ORDER BY seq")]
        row = conn.execute("SELECT value FROM _cf_meta WHERE key = 'compacted'").fetchone()
        return seqs, int(row[0]) if row else 0
    finally:
        conn.close()


def test_cache_and_view_stay_bounded_over_many_distinct_cells(rt: sc.Runtime) -> None:
    space = rt.space("demo")
    space.file.cache_size = 50
    watched = space.cell("watched", default=0)
    seen: list[int] = []
    watched.observe().subscribe(seen.append)
    for batch in range(40):
        with space.transact():
            for i in range(25):
                space.cell(f"c{batch}-{i}").set(batch * 25 + i)
            watched.set(batch + 1)
    rt.settle()
    assert space.file.cached_count <= 50
    # The view holds the one watched cell, not the thousand written ones.
    assert rt.scheduler.view_count == 1
    assert seen[-1] == 40
    # An evicted value is read again from the file.
    assert space.cell("c0-0").get() == 0 and space.cell("c39-24").get() == 999
    assert space.file.cached_count <= 50


def test_a_first_value_is_never_older_than_a_commit_already_processed(rt: sc.Runtime) -> None:
    """The race a view of watched cells only could bring back: the node reads its seed, a commit
    to its (not yet watched) cell is processed, then the node joins the graph."""
    space = rt.space("demo")
    cell = space.cell("x", default=0)
    with space.transact():
        cell.set(1)
    rt.settle()
    node = CellSource(cell)  # seed: 1
    assert node.seed.data == b"1"
    with space.transact():
        cell.set(2)  # quiet (nobody watches x yet): taken into the view at once
    rt.settle()
    values: list[int] = []
    observe_node(_Held(node)).subscribe(values.append)  # joins the graph now
    rt.settle()
    assert values == [2]
    with space.transact():
        cell.set(3)
    rt.settle()
    assert values == [2, 3]


def test_a_first_value_is_never_older_with_the_scheduler_busy(rt: sc.Runtime) -> None:
    space = rt.space("demo")
    cell = space.cell("y", default=0)
    gate = threading.Event()
    rt.scheduler.submit(lambda: gate.wait(10))  # the scheduler is held: commits queue up
    node = CellSource(cell)  # seed: nothing written
    with space.transact():
        cell.set(5)
    values: list[int] = []
    observe_node(_Held(node)).subscribe(values.append)  # queued behind the commit
    gate.set()
    rt.settle()
    assert values == [5]


def test_the_log_is_compacted_to_the_kept_records(rt: sc.Runtime) -> None:
    space = rt.space("demo")
    _small(space.file)
    counter = space.cell("n", default=0)
    for _ in range(30):
        with space.transact():
            counter.update(lambda v: v + 1)
    seqs, point = _log(space.file.path)
    assert point > 0 and seqs[0] == point + 1 and seqs[-1] == 30
    assert len(seqs) <= 3 + 4  # the kept records plus the commits since the last compaction
    assert counter.get() == 30
    conn = apsw.Connection(str(space.file.path), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        assert conn.execute("SELECT value FROM _cf_meta WHERE key = 'format'").fetchone() == (
            FORMAT_VERSION,
        )
        # Cells stay in _cf_cells, so nothing needs naming in _cf_named.
        assert conn.execute("SELECT count(*) FROM _cf_named").fetchone() == (0,)
    finally:
        conn.close()


def _big_writes(space: sc.Space, size: int, times: int) -> str:
    value = ""
    for n in range(times):
        value = f"{n:04d}" + "x" * size
        with space.transact():
            space.cell("big").set(value)
    return value


def test_a_large_value_written_many_times_leaves_a_space_file_near_its_size(store: Path) -> None:
    """Compaction by size: 100 writes of a 64 KB value to one cell leave the file about twice
    the value plus the floor, not the 100 (or 256) records that held it."""
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        space.file.compact_bytes = floor = 256 * 1024
        last = _big_writes(space, 64 * 1024, 100)
        path = space.file.path
    seqs, point = _log(path)
    assert seqs[-1] == 100 and point == seqs[0] - 1 > 0
    assert path.stat().st_size <= 2 * len(last) + 2 * floor
    with sc.Runtime(store) as rt:
        assert rt.space("demo").cell("big").get() == last


def test_the_size_floor_bounds_the_space_file_at_the_defaults(store: Path) -> None:
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        last = _big_writes(space, 2 * 2**20, 8)
        path = space.file.path
    assert _log(path)[0][-1] == 8
    assert path.stat().st_size <= 2 * len(last) + 2 * COMPACT_BYTES


def test_small_values_are_compacted_by_count_only(rt: sc.Runtime) -> None:
    """Under the size floor, the newest compact_keep records stay, however few bytes they hold."""
    space = rt.space("demo")
    _small(space.file, keep=10, every=4)
    space.file.compact_bytes = 10**9
    _big_writes(space, 10, 30)
    seqs, point = _log(space.file.path)
    assert point == seqs[0] - 1 and seqs[-1] == 30 and len(seqs) >= 10


def test_a_runtime_behind_a_compaction_by_size_catches_up(store: Path) -> None:
    with sc.Runtime(store) as a, sc.Runtime(store, poll_interval=3600) as b:
        space_a = a.space("demo")
        space_a.file.compact_bytes = 64 * 1024
        _big_writes(space_a, 100, 1)
        space_b = _behind(b)
        values: list[object] = []
        space_b.cell("big").observe().subscribe(values.append)
        b.settle()
        seen = space_b.file.seen_seq
        last = _big_writes(space_a, 32 * 1024, 10)
        seqs, point = _log(space_a.file.path)
        assert point > seen and len(seqs) < 10  # compacted by size, not by count
        assert space_b.file.catch_up()
        b.settle()
        assert values[-1] == last and space_b.file.seen_seq == 11


def test_a_restart_after_compaction_sees_current_values(store: Path) -> None:
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        _small(space.file)
        for i in range(20):
            with space.transact():
                space.cell(f"k{i % 5}").set(i)
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        assert [space.cell(f"k{i}").get() for i in range(5)] == [15, 16, 17, 18, 19]
        with space.transact():
            space.cell("k0").set(100)  # seqs go on from the kept last record
        assert _log(space.file.path)[0][-1] == 21


def _behind(b: sc.Runtime) -> sc.Space:
    """Runtime ``b``'s space, never woken by commits of this process (its poll is made rare):
    it stays behind until told to catch up."""
    space = b.space("demo")
    space.file.wake = lambda: None
    return space


def test_a_runtime_behind_the_compaction_point_catches_up(store: Path) -> None:
    """A commits and compacts past what B has seen, then B catches up from the cells."""
    with sc.Runtime(store) as a, sc.Runtime(store, poll_interval=3600) as b:
        space_a = a.space("demo")
        _small(space_a.file)
        with space_a.transact():
            space_a.cell("watched").set(0)
            space_a.cell("other").set(0)
        space_b = _behind(b)
        values: list[object] = []
        space_b.cell("watched").observe().subscribe(values.append)
        b.settle()
        assert values == [0]
        seen = space_b.file.seen_seq
        for i in range(1, 30):
            with space_a.transact():
                space_a.cell("watched" if i % 3 == 0 else "other").set(i)
                space_a.cell(f"new{i}").set(i)
        _, point = _log(space_a.file.path)
        assert point > seen
        assert space_b.file.catch_up()
        b.settle()
        assert values == [0, 27]
        assert space_b.file.seen_seq == 30
        assert space_b.cell("other").get() == 29 and space_b.cell("new5").get() == 5
        # After the jump, B follows the log again commit by commit.
        with space_a.transact():
            space_a.cell("watched").set(30)
        space_b.file.catch_up()
        b.settle()
        assert values == [0, 27, 30]


def test_a_writer_behind_the_compaction_point_catches_up_before_it_commits(store: Path) -> None:
    with sc.Runtime(store) as a, sc.Runtime(store, poll_interval=3600) as b:
        space_a = a.space("demo")
        _small(space_a.file)
        with space_a.transact():
            space_a.cell("n").set(0)
        space_b = _behind(b)
        assert space_b.cell("n").get() == 0
        for i in range(1, 20):
            with space_a.transact():
                space_a.cell("n").set(i)
        with space_b.transact():
            space_b.cell("m").set("from b")  # a blind write: commits after catching up
        assert space_b.file.seen_seq == 21
        assert space_b.cell("n").get() == 19

        @sc.handler
        def bump() -> None:
            space_b.cell("n").update(lambda v: v + 1)

        assert bump() == 22
        a.space("demo").file.catch_up()
        assert space_a.cell("n").get() == 20


def test_a_format_2_file_is_upgraded_in_place(store: Path) -> None:
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        with space.transact():
            space.cell("a").set(1)
        path = space.file.path
    conn = apsw.Connection(str(path))
    conn.execute("DROP TABLE _cf_named; UPDATE _cf_meta SET value = 2 WHERE key = 'format'")
    conn.close()
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        assert space.cell("a").get() == 1
        with space.transact():
            space.cell("a").set(2)
    conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        assert conn.execute("SELECT value FROM _cf_meta WHERE key = 'format'").fetchone() == (3,)
        assert conn.execute("SELECT count(*) FROM _cf_named").fetchone() == (0,)
        assert [s for (s,) in conn.execute("SELECT seq FROM _cf_log")] == [1, 2]
    finally:
        conn.close()
