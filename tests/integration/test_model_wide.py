"""Several spaces, links across them, other runtimes and processes, and crashes, against a
plain-Python model (§2, §3; R30, R50–R54, R70–R72).

`test_model_stateful.py` drives one space. Here a hypothesis state machine drives three spaces
of one store, each with two cells and one database cell, through two runtimes of one process:
cells hold links to cells of other spaces and link columns hold them too (read back as live
`Cell`s equal to what was stored, R30, R43); a transaction reads cells of other spaces and writes
its own (allowed, §2 "one space per transaction" is about writes); a transaction that writes two
spaces fails with `CrossSpaceWrite` and writes nothing. Live queries, derived cells and
observers live on both runtimes; those of the runtime that did not write are checked once they
have caught up (R53), waiting on the condition, never for a fixed time.

Two plain tests use real processes: a subscriber in another process sees, in order, only
committed values, at most once per commit, ending at the final state (R50, R53, R54); and a
writer process killed with SIGKILL at a random point loses no commit it reported as returned,
leaves each database agreeing with its space and the seqs gapless (R70–R72).
"""

from __future__ import annotations

import inspect
import itertools
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

import sqlite_cells as sc

from .test_model_stateful import Boom, at_key, in_thread, is_subsequence

ROOT = Path(__file__).resolve().parents[2]
SPACES = ("s0", "s1", "s2")
NAMES = ("a", "b")
DEFAULT = 0
SETTLE = 30.0
POLL = 0.01


def tables() -> dict[str, Any]:
    """Each space's database; the child processes declare it from this function's source."""
    return {
        "notes": sc.table(
            id="integer primary key",
            body="text not null default ''",
            ref_cf_link=sc.cf_link(),
        ),
    }


class Note(msgspec.Struct):
    id: int
    body: str
    ref_cf_link: sc.Cell | None


QUERIES = {
    "all": "SELECT id, body, ref_cf_link FROM notes ORDER BY id",
    "typed": "SELECT id, body, ref_cf_link FROM notes ORDER BY id",
    "count": "SELECT count(*) AS n FROM notes",
    "bodies": "SELECT id, body FROM notes ORDER BY id",
}
REACTIONS = ("reads", "db")

# A cell reference is ("ref", space, name, path); a value is an int, a ref, a list of ints or a
# dict {"n": int, "ref": ref | None}. Committed ints are >= 0; writes that must not commit write
# negative ones.
Ref = tuple[str, str, str, tuple[str, ...]]
Key = tuple[str, str]  # (space, cell name)
Row = tuple[str, Ref | None]  # (body, ref)

spaces = st.sampled_from(SPACES)
names = st.sampled_from(NAMES)
small = st.integers(0, 40)
refs = st.tuples(st.just("ref"), spaces, names, st.sampled_from([(), ("n",)]))
values = st.one_of(
    small,
    refs,
    st.lists(small, max_size=3),
    st.fixed_dictionaries({"n": small, "ref": st.one_of(st.none(), refs)}),
)
ids = st.integers(1, 5)
words = st.sampled_from(["x", "y", "z"])
ops = st.one_of(
    st.tuples(st.just("insert"), st.tuples(ids, words, st.one_of(st.none(), refs))),
    st.tuples(st.just("body"), st.tuples(ids, words)),
    st.tuples(st.just("point"), st.tuples(ids, st.one_of(st.none(), refs))),
    st.tuples(st.just("delete"), st.tuples(ids)),
)


class SqlFailure(Exception):
    """The model's verdict: SQLite refuses this commit (a duplicate primary key)."""


def apply_op(rows: dict[int, Row], kind: str, args: tuple[Any, ...]) -> None:
    if kind == "insert":
        nid, body, ref = args
        if nid in rows:
            raise SqlFailure
        rows[nid] = (body, ref)
    elif kind == "body":
        if args[0] in rows:
            rows[args[0]] = (args[1], rows[args[0]][1])
    elif kind == "point":
        if args[0] in rows:
            rows[args[0]] = (rows[args[0]][0], args[1])
    elif kind == "delete":
        rows.pop(args[0], None)
    else:  # pragma: no cover - the strategies name no other kind
        raise AssertionError(kind)


# What each query reads (R51): ("row", column) for a column, "table" for INSERT/DELETE only.
READS: dict[str, set[str]] = {
    "all": {"id", "body", "ref"},
    "typed": {"id", "body", "ref"},
    "count": {"table"},
    "bodies": {"id", "body"},
}


def changed(before: dict[int, Row], after: dict[int, Row]) -> set[str]:
    """What a commit taking the rows from ``before`` to ``after`` changed, as R51 counts it."""
    out: set[str] = set()
    if before.keys() != after.keys():
        out |= {"table", "id", "body", "ref"}
    for nid in before.keys() & after.keys():
        if before[nid][0] != after[nid][0]:
            out.add("body")
        if before[nid][1] != after[nid][1]:
            out.add("ref")
    return out


@dataclass
class Model:
    cells: dict[Key, Any] = field(
        default_factory=lambda: {(s, n): DEFAULT for s in SPACES for n in NAMES}
    )
    rows: dict[str, dict[int, Row]] = field(default_factory=lambda: {s: {} for s in SPACES})
    seq: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SPACES, 0))
    rev: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SPACES, 0))
    db_seq: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SPACES, 0))
    history: dict[Key, list[Any]] = field(
        default_factory=lambda: {(s, n): [DEFAULT] for s in SPACES for n in NAMES}
    )


