"""Disk sources, reads that create nothing and several runtimes on one store, read again from
the SPEC's words (R7, R41, R53, R60–R62): real files, no mocks."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

import apsw
import msgspec
import pytest

import sqlite_cells as sc
import sqlite_cells.read._workers as workers_module
from sqlite_cells._runtime import Space
from sqlite_cells.cli._cli import main

from .._files import read_bytes
from ..conftest import run_cli
from .conftest import MESSAGES

WAIT = 20.0  # bound on waits for what a change brings (never reached when right)


def _reference_db(path: Path, rows: int = 3, *, wal: bool = False) -> Path:
    conn = apsw.Connection(str(path))
    if wal:
        conn.execute("PRAGMA journal_mode=WAL").fetchall()
    conn.execute("CREATE TABLE codes (code TEXT PRIMARY KEY, label TEXT)")
    conn.executemany(
        "INSERT INTO codes VALUES (?, ?)", [(f"c{i}", f"label {i}") for i in range(rows)]
    )
    conn.close()
    return path


def _listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def _digest(path: Path) -> str:
    """Read through a kept descriptor: the runtime's read pool may have the file open."""
    return hashlib.sha256(read_bytes(path)).hexdigest()


def _wait_for(q: sc.Query[Any], done: Callable[[sc.QueryState[Any]], bool]) -> bool:
    reached = threading.Event()
    subscription = q.observe().subscribe(lambda state: done(state) and reached.set())
    try:
        return reached.wait(WAIT)
    finally:
        subscription.dispose()


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "outside"
    folder.mkdir()
    return folder


@pytest.fixture
def reference(outside: Path) -> Path:
    return _reference_db(outside / "reference.db")


# R60: registration


@pytest.mark.parametrize("given", ["~/reference.db", "~", "reference.db/../reference.db"])
def test_a_path_the_shell_would_expand_is_refused_as_not_absolute(
    space: Space, outside: Path, given: str
) -> None:
    with pytest.raises(sc.DiskSourceError) as info:
        space.register_disk_source(given)
    assert info.value.rule == "absolute" and "absolute" in str(info.value)
    assert not space.file.exists


def test_every_name_of_one_file_gives_one_handle(
    rt: sc.Runtime, space: Space, outside: Path, reference: Path
) -> None:
    """Symlinks, a chain of them, ``..`` segments and a ``pathlib.Path`` all resolve to the
    one file: the same handle, read as that file."""
    (outside / "sub").mkdir()
    first = outside / "first.db"
    second = outside / "sub" / "second.db"
    second.symlink_to(reference)
    first.symlink_to(second)  # first -> sub/second -> reference
    names: list[str | Path] = [
        str(reference),
        reference,
        str(first),
        first,
        str(outside / "sub" / ".." / "reference.db"),
        f"{outside}//sub/./../reference.db",
    ]
    handles = [space.register_disk_source(name) for name in names]
    assert {h.id for h in handles} == {handles[0].id}
    assert {h.path for h in handles} == {reference.resolve()}
    assert handles[2].read("SELECT count(*) AS n FROM codes") == [{"n": 3}]
    # one handle per space: another space's registration of the same file is another id
    assert rt.space("other").register_disk_source(str(reference)).id != handles[0].id


def test_a_bytes_path_is_refused_naming_the_rule(space: Space, reference: Path) -> None:
    with pytest.raises(sc.DiskSourceError) as info:
        space.register_disk_source(os.fsencode(reference))  # type: ignore[arg-type]
    assert info.value.rule == "path" and str(info.value) == (
        f"path: {repr(os.fsencode(reference))!r}: a value of type bytes is not a path: give an "
        "absolute path as a str or a Path"
    )
    assert isinstance(info.value, ValueError)
    assert not space.file.exists


def test_a_path_into_the_store_through_a_symlinked_folder_is_refused(
    rt: sc.Runtime, space: Space, outside: Path
) -> None:
    with space.transact():
        space.cell("warm").set(1)
    planted = _reference_db(rt.store / "planted.db")
    door = outside / "door"
    door.symlink_to(rt.store, target_is_directory=True)
    before = _listing(rt.store)
    with pytest.raises(sc.DiskSourceError) as info:
        space.register_disk_source(str(door / planted.name))
    assert info.value.rule == "outside-store"
    assert _listing(rt.store) == before


def test_a_store_opened_through_a_symlink_still_owns_its_files(
    tmp_path: Path, outside: Path
) -> None:
    real = tmp_path / "real-store"
    real.mkdir()
    alias = tmp_path / "alias-store"
    alias.symlink_to(real, target_is_directory=True)
    planted = _reference_db(real / "planted.db")
    for store, given in ((alias, planted), (real, alias / planted.name)):
        with sc.Runtime(store) as rt:
            with pytest.raises(sc.DiskSourceError) as info:
                rt.space("demo").register_disk_source(str(given))
            assert info.value.rule == "outside-store", str(info.value)


def test_a_hard_link_to_a_database_cell_file_is_refused(
    rt: sc.Runtime, space: Space, outside: Path
) -> None:
    db = space.sqlite_database("chat", tables=MESSAGES)
    with space.transact():
        db.exec("INSERT INTO messages (body) VALUES ('secret')")
    twin = outside / "twin.db"
    os.link(db.path, twin)
    with pytest.raises(sc.DiskSourceError) as info:
        space.register_disk_source(str(twin))
    assert info.value.rule == "hard-link"
    assert db.path.name in str(info.value)


def test_roots_compare_whole_folders_not_string_prefixes(store: Path, outside: Path) -> None:
    (outside / "a" / "b").mkdir(parents=True)
    (outside / "a" / "bc").mkdir()
    inside = _reference_db(outside / "a" / "b" / "in.db")
    beside = _reference_db(outside / "a" / "bc" / "out.db")
    with sc.Runtime(store, disk_source_roots=[str(outside / "a" / "b")]) as rt:
        space = rt.space("demo")
        assert space.register_disk_source(str(inside)).read("SELECT count(*) AS n FROM codes")
        with pytest.raises(sc.DiskSourceError) as info:
            space.register_disk_source(str(beside))
        assert info.value.rule == "under-roots"
        # a symlink inside the root that leads out of it is judged by where the file is
        escape = outside / "a" / "b" / "escape.db"
        escape.symlink_to(beside)
        with pytest.raises(sc.DiskSourceError) as info:
            space.register_disk_source(str(escape))
        assert info.value.rule == "under-roots"


def test_roots_given_through_symlinks_allow_the_folders_they_name(
    store: Path, outside: Path
) -> None:
    real = outside / "real"
    real.mkdir()
    alias = outside / "alias"
    alias.symlink_to(real, target_is_directory=True)
    file = _reference_db(real / "ok.db")
    with sc.Runtime(store, disk_source_roots=[alias]) as rt:
        space = rt.space("demo")
        by_real = space.register_disk_source(str(file))
        by_alias = space.register_disk_source(alias / "ok.db")
        assert by_real.id == by_alias.id
    with sc.Runtime(store, disk_source_roots=[str(real)]) as rt:
        assert rt.space("demo").register_disk_source(str(alias / "ok.db")).id == by_real.id


def test_a_root_that_is_a_loop_of_links_allows_nothing_and_fails_no_registration(
    store: Path, outside: Path
) -> None:
    """A root that cannot be resolved (a symbolic link to itself) used to make every
    registration a raw RuntimeError: it allows no file, and the other roots still do."""
    loop = outside / "loop"
    loop.symlink_to(loop)
    (outside / "ok").mkdir()
    file = _reference_db(outside / "ok" / "in.db")
    beside = _reference_db(outside / "out.db")
    with sc.Runtime(store, disk_source_roots=[loop, outside / "ok"]) as rt:
        space = rt.space("demo")
        db = space.register_disk_source(str(file))
        assert db.read("SELECT count(*) AS n FROM codes") == [{"n": 3}]
        with pytest.raises(sc.DiskSourceError) as info:
            space.register_disk_source(str(beside))
        assert info.value.rule == "under-roots"
        assert f"{loop}, which cannot be resolved" in str(info.value)
        assert str(outside / "ok") in str(info.value)
    assert sorted(p.name for p in outside.iterdir()) == ["loop", "ok", "out.db"]


