"""A cell is a reference, as its link is (§2, Errors): a deep copy of a value holding cells —
what the README advises for the values subscribers share — holds the same cells; `copy.deepcopy`
failed with a raw "cannot pickle '_thread.lock' object". A cell cannot be pickled (it belongs to
an open runtime): said so, naming what to do, with a `SqliteCellsError` that is a `TypeError`."""

from __future__ import annotations

import copy
import pickle

import pytest

import sqlite_cells as sc


def test_a_copy_of_a_value_holding_cells_holds_the_same_cells() -> None:
    with sc.Runtime.ephemeral() as rt:
        space = rt.space("s")
        alice, doc = space.cell("alice"), space.cell("doc")
        with space.transact():
            alice.set({"name": "Alice"})
            doc.set({"owner": alice, "readers": [alice.key("name")]})
        value = doc.get()
        copied = copy.deepcopy(value)
        assert copied == value and copied is not value
        assert copied["owner"] is value["owner"] and copied["owner"].get() == {"name": "Alice"}
        assert copy.copy(alice) is alice and copy.deepcopy(alice.key("name")).get() == "Alice"
        state = space.sqlite_database("d", tables={"t": sc.table(x="text")}).query("SELECT 1 AS n")
        rt.settle()
        assert copy.deepcopy(state.get()) == state.get()


def test_a_cell_cannot_be_pickled_and_says_how_to_keep_it() -> None:
    with sc.Runtime.ephemeral() as rt:
        alice = rt.space("s").cell("alice")
        with pytest.raises(sc.SqliteCellsError, match=r"link_str\(\).*rt\.cell_from_link") as info:
            pickle.dumps({"who": alice})
        assert isinstance(info.value, TypeError)
        assert rt.cell_from_link(pickle.loads(pickle.dumps(alice.link_str()))) == alice
