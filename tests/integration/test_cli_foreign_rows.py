"""Rows another program wrote into a space file (a cell value that is a number or text, a
handle row whose revision is not an integer) never make a command fail with an internal error
(SPEC Errors, §6): listed as what they are, and a database whose handle row a runtime would
quarantine is refused by `query` as the library refuses it (R5)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import apsw
import pytest

import sqlite_cells as sc
from sqlite_cells.codec import EncodingError
from sqlite_cells.schema import db_file_name

from ..conftest import run_cli, written_once


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
    # (None, and what is wrong apart: a string value saying so would read as that string)
    assert shown[number]["value"] is None
    assert shown[number]["problem"] == "a stored int, not a JSON value"
    assert "problem" not in shown[text]
    assert shown[text]["value"] == {"a": 1}  # JSON stored as text reads as that JSON
    assert shown[other]["rev"] == -1
    done = run_cli("query", "--store", str(store), "demo", "chat", "SELECT body FROM t", "--json")
    assert done.returncode == 0, done.stderr
    done = run_cli("query", "--store", str(store), "demo", "other", "SELECT body FROM t")
    assert done.returncode == 1
    assert done.stderr.startswith("sqlite-cells: HandleQuarantined: database ")
    assert "has the revision 'x', which is not an integer" in done.stderr
    assert "two" not in done.stdout


def _store_with_text_not_utf8(store: Path, where: str) -> tuple[str, Path]:
    """A store whose space file holds, in ``where``, text that is not valid UTF-8 (another
    program wrote it): a cell's value, a cell's id, or the space's id."""
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        alice = space.cell("alice", default=None)
        chat = space.sqlite_database("chat", tables={"t": sc.table(who_cf_link=sc.cf_link())})
        with space.transact():
            alice.set({"name": "Alice"})
        with space.transact():
            chat.exec("INSERT INTO t (who_cf_link) VALUES (?)", [alice])
        alice_id = alice.id
    (space_file,) = store.glob("space-*.sqlite")
    conn = apsw.Connection(str(space_file))
    statement = {
        "cell value": "UPDATE _cf_cells SET value = CAST(x'7b22ff22' AS TEXT) WHERE id = ?",
        "cell id": "UPDATE _cf_cells SET id = CAST(x'6f663aff' AS TEXT) WHERE id = ?",
        "space id": "UPDATE _cf_meta SET value = CAST(x'64656dff' AS TEXT) "
        "WHERE key = 'space_id' AND ? IS NOT NULL",
    }[where]
    conn.execute(statement, (alice_id,))
    conn.close()
    return alice_id, space_file


def test_text_not_utf8_in_a_cell_row_is_listed_as_what_it_is(store: Path) -> None:
    _store_with_text_not_utf8(store, "cell value")
    done = run_cli("cells", "--store", str(store), "--json")
    assert done.returncode == 0, done.stderr
    rows = {row["kind"]: row for row in json.loads(done.stdout)}
    values = {kind: row["value"] for kind, row in rows.items()}
    assert values["cell"] is None and rows["cell"]["problem"] == "undecodable value of 4 bytes"
    assert list(values["database"]["tables"]) == ["t"]
    done = run_cli("query", str(store), "demo", "chat", "SELECT who_cf_link FROM t", "--json")
    assert done.returncode == 0, done.stderr  # the link names a cell whose value is unreadable
    assert json.loads(done.stdout)["rows"][0]["who_cf_link"]["value"] is None
    done = run_cli("tables", "--store", str(store), "--json")
    assert done.returncode == 0, done.stderr
    assert [row["table"] for row in json.loads(done.stdout)] == ["t"]


def test_a_cell_id_not_utf8_is_shown_as_its_bytes(store: Path) -> None:
    _store_with_text_not_utf8(store, "cell id")
    done = run_cli("cells", "--store", str(store), "--json")
    assert done.returncode == 0, done.stderr
    ids = [row["id"] for row in json.loads(done.stdout)]
    assert "<not UTF-8 text: x'6f663aff'>" in ids
    assert len(ids) == 2
    for command in ("tables", "query"):
        args = ("query", str(store), "demo", "chat", "SELECT who_cf_link FROM t")
        done = run_cli(*args) if command == "query" else run_cli(command, "--store", str(store))
        assert done.returncode == 0, (command, done.stderr)


