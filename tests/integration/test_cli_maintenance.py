"""``sqlite-cells check``, ``link`` and ``gc`` (SPEC §6, R60–R61, R71)."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import apsw
import pytest

import sqlite_cells as sc
from sqlite_cells.cli._cli import main
from sqlite_cells.cli._inspect import InspectError, find_space, query_store
from sqlite_cells.codec import derive_id
from sqlite_cells.files import DatabaseDropped, set_watermark
from sqlite_cells.schema import db_file_name

from ..conftest import run_cli, run_cli_limited

TABLES = {"events": sc.table(id="integer primary key", n="integer")}


def _store_with_writes(store: Path, count: int) -> sc.SqliteDb:
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("events", tables=TABLES)
        for n in range(count):
            with space.transact():
                db.exec("INSERT INTO events (n) VALUES (?)", [n])
        return db


def _lose_last_commit(path: Path) -> None:
    conn = apsw.Connection(str(path))
    (seq,) = conn.execute("SELECT max(seq) FROM _cf_changes").fetchone()
    for (cs,) in conn.execute("SELECT changeset FROM _cf_changes WHERE seq = ?", (seq,)).fetchall():
        apsw.Changeset.apply(apsw.Changeset.invert(cs), conn)
    set_watermark(conn, seq - 1)
    conn.close()


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().out


def test_check_reports_then_repairs(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = _store_with_writes(store, 3)
    code, out = _run(capsys, "check", str(store))
    assert code == 0 and "in sync" in out and "1 database(s) checked" in out
    _lose_last_commit(db.path)
    code, out = _run(capsys, "check", str(store), "--json")
    assert code == 1
    (found,) = json.loads(out)
    assert (found["watermark"], found["space_seq"], found["action"]) == (2, 3, "behind")
    code, out = _run(capsys, "check", str(store), "--repair")
    assert code == 0 and "replayed, 1 commit(s) applied" in out
    code, out = _run(capsys, "check", str(store))
    assert code == 0 and "in sync" in out
    conn = apsw.Connection(str(db.path), flags=apsw.SQLITE_OPEN_READONLY)
    assert conn.execute("SELECT count(*) FROM events").fetchone() == (3,)


@pytest.mark.parametrize("fmt", ["--json", "--ndjson", "--csv"])
def test_check_rows_say_the_space_and_name_of_each_database(store: Path, fmt: str) -> None:
    """§6: `check --json/--ndjson/--csv` rows carried the database's id and file but neither
    its space nor its name, which the text output and `inspect`'s rows give: two spaces each
    with a database `events` were told apart by opaque ids only. Each row now has `space` and
    `name` (inspect's field names; the name is null for a database the space records no name
    for, and both are for a file no space names)."""
    for name in ("alpha", "beta"):
        with sc.Runtime(store) as rt:
            space = rt.space(name)
            db = space.sqlite_database("events", tables=TABLES)
            with space.transact():
                db.exec("INSERT INTO events (n) VALUES (1)")
    done = run_cli("check", str(store), fmt)
    assert done.returncode == 0, done.stderr
    if fmt == "--csv":
        rows = list(csv.DictReader(io.StringIO(done.stdout)))
        assert list(rows[0])[:2] == ["space", "db"] and list(rows[0])[-1] == "name"
    elif fmt == "--ndjson":
        rows = [json.loads(line) for line in done.stdout.splitlines()]
    else:
        rows = json.loads(done.stdout)
    ids = {sp: derive_id("sqlite", sp, "events") for sp in ("alpha", "beta")}
    assert sorted((r["space"], r["name"], r["db"]) for r in rows) == [
        ("alpha", "events", ids["alpha"]),
        ("beta", "events", ids["beta"]),
    ]


@pytest.mark.parametrize("fmt", ["text", "--json", "--ndjson", "--csv"])
def test_gc_rows_say_the_space_and_name_of_each_database(store: Path, fmt: str) -> None:
    """§6: `gc` named each file it lists only by its hashed file name: two spaces each with a
    dropped database `events` gave rows told apart by nothing a user knows. Its rows now say
    the space and name, as `check`'s rows do (the same field names; the CSV puts `space` first
    and `name` last; null for a file no space names), and its text says whose each file is."""
    for name in ("alpha", "beta"):
        with sc.Runtime(store) as rt:
            space = rt.space(name)
            db = space.sqlite_database("events", tables=TABLES)
            with space.transact():
                db.exec("INSERT INTO events (n) VALUES (1)")
            with space.transact():
                db.drop()
    stray = store / "cell-ffffffffffffffffffffffffffffffff.sqlite"
    stray.write_bytes(b"")
    files = {
        sp: store / db_file_name(derive_id("sqlite", sp, "events")) for sp in ("alpha", "beta")
    }
    done = run_cli("gc", str(store), *([] if fmt == "text" else [fmt]))
    assert done.returncode == 0, done.stderr
    listed: list[tuple[str | None, str, str | None]] = [
        (space, path.name, "events") for space, path in files.items()
    ]
    expected = sorted([*listed, (None, stray.name, None)], key=lambda row: row[1])
    if fmt == "text":
        shown = {None: ""} | {sp: f" (database 'events' of space {sp!r})" for sp in files}
        assert done.stdout.splitlines()[:3] == [
            f"would remove {file}{shown[space]}" for space, file, _ in expected
        ]
        return
    if fmt == "--json":
        data = json.loads(done.stdout)
        assert data["files"] == [file for _, file, _ in expected]
        rows = data["databases"]
    elif fmt == "--csv":
        rows = list(csv.DictReader(io.StringIO(done.stdout)))
        assert list(rows[0]) == ["space", "file", "action", "why", "name"]
        rows = [{k: v or None for k, v in row.items()} for row in rows]  # (CSV: empty for null)
    else:
        rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(r["space"], r["file"], r["name"]) for r in rows] == expected
    assert all(p.exists() for p in (*files.values(), stray))


def test_check_of_a_missing_store_is_a_finding(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check", str(tmp_path / "nope")]) == 1
    assert "no store" in capsys.readouterr().err
    assert not (tmp_path / "nope").exists()


@sc.pattern
def count_rows(ref: sc.SqliteDb) -> Any:
    return ref.query("SELECT count(*) AS n FROM things")


def test_link_wires_a_file_into_a_piece(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reference = tmp_path / "things.db"
    conn = apsw.Connection(str(reference))
    conn.execute("CREATE TABLE things (x)")
    conn.execute("INSERT INTO things VALUES (1), (2)")
    conn.close()
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        piece = space.run(count_rows, key="k")
        rt.settle()
        assert piece.outputs.get().pending is True
    code, out = _run(
        capsys, "link", f"sqlite:{reference}", "demo", piece.id, "ref", "--store", str(store)
    )
    assert code == 0 and "linked" in out
    with sc.Runtime(store) as rt:
        piece = rt.space("demo").run(count_rows, key="k")
        rt.settle()
        assert piece.outputs.get().result == [{"n": 2}]


def test_query_takes_the_name_cells_lists_for_a_linked_input(store: Path, tmp_path: Path) -> None:
    """§6: `cells` lists a piece (PATTERN/KEY) and its inputs (PATTERN/KEY.INPUT); `query`
    given such a name hashed it as a top-level database's and said "it was never written". An
    input linked to a database reads what it links to; a piece, or an input linked to none,
    is refused saying what the name names and which name to give instead."""
    reference = tmp_path / "things.db"
    conn = apsw.Connection(str(reference))
    conn.execute("CREATE TABLE things (x); INSERT INTO things VALUES (1), (2)")
    conn.close()
    with sc.Runtime(store) as rt:
        piece = rt.space("demo").run(count_rows, key="k")
        rt.settle()
    (name,) = [
        row["name"]
        for row in json.loads(run_cli("cells", str(store), "--json").stdout)
        if row["kind"] == "piece"
    ]
    ref = f"{name}.ref"  # (listed once it holds a value; an input given none holds nothing)
    sql = "SELECT count(*) AS n FROM things"
    done = run_cli("query", str(store), "demo", ref, sql)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr == (
        f"sqlite-cells: InspectError: {ref!r} names an input of space 'demo' "
        f"({derive_id('input', piece.id, 'ref')}) that links to no database (it holds nothing "
        "yet): give the name of an input that links to a database, or a database's name or id "
        "(`sqlite-cells cells` lists them with their kinds)\n"
    )
    done = run_cli("query", str(store), "demo", name, sql)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr == (
        f"sqlite-cells: InspectError: {name!r} names a piece of space 'demo' ({piece.id}), not "
        f"a database: `sqlite-cells link sqlite:/abs/path.db demo {name} FIELD` links a file to "
        "an input of it that holds nothing yet (a parameter typed sc.SqliteDb): 'ref'\n"
    )
    assert run_cli("link", str(store), f"sqlite:{reference}", "demo", name, "ref").returncode == 0
    listed = json.loads(run_cli("cells", str(store), "--json").stdout)
    assert [row["name"] for row in listed if row["kind"] == "input"] == [ref]
    done = run_cli("query", str(store), "demo", ref, sql, "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert (result["space"], result["file"], result["rows"]) == ("demo", "things.db", [{"n": 2}])
    done = run_cli("query", str(store), "demo", name, sql)
    assert done.returncode == 1 and done.stderr == (
        f"sqlite-cells: InspectError: {name!r} names a piece of space 'demo' ({piece.id}), not "
        f"a database: give the name of one of its inputs that links to a database: {ref!r}\n"
    )


@sc.pattern
def _own_database(seed: sc.Cell) -> sc.SqliteDb:
    return seed.space.sqlite_database(tables={"t": sc.table(x="text")})


@sc.pattern
def _two_inputs(src: sc.SqliteDb, gone: sc.SqliteDb) -> Any:
    return src.query("SELECT count(*) AS n FROM things")


def test_query_follows_a_pieces_inputs_as_a_runtime_does_and_says_what_a_piece_holds(
    store: Path,
) -> None:
    """§6: `query` by a piece's input or a piece (follows "`query` takes the name `cells`
    lists for a piece's input"). A piece that made its own database was refused with advice to
    `link` a file to an input that could take none; an input's id (as `cells` lists it) was
    refused where its name was taken; the advice listed an input linked to a dropped database
    and named that database by its id twice; an input linked to another piece's input, which
    a runtime follows to its database, was refused. Each now reads or says what works."""
    sql = "SELECT count(*) AS n FROM things"
    things = {"things": sc.table(x="integer")}
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("things", tables=things)
        old = space.sqlite_database("old", tables=things)
        with space.transact():
            db.exec("INSERT INTO things (x) VALUES (1), (2)")
        with space.transact():
            old.exec("INSERT INTO things (x) VALUES (1)")
        a = space.run(count_rows, key="a", ref=db)
        b = space.run(count_rows, key="b", ref=a.inputs["ref"])  # an input linked to an input
        c = space.run(count_rows, key="c")
        d = space.run(count_rows, key="d", ref=c.inputs["ref"])
        with space.transact():
            c.inputs["ref"].set(d.inputs["ref"])  # a cycle of links, which leads to no database
        two = space.run(_two_inputs, key="k", src=db, gone=old)
        own = space.run(_own_database, key="k", seed=space.cell("seed", default=1))
        made = own.outputs
        with space.transact():
            made.exec("INSERT INTO t (x) VALUES ('a')")
        rt.settle()
        assert b.outputs.get().result == [{"n": 2}]
        with space.transact():
            old.drop()
    listed = {
        row["name"]: row["id"] for row in json.loads(run_cli("cells", str(store), "--json").stdout)
    }
    named = {cell_id: name for name, cell_id in listed.items()}
    a_ref, b_ref = f"{named[a.id]}.ref", f"{named[b.id]}.ref"
    for given in (a_ref, b_ref, listed[b_ref]):
        done = run_cli("query", str(store), "demo", given, sql, "--json")
        assert done.returncode == 0, (given, done.stderr)
        assert json.loads(done.stdout)["rows"] == [{"n": 2}]
    done = run_cli("query", str(store), "demo", f"{named[c.id]}.ref", sql)
    assert (
        done.returncode == 1
        and "that links to no database (it holds a link to the cell " + (f"{named[d.id]}.ref)")
        in done.stderr
    )
    # A piece that made its own database: that database is named, and no `link` is advised
    # (its one input holds a link to a plain cell, which `link` refuses).
    piece = named[own.id]
    for given, where in ((piece, own.id), (own.id, piece)):
        done = run_cli("query", str(store), "demo", given, "SELECT x FROM t")
        assert done.returncode == 1 and done.stdout == ""
        assert done.stderr == (
            f"sqlite-cells: InspectError: {given!r} names a piece of space 'demo' ({where}), not "
            f"a database: give the id of a database it made: {made.id}\n"
        )
    done = run_cli("query", str(store), "demo", made.id, "SELECT x FROM t")
    assert done.returncode == 0 and done.stdout.startswith("x\n-\na\n"), done.stderr
    # An input linked to a dropped database is left out of the advice, and named by name.
    piece = named[two.id]
    done = run_cli("query", str(store), "demo", piece, sql)
    assert done.returncode == 1 and done.stderr == (
        f"sqlite-cells: InspectError: {piece!r} names a piece of space 'demo' ({two.id}), not "
        f"a database: give the name of one of its inputs that links to a database: "
        f"'{piece}.src'\n"
    )
    done = run_cli("query", str(store), "demo", f"{piece}.gone", sql)
    assert done.returncode == 1 and done.stderr == (
        f"sqlite-cells: InspectError: '{piece}.gone' names an input of space 'demo' "
        f"({derive_id('input', two.id, 'gone')}) that links to the database 'old' ({old.id}), "
        "which was dropped: it has no rows\n"
    )
    assert run_cli("query", str(store), "demo", "old", sql).stderr == (
        f"sqlite-cells: InspectError: database 'old' ({old.id}) was dropped: it has no rows\n"
    )
    assert run_cli("query", str(store), "demo", old.id, sql).stderr == (
        f"sqlite-cells: InspectError: database {old.id} was dropped: it has no rows\n"
    )


def test_link_takes_the_piece_name_cells_lists(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """§6: `cells` lists a piece by its name (PATTERN/KEY); `link` takes that name as PIECE as
    well as the piece's id, and a name no piece has is refused with the names there are,
    naming the space as other messages do (it named the space's file)."""
    reference = tmp_path / "things.db"
    conn = apsw.Connection(str(reference))
    conn.execute("CREATE TABLE things (x); INSERT INTO things VALUES (1)")
    conn.close()
    with sc.Runtime(store) as rt:
        piece = rt.space("demo").run(count_rows, key="k")
    assert main(["cells", str(store), "--json"]) == 0
    (listed,) = [row for row in json.loads(capsys.readouterr().out) if row["kind"] == "piece"]
    name = listed["name"]
    assert name.endswith("count_rows/k") and listed["id"] == piece.id
    code, out = _run(
        capsys, "link", f"sqlite:{reference}", "demo", name, "ref", "--store", str(store)
    )
    assert code == 0 and f"to ref of piece {piece.id}" in out
    with sc.Runtime(store) as rt:
        piece = rt.space("demo").run(count_rows, key="k")
        rt.settle()
        assert piece.outputs.get().result == [{"n": 1}]
    assert (
        main(["link", f"sqlite:{reference}", "demo", "nope/k", "ref", "--store", str(store)]) == 1
    )
    err = capsys.readouterr().err
    # (The space by its name, as every other message names it, not by its file's name.)
    assert "no piece 'nope/k' in space 'demo': give a piece's id" in err and repr(name) in err
    # A plain cell holding a piece record is no piece: not by name, not by its id.
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        fake = space.cell("fake")
        with space.transact():
            fake.set({"piece": name.rsplit("/", 1)[0], "key": "k", "inputs": ["ref"]})
    code, out = _run(
        capsys, "link", f"sqlite:{reference}", "demo", name, "ref", "--store", str(store)
    )
    assert code == 0 and f"of piece {piece.id}" in out
    assert main(["link", f"sqlite:{reference}", "demo", fake.id, "ref", "--store", str(store)]) == 1
    assert f"no piece {fake.id} in space 'demo': run the pattern once" in capsys.readouterr().err


def test_link_relinks_an_input_linked_to_an_unwritten_database_or_through_another_input(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An input linked to a database declared but not written yet (its handle cell holds
    nothing), or to another piece's database input, is a database input, as a runtime treats
    it: `link` re-links it and says what it replaced; `query` by the input's name says the
    database has no rows yet."""
    reference = tmp_path / "things.db"
    conn = apsw.Connection(str(reference))
    conn.execute("CREATE TABLE things (x); INSERT INTO things VALUES (1)")
    conn.close()
    with sc.Runtime(store) as rt:
        space = rt.space("s")
        declared = space.sqlite_database("d", tables={"things": sc.table(x="integer")})
        one = space.run(count_rows, key="one", ref=declared)
        two = space.run(count_rows, key="two", ref=one.inputs["ref"])
        rt.settle()
        assert two.outputs.get().result == [{"n": 0}]  # the runtime reads it as a database
    assert not (store / db_file_name(declared.id)).exists()
    one_ref = derive_id("input", one.id, "ref")
    code = main(["query", str(store), "s", one_ref, "SELECT x FROM things"])
    out, err = capsys.readouterr()
    assert code == 1 and out == ""
    assert f"links to the cell {declared.id}, which holds nothing yet" in err
    assert "has no rows yet" in err and "Traceback" not in err
    files = {p.name for p in store.iterdir()}
    code, out = _run(capsys, "link", f"sqlite:{reference}", "s", two.id, "ref", "--store",
                     str(store))  # fmt: skip
    assert code == 0, capsys.readouterr().err
    assert f"to ref of piece {two.id}" in out
    assert (
        f"it replaces the link to database cell, not written yet, through the input {one_ref} "
        f"({declared.id})"
    ) in out
    code, out = _run(capsys, "link", f"sqlite:{reference}", "s", one.id, "ref", "--store",
                     str(store), "--json")  # fmt: skip
    assert code == 0, capsys.readouterr().err
    report = json.loads(out)
    assert report["replaced"] == {"handle": declared.id, "file": "database cell, not written yet"}
    assert report["written"] is True
    assert {p.name for p in store.iterdir()} == files  # (no database file made)
    with sc.Runtime(store) as rt:
        space = rt.space("s")
        for key in ("one", "two"):
            piece = space.run(count_rows, key=key)
            rt.settle()
            assert piece.outputs.get().result == [{"n": 1}]


def test_link_and_query_name_an_input_linked_to_another_pieces_unlinked_input(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An input linked to another piece's database input that is not linked to a database
    yet (it holds nothing, as an unwritten database's cell does) is said as a runtime says it:
    `query` by the input and `link`'s report name that pattern input, not a database declared
    but not written."""
    reference = tmp_path / "things.db"
    conn = apsw.Connection(str(reference))
    conn.execute("CREATE TABLE things (x); INSERT INTO things VALUES (1)")
    conn.close()
    with sc.Runtime(store) as rt:
        space = rt.space("s")
        one = space.run(count_rows, key="one")
        two = space.run(count_rows, key="two", ref=one.inputs["ref"])
        rt.settle()
        state = two.outputs.get()  # nothing linked yet: pending, no error (R61)
        assert (state.pending, state.error) == (True, None)
    one_ref, two_ref = (derive_id("input", p.id, "ref") for p in (one, two))
    label = f"'{count_rows.name}/one.ref' ({one_ref})"
    files = {p.name: p.read_bytes() for p in store.iterdir()}
    code = main(["query", str(store), "s", two_ref, "SELECT x FROM things"])
    out, err = capsys.readouterr()
    assert code == 1 and out == "", err
    assert f"links to pattern input {label}, which is not linked to a database yet" in err
    assert "sqlite-cells link sqlite:/abs/path.db s PIECE FIELD" in err
    assert "not written" not in err and "Traceback" not in err
    assert {p.name: p.read_bytes() for p in store.iterdir()} == files
    code, out = _run(capsys, "link", f"sqlite:{reference}", "s", two.id, "ref", "--store",
                     str(store), "--json")  # fmt: skip
    assert code == 0, capsys.readouterr().err
    report = json.loads(out)
    assert report["replaced"] == {
        "handle": one_ref,
        "file": f"pattern input '{count_rows.name}/one.ref', not linked to a database yet",
    }
    with sc.Runtime(store) as rt:
        piece = rt.space("s").run(count_rows, key="two")
        rt.settle()
        assert piece.outputs.get().result == [{"n": 1}]


def test_link_refuses_bad_urls_and_paths(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _store_with_writes(store, 1)  # the space exists
    assert main(["link", "/no/scheme.db", "demo", "of:x", "ref", "--store", str(store)]) == 2
    assert "sqlite:" in capsys.readouterr().err
    assert main(["link", "sqlite:relative.db", "demo", "of:x", "ref", "--store", str(store)]) == 1
    assert "DiskSourceError" in capsys.readouterr().err


def test_gc_lists_then_removes_only_with_yes(
    store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = _store_with_writes(store, 1)
    stray = store / "cell-ffffffffffffffffffffffffffffffff.sqlite"
    stray.write_bytes(b"")
    # R74: asked once, gc only lists.
    code, out = _run(capsys, "gc", str(store))
    assert code == 0 and "would remove cell-ffffffffffffffffffffffffffffffff.sqlite" in out
    assert "run again with --yes" in out
    code, out = _run(capsys, "gc", str(store), "--ndjson")
    assert code == 0 and json.loads(out.splitlines()[0]) == {
        "space": None,  # (no space names the file)
        "file": stray.name,
        "action": "would remove",
        "why": "no space names it, and it holds no commit",
        "name": None,
    }
    assert stray.exists() and db.path.exists()
    code, out = _run(capsys, "gc", "--store", str(store), "--json")
    assert code == 0
    unnamed = [{"space": None, "file": stray.name, "name": None}]
    assert json.loads(out) == {"removed": False, "files": [stray.name], "databases": unnamed}
    assert stray.exists()
    # Asked twice, it removes what it listed and nothing else.
    code, out = _run(capsys, "gc", str(store), "--yes", "--json")
    assert code == 0
    assert json.loads(out) == {"removed": True, "files": [stray.name], "databases": unnamed}
    assert db.path.exists() and not stray.exists()
    code, out = _run(capsys, "gc", str(store), "--yes")
    assert code == 0 and "0 file(s) removed" in out


@sc.pattern
def _database_in_the_targets_space(target: sc.Cell) -> sc.SqliteDb:
    return target.space.sqlite_database(tables={"t": sc.table(x="integer")})


def test_a_drop_in_one_space_never_gives_up_a_file_another_space_names(
    store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """R74: a pattern's database id comes from its piece, whatever space it is declared in, so
    two spaces may hold one id (run by two runtimes: one refuses it). A drop in one space gave
    the file up though the other space's handle was never dropped: `gc --yes` removed the other
    space's rows. A file is given up only when no space names it with a handle it did not
    drop."""
    with sc.Runtime(store) as first:
        a = first.space("A")
        db = a.run(_database_in_the_targets_space, key="k", target=a.cell("t")).outputs
        with a.transact():
            db.exec("INSERT INTO t (x) VALUES (1)")
        path = db.path
    with sc.Runtime(store) as second:
        a, b = second.space("A"), second.space("B")
        other = a.run(_database_in_the_targets_space, key="k", target=b.cell("t")).outputs
        assert other.space.id == "B" and other.path == path
        with b.transact():
            other.drop()
    code, out = _run(capsys, "gc", str(store), "--yes", "--json")
    assert (code, json.loads(out)) == (0, {"removed": True, "files": [], "databases": []})
    assert path.exists()
    with sc.Runtime(store) as third:
        a = third.space("A")
        db = a.run(_database_in_the_targets_space, key="k", target=a.cell("t")).outputs
        assert db.read("SELECT x FROM t") == [{"x": 1}]


def test_a_drop_gives_up_no_file_while_a_space_file_is_damaged(
    store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """R74: as above, but space A's file is damaged when gc runs: A's names cannot be read,
    and B's drop was taken for the only word — `gc --yes` removed A's rows. While a space file
    is damaged, no file is given up (it may name any)."""
    with sc.Runtime(store) as first:
        a = first.space("A")
        for i in range(30):  # pages enough for one in the middle to be damaged
            with a.transact():
                a.cell(f"pad{i}").set("p" * 3000)
        db = a.run(_database_in_the_targets_space, key="k", target=a.cell("t")).outputs
        with a.transact():
            db.exec("INSERT INTO t (x) VALUES (1)")
        space_a, path = a.file.path, db.path
    with sc.Runtime(store) as second:
        b = second.space("B")
        other = (
            second.space("A")
            .run(_database_in_the_targets_space, key="k", target=b.cell("t"))
            .outputs
        )
        with b.transact():
            other.drop()
    with space_a.open("r+b") as f:
        f.seek(4096 * 10)
        f.write(b"\x00" * 4096)
    code, out = _run(capsys, "gc", str(store), "--yes", "--json")
    assert code == 1
    report = json.loads(out)
    assert report["files"] == [] and [d["file"] for d in report["damaged_space_files"]] == [
        space_a.name
    ]
    assert path.exists()


@pytest.mark.parametrize("which", ["piece", "field"])
def test_link_to_a_piece_or_field_that_does_not_exist_creates_nothing(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], which: str
) -> None:
    reference = tmp_path / "things.db"
    conn = apsw.Connection(str(reference))
    conn.execute("CREATE TABLE things (x)")
    conn.close()
    with sc.Runtime(store) as rt:
        piece = rt.space("demo").run(count_rows, key="k")
        rt.settle()
    piece_id = piece.id if which == "field" else "of:" + "a" * 52
    field = "nope" if which == "field" else "ref"
    files = sorted(p.name for p in store.iterdir())
    space_file = next(store.glob("space-*.sqlite"))
    log = apsw.Connection(str(space_file)).execute("SELECT count(*) FROM _cf_log").fetchall()
    code, _out = _run(
        capsys, "link", f"sqlite:{reference}", "demo", piece_id, field, "--store", str(store)
    )
    assert code == 1
    assert sorted(p.name for p in store.iterdir()) == files
    after = apsw.Connection(str(space_file)).execute("SELECT count(*) FROM _cf_log").fetchall()
    assert after == log


@sc.pattern
def noted_rows(café: sc.SqliteDb) -> Any:  # Python stores the name in NFKC form: 'caf\xe9'
    return None


def test_link_to_a_field_named_in_another_unicode_form_says_so(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """§6, R1: a FIELD typed with other Unicode code points than the parameter (as a shell or
    a file system may give it, decomposed) is refused, and the refusal says so: it listed the
    name it refused among the inputs, looking the same."""
    reference = tmp_path / "things.db"
    conn = apsw.Connection(str(reference))
    conn.execute("CREATE TABLE things (x)")
    conn.close()
    with sc.Runtime(store) as rt:
        piece = rt.space("demo").run(noted_rows, key="k")
    files = sorted(p.name for p in store.iterdir())
    code = main(
        ["link", f"sqlite:{reference}", "demo", piece.id, "cafe\u0301", "--store", str(store)]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert "'cafe\\u0301' is the input 'caf\\xe9' written with other Unicode code points" in err
    assert sorted(p.name for p in store.iterdir()) == files


def _one_row(tmp_path: Path) -> tuple[Path, Path]:
    """A store whose space ``s`` wrote one row to database ``x``: (store, database file)."""
    store = tmp_path / "store"
    with sc.Runtime(store) as rt:
        space = rt.space("s")
        db = space.sqlite_database("x", tables={"t": sc.table(v="integer")})
        with space.transact():
            db.exec("INSERT INTO t (v) VALUES (1)")
        return store, db.path


def _wal_bytes(tmp_path: Path) -> bytes:
    """The bytes of a real -wal holding one committed row (read while its connection is open:
    closing it checkpoints and deletes the -wal)."""
    conn = apsw.Connection(str(tmp_path / "scratch.db"))
    conn.execute("PRAGMA journal_mode = wal").fetchall()
    conn.wal_autocheckpoint(0)
    conn.execute("CREATE TABLE t (v); INSERT INTO t VALUES ('keep me')")
    data = (tmp_path / "scratch.db-wal").read_bytes()
    conn.close()
    return data


def test_a_wal_shm_or_journal_without_its_database_file_is_listed_and_kept(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """R74, §6: a -wal (which may hold a database's last commits), -shm or -journal left in the
    store with no database file beside it was listed by neither gc nor inspect, and stayed for
    ever. Both list it now, with what to do; gc keeps it (it cannot tell it is unused), with
    --yes too, and inspect counts it as a finding (exit 1)."""
    store, live = _one_row(tmp_path)
    wal = _wal_bytes(tmp_path)
    moved = tmp_path / "moved.sqlite"
    os.replace(live, moved)  # a live database's file moved away without its -wal
    leftovers = {
        Path(f"{live}-wal"): wal,
        store / ("cell-" + "4" * 32 + ".sqlite-wal"): wal,  # no space names this one
        store / ("cell-" + "5" * 32 + ".sqlite-shm"): b"\0" * 64,
        store / ("cell-" + "6" * 32 + ".sqlite-journal"): b"\0" * 64,
    }
    for path, data in leftovers.items():
        path.write_bytes(data)
    before = {p.name: p.read_bytes() for p in store.iterdir() if p.is_file()}
    for argv in (["gc", str(store)], ["gc", str(store), "--yes"]):
        assert main([*argv, "--json"]) == 0
        said = json.loads(capsys.readouterr().out)
        assert said["files"] == []
        kept = {entry["file"]: entry["why"] for entry in said["kept"]}
        assert sorted(kept) == sorted(p.name for p in leftovers)
        for name, why in kept.items():
            assert why.startswith(f"leftover file {name}: ")
            assert "with no database file" in why and "gc never removes it" in why
            assert f"put it back as {name.rsplit('-', 1)[0]}" in why
        assert "may hold the last commits" in kept[live.name + "-wal"]
        assert "-wal" in kept[live.name + "-wal"] and "move" in kept[live.name + "-wal"]
        assert "holds no rows" in kept["cell-" + "5" * 32 + ".sqlite-shm"]
    assert main(["gc", str(store)]) == 0
    text = capsys.readouterr().out
    assert all(f"kept {p.name}: leftover file {p.name}: " in text for p in leftovers)
    assert "nothing to remove" in text
    assert {p.name: p.read_bytes() for p in store.iterdir() if p.is_file()} == before
    assert main(["inspect", str(store), "--json"]) == 1
    info = json.loads(capsys.readouterr().out)
    db_id = {d["file"]: d["id"] for d in info["spaces"][0]["databases"]}[live.name]
    assert sorted((f["file"], f["db_id"]) for f in info["stray_files"]) == sorted(
        (p.name, db_id if p.name.startswith(live.name) else None) for p in leftovers
    )
    found = [f for f in info["findings"] if f.startswith("leftover file ")]
    assert len(found) == len(leftovers)
    assert any(f"(the file of database {db_id})" in f for f in found)
    assert main(["inspect", str(store)]) == 1
    text = capsys.readouterr().out
    assert all(f"leftover file {p.name}: no database file beside it" in text for p in leftovers)
    assert {p.name: p.read_bytes() for p in store.iterdir() if p.is_file()} == before


def _written_then_dropped(store: Path) -> Path:
    """Database "d" of space "a" in ``store``, written once, then dropped: its file's path."""
    with sc.Runtime(store) as rt:
        space = rt.space("a")
        db = space.sqlite_database("d", tables={"t": sc.table(x="integer")})
        with space.transact():
            db.exec("INSERT INTO t (x) VALUES (1)")
        with space.transact():
            db.drop()
        return db.path


def test_gc_removes_what_a_dropped_database_left_without_its_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """R74: a dropped database's files are given up whatever they hold; a -wal and -shm it
    left without its file are too: gc lists them and removes them with --yes, as it removes
    that file's. inspect lists them as gc removes them (no finding)."""
    store = tmp_path / "store"
    path = _written_then_dropped(store)
    path.unlink()
    left = [Path(f"{path}-wal"), Path(f"{path}-shm")]
    left[0].write_bytes(_wal_bytes(tmp_path))
    left[1].write_bytes(b"\0" * 64)
    assert main(["inspect", str(store), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["stray_files"] == []
    assert info["unreferenced_files"] == sorted(p.name for p in left)
    assert main(["gc", str(store)]) == 0
    text = capsys.readouterr().out
    assert all(f"would remove {p.name} (database 'd' of space 'a')" in text for p in left)
    assert all(p.exists() for p in left)
    assert main(["gc", str(store), "--yes", "--json"]) == 0
    said = json.loads(capsys.readouterr().out)
    assert (said["removed"], said["files"]) == (True, sorted(p.name for p in left))
    assert "kept" not in said and "failed" not in said
    assert sorted(p.name for p in store.glob("cell-*")) == []


def test_a_database_file_whose_space_file_is_gone_is_kept_by_gc_and_reported_by_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Nothing is lost (R74): a file holding commits that no space names any more — its space
    file was lost — is never garbage; ``check`` reports it (exit 1). A file that never held a
    commit is still garbage."""
    store, kept = _one_row(tmp_path)
    never = store / ("cell-" + "3" * 32 + ".sqlite")
    conn = apsw.Connection(str(never))
    conn.execute("CREATE TABLE q (x)")
    conn.close()
    for path in store.glob("space-*"):
        path.unlink()
    assert main(["gc", str(store), "--yes"]) == 0
    assert f"removed {never.name}" in capsys.readouterr().out
    assert kept.exists() and not never.exists()
    assert main(["check", str(store), "--json"]) == 1
    (outcome,) = json.loads(capsys.readouterr().out)
    assert (outcome["file"], outcome["action"], outcome["watermark"]) == (kept.name, "orphaned", 1)
    assert "gc never removes it" in outcome["advice"]
    assert apsw.Connection(str(kept)).execute("SELECT v FROM t").fetchall() == [(1,)]


def test_gcs_help_says_an_orphaned_file_is_kept(capsys: pytest.CaptureFixture[str]) -> None:
    """``gc --help`` (and the command list) say which files ``--yes`` removes: a file no space
    names is one only if it never held a commit (the test above); the help said every file no
    handle names is listed for removal."""
    with pytest.raises(SystemExit):
        main(["--help"])
    listing = " ".join(capsys.readouterr().out.split())
    assert "list unused or dropped database files; remove them with --yes" in listing
    with pytest.raises(SystemExit):
        main(["gc", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "no handle of any space names and that never held a commit (R74)" in text
    assert "is listed as kept and never removed" in text


def test_the_command_list_says_demo_runs_on_the_store_given(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``demo [STORE]`` runs on the store given (the list said "on the default store")."""
    with pytest.raises(SystemExit):
        main(["--help"])
    listing = " ".join(capsys.readouterr().out.split())
    assert "run the example chat app (on STORE, else the default store)" in listing
    assert main(["demo", str(tmp_path / "store")]) == 0
    assert list((tmp_path / "store").glob("space-*.sqlite"))


def test_another_programs_rows_under_a_database_files_name_are_never_garbage(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Another program's SQLite file with rows, under a name a database file could have: no
    runtime commit ever made it (watermark 0), but it is no first write cut short either (that
    leaves no row), and its rows are nobody's to delete: gc neither lists nor removes it."""
    store, _kept = _one_row(tmp_path)
    files = {}
    for name, table in (("b", "precious"), ("c", "_CF_notes")):  # (not one of the runtime's)
        theirs = store / ("cell-" + name * 32 + ".sqlite")
        conn = apsw.Connection(str(theirs))
        conn.execute(f"CREATE TABLE {table} (x); INSERT INTO {table} VALUES ('keep me')")
        conn.close()
        files[theirs] = theirs.read_bytes()
    assert main(["gc", str(store), "--yes", "--json"]) == 0
    said = json.loads(capsys.readouterr().out)
    assert (said["removed"], said["files"]) == (True, [])
    assert sorted(entry["file"] for entry in said["kept"]) == sorted(p.name for p in files)
    assert all("rows of tables that are not the runtime's" in e["why"] for e in said["kept"])
    assert all(path.read_bytes() == data for path, data in files.items())


def test_bytes_that_are_no_database_under_a_database_files_name_are_never_garbage(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """SQLite reads a file of one byte as an empty database: gc took it for a first write cut
    short and removed it. Bytes that do not begin as an SQLite database does are kept, at every
    size; an empty file (a first write not begun) is still garbage."""
    store, _kept = _one_row(tmp_path)
    theirs = {
        store / ("cell-" + name * 32 + ".sqlite"): data
        for name, data in (
            ("d", b"x"),
            ("e", b"\n"),
            ("f", b"xy"),
            ("1", b"SQLite format 2\x00" + bytes(84)),
        )
    }
    for path, data in theirs.items():
        path.write_bytes(data)
    empty = store / ("cell-" + "2" * 32 + ".sqlite")
    empty.write_bytes(b"")
    assert main(["gc", str(store), "--yes", "--json"]) == 0
    said = json.loads(capsys.readouterr().out)
    assert (said["removed"], said["files"]) == (True, [empty.name])
    # Each kept file is named, and why (it said nothing of them; `check` reports them).
    kept = {entry["file"]: entry["why"] for entry in said["kept"]}
    assert sorted(kept) == sorted(path.name for path in theirs)
    assert all("gc never removes it" in why for why in kept.values())
    assert all(path.read_bytes() == data for path, data in theirs.items())
    assert not empty.exists()
    assert main(["gc", str(store)]) == 0
    text = capsys.readouterr().out
    assert all(f"kept {path.name}: " in text for path in theirs)
    assert text.endswith("nothing to remove\n")


def test_a_blank_space_file_left_by_a_crash_is_ignored_by_the_tools(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A first commit cut short by a crash can leave a space file with no schema at all: it
    holds nothing, and check, gc, inspect and cells read the store as if it were not there."""
    store, _path = _one_row(tmp_path)
    blank = store / ("space-" + "5" * 32 + ".sqlite")
    conn = apsw.Connection(str(blank))
    conn.execute("PRAGMA user_version").fetchall()  # opens it: a file of 0 bytes
    conn.close()
    for command in (["check"], ["gc"], ["inspect", "--json"], ["cells"]):
        assert main([command[0], str(store), *command[1:]]) == 0, command
    out = capsys.readouterr().out
    assert "in sync" in out and "nothing to remove" in out
    assert blank.exists()  # not ours to remove: the space's next commit fills it


def test_inspect_still_says_a_database_was_dropped_once_gc_removed_its_file(
    store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """§6: after `gc --yes` removed a dropped database's file, `inspect` read "no file", as for
    a database never written; it says it was dropped."""
    with sc.Runtime(store) as rt:
        space = rt.space("s")
        db = space.sqlite_database("gone", tables={"t": sc.table(x="integer")})
        with space.transact():
            db.exec("INSERT INTO t (x) VALUES (1)")
        with space.transact():
            db.drop()
    assert _run(capsys, "gc", str(store), "--yes")[0] == 0
    assert not db.path.exists()
    code, out = _run(capsys, "inspect", str(store))
    assert code == 0
    assert f"file {db.path.name}: rev 1, last write at seq 1, dropped, no file (removed)" in out


def test_inspect_names_a_database_dropped_before_its_first_write_and_says_never_written(
    store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """§6: a database dropped before it was ever written was listed by its id alone (its name
    was recorded by writes only), with "last write at seq 2" (the drop's) and "no file
    (removed)", though nothing ever wrote or removed a file. Its name is recorded with the
    drop, and `inspect` says it was never written; its JSON's ``last_write_seq`` is 0."""
    with sc.Runtime(store) as rt:
        space = rt.space("s")
        kept = space.sqlite_database("x", tables={"t": sc.table(x="integer")})
        never = space.sqlite_database("y", tables={"t": sc.table(x="integer")})
        with space.transact():
            kept.exec("INSERT INTO t (x) VALUES (1)")
        with space.transact():
            never.drop()
    before = sorted(p.name for p in store.iterdir())
    code, out = _run(capsys, "inspect", str(store))
    assert code == 0, out
    assert f"database 'y' ({never.id})\n" in out
    assert f"file {never.path.name}: rev 0, never written, dropped, no file\n" in out
    assert f"file {kept.path.name}: rev 1, last write at seq 1, watermark 1 (in sync)" in out
    code, out = _run(capsys, "inspect", str(store), "--json")
    assert code == 0, out
    (listed,) = [
        d for s in json.loads(out)["spaces"] for d in s["databases"] if d["id"] == never.id
    ]
    assert (listed["rev"], listed["last_write_seq"], listed["in_sync"]) == (0, 0, True)
    assert sorted(p.name for p in store.iterdir()) == before


def test_a_database_another_process_dropped_and_gc_removed_is_never_made_again(
    store: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """R74, "Drop": a runtime that had the database open, not yet caught up with another
    process's drop (its poll is slow), wrote it after `gc --yes` removed its file. The first
    write was `StoreChanged` and a replay from the log made the file again with the dropped
    rows; the second was `DatabaseDropped`, leaving that file for gc to remove again. Both writes
    are `DatabaseDropped` now, and no file is made."""
    tables = {"t": sc.table(id="integer primary key", v="text")}
    with sc.Runtime(store, poll_interval=3600) as rt:
        space = rt.space("s")
        db = space.sqlite_database("x", tables=tables)
        with space.transact():
            db.exec("INSERT INTO t (v) VALUES ('secret')")
        assert db.read("SELECT v FROM t") == [{"v": "secret"}]
        dropper = (
            "import sqlite_cells as sc\n"
            f"with sc.Runtime({str(store)!r}) as rt:\n"
            "    space = rt.space('s')\n"
            "    db = space.sqlite_database('x', tables={'t': sc.table("
            "id='integer primary key', v='text')})\n"
            "    with space.transact():\n"
            "        db.drop()\n"
        )
        subprocess.run([sys.executable, "-c", dropper], check=True, timeout=120)
        gc = run_cli("gc", str(store), "--yes")
        assert gc.returncode == 0 and f"removed {db.path.name}" in gc.stdout
        assert not db.path.exists()
        for _ in range(2):
            with pytest.raises(DatabaseDropped, match="was dropped"), space.transact():
                db.exec("INSERT INTO t (v) VALUES ('b')")
            assert sorted(p.name for p in store.glob("cell-*")) == []
    assert "replayed" not in caplog.text
    gc = run_cli("gc", str(store))
    assert gc.returncode == 0 and "nothing to remove" in gc.stdout


def test_a_repair_the_disk_stops_is_not_a_quarantine_and_says_to_free_space(
    tmp_path: Path,
) -> None:
    """R71, §6: `check --repair` of a database behind its space, under a file size limit (as on
    a full disk): the replay's write fails, and `check` said "quarantined (IOError: disk I/O
    error)" and that `--repair` cannot repair it, where freeing space and running it again is
    all it takes. It says the disk refused the write, that nothing was lost, and what to do;
    nothing is changed, and the repair run again once the disk takes the writes works."""
    store = tmp_path / "store"
    tables = {"messages": sc.table(id="integer primary key", body="text not null")}
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("chat", tables=tables)
        with space.transact():
            db.exec("INSERT INTO messages (body) VALUES ('a')")
    old = db.path.read_bytes()
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("chat", tables=tables)
        for _ in range(3):
            with space.transact():
                db.exec("INSERT INTO messages (body) VALUES (?)", ["x" * 200_000])
    db.path.write_bytes(old)  # the database file is behind its space by three commits
    files = {p.name: p.read_bytes() for p in store.iterdir() if p.is_file()}
    for args in (["check", "--repair"], ["check", "--repair", "--json"]):
        done = run_cli_limited("RLIMIT_FSIZE", 60_000, *args, "--store", str(store))
        assert done.returncode == 1, done.stdout
        assert "Traceback" not in done.stderr and "IOError" not in done.stdout
        assert "quarantined" not in done.stdout and "Quarantined" not in done.stdout
        assert {p.name: p.read_bytes() for p in store.iterdir() if p.is_file()} == files
    (row,) = json.loads(done.stdout)
    assert (row["action"], row["watermark"], row["space_seq"]) == ("not repaired", 1, 4)
    assert row["detail"].startswith("the disk refused a write or a read (disk I/O error")
    assert row["advice"] == (
        "nothing was lost: the file is as it was and its space's log still holds every commit; "
        "free space on the disk (or raise the file size limit, or check the device), then run "
        "`sqlite-cells check --repair` again"
    )
    done = run_cli("check", "--repair", "--store", str(store))  # the limit gone: it repairs
    assert done.returncode == 0, done.stdout
    assert "replayed, 3 commit(s) applied" in done.stdout


@pytest.mark.parametrize("planted", ["file", "symlink"])
def test_a_quarantine_path_that_is_no_folder_is_said_with_advice_to_move_it_aside(
    tmp_path: Path, planted: str
) -> None:
    """R71, §6: a repair that removes rows (the undo of a database ahead of its space) keeps a
    copy in the store's quarantine folder first. With a plain file (or a symbolic link) at that
    path the finding named it, but the advice under it was the one for a space file that lost
    commits ("put back a copy of the space's file"). It says to move that path aside so the
    folder can be made, and to run the repair again; nothing is changed until then."""
    store = tmp_path / "store"
    db = _store_with_writes(store, 1)
    (space_file,) = store.glob("space-*.sqlite")
    kept = space_file.read_bytes()
    _store_with_writes(store, 1)
    space_file.write_bytes(kept)  # the space file lost its last commit: the database is ahead
    quarantine = store / "quarantine"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    if planted == "file":
        quarantine.write_text("x")
    else:
        quarantine.symlink_to(elsewhere)
    before = db.path.read_bytes()
    done = run_cli("check", "--repair", "--store", str(store))
    assert done.returncode == 1, done.stdout
    shown = "is not a directory" if planted == "file" else "is a symbolic link"
    assert f"quarantined ({quarantine} {shown}" in done.stdout
    assert (
        f"{quarantine} is no folder (a file or a symbolic link stands there); move {quarantine} "
        "aside (out of the store, keeping it) so the folder can be made, then run "
        "`sqlite-cells check --repair` again"
    ) in done.stdout
    assert "lost commits" not in done.stdout and "put back a copy" not in done.stdout
    assert db.path.read_bytes() == before and list(elsewhere.iterdir()) == []
    (tmp_path / "aside").mkdir()
    quarantine.rename(tmp_path / "aside" / "quarantine")  # what the advice says
    done = run_cli("check", "--repair", "--store", str(store))
    assert done.returncode == 0, done.stdout
    assert "inverted, 1 commit(s) applied" in done.stdout


def test_a_rebuild_stopped_by_the_quarantine_path_names_a_public_error_kind(
    tmp_path: Path,
) -> None:
    """Errors, §6: the rebuild of a damaged database keeps the damaged file in the store's
    quarantine folder first. With a plain file at that path `check --repair` ended with
    "sqlite-cells: _NoCopyFolder: …": a private class name, which says nothing to a user. The
    error line names the public class it derives from, as every other error line does, and
    nothing is changed."""
    store = tmp_path / "store"
    db = _store_with_writes(store, 1)
    db.path.write_bytes(b"not a database " * 100)
    damaged = db.path.read_bytes()
    (store / "quarantine").write_text("x")
    before = sorted(p.name for p in store.iterdir())
    done = run_cli("check", "--repair", "--store", str(store))
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr.startswith(
        f"sqlite-cells: DatabaseError: {store / 'quarantine'} is not a directory: "
    ), done.stderr
    assert "_NoCopyFolder" not in done.stderr
    assert db.path.read_bytes() == damaged
    assert sorted(p.name for p in store.iterdir()) == before


def test_a_copy_into_quarantine_the_disk_stops_names_the_file_copied_and_the_copy(
    tmp_path: Path,
) -> None:
    """R71, Errors: a repair that removes rows (the undo of a database ahead of its space)
    copies the database file into the quarantine folder first. A copy the disk stopped (here a
    file size limit smaller than the file) ended `check --repair` with an error naming the
    space file ("space file …: File too large"), not the file being copied. The database's
    finding names the file copied and the copy's path, says nothing was lost and what to do;
    nothing is left of the copy, and the repair run again once the disk takes it works."""
    store = tmp_path / "store"
    tables = {"m": sc.table(id="integer primary key", b="text")}
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("chat", tables=tables)
        with space.transact():
            db.exec("INSERT INTO m (b) VALUES (?)", ["x" * 300_000])
    (space_file,) = store.glob("space-*.sqlite")
    kept = space_file.read_bytes()
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        with space.transact():
            space.sqlite_database("chat", tables=tables).exec("INSERT INTO m (b) VALUES ('b')")
    space_file.write_bytes(kept)  # the space file lost its last commit: the database is ahead
    before = db.path.read_bytes()
    assert len(before) > 200_000
    done = run_cli_limited("RLIMIT_FSIZE", 200_000, "check", "--repair", "--store", str(store))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and done.stderr == ""
    assert "watermark 2, space seq 1: not repaired (the disk refused a write" in done.stdout
    quarantine = store / "quarantine"
    assert f"while {db.path} was copied to {quarantine / db.path.name}." in done.stdout
    assert "space file" not in done.stdout and "File too large —" not in done.stdout
    assert "nothing was lost" in done.stdout and "run `sqlite-cells check --repair` again" in (
        done.stdout
    )
    assert db.path.read_bytes() == before and list(quarantine.iterdir()) == []
    done = run_cli("check", "--repair", "--store", str(store))  # the limit gone: it repairs
    assert done.returncode == 0, done.stdout
    assert "inverted, 1 commit(s) applied" in done.stdout


def test_a_replay_that_deletes_rows_says_where_the_copy_is_kept(tmp_path: Path) -> None:
    """R71: a repair that removes rows keeps a copy of the file first — a replay of commits
    that delete rows too. `check --repair` printed where the copy was kept after undoing or
    rebuilding, and said nothing of it after such a replay."""
    import shutil

    store = tmp_path / "store"
    tables = {"t": sc.table(id="integer primary key", v="text")}
    with sc.Runtime(store) as rt:
        space = rt.space("s")
        db = space.sqlite_database("db", tables=tables)
        with space.transact():
            db.exec_many("INSERT INTO t (v) VALUES (?)", [["x"], ["y"]])
        path = db.path
    older = tmp_path / "older.sqlite"
    shutil.copyfile(path, older)
    with sc.Runtime(store) as rt:
        space = rt.space("s")
        db = space.sqlite_database("db", tables=tables)
        with space.transact():
            db.exec("DELETE FROM t WHERE v = 'x'")
    shutil.copyfile(older, path)  # the file one commit behind its space
    done = run_cli("check", str(store), "--repair")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "watermark 1, space seq 2: replayed, 1 commit(s) applied" in done.stdout
    [kept] = [p for p in (store / "quarantine").iterdir() if p.name.endswith(".0")]
    assert f"the file as it was before the repair is kept at {kept}" in done.stdout
    assert apsw.Connection(str(kept)).execute("SELECT v FROM t ORDER BY id").fetchall() == [
        ("x",),
        ("y",),
    ]


def test_the_advice_for_a_quarantined_database_names_the_rebuild_that_works(
    tmp_path: Path,
) -> None:
    """Errors (what to do): a database behind its space whose replay meets a row another
    program wrote is quarantined, and the advice said nothing could be done ("`--repair` cannot
    repair it"), though moving the file out and running `check --repair` rebuilds it from the
    log. The advice says so, and following it works."""
    import shutil

    store = tmp_path / "store"
    tables = {"messages": sc.table(id="integer primary key", body="text")}
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("chat", tables=tables)
        with space.transact():
            db.exec("INSERT INTO messages (id, body) VALUES (1, 'one')")
        path = db.path
    early = path.read_bytes()
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("chat", tables=tables)
        with space.transact():
            db.exec("INSERT INTO messages (id, body) VALUES (2, 'two')")
    path.write_bytes(early)  # a crash left it behind, and another program then wrote it
    conn = apsw.Connection(str(path))
    conn.execute("INSERT INTO messages VALUES (2, 'foreign')")
    conn.close()
    done = run_cli("check", str(store), "--repair")
    assert done.returncode == 1, done.stdout + done.stderr
    assert ": quarantined (a changeset does not apply" in done.stdout
    assert f"moving {path.name} (and its -wal, if any) out of the store, keeping it" in done.stdout
    kept = tmp_path / "kept"
    kept.mkdir()
    shutil.move(path, kept / path.name)
    done = run_cli("check", str(store), "--repair")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "watermark 0, space seq 2: replayed, 2 commit(s) applied" in done.stdout
    done = run_cli("query", str(store), "demo", "chat", "--json", "SELECT body FROM messages")
    assert json.loads(done.stdout)["rows"] == [{"body": "one"}, {"body": "two"}]


def _store_files(store: Path) -> dict[str, bytes]:
    """Every file of ``store`` (folders included, by name) with its bytes."""
    return {
        str(p.relative_to(store)): p.read_bytes() if p.is_file() else b""
        for p in sorted(store.rglob("*"))
    }


def _space_file(store: Path) -> Path:
    (found,) = [p for p in store.glob("space-*.sqlite")]
    return found


def _empty_op_index(store: Path) -> None:
    """Another program removes the rows of the space file's index of which commits wrote each
    database (its log keeps every record)."""
    conn = apsw.Connection(str(_space_file(store)))
    conn.execute("DELETE FROM _cf_op_index")
    conn.close()


@pytest.mark.parametrize("writes", [1, 2])
def test_a_space_file_whose_op_index_lost_its_rows_never_undoes_logged_commits(
    store: Path, writes: int, caplog: pytest.LogCaptureFixture
) -> None:
    """R71: with the space file's `_cf_op_index` emptied (its log intact), a runtime took the
    database's last write from the index (none) and inverted its one logged commit (rows gone),
    or, with two, quarantined it saying the space file lost durable commits. `check` finds the
    index incomplete (exit 1, nothing changed); a runtime rebuilds it from the log, and reads
    every row."""
    db = _store_with_writes(store, writes)
    _empty_op_index(store)
    before = _store_files(store)
    done = run_cli("check", str(store))
    assert done.returncode == 1, done.stdout
    assert f"watermark {writes}, space seq {writes}: space file index incomplete" in done.stdout
    assert "run `sqlite-cells check --repair` to rebuild the index" in done.stdout
    queried = run_cli("query", str(store), "demo", "events", "SELECT n FROM events")
    assert queried.returncode == 1 and "NeedsRepair" in queried.stderr, queried.stderr
    # `inspect` says it too, as a finding (exit 1), never "in sync".
    shown = run_cli("inspect", str(store))
    assert shown.returncode == 1, shown.stdout + shown.stderr
    assert "(in sync)" not in shown.stdout
    assert (
        f"watermark {writes}, SPACE FILE INDEX INCOMPLETE: the space file's index" in shown.stdout
    )
    assert (
        f"finding: database {db.id} of space 'demo' ({db.path.name}): space file index incomplete ("
    ) in shown.stdout
    assert "run `sqlite-cells check --repair` to rebuild the index" in shown.stdout
    listed = run_cli("inspect", str(store), "--json")
    assert listed.returncode == 1
    (found,) = json.loads(listed.stdout)["spaces"][0]["databases"]
    assert found["in_sync"] is False and f"lacks seq {writes}" in found["index_incomplete"]
    assert _store_files(store) == before
    with sc.Runtime(store) as rt:
        events = rt.space("demo").sqlite_database("events", tables=TABLES)
        assert events.read("SELECT n FROM events ORDER BY n") == [{"n": n} for n in range(writes)]
    assert "inverted" not in caplog.text and "quarantined" not in caplog.text
    assert "rebuilt from its log" in caplog.text
    assert not (store / "quarantine").exists()
    conn = apsw.Connection(str(_space_file(store)), flags=apsw.SQLITE_OPEN_READONLY)
    indexed = conn.execute("SELECT seq FROM _cf_op_index WHERE target = ?", (db.id,)).fetchall()
    conn.close()
    assert indexed == [(n + 1,) for n in range(writes)]
    done = run_cli("check", str(store))
    assert done.returncode == 0 and "in sync" in done.stdout, done.stdout


def test_check_repair_rebuilds_an_op_index_that_lost_its_rows_before_it_rebuilds_a_file(
    store: Path, tmp_path: Path
) -> None:
    """R71: `check --repair` of a database whose file was moved out, in a space file whose op
    index lost its rows, found the log "in sync" with no file (watermark 0, space seq 0), and
    the database then read as empty. The index is rebuilt from the log first, and the file
    from its commits."""
    db = _store_with_writes(store, 2)
    _empty_op_index(store)
    aside = tmp_path / "aside"
    aside.mkdir()
    db.path.rename(aside / db.path.name)
    done = run_cli("check", str(store), "--repair")
    assert done.returncode == 0, done.stdout
    assert "watermark 0, space seq 2: replayed, 2 commit(s) applied" in done.stdout
    assert "lacks seq 2, a write of this database that its log records" in done.stdout
    assert "it was rebuilt from the log" in done.stdout
    with sc.Runtime(store) as rt:
        events = rt.space("demo").sqlite_database("events", tables=TABLES)
        assert events.read("SELECT n FROM events ORDER BY n") == [{"n": 0}, {"n": 1}]


V1 = {"t": sc.table(id="integer primary key", v="integer")}
V2 = {"t": sc.table(id="integer primary key", v="integer", w="text default 'x'")}


def _migrated_once(tmp_path: Path) -> tuple[Path, Path]:
    """A store whose database was written at version 1, then migrated (a migrate= step the
    log does not hold) and written at version 2: (the store, the database file)."""
    store = tmp_path / "store"
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("db", tables=V1, version=1)
        with space.transact():
            db.exec("INSERT INTO t (v) VALUES (1)")
        db = space.sqlite_database("db", tables=V2, version=2, migrate=lambda conn, frm: None)
        with space.transact():
            db.exec("INSERT INTO t (v) VALUES (2)")
        return store, db.path


def test_a_migrated_database_damaged_later_is_not_sent_to_a_rebuild_the_log_cannot_make(
    tmp_path: Path,
) -> None:
    """R71, R14, Errors: a database migrated by a ``migrate`` (a step that is in the file, not
    in the log) whose file is then damaged cannot be rebuilt from its space's log. `check` said
    `--repair` would rebuild it; `check --repair` refused it as "at version 1 … restored from a
    copy older than the migration" (the version its own replay reached, of a file that is not a
    database) and advised moving the file out and repairing again, which failed the same way,
    under the same advice. Both say now, alike, that the log cannot rebuild it and why, and
    what brings it back; moved out, it is said to be missing; nothing is changed on disk."""
    import shutil

    store, path = _migrated_once(tmp_path)
    with path.open("r+b") as f:
        f.write(b"not a database any more" * 4)
    before = _store_files(store)
    looked = run_cli("check", str(store))
    repaired = run_cli("check", str(store), "--repair")
    for done in (looked, repaired):
        assert done.returncode == 1, done.stdout + done.stderr
        assert (
            "space seq 2: quarantined (damaged file: file is not a database; its space's log "
            "cannot rebuild it: the space's commit 2 was written on the file at version 2, after "
            "a migration (a migrate= step) that the log does not hold"
        ) in done.stdout
        assert "only a copy of the file made at version 2 or later" in done.stdout
        assert "the damaged file is kept as found" in done.stdout
        assert "neither `--repair` nor moving the file out of the store helps" in done.stdout
        assert "or have the damaged file repaired by other means" in done.stdout
        for wrong in (
            "the file is at version",
            "restored from a copy",
            "to rebuild it from",
            "rebuilds the database from the log",
            "out of the store, keeping it",
        ):
            assert wrong not in done.stdout, done.stdout
    assert looked.stdout == repaired.stdout  # `check` says what `check --repair` does
    assert _store_files(store) == before  # nothing was changed, no copy kept
    aside = tmp_path / "aside"
    aside.mkdir()
    for moved in store.glob(f"{path.name}*"):
        shutil.move(moved, aside / moved.name)
    before = _store_files(store)
    done = run_cli("check", str(store), "--repair")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "space seq 2: quarantined (no file; its space's log cannot rebuild it: " in done.stdout
    assert "only a copy of the file made at version 2 or later" in done.stdout
    assert "nothing was changed and no file was created" in done.stdout
    assert f"until its file is put back as {path.name} from a copy" in done.stdout
    for wrong in ("left as found", "out of the store", "rebuilds the database from the log"):
        assert wrong not in done.stdout, done.stdout
    assert not path.exists() and _store_files(store) == before


def test_a_file_emptied_under_a_migrated_database_says_why_it_cannot_be_rebuilt_once(
    tmp_path: Path,
) -> None:
    """R71, R14, Errors: a migrated database whose file was emptied (0 bytes: it holds no
    commit) is quarantined by a repair, since replaying the log from its start stops at the
    migration, which the log does not hold. `check --repair` and the runtime's `Quarantined`
    said that reason twice in a row: once as the replay's, then again as why the log cannot
    rebuild the file from nothing. It is said once now, and nothing is changed on disk."""
    store, path = _migrated_once(tmp_path)
    path.write_bytes(b"")
    reason = (
        "the space's commit 2 was written on the file at version 2, after a migration (a "
        "migrate= step) that the log does not hold"
    )
    before = _store_files(store)
    done = run_cli("check", str(store), "--repair")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "watermark 0, space seq 2: quarantined (" in done.stdout
    assert done.stdout.count(reason) == 1, done.stdout
    assert "for that reason its space's log cannot rebuild the file either" in done.stdout
    assert "neither `--repair` nor moving the file out of the store helps" in done.stdout
    assert _store_files(store) == before
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("db", tables=V2, version=2, migrate=lambda conn, frm: None)
        with pytest.raises(sc.Quarantined) as raised:
            db.read("SELECT v FROM t")
    assert str(raised.value).count(reason) == 1, str(raised.value)
    assert "for that reason its space's log cannot rebuild the file either" in str(raised.value)


# Runs the command as `python -m sqlite_cells` does, with one SIGINT sent right after the first
# repair of a database returns (its transaction committed, its outcome not yet recorded).
REPAIR_INTERRUPTED = """
import os, signal, sys
from sqlite_cells.cli._cli import main
from sqlite_cells.files import _handles

reconcile = _handles.reconcile

def reconcile_then_interrupt(*args, **kwargs):
    outcome = reconcile(*args, **kwargs)
    if outcome.action is _handles.Action.REPLAYED:
        os.kill(os.getpid(), signal.SIGINT)
    return outcome

_handles.reconcile = reconcile_then_interrupt
sys.exit(main(sys.argv[1:]))
"""


def test_ctrl_c_during_the_last_repair_does_not_say_a_database_was_left_unchecked(
    store: Path,
) -> None:
    """SPEC §6 (follows the test below): a Ctrl-C landing while `check --repair` repaired the
    store's last database said "a database not listed above was not checked", though every
    database was. The interrupt is held to the next database's look; with none left, the
    command says only that it was interrupted once the repairs were made, and exits 130."""
    with sc.Runtime(store) as rt:
        space = rt.space("a")
        db = space.sqlite_database("events", tables=TABLES)
        for n in range(2):
            with space.transact():
                db.exec("INSERT INTO events (n) VALUES (?)", [n])
    _lose_last_commit(db.path)
    env = {k: v for k, v in os.environ.items() if k != "SQLITE_CELLS_STORE"}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    done = subprocess.run(
        [sys.executable, "-c", REPAIR_INTERRUPTED, "check", str(store), "--repair"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 130, done
    assert "watermark 1, space seq 2: replayed, 1 commit(s) applied" in done.stdout
    assert "1 database(s) checked" in done.stdout
    assert done.stderr == (
        "sqlite-cells: interrupted once the repairs above were made; they are kept\n"
    )
    after = run_cli("check", str(store))
    assert after.returncode == 0 and "in sync" in after.stdout


def test_ctrl_c_once_a_repair_is_made_says_what_was_repaired(store: Path) -> None:
    """SPEC §6: a Ctrl-C landing right after `check --repair` repaired a database exited 130
    with only "interrupted", although the repair was kept. It now prints that repair, says it
    was interrupted once it was made and that the databases not listed were not checked, and
    exits 130; the other database is left behind, as told."""
    paths = []
    for name in ("a", "b"):
        with sc.Runtime(store) as rt:
            space = rt.space(name)
            db = space.sqlite_database("events", tables=TABLES)
            for n in range(2):
                with space.transact():
                    db.exec("INSERT INTO events (n) VALUES (?)", [n])
        _lose_last_commit(db.path)
        paths.append(db.path)
    env = {k: v for k, v in os.environ.items() if k != "SQLITE_CELLS_STORE"}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    done = subprocess.run(
        [sys.executable, "-c", REPAIR_INTERRUPTED, "check", str(store), "--repair"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 130, done
    (line,) = [line for line in done.stdout.splitlines() if "watermark" in line]
    assert "watermark 1, space seq 2: replayed, 1 commit(s) applied" in line
    assert done.stderr == (
        "sqlite-cells: interrupted once the repairs above were made; they are kept (a database "
        "not listed above was not checked: run `sqlite-cells check --repair` again)\n"
    )
    after = subprocess.run(
        [sys.executable, "-m", "sqlite_cells", "check", str(store), "--json"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    found = {row["file"]: row["action"] for row in json.loads(after.stdout)}
    repaired = next(p.name for p in paths if p.name in line)
    assert found == {p.name: "in sync" if p.name == repaired else "behind" for p in paths}
    assert after.returncode == 1


# `python -m sqlite_cells gc --yes STORE`, SIGKILLed as it unlinks its second file of a database
# (an audit hook: the first unlink is done).
_GC_KILLED_AFTER_ONE_UNLINK = """
import os, runpy, signal, sys

unlinked = []

def hook(event, args):
    if event == "os.remove" and os.path.basename(str(args[0])).startswith("cell-"):
        unlinked.append(args[0])
        if len(unlinked) == 2:
            os.kill(os.getpid(), signal.SIGKILL)

sys.addaudithook(hook)
sys.argv = ["sqlite_cells", "gc", "--yes", sys.argv[1]]
runpy.run_module("sqlite_cells", run_name="__main__", alter_sys=True)
"""

# Opens a database file (SQLite makes its -wal and -shm), reads it, and is SIGKILLed holding it.
_READER_KILLED = """
import os, signal, sys
import apsw
conn = apsw.Connection(sys.argv[1])
conn.execute("SELECT count(*) FROM t").fetchall()
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_gc_killed_between_the_files_of_a_dropped_database_leaves_what_the_next_gc_removes(
    tmp_path: Path,
) -> None:
    """R74, R72: gc removed a dropped database's file first, then its -wal and -shm. Killed in
    between, it left a -wal (which may hold the database's rows) and a -shm that no later gc
    listed or removed, and `inspect` called the file removed. The file goes last now: what a
    kill leaves is the file itself, which the next `gc --yes` lists and removes, companions
    included."""
    store = tmp_path / "store"
    path = _written_then_dropped(store)
    env = {k: v for k, v in os.environ.items() if k != "SQLITE_CELLS_STORE"}
    reader = subprocess.run(
        [sys.executable, "-c", _READER_KILLED, str(path)], env=env, capture_output=True, timeout=60
    )
    assert reader.returncode == -9, reader.stderr
    companions = [Path(f"{path}-wal"), Path(f"{path}-shm")]
    assert all(p.exists() for p in companions)
    killed = subprocess.run(
        [sys.executable, "-c", _GC_KILLED_AFTER_ONE_UNLINK, str(store)],
        env=env,
        capture_output=True,
        timeout=60,
    )
    assert killed.returncode == -9, killed.stderr
    assert path.exists()  # what the kill left: the file, which gc still lists
    listed = run_cli("gc", str(store))
    assert listed.returncode == 0, listed.stderr
    assert path.name in listed.stdout
    done = run_cli("gc", "--yes", str(store))
    assert done.returncode == 0, done.stderr
    assert "1 file(s) removed" in done.stdout
    assert sorted(p.name for p in store.glob("cell-*")) == []


def test_query_of_a_space_or_database_named_in_another_unicode_form_says_so(
    store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """§6, R1: a space id or database name that differs from the stored one only in its
    Unicode form names another entity and is refused; the refusal says which name the store
    holds (it said "no space 'café'", or that database 'né' "was never written", beside an
    `inspect` showing 'café' and 'né')."""
    with sc.Runtime(store) as rt:
        space = rt.space("caf\xe9")
        db = space.sqlite_database("n\xe9", tables=TABLES)
        with space.transact():
            db.exec("INSERT INTO events (n) VALUES (1)")
    files = sorted(p.name for p in store.iterdir())
    sql = "SELECT n FROM events"
    assert main(["query", str(store), "cafe\u0301", "n\xe9", sql]) == 1
    err = capsys.readouterr().err
    assert "no space" in err
    assert "the store holds the space 'caf\\xe9', which is 'cafe\\u0301' written with" in err
    assert main(["query", str(store), "caf\xe9", "ne\u0301", sql]) == 1
    err = capsys.readouterr().err
    assert "the store holds the database 'n\\xe9', which is 'ne\\u0301' written with" in err
    assert main(["query", str(store), "caf\xe9", "other", sql]) == 1
    assert "Unicode" not in capsys.readouterr().err  # an unrelated name: no such clause
    assert main(["--json", "query", str(store), "caf\xe9", "n\xe9", sql]) == 0
    assert json.loads(capsys.readouterr().out)["rows"] == [{"n": 1}]
    assert sorted(p.name for p in store.iterdir()) == files


def test_a_database_named_in_another_case_says_which_the_store_holds(
    store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """§6, R1: a database name is taken as written, case too, so 'notes' is no database of a
    space holding 'Notes'; the refusal says which database it differs from only by case, as
    for a space (it said the database "was never written", beside an `inspect` listing
    'Notes'). A name the space never wrote keeps "never written"."""
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("Notes", tables=TABLES)
        with space.transact():
            db.exec("INSERT INTO events (n) VALUES (1)")
    files = sorted(p.name for p in store.iterdir())
    sql = "SELECT n FROM events"
    for given in ("notes", "NOTES"):
        with pytest.raises(InspectError) as info:
            query_store(store, "demo", given, sql)
        assert info.value.kind == "database-not-found"
        assert isinstance(info.value, LookupError)
        given_id = derive_id("sqlite", "demo", given)
        assert str(info.value) == (
            f"no database {given!r} ({given_id}) in space 'demo': the store holds the database "
            f"'Notes', which differs from {given!r} only by case; names are compared as "
            "written, case too: give the database as the store spells it"
        )
        assert main(["query", str(store), "demo", given, sql]) == 1
        err = capsys.readouterr().err
        assert str(info.value) in err and "never written" not in err
    # Case and Unicode form at once.
    assert main(["query", str(store), "demo", "NO\uff34ES", sql]) == 1
    assert "differs from 'NO\\uff34ES' by case and code points" in capsys.readouterr().err
    assert main(["query", str(store), "demo", "other", sql]) == 1
    err = capsys.readouterr().err
    assert "never written" in err and "store holds" not in err  # another name: no clause
    assert main(["--json", "query", str(store), "demo", "Notes", sql]) == 0  # as it says
    assert json.loads(capsys.readouterr().out)["rows"] == [{"n": 1}]
    assert sorted(p.name for p in store.iterdir()) == files


def test_a_space_named_in_another_case_says_which_the_store_holds(
    store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """§6, R1: a space id is taken as written, case too, so 'Demo' is no space of a store
    holding 'demo'; the refusal says which space it differs from only by case (it said only
    "no space 'Demo'"), as it says so of another Unicode form."""
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("notes", tables=TABLES)
        with space.transact():
            db.exec("INSERT INTO events (n) VALUES (1)")
    files = sorted(p.name for p in store.iterdir())
    sql = "SELECT n FROM events"
    for given in ("Demo", "DEMO"):
        with pytest.raises(InspectError) as info:
            find_space(store, given)
        assert info.value.kind == "space-not-found"
        assert isinstance(info.value, LookupError)
        assert str(info.value) == (
            f"no space {given!r} in {store}: `sqlite-cells inspect` lists them (the store holds "
            f"the space 'demo', which differs from {given!r} only by case; names are compared "
            "as written, case too: give the space as the store spells it)"
        )
        assert main(["query", str(store), given, "notes", sql]) == 1
        assert str(info.value) in capsys.readouterr().err
    assert main(["query", str(store), "D\xe9mo", "notes", sql]) == 1
    err = capsys.readouterr().err
    assert "no space 'D\xe9mo'" in err and "store holds" not in err  # another name: no clause
    assert main(["--json", "query", str(store), "demo", "notes", sql]) == 0  # as it says
    assert json.loads(capsys.readouterr().out)["rows"] == [{"n": 1}]
    assert sorted(p.name for p in store.iterdir()) == files