def _at_length(folder: Path, size: int) -> Path:
    """A path under ``folder`` of exactly ``size`` bytes, in folders of short names."""
    path = folder.resolve()
    while len(os.fsencode(path / ("f" * 100))) < size - 10:
        path = path / ("d" * 100)
    return path / ("f" * (size - len(os.fsencode(path)) - 1))


@pytest.mark.parametrize("wal", [False, True])
def test_a_path_longer_than_sqlite_opens_is_refused_as_such(
    store: Path, outside: Path, wal: bool
) -> None:
    """SQLite opens no database whose path is over 504 bytes (512 less "-journal"): such a
    file used to be refused with SQLite's bare "unable to open database file"."""
    longest, over = _at_length(outside, 504), _at_length(outside, 505)
    made = _reference_db(outside / "short.db", wal=wal)  # (SQLite could not make the second)
    for path in (longest, over):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(made.read_bytes())
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.register_disk_source(longest)
        assert db.read("SELECT count(*) AS n FROM codes") == [{"n": 3}]
        seq = space.file.seen_seq
        with pytest.raises(sc.DiskSourceError) as info:
            space.register_disk_source(over)
        assert info.value.rule == "sqlite-file"
        assert "is 505 bytes long" in str(info.value) and "over 504 bytes" in str(info.value)
        assert space.file.seen_seq == seq  # nothing written
    for path in (longest, over):  # nothing of ours beside them
        for suffix in ("-wal", "-shm", "-journal"):
            assert not path.with_name(path.name + suffix).exists()


def test_something_else_at_a_sources_path_is_named_not_called_gone(
    store: Path, outside: Path
) -> None:
    """A directory or a named pipe put where a registered file was used to be reported as
    "is gone (deleted or moved ...)"; the reads and the live query now say what stands there."""
    path = _reference_db(outside / "ref.db")
    with sc.Runtime(store) as rt:
        db = rt.space("demo").register_disk_source(path)
        query = db.query("SELECT count(*) AS n FROM codes")
        assert _wait_for(query, lambda state: state.result == [{"n": 3}])
        path.unlink()
        path.mkdir()
        said = f"a directory now stands at {path}, where the injected file was registered"
        with pytest.raises(sc.QueryError) as info:
            db.read("SELECT count(*) AS n FROM codes")
        assert said in str(info.value) and "is gone" not in str(info.value)
        assert _wait_for(query, lambda state: said in str(state.error))
        path.rmdir()
        os.mkfifo(path)
        with pytest.raises(sc.QueryError) as info:
            db.read("SELECT count(*) AS n FROM codes")
        assert f"a named pipe now stands at {path}" in str(info.value)
        path.unlink()
        with pytest.raises(sc.QueryError) as info:
            db.read("SELECT count(*) AS n FROM codes")
        assert f"the injected file {path} is gone" in str(info.value)


def test_a_live_query_follows_one_non_file_replaced_by_another(store: Path, outside: Path) -> None:
    """A directory, then a named pipe, then another directory put where a registered file was,
    then nothing: the live query kept the first error's words ("a directory now stands") through
    each (no file at the path had no content signature to change); it now says what stands there
    each time, and reads again once the file registered is back."""
    path = _reference_db(outside / "ref.db")
    aside = outside / "aside.db"
    with sc.Runtime(store) as rt:
        db = rt.space("demo").register_disk_source(path)
        query = db.query("SELECT count(*) AS n FROM codes")
        assert _wait_for(query, lambda state: state.result == [{"n": 3}])
        path.rename(aside)
        path.mkdir()
        assert _wait_for(query, lambda state: "a directory now stands" in str(state.error))
        path.rmdir()
        os.mkfifo(path)
        assert _wait_for(query, lambda state: "a named pipe now stands" in str(state.error))
        path.unlink()
        path.mkdir()
        (path / "inside").mkdir()
        assert _wait_for(query, lambda state: "a directory now stands" in str(state.error))
        (path / "inside").rmdir()
        path.rmdir()
        assert _wait_for(
            query, lambda state: f"the injected file {path} is gone" in str(state.error)
        )
        path.symlink_to(path)
        assert _wait_for(query, lambda state: "a symbolic link that loops now" in str(state.error))
        path.unlink()
        aside.rename(path)
        assert _wait_for(query, lambda state: state.error is None and state.result == [{"n": 3}])
    assert sorted(p.name for p in outside.iterdir()) == ["ref.db"]


@pytest.mark.parametrize("kind", ["a directory", "a named pipe", "a symbolic link that loops"])
def test_a_non_file_at_a_linked_sources_path_is_said_by_every_reader_and_the_commands(
    store: Path, outside: Path, kind: str
) -> None:
    """A runtime that finds a source through a piece's input (not the one that registered it)
    refused the handle as "is not a regular file: register the database file itself" when a
    directory or a named pipe stood at the path, and never read the file once it was back;
    `tables` and `inspect` called it gone, and `query` refused it as a registration would. Each
    now says what stands there, and the live query reads the file once it is back."""
    path = _reference_db(outside / "ref.db")
    aside = outside / "aside.db"
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        piece = space.run(_count_codes, key="k")
        piece.inputs["ref"].link(space.register_disk_source(path))
        rt.settle()
        assert piece.outputs.get().result == [{"n": 3}]
    path.rename(aside)
    if kind == "a directory":
        path.mkdir()
    elif kind == "a named pipe":
        os.mkfifo(path)
    else:
        path.symlink_to(path)
    said = f"{kind} now stands at {path}, where the injected file was registered"
    for command in (["tables", str(store)], ["query", str(store), "demo", "ref.db", "SELECT 1"]):
        done = run_cli(*command)
        assert done.returncode == 1 and said in done.stderr and "gone" not in done.stderr
    done = run_cli("inspect", str(store))
    assert done.returncode == 1
    assert f"NOT A REGULAR FILE: {kind} stands where the injected file was registered" in (
        done.stdout
    )
    assert said in done.stdout  # (its findings, after the listing)
    with sc.Runtime(store) as rt:
        piece = rt.space("demo").run(_count_codes, key="k")
        query = piece.outputs
        assert _wait_for(query, lambda state: said in str(state.error))
        assert isinstance(query.get().error, sc.QueryError)
        path.rmdir() if kind == "a directory" else path.unlink()
        aside.rename(path)
        assert _wait_for(query, lambda state: state.result == [{"n": 3}])
    assert sorted(p.name for p in outside.iterdir()) == ["ref.db"]


def test_two_runtimes_on_one_store_register_one_handle(store: Path, reference: Path) -> None:
    with sc.Runtime(store) as one, sc.Runtime(store) as two:
        a = one.space("demo").register_disk_source(str(reference))
        b = two.space("demo").register_disk_source(reference)
        assert a.id == b.id
        assert a.get() == b.get()
        assert b.read("SELECT label FROM codes WHERE code = 'c0'") == [{"label": "label 0"}]


