"""A live chat in the browser: Starlette, server-sent events, and one live query.

What each part uses of sqlite-cells:

* the messages are rows of a database cell ``chat``; each row's ``author_cf_link`` links to a
  user cell (``alice``, ``bob``), and the page shows the row's author as that cell's name;
* the page's list comes from a live query (``db.query(...)``): after each durable commit that
  changed the messages, its new state reaches every open page (SPEC R50);
* renaming a user writes the user cell only: the query does not re-run (R52), but the view
  also reads the user cells, so the new name reaches every page;
* what a page shows is one derived cell over the query, the ``posts`` counter and the user
  cells (``sc.lift``): it is computed at most once per commit, after the query's run of that
  commit has landed (R54), so a page never shows the counter of one commit over the messages
  of an older one;
* posting and renaming run ``@sc.handler`` functions (a transaction each, retried on conflict);
  a post also bumps the ``posts`` counter in the same commit. An empty message is refused by the
  table's CHECK constraint when the commit runs, a too-long one or an unknown author by the
  handler: either way the whole commit is rolled back (R34), the counter included, and the page
  that posted shows the error. A failing live query shows as its error (``error`` in the view),
  never as an empty chat.

Everything pushed to pages is built on the runtime's scheduler thread (where subscribers run)
and handed to each page's event loop with ``call_soon_threadsafe``.

The server answers its own pages only: a request whose ``Host`` is not the address it serves
is refused (421: another site's name made to point at it, DNS rebinding, could read
``/events``), and so is a ``POST`` that is not ``application/json`` (415) or whose ``Origin``
is another site's (403): a page of another site could otherwise post and rename (CSRF).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import threading
from collections.abc import AsyncIterator, Callable, Collection
from pathlib import Path
from typing import Any

import msgspec
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

import sqlite_cells as sc

__all__ = ["Chat", "create_app"]

SPACE = "web"
USERS = {"alice": "Alice", "bob": "Bob"}
MAX_BODY = 500
MAX_NAME = 100  # characters of a display name
# Bytes of a request's body: a message of MAX_BODY characters of 4 UTF-8 bytes each, JSON-escaped
# (a "\uXXXX" escape is 6 bytes a character), and room for the rest of the object.
MAX_REQUEST = 16 * 1024
TABLES = {
    "messages": sc.table(
        id="integer primary key",
        author_cf_link=sc.cf_link(),
        body="text not null check (length(trim(body)) > 0)",
        indexes={"by_author": ["author_cf_link"]},
    ),
}
LATEST = "SELECT id, author_cf_link AS author, body FROM messages ORDER BY id DESC LIMIT 50"
INSERT = "INSERT INTO messages (author_cf_link, body) VALUES (?, ?)"
PAGE = Path(__file__).with_name("index.html")


class Message(msgspec.Struct):
    """A row of the live query; ``author`` is the linked user cell (decoded from the link)."""

    id: int
    author: sc.Cell | None
    body: str


@sc.handler
def post(body: str, *, author: sc.Cell, db: sc.SqliteDb, posts: sc.Cell) -> None:
    """One message and the counter bump, in one commit. The CHECK constraint refuses an empty
    body at commit time (``sc.ExecError``); the handler refuses a too-long one. Leading and
    trailing whitespace is not kept (a message of line breaks alone is an empty one)."""
    body = body.strip()
    if len(body) > MAX_BODY:
        raise ValueError(f"a message has at most {MAX_BODY} characters (this one {len(body)})")
    posts.update(_bumped)
    db.exec(INSERT, [author, body])


def _bumped(count: Any) -> int:
    """The ``posts`` counter after one more post; a store whose ``posts`` cell holds anything
    but a count holds another program's data, which the chat refuses to write over."""
    if type(count) is not int:
        raise ValueError(
            f"cell 'posts' of space {SPACE!r} holds {count!r}"[:200]
            + ", not the chat's count of posts: this store holds other data under the chat's "
            "names, which the chat leaves alone (nothing was written); serve the chat from "
            "another store (--store DIR)"
        )
    return count + 1


@sc.handler
def rename(name: str, *, user: sc.Cell) -> None:
    """A new display name for ``user``: a cell write, no database write."""
    name = name.strip()
    if not name:
        raise ValueError("a name cannot be empty")
    if len(name) > MAX_NAME:
        raise ValueError(f"a name has at most {MAX_NAME} characters (this one {len(name)})")
    user.key("name").set(name)


def _name(value: Any) -> str:
    """The display name a user cell's ``value`` holds."""
    if isinstance(value, dict) and isinstance(value.get("name"), str):
        return str(value["name"])
    return "(unknown)"


