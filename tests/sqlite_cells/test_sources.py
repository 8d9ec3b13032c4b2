"""Injected disk sources, pattern inputs, the VM stub and file lifecycle (R3, R60–R62)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import apsw
import pytest

import sqlite_cells as sc
from sqlite_cells._runtime import Space
from sqlite_cells.files import _sources as sources
from sqlite_cells.files import collect_garbage
from sqlite_cells.read import _pool as pool
from sqlite_cells.read._vtabs import connect_rtrees
from sqlite_cells.runtime import reading_sources

from .._files import read_bytes
from .._pathlike import Fspath
from .conftest import MESSAGES


def _reference_db(path: Path, rows: int = 3) -> Path:
    conn = apsw.Connection(str(path))
    conn.execute("CREATE TABLE codes (code TEXT PRIMARY KEY, label TEXT)")
    conn.executemany(
        "INSERT INTO codes VALUES (?, ?)", [(f"c{i}", f"label {i}") for i in range(rows)]
    )
    conn.close()
    return path


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "outside"
    folder.mkdir()
    return folder


@pytest.fixture
def reference(outside: Path) -> Path:
    return _reference_db(outside / "reference.db")


# Each case builds a path (given the store, a folder outside it, and a good reference file)
# and names the rule its refusal must cite.
Case = Callable[[Path, Path, Path], str]


def _symlink(link: Path, target: Path) -> str:
    link.symlink_to(target)
    return str(link)


def _fifo(path: Path) -> str:
    os.mkfifo(path)
    return str(path)


def _text(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


def _store_db(store: Path, name: str) -> Path:
    return _reference_db(store / name)


HOSTILE: list[tuple[str, Case, str]] = [
    ("relative", lambda s, o, r: "reference.db", "absolute"),
    ("dot-relative", lambda s, o, r: "./outside/reference.db", "absolute"),
    ("parent-relative", lambda s, o, r: "../reference.db", "absolute"),
    ("empty", lambda s, o, r: "", "absolute"),
    ("missing", lambda s, o, r: str(o / "nope.db"), "exists"),
    ("missing-dir", lambda s, o, r: str(o / "no" / "such.db"), "exists"),
    ("dangling-link", lambda s, o, r: _symlink(o / "dangling.db", o / "gone.db"), "exists"),
    ("link-loop", lambda s, o, r: _symlink(o / "loop.db", o / "loop.db"), "exists"),
    # the system reads "file/" as a directory that does not exist (Path would drop the "/")
    ("trailing-slash", lambda s, o, r: f"{r}/", "exists"),
    ("file-slash-dot", lambda s, o, r: f"{r}/.", "exists"),
    ("directory", lambda s, o, r: str(o), "regular-file"),
    ("root", lambda s, o, r: "/", "regular-file"),
    ("fifo", lambda s, o, r: _fifo(o / "pipe.db"), "regular-file"),
    ("proc-self", lambda s, o, r: "/proc/self/status", "regular-file"),
    ("proc-self-fd", lambda s, o, r: "/proc/self/fd/0", "regular-file"),
    ("dev-null", lambda s, o, r: "/dev/null", "regular-file"),
    ("space-file", lambda s, o, r: str(next(s.glob("space-*.sqlite"))), "outside-store"),
    ("space-wal", lambda s, o, r: str(next(s.glob("space-*.sqlite-wal"))), "outside-store"),
    ("db-in-store", lambda s, o, r: str(_store_db(s, "planted.db")), "outside-store"),
    (
        "dotdot-into-store",
        lambda s, o, r: str(s / ".." / s.name / _store_db(s, "x.db").name),
        "outside-store",
    ),
    (
        "link-into-store",
        lambda s, o, r: _symlink(o / "sneaky.db", _store_db(s, "target.db")),
        "outside-store",
    ),
    ("look-alike-sibling", lambda s, o, r: str(_lookalike(s)), "sqlite-file"),
    ("text-file", lambda s, o, r: _text(o / "notes.txt", b"hello, not a database"), "sqlite-file"),
    ("wal-file", lambda s, o, r: _wal_of(o), "sqlite-file"),
    (
        "bad-header",
        lambda s, o, r: _text(o / "fake.db", b"SQLite format 3\x00" + b"\xff" * 200),
        "sqlite-file",
    ),
]


def _lookalike(store: Path) -> Path:
    """``<store>..x.sqlite`` sits beside the store, not in it: only the file content decides."""
    path = store.parent / f"{store.name}..x.sqlite"
    path.write_bytes(b"not sqlite")
    return path


def _wal_of(folder: Path) -> str:
    conn = apsw.Connection(str(folder / "walled.db"))
    conn.execute("PRAGMA journal_mode=WAL").fetchall()
    conn.execute("CREATE TABLE t(x)")
    conn.execute("INSERT INTO t VALUES (1)")
    wal = folder / "walled.db-wal"
    assert wal.exists()
    data = wal.read_bytes()
    conn.close()
    return _text(folder / "copy-of.db-wal", data)


@pytest.mark.parametrize(("name", "make", "rule"), HOSTILE, ids=[c[0] for c in HOSTILE])
def test_hostile_registration_paths_are_refused(
    rt: sc.Runtime, space: Space, outside: Path, reference: Path, name: str, make: Case, rule: str
) -> None:
    with space.transact():
        space.cell("warm").set(1)  # the space file and its -wal exist
    path = make(rt.store, outside, reference)
    before = space.file.seen_seq
    with pytest.raises(sc.DiskSourceError) as info:
        space.register_disk_source(path)
    assert info.value.rule == rule, str(info.value)
    assert info.value.path == path
    assert rule in str(info.value)
    assert space.file.seen_seq == before  # nothing was written


def test_roots_limit_where_sources_may_live(store: Path, outside: Path, reference: Path) -> None:
    with sc.Runtime(store, disk_source_roots=[outside / "allowed"]) as rt:
        with pytest.raises(sc.DiskSourceError) as info:
            rt.space("demo").register_disk_source(str(reference))
        assert info.value.rule == "under-roots"
        (outside / "allowed").mkdir()
        good = _reference_db(outside / "allowed" / "ok.db")
        assert rt.space("demo").register_disk_source(str(good)).read(
            "SELECT count(*) AS n FROM codes"
        ) == [{"n": 3}]


def test_what_is_no_regular_file_outside_the_roots_is_refused_as_outside_the_roots(
    store: Path, outside: Path
) -> None:
    """R60: a directory or a named pipe outside `disk_source_roots` was refused under the
    regular-file rule ("not a regular file: register the database file itself"), which sent
    the user to find a file there, not to move it under the roots. Where it lies is judged
    first; under the roots, what is no regular file is still refused for that."""
    allowed = outside / "allowed"
    allowed.mkdir()
    folder = outside / "folder.db"
    folder.mkdir()
    pipe = _fifo(outside / "pipe.db")
    with sc.Runtime(store, disk_source_roots=[allowed]) as rt:
        space = rt.space("demo")
        for path in (str(folder), pipe):
            with pytest.raises(sc.DiskSourceError) as info:
                space.register_disk_source(path)
            assert info.value.rule == "under-roots", str(info.value)
            assert isinstance(info.value, ValueError)
            message = str(info.value)
            assert f"is not under any of disk_source_roots ({allowed})" in message
            assert "move it there or widen the roots" in message
            assert "not a regular file" not in message
        with pytest.raises(sc.DiskSourceError) as info:
            space.register_disk_source(str(allowed))
        assert info.value.rule == "regular-file", str(info.value)
        assert not space.file.exists  # nothing was written
    assert sorted(p.name for p in outside.iterdir()) == ["allowed", "folder.db", "pipe.db"]
    assert list(allowed.iterdir()) == [] and list(folder.iterdir()) == []


def test_paths_that_are_not_paths_are_refused_as_disk_source_errors(
    space: Space, reference: Path
) -> None:
    for path, rule in ((f"{reference}\0.db", "exists"), (5, "path"), (None, "path")):
        with pytest.raises(sc.DiskSourceError) as info:
            space.register_disk_source(path)  # type: ignore[arg-type]
        assert info.value.rule == rule, str(info.value)
        assert isinstance(info.value, ValueError)
    assert not space.file.exists  # nothing was written


_NO_TEXT_PATHS = [
    Fspath(b"/tmp"),
    Fspath(5),
    Fspath(None),
    Fspath(Fspath("/tmp")),
    Fspath(RuntimeError("no path today")),
]


class _Unshowable:
    def __repr__(self) -> str:
        raise RuntimeError("no repr today")


def _deep_list(levels: int) -> list[Any]:
    deep: list[Any] = []
    for _ in range(levels):
        deep = [deep]
    return deep


@pytest.mark.parametrize("path", _NO_TEXT_PATHS, ids=["bytes", "int", "None", "pathlike", "raises"])
def test_a_pathlike_that_names_no_text_path_is_refused_as_a_disk_source_error(
    space: Space, path: Fspath
) -> None:
    with pytest.raises(sc.DiskSourceError) as info:
        space.register_disk_source(path)  # type: ignore[arg-type]
    assert info.value.rule == "path", str(info.value)
    assert "is not a path: give an absolute path as a str or a Path" in str(info.value)
    assert isinstance(info.value, ValueError)
    assert not space.file.exists  # nothing was written


@pytest.mark.parametrize(
    "root",
    [*_NO_TEXT_PATHS, _deep_list(100_000), _Unshowable()],
    ids=["bytes", "int", "None", "pathlike", "raises", "deep-list", "unshowable"],
)
def test_a_root_that_names_no_text_path_or_cannot_be_shown_is_refused_as_ours(
    store: Path, root: object
) -> None:
    with pytest.raises(sc.SqliteCellsError) as info:
        sc.Runtime(store, disk_source_roots=[root])  # type: ignore[list-item]
    assert isinstance(info.value, ValueError) and isinstance(info.value, TypeError)
    assert "each root is a directory path" in str(info.value)
    assert len(str(info.value)) < 600
    assert list(store.iterdir()) == []  # a refused runtime wrote nothing


def test_roots_must_be_a_collection_of_paths_and_an_empty_one_allows_none(
    store: Path, outside: Path, reference: Path
) -> None:
    for roots in (str(outside), outside, [str(outside), 5], ["rel"], [""], ["./x"], ["~/x"]):
        with pytest.raises(sc.SqliteCellsError, match="disk_source_roots") as info:
            sc.Runtime(store, disk_source_roots=roots)  # type: ignore[arg-type]
        assert isinstance(info.value, ValueError) and isinstance(info.value, TypeError)
    assert list(store.iterdir()) == []  # a refused runtime wrote nothing
    with sc.Runtime(store, disk_source_roots=[]) as rt:
        with pytest.raises(sc.DiskSourceError, match="no disk source is allowed") as refused:
            rt.space("demo").register_disk_source(str(reference))
        assert refused.value.rule == "under-roots"


def test_a_registered_source_is_read_only_and_uses_its_own_schema(
    rt: sc.Runtime, space: Space, reference: Path
) -> None:
    handle = space.register_disk_source(str(reference))
    again = space.register_disk_source(str(reference.parent / ".." / "outside" / "reference.db"))
    assert handle.id == again.id
    assert handle.path == reference.resolve()
    assert handle.read("SELECT label FROM codes WHERE code = ?", ["c1"]) == [{"label": "label 1"}]
    q = handle.query("SELECT count(*) AS n FROM codes")
    rt.settle()
    assert q.get().result == [{"n": 3}] and q.get().seq == 0
    counter = space.cell("counter", default=0)
    with space.transact() as tx:
        counter.set(1)
        with pytest.raises(sc.ReadOnlySource, match="read-only"):
            handle.exec("DELETE FROM codes")
        assert tx.ops == ()
    assert counter.get() == 1
    with pytest.raises(sc.GuardViolation) as info:
        handle.read("SELECT * FROM sqlite_master")
    assert info.value.kind == "reserved-name"
    with pytest.raises(sc.GuardViolation) as info:
        handle.read("ATTACH 'x' AS y")
    assert info.value.kind == "forbidden-statement"


def test_a_full_text_table_of_a_source_can_be_searched(
    rt: sc.Runtime, space: Space, outside: Path
) -> None:
    """FTS5 asks for its file's ``PRAGMA data_version`` while a MATCH runs; the read authorizer
    of an injected file allows that one read-only pragma, and nothing else of the kind."""
    path = outside / "docs.db"
    conn = apsw.Connection(str(path))
    conn.execute("CREATE VIRTUAL TABLE docs USING fts5(body)")
    conn.executemany("INSERT INTO docs VALUES (?)", [("hello world",), ("goodbye moon",)])
    conn.close()
    handle = space.register_disk_source(str(path))
    sql = "SELECT body FROM docs WHERE docs MATCH ? ORDER BY rank"
    assert handle.read(sql, ["hello"]) == [{"body": "hello world"}]
    q = handle.query(sql, ["moon"])
    rt.settle()
    assert q.get().result == [{"body": "goodbye moon"}]
    with pytest.raises(sc.GuardViolation) as info:
        handle.read("PRAGMA data_version")
    assert info.value.kind == "forbidden-statement"
    with pytest.raises(sc.GuardViolation) as info:
        handle.read("SELECT * FROM pragma_data_version")
    assert info.value.kind == "forbidden-function"


def _rtree_file(path: Path) -> Path:
    """A file holding an R*Tree table (with an auxiliary column) and a Geopoly table, as
    GeoPackage files hold R*Tree spatial indexes."""
    conn = apsw.Connection(str(path))
    conn.execute("CREATE VIRTUAL TABLE r USING rtree(id, x0, x1, +label)")
    conn.executemany("INSERT INTO r VALUES (?, ?, ?, ?)", [(1, 0, 10, "a"), (2, 20, 30, "b")])
    conn.execute("CREATE VIRTUAL TABLE g USING geopoly(name)")
    conn.execute("INSERT INTO g(_shape, name) VALUES ('[[0,0],[2,0],[2,2],[0,2],[0,0]]', 'sq')")
    conn.close()
    return path


def test_only_the_rtree_modules_are_connected_outside_the_user_state(tmp_path: Path) -> None:
    """A file may give any virtual table the names of an R*Tree's shadow tables: only the
    R*Tree modules' tables are connected as the runtime's own statement."""
    conn = apsw.Connection(str(_rtree_file(tmp_path / "rtree.db")))
    conn.execute(
        "CREATE VIRTUAL TABLE f USING fts5(body); "
        "CREATE TABLE f_node (x); CREATE TABLE f_rowid (x); CREATE TABLE f_parent (x)"
    )
    names: list[str] = []
    conn.exec_trace = lambda _cursor, sql, _bindings: names.append(sql) or True
    assert connect_rtrees(conn)
    assert [sql for sql in names if "WHERE 0" in sql] == [
        'SELECT 1 FROM main."r" WHERE 0',
        'SELECT 1 FROM main."g" WHERE 0',
    ]
    conn.execute("DROP TABLE r; DROP TABLE g")
    assert not connect_rtrees(conn)


def test_an_rtree_table_of_a_source_can_be_read(
    rt: sc.Runtime, space: Space, outside: Path
) -> None:
    """R60, R23: when an R*Tree table connects it prepares the writes it would make to its
    shadow tables, which the read authorizer denied ("not authorized") although the read writes
    nothing; the runtime connects it first, and the file stays unwritten."""
    path = _rtree_file(outside / "geo.db")
    before = read_bytes(path)
    handle = space.register_disk_source(str(path))
    assert handle.read("SELECT * FROM r ORDER BY id") == [
        {"id": 1, "x0": 0.0, "x1": 10.0, "label": "a"},
        {"id": 2, "x0": 20.0, "x1": 30.0, "label": "b"},
    ]
    assert handle.read("SELECT id FROM r WHERE x0 <= ? AND x1 >= ?", [25, 25]) == [{"id": 2}]
    assert handle.read("SELECT name, geopoly_area(_shape) AS area FROM g") == [
        {"name": "sq", "area": 4.0}
    ]
    # Live queries read on other pooled connections, each connecting the table on its own.
    q = handle.query("SELECT label FROM r WHERE x1 < ?", [15])
    shapes = handle.query(
        "SELECT name FROM g WHERE geopoly_overlap(_shape, '[[1,1],[3,1],[3,3],[1,1]]')"
    )
    rt.settle()
    assert q.get().error is None and q.get().result == [{"label": "a"}]
    assert shapes.get().error is None and shapes.get().result == [{"name": "sq"}]
    # Its shadow tables read as before: plain tables of the file.
    assert [row["nodeno"] for row in handle.read("SELECT nodeno FROM r_node")] == [1]
    with space.transact() as tx:
        with pytest.raises(sc.ReadOnlySource, match="read-only"):
            handle.exec("INSERT INTO r VALUES (3, 1, 2, 'c')")
        with pytest.raises(sc.ReadOnlySource, match="read-only"):
            handle.exec("DELETE FROM r_node")
        assert tx.ops == ()
    with pytest.raises(sc.GuardViolation) as info:
        handle.read("DELETE FROM r_rowid")
    assert info.value.kind == "not-read-only"
    assert read_bytes(path) == before
    assert handle.read("SELECT count(*) AS n FROM r") == [{"n": 2}]


def test_a_source_view_over_sqlite_tables_is_refused_in_a_source_s_words(
    space: Space, outside: Path
) -> None:
    """R23, R60: a view of the file that reads SQLite's own tables is denied by the read
    authorizer; an injected file has no declared tables, so the message does not speak of
    them, and names the file."""
    path = outside / "views.db"
    conn = apsw.Connection(str(path))
    conn.execute("CREATE TABLE t (a); CREATE VIEW v AS SELECT name FROM sqlite_master")
    conn.close()
    _rtree_file(path)  # a refused read of a file with R*Tree tables is refused all the same
    handle = space.register_disk_source(str(path))
    with pytest.raises(sc.QueryError) as info:
        handle.read("SELECT * FROM v")
    message = str(info.value)
    assert "not authorized" in message and str(path) in message
    assert "sqlite_" in message and "declared" not in message
    assert handle.read("SELECT count(*) AS n FROM r") == [{"n": 2}]


def test_a_source_deleted_after_registration_is_a_clear_query_error(
    rt: sc.Runtime, space: Space, reference: Path
) -> None:
    handle = space.register_disk_source(str(reference))
    assert handle.read("SELECT count(*) AS n FROM codes") == [{"n": 3}]  # a pooled connection
    reference.unlink()
    with pytest.raises(sc.QueryError) as info:
        handle.read("SELECT count(*) AS n FROM codes")
    assert info.value.db_id == handle.id and "gone" in str(info.value)


def test_corrupt_pages_of_a_source_name_the_file_and_what_to_do(
    space: Space, outside: Path
) -> None:
    """Errors: a source's corrupt pages are a QueryError naming the file and what to do; the
    runtime never writes a source, so nothing is repaired, noted or created beside it."""
    path = _reference_db(outside / "big.db", rows=3000)
    conn = apsw.Connection(str(path))
    pages = [
        page
        for (page,) in conn.execute(
            "SELECT pageno FROM dbstat WHERE name = 'codes' AND pagetype = 'leaf'"
        )
    ]
    size = conn.execute("PRAGMA page_size").fetchall()[0][0]
    conn.close()
    assert len(pages) > 1
    with path.open("r+b") as f:
        for page in pages[len(pages) // 2 :]:
            f.seek((page - 1) * size)
            f.write(b"\x0d\x00\x00\xff\xff\x00\x10\x00")
    damaged = path.read_bytes()
    handle = space.register_disk_source(str(path))
    with pytest.raises(sc.QueryError) as info:
        handle.read("SELECT label FROM codes")
    message = str(info.value)
    assert info.value.db_id == handle.id
    assert f"the source file {path} is damaged" in message
    assert "never writes a registered source" in message and "restore the file" in message
    assert read_bytes(path) == damaged  # a kept descriptor: the read pool may have it open
    assert sorted(p.name for p in outside.iterdir()) == ["big.db"]


def test_text_a_source_stores_that_is_not_utf8_fails_the_query_clearly(
    space: Space, reference: Path
) -> None:
    conn = apsw.Connection(str(reference))
    conn.execute("INSERT INTO codes VALUES ('bad', CAST(x'c3' AS TEXT))")
    conn.close()
    handle = space.register_disk_source(str(reference))
    with pytest.raises(sc.QueryError) as info:
        handle.read("SELECT label FROM codes WHERE code = 'bad'")
    assert info.value.db_id == handle.id and isinstance(info.value.__cause__, UnicodeDecodeError)
    assert (
        f"text in column(s) 'label' of the rows read from the file {reference} is not valid UTF-8"
        in str(info.value)
    )
    query = handle.query("SELECT label FROM codes")
    space.runtime.settle()
    state = query.get()
    assert state.result is None and isinstance(state.error, sc.QueryError)


def test_a_symlink_swapped_after_registration_changes_nothing(
    rt: sc.Runtime, space: Space, outside: Path, reference: Path
) -> None:
    link = outside / "current.db"
    link.symlink_to(reference)
    handle = space.register_disk_source(str(link))
    other = _reference_db(outside / "other.db", rows=7)
    link.unlink()
    link.symlink_to(other)
    assert handle.read("SELECT count(*) AS n FROM codes") == [{"n": 3}]


@sc.pattern
def lookup(db: sc.SqliteDb, code: sc.Cell) -> Any:
    return db.query("SELECT label FROM codes WHERE code = ?", params=[code])


def test_pattern_inputs_wait_for_a_linked_database(store: Path, reference: Path) -> None:
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        code = space.cell("code", default="c2")
        piece = space.run(lookup, key="main", code=code)
        rt.settle()
        assert piece.outputs.get().pending is True and piece.outputs.get().result is None
        handle = space.register_disk_source(str(reference))
        piece.inputs["db"].link(handle)
        rt.settle()
        assert piece.outputs.get() == sc.QueryState(False, [{"label": "label 2"}], None, 0)
    with sc.Runtime(store) as rt:  # the link was a committed write: it survives a restart
        space = rt.space("demo")
        piece = space.run(lookup, key="main", code=space.cell("code", default="c2"))
        rt.settle()
        assert piece.outputs.get().result == [{"label": "label 2"}]


def test_vm_sources_are_accepted_but_not_implemented(rt: sc.Runtime, space: Space) -> None:
    db = space.sqlite_database("vm", tables=MESSAGES, source=sc.VmSource(vm=object(), path="/x.db"))
    with pytest.raises(sc.NotImplementedSource, match="not supported yet"):
        db.read("SELECT * FROM messages")
    with pytest.raises(sc.NotImplementedSource), space.transact():
        db.exec("INSERT INTO messages (body) VALUES ('x')")
    q = db.query("SELECT * FROM messages")
    rt.settle()
    assert isinstance(q.get().error, sc.NotImplementedSource)


def test_a_database_declared_anew_in_a_vm_fails_its_live_queries_too(
    rt: sc.Runtime, space: Space
) -> None:
    """R62: a database declared again with a VmSource fails its reads and its queries — its
    live queries made before included (they served the old rows with no error)."""
    db = space.sqlite_database("chat", tables=MESSAGES)
    with space.transact():
        db.exec("INSERT INTO messages (body) VALUES ('x')")
    q = db.query("SELECT count(*) AS n FROM messages")
    assert rt.settle(10) and q.get().result == [{"n": 1}]
    space.sqlite_database("chat", tables=MESSAGES, source=sc.VmSource(vm=object(), path="/x.db"))
    assert rt.settle(10)
    assert isinstance(q.get().error, sc.NotImplementedSource) and q.get().result is None
    space.sqlite_database("chat", tables=MESSAGES)  # and back: it serves its rows again
    assert rt.settle(10)
    assert q.get().error is None and q.get().result == [{"n": 1}]


def test_drop_keeps_the_file_until_gc_is_asked_to_remove_it(rt: sc.Runtime, space: Space) -> None:
    """R74: nothing is deleted without being asked twice — the drop, then gc."""
    db = space.sqlite_database("chat", tables=MESSAGES)
    with space.transact():
        db.exec("INSERT INTO messages (body) VALUES ('x')")
    assert db.read("SELECT count(*) AS n FROM messages") == [{"n": 1}]
    with pytest.raises(RuntimeError), space.transact():
        db.drop()
        raise RuntimeError("changed my mind")
    assert db.path.exists()
    with space.transact():
        db.drop()
    assert db.path.exists()  # kept: the drop is the first request
    assert db.get()["dropped"] is True
    with pytest.raises(sc.SqliteCellsError, match="dropped"):
        db.read("SELECT * FROM messages")
    assert collect_garbage(rt.store) == [db.path]  # listed, not removed
    assert db.path.exists()
    assert space.gc() == [db.path]  # the second request
    assert not db.path.exists() and not Path(f"{db.path}-wal").exists()


def test_gc_removes_files_no_handle_refers_to(rt: sc.Runtime, space: Space) -> None:
    kept = space.sqlite_database("kept", tables=MESSAGES)
    with space.transact():
        kept.exec("INSERT INTO messages (body) VALUES ('x')")
    stray = rt.store / "cell-0123456789abcdef0123456789abcdef.sqlite"
    conn = apsw.Connection(str(stray))
    conn.execute("CREATE TABLE t (x)")  # a schema, no row: no first write of ours ever held one
    conn.close()
    theirs = rt.store / "cell-3333333333333333333333333333333a.sqlite"
    _reference_db(theirs)  # another program's rows: never garbage
    odd = rt.store / "cell-2222222222222222222222222222222a.sqlite"
    odd.mkdir()  # not a file: gc neither lists nor touches it
    (odd / "inside").write_text("mine")
    assert space.gc() == [stray]
    assert not stray.exists() and kept.path.exists() and theirs.exists()
    assert space.gc() == []
    assert (odd / "inside").read_text() == "mine"


def _beside(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir())


def _wait_for(q: sc.Query[Any], done: Callable[[sc.QueryState[Any]], bool]) -> None:
    """Changes made by another program arrive by polling: wait for the state (bounded)."""
    reached = threading.Event()
    subscription = q.observe().subscribe(lambda state: done(state) and reached.set())
    try:
        assert reached.wait(30), q.get()
    finally:
        subscription.dispose()


def test_reading_a_rollback_journal_source_creates_no_file_beside_it(
    rt: sc.Runtime, space: Space, reference: Path
) -> None:
    before = _beside(reference)
    handle = space.register_disk_source(str(reference))
    assert handle.read("SELECT count(*) AS n FROM codes") == [{"n": 3}]
    q = handle.query("SELECT code FROM codes ORDER BY code")
    rt.settle()
    assert q.get().result == [{"code": "c0"}, {"code": "c1"}, {"code": "c2"}]
    assert _beside(reference) == before


def test_reading_a_wal_source_whose_writer_is_gone_creates_no_file_beside_it(
    rt: sc.Runtime, space: Space, outside: Path
) -> None:
    path = outside / "walled.db"
    conn = apsw.Connection(str(path))
    conn.execute("PRAGMA journal_mode=WAL").fetchall()
    conn.execute("CREATE TABLE t (x); INSERT INTO t VALUES (1), (2)")
    conn.close()  # checkpoints and removes its -wal and -shm
    before = _beside(path)
    assert before == ["walled.db"]
    handle = space.register_disk_source(str(path))
    assert handle.read("SELECT sum(x) AS s FROM t") == [{"s": 3}]
    assert _beside(path) == before


def test_a_wal_source_whose_program_removes_its_wal_as_a_read_begins_gets_no_file_of_ours(
    rt: sc.Runtime, space: Space, outside: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """R60: a file in WAL mode is read ``mode=ro`` while its program's -wal and -shm are there.
    When the program closes it (removing them) after the read looked for them, SQLite would
    create them anew at the read's first statement; it may not (the process's ``open`` opens a
    source's -wal or -shm only if it is there), and the read is made again, ``immutable``."""
    path = outside / "walled.db"
    writer = apsw.Connection(str(path))
    writer.execute("PRAGMA journal_mode=WAL").fetchall()
    writer.execute("CREATE TABLE t (x); INSERT INTO t VALUES (1), (2)")
    handle = space.register_disk_source(str(path))  # its -wal and -shm are there
    assert handle.read("SELECT sum(x) AS s FROM t") == [{"s": 3}]
    writer.close()  # checkpoints and removes its -wal and -shm
    assert _beside(path) == ["walled.db"]
    # The look at them made just before the program closed the file: they were there.
    looks = iter([True, True])
    real = sources.wal_companions_present
    monkeypatch.setattr(pool, "wal_companions_present", lambda p: next(looks, None) or real(p))
    monkeypatch.setattr(sources, "wal_companions_present", lambda p: next(looks, None) or real(p))
    monkeypatch.setattr(pool, "source_opening", lambda p: (sources.source_uri(p), None))
    assert handle.read("SELECT sum(x) AS s FROM t") == [{"s": 3}]
    assert next(looks, "all looked at") == "all looked at"
    assert _beside(path) == ["walled.db"]
    # Below the runtime: on a thread reading sources, a read-only connection to such a file
    # fails rather than create them; the file's own program, in this process too, creates them.
    conn = apsw.Connection(
        f"file:{path}?mode=ro", flags=apsw.SQLITE_OPEN_READONLY | apsw.SQLITE_OPEN_URI
    )
    try:
        with reading_sources(), pytest.raises(apsw.CantOpenError):
            conn.execute("SELECT sum(x) FROM t").fetchall()
    finally:
        conn.close()
    assert _beside(path) == ["walled.db"]
    writer = apsw.Connection(str(path))
    try:
        writer.execute("INSERT INTO t VALUES (3)")
        assert _beside(path) == ["walled.db", "walled.db-shm", "walled.db-wal"]
    finally:
        writer.close()
    assert handle.read("SELECT sum(x) AS s FROM t") == [{"s": 6}]


