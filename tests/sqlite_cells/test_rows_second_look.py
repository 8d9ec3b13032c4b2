"""Typed rows (R43) and query states (R42) as a pattern author types them, against the values
SQLite really stores: column affinities, ``CURRENT_TIMESTAMP`` text, JSON text from
``json_group_array``, links behind aliases and in columns that hold no text."""

from __future__ import annotations

import dataclasses
import datetime
import enum
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Generic, Literal, NewType, Optional, TypedDict, TypeVar

import msgspec
import pytest

import sqlite_cells as sc
from sqlite_cells._runtime import Space

TABLES = {
    "t": sc.table(
        id="integer primary key",
        i="integer",
        r="real",
        s="text",
        b="blob",
        made="text not null default CURRENT_TIMESTAMP",
        who_cf_link=sc.cf_link(),
    ),
    "tags": sc.table(id="integer primary key", item="integer", tag="text"),
}
UUID_TEXT = "12345678-1234-5678-1234-567812345678"


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


@pytest.fixture
def db(space: Space) -> sc.SqliteDb:
    db = space.sqlite_database("rows", tables=TABLES)
    alice = space.cell("alice", default="A")
    with space.transact():
        # the integer column turns '1' into 1, the real column 2 into 2.0 (affinities)
        db.exec(
            "INSERT INTO t (id, i, r, s, b, who_cf_link) VALUES (1, '1', 2, 'red', x'0102', ?)",
            [alice],
        )
        db.exec("INSERT INTO tags (item, tag) VALUES (1, 'x'), (1, 'y'), (2, 'z')")
    return db


def _one(db: sc.SqliteDb, sql: str, **fields: Any) -> Any:
    row = msgspec.defstruct("Row", list(fields.items()))
    return db.read(sql, row=row)[0].v


def _fails(db: sc.SqliteDb, sql: str, row: type) -> str:
    with pytest.raises(sc.QueryError) as info:
        db.read(sql, row=row)
    assert isinstance(info.value, sc.SqliteCellsError)
    assert info.value.db_id == db.id
    return str(info.value)


@pytest.mark.parametrize(
    ("sql", "kind", "value"),
    [
        ("SELECT i AS v FROM t", int, 1),  # stored as 1 from the text '1'
        ("SELECT i AS v FROM t", float, 1.0),  # a float field takes an integer
        ("SELECT r AS v FROM t", float, 2.0),
        ("SELECT s AS v FROM t", str, "red"),
        ("SELECT b AS v FROM t", bytes, b"\x01\x02"),
        (
            "SELECT '2024-05-06 07:08:09' AS v",
            datetime.datetime,
            datetime.datetime(2024, 5, 6, 7, 8, 9),
        ),
        ("SELECT date('2024-05-06 07:08:09') AS v", datetime.date, datetime.date(2024, 5, 6)),
        ("SELECT '1.50' AS v", Decimal, Decimal("1.50")),
        ("SELECT r AS v FROM t", Decimal, Decimal("2.0")),
        (f"SELECT '{UUID_TEXT}' AS v", uuid.UUID, uuid.UUID(UUID_TEXT)),
        ("SELECT s AS v FROM t", Color, Color.RED),
        ("SELECT 2 AS v", Level, Level.HIGH),
        ("SELECT s AS v FROM t", Literal["red", "green"], "red"),
        ("SELECT NULL AS v", int | None, None),
        ("SELECT b AS v FROM t", Any, b"\x01\x02"),
        ("SELECT r AS v FROM t", object, 2.0),
    ],
    ids=lambda v: v if isinstance(v, str) else getattr(v, "__name__", repr(v)),
)
def test_fields_take_what_sqlite_stores_for_them(
    db: sc.SqliteDb, sql: str, kind: Any, value: Any
) -> None:
    got = _one(db, sql, v=kind)
    assert got == value and type(got) is type(value)


