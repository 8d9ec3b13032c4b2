"""Rows of a space's commit log and op index that another program wrote (Errors): never a raw
decoding or conversion error to a caller, a runtime or the command line."""

from __future__ import annotations

from pathlib import Path

import apsw
import pytest

import sqlite_cells as sc

from ..conftest import run_cli
from .conftest import MESSAGES


def _store(store: Path) -> Path:
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("chat", tables=MESSAGES)
        with space.transact():
            db.exec("INSERT INTO messages (body) VALUES ('one')")
            space.cell("c").set(1)
    (space_file,) = store.glob("space-*.sqlite")
    return space_file


@pytest.mark.parametrize(
    "record",
    ["[4, [], []]", b"not json", b'{"a": 1}', 5],
    ids=["text", "not-json", "not-a-record", "number"],
)
def test_a_foreign_log_record_is_an_encoding_error(store: Path, record: object) -> None:
    """A runtime that is open when another program appends the record reads it at its next
    commit (a runtime opened after it starts past it)."""
    space_file = _store(store)
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        assert space.cell("c").get() == 1
        conn = apsw.Connection(str(space_file))
        conn.execute("INSERT INTO _cf_log (seq, record) VALUES (4, ?)", (record,))
        conn.close()
        if isinstance(record, str):  # JSON stored as text reads as that JSON
            with space.transact():
                space.cell("c").set(2)
            assert space.cell("c").get() == 2
            return
        with (
            pytest.raises(sc.SqliteCellsError, match="a record of a space's commit log cannot"),
            space.transact(),
        ):
            space.cell("c").set(2)
        assert space.cell("c").get() == 1
    for command in ("inspect", "check"):
        done = run_cli(command, "--store", str(store))
        assert "internal error" not in done.stderr, done.stderr


def test_an_op_index_seq_that_is_not_an_integer_is_an_encoding_error(store: Path) -> None:
    space_file = _store(store)
    conn = apsw.Connection(str(space_file))
    conn.execute("UPDATE _cf_op_index SET seq = 'x'")
    conn.close()
    with sc.Runtime(store) as rt:
        db = rt.space("demo").sqlite_database("chat", tables=MESSAGES)
        with pytest.raises(sc.SqliteCellsError, match="'x', not an integer"):
            db.read("SELECT count(*) AS n FROM messages")
    done = run_cli("query", "--store", str(store), "demo", "chat", "SELECT 1 AS one")
    assert done.returncode == 1 and "internal error" not in done.stderr, done.stderr
