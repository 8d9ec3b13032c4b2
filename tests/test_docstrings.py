"""`help()` says what each public member of the objects users hold does (README: the API is
the SPEC's §3 and §4): no public method or property of a runtime, a cell, a space, a database
handle or a query is left without a docstring."""

from __future__ import annotations

import inspect

import pytest

import sqlite_cells as sc


@pytest.mark.parametrize("cls", [sc.Cell, sc.Space, sc.SqliteDb, sc.Query, sc.Runtime])
def test_every_public_member_has_a_docstring(cls: type) -> None:
    missing = [
        name
        for name, member in inspect.getmembers(cls)
        if not name.startswith("_") and not inspect.getdoc(member)
    ]
    assert missing == [], f"{cls.__name__}: {missing}"


def test_the_runtime_says_what_each_of_its_options_is() -> None:
    """``help(sc.Runtime)`` names every argument of SPEC §3's constructor (it left out ``store``
    and ``poll_interval``), and ``register_disk_source`` states R60's path rules itself (it sent
    the reader to a private module)."""
    doc = inspect.getdoc(sc.Runtime) or ""
    missing = [p for p in inspect.signature(sc.Runtime).parameters if f"``{p}``" not in doc]
    assert missing == []
    doc = inspect.getdoc(sc.Space.register_disk_source) or ""
    assert "``_sources``" not in doc
    for rule in ("absolute", "regular file", "outside the store", "disk_source_roots"):
        assert rule in doc, rule


@pytest.mark.parametrize("method", [sc.SqliteDb.exec, sc.SqliteDb.query])
def test_exec_and_query_say_what_they_take_and_raise(method: object) -> None:
    """``help(db.exec)`` / ``help(db.query)`` say what the statement and parameters are and
    which errors come at the call (they said only when the write runs, or how a query
    re-runs); every error they name is one ``sc`` exports."""
    import builtins
    import re

    doc = inspect.getdoc(method) or ""
    named = set(re.findall(r"``(\w+(?:Error|Violation|Transaction|Value|Databases|Source))``", doc))
    assert {"GuardViolation"} < named
    ours = named - set(dir(builtins))
    assert [n for n in ours if not issubclass(getattr(sc, n, type), sc.SqliteCellsError)] == []
    for word in ("``sql``", "``params``"):
        assert word in doc


def test_sqlite_database_says_what_each_of_its_options_is() -> None:
    """``help(space.sqlite_database)`` names ``version``, ``migrate`` and ``source`` (SPEC §4,
    R14, R62) as well as ``name`` and ``tables`` (it named only those two)."""
    doc = inspect.getdoc(sc.Space.sqlite_database) or ""
    parameters = list(inspect.signature(sc.Space.sqlite_database).parameters)[1:]
    assert [p for p in parameters if f"``{p}" not in doc] == []
