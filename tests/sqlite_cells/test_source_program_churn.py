"""R60, Errors: a source in WAL mode whose program opens, commits and closes it again and again
(making and removing its -wal and -shm each time). A read that met that — a -wal or -shm gone
that SQLite may not create, or pages read as they were checkpointed — was reported as the file
being damaged ("restore the file from a good copy") or unreadable ("let this user read it"),
although the file was sound. Such a read is made again; a file damaged for good is still said
so. The program's churn cannot be timed from a test, so its effect is injected: the read of the
file raises what SQLite raised there (the injection is the only thing not real here)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import apsw
import pytest

import sqlite_cells as sc
from sqlite_cells.read import _reader

SQL = "SELECT count(*) AS n FROM t"


def _wal_source(path: Path) -> Path:
    conn = apsw.Connection(str(path))
    conn.execute("PRAGMA journal_mode=WAL").fetchall()
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    conn.execute("INSERT INTO t (v) VALUES ('a'), ('b')")
    conn.close()  # (its -wal and -shm go with its last connection)
    return path


@pytest.fixture
def source(tmp_path: Path) -> Iterator[sc.SqliteDb]:
    with sc.Runtime(tmp_path / "store") as rt:
        yield rt.space("s").register_disk_source(str(_wal_source(tmp_path / "ref.db")))


def _failing(monkeypatch: pytest.MonkeyPatch, error: type[apsw.Error], times: int) -> list[Any]:
    """Make the first ``times`` reads of the file raise ``error``; returns the calls made."""
    real = _reader._read_file
    calls: list[Any] = []

    def read_file(pooled: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(pooled)
        if len(calls) <= times:
            raise error("as its program closed the file")
        return real(pooled, *args, **kwargs)

    monkeypatch.setattr(_reader, "_read_file", read_file)
    return calls


@pytest.mark.parametrize("error", [apsw.CorruptError, apsw.CantOpenError])
def test_a_read_that_met_its_program_closing_the_file_is_made_again(
    source: sc.SqliteDb, monkeypatch: pytest.MonkeyPatch, error: type[apsw.Error]
) -> None:
    calls = _failing(monkeypatch, error, 1)
    assert source.read(SQL) == [{"n": 2}]
    assert len(calls) == 2
    assert calls[0] is not calls[1]  # on a new connection: the first may hold torn pages


def test_a_source_damaged_for_good_is_still_said_damaged(
    source: sc.SqliteDb, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _failing(monkeypatch, apsw.CorruptError, 100)
    with pytest.raises(sc.QueryError, match=r"is damaged .*restore the file from a good copy"):
        source.read(SQL)
    assert len(calls) == len(_reader._TORN_PAUSES)  # each try, then what the last one met
