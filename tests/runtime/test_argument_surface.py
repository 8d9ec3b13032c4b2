"""Every public call of SPEC §3 and §4 given arguments it does not take: a ``SqliteCellsError``
(also a ``TypeError``/``ValueError``, "Errors" in §5) raised at the call, naming the call and
showing how to make it, with nothing left behind — no commit, no file in the store — and the
runtime still usable afterwards."""

from __future__ import annotations

import asyncio
import functools
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NewType

import msgspec
import pytest

import sqlite_cells as sc

TABLES = {"t": sc.table(id="integer primary key", x="integer", a_cf_link=sc.cf_link())}


@sc.pattern
def _chat(me: sc.Cell) -> sc.Cell:
    return me


class Env:
    """One runtime on ``store`` with a space, a cell and a written database, and a way to tell
    that nothing was committed: the next commit's seq is the one after the last."""

    def __init__(self, store: Path) -> None:
        self.rt = sc.Runtime(store, poll_interval=0.01)
        self.store = store
        self.space = self.rt.space("demo")
        self.cell = self.space.cell("c", default=0)
        self.db = self.space.sqlite_database("d", tables=TABLES)

        @sc.handler
        def bump(*, counter: sc.Cell) -> None:
            counter.set(counter.get() + 1)

        self.bump = bump
        with self.space.transact():
            self.db.exec("INSERT INTO t (x) VALUES (?)", [1])
        self.seq = self._commit()
        self.files = sorted(p.name for p in store.iterdir())

    def _commit(self) -> int:
        seq = self.bump(counter=self.cell)
        assert isinstance(seq, int)
        return seq

    def assert_nothing_left(self) -> None:
        """No file appeared, nothing was committed, and the runtime still writes and reads."""
        assert sorted(p.name for p in self.store.iterdir()) == self.files
        assert self._commit() == self.seq + 1
        self.seq += 1
        assert self.db.read("SELECT count(*) AS n FROM t") == [{"n": 1}]


@pytest.fixture
def env(store: Path) -> Iterator[Env]:
    made = Env(store)
    try:
        yield made
    finally:
        made.rt.close()


def _refused(call: Callable[[], object]) -> sc.SqliteCellsError:
    with pytest.raises(sc.SqliteCellsError) as info:
        call()
    assert isinstance(info.value, TypeError)
    assert isinstance(info.value, ValueError)
    return info.value


# -- arity: what Python would refuse with its own TypeError ------------------------------------

