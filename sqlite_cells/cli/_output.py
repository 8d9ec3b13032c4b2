"""Output formats of the command line: a text table, JSON, CSV and newline-delimited JSON
(as sqlite-utils and Datasette print them), with links shown by what they name.

In JSON and NDJSON a BLOB is ``{"$base64": true, "encoded": "…"}`` (as sqlite-utils and
Datasette write it), never bare base64, which would read as a text.

A float that JSON cannot hold (an infinity, which SQLite computes for ``1e308*10``, or NaN) is
printed as the text ``Infinity``, ``-Infinity`` or ``NaN`` in every format: JSON has no such
numbers, and ``null`` would read as SQL NULL.
"""

from __future__ import annotations

import base64
import csv
import enum
import io
import math
import os
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Final, TextIO

import msgspec

from sqlite_cells.cli._names import Namer, link_in
from sqlite_cells.cli._status import output_failure
from sqlite_cells.codec import EncodingError, Link, SqliteCellsError, decode_value
from sqlite_cells.read import LINK_MARK, escaped, shown_as_is, text_table

__all__ = [
    "CheckedOutput",
    "Format",
    "OutputFailed",
    "csv_cell",
    "csv_line",
    "error_kind",
    "error_line",
    "finite",
    "on_terminal",
    "one_line",
    "print_json",
    "print_rows",
    "rows_for_json",
    "rows_for_text",
]


class Format(enum.Enum):
    TEXT = "text"
    JSON = "json"
    CSV = "csv"
    NDJSON = "ndjson"


def finite(value: Any) -> Any:
    """``value`` with each float JSON cannot hold replaced by its name (see the module)."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def one_line(value: object) -> str:
    """``value`` as text for a line of the text output, escaped as the text table writes its
    cells (``read.escaped``): a path or a file name the store holds cannot then break a line
    or move the cursor."""
    return escaped(str(value))


def error_line(message: str) -> str:
    """``message`` as the command's one line on standard error (``sqlite-cells: …``), escaped
    as text output is (:func:`one_line`): an error quotes stored text (a bad JSON path a column
    held) or an argument as it was given (a store path, a statement), which must not clear,
    retitle or move the terminal there either, nor — holding a newline — start a line that
    reads as another ``sqlite-cells:`` line."""
    return f"sqlite-cells: {one_line(message)}\n"


def error_kind(exc: BaseException) -> str:
    """The name an error line gives ``exc``'s kind: that of its class, or of the nearest class
    it derives from that the package names (``DatabaseError`` for a module's private one,
    which says nothing to a user and is no name to look up)."""
    return next(c.__name__ for c in type(exc).__mro__ if not c.__name__.startswith("_"))


class OutputFailed(SqliteCellsError):
    """Standard output could not be written (a full disk, an I/O error; a reader that went away
    is ``BrokenPipeError``, quiet): said as the output's failure, never as the store's disk
    failing (``_status.output_failure``). ``done``: what the command did all the same."""

    def __init__(self, cause: OSError, done: str | None = None) -> None:
        super().__init__(output_failure(cause, done))
        self.cause, self.done = cause, done

    def after(self, done: str) -> OutputFailed:
        """The same failure, saying that the command did ``done`` all the same."""
        return OutputFailed(self.cause, done)


class CheckedOutput:
    """Standard output as the commands write it: a write or flush the system refuses raises
    :class:`OutputFailed` (``BrokenPipeError`` stays as it is), so that no message blames the
    store for the output's disk."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    @property
    def encoding(self) -> str | None:
        return getattr(self._stream, "encoding", None)

    @property
    def errors(self) -> str | None:
        return getattr(self._stream, "errors", None)

    def fileno(self) -> int:
        return self._stream.fileno()

    def isatty(self) -> bool:
        return self._stream.isatty()

    def write(self, text: str) -> int:
        with _checked():
            return self._stream.write(text)

    def flush(self) -> None:
        with _checked():
            self._stream.flush()


@contextmanager
def _checked() -> Iterator[None]:
    try:
        yield
    except BrokenPipeError:
        raise
    except OSError as exc:
        raise OutputFailed(exc) from exc


def print_json(value: Any, out: TextIO) -> None:
    # msgspec writes bytes as base64 and keeps the key order of the rows.
    encoded = msgspec.json.encode(finite(value))
    write_whole(json_for(msgspec.json.format(encoded, indent=2).decode(), out) + "\n", out)


