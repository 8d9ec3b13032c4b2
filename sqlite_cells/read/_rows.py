"""Typed rows (R43): rows are dicts unless ``row=`` names a msgspec Struct, a dataclass or a
TypedDict.

Each ``sc.Cell``-typed field (``Cell``, ``Cell | None``) decodes the stored link into a live
cell, whatever the column is called (an alias may hide the ``_cf_link`` suffix); NULL and a
value that is not a valid link become ``None`` for that field without failing the query. Every
other field is converted strictly by msgspec (no ``"1"`` → ``1``), once the values SQLite has no
type for are read as their fields take them (``_stored_values``: booleans from 0 and 1, arrays
and objects from JSON text, no bytes from text): a value that does not fit
its field's type fails the query with :class:`QueryError` naming the column, and so does any
exception the row type's own code raises (``__post_init__``), naming the row type. A row type
rows cannot be converted to at all (unresolvable annotations, ``str | bytes``, ``Cell | int``)
is refused at the call with :class:`InvalidArgument`. A generic row type is given with its
type arguments (``Page[Msg]``); an array-like Struct is built by column name. Decoding a link
never opens or creates a space file (R7): the cell of a space the store does not hold reads
``None``.

Two ways build the rows, with the same results:

- the general way: rows as dicts whose link columns are decoded into cells first, then
  ``msgspec.convert`` into the row type. It handles every row type, and it is the reference for
  errors: whenever the other way fails, this one runs and raises what the query reports.
- for a plain msgspec Struct (the common case, and the fast one): no dict per row. The columns
  are taken as they are when every value already has the type msgspec would return unchanged
  for its field, else msgspec converts the row tuples into a "shadow" struct whose Cell fields
  take any value (one C call for the whole result); each link column is decoded as a column
  (:func:`codec.parse_links`, each distinct link once when links repeat, the cells built by
  ``Runtime.cells_for``), and the rows are built positionally from the columns.
"""

from __future__ import annotations

import dataclasses
import gc
import inspect
import re
import threading
import types
import typing
from collections.abc import Callable
from operator import attrgetter, itemgetter
from typing import Any, Final, overload

import msgspec

from sqlite_cells.codec import (
    Link,
    QueryError,
    SqliteCellsError,
    brief_repr,
    check_link,
    parse_link,
    parse_links,
)
from sqlite_cells.read._reader import StatementResult
from sqlite_cells.read._stored_values import (
    Misfit,
    convert,
    one_type,
    sqlite_adapter,
    with_sqlite_values,
)
from sqlite_cells.runtime import (
    Cell,
    InvalidArgument,
    Runtime,
    Space,
    checked_arguments,
    exception_text,
)

__all__ = ["RowDecoder", "build_rows", "decode_cf_link", "row_decoder", "runs_own_code"]

# Takes a statement's result (or rows already as dicts, for tools that build them).
RowDecoder = Callable[[StatementResult | list[dict[str, Any]]], list[Any]]

_CACHE_SIZE = 4096
_SHADOWS_SIZE = 64  # Struct row types remembered, and column layouts per row type
_MODULE_PATH = re.compile(r"\b(?:[A-Za-z_]\w*\.)+(?=[A-Za-z_])")
# msgspec's words for JSON text whose shape does not fit a field's type.
_NOT_OF_THAT_SHAPE: Final = re.compile(r"^(Expected `[^`]*\b(array|object)\b[^`]*`|Object missing)")
# Where msgspec says a value failed: a field's path, or a key of the object at that path.
_AT_FIELD = re.compile(r"at (`key` in )?`\$(?:\[\d+\])?\.(.+?)`$")
# A JSON string where the type wants bytes (``bytes``, ``int | bytes``): JSON holds no bytes.
_TEXT_FOR_BYTES = re.compile(r"^Expected `[^`]*\bbytes\b[^`]*`, got `str`")


@overload
def decode_cf_link(value: None, rt: Runtime) -> None: ...
@overload
def decode_cf_link(value: str | bytes | bytearray | memoryview | Link, rt: Runtime) -> Cell: ...
@overload
def decode_cf_link(
    value: str | bytes | bytearray | memoryview | Link | None, rt: Runtime
) -> Cell | None: ...
@checked_arguments
def decode_cf_link(
    value: str | bytes | bytearray | memoryview | Link | None, rt: Runtime
) -> Cell | None:
    """A stored link string → the live ``Cell`` it names; ``None`` → ``None``; a link object
    (``cell.link()``) → its cell, as ``rt.cell_from_link`` takes it. Raises
    :class:`LinkDecodeError` for anything that is not exactly one well-formed link, and
    :class:`InvalidArgument` when ``rt`` is not a runtime (checked even for ``None``: the call
    is wrong whatever the value)."""
    if not isinstance(rt, Runtime):
        raise _not_a_runtime(rt)
    if value is None:
        return None
    if isinstance(value, Link):
        return rt.cell_for(check_link(value))
    return rt.cell_for(parse_link(value))


