"""Parameters of ``db.exec``: mapped to their target columns and encoded (R31).

A ``Cell`` bound to a ``*_cf_link`` column is stored as its link string; a ``Cell`` anywhere else,
or anything but a cell or ``None`` bound to a link column, is a :class:`LinkEncodeError`; a value
that is not ready is :class:`PendingValue`; a value SQLite cannot bind (another type, an integer
outside 64 bits, text with a lone surrogate, a NaN that SQLite would store as NULL) or rows of
the wrong shape are an
:class:`ExecArgumentError`. Every check runs at the call, before anything is recorded, so a bad
parameter never fails the commit of the rest of the transaction.
"""

from __future__ import annotations

import math
import threading
import unicodedata
from array import array
from collections.abc import Callable, Iterable, Mapping, Sequence
from itertools import compress, islice, repeat
from operator import is_
from pathlib import Path
from typing import Any, Final, TypeGuard

from sqlite_cells.codec import (
    ExecArgumentError,
    ExecError,
    LinkEncodeError,
    PendingValue,
    QueryArgumentError,
    SqliteCellsError,
    brief_repr,
    link_text_problem,
)
from sqlite_cells.runtime import LENGTH_LIMIT, PENDING, Cell, Reactive, surrogate_at
from sqlite_cells.sql._names import LINK_SUFFIX, is_link_column
from sqlite_cells.sql._params import ParamTargets, map_params
from sqlite_cells.sql._statement import scan_sql

__all__ = [
    "Bound",
    "bind_rows",
    "check_cell_value",
    "check_read_values",
    "compared_links",
    "is_pending",
    "parameter_rows",
]

Bound = tuple[Any, ...] | dict[str, Any]

_KEYS_SHOWN = 5  # keys a refusal lists of a mapping's that name no parameter
_KEY_CHARACTERS = 80  # of each key listed
_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1


class MayBePending:
    """The base of a value that may stand for one not ready yet (a live query's state): its
    ``pending`` says whether it is. Only such values and ``sc.PENDING`` are asked: a user's own
    object with a ``pending`` attribute (a record, a dict whose ``__getattr__`` reads its keys)
    is a value like any other, refused or bound as its type says."""

    __slots__ = ()
    pending: bool


def is_pending(value: Any) -> bool:
    """True for ``sc.PENDING`` and for a query state that has no result yet."""
    return value is PENDING or (isinstance(value, MayBePending) and value.pending is True)


# Sequences of characters or bytes: never a list of parameters (a ``bytearray`` would bind each
# of its bytes as an integer), each is one value (or refused as one).
# Text and bytes of any kind are one value, never a collection of values.
ONE_VALUE: Final = (str, bytes, bytearray, memoryview)


def is_params_list(params: object) -> TypeGuard[Sequence[Any]]:
    """Whether ``params`` is a list of positional parameters: a sequence, but not text or
    bytes of any kind."""
    return isinstance(params, Sequence) and not isinstance(params, ONE_VALUE)


def parameter_rows(rows: Any, *, sql: str, db_id: str) -> list[Any]:
    """``exec_many``'s rows as a list; anything but an iterable of rows is refused at the call.
    Rows taken from an iterator (a generator) are copied as they are taken: one that hands out
    the same list or dict each time, filled anew, gives each row's values as they were then
    (R36: as many ``exec`` calls), not the last row's for all."""
    if is_pending(rows):
        raise _not_ready("the value given as exec_many's rows", rows)
    if isinstance(rows, (*ONE_VALUE, Mapping)) or not isinstance(rows, Iterable):
        raise ExecArgumentError(
            db_id,
            sql,
            f"exec_many takes an iterable of parameter rows (lists, tuples or mappings), not "
            f"{type(rows).__name__}",
        )
    if type(rows) in _SEQUENCES:
        given = list(rows)
        if _PLAIN_PARAMS.issuperset(map(type, given)):
            return given  # (rows held in a list: none is filled anew by an iterator)
        rows = given
    names = [name for name, _number in scan_sql(sql).param_names]

    def fail(message: str) -> ExecArgumentError:
        return ExecArgumentError(db_id, sql, message)

    taken: list[Any] = []
    try:
        # The caller's iterable runs its own code (a generator parsing a file, an ``__iter__``
        # of its own): what it raises is the call's argument error, never a raw one (Errors).
        for row in rows:
            taken.append(_taken(row, names, fail))
    except SqliteCellsError:  # (the runtime's own, from a read the rows make: itself)
        raise
    except Exception as exc:
        raise fail(
            f"reading the rows given (a {type(rows).__name__}) raised {type(exc).__name__}: "
            f"{exc} {_rows_taken(len(taken))}; give a list of rows, or an iterable that ends "
            "without raising"
        ) from exc
    return taken


