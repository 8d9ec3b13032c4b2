"""The web example's server as a script drives it, without a browser: its URL line means the
socket already listens, and Ctrl-C with a page open (a live event stream) stops it cleanly."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

import sqlite_cells as sc

pytest.importorskip("uvicorn", reason="the web example needs the dev dependencies")

from examples.web.app import TABLES  # once uvicorn is known to be there

ROOT = Path(__file__).resolve().parents[2]


def start_server(store: Path, *more: str) -> subprocess.Popen[str]:
    """``python -m examples.web`` on ``store``, any free port, its output piped."""
    env = {k: v for k, v in os.environ.items() if k != "SQLITE_CELLS_STORE"}
    return subprocess.Popen(
        [sys.executable, "-m", "examples.web", "--store", str(store), "--port", "0", *more],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_the_url_line_means_listening_and_ctrl_c_with_a_page_open_is_clean(
    tmp_path: Path,
) -> None:
    process = start_server(tmp_path / "s")
    try:
        assert process.stdout is not None
        found = re.search(r"http://127\.0\.0\.1:\d+/", process.stdout.readline())
        assert found, "no URL line"
        url = found.group(0)
        # No retry: the URL was printed after the socket listens (it was printed after bind
        # only, and a client connecting at once was refused).
        with urllib.request.urlopen(url, timeout=30) as page:
            assert page.status == 200
        first_view = threading.Event()
        ended: list[object] = []

        def open_page() -> None:  # a browser tab's live stream, kept open
            with urllib.request.urlopen(url + "events", timeout=60) as stream:
                assert stream.readline().startswith(b"data: ")
                first_view.set()
                ended.append(stream.read())  # until the server ends the stream

        reader = threading.Thread(target=open_page, daemon=True)
        reader.start()
        assert first_view.wait(30)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
        reader.join(30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    # A stream cancelled by the shutdown was logged with its traceback; now it ends first.
    assert "Traceback" not in err and "ERROR" not in err, err
    assert ended == [b"\n"]  # the rest of the first event, then the end of the stream


def test_ctrl_c_pressed_twice_is_clean(tmp_path: Path) -> None:
    """A second Ctrl-C right after the first cancelled uvicorn's lifespan task, which it
    logged with its traceback (the app has no lifespan: it is off)."""
    process, _port = _started(tmp_path / "s")
    try:
        time.sleep(0.3)
        process.send_signal(signal.SIGINT)
        time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    assert "Traceback" not in err and "ERROR" not in err, err


def _started(store: Path, *more: str) -> tuple[subprocess.Popen[str], int]:
    process = start_server(store, *more)
    assert process.stdout is not None
    found = re.search(r"http://[0-9.]+:(\d+)/", process.stdout.readline())
    assert found, "no URL line"
    return process, int(found.group(1))


def _stopped(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    return err


def _post(port: int, path: str, body: bytes) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=body,
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read())


BAD_BODIES = [
    ("/api/messages", b"[" * 10_000, "not JSON"),  # nested too deeply to read
    ("/api/messages", b'{"author": "alice", "body": "x"', "not JSON"),
    ("/api/messages", b'{"author": "alice", "body": "\\ud800"}', "not JSON"),
    ("/api/messages", b"[1]", "not a JSON object"),
    ("/api/messages", b'{"author": "alice", "body": null}', "'body' must be a string"),
    ("/api/messages", b'{"author": "alice", "body": {"a": 1}}', "'body' must be a string"),
    ("/api/messages", b'{"author": "alice", "body": "\\n\\t"}', "CHECK constraint failed"),
    ("/api/users/alice/name", b'{"name": false}', "'name' must be a string"),
    ("/api/users/alice/name", b'{"name": "' + b"n" * 101 + b'"}', "at most 100 characters"),
]


def test_bad_requests_are_refused_with_a_reason_and_store_nothing(tmp_path: Path) -> None:
    """Every malformed or mistyped request is a 400 saying why (never a 500 and a traceback in
    the server's log, never a value stored as Python's text for it), and a client that leaves
    before its body arrived is no error of the server's."""
    process, port = _started(tmp_path / "s")
    try:
        for path, body, why in BAD_BODIES:
            status, answer = _post(port, path, body)
            assert status == 400 and why in str(answer["error"]), (body[:40], answer)
        # A body over the bound is refused as it arrives (413), not read whole into memory.
        huge = b'{"author": "alice", "body": "' + b"x" * 5_000_000 + b'"}'
        for path in ("/api/messages", "/api/users/alice/name"):
            status, answer = _post(port, path, huge)
            assert status == 413 and "over 16,384 bytes" in str(answer["error"]), answer
        with socket.create_connection(("127.0.0.1", port)) as gone:
            gone.sendall(
                f"POST /api/messages HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n".encode()
                + b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
                + b'{"author": '
            )
        assert _post(port, "/api/messages", b'{"author": "bob", "body": " hi\\n"}')[0] == 200
    finally:
        err = _stopped(process) if process.poll() is None else ""
    assert "Traceback" not in err and "ERROR" not in err, err
    with sc.Runtime(tmp_path / "s") as rt:
        db = rt.space("web").sqlite_database("chat", tables=TABLES)
        assert db.read("SELECT body FROM messages") == [{"body": "hi"}]
        assert rt.space("web").cell("posts").get() == 1


