"""Cell values, links and link columns, from the contract's words (R6, R43, R52, §5 Errors).

Values are JSON plus cells; everything else is refused at ``set`` with ``ValueEncodeError`` (a
``TypeError`` and ``ValueError``) before anything is recorded. Link columns hold links and read
back as live cells in typed rows, as their raw text in untyped ones.
"""

from __future__ import annotations

import array
import collections
import datetime
import decimal
import enum
import fractions
import math
import re
import uuid
from pathlib import Path
from typing import Any, TypedDict

import apsw
import msgspec
import pytest

import sqlite_cells as sc
from sqlite_cells._runtime import Space
from sqlite_cells.codec import Link
from sqlite_cells.runtime import LENGTH_LIMIT, ROW_SLACK


def _log_seq(space: Space) -> int:
    """The space's last seq as its file records it (0 before any commit)."""
    paths = list(space.runtime.store.glob("space-*.sqlite"))
    if space.file.path not in paths:
        return 0
    conn = apsw.Connection(str(space.file.path), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        [(seq,)] = conn.execute("SELECT coalesce(max(seq), 0) FROM _cf_log").fetchall()
    finally:
        conn.close()
    return int(seq)


# -- R6: accepted values ------------------------------------------------------------------------


ACCEPTED: list[tuple[Any, Any]] = [
    (None, None),
    (True, True),
    (False, False),
    (0, 0),
    (2**63 - 1, 2**63 - 1),
    (-(2**63), -(2**63)),
    (1.5, 1.5),
    (0.1, 0.1),
    (1e308, 1e308),
    (5e-324, 5e-324),
    (-1e-300, -1e-300),
    ("", ""),
    ("é\x00\U0001f600", "é\x00\U0001f600"),
    ([1, [2, [3]]], [1, [2, [3]]]),
    ((1, (2, 3)), [1, [2, 3]]),
    ({"a": {"b": None}}, {"a": {"b": None}}),
    ({"": 1, "/": 2}, {"": 1, "/": 2}),
    (collections.OrderedDict(b=1, a=2), {"b": 1, "a": 2}),
]


@pytest.mark.parametrize(("value", "expected"), ACCEPTED, ids=[repr(v)[:30] for v, _ in ACCEPTED])
def test_json_values_read_back_as_written(
    rt: sc.Runtime, store: Path, value: Any, expected: Any
) -> None:
    space = rt.space("demo")
    c = space.cell("c")
    with space.transact():
        c.set(value)
    got = c.get()
    assert got == expected and type(got) is type(expected)
    rt.close()
    with sc.Runtime(store) as again:
        back = again.space("demo").cell("c").get()
    assert back == expected and type(back) is type(expected)
    if isinstance(expected, dict):
        # JSON objects are unordered: a value is stored canonically, keys sorted, so an equal
        # value is the same bytes whatever order its dict was built in.
        assert list(back) == sorted(expected)


def test_bools_stay_bools_and_ints_stay_ints(rt: sc.Runtime) -> None:
    space = rt.space("demo")
    c = space.cell("c")
    with space.transact():
        c.set([True, 1, 1.0, False, 0])
    assert [type(v) for v in c.get()] == [bool, int, float, bool, int]


def test_negative_zero_keeps_its_sign(rt: sc.Runtime) -> None:
    space = rt.space("demo")
    c = space.cell("c")
    with space.transact():
        c.set(-0.0)
    got = c.get()
    assert type(got) is float and got == 0.0 and math.copysign(1.0, got) == -1.0


def test_cells_in_values_read_back_as_cells(rt: sc.Runtime) -> None:
    space, other = rt.space("demo"), rt.space("other")
    a, b = space.cell("a"), other.cell("b", default=7)
    holder = space.cell("holder")
    with space.transact():
        holder.set({"a": a, "b_at": b.key("x").key(0), "list": [a, (b,)]})
    got = holder.get()
    assert got["a"] == a and isinstance(got["a"], sc.Cell)
    assert got["b_at"].space.id == "other" and got["b_at"].value_path == ("x", 0)
    assert got["list"][1][0].get() == 7
    with space.transact():
        holder.set(holder)  # a cell may hold a link to itself
    assert holder.get() == holder


# -- R6: refused values -------------------------------------------------------------------------


class Color(enum.Enum):
    RED = 1


class Level(enum.IntEnum):
    LOW = 1


class Name(str):
    pass


class Ratio(float):
    pass


def _cyclic() -> list[Any]:
    items: list[Any] = []
    items.append(items)
    return items


REFUSED: list[Any] = [
    b"bytes",
    bytearray(b"x"),
    memoryview(b"x"),
    float("nan"),
    float("inf"),
    float("-inf"),
    {1, 2},
    frozenset(),
    datetime.datetime(2020, 1, 1),
    datetime.date(2020, 1, 1),
    datetime.timedelta(1),
    decimal.Decimal("1.5"),
    fractions.Fraction(1, 3),
    complex(1, 2),
    2**63,
    -(2**63) - 1,
    10**30,
    {1: "int key"},
    {("t",): 1},
    {None: 1},
    {True: 1},
    object(),
    Color.RED,
    uuid.UUID(int=0),
    Path("/tmp"),
    array.array("i", [1]),
    range(3),
    iter([1]),
    {"a": [1, {"b": b"deep"}]},
    [1, float("nan")],
    "lone \ud800 surrogate",
    {"key \udfff": 1},
    _cyclic(),
    print,
]


@pytest.mark.parametrize("value", REFUSED, ids=[type(v).__name__ for v in REFUSED])
def test_other_values_are_refused_at_set_before_anything_is_recorded(
    rt: sc.Runtime, value: Any
) -> None:
    space = rt.space("demo")
    c = space.cell("c", default="dflt")
    other = space.cell("other")
    with space.transact():
        c.set("kept")
    seq = _log_seq(space)
    with pytest.raises(RuntimeError), space.transact():
        other.set(1)
        with pytest.raises(sc.ValueEncodeError) as info:
            c.set(value)
        assert isinstance(info.value, TypeError) and isinstance(info.value, ValueError)
        assert str(info.value)
        c.key("x")  # the transaction is still usable
        raise RuntimeError("leave")  # nothing of this transaction commits
    assert c.get() == "kept" and other.get() is None
    assert _log_seq(space) == seq
    # Raised out of the block: the other write of the transaction is not committed either.
    with pytest.raises(sc.ValueEncodeError), space.transact():
        other.set(2)
        c.set(value)
    assert other.get() is None and _log_seq(space) == seq
    # Caught inside the block: the transaction commits its other writes, not the refused one.
    with space.transact():
        other.set(3)
        with pytest.raises(sc.ValueEncodeError):
            c.set({"wrapped": value})
    assert other.get() == 3 and c.get() == "kept"
    # At a path, and as a default, the same.
    with pytest.raises(sc.ValueEncodeError), space.transact():
        space.cell("d", default={}).key("k").set(value)
    with pytest.raises(sc.ValueEncodeError):
        space.cell("e", default=value)
    assert space.cell("e").get() is None


@pytest.mark.parametrize("value", [Level.LOW, Name("x"), Ratio(1.5)], ids=repr)
def test_subclasses_of_json_scalars_are_not_converted_silently(rt: sc.Runtime, value: Any) -> None:
    """The SPEC is silent on subclasses of int, str and float: either refused at set, or read
    back equal to what was written — never stored as something that reads back otherwise."""
    space = rt.space("demo")
    c = space.cell("c")
    try:
        with space.transact():
            c.set(value)
    except sc.ValueEncodeError:
        assert c.get() is None
        return
    assert c.get() == value


def test_numpy_like_objects_are_refused(rt: sc.Runtime) -> None:
    class Scalar:
        def __index__(self) -> int:
            return 1

        def __float__(self) -> float:
            return 1.0

        def tolist(self) -> list[int]:
            return [1]

    space = rt.space("demo")
    with pytest.raises(sc.ValueEncodeError), space.transact():
        space.cell("c").set(Scalar())


@pytest.mark.parametrize("depth", [100, 400, 2000, 100_000])
def test_deep_nesting_is_stored_and_read_back_or_refused_at_set(
    rt: sc.Runtime, store: Path, depth: int
) -> None:
    value: Any = 0
    for _ in range(depth):
        value = [value]
    space = rt.space("demo")
    c = space.cell("c")
    try:
        with space.transact():
            c.set(value)
    except sc.ValueEncodeError:
        assert c.get() is None and _log_seq(space) == 0
        return
    rt.close()
    with sc.Runtime(store) as again:
        back = again.space("demo").cell("c").get()
    for _ in range(depth):
        assert isinstance(back, list) and len(back) == 1
        back = back[0]
    assert back == 0


def test_a_value_over_sqlite_length_limit_is_refused_and_records_nothing(rt: sc.Runtime) -> None:
    space = rt.space("demo")
    c, other = space.cell("c"), space.cell("other")
    with pytest.raises(sc.SqliteCellsError), space.transact():
        other.set(1)
        c.set("x" * (64 * 1024 * 1024 + 10))
    assert c.get() is None and other.get() is None and _log_seq(space) == 0
    with space.transact():
        c.set("y" * (1024 * 1024))
    assert len(c.get()) == 1024 * 1024


def test_a_value_whose_row_would_be_over_the_limit_is_refused_at_set(rt: sc.Runtime) -> None:
    """SQLite's length limit caps a whole row: a value a few bytes under it passed ``set`` and
    failed at commit with "the commit failed in SQLite (string or blob too big) … try again,
    and check the disk" (a bare ``SqliteCellsError``; retrying could never help). It is a
    ``ValueEncodeError`` at ``set`` now, naming the largest value the cell takes — which
    commits."""
    space = rt.space("demo")
    c = space.cell("c")
    largest = LENGTH_LIMIT - ROW_SLACK - len(c.id)  # encoded bytes: the text and its quotes
    too_long = "x" * (LENGTH_LIMIT - len(c.id) - 2 - 20)
    with (
        pytest.raises(sc.ValueEncodeError, match=f"may be up to {largest} bytes"),
        space.transact(),
    ):
        c.set(too_long)
    assert c.get() is None and _log_seq(space) == 0
    with space.transact():
        c.set("x" * (largest - 2))
    assert len(c.get()) == largest - 2 and _log_seq(space) == 1


def test_a_dict_shaped_like_a_link_is_refused(rt: sc.Runtime) -> None:
    space = rt.space("demo")
    link = msgspec.json.decode(space.cell("a").link_str())
    with pytest.raises(sc.ValueEncodeError), space.transact():
        space.cell("c").set(link)
    with space.transact():
        space.cell("c").set({"/": {"other": 1}})  # not a link's shape: plain data
    assert space.cell("c").get() == {"/": {"other": 1}}


# -- R43, R52: link columns -------------------------------------------------------------------


class Msg(msgspec.Struct):
    id: int
    body: str
    author_cf_link: sc.Cell | None


class Aliased(TypedDict):
    who: sc.Cell | None


def test_a_cell_written_to_a_link_column_stores_its_link(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb
) -> None:
    alice = rt.space("people").cell("alice", default={"name": "Alice"})
    at_path = space.cell("c").key("a").key(1)
    with space.transact():
        db.exec("INSERT INTO messages (id, author_cf_link, body) VALUES (?, ?, ?)", [1, alice, "a"])
        db.exec_many(
            "INSERT INTO messages (id, author_cf_link, body) VALUES (?, ?, ?)",
            [[2, at_path, "b"], [3, None, "c"]],
        )
    raw = db.read("SELECT id, author_cf_link FROM messages ORDER BY id")
    assert raw == [
        {"id": 1, "author_cf_link": alice.link_str()},
        {"id": 2, "author_cf_link": at_path.link_str()},
        {"id": 3, "author_cf_link": None},
    ]
    typed = db.read("SELECT id, body, author_cf_link FROM messages ORDER BY id", row=Msg)
    assert typed[0].author_cf_link == alice and typed[0].author_cf_link.get() == {"name": "Alice"}
    assert typed[0].author_cf_link.space.id == "people"
    assert typed[1].author_cf_link == at_path and typed[1].author_cf_link.value_path == ("a", 1)
    assert typed[2].author_cf_link is None
    [aliased, *_] = db.read("SELECT author_cf_link AS who FROM messages ORDER BY id", row=Aliased)
    assert aliased["who"] == alice
    # A query compares the column with a bound Cell by its link.
    assert db.read("SELECT id FROM messages WHERE author_cf_link = ?", [alice.link_str()]) == [
        {"id": 1}
    ]


@pytest.mark.parametrize(
    "value",
    ["text", 1, 1.5, b"x", {"a": 1}, ["x"], True, '{"/":{"link@1":{"id":"of:x"}}}'],
    ids=repr,
)
def test_a_non_link_value_into_a_link_column_is_refused_at_the_call(
    space: Space, db: sc.SqliteDb, value: Any
) -> None:
    other = space.cell("other")
    with space.transact():
        other.set(1)
        with pytest.raises(sc.LinkEncodeError):
            db.exec("INSERT INTO messages (author_cf_link, body) VALUES (?, 'x')", [value])
        with pytest.raises(sc.LinkEncodeError):
            db.exec("UPDATE messages SET author_cf_link = ?", [value])
    assert other.get() == 1 and db.rev == 0
    assert db.read("SELECT * FROM messages") == []


def test_a_cell_bound_to_a_plain_column_is_refused(space: Space, db: sc.SqliteDb) -> None:
    with space.transact():
        with pytest.raises(sc.LinkEncodeError):
            db.exec("INSERT INTO messages (body) VALUES (?)", [space.cell("c")])
        db.exec("INSERT INTO messages (body) VALUES ('fine')")
    assert db.rev == 1


def test_a_literal_that_is_not_a_link_in_a_link_column_fails_the_commit(
    space: Space, db: sc.SqliteDb
) -> None:
    c = space.cell("c")
    with pytest.raises(sc.LinkEncodeError), space.transact():
        c.set(1)
        db.exec("INSERT INTO messages (author_cf_link, body) VALUES ('nope', 'x')")
    assert c.get() is None and db.rev == 0 and db.read("SELECT * FROM messages") == []


def _write_raw_rows(path: Path, texts: list[Any]) -> None:
    conn = apsw.Connection(str(path))
    try:
        for n, text in enumerate(texts, start=100):
            conn.execute(
                "INSERT INTO messages (id, author_cf_link, body) VALUES (?, ?, 'raw')", (n, text)
            )
    finally:
        conn.close()


INVALID_LINK_TEXTS = [
    "not a link",
    "",
    '{"/":{"link@1":{"id":"of:x","space":"s"}}}',
    '{"/":{"link@1":{"id":"nope","space":"s","scope":"space"}}}',
    '{"/":{"link@1":{"id":"of:x","space":"","scope":"space"}}}',
    '{"/":{"link@1":{"id":"of:x","space":"s","scope":"space","extra":1}}}',
    '[{"/":{"link@1":{"id":"of:x","space":"s","scope":"space"}}}]',
    42,
    4.5,
    b"\xff\xfe",
]


def test_invalid_link_text_reads_as_none_typed_and_as_is_untyped(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb
) -> None:
    with space.transact():
        db.exec(
            "INSERT INTO messages (id, author_cf_link, body) VALUES (1, ?, 'ok')", [space.cell("a")]
        )
    _write_raw_rows(db.path, INVALID_LINK_TEXTS)
    typed = db.read("SELECT id, body, author_cf_link FROM messages ORDER BY id", row=Msg)
    assert typed[0].author_cf_link == space.cell("a")
    assert [row.author_cf_link for row in typed[1:]] == [None] * len(INVALID_LINK_TEXTS)
    q = db.query("SELECT id, body, author_cf_link FROM messages ORDER BY id", row=Msg)
    rt.settle()
    state = q.get()
    assert state.error is None and state.result is not None
    assert [row.author_cf_link for row in state.result[1:]] == [None] * len(INVALID_LINK_TEXTS)
    untyped = db.read("SELECT author_cf_link FROM messages WHERE id >= 100 ORDER BY id")
    # Stored in a TEXT column, a number reads back as SQLite's text for it; a BLOB as bytes.
    assert [row["author_cf_link"] for row in untyped] == [
        str(t) if isinstance(t, int | float) else t for t in INVALID_LINK_TEXTS
    ]


def test_a_linked_cells_change_does_not_rerun_the_query(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb
) -> None:
    alice = space.cell("alice", default="v0")
    with space.transact():
        db.exec("INSERT INTO messages (author_cf_link, body) VALUES (?, 'hi')", [alice])
    q = db.query("SELECT id, body, author_cf_link FROM messages", row=Msg)
    results: list[object] = []
    q.observe().subscribe(results.append)
    rt.settle()
    runs = len(results)
    [row] = q.get().result
    seen: list[object] = []
    row.author_cf_link.observe().subscribe(seen.append)
    rt.settle()
    with space.transact():
        alice.set("v1")
    rt.settle()
    assert len(results) == runs  # R52: the contents of linked cells do not re-run it
    assert seen == ["v0", "v1"]  # the decoded cell is an ordinary cell
    assert q.get().result[0].author_cf_link.get() == "v1"


# -- §5 Errors ----------------------------------------------------------------------------------


def test_decode_cf_link_of_none_is_none(rt: sc.Runtime, store: Path) -> None:
    assert sc.decode_cf_link(None, rt) is None
    for bad in ("", "x", "{}", "null", b"\xff"):
        with pytest.raises(sc.LinkDecodeError) as info:
            sc.decode_cf_link(bad, rt)
        assert isinstance(info.value, ValueError)
    assert not list(store.iterdir())


class _OwnBytes(bytes):
    def __bytes__(self) -> bytes:
        raise RuntimeError("this __bytes__ raises")


def test_decode_cf_link_takes_a_link_in_every_bytes_like_form(rt: sc.Runtime, store: Path) -> None:
    """A link's text as ``bytearray`` or ``memoryview`` (as buffers hand it over) was refused
    as "expected a link string": it names its cell as its ``bytes`` do, through
    ``decode_cf_link`` and ``rt.cell_from_link``; bytes-like values that are no link, and a
    released memoryview, are a ``LinkDecodeError``. Nothing is created (R7)."""
    c = rt.space("demo").cell("c", default=7)
    text = c.link_str().encode()
    for given in (
        bytearray(text),
        memoryview(text),
        memoryview(bytearray(text)),
        memoryview(b"  " + text)[2:],
        _OwnBytes(text),
    ):
        cell = sc.decode_cf_link(given, rt)
        assert cell == c and cell.get() == 7
        assert rt.cell_from_link(given) == c
    released = memoryview(text)
    released.release()
    for bad in (bytearray(b"\xff"), memoryview(b"{}"), bytearray(), released):
        with pytest.raises(sc.LinkDecodeError) as info:
            sc.decode_cf_link(bad, rt)
        assert isinstance(info.value, ValueError)
    assert "cannot be read" in str(info.value)
    assert not list(store.iterdir())


NAMED = [
    "GuardViolation",
    "SchemaError",
    "UnsupportedMigration",
    "LinkEncodeError",
    "LinkDecodeError",
    "NoTransaction",
    "ConflictError",
    "CrossSpaceWrite",
    "TooManyDatabases",
    "ReadAfterWriteUnsupported",
    "PendingValue",
    "ExecError",
    "MigrationError",
    "QueryError",
    "QueryTimeout",
    "Quarantined",
    "DiskSourceError",
    "ReadOnlySource",
    "NotImplementedSource",
    "ValueEncodeError",
    "ExecTimeout",
    "StoreChanged",
    "ClosedError",
]


@pytest.mark.parametrize("name", NAMED)
def test_every_named_error_exists_and_derives_from_the_root(name: str) -> None:
    cls = getattr(sc, name)
    assert isinstance(cls, type) and issubclass(cls, sc.SqliteCellsError)


def test_errors_about_values_are_type_and_value_errors() -> None:
    assert issubclass(sc.ValueEncodeError, TypeError)
    assert issubclass(sc.ValueEncodeError, ValueError)
    assert issubclass(sc.ExecTimeout, sc.ExecError)
    assert issubclass(sc.SqliteCellsError, Exception)


@pytest.mark.parametrize(
    "link",
    [
        Link(id="nope", space="s", scope="space"),
        Link(id="of:a\x00b", space="s", scope="space"),
        Link(id="of:a", space="s", scope="other"),  # type: ignore[arg-type]
        Link(id="of:a", space="s", scope="space", path=(True,)),
        Link(id="of:a", space="s", scope="space", path=(2**64,)),
        Link(id="of:a", space="s", scope="space", path=(object(),)),  # type: ignore[arg-type]
    ],
    ids=lambda link: re.sub(r" at 0x[0-9a-f]+", "", repr(link)),  # the same in every process
)
def test_a_link_object_that_is_not_well_formed_names_no_cell(
    rt: sc.Runtime, store: Path, link: Any
) -> None:
    """``rt.cell_from_link`` of a ``Link`` built by hand checks it as the text form is checked:
    a link no reader accepts names no cell, so no cell is written under an id R1 never derives."""
    with pytest.raises(sc.LinkDecodeError) as info:
        rt.cell_from_link(link)
    assert isinstance(info.value, ValueError)
    assert not list(store.iterdir())