def test_a_file_with_a_cold_journal_beside_it_is_registered_and_read(
    space: Space, outside: Path, reference: Path
) -> None:
    """A ``-journal`` that is not hot (empty, as ``journal_mode=TRUNCATE`` leaves it) is the
    ordinary state of a file its program has open: nothing to refuse, nothing touched."""
    journal = outside / "reference.db-journal"
    journal.write_bytes(b"")
    handle = space.register_disk_source(str(reference))
    assert handle.read("SELECT count(*) AS n FROM codes") == [{"n": 3}]
    assert journal.exists() and journal.read_bytes() == b""
    assert _listing(outside) == ["reference.db", "reference.db-journal"]


def test_a_wal_file_with_its_writer_open_is_registered_and_read(
    rt: sc.Runtime, space: Space, outside: Path
) -> None:
    path = outside / "walled.db"
    writer = apsw.Connection(str(path))
    try:
        writer.execute("PRAGMA journal_mode=WAL").fetchall()
        writer.execute("CREATE TABLE t (x)")
        writer.execute("INSERT INTO t VALUES (1), (2)")
        files = _listing(outside)
        assert files == ["walled.db", "walled.db-shm", "walled.db-wal"]
        handle = space.register_disk_source(str(path))
        assert handle.read("SELECT sum(x) AS s FROM t") == [{"s": 3}]
        q = handle.query("SELECT sum(x) AS s FROM t")
        rt.settle()
        assert q.get().result == [{"s": 3}]
        writer.execute("INSERT INTO t VALUES (4)")
        assert _wait_for(q, lambda s: s.result == [{"s": 7}])
        assert _listing(outside) == files
    finally:
        writer.close()


# R60: read-only, never migrated, its own schema


def test_writes_to_a_source_are_refused_at_the_call_and_the_transaction_goes_on(
    rt: sc.Runtime, space: Space, reference: Path
) -> None:
    handle = space.register_disk_source(str(reference))
    db = space.sqlite_database("chat", tables=MESSAGES)
    counter = space.cell("counter", default=0)
    digest = _digest(reference)
    seen = space.file.seen_seq
    with space.transact() as tx:
        counter.set(1)
        with pytest.raises(sc.ReadOnlySource) as info:
            handle.exec_many("INSERT INTO codes VALUES (?, ?)", [["x", "y"], ["z", "w"]])
        assert isinstance(info.value, sc.SqliteCellsError)
        assert handle.id in str(info.value) or str(reference) in str(info.value)
        with pytest.raises(sc.ReadOnlySource):
            handle.exec("UPDATE codes SET label = ?", ["changed"])
        assert tx.ops == ()
        db.exec("INSERT INTO messages (body) VALUES (?)", ["kept"])
        with pytest.raises(sc.ReadOnlySource):  # not TooManyDatabases: a source is never written
            handle.exec("DELETE FROM codes")
        with pytest.raises(sc.ReadOnlySource, match="not the runtime's to drop"):  # nor dropped
            handle.drop()
        counter.update(lambda v: v + 1)
    assert space.file.seen_seq == seen + 1
    assert counter.get() == 2
    assert db.read("SELECT body FROM messages") == [{"body": "kept"}]
    assert handle.rev == 0 and handle.get()["rev"] == 0 and "dropped" not in handle.get()
    for write in (
        lambda: handle.set(1),
        lambda: handle.update(lambda v: v),
        lambda: handle.key("a"),
    ):
        with pytest.raises(TypeError):
            write()
    assert _digest(reference) == digest
    assert handle.read("SELECT count(*) AS n FROM codes") == [{"n": 3}]


def test_a_source_outside_a_transaction_refuses_writes_and_records_nothing(
    space: Space, reference: Path
) -> None:
    handle = space.register_disk_source(str(reference))
    seen = space.file.seen_seq
    with pytest.raises((sc.NoTransaction, sc.ReadOnlySource)):
        handle.exec("DELETE FROM codes")
    assert space.file.seen_seq == seen
    assert handle.read("SELECT count(*) AS n FROM codes") == [{"n": 3}]


def test_a_source_is_never_migrated_or_versioned(
    rt: sc.Runtime, space: Space, outside: Path
) -> None:
    """Registering and reading a file leaves it byte for byte as found: its user_version,
    its tables, no ``_cf_`` table of ours."""
    path = outside / "versioned.db"
    conn = apsw.Connection(str(path))
    conn.execute("PRAGMA user_version = 7")
    conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL)")
    conn.execute("INSERT INTO items (name) VALUES ('a'), ('b')")
    conn.close()
    digest, mtime = _digest(path), path.stat().st_mtime_ns
    handle = space.register_disk_source(str(path))
    assert handle.tables == {}
    q = handle.query("SELECT name FROM items ORDER BY id")
    rt.settle()
    assert q.get().result == [{"name": "a"}, {"name": "b"}]
    assert handle.read("SELECT count(*) AS n FROM items") == [{"n": 2}]
    with space.transact():
        space.cell("other").set(1)
    rt.settle()
    assert _digest(path) == digest and path.stat().st_mtime_ns == mtime
    conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    assert conn.execute("PRAGMA user_version").fetchall() == [(7,)]
    names = [n for (n,) in conn.execute("SELECT name FROM sqlite_schema")]
    conn.close()
    assert not any(n.startswith("_cf_") for n in names)


def test_a_source_reads_its_own_schema_views_and_keyless_tables(
    space: Space, outside: Path
) -> None:
    path = outside / "shapes.db"
    conn = apsw.Connection(str(path))
    conn.execute("CREATE TABLE kv (k TEXT PRIMARY KEY, v INTEGER) WITHOUT ROWID")
    conn.execute("CREATE TABLE strict_t (a INTEGER, b TEXT) STRICT")
    conn.execute("CREATE TABLE gen (a INTEGER, twice INTEGER GENERATED ALWAYS AS (a * 2))")
    conn.execute("CREATE VIEW big AS SELECT k FROM kv WHERE v > 1")
    conn.execute("INSERT INTO kv VALUES ('x', 1), ('y', 2)")
    conn.execute("INSERT INTO strict_t VALUES (1, 'one')")
    conn.execute("INSERT INTO gen (a) VALUES (21)")
    conn.close()
    handle = space.register_disk_source(str(path))
    assert handle.read("SELECT k FROM big") == [{"k": "y"}]
    assert handle.read("SELECT b FROM strict_t") == [{"b": "one"}]
    assert handle.read("SELECT twice FROM gen") == [{"twice": 42}]
    with pytest.raises(sc.QueryError) as info:
        handle.read("SELECT * FROM nowhere")
    assert info.value.db_id == handle.id


def test_names_the_guard_refuses_stay_refused_in_a_source_that_has_them(
    space: Space, outside: Path
) -> None:
    path = outside / "odd-names.db"
    conn = apsw.Connection(str(path))
    conn.execute('CREATE TABLE "_cf_watermark" (x)')
    conn.execute('CREATE TABLE "_cf_private" (secret)')
    conn.execute("INSERT INTO _cf_private VALUES ('s')")
    conn.execute("CREATE TABLE plain (x)")
    conn.execute("ANALYZE")  # makes sqlite_stat1
    conn.close()
    handle = space.register_disk_source(str(path))
    for sql in (
        "SELECT * FROM _cf_private",
        'SELECT * FROM "_cf_private"',
        "SELECT * FROM sqlite_stat1",
        "SELECT * FROM sqlite_schema",
        "SELECT * FROM main.plain",
    ):
        with pytest.raises(sc.GuardViolation) as info:
            handle.read(sql)
        assert info.value.kind in {"reserved-name", "schema-qualified"}, sql
    assert handle.read("SELECT count(*) AS n FROM plain") == [{"n": 0}]


# R60: reading creates nothing beside the source


