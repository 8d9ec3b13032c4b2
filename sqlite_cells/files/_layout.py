"""How a database file meets the space's write connection, and what a ``sqlite`` op records.

The ``sqlite`` commit participant attaches the database file to the space's write connection as
``_cf_db`` (outside a transaction: SQLite cannot attach inside one); at most one file is attached
at a time. Only this module attaches and detaches, so the attached file is known without asking
SQLite on every commit. A ``sqlite`` op's body in the commit record is an :class:`OpBody`: the
statement and the session changeset of its effect (R70).
"""

from __future__ import annotations

import weakref
from pathlib import Path

import apsw
import msgspec

from sqlite_cells.codec import Op

__all__ = [
    "ALIAS",
    "KIND",
    "OpBody",
    "attach",
    "attached",
    "decode_op_body",
    "detach",
    "encode_op_body",
]

KIND = "sqlite"
ALIAS = "_cf_db"


class OpBody(msgspec.Struct, frozen=True):
    """A ``sqlite`` op: the statement and its parameters (bytes appear base64-encoded); once the
    changeset of its effect is known the parameters are left out (it says exactly what the
    statement did, and the record is fsynced on every commit)."""

    sql: str
    rows: list[list[object] | dict[str, object]]
    many: bool
    changeset: bytes | None = None


def encode_op_body(body: OpBody) -> msgspec.Raw:
    return msgspec.Raw(msgspec.json.encode(body))


def decode_op_body(op: Op) -> OpBody:
    return msgspec.json.decode(op.body, type=OpBody)


_ATTACHED: weakref.WeakKeyDictionary[apsw.Connection, str] = weakref.WeakKeyDictionary()


def attached(conn: apsw.Connection) -> str | None:
    """The path of the database file attached to ``conn`` as ``_cf_db``, if any."""
    return _ATTACHED.get(conn)


def attach(conn: apsw.Connection, path: Path) -> None:
    """Attach ``path`` as ``_cf_db`` (outside a transaction), replacing what was attached."""
    if attached(conn) == str(path):
        return
    detach(conn)
    conn.execute(f"ATTACH DATABASE ? AS {ALIAS}", (str(path),))
    _ATTACHED[conn] = str(path)
    conn.execute(f"PRAGMA {ALIAS}.journal_mode=WAL").fetchall()
    conn.execute(f"PRAGMA {ALIAS}.synchronous=NORMAL")


def detach(conn: apsw.Connection) -> None:
    """Let go of the attached database file, if any (outside a transaction)."""
    if _ATTACHED.pop(conn, None) is not None:
        conn.execute(f"DETACH DATABASE {ALIAS}")
