"""Patterns and pieces as a pattern author meets them (SPEC §2 Pattern/piece, §3, R1, R4, R61).

The same program binds the same ids; keys, nesting and builders outside a pattern; defaults
declared in a pattern body; what ``space.run`` takes (cells, plain values, databases, links);
a body that raises; inputs linked later.
"""

from __future__ import annotations

import copy
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import sqlite_cells as sc

TABLES = {"notes": sc.table(id="integer primary key", body="text not null")}


@sc.pattern
def notes(owner: sc.Cell) -> dict[str, Any]:
    space = owner.space
    db = space.sqlite_database(tables=TABLES)  # unnamed: causal id from the piece
    named_db = space.sqlite_database("archive", tables=TABLES)
    title = space.cell("title", default="untitled")
    first, second = space.cell(), space.cell()
    return {"db": db, "archive": named_db, "title": title, "first": first, "second": second}


@sc.pattern
def notebook_of(owner: sc.Cell) -> dict[str, Any]:
    """A pattern that runs another pattern for its owner, and builds a cell of its own."""
    inner = owner.space.run(notes, key="inner", owner=owner)
    return {"inner": inner, "mine": owner.space.cell()}


def _ids(piece: sc.Piece) -> dict[str, Any]:
    out = piece.outputs
    return {
        "piece": piece.id,
        "inputs": {name: cell.id for name, cell in piece.inputs.items()},
        **{name: out[name].id for name in ("db", "archive", "title", "first", "second")},
        "paths": (out["db"].path.name, out["archive"].path.name),
    }


def _write(space: sc.Space, db: sc.SqliteDb, body: str) -> None:
    with space.transact():
        db.exec("INSERT INTO notes (body) VALUES (?)", [body])


def test_the_same_program_twice_binds_the_same_cells_and_databases(store: Path) -> None:
    """R1: a second runtime on the store, running the same pattern with the same key, gets the
    same piece, input, cell and database ids (and files), and reads what the first wrote."""
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        piece = space.run(notes, key="main", owner=space.cell("ada"))
        _write(space, piece.outputs["db"], "first note")
        with space.transact():
            piece.outputs["title"].set("Ada's notes")
        before = _ids(piece)
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        again = space.run(notes, key="main", owner=space.cell("ada"))
        assert _ids(again) == before
        assert again.outputs["db"].read("SELECT body FROM notes") == [{"body": "first note"}]
        assert again.outputs["title"].get() == "Ada's notes"
        assert again.outputs["db"].rev == 1


def test_two_keys_give_two_pieces_with_their_own_ids_and_files(rt: sc.Runtime) -> None:
    space = rt.space("demo")
    owner = space.cell("ada")
    a, b = (space.run(notes, key=key, owner=owner) for key in ("a", "b"))
    ids_a, ids_b = _ids(a), _ids(b)
    for name in ("piece", "db", "archive", "title", "first", "second"):
        assert ids_a[name] != ids_b[name], name
    assert set(ids_a["paths"]).isdisjoint(ids_b["paths"])
    assert set(ids_a["inputs"].values()).isdisjoint(ids_b["inputs"].values())
    # Positions and names inside one piece are distinct too.
    assert len({ids_a[n] for n in ("db", "archive", "title", "first", "second")}) == 5
    _write(space, a.outputs["db"], "only in a")
    assert a.outputs["db"].read("SELECT body FROM notes") == [{"body": "only in a"}]
    assert b.outputs["db"].read("SELECT body FROM notes") == []
    assert b.outputs["db"].rev == 0


def test_a_piece_is_its_id_hashable_and_copied_as_itself(rt: sc.Runtime) -> None:
    """A piece could not be put in a set or used as a key (Python's TypeError: its inputs are a
    dict), and ``copy.deepcopy`` said to set an input, which the caller never did."""
    space = rt.space("demo")
    owner = space.cell("ada")
    a, again, b = (space.run(notes, key=key, owner=owner) for key in ("a", "a", "b"))
    assert a == again and hash(a) == hash(again) and a != b
    assert {a, again, b} == {a, b} and {a: 1}[again] == 1
    assert copy.deepcopy(a) is a and copy.copy(a) is a
    assert copy.deepcopy(a.inputs) is a.inputs
    assert a != "not a piece"