def test_reads_and_live_queries_create_nothing_beside_sources(
    rt: sc.Runtime, space: Space, outside: Path
) -> None:
    journal = _reference_db(outside / "journal.db")
    walled = _reference_db(outside / "walled.db", wal=True)
    before = _listing(outside)
    assert before == ["journal.db", "walled.db"]
    for path in (journal, walled):
        handle = space.register_disk_source(str(path))
        assert handle.read("SELECT count(*) AS n FROM codes") == [{"n": 3}]
        q = handle.query("SELECT code FROM codes ORDER BY code")
        rt.settle()
        assert q.get().result == [{"code": "c0"}, {"code": "c1"}, {"code": "c2"}]
        assert _listing(outside) == before
    rt.close()
    assert _listing(outside) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_source_in_a_read_only_folder_is_read(
    rt: sc.Runtime, space: Space, outside: Path
) -> None:
    folder = outside / "locked"
    folder.mkdir()
    journal = _reference_db(folder / "journal.db")
    walled = _reference_db(folder / "walled.db", wal=True)
    folder.chmod(0o555)
    try:
        for path in (journal, walled):
            handle = space.register_disk_source(str(path))
            assert handle.read("SELECT count(*) AS n FROM codes") == [{"n": 3}]
        assert _listing(folder) == ["journal.db", "walled.db"]
    finally:
        folder.chmod(0o755)