ARITY: list[tuple[str, Callable[[Env], object], str]] = [
    ("Runtime.ephemeral", lambda e: sc.Runtime.ephemeral(5), "Runtime.ephemeral(**options)"),
    ("Runtime", lambda e: sc.Runtime(e.store, poll_intervall=1), "unexpected keyword argument"),
    ("Runtime.space", lambda e: e.rt.space(), "missing a required argument: 'space_id'"),
    ("Runtime.space", lambda e: e.rt.space("a", "b"), "too many positional arguments"),
    ("Runtime.cell_from_link", lambda e: e.rt.cell_from_link(), "missing a required argument"),
    ("Runtime.settle", lambda e: e.rt.settle(1, 2), "too many positional arguments"),
    ("Runtime.settle", lambda e: e.rt.settle(timeuot=1), "unexpected keyword argument"),
    ("Space.transact", lambda e: e.space.transact(5), "call it as Space.transact()"),
    ("Space.cell", lambda e: e.space.cell("x", 1), "too many positional arguments"),
    ("Space.run", lambda e: e.space.run(_chat, me=e.cell), "missing a required argument: 'key'"),
    ("Space.run", lambda e: e.space.run(_chat, "main", me=e.cell), "too many positional"),
    ("Space.run", lambda e: e.space.run(key="main"), "missing a required argument: 'pattern'"),
    ("Space.sqlite_database", lambda e: e.space.sqlite_database("d", TABLES), "too many"),
    ("Space.sqlite_database", lambda e: e.space.sqlite_database("e", tabels={}), "'tables'"),
    ("Space.register_disk_source", lambda e: e.space.register_disk_source(), "missing"),
    ("Cell.get", lambda e: e.cell.get(1), "call it as Cell.get()"),
    ("Cell.set", lambda e: e.cell.set(), "missing a required argument: 'value'"),
    ("Cell.set", lambda e: e.cell.set(1, 2), "too many positional arguments"),
    ("Cell.update", lambda e: e.cell.update(), "missing a required argument: 'fn'"),
    ("Cell.key", lambda e: e.cell.key(), "missing a required argument: 'key'"),
    ("Cell.key", lambda e: e.cell.key("a", "b"), "too many positional arguments"),
    ("Cell.link", lambda e: e.cell.link(e.cell, e.cell), "too many positional arguments"),
    ("Cell.link_str", lambda e: e.cell.link_str(1), "call it as Cell.link_str()"),
    ("Cell.observe", lambda e: e.cell.observe(print), "call it as Cell.observe()"),
    ("SqliteDb.exec", lambda e: e.db.exec(), "missing a required argument: 'sql'"),
    ("SqliteDb.exec", lambda e: e.db.exec("DELETE FROM t", [], 1), "too many positional"),
    ("SqliteDb.exec", lambda e: e.db.exec("DELETE FROM t", parms=[]), "unexpected keyword"),
    ("SqliteDb.exec_many", lambda e: e.db.exec_many("DELETE FROM t"), "missing"),
    ("SqliteDb.query", lambda e: e.db.query("SELECT 1", None, dict), "too many positional"),
    ("SqliteDb.query", lambda e: e.db.query("SELECT 1", reactOn=None), "unexpected keyword"),
    ("SqliteDb.read", lambda e: e.db.read(), "missing a required argument: 'sql'"),
    ("SqliteDb.read", lambda e: e.db.read("SELECT 1", rows=dict), "unexpected keyword"),
    ("SqliteDb.get", lambda e: e.db.get(1), "too many positional arguments"),
    ("SqliteDb.drop", lambda e: e.db.drop(True), "too many positional arguments"),
    ("sqlite_query", lambda e: sc.sqlite_query(e.db, "SELECT 1"), "too many positional"),
    ("sqlite_query", lambda e: sc.sqlite_query(db=e.db), "missing a required argument: 'sql'"),
    ("decode_cf_link", lambda e: sc.decode_cf_link(e.cell.link_str()), "missing"),
    ("table", lambda e: sc.table({"x": "integer"}, {"y": "integer"}), "too many positional"),
    ("cf_link", lambda e: sc.cf_link("text"), "call it as cf_link()"),
    ("derive", lambda e: sc.derive(e.cell), "missing a required argument: 'fn'"),
    ("lift", lambda e: sc.lift(), "missing a required argument: 'fn'"),
    ("pattern", lambda e: sc.pattern(), "missing a required argument: 'fn'"),
    ("handler", lambda e: sc.handler(tris=3), "unexpected keyword argument 'tris'"),
    ("bump", lambda e: e.bump(), "missing a required argument: 'counter'"),
    ("bump", lambda e: e.bump(1, counter=e.cell), "too many positional arguments"),
    ("bump", lambda e: e.bump(counter=e.cell, extra=1), "unexpected keyword argument 'extra'"),
    ("SqliteDb", lambda e: sc.SqliteDb(e.space), "missing a required argument: 'decl'"),
    ("VmSource", lambda e: sc.VmSource(), "missing a required argument: 'vm'"),
    ("VmSource", lambda e: sc.VmSource(None, "/a.db", 1), "too many positional arguments"),
]


@pytest.mark.parametrize(("name", "call", "said"), ARITY, ids=[a[0] for a in ARITY])
def test_a_call_with_arguments_it_does_not_take_is_our_error_at_the_call(
    env: Env, name: str, call: Callable[[Env], object], said: str
) -> None:
    with env.space.transact():  # inside a transaction too: the refusal leaves it usable
        error = _refused(lambda: call(env))
        env.cell.set(env.cell.get())
    assert str(error).startswith(f"{name}() does not take these arguments")
    assert said in str(error)
    assert f"call it as {name}(" in str(error)
    assert error.__cause__ is None
    env.seq += 1  # the transaction above committed its one write
    env.assert_nothing_left()


def test_the_two_gaps_named_in_the_errors_rules(env: Env) -> None:
    """`space.run(pattern)` without `key=` and `space.transact(5)` used to be plain
    TypeErrors."""
    error = _refused(lambda: env.space.run(_chat, me=env.cell))
    assert str(error) == (
        "Space.run() does not take these arguments (missing a required argument: 'key'): "
        "call it as Space.run(pattern, *, key, **inputs)"
    )
    error = _refused(lambda: env.space.transact(5))
    assert str(error) == (
        "Space.transact() does not take these arguments (too many positional arguments): "
        "call it as Space.transact()"
    )
    env.assert_nothing_left()