@dataclass
class Live:
    side: int  # which runtime made it: 0 or 1
    space: str
    name: str
    query: sc.Query[Any]
    results: list[Any]  # every result the model had for it since it was made, in order
    seq: int
    reaction: str
    received: list[Any] = field(default_factory=list)
    commits_since: int = 0


@dataclass
class Watched:
    side: int
    key: Key
    received: list[Any] = field(default_factory=list)
    history_at_start: int = 0


@dataclass
class Derived:
    side: int
    cell: Any
    expected: Callable[[], Any]
    received: list[Any] | None = None  # what an observer of a diamond received


class Side:
    """One runtime's handles on the three spaces."""

    def __init__(self, store: Path) -> None:
        self.rt = sc.Runtime(store=store, poll_interval=POLL)
        self.spaces = {s: self.rt.space(s) for s in SPACES}
        self.cells = {
            (s, n): self.spaces[s].cell(n, default=DEFAULT) for s in SPACES for n in NAMES
        }
        self.dbs = {s: self.spaces[s].sqlite_database("notes", tables=tables()) for s in SPACES}
        self.keys = {(c.space.id, c.id): key for key, c in self.cells.items()}

    def make(self, spec: Any) -> Any:
        if isinstance(spec, tuple):
            cell = self.cells[spec[1], spec[2]]
            for k in spec[3]:
                cell = cell.key(k)
            return cell
        if isinstance(spec, list):
            return [self.make(v) for v in spec]
        if isinstance(spec, dict):
            return {k: self.make(v) for k, v in spec.items()}
        return spec

    def plain(self, value: Any) -> Any:
        """The model form of a value read back: a Cell becomes the ref of the cell it names,
        whichever space that is."""
        if isinstance(value, sc.Cell):
            space, name = self.keys[value.space.id, value.id]
            return ("ref", space, name, tuple(value.value_path))
        if isinstance(value, list):
            return [self.plain(v) for v in value]
        if isinstance(value, dict):
            return {k: self.plain(v) for k, v in value.items()}
        assert not isinstance(value, tuple), value
        return value

    def run_op(
        self, space: str, kind: str, args: tuple[Any, ...], links: Side | None = None
    ) -> None:
        """Run one db op on this runtime's database of ``space``; the Cells it binds are made
        by ``links`` (another runtime on the same store names the same cells)."""
        db = self.dbs[space]
        make = (links or self).make
        if kind == "insert":
            db.exec(
                "INSERT INTO notes (id, body, ref_cf_link) VALUES (?, ?, ?)",
                [args[0], args[1], None if args[2] is None else make(args[2])],
            )
        elif kind == "body":
            db.exec("UPDATE notes SET body = ? WHERE id = ?", [args[1], args[0]])
        elif kind == "point":
            ref = None if args[1] is None else make(args[1])
            db.exec("UPDATE notes SET ref_cf_link = ? WHERE id = ?", [ref, args[0]])
        elif kind == "delete":
            db.exec("DELETE FROM notes WHERE id = ?", [args[0]])
        else:  # pragma: no cover
            raise AssertionError(kind)

    def rows(self, space: str) -> dict[int, Row]:
        return {
            r["id"]: (
                r["body"],
                None
                if r["ref_cf_link"] is None
                else self.plain(sc.decode_cf_link(r["ref_cf_link"], self.rt)),
            )
            for r in self.dbs[space].read("SELECT id, body, ref_cf_link FROM notes")
        }

    def close(self) -> None:
        self.rt.close()


def eventually(check: Callable[[], None], sides: list[Side], deadline: float = SETTLE) -> None:
    """Run ``check`` until it passes: a runtime sees another's commits within ``poll_interval``
    plus the re-run time (R53), so each failed look waits for every runtime to settle and for
    one more poll, up to a generous deadline; the last failure is raised."""
    end = time.monotonic() + deadline
    while True:
        for side in sides:
            side.rt.settle(timeout=SETTLE)
        try:
            check()
            return
        except AssertionError:
            if time.monotonic() > end:
                raise
        time.sleep(POLL)


# -- a writer killed at a random point ------------------------------------------------------------

WRITER = (
    """
from __future__ import annotations
import random, sys
from typing import Any
import sqlite_cells as sc
"""
    + inspect.getsource(tables)
    + """
store, seed, k = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
# Optional: kill this process at one write or sync of the commit after the first `armed_after`
# (crashkit's VFS shim); "missed" when that commit made no such call.
fault, armed_after = (sys.argv[4], int(sys.argv[5])) if len(sys.argv) > 5 else (None, -1)
plan = None
if fault is not None:
    sys.path.insert(0, "tests/integration")
    import crashkit
    plan = crashkit.Plan(fault=crashkit.Fault.parse(fault, "kill"))
    vfs = crashkit.install(plan)
rng = random.Random(seed)
done = 0
with sc.Runtime(store) as rt:
    spaces = {s: rt.space(s) for s in ("s0", "s1", "s2")}
    dbs = {s: space.sqlite_database("notes", tables=tables()) for s, space in spaces.items()}
    print("ready", flush=True)
    while True:
        s, other = rng.choice(sorted(spaces)), rng.choice(sorted(spaces))
        target = spaces[other].cell("a", default=0)
        if plan is not None and done == armed_after:
            plan.arm()
        with spaces[s].transact() as tx:
            spaces[s].cell("a", default=0).set(k)
            spaces[s].cell("b", default=0).set(target)
            dbs[s].exec(
                "INSERT INTO notes (id, body, ref_cf_link) VALUES (?, ?, ?)", [k, other, target]
            )
        print("seq", s, tx.seq, k, other, flush=True)  # printed once the commit returned
        if plan is not None and done == armed_after:
            plan.disarm()
            print("missed", flush=True)
        done += 1
        k += 1
"""
)


