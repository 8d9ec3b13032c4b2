"""What a commit that SQLite refuses says (Errors: the path and what to do, never a raw apsw
error): a file SQLite could only open read-only is named."""

from __future__ import annotations

from pathlib import Path

import apsw
import pytest

import sqlite_cells as sc
from sqlite_cells.runtime._commit import commit_error


def test_a_read_only_attached_file_is_named_with_what_to_do(tmp_path: Path) -> None:
    main, other = tmp_path / "space.sqlite", tmp_path / "cell.sqlite"
    apsw.Connection(str(other)).execute("CREATE TABLE t (x)")
    flags = apsw.SQLITE_OPEN_READWRITE | apsw.SQLITE_OPEN_CREATE | apsw.SQLITE_OPEN_URI
    conn = apsw.Connection(str(main), flags=flags)
    conn.execute(f"ATTACH DATABASE 'file:{other}?mode=ro' AS db")
    with pytest.raises(apsw.ReadOnlyError) as raised:
        conn.execute("INSERT INTO db.t VALUES (1)")
    error = commit_error(raised.value, "demo", conn)
    assert isinstance(error, sc.DatabaseError) and error.__cause__ is raised.value
    assert f"space 'demo': the commit could not write {other} (" in str(error)
    assert "it is read-only" in str(error) and "make it writable, then try again" in str(error)
    assert str(main) not in str(error)
    # Without the connection the message still says what to do, naming the kinds of file.
    alone = commit_error(raised.value, "demo")
    assert "the space file or the database file it writes" in str(alone)
    conn.close()


def test_a_log_ending_at_the_largest_seq_refuses_the_next_commit_naming_the_file(
    tmp_path: Path,
) -> None:
    store = tmp_path / "store"
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        with space.transact():
            space.cell("c").set(1)
    (path,) = store.glob("space-*.sqlite")
    # Another program renumbers the newest record to the largest integer SQLite stores.
    foreign = apsw.Connection(str(path))
    foreign.execute(f"UPDATE _cf_log SET seq = {2**63 - 1}")
    foreign.close()
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        c = space.cell("c")
        for _ in range(2):  # (the refused commit leaves the space usable for the next try)
            with pytest.raises(sc.DatabaseError) as raised, space.transact():
                c.set(2)
            message = str(raised.value)
            assert f"the log of the space file {path} ends at seq {2**63 - 1}" in message
            assert "restore the space file from a backup" in message
            assert c.get() == 1


def test_the_advice_for_a_log_ending_at_the_largest_seq_works(tmp_path: Path) -> None:
    """The error said to run `sqlite-cells check`, which does not look at seqs and found the
    store in sync; the statement it gives now puts the seq back, and commits go on."""
    store = tmp_path / "store"
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        for n in (1, 2):
            with space.transact():
                space.cell("c").set(n)
    (path,) = store.glob("space-*.sqlite")
    foreign = apsw.Connection(str(path))
    foreign.execute(f"UPDATE _cf_log SET seq = {2**63 - 1} WHERE seq = 2")
    foreign.close()
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        with pytest.raises(sc.DatabaseError) as raised, space.transact():
            space.cell("c").set(3)
    message = str(raised.value)
    assert "`sqlite-cells check` does not look at" in message
    assert "run `sqlite-cells check`" not in message
    statement = message.split("(`", 1)[1].split("`)", 1)[0]
    assert statement == (
        "UPDATE _cf_log SET seq = json_extract(CAST(record AS TEXT), '$[0]') "
        f"WHERE seq = {2**63 - 1}"
    )
    foreign = apsw.Connection(str(path))  # what the message says to do
    foreign.execute(statement)
    foreign.close()
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        c = space.cell("c")
        assert c.get() == 2

        @sc.handler
        def put(n: int, *, cell: sc.Cell) -> None:
            cell.set(n)

        assert (put(3, cell=c), c.get()) == (3, 3)


@pytest.mark.parametrize("raised", [MemoryError(), apsw.NoMemError("out of memory")])
def test_a_commit_out_of_memory_says_so_and_what_to_do(raised: BaseException) -> None:
    """Errors: Python's MemoryError at commit (building a changeset, a record) reached the
    caller raw, and SQLite's said "check the disk"."""
    error = commit_error(raised, "demo")
    assert isinstance(error, sc.DatabaseError) and error.__cause__ is raised
    message = str(error)
    assert message.startswith("space 'demo': the commit ran out of memory")
    assert "nothing of it is visible" in message and "check the disk" not in message
    assert "write less per transaction" in message and "memory limit" in message
