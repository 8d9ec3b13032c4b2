"""A disk source's pin is recorded in its handle and checked in every process (R60, R73)."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
import weakref
from pathlib import Path
from typing import Any

import apsw
import msgspec
import pytest

import sqlite_cells as sc
from sqlite_cells.files import handle_value

from ..conftest import run_cli

ROOT = Path(__file__).resolve().parents[2]


@sc.pattern
def count_codes(ref: sc.SqliteDb) -> Any:
    return ref.query("SELECT count(*) AS n FROM codes")


def _reference_db(path: Path, rows: int) -> Path:
    conn = apsw.Connection(str(path))
    conn.execute("CREATE TABLE codes (code TEXT PRIMARY KEY)")
    conn.executemany("INSERT INTO codes VALUES (?)", [(f"c{i}",) for i in range(rows)])
    conn.close()
    return path


def _swap(path: Path, rows: int) -> None:
    """Put another file (a new inode) at ``path``, as a deploy replacing it would."""
    _reference_db(path.with_name("incoming.db"), rows)
    os.replace(path.with_name("incoming.db"), path)


def _stored_handle(store: Path, db_id: str) -> dict[str, Any]:
    (space_file,) = store.glob("space-*.sqlite")
    conn = apsw.Connection(str(space_file), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        row = conn.execute("SELECT value FROM _cf_cells WHERE id = ?", (db_id,)).fetchone()
    finally:
        conn.close()
    value = msgspec.json.decode(bytes(row[0]))
    assert isinstance(value, dict)
    return value


def _rewrite_handle(store: Path, db_id: str, value: dict[str, Any]) -> None:
    """Store ``value`` as the handle, as another (older or foreign) program would have."""
    (space_file,) = store.glob("space-*.sqlite")
    conn = apsw.Connection(str(space_file))
    try:
        conn.execute(
            "UPDATE _cf_cells SET value = ? WHERE id = ?",
            (msgspec.json.encode(value), db_id),
        )
    finally:
        conn.close()


def _linked_piece(store: Path, reference: Path) -> tuple[str, str]:
    """Register ``reference`` and link it to a piece's input; (handle id, piece id)."""
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        piece = space.run(count_codes, key="k")
        handle = space.register_disk_source(str(reference))
        piece.inputs["ref"].link(handle)
        rt.settle()
        assert piece.outputs.get().result == [{"n": 3}]
        return handle.id, piece.id


def _outputs_after_restart(store: Path) -> sc.QueryState[Any]:
    with sc.Runtime(store) as rt:
        piece = rt.space("demo").run(count_codes, key="k")
        rt.settle()
        state: sc.QueryState[Any] = piece.outputs.get()
        return state


def test_the_handle_records_the_pin_of_the_file_registered(store: Path, tmp_path: Path) -> None:
    reference = _reference_db(tmp_path / "ref.db", 3)
    db_id, _piece = _linked_piece(store, reference)
    found = os.stat(reference)
    assert _stored_handle(store, db_id)["source"] == {
        "kind": "disk",
        "path": str(reference.resolve()),
        "pin": [str(found.st_dev), str(found.st_ino)],
    }


def test_a_file_swapped_before_a_restart_is_refused(store: Path, tmp_path: Path) -> None:
    reference = _reference_db(tmp_path / "ref.db", 3)
    _linked_piece(store, reference)
    _swap(reference, 7)
    state = _outputs_after_restart(store)
    assert state.result is None
    assert isinstance(state.error, sc.DiskSourceError) and state.error.rule == "pinned"