def _not_a_runtime(rt: object) -> InvalidArgument:
    shown = brief_repr(rt)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    hint = "; for a space, pass space.runtime" if isinstance(rt, Space) else ""
    return InvalidArgument(
        f"decode_cf_link(value, rt): rt is {shown} (a {type(rt).__name__}), not a runtime; "
        f"pass the sc.Runtime whose cells the link names, as in decode_cf_link(value, rt){hint}"
    )


def _is_cell_type(hint: Any) -> bool:
    if isinstance(hint, typing.NewType):  # (a Cell field if of Cell: see _is_plain_cell_type)
        return _is_cell_type(hint.__supertype__)
    if typing.get_origin(hint) is typing.Annotated:
        return _is_cell_type(hint.__origin__)
    if isinstance(hint, type):
        return issubclass(hint, Cell)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return any(_is_cell_type(arg) for arg in typing.get_args(hint) if arg is not type(None))
    return False


def _is_plain_cell_type(hint: Any) -> bool:
    """``Cell`` or ``Cell | None`` exactly: a field whose value is a cell or ``None``. A
    NewType of ``Cell`` (``Author = NewType("Author", sc.Cell)``) is ``Cell`` itself at run
    time: an ``Author`` or ``Author | None`` field is one too."""
    hint = one_type(hint)
    while isinstance(hint, typing.NewType):
        hint = hint.__supertype__
    return hint is Cell


def _class_of(row: type) -> type:
    """The class of a row type: ``Page`` for a generic one given as ``Page[Msg]``."""
    origin = typing.get_origin(row)
    return origin if isinstance(origin, type) else row


def _fields(row: type) -> list[str]:
    """Field names of a row type (a msgspec Struct, a dataclass or a TypedDict, generic ones
    given with their type arguments included)."""
    cls = _class_of(row)
    if isinstance(cls, type):
        if issubclass(cls, msgspec.Struct):
            return list(cls.__struct_fields__)
        if dataclasses.is_dataclass(cls):
            return [f.name for f in dataclasses.fields(cls)]
        if typing.is_typeddict(cls):
            return list(cls.__annotations__)
    elif dataclasses.is_dataclass(cls) or isinstance(cls, msgspec.Struct):
        # An instance (dataclasses.is_dataclass takes one too): its class is what was meant.
        raise InvalidArgument(
            f"row= takes a class, not the instance {brief_repr(row)}: give its class, "
            f"row={type(row).__name__}"
        )
    raise InvalidArgument(
        f"row= takes a msgspec.Struct, a dataclass or a TypedDict, not {brief_repr(row)}; leave it "
        "out for dict rows"
    )


class _NoCell(Cell):
    """Stands for ``None`` in a field typed ``Cell`` while msgspec builds a row type that runs
    no code of its own (msgspec checks the field holds a cell); replaced by ``None`` right
    after (see ``_with_null_cells``)."""

    __slots__ = ()

    def __init__(self) -> None:  # no space: it is never read
        pass


_NO_CELL = _NoCell()
_UNKNOWN: Any = object()
_STRUCT_ROWS: dict[type, _StructRows | None] = {}  # row type → its fast builder (None: none)
_ADAPTERS: dict[type, dict[str, Any]] = {}  # row type → its columns' readings (_adapters)


class _Cells:
    """Stored link values → live cells (``None`` for NULL and anything that is not a link),
    for one decoder. Each distinct link of a column is decoded once when links repeat (a
    sample of the column's first values says whether they do: telling costs about a tenth of
    decoding a link, so a column of distinct links skips it). The link → cell table of the
    previous call is kept (up to ``_CACHE_SIZE`` links), so a live query's re-run decodes only
    links it has not seen."""

    __slots__ = ("_known", "_rt")

    def __init__(self, rt: Runtime) -> None:
        self._rt = rt
        self._known: dict[Any, Cell | None] = {}

    def column(self, values: list[Any]) -> list[Cell | None]:
        if not self._known and _look_distinct(values):
            cells = self._rt.cells_for(parse_links(values))
            self._known = _table(values, cells)
            return cells
        if not set(map(type, values)) <= _SHAREABLE:
            return self._rt.cells_for(parse_links(values))
        table = dict.fromkeys(values)  # each distinct value once
        table.pop(None, None)
        known = self._known
        if known:
            hits = table.keys() & known.keys()
            for value in hits:
                table[value] = known[value]
            todo = [value for value in table if value not in hits]
        else:
            todo = list(table)
        table.update(zip(todo, self._rt.cells_for(parse_links(todo)), strict=True))
        self._known = table if len(table) <= _CACHE_SIZE else {}
        return list(map(table.get, values))


_SAMPLE = 64
# The value types whose equal values always read the same link: other values may equal a link
# text and still not be one (a memoryview equals its bytes), so they share no cells.
_SHAREABLE = frozenset((str, bytes, type(None)))


def _look_distinct(values: list[Any]) -> bool:
    sample = values[:_SAMPLE]
    try:
        return len(set(sample)) == len(sample)
    except TypeError:  # unhashable: not links, nothing to share
        return True


def _table(values: list[Any], cells: list[Cell | None]) -> dict[Any, Cell | None]:
    if len(values) > _CACHE_SIZE or not set(map(type, values)) <= _SHAREABLE:
        return {}
    return dict(zip(values, cells, strict=True))