def test_a_space_id_not_utf8_names_the_file_and_row(store: Path) -> None:
    _, space_file = _store_with_text_not_utf8(store, "space id")
    for command in ("cells", "tables"):
        done = run_cli(command, "--store", str(store))
        assert done.returncode == 1, (command, done.stderr)
        assert done.stderr.startswith(f"sqlite-cells: InspectError: left out {space_file}: ")
        assert "_cf_meta row 'space_id' holds text that is not valid UTF-8" in done.stderr
    done = run_cli("query", str(store), "demo", "chat", "SELECT who_cf_link FROM t")
    assert done.returncode == 1
    assert f"{space_file.name} holds a space id that is not valid UTF-8 text" in done.stderr
    done = run_cli("inspect", "--store", str(store), "--json")
    assert "internal error" not in done.stderr
    assert json.loads(done.stdout)["spaces"][0]["id"] == "<not UTF-8 text: x'64656dff'>"


def _store_with_a_quarantined_handle(store: Path, value: Callable[[str], bytes]) -> str:
    """Database ``victim`` written once, then its handle cell overwritten with ``value(its id)``
    by another program (R5: quarantined, its file kept)."""
    db_id = written_once(store, "g", "victim", 3).id
    (space_file,) = store.glob("space-*.sqlite")
    conn = apsw.Connection(str(space_file))
    conn.execute("UPDATE _cf_cells SET value = ? WHERE id = ?", (value(db_id), db_id))
    conn.close()
    return db_id


@pytest.mark.parametrize(
    "value",
    [
        lambda db_id: json.dumps({"id": db_id, "tables": {}, "rev": -5}).encode(),  # its shape
        lambda db_id: b"[1, 2]",  # nothing like a handle: its file in the store says it was one
    ],
    ids=["handle-shaped", "a-list"],
)
def test_a_database_whose_handle_does_not_decode_is_a_finding_of_every_listing(
    store: Path, value: Callable[[str], bytes]
) -> None:
    db_id = _store_with_a_quarantined_handle(store, value)
    done = run_cli("inspect", str(store))
    assert done.returncode == 1, done.stdout
    assert f"  database 'victim' ({db_id})\n" in done.stdout
    assert "QUARANTINED: its handle cell holds a value that is not a database handle" in (
        done.stdout
    )
    assert f"finding: database {db_id} of space 'g' is quarantined" in done.stdout
    data = json.loads(run_cli("inspect", str(store), "--json").stdout)
    (space,) = data["spaces"]
    assert [q["id"] for q in space["quarantined_handles"]] == [db_id]
    assert space["databases"] == []
    csv = run_cli("inspect", str(store), "--csv").stdout.splitlines()
    assert len(csv) == 2 and f",{db_id}," in csv[1] and ",quarantined handle," in csv[1]
    done = run_cli("tables", str(store))
    assert done.returncode == 1
    assert f"left out database {db_id} of space 'g' is quarantined" in done.stderr
    cells = {r["id"]: r for r in json.loads(run_cli("cells", str(store), "--json").stdout)}
    assert cells[db_id]["kind"] == "quarantined database"


def test_a_runtime_owned_databases_handle_naming_a_disk_file_quarantines_it(
    store: Path, tmp_path: Path
) -> None:
    """R5, R3: another program wrote `"source": {"kind": "disk", "path": …}` into a runtime-owned
    database's handle. `check` left the database out ("0 database(s) checked", exit 0),
    `inspect` reported the named file as the database's, and the runtime went on reading and
    writing its own file, carrying the forged key on at each write. Such a value is not this
    database's handle (an injected file's id derives from its path): every use is
    `Quarantined`, and `check` and `inspect` report it, changing nothing."""
    named = tmp_path / "elsewhere.db"
    named.write_bytes(b"not a database of this store")

    def forged(db_id: str) -> bytes:
        value = {"id": db_id, "tables": {"t": {"x": "integer"}}, "rev": 1}
        return json.dumps({**value, "source": {"kind": "disk", "path": str(named)}}).encode()

    db_id = _store_with_a_quarantined_handle(store, forged)
    before = {p.name: p.read_bytes() for p in store.iterdir() if p.is_file()}
    with sc.Runtime(store) as rt:
        space = rt.space("g")
        db = space.sqlite_database("victim", tables={"t": sc.table(x="integer")})
        query = db.query("SELECT x FROM t")
        rt.settle()
        state = query.get()
        assert state.result is None and isinstance(state.error, sc.Quarantined)
        assert f"names the injected file '{named}'" in str(state.error)
        with pytest.raises(sc.Quarantined, match="names the injected file"):
            db.read("SELECT x FROM t")
        with (
            pytest.raises(sc.Quarantined, match="names the injected file"),
            space.transact(),
        ):
            db.exec("INSERT INTO t (x) VALUES (4)")
    after = {p.name: p.read_bytes() for p in store.iterdir() if p.is_file()}
    assert {k: v for k, v in after.items() if not k.endswith(("-wal", "-shm"))} == {
        k: v for k, v in before.items() if not k.endswith(("-wal", "-shm"))
    }
    done = run_cli("check", str(store))
    assert done.returncode == 1, done.stdout
    assert "watermark 1, space seq 1: quarantined (its handle names the injected file" in (
        done.stdout
    )
    assert "restore the space's file from a backup" in done.stdout
    assert "1 database(s) checked" in done.stdout
    done = run_cli("inspect", str(store))
    assert done.returncode == 1, done.stdout
    assert f"file {named}" not in done.stdout
    assert f"file {db_file_name(db_id)}: QUARANTINED: its handle names the injected file" in (
        done.stdout
    )
    assert f"finding: database {db_id} of space 'g' is quarantined" in done.stdout


