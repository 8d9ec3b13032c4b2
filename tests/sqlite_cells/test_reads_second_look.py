"""Reads and sources read word by word from the contract (R40–R44, R60–R62)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypedDict

import apsw
import msgspec
import pytest

import sqlite_cells as sc
from sqlite_cells._runtime import Space
from sqlite_cells.codec import MAX_NAME_BYTES

from .._files import read_bytes, write_at
from .conftest import MESSAGES

INSERT = "INSERT INTO messages (author_cf_link, body, ts) VALUES (?, ?, ?)"


def _post(space: Space, db: sc.SqliteDb, body: str, ts: int, author: sc.Cell | None = None) -> int:
    with space.transact() as tx:
        db.exec(INSERT, [author, body, ts])
    assert tx.seq is not None
    return tx.seq


def _wait_for(q: sc.Query[Any], done: Callable[[sc.QueryState[Any]], bool]) -> None:
    reached = threading.Event()
    subscription = q.observe().subscribe(lambda state: done(state) and reached.set())
    try:
        assert reached.wait(30), q.get()
    finally:
        subscription.dispose()


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "outside"
    folder.mkdir()
    return folder


def _source(path: Path, rows: int = 3) -> Path:
    conn = apsw.Connection(str(path))
    conn.execute("CREATE TABLE codes (code TEXT PRIMARY KEY, label TEXT)")
    conn.executemany(
        "INSERT INTO codes VALUES (?, ?)", [(f"c{i}", f"label {i}") for i in range(rows)]
    )
    conn.close()
    return path


# --- rows (R43) -------------------------------------------------------------------------------


def test_untyped_rows_are_dicts_keyed_by_column_name_with_the_raw_link(
    space: Space, db: sc.SqliteDb
) -> None:
    alice = space.cell("alice", default="Alice")
    _post(space, db, "hi", 1, alice)
    rows = db.read('SELECT body AS "the body", author_cf_link, ts + 0.5 AS t FROM messages')
    assert rows == [{"the body": "hi", "author_cf_link": alice.link_str(), "t": 1.5}]
    assert type(rows[0]) is dict


class Holder(TypedDict):
    who: sc.Cell | None
    body: str


@dataclasses.dataclass
class DataRow:
    who: sc.Cell | None
    body: str


class StructRow(msgspec.Struct):
    who: sc.Cell | None
    body: str


@pytest.mark.parametrize("row", [Holder, DataRow, StructRow])
def test_every_row_type_decodes_an_aliased_link_null_and_garbage(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb, row: Any
) -> None:
    alice = space.cell("alice", default="Alice")
    _post(space, db, "a", 1, alice)
    _post(space, db, "b", 2, None)
    rows = db.read(
        "SELECT author_cf_link AS who, body FROM messages "
        "UNION ALL SELECT 'not a link', 'c' ORDER BY body",
        row=row,
    )

    def get(r: Any, name: str) -> Any:
        return r[name] if isinstance(r, dict) else getattr(r, name)

    assert [get(r, "body") for r in rows] == ["a", "b", "c"]
    who = get(rows[0], "who")
    assert isinstance(who, sc.Cell) and who.get() == "Alice"
    assert who.link_str() == alice.link_str()
    assert get(rows[1], "who") is None and get(rows[2], "who") is None
    q = db.query("SELECT author_cf_link AS who, body FROM messages ORDER BY body", row=row)
    rt.settle()
    state = q.get()
    assert state.error is None and state.result is not None
    assert get(state.result[0], "who").get() == "Alice"


@pytest.mark.parametrize("row", [Holder, DataRow, StructRow])
def test_a_link_to_a_space_id_no_space_can_have_reads_as_none(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb, row: Any
) -> None:
    """R43: a value that is not a valid link becomes None for its field. A link whose space id
    is over the name limit (1 MiB of UTF-8; another program stored it) was decoded, and
    resolving it failed the whole typed query with a ValueEncodeError."""
    _post(space, db, "a", 1, space.cell("alice"))
    long_space = "é" * (MAX_NAME_BYTES // 2) + "x"  # 1 MiB and 1 byte of UTF-8
    text = json.dumps(
        {"/": {"link@1": {"id": "of:abc", "space": long_space, "scope": "space"}}},
        separators=(",", ":"),
        ensure_ascii=False,
    )
    sql = "SELECT author_cf_link AS who, body FROM messages UNION ALL SELECT ?, 'b' ORDER BY body"
    rows = db.read(sql, [text], row=row)
    who = [r["who"] if isinstance(r, dict) else r.who for r in rows]
    assert isinstance(who[0], sc.Cell) and who[1] is None
    assert db.read(sql, [text])[1]["who"] == text  # untyped: the stored text as it is
    with pytest.raises(sc.LinkDecodeError):
        rt.cell_from_link(text)
    with pytest.raises(sc.LinkDecodeError):
        sc.decode_cf_link(text, rt)


class Strict(msgspec.Struct):
    n: int


@pytest.mark.parametrize(
    ("sql", "ok"),
    [
        ("SELECT 1 AS n", True),
        ("SELECT 1.5 AS n", False),
        ("SELECT '1' AS n", False),
        ("SELECT NULL AS n", False),
        ("SELECT x'01' AS n", False),
    ],
)
def test_other_fields_are_converted_strictly_naming_the_column(
    db: sc.SqliteDb, sql: str, ok: bool
) -> None:
    if ok:
        assert db.read(sql, row=Strict) == [Strict(n=1)]
        return
    with pytest.raises(sc.QueryError) as info:
        db.read(sql, row=Strict)
    assert "n" in str(info.value)
    assert "Traceback" not in str(info.value)


def test_blobs_and_reals_reach_their_fields(db: sc.SqliteDb) -> None:
    class Mixed(msgspec.Struct):
        b: bytes
        f: float
        s: str | None

    rows = db.read("SELECT x'00ff' AS b, 2 AS f, NULL AS s", row=Mixed)
    assert rows == [Mixed(b=b"\x00\xff", f=2.0, s=None)]


def test_a_typed_query_with_a_failing_row_keeps_result_none(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb
) -> None:
    q = db.query("SELECT body AS n FROM messages", row=Strict)
    rt.settle()
    assert q.get().result == [] and q.get().error is None
    _post(space, db, "text", 1)
    rt.settle()
    state = q.get()
    assert state.result is None and isinstance(state.error, sc.QueryError)
    assert state.pending is False
    assert "n" in str(state.error)


# --- R41: reads of a database never written ----------------------------------------------------


def test_reads_of_a_never_written_database_create_no_file_at_all(
    rt: sc.Runtime, store: Path
) -> None:
    before = sorted(p.name for p in store.iterdir())
    db = rt.space("fresh").sqlite_database("chat", tables=MESSAGES)
    assert db.read("SELECT * FROM messages") == []
    assert (
        db.read("SELECT m.body FROM messages m JOIN messages n ON m.id = n.id WHERE m.ts > ?", [0])
        == []
    )
    assert db.read("WITH x AS (SELECT body FROM messages) SELECT count(*) AS n FROM x") == [
        {"n": 0}
    ]
    assert db.read("VALUES (1, 'a')") == [{"column1": 1, "column2": "a"}]
    q = db.query("SELECT * FROM messages")
    rt.settle()
    assert q.get() == sc.QueryState(pending=False, result=[], error=None, seq=0)
    for sql in ("SELECT * FROM nope", "SELECT * FROM messages JOIN nope"):
        with pytest.raises(sc.QueryError):
            db.read(sql)
    for sql in ("SELECT * FROM sqlite_master", "SELECT * FROM _cf_watermark"):
        with pytest.raises(sc.GuardViolation) as info:
            db.read(sql)
        assert info.value.kind == "reserved-name"
    assert not db.path.exists()
    assert sorted(p.name for p in store.iterdir()) == before


def test_an_unknown_column_of_a_never_written_database_is_a_query_error(
    db: sc.SqliteDb,
) -> None:
    with pytest.raises(sc.QueryError, match="nope"):
        db.read("SELECT nope FROM messages")
    assert not db.path.exists()


def test_a_table_left_out_of_a_new_declaration_is_undeclared_even_with_rows(
    rt: sc.Runtime, space: Space
) -> None:
    both = {**MESSAGES, "extra": sc.table(x="integer")}
    db = space.sqlite_database("chat", tables=both)
    with space.transact():
        db.exec("INSERT INTO extra (x) VALUES (1)")
    assert db.read("SELECT x FROM extra") == [{"x": 1}]
    narrower = space.sqlite_database("chat", tables=MESSAGES)
    with pytest.raises(sc.QueryError):
        narrower.read("SELECT x FROM extra")


# --- R42: equality of re-runs ------------------------------------------------------------------


VALS = {"vals": sc.table(id="integer primary key", v="blob")}


@pytest.mark.parametrize(
    ("first", "second", "delivered"),
    [
        (1, 1, False),
        (1, 1.0, True),
        (0.0, -0.0, True),
        ("a", b"a", True),
        (b"a", b"a", False),
        (None, None, False),
        ("1", 1, True),
        (2**62, 2**62 + 1, True),
    ],
)
def test_a_re_run_delivers_only_when_values_or_their_types_change(
    rt: sc.Runtime, space: Space, first: Any, second: Any, delivered: bool
) -> None:
    db = space.sqlite_database("vals", tables=VALS)
    with space.transact():
        db.exec("INSERT INTO vals (id, v) VALUES (1, ?)", [first])
    q = db.query("SELECT v FROM vals", react_on=db)
    seen: list[sc.QueryState] = []
    q.observe().subscribe(seen.append)
    rt.settle()
    assert q.get().result == [{"v": first}]
    count = len(seen)
    with space.transact() as tx:
        db.exec("UPDATE vals SET v = ? WHERE id = 1", [second])
    rt.settle()
    news = seen[count:]
    assert q.get().seq == tx.seq
    if delivered:
        assert news and news[-1].result == [{"v": second}]
        got = news[-1].result[0]["v"]  # type: ignore[index]
        assert type(got) is type(second) and repr(got) == repr(second)
    else:
        assert news == []


# --- R40: each read sees commits finished before it ----------------------------------------------


def test_a_read_sees_another_runtimes_commit_at_once(store: Path) -> None:
    with sc.Runtime(store) as one, sc.Runtime(store) as two:
        db1 = one.space("demo").sqlite_database("chat", tables=MESSAGES)
        db2 = two.space("demo").sqlite_database("chat", tables=MESSAGES)
        assert db2.read("SELECT count(*) AS n FROM messages") == [{"n": 0}]
        for i in range(1, 4):
            _post(one.space("demo"), db1, "x", i)
            assert db2.read("SELECT count(*) AS n FROM messages") == [{"n": i}]


def test_a_read_binds_a_cell_parameter_as_get_reads_it(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb
) -> None:
    """A cell among ``db.read``'s parameters binds what ``cell.get()`` returns when the read is
    made — not the value the scheduler last delivered, which lags behind a commit it has not
    reached yet."""
    p, q = space.cell("p", default=0), space.cell("q", default=0)
    gate = threading.Event()
    # Holds the scheduler inside the round of q's commit, so that it reaches p's commit later.
    held = sc.derive(q, lambda v: v == 1 and gate.wait(30))
    rt.settle()
    try:
        with space.transact():
            q.set(1)
        with space.transact():
            p.set(2)
        assert p.get() == 2
        assert db.read("SELECT ? AS x", [p]) == [{"x": 2}]
        assert db.read("SELECT :v AS x", {"v": p}) == [{"x": 2}]
    finally:
        gate.set()
    rt.settle()
    assert held.get() is True
    with space.transact():
        p.set(500)
        assert db.read("SELECT ? AS x", [p]) == [{"x": 500}]  # the transaction's own write
    assert p.get() == 500


def test_a_cell_a_read_bound_in_a_transaction_is_a_read_of_it(
    store: Path, rt: sc.Runtime, space: Space, db: sc.SqliteDb
) -> None:
    """Read-then-write through a read's parameter is serializable: a commit to the cell between
    the read and the transaction's commit is a conflict."""
    p, out = space.cell("p", default=1), space.cell("out", default=0)
    watched = sc.derive(p, lambda v: v)  # the scheduler holds a value for p
    rt.settle()
    assert watched.get() == 1
    with pytest.raises(sc.ConflictError) as caught, space.transact():
        seen = db.read("SELECT ? * 10 AS x", [p])[0]["x"]
        # Another runtime's commit, made on a thread of its own (outside this transaction).
        other = threading.Thread(target=_set_in_other_runtime, args=(store, "p", 2))
        other.start()
        other.join()
        out.set(seen)
    assert isinstance(caught.value, sc.SqliteCellsError)
    assert out.get() == 0