@pytest.mark.parametrize("kind", [bytes, bytes | None, bytearray])
def test_a_bytes_field_refuses_text_even_text_that_reads_as_base64(
    db: sc.SqliteDb, kind: Any
) -> None:
    row = msgspec.defstruct("Row", [("v", kind)])
    for sql in ("SELECT 'AQI=' AS v", "SELECT 'abcd' AS v", "SELECT s AS v FROM t"):
        text = _fails(db, sql, row)
        assert "column 'v'" in text and "Expected `bytes`, got `str`" in text
        assert "CAST(v AS BLOB)" in text
    assert _one(db, "SELECT CAST('abcd' AS BLOB) AS v", v=kind) == b"abcd"
    assert _one(db, "SELECT x'' AS v", v=kind) == b""


def _fails_read_and_query(db: sc.SqliteDb, sql: str, row: type) -> str:
    """The error ``db.read`` raises, checked to be the one ``db.query`` reports."""
    text = _fails(db, sql, row)
    query = db.query(sql, row=row)
    db.space.runtime.settle(timeout=10)
    state = query.get()
    assert state.result is None and isinstance(state.error, sc.QueryError)
    assert str(state.error) == text
    return text


class Blobbed(msgspec.Struct):
    data: bytes


Blob = NewType("Blob", bytes)


@pytest.mark.parametrize(
    "kind",
    [bytes | int, Optional[bytes | int], Blob, Blob | None, Annotated[bytes, msgspec.Meta()]],  # noqa: UP045
    ids=["bytes|int", "Optional[bytes|int]", "NewType", "NewType|None", "Annotated"],
)
def test_text_is_refused_wherever_the_field_type_holds_bytes(db: sc.SqliteDb, kind: Any) -> None:
    """Only plain ``bytes`` (``| None``) refused text: in a union or through a NewType, msgspec
    read 'hello+world=' as base64, b'\x85\xe9e\xa3\xec(\xaeW', silently (R43)."""
    row = msgspec.defstruct("Row", [("v", kind)])
    text = _fails_read_and_query(db, "SELECT 'hello+world=' AS v", row)
    assert "column 'v' does not fit field Row.v" in text and "got `str`" in text
    assert "CAST(v AS BLOB)" in text
    assert _one(db, "SELECT x'0102' AS v", v=kind) == b"\x01\x02"


@pytest.mark.parametrize(
    ("sql", "kind", "where"),
    [
        ("SELECT json_array('hello+world=') AS v", list[bytes], "(at v[0])"),
        ("SELECT json_array(1, 'hello+world=') AS v", list[bytes | int], "(at v[1])"),
        ("SELECT json_object('data', 'hello+world=') AS v", Blobbed, "(at v.data)"),
        ("SELECT json_object('k', 'hello+world=') AS v", dict[str, Blob], "(at v[...])"),
        ("SELECT json_object('hello+world=', 1) AS v", dict[bytes, int], "(at a key of v)"),
    ],
    ids=["list", "list-of-union", "nested-record", "dict-value", "dict-key"],
)
def test_a_json_string_is_never_read_as_bytes(
    db: sc.SqliteDb, sql: str, kind: Any, where: str
) -> None:
    """JSON holds no bytes: msgspec read a JSON string into a bytes type inside the value as
    base64, silently (R43)."""
    row = msgspec.defstruct("Row", [("v", kind)])
    text = _fails_read_and_query(db, sql, row)
    assert "column 'v' does not fit field Row.v" in text and "got `str`" in text
    assert where in text and "JSON holds no bytes" in text
    assert _one(db, "SELECT json_array(1, NULL) AS v", v=list[bytes | int | None]) == [1, None]


def test_current_timestamp_text_reads_as_a_datetime(db: sc.SqliteDb) -> None:
    got = _one(db, "SELECT made AS v FROM t", v=datetime.datetime)
    assert abs(got - datetime.datetime.now(datetime.UTC).replace(tzinfo=None)) < datetime.timedelta(
        hours=1
    )


