"""The commit-participant extension point, exercised with a fake participant (so the runtime is
tested without importing sqlite_cells)."""

from __future__ import annotations

import contextvars
from collections.abc import Mapping, Sequence
from pathlib import Path

import apsw
import msgspec
import pytest

from sqlite_cells import runtime
from sqlite_cells.codec import Op, SqliteCellsError


class FakeParticipant:
    """Appends each op's body to a side table in the space file, inside the commit."""

    kind = "fake"

    def __init__(self, fail_on: str | None = None) -> None:
        self.fail_on = fail_on
        self.calls: list[str] = []
        self.applied: list[tuple[int, str]] = []

    def prepare(self, conn: apsw.Connection, ops: Sequence[runtime.PendingOp]) -> None:
        assert conn.getautocommit()  # outside the transaction
        self.calls.append(f"prepare {len(ops)}")

    def cell_writes(
        self, conn: apsw.Connection, ops: Sequence[runtime.PendingOp], writes: Mapping[str, bytes]
    ) -> Mapping[str, bytes]:
        assert not conn.getautocommit()  # inside the transaction, before the cells are written
        self.calls.append(f"cell_writes {sorted(writes)}")
        return {}

    def committed(self, ops: Sequence[runtime.PendingOp], seq: int) -> None:
        self.calls.append(f"committed {len(ops)} at {seq}")

    def apply(self, conn: apsw.Connection, op: runtime.PendingOp, seq: int) -> Op:
        body = op.payload
        assert isinstance(body, str)
        assert not conn.getautocommit()  # inside the transaction
        self.calls.append(f"apply {body}")
        if body == self.fail_on:
            raise RuntimeError(f"participant refused {body}")
        conn.execute("CREATE TABLE IF NOT EXISTS _cf_fake (seq INTEGER, body TEXT)")
        conn.execute("INSERT INTO _cf_fake VALUES (?, ?)", (seq, body))
        self.applied.append((seq, body))
        return Op(op.kind, op.target, msgspec.Raw(msgspec.json.encode({"kept": body})))

    def commit_failed(self, ops: Sequence[runtime.PendingOp], exc: BaseException) -> None:
        raise AssertionError("COMMIT did not fail in these tests")


class CountingParticipant(FakeParticipant):
    """Bumps a counter cell at commit, from the committed state: appending never conflicts."""

    kind = "count"

    def cell_writes(
        self, conn: apsw.Connection, ops: Sequence[runtime.PendingOp], writes: Mapping[str, bytes]
    ) -> Mapping[str, bytes]:
        target = ops[0].target
        row = conn.execute("SELECT value FROM _cf_cells WHERE id = ?", (target,)).fetchone()
        count = 0 if row is None else int(msgspec.json.decode(row[0]))
        return {target: msgspec.json.encode(count + len(ops))}

    def apply(self, conn: apsw.Connection, op: runtime.PendingOp, seq: int) -> Op:
        return Op(op.kind, op.target)


def _op(body: str) -> runtime.PendingOp:
    return runtime.PendingOp("fake", "t", body)


def _rows(space: runtime.Space) -> list[tuple[int, str]]:
    with space.file.write_connection() as conn:
        exists = conn.execute("SELECT 1 FROM sqlite_master WHERE name = '_cf_fake'").fetchone()
        if not exists:
            return []
        return [(s, b) for s, b in conn.execute("SELECT seq, body FROM _cf_fake ORDER BY rowid")]


def test_ops_run_after_cell_writes_in_order_and_are_recorded(tmp_path: Path) -> None:
    with runtime.Runtime(tmp_path) as rt:
        fake = FakeParticipant()
        rt.register_participant(fake)
        space = rt.space("demo")
        c = space.cell("c")
        with space.transact() as tx:
            c.set(1)
            tx.add_op(space.file, _op("first"))
            tx.add_op(space.file, _op("second"))
        assert tx.seq == 1
        assert fake.applied == [(1, "first"), (1, "second")]
        assert fake.calls == [
            "prepare 2",
            "cell_writes ['" + c.id + "']",
            "apply first",
            "apply second",
            "committed 2 at 1",
        ]
        assert _rows(space) == [(1, "first"), (1, "second")]
        with space.file.write_connection() as conn:
            row = conn.execute("SELECT record FROM _cf_log WHERE seq = 1").fetchone()
        assert row is not None
        record = msgspec.json.decode(row[0])
        assert [msgspec.json.decode(msgspec.json.encode(op[2])) for op in record[2]] == [
            {"kept": "first"},
            {"kept": "second"},
        ]


