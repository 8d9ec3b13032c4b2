"""Which column each bound parameter of a statement targets (R31).

``db.exec(sql, params)`` encodes a cell bound to a ``*_cf_link`` column as a link string and
refuses a cell bound anywhere else; to do so it must know, per parameter, the column it is bound
to. :func:`map_params` answers that.

How it works:

* **Numbering is lexical.** SQLite numbers parameters while *tokenizing* (``?`` takes the next
  number, ``?NNN`` takes NNN, a ``:name``/``@name``/``$name`` takes the next number on first use
  and keeps it); the front end (:func:`~sqlite_cells.sql._statement.scan_sql`) already did it.
* **Targets are syntactic.** A parameter that is the *whole* value of a column (a ``VALUES``
  cell, a select-list item of ``INSERT … SELECT``, the right side of ``SET col = …`` in
  ``UPDATE`` or an upsert) gets that column; anything else (``WHERE``, ``RETURNING``, CTEs,
  ``SET a = ? || 'x'``) targets no column: ``None``.  In a read (``db.read``/``db.query``),
  a parameter compared with a ``*_cf_link`` column gets that column (a cell there must hold a
  link, :func:`~sqlite_cells.sql._binding.check_cell_value`).  The scan found them
  (:mod:`sqlite_cells.sql._targets`); this module merges them per parameter.

Decisions:

* ``INSERT INTO t VALUES (…)`` without a column list: positions are resolved through the optional
  ``columns_of(table)`` callback, which must return the columns a ``VALUES`` row fills, in the
  *stored* order (``PRAGMA table_info``, generated columns excluded). Without it, or when it raises
  ``LookupError``, those parameters target ``None`` (a cell bound there is then refused).
* A slot used several times (``?1`` twice, ``:x`` twice, or ``:x`` and ``?1`` naming the same
  number) is bound once, so its one value goes to every use. When every use targets a link
  column it targets a link column (the first of them by name: a ``Cell`` there is stored as the
  same link in each); when none does, it is a plain value (``None``, or the column when all uses
  target the same one); when some do and others do not (another column, or no column: a
  ``WHERE``) it is *mixed*: its target is ``None`` and :attr:`ParamTargets.mixed` lists the uses,
  so that binding refuses anything but ``None`` there (a link column takes only a cell, the rest
  never one). ``:x`` and ``$x`` are two slots bound from one mapping key: the key is merged over
  both the same way.
* ``REPLACE INTO`` and ``UPDATE OR <action>``, which sqlglot does not parse, are rewritten to
  forms it does before parsing. A statement sqlglot still cannot parse maps every parameter to
  ``None``; the count stays exact because it is lexical.
* Only the first 32766 numbers exist in SQLite; a ``?0`` or a larger number makes SQLite refuse
  the statement when it is prepared, so such uses are ignored here.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final, cast

from sqlite_cells.runtime import plain_text
from sqlite_cells.sql._kinds import Target
from sqlite_cells.sql._names import fold_ascii, is_link_column
from sqlite_cells.sql._statement import CACHE_MAX_ENTRIES, CACHE_MAX_SQL_LENGTH, scan_sql

__all__ = ["ParamTargets", "map_params"]


@dataclass(frozen=True, slots=True)
class ParamTargets:
    """Target column (lowercased) of each parameter of one statement, ``None`` for no column.

    ``positional[i]`` describes SQLite's parameter number ``i + 1``; it has ``count`` entries and
    covers named parameters too (they also have numbers). ``named`` maps a ``:name``, ``@name`` or
    ``$name`` parameter, without its prefix, to its target. ``count`` equals SQLite's
    ``sqlite3_bind_parameter_count``. ``mixed`` maps each parameter (its number, or its name)
    whose uses target both link columns and other columns (or none) to those targets, sorted,
    ``None`` last; its entry in ``positional``/``named`` is ``None``. ``is_all_named`` is true
    when every number has a name, so that a mapping binds them all (``:x`` and ``$x`` are two
    numbers and one name: ``named`` is then shorter than ``count``).
    """

    positional: tuple[str | None, ...]
    named: Mapping[str, str | None]
    count: int
    mixed: Mapping[int | str, tuple[str | None, ...]] = field(default_factory=lambda: _NO_MIXED)
    is_all_named: bool = False


_Target = Target
_NUMBERS: Final = tuple(range(1, 1001))
_NO_NAMES: Final[Mapping[str, str | None]] = MappingProxyType({})
_NO_MIXED: Final[Mapping[int | str, tuple[str | None, ...]]] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class _Analysis:
    count: int
    slots: tuple[int, ...]  # per occurrence: its 1-based SQLite number (0: out of range)
    targets: tuple[_Target, ...]  # per occurrence
    names: tuple[tuple[str, int], ...]  # (name without prefix, number)


def map_params(sql: str, columns_of: Callable[[str], Sequence[str]] | None = None) -> ParamTargets:
    """The target column of every parameter of ``sql`` (R31); see the module docstring.

    ``columns_of(table)`` resolves ``INSERT INTO table VALUES (…)`` without a column list. The
    analysis is cached per ``sql`` text (bounded), so ``columns_of`` is called on every call.
    A ``str`` subclass is read as its text (its own ``__eq__`` or ``__hash__`` would find another
    text's analysis).
    """
    sql = plain_text(sql)
    analysis, fixed = _analysis(sql) if len(sql) <= CACHE_MAX_SQL_LENGTH else _analyze(sql)
    return fixed if fixed is not None else _targets(analysis, columns_of)


def _targets(
    analysis: _Analysis, columns_of: Callable[[str], Sequence[str]] | None
) -> ParamTargets:
    if not analysis.names and analysis.slots == _NUMBERS[: len(analysis.slots)]:
        # "?, ?, ?": one occurrence per number, in order.
        positional = tuple(_resolve(target, columns_of) for target in analysis.targets)
        return ParamTargets(positional, _NO_NAMES, analysis.count)
    uses: dict[int, set[str | None]] = {}
    for slot, target in zip(analysis.slots, analysis.targets, strict=True):
        if slot:
            uses.setdefault(slot, set()).add(_resolve(target, columns_of))
    mixed: dict[int | str, tuple[str | None, ...]] = {}
    positional = tuple(_merge(uses.get(i), i, mixed) for i in range(1, analysis.count + 1))
    # ":a" and "$a" are two slots that one mapping key binds: merged over both.
    by_name: dict[str, set[str | None]] = {}
    for name, slot in analysis.names:
        by_name.setdefault(name, set()).update(uses.get(slot, ()))
    named = {name: _merge(targets, name, mixed) for name, targets in by_name.items()}
    numbered = {slot for _name, slot in analysis.names}
    return ParamTargets(
        positional,
        MappingProxyType(named),
        analysis.count,
        MappingProxyType(mixed) if mixed else _NO_MIXED,
        is_all_named=bool(named) and numbered.issuperset(range(1, analysis.count + 1)),
    )


def _merge(
    targets: set[str | None] | None,
    key: int | str,
    mixed: dict[int | str, tuple[str | None, ...]],
) -> str | None:
    """The target of a parameter whose uses target ``targets`` (see the module docstring);
    a mixed one is entered in ``mixed`` under ``key``."""
    if not targets:
        return None  # a number no parameter uses (below a ?NNN)
    if len(targets) == 1:
        return next(iter(targets))
    links = sorted(t for t in targets if t is not None and is_link_column(t))
    if len(links) == len(targets):
        return links[0]
    if links:
        others = sorted(t for t in targets if t is not None and not is_link_column(t))
        mixed[key] = (*links, *others, *([None] if None in targets else []))
    return None


def _resolve(target: _Target, columns_of: Callable[[str], Sequence[str]] | None) -> str | None:
    if not isinstance(target, tuple):
        return target
    if columns_of is None:
        return None
    table, position = target
    try:
        columns = columns_of(table)
    except LookupError:
        return None
    # SQLite's folding (ASCII only): str.lower() turns a Kelvin sign into k, so a column
    # ending in "_cf_lin\u212a" would read as a link column (R11).
    return fold_ascii(columns[position]) if position < len(columns) else None


@functools.lru_cache(maxsize=CACHE_MAX_ENTRIES)
def _analysis(sql: str) -> tuple[_Analysis, ParamTargets | None]:
    return _analyze(sql)


def _analyze(sql: str) -> tuple[_Analysis, ParamTargets | None]:
    """The statement's parameters and their targets, and the answer itself when it does not
    depend on ``columns_of`` (no INSERT without a column list)."""
    statement = scan_sql(sql)  # cached: the guard scanned this text already
    params = statement.params
    slots = tuple([slot for _index, slot in params])
    targets = statement.targets or (None,) * len(params)
    names = statement.param_names
    analysis = _Analysis(statement.param_count, slots, targets, names)
    if tuple in map(type, targets):
        return analysis, None  # INSERT without a column list: columns_of decides
    if not names and slots == _NUMBERS[: len(slots)]:
        # "?, ?, ?": one occurrence per number, in order, each target a column or None.
        positional = cast("tuple[str | None, ...]", targets)  # no (table, position): see above
        return analysis, ParamTargets(positional, _NO_NAMES, statement.param_count)
    return analysis, _targets(analysis, None)
