"""A row type that fails (R42, R43, Errors): its own code raising while a row is built is a
:class:`QueryError` naming it, from ``db.read`` and in a live query's ``error`` — never an error
raised into the scheduler, so the database's other live queries keep updating; a row type rows
cannot be converted to, or whose annotations cannot be resolved, is refused at the call; a Cell
field holding NULL or an invalid link is ``None`` when the row type's ``__post_init__`` runs."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any, TypedDict

import msgspec
import pytest

import sqlite_cells as sc
from sqlite_cells._runtime import Space

TABLES = {"t": sc.table(id="integer primary key", v="integer", who_cf_link=sc.cf_link())}


class Refused(LookupError):
    """An exception of the row type's own, of no family msgspec knows."""


@dataclasses.dataclass
class NonNegative:
    v: int

    def __post_init__(self) -> None:
        assert self.v >= 0, "v must be >= 0"


class Looked(msgspec.Struct):
    v: int

    def __post_init__(self) -> None:
        if self.v < 0:
            raise Refused(f"no row for {self.v}")


@pytest.fixture
def space(rt: sc.Runtime) -> Space:
    return rt.space("demo")


@pytest.fixture
def db(rt: sc.Runtime, space: Space) -> sc.SqliteDb:
    db = space.sqlite_database("x", tables=TABLES)
    with space.transact():
        db.exec("INSERT INTO t (id, v) VALUES (1, 1)")
    rt.settle()
    return db


def write(rt: sc.Runtime, space: Space, db: sc.SqliteDb, sql: str) -> None:
    with space.transact():
        db.exec(sql)
    rt.settle()


# -- the row type's own code raising (R42, R43) ------------------------------------------------


@pytest.mark.parametrize(("row", "raised"), [(NonNegative, "AssertionError"), (Looked, "Refused")])
def test_a_row_type_raising_while_built_is_a_query_error_naming_it(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb, row: type, raised: str
) -> None:
    write(rt, space, db, "INSERT INTO t (id, v) VALUES (2, -1)")
    with pytest.raises(sc.QueryError) as caught:
        db.read("SELECT v FROM t ORDER BY id", row=row)
    message = str(caught.value)
    assert f"building a {row.__name__} row raised {raised}" in message
    assert "select only the rows it accepts" in message
    assert caught.value.db_id == db.id
    assert db.read("SELECT v FROM t WHERE v >= 0", row=row) == [row(1)]


@pytest.mark.parametrize("row", [NonNegative, Looked])
def test_a_live_query_whose_row_type_raises_has_an_error_and_recovers(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb, row: type
) -> None:
    q = db.query("SELECT v FROM t ORDER BY id", row=row)
    rt.settle()
    assert q.get().result == [row(1)]
    write(rt, space, db, "INSERT INTO t (id, v) VALUES (2, -1)")
    state = q.get()
    assert isinstance(state.error, sc.QueryError) and state.result is None
    assert state.seq == 2 and not state.pending
    assert row.__name__ in str(state.error)
    write(rt, space, db, "DELETE FROM t WHERE id = 2")
    assert q.get().error is None and q.get().result == [row(1)]


@dataclasses.dataclass
class Verbose:
    v: int

    def __post_init__(self) -> None:
        raise ValueError("no row " + "x" * 1_000_000)


def test_a_row_type_raising_a_huge_text_is_quoted_by_its_beginning_and_length(
    rt: sc.Runtime, db: sc.SqliteDb
) -> None:
    with pytest.raises(sc.QueryError) as caught:
        db.read("SELECT v FROM t", row=Verbose)
    message = str(caught.value)
    assert "building a Verbose row raised ValueError: no row xxx" in message
    assert "… (1,000,007 characters)" in message
    assert "select only the rows it accepts" in message
    assert len(message) < 2_000
    assert "x" * 1_000_000 in str(caught.value.__cause__)  # the whole text stays there
    q = db.query("SELECT v FROM t", row=Verbose)
    rt.settle()
    state = q.get()
    assert isinstance(state.error, sc.QueryError) and state.result is None
    assert "… (1,000,007 characters)" in str(state.error)
    assert len(repr(state)) < 2_000 and len(repr(state.error)) < 2_000


