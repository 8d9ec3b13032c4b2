"""Bad arguments to the runtime's calls (SPEC §5 "Errors"): each is a ``SqliteCellsError`` that is
also a ``ValueError`` or ``TypeError``, raised at the call, and records nothing (R31, R32)."""

from __future__ import annotations

import html
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

import sqlite_cells as sc
from sqlite_cells.codec import MAX_NAME_BYTES

from .._pathlike import Fspath

LONE = "ab\ud800cd"  # a lone surrogate: no UTF-8 form, so no id or file name can derive from it


def _files(store: Path) -> list[str]:
    return sorted(p.name for p in store.iterdir())


def _refused(call: Callable[[], object]) -> BaseException:
    with pytest.raises(sc.SqliteCellsError) as info:
        call()
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, TypeError)
    assert info.value.__cause__ is None or not isinstance(info.value.__cause__, UnicodeError)
    return info.value


@sc.pattern
def _piece(me: sc.Cell) -> sc.Cell:
    return me


@pytest.mark.parametrize(
    ("what", "call"),
    [
        ("space id", lambda rt: rt.space(LONE)),
        ("cell name", lambda rt: rt.space("demo").cell(LONE)),
        ("cell name", lambda rt: rt.space("demo").cell(LONE, default=1).get()),
        ("piece key", lambda rt: rt.space("demo").run(_piece, key=LONE)),
        ("pattern input name", lambda rt: rt.space("demo").run(_piece, key="k", **{LONE: 1})),
    ],
)
def test_names_with_a_lone_surrogate_are_refused_before_anything_is_created(
    rt: sc.Runtime, store: Path, what: str, call: Callable[[sc.Runtime], object]
) -> None:
    before = _files(store)
    error = _refused(lambda: call(rt))
    assert isinstance(error, sc.ValueEncodeError)
    assert f"the {what} {LONE!r} is not valid Unicode text (a lone surrogate at position 2)" in (
        str(error)
    )
    assert _files(store) == before


# Just over the limit of a name's UTF-8 bytes: 'é' is two bytes.
LONG = "é" * (MAX_NAME_BYTES // 2) + "x"


@pytest.mark.parametrize(
    ("what", "call"),
    [
        ("space id", lambda rt: rt.space(LONG)),
        ("cell name", lambda rt: rt.space("demo").cell(LONG, default=1).get()),
        ("database name", lambda rt: rt.space("demo").sqlite_database(LONG, tables={})),
        ("piece key", lambda rt: rt.space("demo").run(_piece, key=LONG)),
        ("pattern input name", lambda rt: rt.space("demo").run(_piece, key="k", **{LONG: 1})),
    ],
)
def test_names_over_the_length_limit_are_refused_at_the_call(
    rt: sc.Runtime, store: Path, what: str, call: Callable[[sc.Runtime], object]
) -> None:
    """A name of tens of MiB was taken, and failed only at commit, past SQLite's length limit,
    as "the commit failed in SQLite … check the disk"."""
    before = _files(store)
    error = _refused(lambda: call(rt))
    assert isinstance(error, sc.ValueEncodeError)
    assert f"is {MAX_NAME_BYTES + 1:,} bytes of UTF-8, over the limit of {MAX_NAME_BYTES:,}" in (
        str(error)
    )
    assert f"the {what} " in str(error)
    assert _files(store) == before
    # One byte less is a name.
    space = rt.space("demo")
    cell = space.cell(LONG[:-1], default=1)
    with space.transact():
        cell.set(2)
    assert cell.get() == 2


def test_table_and_column_names_over_the_length_limit_are_a_schema_error(
    rt: sc.Runtime, store: Path
) -> None:
    """Two columns of 34 MB names were refused as "a table holds at most 2000 columns"."""
    with pytest.raises(sc.SchemaError) as column:
        sc.table({LONG: "text"})
    with pytest.raises(sc.SchemaError) as table:
        rt.space("demo").sqlite_database("d", tables={LONG: sc.table(a="text")})
    for kind, info in (("column", column), ("table", table)):
        assert f"{kind} name " in str(info.value)
        assert f"over the limit of {MAX_NAME_BYTES:,} for a name" in str(info.value)
    assert _files(store) == []


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda rt: rt.space(""), "a space id is a non-empty str, not ''"),
        (lambda rt: rt.space(5), "a space id is a non-empty str, not int (5)"),
        (lambda rt: rt.space("demo").cell(""), "a cell name is a non-empty str, not ''"),
        (lambda rt: rt.space("demo").cell(b"x"), "a cell name is a non-empty str, not bytes"),
        (lambda rt: rt.space("demo").run(_piece, key=5), "a piece key is a non-empty str"),
        (lambda rt: rt.space("demo").run(_piece, key=""), "a piece key is a non-empty str"),
    ],
)
def test_names_that_are_not_non_empty_strings_are_refused(
    rt: sc.Runtime, call: Callable[[sc.Runtime], object], message: str
) -> None:
    error = _refused(lambda: call(rt))
    assert isinstance(error, sc.ValueEncodeError)
    assert message in str(error)