@pytest.mark.parametrize("made", ["by its reads", "on every write", "refused"])
def test_a_live_query_made_in_a_transaction_is_no_read_of_its_database(
    space: Space, db: sc.SqliteDb, made: str
) -> None:
    """R32 names ``db.read``: a live query's value joins no conflict check, and making one
    (or being refused one) inside a transaction records no read of its database. A handler
    that makes a live view and writes a cell does not conflict with a commit to the database
    made meanwhile: its one try commits, and so does the other commit."""
    views = space.cell("views", default=0)
    tries = 0

    @sc.handler(tries=1)
    def open_view() -> None:
        nonlocal tries
        tries += 1
        if made == "by its reads":
            db.query("SELECT count(*) AS k FROM messages")
        elif made == "on every write":
            db.query("SELECT count(*) AS k FROM messages", react_on=db)
        else:
            with pytest.raises(TypeError) as refused:
                db.query("SELECT count(*) AS k FROM messages", row=42)  # type: ignore[call-overload]  # (refused)
            assert isinstance(refused.value, sc.SqliteCellsError) and "row=" in str(refused.value)
        other = threading.Thread(target=_post, args=(space, db, "meanwhile", 1))
        other.start()
        other.join()
        views.set(views.get() + 1)

    open_view()
    assert tries == 1 and views.get() == 1
    assert db.rev == 1 and db.read("SELECT body FROM messages") == [{"body": "meanwhile"}]


