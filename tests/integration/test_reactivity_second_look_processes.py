"""What re-runs a live query when the write comes from another process (R51, R53): the same
pairs as ``tests/sqlite_cells/test_reactivity_second_look.py`` — a write of a column the query
reads re-runs it, a write of another column never — committed by a real subprocess through its
own ``sc.Runtime`` on the same store. The write set comes from the commit's own changeset, so
the rule holds for commits made elsewhere."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import sqlite_cells as sc
from sqlite_cells.read._live import _MAX_RETRIES

from ..sqlite_cells.test_reactivity_second_look import PAIRS, SEED, TABLES

ROOT = Path(__file__).resolve().parents[2]

# Each argument after the store is one statement, committed in a transaction of its own, or a
# JSON object {"cell": name, "value": v, "sql": statement} written together in one commit; the
# seq of each commit is printed as a JSON list.
WRITER = textwrap.dedent(
    """
    import json, sys
    import sqlite_cells as sc
    from tests.sqlite_cells.test_reactivity_second_look import TABLES
    seqs = []
    with sc.Runtime(sys.argv[1]) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("shop", tables=TABLES)
        for arg in sys.argv[2:]:
            both = json.loads(arg) if arg.startswith("{") else {"sql": arg}
            with space.transact() as tx:
                if "cell" in both:
                    space.cell(both["cell"]).set(both["value"])
                db.exec(both["sql"])
            seqs.append(tx.seq)
    print(json.dumps(seqs))
    """
)


def other_process(store: Path, *sqls: str) -> list[int]:
    done = subprocess.run(
        [sys.executable, "-c", WRITER, str(store), *sqls],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    seqs: list[int] = json.loads(done.stdout)
    return seqs


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    import sqlite_cells.read._live as live_module
    import sqlite_cells.read._workers as workers_module

    counted: Counter[str] = Counter()
    real = workers_module.read_batch

    def counting(*args: Any, **kwargs: Any) -> Any:
        counted.update(stmt.sql for stmt in args[2][kwargs.get("start", 0) :])
        return real(*args, **kwargs)

    monkeypatch.setattr(workers_module, "read_batch", counting)
    monkeypatch.setattr(live_module, "read_batch", counting)
    return counted


@pytest.fixture
def db(store: Path, rt: sc.Runtime) -> sc.SqliteDb:
    other_process(store, *SEED)
    return rt.space("demo").sqlite_database("shop", tables=TABLES)


PROCESS_PAIRS = [
    PAIRS[1],  # ORDER BY
    PAIRS[2],  # GROUP BY
    PAIRS[16],  # count(*): an UPDATE never, a DELETE does
    PAIRS[21],  # a generated column computed from the column written
    PAIRS[25],  # upserts changing one column or another
    PAIRS[26],  # the hidden rowid of a table keyed otherwise (INSERT OR REPLACE)
]


@pytest.mark.parametrize(("sql", "loud", "quiet"), PROCESS_PAIRS)
def test_another_process_s_write_reruns_a_query_here_only_if_it_changed_what_it_reads(
    store: Path,
    rt: sc.Runtime,
    db: sc.SqliteDb,
    calls: Counter[str],
    sql: str,
    loud: str,
    quiet: str,
) -> None:
    q = db.query(sql)
    assert rt.settle(10)
    first = q.get()
    assert first.error is None and not first.pending, first
    calls.clear()
    (quiet_seq,) = other_process(store, quiet)
    assert rt.settle(10)  # takes in the commits other processes finished before it
    assert calls == Counter(), f"{sql!r} re-ran after {quiet!r}"
    assert q.get().seq == first.seq and q.get().seq is not None and q.get().seq < quiet_seq
    (loud_seq,) = other_process(store, loud)
    assert rt.settle(10)
    assert q.get().seq == loud_seq, q.get()
    # Once, or twice when a read met the database file before the other process's commit of
    # it and was done again (see test_read_sets.py). (Counted before db.read, which reads too.)
    assert set(calls) == {sql} and 1 <= calls[sql] <= 2, calls
    assert q.get().result == db.read(sql)


def test_another_process_s_write_that_changes_nothing_reruns_only_react_on_db(
    store: Path, rt: sc.Runtime, db: sc.SqliteDb, calls: Counter[str]
) -> None:
    default = db.query("SELECT qty FROM items ORDER BY id")
    every = db.query("SELECT qty FROM items ORDER BY id DESC", react_on=db)
    assert rt.settle(10)
    seq = default.get().seq
    calls.clear()
    (now,) = other_process(store, "UPDATE items SET qty = qty")
    assert rt.settle(10)
    assert default.get().seq == seq
    assert every.get().seq == now
    assert set(calls) == {"SELECT qty FROM items ORDER BY id DESC"}


def test_another_process_s_commit_of_a_param_cell_and_rows_reruns_a_query_here_once(
    store: Path, rt: sc.Runtime, db: sc.SqliteDb, calls: Counter[str]
) -> None:
    sql = "SELECT name, note FROM items WHERE qty > ? ORDER BY id"
    floor = rt.space("demo").cell("floor", default=5)
    q = db.query(sql, params=[floor])
    seen: list[Any] = []
    q.observe().subscribe(lambda state: seen.append((state.pending, state.result)))
    assert rt.settle(10)
    assert q.get().result == [{"name": "apple", "note": "red"}]
    calls.clear()
    both = {"cell": "floor", "value": 1, "sql": "UPDATE items SET note = 'ripe' WHERE id = 2"}
    (now,) = other_process(store, json.dumps(both))
    assert rt.settle(10)
    assert q.get().seq == now
    assert q.get().result == [{"name": "apple", "note": "red"}, {"name": "pear", "note": "ripe"}]
    # One run, and a read done again each time it found the file behind its space (the other
    # process commits the space file first; under load more than one lag-delay may pass)
    assert set(calls) == {sql} and 1 <= calls[sql] <= 1 + _MAX_RETRIES, calls
    # never the new floor with the old rows, nor the old floor with the new rows: one result
    # per commit reaches the subscriber, whatever the reads done again
    assert [r for p, r in seen if not p] == [
        [{"name": "apple", "note": "red"}],
        [{"name": "apple", "note": "red"}, {"name": "pear", "note": "ripe"}],
    ]
