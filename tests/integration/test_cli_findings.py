"""The command line where users stray off the beaten path, each on a real store: ``link`` into an
input that is not a database input, ``gc`` beside a directory named like a database file,
``check`` on a quarantined or damaged database, ``inspect`` of a damaged file, query parameters
that do not match the statement, and the smaller points of SPEC §6 (R60, R61, R71, R74)."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import apsw
import pytest

import sqlite_cells as sc
from sqlite_cells.cli._cli import main

from ..conftest import run_cli, written_once

TABLES = {"m": sc.table(id="integer primary key", body="text")}


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() if p.is_file() else b"<dir>"
        for p in sorted(root.rglob("*"))
    }


def _reference(path: Path) -> Path:
    conn = apsw.Connection(str(path))
    conn.execute("CREATE TABLE countries (code TEXT, name TEXT)")
    conn.execute("INSERT INTO countries VALUES ('FR', 'France')")
    conn.close()
    return path


@sc.pattern
def lookup(ref: sc.SqliteDb, code: sc.Cell) -> Any:
    return ref.query("SELECT count(*) AS n FROM countries")


def _piece(store: Path) -> str:
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        code = space.cell("code", default="FR")
        with space.transact():
            code.set("FR")
        piece = space.run(lookup, key="main", code=code)
        rt.settle(timeout=10)
        return piece.id


# 1. link


def test_link_refuses_an_input_that_is_not_a_database_input_and_changes_nothing(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    piece = _piece(store)
    ref = _reference(tmp_path / "ref.db")
    before = _tree(tmp_path)
    code, out, err = _run(
        capsys, "link", f"sqlite:{ref}", "demo", piece, "code", "--store", str(store)
    )
    assert code == 1 and out == ""
    assert "InspectError" in err and "'code'" in err and "not a database input" in err
    assert _tree(tmp_path) == before  # no handle registered, no file, no commit


def test_link_into_a_database_input_then_relinking_says_what_it_replaces(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    piece = _piece(store)
    first = _reference(tmp_path / "first.db")
    second = _reference(tmp_path / "second.db")
    code, out, _ = _run(
        capsys, "link", f"sqlite:{first}", "demo", piece, "ref", "--store", str(store)
    )
    assert code == 0 and out.startswith(f"linked {first} ") and "replaces" not in out
    code, out, _ = _run(
        capsys, "link", f"sqlite:{second}", "demo", piece, "ref", "--store", str(store), "--json"
    )
    assert code == 0
    data = json.loads(out)
    assert (data["piece"], data["field"], data["file"]) == (piece, "ref", str(second))
    assert data["replaced"]["file"] == str(first)
    code, out, _ = _run(
        capsys, "link", f"sqlite:{first}", "demo", piece, "ref", "--store", str(store)
    )
    assert code == 0 and f"it replaces the link to {second}" in out
    with sc.Runtime(store) as rt:
        linked = rt.space("demo").run(lookup, key="main", code=rt.space("demo").cell("code"))
        rt.settle(timeout=10)
        assert linked.outputs.get().result == [{"n": 1}]


def test_link_escapes_the_path_it_prints_as_every_text_line_is(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """§6: a file name holding a newline and a terminal's escape sequence was printed as it is
    by `link` (`inspect` escapes the same path)."""
    piece = _piece(store)
    odd = _reference(tmp_path / "ref\n\x1b[31mRED.db")
    second = _reference(tmp_path / "plain.db")
    code, out, _ = _run(
        capsys, "link", f"sqlite:{odd}", "demo", piece, "ref", "--store", str(store)
    )
    assert code == 0
    assert out.startswith(f"linked {tmp_path}/ref\\n\\x1b[31mRED.db (of:")
    assert out.count("\n") == 1 and "\x1b" not in out
    code, out, _ = _run(
        capsys, "link", f"sqlite:{second}", "demo", piece, "ref", "--store", str(store)
    )
    assert code == 0 and "it replaces the link to " in out and "\x1b" not in out
    assert out.count("\n") == 2


# `link` run again for the same file writes nothing: no commit, and it says so; when the file at
# that path was replaced, the one commit re-pins the handle and the output says so.


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


def _chat(store: Path, *bodies: str) -> Path:
    """Write ``bodies`` to database ``chat`` of space ``demo`` in ``store``, one commit each;
    return the database file."""
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("chat", tables=TABLES)
        for body in bodies:
            with space.transact():
                db.exec("INSERT INTO m (body) VALUES (?)", [body])
        return db.path


# 2. gc


def test_gc_skips_a_directory_named_like_a_database_file_and_never_touches_it(
    store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kept = _chat(store, "x")
    stray = store / ("cell-" + "1" * 32 + ".sqlite")
    apsw.Connection(str(stray)).execute("CREATE TABLE x (y)")  # never held a commit
    folder = store / ("cell-" + "2" * 32 + ".sqlite")
    folder.mkdir()
    (folder / "a").write_text("keep me")
    (folder / "b").write_text("and me")
    code, out, _ = _run(capsys, "gc", str(store))
    assert code == 0
    assert f"would remove {stray.name}" in out and f"would remove {folder.name}" not in out
    assert f"skipped {folder.name}: a directory" in out
    code, out, _ = _run(capsys, "gc", str(store), "--yes", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["files"] == [stray.name] and data["removed"] is True
    assert [s["file"] for s in data["skipped"]] == [folder.name]
    assert not stray.exists() and kept.exists()
    assert sorted(p.name for p in folder.iterdir()) == ["a", "b"]


def test_gc_skips_a_symbolic_link_named_like_a_database_file_and_never_removes_it(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _chat(store, "x")
    target = tmp_path / "precious.db"
    conn = apsw.Connection(str(target))
    conn.execute("CREATE TABLE precious (x); INSERT INTO precious VALUES (42)")  # no commit of ours
    conn.close()
    link = store / ("cell-" + "3" * 32 + ".sqlite")
    link.symlink_to(target)
    for args in ((), ("--yes",)):
        code, out, _ = _run(capsys, "gc", str(store), *args)
        assert code == 0
        assert f"skipped {link.name}: a symbolic link where a database file belongs" in out
        assert f"remove {link.name}" not in out and f"removed {link.name}" not in out
    assert link.is_symlink() and target.is_file()


# 3. check on a quarantined database


def _ahead_by_two(store: Path) -> Path:
    """A store whose space file was put back to a copy taken two commits ago."""
    _chat(store, "one")
    saved = store.parent / "saved"
    saved.mkdir()
    for path in store.glob("space-*"):
        shutil.copy(path, saved)
    path = _chat(store, "lost 0", "lost 1")
    for stale in store.glob("space-*"):
        stale.unlink()
    for path_saved in saved.iterdir():
        shutil.copy(path_saved, store)
    return path


def test_check_on_a_quarantined_database_gives_advice_that_works(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _ahead_by_two(store)
    with sc.Runtime(store) as rt:
        db = rt.space("demo").sqlite_database("chat", tables=TABLES)
        with pytest.raises(sc.Quarantined) as caught:
            db.read("SELECT body FROM m")
    assert "`sqlite-cells check`" in str(caught.value) and "--repair" not in str(caught.value)
    for argv in (["check", str(store)], ["check", str(store), "--repair"]):
        code, out, err = _run(capsys, *argv)
        assert code == 1
        assert "watermark 3, space seq 1: quarantined" in out
        assert "_Irreparable" not in out + err and "applied" not in out + err
        assert f"move {path.name}" in out and "`sqlite-cells check --repair`" in out
    code, out, _ = _run(capsys, "check", str(store), "--json")
    (row,) = json.loads(out)
    assert (row["action"], row["watermark"], row["space_seq"]) == ("quarantined", 3, 1)
    # Following the advice: keep the file aside, then --repair rebuilds it from the log.
    aside = tmp_path / "aside"
    aside.mkdir()
    for companion in store.glob(path.name + "*"):
        shutil.move(companion, aside)
    code, out, _ = _run(capsys, "check", str(store), "--repair")
    assert code == 0 and "replayed, 1 commit(s) applied" in out
    code, out, _ = _run(capsys, "query", str(store), "demo", "chat", "SELECT body FROM m", "--json")
    assert code == 0 and json.loads(out)["rows"] == [{"body": "one"}]


def test_check_that_finds_a_database_ahead_by_one_says_so_without_applied(
    store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _chat(store, "one")
    conn = apsw.Connection(str(path))
    conn.execute("INSERT INTO _cf_changes (seq, changeset) SELECT 2, changeset FROM _cf_changes")
    conn.execute("UPDATE _cf_watermark SET seq = 2")
    conn.close()
    code, out, err = _run(capsys, "check", str(store))
    assert code == 1
    assert "watermark 2, space seq 1: ahead\n" in out and "applied" not in out + err
    assert "--repair` to undo the one commit" in out


# 4. a damaged page: inspect and check


def _smash_table_page(path: Path, table: str) -> None:
    conn = apsw.Connection(str(path))
    ((root,),) = conn.execute("SELECT rootpage FROM sqlite_schema WHERE name = ?", (table,))
    ((page_size,),) = conn.execute("PRAGMA page_size")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    data = bytearray(path.read_bytes())
    start = (root - 1) * page_size + 8
    data[start : root * page_size] = b"\x5a" * (root * page_size - start)
    path.write_bytes(bytes(data))


def test_inspect_and_check_of_a_file_with_a_corrupt_table_page(
    store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _chat(store, "one", "two")
    _smash_table_page(path, "m")
    code, out, _ = _run(capsys, "inspect", str(store))
    assert code == 1
    assert "in sync" not in out and "DAMAGED" in out and "finding:" in out
    code, out, _ = _run(capsys, "inspect", str(store), "--json")
    (database,) = json.loads(out)["spaces"][0]["databases"]
    assert database["in_sync"] is False and database["damage"]
    code, out, _ = _run(capsys, "check", str(store))
    assert code == 1 and "watermark 2, space seq 2: damaged (damaged file: " in out
    assert "\n  run `sqlite-cells check --repair` to rebuild it" in out  # the detail is one line
    code, out, _ = _run(capsys, "check", str(store), "--repair")
    assert code == 0 and "watermark 2, space seq 2: rebuilt" in out and "quarantine" in out
    code, out, _ = _run(capsys, "inspect", str(store))
    assert code == 0 and "(in sync)" in out


def test_inspect_finds_a_declared_table_another_program_dropped_as_check_does(
    store: Path,
) -> None:
    path = _chat(store, "one")
    conn = apsw.Connection(str(path))
    conn.execute("DROP TABLE m")
    conn.close()
    done = run_cli("inspect", str(store))
    assert done.returncode == 1, done.stdout
    assert "(in sync)" not in done.stdout
    assert "watermark 1, DAMAGED: the file lacks the table(s) ['m']" in done.stdout
    assert "finding: database " in done.stdout and "is damaged (the file lacks" in done.stdout
    assert "`sqlite-cells check --repair` rebuilds it" in done.stdout
    done = run_cli("inspect", str(store), "--json")
    (database,) = json.loads(done.stdout)["spaces"][0]["databases"]
    assert done.returncode == 1
    assert database["in_sync"] is False
    assert database["damage"].startswith("the file lacks the table(s) ['m']")
    assert run_cli("check", str(store)).returncode == 1  # as `check` finds it
    assert run_cli("check", str(store), "--repair").returncode == 0
    done = run_cli("inspect", str(store))
    assert done.returncode == 0 and "(in sync)" in done.stdout


def _add_table(conn: apsw.Connection, from_version: int) -> None:
    conn.execute("CREATE TABLE extra (id integer primary key)")


def test_query_of_a_file_a_newer_declaration_migrated_says_what_to_do_from_the_shell(
    store: Path,
) -> None:
    _chat(store, "one")
    kept = {p.name: p.read_bytes() for p in store.glob("space-*")}
    with sc.Runtime(store) as rt:  # a newer program migrates the file, and its space's commit
        space = rt.space("demo")  # is lost (the space file restored from before it)
        newer = {**TABLES, "extra": sc.table(id="integer primary key")}
        db = space.sqlite_database("chat", tables=newer, version=2, migrate=_add_table)
        with space.transact():
            db.exec("INSERT INTO m (body) VALUES ('two')")
    for path in store.glob("space-*"):
        path.unlink()
    for name, data in kept.items():
        (store / name).write_bytes(data)
    assert run_cli("check", str(store), "--repair").returncode == 0  # the commit undone
    done = run_cli("query", str(store), "demo", "chat", "SELECT * FROM extra")
    assert done.returncode == 1 and done.stdout == ""
    assert "QueryError: " in done.stderr
    assert "the file is at version 2, newer than the declared version=1" in done.stderr
    assert "update the declaration" not in done.stderr
    assert (
        "this command reads it with the declaration its space recorded last, which the "
        "program using the store replaces with the newer one at its next write to this "
        "database: run that program, then query again" in done.stderr
    )
    # A column neither the file nor the declaration has: the statement is what to correct.
    done = run_cli("query", str(store), "demo", "chat", "SELECT nope FROM m")
    assert done.returncode == 1 and done.stdout == ""
    assert "neither the file nor the declaration has that column" in done.stderr
    assert "correct the statement" in done.stderr
    assert "run that program" not in done.stderr


# 5. query parameters


@pytest.fixture
def chat(store: Path) -> Path:
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("chat", tables=TABLES)
        with space.transact():
            db.exec("INSERT INTO m (body) VALUES ('one'), ('two')")
    return store


@pytest.mark.parametrize(
    ("sql", "params", "said"),
    [
        (
            "SELECT body FROM m WHERE id = :n",
            [],
            "uses :n but no value was given: pass it with -p n",
        ),
        ("SELECT body FROM m WHERE id = :n", ["-p", "m", "1"], "-p m: the statement has no "),
        ("SELECT body FROM m WHERE id = :n", ["-p", "n", "1", "-p", "x", "2"], "-p x:"),
        ("SELECT body FROM m WHERE id = ?", [], "parameter 1 of the statement (a ?) has no value"),
        (
            "SELECT body FROM m WHERE id = ? OR id = :n",
            ["-p", "1", "1"],
            "parameter 2 of the statement (:n) has no value",
        ),
        ("SELECT body FROM m WHERE id = ?", ["-p", "n", "1"], "give them by number, -p 1 VALUE"),
        ("SELECT body FROM m WHERE id = ?", ["-p", "2", "1"], "no parameter 2"),
        ("SELECT body FROM m", ["-p", "n", "1"], "no parameters, but -p n was given: drop it"),
        # Many given: the message names eight and counts the rest (one line, not thousands).
        (
            "SELECT body FROM m",
            [w for i in range(3000) for w in ("-p", f"n{i}", "1")],
            "-p n6, -p n7 and 2992 more were given: drop them",
        ),
        (
            "SELECT " + ", ".join(f"?{n}" for n in range(2, 400, 2)),
            ["-p", "1", "x"],
            "-p 14 VALUE, -p 16 VALUE and 191 more)",
        ),
        ("SELECT ?", ["-p", "1", "\udcff\udcfe"], "is not valid UTF-8"),
        # A digit Python reads as one but no number (int("²") fails): a name, not a number.
        ("SELECT ?", ["-p", "²", "v"], "give them by number, -p 1 VALUE"),
        ("SELECT :a", ["-p", "²", "v"], "-p '²': the statement has no parameter ':²'"),
        # The statement's name in another Unicode form: two names to SQLite, and it says so.
        (
            "SELECT :\u00e9",
            ["-p", "e\u0301", "v"],
            "'e\\u0301' is the statement's ':\\xe9' written with other Unicode code points",
        ),
        # A name holding a newline or 20,000 characters: quoted and cut, one short line.
        ("SELECT 1", ["-p", "a\nb", "v"], "-p 'a\\nb' was given: drop it"),
        ("SELECT :a", ["-p", "x" * 20_000, "v"], "(20,002 characters)"),
        ("SELECT :" + "y" * 20_000, [], "(20,003 characters) but no value was given"),
    ],
)
def test_parameters_that_do_not_match_the_statement_are_bad_usage(
    chat: Path, capsys: pytest.CaptureFixture[str], sql: str, params: list[str], said: str
) -> None:
    code, out, err = _run(capsys, "query", str(chat), "demo", "chat", sql, *params)
    assert code == 2 and out == ""
    assert said in err and len(err) < 1000 and err.count("\n") == 1
    assert not any(raw in err for raw in ("KeyError", "BindingsError", "UnicodeEncodeError"))


@pytest.mark.parametrize(
    ("sql", "params", "rows"),
    [
        ("SELECT body FROM m WHERE id = :n", ["-p", "n", "2"], [{"body": "two"}]),
        ("SELECT body FROM m WHERE id = @n", ["-p", ":n", "2"], [{"body": "two"}]),
        ("SELECT body FROM m WHERE id = ?2 OR id = ?1", ["-p", "1", "1", "-p", "2", "2"], 2),
        ("SELECT ':n', '?' AS \"?\" /* :x ? */ -- ?\n FROM m WHERE id = 1", [], 1),
    ],
)
def test_parameters_that_match_run(
    chat: Path, capsys: pytest.CaptureFixture[str], sql: str, params: list[str], rows: Any
) -> None:
    code, out, err = _run(capsys, "query", str(chat), "demo", "chat", sql, *params, "--json")
    assert code == 0, err
    found = json.loads(out)["rows"]
    assert found == rows if isinstance(rows, list) else len(found) == rows


def test_a_numbered_parameter_on_a_named_ones_number_is_given_by_name_as_the_api_takes_it(
    chat: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``:a`` takes number 1 and ``?1`` is the same parameter: ``db.read`` binds the statement
    from a mapping ({"a": …}) only, and the command refused ``-p a v`` ("give them by number");
    it takes the name now, and the number as before, and says which name is missing."""
    sql = "SELECT :a AS y, ?1 AS z, body FROM m WHERE id = ?1"
    with sc.Runtime(chat) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("chat", tables=TABLES)
        expected = db.read(sql, {"a": "2"})
        with pytest.raises(sc.QueryError, match="named parameters need a mapping"):
            db.read(sql, ["2"])
    assert expected == [{"y": "2", "z": "2", "body": "two"}]
    before = _tree(chat)
    for params in (["-p", "a", "2"], ["-p", ":a", "2"], ["-p", "1", "2"]):
        code, out, err = _run(capsys, "query", str(chat), "demo", "chat", sql, *params, "--json")
        assert (code, err) == (0, ""), params
        assert json.loads(out)["rows"] == expected, params
    code, out, err = _run(capsys, "query", str(chat), "demo", "chat", sql)
    assert code == 2 and out == ""
    assert "the statement uses :a but no value was given: pass it with -p a VALUE" in err
    assert _tree(chat) == before


