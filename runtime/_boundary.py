"""The error boundary: raw apsw, OS, Unicode and overflow errors become ``SqliteCellsError``s.

Every place where the runtime (or ``sqlite_cells``) opens, reads, writes, reconciles or checks a
file wraps the work in :func:`translated`, so no raw error ever reaches a caller (SPEC §5,
"Errors"). The translated error names the path (or statement) and says what to do; the original is
its ``__cause__``.
"""

from __future__ import annotations

import errno
import functools
import inspect
import os
import resource
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final, NoReturn, ParamSpec, Self, TypeVar

import apsw

from sqlite_cells.codec import (
    MAX_NAME_BYTES,
    DatabaseError,
    EncodingError,
    SqliteCellsError,
    ValueEncodeError,
    brief_repr,
    name_too_long,
)

__all__ = [
    "DAMAGED_SPACE_ADVICE",
    "InvalidArgument",
    "Reference",
    "StorePathError",
    "UnknownInput",
    "check_name",
    "check_timeout",
    "checked_arguments",
    "describe",
    "exception_text",
    "locale_decoded",
    "out_of_files",
    "path_text",
    "printable",
    "refusal_of",
    "stored_json_column",
    "surrogate_at",
    "translated",
    "waited_for_lock",
]


class InvalidArgument(SqliteCellsError, TypeError, ValueError):
    """A bad option given to a constructor, decorator or call (``poll_interval``, ``tries``,
    ``row=``, …): a value of the wrong type or out of range. Private to the project: callers
    catch ``ValueError``, ``TypeError`` or ``SqliteCellsError``."""


class UnknownInput(InvalidArgument, KeyError):
    """A name that is not among those a mapping holds (``piece.inputs["nope"]``): also a
    ``KeyError``, so ``dict`` habits (``except KeyError``) keep working."""

    def __str__(self) -> str:  # KeyError's str() is the repr of its argument
        return str(self.args[0]) if self.args else ""


_P = ParamSpec("_P")
_R = TypeVar("_R")
_T = TypeVar("_T")


