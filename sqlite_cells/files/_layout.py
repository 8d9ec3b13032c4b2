"""How a database file meets the space's write connection, and what a ``sqlite`` op records.

The ``sqlite`` commit participant attaches the database file to the space's write connection as
``_cf_db`` (outside a transaction: SQLite cannot attach inside one); at most one file is attached
at a time. Only this module attaches and detaches, so the attached file is known without asking
SQLite on every commit. A ``sqlite`` op's body in the commit record is an :class:`OpBody`: the
statement and the session changeset of its effect (R70).
"""

from __future__ import annotations

import os
import weakref
from pathlib import Path

import apsw
import msgspec

from sqlite_cells.codec import Op, StoreChanged

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


# conn -> (path, (st_dev, st_ino)) of the file attached as _cf_db, pinned when attached.
_ATTACHED: weakref.WeakKeyDictionary[apsw.Connection, tuple[str, tuple[int, int] | None]] = (
    weakref.WeakKeyDictionary()
)


def attached(conn: apsw.Connection) -> str | None:
    """The path of the database file attached to ``conn`` as ``_cf_db``, if any."""
    found = _ATTACHED.get(conn)
    return found[0] if found is not None else None


def _identity(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def attach(conn: apsw.Connection, path: Path) -> None:
    """Attach ``path`` as ``_cf_db`` (outside a transaction), replacing what was attached.

    The attached file's device and inode are pinned: if the file at ``path`` is another one
    when it is to be written again (deleted or replaced while attached), the file is let go and
    :class:`StoreChanged` is raised, so no commit is acknowledged into a file that is no longer
    the one at its path (R73)."""
    held = _ATTACHED.get(conn)
    if held is not None and held[0] == str(path):
        now = _identity(held[0])
        if now == held[1]:
            return
        if held[1] is None:  # SQLite had not created the file yet when it was attached
            _ATTACHED[conn] = (held[0], now)
            return
        detach(conn)
        raise StoreChanged(
            str(path),
            "this database file was deleted or replaced while the runtime had it open; "
            "nothing was committed: close the runtime and open a new one (it checks the file "
            "against its space before using it)",
        )
    detach(conn)
    conn.execute(f"ATTACH DATABASE ? AS {ALIAS}", (str(path),))
    _ATTACHED[conn] = (str(path), _identity(str(path)))
    conn.execute(f"PRAGMA {ALIAS}.journal_mode=WAL").fetchall()
    conn.execute(f"PRAGMA {ALIAS}.synchronous=NORMAL")
    if _ATTACHED[conn][1] is None:  # a new file: SQLite created it with the pragmas above
        _ATTACHED[conn] = (str(path), _identity(str(path)))


def detach(conn: apsw.Connection) -> None:
    """Let go of the attached database file, if any (outside a transaction)."""
    if _ATTACHED.pop(conn, None) is not None:
        conn.execute(f"DETACH DATABASE {ALIAS}")
