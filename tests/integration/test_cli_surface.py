"""The command line beside sqlite-utils (SPEC §6): one way to give the store, tables and cells
listings, links shown by what they name, JSON / CSV / NDJSON, parameters, timeout, version,
one error boundary (no traceback), Ctrl-C, and ``link`` that creates nothing when refused."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import apsw
import pytest

import sqlite_cells as sc
from sqlite_cells.cli._cli import main
from sqlite_cells.codec import derive_id

from ..conftest import run_cli

COMMAND = Path(sys.executable).parent / "sqlite-cells"
ALICE = derive_id("cell", "s", "alice")
CHAT = derive_id("sqlite", "s", "chat")
TABLES = {
    "messages": sc.table(
        id="integer primary key",
        author_cf_link=sc.cf_link(),
        body="text not null",
        ts="integer not null default 0",
        indexes={"by_ts": ["ts"]},
    )
}


@pytest.fixture
def chat_store(store: Path) -> Path:
    """A store with space ``s``: cells alice and profile (which links to alice) and a database
    ``chat`` with two messages by alice."""
    with sc.Runtime(store) as rt:
        space = rt.space("s")
        alice = space.cell("alice")
        profile = space.cell("profile")
        db = space.sqlite_database("chat", tables=TABLES)
        with space.transact():
            alice.set({"name": "Alice"})
            profile.set({"owner": alice, "tags": ["a"]})
        with space.transact():
            db.exec_many(
                "INSERT INTO messages (author_cf_link, body, ts) VALUES (?, ?, ?)",
                [[alice, "hello", 1], [alice, "again", 2]],
            )
    for path in store.glob("*.sqlite"):
        # The last connection to close removes the -wal/-shm companions the runtime's readers
        # left, so that a test can see whether a command leaves any.
        conn = apsw.Connection(str(path))
        conn.execute("SELECT count(*) FROM sqlite_schema").fetchall()
        conn.close()
    assert not [p for p in store.iterdir() if not p.name.endswith(".sqlite")]
    return store


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _tables_csv(capsys: pytest.CaptureFixture[str], store: Path) -> list[dict[str, str]]:
    """The rows of ``tables STORE --csv`` (which must succeed)."""
    code, out, err = _run(capsys, "tables", str(store), "--csv")
    assert code == 0, err
    return list(csv.DictReader(io.StringIO(out)))


def _tables_json(capsys: pytest.CaptureFixture[str], store: Path) -> Any:
    """What ``tables STORE --json`` prints (which must succeed), parsed."""
    code, out, err = _run(capsys, "tables", str(store), "--json")
    assert code == 0, err
    return json.loads(out)


def _files(store: Path) -> set[str]:
    return {p.name for p in store.iterdir()} if store.exists() else set()


@pytest.mark.parametrize(
    "command",
    [
        ["inspect"],
        ["tables"],
        ["schema"],
        ["cells"],
        ["check"],
        ["gc"],
        ["query", "s", "chat", "SELECT count(*) AS n FROM messages"],
    ],
)
@pytest.mark.parametrize("where", ["positional", "option-after", "option-before", "env"])
def test_every_command_takes_the_store_the_same_ways(
    chat_store: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    command: list[str],
    where: str,
) -> None:
    monkeypatch.delenv("SQLITE_CELLS_STORE", raising=False)
    name, rest = command[0], command[1:]
    argv = {
        "positional": [name, str(chat_store), *rest],
        "option-after": [name, *rest, "--store", str(chat_store)],
        "option-before": ["--store", str(chat_store), name, *rest],
        "env": [name, *rest],
    }[where]
    if where == "env":
        monkeypatch.setenv("SQLITE_CELLS_STORE", str(chat_store))
    before = _files(chat_store)
    code, out, err = _run(capsys, *argv, "--json")
    assert (code, err) == (0, "")
    json.loads(out)  # each command prints JSON
    if name == "query":  # the runtime's read pool opens files read-only: it may leave companions
        assert _files(chat_store) <= before | {f + s for f in before for s in ("-wal", "-shm")}
    else:
        assert _files(chat_store) == before  # nothing created, nothing left behind


def test_two_different_stores_is_bad_usage(
    chat_store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(capsys, "inspect", str(chat_store), "--store", str(tmp_path / "x"))
    assert code == 2 and "two stores given" in err and out == ""
    # The same directory spelled twice is fine.
    assert _run(capsys, "cells", str(chat_store), "--store", str(chat_store))[0] == 0


def test_query_with_one_argument_left_out_is_bad_usage(
    chat_store: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """STORE is optional, so `query STORE SPACE DB` (the SQL left out) reads as SPACE DB SQL
    on the default store: DB is taken for the SQL. With no store given, SPACE a directory with
    space files and the command failing anyway, it is bad usage (exit 2) that says which
    argument is missing."""
    monkeypatch.delenv("SQLITE_CELLS_STORE", raising=False)
    monkeypatch.chdir(tmp_path)  # no default store here
    code, out, err = _run(capsys, "query", str(chat_store), "s", "chat")
    assert (code, out) == (2, "")
    assert f"so {str(chat_store)!r}, a store's directory, was taken for SPACE, 's' for DB" in err
    assert "'chat' is no statement: the SQL seems to be missing" in err
    assert "sqlite-cells query STORE SPACE DB SQL" in err
    code, out, err = _run(capsys, "query", str(chat_store), "s", "SELECT 1 AS one")
    assert (code, out) == (2, "")
    assert "there is no store at" in err and "give all four" in err
    # A space id that is also a directory here, on a store given: a query as any other.
    (tmp_path / "s").mkdir()
    code, out, err = _run(capsys, "query", str(chat_store), "s", "chat", "SELECT 1 AS one")
    assert (code, err) == (0, "") and "1" in out
    # The store from the environment, SPACE a directory but no store: the guard's refusal
    # (exit 1) as for any SQL that is not a statement. SPACE a store: the SQL left out.
    monkeypatch.setenv("SQLITE_CELLS_STORE", str(chat_store))
    code, out, err = _run(capsys, "query", "s", "chat", "nonsense")
    assert code == 1 and "refused by the statement guard" in err
    code, out, err = _run(capsys, "query", str(chat_store), "s", "chat")
    assert code == 2 and "the SQL seems to be missing" in err
    # A refused statement of more words is the guard's to report, whatever was left out (here
    # SPACE), and so is one under a store's directory that shares the space's name.
    code, out, err = _run(capsys, "query", str(chat_store), "chat", "DELETE FROM messages")
    assert code == 1 and "refused by the statement guard" in err
    shutil.copytree(chat_store, tmp_path / "store-named-s")
    (tmp_path / "s").rmdir()
    (tmp_path / "store-named-s").rename(tmp_path / "s")
    code, out, err = _run(capsys, "query", "s", "chat", "SELECT * FROM sqlite_master")
    assert code == 1 and "refused by the statement guard" in err
    code, out, err = _run(capsys, "query", "", "chat", "SELECT 1")
    assert code == 1 and "the SQL seems" not in err


def test_tables_lists_columns_indexes_and_row_counts(
    chat_store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(capsys, "tables", str(chat_store), "--json")
    assert code == 0
    (table,) = json.loads(out)
    assert (table["space"], table["db_id"], table["table"], table["rows"]) == (
        "s",
        CHAT,
        "messages",
        2,
    )
    assert table["database"] == "chat"  # recorded by the store at the database's first write
    assert [(c["name"], c["type"], c["notnull"], c["pk"]) for c in table["columns"]] == [
        ("id", "INTEGER", False, 1),
        ("author_cf_link", "TEXT", False, 0),
        ("body", "TEXT", True, 0),
        ("ts", "INTEGER", True, 0),
    ]
    assert table["columns"][3]["default"] == "0"
    assert table["indexes"] == [
        {"name": "by_ts", "columns": ["ts"], "unique": False, "desc": [False],
         "collations": ["BINARY"], "where": None}
    ]  # fmt: skip

    code, out, _ = _run(capsys, "schema", "--store", str(chat_store), "--name", "chat")
    lines = out.splitlines()
    assert lines[0].split() == ["space", "database", "table", "columns", "indexes", "rows"]
    assert lines[2].startswith("s      chat      messages  id INTEGER primary key, ")
    assert "body TEXT not null" in lines[2] and lines[2].endswith("by_ts(ts)  2")


def test_tables_lists_generated_columns_of_databases_and_injected_files(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Every column `SELECT *` returns is listed, the generated ones (virtual or stored) marked.
    source = tmp_path / "prices.db"
    conn = apsw.Connection(str(source))
    conn.execute(
        "CREATE TABLE t (price INTEGER, twice INTEGER GENERATED ALWAYS AS (price * 2) VIRTUAL, "
        "more INTEGER GENERATED ALWAYS AS (price + 1) STORED)"
    )
    conn.execute("INSERT INTO t (price) VALUES (10)")
    conn.close()
    with sc.Runtime(store) as rt:
        space = rt.space("g")
        db = space.sqlite_database(
            "d",
            tables={
                "t": sc.table(
                    price="integer not null",
                    twice="integer generated always as (price * 2) virtual",
                    more="integer generated always as (price + 1) stored",
                )
            },
        )
        with space.transact():
            db.exec("INSERT INTO t (price) VALUES (10)")
        assert list(db.read("SELECT * FROM t")[0]) == ["price", "twice", "more"]
        space.register_disk_source(source)
    code, out, _ = _run(capsys, "tables", str(store), "--json")
    assert code == 0
    listed = json.loads(out)
    assert sorted(t["database"] for t in listed) == ["d", "prices.db"]
    for table in listed:
        assert [(c["name"], c["type"], c["generated"]) for c in table["columns"]] == [
            ("price", "INTEGER", None),
            ("twice", "INTEGER", "virtual"),
            ("more", "INTEGER", "stored"),
        ]
    code, out, _ = _run(capsys, "tables", str(store))
    lines = out.splitlines()[2:]
    assert len(lines) == 2 and all(
        "twice INTEGER generated virtual, more INTEGER generated stored" in line for line in lines
    )
    code, out, _ = _run(capsys, "tables", str(store), "--csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert {r["database"]: r["columns"] for r in rows} == {
        "d": "price INTEGER not null, twice INTEGER generated virtual, "
        "more INTEGER generated stored",
        "prices.db": "price INTEGER, twice INTEGER generated virtual, "
        "more INTEGER generated stored",
    }


def test_tables_lists_the_views_of_an_injected_file_marked_as_views(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A view of an injected file reads as a table does (`query` reads it); `tables` left it out.
    source = tmp_path / "ref.db"
    conn = apsw.Connection(str(source))
    conn.execute(
        "CREATE TABLE t (x INTEGER, y INTEGER); INSERT INTO t VALUES (1, 2), (3, 4);"
        "CREATE VIEW doubled AS SELECT x, y * 2 AS yy FROM t;"
        "CREATE TABLE gone (z); CREATE VIEW broken AS SELECT z FROM gone; DROP TABLE gone"
    )
    conn.close()
    before = source.read_bytes()
    with sc.Runtime(store) as rt:
        db = rt.space("v").register_disk_source(source)
        assert db.read("SELECT yy FROM doubled ORDER BY x") == [{"yy": 4}, {"yy": 8}]
    code, out, _ = _run(capsys, "tables", str(store), "--json")
    assert code == 0
    listed = {t["table"]: t for t in json.loads(out)}
    assert sorted(listed) == ["broken", "doubled", "t"]
    assert (listed["t"]["kind"], listed["t"]["rows"]) == ("table", 2)
    view = listed["doubled"]
    assert (view["kind"], view["rows"], view["indexes"]) == ("view", None, [])
    assert [c["name"] for c in view["columns"]] == ["x", "yy"]
    assert "problem" not in view
    broken = listed["broken"]
    assert (broken["kind"], broken["columns"]) == ("view", [])
    assert "its query fails" in broken["problem"] and "no such table" in broken["problem"]
    code, out, _ = _run(capsys, "tables", str(store), "--csv")
    rows = {r["table"]: r for r in csv.DictReader(io.StringIO(out))}
    assert sorted(rows) == ["broken (view)", "doubled (view)", "t"]
    assert (
        rows["doubled (view)"]["columns"].startswith("x ") and rows["doubled (view)"]["rows"] == ""
    )
    assert rows["t"]["rows"] == "2"
    code, out, _ = _run(capsys, "tables", str(store))
    assert code == 0 and "doubled (view)" in out
    code, out, _ = _run(capsys, "query", str(store), "v", "ref.db", "SELECT yy FROM doubled")
    assert code == 0 and "4" in out
    assert source.read_bytes() == before


def test_tables_of_a_store_whose_only_database_is_an_empty_injected_file(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # An empty file is an SQLite database of no tables: registered, it has nothing to list, and
    # the listing said only that no database of the store had been written.
    source = tmp_path / "empty.db"
    source.write_bytes(b"")
    with sc.Runtime(store) as rt:
        assert rt.space("e").register_disk_source(source).read("SELECT 1 AS one") == [{"one": 1}]
    code, out, err = _run(capsys, "tables", str(store))
    assert (code, err) == (0, "")
    assert out == (
        "(no tables: no database of this store has been written yet, and no injected file "
        "holds a table)\n"
    )
    assert source.read_bytes() == b""


def test_a_virtual_table_of_a_module_not_loaded_here_is_no_damage(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # An injected file whose program made a virtual table of its own extension: the runtime
    # reads the file's other tables, but `tables` and `inspect` called the whole file damaged
    # ("restore it from a backup") and listed none of them.
    source = tmp_path / "ext.db"
    conn = apsw.Connection(str(source))
    conn.execute("CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1), (2)")
    conn.execute("PRAGMA writable_schema = ON")
    conn.execute(
        "INSERT INTO sqlite_schema (type, name, tbl_name, rootpage, sql) VALUES ('table', 'ext', "
        "'ext', 0, 'CREATE VIRTUAL TABLE ext USING some_extension(a)')"
    )
    conn.close()
    before = source.read_bytes()
    with sc.Runtime(store) as rt:
        db = rt.space("x").register_disk_source(source)
        assert db.read("SELECT count(*) AS n FROM t") == [{"n": 2}]
        with pytest.raises(sc.QueryError) as info:
            db.read("SELECT * FROM ext")
        assert "no such module: some_extension" in str(info.value)
        assert "virtual table of a module" in str(info.value)
    code, out, err = _run(capsys, "tables", str(store), "--json")
    assert (code, err) == (0, "")
    listed = {t["table"]: t for t in json.loads(out)}
    assert sorted(listed) == ["ext", "t"]
    assert listed["t"]["rows"] == 2 and "problem" not in listed["t"]
    assert (listed["ext"]["rows"], listed["ext"]["columns"]) == (None, [])
    assert "not readable here: no such module: some_extension" in listed["ext"]["problem"]
    code, out, err = _run(capsys, "inspect", str(store), "--json")
    assert (code, err, json.loads(out)["findings"]) == (0, "", [])
    (space,) = json.loads(out)["spaces"]
    (database,) = space["databases"]
    assert {t["name"]: t["rows"] for t in database["tables"]} == {"ext": None, "t": 2}
    code, out, _ = _run(capsys, "inspect", str(store))
    assert code == 0 and "DAMAGED" not in out and "not readable here" in out
    assert source.read_bytes() == before


def test_tables_quotes_a_column_name_that_is_not_a_plain_identifier(
    store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # One column named `a, b` is not listed as two (`a`, `b TEXT`); a keyword is quoted too.
    with sc.Runtime(store) as rt:
        space = rt.space("q")
        db = space.sqlite_database(
            "d",
            tables={
                "t": sc.table(
                    {
                        "a, b": "text",
                        'say "hi"': "text",
                        "order": "integer",
                        "note": "text default 'x, y INTEGER'",
                        # UTF-8, though it reads like a name that is not: quoted all the same
                        "<not UTF-8 text: x'61', b": "text",
                    },
                    indexes={"by order": ["order", "a, b"], "<not UTF-8 text: x'69'>": ["note"]},
                )
            },
        )
        with space.transact():
            db.exec('INSERT INTO t ("a, b") VALUES (?)', ["v"])
    expected = (
        '"a, b" TEXT, "say ""hi""" TEXT, "order" INTEGER, note TEXT default \'x, y INTEGER\', '
        "\"<not UTF-8 text: x'61', b\" TEXT"
    )
    code, out, _ = _run(capsys, "tables", str(store), "--csv")
    assert code == 0
    (row,) = csv.DictReader(io.StringIO(out))
    assert row["columns"] == expected
    assert row["indexes"] == '"by order"("order", "a, b"), "<not UTF-8 text: x\'69\'>"(note)'
    code, out, _ = _run(capsys, "tables", str(store))
    assert expected in out.splitlines()[2]
    code, out, _ = _run(capsys, "tables", str(store), "--json")
    (table,) = json.loads(out)  # JSON gives each name as it is
    assert [c["name"] for c in table["columns"]] == [
        "a, b", 'say "hi"', "order", "note", "<not UTF-8 text: x'61', b"
    ]  # fmt: skip