def test_a_row_type_raising_never_stops_the_other_live_queries(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb
) -> None:
    typed = db.query("SELECT v FROM t ORDER BY id", row=NonNegative)
    count = db.query("SELECT count(*) AS n FROM t")
    values = db.query("SELECT v FROM t ORDER BY id")
    rt.settle()
    write(rt, space, db, "INSERT INTO t (id, v) VALUES (2, -1)")
    assert isinstance(typed.get().error, sc.QueryError)
    assert count.get().result == [{"n": 2}]
    write(rt, space, db, "DELETE FROM t WHERE id = 2")
    for i in (3, 4, 5):
        write(rt, space, db, f"INSERT INTO t (id, v) VALUES ({i}, {i})")
    assert typed.get().error is None
    assert typed.get().result == [NonNegative(v) for v in (1, 3, 4, 5)]
    assert count.get().result == [{"n": 4}] and count.get().seq == 6
    assert values.get().result == [{"v": v} for v in (1, 3, 4, 5)]


# -- row types refused at the call (R43, Errors) -----------------------------------------------


class TextOrBlob(msgspec.Struct):
    v: str | bytes


class CellOrInt(msgspec.Struct):
    who_cf_link: sc.Cell | int


@dataclasses.dataclass
class DataCellOrInt:
    who_cf_link: sc.Cell | int


class DictTextOrBlob(TypedDict):
    v: str | bytes


class BoundOnOptional(msgspec.Struct):  # (a bound that msgspec takes on int, not on int | None)
    id: int
    v: Annotated[int | None, msgspec.Meta(ge=0)]


@pytest.mark.parametrize(
    ("row", "field", "shown"),
    [
        (TextOrBlob, "v", "str | bytes"),
        (CellOrInt, "who_cf_link", "Cell | int"),
        (DataCellOrInt, "who_cf_link", "Cell | int"),
        (DictTextOrBlob, "v", "str | bytes"),
        (BoundOnOptional, "v", "Annotated[int | None, Meta(ge=0)]"),
    ],
)
def test_a_row_type_rows_cannot_be_converted_to_is_refused_at_the_call(
    rt: sc.Runtime, db: sc.SqliteDb, row: type, field: str, shown: str
) -> None:
    for call in (db.read, db.query):
        with pytest.raises(sc.SqliteCellsError) as caught:
            call("SELECT v, who_cf_link FROM t", row=row)
        error = caught.value
        assert type(error).__name__ == "InvalidArgument" and isinstance(error, TypeError)
        assert f"row={row.__name__}: field {field!r} is typed {shown}" in str(error)
        assert "Any takes any value" in str(error)
    assert rt.settle(timeout=5)
    assert db.query("SELECT count(*) AS n FROM t").get() is not None


def test_a_row_type_whose_annotations_cannot_be_resolved_is_refused_at_the_call(
    db: sc.SqliteDb,
) -> None:
    class Extra(msgspec.Struct):
        x: int

    @dataclasses.dataclass
    class Row:  # (annotations are strings here: Extra is local, not found by name)
        id: int
        extra: Extra | None = None

    for call in (db.read, db.query):
        with pytest.raises(sc.SqliteCellsError) as caught:
            call("SELECT id FROM t", row=Row)
        error = caught.value
        assert type(error).__name__ == "InvalidArgument" and isinstance(error, TypeError)
        assert "row=Row: its field annotations cannot be resolved (NameError" in str(error)
        assert "define the types they name at module level" in str(error)


@dataclasses.dataclass
class TypedLink:  # (annotations are strings here: sc.Cell[int] is evaluated by the read)
    id: int
    who_cf_link: sc.Cell[int] | None  # type: ignore[type-arg]  # (the mistake looked at)


def test_a_row_type_with_a_cell_field_given_a_type_argument_says_cell_is_not_generic(
    db: sc.SqliteDb,
) -> None:
    """A field typed ``sc.Cell[int]`` cannot be resolved (Cell is not generic): the advice was
    to define the types at module level, which they were."""
    for call in (db.read, db.query):
        with pytest.raises(sc.SqliteCellsError) as caught:
            call("SELECT id, who_cf_link FROM t", row=TypedLink)
        error = caught.value
        assert type(error).__name__ == "InvalidArgument" and isinstance(error, TypeError)
        message = str(error)
        assert "row=TypedLink: its field annotations cannot be resolved (TypeError" in message
        assert "sc.Cell is not generic" in message
        assert "annotate a link field as sc.Cell (or sc.Cell | None)" in message
        assert "module level" not in message
    assert db.read("SELECT id, who_cf_link FROM t") == [{"id": 1, "who_cf_link": None}]
    assert db.rev == 1  # nothing written