@pytest.mark.parametrize(
    "damage",
    ["DELETE FROM _cf_watermark", "UPDATE _cf_watermark SET seq = 'x'"],
    ids=["deleted", "text"],
)
def test_a_watermark_row_another_program_deleted_leaves_the_database_in_sync(
    store: Path, damage: str
) -> None:
    """The watermark row of a database file deleted by another program, or given a seq that is
    no integer (R70): the file's journal still says which commit wrote it last, so `check` finds
    it in sync (status 0), not behind with a `--repair` that cannot re-apply rows already there,
    and the runtime reads and writes it as before."""
    conn = apsw.Connection(str(written_once(store, "demo", "chat", 1).path))
    conn.execute(damage)
    conn.close()
    done = run_cli("check", "--store", str(store))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "watermark 1, space seq 1: in sync" in done.stdout
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        chat = space.sqlite_database("chat", tables={"t": sc.table(x="integer")})
        with space.transact():
            chat.exec("INSERT INTO t (x) VALUES (2)")
        assert chat.read("SELECT x FROM t ORDER BY rowid") == [{"x": 1}, {"x": 2}]
    done = run_cli("check", "--store", str(store))
    assert done.returncode == 0 and "watermark 2, space seq 2: in sync" in done.stdout


def _store_with_space_row(store: Path, sql: str) -> Path:
    written_once(store, "demo", "chat")
    (space_file,) = store.glob("space-*.sqlite")
    conn = apsw.Connection(str(space_file))
    conn.execute(sql)
    assert conn.changes() == 1
    conn.close()
    return space_file


_EVERY_COMMAND = (
    ("inspect",),
    ("check",),
    ("check", "--repair"),
    ("cells",),
    ("tables",),
    ("gc",),
    ("query", "demo", "chat", "SELECT x FROM t"),
)


def test_a_store_format_not_utf8_names_the_space_file(store: Path) -> None:
    space_file = _store_with_space_row(
        store, "UPDATE _cf_meta SET value = CAST(x'33ff' AS TEXT) WHERE key = 'format'"
    )
    for command, *rest in _EVERY_COMMAND:
        done = run_cli(command, str(store), *rest)
        assert done.returncode == 1, (command, done.stderr)
        assert done.stderr.startswith(
            f"sqlite-cells: StoreFormatError: the space file {space_file} records format "
            "<text that is not valid UTF-8: x'33ff'>, which is not a version number"
        ), (command, done.stderr)
    with pytest.raises(sc.SqliteCellsError, match=r"records format <text that is not valid"):
        written_once(store, "demo", "chat")


