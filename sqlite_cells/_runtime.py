"""``sc.Runtime``: the reactive runtime with database cells plugged in (SPEC §3–§4)."""

from __future__ import annotations

import os
import re
import threading
import time
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Final, Self

from sqlite_cells import runtime
from sqlite_cells.codec import (
    DatabaseError,
    DeclarationError,
    EncodingError,
    Link,
    Op,
    Quarantined,
    SchemaError,
    SourceError,
    SqliteCellsError,
    TransactionError,
    WriteLockTimeout,
    brief_repr,
    decode_value,
    derive_id,
    has_links,
)
from sqlite_cells.files import (
    KIND,
    Action,
    HandleQuarantined,
    Identity,
    OpBody,
    Outcome,
    Pinned,
    check_foreign_source,
    collect_garbage,
    damage_noted,
    declaration_from_handle,
    decode_handle,
    detach,
    disk_handle_value,
    disk_source_id,
    dropped_database,
    dropped_in,
    encode_op_body,
    file_identity,
    handle_not_writable,
    handle_shaped,
    hold_open,
    holds_handle,
    is_dropped,
    let_go,
    look_unlocked,
    orphan_outcome,
    owned_elsewhere,
    pin,
    pinned,
    pinned_files,
    reconcile,
    recorded_pin,
    register_disk_file,
    release_hold,
    set_aside_moved,
    store_pins,
    unpin,
    unreadable_handle,
    unwritten_handle,
)
from sqlite_cells.read import LINKS_FOLLOWED, LiveQueries, QueryWorkers, ReadPool
from sqlite_cells.runtime import (
    BUSY_TIMEOUT_MS,
    MAX_SECONDS,
    Cell,
    InvalidArgument,
    Pattern,
    busy_ms,
    causal_cause,
    check_name,
    checked_arguments,
    interrupts_held,
    own_transaction,
    path_text,
    set_lock_wait,
    taken,
    top_level_name,
    translated,
    waited_for_lock,
)
from sqlite_cells.schema import (
    Declaration,
    Migrate,
    SourceKind,
    Table,
    VmSource,
    check_options,
    db_file_name,
    declare_tables,
)
from sqlite_cells.write import DEFAULT_EXEC_TIMEOUT, DropParticipant, SqliteParticipant

__all__ = ["Runtime", "Space"]


