"""Rendering for notebooks and terminals: query states as HTML or text tables.

``QueryState._repr_html_`` and ``Query.display`` delegate here, so Jupyter shows a query's rows as
a table and ``q.display()`` keeps one output up to date after each commit. IPython is imported
only when ``display_query`` is called: it is not a dependency of the runtime.

A linked cell in a row renders as its committed value, then which cell it is
(``{'name': 'Alice'} (<Cell of:… in 'demo'>)``): reading a cell never creates a file (R7), and a
cell that cannot be read renders as its repr alone.
"""

from __future__ import annotations

import dataclasses
import functools
import html
import importlib
import math
import re
import threading
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

import msgspec

from sqlite_cells.codec import SqliteCellsError
from sqlite_cells.runtime import showing_cells

if TYPE_CHECKING:
    from sqlite_cells.read._query import Query, QueryState

__all__ = [
    "LINK_MARK",
    "LinkText",
    "QueryDisplay",
    "display_query",
    "escape_character",
    "escaped",
    "format_value",
    "query_state_html",
    "row_values",
    "shown_as_is",
    "shown_row",
    "shown_value",
    "text_table",
]

_ABSENT = ""

# What a link shown as text starts with (``→ NAME VALUE``, §6).
LINK_MARK: Final = "→"


class LinkText(str):
    """The text a table shows for a link (``→ NAME VALUE``): printed as it is, where a stored
    text that starts with :data:`LINK_MARK` is quoted, so the two read apart (§6)."""

    __slots__ = ()


def row_values(row: Any) -> dict[str, Any]:
    """A row (dict, msgspec Struct, dataclass or anything else) as ``{column: value}``."""
    if isinstance(row, Mapping):
        return {str(k): v for k, v in row.items()}
    if isinstance(row, msgspec.Struct):
        return {name: getattr(row, name) for name in row.__struct_fields__}
    if dataclasses.is_dataclass(row) and not isinstance(row, type):
        return {f.name: getattr(row, f.name) for f in dataclasses.fields(row)}
    return {"value": row}


def _columns(rows: Sequence[dict[str, Any]]) -> list[str]:
    """Column names in first-seen order across all rows."""
    seen: dict[str, None] = {}
    for values in rows:
        seen.update(dict.fromkeys(values))
    return list(seen)


def format_value(value: Any) -> str:
    """One value as table text: NULL for None, a cell's repr (its id and its value, cut as a
    cell's repr is), text as is."""
    if value is None:
        return "NULL"
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    if isinstance(value, float) and not math.isfinite(value):  # as JSON output spells them
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    return str(value) if isinstance(value, int | float) else repr(value)


# How a text table spells a value that is not a text (format_value): a text spelled the same
# is quoted, as the text NULL is.
_SPELLED_LIKE_A_VALUE = re.compile(r"NULL|<[0-9]+ bytes>|Infinity|-Infinity|NaN")


def shown_value(value: Any) -> str:
    """One value as a notebook shows it (a query state's HTML table): as a text table shows it
    (:func:`_table_text`: SQL NULL as ``NULL``, a text that would read as something else — the
    text ``NULL``, one holding a control character — quoted, those characters escaped), cut
    after :data:`WIDEST_CELL` columns, so a value of megabytes does not bloat the page and the
    saved notebook."""
    return _table_text(value)[0]


def shown_row(row: Any) -> str:
    """A row's repr as a query state's repr shows it: cut as :func:`shown_value` cuts."""
    return _cut(repr(row), str, WIDEST_CELL)[0]


HTML_ROWS = 100  # rows a query's HTML table shows (its text shows 10, see QueryState.__repr__)
HTML_COLUMNS = 100  # columns it shows
# The characters of its rows, past which it shows no more rows (each value is cut already, but
# 100 columns of 100 rows of long text would still make a 40 MB page, sent at each update).
HTML_CHARACTERS = 1_000_000