def test_a_type_error_raised_by_a_body_is_its_own(env: Env) -> None:
    """Only arguments that do not bind are turned into our error: a handler, derive function or
    pattern body that raises TypeError itself raises it unchanged, and writes nothing."""

    @sc.handler
    def broken(n: int, *, counter: sc.Cell) -> None:
        counter.set(n)
        raise TypeError("the body's own")

    with pytest.raises(TypeError, match="the body's own") as info:
        broken(1, counter=env.cell)
    assert not isinstance(info.value, sc.SqliteCellsError)
    env.assert_nothing_left()


def test_a_type_error_of_a_body_under_the_callers_own_decorator_is_its_own(env: Env) -> None:
    """A body wrapped by the caller's own ``functools.wraps`` decorator that passes it another
    argument: its arguments were checked against the wrapped function's signature, so the
    body's own TypeError became "does not take these arguments", its cause dropped."""

    def with_counter(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return fn(*args, counter=env.cell, **kwargs)

        return wrapper

    @sc.handler
    @with_counter
    def broken(n: int, *, counter: sc.Cell) -> None:
        counter.set(n)
        len(n)  # type: ignore[arg-type]  # the body's own bug

    def with_counter_async(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            return await fn(*args, counter=env.cell, **kwargs)

        return wrapper

    @sc.handler
    @with_counter_async
    async def broken_async(n: int, *, counter: sc.Cell) -> None:
        counter.set(n)
        len(n)  # type: ignore[arg-type]

    for call in (lambda: broken(1), lambda: asyncio.run(broken_async(1))):
        with pytest.raises(TypeError, match="has no len") as info:
            call()
        assert not isinstance(info.value, sc.SqliteCellsError)
    env.assert_nothing_left()


def test_an_async_handler_called_with_wrong_arguments_commits_nothing(env: Env) -> None:
    @sc.handler
    async def post(text: str, *, log: sc.Cell) -> None:
        log.set(text)

    error = _refused(lambda: asyncio.run(post(log=env.cell)))
    assert "post() does not take these arguments (missing a required argument: 'text')" in (
        str(error)
    )
    assert asyncio.run(post("hi", log=env.space.cell("log"))) == env.seq + 1
    env.seq += 1
    env.assert_nothing_left()


def _add(n: int, *, counter: sc.Cell) -> None:
    counter.set(counter.get() + n)


class _Adder:
    def __call__(self, n: int, *, counter: sc.Cell) -> None:
        counter.set(counter.get() + n)


async def _post(text: str, *, log: sc.Cell) -> None:
    log.set(text)


def test_a_handler_of_a_partial_or_a_callable_object_is_named_by_it_when_refused(
    env: Env,
) -> None:
    add_two = sc.handler(functools.partial(_add, 2))
    error = _refused(lambda: add_two(1, counter=env.cell))
    assert str(error).startswith("_add() does not take these arguments (too many positional")
    assert "call it as _add(*, counter)" in str(error)
    adder = sc.handler(_Adder())
    error = _refused(lambda: adder(counter=env.cell))
    assert str(error).startswith("_Adder.__call__() does not take these arguments (missing")
    assert "call it as _Adder.__call__(n, *, counter)" in str(error)
    post_hi = sc.handler(functools.partial(_post, "hi"))
    error = _refused(lambda: asyncio.run(post_hi("again", log=env.cell)))
    assert str(error).startswith("_post() does not take these arguments")
    assert "run()" not in str(error)
    env.assert_nothing_left()
    assert add_two(counter=env.cell) == env.seq + 1
    env.seq += 1


def test_settled_with_an_argument_is_our_error(env: Env) -> None:
    error = _refused(lambda: asyncio.run(env.rt.settled(5)))  # type: ignore[call-arg]
    assert "Runtime.settled() does not take these arguments" in str(error)
    assert asyncio.run(env.rt.settled()) is True


def test_a_piece_input_that_does_not_exist_is_our_key_error(env: Env) -> None:
    piece = env.space.run(_chat, key="main", me=env.cell)
    env.seq += 1  # the first run records the piece
    for name in ("nope", 5, None):
        with pytest.raises(sc.SqliteCellsError) as info:
            piece.inputs[name]  # type: ignore[index]
        assert isinstance(info.value, KeyError)
        assert str(info.value) == (
            f"this piece has no input {name!r}: its pattern takes 'me'; use one of those "
            "names, as the pattern's parameters spell them"
        )
    assert piece.inputs.get("nope") is None
    assert "me" in piece.inputs
    env.assert_nothing_left()


# -- float fields and SQLite's 64-bit integers (R43) -------------------------------------------


class Real(msgspec.Struct):
    x: float


class MaybeReal(msgspec.Struct):
    x: float | None


class RealOrText(msgspec.Struct):  # a float in a union: msgspec rounded the integer silently
    x: float | str


Metres = NewType("Metres", float)


class Length(msgspec.Struct):  # a float through a NewType: rounded silently too
    x: Metres


class RealOrInt(msgspec.Struct):  # the int member takes the integer as it is
    x: float | int


@pytest.mark.parametrize("row", [Real, MaybeReal, RealOrText, Length])
@pytest.mark.parametrize("value", [2**53 + 1, -(2**53) - 1, 2**63 - 1, -(2**63) + 1])
def test_a_float_field_refuses_an_integer_no_float_holds(
    env: Env, row: type[Any], value: int
) -> None:
    with env.space.transact():
        env.db.exec("DELETE FROM t")
        env.db.exec("INSERT INTO t (x) VALUES (?)", [value])
    with pytest.raises(sc.QueryError) as info:
        env.db.read("SELECT x FROM t", row=row)
    assert f"column 'x' does not fit field {row.__name__}.x: Expected `float`" in str(info.value)
    assert f"int {value}, which no float holds exactly" in str(info.value)
    assert "CAST(x AS REAL)" in str(info.value)
    query = env.db.query("SELECT x FROM t", row=row)
    env.rt.settle()
    state = query.get()
    assert state.result is None
    assert isinstance(state.error, sc.QueryError)
    assert f"int {value}, which no float holds exactly" in str(state.error)
    # What SQLite itself rounds, the caller asked for: it is read as SQLite gives it.
    assert env.db.read("SELECT CAST(x AS REAL) AS x FROM t", row=row) == [row(x=float(value))]


@pytest.mark.parametrize("value", [0, 1, -1, 2**53, -(2**53), 2**60, 2**62, 3.5, None])
def test_a_float_field_takes_integers_a_float_holds_exactly(env: Env, value: Any) -> None:
    with env.space.transact():
        env.db.exec("DELETE FROM t")
        env.db.exec("INSERT INTO t (x) VALUES (?)", [value])
    rows = env.db.read("SELECT x FROM t", row=MaybeReal)
    assert rows == [MaybeReal(x=None if value is None else float(value))]
    if value is not None:
        assert env.db.read("SELECT x FROM t", row=Real) == [Real(x=float(value))]


def test_a_float_or_int_field_keeps_an_integer_past_2_53(env: Env) -> None:
    with env.space.transact():
        env.db.exec("DELETE FROM t")
        env.db.exec("INSERT INTO t (x) VALUES (?)", [2**53 + 1])
    got = env.db.read("SELECT x FROM t", row=RealOrInt)[0].x
    assert got == 2**53 + 1 and type(got) is int


# -- values a cell or a column cannot hold (R6, R31, R44) --------------------------------------

DEEP: list[Any] = []
_inner = DEEP
for _ in range(10_000):
    _inner.append([])
    _inner = _inner[0]

BAD_VALUES: list[tuple[str, Any]] = [
    ("past 64 bits", 2**64),
    ("below 64 bits", -(2**63) - 1),
    ("nan", math.nan),
    ("lone surrogate", "a\ud800b"),
]


@pytest.mark.parametrize(("what", "value"), BAD_VALUES, ids=[b[0] for b in BAD_VALUES])
def test_a_value_sqlite_cannot_hold_is_refused_by_set_and_exec(
    env: Env, what: str, value: Any
) -> None:
    with env.space.transact():
        with pytest.raises(sc.ValueEncodeError):
            env.cell.set(value)
        with pytest.raises(sc.ExecError) as info:
            env.db.exec("INSERT INTO t (x) VALUES (?)", [value])
        assert isinstance(info.value, TypeError | ValueError)
        assert "nothing was recorded" in str(info.value)
        with pytest.raises(sc.ExecError):
            env.db.exec_many("INSERT INTO t (x) VALUES (?)", [[1], [value]])
        with pytest.raises(sc.ExecError):
            env.db.exec("INSERT INTO t (x) VALUES (:v)", {"v": value})
    env.assert_nothing_left()


@pytest.mark.parametrize(
    ("what", "value"),
    [
        ("inf", math.inf),
        ("-inf", -math.inf),
        ("int key", {1: "a"}),
        ("None key", {None: "a"}),
        ("surrogate key", {"\udc00": 1}),
        ("deep nesting", DEEP),
        ("bytes", b"x"),
        ("set", {1}),
    ],
)
def test_a_value_json_cannot_hold_is_refused_by_set(env: Env, what: str, value: Any) -> None:
    with env.space.transact():
        error = _refused(lambda: env.cell.set(value))
        assert isinstance(error, sc.ValueEncodeError)
        error = _refused(lambda: env.cell.key("k").set(value))
    env.assert_nothing_left()


def test_infinity_is_a_real_sqlite_stores_and_reads_back(env: Env) -> None:
    """SQLite stores ±infinity as a REAL and returns it exactly (unlike NaN, which it would
    turn into NULL): a column takes it."""
    with env.space.transact():
        env.db.exec("DELETE FROM t")
        env.db.exec_many("INSERT INTO t (x) VALUES (?)", [[math.inf], [-math.inf]])
    assert env.db.read("SELECT x FROM t ORDER BY x") == [{"x": -math.inf}, {"x": math.inf}]


# -- cells of another runtime, and of a closed one ---------------------------------------------


def test_a_cell_of_a_runtime_on_another_store_is_not_stored_as_a_link(
    env: Env, tmp_path: Path
) -> None:
    """A link names a space id and a cell id of its own store: stored in another store, it
    would name a different cell (here: the cell itself)."""
    with sc.Runtime(tmp_path / "other", poll_interval=0.01) as other:
        theirs = other.space("demo").cell("c", default=5)
        with env.space.transact():
            error = _refused(lambda: env.cell.set(theirs))
            assert isinstance(error, sc.ValueEncodeError)
            assert f"a cell of the runtime on {other.store}" in str(error)
            _refused(lambda: env.cell.set({"a": [theirs]}))
            with pytest.raises(sc.SqliteCellsError):
                env.cell.link(theirs)
    assert env.cell.get() == 1
    env.assert_nothing_left()


def test_a_cell_of_another_runtime_on_the_same_store_is_the_same_cell(env: Env) -> None:
    with sc.Runtime(env.store, poll_interval=0.01) as twin:
        theirs = twin.space("demo").cell("target", default=5)
        with env.space.transact():
            env.space.cell("holder").set(theirs)
        env.seq += 1
        held = env.space.cell("holder").get()
        assert isinstance(held, sc.Cell)
        assert held.link_str() == theirs.link_str()
    env.assert_nothing_left()


def test_the_objects_of_a_closed_runtime_say_it_is_closed(tmp_path: Path) -> None:
    rt = sc.Runtime(tmp_path / "closed")
    space = rt.space("x")
    cell = space.cell("y", default=2)
    db = space.sqlite_database("d", tables=TABLES)
    rt.close()
    calls: list[Callable[[], object]] = [
        cell.get,
        lambda: rt.space("z"),
        lambda: space.cell("q"),
        space.transact,
        lambda: db.read("SELECT 1"),
        lambda: db.query("SELECT 1"),
        rt.settle,
        lambda: rt.cell_from_link(cell.link_str()),
        lambda: sc.decode_cf_link(cell.link_str(), rt),
        lambda: space.sqlite_database("e", tables=TABLES),
        lambda: space.register_disk_source("/etc/hostname"),
        lambda: sc.derive(cell, lambda v: v),
        lambda: space.run(_chat, key="k", me=cell),
    ]
    for call in calls:
        with pytest.raises(sc.ClosedError, match="closed"):
            call()


# -- derived cells: refused where they are made, not later on the scheduler's thread ----------


@pytest.mark.parametrize(
    ("make", "said"),
    [
        (lambda c: sc.lift(lambda a, b: a + b)(c), "missing a required argument: 'b'"),
        (lambda c: sc.derive(c, lambda: 1), "too many positional arguments"),
        (lambda c: sc.derive(c, lambda a, b: a), "missing a required argument: 'b'"),
        (lambda c: sc.lift(lambda a: a)(c, c), "too many positional arguments"),
    ],
)
def test_a_derive_function_that_cannot_take_its_inputs_is_refused_at_once(
    env: Env, make: Callable[[sc.Cell], object], said: str
) -> None:
    error = _refused(lambda: make(env.cell))
    assert "derive/lift of " in str(error)
    assert said in str(error)
    assert "one per input, in order" in str(error)
    # Functions that do take them: defaults, *args, and builtins without a signature.
    assert sc.derive(env.cell, lambda v, scale=2: v * scale).get() == 2
    assert sc.lift(lambda *vs: sum(vs))(env.cell, env.cell, 1).get() == 3
    assert sc.derive(env.cell, str).get() == "1"
    env.assert_nothing_left()


def test_a_derived_cell_of_two_runtimes_is_refused(env: Env, tmp_path: Path) -> None:
    with sc.Runtime(tmp_path / "other", poll_interval=0.01) as other:
        theirs = other.space("demo").cell("c", default=5)
        error = _refused(lambda: sc.lift(lambda a, b: a + b)(env.cell, theirs))
        assert "has inputs of different runtimes" in str(error)
        assert sc.derive(theirs, lambda v: v + 1).get() == 6  # one runtime, not this one
    env.assert_nothing_left()


def test_a_cell_of_another_store_is_not_bound_to_a_link_column(env: Env, tmp_path: Path) -> None:
    with sc.Runtime(tmp_path / "other", poll_interval=0.01) as other:
        theirs = other.space("demo").cell("c", default=5)
        with env.space.transact():
            for call in (
                lambda: env.db.exec("INSERT INTO t (a_cf_link) VALUES (?)", [theirs]),
                lambda: env.db.exec("INSERT INTO t (a_cf_link) VALUES (:a)", {"a": theirs}),
                lambda: env.db.exec_many(
                    "INSERT INTO t (a_cf_link) VALUES (?)", [[env.cell], [theirs]]
                ),
            ):
                with pytest.raises(sc.LinkEncodeError) as info:
                    call()
                assert f"a cell of the runtime on {other.store}" in str(info.value)
        # The same store: the same cell.
        with sc.Runtime(env.store, poll_interval=0.01) as twin, env.space.transact():
            env.db.exec("DELETE FROM t WHERE a_cf_link IS NOT NULL")
            env.db.exec("UPDATE t SET a_cf_link = ?", [twin.space("demo").cell("c")])
        assert env.db.read("SELECT a_cf_link FROM t") == [{"a_cf_link": env.cell.link_str()}]
        with env.space.transact():
            env.db.exec("UPDATE t SET a_cf_link = NULL")
    env.seq += 2
    env.assert_nothing_left()


def test_a_lifted_function_given_an_input_by_name_is_refused_at_once(env: Env) -> None:
    error = _refused(lambda: sc.lift(lambda a, b=1: a + b)(env.cell, b=env.cell))
    assert "takes its inputs by position" in str(error) and "'b' given by name" in str(error)
    assert sc.lift(lambda a, b=1: a + b)(env.cell, env.cell).get() == 2


# -- an integer Python refuses to print (over 4,300 digits) -----------------------------------

HUGE = 10**5000

HUGE_CALLS: list[tuple[str, Callable[[Env], object]]] = [
    ("set", lambda e: e.cell.set(HUGE)),
    ("set in a list", lambda e: e.cell.set([1, HUGE])),
    ("set as a key", lambda e: e.cell.set({HUGE: 1})),
    ("default as a key", lambda e: e.space.cell("big", default={"a": {HUGE: 1}})),
    ("update", lambda e: e.cell.update(lambda _: {"k": HUGE})),
    ("key", lambda e: e.cell.key(HUGE)),
    ("default", lambda e: e.space.cell("big", default=HUGE)),
    ("exec", lambda e: e.db.exec("INSERT INTO t (x) VALUES (?)", [HUGE])),
    ("exec_many", lambda e: e.db.exec_many("INSERT INTO t (x) VALUES (?)", [[1], [HUGE]])),
    ("read", lambda e: e.db.read("SELECT ? AS x", [HUGE])),
    ("query", lambda e: e.db.query("SELECT ? AS x", [HUGE])),
    ("settle", lambda e: e.rt.settle(-HUGE)),
    ("tries", lambda e: sc.handler(tries=HUGE)),
    ("poll_interval", lambda e: sc.Runtime(e.store, poll_interval=HUGE)),
    ("query_workers", lambda e: sc.Runtime(e.store, query_workers=HUGE)),
    ("query_timeout", lambda e: sc.Runtime(e.store, query_timeout=HUGE)),
    ("version", lambda e: e.space.sqlite_database("v", tables=TABLES, version=HUGE)),
    ("space id", lambda e: e.rt.space(HUGE)),  # type: ignore[arg-type]
    ("run input", lambda e: e.space.run(_chat, key="k", me=HUGE)),
]


@pytest.mark.parametrize("call", [c[1] for c in HUGE_CALLS], ids=[c[0] for c in HUGE_CALLS])
def test_an_integer_too_long_to_print_is_refused_with_our_error(
    env: Env, call: Callable[[Env], object]
) -> None:
    """Errors: the refusal of an integer past 64 bits shows it; one of more than 4,300 digits
    made Python's own ValueError ("Exceeds the limit … for integer string conversion") replace
    it. It is named by its size instead, and nothing is left behind."""
    with env.space.transact():  # inside a transaction too: the refusal leaves it usable
        with pytest.raises(sc.SqliteCellsError) as info:
            call(env)
        env.cell.set(env.cell.get())
    assert isinstance(info.value, ValueError | TypeError)  # ("Errors": a bad argument)
    assert "<about 5,000 digits>" in str(info.value)
    env.seq += 1
    env.assert_nothing_left()


class _Unprintable:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


def test_a_value_shown_in_a_message_is_cut_and_never_raises() -> None:
    from sqlite_cells.codec import brief_repr

    assert brief_repr(2**64) == "18446744073709551616"
    assert brief_repr(-HUGE) == "<about 5,000 digits>"
    assert brief_repr("x" * 10) == repr("x" * 10)
    assert brief_repr("x" * 1_000_000) == f"'{'x' * 199}… (1,000,002 characters)"
    assert brief_repr(_Unprintable()) == "a _Unprintable that cannot be shown"
    assert brief_repr([HUGE]) == "a list that cannot be shown"


def test_a_dict_key_that_cannot_be_shown_is_refused_with_our_error(env: Env) -> None:
    """R6: a key that is not a str is refused as ValueEncodeError, naming its type, even when
    the key's own ``__repr__`` raises (that error replaced ours)."""
    for call in (
        lambda: env.cell.set({_Unprintable(): 1}),
        lambda: env.space.cell("other", default={_Unprintable(): 1}),
    ):
        shown = "a _Unprintable that cannot be shown"
        with pytest.raises(sc.ValueEncodeError, match=shown), env.space.transact():
            call()
    env.assert_nothing_left()


class _UnprintableFunction:  # (an instance has no __name__)
    def __call__(self, value: Any) -> Any:
        return value

    def __repr__(self) -> str:
        raise RuntimeError("no repr")


def test_a_function_that_cannot_be_shown_is_named_by_our_messages(env: Env) -> None:
    """A derive/lift/pattern function's repr is shown by our refusals and by a derived cell's
    repr: one that raises never replaces them with its own error."""
    fn = _UnprintableFunction()
    with pytest.raises(sc.SqliteCellsError, match="_UnprintableFunction that cannot be shown"):
        sc.derive(5, fn)
    with pytest.raises(sc.SqliteCellsError, match="_UnprintableFunction that cannot be shown"):
        sc.lift(fn)(5)
    with pytest.raises(sc.SqliteCellsError, match="_UnprintableFunction that cannot be shown"):
        sc.pattern(fn)
    derived = sc.derive(env.cell, fn)
    assert repr(derived).startswith("<Derived a _UnprintableFunction that cannot be shown")


@pytest.mark.parametrize("call", ["read", "query"])
@pytest.mark.parametrize(
    "extra", [{HUGE: 0}, {_Unprintable(): 0}, {"unused": math.nan}, {"unused": [1, 2]}]
)
def test_a_read_ignores_names_its_statement_does_not_have_as_a_write_does(
    env: Env, call: str, extra: dict[Any, Any]
) -> None:
    """R31/R36's rule for a mapping of named parameters holds for reads too: names the
    statement does not have are ignored, whatever their keys or values (a read checked and
    showed each of them: Python's own errors for a key it cannot print, a refusal for a value
    no statement binds)."""
    params = {"a": 1, **extra}
    with env.space.transact():
        env.db.exec("UPDATE t SET x = :a", params)
    if call == "read":
        assert env.db.read("SELECT :a AS x", params) == [{"x": 1}]
    else:
        query = env.db.query("SELECT :a AS x", params)
        env.rt.settle()
        assert query.get().result == [{"x": 1}] and query.get().error is None
    with pytest.raises(sc.QueryError, match="no value for the named parameter"):
        env.db.read("SELECT :a AS x, :b AS y", params)


@pytest.mark.parametrize(
    ("space_of", "cell_id", "path", "says"),
    [
        (lambda space: None, "of:x", (), "space must be a space"),
        (lambda space: "demo", "of:x", (), "space must be a space"),
        (lambda space: space, 7, (), "cell_id must be a cell id"),
        (lambda space: space, "my-own-id", (), "names no cell"),
        (lambda space: space, "of:", (), "names no cell"),
        (lambda space: space, "of:a\nb", (), "names no cell"),
        (lambda space: space, "of:\ud800", (), "names no cell"),
        (lambda space: space, "of:x", ("\ud800",), "names no cell"),
        (lambda space: space, "of:x", (1.5,), "names no cell"),
        (lambda space: space, "of:x", (2**63,), "names no cell"),
        (lambda space: space, "of:" + "x" * (1024 * 1024), (), "names no cell"),
    ],
)
def test_a_cell_made_directly_names_a_cell_a_link_can_name(
    rt: sc.Runtime,
    space_of: Callable[[Any], Any],
    cell_id: Any,
    path: tuple[Any, ...],
    says: str,
) -> None:
    """``sc.Cell(space, id, path)`` is the type a row field names; made by a caller, its space
    is one of a runtime and its id and path are what a link can name (R1, R30): else a clear
    ``InvalidArgument`` (no raw AttributeError or UnicodeEncodeError later, no cell written
    under an id of the caller's choosing)."""
    space = rt.space("demo")
    with pytest.raises(sc.SqliteCellsError, match=says) as caught:
        sc.Cell(space_of(space), cell_id, path)
    assert isinstance(caught.value, TypeError | ValueError)
    assert "space.cell(name)" in str(caught.value)
    made = sc.Cell(space, space.cell("c").id, ("a", -1))
    assert made == space.cell("c").key("a").key(-1)


@pytest.mark.parametrize("path", [None, 5, "ab", {"a": 1}])
def test_a_cell_made_directly_takes_a_path_of_keys_only(rt: sc.Runtime, path: Any) -> None:
    """A path that is no tuple or list of keys was a raw ``TypeError`` (``None``, ``5``) or
    read as other keys (``"ab"`` as ``["a"]["b"]``): an ``InvalidArgument`` saying so."""
    space = rt.space("demo")
    with pytest.raises(sc.SqliteCellsError, match="path must be a tuple or list of keys") as got:
        sc.Cell(space, space.cell("c").id, path)
    assert isinstance(got.value, TypeError | ValueError)


def test_a_cell_made_directly_with_a_path_list_whose_reading_raises_is_refused(
    rt: sc.Runtime,
) -> None:
    """A path given as a list of the caller's own class whose iteration raises was that raw
    ``KeyError``: an ``InvalidArgument`` naming the error and what to give instead."""

    class Unreadable(list[Any]):
        def __iter__(self) -> Any:
            raise KeyError("keys")

    space = rt.space("demo")
    with pytest.raises(sc.SqliteCellsError, match="reading the path given raised KeyError") as got:
        sc.Cell(space, space.cell("c").id, Unreadable(["a"]))
    assert isinstance(got.value, TypeError | ValueError)
    assert isinstance(got.value.__cause__, KeyError)
    assert "cell.key(" in str(got.value)


def test_a_cell_made_directly_with_a_str_subclass_id_names_that_id(rt: sc.Runtime) -> None:
    class Named(str):
        pass

    space = rt.space("demo")
    c = space.cell("c")
    assert sc.Cell(space, Named(c.id)) == c