def test_the_cli_query_and_link_create_nothing_beside_the_source(
    store: Path, outside: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    journal = _reference_db(outside / "journal.db")
    walled = _reference_db(outside / "walled.db", wal=True)
    before = _listing(outside)
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        piece = space.run(_count_codes, key="main")
        rt.settle()
        assert piece.outputs.get().pending is True
    for path in (journal, walled):
        code = main(["link", f"sqlite:{path}", "demo", piece.id, "ref", "--store", str(store)])
        assert code == 0, capsys.readouterr()
        assert _listing(outside) == before
        with sc.Runtime(store) as rt:
            handle = rt.space("demo").register_disk_source(str(path))
        capsys.readouterr()
        code = main(
            ["query", str(store), "demo", handle.id, "SELECT count(*) AS n FROM codes", "--json"]
        )
        out = capsys.readouterr().out
        assert code == 0 and '"n": 3' in out, out
        assert _listing(outside) == before
    for command in ("inspect", "tables", "cells", "check", "gc"):
        assert main([command, str(store)]) in {0, 1}, capsys.readouterr()
        capsys.readouterr()
        assert _listing(outside) == before, command


@sc.pattern
def _count_codes(ref: sc.SqliteDb) -> Any:
    return ref.query("SELECT count(*) AS n FROM codes")


# R60: a file that goes away, or another in its place


def test_a_deleted_source_fails_its_live_query_and_others_go_on(
    rt: sc.Runtime, space: Space, outside: Path
) -> None:
    doomed = _reference_db(outside / "doomed.db")
    kept = _reference_db(outside / "kept.db", rows=5)
    gone = space.register_disk_source(str(doomed))
    stays = space.register_disk_source(str(kept))
    q_gone = gone.query("SELECT count(*) AS n FROM codes")
    q_stays = stays.query("SELECT count(*) AS n FROM codes")
    rt.settle()
    assert q_gone.get().result == [{"n": 3}] and q_stays.get().result == [{"n": 5}]
    doomed.unlink()
    assert _wait_for(q_gone, lambda s: s.error is not None)
    state = q_gone.get()
    assert isinstance(state.error, sc.QueryError) and state.result is None
    assert state.error.db_id == gone.id
    conn = apsw.Connection(str(kept))
    conn.execute("INSERT INTO codes VALUES ('new', 'label new')")
    conn.close()
    assert _wait_for(q_stays, lambda s: s.result == [{"n": 6}])
    assert stays.read("SELECT count(*) AS n FROM codes") == [{"n": 6}]
    with pytest.raises(sc.QueryError):
        gone.read("SELECT count(*) AS n FROM codes")


def test_a_source_created_again_after_deletion_is_refused_until_registered_again(
    rt: sc.Runtime, space: Space, outside: Path
) -> None:
    path = _reference_db(outside / "again.db")
    handle = space.register_disk_source(str(path))
    q = handle.query("SELECT count(*) AS n FROM codes")
    rt.settle()
    assert q.get().result == [{"n": 3}]
    # the deleted file is held open, so the file created again gets another inode (a file
    # system may hand a freed inode to the next file: then it is the same (device, inode))
    with path.open("rb"):
        path.unlink()
        assert _wait_for(q, lambda s: s.error is not None)
        _reference_db(path, rows=8)  # a new file (a new inode) at the registered path
    with pytest.raises(sc.DiskSourceError) as info:
        handle.read("SELECT count(*) AS n FROM codes")
    assert info.value.rule == "pinned" and "register" in str(info.value)
    again = space.register_disk_source(str(path))
    assert again.id == handle.id
    assert again.read("SELECT count(*) AS n FROM codes") == [{"n": 8}]
    assert _wait_for(q, lambda s: s.result == [{"n": 8}] and s.error is None)


def test_a_write_that_leaves_the_rows_equal_tells_no_subscriber(
    rt: sc.Runtime, space: Space, reference: Path
) -> None:
    handle = space.register_disk_source(str(reference))
    q = handle.query("SELECT code, label FROM codes ORDER BY code")
    rt.settle()
    seen: list[Any] = []
    subscription = q.observe().subscribe(seen.append)
    try:
        rt.settle()
        assert len(seen) == 1
        conn = apsw.Connection(str(reference))
        conn.setbusytimeout(10_000)  # the runtime's poll may be reading the file right now
        conn.execute("UPDATE codes SET label = label")
        conn.execute("INSERT INTO codes VALUES ('marker', 'm')")
        conn.execute("DELETE FROM codes WHERE code = 'marker'")
        conn.close()
        # the rows the query reads are the same: it tells nobody; the next change does
        conn = apsw.Connection(str(reference))
        conn.setbusytimeout(10_000)
        conn.execute("INSERT INTO codes VALUES ('zz', 'last')")
        conn.close()
        assert _wait_for(q, lambda s: s.result is not None and len(s.result) == 4)
        assert len(seen) == 2, seen
    finally:
        subscription.dispose()


# R61, R62


@sc.pattern
def _lookup(ref: sc.SqliteDb) -> Any:
    return ref.query("SELECT label FROM codes WHERE code = 'c1'")


def test_a_database_input_is_pending_then_runs_once_linked_and_follows_a_relink(
    rt: sc.Runtime, space: Space, outside: Path
) -> None:
    piece = space.run(_lookup, key="p")
    rt.settle()
    state = piece.outputs.get()
    assert state.pending is True and state.result is None and state.error is None
    first = _reference_db(outside / "first.db")
    piece.inputs["ref"].link(space.register_disk_source(str(first)))
    rt.settle()
    assert piece.outputs.get().result == [{"label": "label 1"}]
    second = outside / "second.db"
    conn = apsw.Connection(str(second))
    conn.execute("CREATE TABLE codes (code TEXT, label TEXT)")
    conn.execute("INSERT INTO codes VALUES ('c1', 'second file')")
    conn.close()
    piece.inputs["ref"].link(space.register_disk_source(str(second)))
    rt.settle()
    assert piece.outputs.get().result == [{"label": "second file"}]


def test_a_vm_source_fails_queries_reads_and_writes_and_records_nothing(
    rt: sc.Runtime, space: Space
) -> None:
    db = space.sqlite_database(
        "vm", tables=MESSAGES, source=sc.VmSource(vm=object(), path="/vm.db")
    )
    before = _listing(rt.store)
    q = db.query("SELECT body FROM messages")
    rt.settle()
    assert isinstance(q.get().error, sc.NotImplementedSource) and q.get().result is None
    with pytest.raises(sc.NotImplementedSource):
        db.read("SELECT body FROM messages")
    seen = space.file.seen_seq
    with space.transact() as tx:
        with pytest.raises(sc.NotImplementedSource):
            db.exec("INSERT INTO messages (body) VALUES ('x')")
        with pytest.raises(sc.NotImplementedSource):
            db.exec_many("INSERT INTO messages (body) VALUES (?)", [["x"]])
        assert tx.ops == ()
    assert space.file.seen_seq == seen
    assert _listing(rt.store) == before


# R7, R41: reads create no file


class _Row(msgspec.Struct):
    id: int
    author_cf_link: sc.Cell | None


def _foreign_link(space_id: str, cell: str = "of:ghost") -> str:
    """The link of R30 to a cell of a space the store does not hold."""
    return json.dumps({"/": {"link@1": {"id": cell, "space": space_id, "scope": "space"}}})


def test_links_to_spaces_the_store_does_not_hold_read_none_and_create_nothing(
    rt: sc.Runtime, space: Space
) -> None:
    db = space.sqlite_database("chat", tables=MESSAGES)
    with space.transact():
        db.exec(
            "INSERT INTO messages (id, author_cf_link, body) VALUES (1, ?, 'x')",
            [rt.cell_from_link(_foreign_link("nowhere"))],
        )
    before = _listing(rt.store)
    ghost = rt.cell_from_link(_foreign_link("elsewhere", "of:abc"))
    assert ghost.get() is None and ghost.key("a").key(0).get() is None
    values: list[Any] = []
    subscription = ghost.observe().subscribe(values.append)
    rt.settle()
    subscription.dispose()
    assert values == [None]
    assert sc.decode_cf_link(_foreign_link("third"), rt).get() is None
    [row] = db.read("SELECT id, author_cf_link FROM messages", row=_Row)
    assert row.author_cf_link is not None and row.author_cf_link.get() is None
    q = db.query("SELECT id, author_cf_link FROM messages", row=_Row)
    rt.settle()
    [typed] = q.get().result or []
    assert typed.author_cf_link is not None and typed.author_cf_link.get() is None
    derived = sc.derive(ghost, lambda v: v)
    rt.settle()
    assert derived.get() is None
    assert _listing(rt.store) == before


def test_a_never_written_database_reads_empty_and_creates_nothing(
    rt: sc.Runtime, store: Path
) -> None:
    before = _listing(store)
    space = rt.space("fresh")
    db = space.sqlite_database("chat", tables=MESSAGES)
    assert db.read("SELECT * FROM messages") == []
    assert db.read("SELECT count(*) AS n FROM messages") == [{"n": 0}]
    q = db.query("SELECT body FROM messages")
    rt.settle()
    assert q.get().result == [] and q.get().error is None
    with pytest.raises(sc.QueryError):
        db.read("SELECT * FROM nowhere")
    assert db.rev == 0 and not db.path.exists()
    assert _listing(store) == before


# R53: two runtimes in one process


def test_two_runtimes_in_one_process_see_each_other_s_commits(store: Path) -> None:
    with sc.Runtime(store, poll_interval=0.01) as a, sc.Runtime(store, poll_interval=0.01) as b:
        a_space, b_space = a.space("demo"), b.space("demo")
        a_db = a_space.sqlite_database("chat", tables=MESSAGES)
        b_db = b_space.sqlite_database("chat", tables=MESSAGES)
        b_counter = b_space.cell("counter", default=0)
        seen: list[Any] = []
        b_counter.observe().subscribe(seen.append)
        q = b_db.query("SELECT body FROM messages ORDER BY id")
        runs: list[Any] = []
        q.observe().subscribe(runs.append)
        b.settle()
        with a_space.transact():
            a_space.cell("counter", default=0).set(5)
            a_db.exec("INSERT INTO messages (id, body, ts) VALUES (1, 'from a', 1)")
        assert _wait_for(q, lambda s: s.result == [{"body": "from a"}])
        b.settle()
        assert b_counter.get() == 5 and seen[-1] == 5
        assert b_db.rev == 1
        # b's commit reaches a
        a_q = a_db.query("SELECT count(*) AS n FROM messages")
        a.settle()
        with b_space.transact():
            b_db.exec("INSERT INTO messages (id, body) VALUES (2, 'from b')")
        assert _wait_for(a_q, lambda s: s.result == [{"n": 2}])
        assert a_space.cell("counter", default=0).get() == 5


def test_a_write_to_a_column_a_query_does_not_read_reruns_nothing_in_another_runtime(
    store: Path,
) -> None:
    with sc.Runtime(store, poll_interval=0.01) as a, sc.Runtime(store, poll_interval=0.01) as b:
        a_db = a.space("demo").sqlite_database("chat", tables=MESSAGES)
        b_db = b.space("demo").sqlite_database("chat", tables=MESSAGES)
        with a.space("demo").transact():
            a_db.exec("INSERT INTO messages (id, body, ts) VALUES (1, 'x', 1)")
        body = b_db.query("SELECT body FROM messages")
        ts = b_db.query("SELECT ts FROM messages")
        b.settle()
        assert body.get().result == [{"body": "x"}]
        body_seqs: list[int] = []
        body.observe().subscribe(lambda s: body_seqs.append(s.seq))
        b.settle()
        with a.space("demo").transact():
            a_db.exec("UPDATE messages SET ts = 2 WHERE id = 1")
        assert _wait_for(ts, lambda s: s.result == [{"ts": 2}])
        b.settle()
        assert body.get().seq == 1 and body_seqs == [1]  # not re-run
        with a.space("demo").transact():
            a_db.exec("UPDATE messages SET body = 'y' WHERE id = 1")
        assert _wait_for(body, lambda s: s.result == [{"body": "y"}])
        assert body.get().seq == 3


def test_a_wal_source_written_again_after_a_checkpoint_is_live_whatever_the_clock(
    rt: sc.Runtime, space: Space, outside: Path
) -> None:
    """After a checkpoint, the writer's next commit starts its ``-wal`` over from the top: the
    file keeps its size, and a file system whose clock is coarser than two commits keeps its
    mtime too (set back here to stand for that). The content changed: the query re-runs."""
    path = outside / "walled.db"
    writer = apsw.Connection(str(path))
    try:
        writer.execute("PRAGMA journal_mode=WAL").fetchall()
        writer.execute("PRAGMA wal_autocheckpoint=0").fetchall()
        writer.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)")
        writer.executemany("INSERT INTO t VALUES (?, ?)", [(i, "x" * 500) for i in range(50)])
        writer.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        wal = outside / "walled.db-wal"
        handle = space.register_disk_source(str(path))
        q = handle.query("SELECT v FROM t WHERE k = 0")
        rt.settle()
        assert q.get().result == [{"v": "x" * 500}]
        rt.settle()
        found = wal.stat()
        main_found = path.stat()
        writer.execute("UPDATE t SET v = 'changed' WHERE k = 0")
        assert wal.stat().st_size == found.st_size  # the -wal started over
        os.utime(wal, ns=(found.st_atime_ns, found.st_mtime_ns))
        assert path.stat().st_mtime_ns == main_found.st_mtime_ns
        assert handle.read("SELECT v FROM t WHERE k = 0") == [{"v": "changed"}]
        assert _wait_for(q, lambda s: s.result == [{"v": "changed"}])
    finally:
        writer.close()


