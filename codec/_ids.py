"""Entity ids derived from their cause (R1).

An id is ``of:`` followed by the lowercase base32 of the SHA-256 of the canonical JSON of the
cause (a sequence of strings and integers). Same cause, same id; never random.
"""

from __future__ import annotations

import base64
import hashlib
import re

import msgspec

from sqlite_cells.codec._errors import ValueEncodeError

__all__ = ["MAX_NAME_BYTES", "derive_id", "is_derived_id", "name_too_long", "short_hash"]

_encoder = msgspec.json.Encoder(order="sorted")

# The longest name, in UTF-8 bytes, of an entity (a space, cell, database, piece key or input)
# and of a table, column or index: far below SQLite's length limit (64 MiB), which caps the rows
# and the table text that hold names, so that a name refused is refused at the call, not as a
# commit that fails later. A link's space id is a name too (R30).
MAX_NAME_BYTES = 1024 * 1024


def name_too_long(name: str) -> bool:
    """Whether ``name`` (valid Unicode text) is over :data:`MAX_NAME_BYTES` in UTF-8."""
    return len(name) > MAX_NAME_BYTES // 4 and len(name.encode("utf-8")) > MAX_NAME_BYTES


def _digest(cause: tuple[str | int, ...]) -> bytes:
    for part in cause:
        if not isinstance(part, str | int) or isinstance(part, bool):
            raise ValueEncodeError(f"an id's cause holds strings and integers, not {part!r}")
    try:
        return hashlib.sha256(_encoder.encode(cause)).digest()
    except UnicodeEncodeError as exc:  # a lone surrogate: the callers check names first
        raise ValueEncodeError(
            f"an id's cause holds text that is not valid Unicode ({exc.reason}): {cause!r}"
        ) from exc


def derive_id(*cause: str | int) -> str:
    """The entity id for ``cause`` (for example ``derive_id("cell", space_id, name)``)."""
    return "of:" + base64.b32encode(_digest(cause)).decode("ascii").rstrip("=").lower()


# What derive_id gives: "of:" and the 52 lowercase base32 characters of a SHA-256 digest.
_DERIVED_ID = re.compile(r"of:[a-z2-7]{52}")


def is_derived_id(text: str) -> bool:
    """Whether ``text`` has the form of an id :func:`derive_id` gives (every entity's id, R1):
    text such as ``of:zz`` names no cell of any store."""
    return _DERIVED_ID.fullmatch(text) is not None


def short_hash(text: str) -> str:
    """A 32-character file-name-safe hash of ``text`` (used for database file names, R2)."""
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueEncodeError(f"{text!r} is not valid Unicode text ({exc.reason})") from exc
    return hashlib.sha256(data).hexdigest()[:32]