def test_a_named_builder_inside_a_pattern_is_not_the_space_cell_of_that_name(
    rt: sc.Runtime,
) -> None:
    space = rt.space("demo")
    piece = space.run(notes, key="main", owner=space.cell("ada"))
    assert piece.outputs["title"].id != space.cell("title").id
    assert piece.outputs["archive"].id != space.sqlite_database("archive", tables=TABLES).id


@pytest.mark.parametrize(
    "build",
    [
        lambda space: space.cell(),
        lambda space: space.sqlite_database(tables=TABLES),
    ],
    ids=["cell", "database"],
)
def test_unnamed_builders_outside_a_pattern_are_refused_and_create_nothing(
    rt: sc.Runtime, store: Path, build: Any
) -> None:
    space = rt.space("demo")
    with pytest.raises(sc.SqliteCellsError) as info:
        build(space)
    assert isinstance(info.value, TypeError | ValueError)
    assert "outside a pattern needs a name" in str(info.value)
    assert list(store.iterdir()) == [] or not any(p.suffix == ".sqlite" for p in store.iterdir())


def test_named_builders_outside_a_pattern_derive_from_the_space(
    rt: sc.Runtime, store: Path
) -> None:
    space = rt.space("demo")
    with sc.Runtime(store) as other:
        assert other.space("demo").cell("x").id == space.cell("x").id
        assert (
            other.space("demo").sqlite_database("d", tables=TABLES).id
            == space.sqlite_database("d", tables=TABLES).id
        )


def test_a_pattern_running_another_pattern_nests_its_pieces(store: Path) -> None:
    """The inner piece is caused by the outer one: two outer pieces running the inner pattern
    with one key get two inner pieces, and a restart binds the same nested ids."""
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        owner = space.cell("ada")
        one = space.run(notebook_of, key="one", owner=owner)
        two = space.run(notebook_of, key="two", owner=owner)
        direct = space.run(notes, key="inner", owner=owner)
        inner_one, inner_two = one.outputs["inner"], two.outputs["inner"]
        assert len({inner_one.id, inner_two.id, direct.id}) == 3
        assert len({p.outputs["db"].id for p in (inner_one, inner_two, direct)}) == 3
        # The outer body's own unnamed cell counts from its own position, not the inner's.
        assert one.outputs["mine"].id not in _ids(inner_one).values()
        _write(space, inner_one.outputs["db"], "nested")
        before = (_ids(inner_one), one.outputs["mine"].id)
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        again = space.run(notebook_of, key="one", owner=space.cell("ada"))
        assert (_ids(again.outputs["inner"]), again.outputs["mine"].id) == before
        inner_db = again.outputs["inner"].outputs["db"]
        assert inner_db.read("SELECT body FROM notes") == [{"body": "nested"}]


def test_a_pattern_called_as_a_function_inside_a_body_builds_into_that_piece(
    rt: sc.Runtime,
) -> None:
    """Calling a pattern directly (not through space.run) is an ordinary function call: its
    builders take ids from the piece being built, after the caller's own positions."""

    @sc.pattern
    def outer(owner: sc.Cell) -> Any:
        mine = owner.space.cell()
        return mine, notes(owner)

    space = rt.space("demo")
    owner = space.cell("ada")
    mine, built = space.run(outer, key="k", owner=owner).outputs
    mine2, built2 = space.run(outer, key="k", owner=owner).outputs
    assert (mine.id, built["first"].id, built["second"].id) == (
        mine2.id,
        built2["first"].id,
        built2["second"].id,
    )
    assert len({mine.id, built["first"].id, built["second"].id}) == 3
    with pytest.raises(sc.SqliteCellsError, match="outside a pattern needs a name"):
        notes(owner)  # outside any piece, its unnamed builders have no cause


def test_the_latest_default_declared_in_a_pattern_wins_until_the_first_write(
    rt: sc.Runtime, store: Path
) -> None:
    """R4: each run of the body declares the default again; every Cell of the id reads the
    latest one until the cell is written, then the written value."""
    space = rt.space("demo")

    @sc.pattern
    def counter(start: sc.Cell) -> Any:
        return space.cell("count", default=start.get())

    first = space.run(counter, key="k", start=1).outputs
    seen: list[Any] = []
    first.observe().subscribe(seen.append)
    doubled = sc.derive(first, lambda v: v * 2)
    rt.settle()
    assert (first.get(), doubled.get()) == (1, 2)
    second = space.run(counter, key="k", start=7).outputs
    rt.settle()
    assert second.id == first.id
    assert (first.get(), second.get(), doubled.get(), seen) == (7, 7, 14, [1, 7])
    assert rt.cell_from_link(first.link_str()).get() == 7
    with space.transact():
        second.set(3)
    space.run(counter, key="k", start=100)  # declared again after the write: the write stands
    rt.settle()
    assert (first.get(), doubled.get(), seen) == (3, 6, [1, 7, 3])
    with sc.Runtime(store) as other:
        assert other.cell_from_link(first.link_str()).get() == 3


