"""Where a runtime keeps its files (SPEC §2: Store).

A store is a directory holding one SQLite file per space (``space-<hash>.sqlite``) and one sibling
file per database cell (``cell-<hash>.sqlite``, written by ``sqlite_cells``).
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from sqlite_cells.codec import brief_repr, short_hash
from sqlite_cells.runtime._boundary import (
    StorePathError,
    describe,
    locale_decoded,
    path_text,
    surrogate_at,
)

__all__ = [
    "DEFAULT_STORE",
    "LONGEST_SQLITE_PATH",
    "STORE_ENV",
    "check_cwd",
    "home_expanded",
    "resolve_store",
    "shown_path",
    "space_file_name",
]

STORE_ENV = "SQLITE_CELLS_STORE"
DEFAULT_STORE = ".sqlite-cells"

# The longest path of a file SQLite opens (in UTF-8 bytes): its unix VFS takes names of at most
# 512 bytes, and the pager refuses a database whose path leaves no room for "-journal" after it
# (pager.c, sqlite3PagerOpen), with a bare "unable to open database file".
LONGEST_SQLITE_PATH = 512 - len("-journal")
# The longest name of a file the runtime makes in a store (space-<hash>.sqlite; a database's
# cell-<hash>.sqlite is one byte shorter), and the longest store path that leaves room for it.
_LONGEST_NAME = len("space-") + len(short_hash("")) + len(".sqlite")
_LONGEST_STORE = LONGEST_SQLITE_PATH - len("/") - _LONGEST_NAME


def resolve_store(store: str | os.PathLike[str] | None) -> Path:
    """The store directory: ``store`` if given, else ``$SQLITE_CELLS_STORE``, else
    ``./.sqlite-cells/``. Created if missing; always returned resolved (absolute, no links).

    Raises ``StorePathError`` (a ``SqliteCellsError`` and ``ValueError``) for an empty path, a
    path that is a file, a path that is not valid Unicode text, or a directory that cannot be
    created."""
    if store is None:
        store = os.environ.get(STORE_ENV) or DEFAULT_STORE
    text = path_text(store)
    if not text:
        raise StorePathError(
            f"a store is a directory path, not {brief_repr(store)}: pass a path (a str, or an "
            f"os.PathLike whose __fspath__ returns a str), or None for the default "
            f"(${STORE_ENV} or ./{DEFAULT_STORE})"
        )
    _check_text(text)
    if "\x00" in text:
        raise StorePathError(
            f"the store path {text!r} holds a NUL character, which no file name may: give "
            "another path"
        )
    path = home_expanded(text)
    check_cwd(path)
    try:
        if path.exists() and not path.is_dir():
            raise StorePathError(
                f"the store {path} is a file, not a directory: give the directory that holds "
                "the space-*.sqlite files (or a path where one may be created)"
            )
        if path.is_symlink() and not path.exists():
            _refuse_a_loop(path)
            raise StorePathError(
                f"the store {shown_path(path)} is a symbolic link to "
                f"{shown_path(os.readlink(path))}, which does not exist: make that directory "
                "(the link's target is not made for it), or give another path"
            )
        # Its length is the resolved path's, the one the runtime opens files under ("a/../"
        # and links may make the given one longer, or shorter), judged before the directory
        # is made: nothing left behind. (What is missing yet is taken as written.)
        resolved = path.resolve()
        _check_length(resolved)
        path.mkdir(parents=True, exist_ok=True)
    except StorePathError:  # also an OSError: said once, not wrapped in itself
        raise
    except (OSError, RuntimeError) as exc:  # a name too long, no permission, a link loop
        if isinstance(exc, RuntimeError) or exc.errno == errno.ELOOP:
            # A loop of links on the way to the store (``resolve`` says so as a RuntimeError).
            raise StorePathError(
                f"the store {shown_path(path)} cannot be reached: a symbolic link on its path "
                "leads back to itself through links: point that link at a directory, or give "
                "another path"
            ) from exc
        raise StorePathError(describe(exc, f"the store {shown_path(path)}")) from exc
    _check_text(str(resolved))  # a link may lead to a name that is not valid text
    if not os.access(resolved, os.R_OK | os.X_OK):
        raise StorePathError(
            f"the store {shown_path(resolved)} cannot be read by this user (the directory lacks "
            "read or search permission for it): give it read and search permission "
            "(chmod u+rx), or use another store"
        )
    return resolved


def check_cwd(path: Path) -> None:
    """A relative store path is taken from the current directory: one that was deleted (or
    cannot be read) is said as that, not as a store path that does not exist (a missing store
    is made)."""
    if path.is_absolute():
        return
    try:
        os.getcwd()
    except OSError as exc:
        raise StorePathError(
            f"the store path {shown_path(path)} is relative, but the current directory "
            f"cannot be found ({exc.strerror}: it was deleted or moved): change to a directory "
            "that exists, or give the store as an absolute path"
        ) from exc


def _check_length(path: Path) -> None:
    """A store whose files' paths would be longer than SQLite opens is refused by its length:
    SQLite's own error, at the first commit, says only that it cannot open the file."""
    size = len(os.fsencode(path))
    if size > _LONGEST_STORE:
        raise StorePathError(
            f"the store path {shown_path(path)} is {size:,} bytes long, and SQLite opens no "
            f"file whose path is over {LONGEST_SQLITE_PATH} bytes: the store's files need a "
            f"store path of at most {_LONGEST_STORE} bytes; give a shorter one"
        )


def _refuse_a_loop(path: Path) -> None:
    """A link that leads, through links, back to itself (``exists()`` says False for it, as
    for one whose target is missing) is said as what it is: its target cannot be made."""
    try:
        os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise StorePathError(
                f"the store {shown_path(path)} is a symbolic link that leads back to itself "
                f"through links ({exc.strerror}): point it at a directory, or give another "
                "path"
            ) from exc


def home_expanded(text: str) -> Path:
    """``text`` as a path, a leading ``~`` or ``~user`` replaced by that home directory (as a
    shell does); ``StorePathError`` when the system knows no such home directory (pathlib's own
    ``RuntimeError`` says nothing of the path)."""
    try:
        return Path(text).expanduser()
    except RuntimeError:
        user = text[1:].split("/", 1)[0]
        whose = f"of a user named {user!r}" if user else "of this user ($HOME is not set)"
        raise StorePathError(
            f"the store path {text!r} starts with ~, but the system knows no home directory "
            f"{whose}: give the path in full, or a user that exists"
        ) from None


def shown_path(path: str | os.PathLike[str]) -> str:
    """``path`` for a message: a very long one (the system refuses such paths) cut to its
    start, with its length."""
    text = os.fspath(path)
    return text if len(text) <= 200 else f"{text[:200]}… ({len(text):,} characters)"


def _check_text(path: str | bytes) -> None:
    """SQLite opens files by their UTF-8 names: a path holding a lone surrogate (an undecodable
    byte of the file system, or a broken string) can name no store."""
    position = surrogate_at(path) if isinstance(path, str) else None
    if position is not None and isinstance(path, str):
        raise StorePathError(
            locale_decoded("the store path", path)
            or f"the store path {path!r} is not valid Unicode text (a lone surrogate at position "
            f"{position}): SQLite opens files by their UTF-8 names; rename the directory or give "
            "another store"
        )


# The names of a store's space files (see space_file_name), as a glob pattern.
SPACE_FILES = "space-*.sqlite"


def space_file_name(space_id: str) -> str:
    return f"space-{short_hash(space_id)}.sqlite"
