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
from sqlite_cells.cli._output import OutputFailed, error_kind, error_line, one_line
from sqlite_cells.files import unwritten_handle, write_refused_by_file
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
# The latest message of one author (its link), wherever it is: other writers' posts may have
# pushed it out of the live query's five.
LATEST_BY = (
    "SELECT id, author_cf_link AS author, body, ts FROM messages WHERE author_cf_link = ? "
    "ORDER BY id DESC LIMIT 1"
)
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


class OtherData(sc.SqliteCellsError, ValueError):
    """The store holds data of another kind under the demo's names, or another program removed
    the demo's own data while it ran."""


_LARGEST_ID = 2**63 - 1  # SQLite's largest rowid
_ELSEWHERE = (
    "this store holds other data under the demo's names, which the demo leaves alone (nothing "
    "was written); run the demo on another store (`sqlite-cells demo DIR`)"
)


def _count(posts: sc.Cell) -> int:
    """The demo's count of posts; a store whose ``posts`` cell holds anything else holds
    another program's data, which the demo leaves alone."""
    value = posts.get()
    if type(value) is not int:
        raise OtherData(
            f"cell 'posts' of space {SPACE!r} holds {value!r}, not the demo's count of posts: "
            + _ELSEWHERE
        )
    return value


def _check_for_other_data(db: sc.SqliteDb, posts: sc.Cell, users: dict[str, sc.Cell]) -> None:
    """Raise :class:`OtherData` naming the first of the demo's names that holds data the demo
    did not write, or whose file would refuse the demo's first write to it: every check runs
    before the demo's first commit, so a store of another program is left as it was."""
    _count(posts)
    for key, user in users.items():
        value = user.get()
        if value is not None and not (
            isinstance(value, dict) and value.keys() == {"name"} and isinstance(value["name"], str)
        ):
            raise OtherData(
                f"cell {key!r} of space {SPACE!r} holds {value!r}, not one of the demo's users "
                '({"name": …}): ' + _ELSEWHERE
            )
    handle = db.get()
    stored = handle["tables"]
    if (
        handle.get("dropped")
        or "source" in handle
        or stored != unwritten_handle(db.declaration)["tables"]
    ):
        found = ", ".join(
            f"{table}({', '.join(c.get('name', '?') for c in spec.get('columns', []))})"
            for table, spec in stored.items()
        )
        what = "was dropped" if handle.get("dropped") else f"has other tables: {found or '(none)'}"
        raise OtherData(
            f"database {DATABASE!r} of space {SPACE!r} {what}, not the demo's "
            f"messages({', '.join(TABLES['messages'].column_names)}): " + _ELSEWHERE
        )
    # Its file, as the demo's first write to it will find it (its stored version too).
    refused = write_refused_by_file(db.declaration)
    if refused is not None:
        raise OtherData(
            f"database {DATABASE!r} of space {SPACE!r} has a file that refuses the demo's "
            f"writes ({refused}): " + _ELSEWHERE
        )
    # SQLite gives a row past the largest id it allows a random id: the demo's posts would not
    # be the latest messages its live query shows, and the rename could not find its own post.
    (row,) = db.read("SELECT max(id) AS top FROM messages")
    top = row["top"]
    if isinstance(top, int) and top > _LARGEST_ID - len(CONVERSATION):
        raise OtherData(
            f"database {DATABASE!r} of space {SPACE!r} holds a message of id {top}, too near "
            f"the largest id SQLite allows ({_LARGEST_ID}) for the demo's "
            f"{len(CONVERSATION)} posts to follow it (SQLite would give them random ids): "
            + _ELSEWHERE
        )


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
    chat = _Chat(rt, out)
    chat.post_conversation()
    chat.rename_an_author()
    chat.roll_back_a_write()
    return chat.finish()


