"""R44 for one long SQL function call inside a write: the builtins whose one call can run long
are overridden on the space's write connection (``write/_calls.py``). A user write whose call
runs past ``exec_timeout`` fails with ``ExecTimeout``, rolls back and lets the space go at once,
while the calculation finishes in the background; every other call gives exactly the builtin's
result."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import apsw
import pytest

import sqlite_cells as sc
import sqlite_cells.write._calls as calls_module
from sqlite_cells._runtime import Space
from sqlite_cells.sql import USER_PREPARE_FLAGS, Gate, Mode, make_authorizer
from sqlite_cells.write._calls import (
    INLINE_COST,
    LONG_CALLS,
    NoHelperFree,
    _Call,
    _Helpers,
    override_long_calls,
    running,
)

TABLES = {"t": sc.table(id="integer primary key", v="text")}


def _a(n: int) -> str:
    return f"printf('%.*c', {n}, 'a')"


# Each runs for about a second here (several times exec_timeout), whatever its form.
LONG = {
    "trim": f"trim({_a(150_000)}, printf('%.*c', 2999, 'b') || 'a')",
    "ltrim": f"ltrim({_a(150_000)}, printf('%.*c', 2999, 'b') || 'a')",
    "replace": f"replace({_a(5_000_000)}, {_a(20_000)} || 'b', 'x')",
    "instr": f"instr({_a(5_000_000)}, {_a(20_000)} || 'b')",
    "like": f"{_a(400_000)} LIKE '%' || {_a(2999)} || 'b'",
    "glob": f"{_a(400_000)} GLOB '*' || {_a(2999)} || 'b'",
    "unhex": "hex(unhex(printf('%.*c', 1200000, 'z'), printf('%.*c', 2999, 'y') || 'z'))",
}


@pytest.fixture
def fast(store: Path, quiet_helpers: None) -> Iterator[sc.Runtime]:
    with sc.Runtime(store, exec_timeout=0.3, poll_interval=0.01) as runtime:
        yield runtime


def _rows(db: sc.SqliteDb) -> list[object]:
    return [r["v"] for r in db.read("SELECT v FROM t ORDER BY id")]


@pytest.mark.parametrize("form", sorted(LONG))
def test_a_long_call_times_out_rolls_back_and_lets_the_space_go(
    fast: sc.Runtime, form: str
) -> None:
    space = fast.space("demo")
    db = space.sqlite_database("d", tables=TABLES)
    counter = space.cell("counter", default=0)
    with space.transact():
        db.exec("INSERT INTO t (v) VALUES ('first')")
    sql = f"INSERT INTO t (v) VALUES ({LONG[form]})"
    with pytest.raises(sc.ExecTimeout) as info, space.transact():
        counter.set(1)
        db.exec("INSERT INTO t (v) VALUES ('same transaction')")
        db.exec(sql)
    assert isinstance(info.value, sc.ExecError) and isinstance(info.value, TimeoutError)
    assert info.value.db_id == db.id and info.value.sql == sql
    assert isinstance(info.value.__cause__, apsw.InterruptError)
    assert running() >= 1  # the calculation goes on, abandoned
    assert counter.get() == 0 and db.rev == 1 and _rows(db) == ["first"]
    with space.transact():  # writable at once
        counter.set(2)
        db.exec("INSERT INTO t (v) VALUES ('second')")
    assert counter.get() == 2 and db.rev == 2 and _rows(db) == ["first", "second"]


def test_a_write_whose_call_finds_no_helper_free_says_so(
    fast: sc.Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """R44, Errors: a long call of a write that timed out runs on in its helper; once every
    helper is so taken, another write's long call waits for one until its own deadline and never
    runs. Its ``ExecTimeout`` says that (the statement did not run past anything): which call,
    how many helpers are busy, and that nothing was written."""
    monkeypatch.setattr(calls_module, "_HELPERS", _Helpers(1))
    first = fast.space("a").sqlite_database("d", tables=TABLES)
    other_space = fast.space("b")
    other = other_space.sqlite_database("d", tables=TABLES)
    with pytest.raises(sc.ExecTimeout, match="ran past exec_timeout"), fast.space("a").transact():
        first.exec(f"INSERT INTO t (v) VALUES ({LONG['trim']})")
    with pytest.raises(sc.ExecTimeout) as info, other_space.transact():
        other.exec(f"INSERT INTO t (v) VALUES ({LONG['instr']})")
    message = str(info.value)
    assert (
        "its call of instr() waited exec_timeout=0.3s for a helper thread and never ran" in message
    )
    assert "every helper (1 busy) is still calculating" in message
    assert "nothing was written" in message
    assert isinstance(info.value.__cause__, NoHelperFree)
    assert _rows(other) == []
    while calls_module._HELPERS.running():
        time.sleep(0.02)


def test_many_short_calls_on_a_large_value_time_out_by_the_deadline(fast: sc.Runtime) -> None:
    """Each row calls a linear builtin on ≈ 4 MB (≈ 1 ms a call, 20,000 rows): no one call is
    long, so only the write's deadline check, run every so many VM steps, stops it. Checked
    every 100,000 steps (a read worker's pace) it ran ≈ 19 s past an exec_timeout of 0.3 s."""
    space = fast.space("demo")
    db = space.sqlite_database("d", tables=TABLES)
    sql = (
        "INSERT INTO t (v) WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c "
        "WHERE i < 20000) SELECT length(upper(substr(?1, i % 7 + 1))) FROM c"
    )
    start = time.monotonic()
    with pytest.raises(sc.ExecTimeout), space.transact():
        db.exec(sql, ["a" * 4_000_000])
    assert time.monotonic() - start < 0.3 + 1  # by its deadline (+1 s, R44)
    assert db.rev == 0


def test_a_cell_write_completes_while_the_long_call_still_runs(fast: sc.Runtime) -> None:
    space = fast.space("demo")
    db = space.sqlite_database("d", tables=TABLES)
    counter = space.cell("counter", default=0)
    events: list[tuple[str, int]] = []
    lock = threading.Lock()

    def note(event: str) -> None:
        with lock:
            events.append((event, running()))

    def long_write() -> None:
        try:
            with space.transact():
                db.exec(f"INSERT INTO t (v) VALUES ({LONG['trim']})")
        except sc.ExecTimeout:
            note("long write timed out")

    def cell_write() -> None:
        with space.transact():
            counter.set(1)
        note("cell written")

    writer = threading.Thread(target=long_write)
    writer.start()
    while writer.is_alive() and not running():  # until the long call has reached its helper
        time.sleep(0.005)
    other = threading.Thread(target=cell_write)
    other.start()
    other.join()
    writer.join()
    assert sorted(e for e, _ in events) == ["cell written", "long write timed out"]
    # The cell write committed while the calculation was still running on its helper.
    assert dict(events)["cell written"] >= 1
    assert counter.get() == 1 and db.rev == 0 and _rows(db) == []


def test_in_a_group_commit_only_the_long_member_fails(fast: sc.Runtime) -> None:
    from tests.runtime.test_group_commit import commit_queued

    space = fast.space("demo")
    db = space.sqlite_database("d", tables=TABLES)
    counter = space.cell("counter", default=0)
    with space.transact():
        db.exec("INSERT INTO t (v) VALUES ('first')")
    bodies = [
        lambda: db.exec("INSERT INTO t (v) VALUES ('a')"),
        lambda: db.exec(f"INSERT INTO t (v) VALUES ({LONG['trim']})"),
        lambda: counter.set(1),
        lambda: db.exec("INSERT INTO t (v) VALUES ('b')"),
    ]
    outcomes, statements = commit_queued(space, bodies)
    assert isinstance(outcomes[1], sc.ExecTimeout) and outcomes[1].db_id == db.id
    assert outcomes[0] == 2 and outcomes[2] == 3 and outcomes[3] == 4
    assert statements.count("COMMIT") == 1
    assert _rows(db) == ["first", "a", "b"] and db.rev == 3 and counter.get() == 1


def test_an_executemany_shares_one_deadline(fast: sc.Runtime) -> None:
    space = fast.space("demo")
    db = space.sqlite_database("d", tables=TABLES)
    sql = "INSERT INTO t (v) VALUES (trim(?, ?))"
    rows = [["a" * 150_000, "b" * 2999 + "a"]] * 3
    with pytest.raises(sc.ExecTimeout), space.transact():
        db.exec_many(sql, rows)
    assert db.rev == 0 and _rows(db) == []


def test_outside_a_user_write_a_large_call_runs_to_its_end(space: Space, db: sc.SqliteDb) -> None:
    with space.transact():
        db.exec("INSERT INTO messages (body) VALUES ('x')")  # the write connection is set up
    text, chars = "a" * 20_000, "b" * 99 + "a"
    assert len(text) * len(chars) > INLINE_COST
    plain = apsw.Connection(":memory:")
    expected = plain.execute("SELECT length(trim(?, ?)), instr(?, 'b')", (text, chars, text))
    with space.file.write_connection() as conn:
        got = conn.execute("SELECT length(trim(?, ?)), instr(?, 'b')", (text, chars, text))
        assert got.fetchall() == expected.fetchall() == [(0, 0)]
    assert running() == 0  # on the calling thread, no helper


def test_calls_in_a_check_constraint_and_a_generated_column(fast: sc.Runtime) -> None:
    space = fast.space("demo")
    tables = {
        "t": sc.table(
            id="integer primary key",
            p="text not null default 'k%'",
            v="text check (v LIKE p)",
            w="text generated always as (replace(v, 'k', 'K'))",
        )
    }
    db = space.sqlite_database("d", tables=tables)
    with space.transact():
        db.exec("INSERT INTO t (v) VALUES ('kayak')")
    assert db.read("SELECT v, w FROM t") == [{"v": "kayak", "w": "KayaK"}]
    with pytest.raises(sc.ExecError, match="CHECK constraint failed"), space.transact():
        db.exec("INSERT INTO t (v) VALUES ('canoe')")
    long_check = f"INSERT INTO t (p, v) VALUES ('%' || {_a(2999)} || 'b', {_a(400_000)})"
    with pytest.raises(sc.ExecTimeout), space.transact():
        db.exec(long_check)
    assert db.read("SELECT v, w FROM t") == [{"v": "kayak", "w": "KayaK"}] and db.rev == 1


def test_a_text_argument_that_is_not_utf8_is_an_exec_error(space: Space, db: sc.SqliteDb) -> None:
    """It cannot cross into the function the write runs in Python: an ExecError that says so,
    names the functions and what to do (a raw decode error's words were all it said)."""
    sql = "INSERT INTO messages (body) VALUES (trim(CAST(x'ff61' AS TEXT), 'a'))"
    with pytest.raises(sc.ExecError) as info, space.transact():
        db.exec(sql)
    assert type(info.value) is sc.ExecError and info.value.sql == sql
    said = str(info.value)
    assert "a text value that is not valid UTF-8 (b'\\xffa'…) was given to one of" in said
    assert "like(), ltrim(), replace()" in said and "CAST(col AS BLOB)" in said
    assert "UnicodeDecodeError" not in said
    assert db.rev == 0
    with space.transact():  # as advised
        db.exec("INSERT INTO messages (body) VALUES (trim(CAST(x'ff61' AS BLOB), 'a'))")
    assert db.read("SELECT hex(body) AS h FROM messages") == [{"h": "FF"}] and db.rev == 1


def test_a_text_result_that_is_not_utf8_is_stored_as_its_bytes(fast: sc.Runtime) -> None:
    """A blob argument makes the builtin return its bytes as text; the override returns them
    as a blob (Python cannot hand SQLite text that is not UTF-8), small or on a helper."""
    space = fast.space("demo")
    db = space.sqlite_database("d", tables={"t": sc.table(id="integer primary key", b="blob")})
    large = b"\x00\xff\r\n" * 100_000
    with space.transact():
        db.exec_many("INSERT INTO t (id, b) VALUES (?, ?)", [(1, b"\x00\xff\r\n"), (2, large)])
    with space.transact():
        db.exec("UPDATE t SET b = replace(b, x'0d0a', x'0a')")
    rows = db.read("SELECT b, typeof(b) AS kind FROM t ORDER BY id")
    assert rows == [
        {"b": b"\x00\xff\n", "kind": "blob"},
        {"b": b"\x00\xff\n" * 100_000, "kind": "blob"},
    ]
    with space.transact():
        db.exec("INSERT INTO t (id, b) VALUES (3, trim(x'ff61', 'a'))")
    assert db.read("SELECT b FROM t WHERE id = 3") == [{"b": b"\xff"}]


# -- the same results as SQLite's own builtins -----------------------------------------------

CASES: list[tuple[str, tuple[object, ...]]] = [
    ("trim", ("  x  ", " ")),
    ("trim", ("xxaxx", "x")),
    ("trim", ("ééaé", "é")),
    ("trim", ("😀a😀", "😀")),
    ("trim", ("日本語日", "日本")),
    ("trim", ("", "")),
    ("trim", ("abc", "")),
    ("trim", (None, "a")),
    ("trim", ("a", None)),
    ("trim", (b"\x00ab\x00", b"\x00")),
    ("trim", ("a\x00b\x00", "\x00a")),
    ("trim", (123, 1)),
    ("trim", (1.5, "1")),
    ("trim", (-0.0, "-")),
    ("ltrim", ("xxaxx", "x")),
    ("ltrim", (b"abc", "a")),
    ("rtrim", ("xxaxx", "x")),
    ("rtrim", ("aé", "é")),
    ("replace", ("abcabc", "b", "XY")),
    ("replace", ("aaa", "", "x")),
    ("replace", ("aaa", "a", "")),
    ("replace", ("ééé", "é", "e")),
    ("replace", ("a\x00b", "\x00", "-")),
    ("replace", (None, "a", "b")),
    ("replace", ("a", "a", None)),
    ("replace", ("a", None, "b")),
    ("replace", (b"abc", b"b", b"z")),
    ("replace", (12.5, ".", ",")),
    ("replace", (1000, 0, 9)),
    ("instr", ("hello", "l")),
    ("instr", ("hello", "")),
    ("instr", ("", "a")),
    ("instr", ("ééx", "x")),
    ("instr", (b"\xc3\xa9x", b"x")),
    ("instr", (b"\xc3\xa9x", "x")),
    ("instr", (None, "a")),
    ("instr", (12345, 34)),
    ("like", ("a%", "ABC")),
    ("like", ("%é%", "xÉx")),
    ("like", ("_", "é")),
    ("like", ("", "")),
    ("like", ("%", None)),
    ("like", (None, "a")),
    ("like", (b"a%", b"abc")),
    ("like", ("1%", 123)),
    ("like", ("a\\%", "a%", "\\")),
    ("like", ("a!_b", "a_b", "!")),
    ("like", ("a!_b", "axb", "!")),
    ("like", ("a%", "abc", None)),
    ("like", ("a%", "abc", "!!")),
    ("glob", ("a*", "abc")),
    ("glob", ("A*", "abc")),
    ("glob", ("[a-c]?", "bx")),
    ("glob", ("*[^x]", "ax")),
    ("glob", ("?", "é")),
    ("glob", ("[", "[")),
    ("glob", (None, "a")),
    ("unhex", ("41 42", " ")),
    ("unhex", ("4x1", "x")),
    ("unhex", ("zz", "z")),
    ("unhex", ("4", "")),
    ("unhex", ("e9", "é")),
    ("unhex", (None, "")),
    ("jsonb_patch", ('{"a":1}', '{"b":2}')),
    ("jsonb_patch", ('{"a":1,"b":{"c":2}}', '{"a":null,"b":{"d":3}}')),
    ("jsonb_patch", ("[1]", '{"a":1}')),
    ("jsonb_patch", ('{"a":1}', "not json")),
]


def _outcome(conn: apsw.Connection, name: str, args: tuple[object, ...]) -> object:
    sql = f"SELECT {name}({', '.join('?' * len(args))}) AS r"
    try:
        value, kind = conn.execute(f"SELECT r, typeof(r) FROM ({sql})", args).fetchone()
    except apsw.Error as exc:
        return (type(exc), str(exc))
    return (value, kind)


class _Owner:
    deadline: float | None = None


@pytest.mark.parametrize("deadline", [None, "now + 60 s"])
def test_small_calls_give_the_builtins_results(deadline: str | None) -> None:
    plain = apsw.Connection(":memory:")
    owner = _Owner()
    overridden = apsw.Connection(":memory:")
    override_long_calls(overridden, owner)
    owner.deadline = None if deadline is None else time.monotonic() + 60
    assert {name for name, _ in LONG_CALLS} == {name for name, _ in CASES}
    for name, args in CASES:
        assert _outcome(overridden, name, args) == _outcome(plain, name, args), (name, args)
    assert running() == 0


def test_large_calls_on_a_helper_give_the_builtins_results() -> None:
    plain = apsw.Connection(":memory:")
    owner = _Owner()
    overridden = apsw.Connection(":memory:")
    override_long_calls(overridden, owner)
    owner.deadline = time.monotonic() + 600
    text = "ab" * 50_000 + "é" * 1000
    target = json.dumps({f"k{i}": i for i in range(400)})
    patch = json.dumps({f"k{i}": None if i % 2 else [i] for i in range(0, 800, 3)})
    cases: list[tuple[str, tuple[object, ...]]] = [
        ("trim", (text, "ab")),
        ("rtrim", (text, "é")),
        ("replace", (text, "ba", "-")),
        ("instr", (text, "é")),
        ("like", ("%b%é", text)),
        ("glob", ("*bé*", text)),
        ("unhex", ("41" * 60_000, "z")),
        ("jsonb_patch", (target, patch)),
    ]
    for name, args in cases:
        assert (len(str(args[0])) + 1) * (len(str(args[1])) + 1) >= INLINE_COST
        assert _outcome(overridden, name, args) == _outcome(plain, name, args), name


def test_a_user_write_sees_the_builtins_results(space: Space) -> None:
    db = space.sqlite_database(
        "d", tables={"r": sc.table(id="integer primary key", v="blob", k="text")}
    )
    plain = apsw.Connection(":memory:")
    exprs = [
        "trim('xxaxx', 'x')",
        "ltrim(x'00410042', x'00')",
        "replace('aXbXc', 'X', '')",
        "instr('ééx', 'x')",
        "'Abc' LIKE 'a%'",
        "'a%' LIKE 'a!%' ESCAPE '!'",
        "'abc' GLOB 'A*'",
        "hex(unhex('41-42', '-'))",
        "json(jsonb_patch('{\"a\":1}', '{\"b\":2}'))",
    ]
    with space.transact():
        for expr in exprs:
            db.exec(f"INSERT INTO r (v, k) VALUES ({expr}, typeof({expr}))")
    got = [(r["v"], r["k"]) for r in db.read("SELECT v, k FROM r ORDER BY id")]
    expected = [plain.execute(f"SELECT {e}, typeof({e})").fetchone() for e in exprs]
    assert got == expected


# -- the helpers --------------------------------------------------------------------------------

SLOW = ("SELECT length(trim(?1, ?2))", ("a" * 100_000, "b" * 2999 + "a"))


def test_a_busy_helper_makes_the_next_call_wait_until_its_deadline() -> None:
    helpers = _Helpers(1)
    limits = (64 * 1024 * 1024, 50_000)
    first = _Call(*SLOW, limits)
    with pytest.raises(apsw.InterruptError, match="trim\\(\\) ran past"):
        helpers.run("trim", first, time.monotonic() + 0.05)
    assert helpers.running() == 1
    second = _Call("SELECT instr(?1, ?2)", ("abc", "c"), limits)
    with pytest.raises(NoHelperFree, match="instr\\(\\) found no helper free \\(1 busy\\)"):
        helpers.run("instr", second, time.monotonic() + 0.05)
    assert not second.done.is_set()  # never started: taken off the queue
    first.done.wait()
    assert first.result == 0 and first.error is None
    third = _Call("SELECT instr(?1, ?2)", ("abc", "c"), limits)
    assert helpers.run("instr", third, time.monotonic() + 600) == 3
    assert not second.done.is_set() and helpers.running() == 0


def test_an_error_of_a_helpers_call_reaches_its_caller() -> None:
    helpers = _Helpers(1)
    call = _Call("SELECT like(?1, ?2)", ("%" * 200, "a"), (64 * 1024 * 1024, 100))
    with pytest.raises(apsw.SQLError, match="LIKE or GLOB pattern too complex"):
        helpers.run("like", call, time.monotonic() + 600)


def test_the_gate_sees_overridden_functions_by_their_names() -> None:
    conn = apsw.Connection(":memory:")
    conn.execute("CREATE TABLE t (v TEXT)")
    override_long_calls(conn, _Owner())
    gate = Gate().install(conn)
    policy = make_authorizer(Mode.WRITE, database="main", tables={"t"})
    functions: set[str] = set()
    gate.enter(policy, functions=functions)
    try:
        conn.execute(
            "UPDATE t SET v = trim(v, 'x') WHERE v LIKE 'a%' ESCAPE '!' AND instr(v, 'b')",
            prepare_flags=USER_PREPARE_FLAGS,
        )
        with pytest.raises(apsw.SQLError, match="not authorized"):
            conn.execute("UPDATE t SET v = load_extension(v)", prepare_flags=USER_PREPARE_FLAGS)
    finally:
        gate.leave()
    assert functions == {"trim", "like", "instr"}


def test_no_user_statement_can_put_sqlites_like_back(space: Space, db: sc.SqliteDb) -> None:
    # PRAGMA case_sensitive_like registers SQLite's own like again, over the override.
    with pytest.raises(sc.GuardViolation) as info, space.transact():
        db.exec("PRAGMA case_sensitive_like = 1")
    assert info.value.kind == "forbidden-statement"


def test_a_call_made_past_the_deadline_fails_at_once() -> None:
    helpers = _Helpers(1)
    call = _Call("SELECT instr(?1, ?2)", ("abc", "c"), (64 * 1024 * 1024, 50_000))
    with pytest.raises(apsw.InterruptError, match="called past"):
        helpers.run("instr", call, time.monotonic() - 1)
    assert helpers.running() == 0 and not call.done.is_set()