def test_a_log_record_not_utf8_names_the_space_file_and_its_seq(store: Path) -> None:
    space_file = _store_with_space_row(
        store,
        "UPDATE _cf_log SET record = CAST(x'7bff7d' AS TEXT) "
        "WHERE seq = (SELECT max(seq) FROM _cf_log)",
    )
    where = f"the log record of seq 1 in space file {space_file} cannot be read"
    for command, *rest in _EVERY_COMMAND:
        done = run_cli(command, str(store), *rest)
        if command == "cells":  # the cells are read from their rows, not from the log
            assert done.returncode == 0, done.stderr
            continue
        assert done.returncode == 1, (command, done.stderr)
        assert "internal error" not in done.stderr, (command, done.stderr)
        # `check`, `inspect` and `gc` report the space file as damaged and go on (stdout);
        # the others stop with the error (stderr).
        said = done.stdout + done.stderr
        assert where in said, (command, said)
        assert "from a backup" in said
    with sc.Runtime(store) as rt:
        db = rt.space("demo").sqlite_database("chat", tables={"t": sc.table(x="integer")})
        with pytest.raises(sc.Quarantined, match=re.escape(where)) as caught:
            db.read("SELECT x FROM t")
        assert "not valid UTF-8" not in str(caught.value)  # the space file's row, not the db's


def _source_with_names_not_utf8(path: Path) -> None:
    """A file another program wrote whose schema names a table, a column and an index with
    text that is not valid UTF-8 (SQLite takes any bytes as a name): a rowid table and a
    WITHOUT ROWID table of 3000 rows each (so that their b-trees have interior pages), and an
    index on an expression."""
    conn = apsw.Connection(str(path))
    conn.execute(
        "CREATE TABLE good (x); INSERT INTO good VALUES (1); CREATE INDEX e1 ON good (lower(x));"
        "CREATE TABLE t1 (a text); CREATE TABLE w1 (k PRIMARY KEY, v) WITHOUT ROWID;"
        "CREATE TABLE odd (a1b text); CREATE INDEX i1 ON odd (a1b);"
        "INSERT INTO odd VALUES ('x');"
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000) "
        "INSERT INTO t1 SELECT printf('%040d', i) FROM n;"
        "INSERT INTO w1 SELECT rowid, a FROM t1"
    )
    conn.execute("PRAGMA writable_schema = ON")
    for name, new_name, sql in (
        ("t1", b"t\xff", b'CREATE TABLE "t\xff" (a text)'),
        ("w1", b"w\xff", b'CREATE TABLE "w\xff" (k PRIMARY KEY, v) WITHOUT ROWID'),
        ("odd", b"odd", b'CREATE TABLE odd ("a\xffb" text)'),
        ("i1", b"i\xff", b'CREATE INDEX "i\xff" ON odd ("a\xffb")'),
    ):
        conn.execute(
            "UPDATE sqlite_schema SET name = CAST(?1 AS TEXT), sql = CAST(?2 AS TEXT), "
            "tbl_name = iif(type = 'table', CAST(?1 AS TEXT), tbl_name) WHERE name = ?3",
            (new_name, sql, name),
        )
    conn.execute("PRAGMA writable_schema = OFF")
    conn.close()


def test_a_disk_source_whose_names_are_not_utf8_is_listed_as_what_it_holds(
    store: Path, tmp_path: Path
) -> None:
    source = tmp_path / "source.db"
    _source_with_names_not_utf8(source)
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        handle = space.register_disk_source(str(source))
        with space.transact():
            space.cell("ref", default=None).set(handle)
    done = run_cli("tables", str(store), "--json")
    assert done.returncode == 0, done.stderr
    listed = {row["table"]: row for row in json.loads(done.stdout)}
    assert {name: row["rows"] for name, row in listed.items()} == {
        "good": 1,
        "odd": 1,
        "<not UTF-8 text: x'74ff'>": 3000,
        "<not UTF-8 text: x'77ff'>": 3000,
    }
    assert [c["name"] for c in listed["odd"]["columns"]] == ["<not UTF-8 text: x'61ff62'>"]
    assert listed["odd"]["indexes"] == [
        {"name": "<not UTF-8 text: x'69ff'>", "columns": ["<not UTF-8 text: x'61ff62'>"],
         "unique": False, "desc": [False], "collations": ["BINARY"], "where": None}
    ]  # fmt: skip
    # (an index on an expression, whose column SQLite names NULL, was an internal error too)
    assert listed["good"]["indexes"] == [
        {"name": "e1", "columns": ["<expression>"], "unique": False, "desc": [False],
         "collations": ["BINARY"], "where": None}
    ]  # fmt: skip
    done = run_cli("tables", str(store))
    assert done.returncode == 0, done.stderr
    assert re.search(
        r" odd +<not UTF-8 text: x'61ff62'> TEXT +<not UTF-8 text: x'69ff'>", done.stdout
    )
    done = run_cli("inspect", str(store), "--json")
    assert done.returncode == 0, done.stderr
    (db,) = json.loads(done.stdout)["spaces"][0]["databases"]
    assert {t["name"]: t["rows"] for t in db["tables"]} == {
        name: row["rows"] for name, row in listed.items()
    }
    done = run_cli("query", str(store), "demo", str(source), "SELECT * FROM odd")
    assert done.returncode == 1
    assert "internal error" not in done.stderr
    assert done.stderr.startswith("sqlite-cells: QueryError: database of:")
    assert f"text in the rows read from the file {source} is not valid UTF-8" in done.stderr
    done = run_cli("query", str(store), "demo", str(source), "SELECT x FROM good")
    assert done.returncode == 0, done.stderr