# -- what __post_init__ sees in a Cell field (R43) ---------------------------------------------

SEEN: list[Any] = []


@dataclasses.dataclass
class Authored:
    id: int
    who_cf_link: sc.Cell | None
    who: Any = None

    def __post_init__(self) -> None:
        SEEN.append(self.who_cf_link)
        if self.who_cf_link is not None:
            self.who = self.who_cf_link.get()


@dataclasses.dataclass(frozen=True, slots=True)
class AuthoredStrictly:
    id: int
    who_cf_link: sc.Cell  # declared never None: a NULL link still reads None (R43)

    def __post_init__(self) -> None:
        SEEN.append(self.who_cf_link)


class AuthoredKw(msgspec.Struct, kw_only=True):
    id: int
    who_cf_link: sc.Cell | None = None

    def __post_init__(self) -> None:
        SEEN.append(self.who_cf_link)


class AuthoredTagged(msgspec.Struct, tag=True, rename={"who": "who_cf_link"}):
    id: int
    who: sc.Cell

    def __post_init__(self) -> None:
        SEEN.append(self.who)


class AuthoredDict(TypedDict):
    id: int
    who_cf_link: sc.Cell


ROW_TYPES = [Authored, AuthoredStrictly, AuthoredKw, AuthoredTagged]


def linked(row: Any) -> Any:
    return row["who_cf_link"] if isinstance(row, dict) else getattr(row, "who_cf_link", None)


@pytest.mark.parametrize("row", [*ROW_TYPES, AuthoredDict])
@pytest.mark.parametrize("link", ["NULL", "'not a link'", "x'ff00'", "17"])
def test_post_init_sees_none_for_a_null_or_invalid_link(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb, row: type, link: str
) -> None:
    alice = space.cell("alice", default="Alice")
    with space.transact():
        db.exec("UPDATE t SET who_cf_link = ?", [alice])
        db.exec("INSERT INTO t (id, v) VALUES (2, 2)")
    rt.settle()
    SEEN.clear()
    # (A link column holds NULL or a link: an invalid one comes from the SELECT.)
    sql = f"SELECT id, iif(id = 2, {link}, who_cf_link) AS who_cf_link FROM t ORDER BY id"
    rows = db.read(sql, row=row)
    if row is not AuthoredDict:
        assert SEEN[1] is None and isinstance(SEEN[0], sc.Cell)
    cells = [r.who if isinstance(r, AuthoredTagged) else linked(r) for r in rows]
    assert cells[1] is None and isinstance(cells[0], sc.Cell) and cells[0].get() == "Alice"
    if row is Authored:
        assert rows == [Authored(1, cells[0], "Alice"), Authored(2, None, None)]


def test_post_init_sees_none_in_a_live_query_too(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb
) -> None:
    sql = "SELECT id, iif(id = 2, 'junk', who_cf_link) AS who_cf_link FROM t ORDER BY id"
    q = db.query(sql, row=Authored)
    rt.settle()
    assert q.get().result == [Authored(1, None, None)] and q.get().error is None
    write(rt, space, db, "INSERT INTO t (id, v) VALUES (2, 2)")
    assert q.get().result == [Authored(1, None, None), Authored(2, None, None)]


@dataclasses.dataclass(eq=False)
class Uncomparable:
    """A row type whose ``==`` raises: rows of it cannot be compared with the rows before."""

    v: int

    def __eq__(self, other: object) -> bool:
        raise Refused("rows of this type are not compared")

    __hash__ = None  # type: ignore[assignment]  # (eq without hash, as dataclasses make it)


def test_rows_whose_equality_raises_count_as_changed(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb
) -> None:
    # Comparing the new rows with those before is only the change cut-off (R42): rows that
    # cannot be compared are news, as a derived cell's values are. The comparison raised out
    # of the query's landing: the query kept its old rows and seq, and no subscriber was told.
    q = db.query("SELECT v FROM t ORDER BY id", row=Uncomparable)
    rt.settle()
    told: list[tuple[list[int] | None, int]] = []
    q.observe().subscribe(lambda s: told.append(([r.v for r in s.result or []], s.seq)))
    write(rt, space, db, "UPDATE t SET v = 2")
    state = q.get()
    assert state.error is None and [r.v for r in state.result or []] == [2] and state.seq == 2
    write(rt, space, db, "UPDATE t SET v = 3")
    assert [r.v for r in q.get().result or []] == [3] and q.get().seq == 3
    assert told == [([1], 1), ([2], 2), ([3], 3)]