def test_a_wal_source_its_program_opens_writes_and_closes_within_a_clock_tick_is_live(
    rt: sc.Runtime, space: Space, outside: Path
) -> None:
    """R60: a program that opens the file, commits and closes (its close checkpoints the
    commit into the file and removes the -wal and -shm) twice within one tick of a coarse
    file-system clock leaves size, mtime and the header's change counter as they were (a WAL
    commit does not bump it): the source was read `immutable` and taken as unchanged — the
    query and `db.read` kept the first commit's rows. The mtime is set back here to stand for
    a clock that did not tick: one of whole seconds (as ext3 keeps them), whose tick is long
    enough for a loaded machine to register and read the file within it (with a fine clock's
    50 ms tick, set back to a time that passed long ago, it stood for no clock at all)."""
    import sqlite3

    path = outside / "ticked.db"

    def commit(sql: str, *params: object) -> None:
        conn = sqlite3.connect(path)
        conn.execute(sql, params)
        conn.commit()
        conn.close()

    commit("PRAGMA journal_mode=WAL")
    commit("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    commit("INSERT INTO t VALUES (1, 'old')")
    commit("UPDATE t SET v = ? WHERE id = 1", "one")
    second = (int(time.time()) + 1) * 1_000_000_000  # the next whole second, just ahead
    os.utime(path, ns=(second, second))
    before = path.stat()
    handle = space.register_disk_source(str(path))
    q = handle.query("SELECT v FROM t WHERE id = 1")
    rt.settle()
    assert q.get().result == [{"v": "one"}]
    assert handle.read("SELECT v FROM t") == [{"v": "one"}]
    commit("UPDATE t SET v = ? WHERE id = 1", "two")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    assert sorted(p.name for p in outside.iterdir() if p.name.startswith("ticked")) == ["ticked.db"]
    assert handle.read("SELECT v FROM t") == [{"v": "two"}]
    assert _wait_for(q, lambda s: s.result == [{"v": "two"}])


def test_transactions_and_handlers_that_only_read_create_no_file(
    rt: sc.Runtime, store: Path
) -> None:
    """A transaction that wrote nothing commits nothing, so no space file appears (R7); running
    a piece is a write (its record and inputs), so it is left out here."""
    space = rt.space("ghost-town")
    cell = space.cell("c", default={"a": [1]})
    db = space.sqlite_database("chat", tables=MESSAGES)
    with space.transact():
        assert cell.get() == {"a": [1]} and cell.key("a").key(0).get() == 1
        assert db.read("SELECT count(*) AS n FROM messages") == [{"n": 0}]

    @sc.handler
    def look(*, c: sc.Cell) -> Any:
        assert c.get() == {"a": [1]}

    assert look(c=cell) is None
    assert _listing(store) == []


def test_a_registration_inside_a_transaction_that_fails_is_still_the_stored_handle(
    store: Path, outside: Path, reference: Path
) -> None:
    """The handle returned is the handle stored: a registration made inside a transaction
    that is then discarded still leaves the handle's value (and its pin) committed, so a link
    to it written later resolves after a restart, in every process alike."""
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        piece = space.run(_count_codes, key="main")
        with pytest.raises(KeyError), space.transact():
            handle = space.register_disk_source(str(reference))
            raise KeyError("the rest of the transaction fails")
        with sc.Runtime(store) as other:
            assert other.cell_from_link(handle.link_str()).get() == handle.get()
        piece.inputs["ref"].link(handle)
        rt.settle()
        assert piece.outputs.get().result == [{"n": 3}]
    with sc.Runtime(store) as rt:
        piece = rt.space("demo").run(_count_codes, key="main")
        rt.settle()
        assert piece.outputs.get().result == [{"n": 3}] and piece.outputs.get().error is None


def test_registering_again_inside_another_space_s_transaction_re_pins_in_every_process(
    store: Path, outside: Path, reference: Path
) -> None:
    """Registering the path again after its file was replaced re-pins the handle (R60). Done
    inside a transaction that writes another space, the registration commits on its own: the
    process and the stored value agree on which file is meant, and the outer transaction is
    untouched."""
    with sc.Runtime(store) as rt:
        here, there = rt.space("demo"), rt.space("other")
        handle = there.register_disk_source(str(reference))
        os.replace(_reference_db(outside / "new.db", rows=9), reference)
        with here.transact() as tx:
            here.cell("x").set(1)
            again = there.register_disk_source(str(reference))
            assert tx.writes and here.cell("x").get() == 1
        assert again.id == handle.id and here.cell("x").get() == 1
        found = reference.stat()
        assert handle.get()["source"]["pin"] == [str(found.st_dev), str(found.st_ino)]
        assert handle.read("SELECT count(*) AS n FROM codes") == [{"n": 9}]
        with sc.Runtime(store) as other:  # a process that resolves the stored value agrees
            assert other.cell_from_link(handle.link_str()).get() == handle.get()
            linked = other.space("other").run(
                _count_codes, key="p", ref=other.cell_from_link(handle.link_str())
            )
            other.settle()
            assert linked.outputs.get().result == [{"n": 9}]


def _write(path: Path, sql: str) -> None:
    conn = apsw.Connection(str(path))
    conn.execute(sql)
    conn.close()


def test_react_on_treats_a_change_of_the_source_file_as_its_write(
    rt: sc.Runtime, space: Space, reference: Path
) -> None:
    """R51 for a source: a change of the file's content stands for a committed write. The
    default and ``react_on=db`` re-run on it; ``react_on=None`` runs once; another
    ``react_on`` replaces it (the file's change alone re-runs nothing)."""
    handle = space.register_disk_source(str(reference))
    tick = space.cell("tick", default=0)
    sql = "SELECT count(*) AS n FROM codes"
    default, on_db = handle.query(sql), handle.query(sql, react_on=handle)
    once, on_tick = handle.query(sql, react_on=None), handle.query(sql, react_on=tick)
    rt.settle()
    _write(reference, "INSERT INTO codes VALUES ('c9', 'nine')")
    assert _wait_for(default, lambda s: s.result == [{"n": 4}])
    assert _wait_for(on_db, lambda s: s.result == [{"n": 4}])
    rt.settle()
    assert once.get().result == [{"n": 3}] and on_tick.get().result == [{"n": 3}]
    with space.transact():
        tick.set(1)
    rt.settle()
    assert on_tick.get().result == [{"n": 4}] and once.get().result == [{"n": 3}]


class _Ref(msgspec.Struct):
    code: str
    owner: sc.Cell | None


def test_typed_rows_of_a_source_decode_its_links_and_create_nothing(
    rt: sc.Runtime, space: Space, outside: Path
) -> None:
    """R43 and R7 on a source: a link column (behind an alias too) decodes to a live cell; a
    link to a space the store does not hold reads ``None`` and creates no file; a value that
    is not a link is ``None`` for that field."""
    with space.transact():
        space.cell("alice").set({"name": "Alice"})
    path = outside / "links.db"
    conn = apsw.Connection(str(path))
    conn.execute("CREATE TABLE refs (code TEXT, owner_cf_link TEXT)")
    conn.executemany(
        "INSERT INTO refs VALUES (?, ?)",
        [
            ("a", space.cell("alice").link_str()),
            ("b", _foreign_link("nowhere", "of:bob")),
            ("c", "not a link"),
            ("d", None),
        ],
    )
    conn.close()
    handle = space.register_disk_source(str(path))
    before = _listing(rt.store)
    sql = "SELECT code, owner_cf_link AS owner FROM refs ORDER BY code"
    rows = handle.read(sql, row=_Ref)
    q = handle.query(sql, row=_Ref)
    rt.settle()
    for found in (rows, q.get().result or []):
        assert [r.code for r in found] == ["a", "b", "c", "d"]
        a, b, c, d = (r.owner for r in found)
        assert a is not None and a.get() == {"name": "Alice"}
        assert b is not None and b.get() is None and b.space.id == "nowhere"
        assert c is None and d is None
    assert handle.read("SELECT owner_cf_link FROM refs WHERE code = 'c'") == [
        {"owner_cf_link": "not a link"}
    ]
    assert _listing(rt.store) == before


@sc.pattern
def _optional_lookup(ref: sc.SqliteDb | None, other: Optional[sc.SqliteDb]) -> Any:  # noqa: UP045 -- the spelling under test
    assert isinstance(ref, sc.SqliteDb) and isinstance(other, sc.SqliteDb)
    return ref.query("SELECT label FROM codes WHERE code = 'c1'")


def test_an_input_typed_as_an_optional_database_is_a_database_input(
    rt: sc.Runtime, space: Space, reference: Path
) -> None:
    """R61 for ``sc.SqliteDb | None`` and ``Optional[sc.SqliteDb]``: the input is a database
    input all the same (pending until linked, then it runs); a plain value is refused before
    anything is recorded."""
    piece = space.run(_optional_lookup, key="p")
    rt.settle()
    assert piece.outputs.get().pending is True
    piece.inputs["ref"].link(space.register_disk_source(str(reference)))
    rt.settle()
    assert piece.outputs.get().result == [{"label": "label 1"}]
    seen = space.file.seen_seq
    for given in ({"ref": 5}, {"ref": None, "other": "x.db"}):
        with pytest.raises(sc.SqliteCellsError, match=r"typed sc\.SqliteDb") as info:
            space.run(_optional_lookup, key="q", **given)
        assert isinstance(info.value, ValueError | TypeError)
    assert space.file.seen_seq == seen


def _pattern_with_a_local_type() -> Any:
    class Options:  # a name the module cannot resolve: its annotation stays unresolvable
        pass

    @sc.pattern
    def lookup(ref: sc.SqliteDb, opts: Options) -> Any:
        assert isinstance(ref, sc.SqliteDb)
        return ref.query("SELECT count(*) AS n FROM codes")

    return lookup


def test_an_unresolvable_annotation_of_another_input_keeps_the_database_input(
    rt: sc.Runtime, space: Space, reference: Path
) -> None:
    """R61: an input typed ``sc.SqliteDb`` stays a database input when another parameter's
    annotation cannot be resolved (a type local to a function, with postponed annotations)."""
    piece = space.run(_pattern_with_a_local_type(), key="p")
    rt.settle()
    assert piece.outputs.get().pending is True
    piece.inputs["ref"].link(space.register_disk_source(str(reference)))
    rt.settle()
    assert piece.outputs.get().result == [{"n": 3}]


def test_a_read_sees_what_another_program_committed_before_it_whatever_the_poll(
    store: Path, outside: Path
) -> None:
    """R40 for a source: a read sees exactly the commits that finished before it started. A
    WAL file first read while no program had it open is read through a connection that
    assumes the file does not change (nothing created beside it); when another program then
    writes it, the next read must not be served by that connection, whether or not the file
    watcher (every ``poll_interval``, very long here) has looked yet."""
    path = _reference_db(outside / "walled.db", wal=True)
    with sc.Runtime(store, poll_interval=3600) as rt:
        handle = rt.space("demo").register_disk_source(str(path))
        sql = "SELECT count(*) AS n FROM codes"
        assert handle.read(sql) == [{"n": 3}]
        writer = apsw.Connection(str(path))
        try:
            writer.execute("INSERT INTO codes VALUES ('c3', 'while open')")
            assert handle.read(sql) == [{"n": 4}]
            writer.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            writer.execute("INSERT INTO codes VALUES ('c4', 'after a checkpoint')")
            assert handle.read(sql) == [{"n": 5}]
        finally:
            writer.close()
        assert handle.read(sql) == [{"n": 5}]
        writer = apsw.Connection(str(path))  # opened and written again, then closed
        writer.execute("DELETE FROM codes WHERE code = 'c0'")
        writer.close()
        assert handle.read(sql) == [{"n": 4}]
        # the writer's own -wal and -shm at most (kept while a reader has the file open)
        assert set(_listing(outside)) <= {"walled.db", "walled.db-wal", "walled.db-shm"}
        # a program that opens, writes and closes the file between two reads
        other = _reference_db(outside / "other.db", wal=True)
        twin = rt.space("demo").register_disk_source(str(other))
        assert twin.read(sql) == [{"n": 3}]
        _write(other, "INSERT INTO codes VALUES ('c3', 'x')")
        assert "other.db-wal" not in _listing(outside)  # all moved into the file
        assert twin.read(sql) == [{"n": 4}]


def test_a_runtime_reads_the_file_another_runtime_of_its_process_registered_again(
    store: Path, outside: Path, reference: Path
) -> None:
    """R60, R53: the file registered is the file read. Runtime A has read the source (an idle
    connection to that file is pooled); the file is replaced and runtime B of the same process
    registers the path again, which makes the new file the one meant. A's next read reads the
    new file, never the replaced one through the connection it kept."""
    with (
        sc.Runtime(store, poll_interval=3600) as a,
        sc.Runtime(store, poll_interval=3600) as b,
    ):
        from_a = a.space("demo").register_disk_source(str(reference))
        sql = "SELECT count(*) AS n FROM codes"
        assert from_a.read(sql) == [{"n": 3}]
        os.replace(_reference_db(outside / "new.db", rows=6), reference)
        from_b = b.space("demo").register_disk_source(str(reference))
        assert from_b.read(sql) == [{"n": 6}]
        assert from_a.read(sql) == [{"n": 6}]


def test_a_linked_source_outside_the_roots_of_a_later_runtime_is_refused_clearly(
    store: Path, outside: Path, reference: Path
) -> None:
    """The path rules hold for a handle resolved from its stored value too: a runtime opened
    later with ``disk_source_roots`` that leave the file out refuses it (rule ``under-roots``)
    in the query's state, and reads nothing of it."""
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        piece = space.run(_count_codes, key="main", ref=space.register_disk_source(reference))
        rt.settle()
        assert piece.outputs.get().result == [{"n": 3}]
    (outside / "allowed").mkdir()
    with sc.Runtime(store, disk_source_roots=[outside / "allowed"]) as rt:
        piece = rt.space("demo").run(_count_codes, key="main")
        rt.settle()
        state = piece.outputs.get()
        assert state.result is None and isinstance(state.error, sc.DiskSourceError)
        assert state.error.rule == "under-roots"
    assert _listing(outside) == ["allowed", "reference.db"]


_WAL_WRITER = """
import sys
import apsw
conn = apsw.Connection(sys.argv[1])
conn.execute("PRAGMA journal_mode=WAL").fetchall()
conn.execute("INSERT INTO codes VALUES ('w1', 'written in WAL')")
print("committed", flush=True)
sys.stdin.readline()
conn.close()
print("closed", flush=True)
"""


def _wal_writer(path: Path) -> Any:
    """Another program with ``path`` open in WAL mode and one commit in its -wal, waiting for a
    line on stdin to close (its close checkpoints and removes the -wal and -shm)."""
    import subprocess
    import sys

    writer = subprocess.Popen(
        [sys.executable, "-c", _WAL_WRITER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert writer.stdout is not None and writer.stdout.readline().strip() == "committed"
    return writer


def _close_writer(writer: Any) -> None:
    writer.stdin.write("\n")
    writer.stdin.flush()
    closed = writer.stdout.readline().strip()
    writer.stdin.close()
    writer.stdout.close()
    assert writer.wait(timeout=30) == 0 and closed == "closed"


def test_a_wal_source_read_while_its_program_runs_keeps_nothing_beside_it(
    space: Space, outside: Path
) -> None:
    """R60: the runtime's connection to a WAL source whose program has it open held a lock
    after the read, so that program's close could not checkpoint and remove its -wal and -shm:
    both stayed beside the file, the commit only in the -wal. Such a connection is not kept."""
    path = _reference_db(outside / "walled.db", wal=True)
    writer = _wal_writer(path)
    assert _listing(outside) == ["walled.db", "walled.db-shm", "walled.db-wal"]
    handle = space.register_disk_source(str(path))
    assert handle.read("SELECT count(*) AS n FROM codes") == [{"n": 4}]
    _close_writer(writer)
    assert _listing(outside) == ["walled.db"]
    assert handle.read("SELECT count(*) AS n FROM codes") == [{"n": 4}]
    assert _listing(outside) == ["walled.db"]


def test_a_wal_source_whose_program_closes_as_it_is_opened_gets_no_wal_of_ours(
    space: Space, outside: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """R60: the runtime opens a WAL source `mode=ro` while its program's -wal and -shm are there
    (it sees that program's commits); the program closing just then removed both, and SQLite
    created them again at the runtime's first read. They are looked for again once the
    connection is open, before it reads. (The writer is closed from inside the open here, to
    meet that moment every time.)"""
    from sqlite_cells.read import _pool

    path = _reference_db(outside / "walled.db", wal=True)
    writer = _wal_writer(path)
    handle = space.register_disk_source(str(path))
    chosen: list[str] = []
    plain = _pool.source_opening

    def opening(at: Path) -> tuple[str, Any]:
        uri, frozen = plain(at)
        chosen.append(uri)
        if len(chosen) == 1:
            _close_writer(writer)  # between the look at the -wal and the open's first read
        return uri, frozen

    monkeypatch.setattr(_pool, "source_opening", opening)
    assert handle.read("SELECT count(*) AS n FROM codes") == [{"n": 4}]
    assert [uri.endswith("immutable=1") for uri in chosen] == [False, True]
    assert _listing(outside) == ["walled.db"]


def test_a_read_failing_as_a_whole_names_each_querys_own_statement(
    rt: sc.Runtime, space: Space, reference: Path
) -> None:
    """A source deleted under three live queries read in one batch: each query's error names
    its own statement, not the first one's (Errors: what was wrong, and where)."""
    handle = space.register_disk_source(str(reference))
    sqls = ["SELECT code FROM codes", "SELECT label FROM codes", "SELECT count(*) AS n FROM codes"]
    queries = [handle.query(sql) for sql in sqls]
    rt.settle()
    assert [len(q.get().result or []) for q in queries] == [3, 3, 1]
    reference.unlink()  # (seen at the source watcher's next look, each poll_interval)
    errors: list[Any] = []
    for _ in range(200):
        rt.settle()
        errors = [q.get().error for q in queries]
        if all(e is not None for e in errors):
            break
        threading.Event().wait(0.02)
    for sql, error in zip(sqls, errors, strict=True):
        assert isinstance(error, sc.QueryError)
        assert error.sql == sql
        assert "is gone (deleted or moved after it was registered)" in str(error)
        assert str(error).endswith(f"in {sql!r}")


def test_an_empty_file_is_an_empty_source_and_live_once_written(
    rt: sc.Runtime, space: Space, outside: Path
) -> None:
    """SQLite reads a file of 0 bytes as an empty database: registered as one (a program may
    make the file first and write it later), with no table to read until it writes one, then
    live (R60); nothing is created beside it."""
    path = outside / "later.db"
    path.write_bytes(b"")
    handle = space.register_disk_source(str(path))
    assert handle.read("SELECT 1 AS n") == [{"n": 1}]
    with pytest.raises(sc.QueryError, match="holds no such table"):
        handle.read("SELECT x FROM t")
    q = handle.query("SELECT x FROM t")
    rt.settle()
    assert isinstance(q.get().error, sc.QueryError)
    writer = apsw.Connection(str(path))
    writer.execute("CREATE TABLE t(x); INSERT INTO t VALUES (7)")
    writer.close()
    assert _wait_for(q, lambda s: s.result == [{"x": 7}] and s.error is None)
    assert sorted(p.name for p in outside.iterdir() if p.name.startswith("later")) == ["later.db"]


def test_a_query_made_after_its_source_changed_never_takes_a_read_sent_before_the_change(
    store: Path, reference: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """R60, R42: live queries of one statement share a read in flight. One made after the
    watcher saw another program's change to the file, while a read of its statement from before
    the change was still landing, took that read's rows and kept them for good (no later look
    sees a change). The read is held on its worker after it read (a spy around the real read)
    until the second query has asked for its rows; the watcher's look is made by the test."""
    started, release = threading.Event(), threading.Event()
    real = workers_module.read_batch

    def held(*args: Any, **kwargs: Any) -> Any:
        result = real(*args, **kwargs)  # the rows as the file held them then
        started.set()
        assert release.wait(WAIT)
        return result

    monkeypatch.setattr(workers_module, "read_batch", held)
    sql = "SELECT code, label FROM codes ORDER BY code"
    with sc.Runtime(store, poll_interval=60) as rt:
        handle = rt.space("demo").register_disk_source(reference)
        first = handle.query(sql)
        assert started.wait(WAIT)
        conn = apsw.Connection(str(reference))
        conn.execute("UPDATE codes SET label = 'new' WHERE code = 'c0'")
        conn.close()
        rt.live_queries.look_at_sources()  # what the watcher does each poll_interval
        second = handle.query(sql)
        rt.scheduler.submit(release.set)  # after the second query asked for its rows
        rt.settle()
        expected = [{"code": "c0", "label": "new"}, *handle.read(sql)[1:]]
        assert handle.read(sql) == expected
        assert first.get().result == expected
        assert second.get().result == expected


def test_a_collation_or_function_of_the_source_programs_own_is_named_as_the_files(
    rt: sc.Runtime, space: Space, outside: Path
) -> None:
    """A source whose program defines its own collation or SQL function and uses it in its
    schema (a column's collation, a view, a generated column): a read of what uses it fails,
    and the error says the file's schema uses it, not that the statement is wrong (R60); a
    statement that calls an unknown function itself is still told to correct the statement."""
    path = outside / "own_names.db"
    conn = apsw.Connection(str(path))
    conn.create_scalar_function("own_fn", lambda x: x, 1, deterministic=True)
    conn.create_collation("own_order", lambda a, b: (a > b) - (a < b))
    conn.execute(
        "CREATE TABLE t (x, y TEXT COLLATE own_order); INSERT INTO t VALUES (1, 'b'), (2, 'a');"
        "CREATE VIEW v AS SELECT own_fn(x) AS z FROM t;"
        "CREATE TABLE g (a, b AS (own_fn(a))); INSERT INTO g (a) VALUES (1)"
    )
    conn.close()
    before = _digest(path)
    handle = space.register_disk_source(str(path))
    assert handle.read("SELECT x FROM t ORDER BY x") == [{"x": 1}, {"x": 2}]
    assert handle.read("SELECT a FROM g") == [{"a": 1}]
    cases = {
        "SELECT x FROM t ORDER BY y": "uses collation 'own_order' in its own schema",
        "SELECT z FROM v": "uses function 'own_fn' in its own schema",
        "SELECT * FROM g": "uses function 'own_fn' in its own schema",
    }
    for sql, said in cases.items():
        with pytest.raises(sc.QueryError) as info:
            handle.read(sql)
        assert said in str(info.value)
        assert f"the source file {path}" in str(info.value)
        assert "leave those columns and views out of the query" in str(info.value)
    q = handle.query("SELECT x FROM t ORDER BY y")
    rt.settle()
    assert q.get().result is None
    assert "uses collation 'own_order' in its own schema" in str(q.get().error)
    with pytest.raises(sc.QueryError) as called:
        handle.read("SELECT OWN_FN(x) AS z FROM t")
    assert "no such function: OWN_FN" in str(called.value)
    assert "in its own schema" not in str(called.value)
    assert _digest(path) == before
    assert sorted(p.name for p in outside.iterdir()) == ["own_names.db"]
