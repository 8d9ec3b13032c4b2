"""A commit another program made, whose record carries an op body or a changeset the runtime
cannot read (R51, Errors): the live queries of its database all re-run — what changed is not
known, so everything did — and nothing fails on the scheduler thread. (Before: an op body that
did not decode, or a second op's changeset SQLite could not combine, failed the commit's hook
with a traceback in the log, and no query re-ran; a changeset naming a table the file does not
have, or a table header with no change after it, read as "nothing changed here".)"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any

import apsw
import pytest

import sqlite_cells as sc

TABLES = {
    "t": sc.table(id="integer primary key", v="integer"),
    "u": sc.table(id="integer primary key", x="integer"),
}
QUERIES = ("SELECT v FROM t ORDER BY id", "SELECT x FROM u ORDER BY id")


def _record_hash(data: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big", signed=True)


def _foreign_commit(space_file: Path, db: sc.SqliteDb, damage: str) -> int:
    """Another program's commit: it updates both tables of the database file (with the file's
    journal row and watermark), appends its record, indexes its ops and bumps the handle, as
    the runtime would — but the record's ops carry what ``damage`` says."""
    conn = apsw.Connection(str(space_file))
    conn.setbusytimeout(5_000)
    conn.execute("ATTACH ? AS x", (str(db.path),))
    conn.execute("BEGIN IMMEDIATE")
    ((seq, previous),) = conn.execute("SELECT seq, record FROM _cf_log ORDER BY seq DESC LIMIT 1")
    seq += 1
    session = apsw.Session(conn, "x")
    session.attach()
    conn.execute("UPDATE x.t SET v = v + 10")
    conn.execute("UPDATE x.u SET x = x + 1")
    real = session.changeset()
    session.close()
    conn.execute(
        "INSERT INTO x._cf_changes (seq, changeset, head) VALUES (?, ?, ?)",
        (seq, real, _record_hash(bytes(previous))),
    )
    record = json.loads(bytes(previous))
    ((handle_id, handle),) = record[1]
    handle["rev"] += 1
    body = {k: v for k, v in record[2][0][2].items() if k != "from_version"}
    body["sql"] = "UPDATE t SET v = v + 10"

    def op(changeset: bytes | str | int) -> list[Any]:
        shown = base64.b64encode(changeset).decode() if isinstance(changeset, bytes) else changeset
        return ["sqlite", db.id, {**body, "changeset": shown}]

    ops = {
        "not-base64": [op("!!not base64!!")],
        "not-bytes": [op(42)],
        "second-op-garbage": [op(real), op(b"\x01" * 40)],
        "table-renamed": [op(real.replace(b"t\x00", b"q\x00", 1))],
        "header-only": [op(real[: real.index(b"t\x00") + 2])],
    }[damage]
    data = json.dumps([seq, [[handle_id, handle]], ops], separators=(",", ":")).encode()
    conn.execute("INSERT INTO _cf_log (seq, record) VALUES (?, ?)", (seq, data))
    conn.execute("INSERT INTO _cf_op_index (target, seq) VALUES (?, ?)", (db.id, seq))
    conn.execute(
        "UPDATE _cf_cells SET value = ?, rev = ? WHERE id = ?",
        (json.dumps(handle, separators=(",", ":")).encode(), seq, handle_id),
    )
    conn.execute("COMMIT")
    conn.close()
    return int(seq)


@pytest.mark.parametrize(
    "damage", ["not-base64", "not-bytes", "second-op-garbage", "table-renamed", "header-only"]
)
def test_a_foreign_commit_whose_changes_cannot_be_read_reruns_every_query_of_its_database(
    store: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    with sc.Runtime(store, poll_interval=0.01) as rt:
        space = rt.space("s")
        db = space.sqlite_database("d", tables=TABLES)
        with space.transact():
            db.exec_many("INSERT INTO t (id, v) VALUES (?, ?)", [[1, 1], [2, 2]])
            db.exec("INSERT INTO u (id, x) VALUES (1, 1)")
        queries = [db.query(sql) for sql in QUERIES]
        assert rt.settle(10)
        (space_file,) = store.glob("space-*.sqlite")
        with caplog.at_level(logging.ERROR, logger="sqlite_cells"):
            seq = _foreign_commit(space_file, db, damage)
            deadline = time.monotonic() + 10
            while any(q.get().seq != seq for q in queries) and time.monotonic() < deadline:
                rt.settle(1)
                time.sleep(0.01)
        for q, sql in zip(queries, QUERIES, strict=True):
            state = q.get()
            assert (state.seq, state.error) == (seq, None), (damage, sql, state)
            assert state.result == db.read(sql)
        assert queries[0].get().result == [{"v": 11}, {"v": 12}]
        assert queries[1].get().result == [{"x": 2}]
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
