"""A store a newer sqlite-cells wrote (R73, SPEC §6): every command refuses it, as the library
does, with one line naming both format versions and what to do, and writes nothing into it —
``check --repair`` repairs nothing and ``gc --yes`` removes nothing."""

from __future__ import annotations

import hashlib
from pathlib import Path

import apsw
import pytest

import sqlite_cells as sc
from sqlite_cells.cli._cli import main
from sqlite_cells.files import set_watermark
from sqlite_cells.runtime import FORMAT_VERSION

TABLES = {"events": sc.table(id="integer primary key", n="integer")}

COMMANDS = [
    ["inspect"],
    ["cells"],
    ["tables"],
    ["schema"],
    ["query", "demo", "events", "SELECT count(*) AS n FROM events"],
    ["check"],
    ["check", "--repair"],
    ["gc"],
    ["gc", "--yes"],
    ["link", "sqlite:/nonexistent/source.db", "demo", "of:x", "ref"],
]


def _store_another_version_wrote(store: Path, recorded: object) -> Path:
    """A store with work for ``check --repair`` (a database one commit behind) and ``gc --yes``
    (a file no handle names), whose space file records the format ``recorded``."""
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("events", tables=TABLES)
        for n in range(3):
            with space.transact():
                db.exec("INSERT INTO events (n) VALUES (?)", [n])
        db_path = db.path
    conn = apsw.Connection(str(db_path))
    conn.execute("DELETE FROM events WHERE n = 2")
    set_watermark(conn, 2)
    conn.close()
    (store / "cell-ffffffffffffffffffffffffffffffff.sqlite").write_bytes(b"")
    (space_file,) = store.glob("space-*.sqlite")
    conn = apsw.Connection(str(space_file))
    conn.execute("UPDATE _cf_meta SET value = ? WHERE key = 'format'", (recorded,))
    conn.close()
    return db_path


def _contents(store: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(store.iterdir())}


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c[:2]))
def test_every_command_refuses_a_newer_store_format(
    store: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    newer = FORMAT_VERSION + 1
    db_path = _store_another_version_wrote(store, newer)
    before = _contents(store)
    assert main([command[0], "--store", str(store), *command[1:]]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("sqlite-cells: StoreFormatError: ")
    assert f"store format {newer}, but this sqlite-cells reads format {FORMAT_VERSION}" in err
    assert "upgrade sqlite-cells" in err
    assert _contents(store) == before  # nothing repaired, removed or upgraded
    conn = apsw.Connection(str(db_path), flags=apsw.SQLITE_OPEN_READONLY)
    assert conn.execute("SELECT count(*) FROM events").fetchone() == (2,)
    conn.close()


@pytest.mark.parametrize("command", [["cells"], ["gc", "--yes"]], ids=["cells", "gc"])
def test_a_format_that_is_no_version_number_is_refused(
    store: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    _store_another_version_wrote(store, "three")
    before = _contents(store)
    assert main([command[0], str(store), *command[1:]]) == 1
    _, err = capsys.readouterr()
    assert err.startswith("sqlite-cells: StoreFormatError: ")
    assert "records format 'three', which is not a version number" in err
    assert _contents(store) == before


def test_the_library_refuses_the_same_store(store: Path) -> None:
    _store_another_version_wrote(store, FORMAT_VERSION + 1)
    with sc.Runtime(store) as rt, pytest.raises(sc.SqliteCellsError) as info:
        rt.space("demo")
    assert f"format {FORMAT_VERSION + 1}" in str(info.value)
