"""Random JSON values and rows against a plain-Python model (§2; R4–R7, R30–R36, R50–R54,
R70–R72).

A hypothesis state machine writes random JSON values — Unicode text and keys, integers at the
64-bit bounds, finite floats (``-0.0``, the smallest and largest), nested lists and dicts, links
to other cells at any depth — whole, through ``update`` and at key paths, writes rows of random
text, integers, floats, blobs and links with ``db.exec`` in the same transactions, has
transactions and handlers raise midway, values refused at ``set`` (R6) that leave their
transaction usable, closes and reopens the runtime, and writes through a second runtime on the
same store. After each step it compares every cell's committed value (types included: an int
never reads back as a float, ``-0.0`` keeps its sign), every row, a live query's result, an
observer's last value, and the seqs (one per writing transaction) with a model of dicts.
"""

from __future__ import annotations

import math
import shutil
import struct
import tempfile
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

SPACE = "values"
NAMES = ("a", "b", "ü")
DEFAULTED = "d"
INT_BOUNDS = (2**63 - 1, -(2**63), 2**53 + 1, -(2**53) - 1, 0, -1)
ROWS_SQL = "SELECT id, t, n, r, b, l_cf_link FROM items ORDER BY id"


def tables() -> dict[str, Any]:
    return {
        "items": sc.table(
            id="integer primary key",
            t="text",
            n="integer",
            r="real",
            b="blob",
            l_cf_link=sc.cf_link(),
        )
    }


Ref = tuple[str, str, tuple[Any, ...]]

texts = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=8) | st.sampled_from(
    ["", "\x00", "é", "e\u0301", "😀", "\ufeff", "/", "link@", "\u2028"]
)
ints = st.sampled_from(INT_BOUNDS) | st.integers(-(2**63), 2**63 - 1)
floats = st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from(
    [-0.0, 5e-324, 1.7976931348623157e308, 0.1, 2.0**63]
)
refs = st.tuples(
    st.just("ref"), st.sampled_from(NAMES), st.sampled_from([(), ("k",), (0,), ("k", "é")])
)
scalars = st.none() | st.booleans() | ints | floats | texts
values = st.recursive(
    scalars | refs,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=8,
)
keys = st.sampled_from(["k", "é", "", 0, 1, -1])
paths = st.lists(keys, min_size=1, max_size=3).map(tuple)
# Values refused at set (R6), each with a note of why.
refused = st.sampled_from(
    [
        2**63,
        -(2**63) - 1,
        math.nan,
        math.inf,
        b"bytes",
        {1, 2},
        {1: "int key"},
        "\ud800",
        {"k": [1, math.nan]},
        {"\udfff": 1},
    ]
)
row_values = st.tuples(
    st.none() | texts, st.none() | ints, st.none() | floats, st.none() | st.binary(max_size=6)
)
row_ids = st.integers(1, 5)


class Item(msgspec.Struct):
    id: int
    t: str | None
    n: int | None
    r: float | None
    b: bytes | None
    l_cf_link: sc.Cell | None


class Boom(Exception):
    """Raised by a transaction body on purpose."""