def test_link_text_with_a_key_given_twice_is_shown_as_the_text_it_is(store: Path) -> None:
    """R30, §6: another program stored, in a link column, link text giving "id" twice (SQLite
    reads the first id, msgspec the last): it names no one cell, so `query` shows it as the
    text it is, as any other malformed link, not by either cell's name."""
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        alice, bob = space.cell("alice", default=None), space.cell("bob", default=None)
        chat = space.sqlite_database("chat", tables={"t": sc.table(who_cf_link=sc.cf_link())})
        with space.transact():
            alice.set("Alice")
            bob.set("Bob")
            chat.exec("INSERT INTO t (who_cf_link) VALUES (?)", [bob])
            chat.exec("INSERT INTO t (who_cf_link) VALUES (?)", [bob])
        path, first, last = chat.path, alice.id, bob.id
    text = f'{{"/":{{"link@1":{{"id":"{first}","id":"{last}","space":"demo","scope":"space"}}}}}}'
    conn = apsw.Connection(str(path))
    conn.execute("UPDATE t SET who_cf_link = ? WHERE rowid = 2", (text,))
    conn.close()
    sql = "SELECT rowid AS n, who_cf_link FROM t ORDER BY rowid"
    done = run_cli("query", str(store), "demo", "chat", sql, "--json")
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)["rows"]
    assert rows[0]["who_cf_link"]["name"] == "bob"
    assert rows[1]["who_cf_link"] == text
    done = run_cli("query", str(store), "demo", "chat", sql)
    assert done.returncode == 0, done.stderr
    one, two = done.stdout.splitlines()[2:4]
    assert one.split() == ["1", "→", "bob", '"Bob"']
    assert two.split() == ["2", text]


def test_an_op_index_target_not_utf8_is_skipped_and_the_index_rebuilt(store: Path) -> None:
    """A row of the space file's op index whose target is text that is not UTF-8 names no
    database (every id is ASCII): scans skip it instead of failing in apsw's decoding; the
    database whose row it replaced is found missing from the index, which `check --repair`
    (or a runtime's first use) rebuilds from the log."""
    space_file = _store_with_space_row(
        store, "UPDATE _cf_op_index SET target = CAST(x'ff' AS TEXT)"
    )
    conn = apsw.Connection(str(space_file))
    conn.execute("INSERT INTO _cf_op_index (target, seq) VALUES (CAST(x'feff' AS TEXT), 1)")
    conn.close()
    for command, *rest in _EVERY_COMMAND:
        done = run_cli(command, str(store), *rest)
        said = done.stdout + done.stderr
        assert "not valid UTF-8" not in said and "internal error" not in said, (command, said)
    done = run_cli("check", str(store))
    assert done.returncode == 0, done.stdout + done.stderr  # rebuilt by `check --repair` above
    assert "in sync" in done.stdout
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("chat", tables={"t": sc.table(x="integer")})
        with space.transact():
            db.exec("INSERT INTO t (x) VALUES (2)")
        assert db.read("SELECT x FROM t ORDER BY x") == [{"x": 1}, {"x": 2}]
        space.file.compact_keep, space.file.keep_per_target = 1, 1
        assert space.file.compact() == 1  # compaction scans the index too


