"""Typed rows (R43): rows are dicts unless ``row=`` names a msgspec Struct, a dataclass or a
TypedDict.

Each ``sc.Cell``-typed field (``Cell``, ``Cell | None``) decodes the stored link into a live
cell, whatever the column is called (an alias may hide the ``_cf_link`` suffix); NULL and a
value that is not a valid link become ``None`` for that field without failing the query. Every
other field is converted strictly by msgspec (no ``"1"`` → ``1``): a value that does not fit
its field's type fails the query with :class:`QueryError` naming the column. Decoding a link
never opens or creates a space file (R7): the cell of a space the store does not hold reads
``None``.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Callable
from typing import Any

import msgspec

from sqlite_cells.codec import LinkDecodeError, QueryError, decode_sigil, parse_link
from sqlite_cells.read._reader import StatementResult
from sqlite_cells.runtime import Cell, Runtime

__all__ = ["RowDecoder", "decode_cf_link", "row_decoder"]

# Takes a statement's result (or rows already as dicts, for tools that build them).
RowDecoder = Callable[[StatementResult | list[dict[str, Any]]], list[Any]]

_CACHE_SIZE = 4096
_AT_FIELD = re.compile(r"at `\$(?:\[\d+\])?\.(.+?)`$")


def decode_cf_link(value: str | bytes | None, rt: Runtime) -> Cell | None:
    """A stored link string → the live ``Cell`` it names; ``None`` → ``None``.
    Raises :class:`LinkDecodeError` for anything that is not exactly one link."""
    if value is None:
        return None
    return rt.cell_for(parse_link(value))


def _is_cell_type(hint: Any) -> bool:
    if isinstance(hint, type):
        return issubclass(hint, Cell)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return any(_is_cell_type(arg) for arg in typing.get_args(hint) if arg is not type(None))
    return False


def _fields(row: type) -> list[str]:
    """Field names of a row type (a msgspec Struct, a dataclass or a TypedDict)."""
    if isinstance(row, type) and issubclass(row, msgspec.Struct):
        return list(row.__struct_fields__)
    if dataclasses.is_dataclass(row):
        return [f.name for f in dataclasses.fields(row)]
    if typing.is_typeddict(row):
        return list(typing.get_type_hints(row))
    raise TypeError(
        f"row= takes a msgspec.Struct, a dataclass or a TypedDict, not {row!r}; leave it out "
        "for dict rows"
    )


class _NoCell(Cell):
    """Stands for ``None`` in a Cell-typed field while msgspec builds the row (it checks what
    the decode hook returns against the field type); replaced by ``None`` right after."""

    __slots__ = ()

    def __init__(self) -> None:  # no space: it is never read
        pass


_NO_CELL = _NoCell()
_NULL_MARK = "\x00sqlite-cells:null"  # what NULL in a Cell field is handed to msgspec as


def row_decoder(row: type | None, rt: Runtime, *, db_id: str, sql: str) -> RowDecoder:
    """The function turning a statement's rows into ``row`` instances (dicts for None)."""
    if row is None:
        return _as_dicts
    names = _fields(row)
    hints = typing.get_type_hints(row)
    cell_fields = [n for n in names if _is_cell_type(hints.get(n))]
    cache: dict[Any, Cell] = {}
    setter = _setter(row)
    many = list[row]  # type: ignore[valid-type]  # a runtime type argument, on purpose

    def hook(kind: type, value: Any) -> Any:
        # The hot path of a typed query: one cache probe, else one msgspec decode and a Cell.
        cell = cache.get(value) if type(value) is str else None
        if cell is None:
            cell = _NO_CELL
            if isinstance(value, str | bytes) and value != _NULL_MARK:
                try:
                    cell = rt.cell_for(decode_sigil(value).body.link)
                except (msgspec.DecodeError, msgspec.ValidationError, TypeError, LinkDecodeError):
                    cell = _NO_CELL  # not a link: None for this field (R43)
            if type(value) is str and len(cache) < _CACHE_SIZE:
                cache[value] = cell
        return cell

    def prepared(result: StatementResult) -> list[dict[str, Any]]:
        rows = result.as_dicts()
        if not cell_fields:
            return rows
        present = [n for n in cell_fields if n in result.names]
        if not any(r[n] is None for r in rows for n in present):
            return rows
        # msgspec refuses None for a field typed Cell before calling the hook: mark it.
        return [
            {k: (_NULL_MARK if v is None and k in present else v) for k, v in r.items()}
            for r in rows
        ]

    def decode(given: StatementResult | list[dict[str, Any]]) -> list[Any]:
        result = _as_result(given)
        try:
            built: list[Any] = msgspec.convert(prepared(result), many, dec_hook=hook)
        except msgspec.ValidationError as exc:
            raise _query_error(exc, row, result, db_id=db_id, sql=sql) from exc
        if cell_fields:
            for item in built:
                for name in cell_fields:
                    if _value(item, name) is _NO_CELL:
                        setter(item, name, None)
        return built

    return decode


def _value(item: Any, name: str) -> Any:
    return item.get(name) if isinstance(item, dict) else getattr(item, name, None)


def _setter(row: type) -> Callable[[Any, str, Any], None]:
    if isinstance(row, type) and issubclass(row, msgspec.Struct):
        return msgspec.structs.force_setattr
    if typing.is_typeddict(row):
        return lambda item, name, value: item.__setitem__(name, value)
    return object.__setattr__  # dataclasses, frozen ones included


def _query_error(
    exc: msgspec.ValidationError, row: type, result: StatementResult, *, db_id: str, sql: str
) -> QueryError:
    message = str(exc)
    found = _AT_FIELD.search(message)
    if found is not None and "missing required field" not in message:
        column = found.group(1)
        return QueryError(
            db_id,
            sql,
            f"column {column!r} does not fit field {row.__name__}.{column}: "
            f"{message.split(' - at ')[0]}; cast it in SQL or change the field's type",
        )
    return QueryError(
        db_id,
        sql,
        f"cannot build {row.__name__} from columns {list(result.names)}: {message}; name the "
        "columns like the fields (use AS aliases)",
    )


def _as_result(given: StatementResult | list[dict[str, Any]]) -> StatementResult:
    if isinstance(given, StatementResult):
        return given
    names = tuple(given[0]) if given else ()
    return StatementResult(names, [], dicts=given)


def _as_dicts(given: StatementResult | list[dict[str, Any]]) -> list[Any]:
    return _as_result(given).as_dicts()
