"""Link text with a key given twice (R30, R43): it names two cells — SQLite's JSON functions read
the first value of the key, msgspec the last — so no reader takes it for a link. A write already
refuses it (a link column holds canonical text); text another program stored is no link to
``decode_cf_link`` (``LinkDecodeError``) and reads as ``None`` in a typed row, whichever way the
rows are built, without failing the query."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import apsw
import msgspec
import pytest

import sqlite_cells as sc
from sqlite_cells._runtime import Space


class Msg(msgspec.Struct):
    id: int
    author_cf_link: sc.Cell | None


@dataclasses.dataclass
class MsgData:  # built the general way (msgspec with a decode hook)
    id: int
    author_cf_link: sc.Cell | None


def _given_twice(first: sc.Cell, second: sc.Cell) -> list[str]:
    """Texts naming ``first`` to SQLite and ``second`` to a decoder keeping a key's last value:
    ``"id"``, ``"link@1"`` and ``"/"`` given twice."""
    one = f'{{"id":"{first.id}","space":"demo","scope":"space"}}'
    two = f'{{"id":"{second.id}","space":"demo","scope":"space"}}'
    return [
        f'{{"/":{{"link@1":{{"id":"{first.id}","id":"{second.id}","space":"demo","scope":"space"}}}}}}',
        f'{{"/":{{"link@1":{one},"link@1":{two}}}}}',
        f'{{"/":{{"link@1":{one}}},"/":{{"link@1":{two}}}}}',
    ]


def test_decode_cf_link_refuses_a_key_given_twice(rt: sc.Runtime, space: Space) -> None:
    alice, bob = space.cell("alice", default="a"), space.cell("bob", default="b")
    for text in _given_twice(alice, bob):
        for given in (text, text.encode()):
            with pytest.raises(sc.LinkDecodeError, match="is given twice in one object") as info:
                sc.decode_cf_link(given, rt)
            assert "names two cells" in str(info.value)
            assert "cell.link_str()" in str(info.value)
        with pytest.raises(sc.LinkDecodeError, match="is given twice"):
            rt.cell_from_link(text)
    assert sc.decode_cf_link(bob.link_str(), rt) == bob  # each key once: still a link


@pytest.mark.parametrize("row", [Msg, MsgData], ids=["struct", "dataclass"])
def test_a_typed_row_reads_link_text_with_a_key_given_twice_as_none(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb, row: type
) -> None:
    alice, bob = space.cell("alice", default="a"), space.cell("bob", default="b")
    texts = _given_twice(alice, bob)
    with space.transact():
        for n in range(len(texts) + 1):
            db.exec("INSERT INTO messages (id, author_cf_link, body) VALUES (?, ?, 'x')", [n, bob])
    conn = apsw.Connection(str(Path(db.path)))  # another program: the guard never sees it
    for n, text in enumerate(texts):
        conn.execute("UPDATE messages SET author_cf_link = ? WHERE id = ?", (text, n))
        # (SQLite reads the first id: the text names alice there, bob to msgspec)
        assert conn.execute(
            "SELECT author_cf_link ->> '$./.link@1.id' FROM messages WHERE id = ?", (n,)
        ).fetchall() == [(alice.id,)]
    conn.close()
    sql = "SELECT id, author_cf_link FROM messages ORDER BY id"
    rows = db.read(sql, row=row)
    assert [(r.id, r.author_cf_link) for r in rows] == [
        *((n, None) for n in range(len(texts))),
        (len(texts), bob),
    ]
    query = db.query(sql, row=row)
    rt.settle(timeout=10)
    state = query.get()
    assert state.error is None and state.result is not None
    assert [r.author_cf_link for r in state.result] == [None] * len(texts) + [bob]
    # Untyped rows return the stored text as it is (R43).
    assert [r["author_cf_link"] for r in db.read(sql)][: len(texts)] == texts