_WAL_LEFT_BEHIND = """
import os, sys, apsw
conn = apsw.Connection(sys.argv[1])
conn.execute("PRAGMA journal_mode=WAL").fetchall()
conn.execute("PRAGMA wal_autocheckpoint=0").fetchall()
conn.execute("CREATE TABLE t (x); INSERT INTO t VALUES (1)")
conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
conn.execute("INSERT INTO t VALUES (2)")
os._exit(0)  # killed: its last commit stays in the -wal
"""


def test_a_wal_source_whose_commits_lie_in_a_wal_without_shm_is_a_query_error(
    rt: sc.Runtime, space: Space, outside: Path, tmp_path: Path
) -> None:
    """Its -wal can be read only through a -shm created beside it (never done, R60); read
    without it, the file would give older rows (R60: the file registered is the file read)."""
    made = tmp_path / "made"
    made.mkdir()
    subprocess.run([sys.executable, "-c", _WAL_LEFT_BEHIND, str(made / "w.db")], check=True)
    path = outside / "w.db"
    shutil.copy(made / "w.db", path)
    shutil.copy(made / "w.db-wal", outside / "w.db-wal")  # copied without its -shm
    before = _beside(path)
    handle = space.register_disk_source(str(path))
    with pytest.raises(sc.QueryError, match="-shm") as info:
        handle.read("SELECT x FROM t ORDER BY x")
    assert not isinstance(info.value, sc.QueryTimeout)
    q = handle.query("SELECT x FROM t ORDER BY x")
    rt.settle()
    assert q.get().result is None and isinstance(q.get().error, sc.QueryError)
    assert _beside(path) == before
    owner = apsw.Connection(str(path))  # its own program opens and closes it: -wal moved in
    owner.execute("SELECT count(*) FROM t").fetchall()
    owner.close()
    assert _beside(path) == ["w.db"]
    assert handle.read("SELECT x FROM t ORDER BY x") == [{"x": 1}, {"x": 2}]
    _wait_for(q, lambda state: state.result == [{"x": 1}, {"x": 2}])


