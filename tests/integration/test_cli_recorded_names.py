"""Names the store records (SPEC §6, R1): a top-level cell's and a database's name is kept in the
space file's ``_cf_names`` by the first commit of a runtime that writes it by name, so the command
line lists cells and databases by name without ``--name``; cells of pieces are named from the
piece records, a name is recorded once, and what an older store holds unnamed shows by id unless
``--name`` until a program writes it again by name."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import apsw

import sqlite_cells as sc
from sqlite_cells.codec import derive_id

from ..conftest import run_cli

ALICE = derive_id("cell", "s", "alice")
PROFILE = derive_id("cell", "s", "profile")
BOB = derive_id("cell", "s", "bob")
CHAT = derive_id("sqlite", "s", "chat")

# Run as a script of its own, as a program using the library would.
WRITER = textwrap.dedent(
    """
    import sys
    import sqlite_cells as sc

    @sc.pattern
    def counter(start: sc.Cell) -> dict:
        return {"count": start.space.cell("count", default=0)}

    with sc.Runtime(sys.argv[1]) as rt:
        space = rt.space("s")
        alice = space.cell("alice", default={})
        profile = space.cell("profile")
        db = space.sqlite_database(
            "chat", tables={"messages": sc.table(id="integer primary key", body="text")}
        )
        with space.transact():
            alice.set({"name": "Alice"})
            profile.set({"owner": alice})
            db.exec("INSERT INTO messages (body) VALUES ('hi')")
        with space.transact():  # written again: nothing more to record
            alice.set({"name": "Alice B."})
            db.exec("INSERT INTO messages (body) VALUES ('again')")
        with space.transact():  # first written at a path
            space.cell("bob").key("age").set(7)
        piece = space.run(counter, key="k", start=1)
        with space.transact():  # a cell of a piece: named by the piece's record
            piece.outputs["count"].set(5)
    """
)


def _written(store: Path) -> Path:
    done = subprocess.run(
        [sys.executable, "-c", WRITER, str(store)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    (space_file,) = store.glob("space-*.sqlite")
    return space_file


_IDS = {"alice": ALICE, "profile": PROFILE, "chat": CHAT, "bob": BOB}


def _recorded(space_file: Path) -> dict[str, tuple[str, str]]:
    """The recorded names by the ids they derive (the table holds the names alone)."""
    conn = apsw.Connection(str(space_file), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        if not _has_names_table(conn):
            return {}
        return {_IDS[n]: (n, k) for n, k in conn.execute("SELECT name, kind FROM _cf_names")}
    finally:
        conn.close()


def _has_names_table(conn: apsw.Connection) -> bool:
    found = conn.execute("SELECT 1 FROM sqlite_schema WHERE name = '_cf_names'").fetchone()
    return found is not None


def test_top_level_cells_and_databases_are_listed_by_the_names_the_store_recorded(
    store: Path,
) -> None:
    space_file = _written(store)
    # Recorded once each, at the first write; the piece and its cells are not (their records
    # name them).
    assert _recorded(space_file) == {
        ALICE: ("alice", "cell"),
        PROFILE: ("profile", "cell"),
        CHAT: ("chat", "database"),
        BOB: ("bob", "cell"),
    }

    done = run_cli("cells", str(store), "--json")
    assert done.returncode == 0, done.stderr
    by_id = {c["id"]: c for c in json.loads(done.stdout)}
    assert (by_id[ALICE]["name"], by_id[ALICE]["kind"]) == ("alice", "cell")
    assert (by_id[CHAT]["name"], by_id[CHAT]["kind"]) == ("chat", "database")
    assert by_id[BOB]["name"] == "bob"
    assert by_id[PROFILE]["value"] == {
        "owner": {"cell": ALICE, "space": "s", "name": "alice", "path": []}
    }
    # A piece is named by its record; its own cells are left to what the store mentions.
    assert [c["name"] for c in by_id.values() if c["kind"] == "piece"] == ["__main__.counter/k"]

    text = run_cli("cells", str(store)).stdout
    assert '{"owner":"→ alice"}' in text

    done = run_cli("inspect", str(store), "--json")
    assert done.returncode == 0, done.stderr
    (space,) = json.loads(done.stdout)["spaces"]
    assert [(d["id"], d["name"]) for d in space["databases"]] == [(CHAT, "chat")]
    assert f"database 'chat' ({CHAT})" in run_cli("inspect", str(store)).stdout

    # A store written by this version is consistent for `check`.
    done = run_cli("check", str(store))
    assert done.returncode == 0, (done.stdout, done.stderr)


def test_a_cell_first_written_before_names_were_recorded_shows_by_id_unless_named(
    store: Path,
) -> None:
    space_file = _written(store)
    conn = apsw.Connection(str(space_file))
    conn.execute("DELETE FROM _cf_names WHERE name = 'alice'")  # as an older store holds it
    conn.close()
    with sc.Runtime(store) as rt:  # read by name, not written: nothing is recorded
        assert rt.space("s").cell("alice").get() == {"name": "Alice B."}
    assert ALICE not in _recorded(space_file)
    by_id = {c["id"]: c for c in json.loads(run_cli("cells", str(store), "--json").stdout)}
    assert by_id[ALICE]["name"] is None
    assert by_id[PROFILE]["value"]["owner"]["name"] is None
    done = run_cli("cells", str(store), "--json", "--name", "alice")
    by_id = {c["id"]: c for c in json.loads(done.stdout)}
    assert by_id[ALICE]["name"] == "alice" and by_id[CHAT]["name"] == "chat"


def test_names_missing_from_a_store_are_recorded_when_written_again_by_name(store: Path) -> None:
    """A store whose cells and databases were written before names were recorded (a format 1
    or 2 store upgraded in place, R73, or one whose ``_cf_names`` was lost) lists them by id; a
    new runtime that writes them again by name records their names, once: its next commit
    writing them runs no statement on ``_cf_names``, and a cell it does not write stays
    unnamed."""
    space_file = _written(store)
    conn = apsw.Connection(str(space_file))
    conn.execute("DROP TABLE _cf_names")  # as an older store holds it
    conn.close()
    done = run_cli("cells", str(store), "--json")
    assert done.returncode == 0, done.stderr
    by_id = {c["id"]: c for c in json.loads(done.stdout)}
    assert (by_id[ALICE]["name"], by_id[CHAT]["name"]) == (None, None)

    tables = {"messages": sc.table(id="integer primary key", body="text")}
    statements: list[str] = []
    with sc.Runtime(store) as rt:
        space = rt.space("s")
        alice, db = space.cell("alice"), space.sqlite_database("chat", tables=tables)
        with space.transact():
            alice.set({"name": "Alice C."})
            db.exec("INSERT INTO messages (body) VALUES ('back')")
        with space.file.write_connection() as conn:
            conn.exec_trace = lambda _cursor, sql, _bindings: statements.append(sql) or True
        with space.transact():  # named now: nothing more to record
            alice.set({"name": "Alice D."})
            db.exec("INSERT INTO messages (body) VALUES ('again')")
        with space.file.write_connection() as conn:
            conn.exec_trace = None
    assert any("_cf_cells" in sql for sql in statements), statements  # (the commit was seen)
    assert not [sql for sql in statements if "_cf_names" in sql]
    assert _recorded(space_file) == {ALICE: ("alice", "cell"), CHAT: ("chat", "database")}

    done = run_cli("cells", str(store), "--json")
    assert done.returncode == 0, done.stderr
    by_id = {c["id"]: c for c in json.loads(done.stdout)}
    assert (by_id[ALICE]["name"], by_id[ALICE]["value"]) == ("alice", {"name": "Alice D."})
    assert (by_id[CHAT]["name"], by_id[CHAT]["kind"]) == ("chat", "database")
    assert (by_id[PROFILE]["name"], by_id[BOB]["name"]) == (None, None)  # not written again
    assert by_id[PROFILE]["value"]["owner"]["name"] == "alice"
    done = run_cli("inspect", str(store))
    assert done.returncode == 0, done.stderr
    assert f"database 'chat' ({CHAT})" in done.stdout
    done = run_cli("check", str(store))
    assert done.returncode == 0, (done.stdout, done.stderr)


def test_a_names_table_another_program_made_without_a_kind_column_is_left_as_it_is(
    store: Path,
) -> None:
    """``_cf_names`` another program made in its own shape cannot take the runtime's rows: a
    write by name commits without recording the name, and the table stays as it was."""
    space_file = _written(store)
    conn = apsw.Connection(str(space_file))
    conn.execute("DROP TABLE _cf_names")
    conn.execute("CREATE TABLE _cf_names (id TEXT, name TEXT)")
    conn.execute("INSERT INTO _cf_names VALUES (?, 'alice')", (ALICE,))
    conn.close()
    with sc.Runtime(store) as rt:
        space = rt.space("s")
        with space.transact():
            space.cell("alice").set(1)
            space.cell("carol").set(2)  # a first write
        assert space.cell("carol").get() == 2
    conn = apsw.Connection(str(space_file), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        assert conn.execute("SELECT * FROM _cf_names").fetchall() == [(ALICE, "alice")]
    finally:
        conn.close()
    done = run_cli("cells", str(store), "--json")
    assert done.returncode == 0, done.stderr
    by_id = {c["id"]: c for c in json.loads(done.stdout)}
    assert (by_id[ALICE]["name"], by_id[ALICE]["value"]) == ("alice", 1)


def test_a_names_table_with_no_row_or_rows_another_program_wrote_lists_the_store(
    store: Path,
) -> None:
    """A store whose cells are all pieces' records no name, and has no ``_cf_names`` at all:
    the first commit that records a name makes it, never an open (an older command line lists
    a store whose table has rows, but failed on an empty one). An empty table lists too, and
    rows another program wrote, with text that is not UTF-8 or no name, name nothing."""
    with sc.Runtime(store) as rt:
        space = rt.space("s")
        space.run(_only_pieces, key="k", start=1)
        rt.settle()
    (space_file,) = store.glob("space-*.sqlite")
    conn = apsw.Connection(str(space_file))
    assert not _has_names_table(conn)
    conn.execute("CREATE TABLE _cf_names (name TEXT NOT NULL, kind TEXT NOT NULL)")
    conn.close()
    for command in ("cells", "inspect", "tables"):
        done = run_cli(command, str(store), "--json")
        assert done.returncode == 0, (command, done.stderr)
    conn = apsw.Connection(str(space_file))
    conn.execute("DROP TABLE _cf_names")
    conn.execute("CREATE TABLE _cf_names (id, name, kind)")
    conn.execute(
        "INSERT INTO _cf_names VALUES (?, CAST(x'ff' AS TEXT), 'cell'), ('of:x', NULL, NULL)",
        (ALICE,),
    )
    conn.close()
    done = run_cli("cells", str(store), "--json")
    assert done.returncode == 0, done.stderr
    assert all(c["name"] != "\ufffd" for c in json.loads(done.stdout))


@sc.pattern
def _only_pieces(start: sc.Cell) -> None:
    pass


def test_a_refused_first_commit_that_names_cells_leaves_no_space_file(store: Path) -> None:
    """R7: the names go with the commit's writes; a refused first commit (here: a value that
    is no link in a link column) leaves no file, and the next first commit records them."""
    tables = {"t": sc.table(id="integer primary key", a_cf_link=sc.cf_link())}
    with sc.Runtime(store) as rt:
        space = rt.space("s")
        alice, db = space.cell("alice"), space.sqlite_database("chat", tables=tables)
        try:
            with space.transact():
                alice.set(1)
                db.exec("INSERT INTO t (a_cf_link) VALUES ('notalink')")
        except sc.LinkEncodeError:
            pass
        else:
            raise AssertionError("the write was not refused")
        assert list(store.iterdir()) == []
        with space.transact():
            alice.set(2)
            db.exec("INSERT INTO t (a_cf_link) VALUES (NULL)")
    (space_file,) = store.glob("space-*.sqlite")
    assert _recorded(space_file) == {ALICE: ("alice", "cell"), CHAT: ("chat", "database")}


def test_an_async_handler_first_write_records_the_name(store: Path) -> None:
    """An async handler's writes are committed off the event loop, in a transaction of their
    own: the names go with them."""

    @sc.handler
    async def first(*, c: sc.Cell) -> None:
        c.set("hello")

    with sc.Runtime(store) as rt:
        asyncio.run(first(c=rt.space("s").cell("alice")))
    (space_file,) = store.glob("space-*.sqlite")
    assert _recorded(space_file) == {ALICE: ("alice", "cell")}
