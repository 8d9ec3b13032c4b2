"""When two results hold the same rows (R42: a re-run with the same rows notifies nobody)."""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = ["DIGEST_ROWS", "digest", "same_values"]

# Results of more rows keep no digest: it would hold a copy of them as long as their query.
DIGEST_ROWS = 1024


def same_values(rows: list[Any], other: list[Any] | None) -> bool:
    """Whether two results' row tuples hold the same SQLite values, row for row.

    Python's ``==`` is not enough: it finds ``1`` equal to ``1.0`` (an integer and a real) and
    ``0.0`` equal to ``-0.0``, which SQLite tells apart and a reader sees. Their MessagePack
    encodings differ (each int in an int format, each float as its 64 bits, sign included; text
    and blobs in formats of their own), so rows ``==`` finds equal are the same when their
    encodings are: about twice the cost of ``==`` alone, paid only when ``==`` finds them equal
    (rows that differ are told at ``==``'s cost). A value that does not encode counts as a
    difference (a spurious re-delivery, never a missed one)."""
    if rows is other:
        return True
    if other is None or rows != other:
        return False
    try:
        return msgspec.msgpack.encode(rows) == msgspec.msgpack.encode(other)
    except (TypeError, ValueError, OverflowError):
        return False


def digest(rows: list[Any]) -> bytes | None:
    """The rows' MessagePack encoding, which two results share exactly when they hold the same
    SQLite values (see :func:`same_values`): kept with a live query's rows, the next result
    is compared by one encoding, not two and ``==``. None for more than ``DIGEST_ROWS`` rows,
    or a value that does not encode."""
    if len(rows) > DIGEST_ROWS:
        return None
    try:
        return msgspec.msgpack.encode(rows)
    except (TypeError, ValueError, OverflowError):
        return None
