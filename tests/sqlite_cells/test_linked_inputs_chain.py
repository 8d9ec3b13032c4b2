"""A database input that links to another piece's database input (R1, R61): given at
``space.run`` (``db=other_piece.outputs``) or linked later, the input cell keeps a link to the
other input cell, which links to the handle; each use follows the links to the handle, so the
piece works the same when it is run again without the argument, when it is linked so, and after
a restart, and its queries follow when the other input is linked to another database."""

from __future__ import annotations

from pathlib import Path

import pytest

import sqlite_cells as sc

TABLES = {"t": sc.table(id="integer primary key", v="text")}


@sc.pattern
def holder(db: sc.SqliteDb) -> sc.SqliteDb:
    return db


@sc.pattern
def reader(db: sc.SqliteDb) -> sc.Query:
    return db.query("SELECT v FROM t ORDER BY id")


def _rows(query: sc.Query) -> list[str] | None:
    state = query.get()
    assert state.error is None, state.error
    return None if state.result is None else [row["v"] for row in state.result]


def _databases(space: sc.Space) -> tuple[sc.SqliteDb, sc.SqliteDb]:
    """Databases A and B of ``space``, holding one row each: 'a' and 'b'."""
    found = []
    for name in ("A", "B"):
        db = space.sqlite_database(name, tables=TABLES)
        with space.transact():
            db.exec("INSERT INTO t (v) VALUES (?)", [name.lower()])
        found.append(db)
    return found[0], found[1]


def test_an_input_linked_to_another_pieces_input_reaches_its_database(tmp_path: Path) -> None:
    with sc.Runtime(tmp_path) as rt:
        space = rt.space("s")
        a, b = _databases(space)
        held = space.run(holder, key="h")
        held.inputs["db"].link(a)
        given = space.run(reader, key="given", db=held.outputs)
        again = space.run(reader, key="given")  # the same piece, given nothing this time
        linked = space.run(reader, key="linked")
        linked.inputs["db"].link(held.outputs)
        assert rt.settle(timeout=10)
        assert [_rows(p.outputs) for p in (given, again, linked)] == [["a"], ["a"], ["a"]]
        held.inputs["db"].link(b)  # the other piece's input moves: the readers follow
        assert rt.settle(timeout=10)
        assert [_rows(p.outputs) for p in (given, again, linked)] == [["b"], ["b"], ["b"]]
    with sc.Runtime(tmp_path) as rt:  # a restart: the links are in the store
        space = rt.space("s")
        restarted = space.run(reader, key="linked")
        assert rt.settle(timeout=10)
        assert _rows(restarted.outputs) == ["b"]


def test_a_cycle_of_input_links_is_no_database_and_no_hang(tmp_path: Path) -> None:
    with sc.Runtime(tmp_path) as rt:
        space = rt.space("s")
        first, second = space.run(holder, key="1"), space.run(holder, key="2")
        first.inputs["db"].link(second.outputs)
        # (link refuses to close the cycle; a value set, or another process, still may)
        with space.transact():
            second.inputs["db"].set(first.outputs)
        query = space.run(reader, key="r", db=first.outputs).outputs
        assert rt.settle(timeout=10)
        error = query.get().error
        assert isinstance(error, sc.SqliteCellsError)
        assert "does not hold a database handle" in str(error)


def test_a_link_or_run_that_would_close_a_cycle_of_inputs_is_refused(tmp_path: Path) -> None:
    """An input linked to itself (its piece's own output) or to an input whose links lead back
    to it never finds a database: refused at once, writing nothing, and the input keeps what it
    was linked to."""
    with sc.Runtime(tmp_path) as rt:
        space = rt.space("s")
        a, _ = _databases(space)
        first, second = space.run(holder, key="1"), space.run(holder, key="2")
        with pytest.raises(ValueError) as info:
            first.inputs["db"].link(first.outputs)
        assert isinstance(info.value, sc.SqliteCellsError)
        assert "is that input itself (a link to itself)" in str(info.value)
        assert "nothing was written" in str(info.value)
        first.inputs["db"].link(a)
        second.inputs["db"].link(first.outputs)
        seq = space.file.seen_seq
        with pytest.raises(ValueError) as info:
            first.inputs["db"].link(second.outputs)
        assert "(a cycle of links)" in str(info.value) and second.inputs["db"].id in str(info.value)
        with pytest.raises(ValueError) as info:
            space.run(holder, key="1", db=second.outputs)
        assert "(a cycle of links)" in str(info.value)
        assert "nothing was recorded" in str(info.value)
        with pytest.raises(ValueError) as info:
            space.run(holder, key="2", db=second.outputs)
        assert "is that input itself" in str(info.value)
        assert space.file.seen_seq == seq  # nothing committed
        query = space.run(reader, key="r", db=second.outputs).outputs
        assert rt.settle(timeout=10)
        assert _rows(query) == ["a"]