def test_a_nameless_cell_outside_a_pattern_is_a_type_error_of_ours(rt: sc.Runtime) -> None:
    error = _refused(lambda: rt.space("demo").cell())
    assert "a cell outside a pattern needs a name" in str(error)


def test_run_takes_a_pattern(rt: sc.Runtime) -> None:
    error = _refused(lambda: rt.space("demo").run(lambda me: me, key="k"))  # type: ignore[arg-type]  # on purpose
    assert "space.run takes an @sc.pattern function" in str(error)


def test_a_path_key_with_a_lone_surrogate_or_of_another_type_is_refused(rt: sc.Runtime) -> None:
    c = rt.space("demo").cell("c")
    error = _refused(lambda: c.key(LONE))
    assert isinstance(error, sc.ValueEncodeError)
    assert "the cell path key" in str(error)
    error = _refused(lambda: c.key(1.5))  # type: ignore[arg-type]  # on purpose
    assert "a cell path key is a string or an integer, not 1.5" in str(error)


@pytest.mark.parametrize("index", [2**63, -(2**63) - 1, 2**70])
def test_a_path_index_past_64_bits_is_refused_at_key(rt: sc.Runtime, index: int) -> None:
    c = rt.space("demo").cell("c", default=[1])
    error = _refused(lambda: c.key(index))
    assert f"a cell path index is a 64-bit integer (R6), not {index}" in str(error)
    assert c.key(2**63 - 1).value_path == (2**63 - 1,)  # the largest still names a cell


class _Tag(str):
    pass


class _Number(int):
    pass


def test_a_path_key_of_a_str_or_int_subclass_names_what_its_text_or_number_names(
    rt: sc.Runtime,
) -> None:
    """``c.key(Tag("a"))`` was taken as it was, and every use that encodes the path (a link, a
    value holding the cell, a link column, a pattern input) raised msgspec's raw TypeError."""
    space = rt.space("demo")
    c = space.cell("c", default={"a": [1, 2]})
    inside = c.key(_Tag("a")).key(_Number(1))
    assert inside.value_path == ("a", 1)
    assert [type(k) for k in inside.value_path] == [str, int]
    assert inside.get() == 2
    holder = space.cell("holder")
    with space.transact():
        holder.set([inside])
    assert holder.get()[0].value_path == ("a", 1)
    assert rt.cell_from_link(inside.link()).get() == 2


@pytest.mark.parametrize(
    ("path", "message"),
    [
        (("a", 99), "cannot set index 99 of [10, 2]: indexes must name an existing list element"),
        (("a", "x"), "cannot set key 'x' inside a list: the value at that path is not an object"),
        (("n", "x"), "cannot set key 'x' inside a int"),
        (("a", 0, "x"), "cannot set key 'x' inside a int"),
    ],
)
def test_a_path_write_that_does_not_fit_the_value_is_refused_at_the_call(
    rt: sc.Runtime, path: tuple[str | int, ...], message: str
) -> None:
    space = rt.space("demo")
    c = space.cell("c", default={"a": [10, 2], "n": 1})
    other = space.cell("other")
    with space.transact():
        target = c
        for key in path:
            target = target.key(key)
        error = _refused(lambda: target.set(1))
        assert message in str(error)
        other.set("kept")  # the transaction is still usable (R31)
    assert other.get() == "kept"
    assert c.get() == {"a": [10, 2], "n": 1}


