"""R72, §3: Ctrl-C (a notebook's interrupt) lands anywhere in a commit. One that landed between
attaching a database file to the space's write connection and noting it attached (or between
detaching and noting it) left a file attached that the runtime did not know of: every later
commit to a database of that space failed ("database _cf_db is already in use", with the
advice to check the disk) until the runtime closed. A child process alternates commits between
two databases while a thread interrupts it again and again; once the interrupts stop, commits
to both databases work, and every commit that returned is in the files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import json, os, signal, sys, threading, time
import sqlite_cells as sc

TABLES = {"rows": sc.table(id="integer primary key", v="integer not null")}
done = threading.Event()

def interrupt():
    for i in range(40):
        time.sleep(0.005 + (i * 7 % 13) / 500)
        os.kill(os.getpid(), signal.SIGINT)
    done.set()

committed, failed = [], []
with sc.Runtime(sys.argv[1]) as rt:
    space = rt.space("s")
    dbs = [space.sqlite_database(name, tables=TABLES) for name in ("a", "b")]
    threading.Thread(target=interrupt, daemon=True).start()
    i = 0
    while True:
        try:
            if done.is_set():
                break
            i += 1
            with space.transact():
                dbs[i % 2].exec("INSERT INTO rows (id, v) VALUES (?, ?)", [i, i])
            committed.append(i)
        except KeyboardInterrupt:
            pass
        except sc.SqliteCellsError as exc:
            failed.append(str(exc))
    time.sleep(0.1)  # the last interrupt delivered
    after = []
    for j in range(i + 1, i + 5):
        try:
            with space.transact():
                dbs[j % 2].exec("INSERT INTO rows (id, v) VALUES (?, ?)", [j, j])
            committed.append(j)
            after.append("ok")
        except sc.SqliteCellsError as exc:
            after.append(str(exc))
with sc.Runtime(sys.argv[1]) as rt:
    space = rt.space("s")
    dbs = [space.sqlite_database(name, tables=TABLES) for name in ("a", "b")]
    stored = sorted(r["id"] for db in dbs for r in db.read("SELECT id FROM rows"))
print(json.dumps({"after": after, "failed": failed, "committed": committed, "stored": stored}))
"""


def test_commits_go_on_after_interrupts_between_attach_and_detach(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path / "store")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout)
    assert out["after"] == ["ok"] * 4, out["after"]
    assert out["failed"] == [], out["failed"][:3]
    # Every commit that returned is stored (an interrupted one may be too: it committed).
    assert set(out["committed"]) <= set(out["stored"])


# The first write of a database, with a real SIGINT sent to the process as SQLite is about to
# switch the new database file to WAL (the connection's statement trace; only that statement).
FIRST_WRITE = r"""
import json, os, signal, sys
import apsw
import sqlite_cells as sc

TABLES = {"rows": sc.table(id="integer primary key", v="integer not null")}
sent = []

def trace(_cursor, sql, _bindings):
    if not sent and "_cf_db.journal_mode=WAL" in sql:
        sent.append(sql)
        os.kill(os.getpid(), signal.SIGINT)
    return True

apsw.connection_hooks.append(lambda conn: setattr(conn, "exec_trace", trace))
store = sys.argv[1]
with sc.Runtime(store) as rt:
    space = rt.space("s")
    db = space.sqlite_database("d", tables=TABLES)
    try:
        with space.transact():
            db.exec("INSERT INTO rows (id, v) VALUES (1, 1)")
        outcome = "committed"
    except KeyboardInterrupt:
        outcome = "interrupted"
    left = sorted(os.listdir(store))
    with space.transact():
        db.exec("INSERT INTO rows (id, v) VALUES (2, 2)")
    rows = [r["id"] for r in db.read("SELECT id FROM rows")]
    wal = {
        name[:5]: open(os.path.join(store, name), "rb").read(20)[18:20].hex()
        for name in os.listdir(store) if name.endswith(".sqlite")
    }
print(json.dumps({"sent": sent, "outcome": outcome, "left": left, "rows": rows, "wal": wal}))
"""


def test_ctrl_c_while_a_first_write_sets_up_its_new_file_leaves_no_file(tmp_path: Path) -> None:
    """R7: Ctrl-C landing as the first write of a database switched its new file to WAL left
    that file in the store, blank (0 bytes) and attached half set up: the failed write had not
    noted it as created, so nothing removed it, and `inspect` listed an "unreferenced database
    file". The interrupt now waits until the file is set up and noted: the write is rolled back
    and the store is as before it; the next write creates the file again, in WAL mode."""
    store = tmp_path / "store"
    done = subprocess.run(
        [sys.executable, "-c", FIRST_WRITE, str(store)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout)
    assert out["sent"] == ["PRAGMA _cf_db.journal_mode=WAL"]
    assert (out["outcome"], out["left"]) == ("interrupted", [])
    assert out["rows"] == [2]
    assert out["wal"] == {"cell-": "0202", "space": "0202"}  # (file format versions: WAL)
    listed = subprocess.run(
        [sys.executable, "-m", "sqlite_cells", "inspect", str(store)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert "unreferenced" not in listed.stdout + listed.stderr