def test_a_cycle_or_a_drop_made_earlier_in_the_same_transaction_is_refused_too(
    tmp_path: Path,
) -> None:
    """The refusals of a link closing a cycle of inputs, or naming a dropped database, looked
    at committed values only: inside one transaction, linking two inputs to each other's piece,
    or dropping a database then linking an input (or running a piece) with it, was accepted and
    committed, and the piece's queries failed. The transaction's own writes count now; the
    refusal leaves the transaction usable, and it commits what it wrote besides."""
    with sc.Runtime(tmp_path) as rt:
        space = rt.space("s")
        a, b = _databases(space)
        first, second = space.run(holder, key="1"), space.run(holder, key="2")
        first.inputs["db"].link(a)
        seq = space.file.seen_seq
        with space.transact():
            first.inputs["db"].link(second.outputs)
            with pytest.raises(ValueError) as info:
                second.inputs["db"].link(first.outputs)
            assert isinstance(info.value, sc.SqliteCellsError)
            assert "(a cycle of links)" in str(info.value)
            assert "nothing was written" in str(info.value)
            with pytest.raises(ValueError) as info:
                space.run(holder, key="2", db=first.outputs)
            assert "(a cycle of links)" in str(info.value)
            second.inputs["db"].link(b)
        assert space.file.seen_seq == seq + 1
        query = space.run(reader, key="r", db=first.outputs).outputs
        assert rt.settle(timeout=10)
        assert _rows(query) == ["b"]  # first -> second -> B
        seq = space.file.seen_seq
        with space.transact():
            a.drop()
            for refused in (
                lambda: second.inputs["db"].link(a),
                lambda: space.run(holder, key="3", db=a),
            ):
                with pytest.raises(ValueError) as info:
                    refused()
                said = f"database {a.id} of space 's' is dropped by this transaction (db.drop())"
                assert said in str(info.value)
        assert space.file.seen_seq == seq + 1
        assert rt.settle(timeout=10)
        assert _rows(query) == ["b"]


def test_relinking_an_input_in_the_middle_of_a_chain_moves_the_query(tmp_path: Path) -> None:
    """R61: a reader → h2 → h1 → h0 → A. Linking h1 to B (a commit of that one cell, taken in
    while the scheduler is idle) re-runs the reader: it reads B."""
    with sc.Runtime(tmp_path) as rt:
        space = rt.space("s")
        a, b = _databases(space)
        h0, h1, h2 = (space.run(holder, key=f"h{i}") for i in range(3))
        h0.inputs["db"].link(a)
        h1.inputs["db"].link(h0.outputs)
        h2.inputs["db"].link(h1.outputs)
        reader_piece = space.run(reader, key="r", db=h2.outputs)
        assert rt.settle(timeout=10)
        assert _rows(reader_piece.outputs) == ["a"]
        h1.inputs["db"].link(b)
        assert rt.settle(timeout=10)
        assert _rows(reader_piece.outputs) == ["b"]
        h1.inputs["db"].link(h0.outputs)
        assert rt.settle(timeout=10)
        assert _rows(reader_piece.outputs) == ["a"]


def test_an_input_linked_to_another_pieces_unlinked_input_is_pending_until_it_is_linked(
    tmp_path: Path,
) -> None:
    """R61: nothing is linked to a chain of inputs whose last one holds nothing yet: the
    queries are pending and a write is `PendingValue`, as for an input given nothing — not a
    `SourceError` ("does not hold a database handle"). Linking the last one runs them."""
    with sc.Runtime(tmp_path) as rt:
        space = rt.space("s")
        a, _b = _databases(space)
        first = space.run(holder, key="h", db=None)
        second = space.run(reader, key="r", db=first.outputs)
        rt.settle()
        state = second.outputs.get()
        assert (state.pending, state.result, state.error) == (True, None, None)

        @sc.pattern
        def writer(db: sc.SqliteDb) -> sc.Cell:
            @sc.handler
            def add() -> None:
                db.exec("INSERT INTO t (v) VALUES ('x')")

            return add  # type: ignore[return-value]

        add = space.run(writer, key="w", db=first.outputs).outputs
        try:
            add()
            raise AssertionError("wrote through a chain linked to nothing")
        except sc.PendingValue as exc:
            assert "not linked to a database yet" in str(exc)
        first.inputs["db"].link(a)
        rt.settle()
        assert _rows(second.outputs) == ["a"]


def test_an_input_that_holds_a_value_not_a_link_is_an_error_until_linked(
    tmp_path: Path,
) -> None:
    """R61: an input linked to nothing yet is pending. One holding a plain value (set on the
    input, or left by an older program) was taken for that too and stayed pending for good,
    with nothing to say why; it is a SourceError now, at the query and at a write, until a
    handle is linked."""
    with sc.Runtime(tmp_path) as rt:
        space = rt.space("s")
        a, _b = _databases(space)
        piece = space.run(reader, key="k")
        assert rt.settle(timeout=10) and piece.outputs.get().pending
        with space.transact():
            piece.inputs["db"].set(5)
        assert rt.settle(timeout=10)
        state = piece.outputs.get()
        assert isinstance(state.error, sc.SourceError) and not state.pending
        assert f"pattern input {piece.inputs['db'].id} holds 5 where a link" in str(state.error)
        piece.inputs["db"].link(a)
        assert rt.settle(timeout=10)
        assert _rows(piece.outputs) == ["a"]