def test_run_takes_cells_plain_values_databases_and_links(rt: sc.Runtime) -> None:
    space = rt.space("demo")
    ada = space.cell("ada", default={"name": "Ada"})
    db = space.sqlite_database("shared", tables=TABLES)
    _write(space, db, "hello")
    got: dict[str, Any] = {}

    @sc.pattern
    def takes(who: sc.Cell, limit: sc.Cell, store: sc.SqliteDb, other: sc.Cell) -> Any:
        got.update(who=who, limit=limit, store=store, other=other)
        return store.query("SELECT body FROM notes LIMIT ?", params=[limit])

    piece = space.run(takes, key="k", who=ada, limit=5, store=db, other=ada.link())
    rt.settle()
    assert got["who"] == ada  # a cell given is the cell itself
    assert got["limit"].get() == 5 and got["limit"] == piece.inputs["limit"]
    # A database input stands for the database its input cell links to (R61).
    assert got["store"].id == piece.inputs["store"].id and got["store"].target().id == db.id
    assert piece.outputs.get().result == [{"body": "hello"}]
    # Each input cell holds what it was given: a cell (or a link to one) as a link.
    assert piece.inputs["who"].get() == ada
    assert piece.inputs["other"].get() == ada
    assert piece.inputs["limit"].get() == 5
    assert piece.inputs["store"].get() == db
    assert got["other"] == ada  # a link given is the cell it names
    # A cell given as a plain-value input changes what the body reads when it changes.
    with space.transact():
        piece.inputs["limit"].set(0)
    rt.settle()
    assert piece.outputs.get().result == []


def test_a_link_given_as_an_input_is_the_cell_it_names(rt: sc.Runtime) -> None:
    """A link names a cell (R30): given for an input, the body gets that cell, as if the cell
    itself had been given (a link string likewise is only a string value)."""
    space = rt.space("demo")
    ada = space.cell("ada", default={"name": "Ada"})

    @sc.pattern
    def shows(who: sc.Cell) -> Any:
        return who

    assert space.run(shows, key="cell", who=ada).outputs == ada
    assert space.run(shows, key="link", who=ada.link()).outputs == ada
    assert space.run(shows, key="text", who=ada.link_str()).outputs.get() == ada.link_str()
    seq = space.file.seen_seq
    space.run(shows, key="link", who=ada)  # the input already holds that link: no write
    assert space.file.seen_seq == seq


def test_a_link_to_a_database_given_for_a_database_input_is_that_database(
    rt: sc.Runtime,
) -> None:
    space = rt.space("demo")
    db = space.sqlite_database("shared", tables=TABLES)
    _write(space, db, "hello")

    @sc.pattern
    def reads(store: sc.SqliteDb) -> Any:
        return store.query("SELECT body FROM notes")

    query = space.run(reads, key="k", store=db.link()).outputs
    rt.settle()
    assert query.get().result == [{"body": "hello"}]
    with pytest.raises(sc.SqliteCellsError, match="holds no database handle"):
        space.run(reads, key="k", store=space.cell("plain").link())


class Broken(Exception):
    pass


def test_a_body_that_raises_leaves_the_runtime_usable_and_a_rerun_rebinds(
    rt: sc.Runtime, store: Path
) -> None:
    """The author's exception reaches the caller as it is; the piece's record and inputs (what
    ``space.run`` was asked to keep) stay, nothing the body built is committed, no builder
    context leaks, and running again binds the same ids."""
    space = rt.space("demo")
    fail = {"now": True}

    @sc.pattern
    def flaky(owner: sc.Cell) -> Any:
        db = owner.space.sqlite_database(tables=TABLES)
        cell = owner.space.cell(default=1)
        if fail["now"]:
            raise Broken("not yet")
        return db, cell

    seq = space.file.seen_seq
    with pytest.raises(Broken, match="not yet"):
        space.run(flaky, key="k", owner=space.cell("ada"))
    assert space.file.seen_seq == seq + 1  # only the piece record and its input
    assert not list(store.glob("cell-*.sqlite"))
    with pytest.raises(sc.SqliteCellsError, match="outside a pattern needs a name"):
        space.cell()  # the failed body's builder context is gone
    fail["now"] = False
    db, cell = space.run(flaky, key="k", owner=space.cell("ada")).outputs
    assert space.file.seen_seq == seq + 1  # same inputs: nothing written again
    assert cell.get() == 1
    _write(space, db, "now")
    assert db.read("SELECT body FROM notes") == [{"body": "now"}]


