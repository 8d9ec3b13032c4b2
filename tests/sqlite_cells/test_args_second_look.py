"""Bad arguments found by reading only the SPEC (§5 Errors): each is refused where it is given,
with an error deriving from SqliteCellsError (and ValueError/TypeError for an argument) whose
message says what was wrong and what to do; none leaks a raw Python or apsw error."""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

import apsw
import pytest

import sqlite_cells as sc
from sqlite_cells._runtime import Space

# --- decode_cf_link(value, rt) ------------------------------------------------------------


@pytest.mark.parametrize("value", [None, "not a link"])
@pytest.mark.parametrize("rt_given", [None, "x", 5])
def test_decode_cf_link_refuses_what_is_not_a_runtime(value: Any, rt_given: Any) -> None:
    with pytest.raises(sc.SqliteCellsError) as info:
        sc.decode_cf_link(value, rt_given)
    assert isinstance(info.value, TypeError) and isinstance(info.value, ValueError)
    message = str(info.value)
    assert f"rt is {rt_given!r} (a {type(rt_given).__name__}), not a runtime" in message
    assert "pass the sc.Runtime" in message


def test_decode_cf_link_given_a_space_says_to_pass_its_runtime(space: Space) -> None:
    cell = space.cell("counter", default=0)
    link = cell.link_str()
    with pytest.raises(TypeError, match=r"\(a Space\), not a runtime.*pass space\.runtime"):
        sc.decode_cf_link(link, space)
    assert sc.decode_cf_link(link, space.runtime) == cell
    assert sc.decode_cf_link(None, space.runtime) is None


# --- @sc.handler(tries=...) ---------------------------------------------------------------


@pytest.mark.parametrize("tries", [11, 100, 2**40])
def test_handler_refuses_more_than_ten_tries(tries: int) -> None:
    with pytest.raises(sc.SqliteCellsError) as info:
        sc.handler(tries=tries)
    assert isinstance(info.value, ValueError) and isinstance(info.value, TypeError)
    assert f"tries={tries} is over the limit" in str(info.value)
    assert "at most 10 times in all" in str(info.value)


def test_handler_takes_one_to_ten_tries(rt: sc.Runtime) -> None:
    cell = rt.space("demo").cell("n", default=0)

    @sc.handler(tries=10)
    def bump(*, counter: sc.Cell) -> None:
        counter.set(counter.get() + 1)

    assert isinstance(bump(counter=cell), int) and cell.get() == 1
    assert callable(sc.handler(tries=1))


@pytest.mark.parametrize("tries", [0, -1, None, "3", 2.0, True])
def test_handler_refuses_tries_that_are_not_a_count(tries: Any) -> None:
    with pytest.raises(ValueError, match="tries must be an integer from 1 to 10") as info:
        sc.handler(tries=tries)
    assert isinstance(info.value, sc.SqliteCellsError)


# --- CrossSpaceWrite between two Runtime objects --------------------------------------------


def test_cross_runtime_write_of_the_same_space_id_says_so(store: Path) -> None:
    rt = sc.Runtime(store)
    rt2 = sc.Runtime(store)
    try:
        cell = rt.space("demo").cell("counter", default=0)
        other = rt2.space("demo").cell("counter", default=0)
        calls = []

        @sc.handler
        def conflicting(*, counter: sc.Cell) -> None:
            calls.append(1)
            value = counter.get()
            with rt2.space("demo").transact():
                other.set(other.get() + 100)
            counter.set(value + 1)

        with pytest.raises(sc.CrossSpaceWrite) as info:
            conflicting(counter=cell)
        message = str(info.value)
        assert "space 'demo' through another Runtime object on the same store" in message
        assert "Take every cell this transaction writes from the same Runtime" in message
        assert "it cannot also write space 'demo': use" not in message
        assert isinstance(info.value, sc.SqliteCellsError) and calls == [1]
        assert cell.get() == 0 and other.get() == 0  # nothing of the handler committed
    finally:
        rt2.close()
        rt.close()


