# mypy: disable-error-code="arg-type"
# (the corpus passes arguments of the wrong type on purpose)
"""Bad input corpus (SPEC §5 "Errors"): hostile or broken input to public calls raises a
``SqliteCellsError`` — never a raw apsw, OS, Unicode, Key, Type or Overflow error — and leaves the
store as it was (the same files, the same log, the same cells).

Each case names its family; ``FAMILIES`` counts them (reported by ``test_the_corpus_is_wide``).
Cases whose raw error comes from a layer this corpus does not own are marked ``xfail(strict)``
with the owner named, so they turn into failures the moment that layer is fixed.
"""

from __future__ import annotations

import collections
import datetime
import decimal
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import apsw
import pytest

import sqlite_cells as sc
from sqlite_cells.codec import short_hash

TABLES = {"t": sc.table(id="integer primary key", s="text", n="integer", who_cf_link=sc.cf_link())}


@dataclass
class Env:
    store: Path
    rt: sc.Runtime
    space: sc.Space
    cell: sc.Cell
    db: sc.SqliteDb

    def write(self, fn: Callable[[], object]) -> None:
        with self.space.transact():
            fn()

    def exec(self, sql: str, params: object = None) -> None:
        with self.space.transact():
            self.db.exec(sql, params)


@dataclass(frozen=True)
class Case:
    family: str
    name: str
    run: Callable[[Env], object]
    prepare: Callable[[Env], object] | None = None
    raw_owner: str | None = None  # a layer that still lets a raw error through (xfail)


def _space_file(store: Path, space_id: str) -> Path:
    return store / f"space-{short_hash(space_id)}.sqlite"


def _raw_sql(path: Path, sql: str, params: tuple[Any, ...] = ()) -> None:
    conn = apsw.Connection(str(path))
    try:
        conn.execute(sql, params)
    finally:
        conn.close()


def _garbage_space(env: Env) -> None:
    _space_file(env.store, "broken").write_bytes(b"definitely not SQLite " * 300)


def _truncated_space(env: Env) -> None:
    env.rt.close()  # checkpointed: the whole file is in the main file
    data = env.space.file.path.read_bytes()
    assert len(data) > 3 * 4096
    _space_file(env.store, "cut").write_bytes(data[: 2 * 4096])
    env.rt = sc.Runtime(env.store)


def _dir_space(env: Env) -> None:
    _space_file(env.store, "dir").mkdir()


def _bad_json_cell(env: Env) -> None:
    _raw_sql(
        env.space.file.path, "UPDATE _cf_cells SET value = x'7b6e6f' WHERE id = ?", (env.cell.id,)
    )
    env.space.file._cache.clear()  # the test's shortcut: the runtime's cache never saw it


def _bad_utf8_cell(env: Env) -> None:
    _raw_sql(
        env.space.file.path,
        "UPDATE _cf_cells SET value = CAST(x'c3' AS TEXT) WHERE id = ?",
        (env.cell.id,),
    )
    env.space.file._cache.clear()


def _disk_source_in_store(env: Env) -> object:
    inside = env.store / "inside.db"
    conn = apsw.Connection(str(inside))
    conn.execute("CREATE TABLE x (a)")
    conn.close()
    return None


def _loop() -> list[Any]:
    value: list[Any] = []
    value.append(value)
    return value