def test_inputs_not_given_are_input_cells_that_can_be_linked_later(store: Path) -> None:
    """R61 and R1: an input nobody gave is the piece's input cell; a link made later is a
    committed write, so the next run (another runtime too) gets the linked cell."""

    @sc.pattern
    def greet(name: sc.Cell, db: sc.SqliteDb) -> Any:
        return sc.derive(name, lambda n: f"hi {n}"), db.query("SELECT count(*) AS n FROM notes")

    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        piece = space.run(greet, key="k")
        rt.settle()
        greeting, count = piece.outputs
        assert greeting.get() == "hi None"
        assert count.get().pending is True
        assert set(piece.inputs) == {"name", "db"}
        ada = space.cell("ada", default="Ada")
        piece.inputs["name"].link(ada)
        db = space.sqlite_database("notes", tables=TABLES)
        _write(space, db, "x")
        piece.inputs["db"].link(db)
        rt.settle()
        assert count.get().result == [{"n": 1}]
        assert piece.inputs["name"].get() == ada
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        space.cell("ada", default="Ada")
        greeting, count = space.run(greet, key="k").outputs
        rt.settle()
        assert count.get().result == [{"n": 1}]
        assert piece.inputs["name"].id == space.run(greet, key="k").inputs["name"].id


def test_a_database_input_linked_to_a_plain_cell_is_refused_without_partial_state(
    rt: sc.Runtime,
) -> None:
    space = rt.space("demo")

    @sc.pattern
    def uses(db: sc.SqliteDb) -> Any:
        return db.query("SELECT count(*) AS n FROM notes")

    seq = space.file.seen_seq
    with pytest.raises(sc.SqliteCellsError) as info:
        space.run(uses, key="k", db=space.cell("plain", default=3))
    assert isinstance(info.value, TypeError | ValueError)
    assert space.file.seen_seq == seq


def test_an_async_or_generator_pattern_is_refused_where_it_is_declared() -> None:
    """§3, R1: builders called inside a body get ids from the piece. An `async def` (or
    generator) body runs only when its result is awaited (iterated), after `space.run` left the
    piece: its `space.cell("count")` was the space's own cell, shared by every key."""

    async def counter_async(start: sc.Cell) -> Any:
        return start.space.cell("count", default=0)

    def counter_generator(start: sc.Cell) -> Any:
        yield start.space.cell("count", default=0)

    async def counter_async_generator(start: sc.Cell) -> Any:
        yield start.space.cell("count", default=0)

    for body in (counter_async, counter_generator, counter_async_generator):
        with pytest.raises(sc.SqliteCellsError, match="plain function") as info:
            sc.pattern(body)
        assert isinstance(info.value, TypeError)


@sc.pattern
def _greeting(me: Any) -> Any:
    return me


def test_run_inside_a_transaction_compares_inputs_with_what_the_transaction_sees(
    rt: sc.Runtime,
) -> None:
    """§3: inside a transaction a cell reads what the transaction sees. `space.run` compared a
    given input with the committed value only: `me=bob` then `me=alice` in one transaction
    (alice committed before) left the input linked to bob; an input set in the transaction and
    then given again kept the set value."""
    space = rt.space("demo")
    alice, bob = space.cell("alice", default="Alice"), space.cell("bob", default="Bob")
    first = space.run(_greeting, key="main", me=alice)
    assert first.inputs["me"].get() == alice
    with space.transact():
        space.run(_greeting, key="main", me=bob)
        again = space.run(_greeting, key="main", me=alice)
        assert again.inputs["me"].get() == alice and again.outputs == alice
    assert space.run(_greeting, key="main").inputs["me"].get() == alice

    space.run(_greeting, key="n", me=1)
    with space.transact():
        piece = space.run(_greeting, key="n", me=1)
        piece.inputs["me"].set(7)
        assert space.run(_greeting, key="n", me=1).outputs.get() == 1  # the body reads 1
    assert space.run(_greeting, key="n").inputs["me"].get() == 1