def same(a: Any, b: Any) -> bool:
    """Equal, and of the same types all the way down (1 is not 1.0 nor True; -0.0 is not 0.0)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return struct.pack("<d", a) == struct.pack("<d", b)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return (list(a) == list(b) and all(same(a[k], b[k]) for k in a)) or (
            sorted(a) == sorted(b) and all(same(a[k], b[k]) for k in a)
        )
    return bool(a == b)


def depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max(map(depth, value), default=0)
    if isinstance(value, dict):
        return 1 + max(map(depth, value.values()), default=0)
    return 0


def model_value_at(root: Any, path: tuple[Any, ...]) -> Any:
    value = root
    for key in path:
        if isinstance(key, str) and isinstance(value, dict):
            value = value.get(key)
        elif isinstance(key, int) and isinstance(value, list) and -len(value) <= key < len(value):
            value = value[key]
        else:
            return None
    return value


def model_with_value_at(root: Any, path: tuple[Any, ...], value: Any) -> Any:
    """The model's write at a path; ``ValueError`` where the runtime must refuse it."""
    if not path:
        return value
    key, rest = path[0], path[1:]
    if isinstance(root, tuple):  # a link: a write at a path does not follow it
        raise ValueError("inside a link")
    if isinstance(key, str):
        if root is None:
            base: dict[str, Any] = {}
        elif isinstance(root, dict):
            base = dict(root)
        else:
            raise ValueError("not an object")
        base[key] = model_with_value_at(base.get(key), rest, value)
        return base
    if not isinstance(root, list) or not -len(root) <= key < len(root):
        raise ValueError("no such index")
    items = list(root)
    items[key] = model_with_value_at(items[key], rest, value)
    return items


