"""Query parameters on the command line: ``-p NAME VALUE`` pairs checked against the parameters
the statement uses, so that a missing, extra or misnamed one is bad usage (exit 2) with a
message naming it and how to pass it, never a binding error of SQLite.

The statement's parameters come from the SQL front end's scan (``sqlite_cells.sql.scan_sql``),
which numbers them as SQLite does: ``?`` and ``?NNN`` are numbered parameters, ``:name``,
``@name`` and ``$name`` named ones.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from sqlite_cells.codec import (
    Link,
    LinkEncodeError,
    brief_repr,
    derive_id,
    encode_link,
    link_text_problem,
)
from sqlite_cells.sql import compared_links, scan_sql

__all__ = [
    "Parameters",
    "UsageError",
    "bindings",
    "check_text",
    "linked_bindings",
    "statement_parameters",
]


class UsageError(Exception):
    """Bad usage that argparse cannot see (exit 2)."""


@dataclass(slots=True)
class Parameters:
    """What a statement binds: the highest parameter number (every parameter has one, named
    ones included), whether it uses ``?`` at all, and its named parameters as written."""

    count: int = 0
    numbered: bool = False
    names: dict[str, str] = field(default_factory=dict)  # bare name -> as written (":n")
    written: dict[int, str] = field(default_factory=dict)  # number -> as first written
    # The numbers the statement binds: `?2` alone uses 2 and leaves 1 unused (NULL, as SQLite
    # leaves a parameter no one binds), so `-p 2 v` is all it needs, and `-p 1 v` is too many.
    used: set[int] = field(default_factory=set)


def statement_parameters(sql: str) -> Parameters:
    """The parameters of ``sql`` as the SQL front end numbers them (SQLite's own numbering:
    string literals, quoted names and comments hold none)."""
    statement = scan_sql(sql)
    found = Parameters(count=statement.param_count)
    for index, slot in statement.params:
        found.used.add(slot)
        written = statement.tokens[index][1]
        found.written.setdefault(slot, written)
        if written.startswith("?"):
            found.numbered = True
        else:
            found.names.setdefault(written[1:], written)
    return found


def check_text(value: str, what: str) -> str:
    """``value`` as given on the command line, refused when it is not valid UTF-8 (Python keeps
    such bytes as lone surrogates, which no SQLite text can hold)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        shown = value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        raise UsageError(
            f"{what} {shown!r} is not valid UTF-8: pass text in UTF-8 (check the terminal's "
            "or the shell's encoding)"
        ) from None
    return value


_LISTED = 8  # how many items of a list a message names before "and N more"
_PLAIN_NAME = re.compile(r"[:@$]?[A-Za-z0-9_]{1,64}")


def _numbered(name: str) -> bool:
    """``-p 2 v``: a parameter given by number (ASCII digits: ``str.isdigit`` also takes ``²``,
    which ``int`` refuses)."""
    return name.isascii() and name.isdigit()


def _name(name: str) -> str:
    """A parameter name as a message shows it: as typed when plain, else quoted and cut (a name
    holding a newline or 20,000 characters keeps the message one short line)."""
    return name if _PLAIN_NAME.fullmatch(name) else brief_repr(name)


def _listed(items: list[str]) -> str:
    """``items`` joined for a message, the first ``_LISTED`` of them and how many more: an
    error about 8,000 ``-p`` pairs stays one readable line."""
    shown = ", ".join(items[:_LISTED])
    more = len(items) - _LISTED
    return f"{shown} and {more} more" if more > 0 else shown


