"""R71, R72: a database file found behind its space by a write of a runtime that had already
reconciled it (another process was killed between the space's and the file's COMMIT) is never
written over: the write is refused as a conflict, the file is repaired before its next use, and
a handler's next try commits."""

from __future__ import annotations

from pathlib import Path

import apsw
import pytest

import sqlite_cells as sc

from .conftest import MESSAGES


def _lose_the_last_commit(path: Path, seq: int, body: str) -> None:
    """The file as a process killed between the two COMMITs leaves it: without commit ``seq``."""
    conn = apsw.Connection(str(path))
    conn.execute("DELETE FROM messages WHERE body = ?", (body,))
    conn.execute("DELETE FROM _cf_changes WHERE seq = ?", (seq,))
    conn.close()


def test_a_write_over_a_file_behind_its_space_is_refused_then_repaired(store: Path) -> None:
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("chat", tables=MESSAGES)
        with space.transact():
            db.exec("INSERT INTO messages (body) VALUES ('a')")
        with space.transact():
            db.exec("INSERT INTO messages (body) VALUES ('b')")
        _lose_the_last_commit(db.declaration.path, 2, "b")
        with (
            pytest.raises(sc.ConflictError, match="its space last wrote it at seq 2"),
            space.transact(),
        ):
            db.exec("INSERT INTO messages (body) VALUES ('c')")
        assert db.rev == 2  # nothing of the refused write

        @sc.handler
        def post() -> None:
            db.exec("INSERT INTO messages (body) VALUES ('c')")

        post()  # its first try repairs the file (R71) and commits
        rows = db.read("SELECT body FROM messages ORDER BY id")
        assert rows == [{"body": "a"}, {"body": "b"}, {"body": "c"}]
    with sc.Runtime(store) as rt:
        db = rt.space("demo").sqlite_database("chat", tables=MESSAGES)
        assert db.read("SELECT count(*) AS n FROM messages") == [{"n": 3}]
