"""``sqlite_cells.__all__`` is exactly the public surface of SPEC §3–§5 built so far."""

from __future__ import annotations

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