@pytest.mark.parametrize(
    ("sql", "kind", "expected"),
    [
        ("SELECT r AS v FROM t", int, "Expected `int`, got `float`"),
        ("SELECT s AS v FROM t", int, "Expected `int`, got `str`"),  # no '1' -> 1
        ("SELECT i AS v FROM t", str, "Expected `str`, got `int`"),
        ("SELECT NULL AS v", int, "Expected `int`, got `null`"),
        ("SELECT 'blue' AS v", Color, "Invalid enum value 'blue'"),
        ("SELECT 'blue' AS v", Literal["red", "green"], "Invalid enum value 'blue'"),
        ("SELECT 'yesterday' AS v", datetime.datetime, "datetime"),
        ("SELECT 'not-a-uuid' AS v", uuid.UUID, "UUID"),
    ],
)
def test_a_value_that_does_not_fit_fails_naming_the_column(
    db: sc.SqliteDb, sql: str, kind: Any, expected: str
) -> None:
    row = msgspec.defstruct("Row", [("v", kind)])
    text = _fails(db, sql, row)
    assert "column 'v'" in text and expected in text and "Row.v" in text


# Containers: SQLite stores arrays and objects as JSON text (decided, docs/decisions.md).


class Tagged(msgspec.Struct):
    item: int
    tags: list[str]


class Point(msgspec.Struct):
    x: int
    y: int


def test_a_list_field_takes_json_group_array(db: sc.SqliteDb) -> None:
    rows = db.read(
        "SELECT item, json_group_array(tag) AS tags FROM "
        "(SELECT item, tag FROM tags ORDER BY tag) GROUP BY item ORDER BY item",
        row=Tagged,
    )
    assert rows == [Tagged(1, ["x", "y"]), Tagged(2, ["z"])]


def test_json_text_nested_too_deeply_for_a_list_field_names_the_column(db: sc.SqliteDb) -> None:
    """Errors, R43: msgspec's ``RecursionError`` on JSON text nested thousands deep reached
    the caller of ``db.read`` raw; it is the ``QueryError`` naming the column, as any value
    that does not fit its field."""
    deep = "[" * 5000 + "]" * 5000
    with pytest.raises(sc.QueryError) as raised:
        db.read("SELECT 1 AS item, ? AS tags", [deep], row=Tagged)
    assert "column 'tags' does not fit field Tagged.tags" in str(raised.value)
    assert "nested too deeply" in str(raised.value)


class TagsOrCount(msgspec.Struct):
    tags: list[str] | int
    at: list[int] | Point | None
    flag: list[int] | bool


def test_a_union_of_containers_and_numbers_takes_json_text(db: sc.SqliteDb) -> None:
    """R43: a field typed a union of a container and another type that takes no text (a
    number, another container) never read SQLite's JSON text: every row failed with advice to
    cast it in SQL, which no cast satisfies. Such a union reads JSON text as a lone container
    does (and 0 and 1 as a bool among it); text that is not JSON is refused advising JSON of
    that shape; a union with str keeps the text."""
    sql = "SELECT {} AS tags, {} AS at, {} AS flag"
    rows = db.read(
        sql.format("json_array('a', 'b')", "json_object('x', 1, 'y', 2)", 1), row=TagsOrCount
    )
    assert rows == [TagsOrCount(["a", "b"], Point(1, 2), True)]
    rows = db.read(sql.format(7, "json_array(3)", "json_array(0)"), row=TagsOrCount)
    assert rows == [TagsOrCount(7, [3], [0])]
    assert db.read(sql.format(7, "NULL", 0), row=TagsOrCount) == [TagsOrCount(7, None, False)]
    text = _fails(db, sql.format("'a, b'", "NULL", 0), TagsOrCount)
    assert "column 'tags' does not fit field TagsOrCount.tags: Expected `int | array`" in text
    assert "json_group_array" in text and "cast it in SQL" not in text
    # Text of a JSON scalar is no array: the number and the bool among the union take no text.
    for scalar in ("'5'", "' 7'", "'true'", "'null'"):
        text = _fails(db, sql.format(scalar, "NULL", 0), TagsOrCount)
        assert "column 'tags' does not fit field TagsOrCount.tags: Expected `int | array`" in text
    text = _fails(db, sql.format(7, "NULL", "'1'"), TagsOrCount)
    assert "column 'flag' does not fit field TagsOrCount.flag" in text

    @dataclasses.dataclass
    class Either:
        tags: list[str] | str

    assert db.read("SELECT json_array('a') AS tags", row=Either) == [Either('["a"]')]


