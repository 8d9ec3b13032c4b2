"""Commits and writes made from deep in the caller's stack, close to Python's recursion limit (a
recursive function, patterns running patterns thousands of levels deep): a commit that runs out
of stack rolls back and releases the space file's write lock before its error reaches the caller
(R34: a commit is all or nothing), and running out of stack is reported as that, never as a value
nested too deeply (R6)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlite_cells as sc

# Every depth from this many frames short of the limit up to the limit itself: the stack runs
# out at each step of a commit in turn (its statements, its cleanup, the value's encoding).
SPAN = 60


def _stack_depth() -> int:
    frame, depth = sys._getframe(1), 0
    while frame is not None:
        frame, depth = frame.f_back, depth + 1
    return depth


def _from_frames(frames: int, work: Callable[[], Any]) -> Any:
    """``work()`` called ``frames`` Python frames deeper than the caller."""
    return work() if frames == 0 else _from_frames(frames - 1, work)


def _near_the_limit() -> range:
    room = sys.getrecursionlimit() - _stack_depth()
    return range(room - SPAN, room + 1)


def test_r34_a_commit_out_of_stack_rolls_back_and_releases_the_write_lock(store: Path) -> None:
    """At ≈ 11 frames short of the limit the rollback after the error ran out of stack too: the
    write connection stayed in its SQLite transaction, another runtime waited 30 s for the lock
    and failed, and this runtime's next commit failed ("cannot start a transaction within a
    transaction")."""
    limit = sys.getrecursionlimit()
    with sc.Runtime(store) as rt, sc.Runtime(store) as other:
        space = rt.space("demo")
        c = space.cell("c", default=0)
        theirs = other.space("demo").cell("theirs")

        def add_one() -> None:
            with space.transact():
                c.set(c.get() + 1)

        outcomes = []
        for frames in _near_the_limit():
            try:
                _from_frames(frames, add_one)
                outcomes.append("committed")
            except RecursionError:
                outcomes.append("out of stack")
            began = time.monotonic()
            with other.space("demo").transact():
                theirs.set(frames)  # the lock is free: no wait for it
            assert time.monotonic() - began < 5
            add_one()  # this runtime's next commit works
        assert "committed" in outcomes and "out of stack" in outcomes
        assert c.get() == len(outcomes) + outcomes.count("committed")  # all or nothing
        assert sys.getrecursionlimit() == limit


def test_r6_a_plain_value_set_out_of_stack_is_a_recursion_error(rt: sc.Runtime) -> None:
    """``c.set(7)`` 9–10 frames short of the limit raised ``ValueEncodeError`` ("nested too
    deeply"): the caller's own stack running out was blamed on the value."""
    space = rt.space("demo")
    c = space.cell("c", default=0)

    def set_seven() -> None:
        with space.transact():
            c.set(7)

    outcomes = []
    for frames in _near_the_limit():
        try:
            _from_frames(frames, set_seven)
            outcomes.append("set")
        except RecursionError:
            outcomes.append("out of stack")
    assert "set" in outcomes and "out of stack" in outcomes
    assert c.get() == 7


def test_r6_a_pattern_running_itself_too_deep_is_a_recursion_error(rt: sc.Runtime) -> None:
    """A pattern that runs itself 3,000 levels deep had its plain int input refused as "nested
    too deeply"."""

    @sc.pattern
    def nested(levels: sc.Cell) -> Any:
        if levels.get() > 0:
            return levels.space.run(nested, key="inner", levels=levels.get() - 1).outputs
        return 0

    space = rt.space("demo")
    outcome = "ran"
    try:
        space.run(nested, key="outer", levels=3000)
    except RecursionError:
        outcome = "out of stack"
    assert outcome == "out of stack"
    with space.transact():
        space.cell("after").set(1)  # the runtime goes on
    assert space.cell("after").get() == 1