def test_a_source_written_by_another_program_is_live(
    rt: sc.Runtime, space: Space, reference: Path
) -> None:
    handle = space.register_disk_source(str(reference))
    q = handle.query("SELECT count(*) AS n FROM codes")
    rt.settle()
    assert q.get().result == [{"n": 3}]
    writer = apsw.Connection(str(reference))
    writer.setbusytimeout(10_000)  # the runtime's poll may be reading the file right now
    writer.execute("INSERT INTO codes VALUES ('c9', 'label 9')")
    writer.close()
    _wait_for(q, lambda state: state.result == [{"n": 4}])
    assert q.get().error is None


def test_a_wal_source_written_later_is_live_too(
    rt: sc.Runtime, space: Space, outside: Path
) -> None:
    path = outside / "walled.db"
    conn = apsw.Connection(str(path))
    conn.execute("PRAGMA journal_mode=WAL").fetchall()
    conn.execute("CREATE TABLE t (x); INSERT INTO t VALUES (1)")
    conn.close()
    handle = space.register_disk_source(str(path))
    q = handle.query("SELECT count(*) AS n FROM t")
    rt.settle()
    assert q.get().result == [{"n": 1}]
    writer = apsw.Connection(str(path))
    writer.execute("INSERT INTO t VALUES (2)")
    _wait_for(q, lambda state: state.result == [{"n": 2}])
    writer.close()