def row_decoder(row: type | None, rt: Runtime, *, db_id: str, sql: str) -> RowDecoder:
    """The function turning a statement's rows into ``row`` instances (dicts for None)."""
    if row is None:
        return _as_dicts
    names = _fields(row)
    hints = _type_hints(row)
    _check_convertible(row, hints)
    cell_fields = [n for n in names if _is_cell_type(hints.get(n))]
    links = frozenset(cell_fields)
    adapters = _adapters(row, names, hints)

    def adapted(
        given: StatementResult | list[dict[str, Any]],
    ) -> StatementResult | list[dict[str, Any]]:
        try:
            return with_sqlite_values(given, adapters)
        except Misfit as misfit:
            field = _field_of(row, misfit.column)
            raise misfit.error(row, field, db_id=db_id, sql=sql) from None

    cells = _Cells(rt)
    general = _general_decoder(row, cells, cell_fields, db_id=db_id, sql=sql)
    fast = _StructRows.for_row(row, hints)
    if fast is None:

        def decode_general(given: StatementResult | list[dict[str, Any]]) -> list[Any]:
            _check_readable(given, links)
            given = adapted(given)
            with _PausedCollector(given):
                return general(_as_result(given))

        return decode_general

    def decode(given: StatementResult | list[dict[str, Any]]) -> list[Any]:
        _check_readable(given, links)
        given = adapted(given)
        with _PausedCollector(given):
            try:
                return fast.build(given, cells)
            except BaseException as exc:
                if not _failed_itself(exc):
                    raise
                # The general way is the reference for errors: it raises what the query reports.
                return general(_as_result(given))

    return decode


def _adapters(row: type, names: list[str], hints: dict[str, Any]) -> dict[str, Any]:
    """Column → how its stored values are read into its field (``sqlite_adapter``), for the
    fields that need it; worked out once per row type."""
    known = _ADAPTERS.get(row)
    if known is not None:
        return known
    renamed = _column_names(row)
    found = {
        renamed.get(n, n): adapt
        for n in names
        if (adapt := sqlite_adapter(hints.get(n))) is not None
    }
    if len(_ADAPTERS) >= _SHADOWS_SIZE:
        _ADAPTERS.clear()
    _ADAPTERS[row] = found
    return found


def _type_hints(row: type) -> dict[str, Any]:
    """The row type's field types, resolved; :class:`InvalidArgument` when an annotation names
    something its module cannot see (a class defined inside a function, with ``from __future__
    import annotations``)."""
    cls = _class_of(row)
    try:
        hints = typing.get_type_hints(cls)
    except Exception as exc:  # NameError mostly; any failure is the annotation's
        raise InvalidArgument(
            f"row={row.__name__}: its field annotations cannot be resolved "
            f"({type(exc).__name__}: {exc}); {_annotation_advice(row, exc)}"
        ) from exc
    if cls is row:
        return hints
    table = dict(zip(getattr(cls, "__parameters__", ()), typing.get_args(row), strict=False))
    return {name: _substituted(hint, table) for name, hint in hints.items()}


def _annotation_advice(row: type, exc: Exception) -> str:
    """What to do about the annotation of ``row`` that failed to resolve with ``exc``."""
    if isinstance(exc, TypeError) and "not subscriptable" in str(exc):
        # (A class that is not generic given type arguments: ``sc.Cell[int]`` mostly.)
        return (
            "a type named there takes no arguments in brackets: sc.Cell is not generic, so "
            "annotate a link field as sc.Cell (or sc.Cell | None), not sc.Cell[...]"
        )
    return f"define the types they name at module level, where {row.__name__}'s module can see them"


def _substituted(hint: Any, table: dict[Any, Any]) -> Any:
    """``hint`` with the type variables of a generic row type replaced by its arguments."""
    if isinstance(hint, typing.TypeVar):
        return table.get(hint, hint)
    parameters = getattr(hint, "__parameters__", ())
    if parameters:
        return hint[tuple(table.get(p, p) for p in parameters)]
    return hint


def _check_convertible(row: type, hints: dict[str, Any]) -> None:
    """Refuse, at the call, a row type msgspec cannot build (a union of two str-like types such
    as ``str | bytes``, a Cell field typed ``Cell | int``...): it would fail on every result."""
    try:
        msgspec.convert([], list[row])  # type: ignore[valid-type]  # checks the type only
    except Exception as exc:
        found = _unconvertible_field(row, hints)
        where = f"field {found[0]!r} is typed {_shown_type(found[1])}" if found else "its fields"
        raise InvalidArgument(
            f"row={row.__name__}: {where}, which rows cannot "
            f"be converted to ({str(exc).split(' - type ')[0]}); give it one type a column's "
            "values convert to (Any takes any value; a link field is sc.Cell or sc.Cell | None), "
            "or cast the column in SQL"
        ) from exc
    for name, hint in hints.items():
        if _is_cell_type(hint) and not _is_plain_cell_type(hint):
            alias = one_type(hint)
            if isinstance(alias, typing.NewType):
                base = _shown_type(alias.__supertype__)
                alias_note = f" ({alias.__name__} is a NewType of {base})"
            else:
                alias_note = ""
            raise InvalidArgument(
                f"row={row.__name__}: field {name!r} is typed {_shown_type(hint)}{alias_note}, "
                "but a link column's value reads back as a plain cell (R43), whatever it names — a "
                "database handle too: type the field sc.Cell or sc.Cell | None"
            )
        if not _is_cell_type(hint) and _nests_cell(hint):
            raise InvalidArgument(
                f"row={row.__name__}: field {name!r} is typed {_shown_type(hint)}, a Cell inside "
                "another type, which no column's value converts to (a column holds one link at "
                "most); select each link as a column of its own into a field typed sc.Cell or "
                "sc.Cell | None"
            )


