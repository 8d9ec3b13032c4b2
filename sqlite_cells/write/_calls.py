"""SQL function calls that could outrun a write's deadline, kept under it (R44 ``exec_timeout``).

SQLite calls the progress handler, and checks for an interrupt, between VM steps; one call of a
builtin function is one step. Most builtins are linear in their arguments' size, and a value is
at most ``SQLITE_LIMIT_LENGTH`` (64 MiB here), so one call of them is bounded. The ones in
:data:`LONG_CALLS` are not: their time grows with the *product* of two arguments' sizes
(``trim(x, chars)`` compares every trimmed character of ``x`` with every one of ``chars``;
``instr``/``replace`` search naively; ``like``/``glob`` backtrack over the pattern; ``unhex(x,
ignored)`` looks up every ignored character; ``jsonb_patch`` looks up every key of the patch
among the target's), so one call on two large values can run for minutes.

JSON calls of two paths or more (``json_extract(doc, p1, p2, …)``, ``json_set`` with several
pairs, …: every path is looked up in the document, so one call costs the document's size times
up to 999 paths), and every call of ``json_patch`` (each key of the patch is looked up among the
target's), cannot be overridden under their own names: their results carry SQLite's JSON
subtype, which a Python function can neither read nor set. A write's statement is rewritten
instead (:func:`sqlite_cells.sql.split_json_calls`) to call the runtime's ``_cf_json_*``
functions registered here, which compute like the overrides below (cost: the arguments' total
size times the number of paths; for ``json_patch`` the product of its two arguments' sizes) and
take each value as the rewrite passes it.

On each space write connection those forms (name and number of arguments) are overridden by
Python functions of the same name, deterministic and innocuous as the builtins are, so they keep
working in CHECK constraints, generated columns and indexes. None of them computes anything
itself: the call is handed to the builtin of a private in-memory *calculator* connection
(``SELECT trim(?1, ?2)``), so the result is SQLite's own.

* Outside a user write (no deadline: the runtime's own statements, schema changes, changesets
  applied by reconciliation) or when the arguments are small (size product under
  :data:`INLINE_COST`, a fraction of a millisecond) the call runs at once on the write
  connection's own calculator: exactly the builtin, and it never times out.
* Otherwise it goes to a helper thread with its own calculator, and the caller waits until the
  write's deadline at most. Past it the call raises ``apsw.InterruptError``, the error SQLite's
  own interrupt raises, so the statement fails, the commit path reports ``ExecTimeout`` and
  rolls back, and the space's write lock is let go. The abandoned calculation cannot be stopped
  (it is one step of its own connection too): it runs to its end on its helper, and its result
  is dropped. At most :data:`HELPERS` helpers exist in the process, so at most that many
  abandoned calculations run at once; a long call that finds them all busy waits for one until
  its deadline, and is abandoned (and removed from the queue) then like any other.

What changes for a statement that calls these functions: a Python call per call (≈ 1 µs), and
``LIKE``/``GLOB`` no longer use an index (SQLite's LIKE optimization is only for its own
functions). ``PRAGMA case_sensitive_like`` would re-register SQLite's own ``like`` and drop the
override; user statements can never run a PRAGMA (R23), and the runtime runs none on this
connection. Text that is not valid UTF-8 cannot cross between SQLite and Python: such a text
argument fails the statement where the builtin would have stored the bytes (the write path
reports an ``ExecError`` naming these functions and what to do: give them the value as a
blob), and such a text result (made from a blob argument) is returned as a blob of the same
bytes, where the builtin returns text.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, Protocol

import apsw

from sqlite_cells.sql import JSON_CALL_PREFIX, JSON_CALLS

__all__ = [
    "HELPERS",
    "INLINE_COST",
    "LONG_CALLS",
    "Deadline",
    "NoHelperFree",
    "NoHelperThread",
    "override_long_calls",
    "running",
]

log = logging.getLogger("sqlite_cells.write")

# (name, number of arguments) of the builtins overridden; the other forms (``trim(x)``) are
# linear and stay SQLite's own.
LONG_CALLS: Final = (
    ("trim", 2),
    ("ltrim", 2),
    ("rtrim", 2),
    ("instr", 2),
    ("replace", 3),
    ("like", 2),
    ("like", 3),
    ("glob", 2),
    ("unhex", 2),
    ("jsonb_patch", 2),
)
# A call whose size product is under this runs on the calling thread. Measured worst cases at
# this size: trim ≈ 0.17 ms, like/glob ≈ 0.06 ms, unhex ≈ 0.04 ms, instr/replace/jsonb_patch
# ≈ 0.01 ms; handing a call to a helper costs ≈ 20 µs.
INLINE_COST: Final = 100_000
# json_patch takes ≈ 3.5 µs per 100,000 of its size product (measured: 1.6 MB² 73 µs, 18 MB²
# 605 µs, 217 MB² 6.4 ms), where the other calls take up to 0.17 ms: its product is divided by
# this before it is compared with INLINE_COST, so that a call handed to a helper (≈ 20 µs) is
# one worth it, as for the others.
_PATCH_SCALE: Final = 50
HELPERS: Final = 4
_LINGER: Final = 10.0  # seconds an idle helper waits for another call before it ends
_NUMBER_SIZE: Final = 24  # a number's length as text, at most (also NULL's, overestimated)
_LIMITS: Final = (apsw.SQLITE_LIMIT_LENGTH, apsw.SQLITE_LIMIT_LIKE_PATTERN_LENGTH)

Limits = tuple[int, ...]  # the values of _LIMITS, in order


class Deadline(Protocol):
    """What the overrides read on every call: the running user write's deadline
    (``time.monotonic()``), or None outside a user write."""

    deadline: float | None


def _size(value: object) -> int:
    return len(value) if isinstance(value, str | bytes) else _NUMBER_SIZE


def _jsonb_element(value: object) -> object:
    """The JSONB of the one element of the JSONB array ``value`` (its payload: the array's
    header is one byte, or one and then 1, 2, 4 or 8 bytes of size); ``value`` itself when it
    is not such an array, for the builtin to judge."""
    if not isinstance(value, bytes) or not value or value[0] & 0x0F != _JSONB_ARRAY:
        return value
    header = _JSONB_HEADER_SIZE.get(value[0] >> 4, 1)
    element = value[header:]
    if not element or len(element) != _jsonb_payload(value, header):
        return value
    if len(element) == 2 and element[0] >> 4 == 12 and element[1] == 0:
        # An empty element ('' , [], {}) comes with a size byte of 0 after its header; the
        # builtin inserts it with the size in the header's byte (0x0A, not 0xCA 0x00).
        return bytes((element[0] & 0x0F,))
    return element


_JSONB_ARRAY: Final = 0x0B
# The size of a JSONB header by the high nibble of its first byte (1 for 0 to 11).
_JSONB_HEADER_SIZE: Final = {12: 2, 13: 3, 14: 5, 15: 9}


def _jsonb_payload(value: bytes, header: int) -> int:
    size = value[0] >> 4
    return size if header == 1 else int.from_bytes(value[1:header], "big")


class _Calculator:
    """A private in-memory connection whose builtins compute the overridden calls. Used by one
    thread at a time."""

    __slots__ = ("_conn", "_cursor", "_limits")

    def __init__(self, limits: Limits) -> None:
        self._conn = apsw.Connection(":memory:")
        self._cursor = self._conn.cursor()
        self._limits: Limits = ()
        self.limit(limits)

    def limit(self, limits: Limits) -> None:
        """Take the write connection's limits, so that a result too big or a LIKE pattern too
        long fails as it would there."""
        if limits != self._limits:
            for which, value in zip(_LIMITS, limits, strict=True):
                self._conn.limit(which, value)
            self._limits = limits

    def run(self, sql: str, args: tuple[object, ...]) -> object:
        """The value of ``sql``'s one row; the statement is stepped to its end, so it does not
        hold on to a large result."""
        try:
            return self._cursor.execute(sql, args).fetchall()[0][0]
        except UnicodeDecodeError:
            return self._bytes(sql, args)

    def step(self, sql: str, args: tuple[object, ...]) -> object:
        """The value of ``sql``'s one row, leaving the statement for the next call to reset
        (for small results: a little quicker than :meth:`run`)."""
        try:
            return next(self._cursor.execute(sql, args))[0]
        except UnicodeDecodeError:
            return self._bytes(sql, args)

    def _bytes(self, sql: str, args: tuple[object, ...]) -> bytes:
        """The bytes of a text result that is not valid UTF-8 (from a blob argument:
        ``replace(b, x'0d0a', x'0a')`` over binary data), computed again as a blob: Python
        cannot hand SQLite such text, and a blob keeps every byte the builtin returned."""
        value = self._cursor.execute(f"SELECT CAST(({sql}) AS BLOB)", args).fetchall()[0][0]
        assert isinstance(value, bytes)
        return value

    def close(self) -> None:
        self._conn.close()


@dataclass(eq=False, slots=True)
class _Call:
    sql: str
    args: tuple[object, ...]
    limits: Limits
    done: threading.Event = field(default_factory=threading.Event)
    result: object = None
    error: BaseException | None = None


class NoHelperFree(apsw.InterruptError):
    """A long call waited for a helper until its write's deadline and never started: every
    helper was still calculating calls of other writes, given up on at their own deadlines."""

    def __init__(self, name: str, running: int) -> None:
        super().__init__(f"{name}() found no helper free ({running} busy)")
        self.function = name
        self.running = running


class NoHelperThread(apsw.InterruptError):
    """A long call found no helper thread and could start none (the system's limit on threads
    or processes): it never ran, and no helper would ever have taken it."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"{name}() found no helper thread and could start none ({reason})")
        self.function = name
        self.reason = reason