def test_json_text_that_does_not_decode_says_why(db: sc.SqliteDb, space: Space) -> None:
    """R43: JSON text msgspec cannot decode (SQLite's infinity, 9.0e+999; a lone surrogate
    escape; text cut short) was reported as text of the wrong shape, advising
    json_group_array, which made it. It is refused as JSON text that does not decode, saying
    why and what to select instead."""
    with space.transact():
        db.exec("INSERT INTO t (id, r) VALUES (2, 1e999), (3, 2.5)")

    class Reals(msgspec.Struct):
        xs: list[float]

    text = _fails(db, "SELECT json_group_array(r) AS xs FROM t WHERE id > 1", Reals)
    assert text.startswith(f"database {db.id}: column 'xs' does not fit field Reals.xs: ")
    assert "got `JSON text that does not decode (Number out of range - at $[0]: SQLite " in text
    assert "writes an infinity as 9.0e+999" in text and "(json_group_array" not in text
    assert "CASE WHEN abs(v) = 9e999 THEN NULL ELSE v END" in text
    text = _fails(db, """SELECT '["\\ud800", "b"]' AS tags, 1 AS item""", Tagged)
    assert "got `JSON text that does not decode (the escape \\ud800 is half of a surrogate" in text
    assert "select valid JSON in tags, or type the field str" in text
    text = _fails(db, "SELECT '[1, ' AS tags, 1 AS item", Tagged)
    assert "got `JSON text that does not decode (Input data was truncated)`" in text
    assert db.read("""SELECT '["\\ud800\\udc00"]' AS tags, 1 AS item""", row=Tagged) == [
        Tagged(1, ["\U00010000"])
    ]


@dataclasses.dataclass
class Shaped:
    id: int
    at: Point | None
    extra: dict[str, int]


def test_objects_and_nested_row_types_take_json_objects(db: sc.SqliteDb) -> None:
    rows = db.read(
        "SELECT id, json_object('x', 1, 'y', 2) AS at, '{\"k\": 3}' AS extra FROM t", row=Shaped
    )
    assert rows == [Shaped(1, Point(1, 2), {"k": 3})]
    assert db.read("SELECT id, NULL AS at, '{}' AS extra FROM t", row=Shaped) == [
        Shaped(1, None, {})
    ]


def test_json_that_does_not_fit_still_fails_naming_the_column(db: sc.SqliteDb) -> None:
    text = _fails(db, "SELECT 1 AS item, '[\"1\", 2]' AS tags", Tagged)  # list[str]: 2
    assert "column 'tags'" in text and "Expected `str`, got `int`" in text
    text = _fails(db, "SELECT 1 AS item, 'x, y' AS tags", Tagged)  # not JSON
    assert "column 'tags'" in text and "Expected `array`, got `str`" in text
    assert "json_group_array" in text and "cast it in SQL" not in text
    assert db.read("SELECT 1 AS item, '[\"a\"]' AS tags", row=None) == [
        {"item": 1, "tags": '["a"]'}
    ]  # dict rows keep the text


def test_json_that_lacks_or_mistypes_a_nested_field_names_the_column_and_the_path(
    db: sc.SqliteDb,
) -> None:
    """A JSON value missing a field of its nested row type was "cannot build … name the
    columns like the fields (use AS aliases)", though the column is named like the field."""
    text = _fails(db, "SELECT id, '{\"x\": 1}' AS at, '{}' AS extra FROM t", Shaped)
    assert "column 'at' does not fit field Shaped.at" in text
    assert "Object missing required field `y`" in text and "AS aliases" not in text
    assert "json_object" in text
    text = _fails(db, 'SELECT id, \'{"x": 1, "y": "a"}\' AS at, \'{}\' AS extra FROM t', Shaped)
    assert "column 'at'" in text and "Expected `int`, got `str` (at at.y)" in text
    # A column the row lacks is still told to be named like the field.
    text = _fails(db, "SELECT id, '{}' AS extra FROM t", Tagged)
    assert "AS aliases" in text