def test_tables_lists_each_columns_constraints_and_the_tables_own(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # UNIQUE, COLLATE, CHECK, REFERENCES and AUTOINCREMENT change what a table accepts and how
    # it compares: a listing without them shows another table than the file holds.
    source = tmp_path / "pairs.db"
    conn = apsw.Connection(str(source))
    conn.execute(
        "CREATE TABLE p (x INTEGER, y INTEGER, PRIMARY KEY (x, y));"
        "CREATE TABLE t (a INTEGER, b INTEGER, UNIQUE (a, b), "
        "FOREIGN KEY (a, b) REFERENCES p (x, y), CHECK (a < b))"
    )
    conn.close()
    with sc.Runtime(store) as rt:
        space = rt.space("k")
        db = space.sqlite_database(
            "d",
            tables={
                "t": sc.table(
                    id="integer primary key autoincrement",
                    u="text unique",
                    n="text collate nocase not null default ''",
                    r="integer references t(id)",
                    c="integer check (c > 0)",
                )
            },
        )
        with space.transact():
            db.exec("INSERT INTO t (u, c) VALUES ('a', 1)")
        space.register_disk_source(source)
    rows = {(r["database"], r["table"]): r["columns"] for r in _tables_csv(capsys, store)}
    assert rows[("d", "t")] == (
        "id INTEGER primary key autoincrement, u TEXT unique, "
        "n TEXT not null default '' collate nocase, r INTEGER references t(id), "
        "c INTEGER check (c > 0)"
    )
    assert rows[("pairs.db", "t")] == (
        "a INTEGER, b INTEGER, unique (a, b), foreign key (a, b) references p(x, y), check (a < b)"
    )
    listed = {(t["database"], t["table"]): t for t in _tables_json(capsys, store)}
    declared = listed[("d", "t")]
    assert declared["constraints"] == []
    assert [
        (c["name"], c["collation"], c["autoincrement"], c["unique"], c["checks"], c["references"])
        for c in declared["columns"]
    ] == [
        ("id", "BINARY", True, False, [], None),
        ("u", "BINARY", False, True, [], None),
        ("n", "nocase", False, False, [], None),
        ("r", "BINARY", False, False, [], "t(id)"),
        ("c", "BINARY", False, False, ["c > 0"], None),
    ]
    injected = listed[("pairs.db", "t")]
    assert injected["constraints"] == [
        "unique (a, b)", "foreign key (a, b) references p(x, y)", "check (a < b)"
    ]  # fmt: skip
    assert not any(c["unique"] or c["references"] for c in injected["columns"])


def test_tables_lists_a_primary_key_over_several_columns_once_as_the_tables_own(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Marked "primary key" on each of its columns, a composite key read as several primary
    # keys, a table SQLite refuses to create; the key's order is its own, not the columns'.
    source = tmp_path / "pairs.db"
    conn = apsw.Connection(str(source))
    conn.execute(
        "CREATE TABLE p (x INTEGER, y TEXT NOT NULL, z, PRIMARY KEY (y, x));"
        "CREATE TABLE q (k TEXT PRIMARY KEY, v)"
    )
    conn.close()
    with sc.Runtime(store) as rt:
        rt.space("k").register_disk_source(source)
    rows = {r["table"]: r["columns"] for r in _tables_csv(capsys, store)}
    assert rows["p"] == "x INTEGER, y TEXT not null, z, primary key (y, x)"
    assert rows["q"] == "k TEXT primary key, v"
    listed = {t["table"]: t for t in _tables_json(capsys, store)}
    assert listed["p"]["constraints"] == ["primary key (y, x)"]
    assert [(c["name"], c["pk"]) for c in listed["p"]["columns"]] == [("x", 2), ("y", 1), ("z", 0)]
    assert listed["q"]["constraints"] == []


def test_tables_lists_without_rowid_and_strict_tables_options(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A STRICT table refuses a value of another type than its column's, and a WITHOUT ROWID
    # table has no rowid to select: a listing without them shows another table than the file
    # holds.
    source = tmp_path / "kinds.db"
    conn = apsw.Connection(str(source))
    conn.execute(
        "CREATE TABLE s (id INTEGER PRIMARY KEY, n INTEGER) STRICT;"
        "CREATE TABLE w (k TEXT PRIMARY KEY, v) WITHOUT ROWID;"
        "CREATE TABLE b (k TEXT PRIMARY KEY, v ANY) WITHOUT ROWID, STRICT;"
        "CREATE TABLE plain (a)"
    )
    conn.close()
    with sc.Runtime(store) as rt:
        rt.space("k").register_disk_source(source)
    rows = {r["table"]: r["columns"] for r in _tables_csv(capsys, store)}
    assert rows == {
        "b (without rowid, strict)": "k TEXT primary key not null, v ANY",
        "plain": "a",
        "s (strict)": "id INTEGER primary key, n INTEGER",
        "w (without rowid)": "k TEXT primary key not null, v",
    }
    assert {t["table"]: t["options"] for t in _tables_json(capsys, store)} == {
        "b": ["without rowid", "strict"],
        "plain": [],
        "s": ["strict"],
        "w": ["without rowid"],
    }


def test_tables_lists_an_indexs_order_collation_and_condition_as_declared(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # An index on (a, b DESC), with a COLLATE or partial (WHERE …) was listed as plain (a, b):
    # another index than the file holds, in every format.
    source = tmp_path / "indexed.db"
    conn = apsw.Connection(str(source))
    conn.execute(
        "CREATE TABLE s (a, b, c, d TEXT COLLATE nocase);"
        "CREATE INDEX i1 ON s (a, b DESC);"
        "CREATE INDEX i2 ON s (c COLLATE nocase) WHERE a > 0;"
        "CREATE UNIQUE INDEX i3 ON s (d, lower(c) DESC) WHERE c IN (1, 2) -- two\n;"
        "CREATE INDEX i4 ON s (d COLLATE binary)"
    )
    conn.close()
    before = source.read_bytes()
    with sc.Runtime(store) as rt:
        rt.space("k").register_disk_source(source)
    listed = {
        "i1": "i1(a, b desc)",
        "i2": "i2(c collate nocase) where a > 0",
        "i3": 'i3(d, "<expression>" desc) unique where c IN (1, 2)',
        # (d's own collation is listed with d; an index's other one beside its key)
        "i4": "i4(d collate binary)",
    }
    code, out, _ = _run(capsys, "tables", str(store), "--csv")
    assert code == 0
    (row,) = csv.DictReader(io.StringIO(out))
    assert row["indexes"] == ", ".join(listed[name] for name in ("i4", "i3", "i2", "i1"))
    code, out, _ = _run(capsys, "tables", str(store))
    assert code == 0 and row["indexes"] in out
    code, out, _ = _run(capsys, "tables", str(store), "--json")
    assert code == 0
    (table,) = json.loads(out)
    assert {i["name"]: i for i in table["indexes"]} == {
        "i1": {"name": "i1", "columns": ["a", "b"], "unique": False, "desc": [False, True],
               "collations": ["BINARY", "BINARY"], "where": None},
        "i2": {"name": "i2", "columns": ["c"], "unique": False, "desc": [False],
               "collations": ["nocase"], "where": "a > 0"},
        "i3": {"name": "i3", "columns": ["d", "<expression>"], "unique": True,
               "desc": [False, True], "collations": ["nocase", "BINARY"], "where": "c IN (1, 2)"},
        "i4": {"name": "i4", "columns": ["d"], "unique": False, "desc": [False],
               "collations": ["binary"], "where": None},
    }  # fmt: skip
    assert source.read_bytes() == before


def test_tables_lists_an_expression_default_in_its_parentheses(
    store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # SQLite reports `default (1 + 2)` as `1 + 2`: listed bare, it read as `default 1` and more.
    with sc.Runtime(store) as rt:
        space = rt.space("k")
        db = space.sqlite_database(
            "d",
            tables={
                "t": sc.table(
                    id="integer primary key",
                    e="integer default (1 + 2)",
                    f="text default (lower('A'))",
                    n="integer default -1",
                    s="text default 'a''b'",
                    b="blob default x'00'",
                    c="text default current_timestamp",
                )
            },
        )
        with space.transact():
            db.exec("INSERT INTO t DEFAULT VALUES")
    (row,) = _tables_csv(capsys, store)
    assert row["columns"] == (
        "id INTEGER primary key, e INTEGER default (1 + 2), f TEXT default (lower('A')), "
        "n INTEGER default -1, s TEXT default 'a''b', b BLOB default x'00', "
        "c TEXT default current_timestamp"
    )
    (table,) = _tables_json(capsys, store)  # JSON gives SQLite's text as it is
    assert [c["default"] for c in table["columns"]][1:3] == ["1 + 2", "lower('A')"]


def test_cells_lists_names_kinds_values_and_links_by_name(
    chat_store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(capsys, "cells", str(chat_store), "--json", "--name", "alice")
    assert code == 0
    by_id = {c["id"]: c for c in json.loads(out)}
    assert by_id[ALICE] == {
        "space": "s",
        "name": "alice",
        "id": ALICE,
        "kind": "cell",
        "rev": 1,
        "value": {"name": "Alice"},
    }
    profile = by_id[derive_id("cell", "s", "profile")]
    assert profile["name"] == "profile"  # recorded by the store at the cell's first write
    assert profile["value"] == {
        "owner": {"cell": ALICE, "space": "s", "name": "alice", "path": []},
        "tags": ["a"],
    }
    assert (by_id[CHAT]["kind"], by_id[CHAT]["value"]["rev"]) == ("database", 1)

    code, out, _ = _run(capsys, "cells", "--store", str(chat_store), "--name", "alice", "--csv")
    rows = {r["id"]: r for r in csv.DictReader(io.StringIO(out))}
    assert rows[ALICE]["name"] == "alice" and rows[ALICE]["value"] == '{"name":"Alice"}'
    assert rows[derive_id("cell", "s", "profile")]["value"] == '{"owner":"→ alice","tags":["a"]}'
    assert rows[CHAT]["value"] == "rev 1; tables messages"
    assert '{"/"' not in out  # never a raw link


def test_query_shows_links_by_what_they_name(
    chat_store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sql = "SELECT id, author_cf_link AS author, body FROM messages ORDER BY id"
    code, out, _ = _run(capsys, "query", str(chat_store), "s", "chat", sql, "--name", "alice")
    assert code == 0
    lines = out.splitlines()
    assert lines[2] == '1   → alice {"name":"Alice"}  hello'
    code, out, _ = _run(capsys, "query", str(chat_store), "s", "chat", sql)
    assert '→ alice {"name":"Alice"}' in out and '{"/"' not in out  # the name the store recorded

    code, out, _ = _run(capsys, "query", str(chat_store), "s", "chat", sql, "--ndjson")
    assert _run(capsys, "query", str(chat_store), "s", "chat", sql, "--nl")[1] == out
    first, second = (json.loads(line) for line in out.splitlines())
    assert first["author"]["cell"] == ALICE and first["author"]["value"] == {"name": "Alice"}
    assert (second["id"], second["body"]) == (2, "again")

    code, out, _ = _run(capsys, "query", "s", "chat", sql, "--store", str(chat_store), "--csv")
    assert out.splitlines()[0] == "id,author,body"
    assert list(csv.reader(io.StringIO(out)))[2] == ["2", '→ alice {"name":"Alice"}', "again"]


@pytest.mark.parametrize(
    "built",
    ["json_group_array(json(author_cf_link))", "json_group_array(author_cf_link)"],
    ids=["links-as-json", "link-text-as-strings"],
)
def test_links_inside_json_text_are_shown_by_what_they_name(
    chat_store: Path, capsys: pytest.CaptureFixture[str], built: str
) -> None:
    """§6: links shown by what they name, not as raw JSON — also inside a JSON value a query
    builds from link columns, in text and in JSON output (where the value stays a string), and
    whether the link's text went in as JSON (`json(col)`) or as a string (`col` alone, the
    natural way to write the aggregate, printed the raw link text escaped)."""
    sql = f"SELECT {built} AS authors FROM messages"
    code, out, _ = _run(capsys, "query", str(chat_store), "s", "chat", sql, "--name", "alice")
    assert code == 0
    assert out.splitlines()[2] == '["→ alice","→ alice"]'
    code, out, _ = _run(capsys, "query", str(chat_store), "s", "chat", sql, "--ndjson")
    (row,) = (json.loads(line) for line in out.splitlines())
    assert (
        json.loads(row["authors"])
        == [
            {"cell": ALICE, "space": "s", "name": "alice", "path": []},
        ]
        * 2
    )
    code, out, _ = _run(
        capsys, "query", str(chat_store), "s", "chat", "SELECT '[1, \"link@1\"]' AS t"
    )
    assert out.splitlines()[2] == '[1, "link@1"]'  # JSON text without links: as it is


def test_query_parameters_by_name_and_by_position(
    chat_store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def bodies(sql: str, *params: str) -> tuple[int, Any]:
        code, out, err = _run(capsys, "query", str(chat_store), "s", "chat", sql, *params, "--json")
        return code, [r["body"] for r in json.loads(out)["rows"]] if code == 0 else err

    assert bodies("SELECT body FROM messages WHERE ts > :after", "-p", "after", "1") == (
        0,
        ["again"],
    )
    assert bodies(
        "SELECT body FROM messages WHERE ts >= ? AND body <> ?", "-p", "1", "1", "-p", "2", "hello"
    ) == (0, ["again"])
    code, err = bodies("SELECT body FROM messages WHERE ts = ?", "-p", "1", "1", "-p", "x", "2")
    assert code == 2 and "all by number" in err
    code, err = bodies("SELECT body FROM messages WHERE ts = ?", "-p", "2", "1")
    assert code == 2 and "no parameter 2" in err and "-p 1 VALUE" in err
    code, err = bodies("SELECT body FROM messages WHERE ts = ?")
    assert code == 2 and "-p 1 VALUE" in err  # a missing binding is bad usage


def test_a_parameter_compared_with_a_link_column_is_a_cells_id_or_refused(
    chat_store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The command shows a link as the cell it names (`→ alice`, or its id in JSON): a cell's
    # id given for a parameter compared with a link column is bound as that cell's link;
    # other text, which no row could match, is bad usage saying what to give.
    with sc.Runtime(chat_store) as rt:  # a message by bob, a cell of another space
        bob = rt.space("t").cell("bob")
        with rt.space("t").transact():
            bob.set(1)
        with rt.space("s").transact():
            db = rt.space("s").sqlite_database("chat", tables=TABLES)
            db.exec("INSERT INTO messages (author_cf_link, body, ts) VALUES (?, 'x', 3)", [bob])
    before = {p.name: p.read_bytes() for p in chat_store.iterdir()}

    def ids(sql: str, *params: str) -> tuple[int, Any]:
        code, out, err = _run(capsys, "query", str(chat_store), "s", "chat", sql, *params, "--json")
        return code, [r["id"] for r in json.loads(out)["rows"]] if code == 0 else err

    by_name = "SELECT id FROM messages WHERE author_cf_link = :a ORDER BY id"
    assert ids(by_name, "-p", "a", ALICE) == (0, [1, 2])
    assert ids("SELECT id FROM messages WHERE author_cf_link IS ? AND ts = ?", "-p", "1", ALICE,
               "-p", "2", "2") == (0, [2])  # fmt: skip
    assert ids(
        "SELECT id FROM messages WHERE author_cf_link IN (:a, :b)", "-p", "a", ALICE, "-p", "b",
        derive_id("cell", "s", "bob"),
    ) == (0, [1, 2])  # fmt: skip
    link = json.dumps({"/": {"link@1": {"id": ALICE, "space": "s", "scope": "space"}}})
    assert ids(by_name, "-p", "a", link.replace(" ", "")) == (0, [1, 2])  # as stored: as it is
    for value in ("alice", "5", ""):
        code, err = ids(by_name, "-p", "a", value)
        assert code == 2, err
        assert "the statement compares it with the link column author_cf_link" in err
        assert "give the id of the linked cell (of:…" in err
        assert "Traceback" not in err
    code, err = ids(by_name, "-p", "a", "alice")
    assert f"a top-level cell named 'alice' there has the id {ALICE}" in err
    # A value compared with no link column is bound as the text it is.
    assert ids("SELECT id FROM messages WHERE body = :a", "-p", "a", "again") == (0, [2])
    # Nor is one also compared with another column: it is bound as it is, as db.read binds it.
    mixed = "SELECT id FROM messages WHERE author_cf_link = ?1 OR body = ?1 ORDER BY id"
    assert ids(mixed, "-p", "1", "hello") == (0, [1])
    # A cell of another space is given as `query --json` shows its link; its id alone is taken
    # as a cell of SPACE, which holds none such: refused, saying how to give it.
    shown = json.loads(
        _run(
            capsys,
            "query",
            str(chat_store),
            "s",
            "chat",
            "SELECT author_cf_link FROM messages WHERE id = 3",
            "--json",
        )[1]
    )
    by_bob = shown["rows"][0]["author_cf_link"]
    assert (by_bob["cell"], by_bob["space"]) == (bob.id, "t")
    assert ids(by_name, "-p", "a", json.dumps(by_bob)) == (0, [3])
    assert ids(by_name, "-p", "a", json.dumps({"cell": bob.id, "space": "t"})) == (0, [3])
    code, err = ids(by_name, "-p", "a", bob.id)
    assert code == 2, err
    assert "space 's' holds no cell of that id, a cell of space 't'" in err
    assert f"""-p a '{{"cell":"{bob.id}","space":"t"}}'""" in err
    # Text of an id's form that no id has is refused, not bound as a link matching nothing.
    for value in ("of:zz", "of:" + ALICE[3:].upper(), json.dumps({"cell": "of:zz", "space": "t"})):
        code, err = ids(by_name, "-p", "a", value)
        assert code == 2, err
        assert "'of:' and 52 characters of a-z and 2-7" in err
        assert "the statement compares it with the link column author_cf_link" in err
    # The read's own errors come first: a table that does not exist is the read's error.
    code, err = ids("SELECT id FROM nosuch WHERE author_cf_link = ?", "-p", "1", "x")
    assert code == 1, err
    assert "QueryError" in err and "no such table: nosuch" in err and "link column" not in err
    assert {p.name: p.read_bytes() for p in chat_store.iterdir()} == before


def test_timeout_ends_a_runaway_query(chat_store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    forever = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT max(x) FROM c"
    code, out, err = _run(
        capsys, "query", str(chat_store), "s", "chat", forever, "--timeout", "0.2"
    )
    assert code == 1 and out == "" and "QueryTimeout" in err
    # In the command's words: its option, not the runtime's query_timeout.
    assert "interrupted after 0.2s (--timeout): narrow the query, or give a larger --timeout" in err
    assert "query_timeout" not in err
    for bad in ("-1", "3000000", "1e308"):  # past SQLite's busy timeout: bad usage, not a crash
        with pytest.raises(SystemExit) as exit_info:
            main(["query", str(chat_store), "s", "chat", "SELECT 1", "--timeout", bad])
        assert exit_info.value.code == 2
        assert "at most 2,000,000" in capsys.readouterr().err or bad == "-1"


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out == f"sqlite-cells {metadata.version('sqlite-cells')}\n"


def _command(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "SQLITE_CELLS_STORE"}
    return subprocess.run(
        [str(COMMAND), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_no_command_prints_a_traceback(
    chat_store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("not a store")
    (space_file,) = chat_store.glob("space-*.sqlite")
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / space_file.name).write_bytes(b"this is not a database" * 100)
    cases = [
        (["inspect", str(a_file)], 1, f"no store at {a_file} (a file stands there): "),
        (["cells", "--store", str(damaged)], 1, "cannot"),
        (["tables", str(damaged)], 1, "cannot"),
        (["query", str(chat_store), "s", "chat", "SELECT * FROM _cf_watermark"], 1, "guard"),
        (["query", str(chat_store), "s", "chat", "SELECT nope FROM messages"], 1, "QueryError"),
        (["frobnicate"], 2, "usage: sqlite-cells"),
    ]
    # The real command for the cases that end outside SQLite's or our errors (a raw apsw error
    # from a layer below, argparse), in-process for the others: the boundary is main() itself.
    for argv, code, message in cases:
        if argv[0] in ("gc", "frobnicate", "inspect"):
            done = _command(*argv)
            returncode, err = done.returncode, done.stderr
        else:
            returncode = main(argv)
            err = capsys.readouterr().err
        assert (returncode, "Traceback" in err) == (code, False), (argv, err)
        assert message in err, (argv, err)


def _wait_until_open(pid: int, path: Path) -> None:
    """Until the process ``pid`` has ``path`` open (the query is running)."""
    fds = Path(f"/proc/{pid}/fd")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if any(os.readlink(fd) == str(path) for fd in fds.iterdir()):
                return
        except OSError:
            pass  # a descriptor closed while listing
        time.sleep(0.01)
    raise AssertionError(f"process {pid} never opened {path}")


def _interrupted(store: Path, when: Callable[[int], None]) -> tuple[int, str, str]:
    """Run a never-ending ``query`` on ``store``, send it Ctrl-C once ``when(pid)`` returns,
    and give its (exit status, stdout, stderr)."""
    forever = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT max(x) FROM c"
    env = {k: v for k, v in os.environ.items() if k != "SQLITE_CELLS_STORE"}
    env["PYTHONFAULTHANDLER"] = "1"  # SIGABRT below prints where each thread is
    process = subprocess.Popen(
        [str(COMMAND), "query", str(store), "s", "chat", forever, "--timeout", "60"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        when(process.pid)
        process.send_signal(signal.SIGINT)
        try:
            out, err = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGABRT)
            out, err = process.communicate(timeout=30)
            raise AssertionError(f"Ctrl-C did not end the command; its threads:\n{err}") from None
    finally:
        process.kill()
        process.communicate()  # closes its pipes even when it had to be killed
    return process.returncode, out, err


def test_ctrl_c_exits_130_and_leaves_the_store_consistent(chat_store: Path) -> None:
    (db_file,) = chat_store.glob("cell-*.sqlite")
    done = _interrupted(chat_store, lambda pid: _wait_until_open(pid, db_file.resolve()))
    assert done == (130, "", "sqlite-cells: interrupted\n")
    checked = _command("check", str(chat_store))
    assert checked.returncode == 0 and "in sync" in checked.stdout


def test_ctrl_c_while_the_command_is_still_importing_exits_130_without_a_traceback(
    chat_store: Path,
) -> None:
    """The signal arrives once the process has loaded apsw, while the package's modules are
    still being imported (before the command's own handler runs)."""
    done = _interrupted(chat_store, lambda pid: _wait_until_loaded(pid, "apsw"))
    assert done == (130, "", "sqlite-cells: interrupted\n")


_TORN_IMPORT = """
import importlib.abc, signal, sys

class CtrlC(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "sqlite_cells.cli._cli":
            signal.raise_signal(signal.SIGINT)  # Ctrl-C in the middle of the imports
        return None

sys.meta_path.insert(0, CtrlC())
from sqlite_cells.cli._entry import _run

code = _run(["cells", "--help"])
print(code, "sqlite_cells.cli._cli" in sys.modules)
"""


def test_ctrl_c_during_the_imports_is_answered_once_they_are_done() -> None:
    """A KeyboardInterrupt raised inside an import can crash the interpreter (msgspec building a
    decoder's type information at import time; status -11 seen), so Ctrl-C while the command's
    modules are imported is held back: the imports complete, then the command ends with 130."""
    done = subprocess.run(
        [sys.executable, "-c", _TORN_IMPORT], capture_output=True, text=True, timeout=60
    )
    assert (done.returncode, done.stdout.split()) == (0, ["130", "True"]), done.stderr
    assert done.stderr == "sqlite-cells: interrupted\n"


# Runs the console script as it is, with Ctrl-C arriving the moment a module is first imported
# (an audit hook; nothing imported before the script but signal and sys).
_CTRL_C_AT_IMPORT = """
import signal, sys
target, command = sys.argv[1], sys.argv[2]
fired = []
def ctrl_c(event, args):
    if event == "import" and args[0] == target and not fired:
        fired.append(True)
        signal.raise_signal(signal.SIGINT)
sys.addaudithook(ctrl_c)
sys.argv = [command, "--version"]
exec(compile(open(command).read(), command, "exec"), {"__name__": "__main__"})
"""


@pytest.mark.parametrize("module", ["typing", "threading", "sqlite_cells.cli._entry"])
def test_ctrl_c_from_the_packages_first_imports_on_exits_130_without_a_traceback(
    module: str,
) -> None:
    """The console script's first module takes Ctrl-C before anything that takes time is
    imported: typing (≈ 9 ms, imported by the package's `__init__` before), threading (imported
    before Ctrl-C was taken) and the command's own modules."""
    done = subprocess.run(
        [sys.executable, "-c", _CTRL_C_AT_IMPORT, module, str(COMMAND)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stdout, done.stderr) == (130, "", "sqlite-cells: interrupted\n")


# Ctrl-C while argparse reads the sub-command's arguments: the moment its intermixed parsing
# formats the usage it keeps for its messages (a profile hook).
_CTRL_C_IN_ARGPARSE = """
import os, signal, sys
def ctrl_c(frame, event, arg):
    code = frame.f_code
    if event == "call" and code.co_name == "format_usage" and "argparse" in code.co_filename:
        sys.setprofile(None)
        os.kill(os.getpid(), signal.SIGINT)
sys.argv = ["sqlite-cells", "cells", sys.argv[1]]
from sqlite_cells.cli._start import main
sys.setprofile(ctrl_c)
sys.exit(main())
"""


def test_ctrl_c_while_the_arguments_are_read_exits_130_without_a_traceback(
    tmp_path: Path,
) -> None:
    """A KeyboardInterrupt inside argparse's intermixed parsing makes argparse's own clean-up
    raise an AttributeError (status 1 and its traceback): Ctrl-C waits for the parse."""
    done = subprocess.run(
        [sys.executable, "-c", _CTRL_C_IN_ARGPARSE, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stdout, done.stderr) == (130, "", "sqlite-cells: interrupted\n")


def test_a_command_started_with_ctrl_c_ignored_keeps_ignoring_it(chat_store: Path) -> None:
    """A background job (`sqlite-cells query … &` in a script, nohup) is started with SIGINT
    ignored: a Ctrl-C meant for the foreground, sent while it imports or while it reads, leaves
    it running, as shells expect."""
    forever = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT max(x) FROM c"
    (db_file,) = chat_store.glob("cell-*.sqlite")
    env = {k: v for k, v in os.environ.items() if k != "SQLITE_CELLS_STORE"}
    process = subprocess.Popen(
        [str(COMMAND), "query", str(chat_store), "s", "chat", forever, "--timeout", "60"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    try:
        _wait_until_loaded(process.pid, "apsw")
        process.send_signal(signal.SIGINT)  # while it imports
        _wait_until_open(process.pid, db_file.resolve())
        process.send_signal(signal.SIGINT)  # while it reads
        with pytest.raises(subprocess.TimeoutExpired):
            process.wait(timeout=1.0)
    finally:
        process.kill()
        process.communicate()
    assert process.returncode == -signal.SIGKILL


def _wait_until_loaded(pid: int, library: str) -> None:
    """Until the process ``pid`` has mapped a shared library whose path names ``library``."""
    maps = Path(f"/proc/{pid}/maps")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if library in maps.read_text():
            return
        time.sleep(0.002)
    raise AssertionError(f"process {pid} never loaded {library}")


def test_link_to_what_does_not_exist_creates_nothing(
    chat_store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reference = tmp_path / "reference.db"
    conn = apsw.Connection(str(reference))
    conn.execute("CREATE TABLE t (x)")
    conn.close()
    url = f"sqlite:{reference}"
    before = _files(chat_store)
    missing_store = tmp_path / "no-store"
    cases = [
        (["link", url, "nospace", "of:x", "ref", "--store", str(chat_store)], "no space"),
        (
            ["link", url, "s", "not-a-piece", "ref", "--store", str(chat_store)],
            "no piece 'not-a-piece'",
        ),
        (["link", url, "s", "of:x", "ref", "--store", str(missing_store)], "no store"),
        (["link", "sqlite:/no/such.db", "s", "of:x", "ref", "--store", str(chat_store)], "exist"),
    ]
    for index, (argv, message) in enumerate(cases):
        if index == 0:  # once through the real command
            done = _command(*argv)
            returncode, err = done.returncode, done.stderr
        else:
            returncode, _, err = _run(capsys, *argv)
        assert returncode == 1 and message in err, (argv, err)
        assert "Traceback" not in err
    assert _files(chat_store) == before
    assert not missing_store.exists()
    code, out, _ = _run(capsys, "cells", str(chat_store), "--json")
    assert code == 0 and len(json.loads(out)) == 3  # no handle, no input cell was written


def test_the_help_says_what_demo_prints_and_what_gc_lists() -> None:
    """`demo --help` listed --json/--csv/--ndjson, which demo refuses (exit 2); `gc --help` did
    not say it lists dropped databases' files too (R74)."""
    demo = run_cli("demo", "--help")
    assert demo.returncode == 0
    assert "--json, --csv and --ndjson do not" in " ".join(demo.stdout.split())
    options = demo.stdout.split("options:")[1]  # and its options do not list them as its own
    assert "--store DIR" in options and not any(f in options for f in ("--json", "--csv"))
    refused = run_cli("demo", "--json")
    assert refused.returncode == 2 and "do not apply" in refused.stderr
    gc = run_cli("gc", "--help")
    assert gc.returncode == 0 and "dropped with db.drop()" in " ".join(gc.stdout.split())


@pytest.mark.parametrize(
    "argv",
    [["gc", "--y"], ["gc", "--ye"], ["check", "--r"], ["check", "--rep"], ["inspect", "--js"]],
)
def test_no_option_is_taken_by_a_prefix_of_its_name(
    store: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    """R74: gc removes only with `--yes`, the word itself; `check --r` is no repair either."""
    with sc.Runtime(store) as rt:
        space = rt.space("s")
        db = space.sqlite_database("gone", tables={"t": sc.table(x="integer")})
        with space.transact():
            db.exec("INSERT INTO t (x) VALUES (1)")
        with space.transact():
            db.drop()
        dropped = db.path
    assert dropped.exists()
    with pytest.raises(SystemExit) as raised:
        main([*argv, str(store)])
    captured = capsys.readouterr()
    assert raised.value.code == 2
    assert f"unrecognized arguments: {argv[1]}" in captured.err and captured.out == ""
    assert dropped.exists()