def test_a_lambda_is_no_pattern() -> None:
    """R1: a piece's id derives from its pattern's module and qualified name, which every lambda
    of a module shares (``<lambda>``): two lambda patterns would share their pieces, cells and
    databases. ``sc.pattern`` refuses a lambda, saying so."""
    for fn in (lambda: None, (lambda: lambda me: me)()):
        with pytest.raises(
            sc.SqliteCellsError, match="every lambda there is called <lambda>"
        ) as info:
            sc.pattern(fn)
        assert isinstance(info.value, ValueError | TypeError)


@sc.pattern
def greet(me: sc.Cell) -> Any:
    return sc.derive(me, lambda value: f"hello {value['name']}")


def test_a_piece_run_again_without_its_cell_input_gets_the_cell_it_was_given(
    store: Path,
) -> None:
    """§2 ("re-running the program rebinds to the same cells"): a piece given a cell at its
    first run, run again after a restart without it (its input cell keeps the link), gave the
    body the input cell — a link where the cell's value was — and no longer followed that
    cell. The body gets the cell the input links to, as the first run's did."""
    with sc.Runtime(store) as rt:
        space = rt.space("s")
        alice = space.cell("alice")
        with space.transact():
            alice.set({"name": "Alice"})
        first = space.run(greet, key="k", me=alice)
        assert first.outputs.get() == "hello Alice"
    with sc.Runtime(store) as rt:
        space = rt.space("s")
        again = space.run(greet, key="k")
        assert again.id == first.id
        assert again.outputs.get() == "hello Alice"
        with space.transact():
            space.cell("alice").set({"name": "Alicia"})
        rt.settle()
        assert again.outputs.get() == "hello Alicia"
        # An input never given (nothing linked) is still the input cell itself.
        assert space.run(greet, key="other").inputs["me"].get() is None


@sc.pattern
def shown(me: Any) -> Any:
    return sc.derive(me, lambda value: value)


def test_a_piece_run_again_without_its_input_at_a_path_gets_that_cell_at_its_path(
    store: Path,
) -> None:
    """The same for a cell at a path (``src.key("a")``): run again without it, the body got the
    input cell, and its derived cell showed a link where the value at the path was."""
    with sc.Runtime(store) as rt:
        space = rt.space("s")
        src = space.cell("src")
        with space.transact():
            src.set({"a": 1, "b": 2})
        assert space.run(shown, key="k", me=src.key("a")).outputs.get() == 1
    with sc.Runtime(store) as rt:
        space = rt.space("s")
        again = space.run(shown, key="k")
        assert again.outputs.get() == 1
        with space.transact():
            space.cell("src").set({"a": 10, "b": 2})
        rt.settle()
        assert again.outputs.get() == 10


def test_a_pattern_pickles_by_its_name_and_one_defined_in_a_function_says_why_not() -> None:
    """A pattern given to a ``spawn`` process pool is pickled: pickling its function by
    reference raised Python's raw PicklingError (the pattern, not the function, stands at that
    name). It pickles by module and qualified name, what its pieces' ids derive from."""
    assert pickle.loads(pickle.dumps(notes)) is notes

    @sc.pattern
    def local() -> None:
        return None

    with pytest.raises(sc.SqliteCellsError, match="defined inside a function") as info:
        pickle.dumps(local)
    assert isinstance(info.value, TypeError)


def test_a_piece_cannot_be_pickled_and_says_how_to_get_it_again(tmp_path: Path) -> None:
    """Pickling a piece said "space 's' cannot be pickled", naming a space nobody pickled. It
    names the piece and its pattern, and says to run the pattern again with its key."""
    store = tmp_path / "store"
    with sc.Runtime(store) as rt:
        space = rt.space("s")
        owner = space.cell("owner", default="me")
        piece = space.run(notes, key="main", owner=owner)
        before = {p.name: p.read_bytes() for p in store.iterdir() if p.suffix == ".sqlite"}
        with pytest.raises(sc.SqliteCellsError) as info:
            pickle.dumps(piece)
        assert isinstance(info.value, TypeError)
        message = str(info.value)
        assert message.startswith(f"piece {piece.id} (pattern {notes.name}, in space 's')")
        assert "cannot be pickled" in message
        assert "run(pattern, key=key" in message
        assert "space 's' cannot" not in message
        assert copy.copy(piece) is piece and copy.deepcopy(piece) is piece
        after = {p.name: p.read_bytes() for p in store.iterdir() if p.suffix == ".sqlite"}
        assert after == before


