"""What SQLite said when it refused a user's statement, as an error message says it: SQLite's
own words, its result code's name, and what to do (Errors: what was wrong, where, what to do).
The caller's error adds where (the database and the statement)."""

from __future__ import annotations

import re
from typing import Final

import apsw

from sqlite_cells.runtime import out_of_files
from sqlite_cells.sql._names import JSON_CALL_PREFIX, JSON_CALLS
from sqlite_cells.sql._statement import scan_sql

__all__ = ["sqlite_refusal", "sqlite_words", "write_hint"]

# What to do, by apsw's class for SQLite's primary result code. A class not listed keeps
# SQLite's words alone: they name the cause, and no advice fits every case of it.
_ADVICE: dict[type[apsw.Error], str] = {
    apsw.SQLError: "correct the statement",
    apsw.ConstraintError: (
        "a row breaks a constraint of its table: change the values, or say what a conflict "
        "should do (INSERT OR IGNORE, INSERT OR REPLACE, ON CONFLICT … DO …)"
    ),
    apsw.MismatchError: (
        "a value does not fit where it goes (an INTEGER PRIMARY KEY takes integers only, a "
        "STRICT table its declared types, LIMIT and OFFSET integers): give a value of the type "
        "expected there"
    ),
    apsw.AuthError: (
        "a statement may use only the database's declared tables (not SQLite's, the runtime's "
        "or a virtual table's such as fts3tokenize) and its allowed functions; leave the others "
        "out of it"
    ),
    apsw.RangeError: "bind one value per placeholder of the statement",
    apsw.TooBigError: (
        "a value, or the statement's own text (a long literal or comment), is over SQLite's "
        "length limit: store or ask for less at once"
    ),
    apsw.NoMemError: (
        "this process had no memory left for the statement (its values, its rows, or the work "
        "it asks of SQLite): write or ask for less at once, free memory, or raise the "
        "process's memory limit"
    ),
    apsw.FullError: (
        "the disk holding the file (or SQLite's temporary files) is full: free space, then try "
        "again"
    ),
    apsw.IOError: (
        "the file system refused a read or a write (a full disk, a limit on the size of files, "
        "a failing disk): free space or check the disk, then try again; `sqlite-cells check` "
        "reports a file left damaged"
    ),
}


# SQLite's words when a generated column or CHECK constraint computes a function whose result
# can change (a date and time function given 'now'): the fault is in the table's declaration,
# not in the statement that made SQLite compute it.
_NON_DETERMINISTIC: Final = "non-deterministic use of"
_DECLARED_NOW: Final = (
    "the table's declaration is at fault, not the statement: a generated column or CHECK "
    "constraint of it calls a date and time function with 'now' (or with no time value), which "
    "SQLite refuses whenever it computes it; declare the table without that call (a new "
    "version= whose migrate builds the table anew) and compute the value in the statement "
    "that writes the row (INSERT … VALUES (…, datetime('now')))"
)


# SQLite's words when a JSON function is given text that is not JSON: a fault of the data it
# read, not of the statement, unless the statement gives that text itself.
_MALFORMED_JSON: Final = "malformed JSON"
_STORED_NOT_JSON: Final = (
    "a value stored in a column the statement reads is not JSON text, and a JSON function "
    "(or -> / ->>) was called on it: correct the stored value, or guard the call with "
    "json_valid (… WHERE json_valid(col), or CASE WHEN json_valid(col) THEN json_extract(col, "
    "…) END); if the text is a literal or a parameter of the statement instead, correct that"
)
_GIVEN_NOT_JSON: Final = (
    "a JSON function (or -> / ->>) was given text that is not JSON, a literal or a parameter "
    "of the statement (it reads no table): give it JSON text, or check it first with json_valid"
)


def sqlite_refusal(exc: apsw.Error, hint: str = "", *, sql: str | None = None) -> str:
    """``exc``'s words, its result code's name and what to do; ``hint`` (starting with ``": "``)
    is the caller's own precision, put right after SQLite's words. ``sql``, the statement
    refused, tells whether text a JSON function found malformed can be stored data."""
    code = apsw.mapping_result_codes.get(getattr(exc, "result", None) or -1, type(exc).__name__)
    words = str(exc)
    advice = (
        out_of_files(exc)
        or (_DECLARED_NOW if _NON_DETERMINISTIC in words else "")
        or (_not_json_advice(sql) if words.startswith(_MALFORMED_JSON) else "")
        or next((text for kind, text in _ADVICE.items() if isinstance(exc, kind)), "")
    )
    said = f"{sqlite_words(exc)}{hint} (SQLite's {code})"
    return f"{said}; {advice}" if advice else said


def _not_json_advice(sql: str | None) -> str:
    """What to do about text a JSON function found malformed: stored data, unless ``sql``
    reads no table (then the statement gave it the text)."""
    if sql is not None and not scan_sql(sql).tables():
        return _GIVEN_NOT_JSON
    return _STORED_NOT_JSON


# The runtime's functions computing a write's long JSON calls (``_cf_json_set`` …), named in
# SQLite's words about the call ("too many arguments on function _cf_json_set"): the user wrote
# the function's own name.
_RUNTIME_NAMES: Final = re.compile(
    re.escape(JSON_CALL_PREFIX) + "(" + "|".join(sorted(JSON_CALLS, key=len, reverse=True)) + r")\b"
)


def _as_written(words: str) -> str:
    return _RUNTIME_NAMES.sub(r"\1", words) if JSON_CALL_PREFIX in words else words


def sqlite_words(exc: apsw.Error) -> str:
    """SQLite's words of ``exc``, naming the functions a user statement called as it wrote them
    (an error's ``sqlite_error``)."""
    return _as_written(str(exc))


# SQLite built without SQLITE_ENABLE_UPDATE_DELETE_LIMIT (as apsw's is) reads an ORDER BY or a
# LIMIT after UPDATE or DELETE as a syntax error at that word.
_ORDER_OR_LIMIT: Final = re.compile(r'^near "(ORDER|LIMIT)": syntax error', re.IGNORECASE)


def write_hint(exc: apsw.Error, sql: str) -> str:
    """The caller's precision (for :func:`sqlite_refusal`) on a write SQLite refused: an
    ``UPDATE``/``DELETE`` with ``ORDER BY`` or ``LIMIT``, which this SQLite does not have, gets
    the form that does the same; ``""`` for anything else."""
    if not isinstance(exc, apsw.SQLError) or _ORDER_OR_LIMIT.search(str(exc)) is None:
        return ""
    if scan_sql(sql).verb not in ("UPDATE", "DELETE"):
        return ""
    return (
        ": this SQLite is built without ORDER BY and LIMIT on UPDATE and DELETE; choose the "
        "rows in a subquery instead (… WHERE rowid IN (SELECT rowid FROM <table> WHERE … "
        "ORDER BY … LIMIT n))"
    )
