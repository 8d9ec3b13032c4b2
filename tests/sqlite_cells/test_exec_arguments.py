"""``db.exec``/``exec_many`` parameters SQLite cannot bind are refused at the call (R31): an
``ExecError`` that is also a ``ValueError`` and ``TypeError``; nothing is recorded and the rest of
the transaction (its cell writes, the database's other statements) commits. Database names and
pattern inputs linked to a non-database are checked too."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest

import sqlite_cells as sc
from sqlite_cells._runtime import Space
from sqlite_cells.runtime import LENGTH_LIMIT

from .conftest import MESSAGES

TABLES = {"t": sc.table(id="integer primary key", s="text", n="integer")}
INSERT = "INSERT INTO t (s, n) VALUES (?, ?)"


@pytest.fixture
def db(space: Space) -> sc.SqliteDb:
    return space.sqlite_database("d", tables=TABLES)


def _bad_calls() -> dict[str, tuple[Callable[[sc.SqliteDb], object], str]]:
    many = [["ok", i] for i in range(50)]
    return {
        "int 2**64": (
            lambda db: db.exec(INSERT, ["a", 2**64]),
            "parameter 2 is 18446744073709551616, outside SQLite's 64-bit integers",
        ),
        "int below -2**63": (
            lambda db: db.exec(INSERT, ["a", -(2**63) - 1]),
            "outside SQLite's 64-bit integers",
        ),
        "lone surrogate": (
            lambda db: db.exec(INSERT, ["x\udc80", 1]),
            "parameter 1 is text with a lone surrogate at position 1",
        ),
        "named value": (
            lambda db: db.exec("INSERT INTO t (s) VALUES (:s)", {"s": "\ud800"}),
            ":s is text with a lone surrogate at position 0",
        ),
        "exec_many int": (
            lambda db: db.exec_many(INSERT, [*many, ["a", 2**64], *many]),
            "outside SQLite's 64-bit integers",
        ),
        "exec_many int among NULLs": (
            lambda db: db.exec_many(INSERT, [*many, ["a", None], [None, 2**70]]),
            "outside SQLite's 64-bit integers",
        ),
        "exec_many text": (
            lambda db: db.exec_many(INSERT, [*many, ["é\ud800", 1]]),
            "lone surrogate at position 1",
        ),
        "exec_many text among NULLs and bytes": (
            lambda db: db.exec_many(INSERT, [[None, 1], [b"x", 2], ["ü", 3], ["\udfff", 4]]),
            "lone surrogate at position 0",
        ),
        "exec_many named": (
            lambda db: db.exec_many(
                "INSERT INTO t (s, n) VALUES (:s, :n)", [{"s": "a", "n": 1}, {"s": "b", "n": 2**64}]
            ),
            ":n is 18446744073709551616",
        ),
        "exec_many None": (
            lambda db: db.exec_many(INSERT, None),  # type: ignore[arg-type]  # on purpose
            "exec_many takes an iterable of parameter rows (lists, tuples or mappings), not "
            "NoneType",
        ),
        "exec_many not rows": (
            lambda db: db.exec_many(INSERT, 5),  # type: ignore[arg-type]  # on purpose
            "exec_many takes an iterable of parameter rows (lists, tuples or mappings), not int",
        ),
        "exec_many str": (
            lambda db: db.exec_many(INSERT, "ab"),
            "exec_many takes an iterable of parameter rows (lists, tuples or mappings), not str",
        ),
        "bytes over the length limit": (
            lambda db: db.exec(INSERT, [b"x" * (LENGTH_LIMIT + 1), 1]),
            f"parameter 1 is bytes of {LENGTH_LIMIT + 1} bytes, too big for SQLite",
        ),
        "exec_many bytes over the length limit": (
            lambda db: db.exec_many(INSERT, [[b"x", 1], [None, 2], [b"y" * (LENGTH_LIMIT + 1), 3]]),
            f"parameter 1 is bytes of {LENGTH_LIMIT + 1} bytes",
        ),
        "text over the length limit in UTF-8": (
            lambda db: db.exec(INSERT, ["é" * (LENGTH_LIMIT // 2 + 1), 1]),
            f"parameter 1 is text of {LENGTH_LIMIT + 2} bytes, too big for SQLite",
        ),
        "exec_many text over the length limit": (
            lambda db: db.exec_many(INSERT, [["a", 1], ["b" * (LENGTH_LIMIT + 1), 2]]),
            f"parameter 1 is text of {LENGTH_LIMIT + 1} bytes",
        ),
        "a dict value": (
            lambda db: db.exec(INSERT, ["a", {"x": 1}]),
            "parameter 2 is a dict: bind None, int, float, str, bytes or a Cell",
        ),
        "too few": (
            lambda db: db.exec(INSERT, ["a"]),
            "the statement has 2 parameter(s) but 1 were given",
        ),
        # Bytes of any kind are one value, never a list of parameters (each byte an integer).
        "a bytearray as the parameters": (
            lambda db: db.exec(INSERT, bytearray(b"ab")),  # type: ignore[arg-type]  # on purpose
            "parameters are a list, a tuple or a mapping, not bytearray",
        ),
        "a memoryview as the parameters": (
            lambda db: db.exec(INSERT, memoryview(b"ab")),  # type: ignore[arg-type]  # on purpose
            "parameters are a list, a tuple or a mapping, not memoryview",
        ),
        "exec_many bytearray rows": (
            lambda db: db.exec_many(INSERT, [bytearray(b"ab")]),  # type: ignore[list-item]
            "row 0 (counting from 0): parameters are a list, a tuple or a mapping, not bytearray",
        ),
        "exec_many a bytearray": (
            lambda db: db.exec_many(INSERT, bytearray(b"ab")),  # type: ignore[arg-type]
            "exec_many takes an iterable of parameter rows (lists, tuples or mappings), not "
            "bytearray",
        ),
    }


@pytest.mark.parametrize("name", list(_bad_calls()))
def test_an_unbindable_parameter_is_refused_at_the_call_and_the_transaction_commits(
    space: Space, db: sc.SqliteDb, name: str
) -> None:
    call, message = _bad_calls()[name]
    c = space.cell("c", default=0)
    with space.transact():
        c.set(1)
        with pytest.raises(sc.ExecError) as info:
            call(db)
        db.exec(INSERT, ["good", 1])
    error = info.value
    assert isinstance(error, ValueError)
    assert isinstance(error, TypeError)
    assert error.db_id == db.id
    assert message in str(error)
    assert "nothing was recorded and the transaction is still usable" in str(error)
    assert c.get() == 1
    assert db.rev == 1
    assert db.read("SELECT s, n FROM t") == [{"s": "good", "n": 1}]


def test_the_edges_of_what_binds_are_accepted_on_both_paths(space: Space, db: sc.SqliteDb) -> None:
    edges: list[list[Any]] = [
        ["lo", -(2**63)],
        ["hi", 2**63 - 1],
        ["héllo wörld ✓ 😀", 0],
        [None, None],
        [b"\x00\xff", 1.5],
        ["mixed", True],
    ]
    with space.transact():
        for row in edges:
            db.exec(INSERT, row)
    with space.transact():
        db.exec_many(INSERT, edges)
        db.exec_many(INSERT, [["a", 1], ["b", None], [None, 2**63 - 1]])
    rows = db.read("SELECT s, n FROM t ORDER BY id")
    expected = [{"s": s, "n": int(n) if isinstance(n, bool) else n} for s, n in edges]
    assert rows[:6] == expected
    assert rows[6:12] == expected
    assert rows[12:] == [{"s": "a", "n": 1}, {"s": "b", "n": None}, {"s": None, "n": 2**63 - 1}]


def test_values_up_to_the_length_limit_are_accepted_at_the_call(
    space: Space, db: sc.SqliteDb
) -> None:
    """Whether a row (or the commit record holding it) that large commits is another limit
    (R44): here only the call is checked, and the transaction is given up."""

    class GiveUp(Exception):
        pass

    with pytest.raises(GiveUp), space.transact():
        db.exec(INSERT, ["é" * (LENGTH_LIMIT // 2), 1])
        db.exec(INSERT, [b"x" * LENGTH_LIMIT, 1])
        db.exec_many(INSERT, [["x" * LENGTH_LIMIT, 2], [None, 3], [b"y" * LENGTH_LIMIT, 4]])
        db.exec_many(INSERT, [["ü" * (LENGTH_LIMIT // 2), 2], ["a", 3]])
        raise GiveUp
    assert db.rev == 0


def test_exec_many_still_takes_any_iterable_of_rows(space: Space, db: sc.SqliteDb) -> None:
    with space.transact():
        db.exec_many(INSERT, (["g", i] for i in range(3)))
        db.exec_many(INSERT, ())
    assert db.read("SELECT count(*) AS n FROM t") == [{"n": 3}]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "a database name is a non-empty str, not ''"),
        (5, "a database name is a non-empty str, not int (5)"),
        ("d\ud800", "the database name 'd\\ud800' is not valid Unicode text"),
    ],
)
def test_a_database_name_is_a_non_empty_string_of_valid_text(
    space: Space, store: Path, name: object, message: str
) -> None:
    before = sorted(store.iterdir())
    with pytest.raises(sc.ValueEncodeError) as info:
        space.sqlite_database(name, tables=TABLES)  # type: ignore[arg-type]  # on purpose
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, TypeError)
    assert message in str(info.value)
    assert sorted(store.iterdir()) == before


def test_a_nameless_database_outside_a_pattern_is_a_type_error_of_ours(space: Space) -> None:
    with pytest.raises(
        sc.SqliteCellsError, match="a database outside a pattern needs a name"
    ) as info:
        space.sqlite_database(tables=TABLES)
    assert isinstance(info.value, TypeError)


def test_a_source_that_is_not_a_vm_source_is_a_bad_argument(space: Space) -> None:
    with pytest.raises(sc.SqliteCellsError, match=r"source= takes sc\.VmSource") as info:
        space.sqlite_database("v", tables=TABLES, source="/x.db")  # type: ignore[arg-type]
    assert isinstance(info.value, TypeError)


@sc.pattern
def _lookup(db: sc.SqliteDb) -> Any:
    return db


def test_a_pattern_database_linked_to_a_plain_cell_fails_with_a_source_error(
    rt: sc.Runtime, space: Space
) -> None:
    """R61: the input follows what it links to; a cell without a database handle cannot be its
    source, for queries (in their state) and for writes (at the call)."""
    plain = space.cell("plain", default=5)
    piece = space.run(_lookup, key="main")
    linked = piece.outputs
    query = linked.query("SELECT 1 AS one")
    rt.settle(5)
    assert query.get().pending
    with pytest.raises(sc.SqliteCellsError, match="holds no database handle"):
        piece.inputs["db"].link(plain)  # refused at the call
    with space.transact():
        piece.inputs["db"].set(plain)  # the same link, as the input's value
    rt.settle(5)
    state = query.get()
    assert type(state.error) is sc.SourceError
    assert f"cell {plain.id} in 'demo' is linked where a database is expected" in str(state.error)
    assert "(its value is 5)" in str(state.error)
    with pytest.raises(sc.SourceError, match="does not hold a database handle"), space.transact():
        linked.exec("INSERT INTO t (s) VALUES ('x')")


def test_table_and_column_names_that_are_not_valid_text_are_a_schema_error(
    space: Space,
) -> None:
    with pytest.raises(sc.SchemaError, match="is not valid Unicode text") as info:
        space.sqlite_database("s", tables={"t\ud800": sc.table(a="text")})
    assert isinstance(info.value, ValueError)
    # A column name is refused as soon as the table is built.
    with pytest.raises(sc.SchemaError, match=r"column name 'a\\udcff' is not valid") as info:
        sc.table(**{"a\udcff": "text"})
    assert isinstance(info.value, ValueError)


def test_a_spec_that_is_not_valid_text_is_blamed_on_the_spec() -> None:
    with pytest.raises(sc.SchemaError) as info:
        sc.table(id="integer primary key", a="text default '\ud800'")
    assert str(info.value) == (
        "column 'a': the spec \"text default '\\ud800'\" is not valid Unicode text (a lone "
        "surrogate at position 14): SQLite reads specs as UTF-8; decode the text properly first"
    )


def test_an_empty_index_name_is_refused_in_good_english() -> None:
    with pytest.raises(sc.SchemaError) as info:
        sc.table(a="text", indexes={"": ["a"]})
    assert str(info.value) == "table(): an index name is empty; give it a name"


def test_a_disk_source_path_that_is_not_valid_text_is_refused(space: Space, tmp_path: Path) -> None:
    with pytest.raises(sc.DiskSourceError, match="a lone surrogate at position") as info:
        space.register_disk_source(f"{tmp_path}/x\ud800.db")
    assert info.value.rule == "exists"
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("sql", "params", "said"),
    [
        ("SELECT ? AS v", ["\ud800"], "lone surrogate"),
        ("SELECT ? AS v", [2**64], "outside SQLite's 64-bit integers"),
        ("SELECT :a AS v", {"a": "\udcff"}, "lone surrogate"),
        ("SELECT ? AS v", [object()], "bind None, int, float, str, bytes"),
        ("SELECT ? AS v", [float("nan")], "parameter 1 is NaN, which SQLite would store as NULL"),
        # Parameters that do not fit the statement's: the same rules and words as db.exec's.
        ("SELECT ? AS a", [], "the statement has 1 parameter(s) but 0 were given"),
        ("SELECT ? AS a", None, "the statement has 1 parameter(s) but 0 were given"),
        ("SELECT ? AS a, ? AS b", 7, "the statement has 2 parameter(s) but 1 were given"),
        ("SELECT 1 AS a", [5], "the statement has 0 parameter(s) but 1 were given"),
        ("SELECT ? AS a", {"a": 1}, "positional parameters need a list of values, not a mapping"),
        ("SELECT :a AS a", {"b": 1}, "no value for the named parameter(s) a"),
        ("SELECT :a AS a", [1], "named parameters need a mapping of values, not a list"),
        ("SELECT :a AS a", "x", "not a lone value (str, which would be the one positional"),
        ("SELECT ?1 AS a, :b AS b", {"b": 1}, "positional parameters need a list of values"),
    ],
)
def test_read_parameters_sqlite_cannot_bind_are_refused_at_the_call(
    sql: str, params: Any, said: str
) -> None:
    with sc.Runtime.ephemeral() as rt:
        db = rt.space("s").sqlite_database("t", tables={"t": sc.table(x="text")})
        for call in (db.read, db.query):
            with pytest.raises(sc.QueryError, match=re.escape(said)) as info:
                call(sql, params)
            assert isinstance(info.value, ValueError) and isinstance(info.value, TypeError)
        cell = rt.space("s").cell("c", default=1)
        assert db.read("SELECT ? AS v, ? AS w", [cell, 2.5]) == [{"v": 1, "w": 2.5}]
        # A lone value is the one positional parameter; extra names in a mapping are ignored.
        assert db.read("SELECT ? AS v", cell) == [{"v": 1}]
        # ... and not a mapping for named ones, whatever the cell holds.
        held = rt.space("s").cell("held", default={"a": 1})
        with pytest.raises(sc.QueryError, match=re.escape("not a lone value (a cell, which")):
            db.read("SELECT :a AS v", held)
        assert db.read("SELECT :a AS v", {"a": "x", "unused": 2}) == [{"v": "x"}]
        assert db.read("SELECT ? AS v", [float("inf")]) == [{"v": float("inf")}]


@pytest.mark.parametrize(
    ("sql", "params", "said"),
    [
        (
            "SELECT :\u00e9 AS x",
            {"e\u0301": 1},
            "no value for the named parameter(s) \u00e9; the mapping's key(s) 'e\\u0301' name no "
            "parameter of the statement: 'e\\u0301' is its :\u00e9 ('\\xe9') written with other "
            "Unicode code points, and SQLite compares names as written; give the key as the "
            "statement spells it",
        ),
        (
            "SELECT :a AS y",
            {"a\ud800": 1},
            "no value for the named parameter(s) a; the mapping's key(s) 'a\\ud800' name no "
            "parameter of the statement",
        ),
    ],
)
def test_a_named_parameter_given_under_a_look_alike_key_names_the_key(
    space: Space, db: sc.SqliteDb, sql: str, params: dict[str, Any], said: str
) -> None:
    """A key that differs from the statement's name only in its Unicode form or by a lone
    surrogate looks like the name in a message: the refusal shows the key given, as code
    points, and for another Unicode form which name it is (reads and writes alike)."""
    for call in (db.read, db.query):
        with pytest.raises(sc.QueryError) as info:
            call(sql, params)
        assert type(info.value).__name__ == "QueryArgumentError"
        assert isinstance(info.value, ValueError) and isinstance(info.value, TypeError)
        assert (info.value.db_id, info.value.sql) == (db.id, sql)
        assert said in str(info.value)
    with pytest.raises(sc.ExecError) as raised, space.transact():
        db.exec(f"INSERT INTO t (s) {sql}", params)
    assert said in str(raised.value)
    assert db.read("SELECT count(*) AS n FROM t") == [{"n": 0}]


def test_a_nan_parameter_of_a_write_is_refused_at_the_call(space: Space, db: sc.SqliteDb) -> None:
    """SQLite binds a NaN as NULL: stored silently, the number would be lost."""
    nan = float("nan")

    class Hidden(float):  # a NaN whose comparisons say it is not one
        def __eq__(self, other: object) -> bool:
            return True

        def __ne__(self, other: object) -> bool:
            return False

        __hash__ = float.__hash__

    calls = {
        "exec": lambda: db.exec(INSERT, ["a", nan]),
        "hidden": lambda: db.exec(INSERT, ["a", Hidden("nan")]),
        "exec_many": lambda: db.exec_many(INSERT, [["a", 1.5], ["b", nan], ["c", 2.5]]),
        "exec_many nullable": lambda: db.exec_many(INSERT, [["a", None], ["b", nan]]),
        "named": lambda: db.exec("INSERT INTO t (s, n) VALUES (:s, :n)", {"s": "a", "n": nan}),
    }
    for name, call in calls.items():
        with space.transact():
            with pytest.raises(sc.ExecError, match="is NaN, which SQLite would store") as info:
                call()
            assert isinstance(info.value, ValueError) and isinstance(info.value, TypeError), name
            db.exec(INSERT, [name, 0])
    # Infinities and a column of floats whose sum is not a number (inf + -inf) are stored as given.
    with space.transact():
        db.exec_many(INSERT, [["inf", float("inf")], ["-inf", float("-inf")]])
    rows = db.read("SELECT s, n FROM t WHERE s LIKE '%inf' ORDER BY id")
    assert rows == [{"s": "inf", "n": float("inf")}, {"s": "-inf", "n": float("-inf")}]
    assert db.read("SELECT count(*) AS n FROM t WHERE n IS NULL") == [{"n": 0}]


@pytest.mark.parametrize("sql", ["SELECT ?0 AS v", "SELECT ?40000 AS v", "SELECT ?1000000 AS v"])
def test_a_parameter_number_sqlite_does_not_have_is_refused_by_the_front_end(
    db: sc.SqliteDb, space: Space, sql: str
) -> None:
    number = sql.split()[1]
    for call, kind in (
        (lambda: db.read(sql, [1]), "not-read-only"),
        (lambda: db.query(sql, [1]), "not-read-only"),
        (lambda: db.exec(f"INSERT INTO t (s) VALUES ({number})", [1]), "not-a-write"),
    ):
        with space.transact(), pytest.raises(sc.GuardViolation) as info:
            call()
        assert info.value.kind == kind
        assert f"parameter {number}: SQLite numbers parameters ?1 to ?32766" in str(info.value)
    assert db.read("SELECT ?32766 AS v", [None] * 32765 + [3]) == [{"v": 3}]


def test_a_query_of_a_closed_runtime_is_refused_at_the_call(store: Path) -> None:
    """Whether or not the database's handle is cached, as db.read is."""
    rt = sc.Runtime(store)
    space = rt.space("s")
    written = space.sqlite_database("w", tables=TABLES)
    with space.transact():
        written.exec(INSERT, ["a", 1])
    never = space.sqlite_database("n", tables=TABLES)
    rt.close()
    for db in (written, never):
        for call in (db.query, db.read):
            with pytest.raises(sc.ClosedError, match="is closed"):
                call("SELECT s FROM t")


