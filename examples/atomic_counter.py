"""A counter and its ledger, committed together: ``python -m examples.atomic_counter [STORE]``.

One handler bumps a cell and inserts a row in the same commit. When anything fails — a row that
breaks a CHECK constraint (an :class:`sc.ExecError` at commit) or an exception raised by the
handler body — nothing of the transaction is kept: the counter and the ledger always agree.
A store whose counter holds anything but a whole number holds another program's data: the
example refuses it (:class:`OtherData`) before its first commit, and writes nothing.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import sqlite_cells as sc

TABLES = {
    "ledger": sc.table(
        id="integer primary key",
        amount="integer not null check (amount > 0)",
        total="integer not null",
    ),
}
SUMMARY = "SELECT count(*) AS entries, coalesce(sum(amount), 0) AS total FROM ledger"


@dataclass
class CounterRun:
    total: int = 0
    entries: int = 0
    errors: list[str] = field(default_factory=list)


class Interrupted(Exception):
    """Raised on purpose by a handler body after it wrote."""


class OtherData(sc.SqliteCellsError, ValueError):
    """The store holds data of another kind under the example's names."""


def _total(counter: sc.Cell) -> int:
    """The counter's value; anything but a whole number (text, even "12", a float, a bool) is
    another program's data, which the example refuses rather than converts and writes over."""
    value = counter.get()
    if type(value) is not int:
        raise OtherData(
            f"cell 'total' of space 'counter' holds {value!r}"[:200]
            + ", not the example's counter (a whole number): this store holds other data "
            "under the example's names, which the example leaves alone (nothing was written); "
            "run it on another store (python -m examples.atomic_counter DIR)"
        )
    return value


def main(store: str | None = None) -> CounterRun:
    """Add to the counter, then fail twice in different ways; print the counter and the ledger
    after each step and return the final state."""
    with sc.Runtime(store) if store is not None else sc.Runtime.ephemeral() as rt:
        space = rt.space("counter")
        db = space.sqlite_database("ledger", tables=TABLES)
        counter = space.cell("total", default=0)
        summary = db.query(SUMMARY)
        run = CounterRun()

        @sc.handler
        def add(amount: int, *, counter: sc.Cell, fail: bool = False) -> None:
            total = _total(counter) + amount
            counter.set(total)
            db.exec("INSERT INTO ledger (amount, total) VALUES (?, ?)", [amount, total])
            if fail:
                raise Interrupted(f"the body gave up after adding {amount}")

        def report(step: str) -> None:
            rt.settle()
            (row,) = summary.get().result or [{"entries": 0, "total": 0}]
            run.total, run.entries = _total(counter), int(row["entries"])
            agree = "agree" if run.total == row["total"] else "DISAGREE"
            print(
                f"{step:<34} counter = {run.total:>2}   ledger: {row['entries']} row(s), "
                f"sum {row['total']:>2} (seq {summary.get().seq})  -> {agree}"
            )

        report("start")
        for amount in (5, 7):
            seq = add(amount, counter=counter)
            report(f"add({amount}) committed as seq {seq}")

        try:
            add(-3, counter=counter)  # the row breaks CHECK (amount > 0) when the commit runs
        except sc.ExecError as exc:
            run.errors.append(type(exc).__name__)
            print(f"add(-3) failed at commit: {exc}")
        report("after the failed commit")

        try:
            add(4, counter=counter, fail=True)
        except Interrupted as exc:
            run.errors.append(type(exc).__name__)
            print(f"add(4, fail=True) raised before committing: {exc}")
        report("after the interrupted handler")
        return run


if __name__ == "__main__":
    if __package__ != "examples":  # run as a file: find its package from the repository root
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from examples import store_argument

    main(store_argument("atomic_counter", __doc__))