class Space(runtime.Space):
    """A space whose cells may own SQLite databases."""

    runtime: Runtime

    @checked_arguments
    def sqlite_database(
        self,
        name: str | None = None,
        *,
        tables: Mapping[str, Table],
        version: int = 1,
        migrate: Migrate | None = None,
        source: VmSource | None = None,
    ) -> SqliteDb:
        """The database cell ``name`` (its id derives from the space and the name, or inside a
        pattern from the piece; R1) with the declared ``tables`` (``sc.table(...)``, R10–R12:
        a bad declaration is a ``SchemaError`` here). Nothing is written until the first
        ``db.exec``, which creates and migrates the file, additively only (R13). When the
        file's stored ``version`` is older than the one declared, ``migrate(conn,
        from_version)`` runs first, in the same transaction of that file (R14).
        ``source=sc.VmSource(vm, path)`` is accepted; its queries and writes fail with
        ``NotImplementedSource`` (R62)."""
        if name is not None:
            name = check_name("database name", name)
        self.runtime.check_open()
        try:
            schema = declare_tables(tables)
        except UnicodeError as exc:  # a table or column name that is not valid text
            raise SchemaError(
                f"a table or column name is not valid Unicode text ({exc}): SQLite stores names "
                "as UTF-8; decode the text properly first"
            ) from exc
        check_options(version, migrate)
        if source is not None and not isinstance(source, VmSource):
            raise InvalidArgument(
                f"source= takes sc.VmSource(vm, path), not {brief_repr(source)}; injected files go "
                "through "
                "space.register_disk_source(path)"
            )
        cause = causal_cause(self.id, "sqlite", name)
        db_id = derive_id(*cause)
        decl = Declaration(
            db_id=db_id,
            space_id=self.id,
            path=self.runtime.store / db_file_name(db_id),
            schema=schema,
            version=version,
            migrate=migrate,
            kind=SourceKind.VM if source is not None else SourceKind.CELL,
            name=top_level_name(cause),  # recorded at its first write (SPEC §6)
        )
        db = self.runtime._declare_handle(self, decl)
        if decl.name is not None:
            self.file.names[db_id] = f"database {decl.name!r}"
        taken(cause)
        return db

    @checked_arguments
    def register_disk_source(self, path: str | os.PathLike[str]) -> SqliteDb:
        """A read-only handle to an existing SQLite file outside the store (R60). ``path`` must
        be absolute, exist, be a regular file once links are resolved, lie outside the store
        (no hard link to a file of the store either) and, when the runtime has
        ``disk_source_roots``, under one of them; otherwise ``DiskSourceError`` naming the
        rule broken, and nothing is written. Registering the same file twice gives the same
        handle (its id derives from the space and the resolved path). The handle cell is
        written once (a commit), so a link to it resolves after a restart; it records the
        file's device and inode, and registering the path again after the file was replaced
        records the new file's (the same handle, re-pinned). ``db.exec`` on it raises
        ``ReadOnlySource``; it is never migrated and reads with the file's own schema."""
        runtime = self.runtime
        runtime.check_open()  # a closed runtime registers nothing (and reads no file for it)
        resolved, pinned = register_disk_file(
            path, store=runtime.store, roots=runtime.disk_source_roots
        )
        decl = Declaration(
            db_id=disk_source_id(self.id, resolved),
            space_id=self.id,
            path=resolved,
            schema=None,
            kind=SourceKind.DISK,
        )
        handle = runtime._declare_handle(self, decl)
        value = disk_handle_value(decl, pinned)  # the pin recorded: checked in any process
        # Compared with the handle as committed now: another process may have registered the
        # path again since this runtime last looked (its poll), and the file there now is the
        # one meant — a pin equal only to the one this runtime last saw is written again.
        self.file.catch_up()
        if self.file.entity(decl.db_id).data != runtime.encode(value):
            # A commit of its own, even inside a caller's transaction: the handle returned is
            # the handle stored, whatever becomes of that transaction (or whichever space it
            # writes), and this process adopts the pin only once every process can read it.
            with own_transaction(self):
                handle._write_handle(value)
        runtime.take_pin(decl.db_id, resolved, pinned)
        runtime.follow_pin(decl)
        return handle

    def check_input(
        self, pattern: Pattern, name: str, value: object, annotation: object, cell: Cell
    ) -> None:
        """A pattern input typed ``sc.SqliteDb`` takes a database (``sqlite_database``,
        ``register_disk_source``, a database input), a cell that holds a handle, another
        piece's database input cell (``piece.inputs[name]``, as ``link`` takes it), or ``None`` /
        nothing — no database linked yet (R61). A plain value or a cell that holds no handle
        is an :class:`InvalidArgument`, before anything is recorded (R3: no API points a
        database at a cell or file of the caller's choosing)."""
        from sqlite_cells._db import SqliteDb

        if not _takes_database(annotation) or value is None:
            return
        what = f"pattern {pattern.name}: input {name!r} is typed sc.SqliteDb"
        if isinstance(value, Cell):
            self._learn_input(value)
            self._refuse_no_database(cell, value, what, "pass", "recorded")
        if isinstance(value, SqliteDb):
            return
        advice = (
            "pass a database (space.sqlite_database(...) or space.register_disk_source(...)), "
            f"or None and link one later with piece.inputs[{name!r}].link(db); nothing was "
            "recorded"
        )
        if not isinstance(value, Cell):
            shown = repr(value)
            shown = shown if len(shown) <= 80 else shown[:77] + "..."
            raise InvalidArgument(f"{what} and takes a database, not {shown}: {advice}")
        if not value.value_path and value.id in self.runtime.database_inputs:
            return  # another piece's database input: followed to its database at each use
        if not self.runtime.holds_handle(value):
            raise InvalidArgument(
                f"{what}, but cell {value.id} in {value.space.id!r}"
                f"{' at path ' + repr(list(value.value_path)) if value.value_path else ''} holds "
                f"no database handle: {advice}"
            )

    def check_link(self, cell: Cell, target: Cell) -> None:
        """A pattern's database input (R61) is linked to a database, a cell that holds a handle
        or another piece's database input, as ``space.run`` takes one: ``link`` of any other
        cell is an :class:`InvalidArgument`, before anything is written (its queries would fail,
        and after a restart stay pending, for a link nobody meant)."""
        from sqlite_cells._db import SqliteDb

        if cell.value_path or cell.id not in self.runtime.database_inputs:
            return
        what = f"{cell.id} is a pattern's database input (typed sc.SqliteDb)"
        self._learn_input(target)
        self._refuse_no_database(cell, target, what, "link", "written")
        if isinstance(target, SqliteDb) or (
            not target.value_path and target.id in self.runtime.database_inputs
        ):
            return
        if self.runtime.holds_handle(target):
            return
        said = f"{cell.id} is a pattern's database input (typed sc.SqliteDb), but cell {target.id}"
        database = self._linked_database(target)
        if database is not None:
            raise InvalidArgument(
                f"{said} in {target.space.id!r} holds a link to database {database.id}, and "
                "a cell that holds a link to a database is not accepted: link the database "
                "itself (piece.inputs[name].link(db)); nothing was written"
            )
        raise InvalidArgument(
            f"{said} in {target.space.id!r} holds no database handle: link a database "
            "(space.sqlite_database(...) or space.register_disk_source(...)), a cell that "
            "holds one, or another piece's database input; nothing was written"
        )

    def _learn_input(self, value: Cell) -> None:
        """Note ``value`` as a database input of this runtime when the runtime it comes from
        (another one on this store, which shares its cells) made it one: given or linked here,
        it is taken and followed as that runtime's own pieces take it (R61)."""
        theirs = value.space.runtime
        if theirs is self.runtime or value.value_path:
            return
        if value.id in getattr(theirs, "database_inputs", ()):
            self.runtime.database_inputs.add(value.id)

    def _refuse_no_database(
        self, cell: Cell, target: Cell, what: str, verb: str, nothing: str
    ) -> None:
        """Refuse giving the database input ``cell`` the cell ``target`` (``verb``: "pass" to
        ``space.run``, "link") when it leads to no database: back to ``cell`` through links
        (a cycle), or to a database that was dropped. ``what`` begins the refusal, which ends
        saying nothing was ``nothing`` ("recorded", "written")."""
        if self._leads_back(cell, target):
            raise InvalidArgument(
                f"{what}, but {_cycle(cell, target)}, which leads to no database: {verb} a "
                "database (space.sqlite_database(...) or space.register_disk_source(...)) or "
                f"another piece's database input; nothing was {nothing}"
            )
        dropped = self._dropped(target)
        if dropped is not None:
            raise InvalidArgument(
                f"{what}, but {dropped}: {verb} a database not dropped; nothing was {nothing}"
            )
        if self._inputs_before_database(target) > LINKS_FOLLOWED:
            raise InvalidArgument(
                f"{what}, but the links from cell {target.id} in {target.space.id!r} pass "
                f"through more than {LINKS_FOLLOWED} pattern inputs before they reach a "
                f"database, the most a database input follows: {verb} the database itself, or "
                f"an input nearer to it; nothing was {nothing}"
            )

    def _leads_back(self, cell: Cell, target: Cell) -> bool:
        """Whether ``target`` is the database input ``cell`` itself — its own ``LinkedDb``,
        such as the piece's output that returns it — or another piece's database input whose
        links (as the current transaction sees them) lead back to it: linked so, the input
        would be a cycle of links with no database at its end (R61). Followed as ``LinkedDb``
        follows them, ``LINKS_FOLLOWED`` cells at most."""
        runtime = self.runtime
        seen: object = target
        for _ in range(LINKS_FOLLOWED + 1):
            if not isinstance(seen, Cell) or seen.value_path:
                return False
            if (seen.space.id, seen.id) == (cell.space.id, cell.id):
                return True
            if seen.id not in runtime.database_inputs or runtime.holds_handle(seen):
                return False
            seen = self._seen_link(seen)
        return False

    def _inputs_before_database(self, target: Cell) -> int:
        """How many cells holding no handle the links from ``target`` pass through (``target``
        first, as the current transaction sees them) before a cell that holds a handle or no
        link: the cells ``LinkedDb`` follows to reach its database. Counted up to
        ``LINKS_FOLLOWED + 1`` (a cycle, refused before, ends the count where it closes)."""
        runtime = self.runtime
        seen: Cell | None = target
        passed: set[tuple[str, str]] = set()
        while (
            seen is not None
            and not seen.value_path
            and len(passed) <= LINKS_FOLLOWED
            and (seen.space.id, seen.id) not in passed
            and not runtime.holds_handle(seen)
        ):
            passed.add((seen.space.id, seen.id))
            seen = self._seen_link(seen)
        return len(passed)

    def _dropped(self, target: Cell) -> str | None:
        """How a refusal says that ``target`` is a database whose handle ``db.drop()`` marked
        dropped, as the current transaction sees it (a drop made earlier in it counts), else as
        committed; None when it is not (nor another piece's input, which may be linked anew):
        linked to a pattern's input, its queries could only fail (\"was dropped\")."""
        from sqlite_cells._db import LinkedDb

        if isinstance(target, LinkedDb) or not self.runtime.holds_handle(target):
            return None
        try:
            space = self.runtime.space(target.space.id)
            data = space._seen_data(target.id)
            if data is None or not is_dropped(decode_value(data)):
                return None
            committed = space.file.entity(target.id).data
            pending = committed is None or not is_dropped(decode_value(committed))
        except SqliteCellsError:  # (a value it cannot read: its uses say so)
            return None
        return _said_dropped(target, pending=pending)

    def _seen_link(self, cell: Cell) -> Cell | None:
        """The whole cell ``cell``'s value links to, if it is a link: as the current
        transaction sees it (a link made earlier in it counts), else as committed."""
        try:
            return self._link_in(self.runtime.space(cell.space.id)._seen_data(cell.id))
        except SqliteCellsError:  # (a value it cannot read: it leads nowhere)
            return None

    def _linked_database(self, target: Cell) -> Cell | None:
        """The database's handle cell that ``target``'s committed value links to, if it is
        one (what a refusal of ``target`` says)."""
        try:
            linked = self._link_in(self.runtime.space(target.space.id).file.entity(target.id).data)
        except SqliteCellsError:  # (a value it cannot read: said as holding no handle)
            return None
        return linked if linked is not None and self.runtime.holds_handle(linked) else None

    def _link_in(self, data: bytes | None) -> Cell | None:
        """The whole cell the stored value ``data`` is a link to, if it is one."""
        if data is None or not has_links(data):
            return None
        value = decode_value(data)
        if not isinstance(value, Link) or value.path:
            return None
        return self.runtime.cell_for(value)

    def given_input(self, cell: Cell, value: object, annotation: object) -> object:
        """A parameter typed ``sc.SqliteDb`` gives the body the database its input cell links
        to, whatever it was given — a database, ``None`` or a cell that holds a handle (R61):
        linking the input to another database later moves the piece's queries and writes
        there, as for an input linked after the run."""
        if _takes_database(annotation):
            return self._database_input(cell)
        from sqlite_cells._db import LinkedDb, SqliteDb

        if isinstance(value, SqliteDb) and value.space.runtime is not self.runtime:
            # Another runtime's database (on this store): this runtime's, as a run given
            # nothing gets it (§2), else the database the input cell links to, followed here.
            rebound = self.unbound_input(cell, annotation)
            return rebound if isinstance(rebound, SqliteDb) else LinkedDb(self, cell)
        if type(value) is Cell and self.runtime.holds_handle(value):
            # A database's handle cell met as a plain Cell (a link given, a link column read
            # back): that database, as the run given the database and a run given nothing get.
            rebound = self.unbound_input(cell, annotation)
            if isinstance(rebound, SqliteDb):
                return rebound
        return super().given_input(cell, value, annotation)

    def unbound_input(self, cell: Cell, annotation: object) -> object:
        """A pattern parameter typed ``sc.SqliteDb`` that was given nothing becomes a database
        that follows what its input cell links to (R61): pending until a handle is linked."""
        if _takes_database(annotation):
            return self._database_input(cell)
        linked = super().unbound_input(cell, annotation)
        if linked is cell or not isinstance(linked, Cell):
            return linked
        # A database given to a parameter not typed sc.SqliteDb: the body got that database at
        # the run that gave it, and gets it again (§2: re-running rebinds to the same cells and
        # databases), not its handle cell, which reads like any other.
        from sqlite_cells._db import LinkedDb, SqliteDb

        if isinstance(linked, SqliteDb):
            return linked
        # Another piece's database input given (its LinkedDb): the body got that input, which
        # follows what it links to at each use, and gets it again, not the database it links
        # to now (a relink of that input must still reach this body).
        if not linked.value_path and linked.id in self.runtime.database_inputs:
            return self.runtime.space(linked.space.id)._database_input(linked)
        follower = LinkedDb(self, cell)
        try:
            database = follower.target()
        except SqliteCellsError:  # no database: the cell itself
            return linked
        if follower._links_passed():  # reached through the cell given, followed as it was
            # (Not noted as a database input: a plain cell holding a link stays free to link.)
            return LinkedDb(self.runtime.space(linked.space.id), linked)
        return database

    def _database_input(self, cell: Cell) -> object:
        """The database the input ``cell`` links to, followed at each use (see ``LinkedDb``)."""
        from sqlite_cells._db import LinkedDb

        self.runtime.database_inputs.add(cell.id)
        return LinkedDb(self, cell)

    @checked_arguments
    def gc(self) -> list[Path]:
        """Remove the store's ``cell-*.sqlite`` files (and their -wal/-shm) that no handle of
        any space of the store ever named, and those of databases dropped with ``db.drop()``
        (R74: see ``collect_garbage``; calling this is the explicit request — the CLI lists
        first and removes only with ``--yes``)."""
        self.runtime.check_open()
        return collect_garbage(self.runtime.store, remove=True)