def _set_in_other_runtime(store: Path, name: str, value: Any) -> None:
    with sc.Runtime(store) as other:
        other_space = other.space("demo")
        with other_space.transact():
            other_space.cell(name).set(value)


def test_a_read_sees_another_process_commit_at_once(store: Path, rt: sc.Runtime) -> None:
    db = rt.space("demo").sqlite_database("chat", tables=MESSAGES)
    assert db.read("SELECT count(*) AS n FROM messages") == [{"n": 0}]
    script = textwrap.dedent(
        f"""
        import sqlite_cells as sc
        from tests.sqlite_cells.conftest import MESSAGES
        with sc.Runtime({str(store)!r}) as rt:
            space = rt.space("demo")
            db = space.sqlite_database("chat", tables=MESSAGES)
            with space.transact():
                db.exec("INSERT INTO messages (body, ts) VALUES ('p', 1)")
        """
    )
    subprocess.run(
        [sys.executable, "-c", script],
        check=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
    )
    assert db.read("SELECT body FROM messages") == [{"body": "p"}]


def test_seq_is_the_watermark_of_the_database_read_not_the_space(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb
) -> None:
    other = space.sqlite_database("other", tables=MESSAGES)
    s1 = _post(space, db, "a", 1)
    q = db.query("SELECT body FROM messages", react_on=space.cell("tick", default=0))
    rt.settle()
    assert q.get().seq == s1
    _post(space, other, "b", 1)
    with space.transact():
        space.cell("tick", default=0).set(1)
    rt.settle()
    assert q.get().seq == s1


# --- parameters and errors of a read ----------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        [1, 2],
        [],
        [{"a": 1}],
        [{1, 2}],
        [2**64],
        [object()],
        {"nope": 1},
    ],
)
def test_bad_read_parameters_are_argument_errors(db: sc.SqliteDb, params: Any) -> None:
    with pytest.raises(sc.SqliteCellsError) as info:
        db.read("SELECT ? AS v", params)
    assert isinstance(info.value, (TypeError, ValueError)), type(info.value).__mro__
    assert "Traceback" not in str(info.value)


def test_named_parameters_read(db: sc.SqliteDb) -> None:
    assert db.read("SELECT :a AS a, :b AS b", {"a": 1, "b": "x"}) == [{"a": 1, "b": "x"}]


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT zeroblob(70000000) AS b",
        "SELECT randomblob(70000000) AS b",
        "SELECT printf('%.*c', 70000000, 'x') AS s",
        "SELECT substr(replace(hex(zeroblob(40000000)), '0', 'ab'), 1, 3) AS s",
        "SELECT 1/0 AS x",
        "SELECT abs(-9223372036854775807 - 1) AS x",
        "SELECT json('{') AS x",
    ],
)
def test_errors_inside_a_read_are_query_errors(db: sc.SqliteDb, sql: str) -> None:
    try:
        db.read(sql)
    except sc.QueryError as exc:
        assert "Traceback" not in str(exc)
    # a read SQLite answers (1/0 is NULL) is fine too; what must never happen is a raw error


# --- sources (R60–R62) --------------------------------------------------------------------------


WRITER = textwrap.dedent(
    """
    import sqlite3, sys
    conn = sqlite3.connect(sys.argv[1], isolation_level=None)
    if sys.argv[2] == "wal":
        conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("INSERT INTO codes VALUES ('z', 'from a subprocess')")
    conn.close()
    """
)


@pytest.mark.parametrize("mode", ["delete", "wal"])
def test_a_source_written_by_a_plain_sqlite3_subprocess_is_live(
    rt: sc.Runtime, space: Space, outside: Path, mode: str
) -> None:
    path = _source(outside / "ref.db")
    handle = space.register_disk_source(str(path))
    q = handle.query("SELECT label FROM codes WHERE code = 'z'")
    rt.settle()
    assert q.get().result == []
    subprocess.run([sys.executable, "-c", WRITER, str(path), mode], check=True, timeout=60)
    _wait_for(q, lambda s: s.result == [{"label": "from a subprocess"}])
    assert handle.read("SELECT count(*) AS n FROM codes") == [{"n": 4}]


def test_a_source_table_created_later_makes_its_query_recover(
    rt: sc.Runtime, space: Space, outside: Path
) -> None:
    path = _source(outside / "ref.db")
    handle = space.register_disk_source(str(path))
    q = handle.query("SELECT x FROM later")
    rt.settle()
    assert isinstance(q.get().error, sc.QueryError) and q.get().result is None
    conn = apsw.Connection(str(path))
    conn.execute("CREATE TABLE later (x); INSERT INTO later VALUES (7)")
    conn.close()
    _wait_for(q, lambda s: s.result == [{"x": 7}])
    assert q.get().error is None


def test_a_source_refuses_writes_and_leaves_the_transaction_usable(
    rt: sc.Runtime, space: Space, outside: Path
) -> None:
    path = _source(outside / "ref.db")
    before = path.read_bytes()
    handle = space.register_disk_source(str(path))
    counter = space.cell("counter", default=0)
    with space.transact() as tx:
        with pytest.raises(sc.ReadOnlySource):
            handle.exec("INSERT INTO codes VALUES ('q', 'w')")
        with pytest.raises(sc.ReadOnlySource):
            handle.exec_many("INSERT INTO codes VALUES (?, ?)", [("q", "w")])
        counter.set(1)
    assert tx.seq is not None and counter.get() == 1
    assert read_bytes(path) == before  # a kept descriptor: the read pool may have it open
    for sql in ("SELECT * FROM sqlite_master", "SELECT * FROM sqlite_schema"):
        with pytest.raises(sc.GuardViolation) as info:
            handle.read(sql)
        assert info.value.kind == "reserved-name"
    with pytest.raises(sc.GuardViolation) as guard:
        handle.read("DELETE FROM codes")
    assert guard.value.kind == "not-read-only"
    with pytest.raises(sc.QueryError):
        handle.read("SELECT * FROM nope")


def test_roots_given_through_a_symlink_accept_the_files_beneath(
    store: Path, outside: Path, tmp_path: Path
) -> None:
    real = outside / "real"
    real.mkdir()
    path = _source(real / "ref.db")
    alias = tmp_path / "alias"
    alias.symlink_to(real)
    with sc.Runtime(store, disk_source_roots=[alias]) as rt:
        space = rt.space("demo")
        for given in (path, alias / "ref.db"):
            handle = space.register_disk_source(str(given))
            assert handle.read("SELECT count(*) AS n FROM codes") == [{"n": 3}]


