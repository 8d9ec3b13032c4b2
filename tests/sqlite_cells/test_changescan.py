"""The C reading of a session changeset (``read/_changescan.c``, R51) says what apsw's change
iterator says, table by table: each table's column count, and the columns its UPDATEs gave a
value — or None when a row was inserted or deleted or a primary key column changed; and bytes
that are not a changeset are a ValueError, never a crash or a wrong answer taken as right."""

from __future__ import annotations

import contextlib
import random

import apsw
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sqlite_cells.read._changescan import scan

Scanned = dict[str, tuple[int, frozenset[int] | None]]

SCHEMA = (
    "CREATE TABLE a (k INTEGER PRIMARY KEY, x, y, z);"
    "CREATE TABLE b (k TEXT PRIMARY KEY COLLATE NOCASE, x, y) WITHOUT ROWID;"
    "CREATE TABLE c (p, q, x, y, PRIMARY KEY (p, q));"
    "CREATE TABLE d (x, y);"  # no primary key: captured by rowid, one column more
)
TABLES = {"a": ("k", ["x", "y", "z"]), "b": ("k", ["x", "y"]), "c": ("p", ["q", "x", "y"]),
          "d": ("rowid", ["x", "y"])}  # fmt: skip


def by_iterator(changeset: bytes) -> Scanned:
    """The reference: apsw's iterator, change by change."""
    found: Scanned = {}
    for change in apsw.Changeset.iter(changeset):
        width, before = found.get(change.name, (change.column_count, frozenset()))
        if before is None:
            continue
        if change.op != "UPDATE":
            found[change.name] = (width, None)
            continue
        now = {i for i, value in enumerate(change.new) if value is not apsw.no_change}
        if not change.pk_columns.isdisjoint(now):
            found[change.name] = (width, None)
        else:
            found[change.name] = (width, before | now)
    return found


def _connection() -> apsw.Connection:
    conn = apsw.Connection(":memory:")
    conn.execute(SCHEMA)
    for k in range(6):
        conn.execute("INSERT INTO a VALUES (?, 1, 'one', x'01')", (k,))
        conn.execute("INSERT INTO b VALUES (?, 1, 2)", (f"k{k}",))
        conn.execute("INSERT INTO c VALUES (?, ?, 1, 2)", (k, -k))
        conn.execute("INSERT INTO d VALUES (?, 2)", (k,))
    return conn


def _captured(conn: apsw.Connection, statements: list[tuple[str, tuple[object, ...]]]) -> bytes:
    session = apsw.Session(conn, "main")
    session.config(apsw.SQLITE_SESSION_OBJCONFIG_ROWID, 1)
    session.attach()
    for sql, args in statements:
        with contextlib.suppress(apsw.ConstraintError, apsw.MismatchError):
            conn.execute(sql, args)  # (a key taken, a float key: the statement changes nothing)
    changeset = session.changeset()
    session.close()
    return changeset