class _Helpers:
    """At most ``size`` helper threads, each with its own calculator, made when calls wait and
    ended after ``_LINGER`` idle seconds."""

    def __init__(self, size: int) -> None:
        self._size = size
        # _lock guards _queue, _idle, _threads and _running; _wake signals idle helpers on it.
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._queue: deque[_Call] = deque()
        self._idle = 0  # helpers waiting in _wake
        self._threads = 0
        self._running = 0  # calls being calculated, abandoned ones included

    def running(self) -> int:
        with self._lock:
            return self._running

    def run(self, name: str, call: _Call, deadline: float) -> object:
        """``call``'s result, or ``apsw.InterruptError`` once ``deadline`` has passed."""
        if time.monotonic() >= deadline:
            raise apsw.InterruptError(f"{name}() was called past the write's deadline")
        with self._lock:
            self._queue.append(call)
            # Helpers woken but not yet running count as idle, and the calls they will take
            # are still queued: one more queued call than idle helpers needs a new helper.
            if len(self._queue) > self._idle and self._threads < self._size:
                self._threads += 1
                try:
                    threading.Thread(
                        target=self._serve, name="sqlite-cells-long-call", daemon=True
                    ).start()
                except RuntimeError as exc:  # no thread to be had: wait for a running helper
                    self._threads -= 1
                    if not self._threads:  # (none: nothing would ever take the call)
                        self._queue.remove(call)
                        raise NoHelperThread(name, str(exc)) from exc
            self._wake.notify()
        if not call.done.wait(max(0.0, deadline - time.monotonic())):
            with self._lock:
                started = call not in self._queue
                if not started:
                    self._queue.remove(call)  # its arguments may be large: let them go now
                running = self._running
            if not call.done.is_set():
                log.info(
                    "a call of %s() ran past its write's deadline; %s",
                    name,
                    f"its calculation finishes in the background ({running} running)"
                    if started
                    else f"no helper was free ({running} busy)",
                )
                if not started:
                    raise NoHelperFree(name, running)
                raise apsw.InterruptError(f"{name}() ran past the write's deadline")
        if call.error is not None:
            raise call.error
        return call.result

    def _serve(self) -> None:
        calculator: _Calculator | None = None
        try:
            while True:
                with self._lock:
                    while not self._queue:
                        self._idle += 1
                        woken = self._wake.wait(_LINGER)
                        self._idle -= 1
                        if not woken and not self._queue:
                            self._threads -= 1
                            return
                    call = self._queue.popleft()
                    self._running += 1
                try:
                    if calculator is None:
                        calculator = _Calculator(call.limits)
                    calculator.limit(call.limits)
                    call.result = calculator.run(call.sql, call.args)
                except BaseException as exc:  # handed to the caller, if it still waits
                    call.error = exc
                finally:
                    with self._lock:
                        self._running -= 1
                    call.done.set()
        finally:
            if calculator is not None:
                calculator.close()