def _value_cases() -> list[Case]:
    values: dict[str, Callable[[], object]] = {
        "bytes": lambda: b"raw",
        "bytearray": lambda: bytearray(b"raw"),
        "nan": lambda: float("nan"),
        "inf": lambda: float("inf"),
        "-inf": lambda: -float("inf"),
        "set": lambda: {1, 2},
        "datetime": lambda: datetime.datetime(2020, 1, 1),
        "decimal": lambda: decimal.Decimal("1.1"),
        "2**70": lambda: 2**70,
        "object": object,
        "int-key": lambda: {1: "x"},
        "lone-surrogate": lambda: "\ud800",
        "self-containing": _loop,
        "nested-nan": lambda: {"a": [1, {"b": float("nan")}]},
        "path": lambda: Path("/tmp"),
    }
    cases = [
        Case(
            "values", f"set-{name}", lambda env, make=make: env.write(lambda: env.cell.set(make()))
        )
        for name, make in values.items()
    ]
    cases += [
        Case("values", "default-not-json", lambda env: env.space.cell("d", default={1})),
        Case("values", "key-float", lambda env: env.cell.key(1.5)),
        Case(
            "values",
            "index-past-end",
            lambda env: env.write(lambda: env.cell.key("list").key(9).set(1)),
        ),
        Case(
            "values",
            "key-inside-a-str",
            lambda env: env.write(lambda: env.cell.key("name").key("x").set(1)),
        ),
        Case("values", "cell-name-object", lambda env: env.space.cell(object())),
        Case("values", "cell-name-lone-surrogate", lambda env: env.space.cell("a\ud800")),
        Case("values", "key-lone-surrogate", lambda env: env.cell.key("\udfff")),
    ]
    return cases


LINK = '{"/":{"link@1":{"id":"of:abc","space":"demo","scope":"space"}}}'


def _link_cases() -> list[Case]:
    texts = {
        "not-json": "not json",
        "missing-fields": '{"/":{"link@1":{"id":"of:x"}}}',
        "bad-id": LINK.replace("of:abc", "abc"),
        "empty-space": LINK.replace('"demo"', '""'),
        "other-scope": LINK.replace('"space"}', '"global"}'),
        "extra-key": LINK[:-1] + ',"x":1}',
        "bad-utf8": b"\xff\xfe\x00",
        "two-sigils": LINK + LINK,
    }
    cases = [
        Case("links", f"cell_from_link-{name}", lambda env, t=text: env.rt.cell_from_link(t))
        for name, text in texts.items()
    ]
    cases += [
        Case("links", "cell_from_link-int", lambda env: env.rt.cell_from_link(5)),
        Case("links", "decode_cf_link-garbage", lambda env: sc.decode_cf_link("{}", env.rt)),
        Case("links", "decode_cf_link-list", lambda env: sc.decode_cf_link([1], env.rt)),
    ]
    return cases


def _path_cases() -> list[Case]:
    return [
        Case("paths", "runtime-empty-store", lambda env: sc.Runtime("")),
        Case("paths", "runtime-store-is-a-file", lambda env: sc.Runtime(env.store / "file")),
        Case(
            "paths", "runtime-store-under-a-file", lambda env: sc.Runtime(env.store / "file" / "x")
        ),
        Case("paths", "runtime-store-int", lambda env: sc.Runtime(5)),
        Case("paths", "runtime-poll-zero", lambda env: sc.Runtime(env.store, poll_interval=0)),
        Case("paths", "runtime-workers-zero", lambda env: sc.Runtime(env.store, query_workers=0)),
        Case(
            "paths",
            "runtime-timeout-nan",
            lambda env: sc.Runtime(env.store, query_timeout=float("nan")),
        ),
        Case(
            "paths",
            "runtime-timeout-past-sqlite",
            lambda env: sc.Runtime(env.store, query_timeout=1e10),
        ),
        Case(
            "paths",
            "runtime-exec-timeout-past-sqlite",
            lambda env: sc.Runtime(env.store, exec_timeout=3_000_000),
        ),
        Case("paths", "space-empty", lambda env: env.rt.space("")),
        Case("paths", "space-none", lambda env: env.rt.space(None)),
        Case("paths", "disk-source-relative", lambda env: env.space.register_disk_source("x.db")),
        Case(
            "paths", "disk-source-missing", lambda env: env.space.register_disk_source("/nope/x.db")
        ),
        Case(
            "paths", "disk-source-dir", lambda env: env.space.register_disk_source(str(env.store))
        ),
        Case(
            "paths",
            "disk-source-in-store",
            lambda env: env.space.register_disk_source(str(env.store / "inside.db")),
            prepare=_disk_source_in_store,
        ),
        Case("paths", "handler-tries-zero", lambda env: sc.handler(tries=0)),
        Case("paths", "space-lone-surrogate", lambda env: env.rt.space("\ud800")),
        Case("paths", "store-lone-surrogate", lambda env: sc.Runtime(env.store / "s\ud800")),
        Case("paths", "store-undecodable", lambda env: sc.Runtime(env.store / "s\udcff")),
        Case(
            "paths",
            "disk-source-lone-surrogate",
            lambda env: env.space.register_disk_source("/x\ud800"),
        ),
        Case(
            "declarations",
            "table-name-lone-surrogate",
            lambda env: env.space.sqlite_database("o", tables={"t\ud800": sc.table(a="text")}),
        ),
        Case("paths", "settle-negative", lambda env: env.rt.settle(-1)),
        Case("paths", "settle-str", lambda env: env.rt.settle("1")),
    ]