def test_a_star_before_a_parameter_leaves_its_column_untold(space: Space) -> None:
    """R31: a Cell is bound to a link column only. ``*`` in a select list stands for as many
    columns as its source has; counted as one, it shifted the parameters after it, and a Cell
    meant for nothing was stored as link text in ``ts``. Those parameters target no column
    that can be told: a Cell there is refused at the call; a plain value binds as SQLite binds."""
    db = space.sqlite_database("chat", tables=MESSAGES)
    alice = space.cell("alice", default=1)
    shifted = [
        "INSERT INTO messages (author_cf_link, body, ts) SELECT *, ? FROM (SELECT NULL, 'b')",
        "INSERT INTO messages (author_cf_link, body, ts) SELECT t.*, ? FROM "
        "(SELECT NULL, 'b') AS t",
        "UPDATE messages SET (author_cf_link, body, ts) = (SELECT *, ? FROM (SELECT NULL, 'b'))",
    ]
    with space.transact():
        db.exec("INSERT INTO messages (body) VALUES ('a')")
        for sql in shifted:
            with pytest.raises(sc.LinkEncodeError, match="targets no column"):
                db.exec(sql, [alice])
        db.exec(shifted[0], [7])
    assert db.read("SELECT author_cf_link, body, ts FROM messages WHERE body = 'b'") == [
        {"author_cf_link": None, "body": "b", "ts": 7}
    ]


