"""R71 with R13: a database file rebuilt or caught up from its space's log gets its rows in the
columns they were written to. Changesets name columns by position; a column declared since
between two others stands last in the file (``ADD COLUMN`` and the rebuild append), so a table
the replay creates must take each commit's own declaration, in order, not today's."""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path

import apsw
import pytest

import sqlite_cells as sc
import sqlite_cells.files._reconcile as reconcile_module

V1 = {"t": sc.table(a="text", n="integer")}
MIDDLE = {"t": sc.table(a="text", u="text", n="integer")}  # added by ADD COLUMN: last in the file
REBUILT = {  # added by a rebuild: last in the file too
    "t": sc.table(a="text", u="text unique", g="text as (a || '/' || n) stored", n="integer")
}
SWAPPED = {"t": sc.table(n="integer", a="text")}  # the same table, declared in another order


def _db(rt: sc.Runtime, tables: Mapping[str, sc.Table]) -> sc.SqliteDb:
    return rt.space("s").sqlite_database("db", tables=dict(tables))


def _rows(db: sc.SqliteDb) -> list[dict[str, object]]:
    return db.read("SELECT a, n, typeof(n) AS tn FROM t ORDER BY rowid")


def _written(store: Path, later: Mapping[str, sc.Table]) -> tuple[Path, list[dict[str, object]]]:
    with sc.Runtime(store) as rt:
        db = _db(rt, V1)
        with rt.space("s").transact():
            db.exec("INSERT INTO t (a, n) VALUES ('x', 1)")
    with sc.Runtime(store) as rt:
        db = _db(rt, later)
        with rt.space("s").transact():
            db.exec("INSERT INTO t (a, n) VALUES ('y', 2)")
        return db.path, _rows(db)


@pytest.mark.parametrize("later", [MIDDLE, REBUILT, SWAPPED], ids=["middle", "rebuilt", "swapped"])
def test_a_damaged_file_is_rebuilt_with_each_value_in_its_column(
    store: Path, later: Mapping[str, sc.Table]
) -> None:
    path, before = _written(store, later)
    assert before == [{"a": "x", "n": 1, "tn": "integer"}, {"a": "y", "n": 2, "tn": "integer"}]
    with open(path, "r+b") as f:
        f.write(b"not a database" * 10)
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    with sc.Runtime(store) as rt:
        db = _db(rt, later)
        assert _rows(db) == before
    raw = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        columns = [row[1] for row in raw.execute("PRAGMA table_xinfo(t)")]
    finally:
        raw.close()
    file_order = (
        ["a", "n"] if later is SWAPPED else ["a", "n", "u", *(["g"] if later is REBUILT else [])]
    )
    assert columns == file_order


def test_a_copy_from_before_the_table_is_caught_up_with_each_value_in_its_column(
    store: Path,
) -> None:
    first = {"t2": sc.table(b="text")}
    with sc.Runtime(store) as rt:
        db = _db(rt, first)
        with rt.space("s").transact():
            db.exec("INSERT INTO t2 (b) VALUES ('b')")
        path = db.path
    kept = store.parent / "kept.sqlite"
    shutil.copyfile(path, kept)  # closed: the file is whole, no -wal
    with sc.Runtime(store) as rt:
        db = _db(rt, {**first, **V1})
        with rt.space("s").transact():
            db.exec("INSERT INTO t (a, n) VALUES ('x', 1)")
    with sc.Runtime(store) as rt:
        db = _db(rt, {**first, **MIDDLE})
        with rt.space("s").transact():
            db.exec("INSERT INTO t (a, n, u) VALUES ('y', 2, 'U')")
    shutil.copyfile(kept, path)
    with sc.Runtime(store) as rt:
        db = _db(rt, {**first, **MIDDLE})
        assert db.read("SELECT a, u, n FROM t ORDER BY rowid") == [
            {"a": "x", "u": None, "n": 1},
            {"a": "y", "u": "U", "n": 2},
        ]
    raw = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        assert raw.execute("SELECT * FROM t ORDER BY rowid").fetchall() == [
            ("x", 1, None),
            ("y", 2, "U"),
        ]
    finally:
        raw.close()


def test_a_replay_diffs_a_declaration_once_not_once_a_commit(
    store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Most commits repeat the declaration before them: the replay diffs the file against a
    declaration when it changes, not at each commit (500 commits of a 40-table database held
    the space's write lock 11 s)."""
    with sc.Runtime(store) as rt:
        db = _db(rt, V1)
        for i in range(30):
            with rt.space("s").transact():
                db.exec("INSERT INTO t (a, n) VALUES ('x', ?)", [i])
        db = _db(rt, MIDDLE)
        for i in range(30):
            with rt.space("s").transact():
                db.exec("INSERT INTO t (a, n, u) VALUES ('y', ?, 'U')", [i])
        path = db.path
        before = db.read("SELECT a, u, n FROM t ORDER BY rowid")
    Path(path).unlink()
    diffs: list[object] = []
    made = reconcile_module.add_missing

    def counted(*args: object, **kwargs: object) -> object:
        diffs.append(args[2])
        return made(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(reconcile_module, "add_missing", counted)
    with sc.Runtime(store) as rt:
        db = _db(rt, MIDDLE)
        assert db.read("SELECT a, u, n FROM t ORDER BY rowid") == before
    assert len(diffs) == 3  # V1, MIDDLE, then the declaration of now
