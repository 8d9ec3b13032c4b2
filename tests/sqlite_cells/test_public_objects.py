"""§3, Errors: the public objects a newcomer holds — cells, runtimes, spaces, queries, derived
cells, pieces, query states — compared, copied, pickled, shown and misused, as a notebook and
tab completion invite: no raw Python error, no object that half-works, no repr of megabytes."""

from __future__ import annotations

import copy
import inspect
import pickle
import pydoc
from pathlib import Path
from typing import Any

import apsw
import pytest

import sqlite_cells as sc

TABLES = {"t": sc.table(x="integer")}


def test_cells_of_two_stores_are_two_cells(tmp_path: Path) -> None:
    """One (space, id, path) names one cell of one store: the same names in another store are
    another cell (a dict or set kept one of the two); two runtimes on one store share it."""
    with (
        sc.Runtime(tmp_path / "a") as first,
        sc.Runtime(tmp_path / "b") as second,
        sc.Runtime(tmp_path / "a") as again,
    ):
        mine, theirs = first.space("s").cell("x"), second.space("s").cell("x")
        assert mine != theirs and len({mine: 1, theirs: 2}) == 2
        assert mine == again.space("s").cell("x") == first.space("s").cell("x")
        assert hash(mine) == hash(again.space("s").cell("x"))


def test_runtimes_spaces_queries_and_derived_cells_copy_as_themselves_and_refuse_pickling(
    tmp_path: Path,
) -> None:
    """A copy was a second runtime object closing the first one's files (the original still
    said "open"), a deep copy or pickle a raw TypeError. A copy is the object itself, as a
    cell's is; pickling says what to pickle instead."""
    with sc.Runtime(tmp_path) as rt:
        space = rt.space("s")
        db = space.sqlite_database("d", tables=TABLES)
        query = db.query("SELECT x FROM t")
        derived = sc.derive(space.cell("c", default=1), lambda v: v)
        for held in (rt, space, query, derived):
            assert copy.copy(held) is held and copy.deepcopy({"k": held})["k"] is held
            with pytest.raises(sc.SqliteCellsError, match="cannot be pickled") as refused:
                pickle.dumps(held)
            assert isinstance(refused.value, TypeError)
        rt.settle()
        assert query.get().result == [] and derived.get() == 1


def test_pickling_a_database_says_how_to_get_the_database_back(tmp_path: Path) -> None:
    """A database's pickle said what a cell's says: pickle its link and get it back with
    ``rt.cell_from_link`` — which gives a plain cell, with no read or exec. It names the
    database and says to declare it again by its space and name (an injected file: to register
    its path again), which gives the same database."""
    source = tmp_path / "source.db"
    conn = apsw.Connection(str(source))
    conn.execute("CREATE TABLE z (a)")
    conn.close()
    with sc.Runtime(tmp_path / "store") as rt:
        space = rt.space("s")
        db = space.sqlite_database("d", tables=TABLES)
        handle = space.register_disk_source(str(source))
        for held in (db, handle):
            with pytest.raises(sc.SqliteCellsError, match="cannot be pickled") as refused:
                pickle.dumps(held)
            assert isinstance(refused.value, TypeError)
            message = str(refused.value)
            assert f"{held.id}) of space 's'" in message or f"{held.id} of space 's'" in message
            assert "cell_from_link" not in message
        with pytest.raises(sc.SqliteCellsError) as refused:
            pickle.dumps(db)
        assert str(refused.value).startswith(f"database 'd' ({db.id}) of space 's' cannot be")
        assert "rt.space(space_id).sqlite_database(name, tables=…)" in str(refused.value)
        with pytest.raises(sc.SqliteCellsError) as refused:
            pickle.dumps(handle)
        assert f"space.register_disk_source({str(source)!r})" in str(refused.value)


def test_a_transaction_copies_as_itself_refuses_pickling_and_shows_what_it_is(
    tmp_path: Path,
) -> None:
    """``sc.Transaction`` is public (``with space.transact() as tx``): its pickle and deep copy
    were a raw TypeError, its repr Python's default."""
    with sc.Runtime(tmp_path) as rt:
        space = rt.space("s")
        with space.transact() as tx:
            space.cell("c").set(1)
            assert copy.copy(tx) is tx and copy.deepcopy([tx])[0] is tx
            with pytest.raises(sc.SqliteCellsError, match="cannot be pickled") as refused:
                pickle.dumps(tx)
            assert isinstance(refused.value, TypeError)
            assert repr(tx) == "<Transaction of space 's': open, 0 read(s), 1 write(s), 0 op(s)>"
        assert repr(tx).startswith("<Transaction of space 's': committed, seq 1,")


