"""Names with a meaning to the runtime or to SQLite, and how SQLite compares them.

One place for each fact: the guard, the authorizer, table declarations and parameter binding all
read them from here (R12, R13, R21, R23).
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "ALLOWED_SQLITE_FUNCTIONS",
    "DATABASE_ALIAS",
    "DATABASE_NAMES",
    "DATALESS_TABLES",
    "DDL_VERBS",
    "EPONYMOUS_TABLES",
    "FORBIDDEN_FUNCTIONS",
    "FORBIDDEN_VERBS",
    "JSON_CALLS",
    "JSON_CALL_PREFIX",
    "LINK_SUFFIX",
    "READ_VERBS",
    "RESERVED_PREFIXES",
    "REWRITTEN_JSON_FUNCTIONS",
    "ROW_COUNT_FUNCTIONS",
    "SCHEMA_READERS",
    "TRANSACTION_VERBS",
    "VIRTUAL_PREFIX",
    "WRITE_VERBS",
    "fold_ascii",
    "is_forbidden_function",
    "is_link_column",
    "is_reserved",
    "is_reserved_table",
    "upper_ascii",
]

LINK_SUFFIX: Final = "_cf_link"
# The runtime's own tables start with `_cf_`; SQLite's own objects with `sqlite_` (R12).
RESERVED_PREFIXES: Final = ("_cf_", "sqlite_")
# Table-valued pragma functions (`pragma_table_list`, …): eponymous virtual tables that look at
# every schema of the connection.
VIRTUAL_PREFIX: Final = "pragma_"
# SQLite's other eponymous virtual tables in the library apsw ships (`pragma_module_list` and a
# probe of each module, plus the JSON table functions, which that pragma does not list).
# dbstat reads every schema's pages; the others hold no data of their own.
_JSON_TABLES: Final = frozenset({"json_each", "json_tree", "jsonb_each", "jsonb_tree"})
EPONYMOUS_TABLES: Final = frozenset({"dbstat", "fts3tokenize", "carray"}) | _JSON_TABLES
# Eponymous tables that read other schemas (every page of every attached file): the guard refuses
# them by name, like pragma functions (*decision*).
SCHEMA_READERS: Final = frozenset({"dbstat"})
# Eponymous tables a user statement may read: they only look at their arguments.
DATALESS_TABLES: Final = _JSON_TABLES

# R21: functions that reach outside the database cell.
FORBIDDEN_FUNCTIONS: Final = frozenset(
    {"load_extension", "readfile", "writefile", "edit", "fts3_tokenizer"}
)
# Functions that report the connection's row counts (*decision*, docs/decisions.md): the space's
# write connection runs the runtime's own statements between a transaction's writes, and a read
# connection writes nothing, so no user statement can get a meaningful count from them.
# (`last_insert_rowid()` is kept meaningful instead: the write path restores it between a
# transaction's statements.)
ROW_COUNT_FUNCTIONS: Final = frozenset({"changes", "total_changes"})
# The only `sqlite_*` functions a user statement may call: they report the library's version
# and build options, nothing of any database (*decision*, docs/decisions.md).
ALLOWED_SQLITE_FUNCTIONS: Final = frozenset(
    {"sqlite_version", "sqlite_source_id", "sqlite_compileoption_used", "sqlite_compileoption_get"}
)
# SQLite's JSON functions whose one call can run long and returns the JSON subtype (R44): those
# that look up many paths, name -> (fewest arguments of a call of two paths or more, whether path
# and value pairs follow the document), and ``json_patch`` (every call: it looks each key of the
# patch up among the target's, quadratic in the number of keys).
# Such calls in a write are computed by the runtime's functions ``_cf_<name>`` (the rewrite:
# sqlite_cells.sql._json_calls), the only ``_cf_`` functions the authorizer lets a statement call.
JSON_CALLS: Final[dict[str, tuple[int, bool]]] = {
    "json_patch": (2, False),
    **{name: (3, False) for name in ("json_extract", "json_remove")},
    **{name: (3, False) for name in ("jsonb_extract", "jsonb_remove")},
    **{
        prefix + name: (5, True)
        for prefix in ("json_", "jsonb_")
        for name in ("set", "insert", "replace", "array_insert")
    },
}
JSON_CALL_PREFIX: Final = "_cf_"
# What a write's JSON call of many paths is rewritten to (``split_json_calls``): the one place
# a statement may call a ``_cf_`` function, allowed by the gate for that statement alone.
REWRITTEN_JSON_FUNCTIONS: Final = frozenset(JSON_CALL_PREFIX + name for name in JSON_CALLS)

# Statement verbs (upper case, as the guard's tokens carry them).
TRANSACTION_VERBS: Final = frozenset({"BEGIN", "COMMIT", "END", "ROLLBACK", "SAVEPOINT", "RELEASE"})
FORBIDDEN_VERBS: Final = frozenset(
    {"ATTACH", "DETACH", "PRAGMA", "VACUUM", "REINDEX", "ANALYZE"} | TRANSACTION_VERBS
)
DDL_VERBS: Final = frozenset({"CREATE", "DROP", "ALTER"})
READ_VERBS: Final = frozenset({"SELECT", "VALUES"})  # R22: what db.query and db.read accept
WRITE_VERBS: Final = frozenset({"INSERT", "REPLACE", "UPDATE", "DELETE"})  # R22: db.exec
# The alias under which the space's write connection attaches a database cell's file.
DATABASE_ALIAS: Final = "_cf_db"
# The schema names a user statement could qualify a name with (R21): SQLite's own two and the
# runtime's alias. Another `_cf_…` word before a dot names no database: it is a reserved name.
DATABASE_NAMES: Final = frozenset({"main", "temp", DATABASE_ALIAS})

_TO_LOWER: Final = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_TO_UPPER: Final = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def fold_ascii(name: str) -> str:
    """``name`` lower-cased the way SQLite compares identifiers: ASCII letters only, so that
    ``"ſqlite_master"`` stays distinct from ``sqlite_master`` whatever ``str.lower`` says."""
    return name.lower() if name.isascii() else name.translate(_TO_LOWER)


def upper_ascii(text: str) -> str:
    """``text`` upper-cased for ASCII letters only; offsets stay those of ``text``."""
    return text.upper() if text.isascii() else text.translate(_TO_UPPER)


def is_reserved(name: str) -> bool:
    """Whether ``name`` (unquoted) starts with a reserved prefix, ``_cf_`` or ``sqlite_`` (R12)."""
    return fold_ascii(name).startswith(RESERVED_PREFIXES)


def is_reserved_table(name: str) -> bool:
    """Whether ``name`` (unquoted) can never be a user table: a reserved prefix, a pragma
    function or one of SQLite's eponymous virtual tables (R13)."""
    folded = fold_ascii(name)
    return folded.startswith((*RESERVED_PREFIXES, VIRTUAL_PREFIX)) or folded in EPONYMOUS_TABLES


def is_forbidden_function(name: str) -> bool:
    """Whether a user statement may not call the SQL function ``name`` (R21, R23): the R21
    list, the row-count functions, pragma functions, ``_cf_*`` (the ``_cf_json_*`` functions a
    write's statement calls once the runtime rewrote it are allowed for that statement by the
    write connection, not here) and every ``sqlite_*`` function but the four harmless ones
    (``sqlite_log`` writes to the application's error log)."""
    folded = fold_ascii(name)
    if folded in ROW_COUNT_FUNCTIONS:
        return True
    if folded in FORBIDDEN_FUNCTIONS or folded.startswith(("_cf_", VIRTUAL_PREFIX)):
        return True
    return folded.startswith("sqlite_") and folded not in ALLOWED_SQLITE_FUNCTIONS


def is_link_column(name: str | None) -> bool:
    """Whether a column of that name holds links (R11)."""
    return name is not None and fold_ascii(name).endswith(LINK_SUFFIX)
