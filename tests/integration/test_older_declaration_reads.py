"""A runtime whose declaration is older than the file's stored version (another process
migrated it, R14) reads the file as it is: no shadow makes up what the newer declaration
renamed or dropped, and a query naming it fails saying both versions (R41)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import sqlite_cells as sc

ROOT = Path(__file__).resolve().parents[2]
P = "integer primary key"
V1 = {"t": sc.table(id=P, a="text"), "gone": sc.table(id=P)}

NEWER = """
import sys
import sqlite_cells as sc

def migrate(conn, from_version):
    conn.execute("ALTER TABLE t RENAME COLUMN a TO b")
    conn.execute("DROP TABLE gone")

with sc.Runtime(sys.argv[1]) as rt:
    space = rt.space("demo")
    tables = {"t": sc.table(id="integer primary key", b="text")}
    db = space.sqlite_database("app", tables=tables, version=2, migrate=migrate)
    with space.transact():
        db.exec("INSERT INTO t (b) VALUES ('two')")
print("migrated")
"""


def _migrate_in_another_process(store: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(NEWER), str(store)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.stdout.strip() == "migrated", done.stderr


def _assert_names_both_versions(error: BaseException | None) -> None:
    assert isinstance(error, sc.QueryError), repr(error)
    assert "version 2, newer than the declared version=1" in str(error)
    assert "update the declaration" in str(error)


def test_an_older_declaration_reads_the_newer_file_as_it_is(rt: sc.Runtime, store: Path) -> None:
    space = rt.space("demo")
    db = space.sqlite_database("app", tables=V1)
    with space.transact():
        db.exec("INSERT INTO t (a) VALUES ('one')")
    live = db.query("SELECT a FROM t ORDER BY id")
    rt.settle(30)
    assert live.get().result == [{"a": "one"}]

    _migrate_in_another_process(store)

    with pytest.raises(sc.QueryError) as info:
        db.read("SELECT a FROM t ORDER BY id")
    _assert_names_both_versions(info.value)
    with pytest.raises(sc.QueryError) as info:
        db.read("SELECT count(*) AS n FROM gone")
    _assert_names_both_versions(info.value)
    # What the file holds reads as it is, under the names it has now.
    assert db.read("SELECT * FROM t ORDER BY id") == [
        {"id": 1, "b": "one"},
        {"id": 2, "b": "two"},
    ]
    # A live query made afresh on the older declaration carries the same error.
    again = db.query("SELECT a FROM t ORDER BY id")
    rt.settle(30)
    state = again.get()
    assert state.result is None
    _assert_names_both_versions(state.error)
    # Its writes are refused as before.
    with (
        pytest.raises(sc.UnsupportedMigration, match="newer than the declared"),
        space.transact(),
    ):
        db.exec("INSERT INTO t (a) VALUES ('three')")