def _rows_taken(count: int) -> str:
    if count == 0:
        return "before its first row"
    return f"after {count} row{'s' if count > 1 else ''}"


def given_params(params: Any, *, sql: str, db_id: str, write: bool) -> Any:
    """A call's parameters as plain values: a mapping or sequence of the caller's own class is
    read once, here (see :func:`_taken`), so that what its own code raises is the call's
    argument error (:class:`ExecArgumentError` for a ``write``, else
    :class:`QueryArgumentError`), never a raw ``KeyError`` (Errors). Plain ones pass as they
    are."""
    if type(params) in _PLAIN_PARAMS or not isinstance(params, Mapping | Sequence):
        return params
    error = ExecArgumentError if write else QueryArgumentError
    names = [name for name, _number in scan_sql(sql).param_names]
    return _taken(params, names, lambda message: error(db_id, sql, message))


_PLAIN_PARAMS: Final = frozenset({dict, list, tuple, type(None)})


def _taken(row: Any, names: Sequence[str], fail: Callable[[str], Exception]) -> Any:
    """A copy of a row as it is now, when its iterator may fill it anew for the next row: a
    mapping as the values of the statement's parameter ``names`` it holds (looked up as binding
    looks them up, so a mapping of its own lookup keeps it), a list or any other sequence that
    is not a tuple as a list; other rows (tuples, text, None) as they are. What a container of
    the caller's own class raises while it is read is ``fail``'s error."""
    try:
        if isinstance(row, Mapping):
            return {name: row[name] for name in names if name in row}
        if is_params_list(row) and type(row) is not tuple:
            return list(row)
    except SqliteCellsError:  # (the runtime's own, from a read its lookup makes: itself)
        raise
    except Exception as exc:
        raise fail(
            f"reading the parameters given (a {type(row).__name__}) raised "
            f"{type(exc).__name__}: {exc}; give a plain list, tuple or dict"
        ) from exc
    return row


def bind_rows(
    targets: ParamTargets,
    rows: Sequence[Any],
    *,
    sql: str,
    db_id: str,
    many: bool = False,
    store: Path | None = None,
) -> list[Bound]:
    """Encode each parameter row (a sequence for positional parameters, a mapping for named ones)
    for ``sql`` whose parameters target the columns described by ``targets``. With ``many``
    (``exec_many``'s rows) a refusal names the row too. A ``Cell`` bound to a link column must be
    of the ``store`` the database is in (its link names a cell of its own store only)."""
    if targets.named or targets.mixed or any(_is_link(t) for t in targets.positional):
        return _bind_each(targets, rows, sql=sql, db_id=db_id, many=many, store=store)
    # No link column among the targets: rows of plain values need no per-value decision, only
    # the check that SQLite can bind them. One row (db.exec) is looked at value by value; many
    # rows (exec_many's hot path) column by column, in passes that run in C.
    if len(rows) == 1:
        row = rows[0]
        if type(row) in _SEQUENCES and len(row) == targets.count and _plain_values(row):
            return [tuple(row)]
    elif (
        _SEQUENCES.issuperset(map(type, rows))
        and set(map(len, rows)) <= {targets.count}
        and all(map(_plain_column, zip(*rows, strict=True)))
    ):
        return list(map(tuple, rows))
    return _bind_each(targets, rows, sql=sql, db_id=db_id, many=many, store=store)


def _bind_each(
    targets: ParamTargets,
    rows: Sequence[Any],
    *,
    sql: str,
    db_id: str,
    many: bool,
    store: Path | None,
) -> list[Bound]:
    if not many:
        return [_bind(targets, row, sql=sql, db_id=db_id, store=store) for row in rows]
    return [
        _bind(
            targets, row, sql=sql, db_id=db_id, row_name=f"row {i} (counting from 0)", store=store
        )
        for i, row in enumerate(rows)
    ]


_PLAIN = frozenset({type(None), int, float, str, bytes})
_SEQUENCES = frozenset({tuple, list})