def _returned_to(line: str, reported: list[tuple[str, int, int, str]]) -> None:
    """Note a writer's ``seq SPACE SEQ K OTHER`` line (see WRITER): that commit returned."""
    if line.startswith("seq "):
        _, s, seq, kk, other = line.split()
        reported.append((s, int(seq), int(kk), other))


class Spaces(RuleBasedStateMachine):
    """Two runtimes on one store of three spaces, and the model of that store."""

    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="sc-wide-"))
        self.store = self.dir / "store"
        self.model = Model()
        self.sides: list[Side] = []
        self.lives: list[Live] = []
        self.watched: list[Watched] = []
        self.derived: list[Derived] = []
        self.subscriptions: list[Any] = []
        self.next_id = 1000
        self.killed = False

    def fresh(self) -> int:
        self.next_id += 1
        return self.next_id

    @initialize()
    def open_store(self) -> None:
        self.sides = [Side(self.store), Side(self.store)]
        # Ids are derived from causes (R1): both runtimes name the same cells and databases.
        assert {c.id for c in self.sides[0].cells.values()} == {
            c.id for c in self.sides[1].cells.values()
        }

    def teardown(self) -> None:
        for sub in self.subscriptions:
            sub.dispose()
        for side in self.sides:
            side.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- the model ---------------------------------------------------------------------------------

    def value_of(self, ref: Ref) -> Any:
        value = self.model.cells[ref[1], ref[2]]
        for k in ref[3]:
            value = at_key(value, k)
        return value

    def expected(self, space: str, name: str) -> Any:
        rows = sorted(self.model.rows[space].items())
        if name == "all":
            return [
                {
                    "id": nid,
                    "body": body,
                    "ref_cf_link": None if ref is None else self.sides[0].make(ref).link_str(),
                }
                for nid, (body, ref) in rows
            ]
        if name == "typed":
            return [("Note", nid, body, ref) for nid, (body, ref) in rows]
        if name == "count":
            return [{"n": len(rows)}]
        if name == "bodies":
            return [{"id": nid, "body": body} for nid, (body, _r) in rows]
        raise AssertionError(name)

    def canon(self, side: Side, rows: Any) -> Any:
        if rows is None:
            return None
        out = []
        for row in rows:
            if isinstance(row, Note):
                ref = row.ref_cf_link
                out.append(("Note", row.id, row.body, None if ref is None else side.plain(ref)))
            else:
                out.append(dict(row))
        return out

    def committed(
        self, space: str, seq: int | None, *, cells: dict[str, Any], rows: dict[int, Row] | None
    ) -> None:
        """Record one commit of ``space`` that wrote ``cells`` and, unless ``rows`` is None, its
        database, leaving it with ``rows``."""
        m = self.model
        assert seq == m.seq[space] + 1, f"commit seq {seq} in {space}, the last was {m.seq[space]}"
        m.seq[space] = seq
        for name, value in cells.items():
            m.cells[space, name] = value
            m.history[space, name].append(value)
        if rows is not None:
            what = changed(m.rows[space], rows)
            m.rows[space] = rows
            m.rev[space] += 1
            m.db_seq[space] = seq
            for live in self.lives:
                if live.space != space:
                    continue
                live.commits_since += 1
                if live.reaction == "db" or what & READS[live.name]:
                    live.seq = seq
        for live in self.lives:
            now = self.expected(live.space, live.name)
            if now != live.results[-1]:
                live.results.append(now)

    def rows_after(self, space: str, db_ops: list[Any]) -> dict[int, Row] | None:
        rows = dict(self.model.rows[space])
        try:
            for kind, args in db_ops:
                apply_op(rows, kind, args)
        except SqlFailure:
            return None
        return rows

    def snapshot(self) -> Any:
        side = self.sides[0]
        side.rt.settle(timeout=SETTLE)
        return (
            {k: side.plain(c.get()) for k, c in side.cells.items()},
            {s: side.rows(s) for s in SPACES},
            {s: side.dbs[s].rev for s in SPACES},
        )

    # -- rules: writes -----------------------------------------------------------------------------

    @rule(
        who=st.integers(0, 1),
        space=spaces,
        writes=st.dictionaries(names, values, max_size=2),
        db_ops=st.lists(ops, max_size=3),
        theirs=st.booleans(),
    )
    def transact(
        self, who: int, space: str, writes: dict[str, Any], db_ops: list[Any], theirs: bool
    ) -> None:
        """Cells (holding links to any space) and rows (with link columns naming cells of any
        space) in one commit of one space, through either runtime (R30, R32, R34). The Cells
        stored may be the other runtime's: on the same store they name the same cells."""
        side = self.sides[who]
        links = self.sides[1 - who] if theirs else side
        after = self.rows_after(space, db_ops)
        before = self.snapshot() if after is None else None
        try:
            with side.spaces[space].transact() as tx:
                for name, spec in writes.items():
                    side.cells[space, name].set(links.make(spec))
                for kind, args in db_ops:
                    side.run_op(space, kind, args, links)
        except sc.ExecError as exc:
            assert after is None, f"the model expected this commit to succeed: {exc!r}"
            assert exc.db_id == side.dbs[space].id
            assert self.snapshot() == before
            return
        assert after is not None, "the model expected an ExecError (a duplicate primary key)"
        if not writes and not db_ops:
            assert tx.seq is None
            return
        self.committed(space, tx.seq, cells=dict(writes), rows=after if db_ops else None)

    @rule(
        who=st.integers(0, 1),
        src=st.tuples(spaces, names),
        dst=st.tuples(spaces, names),
        with_row=st.booleans(),
    )
    def copy_across(self, who: int, src: Key, dst: Key, with_row: bool) -> None:
        """A transaction that reads a cell of one space and writes another space: allowed (§2
        "one space per transaction" is about writes); the value copied keeps its links."""
        side = self.sides[who]
        space = dst[0]
        nid = self.fresh()
        with side.spaces[space].transact() as tx:
            value = side.cells[src].get()
            side.cells[dst].set(value)
            if with_row:
                side.dbs[space].exec(
                    "INSERT INTO notes (id, body, ref_cf_link) VALUES (?, ?, ?)",
                    [nid, "copy", side.cells[src]],
                )
        rows = None
        if with_row:
            rows = {**self.model.rows[space], nid: ("copy", ("ref", src[0], src[1], ()))}
        self.committed(space, tx.seq, cells={dst[1]: self.model.cells[src]}, rows=rows)

    @rule(
        who=st.integers(0, 1),
        space=spaces,
        other=spaces,
        kind=st.sampled_from(["cells", "cell-then-db", "db-then-cell", "dbs"]),
        n=st.integers(1, 40),
        propagate=st.booleans(),
    )
    def cross_space_write(
        self, who: int, space: str, other: str, kind: str, n: int, propagate: bool
    ) -> None:
        """A write to a second space in one transaction is ``CrossSpaceWrite`` at that call
        (§2, §3); when it propagates nothing is written in either space; when the body catches
        it the call recorded nothing and the rest commits (as every error raised at a call,
        R32)."""
        if other == space:
            return
        side = self.sides[who]
        nid = self.fresh()
        first_cell = kind in ("cells", "cell-then-db")
        before = self.snapshot()
        try:
            with side.spaces[space].transact() as tx:
                if first_cell:
                    side.cells[space, "a"].set(n)
                else:
                    side.dbs[space].exec("INSERT INTO notes (id, body) VALUES (?, ?)", [nid, "ok"])
                with pytest.raises(sc.CrossSpaceWrite) as caught:
                    if kind in ("cells", "db-then-cell"):
                        side.cells[other, "a"].set(-n)
                    else:
                        side.dbs[other].exec(
                            "INSERT INTO notes (id, body) VALUES (?, ?)", [nid, "ghost"]
                        )
                err = caught.value
                assert isinstance(err, sc.SqliteCellsError)
                assert repr(space) in str(err) and repr(other) in str(err), str(err)
                if propagate:
                    raise Boom
        except Boom:
            assert self.snapshot() == before
            return
        rows = {**self.model.rows[space], nid: ("ok", None)} if not first_cell else None
        self.committed(space, tx.seq, cells={"a": n} if first_cell else {}, rows=rows)

    @rule(
        who=st.integers(0, 1),
        src=st.tuples(spaces, names),
        dst=st.tuples(spaces, names),
        n=st.integers(0, 40),
        with_row=st.booleans(),
    )
    def read_across_conflict(self, who: int, src: Key, dst: Key, n: int, with_row: bool) -> None:
        """A transaction that read a cell of another space, changed by the other runtime before
        the commit: ``ConflictError`` naming it, nothing of the transaction written (§2; the
        decision "A transaction's reads of another space are validated too")."""
        if src[0] == dst[0]:
            return
        side, other = self.sides[who], self.sides[1 - who]
        theirs: list[int | None] = []
        nid = self.fresh()

        def write() -> None:
            with other.spaces[src[0]].transact() as tx:
                other.cells[src].set(n)
            theirs.append(tx.seq)

        with pytest.raises(sc.ConflictError) as caught, side.spaces[dst[0]].transact():
            side.cells[src].get()
            in_thread(write)
            side.cells[dst].set(-1 - n)
            if with_row:
                side.dbs[dst[0]].exec("INSERT INTO notes (id, body) VALUES (?, ?)", [nid, "x"])
        assert side.cells[src].id in caught.value.cell_ids
        self.committed(src[0], theirs[0], cells={src[1]: n}, rows=None)

    @rule(space=spaces, n=st.integers(1, 40))
    def one_space_through_two_runtimes(self, space: str, n: int) -> None:
        """One space id written through two Runtime objects in one transaction is two writers,
        refused as ``CrossSpaceWrite`` (decided: "CrossSpaceWrite between two spaces of one id
        tells why"); nothing is written."""
        before = self.snapshot()
        with pytest.raises(sc.CrossSpaceWrite), self.sides[0].spaces[space].transact():
            self.sides[0].cells[space, "a"].set(-n)
            self.sides[1].cells[space, "b"].set(-n)
        assert self.snapshot() == before

    @rule(who=st.integers(0, 1), key=st.tuples(spaces, names), k=st.integers(0, 5))
    def handler_across(self, who: int, key: Key, k: int) -> None:
        """A handler binds to the space of its first write; a read of another space before it
        is fine (§3)."""
        side = self.sides[who]
        other = SPACES[(SPACES.index(key[0]) + 1) % len(SPACES)]

        @sc.handler
        def add(k: int, *, src: sc.Cell, dst: sc.Cell) -> None:
            v = src.get()
            dst.set((v if isinstance(v, int) else 0) + k)

        old = self.model.cells[other, key[1]]
        seq = add(k, src=side.cells[other, key[1]], dst=side.cells[key])
        self.committed(
            key[0], seq, cells={key[1]: (old if isinstance(old, int) else 0) + k}, rows=None
        )

    # -- rules: reading ----------------------------------------------------------------------------

    @rule(
        who=st.integers(0, 1),
        space=spaces,
        name=st.sampled_from(sorted(QUERIES)),
        reaction=st.sampled_from(REACTIONS),
        observe=st.booleans(),
    )
    def live_query(self, who: int, space: str, name: str, reaction: str, observe: bool) -> None:
        side = self.sides[who]
        db = side.dbs[space]
        row = Note if name == "typed" else None
        if reaction == "reads":
            q = db.query(QUERIES[name], row=row)
        else:
            q = db.query(QUERIES[name], row=row, react_on=db)
        live = Live(
            who,
            space,
            name,
            q,
            [self.expected(space, name)],
            seq=self.model.db_seq[space],
            reaction=reaction,
        )
        self.lives.append(live)
        if observe:
            self.subscriptions.append(q.observe().subscribe(live.received.append))

    @rule(who=st.integers(0, 1), key=st.tuples(spaces, names))
    def observe_cell(self, who: int, key: Key) -> None:
        watched = Watched(who, key, history_at_start=len(self.model.history[key]))
        self.watched.append(watched)
        self.subscriptions.append(
            self.sides[who].cells[key].observe().subscribe(watched.received.append)
        )

    @rule(
        who=st.integers(0, 1),
        one=st.tuples(spaces, names),
        two=st.tuples(spaces, names),
        space=spaces,
    )
    def derived_across(self, who: int, one: Key, two: Key, space: str) -> None:
        """A derived cell over cells of two spaces and a query of a third (§3, R54)."""
        side = self.sides[who]
        m = self.model
        q = side.dbs[space].query(QUERIES["count"])
        d = sc.lift(
            lambda x, y, s: [
                side.plain(x),
                side.plain(y),
                None if s.pending or s.result is None else s.result[0]["n"],
            ]
        )(side.cells[one], side.cells[two], q)
        self.derived.append(
            Derived(who, d, lambda: [m.cells[one], m.cells[two], len(m.rows[space])])
        )

    @rule(who=st.integers(0, 1), key=st.tuples(spaces, names))
    def diamond(self, who: int, key: Key) -> None:
        """Both arms of a diamond change with one commit, made by either runtime: an observer
        never sees one arm updated and the other not (§2 Scheduler, R54), also when the commit
        reaches this runtime from another one (R53)."""
        side = self.sides[who]
        m = self.model
        cell = side.cells[key]
        arm = sc.derive(cell, side.plain)
        d = sc.lift(lambda x, y: [side.plain(x), y])(cell, arm)
        derived = Derived(who, d, lambda: [m.cells[key], m.cells[key]], received=[])
        self.derived.append(derived)
        assert derived.received is not None
        self.subscriptions.append(d.observe().subscribe(derived.received.append))

    @rule(ref=refs, who=st.integers(0, 1))
    def links_round_trip(self, ref: Ref, who: int) -> None:
        """A link names its cell in any space of the runtime (R30, §3 `rt.cell_from_link`)."""
        side = self.sides[who]
        cell = side.make(ref)
        for back in (
            side.rt.cell_from_link(cell.link_str()),
            side.rt.cell_from_link(cell.link()),
            sc.decode_cf_link(cell.link_str(), side.rt),
        ):
            assert back == cell
            assert (back.space.id, back.id, back.value_path) == (
                cell.space.id,
                cell.id,
                cell.value_path,
            )
        link = json.loads(cell.link_str())["/"]["link@1"]
        assert link["space"] == ref[1] and link["scope"] == "space"
        assert link.get("path", []) == list(ref[3])

    @precondition(lambda self: not self.killed)
    @rule(
        stop_after=st.integers(0, 6),
        seed=st.integers(0, 2**16),
        fault=st.one_of(
            st.none(),
            st.tuples(
                st.sampled_from(["space-wal", "db-wal", "db"]),
                st.sampled_from(["write", "sync"]),
                st.integers(1, 3),
                st.sampled_from(["before", "after"]),
            ),
        ),
    )
    def writer_killed(
        self, stop_after: int, seed: int, fault: tuple[str, str, int, str] | None
    ) -> None:
        """A writer process killed with SIGKILL (mostly in the middle of a commit) while both
        runtimes run: every commit it reported as returned reaches their cells, rows and live
        queries, the one in flight is there entirely or not at all, and each database agrees
        with its space (R53, R71, R72). Once per run: a process costs more than every other
        step."""
        self.killed = True
        start = self.next_id + 1
        # Killed after `stop_after` commits returned, so mostly in the middle of the next one;
        # or, with a fault, at that write or sync of the next one (crashkit's VFS shim).
        where = [] if fault is None else [":".join(map(str, fault)), str(stop_after)]
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(self.store), str(seed), str(start), *where],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert proc.stdout is not None
        reported: list[tuple[str, int, int, str]] = []
        lines = iter(proc.stdout)
        for line in lines:
            _returned_to(line, reported)
            if (fault is None and len(reported) >= stop_after) or line.startswith("missed"):
                break
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        # What the writer printed before the kill reached it, still unread (the pipe and the
        # reader's buffer hold it): those commits returned too.
        for line in lines:
            _returned_to(line, reported)
        proc.stdout.close()
        in_flight = start + len(reported)
        self.next_id = in_flight + 1
        # Whether the commit in flight landed, and where: its space says (the authority, R71);
        # a runtime opened for the look reads the space files, not the databases.
        look = Side(self.store)
        try:
            for s in SPACES:
                if look.cells[s, "a"].get() == in_flight:
                    ref = look.plain(look.cells[s, "b"].get())
                    last = max([seq for r, seq, _k, _o in reported if r == s], default=None)
                    seq = self.model.seq[s] if last is None else last
                    reported.append((s, seq + 1, in_flight, ref[1]))
        finally:
            look.close()
        for s, seq, kk, other in reported:
            link: Ref = ("ref", other, "a", ())
            self.committed(
                s, seq, cells={"a": kk, "b": link}, rows={**self.model.rows[s], kk: (other, link)}
            )

    @rule()
    def reopen(self) -> None:
        """Close and reopen the first runtime: every space as committed, seqs go on (R72)."""
        for sub in self.subscriptions:
            sub.dispose()
        self.subscriptions.clear()
        self.lives.clear()
        self.watched.clear()
        self.derived.clear()
        self.sides[0].close()
        self.sides[0] = Side(self.store)

    # -- checks ------------------------------------------------------------------------------------

    def check_side(self, who: int) -> None:
        side = self.sides[who]
        m = self.model
        assert {k: side.plain(c.get()) for k, c in side.cells.items()} == m.cells
        for s in SPACES:
            assert side.dbs[s].rev == m.rev[s], s
            assert side.rows(s) == m.rows[s], s
        for live in self.lives:
            if live.side != who:
                continue
            state = live.query.get()
            assert state.error is None, state.error
            assert not state.pending
            assert self.canon(side, state.result) == self.expected(live.space, live.name)
            assert state.seq == live.seq, (live.space, live.name, state.seq, live.seq)
            if live.name == "typed":
                for row in state.result:
                    if row.ref_cf_link is not None:
                        ref = side.plain(row.ref_cf_link)
                        assert side.plain(row.ref_cf_link.get()) == self.value_of(ref)
            if live.received:
                shown = [self.canon(side, s.result) for s in live.received if not s.pending]
                assert shown and shown[-1] == self.expected(live.space, live.name)
                assert is_subsequence(shown, live.results), (shown, live.results)
                assert len(live.received) <= 2 + live.commits_since
        for d in self.derived:
            if d.side != who:
                continue
            assert d.cell.get() == d.expected()
            if d.received is not None:
                assert d.received and d.received[-1] == d.expected()
                for left, right in d.received:
                    assert left == right, d.received  # a glitch
        for w in self.watched:
            if w.side != who:
                continue
            got = [side.plain(v) for v in w.received]
            assert got and got[-1] == m.cells[w.key]
            since = m.history[w.key][w.history_at_start - 1 :]
            assert is_subsequence(got, since), (w.key, got, since)
            assert len(got) <= len(since)

    @invariant()
    def both_runtimes_match_the_model(self) -> None:
        if not self.sides:
            return
        eventually(lambda: self.check_side(0), self.sides)
        eventually(lambda: self.check_side(1), self.sides)