def test_a_row_value_of_one_column_maps_its_parameter(space: Space) -> None:
    """R31: ``SET (col) = (?)`` binds its parameter to ``col`` as ``SET col = ?`` does: a Cell
    to a link column is stored as its link, a non-link value there is refused at the call."""
    db = space.sqlite_database("chat", tables=MESSAGES)
    alice = space.cell("alice", default=1)
    with space.transact():
        db.exec("INSERT INTO messages (body) VALUES ('a')")
        with pytest.raises(sc.LinkEncodeError, match="targets the link column author_cf_link"):
            db.exec("UPDATE messages SET (author_cf_link) = (?)", ["junk"])
        db.exec("UPDATE messages SET (author_cf_link) = (?)", [alice])
    assert db.read("SELECT author_cf_link FROM messages") == [{"author_cf_link": alice.link_str()}]


UPSERTED = {
    "t": sc.table(
        id="integer primary key",
        name="text unique",
        ref_cf_link=sc.cf_link(),
        other_cf_link=sc.cf_link(),
    )
}


class Upserted(msgspec.Struct, frozen=True):
    name: str
    ref: sc.Cell


def test_an_upsert_of_several_clauses_maps_its_values(space: Space) -> None:
    """R31/R22: with two ``ON CONFLICT`` clauses (SQLite reads a chain of them) the VALUES
    parameters were not mapped: a Cell bound to a link column there was refused as "targets no
    column". They are mapped whatever the clauses after them are."""
    db = space.sqlite_database("d", tables=UPSERTED)
    alice = space.cell("alice", default=1)
    values = "INSERT INTO t (id, name, ref_cf_link) VALUES (?, ?, ?) "
    tails = [
        "ON CONFLICT(id) DO NOTHING ON CONFLICT DO NOTHING",
        "ON CONFLICT(id) DO UPDATE SET name = excluded.name ON CONFLICT DO NOTHING",
        "ON CONFLICT(id) DO UPDATE SET name = 'x' ON CONFLICT DO UPDATE SET name = 'y'",
    ]
    with space.transact():
        for n, tail in enumerate(tails):
            db.exec(values + tail, [None, f"n{n}", alice])
    rows = db.read("SELECT name, ref_cf_link FROM t ORDER BY id")
    assert rows == [{"name": f"n{n}", "ref_cf_link": alice.link_str()} for n in range(3)]
    typed = db.read("SELECT name, ref_cf_link AS ref FROM t ORDER BY id", row=Upserted)
    assert typed[0] == Upserted("n0", alice)
    assert isinstance(typed[0].ref, sc.Cell) and typed[0].ref.get() == 1