@pytest.mark.parametrize(
    ("sql", "kind", "expected"),
    [
        ("SELECT json_object('1', 1) AS v", dict[int, int], "Expected `int`, got `str`"),
        ("SELECT json_object('b', 1) AS v", dict[Literal["a"], int], "Invalid enum value 'b'"),
    ],
)
def test_a_json_key_that_does_not_fit_names_the_column(
    db: sc.SqliteDb, sql: str, kind: Any, expected: str
) -> None:
    """A bad key was "cannot build Row from columns ['v']: … - at `key` in `$[0].v`; name the
    columns like the fields (use AS aliases)" while a bad value named its column (R43)."""
    row = msgspec.defstruct("Row", [("v", kind)])
    text = _fails_read_and_query(db, sql, row)
    assert f"column 'v' does not fit field Row.v: {expected} (at a key of v)" in text
    assert "keys are text" in text and "AS aliases" not in text
    text = _fails(
        db,
        "SELECT json_object('x', json_object('1', 2)) AS v",
        msgspec.defstruct("Row", [("v", dict[str, dict[int, int]])]),
    )
    assert "(at a key of v[...])" in text


def test_a_text_field_keeps_json_text(db: sc.SqliteDb) -> None:
    assert _one(db, "SELECT '[1, 2]' AS v", v=str) == "[1, 2]"
    assert _one(db, "SELECT '[1, 2]' AS v", v=Any) == "[1, 2]"


# Shapes of row types


def test_defaults_fill_fields_the_select_leaves_out(db: sc.SqliteDb) -> None:
    class WithDefault(msgspec.Struct):
        id: int
        note: str = "none"
        seen: list[int] = msgspec.field(default_factory=list)

    @dataclasses.dataclass
    class DataDefault:
        id: int
        seen: list[int] = dataclasses.field(default_factory=list)

    assert db.read("SELECT id FROM t", row=WithDefault) == [WithDefault(1, "none", [])]
    assert db.read("SELECT id FROM t", row=DataDefault) == [DataDefault(1, [])]
    a, b = db.read("SELECT id FROM t UNION ALL SELECT 2", row=DataDefault)
    assert a.seen is not b.seen


class Loose(msgspec.Struct):
    id: int


class Strict(msgspec.Struct, forbid_unknown_fields=True):
    id: int


def test_extra_columns_are_ignored_unless_the_row_type_forbids_them(db: sc.SqliteDb) -> None:
    assert db.read("SELECT id, s, b FROM t", row=Loose) == [Loose(1)]
    text = _fails(db, "SELECT id, s FROM t", Strict)
    assert "unknown field `s`" in text and "Strict" in text
    assert db.read("SELECT id FROM t", row=Strict) == [Strict(1)]


class Renamed(msgspec.Struct, rename="camel", frozen=True, kw_only=True):
    row_id: int
    author: sc.Cell | None = None


class Pair(msgspec.Struct, array_like=True):
    id: int
    s: str


def test_renamed_kw_only_frozen_and_array_like_structs(db: sc.SqliteDb, space: Space) -> None:
    rows = db.read("SELECT id AS rowId, who_cf_link AS author FROM t", row=Renamed)
    assert rows == [Renamed(row_id=1, author=space.cell("alice"))]
    with pytest.raises(AttributeError):
        rows[0].row_id = 2  # type: ignore[misc]
    # array-like encodes as an array; rows still have named columns, in any order
    assert db.read("SELECT s, id FROM t", row=Pair) == [Pair(1, "red")]
    text = _fails(db, "SELECT id, i AS s FROM t", Pair)
    assert "column 's'" in text and "Expected `str`, got `int`" in text
    # a renamed field is named as the field, its column as the column
    text = _fails(db, "SELECT s AS rowId FROM t", Renamed)
    assert "column 'rowId' does not fit field Renamed.row_id" in text
    blob = msgspec.defstruct("Blob", [("data", bytes)], rename={"data": "b"})
    text = _fails(db, "SELECT s AS b FROM t", blob)
    assert "column 'b' does not fit field Blob.data" in text and "CAST(b AS BLOB)" in text


@dataclasses.dataclass
class Positive:
    id: int

    def __post_init__(self) -> None:
        if self.id > 0:
            raise ValueError(f"id {self.id} is positive")


class PositiveStruct(msgspec.Struct):
    id: int

    def __post_init__(self) -> None:
        if self.id > 0:
            raise TypeError(f"id {self.id} is positive")