@pytest.mark.parametrize("path", [("a", "x"), ("l", 0, "x"), ("l", 0, 0)])
def test_a_path_write_through_a_cell_held_in_the_value_says_it_is_a_link(
    rt: sc.Runtime, path: tuple[str | int, ...]
) -> None:
    """A cell held in a value is stored as a link (R6, R30): a write at a path that goes
    through it is refused as one that does not follow links, naming the cell, not as a write
    "inside a Link" (a type of the codec the caller never handled); nothing is recorded."""
    space = rt.space("demo")
    linked = space.cell("linked", default={"x": 1})
    c = space.cell("c")
    with space.transact():
        c.set({"a": linked, "l": [linked]})
    other = space.cell("other")
    with space.transact():
        target = c
        for key in path:
            target = target.key(key)
        error = _refused(lambda: target.set(2))
        text = str(error)
        assert "inside a link: the value at that path is a cell" in text
        assert f"cell {linked.id} of space 'demo'" in text and "does not follow links" in text
        assert "Link(" not in text and "inside a Link" not in text
        other.set("kept")  # the transaction is still usable (R31)
    assert other.get() == "kept" and c.get() == {"a": linked, "l": [linked]}
    assert linked.get() == {"x": 1}


@pytest.mark.parametrize("timeout", [-1, -0.5, float("nan"), "x", True, [1]])
def test_settle_refuses_a_timeout_that_is_not_a_non_negative_number(
    rt: sc.Runtime, timeout: object
) -> None:
    error = _refused(lambda: rt.settle(timeout))  # type: ignore[arg-type]  # on purpose
    assert "settle(timeout=…) is a number of seconds of at least 0" in str(error)


@pytest.mark.parametrize("timeout", [None, 1, 2.5, float("inf"), 10.0**300])
def test_settle_accepts_none_and_any_positive_timeout(
    rt: sc.Runtime, timeout: float | None
) -> None:
    assert rt.settle(timeout) is True


@pytest.mark.parametrize("timeout", [0, 0.0])
def test_settle_with_a_zero_timeout_only_checks(rt: sc.Runtime, timeout: float) -> None:
    assert isinstance(rt.settle(timeout), bool)  # idle or not at this instant: no wait


def test_cell_and_database_ids_are_read_only(rt: sc.Runtime) -> None:
    space = rt.space("demo")
    a, b = space.cell("a"), space.cell("b")
    db = space.sqlite_database("d", tables={"t": sc.table(x="integer")})
    for handle, other in ((a, b), (db, b)):
        before = handle.id
        with pytest.raises(AttributeError):
            handle.id = other.id  # type: ignore[misc]  # on purpose
        assert handle.id == before
    with space.transact():
        db.exec("INSERT INTO t (x) VALUES (1)")
    assert db.get()["id"] == db.id


def test_the_repr_of_a_cell_whose_value_links_back_to_it_shows_the_link(
    rt: sc.Runtime,
) -> None:
    space = rt.space("demo")
    a, b = space.cell("a"), space.cell("b")
    with space.transact():
        a.set(a)
    assert repr(a) == f"<Cell {a.id} in 'demo' = <Cell {a.id} in 'demo'>>"
    with space.transact():
        a.set({"x": b})
        b.set([a])
    assert repr(b) == f"<Cell {b.id} in 'demo' = [<Cell {a.id} in 'demo'>]>"
    assert str(a) == f"<Cell {a.id} in 'demo' = {{'x': <Cell {b.id} in 'demo'>}}>"
    assert f"<Cell {b.id} in 'demo'>}}</pre>" in html.unescape(a._repr_html_())
    assert repr(a) == repr(a)  # the display state was reset


@pytest.mark.parametrize("target", [5, "x", {"a": 1}])
def test_link_to_something_that_is_not_a_cell_is_refused_and_writes_nothing(
    rt: sc.Runtime, target: object
) -> None:
    space = rt.space("demo")
    c = space.cell("c", default=0)
    error = _refused(lambda: c.link(target))  # type: ignore[call-overload]  # on purpose
    assert "link(target) takes a Cell to link to" in str(error)
    assert c.get() == 0
    assert space.file.entity(c.id).data is None