def _unconvertible_field(row: type, hints: dict[str, Any]) -> tuple[str, Any] | None:
    """The first field of ``row`` msgspec cannot convert to, with its annotation as written:
    ``hints`` lack the ``Annotated`` constraints, and a constraint msgspec refuses for its type
    (``Annotated[int | None, Meta(ge=0)]``) is where the type fails. None if none is found."""
    try:
        written = typing.get_type_hints(_class_of(row), include_extras=True)
    except Exception:  # (resolved once already as ``hints``: kept to those then)
        written = {}
    for name, hint in hints.items():
        if not _convertible(hint):
            return name, hint
        extras = written.get(name, hint)
        if extras != hint and not _convertible(extras):
            return name, extras
    return None


def _nests_cell(hint: Any, seen: frozenset[Any] = frozenset()) -> bool:
    """Whether a Cell appears among ``hint``'s type arguments (``list[Cell]``) or among the
    fields of a record type it is or holds (a Struct, dataclass or TypedDict field of a row:
    its value comes from one column too, as JSON, and a link there is text, never a Cell)."""
    if _is_record(hint) and hint not in seen:
        try:
            fields = typing.get_type_hints(hint)
        except Exception:  # (names it cannot resolve: msgspec's own check says so)
            fields = {}
        inner = seen | {hint}
        if any(_is_cell_type(f) or _nests_cell(f, inner) for f in fields.values()):
            return True
    return any(_is_cell_type(arg) or _nests_cell(arg, seen) for arg in typing.get_args(hint))


def _is_record(hint: Any) -> bool:
    return isinstance(hint, type) and (
        issubclass(hint, msgspec.Struct)
        or dataclasses.is_dataclass(hint)
        or typing.is_typeddict(hint)
    )


def _convertible(hint: Any) -> bool:
    try:
        msgspec.convert([], list[hint])
    except Exception:
        return False
    return True


def _shown_type(hint: Any) -> str:
    """``str | bytes``, ``Cell | int``: a type as written, without module paths."""
    shown = hint.__name__ if isinstance(hint, type) else repr(hint)
    return _MODULE_PATH.sub("", shown)


_PART_ROWS = 4096  # rows built per msgspec call by build_rows


def runs_own_code(row: type | None) -> bool:
    """Whether building ``row`` instances may run code of the user's, whose time nothing bounds
    but the worker's deadline: a ``__post_init__``, a field's ``default_factory``, or a field
    type of a class of its own (an ``Enum``'s ``_missing_``, a nested record's own code). Such
    rows are never built on the scheduler thread (see ``LiveQueries._is_cheap``)."""
    if row is None:
        return False
    cls = _class_of(row)
    if hasattr(cls, "__post_init__") or _has_factory(cls):
        return True
    try:
        hints = _type_hints(row)
    except InvalidArgument:  # refused when the row type is checked; nothing to build
        return False
    return any(_user_class_in(hint) for hint in hints.values())


def _has_factory(cls: type) -> bool:
    if issubclass(cls, msgspec.Struct):
        return any(f.default_factory is not msgspec.NODEFAULT for f in msgspec.structs.fields(cls))
    if dataclasses.is_dataclass(cls):
        return any(f.default_factory is not dataclasses.MISSING for f in dataclasses.fields(cls))
    return False


# The field types msgspec builds without calling anything of the user's.
_PLAIN_TYPES: Final = frozenset(
    {int, float, str, bytes, bytearray, bool, type(None), object, Any, Cell, list, dict, tuple}
)


def _user_class_in(hint: Any) -> bool:
    """Whether ``hint`` names (at any depth: ``list[Color] | None``) a class whose building may
    run the user's code: anything but the plain types msgspec builds itself."""
    args = typing.get_args(hint)
    origin = typing.get_origin(hint)
    if args:
        if origin is typing.Literal:
            return False
        if origin is typing.Annotated:
            return _user_class_in(args[0])
        return (isinstance(origin, type) and _user_class_in(origin)) or any(
            _user_class_in(arg) for arg in args if arg is not Ellipsis
        )
    return hint not in _PLAIN_TYPES and isinstance(hint, type) and not _is_builtin(hint)


def _is_builtin(cls: type) -> bool:
    """A class of the standard library's that msgspec builds itself (datetime, Decimal, UUID…)."""
    return cls.__module__ in ("builtins", "datetime", "decimal", "uuid", "collections.abc")