def test_a_file_swapped_in_at_the_registered_path_is_refused(
    rt: sc.Runtime, space: Space, outside: Path, reference: Path
) -> None:
    handle = space.register_disk_source(str(reference))
    assert handle.read("SELECT count(*) AS n FROM codes") == [{"n": 3}]
    other = _reference_db(outside / "other.db", rows=7)
    os.replace(other, reference)
    with pytest.raises(sc.DiskSourceError) as info:
        handle.read("SELECT count(*) AS n FROM codes")
    assert info.value.rule == "pinned"
    q = handle.query("SELECT count(*) AS n FROM codes")
    rt.settle()
    assert isinstance(q.get().error, sc.DiskSourceError) and q.get().error.rule == "pinned"


def _open_deleted(path: Path) -> int:
    """How many descriptors of this process name ``path`` deleted (Linux ``/proc``)."""
    found = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        found += target == f"{path} (deleted)"
    return found


def test_a_file_refused_for_its_header_keeps_no_descriptor(space: Space, outside: Path) -> None:
    """A registration reads the candidate's header through a descriptor it keeps (closing one
    of a database would drop this process's SQLite locks on it). A file refused as not a
    database is locked by no SQLite connection: each refused one kept a descriptor for the
    life of the process (100 refused files, 100 more open descriptors)."""
    refused = [_text(outside / f"notes-{i}.txt", b"hello, not a database") for i in range(100)]
    for path in refused:
        with pytest.raises(sc.DiskSourceError) as info:
            space.register_disk_source(path)
        assert info.value.rule == "sqlite-file" and "wrong header" in str(info.value)
    still_open = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            still_open.append(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            continue
    assert [path for path in still_open if path in refused] == []


def test_the_registered_file_stays_allocated_so_no_later_file_takes_its_inode(
    rt: sc.Runtime, space: Space, outside: Path, reference: Path
) -> None:
    """The pin is (device, inode). A file replaced by a rename frees its inode, and the file
    system may give that number to the next new file — a second replacement then passed the
    pin and was served (R60: the file registered is the file read). The pinned file is held
    open, so its inode stays allocated, until the path is registered again."""
    handle = space.register_disk_source(str(reference))
    assert handle.read("SELECT count(*) AS n FROM codes") == [{"n": 3}]
    pinned = os.stat(reference).st_ino
    for rows in (5, 7, 9):
        os.replace(_reference_db(outside / "next.db", rows=rows), reference)
        assert os.stat(reference).st_ino != pinned
        with pytest.raises(sc.DiskSourceError) as info:
            handle.read("SELECT count(*) AS n FROM codes")
        assert info.value.rule == "pinned"
        # Another file read meanwhile (its header, as registering it reads it).
        space.register_disk_source(str(_reference_db(outside / f"other{rows}.db")))
    assert _open_deleted(reference) == 1  # the registered file, replaced: still held
    again = space.register_disk_source(str(reference))
    assert again.read("SELECT count(*) AS n FROM codes") == [{"n": 9}]
    _reference_db(outside / "unrelated.db")
    assert again.read("SELECT count(*) AS n FROM codes") == [{"n": 9}]
    assert _open_deleted(reference) == 0  # let go once registered again


def test_a_registered_file_is_held_no_longer_than_the_runtime(
    tmp_path: Path, outside: Path, reference: Path
) -> None:
    """The hold above lasts while a runtime holds the pin: closed, a runtime lets the file go
    (a process that registered 200 files in turn, each runtime closed and each file deleted,
    kept 200 descriptors and their disk space)."""
    for round_ in range(3):
        with sc.Runtime(tmp_path / "store") as rt:
            handle = rt.space("demo").register_disk_source(str(reference))
            assert handle.read("SELECT count(*) AS n FROM codes") == [{"n": 3 + round_}]
            os.replace(_reference_db(outside / "next.db", rows=4 + round_), reference)
            assert _open_deleted(reference) >= 1  # (held, and perhaps a pooled reader's)
        assert _open_deleted(reference) == 0


def test_a_path_swapped_for_a_link_into_the_store_is_refused(
    rt: sc.Runtime, space: Space, store: Path, reference: Path
) -> None:
    db = space.sqlite_database("chat", tables=MESSAGES)
    with space.transact():
        db.exec("INSERT INTO messages (body) VALUES ('secret')")
    handle = space.register_disk_source(str(reference))
    reference.unlink()
    reference.symlink_to(db.path)
    with pytest.raises(sc.DiskSourceError) as info:
        handle.read("SELECT body FROM messages")
    assert info.value.rule == "pinned"


def test_a_hard_link_to_a_store_file_is_refused_at_registration(
    rt: sc.Runtime, space: Space, store: Path, outside: Path
) -> None:
    db = space.sqlite_database("chat", tables=MESSAGES)
    with space.transact():
        db.exec("INSERT INTO messages (body) VALUES ('secret')")
    alias = outside / "innocent.db"
    os.link(db.path, alias)
    with pytest.raises(sc.DiskSourceError) as info:
        space.register_disk_source(str(alias))
    assert info.value.rule == "hard-link"


def test_a_store_file_removed_while_the_hard_link_check_looks_does_not_refuse_the_source(
    rt: sc.Runtime, space: Space, reference: Path, outside: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A source with another name (a backup tree of hard links) makes registration look
    through the store; a file of the store removed between its listing and its look (a
    runtime's -wal or -shm, a file gc removed) is no name of the source: the file is
    registered, not refused as a source that does not exist."""
    os.link(reference, outside / "backup.db")
    vanishing = rt.store / "vanishing"
    vanishing.write_bytes(b"")
    listed = os.walk

    def walk_then_remove(top: Any) -> Any:
        for root, dirs, names in listed(top):
            assert vanishing.name in names or Path(root) != rt.store
            vanishing.unlink(missing_ok=True)  # removed once listed, before it is looked at
            yield root, dirs, names

    monkeypatch.setattr(sources.os, "walk", walk_then_remove)
    handle = space.register_disk_source(str(reference))
    assert handle.read("SELECT count(*) AS n FROM codes") == [{"n": 3}]


def test_gc_keeps_a_file_it_cannot_read_as_a_database(rt: sc.Runtime, space: Space) -> None:
    """A file under a database file's name that SQLite cannot read might be a damaged database
    whose space file is gone: when in doubt, gc keeps it (check reports it)."""
    junk = rt.store / ("cell-" + "4" * 32 + ".sqlite")
    junk.write_bytes(b"not a database at all" * 100)
    assert space.gc() == []
    assert junk.exists()


_SESSIONS = """
import sqlite3, sys, time
for i in range(1, int(sys.argv[2]) + 1):
    time.sleep(0.15)  # no -wal or -shm now: a read starting here opens the file immutable
    c = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)
    c.execute("UPDATE t SET ver = ?", (i,))
    c.close()  # moves the commit into the file, removes the -wal and the -shm
"""


def test_a_wal_source_written_under_a_read_without_a_lock_serves_no_torn_rows(
    rt: sc.Runtime, space: Space, outside: Path
) -> None:
    """R40, R60: a WAL source whose program opens, commits and closes is read without a lock
    while it is closed (``immutable``: no -shm of ours beside it). Its program's next close
    writes the commit into the file under such a read, which then saw pages from before and
    after it (``min(ver) != max(ver)``: a state no commit had, served to reads and live
    queries). Such a read is made again; every result served is one commit's."""
    path = outside / "versions.db"
    made = apsw.Connection(str(path))
    made.execute("PRAGMA journal_mode=WAL")
    made.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, ver INTEGER, pad TEXT)")
    with made:
        made.executemany("INSERT INTO t VALUES (?, 0, ?)", [(i, "p" * 200) for i in range(8000)])
    made.close()
    handle = space.register_disk_source(str(path))
    sql = (
        "SELECT min(ver) AS lo, max(ver) AS hi, count(*) AS n FROM t "
        "WHERE length(hex(zeroblob(3000 + id % 2))) > 0"  # a slow scan: a close falls inside
    )
    states: list[Any] = []
    query = handle.query(sql)
    query.observe().subscribe(lambda state: state.result and states.append(state))
    results: list[dict[str, Any]] = []
    refused: list[sc.QueryError] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            try:
                results.append(handle.read(sql)[0])
            except sc.QueryError as exc:  # written under every try: nothing served
                refused.append(exc)

    readers = [threading.Thread(target=reader) for _ in range(2)]
    for thread in readers:
        thread.start()
    try:
        subprocess.run([sys.executable, "-c", _SESSIONS, str(path), "12"], check=True)
    finally:
        stop.set()
        for thread in readers:
            thread.join()
    assert results, refused  # (how many: as the machine allows)
    assert all(r["lo"] == r["hi"] and r["n"] == 8000 for r in results), [
        r for r in results if r["lo"] != r["hi"]
    ]
    assert handle.read(sql) == [{"lo": 12, "hi": 12, "n": 8000}]
    _wait_for(query, lambda state: state.result == [{"lo": 12, "hi": 12, "n": 8000}])
    assert all(s.result[0]["lo"] == s.result[0]["hi"] for s in states)


def test_a_wal_source_s_program_closing_it_is_no_wal_left_without_its_shm(
    outside: Path, tmp_path: Path
) -> None:
    """R60: a program closing a WAL file removes its -shm, then its -wal; seen in between, the
    -wal (all in the file already) looks like one left without its -shm, which refuses every
    read. It is looked at again before it is said to be so."""
    from sqlite_cells.files._sources import unread_wal

    made = tmp_path / "made"
    made.mkdir()
    subprocess.run([sys.executable, "-c", _WAL_LEFT_BEHIND, str(made / "w.db")], check=True)
    path = outside / "w.db"
    shutil.copy(made / "w.db", path)
    shutil.copy(made / "w.db-wal", outside / "w.db-wal")  # a -wal that holds commits, no -shm
    assert unread_wal(path)
    gone = threading.Timer(0.001, (outside / "w.db-wal").unlink)
    gone.start()
    try:
        assert not unread_wal(path)
    finally:
        gone.join()


def _versions_source(path: Path, rows: int) -> None:
    made = apsw.Connection(str(path))
    made.execute("PRAGMA journal_mode=WAL")
    made.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, ver INTEGER, pad TEXT)")
    with made:
        made.executemany("INSERT INTO t VALUES (?, 0, ?)", [(i, "p" * 200) for i in range(rows)])
    made.close()
    os.utime(path, (os.path.getmtime(path) - 10, os.path.getmtime(path) - 10))