def write_whole(text: str, out: TextIO) -> None:
    """Write ``text`` to ``out`` whole, or raise ``BrokenPipeError``: written in one piece to a
    pipe whose reader goes away meanwhile, Python's buffered stream takes the part the pipe
    took in for the whole and says nothing (the status would be 0 although the output was cut
    short); written straight to the file descriptor, the rest is written until the system says
    the reader is gone."""
    try:
        fd = out.fileno()
    except (AttributeError, OSError, ValueError):  # not a file (io.UnsupportedOperation)
        out.write(text)
        return
    out.flush()
    errors = getattr(out, "errors", None) or "backslashreplace"
    data = memoryview(text.encode(getattr(out, "encoding", None) or "utf-8", errors))
    with _checked():
        while data:
            data = data[os.write(fd, data) :]


# msgspec escapes the C0 controls (ESC is ``\u001b``) but writes every other character raw: DEL
# and the C1 controls (U+0080–U+009F), which a terminal acts on (U+009B is a CSI, as ESC [ is),
# and the bidi controls and the zero-width and other invisible characters, which make a terminal
# show another text than the one written (U+202E prints what follows right to left). Outside
# JSON strings there is no character but ASCII.
_NOT_ASCII: Final = re.compile(r"[^\x00-\x7e]+")


def json_for(text: str, out: TextIO) -> str:
    """JSON ``text`` as ``out`` can hold it, with nothing a terminal acts on or does not show
    written raw: each character the text outputs escape (``read.shown_as_is``: DEL, the C1
    controls, the bidi and other format characters, the invisible ones), and on an output whose
    encoding is not UTF-8 (a C locale, ``PYTHONIOENCODING=ascii``) each character outside
    ASCII, as its JSON escape (``\\u202e``, ``\\u00eb``): the JSON reads back as the same
    text, so a program gets every value exact."""
    encoding = (getattr(out, "encoding", None) or "utf-8").lower().replace("_", "-")
    if encoding in ("utf-8", "utf8"):
        return _NOT_ASCII.sub(_unshown_escaped, text)
    return _NOT_ASCII.sub(_all_escaped, text)


def _unshown_escaped(match: re.Match[str]) -> str:
    run = match.group()
    if shown_as_is(run):
        return run
    return "".join(c if shown_as_is(c) else _json_escape(c) for c in run)


def _all_escaped(match: re.Match[str]) -> str:
    return "".join(map(_json_escape, match.group()))


def _json_escape(c: str) -> str:
    code = ord(c)
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    code -= 0x10000  # outside the BMP: a UTF-16 surrogate pair, as JSON spells it
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


# In the JSON text of every link (R30), also when that text is itself a string inside JSON
# text (escaped: \"link@1\").
_LINK_KEY: Final = "link@1"


def rows_for_text(rows: Sequence[dict[str, Any]], namer: Namer) -> list[dict[str, Any]]:
    """Rows with each stored link replaced by ``→ NAME VALUE``, and each link inside JSON text
    by ``→ NAME``."""
    return [
        {
            k: namer.text(link) if (link := link_in(v)) is not None else _named_inside(v, namer)
            for k, v in row.items()
        }
        for row in rows
    ]


def _named_inside(value: Any, namer: Namer, *, as_json: bool = False) -> Any:
    """JSON text that holds links (``json_group_array(json(a_cf_link))``) or their stored text
    as strings (``json_group_array(a_cf_link)``): the same JSON with each link replaced by
    what it names (§6: links are shown by what they name, not as raw
    JSON). In text output, where a link is the string ``→ NAME``, a string in JSON text that
    starts with that mark is written with it escaped (``Namer.shallow``). Any other value as it
    is."""
    if (
        not isinstance(value, str)
        or value[:1] not in ("[", "{")
        or (_LINK_KEY not in value and (as_json or LINK_MARK not in value))
    ):
        return value
    try:
        decoded = decode_value(value.encode())
    except (msgspec.DecodeError, EncodingError, UnicodeEncodeError):  # not JSON: text after all
        return value
    if isinstance(decoded, Link):  # the text of one link, which link_in refused (a key twice)
        return value
    named = namer.shallow(decoded, as_json=as_json, link_texts=True)
    if named == decoded:  # no link in it after all: the text as it was written
        return value
    return msgspec.json.encode(named).decode()


