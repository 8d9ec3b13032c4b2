"""Cell rows another program wrote into a space file (Errors): a value stored as text is read as
its UTF-8 bytes; any other value, or a rev that is not an integer, is a ``StoredCellError`` (an
``EncodingError``) naming the cell and the file, never a raw ``TypeError``/``ValueError``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import apsw
import pytest

import sqlite_cells as sc
from sqlite_cells.codec import StoredCellError


def _space_path(store: Path) -> Path:
    (path,) = store.glob("space-*.sqlite")
    return path


def _written(store: Path, value: Any = 1) -> str:
    """A store whose cell "c" of space "demo" holds ``value`` (committed); the cell's id."""
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        c = space.cell("c")
        with space.transact():
            c.set(value)
            space.cell("other").set("kept")
        return c.id


def _foreign(store: Path, cell_id: str, **columns: Any) -> None:
    """Overwrite columns of the cell's ``_cf_cells`` row with plain apsw, as another program."""
    conn = apsw.Connection(str(_space_path(store)))
    try:
        for column, value in columns.items():
            conn.execute(f"UPDATE _cf_cells SET {column} = ? WHERE id = ?", (value, cell_id))
    finally:
        conn.close()


def _stored(store: Path, cell_id: str) -> tuple[Any, Any]:
    conn = apsw.Connection(str(_space_path(store)), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        row = conn.execute("SELECT value, rev FROM _cf_cells WHERE id = ?", (cell_id,)).fetchone()
        assert row is not None
        return row[0], row[1]
    finally:
        conn.close()


def test_a_value_stored_as_text_is_read_as_its_json(store: Path) -> None:
    cell_id = _written(store)
    _foreign(store, cell_id, value='{"a": [1, "é"]}')
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        c = space.cell("c")
        assert c.get() == {"a": [1, "é"]}
        with space.transact():
            c.update(lambda v: {**v, "b": 2})
        assert c.get() == {"a": [1, "é"], "b": 2}
    assert _stored(store, cell_id)[0] == b'{"a":[1,"\xc3\xa9"],"b":2}'  # written back as a BLOB


def test_text_that_is_not_json_is_an_encoding_error(store: Path) -> None:
    cell_id = _written(store)
    _foreign(store, cell_id, value="not json")
    with sc.Runtime(store) as rt, pytest.raises(sc.EncodingError, match="not JSON"):
        rt.space("demo").cell("c").get()


@pytest.mark.parametrize(
    "stored",
    [
        b"123456789012345678901234567890",
        b'{"a": [1, {"b": 9223372036854775808}]}',  # 2**63, deep inside
        b"[-9223372036854775809]",  # -(2**63) - 1
    ],
)
def test_an_integer_past_64_bits_stored_by_another_program_is_refused_at_read(
    store: Path, stored: bytes
) -> None:
    """R6: a cell's integers are 64-bit, and ``set`` refuses any other. One stored by another
    program was returned by ``get()``, which ``update(lambda v: v)`` then could not write back:
    it is an ``EncodingError`` at the read, as other values no runtime stores are."""
    cell_id = _written(store)
    _foreign(store, cell_id, value=stored)
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        with pytest.raises(sc.EncodingError, match="does not fit in 64 bits"):
            space.cell("c").get()
        with pytest.raises(sc.EncodingError), space.transact():
            space.cell("c").update(lambda v: v)
        assert space.cell("other").get() == "kept" and space.file.seen_seq == 1


def test_integers_of_64_bits_and_long_digit_runs_read_as_they_are(store: Path) -> None:
    value = [2**63 - 1, -(2**63), "12345678901234567890123", 0.12345678901234567890123]
    _written(store, value)
    with sc.Runtime(store) as rt:
        assert rt.space("demo").cell("c").get() == value


@pytest.mark.parametrize(
    ("column", "stored", "shown"),
    [
        ("value", 5, "the integer 5"),
        ("value", 10**15, "the integer 1000000000000000"),  # never bytes(n): n zero bytes
        ("value", 1.5, "the real number 1.5"),
        ("rev", "x", "the text 'x'"),
        ("rev", b"\x01", "the blob b'\\x01'"),
        ("rev", 1.5, "the real number 1.5"),
    ],
)
def test_a_row_written_by_another_program_is_a_stored_cell_error(
    store: Path, column: str, stored: Any, shown: str
) -> None:
    cell_id = _written(store)
    _foreign(store, cell_id, **{column: stored})
    path = _space_path(store)
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        c = space.cell("c")
        for attempt in range(2):  # not cached: every read says it
            with pytest.raises(StoredCellError) as info:
                c.get()
            error = info.value
            assert isinstance(error, sc.EncodingError) and isinstance(error, sc.SqliteCellsError)
            assert (error.cell_id, error.path, error.column, error.stored) == (
                cell_id,
                str(path),
                column,
                stored,
            ), attempt
            message = str(error)
            assert cell_id in message and str(path) in message and shown in message
            assert "written by another program" in message and "restore the space file" in message
        with pytest.raises(StoredCellError), space.transact():
            c.update(lambda v: 2)
        assert space.cell("other").get() == "kept"  # the space's other cells read as ever
        assert space.file.seen_seq == 1  # nothing was committed
    assert _stored(store, cell_id) == ((stored, 1) if column == "value" else (b"1", stored))


def _behind(rt: sc.Runtime) -> sc.Space:
    """``rt``'s space, never woken by commits of this process: behind until told to catch up."""
    space = rt.space("demo")
    space.file.wake = lambda: None
    return space


def test_a_runtime_behind_the_compacted_log_catches_up_past_a_foreign_row(store: Path) -> None:
    with sc.Runtime(store) as a, sc.Runtime(store, poll_interval=3600) as b:
        space_a = a.space("demo")
        space_a.file.compact_keep, space_a.file.compact_every = 3, 4
        space_a.file.keep_per_target = 2
        with space_a.transact():
            space_a.cell("bad").set(0)
            space_a.cell("good").set(0)
        space_b = _behind(b)
        assert (space_b.cell("bad").get(), space_b.cell("good").get()) == (0, 0)  # cached
        for i in range(1, 12):
            with space_a.transact():
                space_a.cell("bad").set(i)
                space_a.cell("good").set(i)
        _foreign(store, space_a.cell("bad").id, rev="x")
        assert space_b.file.catch_up()  # past the compacted log: from the cells
        assert space_b.cell("good").get() == 11
        with pytest.raises(StoredCellError, match="its revision the text 'x', which is not an"):
            space_b.cell("bad").get()  # its cached value was dropped, not kept stale
