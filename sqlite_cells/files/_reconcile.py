"""Crash reconciliation (R70–R72): make a database file agree with its space's log.

In WAL mode SQLite commits the space file and the attached database file one after the other, so
a crash, or an I/O error during ``COMMIT``, can leave the database behind its space. The database
file's watermark (the seq of the last commit that wrote it) is compared with the space's log under
an immediate transaction on the space (so two processes never repair at once, and no commit lands
meanwhile):

* equal — nothing to do;
* behind — the changesets of the missing commits are re-applied from the space's log, in seq order;
* ahead (the space lost durable commits) — the file's own journal of changesets past the space's
  seq is inverted and applied, newest first;
* anything else (a changeset that does not apply, one that is missing) — the database is
  quarantined: the outcome says so and nothing is changed.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import apsw
import msgspec

from sqlite_cells.files._layout import decode_op_body
from sqlite_cells.runtime import SpaceFile
from sqlite_cells.schema import (
    CfLink,
    Schema,
    cf_link,
    declare_tables,
    ensure_runtime_tables,
    plan_migration,
    table,
)

__all__ = ["Action", "Outcome", "reconcile", "schema_from_json"]

log = logging.getLogger("sqlite_cells")

BUSY_TIMEOUT_MS = 30_000


class Action(enum.Enum):
    IN_SYNC = "in sync"
    REPLAYED = "replayed"  # behind: missing commits re-applied
    INVERTED = "inverted"  # ahead: commits the space lost undone
    BEHIND = "behind"  # found behind, not repaired (check without --repair)
    AHEAD = "ahead"  # found ahead, not repaired
    QUARANTINED = "quarantined"


@dataclass(frozen=True, slots=True)
class Outcome:
    db_id: str
    path: Path
    db_seq: int  # the watermark found in the file
    space_seq: int  # the last seq of the space's log that wrote the database
    action: Action
    commits: int = 0  # commits whose changesets were applied
    detail: str = ""

    @property
    def diverged(self) -> bool:
        return self.db_seq != self.space_seq

    @property
    def agrees(self) -> bool:
        """True when the file now agrees with its space."""
        return self.action in (Action.IN_SYNC, Action.REPLAYED, Action.INVERTED)


class _Irreparable(Exception):
    pass


def reconcile(
    space_conn: apsw.Connection, db_id: str, path: Path, *, repair: bool = True
) -> Outcome:
    """Compare the database ``db_id`` (file ``path``) with the space behind ``space_conn`` and,
    with ``repair``, bring it in line. The caller holds the space's in-process write lock; if
    ``space_conn`` is not already in a write transaction one is opened (and released) here."""
    owns_txn = space_conn.getautocommit()
    if owns_txn:
        space_conn.execute("BEGIN IMMEDIATE")
    try:
        space_seq = SpaceFile.last_seq_for(space_conn, db_id)
        if not path.exists() and space_seq == 0:
            return Outcome(db_id, path, 0, 0, Action.IN_SYNC)
        conn = apsw.Connection(str(path))
        conn.setbusytimeout(BUSY_TIMEOUT_MS)
        try:
            return _reconcile_file(space_conn, conn, db_id, path, space_seq, repair)
        finally:
            conn.close()
    finally:
        if owns_txn:
            space_conn.execute("ROLLBACK")  # the space was only read


def _reconcile_file(
    space_conn: apsw.Connection,
    conn: apsw.Connection,
    db_id: str,
    path: Path,
    space_seq: int,
    repair: bool,
) -> Outcome:
    conn.execute("BEGIN IMMEDIATE")
    db_seq = _watermark(conn)
    try:
        if db_seq == space_seq:
            action, commits = Action.IN_SYNC, 0
        elif not repair:
            action, commits = (Action.BEHIND if db_seq < space_seq else Action.AHEAD), 0
        elif db_seq < space_seq:
            commits = _replay(space_conn, conn, db_id, db_seq, space_seq)
            action = Action.REPLAYED
        else:
            commits = _invert(conn, space_seq)
            action = Action.INVERTED
        if action in (Action.REPLAYED, Action.INVERTED):
            conn.execute("UPDATE _cf_watermark SET seq = ? WHERE id = 0", (space_seq,))
        conn.execute("COMMIT")
    except (_Irreparable, apsw.Error, msgspec.DecodeError) as exc:
        if not conn.getautocommit():
            conn.execute("ROLLBACK")
        detail = f"{type(exc).__name__}: {exc}"
        log.error(
            "database %s quarantined: watermark seq %d, space seq %d: %s",
            db_id,
            db_seq,
            space_seq,
            detail,
        )
        return Outcome(db_id, path, db_seq, space_seq, Action.QUARANTINED, 0, detail)
    if action is not Action.IN_SYNC:
        log.warning(
            "database %s %s: watermark seq %d, space seq %d, %d changeset(s) applied",
            db_id,
            action.value,
            db_seq,
            space_seq,
            commits,
        )
    return Outcome(db_id, path, db_seq, space_seq, action, commits)


def _watermark(conn: apsw.Connection) -> int:
    known = conn.execute("SELECT 1 FROM sqlite_schema WHERE name = '_cf_watermark'").fetchone()
    if known is None:
        return 0
    row = conn.execute("SELECT seq FROM _cf_watermark WHERE id = 0").fetchone()
    return int(row[0]) if row else 0


def _abort(reason: int, change: Any) -> int:
    raise _Irreparable(f"a changeset does not apply ({change})")


def _replay(
    space_conn: apsw.Connection, conn: apsw.Connection, db_id: str, after: int, upto: int
) -> int:
    schema = _handle_schema(space_conn, db_id)
    ensure_runtime_tables(conn, "main")
    plan = plan_migration(conn, "main", schema)
    if plan.differences:
        raise _Irreparable(f"the file's tables differ from the declared ones: {plan.differences}")
    for statement in plan.statements:
        conn.execute(statement)
    applied: set[int] = set()
    for seq, op in SpaceFile.ops_for(space_conn, db_id, after, upto):
        changeset = decode_op_body(op).changeset
        if changeset is None:
            raise _Irreparable(f"commit {seq} kept no changeset to replay")
        apsw.Changeset.apply(changeset, conn, conflict=_abort)
        conn.execute("INSERT INTO _cf_changes (seq, changeset) VALUES (?, ?)", (seq, changeset))
        applied.add(seq)
    return len(applied)


def _invert(conn: apsw.Connection, space_seq: int) -> int:
    rows = conn.execute(
        "SELECT seq, changeset FROM _cf_changes WHERE seq > ? ORDER BY seq DESC, rowid DESC",
        (space_seq,),
    ).fetchall()
    if not rows:
        raise _Irreparable("the file's journal holds no changesets past the space's seq")
    for _, changeset in rows:
        assert isinstance(changeset, bytes)
        apsw.Changeset.apply(apsw.Changeset.invert(changeset), conn, conflict=_abort)
    conn.execute("DELETE FROM _cf_changes WHERE seq > ?", (space_seq,))
    return len({seq for seq, _ in rows})


def _handle_schema(space_conn: apsw.Connection, db_id: str) -> Schema:
    row = space_conn.execute("SELECT value FROM _cf_cells WHERE id = ?", (db_id,)).fetchone()
    if row is None:
        raise _Irreparable(f"the space holds no handle for {db_id}")
    value = msgspec.json.decode(bytes(row[0]))
    return schema_from_json(value["tables"])


def schema_from_json(tables: dict[str, Any]) -> Schema:
    """Rebuild a declared schema from the ``tables`` of a handle cell's value."""
    declared = {}
    for name, spec in tables.items():
        columns: dict[str, str | CfLink] = {
            c["name"]: cf_link() if c["link"] else c["spec"] for c in spec["columns"]
        }
        declared[name] = table(columns, indexes=spec.get("indexes") or None)
    return declare_tables(declared)