def _plain_values(row: Sequence[Any]) -> bool:
    """True when every value of ``row`` is of a plain type and SQLite can bind it as it is."""
    for value in row:
        kind = type(value)
        if kind is int:
            if not _INT64_MIN <= value <= _INT64_MAX:
                return False
        elif kind is str:
            if (not value.isascii() and surrogate_at(value) is not None) or (
                len(value) > _TEXT_SURELY_FITS and _too_long(value)
            ):
                return False
        elif kind is bytes:
            if len(value) > LENGTH_LIMIT:
                return False
        elif kind is float:
            if value != value:  # NaN: refused (SQLite would store NULL)
                return False
        elif kind not in _PLAIN:
            return False
    return True


def _plain_column(column: tuple[Any, ...]) -> bool:
    """``_plain_values`` for one column of many rows, without a Python step per value."""
    kinds = set(map(type, column))
    if not _PLAIN.issuperset(kinds):
        return False
    if int in kinds:
        try:
            array("q", _of_kind(column, kinds, int))  # OverflowError: outside SQLite's 64 bits
        except OverflowError:
            return False
    if str in kinds:
        # Joining cannot pair two lone surrogates into a valid character: a str keeps them apart.
        joined = "".join(_of_kind(column, kinds, str))
        if not joined.isascii() and surrogate_at(joined) is not None:
            return False
        if len(joined) > _TEXT_SURELY_FITS and any(map(_too_long, _of_kind(column, kinds, str))):
            return False
    if float in kinds:
        # A NaN makes the sum NaN (so may inf + -inf: the value-by-value path then decides).
        total = sum(_of_kind(column, kinds, float))
        if total != total:
            return False
    if bytes in kinds:
        return max(map(len, _of_kind(column, kinds, bytes)), default=0) <= LENGTH_LIMIT
    return True


# SQLite's length limit counts UTF-8 bytes, at most 4 per character: text up to this many
# characters fits without counting.
_TEXT_SURELY_FITS = LENGTH_LIMIT // 4


def _too_long(text: str) -> bool:
    """True when ``text`` is over SQLite's length limit in UTF-8 (``text`` has no lone
    surrogate: it was checked first)."""
    if len(text) <= _TEXT_SURELY_FITS:
        return False
    return len(text) > LENGTH_LIMIT or (
        not text.isascii() and len(text.encode("utf-8")) > LENGTH_LIMIT
    )


def _of_kind(column: tuple[Any, ...], kinds: set[type], kind: type) -> Iterable[Any]:
    """The values of ``column`` of type ``kind``, or a subset that holds every one of them that
    could fail (a zero or an empty string cannot)."""
    if len(kinds) == 1:
        return column
    if len(kinds) == 2 and _NONE in kinds:
        return filter(None, column)  # a nullable column: drops None (and 0 or "")
    return compress(column, map(is_, map(type, column), repeat(kind)))


_NONE = type(None)


_is_link = is_link_column


def _bind(
    targets: ParamTargets,
    row: Any,
    *,
    sql: str,
    db_id: str,
    row_name: str | None = None,
    store: Path | None = None,
) -> Bound:
    """One row's parameters; ``row_name`` (``exec_many``) starts every refusal's text."""

    def fail(message: str) -> ExecError:
        return ExecArgumentError(db_id, sql, message)

    def fail_row(message: str) -> ExecError:
        return fail(f"{row_name}: {message}" if row_name else message)

    at = f"{row_name}, " if row_name else ""
    if row is None:
        row = ()
    if is_pending(row):  # (the parameters as a whole: a cell's value, a query's state)
        raise _not_ready(f"{at}the value given as its parameters", row)
    if not (is_params_list(row) or isinstance(row, Mapping)):
        raise fail_row(f"parameters are a list, a tuple or a mapping, not {type(row).__name__}")
    _check_shape(targets, row, fail_row)
    mixed = targets.mixed
    if isinstance(row, Mapping):
        return {
            name: _encode(row[name], target, f"{at}:{name}", fail, store)
            if name not in mixed
            else _encode_mixed(row[name], mixed[name], f"{at}:{name}")
            for name, target in targets.named.items()
        }
    return tuple(
        _encode(value, target, f"{at}parameter {i + 1}", fail, store)
        if i + 1 not in mixed
        else _encode_mixed(value, mixed[i + 1], f"{at}parameter {i + 1}")
        for i, (value, target) in enumerate(zip(row, targets.positional, strict=True))
    )


def _not_ready(where: str, value: Any) -> PendingValue:
    """R31: a value that is not ready yet (``sc.PENDING``, a pending query state), at the call."""
    return PendingValue(
        f"{where} is not ready yet ({value!r}): wait for it (rt.settle()) or react to it"
    )