def test_every_do_update_set_of_an_upsert_maps_its_parameters(space: Space) -> None:
    """R31: a Cell in the second ``DO UPDATE SET`` clause is stored as its link, and a non-link
    value for a link column there is refused at the call, as in the first clause. Parameters in
    a clause's WHERE or conflict target still target no column."""
    db = space.sqlite_database("d", tables=UPSERTED)
    alice, bob, carol = (space.cell(name, default=0) for name in ("alice", "bob", "carol"))
    sql = (
        "INSERT INTO t (id, name, ref_cf_link) VALUES (?, ?, ?) "
        "ON CONFLICT(id) DO UPDATE SET ref_cf_link = ? WHERE ? "
        "ON CONFLICT(name) DO UPDATE SET other_cf_link = (?)"
    )
    with space.transact():
        db.exec(sql, [1, "a", alice, None, 1, None])
        db.exec(sql, [1, "z", None, bob, 1, None])  # the id conflicts: the first clause
        db.exec(sql, [2, "a", None, None, 1, carol])  # the name conflicts: the second clause
        for params, column in (
            ([3, "b", None, "junk", 1, None], "ref_cf_link"),
            ([3, "b", None, None, 1, "junk"], "other_cf_link"),
        ):
            with pytest.raises(sc.LinkEncodeError, match=f"targets the link column {column}"):
                db.exec(sql, params)
        with pytest.raises(sc.LinkEncodeError, match="parameter 5 is a cell but targets no col"):
            db.exec(sql, [3, "b", None, None, alice, None])
    assert db.read("SELECT id, name, ref_cf_link, other_cf_link FROM t") == [
        {"id": 1, "name": "a", "ref_cf_link": bob.link_str(), "other_cf_link": carol.link_str()}
    ]