_MAIN_SCRIPT = """
import multiprocessing, sys
import sqlite_cells as sc

@sc.pattern
def counter():
    return SPACE.cell("count", default=0)

def worker(store, pattern, queue):
    global SPACE
    with sc.Runtime(store) as rt:
        SPACE = rt.space("s")
        piece = SPACE.run(pattern, key="main")
        queue.put((pattern.name, piece.id, piece.outputs.id, piece.outputs.get()))

if __name__ == "__main__":
    store = sys.argv[1]
    with sc.Runtime(store) as rt:
        SPACE = rt.space("s")
        piece = SPACE.run(counter, key="main")
        with SPACE.transact():
            piece.outputs.set(41)
        print(counter.name, piece.id, piece.outputs.id, 41)
    for method in ("spawn", "forkserver"):
        context = multiprocessing.get_context(method)
        queue = context.Queue()
        process = context.Process(target=worker, args=(store, counter, queue))
        process.start()
        print(*queue.get(timeout=60))
        process.join()
"""


def test_a_pattern_of_the_main_script_binds_the_same_piece_in_the_programs_own_workers(
    tmp_path: Path,
) -> None:
    """In a ``spawn`` or ``forkserver`` worker the main script is the module ``__mp_main__``:
    a pattern of it named its pieces after that module there, so the same ``space.run`` bound
    other cells (R1); one program, one pattern, the same pieces."""
    script = tmp_path / "program.py"
    script.write_text(_MAIN_SCRIPT)
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "store")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 3 and lines[0].startswith("__main__.counter of:"), lines
    assert lines[1] == lines[0] and lines[2] == lines[0]  # (the value 41 read there too)


def test_a_piece_equals_itself_run_by_another_runtime_on_the_store(tmp_path: Path) -> None:
    """A piece is its id in its space, and runtimes on one store share their cells: the same
    piece run by two runtimes on one store compared unequal (and two such pieces made two set
    members) while their input cells compared equal. Equal now; a piece of the same space id
    and key in another store is still another piece."""
    other_store = tmp_path / "other"
    with (
        sc.Runtime(tmp_path / "store") as first,
        sc.Runtime(tmp_path / "store") as second,
        sc.Runtime(other_store) as elsewhere,
    ):
        one, two, three = (
            rt.space("demo").run(notes, key="a", owner=rt.space("demo").cell("ada"))
            for rt in (first, second, elsewhere)
        )
        assert one.inputs["owner"] == two.inputs["owner"]
        assert one == two and hash(one) == hash(two) and len({one, two}) == 1
        assert one != three and three != two


@sc.pattern
def counted(a: sc.Cell, db: sc.SqliteDb, plain: Any) -> tuple[Any, ...]:
    """Reads its cell input and two databases (one typed, one not) in one query each."""
    sql = "SELECT ? AS v, (SELECT count(*) FROM notes) AS n"
    return a, plain, db.query(sql, params=[a]), plain.query(sql, params=[a])


def test_cells_of_another_runtime_on_the_store_given_to_a_piece_are_this_runtimes(
    tmp_path: Path,
) -> None:
    """Runtimes on one store share their cells, and ``space.run`` stores a cell of the other
    one as the link it is. The body got that other runtime's objects, though: a query of the
    piece's database input given such a cell failed (``QueryArgumentError``: a cell of another
    runtime), and its graph followed, and stopped with, the other runtime. The body gets this
    runtime's cell and database now, as a run given nothing gets them (§2)."""
    with sc.Runtime(tmp_path / "store") as first, sc.Runtime(tmp_path / "store") as second:
        theirs = first.space("demo")
        cell = theirs.cell("a")
        db = theirs.sqlite_database("shared", tables=TABLES)
        with theirs.transact():
            cell.set(5)
        with theirs.transact():
            db.exec("INSERT INTO notes (body) VALUES ('x')")
        piece = second.space("demo").run(counted, key="k", a=cell, db=db, plain=db)
        a, plain, typed_query, plain_query = piece.outputs
        assert a == cell and a.space.runtime is second
        assert isinstance(plain, sc.SqliteDb) and plain.space.runtime is second
        second.settle()
        for query in (typed_query, plain_query):
            state = query.get()
            assert (state.pending, state.error, state.result) == (False, None, [{"v": 5, "n": 1}])
        first.close()
        assert a.get() == 5 and plain.read("SELECT count(*) AS n FROM notes") == [{"n": 1}]
