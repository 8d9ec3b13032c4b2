"""examples/notebook.ipynb runs on a real Jupyter kernel (ipykernel) and shows what it says."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

import sqlite_cells as sc

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "examples" / "notebook.ipynb"
KERNEL = "sqlite-cells-test"


@pytest.fixture
def kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A kernelspec that runs ipykernel with this interpreter (the venv's), found first on
    JUPYTER_PATH, so no kernel needs installing by hand and no user kernel can stand in."""
    spec = tmp_path / "jupyter" / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "sqlite-cells tests",
                "language": "python",
            }
        )
    )
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    # The kernel runs in another directory: it imports this checkout's packages, not whichever
    # one the virtualenv's editable install points at.
    paths = [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(paths))
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")  # the future default; silences a warning
    monkeypatch.delenv("SQLITE_CELLS_STORE", raising=False)
    return KERNEL


def _text(output: dict[str, Any], mime: str) -> str:
    data = output.get("data", {}).get(mime, "")
    return "".join(data) if isinstance(data, list) else str(data)


def _outputs(cell: Any, kind: str) -> list[dict[str, Any]]:
    return [o for o in cell.outputs if o["output_type"] == kind]


def test_the_notebook_runs_and_renders_live_tables(kernel: str, tmp_path: Path) -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        nb,
        kernel_name=kernel,
        timeout=60,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()
    code = [c for c in nb.cells if c.cell_type == "code"]
    for cell in code:
        assert not _outputs(cell, "error"), cell.source

    # q.display(): one display output, shown before any row existed and replaced in place
    # (update_display_data from the scheduler thread) after the handler's commits.
    (display_cell,) = [c for c in code if "latest.display()" in c.source]
    (shown,) = _outputs(display_cell, "display_data")
    html = _text(shown, "text/html")
    assert "<th>id</th><th>author</th><th>body</th>" in html
    assert "<td>Hello from a notebook</td>" in html and "<td>Hi Alice!</td>" in html
    assert "seq 4, 2 row(s)" in html

    # A QueryState as a cell's result renders as an HTML table too.
    (post_cell,) = [c for c in code if "def post(" in c.source]
    (result,) = _outputs(post_cell, "execute_result")
    html = _text(result, "text/html")
    assert html.startswith('<table class="sqlite-cells-query">')
    assert "<td>Hi Alice!</td>" in html and "Cell of:" in html
    assert "QueryState(pending=False" in _text(result, "text/plain")

    (typed_cell,) = [c for c in code if "first = latest.get()" in c.source]
    (typed,) = _outputs(typed_cell, "execute_result")
    assert _text(typed, "text/plain") == "(True, 'Alicia', True)"

    # A Cell shows which cell it is.
    (repr_cell,) = [c for c in code if c.source == "alice"]
    (shown_cell,) = _outputs(repr_cell, "execute_result")
    assert "Cell" in _text(shown_cell, "text/plain")
    assert "of:" in _text(shown_cell, "text/plain")

    # Linked cells read back as their values.
    (linked_cell,) = [c for c in code if "m.author.get()" in c.source]
    (linked,) = _outputs(linked_cell, "execute_result")
    assert _text(linked, "text/plain") == (
        "[({'name': 'Alicia'}, 'Hello from a notebook'), ({'name': 'Bob'}, 'Hi Alice!')]"
    )

    (rollback_cell,) = [c for c in code if "sc.ExecError" in c.source]
    stdout = "".join(o["text"] for o in _outputs(rollback_cell, "stream"))
    assert "ExecError: database" in stdout and "UNIQUE constraint failed" in stdout
    (counter,) = _outputs(rollback_cell, "execute_result")
    assert _text(counter, "text/plain") == "21"

    last = "".join(o["text"] for o in _outputs(code[-1], "stream"))
    assert last == "all checks passed\n"


class Row:
    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return f"Row({self.text!r})"


def test_query_state_html_escapes_everything_and_shows_state() -> None:
    state = sc.QueryState(
        pending=False,
        result=[{"id": 1, "body": "<b>&</b>", "blob": b"xy", "none": None}, {"id": 2}],
        error=None,
        seq=7,
    )
    html = state._repr_html_()
    assert "<caption>QueryState: seq 7, 2 row(s)</caption>" in html
    assert "<th>id</th><th>body</th><th>blob</th><th>none</th>" in html
    assert "<td>&lt;b&gt;&amp;&lt;/b&gt;</td><td>&lt;2 bytes&gt;</td><td>NULL</td>" in html
    assert "<tr><td>2</td><td></td><td></td><td></td></tr>" in html  # missing columns stay empty
    assert "<b>" not in html