KEYWORD_NAMED = {
    "t": sc.table(
        {"id": "integer primary key", "like": "text", "outer": "text", "rollback": "integer"}
        | {"a_cf_link": sc.cf_link()}
    )
}


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO t (id, like, a_cf_link) SELECT 2, 'x', ? WHERE true",
        "INSERT INTO t (id, outer, a_cf_link) SELECT 1_000, 'x', ? WHERE 1_000 > 1",
        "UPDATE t SET like = 'y', a_cf_link = ? FROM (SELECT 1) AS v",
        "UPDATE t SET (outer, a_cf_link) = ('y', ?) FROM (SELECT 1) AS v WHERE rollback IS NULL",
        "WITH v AS (SELECT 1) UPDATE t SET rollback = 2, a_cf_link = ?",
        "INSERT INTO t (id) VALUES (1) ON CONFLICT(id) DO UPDATE SET 'a_cf_link' = ?",
    ],
)
def test_a_statement_naming_columns_the_parser_reads_as_keywords_maps_its_values(
    space: Space, sql: str
) -> None:
    """R31: SQLite takes ``like``, ``outer``, ``rollback`` … as column names, a string literal
    as a SET's column, digits with separators; the parameter mapper's parser did not, and gave
    every parameter no column: a Cell for the link column was refused as "targets no column",
    and a text there passed the call to fail the whole commit. Each maps as its plain twin."""
    db = space.sqlite_database("d", tables=KEYWORD_NAMED)
    alice = space.cell("alice", default=1)
    with space.transact():
        db.exec("INSERT INTO t (id) VALUES (1)")
    with space.transact():
        with pytest.raises(sc.LinkEncodeError, match="targets the link column a_cf_link"):
            db.exec(sql, ["junk"])
        db.exec(sql, [alice])  # the transaction is still usable after the refusal (R32)
        space.cell("written").set(True)
    assert space.cell("written").get() is True
    linked = db.read("SELECT a_cf_link FROM t WHERE a_cf_link IS NOT NULL")
    assert linked == [{"a_cf_link": alice.link_str()}]