FAST = settings(
    max_examples=40,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def test_spaces_match_model() -> None:
    run_state_machine_as_test(Spaces, settings=FAST)


@pytest.mark.slow
def test_spaces_match_model_long() -> None:
    run_state_machine_as_test(
        Spaces, settings=settings(FAST, max_examples=300, stateful_step_count=60)
    )


def test_a_database_of_another_space_is_a_cross_space_write_after_a_database_write(
    tmp_path: Path,
) -> None:
    """Shrunk from the machine: a transaction of ``s1`` that wrote ``s1``'s database and then
    calls ``exec`` on ``s0``'s is refused as a write to another space (§2), the same error as
    after a cell write, not as a second database of its own space (R33); the call records
    nothing, and the transaction goes on."""
    with sc.Runtime(tmp_path / "store") as rt:
        one, two = rt.space("s1"), rt.space("s0")
        db1 = one.sqlite_database("notes", tables=tables())
        db0 = two.sqlite_database("notes", tables=tables())
        with one.transact() as tx:
            db1.exec("INSERT INTO notes (id, body) VALUES (?, ?)", [1, "kept"])
            with pytest.raises(sc.CrossSpaceWrite) as caught:
                db0.exec("INSERT INTO notes (id, body) VALUES (?, ?)", [1, "ghost"])
        assert "'s1'" in str(caught.value) and "'s0'" in str(caught.value)
        assert not isinstance(caught.value, sc.TooManyDatabases)
        assert tx.seq == 1
        assert db1.read("SELECT id, body FROM notes") == [{"id": 1, "body": "kept"}]
        assert db0.read("SELECT id, body FROM notes") == []
        assert (db1.rev, db0.rev) == (1, 0)
        with pytest.raises(sc.CrossSpaceWrite), one.transact():
            db1.exec("INSERT INTO notes (id, body) VALUES (?, ?)", [2, "ghost"])
            db0.exec("INSERT INTO notes (id, body) VALUES (?, ?)", [2, "ghost"])
        assert db1.read("SELECT id FROM notes") == [{"id": 1}]
        assert db0.read("SELECT id FROM notes") == []
        assert (db1.rev, db0.rev) == (1, 0)


# -- another process subscribing -----------------------------------------------------------------

SUBSCRIBER = (
    """
from __future__ import annotations
import json, sys, threading
from typing import Any
import sqlite_cells as sc
"""
    + inspect.getsource(tables)
    + """
printing = threading.Lock()
def tell(*item):
    with printing:  # subscribers run on the scheduler's thread, "ready" on the main one
        print(json.dumps(list(item)), flush=True)
def plain(v):
    if isinstance(v, sc.Cell):
        return ["ref", v.space.id, v.id, list(v.value_path)]
    if isinstance(v, list):
        return [plain(x) for x in v]
    if isinstance(v, dict):
        return {k: plain(x) for k, x in v.items()}
    return v
with sc.Runtime(sys.argv[1], poll_interval=0.01) as rt:
    space = rt.space("s1")
    db = space.sqlite_database("notes", tables=tables())
    q = db.query("SELECT id, body FROM notes ORDER BY id")
    space.cell("a", default=0).observe().subscribe(lambda v: tell("cell", plain(v)))
    rt.space("s0").cell("b", default=0).observe().subscribe(lambda v: tell("other", plain(v)))
    def rows(s):
        tell("rows", None if s.pending else [[r["id"], r["body"]] for r in s.result], s.seq)
    q.observe().subscribe(rows)
    rt.settle()
    tell("ready")
    sys.stdin.read()  # until the parent closes it
"""
)


class Subscriber:
    """A runtime in another process that prints what its subscribers receive, one JSON line
    each."""

    def __init__(self, store: Path) -> None:
        self._stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (closed by close())
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SUBSCRIBER, str(store)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )
        self.events: list[list[Any]] = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        assert self.wait(lambda: ["ready"] in self.events), self.stderr()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._cond:
                self.events.append(json.loads(line))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def wait(self, predicate: Callable[[], bool], timeout: float = SETTLE) -> bool:
        with self._cond:
            return self._cond.wait_for(predicate, timeout)

    def seen(self, kind: str) -> list[list[Any]]:
        with self._cond:
            return [e[1:] for e in self.events if e[0] == kind]

    def stderr(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read()

    def close(self) -> int:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        code = self.proc.wait(timeout=60)
        self._reader.join(30)
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        self._stderr.close()
        return code


def subscriber_sees_only_commits(store: Path, seed: int, commits: int) -> None:
    """Random commits — to the subscriber's space and to another one, some failing at commit,
    some raising in the body — while a subscriber in another process watches a cell of each
    space and a query: each value it is told is a committed one, in commit order, at most once
    per commit, and the last is the final state (R50, R53, R54); a query's ``seq`` is the commit
    whose rows it shows (R42), and writes to another space's database never re-run it (R51)."""
    rng = random.Random(seed)
    with sc.Runtime(store, poll_interval=POLL) as rt:
        s1, s0 = rt.space("s1"), rt.space("s0")
        db1 = s1.sqlite_database("notes", tables=tables())
        db0 = s0.sqlite_database("notes", tables=tables())
        a1, b0 = s1.cell("a", default=0), s0.cell("b", default=0)
        child = Subscriber(store)
        try:
            cell_history: list[Any] = [0]  # every value written to s1's "a", in commit order
            other_history: list[Any] = [0]
            rows: dict[int, str] = {}
            rows_at: dict[int, list[list[Any]]] = {0: []}  # seq -> rows after that commit
            results: list[list[list[Any]]] = [[]]  # distinct consecutive committed results
            next_id = 1
            for _ in range(commits):
                kind = rng.choice(["cell", "link", "row", "both", "other", "dup", "raise", "noop"])
                n = rng.randint(0, 99)
                if kind in ("dup", "raise"):
                    with pytest.raises((sc.ExecError, Boom)), s1.transact():
                        a1.set(-1 - n)  # never committed: no subscriber may see it
                        db1.exec("INSERT INTO notes (id, body) VALUES (?, ?)", [next_id, "ghost"])
                        if kind == "dup" and rows:
                            db1.exec(
                                "INSERT INTO notes (id, body) VALUES (?, ?)", [min(rows), "dup"]
                            )
                        else:
                            raise Boom
                    continue
                if kind == "other":
                    with s0.transact():
                        b0.set(n)
                        db0.exec("INSERT INTO notes (id, body) VALUES (?, ?)", [next_id, "x"])
                    other_history.append(n)
                    next_id += 1
                    continue
                with s1.transact() as tx:
                    if kind in ("cell", "both"):
                        a1.set(n)
                    if kind == "link":
                        a1.set({"n": n, "to": b0.key("n")})
                    if kind in ("row", "both"):
                        if rows and rng.random() < 0.3:
                            gone = rng.choice(sorted(rows))
                            db1.exec("DELETE FROM notes WHERE id = ?", [gone])
                            del rows[gone]
                        else:
                            db1.exec(
                                "INSERT INTO notes (id, body) VALUES (?, ?)", [next_id, str(n)]
                            )
                            rows[next_id] = str(n)
                            next_id += 1
                    if kind == "noop":
                        db1.exec("UPDATE notes SET body = body WHERE id = ?", [-1])
                if kind in ("cell", "both"):
                    cell_history.append(n)
                if kind == "link":
                    cell_history.append({"n": n, "to": ["ref", "s0", b0.id, ["n"]]})
                if kind in ("row", "both", "noop"):
                    now = [[k, v] for k, v in sorted(rows.items())]
                    assert tx.seq is not None
                    rows_at[tx.seq] = now
                    if now != results[-1]:
                        results.append(now)
            final_rows = results[-1]

            def caught_up() -> bool:
                told = child.seen("rows")
                return (
                    bool(child.seen("cell"))
                    and child.seen("cell")[-1] == [cell_history[-1]]
                    and child.seen("other")[-1] == [other_history[-1]]
                    and bool(told)
                    and told[-1][0] == final_rows
                )

            assert child.wait(caught_up), (child.events, child.stderr())
            # Each subscriber: committed values only, in order, at most one per commit.
            cells = [e[0] for e in child.seen("cell")]
            assert is_subsequence(cells, cell_history), (cells, cell_history)
            assert len(cells) <= len(cell_history)
            others = [e[0] for e in child.seen("other")]
            assert is_subsequence(others, other_history), (others, other_history)
            told = [(r, s) for r, s in child.seen("rows") if r is not None]
            assert is_subsequence([r for r, _ in told], results), (told, results)
            seqs = [s for _, s in told]
            assert seqs == sorted(set(seqs)), seqs  # at most once per commit, in order
            for shown, seq in told:
                assert rows_at[seq] == shown, (seq, shown, rows_at[seq])
            states = [(r, s) for r, s in child.seen("rows")]
            assert all(x != y for x, y in itertools.pairwise(states)), states
        finally:
            code = child.close()
        assert code == 0, child.stderr()


def test_a_subscriber_in_another_process_sees_only_commits(tmp_path: Path) -> None:
    subscriber_sees_only_commits(tmp_path / "store", seed=1, commits=40)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(2, 10))