def bindings(sql: str, pairs: list[list[str]]) -> tuple[Any, ...] | dict[str, Any]:
    """The ``-p NAME VALUE`` pairs as SQLite bindings for ``sql``: numbers (``-p 1 v`` for the
    first ``?``) make a tuple, names (``-p n v`` or ``-p :n v`` for ``:n``) a dict; values are
    text, as in sqlite-utils and Datasette. Raises :class:`UsageError` naming the parameter
    when one the statement uses is not given, one given is not used, or one is given twice."""
    for name, value in pairs:
        check_text(name, "the parameter name")
        check_text(value, f"the value of parameter {_name(name)}")
    seen: set[str] = set()
    for name, _value in pairs:
        key = str(int(name)) if _numbered(name) else name.lstrip(":@$")
        if key in seen:
            raise UsageError(f"-p {_name(name)} is given twice: give each parameter once")
        seen.add(key)
    uses = statement_parameters(sql)
    by_number = [(name, value) for name, value in pairs if _numbered(name)]
    if by_number and len(by_number) != len(pairs):
        raise UsageError("give parameters either all by number (-p 1 v) or all by name (-p n v)")
    if uses.count == 0:
        if pairs:
            shown = _listed([f"-p {_name(name)}" for name, _ in pairs])
            told = "was given: drop it" if len(pairs) == 1 else "were given: drop them"
            raise UsageError(f"the statement has no parameters, but {shown} {told}")
        return ()
    if uses.numbered or by_number:
        if uses.used != set(range(1, uses.count + 1)):
            how = _listed([f"-p {n} VALUE" for n in sorted(uses.used)])
        elif uses.count == 1:
            how = "-p 1 VALUE"
        else:
            how = f"-p 1 VALUE for the first … -p {uses.count} VALUE for the last"
        if pairs and not by_number:
            raise UsageError(
                f"the statement has numbered parameters (?): give them by number, {how}"
            )
        numbered = {int(name): value for name, value in by_number}
        missing = sorted(n for n in uses.used if n not in numbered)
        extra = sorted(n for n in numbered if n not in uses.used)
        if extra:
            raise UsageError(
                f"-p {extra[0]}: the statement has no parameter {extra[0]} "
                f"({len(uses.used)} in all: {how})"
            )
        if missing:
            written = uses.written.get(missing[0], "?")
            raise UsageError(
                f"parameter {missing[0]} of the statement "
                f"({'a ?' if written == '?' else written}) has no value: pass it with "
                f"-p {missing[0]} VALUE ({len(uses.used)} in all: {how})"
            )
        return tuple(numbered.get(n) for n in range(1, uses.count + 1))
    given = {name.lstrip(":@$"): value for name, value in pairs}
    written = _listed([_name(name) for name in uses.names.values()])
    extra_names = [name for name in given if name not in uses.names]
    if extra_names:
        unknown = extra_names[0]
        raise UsageError(
            f"-p {_name(unknown)}: the statement has no parameter {_name(':' + unknown)} "
            f"(it uses {written})"
        )
    missing_names = [name for name in uses.names if name not in given]
    if missing_names:
        first = missing_names[0]
        raise UsageError(
            f"the statement uses {_name(uses.names[first])} but no value was given: pass it "
            f"with -p {_name(first)} VALUE"
        )
    return given


def linked_bindings(
    sql: str, params: tuple[Any, ...] | dict[str, Any], space_id: str
) -> tuple[Any, ...] | dict[str, Any]:
    """``params`` (from :func:`bindings`) with each value the statement compares (``=``, ``IS``,
    ``IN``) with a ``*_cf_link`` column made the link it names: the command shows a link as the
    cell it names (its name, or its id with ``--json``), never as the stored text, so a value
    given as a cell's id (``of:…``) is taken as that cell of space ``space_id`` and bound as
    its link's text (R30); a link's text as stored is bound as it is. Other text can match no
    row (the column holds only links or NULL, the reason the library refuses such a cell
    parameter: ``compared_links``) and raises :class:`UsageError` saying what to give."""
    compared = compared_links(sql)
    if not compared:
        return params
    if isinstance(params, dict):
        named = dict(params)
        for name, value in params.items():
            column = compared.get(name)
            if column is not None:
                named[name] = _link_text(value, name, column, space_id)
        return named
    return tuple(
        _link_text(value, str(number), compared[number], space_id) if number in compared else value
        for number, value in enumerate(params, start=1)
    )


def _link_text(value: Any, name: str, column: str, space_id: str) -> Any:
    if not isinstance(value, str) or not link_text_problem(value.encode()):
        return value  # a link's text as stored (or no text: nothing to read as a cell)
    if value.startswith("of:"):
        try:
            return encode_link(Link(value, space_id, "space")).decode()
        except LinkEncodeError:
            pass  # (said below: not a cell's id)
    named = derive_id("cell", space_id, value)
    raise UsageError(
        f"-p {_name(name)} {brief_repr(value)}: the statement compares it with the link column "
        f"{column}, which holds only links (or NULL), so this text would match no row: give "
        f"the id of the linked cell (of:…, as `sqlite-cells cells` lists it), taken as a cell "
        f"of space {space_id!r} (a top-level cell named {brief_repr(value)} there has the id "
        f"{named}), or a link's text as stored"
    )
