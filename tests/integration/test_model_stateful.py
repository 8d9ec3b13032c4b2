"""The whole runtime against a plain-Python model (§2, §3, §4; R30–R34, R40–R42, R50–R54,
R70–R72).

A hypothesis state machine drives long random sequences of ordinary operations through the
public API only — transactions that write cells and rows in one commit, transactions that fail
(a raise in the body, an SQL error at commit, a conflict), handlers, ``exec_many``, live queries
and derived cells created at random points, observers, closing and reopening the store, and a
second ``Runtime`` on the same store writing too — and after each step compares everything a
user can see with a model made of dicts and lists: cell values, rows, ``db.rev``, each live
query's result and ``seq``, derived values, what each observer received, and the seq of every
commit (never reused, never skipped).
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import shutil
import subprocess
import sys
import tempfile
import threading
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

SPACE = "demo"
NAMES = ("a", "b", "c")
DEFAULT = 0
SETTLE = 30.0


def tables() -> dict[str, Any]:
    """The database's tables; the child process of `process_writes` declares them from this
    function's source."""
    return {
        "people": sc.table(
            id="integer primary key",
            name="text not null",
            friend_cf_link=sc.cf_link(),
        ),
        "posts": sc.table(
            id="integer primary key",
            person_id="integer references people(id)",
            body="text not null default ''",
            ts="integer not null default 0",
            indexes={"by_ts": ["ts"]},
        ),
    }


# What each query reads (R51): (table, column); (table, None) is the table itself, changed by
# INSERT and DELETE only (a query that names no column of it, as count(*)).
PEOPLE_COLUMNS = ("id", "name", "friend_cf_link")
POSTS_COLUMNS = ("id", "person_id", "body", "ts")
READS = {
    "people": {("people", c) for c in PEOPLE_COLUMNS},
    "typed": {("people", c) for c in PEOPLE_COLUMNS},
    "posts": {("posts", c) for c in POSTS_COLUMNS},
    "count": {("posts", None)},
    "names": {("people", "id"), ("people", "name")},
    "join": {("posts", "id"), ("posts", "person_id"), ("people", "id"), ("people", "name")},
    "by_person": {("posts", "id"), ("posts", "body"), ("posts", "person_id")},
}


class Person(msgspec.Struct):
    id: int
    name: str
    friend_cf_link: sc.Cell | None


# -- the model's forms ---------------------------------------------------------------------------
# A cell reference is ("ref", cell name, path); a value is an int, a ref, a list of ints or a dict
# {"n": int, "ref": ref | None}. Committed ints are >= 0; a transaction that must fail writes
# negative ones, so a value that was never committed cannot pass for one that was.

Ref = tuple[str, str, tuple[str, ...]]

ids = st.integers(1, 6)
small = st.integers(0, 40)
refs = st.tuples(st.just("ref"), st.sampled_from(NAMES), st.sampled_from([(), ("n",)]))
values = st.one_of(
    small,
    refs,
    st.lists(small, max_size=3),
    st.fixed_dictionaries({"n": small, "ref": st.one_of(st.none(), refs)}),
)
words = st.sampled_from(["ann", "bob", "cy", "dee"])

# Each db op: (kind, args). Applied to the model by `apply_op`, to the database by `run_op`.
ops = st.one_of(
    st.tuples(st.just("insert_person"), st.tuples(ids, words, st.one_of(st.none(), refs))),
    st.tuples(st.just("rename"), st.tuples(ids, words)),
    st.tuples(st.just("befriend"), st.tuples(ids, st.one_of(st.none(), refs))),
    st.tuples(st.just("delete_person"), st.tuples(ids)),
    st.tuples(st.just("insert_post"), st.tuples(ids, ids, words, small)),
    st.tuples(st.just("bump_ts"), st.tuples(ids)),
    st.tuples(st.just("delete_post"), st.tuples(ids)),
    st.tuples(
        st.just("insert_posts"),
        st.tuples(st.lists(st.tuples(ids, ids, words, small), min_size=1, max_size=3)),
    ),
)

QUERIES = {
    "people": "SELECT id, name, friend_cf_link FROM people ORDER BY id",
    "posts": "SELECT id, person_id, body, ts FROM posts ORDER BY id",
    "count": "SELECT count(*) AS n FROM posts",
    "names": "SELECT name FROM people ORDER BY id",
    "join": (
        "SELECT p.id AS post, pe.name AS name FROM posts p JOIN people pe "
        "ON pe.id = p.person_id ORDER BY p.id"
    ),
    "typed": "SELECT id, name, friend_cf_link FROM people ORDER BY id",
    "by_person": "SELECT id, body FROM posts WHERE person_id = ? ORDER BY id",
}
# How a live query re-runs (R51): by what it reads (the default), after every write to its
# database (react_on=db), or never (react_on=None: once per sql/params).
REACTIONS = ("reads", "db", "once")
PARAM = "k"  # the cell that "by_person" takes its parameter from; it only ever holds ints


ROOT = Path(__file__).resolve().parents[2]

