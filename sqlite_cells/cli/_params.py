"""Query parameters on the command line: ``-p NAME VALUE`` pairs checked against the parameters
the statement uses, so that a missing, extra or misnamed one is bad usage (exit 2) with a
message naming it and how to pass it, never a binding error of SQLite.

The statement's parameters come from the SQL front end's scan (``sqlite_cells.sql.scan_sql``),
which numbers them as SQLite does: ``?`` and ``?NNN`` are numbered parameters, ``:name``,
``@name`` and ``$name`` named ones.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import msgspec

from sqlite_cells.codec import (
    Link,
    LinkEncodeError,
    brief_repr,
    derive_id,
    encode_link,
    is_derived_id,
    link_text_problem,
)
from sqlite_cells.sql import compared_links, map_params, scan_sql

if TYPE_CHECKING:
    from sqlite_cells.cli._names import Namer

__all__ = [
    "LinkedBindings",
    "Parameters",
    "UsageError",
    "bindings",
    "check_linked",
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


def _kept_bytes(value: str) -> bool:
    """True when every surrogate in ``value`` is one ``surrogateescape`` made of a byte."""
    return all(not "\ud800" <= c <= "\udfff" or "\udc80" <= c <= "\udcff" for c in value)


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
    """``value`` as given on the command line, as the UTF-8 text it is: Python decodes the
    arguments with the locale's encoding, so under a C locale without UTF-8 mode (``LC_ALL=C
    PYTHONUTF8=0``) every byte of ``café`` beyond ASCII is kept as a lone surrogate; those bytes
    are read again as UTF-8. Refused when they are not valid UTF-8 (no SQLite text can hold
    them)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        # The bytes as given (``surrogateescape`` gives each kept byte back), read as UTF-8; a
        # surrogate no byte gives (``\ud800``, from a caller of ``main``) is refused.
        kept = _kept_bytes(value)
        given = value.encode("utf-8", "surrogateescape" if kept else "backslashreplace")
        if kept:
            try:
                return given.decode("utf-8")
            except UnicodeDecodeError:
                pass
        shown = given.decode("utf-8", "backslashreplace")
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


def _spelled_apart(given: str, names: dict[str, str]) -> str:
    """What to add to the refusal of ``-p given`` when the statement has that parameter in
    another Unicode form (``'e\\u0301'`` for ``:é``): SQLite compares parameter names as
    written, and the two look alike in a message."""
    folded = unicodedata.normalize("NFKC", given)
    for name, written in names.items():
        if unicodedata.normalize("NFKC", name) == folded:
            return (
                f"; {given!a} is the statement's {written!a} written with other Unicode code "
                "points, and SQLite compares names as written: give it as the statement spells it"
            )
    return ""


def _listed(items: list[str]) -> str:
    """``items`` joined for a message, the first ``_LISTED`` of them and how many more: an
    error about 8,000 ``-p`` pairs stays one readable line."""
    shown = ", ".join(items[:_LISTED])
    more = len(items) - _LISTED
    return f"{shown} and {more} more" if more > 0 else shown


def bindings(sql: str, pairs: list[list[str]]) -> tuple[Any, ...] | dict[str, Any]:
    """The ``-p NAME VALUE`` pairs as SQLite bindings for ``sql``: numbers (``-p 1 v`` for the
    first ``?``) make a tuple, names (``-p n v`` or ``-p :n v`` for ``:n``) a dict — names also
    where a ``?NNN`` uses a named parameter's number (``:a … ?1``); values are text, as in
    sqlite-utils and Datasette. Raises :class:`UsageError` naming the parameter
    when one the statement uses is not given, one given is not used, or one is given twice."""
    pairs = [
        [
            check_text(name, "the parameter name"),
            check_text(value, f"the value of parameter {_name(name)}"),
        ]
        for name, value in pairs
    ]
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
    # Every number with a name (``:a`` and ``?1`` naming its number): bound by name, as
    # ``db.read`` binds such a statement from a mapping; by number too, as before.
    if (uses.numbered and not map_params(sql).is_all_named) or by_number:
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
            f"(it uses {written}){_spelled_apart(unknown, uses.names)}"
        )
    missing_names = [name for name in uses.names if name not in given]
    if missing_names:
        first = missing_names[0]
        raise UsageError(
            f"the statement uses {_name(uses.names[first])} but no value was given: pass it "
            f"with -p {_name(first)} VALUE"
        )
    return given


@dataclass(frozen=True, slots=True)
class LinkedBindings:
    """What :func:`linked_bindings` made of a statement's parameters: the bindings, what is
    wrong with the first value that cannot be a link (said once the read has run: its own
    errors come first), and the cell ids taken as cells of SPACE (checked against the store
    by :func:`check_linked`)."""

    params: tuple[Any, ...] | dict[str, Any]
    refused: str | None = None
    ids: tuple[tuple[str, str], ...] = ()  # (parameter as given, the cell id it names)