class Values(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="sc-values-"))
        self.store = self.dir / "store"
        self.cells_model: dict[str, Any] = dict.fromkeys(NAMES)
        self.rows: dict[int, tuple[Any, ...]] = {}
        self.seq = 0
        self.rev = 0
        self.rt: sc.Runtime | None = None
        self.rt2: sc.Runtime | None = None
        self.seen: dict[str, list[Any]] = {}
        self.subs: list[Any] = []
        # The cell DEFAULTED: its declared default in this runtime (R4), its value once written.
        self.default: Any = None
        self.d_written = False
        self.d_value: Any = None
        self.d_seen: list[Any] = []

    @initialize()
    def open_store(self) -> None:
        self.open_first()

    def open_first(self) -> None:
        self.rt = sc.Runtime(store=self.store, poll_interval=0.01)
        self.space = self.rt.space(SPACE)
        self.cells = {name: self.space.cell(name) for name in NAMES}
        self.names_by_id = {c.id: n for n, c in self.cells.items()}
        self.db = self.space.sqlite_database("things", tables=tables())
        self.live = self.db.query(ROWS_SQL)
        self.seen = {name: [] for name in NAMES}
        for name in NAMES:
            self.subs.append(self.cells[name].observe().subscribe(self.seen[name].append))
        # A new runtime has declared no default for DEFAULTED yet (R4).
        self.default = None
        self.d = self.space.cell(DEFAULTED)
        self.names_by_id[self.d.id] = DEFAULTED
        self.d_seen = []
        self.subs.append(self.d.observe().subscribe(self.d_seen.append))
        self.doubled = sc.derive(self.d, lambda v: [v, v])
        # Observers of places inside the values (a path's observer sees the value there).
        self.at_paths = {
            (name, path): [] for name in NAMES for path in (("k",), (0,), ("k", "é"), (-1,))
        }
        for (name, path), seen in self.at_paths.items():
            cell = self.cells[name]
            for key in path:
                cell = cell.key(key)
            self.subs.append(cell.observe().subscribe(seen.append))
        self.typed = self.db.query(ROWS_SQL, row=Item)

    def teardown(self) -> None:
        for sub in self.subs:
            sub.dispose()
        for rt in (self.rt, self.rt2):
            if rt is not None:
                rt.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- forms ------------------------------------------------------------------------------

    def make(self, spec: Any, cells: dict[str, sc.Cell] | None = None) -> Any:
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
        if isinstance(value, sc.Cell) and value.space.id != SPACE:
            return value.link_str()
        if isinstance(value, sc.Cell):
            return ("ref", self.names_by_id[value.id], tuple(value.value_path))
        if isinstance(value, list):
            return [self.plain(v) for v in value]
        if isinstance(value, dict):
            return {k: self.plain(v) for k, v in value.items()}
        assert not isinstance(value, tuple), value
        return value

    def link_of(self, ref: Ref | None) -> str | None:
        return None if ref is None else self.make(ref).link_str()

    def wrote(self, seq: int | None, *, rows: bool = False) -> None:
        assert seq == self.seq + 1, (seq, self.seq)
        self.seq = seq
        if rows:
            self.rev += 1

    # -- db ops -----------------------------------------------------------------------------

    def db_op(self, db: Any, op: tuple[Any, ...], rows: dict[int, Any], cells: Any) -> bool:
        """Run ``op`` on ``db`` and on ``rows``; False when the model says the commit fails."""
        kind = op[0]
        if kind == "insert":
            _, rid, vals, ref = op
            db.exec(
                "INSERT INTO items (id, t, n, r, b, l_cf_link) VALUES (?, ?, ?, ?, ?, ?)",
                [rid, *vals, None if ref is None else self.make(ref, cells)],
            )
            if rid in rows:
                return False
            rows[rid] = (*vals, self.link_of(ref))
        elif kind == "update":
            _, rid, vals, ref = op
            db.exec(
                "UPDATE items SET t = ?, n = ?, r = ?, b = ?, l_cf_link = ? WHERE id = ?",
                [*vals, None if ref is None else self.make(ref, cells), rid],
            )
            if rid in rows:
                rows[rid] = (*vals, self.link_of(ref))
        else:
            _, rid = op
            db.exec("DELETE FROM items WHERE id = ?", [rid])
            rows.pop(rid, None)
        return True

    # -- rules ------------------------------------------------------------------------------

    @rule(
        writes=st.dictionaries(st.sampled_from(NAMES), values, max_size=2),
        ops=st.lists(
            st.tuples(st.just("insert"), row_ids, row_values, st.none() | refs)
            | st.tuples(st.just("update"), row_ids, row_values, st.none() | refs)
            | st.tuples(st.just("delete"), row_ids),
            max_size=2,
        ),
        fail=st.booleans(),
    )
    def transact(self, writes: dict[str, Any], ops: list[Any], fail: bool) -> None:
        rows = dict(self.rows)
        ok = True
        seq = None
        try:
            with self.space.transact() as tx:
                for name, value in writes.items():
                    self.cells[name].set(self.make(value))
                for op in ops:
                    ok = self.db_op(self.db, op, rows, self.cells) and ok
                if fail:
                    raise Boom
            seq = tx.seq
        except Boom:
            assert fail
            return
        except sc.ExecError:
            assert not ok
            return
        assert ok, "the commit was expected to fail"
        if not writes and not ops:
            return
        self.wrote(seq, rows=bool(ops))
        self.cells_model.update(writes)
        self.rows = rows

    @rule(name=st.sampled_from(NAMES), path=paths, value=values)
    def set_at_path(self, name: str, path: tuple[Any, ...], value: Any) -> None:
        """A write at a path: where the value has no such place it raises, records nothing,
        and the transaction goes on (here: writing the value whole instead)."""
        try:
            new = model_with_value_at(self.cells_model[name], path, value)
        except ValueError:
            new = value
            refused = True
        else:
            refused = False
        with self.space.transact() as tx:
            cell = self.cells[name]
            for key in path:
                cell = cell.key(key)
            if refused:
                with pytest.raises(sc.SqliteCellsError) as caught:
                    cell.set(self.make(value))
                assert isinstance(caught.value, ValueError | TypeError)
                self.cells[name].set(self.make(value))
            else:
                cell.set(self.make(value))
                assert same(self.plain(cell.get()), model_value_at(new, path))
        self.cells_model[name] = new
        self.wrote(tx.seq)

    @rule(name=st.sampled_from(NAMES), bad=refused, then=values)
    def refused_value(self, name: str, bad: Any, then: Any) -> None:
        with self.space.transact() as tx:
            with pytest.raises(sc.ValueEncodeError) as caught:
                self.cells[name].set(bad)
            assert isinstance(caught.value, TypeError | ValueError)
            with pytest.raises(sc.ValueEncodeError):
                self.cells[name].update(lambda v: [v, bad])
            self.cells[name].set(self.make(then))
        self.wrote(tx.seq)
        self.cells_model[name] = then

    @rule(name=st.sampled_from(NAMES), value=values)
    def update_wraps(self, name: str, value: Any) -> None:
        if depth(self.cells_model[name]) + depth(value) > 200:
            return  # (a value nests at most 256 levels, R6)
        with self.space.transact() as tx:
            self.cells[name].update(lambda v: {"old": v, "new": self.make(value)})
        self.wrote(tx.seq)
        self.cells_model[name] = {"old": self.cells_model[name], "new": value}

    @rule(name=st.sampled_from(NAMES), value=values, rid=row_ids, vals=row_values)
    def handler_raises(self, name: str, value: Any, rid: int, vals: Any) -> None:
        @sc.handler
        def fail(*, cell: sc.Cell, db: sc.SqliteDb) -> None:
            cell.set(self.make(value))
            db.exec(
                "INSERT OR REPLACE INTO items (id, t, n, r, b) VALUES (?, ?, ?, ?, ?)", [rid, *vals]
            )
            raise Boom

        with pytest.raises(Boom):
            fail(cell=self.cells[name], db=self.db)

    @rule(name=st.sampled_from(NAMES), value=values, rid=row_ids, vals=row_values)
    def handler_writes(self, name: str, value: Any, rid: int, vals: Any) -> None:
        @sc.handler
        def put(*, cell: sc.Cell, db: sc.SqliteDb) -> None:
            cell.set(self.make(value))
            db.exec(
                "INSERT OR REPLACE INTO items (id, t, n, r, b) VALUES (?, ?, ?, ?, ?)", [rid, *vals]
            )

        seq = put(cell=self.cells[name], db=self.db)
        self.wrote(seq, rows=True)
        self.cells_model[name] = value
        self.rows[rid] = (*vals, None)

    def d_model(self) -> Any:
        return self.d_value if self.d_written else self.default

    @rule(value=values)
    def declare_default(self, value: Any) -> None:
        """Every Cell of an id reads the default declared last for it until it is written (R4)."""
        self.space.cell(DEFAULTED, default=self.make(value))
        self.default = value

    @rule(path=paths, value=values)
    def write_default_at_path(self, path: tuple[Any, ...], value: Any) -> None:
        """A write at a path of an unwritten cell builds on its default (R4)."""
        try:
            new = model_with_value_at(self.d_model(), path, value)
        except ValueError:
            with self.space.transact() as tx:
                cell = self.d
                for key in path:
                    cell = cell.key(key)
                with pytest.raises(sc.SqliteCellsError):
                    cell.set(self.make(value))
            assert tx.seq is None
            return
        with self.space.transact() as tx:
            cell = self.d
            for key in path:
                cell = cell.key(key)
            cell.set(self.make(value))
        self.wrote(tx.seq)
        self.d_written, self.d_value = True, new

    @rule(path=paths)
    def default_through_links(self, path: tuple[Any, ...]) -> None:
        """A Cell from a link, or from key, of the id reads the same default (R4)."""
        assert self.rt is not None
        cell = self.d
        for key in path:
            cell = cell.key(key)
        expected = model_value_at(self.d_model(), path)
        assert same(self.plain(cell.get()), expected)
        back = self.rt.cell_from_link(cell.link_str())
        assert same(self.plain(back.get()), expected)
        assert same(self.plain(sc.decode_cf_link(cell.link_str(), self.rt).get()), expected)

    @rule(rid=row_ids, vals=row_values, name=st.sampled_from(NAMES), value=values)
    def refused_db_calls_leave_transaction_usable(
        self, rid: int, vals: Any, name: str, value: Any
    ) -> None:
        """A Cell bound to a plain column, a plain value bound to a link column, and a pending
        value raise at the call and record nothing (R31, R32)."""
        with self.space.transact() as tx:
            with pytest.raises(sc.LinkEncodeError):
                self.db.exec("INSERT INTO items (id, t) VALUES (?, ?)", [rid, self.cells[name]])
            with pytest.raises(sc.LinkEncodeError):
                self.db.exec("INSERT INTO items (id, l_cf_link) VALUES (?, ?)", [rid, "x"])
            with pytest.raises(sc.GuardViolation):
                self.db.exec("INSERT INTO items (id) VALUES (?); DELETE FROM items", [rid])
            self.cells[name].set(self.make(value))
        self.wrote(tx.seq)
        self.cells_model[name] = value

    @rule(
        rows=st.lists(
            st.tuples(st.integers(6, 12), row_values), max_size=4, unique_by=lambda r: r[0]
        )
    )
    def exec_many_inserts(self, rows: list[Any]) -> None:
        fresh = [r for r in rows if r[0] not in self.rows]
        with self.space.transact() as tx:
            self.db.exec_many(
                "INSERT INTO items (id, t, n, r, b) VALUES (?, ?, ?, ?, ?)",
                [[rid, *vals] for rid, vals in fresh],
            )
        if not fresh:
            assert tx.seq is None
            return
        self.wrote(tx.seq, rows=True)
        for rid, vals in fresh:
            self.rows[rid] = (*vals, None)

    @rule(t=texts, n=ints, r=floats)
    def reads_with_params(self, t: str, n: int, r: float) -> None:
        """Parameters of every type select what SQLite's comparison selects."""
        got = self.db.read(
            "SELECT id FROM items WHERE t = ? OR n = ? OR r = ? ORDER BY id", params=[t, n, r]
        )
        expected = [
            {"id": rid}
            for rid, (rt_, rn, rr, _b, _l) in sorted(self.rows.items())
            if rt_ == t or rn == n or (rr is not None and rr == r)
        ]
        assert got == expected, (got, expected)

    @rule(name=st.sampled_from(NAMES), path=paths, value=values, inner_fails=st.booleans())
    def nested_blocks(
        self, name: str, path: tuple[Any, ...], value: Any, inner_fails: bool
    ) -> None:
        """A nested transact() joins the outer one; an update at a path inside it writes there."""
        try:
            new = model_with_value_at(self.cells_model[name], path, {"w": value})
        except ValueError:
            return
        cell = self.cells[name]
        for key in path:
            cell = cell.key(key)
        with self.space.transact() as tx:
            try:
                with self.space.transact():
                    cell.update(lambda old: {"w": self.make(value)})
                    if inner_fails:
                        raise Boom
            except Boom:
                pass
        if inner_fails:
            assert tx.seq is None
            return
        self.wrote(tx.seq)
        self.cells_model[name] = new

    @rule(name=st.sampled_from(NAMES), key=texts)
    def link_into_unknown_space(self, name: str, key: str) -> None:
        """A link to a cell of a space the store does not hold reads None and creates no file,
        stored in a value or not (R7)."""
        assert self.rt is not None
        other = self.rt.space("never-written")
        far = other.cell("far").key(key)
        back = self.rt.cell_from_link(far.link_str())
        assert back.get() is None
        with self.space.transact() as tx:
            self.cells[name].set({"far": far})
        self.wrote(tx.seq)
        got = self.cells[name].get()["far"]
        assert got == far and got.get() is None
        # Only this space's file is there: none for the other space.
        assert len(list(self.store.glob("space-*.sqlite"))) == 1
        # The model keeps the link as a plain dict of its text (it names no model cell).
        self.cells_model[name] = {"far": far.link_str()}

    @rule()
    def reopen(self) -> None:
        assert self.rt is not None
        for sub in self.subs:
            sub.dispose()
        self.subs = []
        self.rt.close()
        self.open_first()

    @rule(
        name=st.sampled_from(NAMES),
        value=values,
        ops=st.lists(
            st.tuples(st.just("insert"), row_ids, row_values, st.none() | refs)
            | st.tuples(st.just("delete"), row_ids),
            max_size=2,
        ),
    )
    def second_runtime_writes(self, name: str, value: Any, ops: list[Any]) -> None:
        if self.rt2 is None:
            self.rt2 = sc.Runtime(store=self.store, poll_interval=0.01)
            self.space2 = self.rt2.space(SPACE)
            self.cells2 = {n: self.space2.cell(n) for n in NAMES}
            self.db2 = self.space2.sqlite_database("things", tables=tables())
        rows = dict(self.rows)
        ok = True
        try:
            with self.space2.transact() as tx:
                self.cells2[name].set(self.make(value, self.cells2))
                for op in ops:
                    ok = self.db_op(self.db2, op, rows, self.cells2) and ok
        except sc.ExecError:
            assert not ok
            return
        assert ok
        self.wrote(tx.seq, rows=bool(ops))
        self.cells_model[name] = value
        self.rows = rows
        for n in NAMES:
            assert same(self.plain2(self.cells2[n].get()), self.cells_model[n]), n

    def plain2(self, value: Any) -> Any:
        if isinstance(value, sc.Cell) and value.space.id != SPACE:
            return value.link_str()
        if isinstance(value, sc.Cell):
            return ("ref", self.names_by_id[value.id], tuple(value.value_path))
        if isinstance(value, list):
            return [self.plain2(v) for v in value]
        if isinstance(value, dict):
            return {k: self.plain2(v) for k, v in value.items()}
        return value

    @precondition(lambda self: self.rt2 is not None)
    @rule()
    def close_second(self) -> None:
        assert self.rt2 is not None
        self.rt2.close()
        self.rt2 = None

    # -- the check --------------------------------------------------------------------------

    @invariant()
    def matches_the_model(self) -> None:
        if self.rt is None:
            return
        # Another runtime's commits are taken in by the poller, or by settle (R53).
        assert self.rt.settle(30.0)
        for name in NAMES:
            got = self.plain(self.cells[name].get())
            assert same(got, self.cells_model[name]), (name, got, self.cells_model[name])
        # (SQLite stores a REAL that is a whole number as an integer: -0.0 reads back as 0.0.)
        expected = [
            {"id": rid, "t": t, "n": n, "r": r + 0.0 if r == 0 else r, "b": b, "l_cf_link": link}
            for rid, (t, n, r, b, link) in sorted(self.rows.items())
        ]
        got_rows = self.db.read(ROWS_SQL)
        assert same(got_rows, expected), (got_rows, expected)
        assert self.db.rev == self.rev
        state = self.live.get()
        assert state.error is None, state.error
        assert same(state.result, expected), (state.result, expected)
        for (name, path), seen in self.at_paths.items():
            want = model_value_at(self.cells_model[name], path)
            assert seen and same(self.plain(seen[-1]), want), (name, path, seen[-1:], want)
        typed = self.typed.get()
        assert typed.error is None, typed.error
        assert [
            (i.id, i.t, i.n, i.r, i.b, None if i.l_cf_link is None else i.l_cf_link.link_str())
            for i in typed.result
        ] == [tuple(row.values()) for row in expected]
        d = self.d_model()
        assert same(self.plain(self.d.get()), d), (self.d.get(), d)
        assert self.d_seen and same(self.plain(self.d_seen[-1]), d), (self.d_seen, d)
        assert same(self.plain(self.doubled.get()), [d, d])
        for name in NAMES:
            if self.seen[name]:
                last = self.plain(self.seen[name][-1])
                assert same(last, self.cells_model[name]), (name, last, self.cells_model[name])


FAST = settings(
    max_examples=15,
    stateful_step_count=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def test_values_match_model() -> None:
    run_state_machine_as_test(Values, settings=FAST)


@pytest.mark.slow
def test_values_match_model_long() -> None:
    run_state_machine_as_test(
        Values, settings=settings(FAST, max_examples=300, stateful_step_count=60)
    )