# Another process: one commit writing a cell and a row (with a link), then its seq.
CHILD = (
    """
from __future__ import annotations
import sys
from typing import Any
import sqlite_cells as sc
"""
    + inspect.getsource(tables)
    + """
store, name, n, person, friend = sys.argv[1:]
with sc.Runtime(store) as rt:
    space = rt.space("demo")
    db = space.sqlite_database("social", tables=tables())
    with space.transact() as tx:
        space.cell(name, default=0).set(int(n))
        db.exec(
            "INSERT INTO people (id, name, friend_cf_link) VALUES (?, ?, ?)",
            [int(person), "child", space.cell(friend) if friend else None],
        )
    print(tx.seq)
"""
)


class Boom(Exception):
    """Raised by a transaction body on purpose."""


class SqlFailure(Exception):
    """The model's verdict: this commit fails in SQLite (a duplicate primary key)."""


@dataclass
class Model:
    cells: dict[str, Any] = field(default_factory=lambda: dict.fromkeys(NAMES, DEFAULT))
    people: dict[int, tuple[str, Ref | None]] = field(default_factory=dict)
    posts: dict[int, tuple[int, str, int]] = field(default_factory=dict)
    seq: int = 0  # the last commit of the space
    k: int = 0  # the value of the PARAM cell
    rev: int = 0  # db.rev: committed transactions that wrote the database
    db_seq: int = 0  # the database's watermark: the last commit that wrote it
    history: dict[str, list[Any]] = field(
        default_factory=lambda: {name: [DEFAULT] for name in NAMES}
    )


def apply_op(
    people: dict[int, Any], posts: dict[int, Any], kind: str, args: tuple[Any, ...]
) -> None:
    """The op's effect on the model's rows; a duplicate primary key is ``SqlFailure``."""
    if kind == "insert_person":
        pid, name, friend = args
        if pid in people:
            raise SqlFailure
        people[pid] = (name, friend)
    elif kind == "rename":
        pid, name = args
        if pid in people:
            people[pid] = (name, people[pid][1])
    elif kind == "befriend":
        pid, friend = args
        if pid in people:
            people[pid] = (people[pid][0], friend)
    elif kind == "delete_person":
        people.pop(args[0], None)
    elif kind == "insert_post":
        post, person, body, ts = args
        if post in posts:
            raise SqlFailure
        posts[post] = (person, body, ts)
    elif kind == "bump_ts":
        for post, (person, body, ts) in list(posts.items()):
            if person == args[0]:
                posts[post] = (person, body, ts + 1)
    elif kind == "delete_post":
        posts.pop(args[0], None)
    elif kind == "insert_posts":
        for row in args[0]:
            apply_op(people, posts, "insert_post", row)
    else:  # pragma: no cover - the strategies name no other kind
        raise AssertionError(kind)


def changed_columns(
    people: dict[int, Any], posts: dict[int, Any], people2: dict[int, Any], posts2: dict[int, Any]
) -> set[tuple[str, str | None]]:
    """What a commit taking the rows from (people, posts) to (people2, posts2) changed, as R51
    counts it: an inserted or deleted row changes its table and every column of it, an updated
    row the columns whose values changed."""
    changed: set[tuple[str, str | None]] = set()
    for table, before, after, columns in (
        ("people", people, people2, PEOPLE_COLUMNS),
        ("posts", posts, posts2, POSTS_COLUMNS),
    ):
        if before.keys() != after.keys():
            changed |= {(table, None), *((table, c) for c in columns)}
        for key in before.keys() & after.keys():
            for column, old, new in zip(columns[1:], before[key], after[key], strict=True):
                if old != new:
                    changed.add((table, column))
    return changed


@dataclass
class Live:
    """A live query with what the model knows of it."""

    name: str
    query: sc.Query[Any]
    results: list[Any]  # every result the model had for it since it was created, in order
    seq: int  # the seq its state shows: of its first run, or of the last commit that
    # changed what it reads
    reaction: str = "reads"
    received: list[Any] = field(default_factory=list)
    commits_since: int = 0  # commits to its database since it was observed


@dataclass
class Watched:
    """An observer of a cell."""

    name: str
    received: list[Any] = field(default_factory=list)
    history_at_start: int = 0  # how many values its history had when it subscribed


@dataclass
class Derived:
    cell: Any
    expected: Callable[[], Any]
    received: list[Any] | None = None  # what an observer of a diamond received