def _param_cases() -> list[Case]:
    read = "SELECT ? AS x"
    return [
        Case(
            "parameters",
            "cell-to-plain-column",
            lambda env: env.exec("INSERT INTO t (s) VALUES (?)", [env.cell]),
        ),
        Case(
            "parameters",
            "text-to-link-column",
            lambda env: env.exec("INSERT INTO t (who_cf_link) VALUES (?)", ["x"]),
        ),
        Case(
            "parameters",
            "too-few",
            lambda env: env.exec("INSERT INTO t (s, n) VALUES (?, ?)", ["a"]),
        ),
        Case(
            "parameters",
            "pending",
            lambda env: env.exec("INSERT INTO t (s) VALUES (?)", [sc.PENDING]),
        ),
        Case(
            "parameters",
            "missing-named-exec",
            lambda env: env.exec("INSERT INTO t (n) VALUES (:a)", {"b": 1}),
        ),
        Case(
            "parameters",
            "missing-named-read",
            lambda env: env.db.read("SELECT :a AS x", {"b": 1}),
        ),
        Case(
            "parameters",
            "overflow-read",
            lambda env: env.db.read(read, [2**70]),
        ),
        Case(
            "parameters",
            "overflow-exec",
            lambda env: env.exec("INSERT INTO t (n) VALUES (?)", [2**70]),
        ),
        Case(
            "parameters",
            "surrogate-exec",
            lambda env: env.exec("INSERT INTO t (s) VALUES (?)", ["\ud800"]),
        ),
        Case(
            "parameters",
            "overflow-exec-many",
            lambda env: env.write(
                lambda: env.db.exec_many("INSERT INTO t (n) VALUES (?)", [[1], [2**64]])
            ),
        ),
        Case(
            "parameters",
            "exec-many-none",
            lambda env: env.write(lambda: env.db.exec_many("INSERT INTO t (n) VALUES (?)", None)),
        ),
        Case(
            "parameters",
            "object-read",
            lambda env: env.db.read(read, [object()]),
        ),
        Case(
            "parameters",
            "surrogate-read",
            lambda env: env.db.read(read, ["\ud800"]),
        ),
    ]


def _sql_cases() -> list[Case]:
    reads = {
        "empty": "",
        "delete": "DELETE FROM t",
        "pragma": "PRAGMA user_version",
        "schema-qualified": "SELECT * FROM main.t",
        "reserved": "SELECT * FROM _cf_watermark",
        "two-statements": "SELECT 1; SELECT 2",
        "load-extension": "SELECT load_extension('x')",
        "attach": "ATTACH 'x' AS y",
        "undeclared-table": "SELECT * FROM nope",
        "nul": "SELECT 1\x00",
    }
    writes = {
        "select": "SELECT 1",
        "drop": "DROP TABLE t",
        "returning": "INSERT INTO t (s) VALUES ('a') RETURNING id",
        "unknown-column": "INSERT INTO t (nope) VALUES (1)",
        "vacuum": "VACUUM",
    }
    cases = [Case("sql", f"read-{n}", lambda env, q=q: env.db.read(q)) for n, q in reads.items()]
    cases += [Case("sql", f"exec-{n}", lambda env, q=q: env.exec(q)) for n, q in writes.items()]
    cases += [
        Case("sql", "query-ddl", lambda env: env.db.query("CREATE TABLE x (a)")),
        Case("sql", "read-not-a-str", lambda env: env.db.read(123)),
    ]
    return cases