def test_a_compaction_point_not_utf8_names_its_row_and_what_to_do(store: Path) -> None:
    space_file = _store_with_space_row(
        store, "INSERT INTO _cf_meta (key, value) VALUES ('compacted', CAST(x'ff' AS TEXT))"
    )
    with pytest.raises(EncodingError) as caught, sc.Runtime(store) as rt:
        rt.space("demo")
    assert str(caught.value).startswith(
        f"the log's compaction point (the _cf_meta row 'compacted') in space file {space_file} "
        "is text that is not valid UTF-8 (x'ff'), not an integer"
    )
    assert "delete that row with another tool" in str(caught.value)
    conn = apsw.Connection(str(space_file))  # what the message says to do
    conn.execute("DELETE FROM _cf_meta WHERE key = 'compacted'")
    conn.close()
    with sc.Runtime(store) as rt:
        db = rt.space("demo").sqlite_database("chat", tables={"t": sc.table(x="integer")})
        with rt.space("demo").transact():
            db.exec("INSERT INTO t (x) VALUES (2)")
        assert db.read("SELECT x FROM t ORDER BY x") == [{"x": 1}, {"x": 2}]


@pytest.mark.parametrize("stored", ["'abc'", "2.5", "x'02'"])
def test_an_op_index_seq_not_an_integer_names_its_row_and_advice_that_works(
    store: Path, stored: str
) -> None:
    """A seq of the op index another program stored as text, a real or a blob is refused by a
    runtime and every command naming the row and the space file, and the advice — delete the
    row, then `check --repair` — works: the index is rebuilt from the log, nothing is lost."""
    db = written_once(store, "demo", "chat")
    written_once(store, "demo", "chat", 2)
    (space_file,) = store.glob("space-*.sqlite")
    conn = apsw.Connection(str(space_file))
    conn.execute(f"UPDATE _cf_op_index SET seq = {stored} WHERE seq = 2")
    assert conn.changes() == 1
    conn.close()
    expected = (
        f"a seq of the op index (a _cf_op_index row of target {db.id}) in space file "
        f"{space_file} is "
    )
    advice = (
        "delete that row with another tool (`DELETE FROM _cf_op_index WHERE typeof(seq) <> "
        "'integer'`: the index only lists which commits wrote what), then run `sqlite-cells "
        "check --repair`, which rebuilds the rows the index misses from the space's log"
    )
    with pytest.raises(EncodingError) as caught, sc.Runtime(store) as rt:
        space = rt.space("demo")
        space.sqlite_database("chat", tables={"t": sc.table(x="integer")}).read("SELECT x FROM t")
    assert str(caught.value).startswith(expected), str(caught.value)
    assert str(caught.value).endswith(advice)
    with sc.Runtime(store) as rt:  # a compaction that meets the row says the same
        space = rt.space("demo")
        counter = space.cell("counter", default=0)
        for n in range(3):
            with space.transact():
                counter.set(n)
        space.file.compact_keep, space.file.keep_per_target = 1, 1
        with pytest.raises(EncodingError) as caught:
            space.file.compact()
    assert str(caught.value).startswith(expected) and str(caught.value).endswith(advice)
    for command in ("check", "inspect"):
        done = run_cli(command, str(store))
        assert done.returncode == 1, (command, done.stderr)
        assert done.stderr.startswith(f"sqlite-cells: EncodingError: {expected}"), done.stderr
        assert advice in done.stderr
    conn = apsw.Connection(str(space_file))  # what the message says to do
    conn.execute("DELETE FROM _cf_op_index WHERE typeof(seq) <> 'integer'")
    conn.close()
    done = run_cli("check", str(store), "--repair")
    assert done.returncode == 0, done.stdout + done.stderr
    done = run_cli("check", str(store))
    assert done.returncode == 0 and "in sync" in done.stdout, done.stdout + done.stderr
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        chat = space.sqlite_database("chat", tables={"t": sc.table(x="integer")})
        with space.transact():
            chat.exec("INSERT INTO t (x) VALUES (3)")
        assert chat.read("SELECT x FROM t ORDER BY x") == [{"x": 1}, {"x": 2}, {"x": 3}]
        assert space.cell("counter", default=0).get() == 2