class Chat:
    """The chat's cells, database and live query, and the pages listening to them."""

    def __init__(self, rt: sc.Runtime) -> None:
        self.runtime = rt
        self.space = rt.space(SPACE)
        self.users = {key: self.space.cell(key, default={"name": n}) for key, n in USERS.items()}
        self.posts = self.space.cell("posts", default=0)
        self.db = self.space.sqlite_database("chat", tables=TABLES)
        self.latest = self.db.query(LATEST, row=Message)
        # The whole view, from one commit: the query's rows with the counter and the names of
        # that same commit (R54), never the counter's latest value over older rows.
        self.view = sc.lift(self._render)(self.latest, self.posts, *self.users.values())
        self._lock = threading.Lock()  # guards _listeners and _view
        self._listeners: set[Callable[[bytes], None]] = set()
        self.ended = False  # end_streams was called: the server is stopping
        self._view = self.view.get()
        # Subscribers run on the scheduler thread after each durable commit (R50).
        self._subscriptions = [self.view.observe().subscribe(self._changed)]

    def _render(self, state: sc.QueryState[Message], posts: Any, *users: Any) -> bytes:
        """The page's view of one commit: the query's ``state``, the ``posts`` counter and the
        values of the user cells (in ``USERS`` order)."""
        names = {key: _name(value) for key, value in zip(self.users, users, strict=True)}
        messages = [
            {"id": m.id, "author": self._author(m.author, names), "body": m.body}
            for m in reversed(state.result or [])
        ]
        # A failing query (a database of another schema under the chat's name, a timeout) is
        # shown as its error: its empty result is not an empty chat.
        error = None if state.error is None else f"{type(state.error).__name__}: {state.error}"
        return msgspec.json.encode(
            {
                "seq": state.seq,
                "pending": state.pending,
                "error": error,
                "messages": messages,
                "users": [{"key": k, "name": name} for k, name in names.items()],
                # (a count, or None: another program's value, a link say, that is no count)
                "posts": posts if type(posts) is int else None,
            }
        )

    def _author(self, author: sc.Cell | None, names: dict[str, str]) -> str:
        # A user the app declared by the name the view was given, else the decoded cell's.
        if author is None:
            return _name(None)
        known = next((k for k, u in self.users.items() if u == author), None)
        return names[known] if known is not None else _name(author.get())

    def _changed(self, view: bytes) -> None:
        with self._lock:
            if view == self._view:
                return
            self._view = view
            listeners = list(self._listeners)
        for listener in listeners:
            listener(view)

    def listen(self, listener: Callable[[bytes], None]) -> bytes:
        """Call ``listener`` with each new view; returns the current one."""
        with self._lock:
            self._listeners.add(listener)
            return self._view

    def unlisten(self, listener: Callable[[bytes], None]) -> None:
        with self._lock:
            self._listeners.discard(listener)

    def end_streams(self) -> None:
        """Tell every listener the view will not change again (an empty view): the server is
        stopping, and an open page's event stream ends instead of being cancelled."""
        with self._lock:
            self.ended = True
            listeners = list(self._listeners)
        for listener in listeners:
            listener(b"")

    def close(self) -> None:
        for subscription in self._subscriptions:
            subscription.dispose()


def _error(status: int, exc: BaseException) -> JSONResponse:
    return JSONResponse({"error": f"{type(exc).__name__}: {exc}"}, status_code=status)