def _declaration_cases() -> list[Case]:
    def declare(name: str, **columns: Any) -> Callable[[Env], object]:
        return lambda env: env.space.sqlite_database("other", tables={name: sc.table(**columns)})

    return [
        Case("declarations", "reserved-column", declare("x", _cf_x="text")),
        Case("declarations", "reserved-table", declare("sqlite_x", a="text")),
        Case("declarations", "link-suffix-text", declare("x", a_cf_link="text")),
        Case("declarations", "cf_link-without-suffix", declare("x", a=sc.cf_link())),
        Case(
            "declarations",
            "eponymous-table",
            declare("dbstat", a="text"),
        ),
        Case("declarations", "column-spec-int", declare("x", a=5)),
        Case(
            "declarations",
            "tables-not-a-mapping",
            lambda env: env.space.sqlite_database("o", tables="t"),
        ),
        Case(
            "declarations",
            "database-name-lone-surrogate",
            lambda env: env.space.sqlite_database("\ud800", tables=TABLES),
        ),
        Case(
            "declarations",
            "database-name-int",
            lambda env: env.space.sqlite_database(5, tables=TABLES),
        ),
        Case(
            "declarations",
            "database-name-empty",
            lambda env: env.space.sqlite_database("", tables=TABLES),
        ),
        Case(
            "declarations",
            "version-zero",
            lambda env: env.space.sqlite_database("v", tables=TABLES, version=0),
        ),
        Case(
            "declarations",
            "version-str",
            lambda env: env.space.sqlite_database("v", tables=TABLES, version="1"),
        ),
    ]


def _dir_db(env: Env) -> sc.SqliteDb:
    return env.space.sqlite_database("dirdb", tables=TABLES)


def _dir_db_prepare(env: Env) -> None:
    _dir_db(env).path.mkdir()


def _file_cases() -> list[Case]:
    return [
        Case(
            "files",
            "db-file-is-a-directory-read",
            lambda env: _dir_db(env).read("SELECT * FROM t"),
            prepare=_dir_db_prepare,
        ),
        Case(
            "files",
            "db-file-is-a-directory-exec",
            lambda env: env.write(lambda: _dir_db(env).exec("DELETE FROM t")),
            prepare=_dir_db_prepare,
        ),
        Case(
            "files",
            "space-file-garbage",
            lambda env: env.rt.space("broken").cell("x").get(),
            prepare=_garbage_space,
        ),
        Case(
            "files",
            "space-file-truncated",
            lambda env: env.rt.space("cut").cell("x").get(),
            prepare=_truncated_space,
        ),
        Case(
            "files",
            "space-file-is-a-directory",
            lambda env: env.rt.space("dir").cell("x").get(),
            prepare=_dir_space,
        ),
        Case("files", "cell-value-not-json", lambda env: env.cell.get(), prepare=_bad_json_cell),
        Case("files", "cell-value-bad-utf8", lambda env: env.cell.get(), prepare=_bad_utf8_cell),
        Case(
            "files",
            "bad-utf8-text-written",
            lambda env: env.exec("INSERT INTO t (s) VALUES (CAST(x'c3' AS TEXT))"),
        ),
    ]


