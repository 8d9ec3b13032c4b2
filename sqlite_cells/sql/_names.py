"""Names with a meaning to the runtime: the suffix of link columns and the reserved prefixes.

One place for each fact; the guard, the authorizer, table declarations and parameter binding all
read them from here.
"""

from __future__ import annotations

from typing import Final

__all__ = ["LINK_SUFFIX", "RESERVED_PREFIXES", "fold_ascii", "is_link_column", "is_reserved"]

LINK_SUFFIX: Final = "_cf_link"
# The runtime's own tables start with `_cf_`; SQLite's own objects with `sqlite_` (R12).
RESERVED_PREFIXES: Final = ("_cf_", "sqlite_")

_ASCII_UPPER: Final = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def fold_ascii(name: str) -> str:
    """SQLite compares identifiers case-insensitively for ASCII letters only."""
    return name.translate(_ASCII_UPPER)


def is_reserved(name: str) -> bool:
    """Whether ``name`` (unquoted) is a reserved name."""
    return fold_ascii(name).startswith(RESERVED_PREFIXES)


def is_link_column(name: str | None) -> bool:
    """Whether a column of that name holds links (R11)."""
    return name is not None and fold_ascii(name).endswith(LINK_SUFFIX)
