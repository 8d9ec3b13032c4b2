"""R42: a read's rows and its seq come from one snapshot of the file. A read began with the
watermark, which fails to prepare on a file its first write has not reached yet (that write's
attach made it, blank) and so starts no read transaction; a first write committed right then
was seen by the statements after it and served with seq 0 (found by a model-based stress run:
rows of another process's first write under seq 0, still so after `settle`). The read now
starts its transaction with the schema cookie, which always reads the file."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

import sqlite_cells as sc
from sqlite_cells.read import _reader

TABLES = {"t": sc.table(id="integer primary key", v="integer")}


def test_rows_of_another_runtime_s_first_write_never_come_with_seq_0(
    store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = _reader.read_watermark

    def watermark_then_a_pause(*args: object) -> int:
        seq = plain(*args)  # type: ignore[arg-type]
        if seq == 0:
            time.sleep(0.005)  # one thread switch interval: what any busy thread can cause
        return seq

    monkeypatch.setattr(_reader, "read_watermark", watermark_then_a_pause)
    with sc.Runtime(store) as mine, sc.Runtime(store) as theirs:
        space = mine.space("s")
        poke = space.cell("poke", default=0)
        db = space.sqlite_database("d", tables=TABLES)
        q = db.query("SELECT id, v FROM t", react_on=poke)  # re-runs at each poke
        seen: list[sc.QueryState[dict[str, object]]] = []
        q.observe().subscribe(seen.append)
        assert mine.settle(30)
        stop = threading.Event()

        def keep_poking() -> None:
            i = 0
            while not stop.is_set():
                i += 1
                with space.transact():
                    poke.set(i)
                time.sleep(0.002)

        poker = threading.Thread(target=keep_poking)
        poker.start()
        try:
            time.sleep(0.1)
            their = theirs.space("s")
            with their.transact():
                their.sqlite_database("d", tables=TABLES).exec("INSERT INTO t VALUES (1, 10)")
            time.sleep(0.2)
        finally:
            stop.set()
            poker.join(30)
        assert mine.settle(30)
        with space.transact():
            poke.set(-1)
        assert mine.settle(30)
        assert q.get().result == [{"id": 1, "v": 10}] and q.get().seq > 0, q.get()
        assert [s for s in seen if s.result and s.seq == 0] == []


def test_a_read_overlapping_a_commit_is_not_read_again(
    store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """R40, R44: a read sees the commits that finished before it started. A one-shot read
    compared the file's watermark with the last commit the runtime knew of *after* the read,
    so a commit landing while it ran made it read again: past its deadline + 1 s on a long
    read, and showing that later commit. The last commit known is taken before the read."""
    with sc.Runtime(store) as rt:
        space = rt.space("s")
        db = space.sqlite_database("d", tables=TABLES)
        with space.transact():
            db.exec("INSERT INTO t (v) VALUES (1)")
        workers = rt.query_workers
        plain_run = workers.run
        runs: list[int] = []

        def run_then_a_commit(*args: object, **kwargs: object) -> object:
            found = plain_run(*args, **kwargs)  # type: ignore[arg-type]
            runs.append(1)
            if len(runs) == 1:  # a commit lands after the read's snapshot, before it returns
                writer = threading.Thread(target=_insert, args=(space, db))
                writer.start()
                writer.join()
            return found

        monkeypatch.setattr(workers, "run", run_then_a_commit)
        assert db.read("SELECT count(*) AS n FROM t") == [{"n": 1}]
        assert runs == [1]
        monkeypatch.undo()
        assert db.read("SELECT count(*) AS n FROM t") == [{"n": 2}]


def _insert(space: sc.Space, db: sc.SqliteDb) -> None:
    with space.transact():
        db.exec("INSERT INTO t (v) VALUES (2)")