class Runtime(runtime.Runtime):
    """Opens spaces in a store and runs what reacts to their commits, database cells included.

    ``store`` is the store's directory (default: ``$SQLITE_CELLS_STORE``, else
    ``./.sqlite-cells/``; created if missing); ``Runtime.ephemeral()`` uses a temporary one,
    removed on close. Commits of other runtimes and processes on the store are looked for every
    ``poll_interval`` seconds (R53); ``query_workers`` threads run live queries and reads;
    ``read_pool_size`` bounds the idle read-only connections (R40); ``query_timeout`` seconds
    end a read with ``QueryTimeout``, and ``exec_timeout`` seconds a write statement with
    ``ExecTimeout`` (R44); ``disk_source_roots`` limits where injected files may live (R60).
    Also a context manager; ``close()`` ends it.
    """

    space_class = Space

    if TYPE_CHECKING:
        # What a type checker sees of ``Runtime.ephemeral``: the options ``__init__`` takes
        # (the method itself passes them on as they are given, and refuses others).
        @classmethod
        def ephemeral(  # type: ignore[override]  # (narrower on purpose: this runtime's options)
            cls,
            *,
            poll_interval: float = 0.02,
            query_workers: int = 2,
            read_pool_size: int = 64,
            query_timeout: float = 5.0,
            exec_timeout: float = DEFAULT_EXEC_TIMEOUT,
            disk_source_roots: Sequence[str | os.PathLike[str]] | None = None,
        ) -> Self: ...

    @checked_arguments
    def __init__(
        self,
        store: str | os.PathLike[str] | None = None,
        *,
        poll_interval: float = 0.02,
        query_workers: int = 2,
        read_pool_size: int = 64,
        query_timeout: float = 5.0,
        exec_timeout: float = DEFAULT_EXEC_TIMEOUT,
        disk_source_roots: Sequence[str | os.PathLike[str]] | None = None,
    ) -> None:
        _check_count("query_workers", query_workers, MAX_QUERY_WORKERS, "each is a thread")
        _check_count("read_pool_size", read_pool_size, MAX_READ_POOL_SIZE, "each holds open files")
        _check_seconds("query_timeout", query_timeout)
        _check_seconds("exec_timeout", exec_timeout)
        roots = _check_roots(disk_source_roots)  # before the store is made: a refusal leaves none
        try:
            # Ctrl-C is held back while the threads start (a few ms) and raised once they all
            # have: landing among them, it left some running with no runtime to close them.
            with interrupts_held():
                super().__init__(store, poll_interval=poll_interval)
                self._extend(query_workers, read_pool_size, query_timeout, exec_timeout, roots)
        except BaseException as exc:  # (Ctrl-C, or no thread to be had): nothing left running
            if "scheduler" in vars(self):
                self.close()
            raise runtime.thread_refused(exc) from exc

    def _extend(
        self,
        query_workers: int,
        read_pool_size: int,
        query_timeout: float,
        exec_timeout: float,
        roots: tuple[str | os.PathLike[str], ...] | None,
    ) -> None:
        """The database cells' part of the runtime: the read pool, the query workers, the
        participants and the live queries (see ``__init__``)."""
        poll_interval = self.poll_interval
        self._query_timeout: float = query_timeout
        self._exec_timeout: float = exec_timeout
        self._disk_source_roots = roots
        self.read_pool = ReadPool(
            read_pool_size,
            pinned=runtime.weakly(self._pinned, lambda: None),
            pins=store_pins(self.store),
        )
        self.query_workers = QueryWorkers(
            self.read_pool, count=query_workers, timeout=query_timeout
        )
        # _decl_lock guards _declarations, _reconciled, _quarantined(_once), _damage_checked,
        # _followed.
        self._decl_lock = threading.Lock()
        # Held while a declaration is recorded (_declare), and from recording one until its
        # handle is made (_declare_handle, handle): a handle's declaration is the latest while
        # it is made. Taken before _decl_lock, never while waiting for another thread.
        self._declaring = threading.RLock()
        self._declarations: dict[str, Declaration] = {}
        # Databases this runtime did not declare, known from their handle's value (a linked
        # pattern input): the tables that value held, to follow the declaring runtime's changes.
        self._adopted: dict[str, object] = {}
        self._reconciled: set[str] = set()
        self._quarantined: dict[str, Quarantined] = {}
        # A quarantine for want of room (a full disk): raised once, by the use whose check met
        # it, then compared again (the queries that were shown it re-run once the file agrees
        # with its space again: see _record_outcome).
        self._quarantined_once: dict[str, Quarantined] = {}
        # db id -> damage_noted() of its file when it was last checked for that damage.
        self._damage_checked: dict[str, int] = {}
        # Disk handles whose recorded pin is watched -> their file's path (see follow_pin);
        # replaced whole under _decl_lock, read without it by the commit hook's absorber.
        self._followed: Mapping[str, Path] = {}
        # Ids of the pattern inputs typed sc.SqliteDb made in this runtime: a chain of links
        # that ends at one holding nothing has nothing linked yet (R61; see LinkedDb.target).
        self.database_inputs: set[str] = set()
        # Injected file's handle id -> the pin this runtime's reads of it last took (take_pin).
        self._taken_pins: dict[str, Identity] = {}
        # Injected file's handle id -> the pin this runtime last took for it (held or not).
        self._seen_pins: dict[str, Identity] = {}
        # db id -> the identity of its file last seen to be the one pinned (see _follow_file).
        self._seen_files: dict[str, Identity] = {}
        sqlite_participant = SqliteParticipant(
            ready=lambda decl, timeout: self.ensure_reconciled(decl, lock_timeout=timeout),
            repair=self.reconcile,
            exec_timeout=exec_timeout,
            written=self.read_pool.note_file,
            behind=self._forget_reconciled,
            changed=self._forget_file,
            latest=self.latest_declaration,
            # R14, R51: its live queries show the migrated rows, as db.read does.
            migrated=lambda decl: self.live_queries.rerun_database(decl.db_id),
        )
        self.register_participant(sqlite_participant)
        self._sqlite_participant = sqlite_participant
        self.register_participant(DropParticipant(forget=self.read_pool.discard))
        self.live_queries = LiveQueries(
            self.scheduler,
            self.read_pool,
            self.query_workers,
            lookup=runtime.weakly(self.declaration),
            poll_interval=poll_interval,
            behind=runtime.weakly(self._forget_reconciled, lambda: None),
        )
        self.scheduler.add_commit_hook(
            runtime.weakly(self._pins_written, list),
            absorb=runtime.weakly(self._pins_quiet, lambda: True),
        )

    # The limits are set when the runtime is made: its threads and pool were built with them,
    # so a later assignment could not reach them all (R44).
    @property
    def query_timeout(self) -> float:
        """Seconds a read or live query may run (R44); read-only."""
        return self._query_timeout

    @property
    def exec_timeout(self) -> float:
        """Seconds a write statement may run (R44); read-only."""
        return self._exec_timeout

    @property
    def disk_source_roots(self) -> tuple[str | os.PathLike[str], ...] | None:
        """The directories disk sources must lie under (R60), ``None`` for any; read-only."""
        return self._disk_source_roots

    @checked_arguments
    def space(self, space_id: str) -> Space:
        """The space ``space_id``, with database cells (``space.sqlite_database``). Its file is
        opened if the store holds it, and created by its first commit, never by a read (R7)."""
        opened = super().space(space_id)
        assert isinstance(opened, Space)
        return opened

    def _declare(self, decl: Declaration, *, adopted: object = None) -> None:
        """Record (or replace) what is known of a database cell: only ``sqlite_database``,
        ``register_disk_source`` and a handle's committed value do (R3). ``adopted``: the
        tables of the handle value it was rebuilt from (None: declared here)."""
        with self._declaring, self._decl_lock:
            before = self._declarations.get(decl.db_id)
            if before is not None and before.space_id != decl.space_id:
                raise DeclarationError(
                    f"database {decl.db_id} is already a database of space "
                    f"{before.space_id!r}; it cannot also be one of space {decl.space_id!r}: a "
                    "database's file is named by its id (R2), so both would write one file. "
                    "Inside a pattern, a database's id comes from the piece and its name (or its "
                    "position) whatever space it is built in: give the one in the other space "
                    "another name; nothing was declared"
                )
            self._declarations[decl.db_id] = decl
            if adopted is None:
                self._adopted.pop(decl.db_id, None)
            else:
                self._adopted[decl.db_id] = adopted
        # R61: a pattern input linked to its cell while it held no handle (declared in an
        # earlier run, never written) runs its queries now, as when declared before the run.
        self.live_queries.handle_declared(decl.db_id)
        if (
            before is not None
            and decl.kind is not SourceKind.DISK
            and (before.schema, before.version, before.kind)
            != (decl.schema, decl.version, decl.kind)
        ):
            # R14: a re-declaration is visible to reads at once, live queries included (R62:
            # declared anew with a VmSource, they fail with NotImplementedSource).
            self.live_queries.rerun_database(decl.db_id)

    def _declare_handle(self, space: Space, decl: Declaration) -> SqliteDb:
        """Record ``decl`` (see ``_declare``) and make its handle, with no declaration of
        another thread in between: two threads declaring one database at once end as if one
        had declared after the other (the later declaration is every handle's, R14)."""
        with self._declaring:
            self._declare(decl)
            return self.handle(space, decl)

    def handle(self, space: Space, decl: Declaration) -> SqliteDb:
        """A handle of ``decl``'s database, made from the declaration this runtime recorded
        last for it (``decl`` or a later one), whose handle value is its default (R4): a
        declaration recorded by another thread meanwhile neither fails the handle (R3: made
        by this runtime) nor gives its cell another default."""
        from sqlite_cells._db import SqliteDb

        with self._declaring:
            return SqliteDb(space, self.latest_declaration(decl))

    def latest_declaration(self, decl: Declaration) -> Declaration:
        """What this runtime recorded last for ``decl``'s database (``decl`` itself when
        nothing is recorded): a re-declaration replaces the earlier one for every handle.
        Without the lock: one dict look-up is atomic, and every live query's re-run asks."""
        found = self._declarations.get(decl.db_id)
        return decl if found is None else found

    def declared(self, decl: Declaration) -> bool:
        """Whether ``decl`` is what this runtime recorded for its database (R3: a declaration
        made or altered anywhere else never reaches a file)."""
        with self._decl_lock:
            found = self._declarations.get(decl.db_id)
        return found is decl or found == decl

    def check_writable(self, space_id: str, cell_id: str) -> bool:
        """R5: no ``Cell`` writes a database handle — neither a declared database's id nor a cell
        whose committed value is a handle (after a restart, or a link followed); only
        ``db.exec``/``exec_many``/``drop`` do (``SqliteDb._write_handle``). A cell never written
        as far as this runtime knows is judged again at commit (True): another runtime or
        process may make it a handle first (``check_committed``)."""
        # Every set asks: single dict look-ups (atomic) rather than locks and name checks; the
        # writing cell's space is open already.
        declared = self._declarations.get(cell_id)
        if declared is not None and declared.space_id == space_id:
            raise handle_not_writable(cell_id)
        space = self._spaces.get(space_id) or self.space(space_id)
        data = space.file.entity(cell_id).data
        if data is None:
            return True
        if handle_shaped(cell_id, data) or space.file.wrote(cell_id):
            # (The log's ops name it: a handle that holds something else now, written by
            # another program — quarantined where it is used, and kept as it is.)
            raise handle_not_writable(cell_id)
        return False

    def check_committed(self, space_id: str, cell_id: str, data: bytes) -> None:
        """R5 at commit: the cell a write was judged writable for, never written then, holds a
        database handle now (another runtime's or process's first ``db.exec`` of it came
        first): the write is refused as ``set`` refuses it."""
        if handle_shaped(cell_id, data):
            raise handle_not_writable(cell_id)

    def declares(self, db_id: str) -> bool:
        """Whether this runtime declared a database of id ``db_id`` (in any space)."""
        with self._decl_lock:
            return db_id in self._declarations

    def holds_handle(self, cell: Cell) -> bool:
        """Whether ``cell`` (a whole cell, no path) names a database: one declared in this
        runtime, or a cell whose committed value has the shape of its handle, even one that
        quarantines it (R5: such a database fails where it is used, never counts as none)."""
        if cell.value_path:
            return False
        with self._decl_lock:
            declared = self._declarations.get(cell.id)
        if declared is not None:
            # (Its id, in another space: a cell that holds no handle, R3.)
            return declared.space_id == cell.space.id
        try:
            data = self.space(cell.space.id).file.entity(cell.id).data
        except EncodingError:  # a row another program wrote: quarantined where it is used
            return True
        return (data is not None and handle_shaped(cell.id, data)) or self._wrote_database(cell)

    def _wrote_database(self, cell: Cell) -> bool:
        """Whether the log of ``cell``'s space has writes to a database of ``cell``'s id: then
        the cell is that database's handle whatever it holds now (R5; only ``db.exec`` and
        ``db.drop()`` make such ops, and a handle's first write is one)."""
        return self.space(cell.space.id).file.wrote(cell.id)

    def check_value(self, space_id: str, cell_id: str, data: bytes) -> None:
        """R3: a plain cell never holds a value shaped like its own database handle, which would
        make it a database (and lock it, R5) — neither written nor as its default; only
        ``sqlite_database`` and ``register_disk_source`` make handles. A database declared
        in this runtime passes: its handle value is its default (R2, R4), and ``set`` refuses
        any write to it before this check (``check_writable``). Its default is the handle
        value it reads until its first write, and no ``Cell`` of its id declares another (R5:
        that would change what ``db.get()`` and ``db.rev`` read)."""
        declared = None
        if cell_id in self._declarations:  # (every set comes here: no lock for other cells)
            with self._decl_lock:
                declared = self._declarations.get(cell_id)
        if declared is not None and declared.space_id == space_id:
            if data != self.encode(unwritten_handle(declared)):
                raise handle_not_writable(
                    cell_id,
                    "it is a database's handle, whose default is the handle value its "
                    "declaration gives (R5); a Cell of a database's id declares no default: "
                    "leave default= out",
                )
            return
        if b'"tables"' in data and handle_shaped(cell_id, data):
            raise handle_not_writable(
                cell_id,
                "the value has the shape of a database handle of this very cell; databases are "
                "made by space.sqlite_database() or register_disk_source(), not by set() or a "
                "default",
            )

    def whole_change_op(self, target: str) -> Op | None:
        """A ``sqlite`` op without a changeset: what reads the database re-runs whole (a runtime
        behind its space's compacted log cannot know which rows changed)."""
        return Op(kind=KIND, target=target, body=encode_op_body(OpBody("", [], False)))

    def declaration(self, db_id: str) -> Declaration:
        """What this runtime declared for the database ``db_id`` (its tables, version, file and
        source kind); a ``SqliteCellsError`` saying to declare it first when it did not."""
        with self._decl_lock:
            found = self._declarations.get(db_id)
        if found is not None:
            return found
        raise SqliteCellsError(
            f"database {db_id} was not declared in this runtime: call "
            "space.sqlite_database(...) or space.register_disk_source(...) first"
        )

    def declaration_for(self, handle: Cell) -> Declaration:
        """The declaration of the database a (linked) handle cell names: the one declared in
        this runtime, else rebuilt from the handle's committed value (a restart). A cell that
        holds no handle is a :class:`SourceError`: what the pattern input links to cannot be
        the source of its database (R61)."""
        with self._decl_lock:
            found = self._declarations.get(handle.id)
            adopted = self._adopted.get(handle.id)  # (None: declared here)
        if found is not None and found.space_id == handle.space.id:
            if adopted is None or found.kind is not SourceKind.CELL:
                return found
            # Rebuilt from its handle: the declaring runtime may have declared other tables
            # since (R14), which its writes here would refuse as undeclared columns.
            try:
                now = handle.get()
            except EncodingError:
                return found  # (what is wrong is said where it is used)
            if not isinstance(now, dict) or now.get("tables") == adopted:
                return found
        # (A database's id in another space names no database there: judged by its value.)
        try:
            value = handle.get()
        except EncodingError as exc:  # a row another program wrote
            if self._wrote_database(handle):
                raise unreadable_handle(handle.id, None, exc) from exc
            raise
        if not holds_handle(handle.id, value):
            if self._wrote_database(handle):
                raise HandleQuarantined(handle.id, value)  # R5: never "no handle"
            shown = repr(value)
            raise SourceError(
                f"cell {handle.id} in {handle.space.id!r} is linked where a database is expected "
                f"but does not hold a database handle (its value is "
                f"{shown if len(shown) <= 80 else shown[:77] + '...'}): link a handle returned "
                "by sqlite_database() or register_disk_source()"
            )
        decl = declaration_from_handle(
            value, handle.id, handle.space.id, store=self.store, roots=self.disk_source_roots
        )
        self._declare(decl, adopted=value.get("tables") if decl.kind is SourceKind.CELL else None)
        if decl.kind is SourceKind.DISK:
            self.take_pin(decl.db_id, decl.path, recorded_pin(value))
            self.follow_pin(decl)
        return decl

    def follow_pin(self, decl: Declaration) -> None:
        """R60 across processes: watch the handle of the injected file of ``decl``; when a
        commit (of any process) records another pin in it — the path was registered again —
        that pin becomes this process's, and the file's queries read the file there now."""
        with self._decl_lock:
            if decl.db_id in self._followed:
                return
            self._followed = {**self._followed, decl.db_id: decl.path}
        # A commit the hook took in before the handle was followed: its pin is the one
        # committed now (as a subscription's first value was).
        data = self.space(decl.space_id).file.entity(decl.db_id).data
        self.take_pin(decl.db_id, decl.path, _pin_in(data))

    def _pins_written(self, event: runtime.CommitEvent) -> list[runtime.Node]:
        """(Commit hook, scheduler thread.) Take the pin a commit recorded in a followed
        handle (``follow_pin``). A hook, not a subscription to the handle cell: that held the
        runtime from the scheduler's thread, so a runtime dropped unclosed after registering a
        disk source was never collected (see ``runtime.Runtime.__del__``)."""
        followed = self._followed
        for db_id in followed.keys() & event.writes.keys():
            self.take_pin(db_id, followed[db_id], _pin_in(event.writes[db_id].data))
        return []

    def _pins_quiet(self, event: runtime.CommitEvent) -> bool:
        """(Absorber of ``_pins_written``.) Whether the commit wrote no followed handle."""
        return self._followed.keys().isdisjoint(event.writes)

    def take_pin(self, db_id: str, path: Path, recorded: Identity | None) -> None:
        """``recorded`` (a registration's pin, or the one a handle value records) becomes the
        pin of handle ``db_id``, the injected file at ``path``; when it differs from the one
        this runtime's reads took before, the path is :meth:`repinned`. The pins are the
        store's in this process, by handle (``store_pins``): another runtime of the process
        that registered the path again made the new file the one meant at once (this one's
        queries re-run when it takes the pin too); one in another process is followed through
        the handle's value, as ``follow_pin`` does here."""
        if recorded is None:  # an older value without a pin: pinned at its first read (R73)
            return
        before = self.read_pool.pins.adopt(db_id, recorded)
        with self._decl_lock:  # (one taker at a time: a hold is given back once)
            seen = self._seen_pins.get(db_id)
            self._seen_pins[db_id] = recorded
            held = self._taken_pins.get(db_id)
            if held != recorded:
                # The file pinned is held open while this runtime holds its pin (until close):
                # its inode number is then never given to a file made later at the path, which
                # the pin (device, inode) would take for the file registered (R60). Only a hold
                # taken is given back: the path may name another file by now, and the holds of
                # that file are others'.
                if hold_open(path, recorded):
                    self._taken_pins[db_id] = recorded
                else:
                    self._taken_pins.pop(db_id, None)
                if held is not None:
                    release_hold(held)
        if (before is not None and before != recorded) or (seen is not None and seen != recorded):
            self.repinned(path)

    def repinned(self, path: Path) -> None:
        """Another file may be pinned at ``path`` now: the connections to the one pinned before
        are closed, and the queries of the path re-run."""
        self.read_pool.discard(path)
        self.live_queries.source_repinned(path)

    def ensure_reconciled(
        self,
        decl: Declaration,
        *,
        lock_timeout: float | None = None,
        reading: bool = False,
        checked: bool = False,
    ) -> None:
        """Before a database is first used by this runtime, make it agree with its space (R71);
        raises :class:`Quarantined` for a database that could not be repaired. A lock held
        elsewhere on its files is waited for ``lock_timeout`` seconds at most (default: the
        busy timeout of the runtime's own connections). A dropped database is never reconciled:
        a read (``reading``), or a use that would reconcile it, says it was dropped. A read
        waits for the space's write lock, which a repair needs, ``lock_timeout`` seconds at most
        too (the builtin ``TimeoutError`` then, see :meth:`ready_to_read`)."""
        if decl.kind is not SourceKind.CELL:
            return
        dropped = self._check_handle(decl)
        noted = damage_noted(decl.path)  # a read or a write found the file damaged
        with self._decl_lock:
            # A passing quarantine is raised by the use whose check met it (``checked``); one an
            # earlier check left (a commit whose file could not be repaired at once) is not
            # raised to a later use: that use compares the file again (the disk has room now?).
            once = self._quarantined_once.pop(decl.db_id, None)
            quarantined = self._quarantined.get(decl.db_id) or (once if checked else None)
            done = decl.db_id in self._reconciled
            verify = noted != self._damage_checked.get(decl.db_id, 0)
        if quarantined is not None:
            raise quarantined
        if dropped and (reading or verify or not done):
            # Dropped (by this runtime or another): the file is not reconciled against a log
            # whose last op for it is the drop. (A write checked already says so at commit.)
            raise dropped_database(decl.db_id, decl)
        # A read waits for the space's write lock (a repair) no longer than its deadline.
        lock_wait = lock_timeout if reading else None
        if verify:
            # R71: checked with SQLite's integrity check, rebuilt from the log or quarantined.
            # The pooled readers of the damaged file let it go first: one that holds it open
            # (an emptied file's -wal and -shm with it) would keep the repair from writing.
            self.read_pool.discard(decl.path)
            self.reconcile(decl, lock_timeout=lock_timeout, lock_wait=lock_wait, verify=True)
            with self._decl_lock:
                self._damage_checked[decl.db_id] = noted
            self.ensure_reconciled(decl, checked=True)
        elif not done:
            self.reconcile(decl, lock_timeout=lock_timeout, lock_wait=lock_wait)
            self.ensure_reconciled(decl, checked=True)

    def ready_to_read(self, decl: Declaration, sql: str, quick: bool = False) -> bool:
        """:meth:`ensure_reconciled` before a read of ``sql``: a lock another connection holds
        on the database or space file, or a commit of this runtime holding the space's write
        lock that a repair needs, is waited for no longer than ``query_timeout``; then the read
        is a :class:`QueryTimeout` (R44), and the next read tries again (for the write lock, a
        :class:`WriteLockTimeout`: a live query tries again by itself once the lock is free).
        With ``quick``, only when the file needs no check first (this runtime checked the file
        at the path, and no read found it damaged since): else nothing more is done and False
        is returned — the scheduler thread, which must not wait for a lock or check a file,
        hands such a read to a worker. True when the read may go ahead."""
        try:
            self._follow_file(decl)
            if quick and not self._checked(decl):
                return False
            self.ensure_reconciled(decl, lock_timeout=self.query_timeout, reading=True)
        except TimeoutError as exc:
            if isinstance(exc, SqliteCellsError):
                raise
            raise WriteLockTimeout(
                decl.db_id,
                sql,
                f"waited query_timeout={self.query_timeout}s for the write lock of space "
                f"{decl.space_id!r}, which this runtime held (a commit to the space, or another "
                "read's repair of this file, which may itself wait for another connection): "
                f"{decl.path} disagrees with its space and is repaired under the space's write "
                "lock before its first read here (R71); nothing was read: try again once it is "
                "free (a live query does so itself)",
            ) from None
        except DatabaseError as exc:
            if not waited_for_lock(exc):
                raise
            raise WriteLockTimeout(
                decl.db_id,
                sql,
                f"waited query_timeout={self.query_timeout}s for a lock that another connection "
                f"holds on {decl.path} or its space file, to check the database against its "
                "space before its first read here (R71); nothing was read: try again once that "
                "connection lets go (a live query does so itself)",
            ) from exc
        return True

    def _checked(self, decl: Declaration) -> bool:
        """Whether ``decl``'s file was checked against its space by this runtime and no read or
        write has found it damaged since (:meth:`ensure_reconciled` then reconciles nothing)."""
        if decl.kind is not SourceKind.CELL:
            return True
        noted = damage_noted(decl.path)
        with self._decl_lock:
            return decl.db_id in self._reconciled and noted == self._damage_checked.get(
                decl.db_id, 0
            )

    def _follow_file(self, decl: Declaration) -> None:
        """Before a read: the file at ``decl``'s path is not the one pinned for it (another
        process rebuilt it from the log, ``sqlite-cells check --repair`` or a runtime that met
        corrupt pages, or someone put another file there): the runtime forgets what it knew of
        the database and checks the file at the path against its space again, as at its first
        use (R71) — in sync, it is pinned and read; another history is quarantined. One
        ``stat`` per read; the pins are looked up only when the file is not the one last seen."""
        if decl.kind is not SourceKind.CELL:
            return
        now = file_identity(decl.path)
        if now is None:
            return  # a file that is gone is the read's to report (R41)
        with self._decl_lock:
            if self._seen_files.get(decl.db_id) == now:
                return
        expected = self._pinned(decl.path)
        if expected is not None and expected != now:
            self._forget_file(decl)
            return
        with self._decl_lock:
            appeared = expected is None and decl.db_id in self._reconciled
        if appeared and owned_elsewhere(decl.path, decl.space_id):
            # Checked while it had no file, and another runtime or process of another space
            # wrote one since (a database of the same id, R1, R2): checked against its space
            # before it is read, as at a first use — never read as this database's only because
            # it is at its path. (A file of this space's is read as a commit of another
            # runtime's is: the read goes by its watermark, R71.)
            self._forget_file(decl)
            return
        with self._decl_lock:
            self._seen_files[decl.db_id] = now

    def _forget_file(self, decl: Declaration) -> None:
        """The file at ``decl``'s path is not the one this runtime checked (found by a read, or
        by a commit, which raised :class:`StoreChanged`, R73): what was known of it — that it
        agrees with its space, the damage checks, the pooled connections — is forgotten, so its
        next use reconciles the file now at the path and pins it (R71)."""
        with self._decl_lock:
            self._reconciled.discard(decl.db_id)
            self._damage_checked.pop(decl.db_id, None)
            self._seen_files.pop(decl.db_id, None)
        self.read_pool.discard(decl.path)
        # The -wal and -shm the replaced file left at the path (when no commit met the new file
        # yet) would be read as the new file's by the next connection to open it — a read, or
        # the check against its space: set aside first (see files.set_aside_moved).
        space = self._spaces.get(decl.space_id)
        for file in _writer_pins([space] if space is not None else []):
            if file.path == str(decl.path):
                set_aside_moved(file)

    def _check_handle(self, decl: Declaration) -> bool:
        """``HandleQuarantined`` when the committed handle value of ``decl`` is not its handle
        (R5): written by an older or foreign program (one naming an injected file, which this
        runtime-owned database is not, included), it is never read as "no handle". Else whether
        the handle is dropped."""
        # Every commit of a database asks (before it begins): a single dict look-up (atomic)
        # when the space is open and the runtime usable, else ``space()`` itself, which opens
        # the space or says why the runtime cannot be used.
        space = self._spaces.get(decl.space_id) if self.is_open else None
        if space is None:
            space = self.space(decl.space_id)
        try:
            data = space.file.entity(decl.db_id).data
        except EncodingError as exc:  # a row another program wrote
            raise unreadable_handle(decl.db_id, None, exc) from exc
        if data is None:
            return False
        handle = decode_handle(decl.db_id, data)
        check_foreign_source(decl.db_id, decl.space_id, handle)
        return is_dropped(handle)

    def reconcile(
        self,
        decl: Declaration | SqliteDb,
        *,
        repair: bool = True,
        lock_timeout: float | None = None,
        lock_wait: float | None = None,
        verify: bool = False,
    ) -> Outcome:
        """Compare (and repair) a database with its space now; see ``_reconcile``. A space the
        store does not hold is not created (R7): with no database file either there is nothing
        to compare; a database file without its space is quarantined (its space was lost).
        ``lock_timeout`` bounds the wait for a lock held elsewhere (``apsw.BusyError`` then,
        inside a ``DatabaseError``). ``verify`` runs SQLite's integrity check on the file first
        (a damaged file is rebuilt from the log, or quarantined). The space's in-process write
        lock, which a comparison that finds the file out of sync needs, is waited for as long as
        the commit holding it takes, or ``lock_wait`` seconds at most (counted from the call):
        then the builtin ``TimeoutError``, and nothing is decided. ``decl`` may be the database
        handle itself (``db``)."""
        decl = _declaration_of(decl)
        deadline = None if lock_wait is None else time.monotonic() + lock_wait
        wait_ms = busy_ms(lock_timeout)
        file = self.space(decl.space_id).file
        if not file.exists:
            outcome = orphan_outcome(decl.db_id, decl.path, decl.space_id)
            self._record_outcome(decl, outcome)
            return outcome
        if repair:
            found = self._look_unlocked(decl, file, verify=verify, wait_ms=wait_ms)
            if found is not None:
                self._record_outcome(decl, found)
                return found
        if file.commit_open_here():
            # A read from a `migrate` callback, inside the commit of its write: the repair would
            # roll that commit's transaction back under it and detach its file (R71, R14).
            raise TransactionError(
                f"database {decl.db_id} ({decl.path}) disagrees with its space and is checked "
                "and repaired under the space's write lock before it is used (R71), which this "
                f"thread holds for the commit of space {decl.space_id!r} it is running (a read "
                "from a migrate callback); nothing was read or repaired: read the database "
                "before that write (its first read repairs it), or after the write has returned"
            )
        left = None if deadline is None else deadline - time.monotonic()
        with file.write_connection(left) as conn:
            if repair:
                # The space file replaced under this runtime (a backup put back): its log, as
                # this runtime holds it, is not the store's any more, and a repair from it would
                # write commits into the database file that the space at the path never made.
                file.check_same_file()
                # A database dropped by another process is never made again from the log (R74,
                # "Drop"): its committed handle is read now, under the lock, where this
                # runtime's copy may not have caught up with the drop yet.
                if dropped_in(conn, decl.db_id):
                    raise dropped_database(decl.db_id, decl)
            if deadline is not None:  # what the wait for the lock left of the read's time
                wait_ms = min(wait_ms, busy_ms(max(0.001, deadline - time.monotonic())))
            # The write connection may hold the file attached (and, inside an exclusive handler,
            # write-locked by an open transaction); reconcile works on it through a connection
            # of its own, so the file is let go first. An exclusive transaction has written
            # nothing yet: it is reopened after, and commit-time validation catches whatever
            # committed in between.
            reopen = not conn.getautocommit()
            if reopen:
                conn.execute("ROLLBACK")
            detach(conn)
            checked: Outcome | None = None
            if deadline is not None:
                # A read: the space file's own lock, which another process's commit may hold
                # for as long as its statements run, is waited for within the read's time too
                # (R44), not for the write connection's 30 s.
                set_lock_wait(conn, wait_ms)
            try:
                with translated(f"database {decl.db_id} ({decl.path})"):
                    # (the reconcile's open names a directory at the -wal or -shm path)
                    # First a look that takes no lock, as `check` does: the usual answer, in
                    # sync, needs no more, and other runtimes' commits never make it wait.
                    # Only a file that disagrees is compared again under the space's write
                    # lock and repaired. wait_ms bounds the wait for the database file's lock;
                    # the space's own is held by commits, each bounded by its exec_timeout.
                    look = reconcile(
                        conn,
                        decl.db_id,
                        decl.path,
                        repair=False,
                        verify=verify,
                        busy_ms=wait_ms,
                        quiet=repair,
                    )
                    if not repair or look.action is Action.IN_SYNC:
                        checked = look
                    else:
                        checked = reconcile(
                            conn,
                            decl.db_id,
                            decl.path,
                            repair=True,
                            verify=verify,
                            busy_ms=wait_ms,
                        )
            finally:
                if deadline is not None:
                    set_lock_wait(conn, BUSY_TIMEOUT_MS)
                unpin(conn, decl.path)  # a repair may have rebuilt the file
                if checked is not None and (checked.db_seq or checked.space_seq):
                    # R73: the file just found to agree with its space (or rebuilt) is the one
                    # this runtime may write; deleted or replaced before its first write here,
                    # it is StoreChanged at that commit, not written into.
                    pin(conn, decl.path)
                if reopen:
                    conn.execute("BEGIN IMMEDIATE")
            outcome = checked
            self._record_outcome(decl, outcome)
        return outcome

    def _look_unlocked(
        self, decl: Declaration, file: runtime.SpaceFile, *, verify: bool, wait_ms: int
    ) -> Outcome | None:
        """The usual first use: the file agrees with its space, found by a look that takes none
        of the space's locks (``look_unlocked``), so a long commit of another thread (to
        another database of the space) never holds back a first read (R40, R44). The file
        found in sync is pinned (R73) unless another took its path during the look. None when
        anything else was found, or the space's write connection is not open yet: the caller
        compares again under the write lock, and repairs (R71)."""
        writer = file.open_writer
        if writer is None:
            return None
        seen = file_identity(decl.path)
        held = pinned(writer, decl.path)
        if held is not None and held != seen:
            # The write connection holds (or pinned) another file than the one now at the path
            # (`check --repair` rebuilt it): only the locked path lets that one go.
            return None
        with translated(f"database {decl.db_id} ({decl.path})"):
            look = look_unlocked(file.path, decl.db_id, decl.path, verify=verify, busy_ms=wait_ms)
        if look.action is not Action.IN_SYNC or file_identity(decl.path) != seen:
            return None
        # As the locked path leaves it: pinned when the file holds commits (a file that holds
        # none may be removed by another runtime's refused first write, which is no swap).
        unpin(writer, decl.path)
        if look.db_seq or look.space_seq:
            pin(writer, decl.path)
        return look

    def _pinned(self, path: Path) -> Identity | None:
        """The identity this runtime's write path pinned for the database file ``path`` (after
        checking it against its space, or at its first write here), if any: what the read pool
        checks the files it opens against (R71, R73). A file is pinned only on its own space's
        write connection; the runtime's spaces are looked through (few), not its declarations
        (one per database: this runs at every open of a pooled connection)."""
        with self._lock:
            files = [space.file for space in self._spaces.values()]
        for file in files:
            writer = file.open_writer
            found = pinned(writer, path) if writer is not None else None
            if found is not None:
                return found
        return None

    def _forget_reconciled(self, decl: Declaration) -> None:
        """A write, or the re-reads of a live query, found ``decl``'s file behind its space:
        reconcile it again before its next use (R71)."""
        with self._decl_lock:
            self._reconciled.discard(decl.db_id)

    def _record_outcome(self, decl: Declaration, outcome: Outcome) -> None:
        # Every check of a database against its space ends here, whichever use made it (a
        # read, a live query's run, a write, `reconcile`). Live queries show what the database
        # is now (R71): the rows of a rebuilt file, or the quarantine (once, when it begins: a
        # quarantined database is not checked again); a file that agrees with its space re-runs
        # those that show an error (a file gone, a passing quarantine), which no write may come
        # to re-run.
        rerun = outcome.action is Action.REBUILT
        if rerun:
            # A new file took the path: pooled readers still hold the damaged one open.
            self.read_pool.discard(decl.path)
        with self._decl_lock:
            if outcome.action is Action.QUARANTINED:
                # A transient one (a full disk) is raised once: the next use tries again.
                kept = self._quarantined_once if outcome.transient else self._quarantined
                rerun = not outcome.transient and decl.db_id not in kept
                kept[decl.db_id] = Quarantined(
                    decl.db_id,
                    outcome.db_seq,
                    outcome.space_seq,
                    path=decl.path,
                    reason=outcome.detail,
                    transient=outcome.transient,
                )
                self._reconciled.discard(decl.db_id)
            elif outcome.agrees:
                self._quarantined.pop(decl.db_id, None)
                self._quarantined_once.pop(decl.db_id, None)  # (repaired since: not raised)
                self._reconciled.add(decl.db_id)
        if rerun:
            self.live_queries.rerun_database(decl.db_id)
        elif outcome.agrees:
            self.live_queries.rerun_database(decl.db_id, failed=True)

    def _space_replaced(self, file: runtime.SpaceFile) -> None:
        # The live queries of the space's databases run again: their reads ask the space for
        # the database's handle, which raises StoreChanged now, so their state shows that
        # error instead of rows read while the replaced file was the space's (R73).
        super()._space_replaced(file)
        with self._decl_lock:
            db_ids = [d.db_id for d in self._declarations.values() if d.space_id == file.space_id]
        for db_id in db_ids:
            self.live_queries.rerun_database(db_id)

    def _close_spaces(self, spaces: list[runtime.Space]) -> None:
        # A database file replaced at its path under the running runtime (a backup restored)
        # that no commit met since: the -wal and -shm the replaced file left there would be
        # applied to the file now there by the next opener. Set aside once the write
        # connections that had them open are closed (see files.set_aside_moved).
        pinned = _writer_pins(spaces)
        super()._close_spaces(spaces)
        for file in pinned:
            set_aside_moved(file)

    def _settle(self, timeout: float | None, given_up: threading.Event | None = None) -> bool:
        # Past commits include another program's to an injected file (R60): looked at now, as
        # the open spaces are caught up with other runtimes' commits (runtime.Runtime._settle).
        self.check_open()
        if not self.scheduler.on_thread and "live_queries" in vars(self):
            self.live_queries.look_at_sources()
        return super()._settle(timeout, given_up)

    def _close_extensions(self) -> None:
        # Waits for a read no longer than CLOSE_WAIT: stuck workers are interrupted and left
        # behind (R44). A runtime whose making was interrupted has only some of its parts.
        if "live_queries" not in vars(self):
            for part in ("query_workers", "_sqlite_participant"):
                made = vars(self).get(part)
                if made is not None:
                    made.close()
            return
        self.query_workers.close()
        self.live_queries.close()
        # Readers first: a database file's last connection to close removes its -wal and -shm
        # (after a checkpoint), which only the write connection may do, a reader being read-only.
        self.read_pool.close()
        # A file the write connection let go of while readers still had it open (it attached
        # another database since) was closed last by a reader: its commits would stay in its
        # -wal alone, and a copy of the store's .sqlite files would lack them. Each is opened
        # for writing and closed again, which does what that last close could not.
        for path, identity in self.read_pool.opened_files.items():
            let_go(path, identity)
        self._sqlite_participant.close()  # the write watchdog's thread, idle once writes end
        with self._decl_lock:
            taken, self._taken_pins = list(self._taken_pins.values()), {}
        for identity in taken:
            release_hold(identity)  # (closed now if its file is gone, see take_pin)


