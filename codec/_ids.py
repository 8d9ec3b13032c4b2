"""Entity ids derived from their cause (R1).

An id is ``of:`` followed by the lowercase base32 of the SHA-256 of the canonical JSON of the
cause (a sequence of strings and integers). Same cause, same id; never random.
"""

from __future__ import annotations

import base64
import hashlib

import msgspec

from sqlite_cells.codec._errors import ValueEncodeError

__all__ = ["derive_id", "short_hash"]

_encoder = msgspec.json.Encoder(order="sorted")


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


def short_hash(text: str) -> str:
    """A 32-character file-name-safe hash of ``text`` (used for database file names, R2)."""
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueEncodeError(f"{text!r} is not valid Unicode text ({exc.reason})") from exc
    return hashlib.sha256(data).hexdigest()[:32]
