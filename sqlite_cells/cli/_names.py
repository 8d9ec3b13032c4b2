"""Links shown by what they name, for the command line (SPEC §6).

A stored link is the JSON text of R30; on the command line it is never printed as such. Text
output shows ``→ NAME VALUE`` (the linked cell's name when the store records it, else its id,
then its committed value, read-only); JSON output shows ``{"cell", "space", "name", "path",
"value"}``. Values nested inside the linked value show their own links by name only, so a
cycle of links cannot make the output grow without bound.

Names: an id is derived from its cause by a one-way hash (R1), so a name can be shown only when
something tells it. The sources, first found wins:

* the ``_cf_names`` table of a space file (``id``, ``name`` and optionally ``kind``: the
  runtime records each top-level cell's and database's name there when it writes it by name), and
  the names given on the command line (``--name NAME``), which label the ids a top-level cell
  or database of that name would have in each space of the store;
* the piece records (``{"piece", "key", "inputs"}`` in the cell of the piece's id): a piece is
  named ``PATTERN/KEY`` and each of its input cells ``PATTERN/KEY.INPUT``;
* an injected file's handle names its file;
* names the store mentions — input names, piece keys, table names, short strings and object
  keys in cell values — tried as the names of top-level cells and databases and of the named
  cells of each piece: a name is shown only when it derives the very id, so it is never a
  guess, but a name the store never mentions stays unknown (pass it with ``--name``).
"""

from __future__ import annotations

from collections import OrderedDict
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self

import apsw
import msgspec

from sqlite_cells.cli._inspect import (
    InspectError,
    as_bytes,
    damaged_file,
    decoded,
    read_errors,
    read_only,
    table_names,
)
from sqlite_cells.codec import (
    EncodingError,
    Link,
    LinkDecodeError,
    decode_value,
    derive_id,
    parse_link,
)
from sqlite_cells.files import (
    DamagedSpace,
    damaged_spaces,
    foreign_owner,
    handle_value,
    is_dropped,
    quick_check,
    source_path,
    space_files,
    stored_json,
)
from sqlite_cells.read import LINK_MARK, LinkText
from sqlite_cells.runtime import SPACE_FILES, odd_kind

__all__ = ["LINK_MARK", "READERS", "Named", "Namer", "link_in"]

_MAX_TEXT = 200  # a linked value longer than this is cut in text output
# Space files a Namer keeps a connection to at once (each holds the file, its -wal and its -shm
# open): links into more spaces than this close the one read longest ago (see Namer).
READERS = 16


@dataclass(frozen=True, slots=True)
class Named:
    """What the store tells about an id: its name and its kind (``cell``, ``sqlite``,
    ``piece``… as recorded), both possibly unknown."""

    name: str
    kind: str | None = None


def link_in(value: Any) -> Link | None:
    """The link ``value`` holds when it is the stored text of one (any column may hold one,
    an alias can hide the ``_cf_link`` suffix), else None."""
    if not isinstance(value, str) or not value.startswith('{"/"'):
        return None
    try:
        return parse_link(value)
    except LinkDecodeError:
        return None


