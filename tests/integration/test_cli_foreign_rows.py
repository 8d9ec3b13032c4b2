"""Rows another program wrote into a space file (a cell value that is a number or text, a
handle row whose revision is not an integer) never make a command fail with an internal error
(SPEC Errors, §6): listed as what they are, and a database whose handle row a runtime would
quarantine is refused by `query` as the library refuses it (R5)."""

from __future__ import annotations

import json
from pathlib import Path

import apsw

import sqlite_cells as sc

from ..conftest import run_cli


def _store_with_foreign_rows(store: Path) -> tuple[str, str, str]:
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        chat = space.sqlite_database("chat", tables={"t": sc.table(body="text")})
        other = space.sqlite_database("other", tables={"t": sc.table(body="text")})
        number, text = space.cell("number"), space.cell("text")
        with space.transact():
            chat.exec("INSERT INTO t (body) VALUES ('one')")
            number.set(1)
            text.set({"a": 1})
        with space.transact():
            other.exec("INSERT INTO t (body) VALUES ('two')")
        ids = (other.id, number.id, text.id)
    (space_file,) = store.glob("space-*.sqlite")
    conn = apsw.Connection(str(space_file))
    conn.execute("UPDATE _cf_cells SET value = ? WHERE id = ?", (10**15, ids[1]))
    conn.execute("UPDATE _cf_cells SET value = CAST(value AS TEXT) WHERE id = ?", (ids[2],))
    conn.execute("UPDATE _cf_cells SET rev = 'x' WHERE id = ?", (ids[0],))
    conn.close()
    return ids


def test_commands_list_foreign_rows_without_an_internal_error(store: Path) -> None:
    other, number, text = _store_with_foreign_rows(store)
    for command in ("inspect", "cells", "tables", "check", "gc"):
        done = run_cli(command, "--store", str(store))
        assert "internal error" not in done.stderr, (command, done.stderr)
        assert done.returncode in (0, 1), (command, done.returncode)
    done = run_cli("cells", "--store", str(store), "--json")
    assert done.returncode == 0, done.stderr
    shown = {row["id"]: row for row in json.loads(done.stdout)}
    assert shown[number]["value"] == "<a stored int, not a JSON value>"
    assert shown[text]["value"] == {"a": 1}  # JSON stored as text reads as that JSON
    assert shown[other]["rev"] == -1
    done = run_cli("query", "--store", str(store), "demo", "chat", "SELECT body FROM t", "--json")
    assert done.returncode == 0, done.stderr
    done = run_cli("query", "--store", str(store), "demo", "other", "SELECT body FROM t")
    assert done.returncode == 1
    assert done.stderr.startswith("sqlite-cells: HandleQuarantined: database ")
    assert "has the revision 'x', which is not an integer" in done.stderr
    assert "two" not in done.stdout
