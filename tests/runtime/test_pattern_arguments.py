"""Bad arguments to ``@sc.pattern``, ``@sc.handler`` and ``space.run`` (SPEC §3, §5 "Errors"):
each is a ``SqliteCellsError`` that is also a ``TypeError``, raised at the call, and a refused
``space.run`` records nothing (no piece record, no input cell)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import sqlite_cells as sc


def _refused(call: Callable[[], object]) -> sc.SqliteCellsError:
    with pytest.raises(sc.SqliteCellsError) as info:
        call()
    assert isinstance(info.value, TypeError)
    return info.value


def _space_seq(rt: sc.Runtime) -> int:
    return rt.space("demo").file.seen_seq


@pytest.mark.parametrize("thing", [5, "chat", [lambda me: me]])
def test_pattern_and_handler_refuse_what_is_not_callable(thing: Any) -> None:
    error = _refused(lambda: sc.pattern(thing))
    assert f"@sc.pattern decorates a function, not {thing!r}" in str(error)
    error = _refused(lambda: sc.handler(thing))
    assert f"@sc.handler decorates a function, not {thing!r}" in str(error)
    error = _refused(lambda: sc.handler(tries=3)(thing))
    assert "@sc.handler decorates a function" in str(error)


def test_pattern_refuses_none() -> None:
    assert "@sc.pattern decorates a function, not None" in str(_refused(lambda: sc.pattern(None)))  # type: ignore[arg-type]  # on purpose


def test_run_refuses_an_input_the_pattern_does_not_take_and_records_nothing(
    rt: sc.Runtime, store: Path
) -> None:
    space = rt.space("demo")
    alice = space.cell("alice", default="A")

    @sc.pattern
    def chat(me: sc.Cell, *, title: str = "") -> None:
        return None

    error = _refused(lambda: space.run(chat, key="main", me=alice, not_an_input=1))
    assert "has no input 'not_an_input': it takes me, title; nothing was recorded" in str(error)
    assert _space_seq(rt) == 0
    assert not list(store.glob("space-*"))  # not even the space's file (R7)
    # The same piece with the inputs it takes runs, and records exactly those.
    piece = space.run(chat, key="main", me=alice)
    assert sorted(piece.inputs) == ["me", "title"]
    record = sc.Cell(space, piece.id).get()
    assert record == {"piece": chat.name, "key": "main", "inputs": ["me", "title"]}


def test_an_input_value_that_is_not_json_names_the_pattern_and_the_input(
    rt: sc.Runtime, store: Path
) -> None:
    """R6, Errors ("where"): a value no cell can hold, given for an input, said "the value:
    cannot store a object" — neither the pattern nor the input; nothing is recorded."""
    space = rt.space("demo")

    @sc.pattern
    def chat(me: Any, title: str = "") -> None:
        return None

    error = _refused(lambda: space.run(chat, key="main", me="a", title=object()))
    assert isinstance(error, sc.ValueEncodeError)
    assert str(error).startswith(f"pattern {chat.name!r}, input 'title': the value: cannot store")
    assert _space_seq(rt) == 0
    assert not list(store.glob("space-*"))


def test_an_input_value_too_long_to_store_names_the_pattern_and_the_input(
    rt: sc.Runtime, store: Path
) -> None:
    """R44, Errors ("where"): a value over SQLite's length limit given for an input said only
    "writing cell of:…", an id the author never sees; it names the pattern and the input, as a
    value that is not JSON does, and nothing is recorded — inside an outer transaction too,
    which goes on and commits its own writes."""
    space = rt.space("demo")

    @sc.pattern
    def chat(me: Any, title: str = "") -> None:
        return None

    error = _refused(lambda: space.run(chat, key="main", me="a", title="t" * 67_108_800))
    assert isinstance(error, sc.ValueEncodeError)
    said = str(error)
    assert said.startswith(f"pattern {chat.name!r}, input 'title': writing cell of:")
    assert "length limit" in said
    assert _space_seq(rt) == 0
    other = space.cell("other", default=0)
    with space.transact():
        other.set(1)
        _refused(lambda: space.run(chat, key="main", me="a", title="t" * 67_108_800))
    assert other.get() == 1 and _space_seq(rt) == 1
    piece = space.run(chat, key="main")  # nothing of the refused runs was kept
    assert piece.inputs["me"].get() is None and piece.inputs["title"].get() is None


def test_a_refused_run_of_a_recorded_piece_leaves_it_as_it_was(rt: sc.Runtime) -> None:
    space = rt.space("demo")

    @sc.pattern
    def greet(name: sc.Cell) -> Any:
        return name

    piece = space.run(greet, key="x", name="Ada")
    seq = _space_seq(rt)
    _refused(lambda: space.run(greet, key="x", name="Bob", nme="typo"))
    assert _space_seq(rt) == seq
    assert piece.inputs["name"].get() == "Ada"


def _positional_only(a: Any, /, b: Any) -> None: ...
def _var_positional(a: Any, *rest: Any) -> None: ...
def _var_keyword(a: Any, **more: Any) -> None: ...