def test_paths_escaping_the_roots_are_refused(store: Path, outside: Path, tmp_path: Path) -> None:
    allowed = outside / "allowed"
    allowed.mkdir()
    escaped = _source(outside / "escaped.db")
    (allowed / "link.db").symlink_to(escaped)
    (allowed / "dirlink").symlink_to(outside)
    with sc.Runtime(store, disk_source_roots=[allowed]) as rt:
        space = rt.space("demo")
        for given in (
            f"{allowed}/../escaped.db",
            str(allowed / "link.db"),
            str(allowed / "dirlink" / "escaped.db"),
        ):
            with pytest.raises(sc.DiskSourceError) as info:
                space.register_disk_source(given)
            assert info.value.rule == "under-roots", given
        assert not space.file.exists


def test_a_sibling_whose_name_starts_like_a_root_is_not_under_it(
    store: Path, outside: Path
) -> None:
    allowed = outside / "allowed"
    allowed.mkdir()
    sibling = outside / "allowed-not"
    sibling.mkdir()
    path = _source(sibling / "ref.db")
    with sc.Runtime(store, disk_source_roots=[allowed]) as rt:
        with pytest.raises(sc.DiskSourceError) as info:
            rt.space("demo").register_disk_source(str(path))
        assert info.value.rule == "under-roots"


def test_registering_twice_through_different_spellings_gives_one_handle(
    space: Space, outside: Path, tmp_path: Path
) -> None:
    path = _source(outside / "ref.db")
    link = tmp_path / "link.db"
    link.symlink_to(path)
    a = space.register_disk_source(str(path))
    b = space.register_disk_source(f"{outside}/./../outside/ref.db")
    c = space.register_disk_source(str(link))
    d = space.register_disk_source(path)  # type: ignore[arg-type]
    assert a.id == b.id == c.id == d.id


def test_vm_sources_fail_reads_queries_and_writes(rt: sc.Runtime, space: Space) -> None:
    db = space.sqlite_database("vm", tables=MESSAGES, source=sc.VmSource(object(), "/x.db"))
    with pytest.raises(sc.NotImplementedSource):
        db.read("SELECT * FROM messages")
    q = db.query("SELECT * FROM messages")
    rt.settle()
    assert isinstance(q.get().error, sc.NotImplementedSource)
    assert q.get().result is None
    with space.transact(), pytest.raises(sc.NotImplementedSource):
        db.exec("INSERT INTO messages (body) VALUES ('x')")


# --- second batch ------------------------------------------------------------------------------


@pytest.mark.parametrize(("a", "b"), [(1, 1.0), (0.0, -0.0), (1, True)])
def test_queries_whose_params_python_finds_equal_each_read_their_own(
    rt: sc.Runtime, db: sc.SqliteDb, a: Any, b: Any
) -> None:
    qa = db.query("SELECT ? AS v, typeof(?) AS t", params=[a, a])
    qb = db.query("SELECT ? AS v, typeof(?) AS t", params=[b, b])
    rt.settle()
    ra, rb = qa.get().result, qb.get().result
    assert ra == db.read("SELECT ? AS v, typeof(?) AS t", [a, a])
    assert rb == db.read("SELECT ? AS v, typeof(?) AS t", [b, b])
    assert repr(ra) == repr(db.read("SELECT ? AS v, typeof(?) AS t", [a, a]))
    assert repr(rb) == repr(db.read("SELECT ? AS v, typeof(?) AS t", [b, b]))


def test_queries_sharing_sql_keep_their_own_row_types(rt: sc.Runtime, db: sc.SqliteDb) -> None:
    class Row(msgspec.Struct):
        body: str

    sql = "SELECT 'x' AS body"
    plain = db.query(sql)
    typed = db.query(sql, row=Row)
    rt.settle()
    assert plain.get().result == [{"body": "x"}]
    assert typed.get().result == [Row(body="x")]


def test_duplicate_column_names_in_a_row(db: sc.SqliteDb) -> None:
    try:
        rows = db.read("SELECT 1 AS a, 2 AS a")
    except sc.QueryError as exc:
        assert "a" in str(exc)
    else:
        assert rows in ([{"a": 1}], [{"a": 2}])


def test_a_cell_field_given_a_number_or_blob_reads_none(space: Space, db: sc.SqliteDb) -> None:
    class Row(msgspec.Struct):
        who: sc.Cell | None

    alice = space.cell("alice", default="A")
    for sql, params in (
        ("SELECT 5 AS who", []),
        ("SELECT 2.5 AS who", []),
        ("SELECT x'00' AS who", []),
        ("SELECT '' AS who", []),
        ("SELECT '{}' AS who", []),
        ("SELECT ? AS who", ['{"/": {"link@1": {"id": "of:x"}}}']),
    ):
        assert db.read(sql, params, row=Row) == [Row(who=None)], sql
    path = alice.key("a").key(0)
    got = db.read("SELECT ? AS who", [path.link_str()], row=Row)[0].who
    assert got is not None and got.link_str() == path.link_str()


def test_reads_after_close_are_closed_errors(store: Path, outside: Path) -> None:
    path = _source(outside / "ref.db")
    rt = sc.Runtime(store)
    space = rt.space("demo")
    db = space.sqlite_database("chat", tables=MESSAGES)
    handle = space.register_disk_source(str(path))
    q = db.query("SELECT * FROM messages")
    rt.settle()
    rt.close()
    for call in (
        lambda: db.read("SELECT * FROM messages"),
        lambda: handle.read("SELECT * FROM codes"),
        lambda: space.register_disk_source(str(path)),
        lambda: db.query("SELECT * FROM messages"),
    ):
        with pytest.raises(sc.ClosedError):
            call()
    assert q.get().result == []


