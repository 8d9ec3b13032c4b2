"""What SQLite keeps of a table only in its ``CREATE TABLE`` text (R13).

SQLite's pragmas report types, NOT NULL, defaults, keys, collations, indexes and foreign keys,
but not the CHECK expressions, a generated column's expression, the ``ON CONFLICT`` clause of a
PRIMARY KEY, NOT NULL or UNIQUE constraint, nor whether a foreign key is ``DEFERRABLE INITIALLY
DEFERRED``. They are read here from the stored text, token by token along SQLite's grammar for
column definitions and table constraints (``lang_createtable``), so a table ``migrate`` wrote
with any spelling, quoting or layout reads the same as the declaration's.

Expressions are kept twice: normalized (case, spacing and name quoting do not count, string
literals do; see :func:`norm`) to compare, and as written to show in a difference.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from sqlite_cells.sql import BLOB, NUMBER, OP, QUOTED, WORD, Word, fold_ascii, scan_sql

__all__ = [
    "ColumnText",
    "Expr",
    "TableText",
    "index_where",
    "lone_word_default",
    "norm",
    "norm_default",
    "read_table_text",
]

DEFAULT_CONFLICT: Final = "ABORT"
_TABLE_CONSTRAINTS: Final = frozenset({"CONSTRAINT", "PRIMARY", "UNIQUE", "CHECK", "FOREIGN"})


# Operators SQLite reads as the same one.
_SAME_OPERATOR: Final = {"<>": "!=", "==": "="}


# Words a default may be that are keywords, not text (see norm_default).
_DEFAULT_KEYWORDS: Final = frozenset(
    {"NULL", "TRUE", "FALSE", "CURRENT_TIME", "CURRENT_DATE", "CURRENT_TIMESTAMP"}
)


def norm(text: str | None, columns: frozenset[str] | None = None) -> str:
    """Case-, spacing- and name-quoting-insensitive form of a type, default or expression
    (string literals kept verbatim): names and keywords, numbers (``1E6``, ``0X10``) and blob
    literals (``X'AB'``) in any case, ``<>``/``!=`` and ``==``/``=``, and parentheses around
    the whole text count as the same. Quoting matters: ALTER … RENAME COLUMN rewrites
    references to the column in CHECKs as quoted names.

    A double-quoted word that names none of ``columns`` (the table's, ASCII-folded) is a
    string literal to SQLite, and kept verbatim as one: ``CHECK (b != "x")`` differs from
    ``CHECK (b != "X")``. Without ``columns`` (a default, a type), every double-quoted word is
    (a default names no column)."""
    words = scan_sql(text or "").words()
    while len(words) >= 2 and _is(words[0], "(") and _close(words, 0) == len(words) - 1:
        words = words[1:-1]
    parts = []
    for t in words:
        if (
            t.kind == QUOTED
            and t.text.startswith('"')
            and (columns is None or fold_ascii(t.name) not in columns)
        ):
            parts.append(_as_string(t.name))
        elif t.kind in (WORD, QUOTED):
            parts.append(fold_ascii(t.name))
        elif t.kind in (NUMBER, BLOB):
            parts.append(t.text.lower())
        elif t.kind == OP:
            parts.append(_SAME_OPERATOR.get(t.text, t.text))
        else:
            parts.append(t.text)
    return " ".join(parts)


def lone_word_default(text: str) -> str | None:
    """The text a column default of one word or quoted name stands for — ``DEFAULT abc``,
    ``DEFAULT [abc]``, ``DEFAULT "abc"``: SQLite stores the text, it reads no name there —
    else None (an expression, or ``NULL``, ``TRUE``, ``FALSE``, ``CURRENT_TIME``…)."""
    words = scan_sql(text).words()
    if len(words) == 1 and words[0].kind in (WORD, QUOTED):
        word = words[0]
        if not (word.kind == WORD and fold_ascii(word.name).upper() in _DEFAULT_KEYWORDS):
            return word.name
    return None


def norm_default(text: str | None) -> str:
    """:func:`norm` of a column's default as SQLite reports it. A default of one word or
    quoted name is that text to SQLite (:func:`lone_word_default`): kept verbatim as the
    string it is, so ``abc`` and ``ABC`` differ and ``'abc'`` does not."""
    word = lone_word_default(text or "")
    return norm(text) if word is None else _as_string(word)


def _as_string(text: str) -> str:
    """``text`` as a string literal's normal form (see :func:`norm`)."""
    return "'" + text.replace("'", "''") + "'"


@dataclass(frozen=True, slots=True)
class Expr:
    """An expression of the text: ``key`` compares, ``shown`` is what it says."""

    key: str
    shown: str


# (constraint, its columns): "PRIMARY KEY", "NOT NULL" or "UNIQUE" on lowercased column names
ConflictKey = tuple[str, tuple[str, ...]]


@dataclass(frozen=True, slots=True)
class ColumnText:
    checks: tuple[Expr, ...]
    generated: Expr | None


@dataclass(frozen=True, slots=True)
class TableText:
    columns: Mapping[str, ColumnText]  # by lowercased name
    checks: tuple[Expr, ...]  # table constraints
    # The ON CONFLICT resolution of each constraint the text has (DEFAULT_CONFLICT when none is
    # written), column or table constraint alike.
    conflicts: Mapping[ConflictKey, str]
    # Each foreign key (by its lowercased columns): whether it is DEFERRABLE INITIALLY DEFERRED.
    deferred: Mapping[tuple[str, ...], bool]


def _kw(word: Word) -> str:
    return word.text.upper() if word.kind == WORD else ""


def _is(word: Word, text: str) -> bool:
    return word.kind == OP and word.text == text


def _close(words: Sequence[Word], i: int) -> int:
    """The index of the ``)`` closing the ``(`` at ``i`` (``len(words)`` when unbalanced)."""
    depth = 0
    for j in range(i, len(words)):
        if _is(words[j], "("):
            depth += 1
        elif _is(words[j], ")"):
            depth -= 1
            if depth == 0:
                return j
    return len(words)


class _Reader:
    """Walks one column definition or table constraint (``words``, no outer comma)."""

    def __init__(self, sql: str, words: Sequence[Word], columns: frozenset[str]) -> None:
        self.sql, self.words, self.i = sql, words, 0
        self.columns = columns  # the table's, ASCII-folded (see norm)
        self.checks: list[Expr] = []
        self.generated: Expr | None = None
        self.conflicts: dict[ConflictKey, str] = {}
        self.deferred: dict[tuple[str, ...], bool] = {}

    def kw(self, offset: int = 0) -> str:
        j = self.i + offset
        return _kw(self.words[j]) if j < len(self.words) else ""

    def group(self) -> tuple[Expr, list[str]]:
        """The parenthesized group at ``i`` (as an expression, and as a list of names); moves
        past it."""
        words = self.words
        if self.i >= len(words) or not _is(words[self.i], "("):
            return Expr("", ""), []
        end = _close(words, self.i)
        inner = words[self.i + 1 : end]
        self.i = end + 1
        if not inner:
            return Expr("", ""), []
        last = inner[-1]
        shown = self.sql[inner[0].start : last.start + len(last.text)]
        # The first word of each comma-separated part: the column of an indexed column.
        starts = [0] + [j + 1 for j, w in enumerate(inner) if _is(w, ",")]
        names = [fold_ascii(inner[j].name) for j in starts if j < len(inner)]
        return Expr(norm(shown, self.columns), shown), names

    def conflict(self, key: ConflictKey) -> None:
        """After a PRIMARY KEY, NOT NULL or UNIQUE: its ON CONFLICT clause, if any."""
        resolution = DEFAULT_CONFLICT
        while self.kw() in ("ASC", "DESC"):
            self.i += 1
        if self.kw() == "ON" and self.kw(1) == "CONFLICT":
            resolution = self.kw(2) or DEFAULT_CONFLICT
            self.i += 3
        self.conflicts[key] = resolution

    def references(self, columns: tuple[str, ...]) -> None:
        """After REFERENCES: the foreign key clause, up to its deferral."""
        self.i += 2  # REFERENCES and the referenced table
        if self.i < len(self.words) and _is(self.words[self.i], "("):
            self.group()
        deferred = False
        while self.i < len(self.words):
            kw = self.kw()
            if kw == "ON" and self.kw(1) in ("DELETE", "UPDATE"):
                self.i += 4 if self.kw(2) in ("SET", "NO") else 3
            elif kw == "MATCH":
                self.i += 2
            elif kw == "NOT" and self.kw(1) == "DEFERRABLE":
                self.i += 2
                self.initially()
                deferred = False
            elif kw == "DEFERRABLE":
                self.i += 1
                deferred = self.initially()
            else:
                break
        self.deferred[columns] = deferred

    def initially(self) -> bool:
        if self.kw() == "INITIALLY":
            self.i += 2
            return self.kw(-1) == "DEFERRED"
        return False

    def column(self, name: str) -> None:
        """The constraints of column ``name`` (the words after its name)."""
        self.i = 1
        words, key = self.words, (name,)
        while self.i < len(words):
            kw = self.kw()
            if _is(words[self.i], "("):  # a type's size, such as varchar(10)
                self.group()
            elif kw == "CONSTRAINT":
                self.i += 2
            elif kw == "PRIMARY" and self.kw(1) == "KEY":
                self.i += 2
                self.conflict(("PRIMARY KEY", key))
            elif kw == "NOT" and self.kw(1) == "NULL":
                self.i += 2
                self.conflict(("NOT NULL", key))
            elif kw == "UNIQUE":
                self.i += 1
                self.conflict(("UNIQUE", key))
            elif kw == "CHECK":
                self.i += 1
                self.checks.append(self.group()[0])
            elif kw == "DEFAULT":
                self.i += 1
                if self.i < len(words) and _is(words[self.i], "("):
                    self.group()
                else:  # a literal, maybe signed
                    signed = self.i < len(words) and words[self.i].text in ("+", "-")
                    self.i += 2 if signed else 1
            elif kw == "COLLATE":
                self.i += 2
            elif kw == "REFERENCES":
                self.references(key)
            elif kw == "AS" or (kw == "GENERATED" and self.kw(1) == "ALWAYS"):
                self.i += 1 if kw == "AS" else 3
                self.generated = self.group()[0]
            else:  # type words, NULL, AUTOINCREMENT, STORED, VIRTUAL
                self.i += 1

    def constraint(self) -> None:
        """A table constraint."""
        if self.kw() == "CONSTRAINT":
            self.i += 2
        kw = self.kw()
        if kw == "CHECK":
            self.i += 1
            self.checks.append(self.group()[0])
            return
        self.i += 2 if kw in ("PRIMARY", "FOREIGN") else 1
        columns = tuple(self.group()[1])
        if kw == "FOREIGN":
            if self.kw() == "REFERENCES":
                self.references(columns)
        elif kw == "PRIMARY":
            self.conflict(("PRIMARY KEY", columns))
        elif kw == "UNIQUE":
            self.conflict(("UNIQUE", columns))


def _items(words: Sequence[Word]) -> list[list[Word]] | None:
    """The column definitions and table constraints of a CREATE TABLE, split at its commas."""
    start = next((i for i, w in enumerate(words) if _is(w, "(")), None)
    if start is None or any(_kw(w) == "USING" for w in words[:start]):
        return None  # not a plain table (CREATE VIRTUAL TABLE … USING …)
    items: list[list[Word]] = [[]]
    depth = 0
    for word in words[start + 1 :]:
        if _is(word, "("):
            depth += 1
        elif _is(word, ")"):
            if depth == 0:
                return [item for item in items if item]
            depth -= 1
        elif _is(word, ",") and depth == 0:
            items.append([])
            continue
        items[-1].append(word)
    return None


def read_table_text(sql: str) -> TableText | None:
    """What the ``CREATE TABLE`` text ``sql`` says that SQLite does not report; None when it
    is not a plain table definition."""
    items = _items(scan_sql(sql).words())
    if items is None:
        return None
    columns: dict[str, ColumnText] = {}
    checks: list[Expr] = []
    conflicts: dict[ConflictKey, str] = {}
    deferred: dict[tuple[str, ...], bool] = {}
    names = frozenset(
        fold_ascii(item[0].name) for item in items if _kw(item[0]) not in _TABLE_CONSTRAINTS
    )
    for item in items:
        reader = _Reader(sql, item, names)
        if _kw(item[0]) in _TABLE_CONSTRAINTS:
            reader.constraint()
            checks += reader.checks
        else:
            name = fold_ascii(item[0].name)
            reader.column(name)
            columns[name] = ColumnText(tuple(reader.checks), reader.generated)
        conflicts.update(reader.conflicts)
        deferred.update(reader.deferred)
    return TableText(columns, tuple(checks), conflicts, deferred)


def index_where(sql: str) -> str | None:
    """The condition of a partial index's ``CREATE INDEX … WHERE <condition>`` text ``sql``,
    as written (None when it has none): SQLite's pragmas say that an index is partial, not on
    what. It follows the group of indexed columns."""
    words = scan_sql(sql).words()
    start = next((i for i, w in enumerate(words) if _is(w, "(")), None)
    if start is None:
        return None
    rest = words[_close(words, start) + 1 :]
    if len(rest) < 2 or _kw(rest[0]) != "WHERE":
        return None
    last = rest[-1]
    return sql[rest[1].start : last.start + len(last.text)]
