from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import apsw
import pytest

import sqlite_cells as sc
from sqlite_cells._runtime import Space
from sqlite_cells.files import set_watermark
from sqlite_cells.write._calls import running

MESSAGES = {
    "messages": sc.table(
        id="integer primary key",
        author_cf_link=sc.cf_link(),
        body="text not null",
        ts="integer not null default 0",
        indexes={"by_ts": ["ts"]},
    ),
}


@pytest.fixture
def quiet_helpers() -> Iterator[None]:
    """Let the long SQL calls a test abandoned finish before the next test runs."""
    yield
    while running():
        time.sleep(0.02)


@pytest.fixture
def space(rt: sc.Runtime) -> Space:
    return rt.space("demo")


@pytest.fixture
def db(space: Space) -> sc.SqliteDb:
    return space.sqlite_database("chat", tables=MESSAGES)


def undo_last_commits_in_file(path: Path, keep_seq: int) -> None:
    """Make the database file lose its newest commits, as a crash between the two files'
    commits would: invert its own journal past ``keep_seq``."""
    conn = apsw.Connection(str(path))
    conn.execute("BEGIN")
    for _, cs in conn.execute(
        "SELECT seq, changeset FROM _cf_changes WHERE seq > ? ORDER BY seq DESC, rowid DESC",
        (keep_seq,),
    ).fetchall():
        apsw.Changeset.apply(apsw.Changeset.invert(cs), conn)
    set_watermark(conn, keep_seq)
    conn.execute("COMMIT")
    conn.close()