def test_link_to_none_is_refused_and_leaves_the_link_in_place(rt: sc.Runtime) -> None:
    """``link(None)`` was taken for ``link()``: it returned the cell's own link and left the
    cell linked, though everywhere else ``None`` on an input means "nothing linked"."""
    space = rt.space("demo")
    c, target = space.cell("c"), space.cell("target", default=1)
    c.link(target)
    error = _refused(lambda: c.link(None))  # type: ignore[call-overload]  # on purpose
    assert "link(None) on cell" in str(error) and "set(None)" in str(error)
    assert c.get() == target
    assert c.link() == c.link()  # no argument: the cell's own link, nothing written
    assert c.get() == target


def test_derive_and_lift_refuse_an_async_function(rt: sc.Runtime) -> None:
    """A derived value is computed on the runtime's thread, where nothing awaits: an async
    function was accepted and its value was a coroutine that never ran (a new one, and a
    "never awaited" warning, at each computation)."""
    c = rt.space("demo").cell("c", default=1)

    async def double(value: int) -> int:
        return value * 2

    class Doubler:
        async def __call__(self, value: int) -> int:
            return value * 2

    for fn in (double, Doubler()):
        for make in (lambda fn=fn: sc.derive(c, fn), lambda fn=fn: sc.lift(fn)):
            error = _refused(make)
            assert "derive/lift takes a plain function, not the async function" in str(error)
    assert sc.derive(c, lambda value: value * 2).get() == 2


def test_derive_and_lift_refuse_no_function_or_nothing_to_react_to(rt: sc.Runtime) -> None:
    c = rt.space("demo").cell("c", default=1)
    error = _refused(lambda: sc.derive(c, 5))  # type: ignore[arg-type]  # on purpose
    assert "derive/lift takes a function, not 5" in str(error)
    error = _refused(lambda: sc.derive(5, lambda v: v))
    assert "needs at least one cell or derived input to react to" in str(error)
    error = _refused(lambda: sc.lift(lambda a, b: a + b)(1, 2))
    assert "needs at least one cell or derived input to react to" in str(error)


def test_a_refused_path_write_records_no_read_of_the_cell(rt: sc.Runtime, store: Path) -> None:
    """R31: the refused write leaves the transaction as it was, so a commit of the cell by
    another runtime meanwhile is no conflict for it."""
    space = rt.space("demo")
    c, other = space.cell("c"), space.cell("other")
    with space.transact():
        c.set({"a": [1]})
    second = sc.Runtime(store, poll_interval=0.01)
    try:
        with space.transact():
            _refused(lambda: c.key("a").key(5).set(1))
            _refused(lambda: c.key("a").key(0).set({1, 2}))  # not JSON: refused at encoding
            other.set("kept")
            writer = threading.Thread(target=_write_elsewhere, args=(second,))  # no transaction
            writer.start()
            writer.join()
    finally:
        second.close()
    assert other.get() == "kept"
    assert c.get() == "changed elsewhere"


def test_an_update_whose_result_is_refused_records_no_read_of_the_cell(
    rt: sc.Runtime, store: Path
) -> None:
    """R31, R32: ``update`` reads the cell, then writes what its function returns; a result
    refused at the write (not JSON, a path it cannot be set at, an async function's coroutine)
    records nothing, its read included, so a commit of the cell by another runtime meanwhile
    is no conflict for the transaction. A read the transaction made before stays; and what the
    function raises itself keeps the read (that outcome depended on the value)."""

    async def later(value: object) -> object:
        return value

    space = rt.space("demo")
    c, other = space.cell("c"), space.cell("other")
    with space.transact():
        c.set({"a": [1]})
    second = sc.Runtime(store, poll_interval=0.01)
    try:
        with space.transact() as tx:
            _refused(lambda: c.update(lambda value: float("nan")))
            _refused(lambda: c.key("a").key(5).update(lambda value: 1))
            _refused(lambda: c.key("a").update(later))
            assert not tx.reads
            other.set("kept")
            writer = threading.Thread(target=_write_elsewhere, args=(second,))  # no transaction
            writer.start()
            writer.join()
        assert other.get() == "kept" and c.get() == "changed elsewhere"
        with pytest.raises(sc.ConflictError), space.transact() as tx:
            assert c.get() == "changed elsewhere"  # read first: kept after the refusal
            _refused(lambda: c.update(lambda value: {1, 2}))
            assert len(tx.reads) == 1
            writer = threading.Thread(target=_write_elsewhere, args=(second,))
            writer.start()
            writer.join()
    finally:
        second.close()
    with space.transact() as tx:
        with pytest.raises(ZeroDivisionError):
            c.update(lambda value: 1 / 0)
        assert len(tx.reads) == 1  # the function's own error: its read stays
    assert c.get() == "changed elsewhere"


