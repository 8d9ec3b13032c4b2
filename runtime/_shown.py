"""How a cell's value is shown (its repr, a notebook's table): cut while it is built, decoded at
most once per rendering, and not decoded at all past a size.

A query state's table may show the same linked cell on every row, and ``q.display()`` renders it
again after each commit on the scheduler thread: showing a cell must cost about what is shown
(its first ``SHOWN_CHARACTERS`` characters), not its value's size times the rows.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Final

__all__ = [
    "SHOWN_CHARACTERS",
    "SHOWN_DECODED",
    "cut_repr",
    "large_value",
    "short",
    "showing",
    "showing_cells",
    "shown_once",
]

SHOWN_CHARACTERS: Final = 200  # of a cell's value in its repr
# A stored value longer than this (in bytes of JSON) is not decoded to be shown: its size and
# the beginning of its JSON text are (decoding 64 KiB takes about half a millisecond).
SHOWN_DECODED: Final = 64 * 1024


class _Showing(threading.local):
    nested = False  # a cell's value is being shown on this thread (its cells show no value)
    # What each cell showed during the rendering running on this thread (see showing_cells).
    shown: dict[tuple[int, tuple[Any, ...]], str] | None = None


showing = _Showing()


@contextmanager
def showing_cells() -> Iterator[None]:
    """For the block's duration, on this thread, each cell's value is looked at once: a cell
    shown again (the same cell linked from many rows of a table) shows the same text. Nested
    blocks share the outer block's memory."""
    if showing.shown is not None:
        yield
        return
    showing.shown = {}
    try:
        yield
    finally:
        showing.shown = None


def shown_once(owner: object, key: tuple[Any, ...], show: Callable[[], str]) -> str:
    """``show()``, or what it gave for ``owner`` and ``key`` earlier in the rendering running on
    this thread (see :func:`showing_cells`)."""
    memory = showing.shown
    if memory is None or showing.nested:
        return show()
    at = (id(owner), key)  # (the owner is alive while the rendering runs: the id is its own)
    text = memory.get(at)
    if text is None:
        text = memory[at] = show()
    return text


def cut_repr(value: Any, limit: int = SHOWN_CHARACTERS) -> str:
    """``repr(value)`` (a value decoded from JSON: dicts, lists, text, numbers, cells) cut to
    ``limit`` characters, the last one ``…``; built piece by piece and stopped once past
    ``limit``, so a value of megabytes costs what is shown of it."""
    pieces: list[str] = []
    size = 0
    for piece in _pieces(value, limit):
        pieces.append(piece)
        size += len(piece)
        if size > limit:
            break
    return short("".join(pieces), limit)


def short(text: str, limit: int = SHOWN_CHARACTERS) -> str:
    """``text`` cut to ``limit`` characters, the last one ``…``."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def large_value(data: bytes, *, whole: bool) -> str:
    """A stored value too large to decode for a look (over ``SHOWN_DECODED`` bytes): its size,
    and the beginning of its JSON text when the cell shown is the ``whole`` value (one at a
    path is somewhere inside it)."""
    if not whole:
        return f"<inside {len(data):,} bytes of JSON: get() reads it>"
    text = bytes(data[: 4 * SHOWN_CHARACTERS]).decode("utf-8", "ignore")
    if not text.isprintable():  # (JSON escapes control characters, but not format ones)
        text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return short(f"<{len(data):,} bytes of JSON> {text}")


def _pieces(value: Any, limit: int) -> Iterator[str]:
    kind = type(value)
    if kind is str:
        yield repr(value) if len(value) <= limit else repr(value[: limit + 1])
    elif kind is list:
        yield "["
        for index, item in enumerate(value):
            if index:
                yield ", "
            yield from _pieces(item, limit)
        yield "]"
    elif kind is dict:
        yield "{"
        for index, (key, item) in enumerate(value.items()):
            yield ", " if index else ""
            yield from _pieces(key, limit)
            yield ": "
            yield from _pieces(item, limit)
        yield "}"
    else:  # a number, True, False, None or a cell (shown as what it names)
        yield repr(value)