def _asked(port: int, method: str, path: str, headers: dict[str, str], body: bytes = b"") -> int:
    """The status of a request made with exactly these headers (``Host`` among them)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(method, path, body=body or None, headers=headers)
        answer = connection.getresponse()
        answer.read()
        return answer.status
    finally:
        connection.close()


def test_requests_another_site_may_make_are_refused_and_store_nothing(tmp_path: Path) -> None:
    """A page of another site could post and rename (CSRF: a "simple" request, text/plain with
    its Origin, needs no preflight), and a name of another site made to point at the server
    (DNS rebinding) could read ``/events``. A POST that is not application/json is refused
    (415), one whose Origin is another site's too (403), and any request whose Host is not the
    address served (421); the page's own requests are answered."""
    process, port = _started(tmp_path / "s")
    here = f"127.0.0.1:{port}"
    message = b'{"author": "alice", "body": "posted by another site"}'
    renamed = b'{"name": "pwned"}'
    evil = "https://evil.example"
    try:
        for path, body in (("/api/messages", message), ("/api/users/bob/name", renamed)):
            for kind in ("text/plain", "application/x-www-form-urlencoded", ""):
                headers = {"Host": here, "Origin": evil} | ({"Content-Type": kind} if kind else {})
                assert _asked(port, "POST", path, headers, body) == 415, (path, kind)
            headers = {"Host": here, "Origin": evil, "Content-Type": "application/json"}
            assert _asked(port, "POST", path, headers, body) == 403, path
            headers = {"Host": "attacker.example", "Content-Type": "application/json"}
            assert _asked(port, "POST", path, headers, body) == 421, path
        for path in ("/", "/events"):
            assert _asked(port, "GET", path, {"Host": f"attacker.example:{port}"}) == 421, path
        # The page's own requests: its Origin, or none; the address printed, or localhost.
        own = {"Host": here, "Origin": f"http://{here}", "Content-Type": "application/json"}
        assert _asked(port, "POST", "/api/messages", own, b'{"author": "bob", "body": "a"}') == 200
        local = {"Host": f"localhost:{port}", "Content-Type": "application/json; charset=utf-8"}
        assert (
            _asked(port, "POST", "/api/messages", local, b'{"author": "bob", "body": "b"}') == 200
        )
        assert _asked(port, "GET", "/", {"Host": here}) == 200
    finally:
        err = _stopped(process)
    assert "Traceback" not in err and "ERROR" not in err, err
    with sc.Runtime(tmp_path / "s") as rt:
        space = rt.space("web")
        db = space.sqlite_database("chat", tables=TABLES)
        assert db.read("SELECT body FROM messages ORDER BY id") == [{"body": "a"}, {"body": "b"}]
        assert space.cell("posts").get() == 2
        assert space.cell("bob").get() is None  # never renamed


