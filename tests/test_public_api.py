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
}
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
    assert set(sc.__all__) == ERRORS | RUNTIME | DATABASES
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