def test_a_source_deleted_while_it_is_read_is_a_query_error(space: Space, outside: Path) -> None:
    """R60: "a file that disappears later surfaces as a clear QueryError" — also when it goes
    while a read of it runs (the read, checked once done, is not made again on a file that is
    gone; the open refused it as a DiskSourceError)."""
    path = outside / "going.db"
    _versions_source(path, 20_000)
    handle = space.register_disk_source(str(path))
    slow = "SELECT count(*) AS n FROM t, (SELECT id FROM t LIMIT 600)"
    gone = threading.Timer(0.05, path.unlink)
    gone.start()
    try:
        with pytest.raises(sc.QueryError, match="is gone") as info:
            handle.read(slow)
    finally:
        gone.join()
    assert not isinstance(info.value, sc.DiskSourceError)


def test_reads_of_a_source_written_under_them_keep_query_timeout(
    store: Path, outside: Path
) -> None:
    """R44: a read made again because its source was written while it ran keeps one deadline
    for all its tries: it ends by ``query_timeout`` (+1 s), served or refused, never a
    ``query_timeout`` per try."""
    path = outside / "busy.db"
    _versions_source(path, 20_000)
    writer = subprocess.Popen(
        [sys.executable, "-c", _SESSIONS.replace("0.15", "0.03"), str(path), "60"]
    )
    try:
        with sc.Runtime(store, query_timeout=0.5) as rt:
            handle = rt.space("demo").register_disk_source(str(path))
            slow = (
                "SELECT min(ver) AS lo, max(ver) AS hi FROM t "
                "WHERE length(hex(zeroblob(6000 + id % 2))) > 0"
            )
            for _ in range(8):
                began = time.monotonic()
                try:
                    (row,) = handle.read(slow)
                    assert row["lo"] == row["hi"]
                except sc.QueryError:
                    pass  # refused (a timeout, or written during every try): nothing served
                assert time.monotonic() - began <= 0.5 + 1.0
    finally:
        writer.wait(timeout=60)