def test_registering_again_re_pins_the_same_handle(store: Path, tmp_path: Path) -> None:
    reference = _reference_db(tmp_path / "ref.db", 3)
    db_id, _piece = _linked_piece(store, reference)
    _swap(reference, 7)
    with sc.Runtime(store) as rt:
        again = rt.space("demo").register_disk_source(str(reference))
        assert again.id == db_id  # the same handle: links to it keep working
        assert again.read("SELECT count(*) AS n FROM codes") == [{"n": 7}]
    assert _stored_handle(store, db_id)["source"]["pin"][1] == str(os.stat(reference).st_ino)
    assert _outputs_after_restart(store).result == [{"n": 7}]
    _swap(reference, 9)  # the new pin is the one checked after a restart
    state = _outputs_after_restart(store)
    assert isinstance(state.error, sc.DiskSourceError) and state.error.rule == "pinned"


def _in_another_process(store: Path, register: Path | None = None) -> dict[str, Any]:
    """What the piece's query gives in a fresh process (no pin in its memory), then, when
    ``register`` is given, what a read gives after registering that path there again."""
    script = textwrap.dedent(
        f"""
        import importlib, json, sys
        import sqlite_cells as sc
        sys.path[:0] = [{str(ROOT)!r}, {str(Path(__file__).parent)!r}]
        # The same pattern (its name is its module and qualname), so the same piece.
        count_codes = importlib.import_module({count_codes.__module__!r}).count_codes

        with sc.Runtime({str(store)!r}) as rt:
            space = rt.space("demo")
            piece = space.run(count_codes, key="k")
            rt.settle()
            state = piece.outputs.get()
            rule = getattr(state.error, "rule", None)
            found = {{"result": state.result, "error": [type(state.error).__name__, rule]}}
            register = {None if register is None else str(register)!r}
            if register is not None:
                handle = space.register_disk_source(register)
                found["registered"] = handle.read("SELECT count(*) AS n FROM codes")
        print(json.dumps(found))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert isinstance(found, dict)
    return found


def test_a_second_process_checks_the_recorded_pin(store: Path, tmp_path: Path) -> None:
    reference = _reference_db(tmp_path / "ref.db", 3)
    _linked_piece(store, reference)  # this process pinned the first file
    _swap(reference, 7)
    assert _in_another_process(store, register=reference) == {
        "result": None,
        "error": ["DiskSourceError", "pinned"],
        "registered": [{"n": 7}],
    }
    # The other process registered the new file: its pin, recorded, replaces the one this
    # process took when it registered the first.
    assert _outputs_after_restart(store).result == [{"n": 7}]
    assert _in_another_process(store) == {"result": [{"n": 7}], "error": ["NoneType", None]}


def _settled_on(rt: sc.Runtime, query: sc.Query[Any], wanted: Any) -> Any:
    """The query's result once it is ``wanted``, or its last one (bounded wait: the other
    process's commit and the file watcher each take a poll_interval to be seen)."""
    for _ in range(500):
        rt.settle()
        if query.get().result == wanted:
            break
        time.sleep(0.01)
    return query.get().result


def test_registering_again_reads_the_new_file_not_an_idle_connection(
    rt: sc.Runtime, tmp_path: Path
) -> None:
    reference = _reference_db(tmp_path / "ref.db", 3)
    space = rt.space("demo")
    handle = space.register_disk_source(str(reference))
    q = handle.query("SELECT count(*) AS n FROM codes")
    rt.settle()
    assert handle.read("SELECT count(*) AS n FROM codes") == [{"n": 3}]  # a connection idles
    _swap(reference, 7)
    with pytest.raises(sc.DiskSourceError):
        handle.read("SELECT count(*) AS n FROM codes")
    assert _settled_on(rt, q, None) is None
    assert isinstance(q.get().error, sc.DiskSourceError) and q.get().error.rule == "pinned"
    again = space.register_disk_source(str(reference))
    assert again.id == handle.id
    assert again.read("SELECT count(*) AS n FROM codes") == [{"n": 7}]
    assert handle.read("SELECT count(*) AS n FROM codes") == [{"n": 7}]
    assert _settled_on(rt, q, [{"n": 7}]) == [{"n": 7}]  # the live query reads it again


def test_a_registration_in_another_process_is_followed_by_a_running_one(
    rt: sc.Runtime, store: Path, tmp_path: Path
) -> None:
    reference = _reference_db(tmp_path / "ref.db", 3)
    space = rt.space("demo")
    piece = space.run(count_codes, key="k")
    handle = space.register_disk_source(str(reference))
    piece.inputs["ref"].link(handle)
    rt.settle()
    assert handle.read("SELECT count(*) AS n FROM codes") == [{"n": 3}]
    assert piece.outputs.get().result == [{"n": 3}]
    _swap(reference, 7)
    with pytest.raises(sc.DiskSourceError) as info:
        handle.read("SELECT count(*) AS n FROM codes")
    assert info.value.rule == "pinned"
    assert _settled_on(rt, piece.outputs, None) is None
    assert piece.outputs.get().error.rule == "pinned"  # type: ignore[union-attr]
    registered = _in_another_process(store, register=reference)["registered"]
    assert registered == [{"n": 7}]
    # Once this runtime has seen the other process's commit, its pinned file is the new one:
    # the piece's query, errored since the swap, reads it, and so does a one-shot read.
    assert _settled_on(rt, piece.outputs, [{"n": 7}]) == [{"n": 7}]
    assert handle.read("SELECT count(*) AS n FROM codes") == [{"n": 7}]


def test_a_registration_in_another_runtime_of_this_process_is_followed(
    store: Path, tmp_path: Path
) -> None:
    """R53, R60: two runtimes of one process on one store run the same piece, refused as
    ``pinned`` once the file is swapped. Runtime A registers the path again: B's query reads
    the new file too, as a runtime in another process does, though A's registration already
    made the new pin the process's (B's query used to keep its error)."""
    reference = _reference_db(tmp_path / "ref.db", 3)
    with (
        sc.Runtime(store, poll_interval=0.01) as rt_a,
        sc.Runtime(store, poll_interval=0.01) as rt_b,
    ):
        space_a = rt_a.space("demo")
        piece_a = space_a.run(count_codes, key="k")
        piece_b = rt_b.space("demo").run(count_codes, key="k")
        piece_a.inputs["ref"].link(space_a.register_disk_source(str(reference)))
        assert _settled_on(rt_a, piece_a.outputs, [{"n": 3}]) == [{"n": 3}]
        assert _settled_on(rt_b, piece_b.outputs, [{"n": 3}]) == [{"n": 3}]
        _swap(reference, 7)
        for rt, piece in ((rt_a, piece_a), (rt_b, piece_b)):
            assert _settled_on(rt, piece.outputs, None) is None
            error = piece.outputs.get().error
            assert isinstance(error, sc.DiskSourceError) and error.rule == "pinned"
        space_a.register_disk_source(str(reference))
        assert _settled_on(rt_a, piece_a.outputs, [{"n": 7}]) == [{"n": 7}]
        assert _settled_on(rt_b, piece_b.outputs, [{"n": 7}]) == [{"n": 7}]
        assert piece_b.outputs.get().error is None


def test_a_handle_without_a_pin_is_pinned_at_its_first_read(store: Path, tmp_path: Path) -> None:
    reference = _reference_db(tmp_path / "ref.db", 3)
    db_id, _piece = _linked_piece(store, reference)
    older = _stored_handle(store, db_id)
    del older["source"]["pin"]  # as a version that recorded no pin wrote it (R73)
    _rewrite_handle(store, db_id, older)
    assert handle_value(db_id, msgspec.json.encode(older)) is not None
    _swap(reference, 5)
    # Never refused (R73): a process that did not register the file pins it at its first read.
    assert _in_another_process(store) == {"result": [{"n": 5}], "error": ["NoneType", None]}
    with sc.Runtime(store) as rt:  # registering it again records the pin
        rt.space("demo").register_disk_source(str(reference))
    assert _stored_handle(store, db_id)["source"]["pin"][1] == str(os.stat(reference).st_ino)
    _swap(reference, 7)
    state = _outputs_after_restart(store)
    assert isinstance(state.error, sc.DiskSourceError) and state.error.rule == "pinned"


@pytest.mark.parametrize("pin", [[1, 2], ["1"], ["x", "2"], "1:2", None])
def test_a_pin_that_does_not_decode_is_refused(store: Path, tmp_path: Path, pin: Any) -> None:
    reference = _reference_db(tmp_path / "ref.db", 3)
    db_id, _piece = _linked_piece(store, reference)
    forged = _stored_handle(store, db_id)
    forged["source"]["pin"] = pin
    _rewrite_handle(store, db_id, forged)
    state = _outputs_after_restart(store)
    assert isinstance(state.error, sc.DiskSourceError) and state.error.rule == "pinned"
    assert "not a [device, inode] pair" in str(state.error)


def test_the_cli_refuses_a_file_swapped_after_link(store: Path, tmp_path: Path) -> None:
    reference = _reference_db(tmp_path / "ref.db", 3)
    with sc.Runtime(store) as rt:
        piece = rt.space("demo").run(count_codes, key="k")
        rt.settle()
    link = ("--store", str(store), "--json", "link", f"sqlite:{reference}", "demo", piece.id, "ref")
    done = run_cli(*link)
    assert done.returncode == 0, done.stderr
    handle = json.loads(done.stdout)["handle"]
    query = ("query", str(store), "demo", handle, "SELECT count(*) AS n FROM codes", "--json")
    done = run_cli(*query)
    assert done.returncode == 0, done.stderr
    assert '"n": 3' in done.stdout
    _swap(reference, 7)
    done = run_cli(*query)
    assert done.returncode == 1
    assert done.stderr.startswith("sqlite-cells: DiskSourceError: pinned: ")
    assert '"n": 7' not in done.stdout
    done = run_cli(*link)  # linking again says the file there now is the one meant
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["handle"] == handle
    done = run_cli(*query)
    assert done.returncode == 0, done.stderr
    assert '"n": 7' in done.stdout


def test_inspect_reports_a_file_swapped_after_link(store: Path, tmp_path: Path) -> None:
    reference = _reference_db(tmp_path / "ref.db", 3)
    handle, _piece = _linked_piece(store, reference)
    done = run_cli("inspect", str(store), "--json")
    assert done.returncode == 0, done.stderr
    (db,) = [d for s in json.loads(done.stdout)["spaces"] for d in s["databases"]]
    assert (db["id"], db["kind"], db["swapped"], db["in_sync"]) == (handle, "disk", False, True)
    _swap(reference, 7)
    done = run_cli("inspect", str(store), "--json")
    assert done.returncode == 1  # a finding, as `query` refuses the file
    data = json.loads(done.stdout)
    (db,) = [d for s in data["spaces"] for d in s["databases"]]
    assert (db["swapped"], db["in_sync"], db["tables"]) == (True, False, [])
    (finding,) = data["findings"]
    assert finding.startswith(f"database {handle} of space 'demo': the path {reference} now")
    done = run_cli("inspect", str(store))
    assert done.returncode == 1
    assert "SWAPPED: the path names another file than the one registered" in done.stdout


def _read_in(rt: sc.Runtime, space: str, link: str) -> Any:
    """The rows of a piece of ``space`` whose input is linked to the handle ``link`` names, or
    the rule its error names."""
    piece = rt.space(space).run(count_codes, key="k")
    piece.inputs["ref"].link(rt.cell_from_link(link))
    rt.settle()
    state = piece.outputs.get()
    return state.result if state.error is None else getattr(state.error, "rule", state.error)


def test_two_spaces_that_registered_one_path_each_read_the_file_they_registered(
    store: Path, tmp_path: Path
) -> None:
    """R60 ("the file registered is the file read"): space x registers a path, the file there
    is replaced, space y registers the path. A pin was kept per path in the process: y's
    registration made x's handle read the new file, and in a later process whichever handle
    was resolved last set the pin for both. A pin belongs to its handle: x's reads are refused
    as ``pinned`` and y's read the new file, in any order, in this runtime and the next."""
    reference = _reference_db(tmp_path / "ref.db", 3)
    with sc.Runtime(store) as rt:
        x = rt.space("x").register_disk_source(str(reference))
        assert x.read("SELECT count(*) AS n FROM codes") == [{"n": 3}]
        _swap(reference, 7)
        y = rt.space("y").register_disk_source(str(reference))
        assert y.read("SELECT count(*) AS n FROM codes") == [{"n": 7}]
        with pytest.raises(sc.DiskSourceError) as refused:
            x.read("SELECT count(*) AS n FROM codes")
        assert refused.value.rule == "pinned"
        assert y.read("SELECT count(*) AS n FROM codes") == [{"n": 7}]
        links = {"x": x.link_str(), "y": y.link_str()}
    for order in (("x", "y"), ("y", "x")):
        with sc.Runtime(store) as rt:
            found = {space: _read_in(rt, space, links[space]) for space in order}
        assert found == {"x": "pinned", "y": [{"n": 7}]}, order


def test_two_stores_with_a_space_of_one_name_each_read_the_file_they_registered(
    tmp_path: Path,
) -> None:
    """R60 ("the file registered is the file read"): two stores opened in one process, each
    with a space named "s", register one path — store a before the file there is replaced,
    store b after. Their handles have one id (derived from the space and the path), and the
    pins, kept by handle id for the whole process, were one: b's registration made a's handle
    read the new file. The pins are kept per store: a's reads are refused as ``pinned``."""
    reference = _reference_db(tmp_path / "ref.db", 3)
    with sc.Runtime(tmp_path / "a") as a_rt, sc.Runtime(tmp_path / "b") as b_rt:
        a = a_rt.space("s").register_disk_source(str(reference))
        assert a.read("SELECT count(*) AS n FROM codes") == [{"n": 3}]
        _swap(reference, 7)
        b = b_rt.space("s").register_disk_source(str(reference))
        assert b.id == a.id  # (what this test is about)
        assert b.read("SELECT count(*) AS n FROM codes") == [{"n": 7}]
        with pytest.raises(sc.DiskSourceError) as refused:
            a.read("SELECT count(*) AS n FROM codes")
        assert refused.value.rule == "pinned"
        assert b.read("SELECT count(*) AS n FROM codes") == [{"n": 7}]


def _store_file_with(store: Path, text: str) -> Path:
    """A database of the store holding ``text``: what a swapped source must never serve."""
    with sc.Runtime(store) as rt:
        space = rt.space("private")
        db = space.sqlite_database("secrets", tables={"codes": sc.table(code="text")})
        with space.transact():
            db.exec("INSERT INTO codes VALUES (?)", [text])
        return db.path


def test_a_file_swapped_in_while_a_connection_opens_is_refused(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """R60: the pin was checked by a stat before and after a source's connection was opened;
    a path naming the registered file at both and a store file (a hard link swapped in) at the
    open itself served the store's rows. The file the connection opened is checked too."""
    import sqlite_cells.read._pool as pool_module

    secret = _store_file_with(store, "STORE SECRET")
    reference = _reference_db(tmp_path / "ref.db", 3)
    kept = tmp_path / "kept.db"
    os.link(reference, kept)  # the registered file, under a second name
    real_opened = pool_module.opened_file
    calls = [0]

    def swapping() -> Any:  # called just before the open, and just after it
        calls[0] += 1
        if calls[0] == 1:
            os.unlink(reference)
            os.link(secret, reference)  # the store's file at the path, for the open alone
        else:
            os.replace(kept, reference)  # the registered file back before the second look
        return real_opened()

    with sc.Runtime(store) as rt:
        handle = rt.space("demo").register_disk_source(str(reference))
        rt.read_pool.discard(reference)  # (no idle connection: the next read opens one)
        monkeypatch.setattr(pool_module, "opened_file", swapping)
        with pytest.raises(sc.DiskSourceError) as refused:
            handle.read("SELECT count(*) AS n FROM codes")
        assert refused.value.rule == "pinned" and calls[0] == 2
        monkeypatch.undo()
        assert handle.read("SELECT count(*) AS n FROM codes") == [{"n": 3}]


@pytest.mark.parametrize("back", [True, False], ids=["back-after-the-open", "left-there"])
def test_a_file_swapped_in_while_it_is_registered_is_refused(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, back: bool
) -> None:
    """R60: a registration checked the file at the path, then took the pin from a second look:
    a store file swapped in between became the pin, and the handle read the store's rows. The
    pin is the file checked — the one SQLite opened too — and a file swapped in meanwhile,
    even for the open alone, is refused; nothing is written."""
    import sqlite_cells.files._sources as sources_module

    secret = _store_file_with(store, "STORE SECRET")
    reference = _reference_db(tmp_path / "ref.db", 3)
    kept = tmp_path / "kept.db"
    os.link(reference, kept)
    real_opened = sources_module.opened_file
    calls = [0]

    def swapping() -> Any:
        calls[0] += 1
        if calls[0] == 1:
            os.unlink(reference)
            os.link(secret, reference)
        elif calls[0] == 2 and back:
            os.unlink(reference)
            os.link(kept, reference)
        return real_opened()

    spaces = sorted(store.glob("space-*.sqlite"))  # the store's own space alone
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        monkeypatch.setattr(sources_module, "opened_file", swapping)
        with pytest.raises(sc.DiskSourceError) as refused:
            space.register_disk_source(str(reference))
        assert refused.value.rule == "pinned"
        monkeypatch.undo()
    assert sorted(store.glob("space-*.sqlite")) == spaces  # no handle written (R7: no file)
    os.replace(kept, reference)
    with sc.Runtime(store) as rt:
        handle = rt.space("demo").register_disk_source(str(reference))
        assert handle.read("SELECT count(*) AS n FROM codes") == [{"n": 3}]


def test_a_runtime_that_could_not_hold_a_pinned_file_gives_back_no_hold(
    store: Path, tmp_path: Path
) -> None:
    """R60: a runtime holds the file it pins open, so its inode number is not given to a file
    made later at the path. A second runtime resolving the handle after the file was replaced
    took no hold (the path named another file) but gave one back at its close: the first
    runtime's, and the pinned inode could then come back as another file at the path."""
    from sqlite_cells.files import _held_files

    reference = _reference_db(tmp_path / "ref.db", 3)
    pin = (os.stat(reference).st_dev, os.stat(reference).st_ino)
    with sc.Runtime(store) as first:
        handle = first.space("demo").register_disk_source(str(reference))
        held = _held_files._kept.get(pin, 0)
        assert held >= 1
        _swap(reference, 7)
        with sc.Runtime(store) as second:
            piece = second.space("demo").run(count_codes, key="k")
            piece.inputs["ref"].link(second.cell_from_link(handle.link_str()))
            second.settle()
            assert getattr(piece.outputs.get().error, "rule", None) == "pinned"
        assert _held_files._kept.get(pin, 0) == held  # the first runtime's hold stays


def test_registering_again_compares_with_the_handle_as_committed_now(
    store: Path, tmp_path: Path
) -> None:
    """R60: registering a path compared the pin with the handle as this runtime last saw it.
    Another runtime had registered another file there since (not yet seen here: a slow poll),
    the operator put the first file back and registered it here: nothing was written, the
    handle kept the other file's pin, and this runtime's reads were refused once it caught up."""
    reference = _reference_db(tmp_path / "ref.db", 3)
    with sc.Runtime(store, poll_interval=60) as slow:
        space = slow.space("demo")
        space.register_disk_source(str(reference))
        os.rename(reference, tmp_path / "first.db")
        _reference_db(reference, 7)
        with sc.Runtime(store) as other:
            other.space("demo").register_disk_source(str(reference))
        os.rename(tmp_path / "first.db", reference)  # the first file back
        handle = space.register_disk_source(str(reference))
        assert handle.read("SELECT count(*) AS n FROM codes") == [{"n": 3}]
        assert slow.settle(10)
        assert handle.read("SELECT count(*) AS n FROM codes") == [{"n": 3}]
    assert _stored_handle(store, handle.id)["source"]["pin"][1] == str(os.stat(reference).st_ino)


def test_a_source_gone_before_a_restart_is_a_query_error_there_too(
    store: Path, tmp_path: Path
) -> None:
    """R60: a file that disappears later surfaces as a QueryError — in the runtime that
    registered it, and after a restart too, where resolving its handle found the file gone and
    failed as a DiskSourceError (rule ``exists``, not a QueryError)."""
    reference = _reference_db(tmp_path / "ref.db", 3)
    _linked_piece(store, reference)
    reference.unlink()
    state = _outputs_after_restart(store)
    assert isinstance(state.error, sc.QueryError), state
    assert "is gone" in str(state.error) and str(reference.resolve()) in str(state.error)


def test_a_store_file_seen_through_another_path_of_the_store_folder_is_refused(
    tmp_path: Path,
) -> None:
    """R60: a file of the store, seen through a bind mount of the store's folder (a container's
    volume mounted twice, say), has a path outside the store and one name (no hard link), and
    was registered as a source: its reads served the runtime's own rows. The folders a source
    lies in are compared with the store's by device and inode, not only by path."""
    store, alias = tmp_path / "store", tmp_path / "alias"
    alias.mkdir()
    with sc.Runtime(store) as rt:
        space = rt.space("s")
        db = space.sqlite_database("d", tables={"t": sc.table(v="text")})
        with space.transact():
            db.exec("INSERT INTO t (v) VALUES ('private')")
        mounted = subprocess.run(
            ["mount", "--bind", str(store), str(alias)], capture_output=True, text=True
        )
        if mounted.returncode != 0:
            pytest.skip(f"no bind mount here: {mounted.stderr.strip()}")
        try:
            seen = alias / db.path.name
            assert seen.is_file() and os.stat(seen).st_nlink == 1
            with pytest.raises(sc.DiskSourceError) as info:
                space.register_disk_source(str(seen))
            assert info.value.rule == "outside-store"
        finally:
            subprocess.run(["umount", "-l", str(alias)], check=False)


def test_a_runtime_dropped_after_registering_a_disk_source_is_collected_and_closed(
    tmp_path: Path,
) -> None:
    """§3: a runtime nobody refers to any more is collected and closed. One that registered a
    disk source stayed for the life of the process, with its threads and open files (7 threads
    and 14 descriptors each here): following the pin recorded in the handle (R60) subscribed to
    the handle cell, a subscription the scheduler's thread held, and it held the runtime. The
    runtime follows the pin through a commit hook that holds it weakly now."""
    source = tmp_path / "ref.db"
    conn = apsw.Connection(str(source))
    conn.execute("CREATE TABLE codes (code TEXT); INSERT INTO codes VALUES ('a')")
    conn.close()
    store = tmp_path / "store"
    with sc.Runtime(store) as writer:  # the registration's commit (it wakes a poller)
        writer.space("s").register_disk_source(source)
    threads = set(threading.enumerate())

    def dropped() -> weakref.ref[sc.Runtime]:
        rt = sc.Runtime(store, poll_interval=3600)
        handle = rt.space("s").register_disk_source(source)  # the same pin: nothing committed
        assert handle.read("SELECT count(*) AS n FROM codes") == [{"n": 1}]
        return weakref.ref(rt)

    held = dropped()
    gc.collect()
    assert held() is None
    # The close runs on a thread of its own; each thread the runtime made ends. (Threads that
    # earlier tests in this process left ending, a long call, are not its own.)
    made = set(threading.enumerate()) - threads
    for thread in made:
        thread.join(60)
    assert not [t.name for t in made if t.is_alive()]
