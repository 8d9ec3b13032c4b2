"""R44: limits hold on every path. Declaring a database computes each column default once
(every read of a file written before the column was declared computes it), on a connection
of its own. A constant default of one long builtin call — `instr` of an 8,000-character needle
in 40 MB — held the declaring thread 12 s, where no progress handler and no Ctrl-C reach; it is
computed as a write's long calls are, and refused past its deadline."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import sqlite_cells as sc
from sqlite_cells.schema import _schema

SLOW = "integer default (instr(printf('%.*c', 40000000, 'a'), printf('%.*c', 8000, 'a') || 'b'))"


def test_a_default_slow_to_compute_is_refused_at_its_deadline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_schema, "DEFAULT_SECONDS", 0.3)
    with sc.Runtime(tmp_path) as rt:
        space = rt.space("s")
        started = time.monotonic()
        with pytest.raises(sc.SchemaError, match=r"takes SQLite longer than 0\.3s to compute"):
            space.sqlite_database("slow", tables={"t": sc.table(id="integer primary key", n=SLOW)})
        assert time.monotonic() - started < 3
        quick = "integer default (instr(printf('%.*c', 100, 'a'), 'ab'))"
        db = space.sqlite_database("quick", tables={"t": sc.table(n=quick, m="text")})
        with space.transact():
            db.exec("INSERT INTO t (m) VALUES ('x')")
        assert db.read("SELECT n, m FROM t") == [{"n": 0, "m": "x"}]