def _write_elsewhere(runtime: sc.Runtime) -> None:
    with runtime.space("demo").transact():
        runtime.space("demo").cell("c").set("changed elsewhere")


@pytest.mark.parametrize("name", ["\ud800", "\udcff"])  # broken text; an undecodable file name
def test_a_store_path_that_is_not_valid_text_is_refused_before_it_is_created(
    tmp_path: Path, name: str
) -> None:
    with pytest.raises(sc.SqliteCellsError) as info:
        sc.Runtime(f"{tmp_path}/s{name}")
    assert isinstance(info.value, ValueError)
    assert "is not valid Unicode text (a lone surrogate at position" in str(info.value)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "options",
    [
        {"poll_interval": 2**70},  # the poller's wait could not take it
        {"poll_interval": 1e12},
        {"disk_source_roots": "/data"},
        {"disk_source_roots": [5]},
    ],
)
def test_a_refused_runtime_option_creates_no_store(
    tmp_path: Path, options: dict[str, object]
) -> None:
    with pytest.raises(sc.SqliteCellsError) as info:
        sc.Runtime(tmp_path / "new" / "store", **options)  # type: ignore[arg-type]
    assert isinstance(info.value, ValueError | TypeError)
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("store", ["a\x00b", "x" * 100_000])
def test_a_store_path_no_file_system_takes_is_our_error(store: str) -> None:
    with pytest.raises(sc.SqliteCellsError) as info:
        sc.Runtime(store)
    assert isinstance(info.value, ValueError)
    assert len(str(info.value)) < 600  # a long path is shown cut