def test_a_transaction_block_not_entered_copies_as_itself_and_refuses_pickling(
    tmp_path: Path,
) -> None:
    """``space.transact()`` not entered yet (kept to enter later, or caught in a value given to
    ``pickle`` or ``deepcopy``): its pickle was a raw ``AttributeError`` ("Can't pickle local
    object"), its deep copy a raw ``TypeError``, and its copy another block. It is a reference
    to its space's transactions, as the transaction is: a copy is itself, and pickling says
    what to pickle instead. Entered after all that, it writes as ever."""
    with sc.Runtime(tmp_path) as rt:
        space = rt.space("s")
        block = space.transact()
        assert copy.copy(block) is block and copy.deepcopy([block])[0] is block
        with pytest.raises(sc.SqliteCellsError, match="cannot be pickled") as refused:
            pickle.dumps(block)
        assert isinstance(refused.value, TypeError)
        assert "space.transact()" in str(refused.value) and "'s'" in str(refused.value)
        assert "rt.space(" in str(refused.value)
        with block:
            space.cell("c").set(1)
        assert space.cell("c").get() == 1


def test_the_live_public_objects_can_be_weakly_referenced(tmp_path: Path) -> None:
    """A caller's cache keyed weakly (``weakref.WeakKeyDictionary``, ``weakref.finalize``) takes
    any of the live objects the API hands out: cells, key cells, databases, injected sources,
    queries, derived cells, spaces, runtimes, pieces, transactions and ``transact()`` blocks.
    Cells, databases and transactions were Python's raw ``TypeError`` ("cannot create weak
    reference"). A weak key is the object itself: an equal cell made elsewhere is another key
    of the same value, and a key goes when its object does."""
    import gc
    import weakref

    source = tmp_path / "ref.db"
    apsw.Connection(str(source)).execute("CREATE TABLE r (x)")
    with sc.Runtime(tmp_path / "store") as rt:
        space = rt.space("s")
        c = space.cell("c", default=0)
        db = space.sqlite_database("d", tables=TABLES)

        @sc.pattern
        def nothing() -> None:
            return None

        live = [
            rt,
            space,
            c,
            c.key("a").key(0),
            db,
            space.register_disk_source(str(source)),
            db.query("SELECT x FROM t"),
            sc.derive(c, lambda v: v),
            space.run(nothing, key="k"),
            space.transact(),
        ]
        with space.transact() as tx:
            live.append(tx)
        for obj in live:
            assert weakref.ref(obj)() is obj, type(obj)
        cache: weakref.WeakKeyDictionary[sc.Cell, str] = weakref.WeakKeyDictionary()
        cache[space.cell("k")] = "seen"  # gone at once: nothing else holds that object
        gc.collect()
        assert len(cache) == 0
        k = space.cell("k")
        cache[k] = "kept"
        assert cache[space.cell("k")] == "kept"  # an equal cell finds the entry
        del k
        gc.collect()
        assert len(cache) == 0


def test_a_closed_runtime_is_no_context_to_enter(tmp_path: Path) -> None:
    rt = sc.Runtime(tmp_path)
    rt.close()
    with pytest.raises(sc.ClosedError), rt:
        pass


def test_reprs_of_a_long_query_and_a_piece_with_large_outputs_are_short(tmp_path: Path) -> None:
    with sc.Runtime(tmp_path) as rt:
        space = rt.space("s")
        db = space.sqlite_database("d", tables=TABLES)
        query = db.query("SELECT x FROM t WHERE " + " OR ".join(["x = 1"] * 10_000))
        assert len(repr(query)) < 500

        @sc.pattern
        def big() -> Any:
            return ["x" * 100_000]

        piece = space.run(big, key="k")
        assert len(repr(piece)) < 500 and "Piece(" in repr(piece)


@sc.pattern
def one(me: sc.Cell) -> None:
    pass