def _encode_mixed(value: Any, uses: Sequence[str | None], where: str) -> Any:
    """A parameter bound both where a link column takes it and where one does not (R31): one
    value cannot be a link (a cell) for the one and a plain value for the other, so only None
    (NULL, which both take) is bound."""
    if is_pending(value):
        raise _not_ready(where, value)
    if value is None:
        return None
    links = ", ".join(use for use in uses if use is not None and _is_link(use))
    others = [use for use in uses if use is None or not _is_link(use)]
    other = ", ".join("no column" if use is None else use for use in others)
    raise LinkEncodeError(
        f"{where} is used for the link column(s) {links} and for {other}: one value cannot "
        f"be a link (a Cell, stored in *{LINK_SUFFIX} columns) and a plain value at once; bind "
        "a separate parameter for each use"
    )


def _check_shape(
    targets: ParamTargets, row: Sequence[Any] | Mapping[str, Any], fail: Callable[[str], Exception]
) -> None:
    """Refuse parameters that do not fit the statement's: a mapping for positional parameters
    or one missing a name, a list for named ones, a list of the wrong length."""
    if isinstance(row, Mapping):
        missing = [name for name in targets.named if name not in row]
        if missing:
            raise fail(
                f"no value for the named parameter(s) {', '.join(missing)}"
                f"{_keys_unused(row, targets.named, missing)}"
            )
        if targets.count and not targets.is_all_named:
            raise fail("positional parameters need a list of values, not a mapping")
        return
    if targets.is_all_named:
        raise fail("named parameters need a mapping of values, not a list")
    if len(row) != targets.count:
        raise fail(f"the statement has {targets.count} parameter(s) but {len(row)} were given")


def _keys_unused(row: Mapping[Any, Any], named: Mapping[str, Any], missing: list[str]) -> str:
    """What to add to the refusal of a mapping that lacks a named parameter: the first of its
    keys that the statement does not use, as code points (a key with a lone surrogate, or one
    in another Unicode form than the name, looks like the name in a message), and which
    missing name a key is in another Unicode form (``'e\u0301'`` for ``:é``): SQLite compares
    names as written."""
    try:
        unused = list(islice((key for key in row if key not in named), _KEYS_SHOWN + 1))
    except Exception:  # (a caller's mapping that cannot list its keys: the names say enough)
        return ""
    if not unused:
        return ""
    shown = ", ".join(_key_shown(key) for key in unused[:_KEYS_SHOWN])
    more = " and more" if len(unused) > _KEYS_SHOWN else ""
    said = f"; the mapping's key(s) {shown}{more} name no parameter of the statement"
    for key in unused:
        if not isinstance(key, str):
            continue
        folded = unicodedata.normalize("NFKC", str.__str__(key))
        for name in missing:
            if unicodedata.normalize("NFKC", name) == folded:
                return (
                    f"{said}: {_key_shown(key)} is its :{name} ({name!a}) written "
                    "with other Unicode code points, and SQLite compares names as written; give "
                    "the key as the statement spells it"
                )
    return said


def _key_shown(key: object) -> str:
    """A mapping's key as a refusal shows it: a text as its code points (``ascii``), cut as
    :func:`brief_repr` cuts, which shows anything else."""
    if not isinstance(key, str):
        return brief_repr(key)
    text = str.__str__(key)
    if len(text) <= _KEY_CHARACTERS:
        return ascii(text)
    return f"{text[:_KEY_CHARACTERS]!a}… ({len(text):,} characters)"