VALUES = st.one_of(
    st.none(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
    st.text(max_size=300),  # (past 127 bytes a length takes two varint bytes)
    st.binary(max_size=300),
    st.sampled_from([1, "one", b"\x01", 1.0]),  # the values the rows hold: no change
)


@st.composite
def statements(draw: st.DrawFn) -> list[tuple[str, tuple[object, ...]]]:
    out = []
    for _ in range(draw(st.integers(min_value=1, max_value=8))):
        table = draw(st.sampled_from(sorted(TABLES)))
        key, columns = TABLES[table]
        kind = draw(st.sampled_from(["insert", "update", "update", "delete", "rekey"]))
        where = draw(st.integers(min_value=0, max_value=6))
        pick = "k" if table in "ab" else ("p" if table == "c" else "x")
        match_key = f"k{where}" if table == "b" else where
        if kind == "insert":
            width = len(columns) + (0 if table == "d" else 1)
            row = [draw(VALUES) for _ in range(width)]
            if table == "b":
                row[0] = f"K{where}"  # an existing key in another case: a NOCASE conflict
            out.append((f"INSERT OR REPLACE INTO {table} VALUES ({','.join('?' * width)})",
                        tuple(row)))  # fmt: skip
        elif kind == "delete":
            out.append((f"DELETE FROM {table} WHERE {pick} = ?", (match_key,)))
        elif kind == "rekey":
            new_key = f"K{where}" if table == "b" else draw(st.integers(-3, 9))
            out.append((f"UPDATE {table} SET {key} = ? WHERE {pick} = ?", (new_key, match_key)))
        else:
            chosen = draw(st.lists(st.sampled_from(columns), min_size=1, unique=True))
            sets = ", ".join(f"{c} = ?" for c in chosen)
            args = tuple(draw(VALUES) for _ in chosen)
            out.append((f"UPDATE {table} SET {sets} WHERE {pick} = ?", (*args, match_key)))
    return out


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(first=statements(), second=statements())
def test_scan_says_what_the_iterator_says(
    first: list[tuple[str, tuple[object, ...]]], second: list[tuple[str, tuple[object, ...]]]
) -> None:
    conn = _connection()
    one = _captured(conn, first)
    two = _captured(conn, second)
    builder = apsw.ChangesetBuilder()  # type: ignore[no-untyped-call]
    builder.add(one)
    builder.add(two)
    combined = builder.output()
    builder.close()
    for changeset in (one, two, combined):
        assert scan(changeset) == by_iterator(changeset)


def test_a_one_row_update_names_its_columns_and_an_insert_names_none() -> None:
    conn = _connection()
    changeset = _captured(
        conn,
        [
            ("UPDATE a SET y = 'two', z = NULL WHERE k = 1", ()),
            ("INSERT INTO b VALUES ('new', 1, 2)", ()),
            ("UPDATE d SET y = 3 WHERE x = 2", ()),  # rowid first: y is column 2
        ],
    )
    assert scan(changeset) == {
        "a": (4, frozenset({2, 3})),
        "b": (3, None),
        "d": (3, frozenset({2})),
    }
    assert scan(b"") == {}


def test_a_key_changed_to_an_equal_one_counts_as_a_row_inserted_or_deleted() -> None:
    """'k2' to 'K2' under NOCASE is an UPDATE of the key beside an INSERT of the new spelling;
    a later op's DELETE of the row cancels the INSERT when the two are combined, and the
    UPDATE alone is left: it stands for the row gone (see read/_changes.py)."""
    conn = _connection()
    builder = apsw.ChangesetBuilder()  # type: ignore[no-untyped-call]
    builder.add(_captured(conn, [("UPDATE b SET k = 'K2' WHERE k = 'k2'", ())]))
    builder.add(_captured(conn, [("DELETE FROM b WHERE k = 'K2'", ())]))
    combined = builder.output()
    builder.close()
    assert [change.op for change in apsw.Changeset.iter(combined)] == ["UPDATE"]
    assert scan(combined) == {"b": (3, None)}


def test_a_table_met_again_with_another_shape_is_read_by_its_new_header() -> None:
    """A header naming a table already met, with another column count: its records have the new
    count (read by the old one, the bytes after it were misread), and the table changed whole."""
    one_int = b"\x01" + (7).to_bytes(8, "big")
    first = b"T\x01\x01t\x00" + b"\x12\x00" + one_int  # t(a): INSERT
    # t(a, b): UPDATE of b — old record (a, b undefined), new record (a undefined, b NULL)
    second = b"T\x02\x01\x00t\x00" + b"\x17\x00" + one_int + b"\x00" + b"\x00\x05"
    assert scan(first + second) == {"t": (1, None)}
    assert scan(second) == {"t": (2, frozenset({1}))}


@pytest.mark.parametrize(
    "bytes_",
    [
        b"P\x02\x01\x00t\x00",  # a patchset
        b"\x17\x00",  # a change before any table
        b"T\x00t\x00",  # no columns
        b"T\x02\x01",  # a header cut short
        b"T\x02\x01\x00t",  # a name with no end
        b"T\x01\x01t\x00\x17\x00\x01\x00",  # an integer cut short
        b"T\x01\x01t\x00\x12\x00\x03\x85",  # a length cut short
        b"T\x01\x01t\x00\x12\x00\x03\x05ab",  # a text past the end
        b"T\x01\x01t\x00\x12\x00\x07",  # a value of no type
        b"T\x01\x01t\x00\x01\x00\x05",  # a change of no kind
        b"T\x01\x01\x00\x12\x00\x05",  # a table with no name
        b"T\x01\x01t\x00",  # a header with no change after it (SQLite writes none such)
        b"T\x01\x01t\x00T\x01\x01u\x00\x12\x00\x05",  # the same, before another
    ],
)
def test_bytes_that_are_not_a_changeset_are_a_value_error(bytes_: bytes) -> None:
    with pytest.raises(ValueError, match="not a changeset SQLite wrote"):
        scan(bytes_)


def test_any_damage_is_a_value_error_or_an_answer_never_a_crash() -> None:
    conn = _connection()
    changeset = _captured(conn, [("UPDATE a SET x = x + 1", ()), ("DELETE FROM c", ())])
    rng = random.Random(7)
    answered = refused = 0
    for _ in range(5_000):
        damaged = bytearray(changeset[: rng.randrange(1, len(changeset) + 1)])
        damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        try:
            found = scan(bytes(damaged))
        except ValueError:
            refused += 1
        else:
            answered += 1
            assert all(isinstance(name, str) and width > 0 for name, (width, _) in found.items())
    assert answered > 0 and refused > 0