def test_a_wal_source_left_with_its_wal_and_shm_is_not_read_again_while_nothing_writes_it(
    store: Path, outside: Path
) -> None:
    """R60, R51: a WAL source whose program wrote while another reader had it open keeps its
    -wal and -shm once all are closed (an ordinary state). A read of ours that opens it first
    clears the wal-index in its -shm (a read-only connection builds its own), which the content
    signature, looked at while the read ran, took for a commit: its live queries ran again at
    every poll, for ever (a query with random() notified ≈ 20 times a second with a 125 MB -wal
    and the default poll, ≈ 90% of a core, while nothing wrote the file)."""
    path = outside / "left.db"
    writer = apsw.Connection(str(path))
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, ver INTEGER, pad TEXT)")
    with writer:
        writer.executemany("INSERT INTO t VALUES (?, 0, ?)", [(i, "p" * 200) for i in range(20000)])
    reader = apsw.Connection(f"file:{path}?mode=ro", flags=apsw.SQLITE_OPEN_READONLY | 64)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM t").fetchall()
    for i in range(1, 13):  # committed while the reader holds the file: no checkpoint at close
        writer.execute("UPDATE t SET ver = ?", (i,))
    writer.close()
    reader.execute("COMMIT")
    reader.close()
    assert sorted(p.name for p in outside.iterdir()) == ["left.db", "left.db-shm", "left.db-wal"]
    old = os.path.getmtime(path) - 10  # past the recency window of a coarse clock
    os.utime(path, (old, old))
    # Polled every millisecond: the look falls inside a read (≈ 20 ms with this -wal) at once.
    with sc.Runtime(store, poll_interval=0.001) as rt:
        handle = rt.space("demo").register_disk_source(str(path))
        query = handle.query("SELECT max(ver) AS v, random() AS r FROM t")
        states: list[Any] = []
        query.observe().subscribe(states.append)
        _wait_for(query, lambda state: state.result is not None and state.result[0]["v"] == 12)
        time.sleep(0.3)
        seen = len(states)
        time.sleep(1.0)
        assert len(states) == seen, len(states) - seen


