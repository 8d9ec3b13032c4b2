"""A cell value nested deeper than Python can read, stored by another program (sqlite-cells
refuses to store one, R6): reading it is a ``StoredCellError`` (an ``EncodingError``) naming the
cell and its space file, never a raw ``RecursionError`` (Errors); subscribers get ``on_error``;
the command line lists it as a value that does not decode."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import apsw
import pytest

import sqlite_cells as sc
from sqlite_cells.codec import MAX_DEPTH, EncodingError, StoredCellError, decode_value

from ..conftest import run_cli

DEEP = b"[" * 5000 + b"]" * 5000  # too deep for the JSON decoder
# The decoder reads this one; a link mark makes the link walk recurse through every level.
DEEP_LINKED = b"[" * 600 + b'{"link@1":1}' + b"]" * 600
DEEP_TABLES = b"[" * 5000 + b'"tables"' + b"]" * 5000  # read as a possible database handle
# Past MAX_DEPTH, yet shallow enough for the JSON decoder: refused by counting levels (it was
# returned, and failed later where it was walked with a raw RecursionError).
PAST_BOUND = b'{"a":' * 990 + b"1" + b"}" * 990


def _store_with(store: Path, data: bytes) -> str:
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        c = space.cell("c")
        with space.transact():
            c.set(1)
            space.cell("other").set("kept")
        cell_id = c.id
    (space_file,) = store.glob("space-*.sqlite")
    conn = apsw.Connection(str(space_file))
    conn.execute("UPDATE _cf_cells SET value = ? WHERE id = ?", (data, cell_id))
    conn.close()
    return cell_id


@pytest.mark.parametrize(
    "data", [DEEP, DEEP_LINKED, PAST_BOUND], ids=["decode", "links", "past-bound"]
)
def test_decoding_a_too_deep_value_is_an_encoding_error(data: bytes) -> None:
    with pytest.raises(EncodingError, match="nested too deeply"):
        decode_value(data)


@pytest.mark.parametrize(
    "data", [DEEP, DEEP_LINKED, PAST_BOUND], ids=["decode", "links", "past-bound"]
)
def test_reading_a_too_deep_stored_cell_names_the_cell(store: Path, data: bytes) -> None:
    cell_id = _store_with(store, data)
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        c = space.cell("c")
        with pytest.raises(StoredCellError) as info:
            c.get()
        assert info.value.cell_id == cell_id and info.value.column == "value"
        assert cell_id in str(info.value) and "nested too deeply" in str(info.value)
        assert repr(c).endswith("= <StoredCellError>>")
        with pytest.raises(StoredCellError), space.transact():
            c.key(0).set(1)  # a write at a path reads the stored value first
        assert space.cell("other").get() == "kept"
        with space.transact():
            c.set(7)  # a whole new value repairs the cell
        assert c.get() == 7


def test_a_subscriber_of_a_too_deep_stored_cell_gets_on_error(store: Path) -> None:
    _store_with(store, DEEP)
    seen: list[tuple[str, Any]] = []
    with sc.Runtime(store) as rt:
        c = rt.space("demo").cell("c")
        c.observe().subscribe(
            on_next=lambda v: seen.append(("next", v)),
            on_error=lambda e: seen.append(("error", type(e))),
        )
        rt.settle(timeout=10)
    assert seen == [("error", StoredCellError)]


@pytest.mark.parametrize(
    "data", [DEEP, DEEP_TABLES, PAST_BOUND], ids=["value", "handle", "past-bound"]
)
def test_the_command_line_lists_a_too_deep_value(store: Path, data: bytes) -> None:
    cell_id = _store_with(store, data)
    for command in ("cells", "inspect", "tables", "check", "gc"):
        done = run_cli(command, str(store))
        assert done.returncode == 0, (command, done.stderr)
    done = run_cli("cells", str(store))
    (line,) = [line for line in done.stdout.splitlines() if cell_id in line]
    assert f"<undecodable value of {len(data)} bytes>" in line


def test_stored_values_are_read_up_to_the_nesting_bound_and_no_deeper() -> None:
    """R6: the bound ``set`` holds to is the bound a stored value is read to: 256 levels read
    back (with a link at the bottom, stored as a sigil, which counts as the cell it is); 257
    levels are a value ``set`` refuses, so reading one is an ``EncodingError`` — it was
    returned, a value ``update`` could not write back."""
    link = b'{"/":{"link@1":{"id":"of:abc","space":"demo","scope":"space","path":["k"]}}}'
    for inner in (b"1", link):
        data = b"[" * MAX_DEPTH + inner + b"]" * MAX_DEPTH
        value = decode_value(data)
        for _ in range(MAX_DEPTH):
            assert isinstance(value, list) and len(value) == 1
            value = value[0]
        with pytest.raises(EncodingError, match="nested too deeply"):
            decode_value(b"[" + data + b"]")


def test_a_key_path_subscriber_of_a_value_past_the_bound_gets_on_error(store: Path) -> None:
    """A stored value past the bound that the JSON decoder still reads: a node at a key path
    copied it level by level on the scheduler thread and failed with a raw ``RecursionError``
    (no ``on_next``, no ``on_error``), and ``inspect`` ended in an internal error."""
    _store_with(store, PAST_BOUND)
    seen: list[tuple[str, Any]] = []
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        c = space.cell("c")
        c.key("a").observe().subscribe(
            on_next=lambda v: seen.append(("next", v)),
            on_error=lambda e: seen.append(("error", type(e))),
        )
        rt.settle(timeout=10)
        with space.transact():
            c.set({"a": 2})  # a whole new value repairs the cell
        assert c.key("a").get() == 2
    assert seen == [("error", StoredCellError)]
    done = run_cli("inspect", str(store))
    assert done.returncode == 0, done.stderr


def test_a_value_set_reads_back_from_any_stack_depth(rt: sc.Runtime) -> None:
    """R6: a value `set` accepts reads back wherever `get` is called from — a 256-level value
    holding a Cell, read 900 frames deep (it failed as a `StoredCellError` blaming "another
    program" from ≈ 550 frames)."""
    space = rt.space("demo")
    c, target = space.cell("c"), space.cell("target", default=7)
    value: Any = target
    for _ in range(MAX_DEPTH):
        value = [value]
    with space.transact():
        c.set(value)

    def down(frames: int) -> Any:
        return c.get() if frames == 0 else down(frames - 1)

    read = down(900)
    for _ in range(MAX_DEPTH):
        assert isinstance(read, list) and len(read) == 1
        read = read[0]
    assert read == target and read.get() == 7


@pytest.mark.parametrize("depth", [MAX_DEPTH, 2000])
def test_a_set_at_a_path_past_the_nesting_limit_is_a_value_encode_error(
    rt: sc.Runtime, depth: int
) -> None:
    """R6: a value set at a path ``depth`` keys deep nests at least that deep, past the limit:
    ``ValueEncodeError`` at the call (the value was rebuilt along the path one call per key
    first, and a path of 2,000 keys ran out of Python's stack: a raw ``RecursionError``).
    Nothing is recorded; a path one key shallower still takes a plain value."""
    space = rt.space("demo")
    c = space.cell("c")
    deep = c
    for i in range(depth):
        deep = deep.key(f"k{i}")
    with space.transact() as tx:
        with pytest.raises(sc.ValueEncodeError, match=f"a path {depth} keys deep") as info:
            deep.set(1)
        assert isinstance(info.value, TypeError)
        with pytest.raises(sc.ValueEncodeError):
            deep.update(lambda v: 1)
        assert tx.is_empty
    shallower = c
    for i in range(MAX_DEPTH - 1):
        shallower = shallower.key(f"k{i}")
    with space.transact():
        shallower.set(1)
    assert shallower.get() == 1 and deep.get() is None