def test_cross_runtime_write_on_another_store_names_both(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    rt, rt2 = sc.Runtime(first), sc.Runtime(second)
    try:
        cell = rt.space("demo").cell("x", default=0)
        other = rt2.space("demo").cell("x", default=0)
        writing = rt.space("demo").transact()
        with pytest.raises(sc.CrossSpaceWrite, match="on another store") as info, writing:
            cell.set(1)
            other.set(2)
        assert str(first.resolve()) in str(info.value) and str(second.resolve()) in str(info.value)
    finally:
        rt2.close()
        rt.close()


def test_cross_space_write_in_one_runtime_keeps_its_message(rt: sc.Runtime) -> None:
    a, b = rt.space("a").cell("x", default=0), rt.space("b").cell("x", default=0)
    with (
        pytest.raises(
            sc.CrossSpaceWrite,
            match=r"belongs to space 'a' \(its space.transact\(\) or its first write\); it "
            "cannot also write space 'b'",
        ),
        rt.space("a").transact(),
    ):
        a.set(1)
        b.set(1)


def test_a_transaction_that_only_read_its_space_is_not_said_to_write_it(rt: sc.Runtime) -> None:
    """A transaction opened by ``o.transact()`` that only read there, then wrote a cell of
    another space, was told "this transaction writes space 'o'" (it wrote nothing there)."""
    o, s = rt.space("o"), rt.space("s")
    x, note = o.cell("x", default=1), s.cell("note")
    with pytest.raises(sc.CrossSpaceWrite) as info, o.transact():
        note.set(x.get())
    assert str(info.value) == (
        "this transaction belongs to space 'o' (its space.transact() or its first write); it "
        "cannot also write space 's': use one transaction per space"
    )
    assert note.get() is None


# --- sc.VmSource(vm, path) ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "phrase"),
    [
        (5, "path is 5 (a int), not a str"),
        (None, "path is None (a NoneType), not a str"),
        (b"/data/app.db", "(a bytes), not a str"),
        (PurePosixPath("/data/app.db"), "write str(path): '/data/app.db'"),
        ("", "path is empty, which names no file"),
        ("/data/a\x00pp.db", "NUL character at position 7"),
        ("/data/a\ud800pp.db", "not valid Unicode text (a lone surrogate at position 7)"),
    ],
)
def test_vm_source_refuses_a_path_that_is_not_text(path: Any, phrase: str) -> None:
    with pytest.raises(sc.SqliteCellsError) as info:
        sc.VmSource(object(), path)
    assert isinstance(info.value, TypeError) and isinstance(info.value, ValueError)
    assert phrase in str(info.value)


def test_vm_source_with_a_text_path_is_declared_as_before(space: Space) -> None:
    source = sc.VmSource(vm=object(), path="/data/app.db")
    assert source.path == "/data/app.db"
    db = space.sqlite_database("in_vm", tables={"t": sc.table(a="text")}, source=source)
    with pytest.raises(sc.NotImplementedSource, match="not supported yet"):
        db.read("SELECT a FROM t")


# --- migrate(conn, version): the migration connection ---------------------------------------

T1 = {"users": sc.table(id="integer primary key", name="text")}
T2 = {"users": sc.table(id="integer primary key", name="text", score="integer default 0")}