def _status(state: QueryState[Any], rows: int | None) -> str:
    count = "no rows" if rows is None else f"{rows:,} row(s)"
    parts = [f"seq {state.seq}", count]
    if state.pending:
        parts.insert(0, "pending")
    return ", ".join(parts)


def query_state_html(state: QueryState[Any]) -> str:
    """``state`` as an HTML table: the columns as headers, one row per result row, then a
    caption with ``pending``, ``seq``, the row count and the error if there is one. A notebook
    shows it, and a whole large result would bloat the page and the saved notebook: it shows
    the first :data:`HTML_ROWS` rows and :data:`HTML_COLUMNS` columns, each value cut (see
    :func:`shown_value`), and no more rows once they hold :data:`HTML_CHARACTERS` characters;
    the caption says what was left out (the rows are in ``q.get().result``). Every text is
    escaped. A cell linked from many rows is looked at once (``showing_cells``)."""
    with showing_cells():
        return _state_html(state)


def _state_html(state: QueryState[Any]) -> str:
    result = state.result or []
    if not isinstance(result, list):  # a state a caller built: its result as one value
        result = [result]
    rows = [row_values(r) for r in result[:HTML_ROWS]]
    every = _columns(rows)
    columns = every[:HTML_COLUMNS]
    head = "".join(f"<th>{html.escape(_cut(c, escaped, WIDEST_CELL)[0])}</th>" for c in columns)
    body: list[str] = []
    size = len(head)
    for values in rows:
        cells = "".join(
            f"<td>{html.escape(shown_value(values[c]) if c in values else _ABSENT)}</td>"
            for c in columns
        )
        size += len(cells)
        if size > HTML_CHARACTERS and body:
            break
        body.append(f"<tr>{cells}</tr>")
    status = _status(state, None if state.result is None else len(result))
    if len(body) < len(result):
        status += f" (the first {len(body):,} shown)"
    if len(every) > len(columns):
        status += f", {len(every):,} columns (the first {len(columns):,} shown)"
    out = ['<table class="sqlite-cells-query">']
    out.append(f"<caption>QueryState: {html.escape(status)}</caption>")
    if columns:
        out.append(f"<thead><tr>{head}</tr></thead>")
    out.append("<tbody>")
    out.extend(body)
    out.append("</tbody></table>")
    if state.error is not None:
        error = f"{type(state.error).__name__}: {state.error}"
        out.append(f'<pre class="sqlite-cells-error">{html.escape(error)}</pre>')
    return "".join(out)


# The characters Python calls printable that a terminal shows as nothing (or as a blank that is
# no space): the Default_Ignorable_Code_Point characters of Unicode's DerivedCoreProperties
# outside the format (Cf) and unassigned categories, which ``str.isprintable`` refuses already —
# the combining grapheme joiner, the Hangul fillers, the Khmer inherent vowels, the Mongolian
# and other variation selectors. ``alice`` and ``alice\u034f`` would print alike.
_INVISIBLE: Final = re.compile(
    "[\u034f\u115f\u1160\u17b4\u17b5\u180b-\u180d\u180f\u3164\ufe00-\ufe0f\uffa0"
    "\U000e0100-\U000e01ef]"
)


def shown_as_is(text: str) -> bool:
    """Whether ``text`` prints on a terminal as what it is: no control or format character
    (ESC, newline, a bidi override U+202E or isolate U+2066–U+2069, a zero-width space or
    joiner), no separator but the space (U+00A0, U+2028), nothing unassigned, and none of
    the invisible characters above."""
    return text.isprintable() and _INVISIBLE.search(text) is None


def escape_character(c: str) -> str:
    """One character as Python writes it in a literal (``\\x1b``, ``\\u202e``), also one
    that ``repr`` writes as it is (the invisible ones above)."""
    spelled = repr(c)[1:-1]
    if spelled != c:
        return spelled
    return f"\\u{ord(c):04x}" if ord(c) <= 0xFFFF else f"\\U{ord(c):08x}"


