"""Values SQLite stores, read into typed row fields SQLite has no type for (R43).

SQLite has no boolean, array, object or "bytes only" type: it stores booleans as the integers 0
and 1, arrays and objects as JSON text (``json_group_array``, ``json_object``), and keeps text
and blobs apart. Before msgspec's strict conversion, the columns read into such fields are
read as those fields take them: a ``bool`` field takes 0 and 1, a container field (a list, a
dict, a nested Struct, dataclass or TypedDict, or a union of such types and numbers) the value
its JSON text encodes (text that reads as JSON but does not decode is refused saying why), and
a ``bytes`` field refuses text, which msgspec would otherwise decode as base64, and a ``float``
field refuses an integer no float holds exactly (past 2**53), which msgspec would round.
Anything else is left
as it is for the conversion to accept or refuse, naming the column. A field's type is looked
through in one place (:func:`field_types`: unions, NewType, ``Annotated``), and the conversion
itself (:func:`convert`) reads no text as bytes, inside JSON values included.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any

import msgspec

from sqlite_cells.codec import QueryError
from sqlite_cells.read._reader import StatementResult

__all__ = ["Misfit", "convert", "field_types", "one_type", "sqlite_adapter", "with_sqlite_values"]

# msgspec reads text into bytes as base64; a wrapped protocol that gives bytes as bytes turns that
# off (``builtin_types``), wherever the type reaches bytes: a union, a NewType, a value inside JSON.
_BYTES_AS_GIVEN = (bytes, bytearray)


def convert(value: Any, kind: Any) -> Any:
    """msgspec's strict conversion of rows (``value``) into ``kind``, which never reads text as
    bytes: a JSON string is never bytes (JSON holds none), and a column's text is refused
    before this (:func:`sqlite_adapter`), with advice. (``memoryview`` is not among the types
    msgspec can be told so of: inside a JSON value it still reads base64.)"""
    return msgspec.convert(value, kind, builtin_types=_BYTES_AS_GIVEN)


def one_type(hint: Any) -> Any:
    """``T`` for a field typed ``T`` or ``T | None`` (``Optional[T]``); None for a union of
    several types besides None. Syntactic: a NewType or ``Annotated`` is a type of its own here
    (msgspec checks what they add); :func:`field_types` sees through them."""
    if typing.get_origin(hint) not in _UNIONS:
        return hint
    members = [arg for arg in typing.get_args(hint) if arg is not type(None)]
    return members[0] if len(members) == 1 else None


_UNIONS = (typing.Union, types.UnionType)


def field_types(hint: Any) -> tuple[Any, ...]:
    """The types a field of type ``hint`` takes a value as: the members of a union (nested
    unions, ``Optional`` included, ``None`` left out), each seen through ``NewType`` and
    ``Annotated`` — ``(bytes, int)`` for ``Optional[NewType("Blob", bytes) | int]``. The one
    place the readings of stored values look through a field's type: a bytes or float type is
    one wherever the conversion would reach it."""
    while True:
        if isinstance(hint, typing.NewType):
            hint = hint.__supertype__
        elif typing.get_origin(hint) is typing.Annotated:
            hint = hint.__origin__
        else:
            break
    if typing.get_origin(hint) in _UNIONS:
        return tuple(t for arg in typing.get_args(hint) for t in field_types(arg))
    return () if hint is type(None) else (hint,)


_CONTAINERS = (list, tuple, set, frozenset, dict)


def _is_container_type(hint: Any) -> bool:
    """An array or an object type (``list[int]``, ``dict[str, Any]``, a nested Struct,
    dataclass or TypedDict): SQLite has no such values, and stores them as JSON text."""
    kind = typing.get_origin(hint) or hint
    if not isinstance(kind, type):
        return False
    return (
        issubclass(kind, _CONTAINERS)
        or issubclass(kind, msgspec.Struct)
        or dataclasses.is_dataclass(kind)
        or typing.is_typeddict(kind)
    )


_BLOBS = frozenset((bytes, bytearray, memoryview))


def _takes_int(kind: Any) -> bool:
    """An ``int`` (an ``IntEnum``...) type: a union with one takes an integer as it is."""
    return isinstance(kind, type) and issubclass(kind, int) and kind is not bool


def _takes_no_text(kind: Any) -> bool:
    """A container type, or a number type (``int``, ``float``, ``bool``, an ``IntEnum``): a
    union of such types takes no text but a container's JSON."""
    return _is_container_type(kind) or (isinstance(kind, type) and issubclass(kind, int | float))