def test_get_of_a_query_its_closed_runtime_never_ran_is_a_closed_error(store: Path) -> None:
    rt = sc.Runtime(store)
    space = rt.space("demo")
    db = space.sqlite_database("chat", tables=MESSAGES)
    gate = space.cell("gate", default=None)
    param = sc.derive(gate, lambda v: sc.PENDING if v is None else v)
    ran = db.query("SELECT count(*) AS n FROM messages WHERE ts < ?", params=[param])
    # Its parameter is never ready: it never runs.
    never = db.query(
        "SELECT 1 FROM messages WHERE ts > ?", params=[sc.derive(gate, lambda v: sc.PENDING)]
    )
    with space.transact():
        gate.set(5)
    rt.settle()
    assert not ran.get().pending and ran.get().result == [{"n": 0}]
    # Pending again for new parameters, `ran` keeps its rows (R42).
    with space.transact():
        gate.set(None)
    rt.settle()
    last = ran.get()
    assert last.pending and last.result == [{"n": 0}] and last.error is None
    assert never.get() == sc.QueryState(True, None, None, 0)
    rt.close()
    assert ran.get() == last
    with pytest.raises(sc.ClosedError) as info:
        never.get()
    assert str(info.value) == (
        "Query.get(): the runtime closed before the query ran, so it has no result and none "
        "comes; open a new Runtime to read it"
    )
    # Nothing else waits for it either: observe() completes, first() and states() raise.
    events: list[Any] = []
    never.observe().subscribe(events.append, events.append, lambda: events.append("completed"))
    assert events == ["completed"]

    async def first() -> Any:
        return await never.first()

    async def states() -> list[Any]:
        return [state async for state in never.states()]

    for call, name in ((first, "first"), (states, "states")):
        with pytest.raises(sc.ClosedError, match=rf"Query\.{name}\(\): the runtime is closed"):
            asyncio.run(asyncio.wait_for(call(), 10))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"query_timeout": -1},
        {"query_timeout": 0},
        {"query_timeout": float("nan")},
        {"query_timeout": float("inf")},
        {"query_timeout": "5"},
        {"query_timeout": True},
        {"read_pool_size": 0},
        {"read_pool_size": -3},
        {"read_pool_size": 2.5},
        {"query_workers": 0},
        {"query_workers": -1},
        {"poll_interval": -1},
        {"poll_interval": float("nan")},
        {"poll_interval": 0},
    ],
)
def test_read_settings_that_make_no_sense_are_refused(store: Path, kwargs: Any) -> None:
    with pytest.raises(sc.SqliteCellsError) as info:
        sc.Runtime(store, **kwargs)
    assert isinstance(info.value, (TypeError, ValueError))
    assert list(store.iterdir()) == []


def test_a_source_locked_by_another_program_times_out_in_time(store: Path, outside: Path) -> None:

    path = _source(outside / "ref.db")
    locker = apsw.Connection(str(path))
    locker.execute("BEGIN EXCLUSIVE; INSERT INTO codes VALUES ('l', 'locked')")
    try:
        with sc.Runtime(store, query_timeout=0.5) as rt:
            handle = rt.space("demo").register_disk_source(str(path))
            started = time.monotonic()
            with pytest.raises(sc.QueryTimeout):
                handle.read("SELECT count(*) AS n FROM codes")
            assert time.monotonic() - started < 0.5 + 5
            q = handle.query("SELECT count(*) AS n FROM codes")
            rt.settle(timeout=30)
            assert isinstance(q.get().error, sc.QueryTimeout)
            locker.execute("COMMIT")
            _wait_for(q, lambda s: s.result == [{"n": 4}])
    finally:
        locker.close()


def test_a_runaway_query_of_a_source_times_out(store: Path, outside: Path) -> None:
    path = _source(outside / "ref.db")
    with sc.Runtime(store, query_timeout=0.3) as rt:
        handle = rt.space("demo").register_disk_source(str(path))
        with pytest.raises(sc.QueryTimeout):
            handle.read(
                "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r) "
                "SELECT count(*) FROM r"
            )
        assert handle.read("SELECT count(*) AS n FROM codes") == [{"n": 3}]


def test_a_source_overwritten_in_place_with_garbage_is_a_clear_error(
    space: Space, outside: Path
) -> None:
    path = _source(outside / "ref.db")
    handle = space.register_disk_source(str(path))
    assert handle.read("SELECT count(*) AS n FROM codes") == [{"n": 3}]
    # Through a descriptor kept open: a close would drop the read pool's locks on the file.
    write_at(path, 0, b"this is no longer a database" * 200)
    with pytest.raises(sc.SqliteCellsError) as info:
        handle.read("SELECT count(*) AS n FROM codes")
    assert str(path) in str(info.value)


def test_a_source_emptied_in_place_reads_as_a_database_without_tables(
    space: Space, outside: Path
) -> None:
    path = _source(outside / "ref.db")
    handle = space.register_disk_source(str(path))
    assert handle.read("SELECT count(*) AS n FROM codes") == [{"n": 3}]
    os.truncate(path, 0)
    with pytest.raises(sc.QueryError):
        handle.read("SELECT count(*) AS n FROM codes")
    assert handle.read("SELECT 1 AS one") == [{"one": 1}]


def test_the_seq_of_a_source_query(rt: sc.Runtime, space: Space, outside: Path) -> None:
    path = _source(outside / "ref.db")
    handle = space.register_disk_source(str(path))
    q = handle.query("SELECT count(*) AS n FROM codes")
    rt.settle()
    state = q.get()
    assert state.result == [{"n": 3}] and state.error is None
    assert isinstance(state.seq, int)


def test_a_query_of_a_source_declared_with_cf_link_columns_decodes_them(
    rt: sc.Runtime, space: Space, outside: Path
) -> None:
    alice = space.cell("alice", default="A")
    with space.transact():
        alice.set("Alice")
    path = outside / "links.db"
    conn = apsw.Connection(str(path))
    conn.execute("CREATE TABLE people (id INTEGER PRIMARY KEY, who_cf_link TEXT)")
    conn.execute("INSERT INTO people (who_cf_link) VALUES (?), ('junk')", (alice.link_str(),))
    conn.close()
    handle = space.register_disk_source(str(path))

    class Row(msgspec.Struct):
        who_cf_link: sc.Cell | None

    rows = handle.read("SELECT who_cf_link FROM people ORDER BY id", row=Row)
    assert rows[0].who_cf_link is not None and rows[0].who_cf_link.get() == "Alice"
    assert rows[1].who_cf_link is None
    assert handle.read("SELECT who_cf_link FROM people ORDER BY id") == [
        {"who_cf_link": alice.link_str()},
        {"who_cf_link": "junk"},
    ]


# --- third batch -------------------------------------------------------------------------------


def test_a_written_database_whose_file_is_deleted_never_reads_empty(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb
) -> None:
    _post(space, db, "kept", 1)
    assert db.read("SELECT body FROM messages") == [{"body": "kept"}]
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db.path}{suffix}").unlink(missing_ok=True)
    try:
        rows = db.read("SELECT body FROM messages")
    except sc.SqliteCellsError as exc:
        assert "Traceback" not in str(exc)
    else:
        assert rows == [{"body": "kept"}]


def test_a_written_database_whose_file_became_a_directory_is_an_error(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb
) -> None:
    _post(space, db, "kept", 1)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db.path}{suffix}").unlink(missing_ok=True)
    db.path.mkdir()
    with pytest.raises(sc.SqliteCellsError) as info:
        db.read("SELECT body FROM messages")
    assert str(db.path) in str(info.value)


def test_cells_given_as_read_parameters(space: Space, db: sc.SqliteDb) -> None:
    n = space.cell("n", default=3)
    try:
        rows = db.read("SELECT ? AS v", [n])
    except sc.SqliteCellsError as exc:
        assert isinstance(exc, (TypeError, ValueError))
    else:
        assert rows == [{"v": 3}]


