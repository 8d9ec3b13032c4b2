"""Errors: a refusal's message shows the argument it refuses without ever raising itself — an
integer past Python's 4,300-digit printing limit, an object whose ``__repr__`` raises and a
value whose repr is megabytes long reached Python's own errors (or a 1.5 MB message) at the
sites below, instead of the error the call documents. Also: a link given as a ``str``
subclass, and a space's identity, which cannot be reassigned."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from typing import Any

import pytest

import sqlite_cells as sc
from sqlite_cells.codec import Link


class _Unshowable:
    def __repr__(self) -> str:
        raise RuntimeError("this repr raises")

    def __str__(self) -> str:
        raise RuntimeError("this str raises")


BAD: dict[str, object] = {
    "huge-int": 10**5000,
    "raising-repr": _Unshowable(),
    "megabyte-repr": list(range(200_000)),
}


def _sites(rt: sc.Runtime) -> dict[str, Callable[[object], object]]:
    space = rt.space("demo")
    c = space.cell("c", default=0)
    db = space.sqlite_database("x", tables={"t": sc.table(id="integer primary key")})
    t = {"t": sc.table(id="integer")}
    return {
        "Runtime(store=)": lambda b: sc.Runtime(store=b),  # type: ignore[arg-type]
        "Runtime(disk_source_roots=)": lambda b: sc.Runtime(
            store=tempfile.mkdtemp(),
            disk_source_roots=b,  # type: ignore[arg-type]
        ),
        "decode_cf_link(s, rt=)": lambda b: sc.decode_cf_link(c.link_str(), b),  # type: ignore[arg-type]
        "table(id=)": lambda b: sc.table(id=b),
        "table(indexes=)": lambda b: sc.table(id="integer", indexes=b),  # type: ignore[arg-type]
        "VmSource(vm, path)": lambda b: sc.VmSource(object(), b),  # type: ignore[arg-type]
        "derive(c, fn)": lambda b: sc.derive(c, b),  # type: ignore[arg-type]
        "lift(fn)": lambda b: sc.lift(b),  # type: ignore[arg-type]
        "handler(fn)": lambda b: sc.handler(b),  # type: ignore[call-overload]
        "pattern(fn)": lambda b: sc.pattern(b),  # type: ignore[arg-type]
        "sqlite_query(db=)": lambda b: sc.sqlite_query(db=b, sql="SELECT 1"),  # type: ignore[arg-type]
        "db.read(row=)": lambda b: db.read("SELECT 1 AS x", row=b),  # type: ignore[call-overload]
        "db.query(row=)": lambda b: db.query("SELECT 1 AS x", row=b),  # type: ignore[call-overload]
        "sqlite_database(tables=)": lambda b: space.sqlite_database("y", tables=b),  # type: ignore[arg-type]
        "sqlite_database(migrate=)": lambda b: space.sqlite_database(
            "y",
            tables=t,
            migrate=b,  # type: ignore[arg-type]
        ),
        "sqlite_database(source=)": lambda b: space.sqlite_database(
            "y",
            tables=t,
            source=b,  # type: ignore[arg-type]
        ),
        "register_disk_source(path)": lambda b: space.register_disk_source(b),  # type: ignore[arg-type]
        "run(pattern)": lambda b: space.run(b, key="k"),  # type: ignore[arg-type]
        "link(target)": lambda b: c.link(b),  # type: ignore[arg-type]
        "cell_from_link(Link(path=))": lambda b: rt.cell_from_link(
            Link(id=c.id, space="demo", scope="space", path=(b,))  # type: ignore[arg-type]
        ),
    }


@pytest.mark.parametrize("kind", list(BAD))
def test_every_refusal_shows_the_argument_without_raising_itself(kind: str) -> None:
    bad = BAD[kind]
    with sc.Runtime.ephemeral() as rt:
        for site, call in _sites(rt).items():
            with pytest.raises(sc.SqliteCellsError) as info:
                call(bad)
            assert isinstance(info.value, ValueError | TypeError), (site, info.value)
            assert len(str(info.value)) < 2_000, (site, len(str(info.value)))


def test_a_link_given_as_a_str_subclass_is_its_text() -> None:
    class Text(str):
        pass

    with sc.Runtime.ephemeral() as rt:
        c = rt.space("demo").cell("c", default=7)
        assert rt.cell_from_link(Text(c.link_str())) == c
        assert sc.decode_cf_link(Text(c.link_str()), rt).get() == 7  # type: ignore[union-attr]
        with pytest.raises(sc.LinkDecodeError):
            rt.cell_from_link(Text("junk"))


def test_a_space_s_identity_cannot_be_reassigned() -> None:
    """`sp.id = "other"` was taken: the next commit landed in demo's file under ids and links of
    "other", where neither space could find it again."""
    with sc.Runtime.ephemeral() as rt:
        space = rt.space("demo")
        for name, value in (("id", "other"), ("runtime", None), ("file", None)):
            with pytest.raises(AttributeError):
                setattr(space, name, value)
        assert space.id == "demo"


@sc.pattern
def _echo(a: Any) -> Any:
    return a


def test_query_helpers_and_piece_inputs_refuse_bad_arguments_as_our_errors() -> None:
    """`Query.first()`, `states()` and `display()` with stray arguments raised Python's
    `TypeError`; `QueryState.same_rows(None)` an `AttributeError`; `piece.inputs[[1]]` Python's
    `TypeError: unhashable type`."""
    import asyncio

    with sc.Runtime.ephemeral() as rt:
        space = rt.space("s")
        db = space.sqlite_database("d", tables={"t": sc.table(x="integer")})
        q = db.query("SELECT x FROM t")
        for call in (
            lambda: asyncio.run(q.first(1)),  # type: ignore[call-arg]
            lambda: q.states(1),  # type: ignore[call-arg]
            lambda: q.display(1),  # type: ignore[call-arg]
        ):
            with pytest.raises(sc.SqliteCellsError) as info:
                call()
            assert isinstance(info.value, TypeError)
        assert rt.settle(30)
        assert q.get().same_rows(None) is False  # type: ignore[arg-type]
        assert q.get().same_rows(q.get()) is True
        piece = space.run(_echo, key="k", a=1)
        with pytest.raises(sc.SqliteCellsError, match="no input") as missing:
            piece.inputs[[1]]  # type: ignore[index]
        assert isinstance(missing.value, KeyError)


class _UnhashableText(str):
    __hash__ = None  # type: ignore[assignment]  # a str subclass a dict cannot look up


def test_piece_inputs_get_and_in_answer_for_any_name() -> None:
    """`piece.inputs.get([1])` and `[1] in piece.inputs` raised Python's `TypeError:
    unhashable type`, as did every lookup by an unhashable `str` subclass: a name that is no
    text names no input (`get` gives the default, `in` says False), and text is looked up as
    its plain string."""
    with sc.Runtime.ephemeral() as rt:
        piece = rt.space("s").run(_echo, key="k", a=1)
        a = piece.inputs["a"]
        for name in ([1], {"a": 1}, {1}, b"a", 1):
            assert piece.inputs.get(name) is None  # type: ignore[call-overload]
            assert piece.inputs.get(name, "none") == "none"  # type: ignore[call-overload]
            assert (name in piece.inputs) is False
            with pytest.raises(sc.SqliteCellsError, match="no input") as missing:
                piece.inputs[name]  # type: ignore[index]
            assert isinstance(missing.value, KeyError)
        odd = _UnhashableText("a")
        assert piece.inputs[odd] is a and piece.inputs.get(odd) is a and odd in piece.inputs
        assert piece.inputs.get(_UnhashableText("b")) is None
        assert _UnhashableText("b") not in piece.inputs
        assert list(piece.inputs) == ["a"] and a.get() == 1
        with pytest.raises(sc.SqliteCellsError) as arity:
            piece.inputs.get()  # type: ignore[call-overload]
        assert isinstance(arity.value, TypeError) and "get" in str(arity.value)
