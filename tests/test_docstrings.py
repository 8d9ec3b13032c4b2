"""`help()` says what each public member of the objects users hold does (README: the API is
the SPEC's §3 and §4): no public method or property of a cell, a space, a database handle or a
query is left without a docstring."""

from __future__ import annotations

import inspect

import pytest

import sqlite_cells as sc


@pytest.mark.parametrize("cls", [sc.Cell, sc.Space, sc.SqliteDb, sc.Query])
def test_every_public_member_has_a_docstring(cls: type) -> None:
    missing = [
        name
        for name, member in inspect.getmembers(cls)
        if not name.startswith("_") and not inspect.getdoc(member)
    ]
    assert missing == [], f"{cls.__name__}: {missing}"