def escaped(text: str) -> str:
    """``text`` with each character a terminal would act on or would not show
    (:func:`shown_as_is`: ESC, newline, tab, the other control and format characters, the
    bidi controls, the zero-width and other invisible characters) written as Python writes it
    in a literal (``\\x1b``, ``\\n``, ``\\u202e``)."""
    if shown_as_is(text):
        return text
    return "".join(c if shown_as_is(c) else escape_character(c) for c in text)


# A text table shows a cell's first WIDEST_CELL terminal columns: a value wider than a screen or
# two is unreadable in a table anyway, and every line is padded to its columns' widths, so one
# value of megabytes made every line that long.  Nor more than CELL_CHARACTERS characters of it:
# combining marks take no column, and megabytes of them stacked on one letter are one column wide.
WIDEST_CELL = 1_000
CELL_CHARACTERS_PER_COLUMN = 4


def _table_text(value: Any, widest: int = WIDEST_CELL) -> tuple[str, bool]:
    """One value as a text table's cell, and whether it was cut: SQL NULL as ``NULL``; a text
    as is, unless it would read as something else (the text ``NULL``, ``<3 bytes>``,
    ``Infinity`` or ``NaN``, as the table spells a value that is not a text, one starting with
    a quote, or with the link mark ``→`` that a :class:`LinkText` starts with, one holding a
    character a terminal would act on, anywhere in it): then in quotes, with each such
    character, quote and backslash escaped. So an unquoted cell is the text itself (or a
    link), a quoted one a literal. A cell wider than ``widest`` terminal columns is cut
    (:func:`_cut`)."""
    if not isinstance(value, str):
        return _cut(format_value(value), escaped, widest)
    if shown_as_is(value) and (
        type(value) is LinkText
        or (not _SPELLED_LIKE_A_VALUE.fullmatch(value) and not value.startswith(("'", LINK_MARK)))
    ):
        return _cut(value, str, widest)
    return _cut(value, _literal, widest, quote="'")


def _literal(text: str) -> str:
    """``text`` as it reads inside a quoted literal: quotes, backslashes and the characters a
    terminal would act on escaped."""
    return escaped(text.replace("\\", "\\\\").replace("'", "\\'"))


def _cut(
    text: str, shown: Callable[[str], str], widest: int, *, quote: str = ""
) -> tuple[str, bool]:
    """``text`` as a cell shows it (``shown`` of each of its pieces, between two ``quote``) and
    False when that fits in ``widest`` terminal columns and ``CELL_CHARACTERS_PER_COLUMN`` times
    as many characters; else as much of it as fits in both, then ``…[cut: N characters]``, N the
    length of ``text``, and True (a cut literal keeps its opening quote). Only as much of
    ``text`` is shown and measured as decides: pieces of it, each twice as long as the one
    before, until they are wider than ``widest``, longer than the characters allowed, or
    ``text`` ends, so a value of megabytes costs little more than what is shown of it."""
    most = CELL_CHARACTERS_PER_COLUMN * widest
    pieces, columns, characters = [quote], _width(quote), len(quote)
    at, size = 0, widest + 1
    while at < len(text):
        piece = shown(text[at : at + size])
        at, size = at + size, 2 * size
        width = _width(piece)
        if columns + width > widest or characters + len(piece) > most:
            piece = piece[: most - characters]
            pieces.append(piece[: _fitting(piece, widest - columns)])
            return f"{''.join(pieces)}…[cut: {len(text):,} characters]", True
        pieces.append(piece)
        columns += width
        characters += len(piece)
    if columns + _width(quote) > widest or characters + len(quote) > most:
        return f"{''.join(pieces)}…[cut: {len(text):,} characters]", True  # but the last quote
    pieces.append(quote)
    return "".join(pieces), False


def _fitting(text: str, columns: int) -> int:
    """How many of the first characters of ``text`` (printable) fit in ``columns`` terminal
    columns, the combining marks after the last of them included."""
    if text.isascii():
        return columns
    used = 0
    for at, char in enumerate(text):
        used += _char_width(char)
        if used > columns:
            return at
    return len(text)


