"""Ctrl-C that the operating system hands to another thread of the process (§3, a notebook's
interrupt): CPython notes it there, and the main thread raises ``KeyboardInterrupt`` only when it
next runs Python. A ``db.read`` or ``rt.settle()`` blocked in one long wait raised it only when
the wait ended — the whole ``query_timeout`` later, or never (a notebook cell hung). They wait in
short slices now, so the interrupt is raised within one."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

CHILD = textwrap.dedent(
    """
    import signal, sys, threading, time
    import sqlite_cells as sc

    def interrupt_from_another_thread():
        time.sleep(0.5)
        signal.pthread_kill(threading.get_ident(), signal.SIGINT)  # this thread, not main

    with sc.Runtime(sys.argv[1], query_timeout=60) as rt:
        space = rt.space("s")
        db = space.sqlite_database("d", tables={"t": sc.table(v="integer")})
        for what in ("read", "settle"):
            threading.Thread(target=interrupt_from_another_thread).start()
            started = time.monotonic()
            try:
                if what == "read":
                    db.read("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) "
                            "SELECT count(*) FROM n")
                else:
                    q = db.query("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 "
                                 "FROM n) SELECT count(*) FROM n")
                    rt.settle()
                print(what, "not interrupted")
            except KeyboardInterrupt:
                print(what, "interrupted after", round(time.monotonic() - started, 1))
    """
)


def test_ctrl_c_handed_to_another_thread_interrupts_a_read_and_a_settle(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path / "store")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line.split()[:2] for line in lines] == [
        ["read", "interrupted"],
        ["settle", "interrupted"],
    ]
    for line in lines:
        assert float(line.split()[-1]) < 5, line  # within a slice, not query_timeout (60 s)
