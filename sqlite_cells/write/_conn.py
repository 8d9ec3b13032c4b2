"""What the write path keeps per space write connection, for that connection's lifetime.

* One :class:`~sqlite_cells.sql.Gate`, installed once: assigning ``Connection.authorizer`` expires
  every prepared statement, so switching authorizers per op would re-prepare the runtime's own
  statements on every commit. User statements run inside ``gate.user(...)`` and are prepared with
  ``USER_PREPARE_FLAGS`` (apsw's cache keys on the flags, so a user statement is never served a
  statement the runtime prepared). They stay cached, so an identical commit prepares nothing.
* One cursor for user statements whose exec tracer marks the moment SQLite has finished preparing
  (and authorizing) the user's text and starts stepping it. The session extension reads
  ``PRAGMA table_xinfo`` of each table it first sees changed from *inside* that step; only then,
  and only that pragma on the database cell's file, is let through. While the user's text is
  being prepared no PRAGMA is ever allowed (defense in depth behind the guard, R23). A second
  statement in the text would be prepared while that pragma is let through, and the authorizer
  cannot tell the two apart: the tracer refuses such a text before its first statement runs.
* ``last_insert_rowid()`` as one connection would show it to a transaction's statements: each
  user statement starts with the rowid the transaction's previous statement left (0 for its
  first), whatever the runtime's own statements (cell writes, the commit record, the journal)
  inserted in between; a statement run again for its capture (R70) starts from the same value.
* A progress handler (installed once, with its own ``id``) that interrupts a user statement
  running past its deadline (R44 ``exec_timeout``), and overrides of the builtin SQL functions
  whose one call can run long within a single step, which keep that deadline too
  (:mod:`sqlite_cells.write._calls`); a user statement's JSON calls of many paths are
  rewritten to functions computed the same way (:func:`sqlite_cells.sql.split_json_calls`).
* A :class:`~sqlite_cells.write._watchdog.Watch`, armed while a user statement runs, through
  which the runtime's watchdog interrupts a statement those checks miss (steps that are each a
  long linear call, too few between loop points for the progress handler's 1,000).
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Iterator
from typing import Final

import apsw

from sqlite_cells.files import ALIAS
from sqlite_cells.sql import (
    REWRITTEN_JSON_FUNCTIONS,
    REWRITTEN_PREPARE_FLAGS,
    USER_PREPARE_FLAGS,
    WRITE_VERBS,
    Authorizer,
    Bound,
    Gate,
    first_keyword,
    fold_ascii,
    reads_nothing_after,
    split_json_calls,
)
from sqlite_cells.write._calls import override_long_calls
from sqlite_cells.write._watchdog import Watch, Watchdog

__all__ = ["WriteConn", "write_conn"]

_PRAGMA: Final = apsw.SQLITE_PRAGMA
_FUNCTION: Final = apsw.SQLITE_FUNCTION
_OK: Final = apsw.SQLITE_OK
_SESSION_PRAGMAS: Final = frozenset({"table_info", "table_xinfo"})
# VM steps between deadline checks. Often, unlike the read pool's (read/_pool.py): a step that
# calls a builtin on a large value (upper() of megabytes, each row) is long, so this check is
# what holds exec_timeout (R44); the watchdog (write/_watchdog.py) only catches what it misses.
_PROGRESS_STEPS: Final = 1000
_PROGRESS_ID: Final = "sqlite_cells.write.deadline"


def _deny(*_args: object) -> int:
    return apsw.SQLITE_DENY


class WriteConn:
    """The write path's state for one connection; used only under its space's write lock."""

    # Nothing here refers to the connection (the connection refers to the gate, the progress
    # handler and the function overrides; the gate refers to it weakly), so the connection, and
    # with it this entry, goes away with its space file.
    __slots__ = (
        "_judge_once",
        "_last",
        "_policy",
        "_rewritten",
        "_rowid",
        "_rowid_after",
        "_stepping",
        "_text",
        "deadline",
        "gate",
        "row_at",
        "watch",
    )

    def __init__(self, conn: apsw.Connection) -> None:
        self.gate = Gate().install(conn)
        self._policy: Authorizer = _deny
        # One object for the gate to compare (a bound method is a new object at each access),
        # and the policy of the previous user statement: when it changes, the gate is installed
        # again so that every cached statement is authorized again under the new policy.
        self._judge_once: Authorizer = self._judge
        self._last: Authorizer | None = None
        self._stepping = False
        self._rewritten = False  # the user statement is the runtime's rewrite (see _judge)
        self._text = ""  # the text of the user statement being run (see _started)
        self.deadline: float | None = None
        # The row of an exec_many SQLite was running when it failed (counting from 0), or None
        # (an exec, or a statement that failed before its first row ran): the error names it.
        self.row_at: int | None = None
        # last_insert_rowid() for the next user statement of the transaction, and what the last
        # run left.
        self._rowid = 0
        self._rowid_after = 0
        self.watch = Watch()
        conn.set_progress_handler(self._progress, _PROGRESS_STEPS, id=_PROGRESS_ID)
        override_long_calls(conn, self)

    def begin_transaction(self) -> None:
        """A transaction's writes begin (again, when a group commit runs its ops once more):
        its first statement sees ``last_insert_rowid()`` 0."""
        self._rowid = 0

    def end_op(self) -> None:
        """The op begun last is done: the transaction's next statement sees the rowid its
        statement left (not what the runtime inserted since)."""
        self._rowid = self._rowid_after

    def _started(self, cursor: apsw.Cursor, sql: str, _bindings: object) -> bool:
        # Called by apsw after the statement is prepared and bound, before it is stepped. Once
        # is enough (an exec_many would call it for every row).
        text = self._text
        if len(sql) != len(text) and not reads_nothing_after(text, len(sql)):
            # R23: apsw would prepare a second statement once this one is done, while
            # _stepping lets the session's PRAGMA table_xinfo through (the same arguments as a
            # user's own), and the authorizer cannot tell the two apart. Refused before the
            # first statement runs: the guard refuses it first, this holds without it.
            raise apsw.SQLError(
                "more than one statement (a second one follows the first ';'), which db.exec "
                "does not run; pass one statement per call"
            )
        verb = first_keyword(text)
        if verb not in WRITE_VERBS and verb != "WITH":
            # R23: REINDEX of a table, index or collation reaches no authorizer callback, and
            # would run and commit as the database's write. Refused before it runs: the guard
            # refuses it first, this holds without it.
            raise apsw.SQLError(
                f"the statement is not a write ({verb or 'its first word'} is not INSERT, "
                "REPLACE, UPDATE, DELETE or WITH), which db.exec does not run; pass one "
                "INSERT, REPLACE, UPDATE or DELETE statement"
            )
        self._stepping = True
        cursor.exec_trace = None
        return True

    def _progress(self) -> bool:
        deadline = self.deadline
        return deadline is not None and time.monotonic() > deadline

    def _judge(
        self, action: int, a: str | None, b: str | None, database: str | None, src: str | None
    ) -> int:
        if action == _PRAGMA and self._stepping and a in _SESSION_PRAGMAS and database == ALIAS:
            return _OK  # the session extension asking, from inside the step (see module doc)
        if (
            action == _FUNCTION
            and self._rewritten
            and fold_ascii(b or "") in REWRITTEN_JSON_FUNCTIONS
        ):
            return _OK  # what the runtime's rewrite calls (never a user's own text, R23)
        return self._policy(action, a, b, database, src)

    def run_user(
        self,
        conn: apsw.Connection,
        policy: Authorizer,
        sql: str,
        rows: list[Bound],
        *,
        many: bool,
        timeout: float,
        watchdog: Watchdog,
    ) -> None:
        """Run a user statement (once, or once per row) under ``policy``, interrupted by SQLite
        once it runs past ``timeout`` seconds, or failed by a long function call that does, or
        by ``watchdog`` when neither did (``apsw.InterruptError`` all three)."""
        if self._last is not None and policy is not self._last:
            self.gate.install(conn)
        self._last = policy
        run = self._text = split_json_calls(sql)  # R44: a JSON call of many paths too
        self._rewritten = run is not sql
        flags = REWRITTEN_PREPARE_FLAGS if self._rewritten else USER_PREPARE_FLAGS
        cursor = conn.cursor()
        cursor.exec_trace = self._started
        gate, watch = self.gate, self.watch
        self.row_at = None
        try:
            # Set inside the try: the finally below takes them back, whatever stops this (a
            # Ctrl-C included), so no deadline outlives the statement it was set for.
            self._policy, self._stepping = policy, False
            deadline = self.deadline = time.monotonic() + timeout
            # The plain enter/leave pair, not ``gate.user``: this runs on every commit.
            gate.enter(self._judge_once)
            try:
                conn.set_last_insert_rowid(self._rowid)
                token = 0
                try:
                    # Armed inside the try: an interrupt (Ctrl-C) that lands in arm() leaves
                    # no statement armed for the watchdog to stop once this one has returned.
                    token = watch.arm(conn, deadline, watchdog)
                    if many:
                        cursor.executemany(run, self._until_fired(rows), prepare_flags=flags)
                    else:
                        cursor.execute(run, rows[0], prepare_flags=flags)
                except apsw.Error as exc:
                    if watch.disarm(token) and not isinstance(exc, apsw.InterruptError):
                        raise _interrupted() from exc  # past its deadline, whatever else
                    raise
                except BaseException:
                    watch.disarm(token)
                    raise
                if watch.disarm(token):
                    # It finished (no loop point came after the interrupt) or stopped at a row
                    # of its own (RETURNING): either way past its deadline. Its statement is
                    # reset now, so that no statement stays active over the rollback.
                    cursor.close(True)
                    raise _interrupted()
                if _returned_rows(cursor):
                    # R23: the guard refuses RETURNING; should one get past it, its rows are
                    # not read, and executemany would stop at the first one, rows unwritten.
                    cursor.close(True)
                    raise apsw.SQLError(
                        "the statement returned rows (RETURNING), which db.exec does not run; "
                        "remove the RETURNING clause"
                    )
                self._rowid_after = conn.last_insert_rowid()
            finally:
                gate.leave()
        finally:
            # Again here: a Ctrl-C that lands inside enter() or right after it, before the try
            # above begins, would otherwise leave the gate entered, and every later user
            # statement of this connection would be refused as re-entrant.
            gate.leave()
            if not self._stepping:
                self.row_at = None  # it failed before SQLite ran a row: no row to blame
            self._policy, self._stepping, self.deadline = _deny, False, None

    def _until_fired(self, rows: list[Bound]) -> Iterator[Bound]:
        """``rows`` one by one, until the watchdog interrupted the statement (R44): SQLite
        forgets an interrupt when the statement starts again for the next row, so rows that
        each run one long step (a function call SQLite does not interrupt) would all run to the
        end, under the space's write lock. ``row_at`` follows the row handed to SQLite (apsw
        takes the next one only once the last has run)."""
        watch = self.watch
        for at, row in enumerate(rows):
            if watch.fired:
                raise _interrupted()
            self.row_at = at
            yield row


def _returned_rows(cursor: apsw.Cursor) -> bool:
    """Whether the statement stopped at a row it returns (a finished one leaves none)."""
    try:
        cursor.has_vdbe  # noqa: B018 - raises once the statement is done
    except apsw.ExecutionCompleteError:
        return False
    return True


def _interrupted() -> apsw.InterruptError:
    return apsw.InterruptError("the statement ran past its deadline and was interrupted")


_STATES: weakref.WeakKeyDictionary[apsw.Connection, WriteConn] = weakref.WeakKeyDictionary()


def write_conn(conn: apsw.Connection) -> WriteConn:
    """The write path's state for ``conn`` (made, and the gate installed, on first use)."""
    state = _STATES.get(conn)
    if state is None:
        state = _STATES[conn] = WriteConn(conn)
    return state