def test_text_that_is_not_utf8_in_a_result_is_a_finding_without_python_names(
    chat: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(capsys, "query", str(chat), "demo", "chat", "SELECT char(55296)")
    assert code == 1 and "QueryError" in err and "not valid UTF-8" in err
    assert "UnicodeDecodeError" not in err


def test_infinity_prints_the_same_in_every_format(
    chat: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sql = "SELECT 1e308 * 10 AS big, -1e308 * 10 AS small"
    _, out, _ = _run(capsys, "query", str(chat), "demo", "chat", sql, "--json")
    assert json.loads(out)["rows"] == [{"big": "Infinity", "small": "-Infinity"}]
    _, out, _ = _run(capsys, "query", str(chat), "demo", "chat", sql, "--ndjson")
    assert json.loads(out) == {"big": "Infinity", "small": "-Infinity"}
    _, out, _ = _run(capsys, "query", str(chat), "demo", "chat", sql, "--csv")
    assert out.splitlines() == ["big,small", "Infinity,-Infinity"]
    _, out, _ = _run(capsys, "query", str(chat), "demo", "chat", sql)
    assert "Infinity  -Infinity" in out


# 6. the smaller points


def test_cells_of_a_space_the_store_does_not_hold_is_a_finding(
    chat: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(capsys, "cells", str(chat), "--space", "nospace")
    assert code == 1 and out == "" and "no space 'nospace'" in err
    code, out, _ = _run(capsys, "cells", str(chat), "--space", "demo")
    assert code == 0 and "database" in out


def test_cells_and_inspect_show_the_names_the_store_tells(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    piece = _piece(store)
    ref = _reference(tmp_path / "ref.db")
    assert main(["link", f"sqlite:{ref}", "demo", piece, "ref", "--store", str(store)]) == 0
    capsys.readouterr()
    code, out, _ = _run(capsys, "cells", str(store), "--json")
    assert code == 0
    rows = {row["id"]: row for row in json.loads(out)}
    assert (rows[piece]["kind"], rows[piece]["name"]) == ("piece", f"{lookup.name}/main")
    inputs = {row["name"]: row for row in rows.values() if row["kind"] == "input"}
    assert set(inputs) == {f"{lookup.name}/main.code", f"{lookup.name}/main.ref"}
    assert inputs[f"{lookup.name}/main.code"]["value"]["name"] == "code"  # the linked cell
    (code_cell,) = [row for row in rows.values() if row["name"] == "code"]
    assert code_cell["kind"] == "cell" and code_cell["value"] == "FR"
    (source,) = [row for row in rows.values() if row["kind"] == "disk source"]
    assert source["name"] == "ref.db"
    code, out, _ = _run(capsys, "inspect", str(store), "--json")
    (database,) = json.loads(out)["spaces"][0]["databases"]
    assert database["name"] == "ref.db"
    code, out, _ = _run(capsys, "inspect", str(store))
    assert f"database 'ref.db' ({source['id']})" in out


def test_query_of_an_injected_file_that_is_gone_says_what_to_do(
    store: Path, tmp_path: Path
) -> None:
    piece = _piece(store)
    ref = _reference(tmp_path / "ref.db")
    linked = run_cli("link", f"sqlite:{ref}", "demo", piece, "ref", "--store", str(store))
    assert linked.returncode == 0
    ref.rename(tmp_path / "moved.db")
    done = run_cli("query", str(store), "demo", "ref.db", "SELECT * FROM countries")
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.startswith("sqlite-cells: QueryError: ")
    assert (
        f"the injected file {ref} is gone (deleted or moved after it was registered): put "
        "it back there, or register the file where it is now (register_disk_source, or "
        "`sqlite-cells link` again) and link the inputs that read it to it there in "
        "'SELECT * FROM countries'" in done.stderr
    )


def test_python_dash_m_starts_the_command(chat: Path) -> None:
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    for module in ("sqlite_cells", "sqlite_cells.cli"):
        done = subprocess.run(
            [sys.executable, "-m", module, "cells", str(chat), "--json"],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )
        assert done.returncode == 0, done.stderr
        assert any(row["kind"] == "database" for row in json.loads(done.stdout))
    # A parameter value that is not UTF-8, as the shell passes it: bad usage, exit 2.
    not_utf8 = os.fsdecode(b"\xff\xfe")
    argv = [sys.executable, "-m", "sqlite_cells", "query", str(chat), "demo", "chat"]
    done = subprocess.run(
        [*argv, "SELECT ?", "-p", "1", not_utf8],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert done.returncode == 2 and "not valid UTF-8" in done.stderr
    assert "Traceback" not in done.stderr


def test_demo_refuses_an_output_format_it_cannot_give(capsys: pytest.CaptureFixture[str]) -> None:
    for flag in ("--json", "--csv", "--ndjson"):
        assert main(["demo", flag]) == 2
        err = capsys.readouterr().err
        assert "prints a walkthrough as text" in err and "Traceback" not in err


def test_an_injected_file_damaged_or_gone_is_a_finding_with_its_own_advice(
    store: Path, tmp_path: Path
) -> None:
    damaged, gone = tmp_path / "a.db", tmp_path / "b.db"
    for path in (damaged, gone):
        conn = apsw.Connection(str(path))
        conn.execute("CREATE TABLE t (x); INSERT INTO t VALUES (1)")
        conn.close()
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        ids = [space.register_disk_source(str(path)).id for path in (damaged, gone)]
    damaged.write_bytes(b"not a database at all, " * 100)
    gone.unlink()
    done = run_cli("inspect", str(store))
    assert done.returncode == 1, done.stdout
    findings = [line for line in done.stdout.splitlines() if line.startswith("finding: ")]
    assert len(findings) == 2, findings
    assert f"database {ids[0]} of space 'demo' is damaged (cannot read {damaged}: " in findings[0]
    assert "another program's file (injected, R60), which no command repairs" in findings[0]
    assert f"the injected file {gone} is gone (deleted or moved" in findings[1]
    assert "GONE: the injected file is not there" in done.stdout
    assert "check --repair" not in done.stdout and "sqlite-cells check" not in done.stdout
    # The JSON says the same: not there (missing), and why (gone, not rebuilt by anything).
    listed = json.loads(run_cli("inspect", "--json", str(store)).stdout)
    by_id = {d["id"]: d for s in listed["spaces"] for d in s["databases"]}
    assert [(by_id[i]["exists"], by_id[i]["missing"], by_id[i]["gone"]) for i in ids] == [
        (True, False, False),
        (False, True, True),
    ]
    rows = list(csv.DictReader(io.StringIO(run_cli("inspect", "--csv", str(store)).stdout)))
    assert sorted((r["id"], r["missing"], r["gone"]) for r in rows) == sorted(
        [(ids[0], "false", "false"), (ids[1], "true", "true")]
    )


@sc.pattern
def _rows_of(ref: sc.SqliteDb) -> sc.Query[dict[str, int]]:
    return ref.query("SELECT count(*) AS n FROM t")


def test_an_injected_file_moved_and_linked_again_where_it_is_now_is_no_longer_a_finding(
    store: Path, tmp_path: Path
) -> None:
    """R60, §6: after an injected file was moved, `inspect` advised registering it again where
    it is now (`link`); done, it still reported the old handle's file as gone (exit 1) for ever,
    and nothing cleared it (gc removes no injected file, and `drop()` of it is ReadOnlySource).
    A gone file's handle whose file is registered again (same device and inode) and that no
    cell links to any more is now listed as unused, not a finding; while an input still links
    to it, the finding stands and says to link every such input again."""
    reference, moved = tmp_path / "ref.db", tmp_path / "moved.db"
    conn = apsw.Connection(str(reference))
    conn.execute("CREATE TABLE t (x); INSERT INTO t VALUES (1)")
    conn.close()
    with sc.Runtime(store) as rt:
        space = rt.space("s")
        pieces = [space.run(_rows_of, key=key).id for key in ("a", "b")]
        rt.settle()
    for piece in pieces:
        assert run_cli("link", str(store), f"sqlite:{reference}", "s", piece, "ref").returncode == 0
    reference.rename(moved)
    gone = f"the injected file {reference} is gone (deleted or moved after it was registered)"
    advice = "every input linking to this handle is linked to it there (`sqlite-cells link`)"
    for piece in pieces:
        done = run_cli("inspect", str(store))
        assert done.returncode == 1 and gone in done.stdout and advice in done.stdout
        assert run_cli("tables", str(store)).returncode == 1
        assert run_cli("link", str(store), f"sqlite:{moved}", "s", piece, "ref").returncode == 0
    done = run_cli("inspect", str(store))
    assert done.returncode == 0, done.stdout
    assert "finding: " not in done.stdout
    assert (
        f"{reference}: rev 0, last write at seq 3, UNUSED: the file moved to {moved}, is "
        "registered again there, and no cell links to this handle any more"
    ) in done.stdout
    listed = json.loads(run_cli("inspect", str(store), "--json").stdout)
    (old,) = [d for d in listed["spaces"][0]["databases"] if d["file"] == str(reference)]
    assert (old["gone"], old["missing"], old["moved_to"], listed["findings"]) == (
        False, False, str(moved), [],
    )  # fmt: skip
    assert run_cli("tables", str(store)).returncode == 0


def test_tables_lists_the_store_and_reports_an_unreadable_injected_file_as_inspect_does(
    store: Path, tmp_path: Path
) -> None:
    """§6, R60: one injected file its own program damaged made `tables` print nothing (exit 1,
    advice to run `check`, which never looks at injected files). It lists the other databases
    and reports the file as `inspect` does: named, damaged, and what to do (exit 1)."""
    ref = _reference(tmp_path / "ref.db")
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        source = space.register_disk_source(str(ref)).id
        db = space.sqlite_database("chat", tables=TABLES)
        with space.transact():
            db.exec("INSERT INTO m (body) VALUES ('hi')")
    ref.write_bytes(b"not a database at all, " * 100)
    before = (_tree(store), ref.read_bytes())
    inspected = run_cli("inspect", str(store))
    (finding,) = [x for x in inspected.stdout.splitlines() if x.startswith("finding: ")]
    for args in ((), ("--json",)):
        done = run_cli("tables", str(store), *args)
        assert done.returncode == 1, done.stderr
        assert done.stderr == f"sqlite-cells: left out {finding.removeprefix('finding: ')}\n"
        assert f"database {source} of space 'demo' is damaged (cannot read {ref}" in done.stderr
        assert "restore it from that program or a backup" in done.stderr
        assert "sqlite-cells check" not in done.stderr
    rows = json.loads(done.stdout)
    assert [(r["database"], r["table"], r["rows"]) for r in rows] == [("chat", "m", 1)]
    assert (_tree(store), ref.read_bytes()) == before


def test_an_injected_file_its_program_holds_locked_is_marked_and_the_store_listed(
    store: Path, tmp_path: Path
) -> None:
    """§6, R60: the program that writes an injected file, in the middle of a write (an
    exclusive lock on its rollback-journal file), made `inspect` and `tables` list nothing of the
    store and blame "a program holding the store's files". They list the store and report that
    one file: locked by another program, try again once it lets go (exit 1)."""
    ref = _reference(tmp_path / "ref.db")
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        source = space.register_disk_source(str(ref)).id
        db = space.sqlite_database("chat", tables=TABLES)
        with space.transact():
            db.exec("INSERT INTO m (body) VALUES ('hi')")
    before = _tree(store)
    holder = apsw.Connection(str(ref))
    holder.execute("BEGIN EXCLUSIVE; INSERT INTO countries VALUES ('DE', 'Germany')")
    try:
        inspected = run_cli("inspect", str(store))
        listed = run_cli("tables", str(store), "--json")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    said = f"the injected file {ref} stayed locked by another program"
    assert inspected.returncode == 1 and inspected.stderr == ""
    assert "database 'chat'" in inspected.stdout and "watermark 2 (in sync)" in inspected.stdout
    (finding,) = [x for x in inspected.stdout.splitlines() if x.startswith("finding: ")]
    assert f"database {source} of space 'demo' cannot be read ({said}" in finding
    assert "try again once that program lets go" in finding
    assert "store's files" not in inspected.stdout
    assert listed.returncode == 1
    assert [(r["database"], r["table"]) for r in json.loads(listed.stdout)] == [("chat", "m")]
    assert listed.stderr == f"sqlite-cells: left out {finding.removeprefix('finding: ')}\n"
    assert _tree(store) == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("ref")) == ["ref.db"]


def test_check_escapes_a_stray_files_name_in_its_advice(tmp_path: Path) -> None:
    """§6: a file in the store named with control characters (a copy of a database file, an
    orphan to `check`) was escaped in its report line but written raw in the advice under it:
    an ESC sequence and a right-to-left override reached the terminal (`gc` escaped it)."""
    store = tmp_path / "store"
    db = written_once(store, "demo", "chat")
    shutil.copy(db.path, store / "cell-\x1b[31m\u202eEVIL\n.sqlite")
    for args in (("check",), ("check", "--repair")):
        done = run_cli(*args, "--store", str(store))
        assert done.returncode == 1, done.stdout
        assert "orphaned database file" in done.stdout
        assert "\x1b" not in done.stdout and "\u202e" not in done.stdout
        assert "\\x1b[31m" in done.stdout


def test_check_undoes_a_first_write_its_space_lost_as_a_runtime_does(tmp_path: Path) -> None:
    """R71, §6: a space file that lost the commit of a database's first write (put back from a
    copy taken before it) leaves that file one commit ahead, named by no space. A runtime
    declaring the database undoes that commit (a copy kept); `check` called the file orphaned,
    advised restoring a backup, and `--repair` left it. The file records its space and its id:
    `check` finds it ahead of that space and `--repair` undoes the commit as the runtime does."""
    store = tmp_path / "store"
    with sc.Runtime(store) as rt:
        space = rt.space("s")
        with space.transact():
            space.cell("c").set(1)
        space_file = space.file.path
    saved = tmp_path / "saved.sqlite"
    shutil.copyfile(space_file, saved)
    with sc.Runtime(store) as rt:
        space = rt.space("s")
        db = space.sqlite_database("db", tables=TABLES)
        with space.transact():
            db.exec("INSERT INTO m (body) VALUES ('lost')")
        db_file = db.path
    for suffix in ("-wal", "-shm"):
        Path(f"{space_file}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(saved, space_file)  # the space's last commit, the first write, is lost
    before = db_file.read_bytes()
    looked = run_cli("check", str(store))
    assert looked.returncode == 1, looked.stdout + looked.stderr
    assert f"({db_file.name}): watermark 2, space seq 0: ahead" in looked.stdout
    assert "run `sqlite-cells check --repair` to undo the one commit" in looked.stdout
    assert "orphaned" not in looked.stdout
    assert db_file.read_bytes() == before
    repaired = run_cli("check", str(store), "--repair")
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert "watermark 2, space seq 0: inverted" in repaired.stdout
    assert [p.name.split(".")[-2] for p in (store / "quarantine").glob("*.0")] == ["ahead-2-of-0"]
    with sc.Runtime(store) as rt:
        space = rt.space("s")
        db = space.sqlite_database("db", tables=TABLES)
        assert db.read("SELECT body FROM m") == []
        with space.transact():
            db.exec("INSERT INTO m (body) VALUES ('new')")
        assert db.read("SELECT body FROM m") == [{"body": "new"}]
    assert "in sync" in run_cli("check", str(store)).stdout