def _writer_pins(spaces: Iterable[runtime.Space]) -> list[Pinned]:
    """The database files the write connections of ``spaces`` attached (a space whose file was
    never opened has none: it is not opened here, which would make its file)."""
    return [
        file
        for space in spaces
        if (conn := space.file.open_writer) is not None
        for file in pinned_files(conn)
    ]


def _said_dropped(target: Cell, *, pending: bool) -> str:
    """A dropped database ``target``, as a refusal to link it says it (``pending``: dropped by
    the current transaction, not committed yet)."""
    when = "is dropped by this transaction" if pending else "was dropped"
    return (
        f"database {target.id} of space {target.space.id!r} {when} (db.drop()): it has no "
        "rows and can never be written again, so its queries could only fail"
    )


def _cycle(cell: Cell, target: Cell) -> str:
    """How linking the database input ``cell`` to ``target`` makes a cycle (see
    ``Space._leads_back``)."""
    if target.id == cell.id:
        return f"cell {target.id} in {target.space.id!r} is that input itself (a link to itself)"
    return (
        f"cell {target.id} in {target.space.id!r} is another piece's database input whose links "
        f"lead back to {cell.id} (a cycle of links)"
    )


def _takes_database(annotation: object) -> bool:
    """Whether a pattern parameter's annotation is ``sc.SqliteDb`` (or a subclass), also
    spelled as optional (``sc.SqliteDb | None``, ``Optional[sc.SqliteDb]``): the input is a
    database (R61). The body gets a database either way (pending until one is linked), since
    the piece is built once and a database linked later must reach the same body."""
    from sqlite_cells._db import SqliteDb

    if isinstance(annotation, str):
        return _names_database(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        rest = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        return len(rest) == 1 and _takes_database(rest[0])
    return isinstance(annotation, type) and issubclass(annotation, SqliteDb)


def _names_database(text: str) -> bool:
    """Whether an annotation that could not be resolved — ``SqliteDb`` imported for type
    checkers only (``if TYPE_CHECKING:``), under postponed annotations — names ``SqliteDb`` by
    its text (``SqliteDb``, ``sc.SqliteDb``, optional or not): a database input all the same,
    not silently a plain cell."""
    rest = [part.strip() for part in text.strip().strip("'\"").split("|")]
    rest = [part for part in rest if part != "None"]
    if len(rest) != 1:
        return False
    named = _OPTIONAL.fullmatch(rest[0])
    return (named.group(1) if named else rest[0]).strip().rsplit(".", 1)[-1] == "SqliteDb"


_OPTIONAL: Final = re.compile(r"(?:[\w.]+\.)?Optional\[(.*)\]")


# Each query worker is a thread; beyond this many they only contend for the same cores.
MAX_QUERY_WORKERS = 256
# Far above any open-files limit (a pooled connection holds its file, -wal and -shm): a larger
# figure is a mistake, not a wish.
MAX_READ_POOL_SIZE = 1_000_000


def _pin_in(data: bytes | None) -> Identity | None:
    """The pin a disk source's stored handle value records (None: none, or a value this
    runtime cannot read — its next use says what is wrong)."""
    if data is None:
        return None
    try:
        return recorded_pin(decode_value(data))
    except EncodingError:
        return None


def _check_count(name: str, value: object, most: int, each: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise InvalidArgument(f"{name} is an integer of at least 1, not {brief_repr(value)}")
    if value > most:
        raise InvalidArgument(f"{name} is at most {most:,} ({each}), not {brief_repr(value)}")


def _check_roots(roots: object) -> tuple[str | os.PathLike[str], ...] | None:
    """R60's ``disk_source_roots``: None (no limit) or a collection of directories; an empty
    one allows no disk source. A single path is refused rather than read as its characters."""
    if roots is None:
        return None
    if isinstance(roots, str | bytes | os.PathLike) or not isinstance(roots, Iterable):
        # The one path given, in a list, is the fix; a value that is no path is no root.
        advice = (
            f"[{brief_repr(roots)}]"
            if path_text(roots) is not None
            else "a list of str or Path, such as ['/srv/data'], or None for no limit"
        )
        raise InvalidArgument(
            f"disk_source_roots is a list of directories, not {brief_repr(roots)} (of type "
            f"{type(roots).__name__}): write {advice}"
        )
    found = tuple(roots)
    for root in found:
        text = path_text(root)
        if text is None or "\0" in text:
            raise InvalidArgument(
                f"disk_source_roots holds {brief_repr(root)}: each root is a directory path (a "
                "str or Path, without NUL characters)"
            )
        if not os.path.isabs(text):
            # As register_disk_source's paths (R60): a relative root would allow other files
            # whenever the process changes its current directory.
            raise InvalidArgument(
                f"disk_source_roots holds {brief_repr(text)}, a relative path: give each root "
                "as an absolute path (for example os.path.abspath(root))"
            )
    return found


def _check_seconds(name: str, value: object) -> None:
    if (
        not isinstance(value, int | float)
        or isinstance(value, bool)
        or not 0 < value <= MAX_SECONDS
    ):
        raise InvalidArgument(
            f"{name} is a positive number of seconds, at most {MAX_SECONDS:,} (about 23 days), "
            f"not {brief_repr(value)}"
        )


def _declaration_of(db: object) -> Declaration:
    """The declaration of a database given as its handle or as the declaration itself."""
    from sqlite_cells._db import SqliteDb

    if isinstance(db, SqliteDb):
        return db.declaration
    if isinstance(db, Declaration):
        return db
    raise InvalidArgument(
        f"a database is given as its handle (from space.sqlite_database or "
        f"register_disk_source), not {brief_repr(db)}"
    )


# Last, as sqlite_cells/_db.py imports this module last: each module of the cycle is whole before
# the other one's names are taken from it, whichever is imported first. Bound at run time for
# typing.get_type_hints, which resolves the annotations that name it (§3).
from sqlite_cells._db import SqliteDb  # noqa: E402 (an import cycle, see above)
