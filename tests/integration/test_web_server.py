"""The web example's server as a script drives it, without a browser: its URL line means the
socket already listens, and Ctrl-C with a page open (a live event stream) stops it cleanly."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("uvicorn", reason="the web example needs the dev dependencies")

ROOT = Path(__file__).resolve().parents[2]


def start_server(store: Path) -> subprocess.Popen[str]:
    """``python -m examples.web`` on ``store``, any free port, its output piped."""
    env = {k: v for k, v in os.environ.items() if k != "SQLITE_CELLS_STORE"}
    return subprocess.Popen(
        [sys.executable, "-m", "examples.web", "--store", str(store), "--port", "0"],
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