def test_a_raising_participant_rolls_back_everything(tmp_path: Path) -> None:
    with runtime.Runtime(tmp_path) as rt:
        fake = FakeParticipant(fail_on="bad")
        rt.register_participant(fake)
        space = rt.space("demo")
        c = space.cell("c", default=0)
        with pytest.raises(RuntimeError, match="participant refused bad"), space.transact() as tx:
            c.set(1)
            tx.add_op(space.file, _op("good"))
            tx.add_op(space.file, _op("bad"))
        assert c.get() == 0
        # no committed()
        assert fake.calls == [
            "prepare 2",
            "cell_writes ['" + c.id + "']",
            "apply good",
            "apply bad",
        ]
        assert _rows(space) == []
        assert space.file.seen_seq == 0
        with space.transact() as tx:  # the space is still usable and seqs are not skipped
            c.set(2)
        assert tx.seq == 1


def test_unknown_op_kinds_are_refused(tmp_path: Path) -> None:
    with runtime.Runtime(tmp_path) as rt:
        space = rt.space("demo")
        with pytest.raises(SqliteCellsError, match="no commit participant"), space.transact() as tx:
            tx.add_op(space.file, _op("x"))
        assert space.file.seen_seq == 0


def test_cell_writes_made_at_commit_are_stored_published_and_never_conflict(
    tmp_path: Path,
) -> None:
    with runtime.Runtime(tmp_path) as rt:
        rt.register_participant(CountingParticipant())
        space = rt.space("demo")
        counter = space.cell("counter")
        seen: list[object] = []
        counter.observe().subscribe(seen.append)
        other = runtime.Runtime(tmp_path)
        other.register_participant(CountingParticipant())
        other_space = other.space("demo")

        def commit_elsewhere() -> int | None:
            with other_space.transact() as second:
                second.add_op(other_space.file, runtime.PendingOp("count", counter.id))
                second.add_op(other_space.file, runtime.PendingOp("count", counter.id))
            return second.seq

        with space.transact() as first:
            first.add_op(space.file, runtime.PendingOp("count", counter.id))
            # Another runtime commits in between (in a context of its own, so it does not join
            # this transaction): neither read the counter, so there is no conflict.
            assert contextvars.Context().run(commit_elsewhere) == 1
        other.close()
        assert first.seq == 2
        assert counter.get() == 3
        rt.settle()
        assert seen[-1] == 3
        with space.file.write_connection() as conn:
            row = conn.execute("SELECT record FROM _cf_log WHERE seq = 2").fetchone()
        assert row is not None
        writes = msgspec.json.decode(row[0])[1]
        assert writes == [[counter.id, 3]]


class _Ending(FakeParticipant):
    """An op that is the last its target ever has (a drop, for the database cells)."""

    kind = "end"
    ends_target = True


def test_compaction_keeps_only_the_op_that_ended_a_target(tmp_path: Path) -> None:
    """A target whose newest op ends it keeps that op's record alone once compaction passes it;
    its removed history goes to ``_cf_named``. A target still in use keeps its newest records."""
    with runtime.Runtime(tmp_path) as rt:
        rt.register_participant(FakeParticipant())
        rt.register_participant(_Ending())
        space = rt.space("demo")
        space.file.compact_keep = space.file.compact_every = 2
        space.file.keep_per_target = 3
        seqs: dict[str, list[int]] = {"gone": [], "kept": []}
        for n in range(5):
            for target in seqs:
                with space.transact() as tx:
                    tx.add_op(space.file, runtime.PendingOp("fake", target, f"{target}{n}"))
                seqs[target].append(tx.seq)
        with space.transact() as tx:
            tx.add_op(space.file, runtime.PendingOp("end", "gone", "end"))
        end = tx.seq
        for n in range(6):
            with space.transact():
                space.cell("other").set(n)
        with space.file.write_connection() as conn:
            index = {
                t: [
                    int(s)
                    for (s,) in conn.execute(
                        "SELECT seq FROM _cf_op_index WHERE target = ? ORDER BY seq", (t,)
                    )
                ]
                for t in seqs
            }
            logged = {int(s) for (s,) in conn.execute("SELECT seq FROM _cf_log")}
            named = dict(conn.execute("SELECT id, seq FROM _cf_named").fetchall())
        assert index == {"gone": [end], "kept": seqs["kept"][-3:]}
        assert end in logged and not logged & set(seqs["gone"])
        assert named == {"gone": seqs["gone"][-1], "kept": seqs["kept"][-4]}