def build_rows(decode: RowDecoder, result: StatementResult) -> list[Any]:
    """``decode(result)``, a large result in parts of ``_PART_ROWS`` rows: msgspec converts a
    part in one C call, which keeps the interpreter lock throughout, so a query worker building
    a large result lets the scheduler thread run between parts (R44, R54). Each part is built
    as the whole would be, and fails as the whole would: a field that does not fit is named by
    its column, and a missing one fails on the first row."""
    rows = result.rows
    if decode is _as_dicts or len(rows) <= _PART_ROWS or result.error is not None:
        return decode(result)
    built: list[Any] = []
    for start in range(0, len(rows), _PART_ROWS):
        part = StatementResult(result.names, rows[start : start + _PART_ROWS])
        built.extend(decode(part))
    return built


_BULK_ROWS = 1024  # rows from which a decode pauses the cyclic garbage collector


class _PausedCollector:
    """Pause the cyclic garbage collector while many rows are built: each row makes a few
    tracked objects (the row, its cells) that all survive, and the collector would walk them
    again and again as they pile up (a quarter of the time of 20,000 typed rows with links).
    Nothing is left uncollected: objects freed meanwhile are freed by their reference counts,
    and cycles wait for the next pass, milliseconds later. Leaves a collector that was already
    paused (by the application) as it was."""

    __slots__ = ("_paused",)

    def __init__(self, given: StatementResult | list[Any]) -> None:
        count = len(given.rows) if isinstance(given, StatementResult) else len(given)
        self._paused = count >= _BULK_ROWS and gc.isenabled()

    def __enter__(self) -> None:
        if self._paused:
            gc.disable()

    def __exit__(self, *_exc: object) -> None:
        if self._paused:
            gc.enable()


def _general_decoder(
    row: type, cells: _Cells, cell_fields: list[str], *, db_id: str, sql: str
) -> Callable[[StatementResult], list[Any]]:
    """Rows as dicts whose link columns are decoded first (as columns, into cells or ``None``),
    converted by msgspec, which takes a cell in a Cell field as it is. A NULL or invalid link is
    ``None`` in its field from the start, so a ``__post_init__`` sees ``None`` (R43); a field
    typed ``Cell`` alone, which msgspec refuses ``None`` for, is handled by ``_with_null_cells``.
    Whatever building a row raises is a :class:`QueryError` naming the row type."""
    hints = _type_hints(row)
    many = list[row]  # type: ignore[valid-type]  # a runtime type argument, on purpose
    column_of = _column_names(row)
    links = [column_of.get(n, n) for n in cell_fields]  # the Cell fields' column names
    refusing_none = {column_of.get(n, n): n for n in cell_fields if not _takes_none(hints.get(n))}
    # An array-like Struct encodes as an array, but rows have named columns: it is built by
    # name, as any other row type, through a twin that is not array-like.
    by_name = _is_array_like(row)

    def with_cells(result: StatementResult, present: list[str]) -> list[dict[str, Any]]:
        rows = result.as_dicts()
        if not present:
            return rows
        columns = [cells.column([r.get(name) for r in rows]) for name in present]
        built = []
        for given, decoded in zip(rows, zip(*columns, strict=True), strict=True):
            item = dict(given)  # the result's own dicts stay as read
            for name, cell in zip(present, decoded, strict=True):
                if name in item:
                    item[name] = cell
            built.append(item)
        return built

    def decode(result: StatementResult) -> list[Any]:
        present = [n for n in links if n in result.names]
        rows = with_cells(result, present)
        nulls = {
            column: name
            for column, name in refusing_none.items()
            if column in present and any(r.get(column) is None for r in rows)
        }
        try:
            if nulls or by_name:
                return _with_null_cells(row, hints, cell_fields, rows, nulls)
            built: list[Any] = convert(rows, many)
        except msgspec.ValidationError as exc:
            raise _query_error(exc, row, result, db_id=db_id, sql=sql) from exc
        except SqliteCellsError:
            raise
        except BaseException as exc:  # the row type's own code (__post_init__) raised
            if not _failed_itself(exc):
                raise
            raise _raised_error(exc, row, db_id=db_id, sql=sql) from exc
        return built

    return decode


def _column_names(row: type) -> dict[str, str]:
    """Field name → column name, where they differ (a Struct's ``rename``)."""
    if issubclass(_class_of(row), msgspec.Struct):
        return {f.name: f.encode_name for f in msgspec.structs.fields(row)}
    return {}


def _is_array_like(row: type) -> bool:
    cls = _class_of(row)
    return issubclass(cls, msgspec.Struct) and cls.__struct_config__.array_like


def _takes_none(hint: Any) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in (
        typing.get_args(hint)
    )


