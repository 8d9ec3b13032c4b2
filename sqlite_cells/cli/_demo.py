"""``sqlite-cells demo``: the example chat app (also ``python -m examples.chat``).

It lives in the package rather than in ``examples/`` because the ``sqlite-cells`` command is
installed without the examples folder; ``examples/chat.py`` runs this same code. It uses only the
public API (``sc.…``), so it reads like any other example.

What it shows, step by step, on one store (the default ``./.sqlite-cells`` or ``--store``):

1. a database cell ``chat`` with a ``messages`` table whose ``author_cf_link`` column holds links
   to user cells (``alice``, ``bob``), and a live query over it, decoded into typed rows;
2. messages posted by a handler that writes a row and bumps a ``posts`` counter in one commit;
   the live query re-runs after each commit and its result is printed with the commit's seq;
3. renaming a user: the decoded author cell sees the new name, the query does not re-run (R52);
4. a write that fails (a duplicate primary key) in a transaction that also bumps the counter:
   the whole commit rolls back, counter included (R34, abort-only);
5. running it again continues the same database (R1: same ids, same file).

Everything is printed from the calling thread after ``rt.settle()``, never from subscriber
threads, so the output is the same on every run of a fresh store.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import msgspec

import sqlite_cells as sc
from sqlite_cells.read import text_table

__all__ = ["ChatRun", "run_chat", "run_demo"]

SPACE = "demo"
DATABASE = "chat"
TABLES = {
    "messages": sc.table(
        id="integer primary key",
        author_cf_link=sc.cf_link(),
        body="text not null",
        ts="integer not null default 0",
        indexes={"by_ts": ["ts"]},
    ),
}
USERS = {"alice": "Alice", "bob": "Bob"}
CONVERSATION = [
    ("alice", "Hi Bob!"),
    ("bob", "Hi Alice. Where does this chat live?"),
    ("alice", "In SQLite: each message is a row, each author a link to a cell."),
]
LATEST = "SELECT id, author_cf_link AS author, body, ts FROM messages ORDER BY id DESC LIMIT 5"
INSERT = "INSERT INTO messages (author_cf_link, body, ts) VALUES (?, ?, ?)"


class Message(msgspec.Struct):
    """A row of the live query; ``author`` is decoded from the stored link into a live cell
    (the alias hides the ``_cf_link`` suffix; the ``sc.Cell`` type is what decodes it)."""

    id: int
    author: sc.Cell | None
    body: str
    ts: int


@dataclass
class ChatRun:
    """What one run of the chat did (for tests and for callers that want more than the text)."""

    store: Path
    db_id: str
    db_path: Path
    messages_before: int
    messages: int = 0
    posts: int = 0
    post_seqs: list[int] = field(default_factory=list)
    query_seqs: list[int] = field(default_factory=list)
    rename_seq: int | None = None
    names_seen: list[str] = field(default_factory=list)
    query_seq_after_rename: int = 0
    deliveries_after_rename: int = 0
    rollback_error: str = ""
    posts_after_rollback: int = 0
    last_seq: int = 0


def _name(user: sc.Cell | None) -> str:
    if user is None:
        return "-"
    name = user.key("name").get()
    return str(name) if name is not None else "?"


def _show(out: TextIO, title: str, state: sc.QueryState) -> None:
    rows = [{"id": m.id, "author": _name(m.author), "body": m.body} for m in state.result or []]
    out.write(f"{title}\n")
    table = text_table(rows, columns=["id", "author", "body"])
    out.write("".join(f"    {line}\n" for line in table.splitlines()))


def run_chat(rt: sc.Runtime, *, out: TextIO) -> ChatRun:
    """Run the chat in the runtime ``rt`` (its store decides which database it continues),
    writing what happens to ``out``. Raises whatever the runtime raises, except the one
    :class:`sc.ExecError` the rollback step provokes on purpose."""
    space = rt.space(SPACE)
    db = space.sqlite_database(DATABASE, tables=TABLES)
    posts = space.cell("posts", default=0)
    users = {key: space.cell(key) for key in USERS}

    (before,) = db.read("SELECT count(*) AS n FROM messages")
    run = ChatRun(rt.store, db.id, db.path, messages_before=int(before["n"]))
    out.write(f"store: {rt.store}\n")
    out.write(f"database {DATABASE!r} of space {SPACE!r}: {db.id}\n")
    out.write(f"  file: {db.path.name}\n")
    if run.messages_before:
        out.write(
            f"continuing: the database already holds {run.messages_before} messages "
            f"(same ids, same file: R1)\n"
        )
    else:
        out.write("new chat: the database has no file yet; the first write creates it\n")

    # Users are cells holding {"name": …}; written once, then found again by their ids.
    missing = {key: name for key, name in USERS.items() if users[key].get() is None}
    if missing:
        with space.transact():
            for key, name in missing.items():
                users[key].set({"name": name})

    # The live query: a subscriber collects each delivered state; the main thread prints
    # them after rt.settle(), so the output does not depend on thread timing.
    latest = db.query(LATEST, row=Message)
    delivered: list[sc.QueryState] = []
    lock = threading.Lock()  # guards delivered

    def collect(state: sc.QueryState) -> None:
        with lock:
            delivered.append(state)

    latest.observe().subscribe(collect)
    printed = 0

    def flush() -> list[sc.QueryState]:
        nonlocal printed
        rt.settle()
        with lock:
            fresh = [s for s in delivered[printed:] if not s.pending]
            printed = len(delivered)
        for state in fresh:
            _show(
                out, f"  live query -> {len(state.result or [])} row(s) at seq {state.seq}", state
            )
            run.query_seqs.append(state.seq)
        return fresh

    flush()

    @sc.handler
    def post(body: str, *, author: sc.Cell, posts: sc.Cell) -> None:
        # One commit: the counter and the row, all or nothing.
        count = int(posts.get()) + 1
        posts.set(count)
        db.exec(INSERT, [author, body, count])

    @sc.handler
    def rename(name: str, *, user: sc.Cell) -> None:
        user.key("name").set(name)

    out.write("\nposting through a handler (row + counter in one commit):\n")
    for key, body in CONVERSATION:
        seq = post(body, author=users[key], posts=posts)
        assert seq is not None
        run.post_seqs.append(seq)
        out.write(f"{USERS[key]}: {body!r} committed as seq {seq}\n")
        flush()

    # R52: the rows hold links; a decoded author is a live cell of its own.
    state = latest.get()
    row = next(m for m in state.result or [] if m.author == users["alice"])
    assert row.author is not None
    name_cell = row.author.key("name")
    names: list[Any] = []
    name_cell.observe().subscribe(names.append)
    flush()
    old = str(name_cell.get())
    new = "Alicia" if old == "Alice" else "Alice"
    seq_before = latest.get().seq
    run.rename_seq = rename(new, user=users["alice"])
    fresh = flush()
    run.names_seen = [str(n) for n in names]
    run.query_seq_after_rename = latest.get().seq
    run.deliveries_after_rename = len(fresh)
    out.write(f"\nrename: {old!r} -> {new!r} committed as seq {run.rename_seq}\n")
    out.write(f"  author cell of message #{row.id} (decoded from its link) saw: {run.names_seen}\n")
    out.write(
        f"  live query: still at seq {run.query_seq_after_rename} (was {seq_before}), "
        f"{run.deliveries_after_rename} new result(s): link targets do not re-run it (R52)\n"
    )
    _show(out, "  the same rows, rendered again (names are read from the cells):", latest.get())

    # Abort-only writes: a failing statement rolls back the whole commit, cells included.
    posts_before = int(posts.get())
    out.write(
        f"\nrollback: bump posts ({posts_before} -> {posts_before + 1}) and insert a "
        f"duplicate id #{row.id} in one transaction\n"
    )
    try:
        with space.transact():
            posts.set(posts_before + 1)
            db.exec(
                "INSERT INTO messages (id, author_cf_link, body, ts) VALUES (?, ?, ?, ?)",
                [row.id, users["bob"], "this row collides", posts_before + 1],
            )
    except sc.ExecError as exc:
        run.rollback_error = str(exc)
        out.write(f"  {type(exc).__name__}: {exc}\n")
    else:  # pragma: no cover - the duplicate id always fails
        raise AssertionError("the duplicate insert was expected to fail")
    fresh = flush()
    run.posts_after_rollback = int(posts.get())
    out.write(
        f"  posts is still {run.posts_after_rollback}; the live query stayed at seq "
        f"{latest.get().seq} ({len(fresh)} new result(s))\n"
    )

    (after,) = db.read("SELECT count(*) AS n FROM messages")
    run.messages = int(after["n"])
    run.posts = int(posts.get())
    run.last_seq = latest.get().seq
    out.write(
        f"\ndone: {run.messages} messages, last write at seq {run.last_seq}. Run it again to "
        "continue the same database.\n"
    )
    return run


def run_demo(store: str | None, *, out: TextIO) -> int:
    """The ``demo`` command: the chat on ``store``; exit status 0, or 1 on a runtime error."""
    try:
        with sc.Runtime(store) as rt:
            run_chat(rt, out=out)
    except sc.SqliteCellsError as exc:
        out.write(f"demo failed: {type(exc).__name__}: {exc}\n")
        return 1
    return 0
