"""Typed rows (R43): rows are dicts unless ``row=`` names a msgspec Struct, a dataclass or a
TypedDict; each ``sc.Cell``-typed field decodes the stored link into a live cell (``None`` for NULL
and for a value that is not a valid link, which does not fail the query)."""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable
from typing import Any

import msgspec

from sqlite_cells.codec import Link, LinkDecodeError, QueryError, decode_sigil, parse_link
from sqlite_cells.runtime import Cell, Runtime

__all__ = ["RowDecoder", "decode_cf_link", "row_decoder"]

RowDecoder = Callable[[list[dict[str, Any]]], list[Any]]


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


def _fields(row: type) -> tuple[list[str], bool]:
    """Field names of a row type, and whether it is a TypedDict (built as a plain dict)."""
    if isinstance(row, type) and issubclass(row, msgspec.Struct):
        return list(row.__struct_fields__), False
    if dataclasses.is_dataclass(row):
        return [f.name for f in dataclasses.fields(row)], False
    if typing.is_typeddict(row):
        return list(typing.get_type_hints(row)), True
    raise TypeError(
        f"row= takes a msgspec.Struct, a dataclass or a TypedDict, not {row!r}; leave it out "
        "for dict rows"
    )


def row_decoder(row: type | None, rt: Runtime, *, db_id: str, sql: str) -> RowDecoder:
    """The function turning dict rows into ``row`` instances (identity for ``row=None``)."""
    if row is None:
        return _identity
    names, is_dict = _fields(row)
    hints = typing.get_type_hints(row)
    cell_fields = [n for n in names if _is_cell_type(hints.get(n))]
    wanted = set(names)
    spaces: dict[str, Any] = {}  # space id -> Space: resolved once per decoder, not per link
    cache: dict[Any, Cell | None] = {}

    def as_cell(value: Any) -> Cell | None:
        cell = cache.get(value, _MISSING) if isinstance(value, str | bytes) else None
        if cell is not _MISSING:
            return cell
        try:
            link = parse_link(value)
        except LinkDecodeError:
            cell = None
        else:
            cell = cell_of(link)
        if len(cache) < 4096:
            cache[value] = cell
        return cell

    def cell_of(link: Link) -> Cell:
        space = spaces.get(link.space)
        if space is None:
            space = spaces[link.space] = rt.space(link.space)
        return Cell(space, link.id, link.path)

    def build(values: dict[str, Any]) -> Any:
        if cell_fields:
            values = values.copy()  # the caller's row keeps its raw link strings
            for name in cell_fields:
                if name in values:
                    values[name] = as_cell(values[name])
        if values.keys() != wanted:
            values = {k: v for k, v in values.items() if k in wanted}
        return values if is_dict else row(**values)

    def hook(kind: type, value: Any) -> Any:
        # The hot path of a typed query: one cache probe, else one msgspec decode and a Cell.
        cell = cache.get(value) if type(value) is str else None
        if cell is None:
            try:
                link = decode_sigil(value).body.link
            except (msgspec.DecodeError, TypeError) as exc:
                raise ValueError(f"not a link: {value!r}") from exc  # decoded again, row by row
            cell = cell_of(link)
            if len(cache) < 4096:
                cache[value] = cell
        return cell

    many = list[row]  # type: ignore[valid-type]  # a runtime type argument, on purpose

    def decode(rows: list[dict[str, Any]]) -> list[Any]:
        if cell_fields:
            # One msgspec call builds every row; a row it cannot build as is (a link that is
            # not one, a value of another type) sends the whole batch the per-row way.
            try:
                return msgspec.convert(rows, many, dec_hook=hook)
            except (msgspec.ValidationError, ValueError):
                pass
        try:
            return [build(values) for values in rows]
        except TypeError as exc:
            raise QueryError(
                db_id,
                sql,
                f"cannot build {row.__name__} from columns {sorted(rows[0])}: {exc}; "
                "name the columns like the fields (use AS aliases)",
            ) from exc

    return decode


_MISSING: Any = object()


def _identity(rows: list[dict[str, Any]]) -> list[Any]:
    return rows