@dataclass
class Namer:
    """Resolves links and ids of one store to names and committed values, reading each space
    file read-only (never creating one: a link to a space the store does not hold reads None,
    as R7 says).

    The linked values are read through one connection per space file, opened at the first link
    into that space and kept, in one read transaction, until :meth:`close` (use the Namer as a
    context manager): opened anew for each link, as it was, a query of 20,000 rows with a link
    column opened 40,000 connections and took 14 s before its first line. At most
    :data:`READERS` such connections are open at once: a link into one more space closes the
    one used longest ago (a query linking into 400 spaces held 1,200 open files, past the usual
    limit of 1,024). Each linked cell is read once; a link seen again in a later row, or in the
    JSON of the same row, is not read again, so a cell shows one value throughout the output.
    The values read from one space come from one snapshot of it as long as its connection stays
    open (always, for a query linking into at most :data:`READERS` spaces); a space whose
    connection was closed and is opened again reads what is committed then. Spaces are never
    read in one snapshot together: each space file commits on its own."""

    root: Path
    extra_names: tuple[str, ...] = ()
    # The space the output is of (a query's SPACE): a link into another space says which.
    home: str | None = None
    # Leave out a space file that cannot be read for damage, as ``inspect`` and ``check`` find
    # it (``damaged`` lists them, for the command to report as ``inspect`` does); without it,
    # the first space file that cannot be read fails the command.
    skip_damaged: bool = False
    # Run SQLite's quick_check on each space file first, and refuse one it finds wrong as a
    # damaged file is refused (the listing commands, which read every row anyway): some damage
    # reads without an error, as rows of NULLs.
    check_pages: bool = False
    _spaces: dict[str, Path] | None = field(default=None, init=False)
    # space files whose space id is not UTF-8 text (another program wrote it): left out
    unnamed: list[Path] = field(default_factory=list, init=False)
    # space files left out for damage (``skip_damaged``), with ``files.damaged_spaces``' verdict
    damaged: list[DamagedSpace] = field(default_factory=list, init=False)
    # (space id, cell id) -> its name: an id a name derives in one space names nothing in another
    _names: dict[tuple[str, str], Named] = field(default_factory=dict, init=False)
    # space id -> the open connection its linked values are read through, and what closes it
    # (ending its read transaction); the one used longest ago first (see the class)
    _readers: OrderedDict[str, tuple[apsw.Connection, ExitStack]] = field(
        default_factory=OrderedDict, init=False
    )
    # (space id, cell id) -> its committed value, links inside it as Links (None: not written)
    _values: dict[tuple[str, str], Any] = field(default_factory=dict, init=False)
    _texts: dict[tuple[str, str, tuple[str | int, ...]], LinkText] = field(
        default_factory=dict, init=False
    )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections :meth:`value` opened (ending their read transactions)."""
        self._values.clear()
        self._texts.clear()
        with ExitStack() as closing:  # each is closed, even when closing another fails
            while self._readers:
                _, (_, opened) = self._readers.popitem(last=False)
                closing.push(opened)

    def spaces(self) -> dict[str, Path]:
        """Space id -> its file, for every space file of the store."""
        if self._spaces is None:
            self._spaces = {}
            judged = self._judged()
            if judged is None:
                self._refuse_odd_space_files()
            listed = space_files(self.root)
            # (what stands where a space file belongs and is none: a directory, a pipe)
            self.damaged = [d for p, d in (judged or {}).items() if p not in listed]
            for path in listed:
                try:
                    space_id = self._read_space(path)
                except InspectError:
                    found = judged.get(path) if judged is not None else None
                    if found is None:
                        raise
                    self.damaged.append(found)
                    continue
                if space_id is not None:
                    self._spaces[space_id] = path
            for space_id in self._spaces:
                for name in self.extra_names:
                    self._names[space_id, derive_id("cell", space_id, name)] = Named(name, "cell")
                    self._names[space_id, derive_id("sqlite", space_id, name)] = Named(
                        name, "sqlite"
                    )
        return self._spaces

    def _judged(self) -> dict[Path, DamagedSpace] | None:
        """With ``skip_damaged``, the space files ``inspect`` and ``check`` find damaged
        (``files.damaged_spaces``), by path; else None (the first that cannot be read fails
        the command). None too when text that is not UTF-8 where the store's names are read
        (a row another program wrote) keeps that look from judging the store: it says
        nothing of damage, and each file is read as it is, its rows listed as what they are."""
        if not self.skip_damaged:
            return None
        try:
            return {d.path: d for d in damaged_spaces(self.root)}
        except EncodingError:
            return None

    def _read_space(self, path: Path) -> str | None:
        """Read the space file ``path``: its space id (None when it records none a name can
        give), and the names it tells. Raises
        :class:`InspectError` when it cannot be read, SQLite's quick_check finds it damaged
        (``check_pages``) or it records another space than the one its name is for."""
        with read_only(path) as conn:
            problem = quick_check(conn) if self.check_pages else None
            if problem is not None:
                raise InspectError("damaged", damaged_file(path, problem))
            if "_cf_meta" not in table_names(conn):
                return None
            row = conn.execute(
                f"SELECT {as_bytes('value')} FROM _cf_meta WHERE key = 'space_id'"
            ).fetchone()
            space_id = decoded(row[0]) if row is not None else None
            if row is not None and space_id is None:
                self.unnamed.append(path)  # not UTF-8: no space a name can give
                return None
            if space_id is None:
                return None
            owner = foreign_owner(conn, path)
            if owner is not None:
                raise InspectError("damaged", damaged_file(path, owner))
            recorded = _recorded_names(conn, space_id)
            derived = _derived_names(conn, space_id)
        for cell_id, named in recorded.items():
            self._names[space_id, cell_id] = named
        for cell_id, named in derived.items():
            self._names.setdefault((space_id, cell_id), named)
        return space_id

    def _refuse_odd_space_files(self) -> None:
        """A directory or pipe where a space file belongs is left out of ``space_files`` (no
        file of ours is there to read), but its space cannot be read: the commands that fail
        on a damaged space file fail on it too, naming it (``inspect`` and ``check`` report
        it themselves)."""
        for path in sorted(self.root.glob(SPACE_FILES)):
            kind = odd_kind(path)
            if kind is not None:
                raise InspectError(
                    "unreadable",
                    f"cannot read {path}: {kind} stands where a space file belongs; "
                    "`sqlite-cells check` says what to do",
                )

    def named(self, space_id: str, cell_id: str) -> Named | None:
        """What the store tells of cell ``cell_id`` of space ``space_id``."""
        self.spaces()
        return self._names.get((space_id, cell_id))

    def ids_named(self, space_id: str, name: str) -> list[tuple[str, Named]]:
        """The ids of space ``space_id`` that the store names ``name`` (as ``cells`` lists
        them), with what it tells of each, sorted by id."""
        self.spaces()
        found = [
            (cell_id, named)
            for (in_space, cell_id), named in self._names.items()
            if in_space == space_id and named.name == name
        ]
        return sorted(found, key=lambda item: item[0])

    def databases(self, space_id: str) -> list[str]:
        """The ids of the databases space ``space_id`` holds a handle of that was not dropped,
        sorted (read through the space's one connection)."""
        path = self.spaces().get(space_id)
        if path is None:
            return []
        conn = self._reader(space_id, path)
        found = []
        with read_errors(path):
            for raw_id, data in conn.execute(
                f"SELECT {as_bytes('id')}, {as_bytes('value')} FROM _cf_cells"
            ):
                cell_id, stored = decoded(raw_id), stored_json(data)
                if cell_id is None or stored is None:
                    continue  # a row another program wrote: no handle
                handle = handle_value(cell_id, stored)
                if handle is not None and not is_dropped(handle):
                    found.append(cell_id)
        return sorted(found)

    def label(self, link: Link, home: str | None = None) -> str:
        """The name of the linked cell (or its id), with the path inside it, and the space it
        is in when that is not ``home`` (else :attr:`home`): a cell named ``x`` in another
        space is another cell."""
        known = self.named(link.space, link.id)
        text = known.name if known is not None else link.id
        text += "".join(f"[{p!r}]" if isinstance(p, int) else f".{p}" for p in link.path)
        home = home if home is not None else self.home
        if home is not None and link.space != home:
            text += f" (in space {link.space!r})"
        return text

    def value(self, link: Link) -> Any:
        """The linked cell's committed value at the link's path (None when not written), with
        links inside it left as :class:`Link` objects."""
        key = (link.space, link.id)
        if key not in self._values:
            self._values[key] = self._read(link.space, link.id)
        value = self._values[key]
        for step in link.path:
            try:
                value = value[step]
            except (KeyError, IndexError, TypeError):
                return None
        return value

    def holds(self, space_id: str, cell_id: str) -> bool:
        """Whether space ``space_id``'s file holds a row of cell ``cell_id`` (written, whatever
        its value), read through that space's one connection."""
        path = self.spaces().get(space_id)
        if path is None:
            return False
        conn = self._reader(space_id, path)
        with read_errors(path):
            held = "SELECT 1 FROM _cf_cells WHERE id = ?"
            return conn.execute(held, (cell_id,)).fetchone() is not None

    def _read(self, space_id: str, cell_id: str) -> Any:
        """Cell ``cell_id``'s committed value in space ``space_id``, read through that space's
        one connection (opened here when it is not open), or None."""
        path = self.spaces().get(space_id)
        if path is None:
            return None
        conn = self._reader(space_id, path)
        with read_errors(path):
            row = conn.execute(
                f"SELECT {as_bytes('value')} FROM _cf_cells WHERE id = ?", (cell_id,)
            ).fetchone()
        if row is None:
            return None
        stored = stored_json(row[0])
        if stored is None:  # not JSON (a row another program wrote)
            return None
        try:
            return decode_value(stored)
        except (msgspec.DecodeError, EncodingError):  # LinkDecodeError is one
            return None

    def _reader(self, space_id: str, path: Path) -> apsw.Connection:
        """The open connection to space ``space_id``'s file ``path``, opened when it is not,
        after closing the one used longest ago when :data:`READERS` are open."""
        if space_id in self._readers:
            self._readers.move_to_end(space_id)
            return self._readers[space_id][0]
        while len(self._readers) >= READERS:
            _, (_, opened) = self._readers.popitem(last=False)
            opened.close()
        with ExitStack() as opening:
            conn = opening.enter_context(read_only(path))
            self._readers[space_id] = (conn, opening.pop_all())
        return conn

    def text(self, link: Link) -> LinkText:
        """``→ NAME VALUE``: the link as text output shows it (made once per link: a column
        of links often names a few cells again and again)."""
        key = (link.space, link.id, tuple(link.path))
        made = self._texts.get(key)
        if made is None:
            shown = msgspec.json.encode(self.shallow(self.value(link), as_json=False)).decode()
            if len(shown) > _MAX_TEXT:
                shown = shown[: _MAX_TEXT - 1] + "…"
            made = self._texts[key] = LinkText(f"{LINK_MARK} {self.label(link)} {shown}")
        return made

    def as_json(self, link: Link) -> dict[str, Any]:
        """The link as JSON output shows it: what it names and that cell's value."""
        known = self.named(link.space, link.id)
        return {
            "cell": link.id,
            "space": link.space,
            "name": known.name if known is not None else None,
            "path": list(link.path),
            "value": self.shallow(self.value(link), as_json=True),
        }

    def shallow(
        self, value: Any, *, as_json: bool, link_texts: bool = False, home: str | None = None
    ) -> Any:
        """``value`` with each link inside it replaced by what it names, without its value: a
        link decoded from JSON, or, with ``link_texts``, the stored text of one held as a JSON
        string (``json_group_array(a_cf_link)`` makes such strings). A cell's value tells its
        links from its strings (R6): a string there is shown as the string it is."""
        if isinstance(value, str):
            found = link_in(value) if link_texts else None
            if found is None:
                return value if as_json else _not_a_link(value)
            value = found
        if isinstance(value, Link):
            if as_json:
                known = self.named(value.space, value.id)
                return {
                    "cell": value.id,
                    "space": value.space,
                    "name": known.name if known is not None else None,
                    "path": list(value.path),  # a link to `a.key("x")` is not one to `a`
                }
            return f"{LINK_MARK} {self.label(value, home)}"
        if isinstance(value, dict):
            return {
                k: self.shallow(v, as_json=as_json, link_texts=link_texts, home=home)
                for k, v in value.items()
            }
        if isinstance(value, list):
            return [
                self.shallow(v, as_json=as_json, link_texts=link_texts, home=home) for v in value
            ]
        return value


def _not_a_link(text: str) -> Any:
    """A string inside a value that text output shows as JSON, where each link is the string
    ``→ NAME``: one that starts with the link mark is written with that mark escaped
    (``"\\u2192 odd"``, the same JSON string), so that it does not read as a link (§6)."""
    if not text.startswith(LINK_MARK):
        return text
    encoded = msgspec.json.encode(text)
    return msgspec.Raw(b'"\\u2192' + encoded[1 + len(LINK_MARK.encode()) :])


# The kinds of name the runtime records, and the cause each derives its id from (R1).
_RECORDED_KINDS = {"cell": "cell", "database": "sqlite"}


def _recorded_names(conn: apsw.Connection, space_id: str) -> dict[str, Named]:
    """The names a space file records in ``_cf_names``: the runtime records each top-level
    cell's and database's (name, kind) when it writes it by name, and the id derives from them as
    ``--name`` derives it; a table that also holds an ``id`` column is read by it. Its columns
    are looked up rather than read off the query (a query that finds no row tells none), and a
    row whose text is not UTF-8 (another program wrote it) names nothing."""
    if "_cf_names" not in table_names(conn):
        return {}
    columns = {str(row[1]) for row in conn.execute("PRAGMA table_info(_cf_names)")}
    if "name" not in columns:
        return {}
    if "id" not in columns:
        if "kind" not in columns:
            return {}
        derived = {}
        for raw_name, raw_kind in conn.execute(
            f"SELECT {as_bytes('name')}, {as_bytes('kind')} FROM _cf_names"
        ):
            name = decoded(raw_name) if raw_name is not None else None
            kind = decoded(raw_kind) if raw_kind is not None else None
            cause = _RECORDED_KINDS.get(kind) if kind is not None else None
            if name is not None and kind is not None and cause is not None:
                derived[derive_id(cause, space_id, name)] = Named(name, kind)
        return derived
    kind = as_bytes("kind") if "kind" in columns else "NULL"
    found = {}
    for raw_id, raw_name, raw_kind in conn.execute(
        f"SELECT {as_bytes('id')}, {as_bytes('name')}, {kind} FROM _cf_names"
    ):
        if raw_id is None or raw_name is None:
            continue
        cell_id, name = decoded(raw_id), decoded(raw_name)
        if cell_id is None or name is None:
            continue
        shown_kind = decoded(raw_kind) if raw_kind is not None else None
        found[cell_id] = Named(name, shown_kind or None)
    return found


_MAX_CANDIDATE = 64  # longer strings are values, not names
_MAX_CANDIDATES = 20_000  # bounds the hashing on a store full of short strings


def _strings(value: Any, found: set[str]) -> None:
    """The short strings and object keys inside a decoded cell value."""
    if len(found) >= _MAX_CANDIDATES:
        return
    if isinstance(value, str):
        if 0 < len(value) <= _MAX_CANDIDATE:
            found.add(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            _strings(key, found)
            _strings(item, found)
    elif isinstance(value, list):
        for item in value:
            _strings(item, found)


def _derived_names(conn: apsw.Connection, space_id: str) -> dict[str, Named]:
    """The names the cells of one space file tell (see the module docstring)."""
    found: dict[str, Named] = {}
    ids: set[str] = set()
    pieces: dict[str, list[str]] = {}  # by pattern name
    own: dict[str, set[str]] = {}  # by piece: the strings its own record holds
    candidates: set[str] = set()
    for raw_id, data in conn.execute(
        f"SELECT {as_bytes('id')}, {as_bytes('value')} FROM _cf_cells"
    ):
        cell_id = decoded(raw_id)
        stored = stored_json(data)
        if cell_id is None or stored is None:  # not UTF-8 text, or no JSON: names nothing
            continue
        ids.add(cell_id)
        try:
            value = msgspec.json.decode(stored)
        except (msgspec.DecodeError, RecursionError):  # nested deeper than any value we store
            continue
        if isinstance(value, dict) and {"piece", "key", "inputs"} <= set(value):
            label = f"{value['piece']}/{value['key']}"
            found[cell_id] = Named(label, "piece")
            pieces.setdefault(str(value["piece"]), []).append(cell_id)
            _strings(value, own.setdefault(cell_id, set()))
            inputs = value["inputs"] if isinstance(value["inputs"], list) else []
            for name in inputs:
                found[derive_id("input", cell_id, str(name))] = Named(f"{label}.{name}", "input")
        elif isinstance(value, dict) and value.get("id") == cell_id and "tables" in value:
            where = source_path(value)
            if where is not None:  # an injected file's handle: named by its file
                found[cell_id] = Named(where.name, "disk")
        _strings(value, candidates)
    ids.update(c for c in candidates if c.startswith("of:"))  # cells that links name
    tried = sorted(candidates)
    for name in tried:
        for kind in _NAMED_KINDS:
            cell_id = derive_id(kind, space_id, name)
            if cell_id in ids and cell_id not in found:
                found[cell_id] = Named(name, kind)
    _name_piece_cells(tried, pieces, ids, found)
    for piece, names in own.items():  # (a piece's cell named by its key, say)
        _try_in(piece, sorted(names), ids, found)
    return found


_NAMED_KINDS: Final = ("cell", "sqlite")
# Hashes spent trying every name the store mentions in every piece: past this many, each
# pattern's names are looked for in its first pieces only (see _name_piece_cells).
_PIECE_TRIES: Final = 50_000


def _try_in(
    piece: str, names: list[str], ids: set[str], found: dict[str, Named]
) -> dict[tuple[str, str], None]:
    """Name the cells of ``piece`` that a name in ``names`` derives; return those (kind, name)."""
    hits: dict[tuple[str, str], None] = {}
    for name in names:
        for kind in _NAMED_KINDS:
            cell_id = derive_id(kind, "piece", piece, name)
            if cell_id in ids:
                hits[kind, name] = None
                if cell_id not in found:
                    found[cell_id] = Named(name, kind)
    return hits


def _name_piece_cells(
    tried: list[str], pieces: dict[str, list[str]], ids: set[str], found: dict[str, Named]
) -> None:
    """Name the cells of the pieces (``pieces`` by pattern) that a name in ``tried`` derives.

    Each name tried in each piece costs a hash, and both grow with the store: a thousand pieces
    took ``inspect`` 47 s. A pattern's body names the same cells in each of its pieces, so when
    trying every name in every piece would cost more than :data:`_PIECE_TRIES` hashes, every
    name is tried in a pattern's first pieces while that budget lasts (as many pieces as it
    allows each pattern, one at least), and only the names found so far in the rest of the
    pieces, and in every piece of the patterns the budget did not reach: a cell that only such
    a piece has shows by its id, unless its own record names it (its key, say: see the caller;
    ``--name`` does not reach into pieces; the README says so)."""
    per_piece = len(tried) * len(_NAMED_KINDS)
    total = per_piece * sum(len(of_pattern) for of_pattern in pieces.values())
    first = max(1, _PIECE_TRIES // max(1, per_piece * len(pieces)))
    left = _PIECE_TRIES
    known: dict[tuple[str, str], None] = {}  # (kind, name) found in any piece, in order
    for of_pattern in pieces.values():
        if total <= _PIECE_TRIES:
            sampled = of_pattern
        else:
            sampled = of_pattern[: min(first, left // max(1, per_piece))]
            left -= per_piece * len(sampled)
        hits: dict[tuple[str, str], None] = {} if sampled else dict(known)
        for piece in sampled:
            hits.update(_try_in(piece, tried, ids, found))
        known.update(hits)
        for piece in of_pattern[len(sampled) :]:
            for kind, name in hits:
                cell_id = derive_id(kind, "piece", piece, name)
                if cell_id in ids and cell_id not in found:
                    found[cell_id] = Named(name, kind)