def test_close_does_not_wait_for_a_read_waiting_on_a_lock(store: Path, outside: Path) -> None:
    path = _source(outside / "ref.db")
    locker = apsw.Connection(str(path))
    locker.execute("BEGIN EXCLUSIVE; INSERT INTO codes VALUES ('l', 'locked')")
    outcome: list[BaseException | object] = []
    try:
        rt = sc.Runtime(store, query_timeout=60)
        handle = rt.space("demo").register_disk_source(str(path))
        other = rt.space("demo").sqlite_database("chat", tables=MESSAGES)

        def read() -> None:
            try:
                outcome.append(handle.read("SELECT count(*) FROM codes"))
            except BaseException as exc:
                outcome.append(exc)

        reader = threading.Thread(target=read)
        reader.start()
        q = handle.query("SELECT count(*) AS n FROM codes")
        # other reads and writes go on meanwhile
        assert other.read("SELECT count(*) AS n FROM messages") == [{"n": 0}]
        _post(rt.space("demo"), other, "x", 1)
        assert other.read("SELECT count(*) AS n FROM messages") == [{"n": 1}]
        assert q.get().pending
        started = time.monotonic()
        rt.close()
        assert time.monotonic() - started < 10
        reader.join(timeout=10)
        assert not reader.is_alive()
        assert len(outcome) == 1 and isinstance(outcome[0], sc.ClosedError), outcome
    finally:
        locker.execute("ROLLBACK")
        locker.close()


# --- fourth batch ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "params"),
    [
        ("SELECT '\ud800' AS v", None),
        ("SELECT ? AS v", ["\ud800"]),
        ("SELECT :a AS v", {"a": "x\udcff"}),
        ('SELECT 1 AS "\ud800"', None),
        ("SELECT 1 AS one\x00", None),
        ("SELECT 1 AS one\x00 garbage that is not sql", None),
        ("SELECT length(?) AS n", ["x" * (64 * 1024 * 1024 + 1)]),
        ("SELECT length(?) AS n", [b"x" * (64 * 1024 * 1024 + 1)]),
        ("SELECT " + ", ".join("?" for _ in range(40000)), [1] * 40000),
    ],
)
def test_odd_read_text_and_parameters_are_clean_errors(
    db: sc.SqliteDb, sql: str, params: Any
) -> None:
    try:
        rows = db.read(sql, params)
    except sc.SqliteCellsError as exc:
        assert "Traceback" not in str(exc)
    else:
        assert rows == [{"one": 1}], rows


@pytest.mark.parametrize("name", ["a?mode=rw#x.db", "b%41%20c.db", "sp ace.db", "ünï.db"])
def test_sources_whose_names_look_like_uri_parts_read_the_file_named(
    rt: sc.Runtime, space: Space, outside: Path, name: str
) -> None:
    path = _source(outside / name, rows=2)
    decoy = outside / "a"
    _source(decoy, rows=9)
    handle = space.register_disk_source(str(path))
    assert handle.read("SELECT count(*) AS n FROM codes") == [{"n": 2}]
    before = sorted(p.name for p in outside.iterdir())
    q = handle.query("SELECT count(*) AS n FROM codes")
    rt.settle()
    assert q.get().result == [{"n": 2}]
    assert sorted(p.name for p in outside.iterdir()) == before
    with pytest.raises(sc.ReadOnlySource), space.transact():
        handle.exec("DELETE FROM codes")
    assert handle.read("SELECT count(*) AS n FROM codes") == [{"n": 2}]


@pytest.mark.parametrize("name", ["st?ore#x", "s%41 t"])
def test_a_store_whose_path_looks_like_uri_parts_reads_its_own_files(
    tmp_path: Path, name: str
) -> None:
    store = tmp_path / name
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("chat", tables=MESSAGES)
        assert db.read("SELECT count(*) AS n FROM messages") == [{"n": 0}]
        _post(space, db, "x", 1)
        assert db.read("SELECT body FROM messages") == [{"body": "x"}]
        q = db.query("SELECT body FROM messages")
        rt.settle()
        assert q.get().result == [{"body": "x"}]
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


# --- pattern inputs (R61) ----------------------------------------------------------------------


@sc.pattern
def lookup(db: sc.SqliteDb, code: sc.Cell) -> Any:
    return db.query("SELECT label FROM codes WHERE code = ?", params=[code])


def test_relinking_an_input_reads_the_new_database(
    rt: sc.Runtime, space: Space, outside: Path
) -> None:
    first = _source(outside / "one.db", rows=3)
    second = outside / "two.db"
    conn = apsw.Connection(str(second))
    conn.execute("CREATE TABLE codes (code TEXT PRIMARY KEY, label TEXT)")
    conn.execute("INSERT INTO codes VALUES ('c1', 'second file')")
    conn.close()
    piece = space.run(lookup, key="main", code=space.cell("code", default="c1"))
    seen: list[sc.QueryState] = []
    piece.outputs.observe().subscribe(seen.append)
    rt.settle()
    assert piece.outputs.get().pending is True
    assert all(s.pending and s.error is None for s in seen)
    piece.inputs["db"].link(space.register_disk_source(str(first)))
    rt.settle()
    assert piece.outputs.get().result == [{"label": "label 1"}]
    piece.inputs["db"].link(space.register_disk_source(str(second)))
    rt.settle()
    assert piece.outputs.get().result == [{"label": "second file"}]
    assert piece.outputs.get().error is None


def test_an_input_linked_to_a_database_cell_follows_its_writes(
    rt: sc.Runtime, space: Space
) -> None:
    tables = {"codes": sc.table(code="text primary key", label="text")}
    db = space.sqlite_database("codes", tables=tables)
    piece = space.run(lookup, key="main", code=space.cell("code", default="k"))
    piece.inputs["db"].link(db)
    rt.settle()
    assert piece.outputs.get() == sc.QueryState(False, [], None, 0)
    with space.transact() as tx:
        db.exec("INSERT INTO codes VALUES ('k', 'v')")
    rt.settle()
    assert piece.outputs.get() == sc.QueryState(False, [{"label": "v"}], None, tx.seq)


@sc.pattern
def _counted_on_db(db: sc.SqliteDb) -> sc.Query[Any]:
    return db.query("SELECT count(*) AS n FROM codes", react_on=db)


@sc.pattern
def _counted_once(db: sc.SqliteDb) -> sc.Query[Any]:
    return db.query("SELECT count(*) AS n FROM codes", react_on=None)


