"""Objects of the caller's own classes given where the API takes plain ones (Errors: no raw
``KeyError`` or ``AttributeError`` reaches the caller, and a refused call leaves nothing behind):
a mapping or list of its own class whose methods raise, as parameters and as a cell's value,
and an instance where ``row=`` takes a class (R43)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from typing import Any

import msgspec
import pytest

import sqlite_cells as sc
from sqlite_cells._runtime import Space


class Claiming(Mapping[str, Any]):
    """A mapping that claims a key it cannot give."""

    def __iter__(self) -> Iterator[str]:
        return iter(["x"])

    def __len__(self) -> int:
        return 1

    def __contains__(self, key: object) -> bool:
        return key == "x"

    def __getitem__(self, key: str) -> Any:
        raise KeyError(key)


class Unreadable(list[Any]):
    """A list whose iteration raises."""

    def __iter__(self) -> Iterator[Any]:
        raise KeyError("rows")


class Folding(Mapping[str, Any]):
    """A mapping of its own lookup (any case): looked up by the statement's names, it works."""

    def __init__(self, **values: Any) -> None:
        self._values = {k.lower(): v for k, v in values.items()}

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __getitem__(self, key: str) -> Any:
        return self._values[key.lower()]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.lower() in self._values


TABLES = {"t": sc.table(a="integer")}


@pytest.mark.parametrize(
    ("params", "sql"), [(Claiming(), "SELECT :x AS v"), (Unreadable([1]), "SELECT ? AS v")]
)
def test_a_read_s_parameters_that_raise_are_a_query_argument_error(
    space: Space, params: Any, sql: str
) -> None:
    db = space.sqlite_database("d", tables=TABLES)
    for call in (db.read, db.query):
        with pytest.raises(sc.QueryError, match="reading the parameters given") as info:
            call(sql, params)
        assert isinstance(info.value, TypeError | ValueError)
        assert isinstance(info.value.__cause__, KeyError)
    assert db.read("SELECT :X AS v", Folding(x=5)) == [{"v": 5}]


@pytest.mark.parametrize(
    ("params", "sql"),
    [
        (Claiming(), "INSERT INTO t (a) VALUES (:x)"),
        (Unreadable([1]), "INSERT INTO t (a) VALUES (?)"),
    ],
)
def test_a_write_s_parameters_that_raise_are_an_exec_argument_error(
    space: Space, params: Any, sql: str
) -> None:
    db = space.sqlite_database("d", tables=TABLES)
    with space.transact():
        with pytest.raises(sc.ExecError, match="reading the parameters given"):
            db.exec(sql, params)
        with pytest.raises(sc.ExecError, match="reading the parameters given"):
            db.exec_many(sql, [params])
        db.exec("INSERT INTO t (a) VALUES (:X)", Folding(x=7))  # the transaction goes on
    assert db.read("SELECT a FROM t") == [{"a": 7}]


class Opening:
    """Rows of an iterable whose ``__iter__`` raises (a source it cannot open)."""

    def __iter__(self) -> Iterator[Any]:
        raise RuntimeError("cannot open source")


def _parsed() -> Iterator[list[Any]]:
    """Rows parsed from a file whose third line is bad: the generator raises partway."""
    yield [1]
    yield [2]
    raise KeyError("bad line")


@pytest.mark.parametrize(
    ("rows", "raised", "where"),
    [(_parsed, KeyError, "after 2 rows"), (Opening, RuntimeError, "before its first row")],
)
def test_exec_many_rows_that_raise_while_read_are_an_exec_argument_error(
    space: Space, rows: Any, raised: type[Exception], where: str
) -> None:
    db = space.sqlite_database("d", tables=TABLES)
    with space.transact():
        with pytest.raises(sc.ExecError) as info:
            db.exec_many("INSERT INTO t (a) VALUES (?)", rows())
        assert isinstance(info.value, TypeError | ValueError)
        assert type(info.value.__cause__) is raised
        text = str(info.value)
        assert f"reading the rows given (a {rows().__class__.__name__}) raised" in text
        assert raised.__name__ in text and where in text
        assert "nothing was recorded and the transaction is still usable" in text
        db.exec("INSERT INTO t (a) VALUES (?)", [7])  # the transaction goes on
    assert db.read("SELECT a FROM t") == [{"a": 7}]


class Unshown(str):
    """Text of a class whose ``repr`` raises (a tagged-text type of another library)."""

    def __repr__(self) -> str:
        raise RuntimeError("Unshown has no repr")


class Tag(int):
    """An integer of a class whose ``repr`` says nothing of its value."""

    def __repr__(self) -> str:
        return "Tag"