def _with_null_cells(
    row: type,
    hints: dict[str, Any],
    cell_fields: list[str],
    rows: list[dict[str, Any]],
    nulls: dict[str, str],
) -> list[Any]:
    """Rows of a type with a field typed ``Cell`` (not ``Cell | None``) that holds ``None`` for
    some row (R43: NULL or not a link); ``nulls`` maps such fields' columns to their names.
    msgspec checks a Cell field's value is a cell, so:

    - a row type running no code of its own while built (no ``__post_init__``: msgspec sets
      fields without calling ``__init__``) is built with a placeholder cell in those fields,
      replaced by ``None`` right after — nothing sees it;
    - else msgspec checks the other fields on a twin Struct whose Cell fields take any value,
      and each row is built by calling the row type, so its ``__post_init__`` sees ``None``.
      An array-like Struct (which msgspec builds from arrays only) is built this way too."""
    if not hasattr(_class_of(row), "__post_init__") and not _is_array_like(row):
        marked = [
            {k: (_NO_CELL if v is None and k in nulls else v) for k, v in r.items()} for r in rows
        ]
        built: list[Any] = convert(marked, list[row])  # type: ignore[valid-type]
        setter = _setter(row)
        for item in built:
            for name in nulls.values():
                if _value(item, name) is _NO_CELL:
                    setter(item, name, None)
        return built
    twin = _twin(row, hints, set(cell_fields))
    names = twin.__struct_fields__
    checked = convert(rows, list[twin])  # type: ignore[valid-type]
    return [row(**{name: getattr(item, name) for name in names}) for item in checked]


def _twin(row: type, hints: dict[str, Any], cell_names: set[str]) -> type[msgspec.Struct]:
    """A Struct with ``row``'s constructor arguments, types, defaults and column names, except
    that Cell fields take any value."""
    spec: list[Any] = []
    options: dict[str, Any] = {}
    cls = _class_of(row)
    if issubclass(cls, msgspec.Struct):
        config = cls.__struct_config__
        options = {
            "tag": config.tag,
            "tag_field": config.tag_field,
            "forbid_unknown_fields": config.forbid_unknown_fields,
        }
        for f in msgspec.structs.fields(row):
            given = {"default": f.default, "default_factory": f.default_factory}
            kind = Any if f.name in cell_names else f.type
            spec.append((f.name, kind, msgspec.field(**given, name=f.encode_name)))
    else:  # a dataclass (a TypedDict has no __post_init__)
        for d in dataclasses.fields(cls):  # type: ignore[arg-type]  # checked by the caller
            if not d.init:
                continue
            given = {
                "default": msgspec.NODEFAULT if d.default is dataclasses.MISSING else d.default,
                "default_factory": (
                    msgspec.NODEFAULT
                    if d.default_factory is dataclasses.MISSING
                    else d.default_factory
                ),
            }
            kind = Any if d.name in cell_names else hints[d.name]
            spec.append((d.name, kind, msgspec.field(**given)))
    return msgspec.defstruct(f"{row.__name__}Checked", spec, kw_only=True, gc=False, **options)


