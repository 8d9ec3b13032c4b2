"""The commit-participant extension point, exercised with a fake participant (so the runtime is
tested without importing sqlite_cells)."""

from __future__ import annotations

from collections.abc import Sequence
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

    def prepare(self, conn: apsw.Connection, ops: Sequence[Op]) -> None:
        assert conn.getautocommit()  # outside the transaction
        self.calls.append(f"prepare {len(ops)}")

    def committed(self, ops: Sequence[Op], seq: int) -> None:
        self.calls.append(f"committed {len(ops)} at {seq}")

    def apply(self, conn: apsw.Connection, op: Op, seq: int, tx: runtime.Transaction) -> Op:
        body = msgspec.json.decode(op.body)
        assert not conn.getautocommit()  # inside the transaction
        self.calls.append(f"apply {body}")
        if body == self.fail_on:
            raise RuntimeError(f"participant refused {body}")
        conn.execute("CREATE TABLE IF NOT EXISTS _cf_fake (seq INTEGER, body TEXT)")
        conn.execute("INSERT INTO _cf_fake VALUES (?, ?)", (seq, body))
        self.applied.append((seq, body))
        return Op(op.kind, op.target, msgspec.Raw(msgspec.json.encode({"kept": body})))

    def commit_failed(self, ops: Sequence[Op], exc: BaseException) -> None:
        raise AssertionError("COMMIT did not fail in these tests")


def _op(body: str) -> Op:
    return Op("fake", "t", msgspec.Raw(msgspec.json.encode(body)))


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
        assert fake.calls == ["prepare 2", "apply first", "apply second", "committed 2 at 1"]
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
        assert fake.calls == ["prepare 2", "apply good", "apply bad"]  # no committed()
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