class _Chat:
    """The demo's steps and what they share: the space, the database, the live query and the
    states it delivered (printed by the main thread after ``rt.settle()``, so the output does
    not depend on thread timing)."""

    def __init__(self, rt: sc.Runtime, out: TextIO) -> None:
        self.rt, self.out = rt, out
        self.space = space = rt.space(SPACE)
        self.db = db = space.sqlite_database(DATABASE, tables=TABLES)
        self.posts = space.cell("posts", default=0)
        self.users = {key: space.cell(key) for key in USERS}
        _check_for_other_data(db, self.posts, self.users)
        (before,) = db.read("SELECT count(*) AS n FROM messages")
        self.run = ChatRun(rt.store, db.id, db.path, messages_before=int(before["n"]))
        out.write(f"store: {one_line(rt.store)}\n")
        out.write(f"database {DATABASE!r} of space {SPACE!r}: {db.id}\n")
        out.write(f"  file: {db.path.name}\n")
        # Whether it was ever written (its handle's rev), not whether it holds messages: one
        # whose messages were deleted has its file, and keeps its ids.
        if db.rev:
            out.write(
                f"continuing: the database already holds {self.run.messages_before} messages "
                f"(same ids, same file: R1)\n"
            )
        else:
            out.write("new chat: the database has no file yet; the first write creates it\n")
        # Users are cells holding {"name": …}; written once, then found again by their ids.
        missing = {key: name for key, name in USERS.items() if self.users[key].get() is None}
        if missing:
            with space.transact():
                for key, name in missing.items():
                    self.users[key].set({"name": name})
        self.latest = db.query(LATEST, row=Message)
        self.delivered: list[sc.QueryState[Message]] = []
        self.lock = threading.Lock()  # guards delivered
        self.printed = 0
        self.latest.observe().subscribe(self._collect)
        self.flush()

    def _collect(self, state: sc.QueryState[Message]) -> None:
        with self.lock:
            self.delivered.append(state)

    def flush(self) -> list[sc.QueryState[Message]]:
        """Wait for every re-run, then print the states delivered since the last flush."""
        self.rt.settle()
        with self.lock:
            fresh = [s for s in self.delivered[self.printed :] if not s.pending]
            self.printed = len(self.delivered)
        for state in fresh:
            if state.error is not None:  # (a database of another schema under its name, say)
                raise state.error
            rows = len(state.result or [])
            _show(self.out, f"  live query -> {rows} row(s) at seq {state.seq}", state)
            self.run.query_seqs.append(state.seq)
        return fresh

    def post_conversation(self) -> None:
        db = self.db

        @sc.handler
        def post(body: str, *, author: sc.Cell, posts: sc.Cell) -> None:
            # One commit: the counter and the row, all or nothing.
            count = _count(posts) + 1
            posts.set(count)
            db.exec(INSERT, [author, body, count])

        self.out.write("\nposting through a handler (row + counter in one commit):\n")
        for key, body in CONVERSATION:
            seq = post(body, author=self.users[key], posts=self.posts)
            assert seq is not None
            self.run.post_seqs.append(seq)
            name = self.users[key].key("name").get()  # as renamed by an earlier run, if it was
            self.out.write(f"{name}: {body!r} committed as seq {seq}\n")
            self.flush()

    def rename_an_author(self) -> None:
        """R52: the rows hold links; a decoded author is a live cell of its own."""

        @sc.handler
        def rename(name: str, *, user: sc.Cell) -> None:
            user.key("name").set(name)

        run, out, latest = self.run, self.out, self.latest
        alice = self.users["alice"]
        found = self.db.read(LATEST_BY, [alice.link_str()], row=Message)
        if not found or found[0].author is None:
            raise OtherData(
                f"none of {USERS['alice']}'s messages is left in database {DATABASE!r} of space "
                f"{SPACE!r} for the rename step to show (another program deleted them while the "
                "demo ran; its posts were committed): run the demo again, or on a store of its "
                "own (`sqlite-cells demo DIR`)"
            )
        (row,) = found
        assert row.author is not None
        self.row_id = row.id
        name_cell = row.author.key("name")
        names: list[Any] = []
        name_cell.observe().subscribe(names.append)
        self.flush()
        old = str(name_cell.get())
        new = "Alicia" if old == "Alice" else "Alice"
        seq_before = latest.get().seq
        run.rename_seq = rename(new, user=self.users["alice"])
        fresh = self.flush()
        run.names_seen = [str(n) for n in names]
        run.query_seq_after_rename = latest.get().seq
        run.deliveries_after_rename = len(fresh)
        out.write(f"\nrename: {old!r} -> {new!r} committed as seq {run.rename_seq}\n")
        seen = run.names_seen
        out.write(f"  author cell of message #{row.id} (decoded from its link) saw: {seen}\n")
        out.write(
            f"  live query: still at seq {run.query_seq_after_rename} (was {seq_before}), "
            f"{run.deliveries_after_rename} new result(s): link targets do not re-run it (R52)\n"
        )
        _show(out, "  the same rows, rendered again (names are read from the cells):", latest.get())

    def roll_back_a_write(self) -> None:
        """Abort-only writes: a failing statement rolls back the whole commit, cells included."""
        posts, out = self.posts, self.out
        posts_before = _count(posts)
        out.write(
            f"\nrollback: bump posts ({posts_before} -> {posts_before + 1}) and insert a "
            f"duplicate id #{self.row_id} in one transaction\n"
        )
        try:
            with self.space.transact():
                posts.set(posts_before + 1)
                self.db.exec(
                    "INSERT INTO messages (id, author_cf_link, body, ts) VALUES (?, ?, ?, ?)",
                    [self.row_id, self.users["bob"], "this row collides", posts_before + 1],
                )
        except sc.ExecError as exc:
            self.run.rollback_error = str(exc)
            out.write(f"  {error_kind(exc)}: {exc}\n")
        else:  # pragma: no cover - the duplicate id always fails
            raise AssertionError("the duplicate insert was expected to fail")
        fresh = self.flush()
        self.run.posts_after_rollback = _count(posts)
        out.write(
            f"  posts is still {self.run.posts_after_rollback}; the live query stayed at seq "
            f"{self.latest.get().seq} ({len(fresh)} new result(s))\n"
        )

    def finish(self) -> ChatRun:
        run = self.run
        (after,) = self.db.read("SELECT count(*) AS n FROM messages")
        run.messages = int(after["n"])
        run.posts = _count(self.posts)
        run.last_seq = self.latest.get().seq
        self.out.write(
            f"\ndone: {run.messages} messages, last write at seq {run.last_seq}. Run it again "
            "to continue the same database.\n"
        )
        return run


def run_demo(store: str | None, *, out: TextIO, err: TextIO) -> int:
    """The ``demo`` command: the chat on ``store``; exit status 0, or 1 on a runtime error
    (said on ``err``, as every command says its errors)."""
    try:
        with sc.Runtime(store) as rt:
            run_chat(rt, out=out)
    except OutputFailed:
        raise  # the output's failure, said as every command says it
    except sc.SqliteCellsError as exc:
        out.flush()
        err.write(error_line(f"demo failed: {error_kind(exc)}: {exc}"))
        return 1
    return 0