def linked_bindings(
    sql: str, params: tuple[Any, ...] | dict[str, Any], space_id: str
) -> LinkedBindings:
    """``params`` (from :func:`bindings`) with each value the statement compares (``=``, ``IS``,
    ``IN``) only with ``*_cf_link`` columns made the link it names: the command shows a link as
    the cell it names (its name, or ``{"cell": id, "space": …}`` with ``--json``), never as the
    stored text, so a value given as a cell's id (``of:…``) is taken as that cell of space
    ``space_id``, a value given as ``query --json`` shows a link (a JSON object with the
    cell's id and its space) as that cell, and each is bound as its link's text (R30); a link's
    text as stored is bound as it is. Other text can match no row (the column holds only links
    or NULL, the reason the library refuses such a cell parameter: ``compared_links``): it is
    bound as it is, and :attr:`LinkedBindings.refused` says what to give instead. A parameter
    also used elsewhere (``author_cf_link = ?1 OR body = ?1``) is bound as it is, as
    ``db.read`` binds it."""
    mixed = map_params(sql).mixed
    compared = {key: column for key, column in compared_links(sql).items() if key not in mixed}
    if not compared:
        return LinkedBindings(params)
    refused: list[str] = []
    ids: list[tuple[str, str]] = []

    def bound(value: Any, name: str, column: str) -> Any:
        text, cell_id, problem = _link_text(value, name, column, space_id)
        if problem is not None:
            refused.append(problem)
        if cell_id is not None:
            ids.append((name, cell_id))
        return text

    made: tuple[Any, ...] | dict[str, Any]
    if isinstance(params, dict):
        made = {
            name: bound(value, name, compared[name]) if name in compared else value
            for name, value in params.items()
        }
    else:
        made = tuple(
            bound(value, str(number), compared[number]) if number in compared else value
            for number, value in enumerate(params, start=1)
        )
    return LinkedBindings(made, refused[0] if refused else None, tuple(ids))


# The keys of a link as `query --json` shows it (``Namer.as_json``): the cell and its space
# say which cell, the path where in its value; its name and value only describe it.
_SHOWN_LINK: Final = frozenset({"cell", "space", "name", "path", "value"})
_ID_FORM: Final = "'of:' and 52 characters of a-z and 2-7"


def _link_text(
    value: Any, name: str, column: str, space_id: str
) -> tuple[Any, str | None, str | None]:
    """``value`` bound for the link column ``column``: (the bound value, the id of a cell of
    space ``space_id`` it names when given as an id, what is wrong with it)."""
    if not isinstance(value, str) or not link_text_problem(value.encode()):
        return value, None, None  # a link's text as stored (or no text: nothing to read)
    if value.startswith("of:"):
        if is_derived_id(value):
            return encode_link(Link(value, space_id, "space")).decode(), value, None
        return (
            value,
            None,
            _refusal(value, name, column, space_id, f"it is no cell's id ({_ID_FORM}), and "),
        )
    if value.startswith("{"):
        link = _shown_link(value)
        if link is not None:
            return encode_link(link).decode(), None, None
        return (
            value,
            None,
            _refusal(
                value,
                name,
                column,
                space_id,
                "it is no link as `query --json` shows one (a JSON object with a cell's id, "
                f'{_ID_FORM}, as "cell" and its space as "space"), and ',
            ),
        )
    return value, None, _refusal(value, name, column, space_id, "")


def _shown_link(text: str) -> Link | None:
    """The link ``text`` gives as `query --json` shows one (a JSON object with the linked
    cell's id and its space, and the path when not empty), or None."""
    try:
        shown = msgspec.json.decode(text)
    except msgspec.DecodeError:
        return None
    if not isinstance(shown, dict) or not {"cell", "space"} <= shown.keys() <= _SHOWN_LINK:
        return None
    cell, space, path = shown["cell"], shown["space"], shown.get("path", [])
    if not (isinstance(cell, str) and is_derived_id(cell) and isinstance(space, str)):
        return None
    if not isinstance(path, list):
        return None
    link = Link(cell, space, "space", tuple(path))
    try:
        encode_link(link)
    except LinkEncodeError:
        return None
    return link


def _refusal(value: str, name: str, column: str, space_id: str, why: str) -> str:
    named = (
        ""
        if value.startswith(("of:", "{"))
        else f" (a top-level cell named {brief_repr(value)} there has the id "
        f"{derive_id('cell', space_id, value)})"
    )
    return (
        f"-p {_name(name)} {brief_repr(value)}: {why}the statement compares it with the link "
        f"column {column}, which holds only links (or NULL), so this text would match no row: "
        f"give the id of the linked cell (of:…, as `sqlite-cells cells` lists it), taken as a "
        f"cell of space {space_id!r}{named}; a cell of another space as `query --json` shows "
        'its link ({"cell": "of:…", "space": "…"}); or a link\'s text as stored'
    )


def check_linked(linked: LinkedBindings, namer: Namer, space_id: str) -> None:
    """Refuse (:class:`UsageError`) what :func:`linked_bindings` found cannot be a link, and a
    cell id taken as a cell of space ``space_id`` that no cell of that space has but a cell of
    another space does: it would match no row, and the advice says how to give that cell. An
    id the store holds nowhere is a cell not written yet, which rows may link to all the same."""
    if linked.refused is not None:
        raise UsageError(linked.refused)
    for name, cell_id in linked.ids:
        if namer.holds(space_id, cell_id):
            continue
        elsewhere = sorted(s for s in namer.spaces() if s != space_id and namer.holds(s, cell_id))
        if elsewhere:
            shown = msgspec.json.encode({"cell": cell_id, "space": elsewhere[0]}).decode()
            raise UsageError(
                f"-p {_name(name)} {cell_id}: space {space_id!r} holds no cell of that id, a "
                f"cell of space {brief_repr(elsewhere[0])}: an id is taken as a cell of the "
                "SPACE queried, so it would match no row; give a cell of another space as "
                f"`query --json` shows its link: -p {_name(name)} {brief_repr(shown)}"
            )
