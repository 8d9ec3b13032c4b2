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

import json
import shutil
import tempfile
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
    rule,
    run_state_machine_as_test,
)

import sqlite_cells as sc

from .test_model_stateful import Boom, at_key, is_subsequence

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

    def run_op(self, space: str, kind: str, args: tuple[Any, ...]) -> None:
        db = self.dbs[space]
        if kind == "insert":
            db.exec(
                "INSERT INTO notes (id, body, ref_cf_link) VALUES (?, ?, ?)",
                [args[0], args[1], None if args[2] is None else self.make(args[2])],
            )
        elif kind == "body":
            db.exec("UPDATE notes SET body = ? WHERE id = ?", [args[1], args[0]])
        elif kind == "point":
            ref = None if args[1] is None else self.make(args[1])
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
    )
    def transact(self, who: int, space: str, writes: dict[str, Any], db_ops: list[Any]) -> None:
        """Cells (holding links to any space) and rows (with link columns naming cells of any
        space) in one commit of one space, through either runtime (R30, R32, R34)."""
        side = self.sides[who]
        after = self.rows_after(space, db_ops)
        before = self.snapshot() if after is None else None
        try:
            with side.spaces[space].transact() as tx:
                for name, spec in writes.items():
                    side.cells[space, name].set(side.make(spec))
                for kind, args in db_ops:
                    side.run_op(space, kind, args)
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
            if d.side == who:
                assert d.cell.get() == d.expected()
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