@pytest.mark.parametrize(
    ("fn", "said"),
    [
        (_positional_only, "its parameter 'a' is positional-only"),
        (_var_positional, "its parameter '*rest' collects positional arguments"),
        (_var_keyword, "its parameter '**more' collects arbitrary keyword arguments"),
    ],
)
def test_a_parameter_that_no_name_can_give_is_refused_when_the_pattern_is_declared(
    fn: Callable[..., Any], said: str
) -> None:
    error = _refused(lambda: sc.pattern(fn))
    assert said in str(error)
    assert "space.run gives a piece its inputs by name" in str(error)


@pytest.mark.parametrize("name", ["key", "pattern", "self"])
def test_a_parameter_named_as_what_space_run_takes_itself_is_refused_when_declared(
    name: str,
) -> None:
    """`space.run(pattern, *, key, **inputs)` takes `key` (and `pattern`, `self`) itself: an
    input of that name could never be given — `key="k"` was taken for the piece's key and the
    body got an empty input cell, `pattern=` was "multiple values". Refused at `@sc.pattern`,
    as a parameter no name can give is."""
    namespace: dict[str, Any] = {"__name__": __name__}
    exec(f"def body({name}, other):\n    return None", namespace)
    error = _refused(lambda: sc.pattern(namespace["body"]))
    assert f"its parameter {name!r} cannot be given as an input" in str(error)
    assert "rename the parameter" in str(error)


def test_a_piece_s_inputs_cannot_be_replaced_in_its_mapping(rt: sc.Runtime) -> None:
    """``piece.inputs`` holds the piece's input cells: putting a value in their place was
    accepted, and the next ``piece.inputs[name].link(…)`` was a raw ``AttributeError``. Every
    way of changing the mapping is refused (a TypeError); the input is given values through its
    cell."""

    @sc.pattern
    def greet(name: sc.Cell) -> Any:
        return name

    space = rt.space("demo")
    piece = space.run(greet, key="k", name="Ada")
    inputs: Any = piece.inputs
    changes: list[Callable[[], object]] = [
        lambda: inputs.__setitem__("name", 5),
        lambda: inputs.__delitem__("name"),
        lambda: inputs.pop("name"),
        lambda: inputs.popitem(),
        lambda: inputs.setdefault("other", 1),
        lambda: inputs.update(name=5),
        lambda: inputs.clear(),
    ]
    for change in changes:
        assert "give an input a value with piece.inputs[name].set" in str(_refused(change))
    assert list(piece.inputs) == ["name"] and piece.inputs["name"].get() == "Ada"
    with space.transact():
        piece.inputs["name"].set("Bo")
    assert piece.inputs["name"].get() == "Bo"


def test_a_derived_cell_or_query_given_to_store_says_it_has_no_stored_form() -> None:
    """Errors: a derived cell (or a live query) given as a pattern input, or set as a cell's
    value, said "cannot store a Derived; cell values are JSON … and cells" — which a derived
    cell looks like one of. It says it is computed in memory, and what to store instead."""
    with sc.Runtime.ephemeral() as rt:
        space = rt.space("s")
        base = space.cell("base", default=2)
        doubled = sc.derive(base, lambda v: v * 2)
        query = space.sqlite_database("d", tables={"t": sc.table(x="text")}).query("SELECT 1")

        @sc.pattern
        def child(total: Any) -> Any:
            return total

        for given in (doubled, query):
            with pytest.raises(sc.ValueEncodeError, match="computed in memory and has no stored"):
                space.run(child, key="k", total=given)
            with pytest.raises(sc.ValueEncodeError, match=r"store its value \(\.get\(\)\)"):  # noqa: SIM117 - the write, then the block
                with space.transact():
                    space.cell("c").set({"x": given})
        assert space.cell("c").get() is None


@sc.pattern
def _noted(café: sc.Cell) -> None:  # Python stores the name in NFKC form: 'caf\xe9'
    return None


def test_an_input_named_in_another_unicode_form_says_so(rt: sc.Runtime, store: Path) -> None:
    """R1: an input is named as the parameter is spelled; a name that differs only in its
    Unicode form is refused, and the refusal says so (it listed the very name it refused,
    looking the same: "has no input 'café': it takes café")."""
    space = rt.space("demo")
    decomposed = "cafe\u0301"
    error = _refused(lambda: space.run(_noted, key="k", **{decomposed: space.cell("c")}))
    assert "'cafe\\u0301' is the input 'caf\\xe9' written with other Unicode code points" in str(
        error
    )
    assert "unicodedata.normalize('NFKC', name)" in str(error)
    assert _space_seq(rt) == 0
    assert not list(store.glob("space-*"))
    piece = space.run(_noted, key="k", café=space.cell("c"))
    with pytest.raises(sc.SqliteCellsError) as info:
        piece.inputs[decomposed]
    assert isinstance(info.value, KeyError)
    assert "'cafe\\u0301' is the input 'caf\\xe9' written with other Unicode" in str(info.value)
    with pytest.raises(sc.SqliteCellsError) as info:
        piece.inputs["nope"]  # an unrelated name gets no such clause
    assert "Unicode" not in str(info.value)
