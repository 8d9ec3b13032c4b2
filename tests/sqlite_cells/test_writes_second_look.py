"""R30–R36 and the write side of §3/§5 read once more from the SPEC's words alone: every shape of
statement that maps a parameter to a column, what SQL may store in a link column, the rev bump,
errors at the call leaving the transaction usable, and what a failed commit leaves behind."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import apsw
import msgspec
import pytest

import sqlite_cells as sc
from sqlite_cells._runtime import Space

LINKED = {
    "notes": sc.table(
        {
            "id": "integer primary key",
            "who_cf_link": sc.cf_link(),
            "Odd Name_cf_link": sc.cf_link(),
            "body": "text",
            "n": "integer not null default 0",
        }
    ),
}


@pytest.fixture
def notes(space: Space) -> sc.SqliteDb:
    return space.sqlite_database("notes", tables=LINKED)


def _rows(db: sc.SqliteDb) -> list[dict[str, Any]]:
    return db.read(
        'SELECT id, who_cf_link, "Odd Name_cf_link" AS odd, body, n FROM notes ORDER BY id'
    )


# -- R31: every shape that maps a parameter to its column --------------------------------------

ACCEPTED: dict[str, tuple[str, list[str] | dict[str, str]]] = {
    # sql, and for each parameter what is bound: "C" the cell, "T" text, "1" the int 1
    "odd-column-order": (
        "INSERT INTO notes (n, body, who_cf_link) VALUES (?, ?, ?)",
        ["1", "T", "C"],
    ),
    "double-quoted": ('INSERT INTO notes ("who_cf_link", body) VALUES (?, ?)', ["C", "T"]),
    "bracket-quoted": ("INSERT INTO notes ([who_cf_link], body) VALUES (?, ?)", ["C", "T"]),
    "backtick-quoted": ("INSERT INTO notes (`who_cf_link`, body) VALUES (?, ?)", ["C", "T"]),
    "other-case": ("INSERT INTO notes (WHO_CF_LINK, Body) VALUES (?, ?)", ["C", "T"]),
    "a-name-with-a-space": (
        'INSERT INTO notes ("Odd Name_cf_link", body) VALUES (?, ?)',
        ["C", "T"],
    ),
    "several-rows": (
        "INSERT INTO notes (who_cf_link, body) VALUES (?, ?), (?, ?)",
        ["C", "T", "C", "T"],
    ),
    "insert-select": ("INSERT INTO notes (who_cf_link, body) SELECT ?, ?", ["C", "T"]),
    "insert-select-union": (
        "INSERT INTO notes (who_cf_link, body) SELECT ?, ? UNION ALL SELECT ?, ?",
        ["C", "T", "C", "T"],
    ),
    "replace": ("REPLACE INTO notes (who_cf_link, body) VALUES (?, ?)", ["C", "T"]),
    "insert-or-replace": (
        "INSERT OR REPLACE INTO notes (body, who_cf_link) VALUES (?, ?)",
        ["T", "C"],
    ),
    "numbered": ("INSERT INTO notes (body, who_cf_link, n) VALUES (?2, ?3, ?1)", ["1", "T", "C"]),
    "numbered-reused": (
        'INSERT INTO notes (who_cf_link, "Odd Name_cf_link") VALUES (?1, ?1)',
        ["C"],
    ),
    "colon-named": ("INSERT INTO notes (body, who_cf_link) VALUES (:b, :w)", {"b": "T", "w": "C"}),
    "dollar-named": ("INSERT INTO notes (body, who_cf_link) VALUES ($b, $w)", {"b": "T", "w": "C"}),
    "at-named": ("INSERT INTO notes (body, who_cf_link) VALUES (@b, @w)", {"b": "T", "w": "C"}),
}


def _bind(values: list[str] | dict[str, str], cell: sc.Cell) -> Any:
    pick = {"C": cell, "T": "text", "1": 1}
    if isinstance(values, dict):
        return {k: pick[v] for k, v in values.items()}
    return [pick[v] for v in values]


@pytest.mark.parametrize("case", list(ACCEPTED.values()), ids=list(ACCEPTED))
def test_a_cell_bound_to_a_link_column_is_stored_as_its_link_in_every_insert_shape(
    space: Space, notes: sc.SqliteDb, case: tuple[str, Any]
) -> None:
    sql, values = case
    alice = space.cell("alice")
    with space.transact():
        notes.exec(sql, _bind(values, alice))
    rows = _rows(notes)
    assert rows and all(alice.link_str() in (r["who_cf_link"], r["odd"]) for r in rows)
    assert notes.rev == 1


UPDATES: dict[str, tuple[str, list[str] | dict[str, str]]] = {
    "set": ("UPDATE notes SET who_cf_link = ? WHERE id = ?", ["C", "1"]),
    "set-after-others": ("UPDATE notes SET body = ?, n = ?, who_cf_link = ?", ["T", "1", "C"]),
    "set-a-row-value": ("UPDATE notes SET (body, who_cf_link) = (?, ?)", ["T", "C"]),
    "set-quoted": ('UPDATE notes SET "Odd Name_cf_link" = ?, [who_cf_link] = ?', ["C", "C"]),
    "update-or-ignore": ("UPDATE OR IGNORE notes SET who_cf_link = ?", ["C"]),
    "aliased": ("UPDATE notes AS x SET who_cf_link = ? WHERE x.id = 1", ["C"]),
    "upsert": (
        "INSERT INTO notes (id, body) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET who_cf_link = ?",
        ["T", "C"],
    ),
    "upsert-named": (
        "INSERT INTO notes (id, body) VALUES (1, :b) ON CONFLICT DO UPDATE SET who_cf_link = :w",
        {"b": "T", "w": "C"},
    ),
}


@pytest.mark.parametrize("case", list(UPDATES.values()), ids=list(UPDATES))
def test_a_cell_bound_to_a_link_column_is_stored_in_every_update_shape(
    space: Space, notes: sc.SqliteDb, case: tuple[str, Any]
) -> None:
    sql, values = case
    alice = space.cell("alice")
    with space.transact():
        notes.exec("INSERT INTO notes (id, body) VALUES (1, 'x')")
    with space.transact():
        notes.exec(sql, _bind(values, alice))
    assert alice.link_str() in (_rows(notes)[0]["who_cf_link"], _rows(notes)[0]["odd"])
    assert notes.rev == 2


REFUSED: dict[str, tuple[str, list[str] | dict[str, str]]] = {
    # a cell where no link column is, or text where one is
    "odd-order-cell-to-text": (
        "INSERT INTO notes (n, body, who_cf_link) VALUES (?, ?, ?)",
        ["1", "C", "C"],
    ),
    "odd-order-text-to-link": (
        "INSERT INTO notes (n, who_cf_link, body) VALUES (?, ?, ?)",
        ["1", "T", "T"],
    ),
    "row-value-text-to-link": ("UPDATE notes SET (who_cf_link, body) = (?, ?)", ["T", "T"]),
    "row-value-cell-to-text": ("UPDATE notes SET (who_cf_link, body) = (?, ?)", ["C", "C"]),
    "upsert-text-to-link": (
        "INSERT INTO notes (id, body) VALUES (1, ?) ON CONFLICT DO UPDATE SET who_cf_link = ?",
        ["T", "T"],
    ),
    "upsert-cell-to-text": (
        "INSERT INTO notes (id, body) VALUES (1, ?) ON CONFLICT DO UPDATE SET who_cf_link = ?",
        ["C", "C"],
    ),
    "insert-select-text-to-link": ("INSERT INTO notes (who_cf_link, body) SELECT ?, ?", ["T", "T"]),
    "insert-select-cell-to-text": ("INSERT INTO notes (who_cf_link, body) SELECT ?, ?", ["C", "C"]),
    "numbered-cell-to-text": ("INSERT INTO notes (body, who_cf_link) VALUES (?2, ?1)", ["C", "C"]),
    "named-text-to-link": (
        "INSERT INTO notes (body, who_cf_link) VALUES ($b, $w)",
        {"b": "T", "w": "T"},
    ),
    "named-cell-in-where": ("DELETE FROM notes WHERE body = @w", {"w": "C"}),
    "link-and-text": ("INSERT INTO notes (who_cf_link, body) VALUES (?1, ?1)", ["C"]),
    "quoted-link-text": ('INSERT INTO notes ("Odd Name_cf_link") VALUES (?)', ["T"]),
    "cell-in-set-where": ("UPDATE notes SET who_cf_link = ? WHERE who_cf_link = ?", ["C", "C"]),
    "cell-in-a-function": ("UPDATE notes SET who_cf_link = trim(?)", ["C"]),
    "int-to-link": ("UPDATE notes SET who_cf_link = ?", ["1"]),
}


@pytest.mark.parametrize("case", list(REFUSED.values()), ids=list(REFUSED))
def test_a_cell_where_no_link_column_is_or_a_non_cell_bound_to_one_is_refused_at_the_call(
    space: Space, notes: sc.SqliteDb, case: tuple[str, Any]
) -> None:
    sql, values = case
    alice = space.cell("alice")
    c = space.cell("c", default=0)
    with space.transact() as tx:
        c.set(5)
        with pytest.raises(sc.LinkEncodeError) as info:
            notes.exec(sql, _bind(values, alice))
        assert isinstance(info.value, sc.SqliteCellsError)
        assert isinstance(info.value, TypeError | ValueError)
        with pytest.raises(sc.LinkEncodeError):
            notes.exec_many(sql, [_bind(values, alice)])
        # nothing was recorded: a read is still allowed (R35) and the commit writes no rows
        assert notes.read("SELECT count(*) AS k FROM notes") == [{"k": 0}]
    assert tx.seq == 1 and c.get() == 5
    assert notes.rev == 0 and not notes.path.exists()


def test_none_binds_null_to_link_and_plain_columns(space: Space, notes: sc.SqliteDb) -> None:
    with space.transact():
        notes.exec("INSERT INTO notes (who_cf_link, body) VALUES (?, ?)", [None, None])
        notes.exec("INSERT INTO notes (who_cf_link, body) VALUES (:w, :b)", {"w": None, "b": None})
    assert [r["who_cf_link"] for r in _rows(notes)] == [None, None]
    assert notes.read("SELECT count(*) AS k FROM notes WHERE who_cf_link IS NULL") == [{"k": 2}]


@pytest.mark.parametrize(
    "value",
    [sc.PENDING, sc.QueryState(pending=True, result=None, error=None, seq=0)],
    ids=["PENDING", "pending-state"],
)
@pytest.mark.parametrize(
    "where", ["plain", "link", "named", "many-last-row", "whole-params", "whole-rows", "a-row"]
)
def test_a_value_not_ready_is_pending_value_anywhere_it_is_bound(
    space: Space, notes: sc.SqliteDb, value: Any, where: str
) -> None:
    with space.transact() as tx:
        with pytest.raises(sc.PendingValue):
            if where == "plain":
                notes.exec("INSERT INTO notes (body) VALUES (?)", [value])
            elif where == "link":
                notes.exec("INSERT INTO notes (who_cf_link) VALUES (?)", [value])
            elif where == "named":
                notes.exec("INSERT INTO notes (body) VALUES (:b)", {"b": value})
            elif where == "many-last-row":
                notes.exec_many("INSERT INTO notes (body) VALUES (?)", [["a"], ["b"], [value]])
            # The value given for the parameters as a whole (it was "parameters are a list, a
            # tuple or a mapping, not Pending", an ExecArgumentError), or for a row of them.
            elif where == "whole-params":
                notes.exec("INSERT INTO notes (body) VALUES (?)", value)
            elif where == "whole-rows":
                notes.exec_many("INSERT INTO notes (body) VALUES (?)", value)
            else:
                notes.exec_many("INSERT INTO notes (body) VALUES (?)", [["a"], value])
        notes.exec("INSERT INTO notes (body) VALUES ('kept')")
    assert tx.seq == 1
    assert [r["body"] for r in _rows(notes)] == ["kept"]


def test_a_live_query_still_pending_is_pending_value(space: Space, notes: sc.SqliteDb) -> None:
    other = space.sqlite_database("other", tables=LINKED)
    q = other.query("SELECT count(*) AS k FROM notes")
    state = q.get()
    with space.transact():
        if state.pending:
            with pytest.raises(sc.PendingValue):
                notes.exec("INSERT INTO notes (body) VALUES (?)", [state])
        notes.exec("INSERT INTO notes (body) VALUES ('x')")
    assert notes.rev == 1


# -- R31: what SQL stored in a link column, checked at commit ----------------------------------

STORED_BY_SQL: dict[str, str] = {
    "set-from-another-column": "UPDATE notes SET who_cf_link = body",
    "replace-literal": "REPLACE INTO notes (id, who_cf_link, body) VALUES (1, 'junk', 'x')",
    "upsert-excluded-text": (
        "INSERT INTO notes (id, body) VALUES (1, 'junk') "
        "ON CONFLICT (id) DO UPDATE SET who_cf_link = excluded.body"
    ),
    "insert-select-from-table": (
        "INSERT INTO notes (who_cf_link, body) SELECT body, body FROM notes"
    ),
    "integer": "UPDATE notes SET who_cf_link = 42",
    "real": "UPDATE notes SET who_cf_link = 4.5",
    "blob-of-a-link": 'UPDATE notes SET "Odd Name_cf_link" = CAST(who_cf_link AS BLOB)',
    "empty-text": "UPDATE notes SET who_cf_link = ''",
    "json-null": "UPDATE notes SET who_cf_link = 'null'",
    "a-link-cut-short": 'UPDATE notes SET "Odd Name_cf_link" = substr(who_cf_link, 1, 20)',
    "with-insert": (
        "WITH j(v) AS (SELECT 'junk') INSERT INTO notes (who_cf_link, body) SELECT v, 'b' FROM j"
    ),
}


@pytest.mark.parametrize("sql", list(STORED_BY_SQL.values()), ids=list(STORED_BY_SQL))
def test_sql_storing_anything_but_null_or_a_link_fails_the_commit_and_writes_nothing(
    space: Space, notes: sc.SqliteDb, sql: str
) -> None:
    alice = space.cell("alice")
    c = space.cell("c", default=0)
    with space.transact():
        notes.exec("INSERT INTO notes (id, who_cf_link, body) VALUES (1, ?, 'junk')", [alice])
    before, seq = _rows(notes), notes.rev
    with pytest.raises(sc.LinkEncodeError) as info, space.transact():
        c.set(9)
        notes.exec(sql)
    assert isinstance(info.value, sc.SqliteCellsError)
    assert _rows(notes) == before and notes.rev == seq and c.get() == 0
    # the space goes on: the next commit takes the next seq
    with space.transact() as tx:
        c.set(1)
    assert tx.seq == 2


def test_exec_outside_any_transaction_or_in_another_threads_is_no_transaction(
    space: Space, notes: sc.SqliteDb
) -> None:
    for call in (
        lambda: notes.exec("INSERT INTO notes (body) VALUES ('x')"),
        lambda: notes.exec_many("INSERT INTO notes (body) VALUES (?)", [["x"]]),
    ):
        with pytest.raises(sc.NoTransaction) as info:
            call()
        assert isinstance(info.value, sc.SqliteCellsError) and isinstance(info.value, RuntimeError)
    seen: list[BaseException] = []

    def elsewhere() -> None:
        try:
            notes.exec("INSERT INTO notes (body) VALUES ('from a thread')")
        except BaseException as exc:  # handed to the test
            seen.append(exc)

    with space.transact():
        notes.exec("INSERT INTO notes (body) VALUES ('mine')")
        t = threading.Thread(target=elsewhere)
        t.start()
        t.join()
    assert len(seen) == 1 and isinstance(seen[0], sc.NoTransaction)
    assert [r["body"] for r in _rows(notes)] == ["mine"]


# -- R32: the rev bump -------------------------------------------------------------------------


def test_rev_and_handle_value_before_and_after_writes(space: Space, notes: sc.SqliteDb) -> None:
    assert notes.rev == 0 and isinstance(notes.rev, int)
    value = notes.get()
    assert set(value) == {"id", "tables", "rev"} and value["rev"] == 0 and value["id"] == notes.id
    with space.transact():
        notes.exec("INSERT INTO notes (body) VALUES ('a')")
        notes.exec_many("INSERT INTO notes (body) VALUES (?)", [["b"], ["c"]])
        notes.exec("UPDATE notes SET n = n + 1")
        notes.exec("DELETE FROM notes WHERE body = 'c'")
    assert notes.rev == 1 and notes.get()["rev"] == 1
    with pytest.raises(RuntimeError), space.transact():
        notes.exec("INSERT INTO notes (body) VALUES ('rolled back')")
        raise RuntimeError("the block fails")
    assert notes.rev == 1 and [r["body"] for r in _rows(notes)] == ["a", "b"]
    with space.transact():
        space.cell("only-a-cell").set(1)
    assert notes.rev == 1


def test_a_read_then_write_does_not_conflict_with_commits_to_other_databases_or_cells(
    space: Space, notes: sc.SqliteDb
) -> None:
    other = space.sqlite_database("other", tables=LINKED)
    tries = 0

    @sc.handler
    def read_then_write() -> None:
        nonlocal tries
        tries += 1
        n = notes.read("SELECT count(*) AS k FROM notes")[0]["k"]
        if tries == 1:
            done = threading.Event()

            def meanwhile() -> None:
                with space.transact():
                    other.exec("INSERT INTO notes (body) VALUES ('other db')")
                    space.cell("x").set(1)
                done.set()

            threading.Thread(target=meanwhile).start()
            assert done.wait(30)
        notes.exec("INSERT INTO notes (body) VALUES (?)", [f"seen {n}"])

    read_then_write()
    assert tries == 1
    assert [r["body"] for r in _rows(notes)] == ["seen 0"]


def test_a_read_then_write_is_retried_until_no_commit_came_between(
    space: Space, notes: sc.SqliteDb
) -> None:
    """Another thread writes the database between the read and the commit on the first two
    tries; the third sees every row and its write lands once."""
    tries = 0

    @sc.handler
    def count_then_write() -> None:
        nonlocal tries
        tries += 1
        n = notes.read("SELECT count(*) AS k FROM notes")[0]["k"]
        if tries <= 2:
            t = threading.Thread(target=_insert_in_a_transaction, args=(space, notes, f"t{tries}"))
            t.start()
            t.join()
        notes.exec("INSERT INTO notes (body, n) VALUES ('counted', ?)", [n])

    count_then_write()
    assert tries == 3
    assert notes.read("SELECT body, n FROM notes ORDER BY id") == [
        {"body": "t1", "n": 0},
        {"body": "t2", "n": 0},
        {"body": "counted", "n": 2},
    ]
    assert notes.rev == 3


@pytest.mark.parametrize(
    ("refused", "error"),
    [
        (lambda db: db.read("SELECT ?", [sc.PENDING]), sc.PendingValue),
        (lambda db: db.read("SELECT 1 AS x", row=int), TypeError),
        (lambda db: db.read("SELECT ?", [object()]), TypeError),
        (lambda db: db.read("SELECT * FROM sqlite_master"), sc.GuardViolation),
    ],
)
def test_a_read_refused_at_the_call_records_no_read_of_the_database(
    space: Space, notes: sc.SqliteDb, refused: Any, error: type[Exception]
) -> None:
    """R32: an error at the call records nothing: a read refused there (a value not ready, a
    row type that is none) read no rows, so a commit to the database before this transaction
    commits is no conflict with it."""
    counter = space.cell("counter", default=0)
    with space.transact():
        with pytest.raises(error) as raised:
            refused(notes)
        assert isinstance(raised.value, sc.SqliteCellsError)
        worker = threading.Thread(target=_insert_in_a_transaction, args=(space, notes, "other"))
        worker.start()
        worker.join()
        counter.set(counter.get() + 1)
    assert counter.get() == 1 and [r["body"] for r in _rows(notes)] == ["other"]


def _bump_in_a_transaction(space: Space, cell: sc.Cell) -> None:
    with space.transact():
        cell.update(lambda v: v + 1)


def _read_after_write(notes: sc.SqliteDb, other: sc.SqliteDb, limit: sc.Cell) -> None:
    notes.exec("INSERT INTO notes (body) VALUES ('mine')")
    notes.read("SELECT n FROM notes WHERE n < ?", [limit])


def _read_of_a_pending_value(notes: sc.SqliteDb, other: sc.SqliteDb, limit: sc.Cell) -> None:
    other.read("SELECT ?, ?", [limit, sc.PENDING])


def _read_of_a_pending_query(notes: sc.SqliteDb, other: sc.SqliteDb, limit: sc.Cell) -> None:
    waiting = other.query("SELECT ? AS x", [sc.PENDING])  # pending while its parameter is
    other.read("SELECT ?, ?", [limit, waiting])


def _read_after_drop(notes: sc.SqliteDb, other: sc.SqliteDb, limit: sc.Cell) -> None:
    other.drop()
    other.read("SELECT n FROM notes WHERE n < ?", [limit])


@pytest.mark.parametrize(
    ("refused", "error"),
    [
        (_read_after_write, sc.ReadAfterWriteUnsupported),
        (_read_of_a_pending_value, sc.PendingValue),
        (_read_of_a_pending_query, sc.PendingValue),
        (_read_after_drop, sc.ReadAfterWriteUnsupported),
    ],
)
def test_a_read_refused_at_the_call_records_no_read_of_its_parameter_cells(
    space: Space, notes: sc.SqliteDb, refused: Any, error: type[Exception]
) -> None:
    """R32, R35: a read refused at the call records nothing, not even the cells given as its
    parameters, looked up before the refusal: a commit that changes such a cell before this
    write-only transaction commits is no conflict with it."""
    other = space.sqlite_database("other", tables=LINKED)
    limit = space.cell("limit", default=5)
    counter = space.cell("counter", default=0)
    with space.transact():
        with pytest.raises(error) as raised:
            refused(notes, other, limit)
        assert isinstance(raised.value, sc.SqliteCellsError)
        worker = threading.Thread(target=_bump_in_a_transaction, args=(space, limit))
        worker.start()
        worker.join()
        counter.set(counter.get() + 1)
    assert counter.get() == 1 and limit.get() == 6


class _Unfit(msgspec.Struct):
    n: str  # an int column: the row does not fit


@pytest.mark.parametrize(
    ("sql", "row", "words"),
    [
        ("SELECT sum(n) AS s FROM notes WHERE n > ?", None, "integer overflow"),
        ("SELECT json('not json' || ?) AS j FROM notes", None, "malformed JSON"),
        ("SELECT n FROM notes WHERE n > ?", _Unfit, "'n'"),
    ],
    ids=["sum-overflow", "function-error", "row-unfit"],
)
def test_a_read_failing_as_it_runs_records_no_read(
    space: Space, notes: sc.SqliteDb, sql: str, row: Any, words: str
) -> None:
    """R32: a ``db.read`` the guard accepted but that fails as it runs (SQLite raises while
    stepping, a row does not fit its type) records nothing, as a read refused at the call:
    neither the database's handle nor its parameter cells. A commit to either before this
    write-only transaction commits is no conflict: the body runs once."""
    limit = space.cell("limit", default=5)
    counter = space.cell("counter", default=0)
    with space.transact():
        notes.exec_many("INSERT INTO notes (n) VALUES (?)", [[2**62], [2**62]])
    runs = 0

    @sc.handler
    def count_once(*, counter: sc.Cell) -> None:
        nonlocal runs
        runs += 1
        with pytest.raises(sc.QueryError) as raised:
            notes.read(sql, [limit], row=row)
        assert words in str(raised.value)
        if runs == 1:
            for job in (
                lambda: _insert_in_a_transaction(space, notes, "theirs"),
                lambda: _bump_in_a_transaction(space, limit),
            ):
                worker = threading.Thread(target=job)
                worker.start()
                worker.join()
        counter.set(counter.get() + 1)

    count_once(counter=counter)
    assert runs == 1 and counter.get() == 1 and limit.get() == 6 and notes.rev == 2


def test_a_read_then_write_conflict_names_the_database_and_cell_it_read(
    space: Space, notes: sc.SqliteDb
) -> None:
    """R32: the conflict of a read-then-write says which database and cell changed, by the
    names this runtime gave them, each with its whole id (no id cut short)."""
    limit = space.cell("limit", default=5)

    def another_commit() -> None:
        with space.transact():
            notes.exec("INSERT INTO notes (body) VALUES ('theirs')")
            limit.set(6)

    with pytest.raises(sc.ConflictError) as caught, space.transact():
        notes.read("SELECT count(*) AS k FROM notes WHERE n < ?", [limit])
        worker = threading.Thread(target=another_commit)
        worker.start()
        worker.join()
        notes.exec("INSERT INTO notes (body) VALUES ('mine')")
    message = str(caught.value)
    assert f"database 'notes' ({notes.id})" in message
    assert f"cell 'limit' ({limit.id})" in message
    assert "2 cell(s) read by this transaction changed" in message and "…" not in message
    assert set(caught.value.cell_ids) == {notes.id, limit.id}
    assert [r["body"] for r in _rows(notes)] == ["theirs"] and notes.rev == 1


def _insert_in_a_transaction(space: Space, db: sc.SqliteDb, body: str) -> None:
    with space.transact():
        db.exec("INSERT INTO notes (body) VALUES (?)", [body])


def test_an_async_handler_whose_database_read_always_conflicts_tries_ten_times_in_all(
    space: Space, notes: sc.SqliteDb
) -> None:
    """Every try reads the database and another thread commits to it before the try commits.
    (A sync handler takes the write lock after three conflicts, where none can happen; an async
    one stays optimistic, so it is the one that meets the limit.)"""
    tries = 0

    @sc.handler
    async def always_raced() -> None:
        nonlocal tries
        tries += 1
        notes.read("SELECT count(*) AS k FROM notes")
        t = threading.Thread(target=_insert_in_a_transaction, args=(space, notes, str(tries)))
        t.start()
        t.join()
        notes.exec("INSERT INTO notes (body) VALUES ('never')")

    with pytest.raises(sc.ConflictError) as info:
        asyncio.run(always_raced())
    assert isinstance(info.value, sc.SqliteCellsError)
    assert tries == 10
    assert notes.rev == 10 and "never" not in [r["body"] for r in _rows(notes)]


def test_a_handler_failing_with_an_exec_error_is_not_retried(
    space: Space, notes: sc.SqliteDb
) -> None:
    tries = 0
    c = space.cell("c", default=0)

    @sc.handler
    def broken() -> None:
        nonlocal tries
        tries += 1
        c.set(tries)
        notes.exec("INSERT INTO notes (n) VALUES (NULL)")  # NOT NULL

    with pytest.raises(sc.ExecError):
        broken()
    assert tries == 1 and c.get() == 0 and notes.rev == 0


# -- R32/R33/R35: an error at a call records nothing ---------------------------------------------


def test_a_refused_call_on_one_database_does_not_claim_it(space: Space, notes: sc.SqliteDb) -> None:
    """A call refused at the call records nothing: the transaction may still write another
    database (R33) and read the refused one (R35)."""
    other = space.sqlite_database("other", tables=LINKED)
    alice = space.cell("alice")
    refusals = [
        lambda: notes.exec("INSERT INTO notes (body) VALUES (?)", [alice]),
        lambda: notes.exec("INSERT INTO notes (body) VALUES (?)", [sc.PENDING]),
        lambda: notes.exec("DROP TABLE notes"),
        lambda: notes.exec_many("INSERT INTO notes (who_cf_link) VALUES (?)", [[alice], ["junk"]]),
    ]
    for refuse in refusals:
        with space.transact() as tx:
            with pytest.raises(sc.SqliteCellsError):
                refuse()
            assert notes.read("SELECT count(*) AS k FROM notes") == [{"k": 0}]
            other.exec("INSERT INTO notes (who_cf_link, body) VALUES (?, 'o')", [alice])
        assert tx.seq is not None
    assert notes.rev == 0 and other.rev == len(refusals)


def test_too_many_databases_leaves_the_first_one_written_and_the_second_readable(
    space: Space, notes: sc.SqliteDb
) -> None:
    other = space.sqlite_database("other", tables=LINKED)
    with space.transact():
        notes.exec("INSERT INTO notes (body) VALUES ('first')")
        for call in (
            lambda: other.exec("INSERT INTO notes (body) VALUES ('second')"),
            lambda: other.exec_many("INSERT INTO notes (body) VALUES (?)", [["second"]]),
            lambda: other.exec("DROP TABLE notes"),  # the guard would refuse it too
        ):
            with pytest.raises((sc.TooManyDatabases, sc.GuardViolation)) as info:
                call()
            assert isinstance(info.value, sc.SqliteCellsError)
        assert other.read("SELECT count(*) AS k FROM notes") == [{"k": 0}]
        with pytest.raises(sc.ReadAfterWriteUnsupported) as raw:
            notes.read("SELECT 1 AS one")
        assert isinstance(raw.value, sc.SqliteCellsError)
        with pytest.raises(sc.ReadAfterWriteUnsupported):
            notes.query("SELECT 1 AS one")
        notes.exec("INSERT INTO notes (body) VALUES ('again')")
    assert [r["body"] for r in _rows(notes)] == ["first", "again"]
    assert other.rev == 0 and not other.path.exists()


def test_too_many_databases_is_raised_in_a_nested_transaction_too(
    space: Space, notes: sc.SqliteDb
) -> None:
    other = space.sqlite_database("other", tables=LINKED)
    with space.transact():
        notes.exec("INSERT INTO notes (body) VALUES ('outer')")
        with space.transact(), pytest.raises(sc.TooManyDatabases):
            other.exec("INSERT INTO notes (body) VALUES ('inner')")
    assert notes.rev == 1 and other.rev == 0


# -- R36: exec_many ----------------------------------------------------------------------------


def test_exec_many_of_no_rows_commits_and_writes_no_row(space: Space, notes: sc.SqliteDb) -> None:
    c = space.cell("c", default=0)
    with space.transact() as tx:
        c.set(1)
        notes.exec_many("INSERT INTO notes (body) VALUES (?)", [])
        notes.exec_many("INSERT INTO notes (body) VALUES (?)", iter(()))
    assert tx.seq == 1 and c.get() == 1
    assert notes.read("SELECT count(*) AS k FROM notes") == [{"k": 0}]


def test_exec_many_of_no_rows_writes_nothing_but_still_checks_its_statement(
    rt: sc.Runtime, store: Path, space: Space, notes: sc.SqliteDb
) -> None:
    """No row, no statement run: nothing is recorded — no commit, no rev bump (R32), no file
    (R7), no re-run of a ``react_on=db`` query, no claim on the transaction's one database
    (R33) — while the call still needs a transaction and the guard still judges the statement.
    A statement that runs and changes no row (``DELETE … WHERE 0``) is still a write."""
    insert = "INSERT INTO notes (body) VALUES (?)"
    query = notes.query("SELECT count(*) AS k FROM notes", react_on=notes)
    rt.settle(10)
    files = sorted(p.name for p in store.rglob("*"))
    assert query.get().seq == 0

    @sc.handler
    def add_all(rows: list[Any], *, db: sc.SqliteDb) -> None:
        db.exec_many(insert, rows)

    assert add_all([], db=notes) is None
    with space.transact() as tx:
        notes.exec_many(insert, iter(()))
        other = space.sqlite_database("other", tables=LINKED)
        other.exec_many(insert, [])  # no second database written (R33)
        assert notes.read("SELECT count(*) AS k FROM notes") == [{"k": 0}]  # nothing pending (R35)
        with pytest.raises(sc.GuardViolation) as info:
            notes.exec_many("DELETE FROM notes RETURNING id", [])
        assert info.value.kind == "returning"
    with pytest.raises(sc.NoTransaction):
        notes.exec_many(insert, [])
    elsewhere = rt.space("elsewhere").sqlite_database("notes", tables=LINKED)
    with space.transact() as tx, pytest.raises(sc.CrossSpaceWrite):
        elsewhere.exec_many(insert, [])  # another space's database: refused all the same (§2)
    rt.settle(10)
    assert tx.seq is None and notes.rev == 0 and other.rev == 0 and elsewhere.rev == 0
    assert sorted(p.name for p in store.rglob("*")) == files
    assert not notes.path.exists() and query.get().seq == 0  # (a re-run would show a seq)
    with space.transact() as tx:
        notes.exec("DELETE FROM notes WHERE 0")
    rt.settle(10)
    assert tx.seq == 1 and notes.rev == 1 and notes.path.exists() and query.get().seq == 1


def test_exec_many_takes_a_generator_of_rows_and_of_named_rows(
    space: Space, notes: sc.SqliteDb
) -> None:
    alice = space.cell("alice")
    with space.transact():
        notes.exec_many(
            "INSERT INTO notes (who_cf_link, body, n) VALUES (?, ?, ?)",
            ((alice, f"b{i}", i) for i in range(3)),
        )
        notes.exec_many(
            "INSERT INTO notes (who_cf_link, body, n) VALUES (:w, :b, :n)",
            ({"w": None, "b": f"named{i}", "n": i} for i in range(2)),
        )
    rows = _rows(notes)
    assert [r["body"] for r in rows] == ["b0", "b1", "b2", "named0", "named1"]
    assert [r["who_cf_link"] for r in rows] == [alice.link_str()] * 3 + [None, None]
    assert notes.rev == 1


@pytest.mark.parametrize(
    "rows",
    [[["a", 1], ["b"]], [["a", 1], ["b", 2, 3]], [["a", 1], {"x": 1}], [["a", 1], "ab"]],
    ids=["short", "long", "dict-among-lists", "text-as-a-row"],
)
def test_exec_many_rows_that_do_not_fit_the_statement_are_refused_and_record_nothing(
    space: Space, notes: sc.SqliteDb, rows: Any
) -> None:
    with space.transact() as tx:
        with pytest.raises(sc.SqliteCellsError) as info:
            notes.exec_many("INSERT INTO notes (body, n) VALUES (?, ?)", rows)
        assert isinstance(info.value, TypeError | ValueError | sc.ExecError)
        notes.exec("INSERT INTO notes (body) VALUES ('kept')")
    assert tx.seq == 1 and [r["body"] for r in _rows(notes)] == ["kept"]


def test_exec_many_of_a_generator_that_raises_records_nothing(
    space: Space, notes: sc.SqliteDb
) -> None:
    def rows() -> Any:
        yield ["a"]
        raise KeyError("the caller's own bug")

    with space.transact() as tx:
        with pytest.raises(sc.ExecError, match="reading the rows given") as info:
            notes.exec_many("INSERT INTO notes (body) VALUES (?)", rows())
        assert isinstance(info.value.__cause__, KeyError)
        notes.exec("INSERT INTO notes (body) VALUES ('kept')")
    assert tx.seq == 1 and [r["body"] for r in _rows(notes)] == ["kept"]


def test_exec_many_checks_the_statement_before_taking_a_row(
    space: Space, notes: sc.SqliteDb
) -> None:
    taken: list[int] = []

    def rows() -> Any:
        for i in range(3):
            taken.append(i)
            yield [f"b{i}"]

    def failing() -> Any:
        raise RuntimeError("the caller's own bug")
        yield  # (a generator)

    given = rows()
    with space.transact() as tx:
        with pytest.raises(sc.GuardViolation) as info:
            notes.exec_many("INSERT INTO main.notes (body) VALUES (?)", given)
        assert info.value.kind == "schema-qualified" and taken == []  # not a row taken (R24)
        with pytest.raises(sc.GuardViolation) as info:  # the verdict, not the rows' error
            notes.exec_many("INSERT INTO notes (body) VALUES (?); SELECT 1", failing())
        assert info.value.kind == "multiple-statements"
        for sql in (b"INSERT INTO notes (body) VALUES (?)", None):
            with pytest.raises(sc.SqliteCellsError) as refused:
                notes.exec_many(sql, iter([["x"]]))  # type: ignore[arg-type]
            assert isinstance(refused.value, TypeError), refused.value
        other = space.sqlite_database("second", tables=LINKED)
        other.exec("INSERT INTO notes (body) VALUES ('x')")
        with pytest.raises(sc.TooManyDatabases):  # a second database (R33): no row taken
            notes.exec_many("INSERT INTO notes (body) VALUES (?)", given)
        assert taken == []
    elsewhere = space.runtime.space("elsewhere").sqlite_database("n", tables=LINKED)
    with space.transact() as tx:
        space.cell("here").set(1)
        with pytest.raises(sc.CrossSpaceWrite):  # another space's database: no row taken
            elsewhere.exec_many("INSERT INTO notes (body) VALUES (?)", given)
        assert taken == []
        notes.exec_many("INSERT INTO notes (body) VALUES (?)", given)  # the same generator
    assert tx.seq is not None and [r["body"] for r in _rows(notes)] == ["b0", "b1", "b2"]
    assert taken == [0, 1, 2]


def test_the_runtimes_own_errors_raised_while_rows_are_read_pass_as_they_are(
    space: Space, notes: sc.SqliteDb
) -> None:
    """Rows whose own code calls the runtime: what the runtime raises there (here the drop of
    the database being written, which no transaction may also write) is itself, not the rows'
    argument error; and a transaction that drops the database as its rows are read does not
    also write it (the drop was checked before the rows ran only, and both committed)."""

    def rows() -> Any:
        yield ["a"]
        notes.drop()
        yield ["b"]

    with (
        space.transact() as tx,
        pytest.raises(sc.TransactionError, match="dropped by this transaction"),
    ):
        notes.exec_many("INSERT INTO notes (body) VALUES (?)", rows())
    assert tx.seq is not None  # the drop, alone
    assert notes.get()["dropped"] is True and not notes.path.exists()
    other = space.sqlite_database("other", tables=LINKED)

    def reading() -> Any:
        yield [str(other.read("SELECT count(*) AS n FROM notes")[0]["n"])]

    with space.transact():
        other.exec("INSERT INTO notes (body) VALUES ('x')")
        with pytest.raises(sc.ReadAfterWriteUnsupported):  # itself, not ExecArgumentError
            other.exec_many("INSERT INTO notes (body) VALUES (?)", reading())


def test_a_refused_statement_gets_the_guards_verdict_on_a_read_only_or_vm_handle(
    space: Space, tmp_path: Path
) -> None:
    source = tmp_path / "reference.db"
    conn = apsw.Connection(str(source))
    conn.execute("CREATE TABLE t (a)")
    conn.close()
    disk = space.register_disk_source(str(source))
    vm = space.sqlite_database("vm", tables=LINKED, source=sc.VmSource(object(), "/x.db"))
    with space.transact() as tx:
        for handle, refusal in ((disk, sc.ReadOnlySource), (vm, sc.NotImplementedSource)):
            for call in (handle.exec, handle.exec_many):
                with pytest.raises(sc.GuardViolation) as info:
                    call("PRAGMA x", [])
                assert info.value.kind == "forbidden-statement"  # as db.read says (R20, R24)
            with pytest.raises(refusal):
                handle.exec("INSERT INTO t (a) VALUES (1)")
        space.cell("kept").set(1)
    assert tx.seq is not None and space.cell("kept").get() == 1


def test_exec_many_of_a_hundred_thousand_rows_is_one_commit(
    space: Space, notes: sc.SqliteDb
) -> None:
    alice = space.cell("alice")
    with space.transact() as tx:
        notes.exec_many(
            "INSERT INTO notes (who_cf_link, n) VALUES (?, ?)",
            ((alice if i % 2 else None, i) for i in range(100_000)),
        )
    assert tx.seq == 1 and notes.rev == 1
    assert notes.read("SELECT count(*) AS k, sum(n) AS s, count(who_cf_link) AS l FROM notes") == [
        {"k": 100_000, "s": sum(range(100_000)), "l": 50_000}
    ]


def test_exec_many_with_one_failing_row_rolls_back_every_row(
    space: Space, notes: sc.SqliteDb
) -> None:
    with pytest.raises(sc.ExecError) as info, space.transact():
        notes.exec_many(
            "INSERT INTO notes (id, body) VALUES (?, ?)", [[1, "a"], [2, "b"], [1, "dup"]]
        )
    assert info.value.db_id == notes.id
    assert notes.rev == 0 and notes.read("SELECT count(*) AS k FROM notes") == [{"k": 0}]


# -- R34: a failing commit rolls back everything -----------------------------------------------


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO notes (n) VALUES (NULL)",
        "INSERT INTO notes (id) VALUES (1)",
        "UPDATE notes SET id = 2",
        "INSERT INTO notes (body) SELECT nosuch FROM notes",
    ],
    ids=["not-null", "unique", "pk-clash", "no-such-column"],
)
def test_an_sql_error_is_an_exec_error_naming_the_statement_and_database(
    space: Space, notes: sc.SqliteDb, sql: str
) -> None:
    with space.transact():
        notes.exec("INSERT INTO notes (id, body) VALUES (1, 'a'), (2, 'b')")
    c = space.cell("c", default=0)
    with pytest.raises(sc.SqliteCellsError) as info, space.transact():
        c.set(1)
        notes.exec("INSERT INTO notes (body) VALUES ('first of the two')")
        notes.exec(sql)
    err = info.value
    if isinstance(err, sc.ExecError):
        assert err.sql == sql and err.db_id == notes.id
        assert err.__cause__ is not None
        assert notes.id in str(err)
    else:  # refused at the call (an unknown column): nothing was recorded either
        assert isinstance(err, sc.QueryError | sc.ExecError | sc.GuardViolation)
    assert c.get() == 0 and notes.rev == 1
    assert [r["body"] for r in _rows(notes)] == ["a", "b"]
    with space.transact() as tx:
        c.set(2)
    assert tx.seq == 2  # no seq was used up by the rolled-back commit


def test_a_raising_migrate_is_a_migration_error_with_the_original_as_cause(space: Space) -> None:
    db = space.sqlite_database("m", tables={"t": sc.table(id="integer primary key")}, version=1)
    with space.transact():
        db.exec("INSERT INTO t (id) VALUES (1)")
    boom = LookupError("the user's migration broke")

    def migrate(conn: Any, from_version: int) -> None:
        conn.execute("CREATE TABLE scratch (x)")
        raise boom

    db2 = space.sqlite_database(
        "m", tables={"t": sc.table(id="integer primary key", x="text")}, version=2, migrate=migrate
    )
    c = space.cell("c", default=0)
    with pytest.raises(sc.MigrationError) as info, space.transact():
        c.set(1)
        db2.exec("INSERT INTO t (id, x) VALUES (2, 'y')")
    assert info.value.__cause__ is boom
    assert isinstance(info.value, sc.SqliteCellsError)
    assert c.get() == 0 and db2.rev == 1
    assert db2.read("SELECT id FROM t") == [{"id": 1}]


# -- §3: async handlers ------------------------------------------------------------------------


def test_an_async_handler_writing_a_database_lets_the_loop_run(
    space: Space, notes: sc.SqliteDb
) -> None:
    @sc.handler
    async def post(text: str, *, db: sc.SqliteDb) -> None:
        await asyncio.sleep(0)
        db.exec("INSERT INTO notes (body) VALUES (?)", [text])

    async def main() -> tuple[list[int | None], int]:
        ticks = 0
        stop = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not stop.is_set():
                ticks += 1
                await asyncio.sleep(0)

        t = asyncio.create_task(ticker())
        seqs = await asyncio.gather(*(post(f"m{i}", db=notes) for i in range(5)))
        stop.set()
        await t
        return list(seqs), ticks

    seqs, ticks = asyncio.run(main())
    assert sorted(s for s in seqs if s is not None) == [1, 2, 3, 4, 5]
    assert ticks > 0
    assert sorted(r["body"] for r in _rows(notes)) == [f"m{i}" for i in range(5)]
    assert notes.rev == 5


def test_exec_in_another_spaces_transaction_is_refused(rt: sc.Runtime, notes: sc.SqliteDb) -> None:
    elsewhere = rt.space("elsewhere")
    with elsewhere.transact() as tx:
        with pytest.raises(sc.SqliteCellsError) as info:
            notes.exec("INSERT INTO notes (body) VALUES ('x')")
        assert isinstance(info.value, sc.CrossSpaceWrite)
        elsewhere.cell("c").set(1)
    assert tx.seq == 1 and notes.rev == 0


# -- named parameters of several prefixes: ":w" and "$w" are bound from one key ----------------


def test_one_name_under_two_prefixes_binds_from_one_mapping_key(
    space: Space, notes: sc.SqliteDb
) -> None:
    """SQLite numbers ``:w`` and ``$w`` apart, and binding a mapping gives both the value of
    key ``w``: a mapping is what they take, on writes and reads alike."""
    alice = space.cell("alice")
    with space.transact():
        notes.exec("INSERT INTO notes (body, n) VALUES (:w, $w)", {"w": 3})
        notes.exec(
            'INSERT INTO notes (who_cf_link, "Odd Name_cf_link") VALUES (:w, @w)', {"w": alice}
        )
        with pytest.raises(sc.LinkEncodeError) as info:
            notes.exec("INSERT INTO notes (who_cf_link, body) VALUES (:w, $w)", {"w": alice})
        assert "who_cf_link" in str(info.value) and "body" in str(info.value)
        with pytest.raises(sc.ExecError) as bad:
            notes.exec("INSERT INTO notes (body, n) VALUES (:w, $w)", [3, 3])
        assert "mapping" in str(bad.value)
    rows = _rows(notes)
    assert (rows[0]["body"], rows[0]["n"]) == ("3", 3)
    assert rows[1]["who_cf_link"] == rows[1]["odd"] == alice.link_str()
    assert notes.read("SELECT :w AS a, $w AS b, @w AS c", {"w": 1}) == [{"a": 1, "b": 1, "c": 1}]


def test_cells_in_a_compound_inserts_values_arm_are_bound_to_their_link_column(
    space: Space, notes: sc.SqliteDb
) -> None:
    """R31: a parameter in a ``VALUES`` arm of a compound ``INSERT`` (first or later arm) maps
    to its column as in a ``SELECT`` arm; a Cell there was "a cell but targets no column"."""
    a, b, c = space.cell("a"), space.cell("b"), space.cell("c")
    with space.transact():
        notes.exec(
            "INSERT INTO notes (body, who_cf_link) SELECT 'r1', ? UNION ALL VALUES ('r2', ?)",
            [a, b],
        )
        notes.exec(
            "INSERT INTO notes (who_cf_link, body) VALUES (?, 'r3') UNION ALL SELECT ?, 'r4'",
            [c, None],
        )
        with pytest.raises(sc.LinkEncodeError, match="targets the link column who_cf_link"):
            notes.exec(
                "INSERT INTO notes (body, who_cf_link) SELECT 'x', ? UNION ALL VALUES ('y', ?)",
                [a, "not a cell"],
            )
    rows = notes.read("SELECT body, who_cf_link FROM notes ORDER BY body")
    assert rows == [
        {"body": "r1", "who_cf_link": a.link_str()},
        {"body": "r2", "who_cf_link": b.link_str()},
        {"body": "r3", "who_cf_link": c.link_str()},
        {"body": "r4", "who_cf_link": None},
    ]


def test_a_call_through_a_pattern_input_refused_at_the_call_records_no_read_of_the_input(
    rt: sc.Runtime, space: Space
) -> None:
    """R32, R35: a pattern's database input reads its input cell to find the database; a read
    through it refused at the call (after a write of that database in the transaction) records
    nothing, so relinking the input before this transaction commits is no conflict with it."""
    first = space.sqlite_database("first", tables=LINKED)
    second = space.sqlite_database("second", tables=LINKED)
    given: dict[str, sc.SqliteDb] = {}

    @sc.pattern
    def viewer(notes: sc.SqliteDb) -> dict[str, Any]:
        given["notes"] = notes
        return {}

    piece = space.run(viewer, key="k", notes=first)
    rt.settle(10)
    linked = given["notes"]
    assert type(linked).__name__ == "LinkedDb"

    def relink() -> None:
        piece.inputs["notes"].link(second)

    with space.transact() as tx:
        first.exec("INSERT INTO notes (body) VALUES ('mine')")
        reads = len(tx.reads)
        with pytest.raises(sc.ReadAfterWriteUnsupported):
            linked.read("SELECT count(*) AS k FROM notes")
        assert len(tx.reads) == reads
        worker = threading.Thread(target=relink)
        worker.start()
        worker.join()
    assert [r["body"] for r in _rows(first)] == ["mine"]


def test_a_handler_tried_again_refuses_rows_an_earlier_try_took_from_an_iterator(
    space: Space, notes: sc.SqliteDb
) -> None:
    """A handler runs its body again after a conflict (§3), with the same arguments: rows given
    to ``exec_many`` as an iterator made outside the body were taken by the first try, and the
    second found it empty — no rows, nothing recorded (R36) — and committed the rest without
    them. The second try now refuses them, and nothing of the call is written."""
    counter = space.cell("counter", default=0)
    tries: list[int] = []

    def bump_elsewhere() -> None:
        with space.transact():
            counter.set(counter.get() + 100)

    def conflicting_first_try() -> None:
        tries.append(len(tries))
        seen = counter.get()  # read, then changed by another thread: the try conflicts
        if len(tries) == 1:
            thread = threading.Thread(target=bump_elsewhere)
            thread.start()
            thread.join()
        counter.set(seen + 1)

    @sc.handler
    def load(rows: Any) -> None:
        conflicting_first_try()
        notes.exec_many("INSERT INTO notes (body) VALUES (?)", rows)

    @sc.handler
    async def load_async(rows: Any) -> None:
        conflicting_first_try()
        notes.exec_many("INSERT INTO notes (body) VALUES (?)", rows)

    calls = [
        lambda: load(iter([["a"], ["b"]])),
        lambda: load(["a"] for _ in range(2)),
        lambda: asyncio.run(load_async(iter([["a"], ["b"]]))),
    ]
    for done, call in enumerate(calls, start=1):
        tries.clear()
        with pytest.raises(sc.ExecError) as info:
            call()
        assert isinstance(info.value, TypeError), info.value
        assert "earlier try" in str(info.value) and "list" in str(info.value)
        assert tries == [0, 1]  # the second try refused them: nothing of the call written
        assert _rows(notes) == [] and counter.get() == 100 * done  # (the other thread's)
    # Rows given as a list, or an iterator made inside the body, are read afresh by each try.
    tries.clear()
    assert load([["a"], ["b"]]) is not None and tries == [0, 1]

    @sc.handler
    def load_made_inside() -> None:
        conflicting_first_try()
        notes.exec_many("INSERT INTO notes (body) VALUES (?)", iter([["c"]]))

    tries.clear()
    assert load_made_inside() is not None and tries == [0, 1]
    assert [r["body"] for r in _rows(notes)] == ["a", "b", "c"]


def test_a_handler_tried_again_takes_an_iterator_that_gave_no_rows(
    space: Space, notes: sc.SqliteDb
) -> None:
    """The refusal of rows an earlier try took from an iterator is for rows the later try would
    lose: an iterator that gave none (a generator whose filter matched nothing) has none to
    lose, and the later try, finding it empty, writes what the first would have. Such a call
    was refused after a conflict, though it commits without one; it commits now. An iterator
    that gave rows is still refused."""
    counter = space.cell("counter", default=0)
    tries: list[int] = []

    def bump_elsewhere() -> None:
        with space.transact():
            counter.set(counter.get() + 100)

    @sc.handler
    def load(rows: Any) -> None:
        tries.append(len(tries))
        seen = counter.get()  # read, then changed by another thread: the first try conflicts
        if len(tries) == 1:
            thread = threading.Thread(target=bump_elsewhere)
            thread.start()
            thread.join()
        counter.set(seen + 1)
        notes.exec_many("INSERT INTO notes (body) VALUES (?)", rows)

    wanted: list[str] = []
    assert load([body] for body in ("a", "b") if body in wanted) is not None
    assert tries == [0, 1] and counter.get() == 101 and _rows(notes) == []
    tries.clear()
    with pytest.raises(sc.ExecError) as info:
        load(iter([["a"]]))
    assert "earlier try" in str(info.value) and tries == [0, 1]
    assert counter.get() == 201 and _rows(notes) == []
