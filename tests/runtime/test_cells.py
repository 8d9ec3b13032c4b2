from __future__ import annotations

import datetime
import threading
from pathlib import Path

import pytest

import sqlite_cells as sc
from sqlite_cells.codec import ClosedError, derive_id


def test_cell_ids_derive_from_space_and_name(rt: sc.Runtime) -> None:
    space = rt.space("demo")
    c = space.cell("counter", default=0)
    assert c.id == derive_id("cell", "demo", "counter")
    assert c.id == rt.space("demo").cell("counter").id
    assert c.id != rt.space("other").cell("counter").id


def test_default_until_first_write_then_committed_value(rt: sc.Runtime) -> None:
    space = rt.space("demo")
    c = space.cell("counter", default=0)
    assert c.get() == 0
    with space.transact() as tx:
        c.set(5)
        assert c.get() == 5  # the transaction sees its own write
    assert tx.seq == 1
    assert c.get() == 5
    c.update  # noqa: B018  # attribute exists
    with space.transact():
        c.update(lambda v: v + 1)
    assert c.get() == 6


def test_writes_outside_a_transaction_raise_no_transaction(rt: sc.Runtime) -> None:
    c = rt.space("demo").cell("x")
    with pytest.raises(sc.NoTransaction, match="needs a transaction"):
        c.set(1)
    assert c.get() is None


def test_exception_in_the_body_discards_every_write(rt: sc.Runtime) -> None:
    space = rt.space("demo")
    a, b = space.cell("a", default=0), space.cell("b", default=0)
    with pytest.raises(ZeroDivisionError), space.transact():
        a.set(1)
        b.set(1 / 0)
    assert (a.get(), b.get()) == (0, 0)
    assert space.file.seen_seq == 0


def test_paths_read_and_write_inside_values(rt: sc.Runtime) -> None:
    space = rt.space("demo")
    doc = space.cell("doc", default={})
    with space.transact():
        doc.key("a").key("b").set([1, 2, 3])
        doc.key("a").key("b").key(1).set(20)
        doc.key("title").set("hi")
    assert doc.get() == {"a": {"b": [1, 20, 3]}, "title": "hi"}
    assert doc.key("a").key("b").key(-1).get() == 3
    assert doc.key("missing").key(3).get() is None
    with pytest.raises(sc.SqliteCellsError, match="existing list element"), space.transact():
        doc.key("a").key("b").key(7).set(0)
    with pytest.raises(sc.SqliteCellsError, match="not an object"), space.transact():
        doc.key("title").key("x").set(0)
    assert doc.get() == {"a": {"b": [1, 20, 3]}, "title": "hi"}