_HELPERS: Final = _Helpers(HELPERS)


def running() -> int:
    """How many long calls helpers are calculating now, abandoned ones included."""
    return _HELPERS.running()


class _Overrides:
    """The overrides of one write connection, with that connection's calculator (calls on one
    connection never run at once, so one calculator serves them all)."""

    __slots__ = ("_calculator", "_limits", "_owner")

    def __init__(self, owner: Deadline, limits: Limits) -> None:
        self._owner = owner
        self._limits = limits
        self._calculator = _Calculator(limits)

    def function(self, name: str, numargs: int) -> Callable[..., object]:
        sql = f"SELECT {name}({', '.join(f'?{i + 1}' for i in range(numargs))})"
        owner, helpers, limits = self._owner, _HELPERS, self._limits
        # Small calls (most of them, often one per row) take the shortest way: the statement
        # stepped to its one row, left for the next call to reset.
        step, run = self._calculator.step, self._calculator.run
        # The cost of a call: the first argument's size times the others' (the text searched
        # or trimmed against the pattern, characters or replacement), +1 so that an empty
        # pattern still counts the text it copies.
        if numargs == 2:

            def call2(a: object, b: object) -> object:
                deadline = owner.deadline
                if deadline is None:
                    return run(sql, (a, b))
                if (_size(a) + 1) * (_size(b) + 1) < INLINE_COST:
                    return step(sql, (a, b))
                return helpers.run(name, _Call(sql, (a, b), limits), deadline)

            return call2

        def call3(a: object, b: object, c: object) -> object:
            deadline = owner.deadline
            if deadline is None:
                return run(sql, (a, b, c))
            if (_size(a) + 1) * (_size(b) + _size(c) + 1) < INLINE_COST:
                return step(sql, (a, b, c))
            return helpers.run(name, _Call(sql, (a, b, c), limits), deadline)

        return call3

    def json_function(self, name: str, pairs: bool) -> Callable[..., object]:
        """The runtime's function computing a call of ``name`` of two paths or more (of
        ``json_patch``: every call), as
        :func:`~sqlite_cells.sql.split_json_calls` rewrites it: the value of each path and
        value pair comes as a JSONB array holding the value as the builtin would insert it, and
        is given to the builtin as the JSONB of that element, byte for byte (SQLite inserts a
        JSONB blob as it is, so a text value stays the ``TEXTRAW`` element the builtin makes
        of it, and ``jsonb_set`` stores the bytes the builtin would have stored)."""
        owner, helpers, limits = self._owner, _HELPERS, self._limits
        run = self._calculator.run
        patch = name == "json_patch"
        statements: dict[int, str] = {}  # number of arguments -> the calculator's statement

        def statement(count: int) -> str:
            sql = statements.get(count)
            if sql is None:
                args = [f"?{i + 1}" for i in range(count)]
                sql = statements[count] = f"SELECT {name}({', '.join(args)})"
            return sql

        def call(*args: object) -> object:
            if pairs:
                args = tuple(
                    _jsonb_element(arg) if i > 1 and i % 2 == 0 else arg
                    for i, arg in enumerate(args)
                )
            sql = statement(len(args))
            deadline = owner.deadline
            if deadline is None:
                return run(sql, args)
            if patch:  # each key of the patch looked up among the target's
                cost = (_size(args[0]) + 1) * (_size(args[-1]) + 1) // _PATCH_SCALE
            else:  # every path looked up in the document (and every edit copies it)
                paths = (len(args) - 1) // 2 if pairs else len(args) - 1
                cost = (sum(map(_size, args)) + 1) * paths
            if cost < INLINE_COST:
                return run(sql, args)
            return helpers.run(name, _Call(sql, args, limits), deadline)

        return call


def override_long_calls(conn: apsw.Connection, owner: Deadline) -> None:
    """Override the :data:`LONG_CALLS` builtins on ``conn`` (a space's write connection), and
    register the functions computing the JSON calls of many paths, under ``owner.deadline``.
    Registering expires ``conn``'s prepared statements (they re-prepare once), and fails with
    ``apsw.BusyError`` while one of them is running."""
    overrides = _Overrides(owner, tuple(conn.limit(which, -1) for which in _LIMITS))
    for name, numargs in LONG_CALLS:
        conn.create_scalar_function(
            name,
            overrides.function(name, numargs),
            numargs,
            deterministic=True,
            flags=apsw.SQLITE_INNOCUOUS,
        )
    for name, (_, pairs) in JSON_CALLS.items():
        conn.create_scalar_function(
            JSON_CALL_PREFIX + name,
            overrides.json_function(name, pairs),
            -1,
            deterministic=True,
            flags=apsw.SQLITE_INNOCUOUS,
        )