def _misc_cases() -> list[Case]:
    other = lambda env: env.space.sqlite_database("second", tables=TABLES)  # noqa: E731
    return [
        Case("transactions", "set-outside", lambda env: env.cell.set(1)),
        Case("transactions", "exec-outside", lambda env: env.db.exec("DELETE FROM t")),
        Case("transactions", "db-set", lambda env: env.write(lambda: env.db.set(None))),
        Case(
            "transactions", "db-update", lambda env: env.write(lambda: env.db.update(lambda v: v))
        ),
        Case("transactions", "db-key", lambda env: env.db.key("rev")),
        Case(
            "transactions",
            "handle-through-a-link",
            lambda env: env.write(lambda: env.rt.cell_from_link(env.db.link()).set(0)),
        ),
        Case(
            "transactions",
            "cross-space",
            lambda env: env.write(lambda: (env.cell.set(2), env.rt.space("z").cell("c").set(1))),
        ),
        Case(
            "transactions",
            "two-databases",
            lambda env: env.write(
                lambda: (env.db.exec("DELETE FROM t"), other(env).exec("DELETE FROM t"))
            ),
        ),
        Case(
            "transactions",
            "read-after-write",
            lambda env: env.write(lambda: (env.db.exec("DELETE FROM t"), env.db.read("SELECT 1"))),
        ),
    ]


CASES = [
    *_value_cases(),
    *_link_cases(),
    *_path_cases(),
    *_param_cases(),
    *_sql_cases(),
    *_declaration_cases(),
    *_file_cases(),
    *_misc_cases(),
]
FAMILIES = collections.Counter(case.family for case in CASES)


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    store = tmp_path / "store"
    (tmp_path / "store").mkdir()
    (store / "file").write_text("a file, not a store")
    rt = sc.Runtime(store, poll_interval=0.01)
    env: Env | None = None
    try:
        space = rt.space("demo")
        cell = space.cell("c")
        db = space.sqlite_database("chat", tables=TABLES)
        with space.transact():
            cell.set({"name": "x", "list": [1]})
            db.exec("INSERT INTO t (s, n) VALUES ('a', 1)")
        env = Env(store, rt, space, cell, db)
        yield env
    finally:
        rt.close()
        if env is not None:
            env.rt.close()  # a case may have opened another runtime on the store


def _state(store: Path) -> tuple[list[str], dict[str, list[tuple[Any, ...]]]]:
    """The store's files (SQLite's own -wal/-shm companions aside) and each space's log and
    cells, read without the runtime."""
    files = sorted(
        str(p.relative_to(store)) for p in store.rglob("*") if not p.name.endswith(("-wal", "-shm"))
    )
    logs = {}
    for path in sorted(store.glob("space-*.sqlite")):
        try:
            conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
            try:
                logs[path.name] = [
                    *conn.execute("SELECT seq, record FROM _cf_log ORDER BY seq"),
                    *conn.execute("SELECT id, value, rev FROM _cf_cells ORDER BY id"),
                ]
            finally:
                conn.close()
        except (apsw.Error, UnicodeError):
            logs[path.name] = [("unreadable", os.path.getsize(path) if path.is_file() else -1)]
    return files, logs


def _params() -> list[Any]:
    found = []
    for case in CASES:
        marks = []
        if case.raw_owner is not None:
            marks.append(pytest.mark.xfail(reason=f"raw error from {case.raw_owner}", strict=True))
        found.append(pytest.param(case, id=f"{case.family}/{case.name}", marks=marks))
    return found


@pytest.mark.parametrize("case", _params())
def test_bad_input_raises_our_error_and_leaves_the_store_unchanged(env: Env, case: Case) -> None:
    if case.prepare is not None:
        case.prepare(env)
    before = _state(env.store)
    with pytest.raises(Exception) as info:
        case.run(env)
    assert isinstance(info.value, sc.SqliteCellsError), (
        f"{type(info.value).__mro__} is not a SqliteCellsError: {info.value!r}"
    )
    assert str(info.value)  # says what was wrong
    env.rt.settle()
    assert _state(env.store) == before


def test_the_corpus_is_wide() -> None:
    assert len(CASES) >= 60
    assert set(FAMILIES) == {
        "values",
        "links",
        "paths",
        "parameters",
        "sql",
        "declarations",
        "files",
        "transactions",
    }