def test_react_on_a_database_input_follows_every_write_of_the_linked_database(
    rt: sc.Runtime, space: Space
) -> None:
    """R51 "react_on=db re-runs it after every committed write to that database", for a
    pattern's database input too: the database it links to now, and the next one once
    relinked (it watched the input cell, which a write does not change)."""
    tables = {"codes": sc.table(code="text primary key", label="text")}
    first = space.sqlite_database("first", tables=tables)
    second = space.sqlite_database("second", tables=tables)
    piece = space.run(_counted_on_db, key="main")

    def written(db: sc.SqliteDb, sql: str) -> int:
        with space.transact() as tx:
            db.exec(sql)
        rt.settle()
        assert tx.seq is not None
        return tx.seq

    piece.inputs["db"].link(first)
    rt.settle()
    assert piece.outputs.get().result == [{"n": 0}]
    seq = written(first, "INSERT INTO codes VALUES ('a', 'x')")
    assert piece.outputs.get() == sc.QueryState(False, [{"n": 1}], None, seq)
    seq = written(first, "UPDATE codes SET label = 'x'")  # no row changed: still a write
    assert piece.outputs.get() == sc.QueryState(False, [{"n": 1}], None, seq)
    piece.inputs["db"].link(second)
    rt.settle()
    assert piece.outputs.get().result == [{"n": 0}]
    seq = written(second, "INSERT INTO codes VALUES ('b', 'y'), ('c', 'z')")
    assert piece.outputs.get() == sc.QueryState(False, [{"n": 2}], None, seq)
    written(first, "INSERT INTO codes VALUES ('d', 'w')")  # the database it left: not followed
    assert piece.outputs.get() == sc.QueryState(False, [{"n": 2}], None, seq)


def test_a_query_of_an_unlinked_input_runs_once_linked_whatever_it_reacts_to(
    rt: sc.Runtime, space: Space
) -> None:
    """R61: linking a handle later makes its queries run — with react_on=None (one run per
    sql/params, R51) too; a write alone does not re-run it."""
    db = space.sqlite_database("codes", tables={"codes": sc.table(code="text primary key")})
    with space.transact():
        db.exec("INSERT INTO codes VALUES ('a')")
    piece = space.run(_counted_once, key="main")
    rt.settle()
    assert piece.outputs.get().pending is True
    piece.inputs["db"].link(db)
    rt.settle()
    assert piece.outputs.get().result == [{"n": 1}]
    with space.transact():
        db.exec("INSERT INTO codes VALUES ('b')")
    rt.settle()
    assert piece.outputs.get().result == [{"n": 1}]


def test_an_input_linked_to_a_cell_that_is_no_database_is_a_clear_error(
    rt: sc.Runtime, space: Space
) -> None:
    piece = space.run(lookup, key="main", code=space.cell("code", default="k"))
    plain = space.cell("plain", default=5)
    try:
        piece.inputs["db"].link(plain)
    except sc.SqliteCellsError as exc:
        assert isinstance(exc, (TypeError, ValueError))
        return
    rt.settle()
    state = piece.outputs.get()
    assert state.pending or isinstance(state.error, sc.SqliteCellsError), state


def test_a_param_change_is_pending_with_the_previous_rows_until_its_own_arrive(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb
) -> None:
    for i in range(3):
        _post(space, db, f"m{i}", i)
    limit = space.cell("limit", default=1)
    q = db.query("SELECT body FROM messages ORDER BY ts LIMIT ?", params=[limit])
    rt.settle()
    states: list[sc.QueryState] = []
    q.observe().subscribe(states.append)
    old = [{"body": "m0"}]
    new = [{"body": "m0"}, {"body": "m1"}]
    rt.settle()
    assert states == [q.get()] and q.get().result == old
    with space.transact():
        limit.set(2)
    rt.settle()
    assert q.get().result == new and q.get().pending is False
    assert states[-1] == q.get()
    for state in states[1:]:
        assert (state.pending and state.result == old) or (
            not state.pending and state.result == new
        ), states
    with space.transact():
        limit.set("not a number")
    rt.settle()
    state = q.get()
    assert state.pending is False
    assert state.result is None or state.result == [], state


def test_a_source_reads_as_its_own_schema_views_and_all(
    rt: sc.Runtime, space: Space, outside: Path
) -> None:
    path = outside / "shaped.db"
    conn = apsw.Connection(str(path))
    conn.execute(
        "CREATE TABLE t (k TEXT PRIMARY KEY, n INTEGER, doubled AS (n * 2)) WITHOUT ROWID;"
        "INSERT INTO t (k, n) VALUES ('a', 1), ('b', 2);"
        "CREATE VIEW big AS SELECT k FROM t WHERE n > 1;"
        "CREATE INDEX by_n ON t (n);"
    )
    conn.close()
    handle = space.register_disk_source(str(path))
    assert handle.read("SELECT k, doubled FROM t ORDER BY k") == [
        {"k": "a", "doubled": 2},
        {"k": "b", "doubled": 4},
    ]
    assert handle.read("SELECT k FROM big") == [{"k": "b"}]
    q = handle.query("SELECT k FROM big")
    rt.settle()
    assert q.get().result == [{"k": "b"}] and q.get().error is None
    writer = apsw.Connection(str(path))
    writer.execute("INSERT INTO t (k, n) VALUES ('c', 5)")
    writer.close()
    _wait_for(q, lambda s: s.result == [{"k": "b"}, {"k": "c"}])


def test_live_queries_go_on_while_another_waits_for_a_locked_source(
    store: Path, outside: Path
) -> None:
    path = _source(outside / "ref.db")
    locker = apsw.Connection(str(path))
    try:
        with sc.Runtime(store, query_timeout=30, query_workers=1) as rt:
            space = rt.space("demo")
            handle = space.register_disk_source(str(path))
            db = space.sqlite_database("chat", tables=MESSAGES)
            mine = db.query("SELECT body FROM messages")
            rt.settle()
            locker.execute("BEGIN EXCLUSIVE; INSERT INTO codes VALUES ('l', 'locked')")
            stuck = [handle.query(f"SELECT count(*) + {i} AS n FROM codes") for i in range(3)]
            for i in range(3):
                _post(space, db, f"b{i}", i)
                _wait_for(mine, lambda s, i=i: len(s.result or []) == i + 1)
            assert db.read("SELECT count(*) AS n FROM messages") == [{"n": 3}]
            assert all(q.get().pending for q in stuck)
            locker.execute("COMMIT")
            for i, q in enumerate(stuck):
                _wait_for(q, lambda s, i=i: s.result == [{"n": 4 + i}])
    finally:
        locker.close()


def test_a_first_read_of_a_database_file_locked_elsewhere_times_out_in_time(
    store: Path,
) -> None:
    """Before its first use in a runtime a database is compared with its space's log under a
    write lock (R71); a file another program holds exclusively makes that wait, within
    ``query_timeout`` (R44)."""
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("chat", tables=MESSAGES)
        _post(space, db, "x", 1)
        path = db.path
    rt2 = sc.Runtime(store, query_timeout=0.5)
    try:
        db2 = rt2.space("demo").sqlite_database("chat", tables=MESSAGES)
        locker = apsw.Connection(str(path))
        locker.execute("PRAGMA locking_mode=EXCLUSIVE").fetchall()
        locker.execute("BEGIN EXCLUSIVE")
        try:
            started = time.monotonic()
            with pytest.raises(sc.QueryTimeout):
                db2.read("SELECT count(*) AS n FROM messages")
            assert time.monotonic() - started < 0.5 + 5
            q = db2.query("SELECT count(*) AS n FROM messages")
            rt2.settle(timeout=30)
            assert isinstance(q.get().error, sc.QueryTimeout), q.get()
            started = time.monotonic()
        finally:
            locker.execute("ROLLBACK")
            locker.close()
        assert db2.read("SELECT count(*) AS n FROM messages") == [{"n": 1}]
    finally:
        rt2.close()