def test_a_read_with_a_parameter_not_ready_is_refused_at_the_call(
    space: Space, db: sc.SqliteDb
) -> None:
    """A one-shot read cannot wait for ``sc.PENDING`` (or a pending query): refused at the call
    with PendingValue, as a write is (R31), not run into SQLite's binding error."""
    for params in ([sc.PENDING], {"a": sc.PENDING}):
        sql = "SELECT ? AS x" if isinstance(params, list) else "SELECT :a AS x"
        with pytest.raises(sc.PendingValue, match=r"of db\.read is not ready yet"):
            db.read(sql, params)
    assert db.read("SELECT ? AS x", [1]) == [{"x": 1}]


def _query_error(rt: sc.Runtime, query: sc.Query[Any]) -> BaseException | None:
    rt.settle(10)
    state = query.get()
    assert not state.pending
    if state.error is not None:
        assert state.result is None
    return state.error


def test_a_nan_a_cell_parameter_holds_is_refused_as_a_nan_given_directly_is(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb
) -> None:
    """SQLite binds a NaN as NULL: one a derived cell holds is refused when the read reads it,
    in the words of a NaN given directly, never bound as NULL (R31). An infinity binds."""
    with space.transact():
        db.exec(INSERT, ["null", None])
    source = space.cell("source", default=0)
    number = sc.derive(source, lambda v: float("nan") if v == 0 else float(v))
    sql = "SELECT count(*) AS k FROM t WHERE n IS ?"
    rt.settle(10)
    for params, key in (([number], "1"), ({"v": number}, "v"), (number, "1")):
        shown = sql if not isinstance(params, dict) else sql.replace("?", ":v")
        with pytest.raises(sc.QueryError, match=f"parameter {key} is NaN, which SQLite") as info:
            db.read(shown, params)
        assert isinstance(info.value, ValueError) and isinstance(info.value, TypeError)
    query = db.query(sql, [number])
    error = _query_error(rt, query)
    assert isinstance(error, sc.QueryError) and isinstance(error, ValueError)
    assert "is NaN" in str(error)
    with space.transact():
        source.set(7)
    assert _query_error(rt, query) is None
    assert query.get().result == [{"k": 0}]
    assert db.read(sql, [sc.derive(source, lambda v: float("inf"))]) == [{"k": 0}]


