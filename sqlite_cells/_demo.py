"""``sqlite-cells demo``: a short tour on the default store that shows commit-then-react."""

from __future__ import annotations

from typing import Any, TextIO

from runtime import Cell, Runtime, derive, handler


def run_demo(store: str | None, *, out: TextIO) -> int:
    with Runtime(store) as rt:
        space = rt.space("demo")
        counter = space.cell("counter", default=0)
        previous = counter.get()
        if previous:
            out.write(f"continuing the demo in {rt.store}: counter is at {previous}\n")
        else:
            out.write(f"new demo store in {rt.store}\n")
        doubled = derive(counter, lambda v: v * 2)

        def show(value: Any) -> None:
            out.write(f"  committed: doubled = {value}\n")

        doubled.observe().subscribe(show)
        rt.settle()

        @handler
        def bump(n: int, *, counter: Cell) -> None:
            counter.update(lambda v: v + n)

        for n in (1, 2, 3):
            seq = bump(n, counter=counter)
            rt.settle()
            out.write(f"bump({n}) committed as seq {seq}; counter = {counter.get()}\n")
    return 0
