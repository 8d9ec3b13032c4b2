"""Which column each bound parameter of a write statement targets (R31).

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
  ``SET a = ? || 'x'``) targets no column: ``None``.  The scan found them
  (:mod:`sqlite_cells.sql._targets`); this module merges them per parameter.

Decisions:

* ``INSERT INTO t VALUES (…)`` without a column list: positions are resolved through the optional
  ``columns_of(table)`` callback, which must return the columns a ``VALUES`` row fills, in the
  *stored* order (``PRAGMA table_info``, generated columns excluded). Without it, or when it raises
  ``LookupError``, those parameters target ``None`` (a cell bound there is then refused).
* A slot used several times (``?1`` twice, ``:x`` twice, or ``:x`` and ``?1`` naming the same
  number) targets a column only when every use targets that same column; otherwise ``None``.
* ``REPLACE INTO`` and ``UPDATE OR <action>``, which sqlglot does not parse, are rewritten to
  forms it does before parsing. A statement sqlglot still cannot parse maps every parameter to
  ``None``; the count stays exact because it is lexical.
* Only the first 32766 numbers exist in SQLite; a ``?0`` or a larger number makes SQLite refuse
  the statement when it is prepared, so such uses are ignored here.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, cast

from sqlite_cells.sql._kinds import Target
from sqlite_cells.sql._statement import CACHE_MAX_ENTRIES, CACHE_MAX_SQL_LENGTH, scan_sql

__all__ = ["ParamTargets", "map_params"]


@dataclass(frozen=True, slots=True)
class ParamTargets:
    """Target column (lowercased) of each parameter of one statement, ``None`` for no column.

    ``positional[i]`` describes SQLite's parameter number ``i + 1``; it has ``count`` entries and
    covers named parameters too (they also have numbers). ``named`` maps a ``:name``, ``@name`` or
    ``$name`` parameter, without its prefix, to its target. ``count`` equals SQLite's
    ``sqlite3_bind_parameter_count``.
    """

    positional: tuple[str | None, ...]
    named: Mapping[str, str | None]
    count: int


_Target = Target
_NUMBERS: Final = tuple(range(1, 1001))
_NO_NAMES: Final[Mapping[str, str | None]] = MappingProxyType({})


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
    """
    analysis, fixed = _analysis(sql) if len(sql) <= CACHE_MAX_SQL_LENGTH else _analyze(sql)
    return fixed if fixed is not None else _targets(analysis, columns_of)


def _targets(
    analysis: _Analysis, columns_of: Callable[[str], Sequence[str]] | None
) -> ParamTargets:
    if not analysis.names and analysis.slots == _NUMBERS[: len(analysis.slots)]:
        # "?, ?, ?": one occurrence per number, in order.
        positional = tuple(_resolve(target, columns_of) for target in analysis.targets)
        return ParamTargets(positional, _NO_NAMES, analysis.count)
    merged: dict[int, set[str | None]] = {}
    for slot, target in zip(analysis.slots, analysis.targets, strict=True):
        if slot:
            merged.setdefault(slot, set()).add(_resolve(target, columns_of))
    by_slot = {slot: (next(iter(ts)) if len(ts) == 1 else None) for slot, ts in merged.items()}
    positional = tuple(by_slot.get(i) for i in range(1, analysis.count + 1))
    named: dict[str, str | None] = {}
    for name, slot in analysis.names:
        # ":a" and "$a" are two slots sharing one unprefixed name: agree or None.
        target = by_slot.get(slot)
        named[name] = target if named.get(name, target) == target else None
    return ParamTargets(positional, MappingProxyType(named), analysis.count)


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
    return columns[position].lower() if position < len(columns) else None


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