def sqlite_adapter(hint: Any) -> Callable[[Any], Any] | None:
    """How a value SQLite stores is read into a field of type ``hint`` before the strict
    conversion (None: as it is). A field of one type besides None (seen through NewType and
    ``Annotated``) that is ``bool`` takes 0 and 1; one whose types are containers, or
    containers and numbers (``list[str] | int``), takes a container's JSON text (and 0 and 1
    for a ``bool`` among them) — a union with a type that takes text (``list[str] | str``)
    takes text as it is; a field any of whose
    types is bytes refuses text (msgspec would read it as base64, whatever else the union
    holds), and one with a ``float`` and no ``int`` type refuses an integer no float holds."""
    kinds = field_types(hint)
    if len(kinds) == 1 and kinds[0] is bool:
        return _flag
    if any(map(_is_container_type, kinds)) and all(map(_takes_no_text, kinds)):
        return _flag_or_json_text if bool in kinds else _json_text
    blob = any(kind in _BLOBS for kind in kinds)
    real = float in kinds and not any(_takes_int(kind) for kind in kinds)
    if blob:
        return _blob_or_exact_real if real else _blob
    return exact_real if real else None


class Misfit(Exception):
    """A value refused before the conversion, in the column ``column``."""

    def __init__(self, expected: str, got: str, advice: str, column: str = "?") -> None:
        super().__init__(expected, got, advice, column)
        self.expected, self.got, self.advice, self.column = expected, got, advice, column

    def at(self, column: str) -> Misfit:
        return Misfit(self.expected, self.got, self.advice, column)

    def error(self, row: type, field: str, *, db_id: str, sql: str) -> QueryError:
        """The query's error; ``field`` is the name of the field read from ``column``."""
        advice = self.advice.format(column=self.column)
        return QueryError(
            db_id,
            sql,
            f"column {self.column!r} does not fit field {row.__name__}.{field}: Expected "
            f"`{self.expected}`, got `{self.got}`; {advice}",
        )


def _blob(value: Any) -> Any:
    """A blob as it is; text refused: msgspec would read it as base64, turning any text that
    happens to be valid base64 into other bytes."""
    if type(value) is str:
        raise Misfit(
            "bytes",
            "str",
            "select it as a blob (CAST({column} AS BLOB) gives the text's UTF-8 bytes) or "
            "type the field str",
        )
    return value


# Every integer of at most 53 bits has an exact float; past that, only some do.
_EXACT_FLOAT_INT = 2**53


def exact_real(value: Any) -> Any:
    """An integer that a float holds exactly (any other value) as it is; an integer no float
    holds (SQLite's 64-bit integers past 2**53, such as 2**53 + 1) refused: a float field
    would silently get a neighbouring number. Changes no value: a check, run without copying
    the rows."""
    if (
        type(value) is int
        and not -_EXACT_FLOAT_INT <= value <= _EXACT_FLOAT_INT
        and int(float(value)) != value
    ):
        raise Misfit(
            "float",
            f"int {value}, which no float holds exactly",
            "type the field int (or int | float) to keep the integer, or select "
            "CAST({column} AS REAL) to accept the rounding",
        )
    return value


def _blob_or_exact_real(value: Any) -> Any:
    """Both checks, for a field typed ``bytes | float``."""
    return exact_real(_blob(value))


def _flag(value: Any) -> Any:
    """SQLite's boolean (the integer 0 or 1; ``TRUE`` and ``FALSE`` are those integers) as a
    ``bool``; any other value as it is, for the strict conversion to accept or refuse."""
    return bool(value) if type(value) is int and (value == 0 or value == 1) else value


def _json_text(value: Any) -> Any:
    """SQLite's array or object (JSON text, as ``json_group_array`` and ``json_object`` return
    it) as the value it encodes; any other value, text that is not an array or an object (JSON
    of a scalar, ``'5'``, included: a field ``list[int] | int`` takes no text) as it is, for the
    strict conversion to refuse naming the column. Text that reads as an array or an
    object (it starts with ``[`` or ``{``) but does not decode is refused saying why (SQLite's
    infinity, ``9.0e+999``, which no JSON number is; a lone surrogate escape)."""
    if type(value) is not str or value.lstrip()[:1] not in ("[", "{"):
        return value  # (text of a scalar — '5', 'true', 'null' — is no array: refused as text)
    try:
        return _JSON.decode(value)
    except msgspec.DecodeError as exc:
        raise _undecodable(value, exc) from None
    except RecursionError:  # (msgspec's: nested deeper than it decodes)
        raise Misfit(
            "an array or object",
            "JSON text nested too deeply to decode",
            "select a flatter value in {column}, or type the field str",
        ) from None