@pytest.mark.parametrize(
    ("row", "raised"), [(Positive, "ValueError"), (PositiveStruct, "TypeError")]
)
def test_a_post_init_raising_value_or_type_error_names_the_row_type(
    rt: sc.Runtime, db: sc.SqliteDb, row: type, raised: str
) -> None:
    text = _fails(db, "SELECT id FROM t", row)
    assert f"building a {row.__name__} row raised {raised}: id 1 is positive" in text
    assert "AS aliases" not in text  # the columns are named right: no advice to rename them
    q = db.query("SELECT id FROM t", row=row)
    rt.settle()
    state = q.get()
    assert isinstance(state.error, sc.QueryError) and state.result is None
    assert f"{raised}: id 1 is positive" in str(state.error)


class Partial(TypedDict, total=False):
    id: int
    s: str


def test_a_typeddict_not_total_takes_the_columns_there_are(db: sc.SqliteDb) -> None:
    assert db.read("SELECT id FROM t", row=Partial) == [{"id": 1}]
    assert db.read("SELECT id, s FROM t", row=Partial) == [{"id": 1, "s": "red"}]


# Cell fields


class Linked(msgspec.Struct):
    id: int
    who: sc.Cell | None


def test_cell_fields_over_columns_that_hold_no_link_text(db: sc.SqliteDb, space: Space) -> None:
    # an integer or a blob is no link: None, and the query does not fail
    assert db.read("SELECT id, i AS who FROM t", row=Linked) == [Linked(1, None)]
    assert db.read("SELECT id, b AS who FROM t", row=Linked) == [Linked(1, None)]
    assert db.read("SELECT id, r AS who FROM t", row=Linked) == [Linked(1, None)]
    got = db.read("SELECT id, who_cf_link AS who FROM t", row=Linked)[0].who
    assert got == space.cell("alice") and got is not None and got.get() == "A"


class _Inner(msgspec.Struct):
    who: sc.Cell | None


@dataclasses.dataclass
class _InnerData:
    n: int
    who: sc.Cell


class _InnerDict(TypedDict):
    who: sc.Cell | None


class _Deeper(msgspec.Struct):
    inner: list[_Inner]


@pytest.mark.parametrize(
    "kind",
    [
        list[sc.Cell],
        dict[str, sc.Cell | None],
        list[NewType("_Who", sc.Cell)],  # (a NewType of Cell inside another type too)
        tuple[sc.Cell, int],
        _Inner,  # a record type whose field is a Cell: a column holds it as JSON text
        _InnerData | None,
        _InnerDict,
        _Deeper,
    ],
)
def test_a_cell_inside_another_type_is_refused_at_the_call(db: sc.SqliteDb, kind: Any) -> None:
    row = msgspec.defstruct("Many", [("who", kind)])
    for call in (
        lambda: db.read("SELECT who_cf_link AS who FROM t", row=row),
        lambda: db.query("SELECT who_cf_link AS who FROM t", row=row),
    ):
        with pytest.raises(TypeError) as info:
            call()
        assert isinstance(info.value, sc.SqliteCellsError)
        assert type(info.value).__name__ == "InvalidArgument"
        assert "field 'who'" in str(info.value) and "a Cell inside another type" in str(info.value)


_Author = NewType("_Author", sc.Cell)
_Handle = NewType("_Handle", sc.SqliteDb)
_Of = NewType("_Of", _Author)  # (a NewType of a NewType of Cell)


@pytest.mark.parametrize("kind", [sc.SqliteDb, sc.SqliteDb | None, _Handle, _Handle | None])
def test_a_field_typed_as_a_kind_of_cell_is_refused_at_the_call(db: sc.SqliteDb, kind: Any) -> None:
    """A link column reads back as a plain `Cell` (R43), whatever it names: a field typed
    `sc.SqliteDb` was taken for a link field and then failed every result — a NULL too, with
    a message naming the decoder's private placeholder. A NewType of one is named as such."""
    row = msgspec.defstruct("Handles", [("who", kind)])
    for call in (
        lambda: db.read("SELECT who_cf_link AS who FROM t", row=row),
        lambda: db.query("SELECT who_cf_link AS who FROM t", row=row),
    ):
        with pytest.raises(TypeError) as info:
            call()
        assert type(info.value).__name__ == "InvalidArgument"
        assert "field 'who' is typed " in str(info.value)
        assert "type the field sc.Cell or sc.Cell | None" in str(info.value)
        if kind in (_Handle, _Handle | None):
            assert "(_Handle is a NewType of SqliteDb)" in str(info.value)


