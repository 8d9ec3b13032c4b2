"""`sqlite-cells inspect` lists each space's cells (SPEC §6: "lists spaces, cells, databases,
seqs and watermarks"): names, ids, revs and values, cut to one line each and to the first few
per space in text (`cells` lists them all), whole in JSON; database handles are listed as
databases, not as cells."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import sqlite_cells as sc


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sqlite_cells", *args], capture_output=True, text=True, timeout=120
    )


def test_inspect_lists_the_cells_of_each_space(tmp_path: Path) -> None:
    store = tmp_path / "store"
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("chat", tables={"m": sc.table(body="text")})
        with space.transact():
            space.cell("greeting").set("hello")
            space.cell("long").set("x" * 500)
            space.cell("ref").set(space.cell("greeting"))
            for n in range(25):
                space.cell(f"n{n:02}").set(n)
            db.exec("INSERT INTO m (body) VALUES ('x')")
        greeting = space.cell("greeting").id
    done = _cli("inspect", str(store))
    assert done.returncode == 0, done
    lines = done.stdout.splitlines()
    assert f"  cell 'greeting' ({greeting}) rev 1: \"hello\"" in lines
    long_line = next(line for line in lines if "'long'" in line)
    assert long_line.endswith("…") and len(long_line) < 250
    assert sum(line.startswith("  cell ") for line in lines) == 20
    assert "  … and 8 more cell(s): `sqlite-cells cells --space=demo` lists them all" in lines
    assert not any(line.startswith("  cell 'chat'") for line in lines)  # a database, below
    data = json.loads(_cli("inspect", "--json", str(store)).stdout)
    (space_data,) = data["spaces"]
    values = {c["name"]: c["value"] for c in space_data["cell_values"]}
    assert len(values) == 28 and "chat" not in values
    assert values["greeting"] == "hello" and values["long"] == "x" * 500
    assert values["ref"]["cell"] == greeting


def test_the_command_it_suggests_quotes_and_escapes_the_space_id(tmp_path: Path) -> None:
    """The space id is the caller's text: in the suggested command it is quoted for a shell
    (``sp ace;x`` pasted bare would run ``x``) and escaped (a newline or an escape sequence
    would break the line or move the cursor)."""
    store = tmp_path / "store"
    with sc.Runtime(store) as rt:
        for name in ("sp ace;x", "evil\n\x1b[2J"):
            space = rt.space(name)
            with space.transact():
                for n in range(21):
                    space.cell(f"n{n:02}").set(n)
    done = _cli("inspect", str(store))
    assert done.returncode == 0, done
    assert "\x1b" not in done.stdout
    more = [line for line in done.stdout.splitlines() if "more cell(s)" in line]
    assert more == [
        "  … and 1 more cell(s): `sqlite-cells cells --space='evil\\n\\x1b[2J'` lists them all",
        "  … and 1 more cell(s): `sqlite-cells cells --space='sp ace;x'` lists them all",
    ]
    listed = _cli("cells", "--space=sp ace;x", str(store))
    assert listed.returncode == 0 and listed.stdout.count("\n") >= 21, listed


def test_a_cell_holding_the_text_of_a_link_is_listed_as_that_text(tmp_path: Path) -> None:
    """R6, §6: a cell's value tells its links from its strings — a string that happens to be
    a link's stored text is a string (``get()`` returns it as one), and is listed as one; the
    link beside it is listed by what it names."""
    store = tmp_path / "store"
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        alice = space.cell("alice")
        with space.transact():
            alice.set({"name": "Alice"})
            space.cell("real").set(alice)
            space.cell("text").set(alice.link_str())
            space.cell("inside").set({"who": alice.link_str(), "ref": alice})
        text = alice.link_str()
        assert space.cell("text").get() == text
    done = _cli("cells", "--store", str(store), "--json")
    assert done.returncode == 0, done
    values = {row["name"]: row["value"] for row in json.loads(done.stdout)}
    assert values["text"] == text
    assert values["real"]["name"] == "alice" and values["real"]["path"] == []
    assert values["inside"]["who"] == text and values["inside"]["ref"]["name"] == "alice"
    lines = _cli("cells", "--store", str(store)).stdout.splitlines()
    (real,) = [line for line in lines if " real " in line]
    (shown,) = [line for line in lines if " text " in line]
    assert real.rstrip().endswith("→ alice") and "→" not in shown, (real, shown)


def test_a_link_into_another_space_says_which_in_text_and_csv(tmp_path: Path) -> None:
    """§6: links are shown by what they name. A cell named `x` in another space is another cell,
    and text and CSV showed a link to it as one to this space's `x`. They name its space; a
    link within the space is shown as before."""
    store = tmp_path / "store"
    with sc.Runtime(store) as rt:
        home, other = rt.space("s"), rt.space("other")
        with other.transact():
            other.cell("x").set("in other")
        with home.transact():
            home.cell("x").set("in s")
            home.cell("a").set([home.cell("x"), other.cell("x")])
    for fmt in ([], ["--csv"]):
        done = _cli(*fmt, "cells", str(store), "--space", "s")
        assert done.returncode == 0, done.stderr
        line = next(line for line in done.stdout.splitlines() if "x (in space" in line)
        assert "→ x" in line and "→ x (in space 'other')" in line, line
        assert "(in space 's')" not in done.stdout