def test_a_live_query_takes_parameters_whose_class_repr_raises_or_hides_the_value(
    rt: sc.Runtime, space: Space
) -> None:
    db = space.sqlite_database("d", tables=TABLES)
    given = db.query("SELECT ? AS x", [Unshown("hi")])
    named = db.query("SELECT :x AS x", {"x": Unshown("named")})
    n = space.cell("n", default=1)
    tagged = db.query("SELECT ? AS x", [sc.derive(n, Tag)])
    assert rt.settle(timeout=10)  # (subscribed after the first run: it is what is seen first)
    seen: list[tuple[bool, Any]] = []
    tagged.observe().subscribe(lambda state: seen.append((state.pending, state.result)))
    assert rt.settle(timeout=10)
    assert given.get().result == [{"x": "hi"}] and named.get().result == [{"x": "named"}]
    assert seen == [(False, [{"x": 1}])]
    with space.transact():
        n.set(2)
    assert rt.settle(timeout=10)
    # New parameters, as for plain ones: pending (keeping the old rows) until their first run.
    assert seen == [(False, [{"x": 1}]), (True, [{"x": 1}]), (False, [{"x": 2}])]


class Closed(str):
    """Text of a class whose own methods raise (a lazily loaded text of another library)."""

    def isascii(self) -> bool:
        raise RuntimeError("Closed.isascii")

    def __len__(self) -> int:
        raise RuntimeError("Closed.__len__")


class ClosedBytes(bytes):
    def __len__(self) -> int:
        raise RuntimeError("ClosedBytes.__len__")


class Uncomparable(int):
    def __le__(self, other: object) -> bool:
        raise RuntimeError("Uncomparable.__le__")

    def __ge__(self, other: object) -> bool:
        raise RuntimeError("Uncomparable.__ge__")


@pytest.mark.parametrize(
    ("value", "stored"),
    [(Closed("hi"), "hi"), (ClosedBytes(b"hi"), b"hi"), (Uncomparable(7), 7)],
    ids=["str", "bytes", "int"],
)
def test_parameters_of_a_base_type_whose_own_methods_raise_bind_as_their_value(
    rt: sc.Runtime, space: Space, value: Any, stored: Any
) -> None:
    """An int, str or bytes of a class whose own methods (a comparison, ``len``, ``isascii``)
    raise is bound as SQLite binds it, by its base type's value: the checks of the value read
    it through that type too. They called its methods, so a read, a write, a read of a derived
    cell holding it raised the class's raw error, and a live query of that cell stayed
    pending for good with no error."""
    db = space.sqlite_database("d", tables={"t": sc.table(v="blob")})
    assert db.read("SELECT ? AS v", [value]) == [{"v": stored}]
    assert db.read("SELECT :v AS v", {"v": value}) == [{"v": stored}]
    with space.transact():
        db.exec("INSERT INTO t (v) VALUES (?)", [value])
        db.exec_many("INSERT INTO t (v) VALUES (?)", [[value], (value,)])
    assert db.read("SELECT v FROM t") == [{"v": stored}] * 3
    n = space.cell("n", default=0)
    holding = sc.derive(n, lambda _: value)
    assert rt.settle(timeout=10)
    assert db.read("SELECT ? AS v", [holding]) == [{"v": stored}]
    query = db.query("SELECT ? AS v", [holding])
    assert rt.settle(timeout=10)
    state = query.get()
    assert (state.pending, state.result, state.error) == (False, [{"v": stored}], None)


def test_a_cell_value_of_a_container_that_raises_is_a_value_encode_error(space: Space) -> None:
    cell = space.cell("c", default=0)

    class Raising(dict[str, Any]):
        def items(self) -> Any:
            raise KeyError("items")

    for value in (Unreadable([1]), {"nested": [Unreadable([1])]}, Raising(a=1)):
        with pytest.raises(sc.ValueEncodeError, match="raised KeyError"), space.transact():
            cell.set(value)
    assert cell.get() == 0


def test_a_cell_value_of_a_dict_whose_items_are_no_pairs_is_a_value_encode_error(
    space: Space,
) -> None:
    cell = space.cell("c", default=0)

    class NoPairs(dict[str, Any]):
        def items(self) -> Any:
            return [1, 2]

    class Triples(dict[str, Any]):
        def items(self) -> Any:
            return [("a", 1, 2)]

    class Twice(dict[str, Any]):
        def items(self) -> Any:
            return iter([("a", 1), ("a", 2)])

    for value, said in (
        (NoPairs(a=1), "raised TypeError: cannot unpack"),
        ({"nested": [Triples(a=1)]}, "raised ValueError: too many values to unpack"),
        (Twice(a=1), "raised ValueError: its items\\(\\) gave the key 'a' twice"),
    ):
        with space.transact():  # (refused before anything is recorded: the commit writes none)
            with pytest.raises(sc.ValueEncodeError, match=said) as info:
                cell.set(value)
            assert isinstance(info.value, TypeError | ValueError)
            with pytest.raises(sc.ValueEncodeError, match=said):
                cell.update(lambda _, value=value: value)
    assert cell.get() == 0


class Msg(msgspec.Struct):
    x: int


@dataclasses.dataclass
class Point:
    x: int


@pytest.mark.parametrize("instance", [Msg(1), Point(1), sc.QueryState()], ids=repr)
def test_an_instance_given_as_row_is_refused_naming_its_class(space: Space, instance: Any) -> None:
    db = space.sqlite_database("d", tables=TABLES)
    for call in (db.read, db.query):
        with pytest.raises(
            sc.SqliteCellsError, match=f"give its class, row={type(instance).__name__}"
        ):
            call("SELECT 1 AS x", row=instance)
    assert db.read("SELECT 1 AS x", row=Msg) == [Msg(1)]