def _encode(
    value: Any,
    target: str | None,
    where: str,
    fail: Callable[[str], Exception],
    store: Path | None = None,
) -> Any:
    if is_pending(value):
        raise _not_ready(where, value)
    is_link = _is_link(target)
    if isinstance(value, Cell):
        if not is_link:
            raise LinkEncodeError(
                f"{where} is a cell but targets {target or 'no column'}: cells can only be "
                f"bound to *{LINK_SUFFIX} columns where the statement writes them; bind "
                f"cell.link_str() to compare it with a *{LINK_SUFFIX} column (WHERE "
                f"owner{LINK_SUFFIX} = ?), or cell.get() for its value"
            )
        theirs = value.space.runtime.store
        if store is not None and theirs != store:
            raise LinkEncodeError(
                f"{where} is {value!r}, a cell of the runtime on {theirs}, but this database "
                f"is in {store}: a link names a cell of its own store only; bind a cell of "
                "this store (open its space from the same Runtime)"
            )
        try:
            return value.link_str()
        except LinkEncodeError as exc:  # a cell no stored link can name (an index past 64 bits)
            raise LinkEncodeError(f"{where}: {exc}") from exc
    if is_link:
        if value is None:
            return None
        raise LinkEncodeError(
            f"{where} targets the link column {target} but is a {type(value).__name__}: bind a "
            "Cell (stored as its link) or None"
        )
    # A subclass of int, str or bytes is read through its base type, as SQLite reads it: its
    # own methods (a comparison, len, isascii) may raise or say something else (Errors).
    if isinstance(value, int):
        number = int.__index__(value)  # (True binds 1)
        if not _INT64_MIN <= number <= _INT64_MAX:
            raise fail(
                f"{where} is {brief_repr(number)}, outside SQLite's 64-bit integers: bind it as "
                "text (str(n)) or as a float"
            )
        return number
    if isinstance(value, str):
        text = str.__str__(value)
        position = surrogate_at(text)
        if position is not None:
            raise fail(
                f"{where} is text with a lone surrogate at position {position} "
                f"({_shown(text, position)}), which SQLite cannot store as UTF-8: decode the "
                "text properly first"
            )
        if _too_long(text):
            raise fail(_over_limit(where, len(text.encode("utf-8")), "text"))
        return text
    if isinstance(value, bytes):
        data = bytes(memoryview(value))
        if len(data) > LENGTH_LIMIT:
            raise fail(_over_limit(where, len(data), "bytes"))
        return data
    if isinstance(value, float):
        if math.isnan(value):  # (reads the double itself: a subclass's __ne__ says nothing)
            raise fail(
                f"{where} is NaN, which SQLite would store as NULL: bind None for a NULL, or "
                "keep the value as text"
            )
        return value
    if value is None:
        return value
    said = f"{where} is a {type(value).__name__}: bind None, int, float, str, bytes or a Cell"
    if isinstance(value, Mapping | list | tuple):
        said += f" (store a list or dict as its JSON text, json.dumps(value); {_LINK_ADVICE})"
    raise fail(said)


# What to bind to match a link column in a read (R31, R51): one text for every refusal saying it.
_LINK_ADVICE: Final = (
    "a Cell among a read's parameters stands for its value, so to match a "
    f"*{LINK_SUFFIX} column bind the cell's link, cell.link_str()"
)


def check_read_values(params: Any, *, sql: str, db_id: str) -> Any:
    """Refuse, at the call, ``db.read``/``db.query`` parameters that do not fit the statement's
    (their number, names or form: the same rules as a write's, :func:`_check_shape`) or a value
    SQLite could not bind (:func:`_encode`), as :class:`QueryArgumentError`. Cells and reactive
    values are looked at when they are read (:func:`check_cell_value`), not here; so are pending
    values. Returns the parameters to read with, copied as given: a mapping keeps the names the
    statement has, and the rest are ignored (as a write ignores them), whatever their keys or
    values; a list is a tuple."""

    def fail(message: str) -> QueryArgumentError:
        return QueryArgumentError(db_id, sql, message)

    items: Iterable[tuple[Any, Any]]
    row: Sequence[Any] | Mapping[str, Any]
    params = given_params(params, sql=sql, db_id=db_id, write=False)
    targets = map_params(sql)
    if params is None:
        row, items = (), ()
    elif isinstance(params, Mapping):
        row, items = params, ((name, params[name]) for name in targets.named)
    elif is_params_list(params):
        row, items = params, enumerate(params, 1)
    else:  # a lone value (a cell, say) is the one positional parameter
        if targets.is_all_named:
            given = "a cell" if isinstance(params, Cell | Reactive) else type(params).__name__
            raise fail(
                f"named parameters need a mapping of values, not a lone value ({given}, which "
                "would be the one positional parameter); give a dict of each name and its "
                "value, e.g. {'name': value} (a value in it may be a cell)"
            )
        row, items = (params,), ((1, params),)
    _check_shape(targets, row, fail)
    for key, value in items:
        if value is None or isinstance(value, Cell | Reactive) or is_pending(value):
            continue
        _encode(value, None, f"parameter {key}", fail)
    # A copy: a live query binds its parameters again at each run, and a list or dict the
    # caller changes later must not change them (nor their number, checked here once).
    if isinstance(params, Mapping):
        return {name: params[name] for name in targets.named}
    if is_params_list(params):
        return tuple(params)
    return params