def create_app(chat: Chat, *, hosts: Collection[str]) -> ASGIApp:
    """The web app: ``/`` the page, ``/events`` the live view (server-sent events),
    ``POST /api/messages`` and ``POST /api/users/{key}/name`` the two handlers. ``hosts``: the
    ``Host`` values (``host:port``) of the address served (``*:port``: any IP address, for a
    server bound to every interface); any other request is refused, as is a cross-site
    ``POST`` (see :func:`_cross_site`)."""

    async def page(_request: Request) -> Response:
        return FileResponse(PAGE, media_type="text/html")

    async def events(_request: Request) -> Response:
        loop = asyncio.get_running_loop()
        # Each view is the whole page: a page that reads slowly needs only the newest one, so
        # it holds one at most however many commits come meanwhile.
        newest: list[bytes] = []
        ready = asyncio.Event()

        def land(view: bytes) -> None:
            if newest != [b""]:  # the end (Chat.end_streams) stays the end
                newest[:] = [view]
            ready.set()

        def push(view: bytes) -> None:
            # RuntimeError: the page's loop is gone (server stopping); unlisten follows.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(land, view)

        async def stream() -> AsyncIterator[bytes]:
            view = chat.listen(push)
            try:
                while view:  # an empty view: the server is stopping (Chat.end_streams)
                    yield b"data: " + view + b"\n\n"
                    await ready.wait()
                    ready.clear()
                    view = newest.pop()
            finally:
                chat.unlisten(push)

        return StreamingResponse(
            stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store"}
        )

    async def post_message(request: Request) -> Response:
        try:
            data = await _json(request, "author", "body")
        except _TooLarge as exc:
            return _error(413, exc)
        except ValueError as exc:
            return _error(400, exc)
        author = chat.users.get(data["author"])
        if author is None:
            return _error(400, ValueError(f"unknown author {data['author']!r}"))
        try:
            seq = await asyncio.to_thread(
                post, data["body"], author=author, db=chat.db, posts=chat.posts
            )
        except (sc.SqliteCellsError, ValueError) as exc:
            return _error(400, exc)
        return JSONResponse({"seq": seq})

    async def rename_user(request: Request) -> Response:
        user = chat.users.get(request.path_params["key"])
        if user is None:
            return _error(404, LookupError(f"no user {request.path_params['key']!r}"))
        try:
            data = await _json(request, "name")
            seq = await asyncio.to_thread(rename, data["name"], user=user)
        except _TooLarge as exc:
            return _error(413, exc)
        except (sc.SqliteCellsError, ValueError) as exc:
            return _error(400, exc)
        return JSONResponse({"seq": seq})

    app = Starlette(
        routes=[
            Route("/", page),
            Route("/events", events),
            Route("/api/messages", post_message, methods=["POST"]),
            Route("/api/users/{key}/name", rename_user, methods=["POST"]),
        ]
    )

    async def served(scope: Scope, receive: Receive, send: Send) -> None:
        refusal = _cross_site(Request(scope), hosts) if scope["type"] == "http" else None
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        try:
            await app(scope, receive, send)
        except ClientDisconnect:
            pass  # the client left before its request's body arrived: nobody to answer
        except asyncio.CancelledError:
            # The server stopped waiting for a page that does not read (its stream was told
            # to end, but is stuck sending an older view): the page is gone, not an error.
            if not chat.ended:
                raise

    return served


def _cross_site(request: Request, hosts: Collection[str]) -> Response | None:
    """The refusal of a request that may come from another site, or None: a ``Host`` that is
    not the address served (421), a ``POST`` whose body is not ``application/json`` (415: a
    form or a ``text/plain`` body is what another site's page may send without asking) or
    whose ``Origin`` is another site's (403)."""
    host = request.headers.get("host", "").lower()
    if host not in hosts and not _any_address(host, hosts):
        served = ", ".join(sorted(hosts))
        return JSONResponse(
            {"error": f"this server answers for {served}, not {host!r}: open the URL it printed"},
            status_code=421,
        )
    if request.method != "POST":
        return None
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/json":
        return JSONResponse(
            {"error": f"a request's body must be application/json, not {kind or 'untyped'!r}"},
            status_code=415,
        )
    origin = request.headers.get("origin")
    if origin is not None and origin.lower() != f"http://{host}":
        return JSONResponse(
            {"error": f"a request from another site ({origin!r}) is refused"}, status_code=403
        )
    return None


def _any_address(host: str, hosts: Collection[str]) -> bool:
    """Whether ``host`` names the server by an IP address, on a server bound to every interface
    (``*:port`` among ``hosts``): a name another site controls could point anywhere (DNS
    rebinding), an address cannot."""
    if host.startswith("["):  # an IPv6 address: [::1]:8000
        name, _, rest = host[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else "80"
    elif host.count(":") == 1:
        name, _, port = host.partition(":")
    else:
        name, port = host, "80"  # (a browser leaves out port 80)
    if f"*:{port}" not in hosts:
        return False
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class _TooLarge(ValueError):
    """A request's body is over ``MAX_REQUEST`` bytes (answered 413; the rest of it is read and
    dropped, not kept)."""


async def _json(request: Request, *fields: str) -> dict[str, str]:
    """The request's JSON object, which must have each of ``fields`` as a string (else a
    ``ValueError`` saying what is wrong). A body over ``MAX_REQUEST`` bytes is refused
    (``_TooLarge``): no request holds more than a message, and a server that kept any body
    whole could be made to hold hundreds of megabytes for one request. The rest of such a body
    is read and dropped, so that the client, still sending it, gets the answer."""
    body = bytearray()
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size <= MAX_REQUEST:
            body += chunk
    if size > MAX_REQUEST:
        raise _TooLarge(f"the request's body is over {MAX_REQUEST:,} bytes ({size:,})")
    try:
        data = msgspec.json.decode(bytes(body))
    except (msgspec.DecodeError, RecursionError):  # nested too deeply to read
        raise ValueError("the request's body is not JSON") from None
    if not isinstance(data, dict):
        raise ValueError("the request's body is not a JSON object")
    for name in fields:
        if not isinstance(data.get(name), str):
            raise ValueError(f"{name!r} must be a string, not {data.get(name)!r}"[:200])
    return data
