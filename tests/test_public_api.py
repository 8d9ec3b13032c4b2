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


def test_all_is_exactly_the_spec_surface() -> None:
    assert set(sc.__all__) == ERRORS | RUNTIME
    assert sc.__all__ == sorted(sc.__all__)
    for name in sc.__all__:
        assert getattr(sc, name) is not None


def test_every_error_derives_from_the_root() -> None:
    for name in ERRORS:
        assert issubclass(getattr(sc, name), sc.SqliteCellsError)
    assert issubclass(sc.GuardViolation, ValueError)
    assert issubclass(sc.NoTransaction, RuntimeError)
    assert issubclass(sc.QueryTimeout, sc.QueryError)