def check_cell_value(value: Any, key: object, *, sql: str, db_id: str) -> None:
    """Refuse the value a cell (or reactive value) among ``db.read``/``db.query``'s parameters
    holds when it is read, as :func:`check_read_values` refuses the same value given directly —
    a NaN (SQLite would bind NULL), a list, an integer past 64 bits — with a
    :class:`QueryArgumentError`. A value that is itself a cell (a link, a database handle) is
    refused too: a cell among the parameters stands for its value, and that value is not looked
    through again (its changes would not re-run the query). So is a value that is not link text
    (a number, other text) where the statement compares the parameter with a ``*_cf_link``
    column (:func:`map_params`), which holds only links or NULL: no row could match. None
    passes (NULL: ``owner_cf_link IS ?`` finds the rows without a link). A pending value
    passes: a query waits for it, and ``db.read`` refuses it with its own words."""
    if value is None or is_pending(value):
        return  # (None compared with a link column: NULL, no link — ``IS ?`` finds those rows)

    def fail(message: str) -> QueryArgumentError:
        return QueryArgumentError(db_id, sql, message)

    where = f"parameter {key}"
    column = compared_links(sql).get(key)
    # (a cell: its own advice; text: one SQLite cannot bind — a lone surrogate, as a derived
    # cell's text decoded with surrogateescape holds — is refused as such, before it is
    # encoded to be looked at as a link)
    if column is None or isinstance(value, Cell | Reactive | str):
        _check_bindable(value, where, fail)
    # (text of a subclass of str is its base type's text, as SQLite binds it: see _encode)
    if column is not None and not (
        isinstance(value, str) and not link_text_problem(str.__str__(value).encode())
    ):
        # (whatever it is — a number, a list, a dict: only link text can match that column)
        shown = f"{brief_repr(value)} ({type(value).__name__})"
        raise fail(
            f"the value of the cell given as {where} is {shown}, not a link, and the statement "
            f"compares it with the link column {column}, which holds only links or NULL, so it "
            f"can match no row: {_LINK_ADVICE}"
        )


def compared_links(sql: str) -> Mapping[object, str]:
    """The link column a read compares each parameter (its number, or its name) with (a
    parameter also used elsewhere: its first link column); parameters compared with none are
    left out. Kept per text (bounded): a cell parameter is checked at each run of its query, and
    ``map_params`` analyses a long text afresh at each call."""
    found = _COMPARED_LINKS.get(sql)
    if found is not None:
        return found
    targets = map_params(sql)
    links: dict[object, str] = {}
    for number, target in enumerate(targets.positional, start=1):
        if target is not None and _is_link(target):
            links[number] = target
    for name, target in targets.named.items():
        if target is not None and _is_link(target):
            links[name] = target
    for key, mixed in targets.mixed.items():
        first = mixed[0]  # (sorted, links first)
        if key not in links and first is not None and _is_link(first):
            links[key] = first
    with _COMPARED_LINKS_LOCK:  # (query workers check concurrently; evicting iterates)
        if len(_COMPARED_LINKS) >= _COMPARED_LINKS_SIZE:
            _COMPARED_LINKS.pop(next(iter(_COMPARED_LINKS)), None)
        _COMPARED_LINKS[sql] = links
    return links


_COMPARED_LINKS: dict[str, Mapping[object, str]] = {}
_COMPARED_LINKS_SIZE: Final = 512
_COMPARED_LINKS_LOCK = threading.Lock()


def _check_bindable(value: Any, where: str, fail: Callable[[str], QueryArgumentError]) -> None:
    """Refuse a cell's value that is not a value SQLite binds (see :func:`check_cell_value`)."""
    if isinstance(value, Cell | Reactive):
        raise fail(
            f"{where} is a cell whose value is {brief_repr(value)}, a {type(value).__name__}: "
            "a cell among a read's parameters stands for its value, which is bound as it is "
            "(None, int, float, str or bytes); to match a *_cf_link column, give the link "
            "itself (cell.link_str(), or a derived cell of it)"
        )
    _encode(value, None, f"the value of the cell given as {where}", fail)


def _over_limit(where: str, size: int, kind: str) -> str:
    return (
        f"{where} is {kind} of {size} bytes, too big for SQLite: over its length limit of "
        f"{LENGTH_LIMIT} bytes; store large data elsewhere (a file) and keep a reference in the row"
    )


def _shown(text: str, position: int) -> str:
    return repr(text[max(0, position - 20) : position + 20])