def test_a_derived_parameter_whose_function_failed_fails_the_read_until_it_succeeds(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb
) -> None:
    """A failed derived cell has no value (its get() raises): as a parameter it is the read's
    error, with the failure as its cause, never bound as NULL (R31, R42)."""
    with space.transact():
        db.exec(INSERT, ["null", None])
    divisor = space.cell("divisor", default=0)
    ratio = sc.derive(divisor, lambda v: 10 // v)
    sql = "SELECT count(*) AS k FROM t WHERE n IS ?"
    rt.settle(10)
    with pytest.raises(sc.QueryError, match="derived cell whose last computation failed") as info:
        db.read(sql, [ratio])
    assert isinstance(info.value, ValueError) and isinstance(info.value, TypeError)
    assert isinstance(info.value.__cause__, ZeroDivisionError)
    assert "ZeroDivisionError: integer division or modulo by zero" in str(info.value)
    query = db.query(sql, [ratio])
    error = _query_error(rt, query)
    assert isinstance(error, sc.QueryError) and isinstance(error.__cause__, ZeroDivisionError)
    with space.transact():
        divisor.set(5)
        db.exec(INSERT, ["two", 2])
    assert _query_error(rt, query) is None
    assert query.get().result == [{"k": 1}]
    assert db.read(sql, [ratio]) == [{"k": 1}]


def test_a_cell_parameter_whose_value_is_a_cell_or_a_database_is_refused_clearly(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb
) -> None:
    """A cell among a read's parameters stands for its value; a value that is itself a cell (a
    link) or a database handle is not looked through again (its changes would not re-run the
    query): refused as a list is, saying how to match a link column — not apsw's binding text."""
    target = space.cell("target", default=1)
    holder = space.cell("holder", default=None)
    with space.transact():
        holder.set(target)
    handle = sc.derive(target, lambda _: db)
    sql = "SELECT count(*) AS k FROM t WHERE s = ?"
    rt.settle(10)
    queries = []
    for param, kind in ((holder, "a Cell"), (handle, "a SqliteDb")):
        with pytest.raises(sc.QueryError) as info:
            db.read(sql, [param])
        said = str(info.value)
        assert isinstance(info.value, ValueError) and isinstance(info.value, TypeError)
        assert "parameter 1 is a cell whose value is <" in said and kind in said, said
        assert "cell.link_str()" in said and "Bad binding" not in said
        queries.append(db.query(sql, [param]))
        error = _query_error(rt, queries[-1])
        assert isinstance(error, sc.QueryError) and isinstance(error, TypeError)
        assert str(error) == said
    with space.transact():
        holder.set("plain text")
    assert _query_error(rt, queries[0]) is None
    assert queries[0].get().result == [{"k": 0}]
    assert db.read(sql, [holder]) == [{"k": 0}]


@pytest.mark.parametrize("value", [bytearray(b"ab"), memoryview(b"ab")], ids=type)
def test_bytes_of_any_kind_are_one_read_parameter_and_refused_as_one(
    db: sc.SqliteDb, value: object
) -> None:
    """Not split into their bytes as integers (``SELECT ?, ?`` read ``97, 98``): a lone value,
    which only ``bytes`` is of all the bytes types."""
    with pytest.raises(sc.QueryError) as info:
        db.read("SELECT ? AS x", value)
    assert isinstance(info.value, TypeError)
    assert f"parameter 1 is a {type(value).__name__}: bind None, int, float, str, bytes" in str(
        info.value
    )
    with pytest.raises(sc.QueryError, match=r"the statement has 2 parameter\(s\) but 1 were"):
        db.read("SELECT ? AS x, ? AS y", value)
    assert db.read("SELECT ? AS x", b"ab") == [{"x": b"ab"}]


def test_a_cell_among_read_parameters_is_refused_by_its_value_in_those_words(
    space: Space, db: sc.SqliteDb
) -> None:
    """A cell stands for its value: a database handle given as a parameter binds its handle
    value, a dict; the refusal says the dict is the cell's value, not what was given."""
    with pytest.raises(sc.QueryError) as info:
        db.read("SELECT ? AS x", [db])
    assert "the value of the cell given as parameter 1 is a dict: bind None" in str(info.value)
    holder = space.cell("holder", default=[1, 2])
    with pytest.raises(sc.QueryError, match="the value of the cell given as parameter p is a list"):
        db.read("SELECT :p AS x", {"p": holder})


class _AttrDict(dict[str, Any]):
    """The common idiom: attribute reads are key reads (a missing key is a KeyError)."""

    __getattr__ = dict.__getitem__


class _Order(msgspec.Struct):
    id: int
    pending: bool


@pytest.mark.parametrize(
    "value",
    [_AttrDict(a=1), _Order(1, pending=True), _Order(2, pending=False)],
    ids=["attribute-dict", "pending-record", "ready-record"],
)
def test_a_value_with_a_pending_attribute_is_a_value_not_a_pending_one(
    space: Space, db: sc.SqliteDb, value: object
) -> None:
    """Only ``sc.PENDING`` and a query state are "not ready yet": a user's record whose
    ``pending`` is True was a PendingValue (with advice to settle, which could never help), and
    a dict whose attribute reads are key reads raised a raw KeyError."""
    with space.transact():
        with pytest.raises(sc.ExecError, match="bind None, int, float, str, bytes") as info:
            db.exec(INSERT, [value, 1])
        assert isinstance(info.value, TypeError)
        db.exec(INSERT, ["ok", 1])
    for call in (db.read, db.query):
        with pytest.raises(sc.QueryError, match="bind None, int, float, str, bytes"):
            call("SELECT ? AS v", [value])
    assert db.read("SELECT s FROM t") == [{"s": "ok"}]


def test_link_and_pending_refusals_of_a_write_name_the_database_and_statement(
    space: Space,
) -> None:
    """Errors ("where"; errors carry their data): an ExecArgumentError refused at the call named
    the database and the statement and carried ``db_id`` and ``sql``; a LinkEncodeError or a
    PendingValue refused at the same call did neither."""
    db = space.sqlite_database("links", tables=MESSAGES)
    ann = space.cell("ann")
    calls = {
        "cell to a plain column": (
            sc.LinkEncodeError,
            "INSERT INTO messages (body) VALUES (?)",
            [ann],
        ),
        "text to a link column": (
            sc.LinkEncodeError,
            "INSERT INTO messages (author_cf_link, body) VALUES (?, 'x')",
            ["ann"],
        ),
        "pending": (sc.PendingValue, "UPDATE messages SET body = ? WHERE id = 1", [sc.PENDING]),
    }
    with space.transact():
        for error, sql, params in calls.values():
            with pytest.raises(error) as info:
                db.exec(sql, params)
            assert (info.value.db_id, info.value.sql) == (db.id, sql)
            assert str(info.value).startswith(f"database {db.id}: ")
            assert str(info.value).endswith(
                f"in {sql!r}; nothing was recorded and the transaction is still usable"
            )
        db.exec("INSERT INTO messages (body) VALUES ('kept')")
    with pytest.raises(sc.LinkEncodeError) as at_commit, space.transact():
        db.exec("INSERT INTO messages (author_cf_link, body) VALUES ('bob', 'y')")
    assert at_commit.value.db_id == db.id and "'bob'" in str(at_commit.value.sql)
    assert db.read("SELECT body FROM messages") == [{"body": "kept"}]
    with pytest.raises(sc.PendingValue) as read:
        db.read("SELECT ? AS v", [sc.PENDING])
    assert (read.value.db_id, read.value.sql) == (db.id, "SELECT ? AS v")


def test_a_stored_cell_parameter_that_cannot_be_read_says_what_to_do_about_a_cell(
    store: Path, rt: sc.Runtime, space: Space, db: sc.SqliteDb
) -> None:
    """A stored cell among a read's parameters whose value cannot be read (its runtime is
    closed) was refused with the advice for a derived cell ("its function, or its inputs ...
    once a computation succeeds"), which it has none of: the refusal says what to do for a
    cell, and the same cell taken from this runtime binds."""
    with sc.Runtime(store) as other:
        closed = other.space(space.id).cell("n", default=4)
    with pytest.raises(sc.QueryError) as info:
        db.read("SELECT ? AS v", [closed])
    message = str(info.value)
    assert "a cell whose value could not be read" in message and "closed" in message
    assert "rt.cell_from_link(cell.link())" in message
    assert "computation" not in message and "its function" not in message
    assert isinstance(info.value.__cause__, sc.ClosedError)
    assert db.read("SELECT ? AS v", [rt.cell_from_link(closed.link())]) == [{"v": None}]
