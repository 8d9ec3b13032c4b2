"""The live chat web app (examples/web) in two headless Chromium pages.

The server runs in a subprocess on a free loopback port; the browser is Debian's ``chromium``
(installed by ``make test`` where it can be), driven by Playwright without any browser download.
Waiting is Playwright's: each expectation polls the page until it holds (5 s at most), and a
page that had to be reloaded would lose the marker set on it at the start.
"""

from __future__ import annotations

import importlib
import re
import selectors
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import sqlite_cells as sc
from sqlite_cells.cli._catalog import list_cells
from sqlite_cells.cli._inspect import query_store
from sqlite_cells.codec import derive_id

from .test_web_server import start_server

playwright_api = pytest.importorskip(
    "playwright.sync_api", reason="Playwright is in the dev extra: `make test` installs it"
)
Page = playwright_api.Page
expect = playwright_api.expect

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
POSTS = derive_id("cell", "web", "posts")

if not CHROMIUM.is_file():
    pytest.skip(
        f"no Chromium at {CHROMIUM}: `make test` installs Debian's chromium package when run as "
        "root on a machine with apt; install it (`apt-get install chromium`) to run this test",
        allow_module_level=True,
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """The app on 127.0.0.1, any free port, on a fresh store: (its URL, the store)."""
    store = tmp_path_factory.mktemp("web") / "store"
    process = start_server(store)
    try:
        assert process.stdout is not None
        # The URL is printed once the socket listens; a server that never gets there fails the
        # test instead of hanging it.
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            ready = selector.select(timeout=60)
        line = process.stdout.readline() if ready else ""
        found = re.search(r"http://127\.0\.0\.1:\d+/", line)
        assert found, (
            f"no URL from the server: {line!r} {process.stderr.read() if process.stderr else ''}"
        )
        yield found.group(0), store
    finally:
        process.send_signal(signal.SIGINT)
        try:
            _, err = process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            raise
    assert "Traceback" not in err, err


@pytest.fixture(scope="module")
def pages(server: tuple[str, Path]) -> Iterator[tuple[Page, Page]]:
    """Two pages of one headless Chromium (Playwright gives it a fresh profile directory), each
    in its own browser context, as two people would have: a page of a context is never a
    background tab, whose timers Chromium throttles."""
    url, _ = server
    with playwright_api.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=FLAGS)
        try:
            first, second = browser.new_page(), browser.new_page()
            for page in (first, second):
                page.goto(url)
                expect(page.locator("#status")).to_contain_text("live")
                page.evaluate("window.notReloaded = true")
            yield first, second
            for page in (first, second):
                assert page.evaluate("window.notReloaded") is True  # no page was reloaded
        finally:
            browser.close()


def _store_state(store: Path) -> tuple[Any, Any]:
    """(the messages table, the posts counter) as the store holds them."""
    rows = query_store(store, "web", "chat", "SELECT id, body FROM messages ORDER BY id").rows
    (posts,) = [c.value for c in list_cells(store) if c.id == POSTS]
    return rows, posts


def test_a_message_posted_in_one_tab_appears_in_the_other(pages: tuple[Page, Page]) -> None:
    first, second = pages
    first.select_option("#author", "alice")
    first.fill("#body", "Hello from the first tab")
    first.click("#send")
    for page in (first, second):
        item = page.locator("#messages li").last
        expect(item.locator(".author")).to_have_text("Alice")  # the link shown as its cell's name
        expect(item.locator(".body")).to_have_text("Hello from the first tab")
    second.select_option("#author", "bob")
    second.fill("#body", "And a reply from the second")
    second.click("#send")
    for page in (first, second):
        expect(page.locator("#messages li .author")).to_have_text(["Alice", "Bob"])
        expect(page.locator("#status")).to_contain_text("2 post(s)")


def test_a_rename_reaches_every_tab(pages: tuple[Page, Page]) -> None:
    first, second = pages
    first.select_option("#author", "alice")
    first.fill("#body", "signed by alice")
    first.click("#send")
    for page in (first, second):
        expect(page.locator("#messages li .body").last).to_have_text("signed by alice")
    second.select_option("#user", "alice")
    second.fill("#name", "Alicia")
    second.click("#rename-button")
    # The rename writes the user cell only (the query does not re-run, R52); every message
    # linked to alice shows the new name, in both pages, and so do the pickers.
    for page in (first, second):
        expect(page.locator("#messages li .author").last).to_have_text("Alicia")
        expect(page.locator("#author option[value=alice]")).to_have_text("Alicia")
        assert "Alice" not in page.locator("#messages li .author").all_text_contents()
    expect(second.locator("#error")).to_have_text("")


def test_a_commit_by_another_runtime_reaches_every_page(
    pages: tuple[Page, Page], server: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # R53: the server's runtime sees commits made by any runtime on its store; the pages hear
    # of them like of their own.
    monkeypatch.syspath_prepend(str(ROOT))
    app = importlib.import_module("examples.web.app")
    _, store = server
    with sc.Runtime(store) as rt:
        space = rt.space(app.SPACE)
        db = space.sqlite_database("chat", tables=app.TABLES)
        app.post(
            "from another runtime",
            author=space.cell("bob"),
            db=db,
            posts=space.cell("posts", default=0),
        )
    for page in pages:
        item = page.locator("#messages li").last
        expect(item.locator(".body")).to_have_text("from another runtime")
        expect(item.locator(".author")).to_have_text("Bob")


def test_a_failed_write_shows_an_error_and_changes_nothing(
    pages: tuple[Page, Page], server: tuple[str, Path]
) -> None:
    first, second = pages
    _, store = server
    first.fill("#body", "before the failures")
    first.click("#send")
    for page in (first, second):
        expect(page.locator("#messages li .body").last).to_have_text("before the failures")
    before = _store_state(store)
    shown = first.locator("#messages li").count()
    seq = second.locator("#status").get_attribute("data-seq")
    # Refused by the table's CHECK constraint when the commit runs: the counter bump of the
    # same transaction is rolled back with it.
    first.fill("#body", "   ")
    first.click("#send")
    expect(first.locator("#error")).to_contain_text("Not saved: ExecError")
    expect(first.locator("#error")).to_contain_text("CHECK constraint failed")
    # Refused by the handler before anything is recorded.
    first.fill("#body", "x" * 501)
    first.click("#send")
    expect(first.locator("#error")).to_contain_text("at most 500 characters")
    # A rename to nothing is refused too.
    first.fill("#name", " ")
    first.click("#rename-button")
    expect(first.locator("#error")).to_contain_text("a name cannot be empty")
    # Nothing moved: not the store, not the pages.
    assert _store_state(store) == before
    assert before[1] == len(before[0]) == shown  # one post per row: no counter bump slipped in
    for page in (first, second):
        expect(page.locator("#messages li")).to_have_count(shown)
        assert page.locator("#status").get_attribute("data-seq") == seq
    # The pages are still live: the next write reaches both and clears the error.
    first.fill("#body", "still here")
    first.click("#send")
    for page in (first, second):
        expect(page.locator("#messages li .body").last).to_have_text("still here")
    expect(first.locator("#error")).to_have_text("")
    assert _store_state(store)[1] == before[1] + 1