def test_a_store_under_the_home_of_no_such_user_is_our_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``~user/…`` of a user the system does not know: pathlib raised its own ``RuntimeError``
    ("Could not determine home directory."), naming no path."""
    monkeypatch.chdir(tmp_path)
    for given in ("~no_such_user_here/store", Path("~no_such_user_here/store")):
        with pytest.raises(sc.SqliteCellsError) as info:
            sc.Runtime(given)
        assert isinstance(info.value, ValueError)
        assert "'~no_such_user_here/store'" in str(info.value)
        assert "no home directory of a user named 'no_such_user_here'" in str(info.value)
    monkeypatch.setenv("SQLITE_CELLS_STORE", "~no_such_user_here/store")
    with pytest.raises(sc.SqliteCellsError, match="give the path in full"):
        sc.Runtime()
    assert list(tmp_path.iterdir()) == []  # nothing made, here or anywhere


@pytest.mark.parametrize(
    "store",
    [
        Fspath(b"/tmp/x"),
        Fspath(5),
        Fspath(None),
        Fspath(Fspath("/tmp/x")),
        Fspath(RuntimeError("no path today")),
    ],
    ids=["bytes", "int", "None", "pathlike", "raises"],
)
def test_a_pathlike_store_that_names_no_text_path_is_refused_as_plain_bytes_is(
    store: Fspath,
) -> None:
    for given in (b"/tmp/x", store):
        with pytest.raises(sc.SqliteCellsError) as info:
            sc.Runtime(given)  # type: ignore[arg-type]
        assert isinstance(info.value, ValueError)
        assert "a store is a directory path, not" in str(info.value)
        assert "__fspath__ returns a str" in str(info.value)


def test_a_str_subclass_names_what_its_text_names(rt: sc.Runtime) -> None:
    class Tagged(str):
        def __str__(self) -> str:
            raise RuntimeError("never asked")

    space = rt.space(Tagged("demo"))
    assert space is rt.space("demo")
    cell = space.cell(Tagged("n"))
    assert cell.id == space.cell("n").id
    with space.transact():
        cell.set(1)
    assert space.cell("n").get() == 1


def test_a_str_subclass_store_path_names_its_text(tmp_path: Path) -> None:
    """A store path given as a str subclass whose own methods raise is its text: the store
    opens there (before, pathlib called them, and the error said the path started with ~)."""

    class Tagged(str):
        def __str__(self) -> str:
            raise RuntimeError("never asked")

        def __eq__(self, other: object) -> bool:
            raise RuntimeError("never asked")

        def __hash__(self) -> int:
            raise RuntimeError("never asked")

    with sc.Runtime(Tagged(str(tmp_path / "st"))) as rt:
        assert rt.store == (tmp_path / "st").resolve()


def test_update_takes_a_function(rt: sc.Runtime) -> None:
    cell = rt.space("demo").cell("n", default=1)
    with rt.space("demo").transact() as tx:
        with pytest.raises(sc.SqliteCellsError, match="update takes a function") as info:
            cell.update(5)  # type: ignore[arg-type]
        assert isinstance(info.value, TypeError)
        assert tx.is_empty
    assert cell.get() == 1


def test_a_store_path_that_is_a_link_to_nothing_says_so(tmp_path: Path) -> None:
    """Errors: a store path that is a symbolic link to a folder not made yet said "File exists
    — check the path and the disk" (Python's mkdir meeting the link). It names the link and its
    target, and nothing is made."""
    link = tmp_path / "store-link"
    link.symlink_to(tmp_path / "data" / "store")
    with pytest.raises(
        sc.DatabaseError, match=r"is a symbolic link to .*which does not exist"
    ) as e:
        sc.Runtime(link)
    assert type(e.value).__name__ == "StorePathError" and isinstance(e.value, ValueError)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store-link"]


def test_a_store_path_that_is_a_loop_of_links_says_so(tmp_path: Path) -> None:
    """Errors: a link that leads back to itself through links looks like one to nothing (its
    target does not exist), and was said to be one: "make that directory", which cannot be
    done. It is said to be a loop, and nothing is made."""
    first, second = tmp_path / "a", tmp_path / "b"
    first.symlink_to(second)
    second.symlink_to(first)
    with pytest.raises(sc.DatabaseError, match=r"leads back to itself through links") as e:
        sc.Runtime(first)
    assert type(e.value).__name__ == "StorePathError" and "make that directory" not in str(e.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]


def test_a_store_path_through_a_loop_of_links_says_so(tmp_path: Path) -> None:
    """Errors: a store under a link that leads back to itself (``loop/store``) was refused with
    pathlib's own words, "RuntimeError: Symlink loop from …", and nothing to do. It says a link on
    the path loops and what to do, and nothing is made."""
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    with pytest.raises(sc.DatabaseError) as e:
        sc.Runtime(loop / "store")
    assert type(e.value).__name__ == "StorePathError" and isinstance(e.value, ValueError)
    message = str(e.value)
    assert f"the store {loop / 'store'} cannot be reached" in message
    assert "leads back to itself through links: point that link at a directory" in message
    assert "RuntimeError" not in message
    assert [p.name for p in tmp_path.iterdir()] == ["loop"]


def test_a_relative_store_path_in_a_deleted_current_directory_says_so(tmp_path: Path) -> None:
    """Errors: with the current directory deleted, a relative store path (the default store
    too) was said as "the store .sqlite-cells: No such file or directory — check the path and
    the disk", although a missing store is made. It names the current directory as what is
    missing and what to do; nothing is made. (In a subprocess: the test's own cwd stays.)"""
    gone = tmp_path / "gone"
    gone.mkdir()
    code = textwrap.dedent(
        f"""
        import os, sys
        import sqlite_cells as sc
        os.chdir({str(gone)!r})
        os.rmdir({str(gone)!r})
        for args in [(), ("rel",)]:
            try:
                sc.Runtime(*args).close()
                print("opened")
            except sc.SqliteCellsError as exc:
                print(type(exc).__name__, isinstance(exc, ValueError), exc)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    env.pop("SQLITE_CELLS_STORE", None)
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 2, done.stdout
    for line, shown in zip(lines, (".sqlite-cells", "rel"), strict=True):
        assert line.startswith(f"StorePathError True the store path {shown} is relative, but ")
        assert "the current directory cannot be found" in line
        assert "give the store as an absolute path" in line and "check the disk" not in line
    assert list(tmp_path.iterdir()) == []


def test_a_value_over_the_length_limit_names_the_cell_it_was_written_to() -> None:
    """R6, R44, Errors: a value too long to store is refused at ``set`` (whole or at a path),
    and the error names the cell as the write's other refusals do — its name and id, and the
    path — so a handler writing several cells says which; nothing is recorded."""
    big = "x" * (64 * 1024 * 1024)
    with sc.Runtime.ephemeral() as rt:
        space = rt.space("s")
        c, other = space.cell("big"), space.cell("other")
        with space.transact() as tx:
            for target in (c, c.key("a")):
                with pytest.raises(sc.ValueEncodeError, match="over SQLite's length limit") as e:
                    target.set(big)
                assert str(e.value).startswith(f"writing cell 'big' ({c.id})")
            assert "at path ['a']" in str(e.value) and tx.is_empty and not tx.reads
            other.set("kept")
        assert c.get() is None and other.get() == "kept"


def test_a_default_no_write_could_store_is_refused_where_it_is_declared() -> None:
    """R4, R6: a default is a value the cell holds; one over SQLite's length limit (which `set`
    refuses) was accepted, and every later write at a path of the unwritten cell failed, far
    from the mistake. Refused at the declaration, and the cell has no default."""
    big = "x" * (65 * 1024 * 1024)
    with sc.Runtime.ephemeral() as rt:
        space = rt.space("s")
        with pytest.raises(sc.ValueEncodeError, match="over SQLite's length limit") as info:
            space.cell("d", default={"a": big})
        assert "(a default is a value the cell holds)" in str(info.value)
        assert space.cell("d").get() is None


def test_a_store_path_longer_than_sqlite_opens_its_files_is_refused_by_its_length(
    tmp_path: Path,
) -> None:
    """A store whose files' paths SQLite cannot open (over 504 bytes: its 512-byte limit less
    room for "-journal") failed at its first commit with "unable to open database file: check
    that the path is a file…"; it is refused when the runtime is made, saying the length, and
    no directory is left. The longest store path that leaves room for the runtime's file names
    (458 bytes) works."""

    def of_length(size: int, letter: str) -> Path:  # (each name under the system's 255)
        path = tmp_path
        while (left := size - len(os.fsencode(path))) > 200:
            path = path / (letter * 100)
        first = (left - 2) // 2  # two names, each with its "/"
        return path / (letter * first) / (letter * (left - 2 - first))

    fits, too_long = of_length(458, "f"), of_length(459, "l")
    assert (len(os.fsencode(fits)), len(os.fsencode(too_long))) == (458, 459)
    with pytest.raises(sc.SqliteCellsError) as info:
        sc.Runtime(too_long)
    assert type(info.value).__name__ == "StorePathError" and isinstance(info.value, ValueError)
    assert "is 459 bytes long, and SQLite opens no file whose path is over 504 bytes" in str(
        info.value
    )
    assert "at most 458 bytes; give a shorter one" in str(info.value)
    assert list(tmp_path.iterdir()) == []  # nothing made
    with sc.Runtime(fits) as rt:
        space = rt.space("s")
        db = space.sqlite_database("d", tables={"t": sc.table(x="integer")})
        with space.transact():
            space.cell("c").set(1)
            db.exec("INSERT INTO t (x) VALUES (1)")
        assert db.read("SELECT x FROM t") == [{"x": 1}]


def test_a_store_path_long_only_as_given_is_judged_by_its_resolved_length(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store's files are opened under its resolved path: a store given as a path made long
    only by ``..`` parts (or by a link to a short folder) was refused by the length it was
    given with, though SQLite opens its files; one whose resolved path is too long still is."""
    (tmp_path / "a").mkdir()
    monkeypatch.chdir(tmp_path)
    given = Path("a/.." + "/a/.." * 100) / "store"
    assert len(os.fsencode(Path.cwd() / given)) > 504
    with sc.Runtime(given) as rt:
        space = rt.space("s")
        with space.transact():
            space.cell("c").set(1)
        assert rt.store == tmp_path.resolve() / "store"
    deep = tmp_path.resolve() / ("d" * 200) / ("d" * 200)
    deep.mkdir(parents=True)
    (tmp_path / "short").symlink_to(deep)
    with pytest.raises(sc.SqliteCellsError) as info:
        sc.Runtime(tmp_path / "short" / "store")
    assert type(info.value).__name__ == "StorePathError"
    assert f"the store path {deep / 'store'}"[:60] in str(info.value)
    assert "SQLite opens no file whose path is over 504 bytes" in str(info.value)
    assert not (deep / "store").exists()  # nothing made