def test_a_compacted_seq_not_an_integer_names_its_row_and_advice_that_works(
    store: Path, tmp_path: Path
) -> None:
    """A `_cf_named` seq another program stored as text made `check` an internal error and a
    runtime's repair of a missing file Python's raw ValueError. It is refused naming the row
    and the space file, and the statement it gives restores the seq compaction removed up to,
    so a rebuild is still refused (the log lost that history) and the file put back is in sync."""
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("chat", tables={"t": sc.table(x="integer")})
        for x in range(4):
            with space.transact():
                db.exec("INSERT INTO t (x) VALUES (?)", [x])
        space.file.compact_keep, space.file.keep_per_target = 1, 1
        assert space.file.compact() == 3
    (space_file,) = store.glob("space-*.sqlite")
    conn = apsw.Connection(str(space_file))
    assert conn.execute("SELECT seq FROM _cf_named WHERE id = ?", (db.id,)).fetchall() == [(3,)]
    conn.execute("UPDATE _cf_named SET seq = 'abc'")
    conn.close()
    kept = tmp_path / "kept.sqlite"
    Path(db.path).rename(kept)
    expected = (
        f"the seq up to which the log was compacted for {db.id} (its _cf_named row) in space "
        f"file {space_file} is the text 'abc', not an integer"
    )
    done = run_cli("check", str(store))
    assert done.returncode == 1 and "internal error" not in done.stderr, done.stderr
    assert done.stderr.startswith(f"sqlite-cells: EncodingError: {expected}"), done.stderr
    with pytest.raises(EncodingError) as caught, sc.Runtime(store) as rt:
        space = rt.space("demo")
        space.sqlite_database("chat", tables={"t": sc.table(x="integer")}).read("SELECT x FROM t")
    assert str(caught.value).startswith(expected), str(caught.value)
    statement = str(caught.value).split("(`", 1)[1].split("`:", 1)[0]
    assert statement.startswith("UPDATE _cf_named SET seq = ")
    conn = apsw.Connection(str(space_file))  # what the message says to do
    conn.execute(statement)
    assert conn.execute("SELECT seq FROM _cf_named WHERE id = ?", (db.id,)).fetchall() == [(3,)]
    conn.close()
    done = run_cli("check", str(store))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "its space's log cannot rebuild it: the space's log was compacted" in done.stdout
    kept.rename(db.path)  # the file restored from its copy
    done = run_cli("check", str(store))
    assert done.returncode == 0 and "in sync" in done.stdout, done.stdout + done.stderr
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        chat = space.sqlite_database("chat", tables={"t": sc.table(x="integer")})
        assert [r["x"] for r in chat.read("SELECT x FROM t ORDER BY x")] == [0, 1, 2, 3]


def test_an_op_index_row_past_the_logs_end_says_to_delete_it_not_to_restore_the_file(
    store: Path,
) -> None:
    """An op index row another program wrote with a seq past the log's end quarantined the
    database with "restore the file from a backup" and `check` said to put the file back from
    a copy: the file was right, and no copy helps. Now both name the row and the statement
    that deletes it, and after it the database is in sync with its rows."""
    db = written_once(store, "demo", "chat")
    written_once(store, "demo", "chat", 2)
    (space_file,) = store.glob("space-*.sqlite")
    conn = apsw.Connection(str(space_file))
    conn.execute("INSERT INTO _cf_op_index (target, seq) VALUES (?, 99)", (db.id,))
    conn.close()
    said = (
        "the space file's op index lists commit 99 as one that wrote this database, past the "
        "log's last seq 2: no commit had that seq (another program wrote the row), and the "
        "file is not what is wrong; delete the row with another tool (`DELETE FROM "
        "_cf_op_index WHERE seq > (SELECT max(seq) FROM _cf_log)`), then run `sqlite-cells check`"
    )
    with sc.Runtime(store) as rt:
        chat = rt.space("demo").sqlite_database("chat", tables={"t": sc.table(x="integer")})
        with pytest.raises(sc.Quarantined) as caught:
            chat.read("SELECT x FROM t")
    assert said in str(caught.value)
    for args in (["check"], ["check", "--repair"]):
        done = run_cli(*args, str(store))
        assert done.returncode == 1, done.stdout + done.stderr
        assert said in done.stdout and "from a copy" not in done.stdout, done.stdout
        assert "until that row is deleted as said above" in done.stdout
    statement = said.split("(`", 1)[1].split("`)", 1)[0]
    conn = apsw.Connection(str(space_file))  # what the message says to do
    conn.execute(statement)
    conn.close()
    done = run_cli("check", str(store))
    assert done.returncode == 0 and "in sync" in done.stdout, done.stdout + done.stderr
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        chat = space.sqlite_database("chat", tables={"t": sc.table(x="integer")})
        with space.transact():
            chat.exec("INSERT INTO t (x) VALUES (3)")
        assert chat.read("SELECT x FROM t ORDER BY x") == [{"x": 1}, {"x": 2}, {"x": 3}]