def _width(text: str) -> int:
    """The columns ``text`` (printable, see ``escaped``) takes on a terminal: a wide character
    (CJK, most emoji: East Asian width W or F) two, a combining mark none, any other one."""
    if text.isascii():
        return len(text)
    return sum(map(_char_width, text))


@functools.cache
def _char_width(char: str) -> int:
    """The columns one character takes (see :func:`_width`); kept per character, as a table
    measures the same few again and again (each link's ``→``)."""
    if unicodedata.category(char) in ("Mn", "Me"):
        return 0
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


def _padded(text: str, width: int, own: int) -> str:
    """``text``, ``own`` terminal columns wide (:func:`_width`), with spaces after it up to
    ``width``."""
    return text + " " * (width - own)


def text_table(
    rows: Sequence[Any],
    *,
    columns: Sequence[str] | None = None,
    widest: int = WIDEST_CELL,
    cut_note: str = "",
) -> str:
    """Rows as a plain-text table with a header line (for the command line and examples).
    Every cell is one line of printable text: a stored value cannot move the cursor, retitle
    or clear the terminal, or break the table's rows (see ``_table_text``). A cell wider than
    ``widest`` terminal columns is cut there and says so, followed by ``cut_note`` (where to
    see it whole), so the table's size and time grow with its rows, not rows times the
    longest value."""
    with showing_cells():
        return _text_table(rows, columns, widest, cut_note)


