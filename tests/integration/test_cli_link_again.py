"""`link` run again for the same file writes nothing (SPEC §6, R60): no commit, and it says so;
when the file at that path was replaced, the one commit re-pins the handle and the output says
that is what was written."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import apsw

import sqlite_cells as sc

from ..conftest import run_cli


@sc.pattern
def lookup(ref: sc.SqliteDb, code: sc.Cell) -> Any:
    return ref.query("SELECT count(*) AS n FROM countries")


def _reference(path: Path) -> Path:
    conn = apsw.Connection(str(path))
    conn.execute("CREATE TABLE countries (code TEXT, name TEXT)")
    conn.execute("INSERT INTO countries VALUES ('FR', 'France')")
    conn.close()
    return path


def _piece(store: Path) -> str:
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        code = space.cell("code", default="FR")
        with space.transact():
            code.set("FR")
        return space.run(lookup, key="main", code=code).id


def _last_seq(store: Path) -> int:
    done = run_cli("inspect", "--store", str(store), "--json")
    (space,) = json.loads(done.stdout)["spaces"]
    return int(space["last_seq"])


def test_linking_the_same_file_again_makes_no_commit(store: Path, tmp_path: Path) -> None:
    piece = _piece(store)
    ref = _reference(tmp_path / "ref.db")
    args = ["link", f"sqlite:{ref}", "demo", piece, "ref", "--store", str(store)]
    assert run_cli(*args).returncode == 0
    before = _last_seq(store)
    again = run_cli(*args)
    assert again.returncode == 0, again.stderr
    assert "already linked to this file: nothing was written" in again.stdout
    assert _last_seq(store) == before
    data = json.loads(run_cli(*args, "--json").stdout)
    assert (data["written"], data["repinned"], data["replaced"]) == (False, False, None)
    assert _last_seq(store) == before


def test_linking_a_replaced_file_again_says_it_pins_the_new_file(
    store: Path, tmp_path: Path
) -> None:
    piece = _piece(store)
    ref = _reference(tmp_path / "ref.db")
    args = ["link", f"sqlite:{ref}", "demo", piece, "ref", "--store", str(store)]
    assert run_cli(*args).returncode == 0
    before = _last_seq(store)
    os.replace(_reference(tmp_path / "new.db"), ref)  # another file (inode) at the same path
    again = run_cli(*args)
    assert again.returncode == 0, again.stderr
    assert "the file there was replaced" in again.stdout
    assert "nothing" not in again.stdout
    assert _last_seq(store) == before + 1
    assert "nothing was written" in run_cli(*args).stdout
    assert _last_seq(store) == before + 1