def test_query_state_html_tells_null_from_text_and_escapes_control_characters(
    tmp_path: Path,
) -> None:
    """The HTML table showed SQL NULL and the text 'NULL' alike, and wrote a NUL or an escape
    character raw into the page. It shows values as the text table does: NULL bare, a text that
    would read as something else quoted, its control characters escaped; a column name too."""
    with sc.Runtime(tmp_path) as rt:
        space = rt.space("s")
        db = space.sqlite_database("d", tables={"t": sc.table(id="integer primary key", s="text")})
        with space.transact():
            db.exec(
                "INSERT INTO t (id, s) VALUES (1, NULL), (2, 'NULL'), (3, ?), (4, 'ab'), (5, ?)",
                ["a\x00b", "x\x1b[2Jy"],
            )
        q = db.query('SELECT id, s AS "s\x07" FROM t ORDER BY id')
        rt.settle()
        html = q.get()._repr_html_()
    cells = re.findall(r"<td>(.*?)</td><td>(.*?)</td>", html)
    assert cells == [
        ("1", "NULL"),
        ("2", "&#x27;NULL&#x27;"),
        ("3", "&#x27;a\\x00b&#x27;"),
        ("4", "ab"),
        ("5", "&#x27;x\\x1b[2Jy&#x27;"),
    ]
    assert "<th>id</th><th>s\\x07</th>" in html
    assert not any(c in html for c in "\x00\x07\x1b")


def test_query_state_html_pending_and_error() -> None:
    error = sc.QueryError("of:x", "SELECT <1>", "boom & bust")
    html = sc.QueryState(pending=True, result=None, error=error, seq=3)._repr_html_()
    assert "<caption>QueryState: pending, seq 3, no rows</caption>" in html
    assert "<tbody></tbody>" in html
    assert "QueryError: database of:x: boom &amp; bust in &#x27;SELECT &lt;1&gt;&#x27;" in html


def test_rows_of_other_types_render_as_one_value_column() -> None:
    html = sc.QueryState(pending=False, result=[Row("<a>")], seq=1)._repr_html_()
    assert "<th>value</th>" in html and "<td>Row(&#x27;&lt;a&gt;&#x27;)</td>" in html


TERMINAL_DISPLAY = """
import sqlite_cells as sc
rt = sc.Runtime({store!r})
space = rt.space("s")
db = space.sqlite_database("d", tables={{"t": sc.table(id="integer primary key")}})
q = db.query("SELECT id FROM t")
rt.settle()
d = q.display()
print("handle:", d)
for i in range(3):
    with space.transact():
        db.exec("INSERT INTO t (id) VALUES (?)", [i])
    rt.settle()
rt.close()
print("done")
"""


def test_display_in_terminal_ipython_prints_once(tmp_path: Path) -> None:
    """Terminal IPython has no notebook front end: ``q.display()`` printed the whole state again
    after every commit, from the scheduler thread, and its handle said ``live``. As its
    docstring says, outside a notebook kernel it prints the state once, and the handle updates
    nothing."""
    pytest.importorskip("IPython")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "IPYTHONDIR": str(tmp_path / "ipython")}
    code = TERMINAL_DISPLAY.format(store=str(tmp_path / "store"))
    done = subprocess.run(
        [sys.executable, "-m", "IPython", "--no-banner", "--colors=NoColor", "-c", code],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "QueryState(pending=False, result=[], error=None, seq=0)",
        "handle: <QueryDisplay stopped>",
        "done",
    ], done.stdout


def test_display_outside_ipython_prints_instead(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with sc.Runtime(tmp_path) as rt:
        db = rt.space("s").sqlite_database("d", tables={"t": sc.table(x="integer")})
        q = db.query("SELECT x FROM t")
        rt.settle()
        q.display()  # no IPython shell: IPython's display prints the state and returns
    assert "QueryState(pending=False, result=[], error=None, seq=0)" in capsys.readouterr().out
    # Closed, nothing would update an output: refused as the other calls that would follow the
    # query anew are (it showed the last state and returned a handle that said "live").
    with pytest.raises(sc.ClosedError, match="closed"):
        q.display()
    assert capsys.readouterr().out == ""