def _text_table(
    rows: Sequence[Any], columns: Sequence[str] | None, widest: int, cut_note: str
) -> str:
    values = [row_values(r) for r in rows]
    keys = list(columns) if columns is not None else _columns(values)
    if not keys:
        return "(no columns)"
    note = f" {escaped(cut_note)}" if cut_note else ""

    def cell(value: Any) -> str:
        shown, cut = _table_text(value, widest)
        return shown + note if cut else shown

    names = [_cut(k, escaped, widest)[0] for k in keys]
    cells = [[cell(v.get(k)) if k in v else _ABSENT for k in keys] for v in values]
    # Each cell is measured once (a text that is not ASCII is measured character by character).
    own = [[_width(c) for c in line] for line in [names, *cells]]
    widths = [max(column) for column in zip(*own, strict=True)]
    lines = [
        "  ".join(_padded(c, w, o) for c, w, o in zip(line, widths, mine, strict=True)).rstrip()
        for line, mine in zip([names, *cells], own, strict=True)
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    if not cells:
        lines.append("(no rows)")
    return "\n".join(lines)


class QueryDisplay:
    """What ``q.display()`` returns: ``stop()`` ends the in-place updates (the output stays).
    Its repr says ``live`` while it updates its output, ``stopped`` once it never will again
    (stopped, its runtime closed, or never live: outside a notebook)."""

    def __init__(self) -> None:
        self._stop: Any = None

    def follow(self, subscription: Any) -> None:
        """Keep ``subscription`` (the updates) until :meth:`stop`, unless it ended already."""
        if self._stop is not _ENDED:
            self._stop = subscription

    def ended(self) -> None:
        """The updates ended by themselves (the query's runtime closed): nothing to stop."""
        self._stop = _ENDED

    def stop(self) -> None:
        stop, self._stop = self._stop, _ENDED
        if stop is not None and stop is not _ENDED:
            stop.dispose()

    def __repr__(self) -> str:
        live = self._stop is not None and self._stop is not _ENDED
        return f"<QueryDisplay {'live' if live else 'stopped'}>"

    def _ipython_display_(self) -> None:
        """Shown as a cell's result, it adds nothing: the live table is the output already
        (``repr`` still says ``<QueryDisplay live>`` or ``stopped`` where asked for)."""


_ENDED: Final = object()  # a QueryDisplay's updates ended: nothing to stop


def display_query(query: Query[Any]) -> QueryDisplay:
    """Show ``query`` in a notebook output that is replaced in place after each change.

    Uses ``IPython.display.display(state, display_id=True)`` and updates that display from the
    query's subscriber, which runs on the runtime's scheduler thread; ipykernel sends the update
    through its I/O thread, so that is safe. Where IPython is not installed it raises
    :class:`SqliteCellsError`; where it is installed but no notebook kernel runs (a plain
    script, terminal IPython), IPython prints the state once and the handle it returns updates
    nothing (``<QueryDisplay stopped>``). A live display stops when its runtime closes.

    A display belongs to the notebook cell that made it: when that cell runs again (its old
    outputs are gone), the display stops updating, so a cell run again and again keeps one live
    display, not one per run. Front ends that name their cells (JupyterLab, Notebook 7, VS Code
    send a ``cellId``) get this; elsewhere a display lives until ``stop()``.
    """
    try:
        ipython_display: Any = importlib.import_module("IPython.display")
    except ImportError as exc:
        raise SqliteCellsError(
            "q.display() needs IPython (run it in Jupyter); elsewhere use q.get() or "
            "q.observe().subscribe(...)"
        ) from exc
    first = query.get()
    if not _in_kernel():  # nothing to update in place: a terminal would print each update
        ipython_display.display(first)
        return QueryDisplay()
    handle = ipython_display.display(first, display_id=True)
    shown = [first]

    def update(state: Any) -> None:
        # The subscription hands over the current state first, on the scheduler thread: the
        # one shown already, maybe after this cell ended (ipykernel would send it as output of
        # whichever cell runs then). Only a new state updates the display.
        if state is not shown[0]:
            shown[0] = state
            handle.update(state)

    live = QueryDisplay()
    live.follow(query.observe().subscribe(update, on_completed=live.ended))
    _belong_to_running_cell(live)
    return live


def _in_kernel() -> bool:
    """Whether a notebook kernel runs this code (ipykernel's shell knows its kernel; a terminal
    IPython's has none), so that a front end shows a display and replaces it in place."""
    try:
        shell = importlib.import_module("IPython").get_ipython()
    except ImportError:  # pragma: no cover - IPython.display imported before
        return False
    return shell is not None and getattr(shell, "kernel", None) is not None


# _live_lock guards _live: the live displays made by each notebook cell (by its id), stopped
# when that cell runs again. Displays are made on the kernel's main thread; the lock keeps
# the registry sound if a display is made from another one.
_live_lock = threading.Lock()
_live: dict[str, list[QueryDisplay]] = {}


def _belong_to_running_cell(shown: QueryDisplay) -> None:
    """Register ``shown`` under the id of the notebook cell running now, if the front end named
    it, and make sure the shell stops a cell's displays before that cell runs again."""
    try:
        shell = importlib.import_module("IPython").get_ipython()
    except ImportError:  # pragma: no cover - IPython.display imported above
        return
    if shell is None:
        return
    # IPython keeps the running cell's ExecutionInfo (with the front end's cell id) on the
    # displayhook's current result while the cell runs.
    info = getattr(getattr(shell.displayhook, "exec_result", None), "info", None)
    cell_id = getattr(info, "cell_id", None)
    if not isinstance(cell_id, str) or not cell_id:
        return
    callbacks = shell.events.callbacks.get("pre_run_cell", [])
    if _stop_displays_of not in callbacks:
        shell.events.register("pre_run_cell", _stop_displays_of)
    with _live_lock:
        _live.setdefault(cell_id, []).append(shown)


def _stop_displays_of(info: Any) -> None:
    """IPython's ``pre_run_cell`` event: the cell ``info.cell_id`` runs again, so the displays
    it made before show nowhere any more; stop their updates."""
    cell_id = getattr(info, "cell_id", None)
    if not isinstance(cell_id, str):
        return
    with _live_lock:
        stale = _live.pop(cell_id, [])
    for shown in stale:
        shown.stop()
