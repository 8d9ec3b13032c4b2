"""``sqlite_cells.__all__`` is exactly the public surface of SPEC §3–§5 built so far."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import sqlite_cells as sc

ERRORS = {
    "SqliteCellsError",
    "GuardViolation",
    "SchemaError",
    "UnsupportedMigration",
    "LinkEncodeError",
    "LinkDecodeError",
    "NoTransaction",
    "ConflictError",
    "CrossSpaceWrite",
    "TooManyDatabases",
    "ReadAfterWriteUnsupported",
    "PendingValue",
    "ExecError",
    "MigrationError",
    "QueryError",
    "QueryTimeout",
    "Quarantined",
    "DiskSourceError",
    "ReadOnlySource",
    "NotImplementedSource",
    "ValueEncodeError",
    "ExecTimeout",
    "StoreChanged",
    "ClosedError",
}
FAMILIES = {
    "StatementError": ({"GuardViolation"}, ValueError),
    "DeclarationError": ({"SchemaError", "UnsupportedMigration"}, ValueError),
    "EncodingError": ({"LinkEncodeError", "LinkDecodeError", "ValueEncodeError"}, ValueError),
    "TransactionError": (
        {
            "NoTransaction",
            "ConflictError",
            "CrossSpaceWrite",
            "TooManyDatabases",
            "ReadAfterWriteUnsupported",
            "PendingValue",
        },
        RuntimeError,
    ),
    "DatabaseError": (
        {"ExecError", "ExecTimeout", "MigrationError", "QueryError", "QueryTimeout"}
        | {"Quarantined", "StoreChanged"},
        RuntimeError,
    ),
    "SourceError": ({"DiskSourceError", "ReadOnlySource", "NotImplementedSource"}, Exception),
}
TYPES = {"Space", "Query", "Piece", "Transaction"}
RUNTIME = {"Runtime", "Cell", "handler", "derive", "lift", "pattern"}
DATABASES = {
    "table",
    "cf_link",
    "SqliteDb",
    "QueryState",
    "sqlite_query",
    "decode_cf_link",
    "PENDING",
    "VmSource",
}


def test_all_is_exactly_the_spec_surface() -> None:
    assert set(sc.__all__) == ERRORS | set(FAMILIES) | RUNTIME | DATABASES | TYPES
    assert len(sc.__all__) == len(set(sc.__all__))
    assert repr(sc.PENDING) == "sc.PENDING"
    for name in sc.__all__:
        assert getattr(sc, name) is not None


def test_every_error_derives_from_the_root() -> None:
    for name in ERRORS:
        assert issubclass(getattr(sc, name), sc.SqliteCellsError)
    assert issubclass(sc.GuardViolation, ValueError)
    assert issubclass(sc.NoTransaction, RuntimeError)
    assert issubclass(sc.QueryTimeout, sc.QueryError)


def test_errors_are_grouped_into_families_a_caller_can_catch() -> None:
    for family, (members, builtin) in FAMILIES.items():
        base = getattr(sc, family)
        assert issubclass(base, sc.SqliteCellsError)
        assert issubclass(base, builtin)
        for name in members:
            assert issubclass(getattr(sc, name), base), (name, family)
    assert issubclass(sc.ValueEncodeError, TypeError)
    assert issubclass(sc.ValueEncodeError, ValueError)
    assert issubclass(sc.ExecTimeout, sc.ExecError)
    assert issubclass(sc.ExecTimeout, TimeoutError)
    assert issubclass(sc.DiskSourceError, ValueError)


def test_the_types_the_api_returns_are_exported() -> None:
    with sc.Runtime.ephemeral() as rt:
        space = rt.space("demo")
        assert isinstance(space, sc.Space)
        db = space.sqlite_database("t", tables={"t": sc.table(x="integer")})
        assert isinstance(db.query("SELECT x FROM t"), sc.Query)
        with space.transact() as tx:
            assert isinstance(tx, sc.Transaction)
    with_closed = sc.Runtime.ephemeral()
    with_closed.close()
    try:
        with_closed.space("demo")
    except sc.ClosedError as exc:
        assert "closed" in str(exc)
    else:
        raise AssertionError("a closed runtime opened a space")


def test_public_names_are_imported_on_first_use_from_where_type_checkers_look() -> None:
    """``sqlite_cells`` and ``sqlite_cells.cli`` look their names up lazily (docs/decisions.md,
    "Ctrl-C from the first moment"): the table they use at run time names the same module for
    each name as the imports type checkers read, every name resolves, and importing the package
    alone loads no dependency."""
    for package in ("sqlite_cells", "sqlite_cells.cli"):
        module = importlib.import_module(package)
        tree = ast.parse(Path(str(module.__file__)).read_text())
        (checking,) = [n for n in tree.body if isinstance(n, ast.If)]
        typed = {
            alias.name: node.module
            for node in checking.body
            if isinstance(node, ast.ImportFrom)
            for alias in node.names
        }
        assert typed == module._WHERE == {name: module._WHERE[name] for name in module.__all__}
        for name in module.__all__:
            assert getattr(module, name) is getattr(importlib.import_module(typed[name]), name)
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        sc.nothing  # noqa: B018
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, sqlite_cells; print(sorted(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for heavy in ("apsw", "sqlglot", "msgspec", "reactivex"):
        assert f"'{heavy}'" not in loaded, heavy


def test_errors_pickle_with_their_message_and_attributes() -> None:
    """For multiprocessing and concurrent.futures: whatever an error's constructor takes."""
    import pickle

    with sc.Runtime.ephemeral() as rt:
        db = rt.space("s").sqlite_database("t", tables={"t": sc.table(x="integer")})
        caught: list[sc.SqliteCellsError] = []
        for sql in ("PRAGMA x", "SELECT nope FROM t"):
            with pytest.raises(sc.SqliteCellsError) as info:
                db.read(sql)
            caught.append(info.value)
    caught.append(sc.ConflictError("s", ["a"]))
    # Timeouts are OSErrors too (TimeoutError), laid out apart from other exceptions: their
    # blank copy made RuntimeError's __new__ refuse them.
    caught += [sc.QueryTimeout("d", "SELECT 1", "late"), sc.ExecTimeout("d", "DELETE FROM t", "x")]
    for error in caught:
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error)
        assert (str(copy), copy.args, vars(copy)) == (str(error), error.args, vars(error))
    assert pickle.loads(pickle.dumps(caught[0])).kind == "forbidden-statement"