@pytest.mark.parametrize("kind", [_Author, _Author | None, _Of | None])
@pytest.mark.parametrize("record", ["struct", "dataclass"])
def test_a_field_typed_as_a_newtype_of_cell_is_a_link_field(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb, kind: Any, record: str
) -> None:
    """R43: a NewType of `Cell` is `Cell` at run time, so a field typed with it is a link
    field as `sc.Cell` is — a link decodes to its cell, NULL and text that is not a link to
    None — on reads and live queries. It was refused at the call, as a kind of cell that
    is not one, with a message calling the field `Optional[_Author]` and naming database
    handles."""
    fields = [("id", int), ("who", kind)]
    if record == "struct":
        row: Any = msgspec.defstruct("ByAuthor", fields)
    else:
        row = dataclasses.make_dataclass("ByAuthor", fields)
    sql = (
        "SELECT id, who_cf_link AS who FROM t "
        "UNION ALL SELECT 2, NULL UNION ALL SELECT 3, 'not a link' ORDER BY id"
    )
    expected = [(1, space.cell("alice").link_str()), (2, None), (3, None)]
    rows = db.read(sql, row=row)
    assert [(r.id, r.who and r.who.link_str()) for r in rows] == expected
    assert type(rows[0].who) is sc.Cell and rows[0].who.get() == "A"
    q = db.query(sql, row=row)
    rt.settle()
    state = q.get()
    assert state.error is None
    assert [(r.id, r.who and r.who.link_str()) for r in state.result] == expected


def test_a_link_to_a_space_the_store_does_not_hold_creates_nothing(
    rt: sc.Runtime, db: sc.SqliteDb, store: Path
) -> None:
    elsewhere = rt.space("elsewhere").cell("far").link_str()
    before = sorted(p.name for p in store.iterdir())
    rows = db.read("SELECT 1 AS id, ? AS who", params=[elsewhere], row=Linked)
    assert rows[0].who is not None and rows[0].who.get() is None
    assert sorted(p.name for p in store.iterdir()) == before


# Query states (R42)


class Value(msgspec.Struct):
    v: Any


def test_a_re_run_keeps_the_previous_result_visible_while_pending(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb
) -> None:
    which = space.cell("which", default=1)
    q: sc.Query[Value] = db.query("SELECT s AS v FROM t WHERE id = ?", params=[which], row=Value)
    seen: list[sc.QueryState[Value]] = []
    q.observe().subscribe(seen.append)
    rt.settle()
    # (The first run starts as the query is made: it may land before the subscription.)
    first = sc.QueryState(False, [Value("red")], None, 1)
    assert seen[0] == first or (seen[0].pending is True and seen[0].result is None)
    state: sc.QueryState[Value] = q.get()
    assert state == sc.QueryState(False, [Value("red")], None, 1)
    with space.transact() as tx:
        db.exec("INSERT INTO t (id, s) VALUES (2, 'two')")
        which.set(2)
    rt.settle()
    after = seen[seen.index(sc.QueryState(False, [Value("red")], None, 1)) + 1 :]
    assert after[-1] == sc.QueryState(False, [Value("two")], None, tx.seq)
    for state in after[:-1]:  # while pending, the previous rows stay visible
        assert state.pending is True and state.result == [Value("red")]


def test_seq_is_the_watermark_read_with_the_rows(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb
) -> None:
    q = db.query("SELECT count(*) AS n FROM tags")
    rt.settle()
    with space.transact() as tx:
        space.cell("other").set(1)  # a commit that writes no database
    rt.settle()
    assert tx.seq is not None and q.get().seq == 1  # the file's watermark, not the space's seq
    with space.transact() as tx2:
        db.exec("INSERT INTO tags (item, tag) VALUES (3, 'w')")
    rt.settle()
    assert q.get() == sc.QueryState(False, [{"n": 4}], None, tx2.seq)