def _migrate_once(space: Space, sql: Any, params: Any = ()) -> tuple[BaseException, Any]:
    """Declare version 2 with a migrate that runs ``sql``; return what ``execute`` raised in
    the callback and what the first write raised."""
    db = space.sqlite_database("m", tables=T1, version=1)
    with space.transact():
        db.exec("INSERT INTO users (name) VALUES ('a')")
    raised: list[BaseException] = []

    def migrate(conn: Any, from_version: int) -> None:
        try:
            conn.execute(sql, params)
        except BaseException as exc:
            raised.append(exc)
            raise
        conn.execute("ALTER TABLE users ADD COLUMN score integer default 0")

    db2 = space.sqlite_database("m", tables=T2, version=2, migrate=migrate)
    with pytest.raises(sc.MigrationError) as info, space.transact():
        db2.exec("INSERT INTO users (name) VALUES ('b')")
    assert len(raised) == 1 and info.value.__cause__ is raised[0]
    # Nothing of the migration nor of the write was kept.
    conn = apsw.Connection(str(db.path), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        assert conn.execute("SELECT name FROM users").fetchall() == [("a",)]
        assert [row[1] for row in conn.execute("PRAGMA table_info(users)")] == ["id", "name"]
        assert conn.execute("SELECT value FROM _cf_meta WHERE key = 'version'").fetchall() == [(1,)]
    finally:
        conn.close()
    return raised[0], info.value


@pytest.mark.parametrize(
    ("sql", "phrase"),
    [
        ("SELECT '\ud800'", "lone surrogate at position 8, which UTF-8 cannot encode"),
        ("SELECT 1\x00; ATTACH 'x' AS y", "NUL character at position 8, where SQLite would"),
        ("\x00", "NUL character at position 0"),
        (";", "it is empty (only ';', whitespace or comments)"),
        (" ;\n ; ", "it is empty"),
        ("-- nothing;\n; /* nor here */ ;", "it is empty"),
    ],
)
def test_migration_statement_text_is_refused_with_migration_error(
    space: Space, sql: str, phrase: str
) -> None:
    raised, _ = _migrate_once(space, sql)
    assert type(raised) is sc.MigrationError
    assert phrase in str(raised) and f"migrate statement {sql!r} refused" in str(raised)


@pytest.mark.parametrize(
    ("params", "phrase"),
    [
        (("\ud800x",), "parameter 1 is text with a lone surrogate at position 0"),
        ({"n": "ok\udfff"}, "parameter 'n' is text with a lone surrogate at position 2"),
        ((object(),), "its parameters cannot be bound (TypeError"),
        ({"other": 1}, "its parameters cannot be bound (KeyError"),
        ((2**70,), "its parameters cannot be bound (OverflowError"),
    ],
)
def test_migration_parameters_that_cannot_bind_are_refused(
    space: Space, params: Any, phrase: str
) -> None:
    sql = "SELECT :n" if isinstance(params, dict) else "SELECT ?"
    raised, _ = _migrate_once(space, sql, params)
    assert type(raised) is sc.MigrationError and phrase in str(raised)


@pytest.mark.parametrize(
    ("sql", "params", "phrase"),
    [
        (5, (), "migrate statement 5 is of type int, not str"),
        (b"SELECT 1", (), "is of type bytes, not str"),
        ("SELECT ?", 5, "params=5 is of type int; pass a list or tuple"),
        ("SELECT ?", "a", "params='a' is of type str"),
    ],
)
def test_migration_arguments_of_the_wrong_type_are_argument_errors(
    space: Space, sql: Any, params: Any, phrase: str
) -> None:
    raised, _ = _migrate_once(space, sql, params)
    assert isinstance(raised, sc.SqliteCellsError)
    assert isinstance(raised, TypeError) and isinstance(raised, ValueError)
    assert phrase in str(raised)


# --- advice that shows the fix, never the bad value as the example ---------------------------


_ANY_ROOTS = "write a list of str or Path, such as ['/srv/data'], or None for no limit"


@pytest.mark.parametrize(
    ("roots", "advice"),
    [
        (True, f"not True (of type bool): {_ANY_ROOTS}"),
        (b"/data", f"not b'/data' (of type bytes): {_ANY_ROOTS}"),
        ("/data", "not '/data' (of type str): write ['/data']"),
    ],
    ids=["bool", "bytes", "str"],
)
def test_disk_source_roots_that_are_no_list_advise_a_list_of_paths(
    tmp_path: Path, roots: Any, advice: str
) -> None:
    with pytest.raises(sc.SqliteCellsError) as info:
        sc.Runtime(tmp_path / "store", disk_source_roots=roots)
    assert isinstance(info.value, TypeError) and isinstance(info.value, ValueError)
    assert str(info.value) == f"disk_source_roots is a list of directories, {advice}"
    assert not (tmp_path / "store").exists()


@pytest.mark.parametrize(
    ("cols", "message"),
    [
        (
            1,
            "index 'i': columns must be a list of column names, not 1 (of type int), such as "
            "['a'] or ['a', 'b']",
        ),
        ("x", "index 'i': columns must be a list of names, not the text 'x': write ['x']"),
    ],
    ids=["int", "text"],
)
def test_index_columns_that_are_no_list_advise_a_list_of_names(cols: Any, message: str) -> None:
    with pytest.raises(sc.SchemaError) as info:
        sc.table(x="int", indexes={"i": cols})
    assert str(info.value) == message