@pytest.mark.parametrize("bad", [[1, 2], {"a": 1}, 2**63])
def test_a_cell_parameter_holding_what_sqlite_cannot_bind_says_which_and_recovers(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb, bad: Any
) -> None:
    chosen = space.cell("chosen", default=1)
    param = sc.derive(chosen, lambda v: bad if v == "bad" else v)
    q = db.query("SELECT ? AS v", params=[param])
    rt.settle()
    assert q.get().result == [{"v": 1}]
    with space.transact():
        chosen.set("bad")
    rt.settle()
    state = q.get()
    assert state.result is None and isinstance(state.error, sc.QueryError)
    assert isinstance(state.error, (TypeError, ValueError))
    assert "parameter 1" in str(state.error), state.error
    with pytest.raises(sc.QueryError, match="parameter 1") as info:
        db.read("SELECT ? AS v", [param])
    assert isinstance(info.value, (TypeError, ValueError))
    with space.transact():
        chosen.set(2)
    rt.settle()
    assert q.get() == sc.QueryState(False, [{"v": 2}], None, 0)


def test_a_device_at_a_never_written_databases_path_is_no_empty_database(space: Space) -> None:
    """R41: "other I/O errors are never masked as empty". A device (a link to /dev/zero) where
    a database never written keeps its file read as the declared tables with no rows —
    `[{'n': 0}]` — while the write path refused it (a directory there is quarantined, and
    says so). A read says what stands there."""
    with space.transact():
        space.cell("c").set(1)  # the space has a file; the database has none
    db = space.sqlite_database("odd", tables={"t": sc.table(x="integer")})
    db.path.symlink_to("/dev/zero")
    with pytest.raises(sc.QueryError, match=r"a device stands where the database file .* belongs"):
        db.read("SELECT count(*) AS n FROM t")
    query = db.query("SELECT count(*) AS n FROM t")
    space.runtime.settle()
    assert query.get().result is None and isinstance(query.get().error, sc.QueryError)


def test_a_read_binds_a_cell_at_a_path_of_a_large_value_without_decoding_it_again(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb
) -> None:
    """Binding what ``get()`` reads must not cost what ``get()`` costs for a cell at a path of a
    large value (the whole value decoded at each read, ≈ 45 ms for 1.5 MB): the value the
    scheduler computed from the same stored bytes is taken. Counted, not timed: the value is
    decoded once by the scheduler, and no more by the reads."""
    big = space.cell("big")
    with space.transact():
        big.set({"id": 7, "items": list(range(50_000))})
    key = big.key("id")
    assert db.read("SELECT ? AS v", [key]) == [{"v": 7}]  # the first read makes its node
    rt.settle()
    calls = []
    original = sc.Cell.decode

    def counted(self: sc.Cell, data: bytes | None) -> object:
        if self.id == big.id:
            calls.append(self.id)
        return original(self, data)

    sc.Cell.decode = counted  # type: ignore[method-assign]
    try:
        for _ in range(20):
            assert db.read("SELECT ? AS v", [key]) == [{"v": 7}]
        with space.transact():
            assert db.read("SELECT ? AS v", [key]) == [{"v": 7}]  # recorded as a read too
            big.key("id").set(8)
            assert db.read("SELECT ? AS v", [key]) == [{"v": 8}]  # the transaction's own
    finally:
        sc.Cell.decode = original  # type: ignore[method-assign]
    assert calls == [big.id]  # only the transaction's own write was decoded


def test_a_json_path_into_a_link_column_logs_nothing(
    space: Space, caplog: pytest.LogCaptureFixture
) -> None:
    """``'$./.link@1.id'`` is SQLite's JSON path of what a link names; sqlglot's stricter path
    syntax cannot read it, and its parse (for the parameters' targets) logged "Invalid JSON path
    syntax" at every read, a line reaching the user's stderr (Errors)."""
    a = space.cell("a")
    db = space.sqlite_database(
        "links", tables={"t": sc.table(id="integer primary key", who_cf_link=sc.cf_link())}
    )
    with space.transact():
        db.exec("INSERT INTO t (who_cf_link) VALUES (?)", [a])
    caplog.set_level(logging.DEBUG)
    sql = "SELECT count(*) AS n FROM t WHERE json_extract(who_cf_link, '$./.link@1.id') = ?"
    assert db.read(sql, [a.id]) == [{"n": 1}]
    arrow = "SELECT count(*) AS n FROM t WHERE who_cf_link ->> '$./.link@1.space' = ?"
    assert db.read(arrow, [space.id]) == [{"n": 1}]
    assert [r.getMessage() for r in caplog.records if r.name.startswith("sqlglot")] == []


def test_close_stops_a_read_whose_statement_starts_an_instant_after_its_interrupt(
    store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """§3, R44: ``close()`` interrupts the reads in flight, but SQLite forgets an interrupt that
    comes while no statement of the connection is active. A worker that had taken a live
    query's job and not yet its connection started the statement just after: it ran on to its
    query_timeout, ``close()`` waited its 1 s for it in vain, and the thread and the pooled
    connection's files stayed open past ``close()`` (6 threads and 25 descriptors after 20
    closes racing commits and live queries). The reads still in flight are interrupted again
    at each tick of that wait."""
    import sqlite_cells.read._reader as reader_module
    import sqlite_cells.read._workers as workers_module

    armed, interrupted = threading.Event(), threading.Event()
    real_track, real_interrupt = reader_module._track, workers_module._interrupt

    def track(tracker: Any, pooled: Any, index: int, timeout: float) -> None:
        armed.set()
        interrupted.wait()  # close() interrupts before this read has its connection
        real_track(tracker, pooled, index, timeout)

    def interrupt(pooled: Any) -> None:
        real_interrupt(pooled)
        interrupted.set()

    monkeypatch.setattr(reader_module, "_track", track)
    monkeypatch.setattr(workers_module, "_interrupt", interrupt)
    rt = sc.Runtime(store, query_timeout=120)
    try:
        space = rt.space("demo")
        db = space.sqlite_database("chat", tables=MESSAGES)
        with space.transact():
            db.exec("INSERT INTO messages (body, ts) VALUES ('hi', 1)")
        query = db.query(
            "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r) "
            "SELECT count(*) AS n FROM r"
        )
        armed.wait()
    finally:
        rt.close()
    assert [t.name for t in threading.enumerate() if t.name.startswith("sqlite-cells")] == []
    with pytest.raises(sc.ClosedError, match="the runtime closed before the query ran"):
        query.get()  # the interrupted read delivered nothing: no rows, no error