def test_a_live_query_that_waited_for_a_sources_lock_in_vain_runs_once_it_is_let_go(
    store: Path, outside: Path
) -> None:
    """R44, R60: another program held the source's lock past ``query_timeout`` and then rolled
    back: the live query showed ``QueryTimeout`` for good, since nothing changes the file to
    re-run it. It runs again at the watcher's next look, until the lock is let go."""
    path = outside / "held.db"
    made = apsw.Connection(str(path))
    made.execute("CREATE TABLE r (a); INSERT INTO r VALUES (1)")
    made.close()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys, time\n"
            "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
            "c.execute('BEGIN EXCLUSIVE'); print('held', flush=True)\n"
            "time.sleep(2); c.execute('ROLLBACK')\n",
            str(path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        with sc.Runtime(store, query_timeout=0.5, poll_interval=0.02) as rt:
            handle = rt.space("demo").register_disk_source(str(path))
            query = handle.query("SELECT count(*) AS n FROM r")
            rt.settle()
            assert isinstance(query.get().error, sc.QueryTimeout)
            assert holder.wait(timeout=30) == 0
            served = threading.Event()
            query.observe().subscribe(lambda state: state.result == [{"n": 1}] and served.set())
            assert served.wait(10), query.get()
    finally:
        holder.kill()
        holder.communicate()


def test_an_injected_file_among_react_on_re_runs_the_query_when_it_changes(
    store: Path, reference: Path
) -> None:
    """R51, R60: a change of an injected file stands for a write to it, wherever its handle
    is in react_on — in a list or a dict, and on another database's query — as for
    react_on=h on its own query. (In a list its handle's rev, which never moves, was all that
    was watched: the queries never re-ran.)"""
    with sc.Runtime(store, poll_interval=0.02) as rt:
        space = rt.space("demo")
        h = space.register_disk_source(reference)
        db = space.sqlite_database("other", tables=MESSAGES)
        flag = space.cell("flag", default=0)
        count = "SELECT count(*) AS n FROM codes"
        queries = [
            h.query(count, react_on=[h]),
            h.query(count, react_on={"file": h, "flag": flag}),
            db.query("SELECT random() AS r", react_on=h),
        ]
        assert rt.settle(10)
        before = [q.get().result for q in queries]
        conn = apsw.Connection(str(reference))
        conn.execute("INSERT INTO codes VALUES ('new', 'label new')")
        conn.close()
        deadline = time.monotonic() + 20
        while any(q.get().result == b for q, b in zip(queries, before, strict=True)):
            assert time.monotonic() < deadline, [q.get() for q in queries]
            time.sleep(0.02)
        assert [q.get().result for q in queries[:2]] == [[{"n": 4}], [{"n": 4}]]


def test_a_wal_file_whose_time_stamp_is_ahead_is_not_read_again_at_every_look(
    store: Path, outside: Path
) -> None:
    """R60: queries re-run when the file's content changes. A WAL file whose modification time
    is in the future (a clock ahead, a copy from another machine) counted as "changed within a
    tick" at every look, for as long as it stayed ahead: each query on it re-ran every
    poll_interval (≈ 50 times a second here) with the file untouched."""
    path = outside / "ahead.db"
    conn = apsw.Connection(str(path))
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE t (x); INSERT INTO t VALUES (1)")
    conn.close()
    ahead = time.time() + 3600
    os.utime(path, (ahead, ahead))
    with sc.Runtime(store, poll_interval=0.02) as rt:
        h = rt.space("demo").register_disk_source(path)
        q = h.query("SELECT x, random() AS r FROM t")
        assert rt.settle(10)
        seen: list[Any] = []
        q.observe().subscribe(seen.append)
        time.sleep(1.0)  # ≈ 50 looks of the watcher
        assert rt.settle(10)
        assert len(seen) <= 2, len(seen)  # the state when subscribed (and at most one look)
        assert q.get().result is not None and q.get().result[0]["x"] == 1


def test_settle_waits_for_the_rerun_after_another_program_wrote_a_source(tmp_path: Path) -> None:
    """R60, §3: `settle()` waits for the re-runs caused by commits made before it, another
    process's included. A commit another program made to an injected file was left to the
    watcher's next look (every `poll_interval`): `settle()` returned at once with the old rows
    while `db.read` saw the new ones. It looks at the injected files as it begins."""
    source = tmp_path / "ref.db"
    setup = apsw.Connection(str(source))
    setup.execute("CREATE TABLE r (a); INSERT INTO r VALUES (1)")
    setup.close()
    with sc.Runtime(tmp_path / "store", poll_interval=60.0) as rt:
        handle = rt.space("s").register_disk_source(str(source))
        q = handle.query("SELECT count(*) AS n FROM r")
        rt.settle()
        assert q.get().result == [{"n": 1}]
        write = (
            "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
            "c.execute('INSERT INTO r VALUES (2)'); c.commit(); c.close()"
        )
        subprocess.run([sys.executable, "-c", write, str(source)], check=True, timeout=60)
        assert rt.settle(timeout=30)
        assert q.get().result == [{"n": 2}]