def test_a_timeout_said_of_another_statement_is_a_timeout_of_it() -> None:
    """A read of several statements that fails as a whole fails each with its own text
    (``for_statement``): for a ``QueryTimeout`` that raised ``TypeError`` inside the runtime,
    which left the batch's other live queries pending for good (see test_read_limits)."""
    error = sc.QueryTimeout("d", "SELECT 1", "waited too long")
    other = error.for_statement("SELECT 2")
    assert type(other) is sc.QueryTimeout and isinstance(other, TimeoutError)
    assert (other.db_id, other.sql) == ("d", "SELECT 2")
    assert str(other) == "database d: waited too long in 'SELECT 2'"
    assert str(error) == "database d: waited too long in 'SELECT 1'"


def _public_callables() -> list[tuple[str, object]]:
    """Every public function and class of ``sc`` with the public methods, properties and
    constructor of each class: what a caller's tools (pydantic, typer, an IDE) inspect."""
    import inspect

    found: list[tuple[str, object]] = []
    for name in sc.__all__:
        value = getattr(sc, name)
        if not (inspect.isclass(value) or callable(value)):
            continue  # a constant (sc.PENDING) has no annotations of its own
        found.append((name, value))
        if not inspect.isclass(value):
            continue
        for attr, member in vars(value).items():
            if attr.startswith("_") and attr not in ("__init__", "__call__"):
                continue
            if isinstance(member, property):
                member = member.fget
            elif isinstance(member, classmethod | staticmethod):
                member = member.__func__
            if callable(member):
                found.append((f"{name}.{attr}", member))
    return found


def test_every_public_annotation_resolves_at_run_time() -> None:
    """``typing.get_type_hints`` resolves every public class, function and method of ``sc``,
    names imported for type checkers only (an import cycle, reactivex's ``Observable``)
    included, and the ``observe`` methods say what they return."""
    import typing

    import reactivex

    failed = {}
    for name, value in _public_callables():
        try:
            typing.get_type_hints(value)
        except Exception as exc:
            failed[name] = f"{type(exc).__name__}: {exc}"
    assert failed == {}
    assert typing.get_type_hints(sc.Cell.observe)["return"] == reactivex.Observable[typing.Any]
    assert typing.get_origin(typing.get_type_hints(sc.Query.observe)["return"]) is (
        reactivex.Observable
    )
    assert typing.get_type_hints(sc.Cell.space.fget)["return"] is sc.runtime.Space
    assert typing.get_type_hints(sc.Space.sqlite_database)["return"] is sc.SqliteDb
    assert typing.get_type_hints(sc.SqliteDb.space.fget)["return"] is sc.Space


def test_dir_of_the_package_shows_its_public_names_only() -> None:
    """``dir(sc)`` (what an IDE, ``help`` and tab completion show) lists the public API and the
    module's dunders, not its internals (``TYPE_CHECKING``, ``annotations``, the lookup table
    ``_WHERE``, a submodule loaded by the command), whatever has been looked up already; the
    same for ``sqlite_cells.cli``."""
    import sqlite_cells.cli

    for module in (sc, sqlite_cells.cli):
        for name in module.__all__:
            getattr(module, name)
        shown = dir(module)
        assert [n for n in shown if not (n.startswith("__") and n.endswith("__"))] == sorted(
            module.__all__
        )
        assert {"__all__", "__doc__", "__name__"} <= set(shown)
        assert shown == sorted(shown)
    assert sc.cli is sqlite_cells.cli  # still there, only not listed