class Runtimes(RuleBasedStateMachine):
    """Two runtimes on one store and the model of that store."""

    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="sc-model-"))
        self.store = self.dir / "store"
        self.model = Model()
        self.rt: sc.Runtime | None = None
        self.rt2: sc.Runtime | None = None
        self.lives: list[Live] = []
        self.watched: list[Watched] = []
        self.derived: list[Derived] = []
        self.subscriptions: list[Any] = []
        self.process_wrote = False
        self.next_id = 1000  # ids no drawn op uses, for rows of this machine's own

    def fresh(self) -> int:
        self.next_id += 1
        return self.next_id

    # -- opening ----------------------------------------------------------------------------------

    @initialize()
    def open_store(self) -> None:
        self.open_first()

    def open_first(self) -> None:
        self.rt = sc.Runtime(store=self.store, poll_interval=0.01)
        self.space = self.rt.space(SPACE)
        assert self.space.id == SPACE
        self.cells = {name: self.space.cell(name, default=DEFAULT) for name in NAMES}
        self.db = self.space.sqlite_database("social", tables=tables())
        self.names_by_id = {cell.id: name for name, cell in self.cells.items()}
        self.k = self.space.cell(PARAM, default=0)

    def open_second(self) -> None:
        if self.rt2 is None:
            self.rt2 = sc.Runtime(store=self.store, poll_interval=0.01)
            self.space2 = self.rt2.space(SPACE)
            self.cells2 = {name: self.space2.cell(name, default=DEFAULT) for name in NAMES}
            self.db2 = self.space2.sqlite_database("social", tables=tables())
            # Ids are derived from causes (R1): the second runtime names the same cells.
            assert {c.id for c in self.cells2.values()} == set(self.names_by_id)
            assert self.db2.id == self.db.id

    def teardown(self) -> None:
        for sub in self.subscriptions:
            sub.dispose()
        for rt in (self.rt, self.rt2):
            if rt is not None:
                rt.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- forms ------------------------------------------------------------------------------------

    def make(self, spec: Any, cells: dict[str, sc.Cell] | None = None) -> Any:
        """The runtime value for a model value (refs become Cells)."""
        cells = self.cells if cells is None else cells
        if isinstance(spec, tuple):
            cell = cells[spec[1]]
            for key in spec[2]:
                cell = cell.key(key)
            return cell
        if isinstance(spec, list):
            return [self.make(v, cells) for v in spec]
        if isinstance(spec, dict):
            return {k: self.make(v, cells) for k, v in spec.items()}
        return spec

    def plain(self, value: Any) -> Any:
        """The model form of a value read back (Cells become refs)."""
        if isinstance(value, sc.Cell):
            assert value.space.id == SPACE
            return ("ref", self.names_by_id[value.id], tuple(value.value_path))
        if isinstance(value, list):
            return [self.plain(v) for v in value]
        if isinstance(value, dict):
            return {k: self.plain(v) for k, v in value.items()}
        assert not isinstance(value, tuple), value
        return value

    def link_str(self, ref: Ref | None) -> str | None:
        return None if ref is None else self.make(ref).link_str()

    def expected(self, name: str) -> Any:
        """What the query named ``name`` returns on the model's rows, in the form of `canon`."""
        m = self.model
        people = sorted(m.people.items())
        posts = sorted(m.posts.items())
        if name == "people":
            return [
                {"id": pid, "name": n, "friend_cf_link": self.link_str(f)} for pid, (n, f) in people
            ]
        if name == "typed":
            return [("Person", pid, n, f) for pid, (n, f) in people]
        if name == "posts":
            return [
                {"id": post, "person_id": person, "body": body, "ts": ts}
                for post, (person, body, ts) in posts
            ]
        if name == "count":
            return [{"n": len(posts)}]
        if name == "names":
            return [{"name": n} for _, (n, _f) in people]
        if name == "by_person":
            return [
                {"id": post, "body": body} for post, (person, body, _t) in posts if person == m.k
            ]
        if name == "join":
            return [
                {"post": post, "name": m.people[person][0]}
                for post, (person, _b, _t) in posts
                if person in m.people
            ]
        raise AssertionError(name)

    def value_of(self, ref: Ref) -> Any:
        """The model's value of the cell a ref names, at its path."""
        value = self.model.cells[ref[1]]
        for key in ref[2]:
            value = at_key(value, key)
        return value

    def live_expected(self, live: Live) -> Any:
        """What ``live`` shows now: a query made with react_on=None keeps the result of its
        run for the current params."""
        return live.results[-1] if live.reaction == "once" else self.expected(live.name)

    def canon(self, rows: Any) -> Any:
        if rows is None:
            return None
        out = []
        for row in rows:
            if isinstance(row, Person):
                friend = row.friend_cf_link
                out.append(
                    ("Person", row.id, row.name, None if friend is None else self.plain(friend))
                )
            else:
                assert isinstance(row, dict), row
                out.append(dict(row))
        return out

    # -- the model's bookkeeping ----------------------------------------------------------------

    def committed(
        self,
        seq: int | None,
        *,
        cells: dict[str, Any],
        rows: tuple[dict[int, Any], dict[int, Any]] | None,
        k: int | None = None,
    ) -> None:
        """Record one commit that wrote ``cells`` (model values) and, unless ``rows`` is None,
        the database, leaving it with ``rows`` (people, posts)."""
        m = self.model
        assert seq == m.seq + 1, f"commit seq {seq}, the space's last was {m.seq}"
        m.seq = seq
        for name, value in cells.items():
            m.cells[name] = value
            m.history[name].append(value)
        if rows is not None:
            changed = changed_columns(m.people, m.posts, *rows)
            m.people, m.posts = rows
            m.rev += 1
            m.db_seq = seq
            for live in self.lives:
                live.commits_since += 1
                if live.reaction == "db" or (
                    live.reaction == "reads" and changed & READS[live.name]
                ):
                    live.seq = seq  # it re-runs, and reads this commit's watermark (R42, R51)
        params_changed = k is not None and k != m.k
        if k is not None:
            m.k = k
        for live in self.lives:
            now = self.expected(live.name)
            if params_changed and live.name == "by_person":
                # A change of a parameter cell re-runs it, also with react_on=None: it runs
                # once per sql/params (R51); it is pending until the first result for the new
                # params, which may equal the last one (R42).
                live.seq = m.db_seq
                live.commits_since += 2
                live.results.append(now)
            elif live.reaction != "once" and now != live.results[-1]:
                live.results.append(now)

    def run_op(self, db: Any, kind: str, args: tuple[Any, ...], cells: dict[str, sc.Cell]) -> None:
        def cell_of(ref: Ref | None) -> sc.Cell | None:
            return None if ref is None else self.make(ref, cells)

        if kind == "insert_person":
            pid, name, friend = args
            db.exec(
                "INSERT INTO people (id, name, friend_cf_link) VALUES (?, ?, ?)",
                [pid, name, cell_of(friend)],
            )
        elif kind == "rename":
            db.exec("UPDATE people SET name = ? WHERE id = ?", [args[1], args[0]])
        elif kind == "befriend":
            db.exec(
                "UPDATE people SET friend_cf_link = ? WHERE id = ?", [cell_of(args[1]), args[0]]
            )
        elif kind == "delete_person":
            db.exec("DELETE FROM people WHERE id = ?", [args[0]])
        elif kind == "insert_post":
            db.exec("INSERT INTO posts (id, person_id, body, ts) VALUES (?, ?, ?, ?)", list(args))
        elif kind == "bump_ts":
            db.exec("UPDATE posts SET ts = ts + 1 WHERE person_id = ?", [args[0]])
        elif kind == "delete_post":
            db.exec("DELETE FROM posts WHERE id = ?", [args[0]])
        elif kind == "insert_posts":
            db.exec_many(
                "INSERT INTO posts (id, person_id, body, ts) VALUES (?, ?, ?, ?)",
                [list(row) for row in args[0]],
            )
        else:  # pragma: no cover
            raise AssertionError(kind)

    def model_after(self, db_ops: list[Any]) -> tuple[dict[int, Any], dict[int, Any]] | None:
        """The model's rows after ``db_ops``, or None when SQLite refuses them."""
        people, posts = dict(self.model.people), dict(self.model.posts)
        try:
            for kind, args in db_ops:
                apply_op(people, posts, kind, args)
        except SqlFailure:
            return None
        return people, posts

    def assert_nothing_written(self, before: tuple[Any, ...]) -> None:
        assert self.snapshot() == before

    def snapshot(self) -> tuple[Any, ...]:
        assert self.rt is not None
        self.rt.settle(timeout=SETTLE)
        return (
            {name: self.plain(c.get()) for name, c in self.cells.items()},
            self.db.read("SELECT * FROM people ORDER BY id"),
            self.db.read("SELECT * FROM posts ORDER BY id"),
            self.db.rev,
        )

    # -- rules: writes through the first runtime --------------------------------------------------

    @rule(
        writes=st.dictionaries(st.sampled_from(NAMES), values, max_size=3),
        db_ops=st.lists(ops, max_size=3),
    )
    def transact(self, writes: dict[str, Any], db_ops: list[Any]) -> None:
        """Cells and rows in one commit (R32, R34); all or nothing."""
        after = self.model_after(db_ops)
        before = self.snapshot() if after is None else None
        try:
            with self.space.transact() as tx:
                for name, spec in writes.items():
                    self.cells[name].set(self.make(spec))
                for kind, args in db_ops:
                    self.run_op(self.db, kind, args, self.cells)
        except sc.ExecError as exc:
            assert after is None, f"the model expected this commit to succeed: {exc!r}"
            assert exc.db_id == self.db.id
            assert isinstance(exc, sc.SqliteCellsError)
            assert before is not None
            self.assert_nothing_written(before)
            return
        assert after is not None, "the model expected an ExecError (a duplicate primary key)"
        if not writes and not db_ops:
            assert tx.seq is None  # nothing to commit: no seq taken
            return
        self.committed(tx.seq, cells=dict(writes), rows=after if db_ops else None)

    @rule(name=st.sampled_from(NAMES), n=st.integers(1, 50), db_ops=st.lists(ops, max_size=2))
    def transaction_that_raises(self, name: str, n: int, db_ops: list[Any]) -> None:
        """A body that raises writes nothing, cells or rows (§2: all or nothing)."""
        before = self.snapshot()
        with pytest.raises(Boom), self.space.transact():
            self.cells[name].set(-n)
            for kind, args in db_ops:
                self.run_op(self.db, kind, args, self.cells)
            self.db.exec("INSERT INTO people (id, name) VALUES (?, ?)", [self.fresh(), "ghost"])
            raise Boom
        self.assert_nothing_written(before)

    @rule(name=st.sampled_from(NAMES), n=st.integers(1, 50))
    def sql_error_rolls_back_cells(self, name: str, n: int) -> None:
        """An SQL error at commit rolls back the cells written with it (R34)."""
        before = self.snapshot()
        with pytest.raises(sc.ExecError) as caught, self.space.transact():
            self.cells[name].set(-n)
            self.db.exec("INSERT INTO posts (id, body) VALUES (?, ?)", [self.fresh(), "ghost"])
            self.db.exec("INSERT INTO people (id, name) VALUES (?, NULL)", [self.fresh()])
        assert caught.value.db_id == self.db.id
        assert "NOT NULL" in str(caught.value).upper()
        self.assert_nothing_written(before)

    @rule(name=st.sampled_from(NAMES), spec=values, post=ids)
    def refused_call_leaves_transaction_usable(self, name: str, spec: Any, post: int) -> None:
        """A guard verdict at a call records nothing and the transaction goes on (R32)."""
        ok = post not in self.model.posts
        try:
            with self.space.transact() as tx:
                self.cells[name].set(self.make(spec))
                with pytest.raises(sc.GuardViolation) as caught:
                    self.db.exec("DROP TABLE posts")
                assert caught.value.kind == "not-a-write" or caught.value.kind == "ddl"
                with pytest.raises(sc.LinkEncodeError):
                    self.db.exec(
                        "INSERT INTO people (id, name, friend_cf_link) VALUES (?, ?, ?)",
                        [99, "x", "not a cell"],
                    )
                self.db.exec(
                    "INSERT INTO posts (id, person_id, body, ts) VALUES (?, ?, ?, ?)",
                    [post, 1, "kept", 0],
                )
        except sc.ExecError:
            assert not ok
            return
        assert ok
        rows = (self.model.people, {**self.model.posts, post: (1, "kept", 0)})
        self.committed(tx.seq, cells={name: spec}, rows=rows)

    @rule(name=st.sampled_from(NAMES), k=st.integers(0, 5))
    def handler_call(self, name: str, k: int) -> None:
        """A handler commits and returns the commit's seq (§3)."""

        @sc.handler
        def bump(k: int, *, counter: sc.Cell) -> None:
            v = counter.get()
            counter.set((v if isinstance(v, int) else 0) + k)

        old = self.model.cells[name]
        seq = bump(k, counter=self.cells[name])
        self.committed(seq, cells={name: (old if isinstance(old, int) else 0) + k}, rows=None)

    @rule(rows=st.lists(st.tuples(ids, ids, words, small), min_size=0, max_size=4))
    def handler_exec_many(self, rows: list[Any]) -> None:
        """``exec_many`` through a handler: one op, all rows or none (R36); no rows, no op."""

        @sc.handler
        def add(rows: list[Any], *, db: sc.SqliteDb) -> None:
            db.exec_many(
                "INSERT INTO posts (id, person_id, body, ts) VALUES (?, ?, ?, ?)",
                [list(r) for r in rows],
            )

        if not rows:  # no statement runs: nothing is written, no commit (R32)
            before = self.snapshot()
            assert add(rows, db=self.db) is None
            self.assert_nothing_written(before)
            return
        after = self.model_after([("insert_posts", (rows,))])
        if after is None:
            before = self.snapshot()
            with pytest.raises(sc.ExecError):
                add(rows, db=self.db)
            self.assert_nothing_written(before)
            return
        seq = add(rows, db=self.db)
        self.committed(seq, cells={}, rows=after)

    @rule(
        name=st.sampled_from(NAMES),
        other=st.sampled_from(NAMES),
        spec=values,
        n=st.integers(1, 50),
        inner_ops=st.lists(ops, max_size=2),
    )
    def nested_block_that_raises(
        self, name: str, other: str, spec: Any, n: int, inner_ops: list[Any]
    ) -> None:
        """A nested ``transact()`` joins the outer one; when its block raises and the outer
        block goes on, what the nested block wrote — cells and rows — is not committed, and a
        database only the nested block wrote is not written (its rev stays)."""
        with self.space.transact() as tx:
            self.cells[name].set(self.make(spec))
            with pytest.raises(Boom), self.space.transact() as inner:
                assert inner is tx
                self.cells[other].set(-n)
                for kind, args in inner_ops:
                    self.run_op(self.db, kind, args, self.cells)
                raise Boom
        self.committed(tx.seq, cells={name: spec}, rows=None)

    @rule(name=st.sampled_from(NAMES), k=st.integers(0, 5), rows=st.booleans())
    def async_handler(self, name: str, k: int, rows: bool) -> None:
        """An async handler: awaiting it runs the body, commits, and gives the seq (§3)."""
        post = self.fresh()

        @sc.handler
        async def bump(k: int, *, counter: sc.Cell, db: sc.SqliteDb) -> None:
            v = counter.get()
            counter.set((v if isinstance(v, int) else 0) + k)
            if rows:
                db.exec("INSERT INTO posts (id, body) VALUES (?, ?)", [post, "async"])

        old = self.model.cells[name]
        seq = asyncio.run(bump(k, counter=self.cells[name], db=self.db))
        after = (self.model.people, {**self.model.posts, post: (None, "async", 0)})
        self.committed(
            seq,
            cells={name: (old if isinstance(old, int) else 0) + k},
            rows=after if rows else None,
        )

    @rule(name=st.sampled_from(NAMES))
    def handler_that_writes_nothing(self, name: str) -> None:
        """A handler whose body only reads commits nothing and takes no seq (§2: never
        skipped)."""

        @sc.handler
        def look(*, counter: sc.Cell) -> Any:
            return counter.get()

        assert look(counter=self.cells[name]) is None

    @rule(n=st.integers(1, 50))
    def handler_that_raises(self, n: int) -> None:
        """A handler whose body raises commits nothing and is not retried."""
        calls: list[int] = []

        @sc.handler
        def fail(n: int, *, counter: sc.Cell, db: sc.SqliteDb) -> None:
            calls.append(n)
            counter.set(-n)
            db.exec("INSERT INTO people (id, name) VALUES (?, ?)", [self.fresh(), "ghost"])
            raise Boom

        before = self.snapshot()
        with pytest.raises(Boom):
            fail(n, counter=self.cells["a"], db=self.db)
        assert calls == [n]
        self.assert_nothing_written(before)

    @rule(
        name=st.sampled_from(NAMES),
        key=st.sampled_from(["n", 0]),
        n=small,
        other=st.sampled_from(NAMES),
    )
    def set_at_path(self, name: str, key: str | int, n: int, other: str) -> None:
        """``cell.key(k).set(v)`` writes inside the value; where the value has no such place the
        call raises, records nothing, and the transaction goes on (Errors)."""
        old = self.model.cells[name]
        if isinstance(key, str) and (old is None or isinstance(old, dict)):
            new: Any = {**(old or {}), key: n}
        elif isinstance(key, int) and isinstance(old, list) and old:
            new = [n, *old[1:]]
        else:
            new = None
        with self.space.transact() as tx:
            if new is None:
                with pytest.raises(sc.SqliteCellsError) as caught:
                    self.cells[name].key(key).set(n)
                assert isinstance(caught.value, ValueError | TypeError)
            else:
                self.cells[name].key(key).set(n)
            self.cells[other].set(n)
        writes = {name: new} if new is not None else {}
        writes[other] = n
        self.committed(tx.seq, cells=writes, rows=None)

    @rule(person=ids, k_in_db=st.booleans())
    def set_param(self, person: int, k_in_db: bool) -> None:
        """A parameter given as a cell re-runs its queries when it changes (R51)."""
        k = person if person != self.model.k else person + 1
        with self.space.transact() as tx:
            self.k.set(k)
            if k_in_db:
                self.db.exec("UPDATE posts SET ts = ts WHERE id = ?", [person])
        self.committed(
            tx.seq, cells={}, rows=(self.model.people, self.model.posts) if k_in_db else None, k=k
        )

    @rule(ref=refs)
    def links_round_trip(self, ref: Ref) -> None:
        """A link names its cell: ``rt.cell_from_link`` and ``decode_cf_link`` give back a Cell
        equal to the one linked (same id and path), which reads the model's value (R30, R52)."""
        assert self.rt is not None
        cell = self.make(ref)
        for back in (
            self.rt.cell_from_link(cell.link_str()),
            self.rt.cell_from_link(cell.link()),
            sc.decode_cf_link(cell.link_str(), self.rt),
        ):
            assert back == cell
            assert (back.id, back.value_path) == (cell.id, cell.value_path)
            assert self.plain(back.get()) == self.value_of(ref)
        assert sc.decode_cf_link(None, self.rt) is None

    # -- rules: reading ---------------------------------------------------------------------------

    @rule(
        name=st.sampled_from(sorted(QUERIES)),
        observe=st.booleans(),
        reaction=st.sampled_from(REACTIONS),
    )
    def live_query(self, name: str, observe: bool, reaction: str) -> None:
        """A live query made at any point (R42, R51)."""
        row = Person if name == "typed" else None
        params = [self.k] if name == "by_person" else None
        if reaction == "reads":
            q = self.db.query(QUERIES[name], params=params, row=row)
        else:
            q = self.db.query(
                QUERIES[name],
                params=params,
                row=row,
                react_on=self.db if reaction == "db" else None,
            )
        live = Live(name, q, [self.expected(name)], seq=self.model.db_seq, reaction=reaction)
        self.lives.append(live)
        if observe:
            self.subscriptions.append(q.observe().subscribe(live.received.append))

    @rule(name=st.sampled_from(NAMES))
    def observe_cell(self, name: str) -> None:
        """An observer of a cell: the current value, then each change (§3, R50, R54)."""
        watched = Watched(name, history_at_start=len(self.model.history[name]))
        self.watched.append(watched)
        self.subscriptions.append(
            self.cells[name].observe().subscribe(lambda v, w=watched: w.received.append(v))
        )

    @rule(name=st.sampled_from(NAMES), other=st.sampled_from(NAMES), kind=st.integers(0, 5))
    def derived_cell(self, name: str, other: str, kind: int) -> None:
        """Derived cells made at any point hold the function of the model (§3, R54)."""
        m = self.model
        if kind == 0:
            d = sc.derive(self.cells[name], self.plain)
            self.derived.append(Derived(d, lambda: m.cells[name]))
        elif kind == 1:
            d = sc.lift(lambda x, y: [self.plain(x), self.plain(y)])(
                self.cells[name], self.cells[other]
            )
            self.derived.append(Derived(d, lambda: [m.cells[name], m.cells[other]]))
        elif kind == 2:
            d = sc.derive(self.cells[name].key("n"), self.plain)
            self.derived.append(Derived(d, lambda: at_key(m.cells[name], "n")))
        elif kind == 3:
            q = self.db.query(QUERIES["posts"])
            d = sc.derive(q, count_of)
            self.derived.append(Derived(d, lambda: len(m.posts)))
        elif kind == 4:
            # A diamond: both arms change in the same commit; glitch-free means no observer
            # ever sees one arm updated and the other not (§2 Scheduler, R54).
            arm = sc.derive(self.cells[name], self.plain)
            d = sc.lift(lambda x, y: [self.plain(x), y])(self.cells[name], arm)
            self.diamond(d, lambda: [m.cells[name], m.cells[name]])
        else:
            q = self.db.query(QUERIES["count"])
            arm = sc.derive(q, count_of)
            d = sc.lift(lambda s, n: [count_of(s), n])(q, arm)
            self.diamond(d, lambda: [1, 1])  # count(*) is one row

    def diamond(self, d: Any, expected: Callable[[], Any]) -> None:
        derived = Derived(d, expected, received=[])
        self.derived.append(derived)
        assert derived.received is not None
        self.subscriptions.append(d.observe().subscribe(derived.received.append))

    # -- rules: the store and other runtimes ------------------------------------------------------

    @rule()
    def reopen(self) -> None:
        """Close and reopen on the same store: everything is as committed (R72), and seqs go on."""
        assert self.rt is not None
        for sub in self.subscriptions:
            sub.dispose()
        self.subscriptions.clear()
        self.rt.close()
        self.lives.clear()
        self.watched.clear()
        self.derived.clear()
        self.open_first()
        self.check_values()

    @rule(name=st.sampled_from(NAMES), spec=values, db_ops=st.lists(ops, max_size=2))
    def second_runtime_writes(self, name: str, spec: Any, db_ops: list[Any]) -> None:
        """Another runtime's commits reach this one's cells and live queries (R53)."""
        self.open_second()
        after = self.model_after(db_ops)
        try:
            with self.space2.transact() as tx:
                self.cells2[name].set(self.make(spec, self.cells2))
                for kind, args in db_ops:
                    self.run_op(self.db2, kind, args, self.cells2)
        except sc.ExecError:
            assert after is None
            return
        assert after is not None
        self.committed(tx.seq, cells={name: spec}, rows=after if db_ops else None)

    @rule()
    def second_runtime_sees_all(self) -> None:
        self.open_second()
        assert self.rt2 is not None
        self.rt2.settle(timeout=SETTLE)
        m = self.model
        assert {n: self.plain(c.get()) for n, c in self.cells2.items()} == m.cells
        assert self.db2.rev == m.rev
        assert self.rows_of(self.db2) == (m.people, m.posts)

    @rule(name=st.sampled_from(NAMES), n=st.integers(0, 40), with_row=st.booleans())
    def conflict(self, name: str, n: int, with_row: bool) -> None:
        """A cell read in a transaction and changed by another runtime before the commit:
        ``ConflictError``, nothing of the transaction written (§2)."""
        self.open_second()
        theirs: list[int | None] = []
        pid = self.fresh()
        with pytest.raises(sc.ConflictError) as caught, self.space.transact():
            seen = self.cells[name].get()
            if with_row:
                self.db.exec("INSERT INTO people (id, name) VALUES (?, ?)", [pid, "mine"])
            in_thread(lambda: theirs.append(self.write_second(name, n)))
            self.cells[name].set(-1 - n if seen != -1 - n else -2 - n)
        assert isinstance(caught.value, sc.SqliteCellsError)
        assert self.cells[name].id in caught.value.cell_ids
        self.committed(theirs[0], cells={name: n}, rows=None)
        assert pid not in self.rows_of(self.db)[0]

    @rule(n=st.integers(0, 40))
    def read_then_write_conflict(self, n: int) -> None:
        """A transaction that read the database conflicts with a commit to it in between (R32)."""
        self.open_second()
        theirs: list[int | None] = []
        post = self.fresh()
        with pytest.raises(sc.ConflictError), self.space.transact():
            self.db.read("SELECT count(*) AS n FROM posts")

            def write() -> None:
                with self.space2.transact() as tx:
                    self.db2.exec("INSERT INTO posts (id, body) VALUES (?, ?)", [post, "theirs"])
                theirs.append(tx.seq)

            in_thread(write)
            self.db.exec("INSERT INTO posts (id, body) VALUES (?, ?)", [self.fresh(), "mine"])
        rows = (self.model.people, {**self.model.posts, post: (None, "theirs", 0)})
        self.committed(theirs[0], cells={}, rows=rows)

    @rule(
        name=st.sampled_from(NAMES),
        k=st.integers(1, 5),
        conflicts=st.integers(1, 3),
        rows=st.booleans(),
    )
    def handler_retries_conflict(self, name: str, k: int, conflicts: int, rows: bool) -> None:
        """A handler whose tries meet conflicts runs again and commits, reading what the other
        runtime committed (§3); what its failed tries wrote is not committed. (From the fourth
        try on a handler runs holding the space's write lock, so another writer waits for it:
        the body must not wait for one then.)"""
        self.open_second()
        tries: list[int] = []
        theirs: list[int | None] = []
        post = self.fresh()

        @sc.handler
        def add(k: int, *, counter: sc.Cell, db: sc.SqliteDb) -> None:
            v = counter.get()
            tries.append(v if isinstance(v, int) else -1)
            if len(tries) <= conflicts:
                n = 41 + len(tries)
                in_thread(lambda: theirs.append(self.write_second(name, n)))
            if rows:
                db.exec("INSERT INTO posts (id, body) VALUES (?, ?)", [post, f"try {len(tries)}"])
            counter.set((v if isinstance(v, int) else 0) + k)

        seq = add(k, counter=self.cells[name], db=self.db)
        assert tries[1:] == [41 + n for n in range(1, conflicts + 1)]
        for n, their_seq in enumerate(theirs, start=1):
            self.committed(their_seq, cells={name: 41 + n}, rows=None)
        after = (self.model.people, {**self.model.posts, post: (None, f"try {len(tries)}", 0)})
        self.committed(seq, cells={name: 41 + conflicts + k}, rows=after if rows else None)

    @precondition(lambda self: not self.process_wrote)
    @rule(name=st.sampled_from(NAMES), n=small, friend=st.one_of(st.none(), st.sampled_from(NAMES)))
    def process_writes(self, name: str, n: int, friend: str | None) -> None:
        """A commit made by another process reaches this runtime's cells, rows and live queries
        once it settles (R53); its seq is the space's next (§2). Once per run: a process costs
        more than every other step."""
        self.process_wrote = True
        person = self.fresh()
        done = subprocess.run(
            [sys.executable, "-c", CHILD, str(self.store), name, str(n), str(person), friend or ""],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        seq = int(done.stdout.split()[-1])
        people = {
            **self.model.people,
            person: ("child", None if friend is None else ("ref", friend, ())),
        }
        self.committed(seq, cells={name: n}, rows=(people, self.model.posts))

    def write_second(self, name: str, value: int) -> int | None:
        with self.space2.transact() as tx:
            self.cells2[name].set(value)
        return tx.seq

    # -- checks -----------------------------------------------------------------------------------

    def rows_of(self, db: Any) -> tuple[dict[int, Any], dict[int, Any]]:
        people = {
            r["id"]: (
                r["name"],
                None
                if r["friend_cf_link"] is None
                else self.plain(sc.decode_cf_link(r["friend_cf_link"], db.space.runtime)),
            )
            for r in db.read("SELECT id, name, friend_cf_link FROM people")
        }
        posts = {
            r["id"]: (r["person_id"], r["body"], r["ts"])
            for r in db.read("SELECT id, person_id, body, ts FROM posts")
        }
        return people, posts

    def check_values(self) -> None:
        m = self.model
        assert {n: self.plain(c.get()) for n, c in self.cells.items()} == m.cells
        assert self.db.rev == m.rev
        assert self.db.get()["rev"] == m.rev
        assert self.k.get() == m.k
        assert self.rows_of(self.db) == (m.people, m.posts)

    @invariant()
    def everything_matches_the_model(self) -> None:
        if self.rt is None:
            return
        self.rt.settle(timeout=SETTLE)
        m = self.model
        self.check_values()
        for live in self.lives:
            state = live.query.get()
            assert state.error is None, state.error
            assert not state.pending
            assert self.canon(state.result) == self.live_expected(live), live.name
            if live.name == "typed":
                # A decoded Cell is an ordinary cell: it reads its own value (R43, R52).
                for row in state.result:
                    friend = row.friend_cf_link
                    if friend is not None:
                        assert self.plain(friend.get()) == self.value_of(self.plain(friend))
            assert state.seq == live.seq, (live.name, state.seq, live.seq, m.db_seq)
            if live.received:
                shown = [self.canon(s.result) for s in live.received if not s.pending]
                assert shown, live.received
                assert shown[-1] == self.live_expected(live)
                # R50: only committed results, in commit order; R42: a re-run with the same
                # rows notifies nobody; R54: at most once per commit.
                assert is_subsequence(shown, live.results), (live.name, shown, live.results)
                states = [(s.pending, self.canon(s.result)) for s in live.received]
                assert all(a != b for a, b in itertools.pairwise(states)), states
                assert len(live.received) <= 2 + live.commits_since
        for d in self.derived:
            assert d.cell.get() == d.expected()
            if d.received is not None:
                assert d.received, d
                assert d.received[-1] == d.expected()
                for left, right in d.received:
                    assert left == right, d.received  # a glitch
        for w in self.watched:
            assert w.received, w.name
            got = [self.plain(v) for v in w.received]
            assert got[-1] == m.cells[w.name]
            # The value when it subscribed, then committed values in commit order (R50), at
            # most one per commit (R54).
            since = m.history[w.name][w.history_at_start - 1 :]
            assert is_subsequence(got, since), (w.name, got, since)
            assert len(got) <= len(since)


def count_of(state: Any) -> int | None:
    return None if state.pending or state.result is None else len(state.result)


def at_key(value: Any, key: str) -> Any:
    return value.get(key) if isinstance(value, dict) else None


def is_subsequence(items: list[Any], of: list[Any]) -> bool:
    rest = iter(of)
    return all(any(item == other for other in rest) for item in items)


def in_thread(fn: Callable[[], Any]) -> None:
    """Run ``fn`` on a thread of its own (no transaction of the caller's) and wait for it."""
    failed: list[BaseException] = []

    def run() -> None:
        try:
            fn()
        except BaseException as exc:
            failed.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=60)
    assert not thread.is_alive()
    if failed:
        raise failed[0]


# The default run takes seconds; the slow one (`-m slow`) a few minutes.
FAST = settings(
    max_examples=40,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def test_runtime_matches_model() -> None:
    run_state_machine_as_test(Runtimes, settings=FAST)


@pytest.mark.slow
def test_runtime_matches_model_long() -> None:
    run_state_machine_as_test(
        Runtimes,
        settings=settings(FAST, max_examples=500, stateful_step_count=100),
    )