def test_a_subscriber_in_another_process_sees_only_commits_long(tmp_path: Path, seed: int) -> None:
    subscriber_sees_only_commits(tmp_path / "store", seed=seed, commits=300)


def writers_killed_lose_nothing(store: Path, seed: int, rounds: int) -> None:
    """Writer processes, each SIGKILLed after a random number of returned commits (so mostly in
    the middle of the next one), each commit writing two cells (one a link to a cell of another
    space) and a row (with a link column naming that cell) of one of three spaces. After each
    kill a fresh runtime finds: every commit reported as returned, at most the one in flight
    besides; each database agreeing with its space (the cells and the row of each commit are
    both there or both absent, ``rev`` counts the commits, the watermark is the space's last
    seq); and the seqs of each space gapless (R70–R72, §2)."""
    rng = random.Random(seed)
    k = 1
    landed: dict[str, list[int]] = {s: [] for s in SPACES}  # ks of the commits kept, per space
    for round_ in range(rounds):
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(store), str(seed * 1000 + round_), str(k)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert proc.stdout is not None
        reported: list[tuple[str, int, int, str]] = []
        stop_after = rng.randint(0, 12)
        lines = iter(proc.stdout)
        for line in lines:
            _returned_to(line, reported)
            if len(reported) >= stop_after:
                break
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        # What the writer printed before the kill reached it, still unread (the pipe and the
        # reader's buffer hold it): those commits returned too.
        for line in lines:
            _returned_to(line, reported)
        proc.stdout.close()
        # Seqs of the commits that returned: each the space's next (gapless, never reused).
        for s, seq, kk, _other in reported:
            assert seq == len(landed[s]) + 1, (s, seq, landed[s])
            landed[s].append(kk)
        in_flight = k + len(reported)
        k = in_flight + 1
        with sc.Runtime(store, poll_interval=POLL) as rt:
            seen: dict[str, list[int]] = {}
            for s in SPACES:
                space = rt.space(s)
                db = space.sqlite_database("notes", tables=tables())
                rows = db.read("SELECT id, body, ref_cf_link FROM notes ORDER BY id")
                ids_ = [r["id"] for r in rows]
                seen[s] = ids_
                assert ids_[: len(landed[s])] == landed[s], (s, ids_, landed[s])
                assert ids_[len(landed[s]) :] in ([], [in_flight]), (s, ids_, landed[s])
                if ids_ and ids_[-1] == in_flight:
                    landed[s].append(in_flight)
                # The database agrees with its space: one row per commit, the cells of the
                # last commit name the row's link.
                assert db.rev == len(ids_)
                a, b = space.cell("a", default=0).get(), space.cell("b", default=0).get()
                if not rows:
                    assert (a, b) == (0, 0)
                    continue
                last = rows[-1]
                assert a == last["id"]
                assert isinstance(b, sc.Cell)
                assert (b.space.id, b.id) == (last["body"], rt.space(last["body"]).cell("a").id)
                assert sc.decode_cf_link(last["ref_cf_link"], rt) == b
                q = db.query("SELECT count(*) AS n FROM notes")
                rt.settle(timeout=SETTLE)
                state = q.get()
                assert state.error is None and state.result == [{"n": len(ids_)}]
                assert state.seq == len(ids_)  # the watermark: every commit wrote the db
            # No row of a commit that is not accounted for, in any space.
            assert seen == landed
    # The next commit of each space takes the next seq: none was skipped or reused.
    with sc.Runtime(store) as rt:
        for s in SPACES:
            space = rt.space(s)
            with space.transact() as tx:
                space.cell("c", default=0).set(1)
            assert tx.seq == len(landed[s]) + 1, (s, tx.seq, landed[s])


def test_writers_killed_at_random_lose_no_returned_commit_in_any_space(tmp_path: Path) -> None:
    writers_killed_lose_nothing(tmp_path / "store", seed=1, rounds=4)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(2, 6))
def test_writers_killed_at_random_lose_no_returned_commit_in_any_space_long(
    tmp_path: Path, seed: int
) -> None:
    writers_killed_lose_nothing(tmp_path / "store", seed=seed, rounds=15)