def test_reprs_of_a_space_with_a_long_id_and_what_it_holds_are_short(tmp_path: Path) -> None:
    with sc.Runtime(tmp_path) as rt:
        space = rt.space("s" * 100_000)
        db = space.sqlite_database("d", tables=TABLES)
        piece = space.run(one, key="k", me=space.cell("c"))
        with space.transact() as tx:
            space.cell("c").set(1)
            shown = {"tx": repr(tx)}
        shown.update(space=repr(space), db=repr(db), piece=repr(piece), cell=repr(space.cell("c")))
        for what, text in shown.items():
            assert len(text) < 500, what
            assert "'sssss" in text and "… (100,002 characters)" in text, what
        assert repr(space).startswith("<Space 'sss") and repr(db).startswith("<SqliteDb of:")
        cell_html = space.cell("c")._repr_html_()
        assert len(cell_html) < 500 and "… (100,002 characters)" in cell_html
        assert len(db._repr_html_()) < 500
        assert repr(rt.space("s")) == "<Space 's'>"


def test_the_repr_of_a_piece_of_many_inputs_is_short(tmp_path: Path) -> None:
    names = [f"in{i}" for i in range(3_000)]
    namespace: dict[str, Any] = {}
    exec(f"def wide({', '.join(names)}): pass", namespace)
    namespace["wide"].__module__ = __name__
    wide = sc.pattern(namespace["wide"])
    with sc.Runtime(tmp_path) as rt:
        space = rt.space("s")
        piece = space.run(wide, key="k", **{name: space.cell(name) for name in names})
        assert len(repr(piece)) < 500
        assert "space='s'" in repr(piece) and "inputs=['in0', 'in1'," in repr(piece)
        assert "characters)" in repr(piece)


def test_help_shows_the_hot_methods_by_their_public_signatures(tmp_path: Path) -> None:
    with sc.Runtime(tmp_path) as rt:
        space = rt.space("s")
        db = space.sqlite_database("d", tables=TABLES)
        cell = space.cell("c")
        shown = {
            "cell.get": (cell.get, "()"),
            "cell.set": (cell.set, "(value: 'Any')"),
            "db.get": (db.get, "()"),
            "db.set": (db.set, "(value: 'Any')"),
            "db.exec": (db.exec, "(sql: 'str', params: 'Any' = None)"),
        }
        for what, (method, parameters) in shown.items():
            assert str(inspect.signature(method)).startswith(parameters), what
            text = pydoc.render_doc(method, renderer=pydoc.plaintext)
            assert "object at 0x" not in text and "Never" not in text, what
        link = pydoc.render_doc(cell.link, renderer=pydoc.plaintext)
        assert "target: 'Any' = <not given>" in link and "object at 0x" not in link
        with pytest.raises(sc.SqliteCellsError, match=r"Cell.set\(value\)"), space.transact():
            cell.set()  # type: ignore[call-overload]  # (the refusal, unchanged)


def test_a_query_state_a_caller_built_shows_and_hashes_without_error(tmp_path: Path) -> None:
    """QueryState is public: one built with a result that is no list showed as a raw TypeError
    (text and HTML); a state of rows could not be hashed, though one of none could."""
    odd: sc.QueryState[Any] = sc.QueryState(False, 5, None, 3)  # type: ignore[arg-type]
    assert "result=5" in repr(odd) and "<td>5</td>" in odd._repr_html_()
    with sc.Runtime(tmp_path) as rt:
        db = rt.space("s").sqlite_database("d", tables=TABLES)
        query = db.query("SELECT x FROM t")
        rt.settle()
        state = query.get()
        assert hash(state) == hash(sc.QueryState(False, [], None, state.seq))


class _Nothing:
    kind = "sqlite"


def test_register_participant_refuses_what_is_none_and_a_kind_taken(tmp_path: Path) -> None:
    """The extension point (§1): a value that is no participant was a raw AttributeError, and
    one of kind ``sqlite`` silently replaced the database cells' own."""
    with sc.Runtime(tmp_path) as rt:
        for wrong in (None, _Nothing()):
            with pytest.raises(sc.SqliteCellsError, match="takes a commit participant") as info:
                rt.register_participant(wrong)  # type: ignore[arg-type]
            assert isinstance(info.value, TypeError)
        taken = rt.participant("sqlite")
        with pytest.raises(sc.SqliteCellsError, match="kind 'sqlite' are handled"):
            rt.register_participant(taken)
        space = rt.space("s")
        db = space.sqlite_database("d", tables=TABLES)
        with space.transact():
            db.exec("INSERT INTO t (x) VALUES (1)")
        assert db.read("SELECT x FROM t") == [{"x": 1}]