def test_another_pieces_input_cell_is_taken_at_run_as_link_takes_it(tmp_path: Path) -> None:
    """R61: ``piece.inputs[name].link(other.inputs[name])`` follows the other piece's input to
    its database; ``space.run(..., db=other.inputs[name])`` was refused ("holds no database
    handle") for the same cell. It is taken too now, and follows the other input when that one
    is linked anew."""
    with sc.Runtime(tmp_path) as rt:
        space = rt.space("s")
        a, b = _databases(space)
        first = space.run(reader, key="first", db=a)
        second = space.run(reader, key="second", db=first.inputs["db"])
        assert rt.settle(timeout=10)
        assert _rows(second.outputs) == ["a"]
        first.inputs["db"].link(b)
        assert rt.settle(timeout=10)
        assert _rows(second.outputs) == ["b"]
        with pytest.raises(sc.SqliteCellsError, match="holds no database handle") as info:
            space.run(reader, key="third", db=space.cell("plain", default=5))
        assert type(info.value).__name__ == "InvalidArgument" and isinstance(info.value, TypeError)


def test_a_chain_of_inputs_longer_than_a_database_input_follows_is_said_so(
    tmp_path: Path,
) -> None:
    """R61: a database input follows at most ``LINKS_FOLLOWED`` other pieces' inputs to its
    database. A run or link that would pass through more was accepted, and the piece's queries
    failed saying a cell "does not hold a database handle" — a cell that holds a link. Such a
    run or link is refused now, recording nothing; a chain made longer afterwards (an input
    upstream relinked) fails its queries saying how far the links go, and works again once
    it is short enough."""
    from sqlite_cells.read import LINKS_FOLLOWED

    with sc.Runtime(tmp_path) as rt:
        space = rt.space("s")
        a, _ = _databases(space)
        chain = [space.run(holder, key="0", db=a)]
        for n in range(1, LINKS_FOLLOWED + 1):  # the last follows LINKS_FOLLOWED inputs
            chain.append(space.run(holder, key=str(n), db=chain[-1].inputs["db"]))
        # chain[-2]'s input and the LINKS_FOLLOWED - 1 before it: still taken
        last = space.run(reader, key="last", db=chain[-2].inputs["db"])
        assert rt.settle(timeout=10)
        assert _rows(last.outputs) == ["a"]
        seq = space.file.seen_seq
        with pytest.raises(ValueError) as info:
            space.run(reader, key="far", db=chain[-1].inputs["db"])
        assert isinstance(info.value, sc.SqliteCellsError)
        said = str(info.value)
        assert f"more than {LINKS_FOLLOWED} pattern inputs" in said
        assert "nothing was recorded" in said
        with pytest.raises(ValueError) as info:
            last.inputs["db"].link(chain[-1].inputs["db"])
        assert "nothing was written" in str(info.value)
        assert space.file.seen_seq == seq  # nothing committed
        assert _rows(last.outputs) == ["a"]  # still linked as before
        # Made longer upstream: the first input now links to another piece's input.
        extra = space.run(holder, key="extra", db=a)
        chain[0].inputs["db"].link(extra.inputs["db"])
        assert rt.settle(timeout=10)
        error = last.outputs.get().error
        assert isinstance(error, sc.SourceError)
        assert f"through more than {LINKS_FOLLOWED} other pattern inputs" in str(error)
        assert "does not hold a database handle" not in str(error)
        with pytest.raises(sc.SourceError, match="without reaching a database"):
            chain[-1].outputs.read("SELECT v FROM t")
        chain[0].inputs["db"].link(a)
        assert rt.settle(timeout=10)
        assert _rows(last.outputs) == ["a"]


def test_another_runtimes_piece_input_on_the_store_is_taken_and_followed(tmp_path: Path) -> None:
    """Runtimes on one store share their cells, but only the runtime that ran a piece knew its
    input as a database input: ``space.run(…, db=theirs.inputs["db"])`` in the other runtime was
    refused as a cell that "holds no database handle" (it holds a link to one), and linking to
    such an input not linked yet was refused alike. Both are taken now, as in the runtime that
    ran the piece; an input linked to one not linked yet is pending until it is linked."""
    with sc.Runtime(tmp_path / "store") as first, sc.Runtime(tmp_path / "store") as second:
        theirs = first.space("s")
        db = theirs.sqlite_database("db", tables=TABLES)
        with theirs.transact():
            db.exec("INSERT INTO t (v) VALUES ('a')")
        linked = theirs.run(holder, key="linked", db=db)
        unlinked = theirs.run(holder, key="unlinked")
        mine = second.space("s")
        given = mine.run(reader, key="given", db=linked.inputs["db"])
        later = mine.run(reader, key="later")
        later.inputs["db"].link(unlinked.inputs["db"])
        second.settle()
        assert given.outputs.get().result == [{"v": "a"}]
        state = later.outputs.get()
        assert (state.pending, state.error) == (True, None)
        unlinked.inputs["db"].link(db)
        second.settle()
        state = later.outputs.get()
        assert (state.pending, state.error, state.result) == (False, None, [{"v": "a"}])