class _StructRows:
    """Builds a plain msgspec Struct row type from row tuples without a dict per row.

    msgspec converts the tuples into a shadow struct (``array_like``, one per column layout)
    that has the row type's fields and types except that Cell fields take any value, in one C
    call; the Cell fields' columns are decoded as columns; the rows are then built by calling
    the row type with positional arguments. Raises whatever fails: the caller then takes the
    general way, which raises the error to report."""

    def __init__(self, row: type[msgspec.Struct], cell_names: set[str]) -> None:
        self.row = row
        self.fields = msgspec.structs.fields(row)
        self.cell_names = cell_names
        self.getters = [attrgetter(f.name) for f in self.fields]
        self.keys = [itemgetter(f.encode_name) for f in self.fields]
        exact = [None if f.name in cell_names else _exact_types(f.type) for f in self.fields]
        # Per field, the types msgspec returns unchanged (None: a Cell field, any value); None
        # when a field needs msgspec's conversion.
        self.exact: list[frozenset[type] | None] | None = (
            None if any(e == frozenset() for e in exact) else exact
        )
        self.positions: dict[tuple[str, ...], list[int] | None] = {}
        config = row.__struct_config__
        self.forbid_unknown = config.forbid_unknown_fields
        self.named = msgspec.defstruct(
            f"{row.__name__}Shadow",
            [(f.name, self._type(f), self._default(f, f.encode_name)) for f in self.fields],
            forbid_unknown_fields=self.forbid_unknown,
            gc=False,  # transient, and it holds only the row's values: no cycle runs through it
        )
        self.layouts: dict[tuple[str, ...], type[msgspec.Struct] | None] = {}

    @classmethod
    def for_row(cls, row: type, hints: dict[str, Any]) -> _StructRows | None:
        """The fast builder for ``row`` (made once per row type: a one-row ``read`` pays for
        no new types), or None when the general way must build it."""
        known = _STRUCT_ROWS.get(row, _UNKNOWN)  # one probe: another thread may clear it
        if known is not _UNKNOWN:
            return known  # type: ignore[no-any-return]
        found = cls._new(row, hints)
        if len(_STRUCT_ROWS) >= _SHADOWS_SIZE:
            _STRUCT_ROWS.clear()
        _STRUCT_ROWS[row] = found
        return found

    @classmethod
    def _new(cls, row: type, hints: dict[str, Any]) -> _StructRows | None:
        """None for: not a Struct; array-like or tagged; keyword-only fields; a Cell field typed
        otherwise than ``Cell``/``Cell | None`` or with a default other than None."""
        if not (isinstance(row, type) and issubclass(row, msgspec.Struct)):
            return None
        config = row.__struct_config__
        if config.array_like or config.tag is not None:
            return None
        try:
            parameters = inspect.signature(row).parameters.values()
        except ValueError:  # a field named as a Python keyword (``from``): no signature shows it
            return None
        if any(p.kind is not inspect.Parameter.POSITIONAL_OR_KEYWORD for p in parameters):
            return None
        cell_names = set()
        for f in msgspec.structs.fields(row):
            hint = hints.get(f.name)
            if not _is_cell_type(hint):
                continue
            if not _is_plain_cell_type(hint) or f.default_factory is not msgspec.NODEFAULT:
                return None
            if f.default not in (msgspec.NODEFAULT, None):
                return None
            cell_names.add(f.name)
        if not cell_names or not row.__struct_fields__:
            return None  # nothing to gain over msgspec alone
        return cls(row, cell_names)

    def _type(self, f: msgspec.structs.FieldInfo) -> Any:
        return Any if f.name in self.cell_names else f.type

    @staticmethod
    def _default(f: msgspec.structs.FieldInfo, name: str | None = None) -> Any:
        given: dict[str, Any] = {"default": f.default, "default_factory": f.default_factory}
        return msgspec.field(**given, name=name)

    def build(self, given: StatementResult | list[dict[str, Any]], cells: _Cells) -> list[Any]:
        columns = self._exact_columns(given)
        if columns is None:
            shadows = self._shadows(given)
            columns = [list(map(getter, shadows)) for getter in self.getters]
        for index, f in enumerate(self.fields):
            if f.name in self.cell_names:
                columns[index] = cells.column(columns[index])
        return list(map(self.row, *columns))

    def _shadows(self, given: StatementResult | list[dict[str, Any]]) -> list[Any]:
        if isinstance(given, StatementResult):
            shadow = self._layout(given.names)
            if shadow is not None:
                built: list[Any] = convert(given.rows, list[shadow])  # type: ignore[valid-type]
                return built
            given = given.as_dicts()
        named: list[Any] = convert(given, list[self.named])  # type: ignore[name-defined]
        return named

    def _exact_columns(
        self, given: StatementResult | list[dict[str, Any]]
    ) -> list[list[Any]] | None:
        """The fields' columns when every value already has a type msgspec would return
        unchanged for its field (an ``int`` for ``int``, ``None`` for ``int | None``...):
        then there is nothing to convert, and no shadow to build. None otherwise."""
        if self.exact is None:
            return None
        if isinstance(given, StatementResult):
            positions = self._positions(given.names)
            if positions is None:
                return None
            rows: list[Any] = given.rows
            columns = [list(map(itemgetter(i), rows)) for i in positions]
        else:
            if self.forbid_unknown:
                return None
            try:
                columns = [list(map(key, given)) for key in self.keys]
            except (KeyError, TypeError):  # a field missing (a default, or an error), not a dict
                return None
        for values, allowed in zip(columns, self.exact, strict=True):
            if allowed is not None and not set(map(type, values)) <= allowed:
                return None
        return columns

    def _positions(self, names: tuple[str, ...]) -> list[int] | None:
        """Each field's column (the last of that name, as in a dict), or None when a field has
        no column or an unknown column is forbidden."""
        known = self.positions.get(names, _UNKNOWN)
        if known is not _UNKNOWN:
            return known  # type: ignore[no-any-return]
        found: list[int] | None = None
        where = {name: index for index, name in enumerate(names)}
        forbidden = self.forbid_unknown and where.keys() - {f.encode_name for f in self.fields}
        if not forbidden and all(f.encode_name in where for f in self.fields):
            found = [where[f.encode_name] for f in self.fields]
        if len(self.positions) >= _SHADOWS_SIZE:
            self.positions.clear()
        self.positions[names] = found
        return found

    def _layout(self, names: tuple[str, ...]) -> type[msgspec.Struct] | None:
        """The array-like shadow for rows with these columns, or None when only dicts can say
        what the general way would (a column named twice: the last one wins; an unknown column
        the row type forbids; a required field no column names)."""
        known = self.layouts.get(names, _UNKNOWN)
        if known is not _UNKNOWN:
            return known  # type: ignore[no-any-return]
        shadow = self._new_layout(names)
        if len(self.layouts) >= _SHADOWS_SIZE:
            self.layouts.clear()
        self.layouts[names] = shadow
        return shadow

    def _new_layout(self, names: tuple[str, ...]) -> type[msgspec.Struct] | None:
        if len(set(names)) != len(names):
            return None
        by_column = {f.encode_name: f for f in self.fields}
        taken = {f.name for f in self.fields}
        spec: list[Any] = []
        for index, name in enumerate(names):
            f = by_column.pop(name, None)
            if f is not None:
                spec.append((f.name, self._type(f)))
                continue
            if self.forbid_unknown:
                return None
            ignored = f"column{index}"
            while ignored in taken:
                ignored += "_"
            taken.add(ignored)
            spec.append((ignored, Any))
        for f in by_column.values():  # fields no column names: their defaults, after the columns
            if f.required:
                return None
            spec.append((f.name, self._type(f), self._default(f)))
        return msgspec.defstruct(f"{self.row.__name__}Columns", spec, array_like=True, gc=False)