class Refusal:
    """What a call of ``fn`` with arguments its signature does not bind is told: an
    :class:`InvalidArgument` naming the call, what was wrong and how to call it."""

    def __init__(self, fn: Callable[..., Any], signature: inspect.Signature) -> None:
        parameters = [
            p.replace(annotation=inspect.Parameter.empty) for p in signature.parameters.values()
        ]
        self.is_method = bool(parameters) and parameters[0].name == "self"
        if parameters and parameters[0].name in ("self", "cls"):
            parameters = parameters[1:]
        self.bare = signature.replace(
            parameters=parameters, return_annotation=inspect.Signature.empty
        )
        # A class is called by its name: Runtime(...), not Runtime.__init__(...).
        self.is_init = fn.__name__ == "__init__"
        # A function made inside another is named as its maker's caller wrote it (post(...),
        # not make.<locals>.post(...)).
        self.name = fn.__qualname__.removesuffix(".__init__").rpartition("<locals>.")[2]
        self.signature = signature

    def error(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> InvalidArgument | None:
        """The error for a call with ``args`` and ``kwargs``; None if they bind."""
        try:
            self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            name = self.name
            if self.is_init and args:  # the class it made: sc.Runtime(...), a subclass's name
                name = type(args[0]).__name__
            elif self.is_method and args:  # named by the class it was called on (SqliteDb.get)
                name = f"{type(args[0]).__name__}.{name.rpartition('.')[2]}"
            return InvalidArgument(
                f"{name}() does not take these arguments ({exc}): call it as {name}{self.bare}"
            )
        return None

    def __call__(self, *args: Any, **kwargs: Any) -> NoReturn:
        """Raise the error for a call the caller already knows does not bind."""
        error = self.error(args, kwargs)
        if error is None:  # pragma: no cover - the caller's own check is wrong
            raise AssertionError(f"{self.name}{self.bare} takes these arguments")
        raise error

    def shown(self, method: _T) -> _T:
        """``method``, which takes stray arguments to refuse them (``*extra``, ``**named`` and a
        private default for a required argument), shown by ``help()`` and
        ``inspect.signature`` with its public signature instead, the one it refuses others
        by."""
        method.__signature__ = self.signature  # type: ignore[attr-defined]  # (a function's)
        return method


def refusal_of(shape: Callable[..., Any]) -> Refusal:
    """The :class:`Refusal` of a method whose public signature is ``shape``'s. For the few hot
    methods (``Cell.get``, ``Cell.set``, ``SqliteDb.exec``) where :func:`checked_arguments`'
    extra frame would show: they take stray arguments at run time (``*extra, **named``, typed
    ``Never`` so type checkers still refuse them) and call the refusal when there are any, at
    the cost of one test of two empty containers."""
    return Refusal(shape, inspect.signature(shape))


def checked_arguments(
    fn: Callable[_P, _R], *, shape: Callable[..., Any] | None = None
) -> Callable[_P, _R]:
    """``fn``, raising :class:`InvalidArgument` instead of Python's own ``TypeError`` when it is
    called with arguments its signature does not take (one too many, a missing one, an unknown
    keyword): the error names the call and shows its signature. A ``TypeError`` raised inside
    ``fn`` for arguments that do bind is the body's own and passes through unchanged.

    The check costs one Python frame until the call fails: Python binds the arguments, and only
    a ``TypeError`` makes the wrapper bind them again against the signature to tell the two
    apart. A coroutine function stays one (its arity error is raised where it is awaited).

    ``shape``: the callable whose own signature the arguments are checked against, when ``fn``
    passes them on to it (a handler's body): its signature as it is called, not that of a
    function it wraps in turn (``functools.wraps`` of the caller's own decorator), which may
    take other arguments than the call does."""
    try:
        if shape is not None:
            refusal = Refusal(fn, inspect.signature(shape, follow_wrapped=False))
        else:
            refusal = Refusal(fn, inspect.signature(fn))
    except (TypeError, ValueError):  # a callable without one (some builtins): left as it is
        return fn

    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def awaited(*args: Any, **kwargs: Any) -> Any:
            try:
                return await fn(*args, **kwargs)
            except TypeError:
                error = refusal.error(args, kwargs)
                if error is None:
                    raise
                raise error from None

        return awaited  # type: ignore[return-value]  # same ParamSpec, an awaitable result

    @functools.wraps(fn)
    def call(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return fn(*args, **kwargs)
        except TypeError:
            error = refusal.error(args, kwargs)
            if error is None:
                raise
            raise error from None

    return call


class StorePathError(DatabaseError, ValueError):
    """A store path that cannot be a store (empty, a file, unwritable). Also a ``ValueError``:
    it is a bad argument. Kept private to the runtime: callers catch ``SqliteCellsError``."""


def stored_json_column(column: str) -> str:
    """SQL reading ``column`` — a JSON value the runtime stores as a BLOB, which another program
    may have stored as text — with text as its bytes. Text that is not valid UTF-8 then reaches
    the JSON decoder, which names the row it belongs to, instead of failing in apsw's decoding
    of the text (a raw ``UnicodeDecodeError``, before the row is known and past every other row
    of the same scan). Values of other types come back as they are, to be refused as such."""
    return f"CASE typeof({column}) WHEN 'text' THEN CAST({column} AS BLOB) ELSE {column} END"


def surrogate_at(text: str) -> int | None:
    """The position of the first lone surrogate in ``text`` (which UTF-8 cannot encode, so
    SQLite cannot store it), or None for valid text. ASCII text is answered without a search."""
    if text.isascii():
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return exc.start
    return None


def locale_decoded(what: str, name: str) -> str | None:
    """The refusal of a file name holding lone surrogates that are UTF-8 bytes this Python
    decoded with a narrower encoding (a C or POSIX locale without UTF-8 mode keeps each byte
    beyond ASCII of ``café`` as a lone surrogate): renaming mends nothing there, the locale
    does. None for any other name."""
    encoding = sys.getfilesystemencoding()
    if encoding.lower().replace("-", "").replace("_", "") == "utf8":
        return None
    try:
        os.fsencode(name).decode("utf-8")
    except UnicodeError:
        return None
    return (
        f"{what} {name!r} is UTF-8 that this Python decoded as {encoding} (a C or POSIX locale "
        "without UTF-8 mode), and SQLite opens files by their UTF-8 names: run it with "
        "PYTHONUTF8=1 or a UTF-8 locale (LC_ALL=C.UTF-8)"
    )


def plain_text(value: _T) -> _T:
    """``value``, or its text when it is a ``str`` subclass: what a name or a statement given as
    one (an enum member, a tagged string) stands for, and what SQLite reads and caches key on —
    never what the subclass's own ``__str__``, ``__eq__``, ``__hash__`` or ``__getitem__``
    say, which may raise or lie."""
    if type(value) is not str and isinstance(value, str):
        return str.__str__(value)  # type: ignore[return-value]  # a str: what _T is here
    return value


def path_text(path: object) -> str | None:
    """The text a path argument names — a ``str``, or the ``str`` an ``os.PathLike``'s
    ``__fspath__`` returns — or None when it names none: another type, a ``bytes`` path (SQLite
    opens files by text names), or a ``__fspath__`` that returns something else (bytes, an int,
    None, another PathLike) or raises. ``os.fspath`` would raise a raw ``TypeError`` for those;
    the caller refuses None with its own error, as it refuses any other value that is no path."""
    if not isinstance(path, str | os.PathLike):
        return None
    try:
        text = os.fspath(path)
    except Exception:  # user code's __fspath__ may raise anything
        return None
    if not isinstance(text, str):
        return None
    return plain_text(text)


def printable(text: str) -> str:
    """``text`` with each lone surrogate written as its escape (``\\ud800``): a message that
    carries text from user code stays printable (printing a lone surrogate raises)."""
    if surrogate_at(text) is None:
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


# Characters of an exception's text that a message quotes: the error that quotes it keeps the
# exception whole as its ``__cause__``.
_EXCEPTION_SHOWN: Final = 1_000


def exception_text(exc: BaseException) -> str:
    """``TypeName: text`` of an exception raised by user code, for a message: printable, cut
    to its beginning and its length when long (a text of megabytes would bury the message and
    every repr that shows it), and never raising (an exception whose ``__str__`` raises is
    shown by its type alone)."""
    name = type(exc).__name__
    try:
        text = str(exc)
    except Exception:  # user code's __str__ may raise anything
        return f"{name} (its text could not be read: its __str__ raised)"
    if len(text) > _EXCEPTION_SHOWN:
        text = f"{text[:_EXCEPTION_SHOWN]}… ({len(text):,} characters)"
    return printable(f"{name}: {text}" if text else name)


def check_name(what: str, name: object) -> str:
    """``name``, as a plain ``str``, if it can name an entity (R1): a non-empty ``str`` of valid
    Unicode text, since ids and file names are derived from its UTF-8 bytes. Otherwise a
    :class:`~sqlite_cells.codec.ValueEncodeError` (a ``TypeError`` and ``ValueError``) saying
    which ``what`` (``"space id"``, ``"cell name"``, …) was wrong; nothing is created."""
    if not isinstance(name, str):
        raise ValueEncodeError(
            f"a {what} is a non-empty str, not {type(name).__name__} ({brief_repr(name)})"
        )
    if not name:
        raise ValueEncodeError(f"a {what} is a non-empty str, not ''")
    position = surrogate_at(name)
    if position is not None:
        raise ValueEncodeError(
            f"the {what} {brief_repr(name)} is not valid Unicode text (a lone surrogate at "
            f"position {position}): names are stored as UTF-8; decode the text properly first"
        )
    if name_too_long(name):
        raise ValueEncodeError(
            f"the {what} {brief_repr(name)} is {len(name.encode('utf-8')):,} bytes of UTF-8, over "
            f"the limit of {MAX_NAME_BYTES:,} for a name: give it a shorter name (a long text "
            "belongs in a cell's value)"
        )
    return plain_text(name)


# The longest timeout an option takes, in seconds (about 23 days): SQLite's busy timeout is an
# int of milliseconds (at most 2**31 - 1), and the runtime hands these options to it.
MAX_SECONDS = 2_000_000


def check_timeout(name: str, value: object) -> float | None:
    """A timeout in seconds for a call that waits: ``None`` (or ``inf``) waits for as long as it
    takes, ``0`` only checks; a negative, NaN or non-number is an :class:`InvalidArgument`.
    Returns the timeout the wait primitives accept (None past their maximum)."""
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool) or not value >= 0:
        raise InvalidArgument(
            f"{name} is a number of seconds of at least 0 (or None to wait without limit), "
            f"not {brief_repr(value)}"
        )
    return None if value > threading.TIMEOUT_MAX else float(value)


# What to do about a space file that SQLite cannot read. A space file is the source of truth of
# its space (its log rebuilds the space's databases, never the other way round), so nothing in
# the store can rebuild it: the advice for a damaged database file would point back at itself.
DAMAGED_SPACE_ADVICE = (
    "a space file is its space's source of truth, so `sqlite-cells check --repair` cannot "
    "rebuild it: restore it (with its -wal, if any) from a backup; or move it and its -wal and "
    "-shm out of the store, keeping them, and the space starts again empty. Meanwhile `sqlite-"
    "cells check` reports it and, as orphaned, the database files no readable space names; "
    "`sqlite-cells gc` removes none of them"
)
_SPACE_FILE = "space file "  # how every space file's translated() names it


def waited_for_lock(exc: BaseException) -> bool:
    """Whether ``exc`` — raw, or as :func:`translated` wraps it — is SQLite giving up waiting
    for a lock another connection holds (its busy timeout ran out)."""
    return isinstance(exc, apsw.BusyError) or isinstance(exc.__cause__, apsw.BusyError)


def out_of_files(exc: BaseException) -> str:
    """What to do when ``exc`` is a file this process could not open because it has as many
    files open as its limit allows; ``""`` for any other error.  An ``OSError`` says so by its
    errno; SQLite says only "unable to open database file" (``CantOpenError``), so then the
    process counts the files it has open (:func:`_near_the_limit`)."""
    if isinstance(exc, OSError):
        exhausted = exc.errno in (errno.EMFILE, errno.ENFILE)
    else:
        exhausted = isinstance(exc, apsw.CantOpenError) and _near_the_limit()
    if not exhausted:
        return ""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return (
        f"this process has as many files open as it may ({soft}, its limit of open files): "
        "close the runtimes and queries it no longer uses, or raise the limit (`ulimit -n`, "
        "resource.setrlimit), then try again"
    )


# Files SQLite may have opened, and closed again, before it failed: a connection opens its file,
# its -wal and -shm, and one that attaches a database as many again.
_ROOM: Final = 8


def _near_the_limit() -> bool:
    """Whether this process has, or had a moment ago, as many files open as its limit allows:
    within :data:`_ROOM` of it (what SQLite opened it closed when it failed), or unable to open
    one more (where ``/proc/self/fd`` does not list them)."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        count = len(os.listdir("/proc/self/fd"))
    except OSError as exc:
        if exc.errno in (errno.EMFILE, errno.ENFILE):
            return True
    else:
        return soft != resource.RLIM_INFINITY and count + _ROOM >= soft
    try:
        os.close(os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC))
    except OSError as exc:
        return exc.errno in (errno.EMFILE, errno.ENFILE)
    return False


def describe(exc: BaseException, where: str) -> str:
    """What went wrong with ``where`` (a path or a statement), and what to do about it."""
    if advice := out_of_files(exc):
        return f"{where} cannot be opened: {advice}"
    if isinstance(exc, apsw.NotADBError | apsw.CorruptError) and where.startswith(_SPACE_FILE):
        what = (
            "is not an SQLite database (or its header is damaged)"
            if isinstance(exc, apsw.NotADBError)
            else f"is corrupt ({exc})"
        )
        return f"{where} {what}: {DAMAGED_SPACE_ADVICE}"
    if isinstance(exc, apsw.NotADBError):
        return (
            f"{where} is not an SQLite database (or its header is damaged): move it out of the "
            "store, or run `sqlite-cells check --repair` to quarantine and rebuild it"
        )
    if isinstance(exc, apsw.CorruptError):
        return (
            f"{where} is corrupt ({exc}): run `sqlite-cells check` to find damaged files and "
            "`sqlite-cells check --repair` to quarantine and rebuild them"
        )
    if isinstance(exc, apsw.CantOpenError):
        return (
            f"{where} cannot be opened ({exc}): check that the path is a file (not a "
            "directory), that its directory exists and that you may read and write it"
        )
    if isinstance(exc, apsw.ReadOnlyError | apsw.PermissionsError):
        return f"{where} is read-only ({exc}): make the store writable to write to it"
    if isinstance(exc, apsw.BusyError | apsw.LockedError):
        return f"{where} stayed locked by another connection ({exc}): try again"
    if isinstance(exc, apsw.FullError):
        return f"{where}: the disk is full ({exc}): free space and try again"
    if isinstance(exc, apsw.IOError):
        # (SQLite says only "disk I/O error" when the file system refuses a write — a full
        # disk, a file size limit —, as when it cannot make the -shm beside a file it opens.)
        return (
            f"{where}: an I/O error ({exc}): the file system refused a read or a write (a full "
            "disk, a limit on the size of files, a failing disk): free space or check the "
            "disk, then try again; `sqlite-cells check` reports a file left damaged"
        )
    if isinstance(exc, UnicodeError):
        return (
            f"{where} holds text that is not valid UTF-8 ({exc}): it was not written through "
            "sqlite-cells; fix or delete the offending row with another tool"
        )
    if isinstance(exc, OverflowError):
        return f"{where}: a number does not fit in 64 bits ({exc}): store it as text"
    if isinstance(exc, IsADirectoryError):
        return f"{where} is a directory where a file belongs: move it out of the store"
    if isinstance(exc, OSError) and exc.errno == errno.EROFS:
        return f"{where} is on a read-only file system ({exc.strerror}): use a writable store"
    if isinstance(exc, OSError) and exc.errno in (errno.EACCES, errno.EPERM):
        return (
            f"{where} may not be used by this user ({exc.strerror}): give it read and write "
            "permission, and its directory read, write and search permission"
        )
    if isinstance(exc, OSError):
        return f"{where}: {exc.strerror or exc} — check the path and the disk"
    return f"{where}: {type(exc).__name__}: {exc}"


@contextmanager
def translated(where: str | Path) -> Iterator[None]:
    """Run the body, turning raw apsw/OS/Unicode/overflow errors into ``SqliteCellsError``:
    :class:`~sqlite_cells.codec.EncodingError` for text or numbers that cannot be read or bound,
    :class:`~sqlite_cells.codec.DatabaseError` for the rest. Our own errors pass through."""
    try:
        yield
    except SqliteCellsError:
        raise
    except (UnicodeError, OverflowError) as exc:
        raise EncodingError(describe(exc, str(where))) from exc
    except (apsw.Error, OSError) as exc:
        raise DatabaseError(describe(exc, str(where))) from exc


class Reference:
    """A handle on something live (a cell, a derived cell or query, a space, a runtime): a
    copy of a value holding one holds the same object (``copy`` and ``deepcopy`` give the
    object itself), and pickling is refused with :meth:`_not_pickled`, which says what to
    pickle instead."""

    __slots__ = ()

    def __copy__(self) -> Self:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Self:
        return self

    def __reduce__(self) -> Any:
        raise InvalidArgument(self._not_pickled())

    def _not_pickled(self) -> str:
        raise NotImplementedError