def _flag_or_json_text(value: Any) -> Any:
    """Both readings, for a field typed ``list[int] | bool``."""
    return _json_text(_flag(value))


def _undecodable(text: str, exc: msgspec.DecodeError) -> Misfit:
    """Text of an array or object that msgspec cannot decode, refused with the cause."""
    advice = "select valid JSON in {column}, or type the field str to read the text as it is"
    reason = str(exc).replace("`", "")  # (msgspec quotes a path so: the message quotes it so)
    if reason.startswith("Number out of range") and _INFINITY.search(text):
        reason = f"{reason}: SQLite writes an infinity as 9.0e+999, a number JSON has not"
        advice = (
            "gather the values without infinities into {column} (CASE WHEN abs(v) = 9e999 "
            "THEN NULL ELSE v END for a value v), or type the field str to read the text as it is"
        )
    else:
        lone = _lone_surrogate(text)
        if lone is not None:
            reason = f"the escape {lone} is half of a surrogate pair, and stands for no character"
    return Misfit("an array or object", f"JSON text that does not decode ({reason})", advice)


_INFINITY = re.compile(r"9\.0e\+999")
_SURROGATE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}(\\u[dD][c-fC-F][0-9a-fA-F]{2})?")


def _lone_surrogate(text: str) -> str | None:
    """The first surrogate escape in JSON ``text`` that is not the first half of a pair
    followed by its second (``\\ud800`` alone), or None."""
    for found in _SURROGATE.finditer(text):
        first = found.group(0)[:6]
        if found.group(1) is None or first[3] not in "89abAB":
            return first
    return None


_JSON = msgspec.json.Decoder()


def with_sqlite_values(
    given: StatementResult | list[dict[str, Any]], adapters: dict[str, Callable[[Any], Any]]
) -> StatementResult | list[dict[str, Any]]:
    """``given`` with the columns read into fields SQLite has no type for read as those
    fields take them (``adapters``, by column): booleans from 0 and 1, arrays and objects from
    JSON text, blobs never from text (raises :class:`Misfit`). A new result: ``given`` may be
    shared by queries."""
    checks = {name: adapt for name, adapt in adapters.items() if adapt in _CHECKS}
    if checks:
        _check(given, checks)
        adapters = {name: adapt for name, adapt in adapters.items() if adapt not in _CHECKS}
    if not adapters:
        return given
    if not isinstance(given, StatementResult):
        items = []
        for item in given:
            copy = dict(item)
            for name in adapters.keys() & item.keys():
                copy[name] = _adapted(adapters[name], item[name], name)
            items.append(copy)
        return items
    at = [(i, adapters[name], name) for i, name in enumerate(given.names) if name in adapters]
    if not at:
        return given
    rows = []
    for values in given.rows:
        changed = list(values)
        for i, adapt, name in at:
            changed[i] = _adapted(adapt, changed[i], name)
        rows.append(tuple(changed))
    return dataclasses.replace(given, rows=rows, dicts=None, unchanged=False)


# The readings that change no value: they run over the columns without copying the rows.
_CHECKS = frozenset((exact_real, _blob, _blob_or_exact_real))


def _check(
    given: StatementResult | list[dict[str, Any]], checks: Mapping[str, Callable[[Any], Any]]
) -> None:
    """Run adapters that change no value (checks) over their columns, copying nothing."""
    if isinstance(given, StatementResult):
        for i, name in enumerate(given.names):
            if name in checks:
                for values in given.rows:
                    _adapted(checks[name], values[i], name)
        return
    for item in given:
        for name in checks.keys() & item.keys():
            _adapted(checks[name], item[name], name)


def _adapted(adapt: Callable[[Any], Any], value: Any, column: str) -> Any:
    try:
        return adapt(value)
    except Misfit as misfit:
        raise misfit.at(column) from None