_EXACT = (int, str, float, bool, bytes)


def _exact_types(hint: Any) -> frozenset[type]:
    """The value types msgspec's strict conversion returns unchanged for a field of type
    ``hint`` (empty: it may convert, or check more than the type)."""
    if hint in _EXACT:
        return frozenset((hint,))
    other = one_type(hint)  # T for T | None
    if other is not hint and other in _EXACT:
        return frozenset((other, type(None)))
    return frozenset()


def _value(item: Any, name: str) -> Any:
    return item.get(name) if isinstance(item, dict) else getattr(item, name, None)


def _setter(row: type) -> Callable[[Any, str, Any], None]:
    cls = _class_of(row)
    if issubclass(cls, msgspec.Struct):
        return msgspec.structs.force_setattr
    if typing.is_typeddict(cls):
        return lambda item, name, value: item.__setitem__(name, value)
    return object.__setattr__  # dataclasses, frozen ones included


def _failed_itself(exc: BaseException) -> bool:
    """Whether ``exc``, raised while building rows, is the row type's own failure: anything
    but, on the main thread, SystemExit and KeyboardInterrupt — the user's exit or Ctrl-C, which
    go on up. Signals reach the main thread only, so elsewhere those are the row type's own
    raise too; raised there, as any BaseException of the row type's (GeneratorExit, a class of
    its own), it would end a query worker or the scheduler's work and leave the query waiting
    or stale."""
    if not isinstance(exc, SystemExit | KeyboardInterrupt):
        return True
    return threading.current_thread() is not threading.main_thread()


def _raised_error(exc: BaseException, row: type, *, db_id: str, sql: str) -> QueryError:
    return QueryError(
        db_id,
        sql,
        f"building a {row.__name__} row raised {exception_text(exc)}; make "
        f"{row.__name__} (its __post_init__ or field types) accept every row the query returns, "
        "or select only the rows it accepts",
    )


def _query_error(
    exc: msgspec.ValidationError, row: type, result: StatementResult, *, db_id: str, sql: str
) -> QueryError:
    if exc.__cause__ is not None:  # the row type's own code raised ValueError or TypeError
        return _raised_error(exc.__cause__, row, db_id=db_id, sql=sql)
    message = str(exc)
    # A path into a column (a missing field at the top, "$[0]", is a column the row lacks).
    found = _AT_FIELD.search(message)
    if found is not None:
        key, path = found.group(1, 2)
        column = _column_at(path, result.names)
        what = message.split(" - at ")[0]
        inside = key is not None or path != column  # inside the column's JSON value
        if key is not None:
            what += f" (at a key of {path})"
        elif inside:
            what += f" (at {path})"
        if inside and _TEXT_FOR_BYTES.match(what):
            advice = (
                "JSON holds no bytes, and its text is not read as base64: type that part str, "
                "or select the blob as a column of its own"
            )
        elif key is not None:
            advice = (
                "a JSON object's keys are text: select an object whose keys the field takes, "
                "or change the key type (str takes any)"
            )
        elif inside or _NOT_OF_THAT_SHAPE.match(what):
            advice = (
                "select JSON text of that shape (json_group_array, json_object) or change the "
                "field's type"
            )
        else:
            advice = "cast it in SQL or change the field's type"
        return QueryError(
            db_id,
            sql,
            f"column {column!r} does not fit field {row.__name__}.{_field_of(row, column)}: "
            f"{what}; {advice}",
        )
    return QueryError(
        db_id,
        sql,
        f"cannot build {row.__name__} from columns {list(result.names)}: {message}; name the "
        "columns like the fields (use AS aliases)",
    )


def _field_of(row: type, column: str) -> str:
    """The name of the field read from ``column`` (a Struct may rename its fields)."""
    return next((f for f, c in _column_names(row).items() if c == column), column)


def _column_at(path: str, names: tuple[str, ...]) -> str:
    """The column a msgspec error path (``v`` or, inside a JSON value, ``v[0].x``) starts
    with: the longest column name it begins with."""
    starts = [name for name in names if path == name or path.startswith((name + "[", name + "."))]
    return max(starts, key=len, default=path)


def _as_result(given: StatementResult | list[dict[str, Any]]) -> StatementResult:
    if isinstance(given, StatementResult):
        return given
    names = tuple(given[0]) if given else ()
    return StatementResult(names, [], dicts=given)


def _as_dicts(given: StatementResult | list[dict[str, Any]]) -> list[Any]:
    _check_readable(given, frozenset())
    return _as_result(given).as_dicts()


def _check_readable(given: StatementResult | list[dict[str, Any]], links: frozenset[str]) -> None:
    """Raise the error of a result that failed, unless it failed only on stored text that is
    not UTF-8 in columns read as links (``links``): such a value is not a valid link, which
    reads as ``None`` without failing the query (R43)."""
    if not isinstance(given, StatementResult) or given.error is None:
        return
    if given.invalid_text is None or not given.invalid_text <= links:
        raise given.error