def test_a_failing_query_recovers_when_its_cause_goes(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb
) -> None:
    class Typed(msgspec.Struct):
        v: int

    q = db.query("SELECT b AS v FROM t ORDER BY id", row=Typed)
    seen: list[sc.QueryState[Typed]] = []
    q.observe().subscribe(seen.append)
    rt.settle()
    first = q.get()
    assert first.pending is False and first.result is None and first.seq == 1
    assert isinstance(first.error, sc.QueryError) and "column 'v'" in str(first.error)
    assert "Expected `int`, got `bytes`" in str(first.error)
    with space.transact() as tx:
        db.exec("UPDATE t SET b = 5")
    rt.settle()
    assert q.get() == sc.QueryState(False, [Typed(5)], None, tx.seq)
    with space.transact() as tx:
        db.exec("UPDATE t SET b = 'five'")
    rt.settle()
    again = q.get()
    assert again.result is None and isinstance(again.error, sc.QueryError)
    assert again.seq == tx.seq and not again.pending


def test_int_real_and_true_rows_are_told_apart(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb
) -> None:
    q = db.query("SELECT b AS v FROM t WHERE id = 1")  # a blob column keeps what is given
    seen: list[Any] = []
    q.observe().subscribe(lambda s: seen.append(s.result))
    rt.settle()
    for value in (1, 1.0, True, 1):
        with space.transact():
            db.exec("UPDATE t SET b = ? WHERE id = 1", [value])
        rt.settle()
    results = [r for r in seen if r is not None]
    kinds = [type(r[0]["v"]) for r in results]
    # True binds as the integer 1: no change after it; 1 -> 1.0 -> 1 each delivered
    assert kinds == [bytes, int, float, int]


# Generic row types

T = TypeVar("T")


class Box(msgspec.Struct, Generic[T], frozen=True):
    id: int
    v: T


@dataclasses.dataclass
class DataBox(Generic[T]):
    id: int
    v: T
    who: sc.Cell

    def __post_init__(self) -> None:
        assert self.who is None or isinstance(self.who, sc.Cell)


class LinkBox(msgspec.Struct, Generic[T]):
    v: list[T]
    who: sc.Cell
    flag: T | None = None


def test_generic_row_types_take_their_type_arguments(
    rt: sc.Runtime, db: sc.SqliteDb, space: Space
) -> None:
    assert db.read("SELECT id, i AS v FROM t", row=Box[int]) == [Box(1, 1)]
    assert db.read("SELECT id, s AS v FROM t", row=Box[str]) == [Box(1, "red")]
    text = _fails(db, "SELECT id, s AS v FROM t", Box[int])
    assert "column 'v'" in text and "Expected `int`, got `str`" in text and "Box.v" in text
    rows = db.read("SELECT id, r AS v, 'no link' AS who FROM t", row=DataBox[float])
    assert rows == [DataBox(1, 2.0, None)]  # type: ignore[arg-type]
    got = db.read("SELECT '[true, false]' AS v, NULL AS who, 1 AS flag", row=LinkBox[bool])
    assert got == [LinkBox([True, False], None, True)]  # type: ignore[arg-type]
    q: sc.Query[Box[int]] = db.query("SELECT id, i AS v FROM t", row=Box[int])
    rt.settle()
    assert q.get() == sc.QueryState(False, [Box(1, 1)], None, 1)


def test_a_row_type_with_fields_named_as_python_keywords_reads(
    db: sc.SqliteDb, space: Space
) -> None:
    """R43: a Struct made with ``msgspec.defstruct`` may name its fields ``from`` or
    ``select`` (msgspec converts to it); Python's own ValueError ("'from' is not a valid
    parameter name", looking for a signature) escaped instead of the rows."""
    row = msgspec.defstruct("Keywords", [("from", sc.Cell | None), ("select", int)])
    (found,) = db.read('SELECT who_cf_link AS "from", id AS "select" FROM t', row=row)
    assert msgspec.structs.asdict(found) == {"from": space.cell("alice"), "select": 1}