def test_watched_key_paths_of_a_cell_share_one_decoding_of_each_value(
    rt: sc.Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The nodes of one cell's key paths decode each committed value once between them (each
    decoded it whole for its own path: 8,000 watched keys made a commit take 8 s); each still
    gets the value at its path, a link as a live cell, and is told only when that changed."""
    space = rt.space("demo")
    c, target = space.cell("c"), space.cell("target", default=5)
    keys = [f"k{i}" for i in range(50)]
    with space.transact():
        c.set({**{k: i for i, k in enumerate(keys)}, "link": target})
    told: dict[str, list[object]] = {k: [] for k in [*keys, "link"]}
    for key in told:
        c.key(key).observe().subscribe(told[key].append)
    rt.settle()
    assert told["k3"] == [3] and told["link"] == [target]
    decodings: list[bytes] = []
    real = sc.Cell._decode_stored

    def counted(self: sc.Cell, data: bytes, *, link_cells: bool) -> object:
        if link_cells:  # (the write at a path reads the value without making cells)
            decodings.append(data)
        return real(self, data, link_cells=link_cells)

    monkeypatch.setattr(sc.Cell, "_decode_stored", counted)
    with space.transact():
        c.key("k3").set(33)
    rt.settle()
    assert len(decodings) == 1
    assert told["k3"] == [3, 33] and told["k4"] == [4] and told["link"] == [target]
    assert told["link"][0].get() == 5


def test_a_key_path_value_changed_in_place_by_its_subscriber_changes_no_other_path(
    rt: sc.Runtime,
) -> None:
    """The key-path nodes of a cell share one decoding of its value, and each holds a copy of
    its part: a subscriber that changes the dict it was given in place changed what the nodes
    of the paths within it (observed later) were given, never committed (§3, R50). (The
    subscribers of one path share its value, as they always did.)"""
    space = rt.space("demo")
    c = space.cell("c")
    with space.transact():
        c.set({"a": {"x": 1, "ys": [1, 2]}})
    rt.settle()

    def mutate(value: dict[str, object]) -> None:
        value["x"] = 999
        value["evil"] = True

    c.key("a").observe().subscribe(mutate)
    rt.settle()
    seen: list[object] = []
    c.key("a").key("x").observe().subscribe(seen.append)
    derived = sc.derive(c.key("a").key("ys"), lambda v: v)
    ys: list[object] = []
    c.key("a").key("ys").observe().subscribe(ys.append)
    rt.settle()
    assert seen == [1] and ys == [[1, 2]]
    assert derived.get() == [1, 2]
    assert c.get() == {"a": {"x": 1, "ys": [1, 2]}}


def test_cells_inside_values_are_stored_as_links_and_read_back_as_cells(rt: sc.Runtime) -> None:
    space = rt.space("demo")
    alice = space.cell("alice")
    post = space.cell("post")
    with space.transact():
        alice.set({"name": "Alice"})
        post.set({"author": alice, "tags": [alice.key("name")]})
    raw = space.file.entity(post.id).data
    assert raw is not None and alice.link_str().encode() in raw
    value = post.get()
    assert value["author"] == alice
    assert isinstance(value["author"], sc.Cell)
    assert value["author"].get() == {"name": "Alice"}
    assert value["tags"][0].get() == "Alice"


def test_links_name_cells_in_other_spaces(rt: sc.Runtime) -> None:
    home, away = rt.space("home"), rt.space("away")
    target = away.cell("target")
    with away.transact():
        target.set("far")
    ref = home.cell("ref")
    with home.transact():
        ref.set(target)
    got = ref.get()
    assert got.space.id == "away" and got.get() == "far"
    assert rt.cell_from_link(target.link_str()) == target
    assert rt.cell_from_link(target.link()).get() == "far"
    with pytest.raises(sc.LinkDecodeError):
        rt.cell_from_link("not a link")


def test_one_space_per_transaction(rt: sc.Runtime) -> None:
    home, away = rt.space("home"), rt.space("away")
    with pytest.raises(sc.CrossSpaceWrite, match="one transaction per space"), home.transact():
        home.cell("a").set(1)
        away.cell("b").set(1)
    assert home.cell("a").get() is None
    with pytest.raises(sc.CrossSpaceWrite), home.transact(), away.transact():
        pass


def test_nested_transact_joins_the_outer(rt: sc.Runtime) -> None:
    space = rt.space("demo")
    c = space.cell("c", default=0)
    with space.transact() as outer:
        with space.transact() as inner:
            c.set(1)
        assert inner is outer
        assert space.file.seen_seq == 0  # nothing committed by the inner block
    assert outer.seq == 1 and c.get() == 1


def test_values_must_be_json_or_cells(rt: sc.Runtime) -> None:
    space = rt.space("demo")
    with pytest.raises(sc.ValueEncodeError, match="cannot store a object"), space.transact():
        space.cell("x").set({"k": object()})
    assert space.cell("x").get() is None


@pytest.mark.parametrize(
    "value",
    [b"raw", float("nan"), float("inf"), {1, 2}, 2**70, {"when": datetime.datetime(2020, 1, 1)}],
)
def test_r6_non_json_values_are_refused_at_set_and_nothing_is_recorded(
    rt: sc.Runtime, value: object
) -> None:
    space = rt.space("demo")
    c = space.cell("x", default="untouched")
    with space.transact() as tx:
        with pytest.raises(sc.ValueEncodeError):
            c.set(value)
        assert tx.is_empty  # refused at the call: the transaction stays usable
        c.set("ok")
    assert c.get() == "ok" and tx.seq == 1


def test_committed_values_survive_a_restart(store: Path) -> None:
    with sc.Runtime(store) as first:
        space = first.space("demo")
        with space.transact():
            space.cell("c").set({"n": 1, "me": space.cell("me")})
    with sc.Runtime(store) as second:
        value = second.space("demo").cell("c").get()
        assert value["n"] == 1 and value["me"] == second.space("demo").cell("me")
        assert second.space("demo").file.seen_seq == 1


def test_closed_runtime_says_so(store: Path) -> None:
    runtime = sc.Runtime(store)
    space = runtime.space("demo")
    runtime.close()
    runtime.close()  # twice is fine
    with pytest.raises(ClosedError, match="closed"):
        runtime.space("demo")
    with pytest.raises(ClosedError):
        space.transact()
    with pytest.raises(ClosedError):
        space.cell("never-read").get()


def test_a_block_left_open_when_its_runtime_closed_is_no_later_runtimes_transaction(
    store: Path,
) -> None:
    """A transaction block entered by hand and never left, then its runtime closed: it can
    commit nothing, and a new runtime's transactions in the same thread are their own (they
    were refused as a write "through another Runtime object")."""
    first = sc.Runtime(store)
    block = first.space("demo").transact()
    block.__enter__()
    first.space("demo").cell("c").set(5)
    first.close()
    with sc.Runtime(store) as second:
        space = second.space("demo")
        with space.transact():
            space.cell("c").set(6)
        assert space.cell("c").get() == 6
        with pytest.raises(sc.NoTransaction):
            space.cell("c").set(7)  # outside any block: the dead one is no transaction
    with pytest.raises(ClosedError):
        block.__exit__(None, None, None)  # its own commit still says why it cannot be made


def test_ephemeral_store_is_removed_on_close() -> None:
    with sc.Runtime.ephemeral() as runtime:
        store = runtime.store
        space = runtime.space("demo")
        with space.transact():
            space.cell("c").set(1)
        assert any(store.iterdir())
    assert not store.exists()


def test_default_store_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SQLITE_CELLS_STORE", str(tmp_path / "env-store"))
    with sc.Runtime() as runtime:
        assert runtime.store == (tmp_path / "env-store").resolve()
    monkeypatch.delenv("SQLITE_CELLS_STORE")
    monkeypatch.chdir(tmp_path)
    with sc.Runtime() as runtime:
        assert runtime.store == (tmp_path / ".sqlite-cells").resolve()


def test_r4_the_default_belongs_to_the_id_for_every_cell_of_it(rt: sc.Runtime) -> None:
    space = rt.space("demo")
    declared = space.cell("counter", default={"n": 0})
    assert rt.cell_from_link(declared.link_str()).get() == {"n": 0}
    assert rt.cell_from_link(declared.link()).key("n").get() == 0
    assert space.cell("counter").get() == {"n": 0}  # no default given: the id keeps its own
    holder = space.cell("holder")
    with space.transact():
        holder.set([declared])
    (back,) = holder.get()
    assert back.get() == {"n": 0}
    space.cell("counter", default=7)  # declared again: the latest declaration wins
    assert declared.get() == 7 and back.get() == 7
    with space.transact():
        declared.set(1)
    assert back.get() == 1 and rt.cell_from_link(declared.link()).get() == 1


def test_r4_links_carry_no_default_into_another_runtime(store: Path) -> None:
    with sc.Runtime(store) as first:
        link = first.space("demo").cell("c", default=5).link_str()
        assert first.cell_from_link(link).get() == 5
    with sc.Runtime(store) as second:
        assert second.cell_from_link(link).get() is None


def test_r4_a_default_that_is_not_json_is_refused_at_declaration(rt: sc.Runtime) -> None:
    with pytest.raises(sc.ValueEncodeError):
        rt.space("demo").cell("c", default={1, 2})
    assert rt.space("demo").cell("c").get() is None


def test_r7_reading_a_space_the_store_does_not_hold_creates_no_file(store: Path) -> None:
    with sc.Runtime(store) as rt:
        space = rt.space("nowhere")
        cell = space.cell("x", default=3)
        assert cell.get() == 3
        other = rt.space("writer").cell("holder")
        assert rt.cell_from_link(cell.link_str()).get() == 3
        link = '{"/":{"link@1":{"id":"of:abc","space":"elsewhere","scope":"space"}}}'
        assert rt.cell_from_link(link).get() is None
        assert other.get() is None
        assert list(store.iterdir()) == []
        with space.transact():
            cell.set(4)  # the first commit creates the space's file
        assert [p.name for p in store.iterdir() if p.suffix == ".sqlite"] == [space.file.path.name]
        assert cell.get() == 4


def test_r7_a_space_created_later_by_another_runtime_is_seen(store: Path) -> None:
    with sc.Runtime(store, poll_interval=0.01) as reader, sc.Runtime(store) as writer:
        watched = reader.space("late").cell("c", default=0)
        seen: list[object] = []
        arrived = threading.Event()

        def on_value(value: object) -> None:
            seen.append(value)
            if value == 9:
                arrived.set()

        watched.observe().subscribe(on_value)
        reader.settle()
        with writer.space("late").transact():
            writer.space("late").cell("c").set(9)
        assert arrived.wait(30)  # delivered by the reader's poller, not by a sleep of ours
        assert seen == [0, 9] and watched.get() == 9


def test_a_value_that_is_not_json_is_refused_naming_the_cell(rt: sc.Runtime) -> None:
    """R6, Errors ("where"): a handler writing several cells could not tell which write was
    refused — the error named a place inside the value only."""
    space = rt.space("demo")
    seen, audit = space.cell("last_seen"), space.cell("audit", default={"log": []})
    with space.transact():
        with pytest.raises(sc.ValueEncodeError) as whole:
            seen.set(datetime.datetime(2026, 1, 1))
        assert str(whole.value).startswith(f"writing cell 'last_seen' ({seen.id}): the value:")
        with pytest.raises(sc.ValueEncodeError) as at_path:
            audit.key("log").set([1, {2}])
        assert str(at_path.value).startswith(
            f"writing cell 'audit' ({audit.id}) at path ['log']: at value['log'][1]: "
        )
        with pytest.raises(sc.ValueEncodeError) as updated:
            audit.update(lambda v: {**v, "at": datetime.date(2026, 1, 1)})
        assert "writing cell 'audit'" in str(updated.value)
        seen.set("2026-01-01")  # the transaction is still usable
    with pytest.raises(sc.ValueEncodeError) as default:
        space.cell("bad", default=b"bytes")
    assert str(default.value).startswith("the default of cell 'bad': ")
    assert seen.get() == "2026-01-01" and audit.get() == {"log": []}