def rows_for_json(rows: Sequence[dict[str, Any]], namer: Namer) -> list[dict[str, Any]]:
    """Rows with each stored link replaced by an object naming the cell and its value, and
    each BLOB by ``{"$base64": true, "encoded": "…"}`` as sqlite-utils and Datasette write it
    (bare base64 would read as a text)."""
    return [{k: _json_value(v, namer) for k, v in row.items()} for row in rows]


def _json_value(value: Any, namer: Namer) -> Any:
    if isinstance(value, bytes):
        return {"$base64": True, "encoded": base64.b64encode(value).decode("ascii")}
    link = link_in(value)
    return namer.as_json(link) if link is not None else _named_inside(value, namer, as_json=True)


def csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if type(value) is str and value.startswith(LINK_MARK):
        # A stored text that would read as a link (``→ NAME VALUE``): as a quoted literal, as
        # the text table writes it.
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(value, bool):  # as JSON writes it, and as a cell's value shows in CSV
        return "true" if value else "false"
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    if isinstance(value, dict | list):
        return msgspec.json.encode(value).decode()
    return value


# What a text table says after a value it cut (``read.text_table`` cuts a cell wider than
# ``WIDEST_CELL`` terminal columns): the other formats print every value whole.
CUT_NOTE = "(--json, --csv or --ndjson print it whole)"


def print_rows(
    rows: Sequence[dict[str, Any]],
    fmt: Format,
    out: TextIO,
    *,
    json_rows: Sequence[dict[str, Any]] | None = None,
    columns: Sequence[str] | None = None,
) -> None:
    """Print ``rows`` (already made text-ready) in ``fmt``; ``json_rows`` are the same rows
    made JSON-ready, used by the JSON formats when given."""
    structured = json_rows if json_rows is not None else rows
    if fmt is Format.JSON:
        print_json(list(structured), out)
    elif fmt is Format.NDJSON:
        for row in structured:
            out.write(json_for(msgspec.json.encode(finite(row)).decode(), out) + "\n")
    elif fmt is Format.CSV:
        names = list(columns) if columns is not None else _columns(rows)
        line = csv_line(on_terminal=on_terminal(out))
        out.write(line(names))
        for row in rows:
            out.write(line([csv_cell(finite(row.get(name))) for name in names]))
    else:
        # One large write, as JSON's: whole, or BrokenPipeError when the reader goes away.
        # (The table spells an infinity itself, and quotes the text spelled so: no finite().)
        table = text_table(rows, columns=columns, cut_note=CUT_NOTE)
        write_whole(table + "\n", out)


def on_terminal(out: TextIO) -> bool:
    try:
        return out.isatty()
    except (AttributeError, OSError, ValueError):  # not a file, or a closed one
        return False


# The characters a terminal acts on or does not show that CSV has no escape for: all but the
# printable ones (:func:`read.shown_as_is`), tab and the line ends, which a CSV field holds
# quoted.
_NOT_PLAIN: Final = re.compile(r"[^\t\n\r\x20-\x7e]+")


def csv_line(*, on_terminal: bool = False) -> Callable[[Sequence[Any]], str]:
    """A function that writes one CSV record, ended by ``\\n``. The csv module quotes a field
    holding a character of its line terminator only: with ``\\n`` alone, a carriage return in
    a value went out bare, and every CSV reader ends the record there. Written with ``\\r\\n``,
    a field holding either is quoted; the record's own ``\\r\\n`` becomes ``\\n``.

    CSV has no escape: a value is written as it is, for the program that reads it. Written
    ``on_terminal``, each character a terminal would act on or would not show (ESC, BEL, the C1
    controls, the bidi controls, the zero-width and other invisible characters) is written as
    Python writes it in a literal (``\\x1b``, ``\\u202e``), so that no stored value clears,
    retitles or moves the terminal or shows as another text; a file or a pipe gets the values
    whole."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")

    def line(fields: Sequence[Any]) -> str:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow(fields)
        text = buffer.getvalue()[:-2] + "\n"
        return _NOT_PLAIN.sub(_escaped_run, text) if on_terminal else text

    return line


def _escaped_run(match: re.Match[str]) -> str:
    return escaped(match.group())


def _columns(rows: Sequence[dict[str, Any]]) -> list[str]:
    names: dict[str, None] = {}
    for row in rows:
        names.update(dict.fromkeys(row))
    return list(names)