def test_a_page_that_does_not_read_holds_one_view_and_ctrl_c_is_still_clean(
    tmp_path: Path,
) -> None:
    """A page whose socket is full holds one view at most in the server (the newest), and
    Ctrl-C does not log the stream the shutdown had to cancel as an error of the app's (a
    traceback): uvicorn says it cut the page, which it did."""
    process, port = _started(tmp_path / "s")
    try:
        slow = socket.socket()
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before the window is set
        slow.connect(("127.0.0.1", port))
        slow.sendall(f"GET /events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        rss = []
        for i in range(450):  # each view carries up to 50 messages of 500 characters (25 KB)
            body = json.dumps({"author": "alice", "body": f"{i:03d}" + "x" * 497}).encode()
            assert _post(port, "/api/messages", body)[0] == 200
            if i in (99, 449):
                rss.append(_rss_mib(process.pid))
        time.sleep(0.5)  # the views reach the page's stream, which is stuck sending
        # Every view kept for the page would be ≈ 8.5 MiB for the last 350 (it was so).
        assert rss[1] - rss[0] < 5, rss
    finally:
        err = _stopped(process) if process.poll() is None else ""
    slow.close()
    assert "Traceback" not in err and "Exception in ASGI application" not in err, err
    assert "timeout graceful shutdown exceeded" in err  # the page it had to cut


def _rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    found = re.search(r"VmRSS:\s+(\d+) kB", status)
    assert found
    return int(found.group(1)) / 1024


@pytest.mark.parametrize(
    ("args", "code", "said"),
    [
        (["--port", "99999"], 2, "a port is 0 to 65535, not 99999"),
        (["--port", "-1"], 2, "a port is 0 to 65535, not -1"),
        (["--host", "nosuch.invalid"], 1, "give an address or a name this machine resolves"),
        (["--host", "192.0.2.1", "--port", "0"], 1, "this machine has no such address"),
    ],
)
def test_a_bad_host_or_port_is_one_line_with_the_right_advice(
    tmp_path: Path, args: list[str], code: int, said: str
) -> None:
    """A port out of range was a traceback (OverflowError); a host this machine does not have,
    or that does not resolve, was told to choose another port."""
    done = subprocess.run(
        [sys.executable, "-m", "examples.web", "--store", str(tmp_path / "s"), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == code, done.stderr
    assert said in done.stderr and "Traceback" not in done.stderr
    assert "--port N" not in done.stderr  # the port was never the problem here
    assert not (tmp_path / "s").exists()  # nothing opened


def test_every_view_pushed_is_the_view_of_one_commit(tmp_path: Path) -> None:
    """R54 ("Commit, then react"): the view pushed to pages paired the ``posts`` counter's
    latest value with the live query's last result, whose re-run for the same commit had not
    landed yet: a page showed "12 post(s)" over 11 messages. Posts and renames are committed
    one after the other, and every view pushed shows the counter with the messages and the
    names of one commit."""
    from examples.web.app import USERS, Chat, post, rename

    with sc.Runtime(tmp_path / "s") as rt:
        chat = Chat(rt)
        views: list[dict[str, Any]] = []
        chat.listen(lambda view: views.append(json.loads(view)))
        alice = chat.users["alice"]
        for n in range(1, 21):
            post(f"m{n}", author=alice, db=chat.db, posts=chat.posts)
            rename(f"Alice{n}", user=alice)
        assert rt.settle(60)
        chat.close()
    assert views, "no view pushed"
    for view in views:
        posts, messages = view["posts"], view["messages"]
        # Each post is one message and one bump of the counter, in one commit.
        assert [m["body"] for m in messages] == [f"m{n}" for n in range(1, posts + 1)], view
        # The rename after post n is the commit after it: its name is Alice{n} or Alice{n-1}.
        (name,) = [u["name"] for u in view["users"] if u["key"] == "alice"]
        assert name in {f"Alice{posts}", f"Alice{posts - 1}" if posts > 1 else USERS["alice"]}
        assert {m["author"] for m in messages} <= {name}, view
    assert (views[-1]["posts"], len(views[-1]["messages"])) == (20, 20)


def test_a_server_bound_to_every_interface_answers_its_addresses_not_other_names(
    tmp_path: Path,
) -> None:
    """Bound to 0.0.0.0, the server is opened by any of the machine's addresses: a Host that
    is an IP address is answered, a name is not (another site's name may point anywhere)."""
    process, port = _started(tmp_path / "s", "--host", "0.0.0.0")
    try:
        for host in (f"127.0.0.1:{port}", f"0.0.0.0:{port}", f"127.0.0.2:{port}"):
            assert _asked(port, "GET", "/", {"Host": host}) == 200, host
        for host in (f"attacker.example:{port}", f"127.0.0.1:{port + 1}", "127.0.0.1"):
            assert _asked(port, "GET", "/", {"Host": host}) == 421, host
        own = {"Host": f"127.0.0.1:{port}", "Origin": f"http://127.0.0.1:{port}"}
        own["Content-Type"] = "application/json"
        assert _asked(port, "POST", "/api/messages", own, b'{"author": "bob", "body": "a"}') == 200
        other = own | {"Origin": f"http://127.0.0.2:{port}"}
        assert (
            _asked(port, "POST", "/api/messages", other, b'{"author": "bob", "body": "b"}') == 403
        )
    finally:
        err = _stopped(process)
    assert "Traceback" not in err and "ERROR" not in err, err


def test_a_post_to_a_store_whose_posts_cell_is_not_a_count_is_refused_and_stores_nothing(
    tmp_path: Path,
) -> None:
    """A store holding another program's value in the chat's ``posts`` cell: a post failed with
    a raw ``TypeError`` in the handler (a 500, its traceback in the server's log). It is a 400
    saying what the cell holds and what to do, and nothing is written."""
    store = tmp_path / "s"
    with sc.Runtime(store) as rt, rt.space("web").transact():
        rt.space("web").cell("posts").set("many")
    process, port = _started(store)
    try:
        status, answer = _post(port, "/api/messages", b'{"author": "alice", "body": "hi"}')
    finally:
        err = _stopped(process) if process.poll() is None else ""
    assert status == 400, answer
    assert "holds 'many', not the chat's count of posts" in str(answer["error"]), answer
    assert "another store" in str(answer["error"]), answer
    assert "Traceback" not in err and "ERROR" not in err, err
    with sc.Runtime(store) as rt:
        db = rt.space("web").sqlite_database("chat", tables=TABLES)
        assert (db.rev, db.read("SELECT body FROM messages")) == (0, [])
        assert rt.space("web").cell("posts").get() == "many"


def test_a_failing_live_query_is_shown_as_its_error_not_as_an_empty_chat(tmp_path: Path) -> None:
    """A ``chat`` database of another schema (its ``body`` column missing) makes the live query
    fail: the view pushed to pages showed an empty chat, the error nowhere. The view carries the
    query's error (and the page shows it)."""
    from examples.web.app import Chat

    store = tmp_path / "s"
    with sc.Runtime(store) as rt:
        space = rt.space("web")
        other = space.sqlite_database(
            "chat", tables={"messages": sc.table(id="integer primary key", txt="text")}
        )
        with space.transact():
            other.exec("INSERT INTO messages (txt) VALUES ('x')")
    with sc.Runtime(store) as rt:
        chat = Chat(rt)
        assert rt.settle(60)
        view = json.loads(chat.listen(lambda _view: None))
        chat.close()
    assert view["messages"] == [] and view["pending"] is False, view
    assert view["error"].startswith("QueryError: "), view
    assert "'body'" in view["error"], view
    assert "not live" in (ROOT / "examples" / "web" / "index.html").read_text()


def test_a_posts_cell_holding_a_link_does_not_stop_the_server_from_starting(
    tmp_path: Path,
) -> None:
    """A store whose ``posts`` cell holds a link (another program's value): the view could not
    be encoded (a raw ``TypeError`` from ``msgspec``), so the server stopped at start with a
    traceback. The view shows such a counter as ``null``, and the server serves its pages."""
    store = tmp_path / "s"
    with sc.Runtime(store) as rt:
        space = rt.space("web")
        with space.transact():
            space.cell("posts").set(space.cell("bob"))
    process, port = _started(store)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/events", timeout=30) as stream:
            first = stream.readline()
    finally:
        err = _stopped(process) if process.poll() is None else ""
    assert first.startswith(b"data: "), first
    view = json.loads(first[len(b"data: ") :])
    assert (view["posts"], view["messages"], view["error"]) == (None, [], None), view
    assert "Traceback" not in err and "ERROR" not in err, err


def test_sigterm_with_a_page_open_stops_the_server_and_closes_its_runtime(tmp_path: Path) -> None:
    """``kill`` (SIGTERM): uvicorn stopped gracefully, then raised the signal again with the
    default handler back in place, so the process was killed (status -15) before its runtime
    closed, its files' ``-wal``/``-shm`` left in the store. It stops as Ctrl-C does: status 0,
    the runtime closed (nothing left beside the store's files), what it committed kept."""
    store = tmp_path / "s"
    process, port = _started(store)
    try:
        assert _post(port, "/api/messages", b'{"author": "bob", "body": "hi"}') == (200, {"seq": 1})
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/events", timeout=30) as stream:
            assert stream.readline().startswith(b"data: ")  # a page open, its stream live
            process.send_signal(signal.SIGTERM)
            _, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    assert "Traceback" not in err and "ERROR" not in err, err
    assert not [p.name for p in store.iterdir() if p.name.endswith(("-wal", "-shm"))]
    with sc.Runtime(store) as rt:
        db = rt.space("web").sqlite_database("chat", tables=TABLES)
        assert db.read("SELECT body FROM messages") == [{"body": "hi"}]
