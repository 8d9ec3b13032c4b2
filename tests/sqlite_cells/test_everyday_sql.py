"""The SQL a pattern author writes every day runs as SQLite runs it (R20–R24, R40–R44), and live
queries over it re-run exactly when a write changes what they read (R50–R51).

Each statement runs twice: through a database cell (``db.read``/``db.exec``) and through plain
apsw on a separate file that holds the same tables (made from the same declaration) and the same
rows. The results, and the rows after a write, must be equal.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import apsw
import pytest

import sqlite_cells as sc
from sqlite_cells._runtime import Space

TABLES = {
    "authors": sc.table(
        id="integer primary key",
        name="text not null",
        email="text collate nocase",
        born="text",
        profile="text",
        indexes={"authors_by_name": ["name"]},
    ),
    "posts": sc.table(
        id="integer primary key",
        author_id="integer references authors(id) on delete cascade",
        title="text not null",
        body="text",
        score="real not null default 0",
        tags="text",
        owner_cf_link=sc.cf_link(),
        created="text",
        indexes={"posts_by_author": ["author_id", "score"]},
    ),
    "tree": sc.table(id="integer primary key", parent="integer", label="text"),
    "kv": sc.table(k="text primary key", v="integer not null default 0", hits="integer default 0"),
    "labels": sc.table(k="text primary key", label="text"),
    "pairs": sc.table(
        id="integer primary key", code="text unique", slug="text unique", n="integer"
    ),
    "odd": sc.table({"order": "integer", "from": "text", "group": "text", "größe": "text"}),
    "日記": sc.table({"id": "integer primary key", "内容": "text"}),
    "docs": sc.table(id="integer primary key", j="text", b="blob"),
}


@dataclass(frozen=True)
class Owner:
    """A parameter that is a Cell for the database cell and its link string for plain apsw."""

    name: str


@dataclass(frozen=True)
class LinkText:
    """A parameter that is the stored link string of an owner on both sides: a Cell among a
    query's parameters stands for its value (R51), so a link column is compared with text."""

    owner: Owner


ANN, BOB = Owner("ann"), Owner("bob")

SEED: list[tuple[str, list[Any]]] = [
    (
        "INSERT INTO authors (id, name, email, born, profile) VALUES "
        '(1, \'Ann\', \'ann@x.org\', \'1990-05-01\', \'{"lang":"en","tags":["a","b"],"n":3}\'),'
        "(2, 'bob', 'BOB@x.org', '1985-12-31', '{\"lang\":\"fr\",\"n\":5}'),"
        "(3, 'Cé', 'ce@y.org', NULL, NULL),"
        "(4, '_cf_x', 'sqlite_y@x.org', '2000-01-01', '{\"lang\":\"main.t\"}')",
        [],
    ),
    (
        "INSERT INTO posts (id, author_id, title, body, score, tags, owner_cf_link, created) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [1, 1, "Hello", "first post", 4.5, '["intro","hi"]', ANN, "2024-01-01 10:00:00"],
    ),
    (
        "INSERT INTO posts (id, author_id, title, body, score, tags, owner_cf_link, created) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [2, 1, "Again", "second", 2.0, '["hi"]', None, "2024-01-02 11:30:00"],
    ),
    (
        "INSERT INTO posts (id, author_id, title, body, score, tags, owner_cf_link, created) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [3, 2, "Bonjour", "salut 100%", 3.5, "[]", BOB, "2024-02-10 08:00:00"],
    ),
    (
        "INSERT INTO posts (id, author_id, title, body, score, tags, owner_cf_link, created) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [4, 2, "_cf_x", "sqlite_y body", 1.0, '["main.t"]', None, "2024-03-01 00:00:00"],
    ),
    (
        "INSERT INTO posts (id, author_id, title, body, score, tags, owner_cf_link, created) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [5, 3, "temp", "under_score", 5.0, '["x","y","z"]', ANN, "2023-12-31 23:59:59"],
    ),
    ("INSERT INTO posts (id, title) VALUES (6, 'orphan')", []),
    (
        "INSERT INTO tree (id, parent, label) VALUES (1, NULL, 'root'), (2, 1, 'a'), (3, 1, 'b'),"
        " (4, 2, 'a1'), (5, 4, 'a1x')",
        [],
    ),
    ("INSERT INTO kv (k, v, hits) VALUES ('a', 1, 0), ('b', 2, 0), ('temp', 3, 0)", []),
    (
        "INSERT INTO labels (k, label) VALUES ('a', 'Alpha'), ('temp', 'Temporary'), ('z', 'Zed')",
        [],
    ),
    ("INSERT INTO pairs (id, code, slug, n) VALUES (1, 'x', 'sx', 0), (2, 'y', 'sy', 0)", []),
    (
        'INSERT INTO odd ("order", "from", "group", "größe") VALUES (1, \'a\', \'g\', \'ß\'), '
        "(2, 'b', 'h', 'ü')",
        [],
    ),
    ("INSERT INTO \"日記\" (id, \"内容\") VALUES (1, '今日は'), (2, '🎉 emoji')", []),
    (
        'INSERT INTO docs (id, j, b) VALUES (1, \'{"x":{"y":[1,2]},"s":"t"}\', '
        "jsonb('{\"x\":1,\"y\":\"z\"}')), (2, '[1,2,3]', jsonb('[]'))",
        [],
    ),
]


# ---------------------------------------------------------------------------------------------
# The two sides


@dataclass
class World:
    store: Path
    rt: sc.Runtime
    space: Space
    db: sc.SqliteDb
    plain: apsw.Connection
    owners: dict[Owner, sc.Cell]

    def ours(self, params: Any) -> Any:
        return _swap(params, lambda o: self.owners[o], self._text)

    def theirs(self, params: Any) -> Any:
        return _swap(params, lambda o: self.owners[o].link_str(), self._text)

    def _text(self, link: LinkText) -> str:
        return self.owners[link.owner].link_str()

    def exec(self, sql: str, params: Any = None) -> None:
        with self.space.transact():
            self.db.exec(sql, self.ours(params))

    def plain_rows(self, sql: str, params: Any = None) -> list[dict[str, Any]]:
        cur = self.plain.execute(sql, self.theirs(params) or ())
        try:
            names = [d[0] for d in cur.getdescription()]
        except apsw.ExecutionCompleteError:
            return []
        return [dict(zip(names, row, strict=True)) for row in cur]

    def all_rows(self) -> tuple[dict[str, list[dict[str, Any]]], dict[str, list[dict[str, Any]]]]:
        """Every table's rows (rowid first), through the database cell and through plain apsw."""
        ours, theirs = {}, {}
        for table in TABLES:
            sql = f'SELECT rowid AS rid, * FROM "{table}" ORDER BY rowid'
            ours[table] = self.db.read(sql)
            theirs[table] = self.plain_rows(sql)
        return ours, theirs


def _swap(params: Any, fn: Any, text: Any) -> Any:
    if isinstance(params, Owner):
        return fn(params)
    if isinstance(params, LinkText):
        return text(params)
    if isinstance(params, list | tuple):
        return [_swap(p, fn, text) for p in params]
    if isinstance(params, dict):
        return {k: _swap(v, fn, text) for k, v in params.items()}
    return params


def _plain_copy(db: sc.SqliteDb, path: Path) -> apsw.Connection:
    """A plain SQLite file holding the database cell's declared tables and indexes (the runtime's
    own tables left out), empty."""
    source = apsw.Connection(str(db.path), flags=apsw.SQLITE_OPEN_READONLY)
    ddl = [
        sql
        for (sql,) in source.execute(
            "SELECT sql FROM sqlite_schema WHERE sql IS NOT NULL AND name NOT LIKE '\\_cf\\_%' "
            "ESCAPE '\\' ORDER BY type = 'index', rowid"
        )
    ]
    source.close()
    plain = apsw.Connection(str(path))
    for sql in ddl:
        plain.execute(sql)
    return plain


def _make_world(tmp: Path) -> World:
    (tmp / "store").mkdir()
    rt = sc.Runtime(tmp / "store", poll_interval=0.01)
    space = rt.space("demo")
    owners = {ANN: space.cell("ann"), BOB: space.cell("bob")}
    db = space.sqlite_database("everyday", tables=TABLES)
    world = World(tmp / "store", rt, space, db, None, owners)  # type: ignore[arg-type]  # plain comes next
    with space.transact():
        for sql, params in SEED:
            db.exec(sql, world.ours(params))
    world.plain = _plain_copy(db, tmp / "plain.sqlite")
    with world.plain:
        for sql, params in SEED:
            world.plain.execute(sql, world.theirs(params))
    rt.settle()
    return world


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """One world for the reads (they change nothing)."""
    world = _make_world(tmp_path_factory.mktemp("everyday"))
    try:
        yield world
    finally:
        world.rt.close()
        world.plain.close()


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    """A fresh world for each write."""
    world = _make_world(tmp_path)
    try:
        yield world
    finally:
        world.rt.close()
        world.plain.close()


def test_both_sides_start_equal(shared: World) -> None:
    ours, theirs = shared.all_rows()
    assert ours == theirs
    assert len(ours["posts"]) == 6 and ours["posts"][0]["owner_cf_link"].startswith('{"/"')


# ---------------------------------------------------------------------------------------------
# Reads: db.read and the first result of db.query equal plain apsw

READS: list[tuple[str, Any]] = [
    # joins
    (
        "SELECT a.name, p.title FROM authors a JOIN posts p ON p.author_id = a.id ORDER BY p.id",
        None,
    ),
    (
        "SELECT a.name, p.title FROM authors a LEFT JOIN posts p ON p.author_id = a.id "
        "ORDER BY a.id, p.id",
        None,
    ),
    (
        "SELECT a.name, p.title FROM authors AS a LEFT OUTER JOIN posts AS p "
        "ON p.author_id = a.id AND p.score > 3 ORDER BY a.id, p.id",
        None,
    ),
    (
        "SELECT p.title, a.name FROM authors a RIGHT JOIN posts p ON p.author_id = a.id "
        "ORDER BY p.id",
        None,
    ),
    (
        "SELECT a.id AS aid, p.id AS pid FROM authors a FULL OUTER JOIN posts p "
        "ON p.author_id = a.id ORDER BY aid, pid",
        None,
    ),
    ("SELECT kv.k, label FROM kv CROSS JOIN labels ORDER BY kv.k, labels.k", None),
    ("SELECT * FROM kv NATURAL JOIN labels ORDER BY k", None),
    ("SELECT k, v, label FROM kv JOIN labels USING (k) ORDER BY k", None),
    ("SELECT k, v, label FROM kv LEFT JOIN labels USING (k) ORDER BY k", None),
    ("SELECT kv.k, labels.label FROM kv, labels WHERE kv.k = labels.k ORDER BY 1", None),
    (
        "SELECT c.label AS child, p.label AS parent FROM tree c JOIN tree p ON c.parent = p.id "
        "ORDER BY c.id",
        None,
    ),
    ("SELECT t.* FROM tree t ORDER BY t.id DESC", None),
    # subqueries
    (
        "SELECT name, (SELECT count(*) FROM posts p WHERE p.author_id = a.id) AS n "
        "FROM authors a ORDER BY a.id",
        None,
    ),
    (
        "SELECT s.author_id, s.total FROM (SELECT author_id, sum(score) AS total FROM posts "
        "GROUP BY author_id) AS s WHERE s.total > 1 ORDER BY 1",
        None,
    ),
    ("SELECT title FROM posts WHERE score = (SELECT max(score) FROM posts)", None),
    (
        "SELECT name FROM authors a WHERE EXISTS (SELECT 1 FROM posts p WHERE p.author_id = a.id "
        "AND p.score > 4) ORDER BY name",
        None,
    ),
    (
        "SELECT name FROM authors a WHERE NOT EXISTS (SELECT 1 FROM posts p "
        "WHERE p.author_id = a.id) ORDER BY name",
        None,
    ),
    (
        "SELECT title FROM posts WHERE author_id IN (SELECT id FROM authors WHERE email LIKE "
        "'%x.org') ORDER BY id",
        None,
    ),
    (
        "SELECT title FROM posts WHERE author_id NOT IN (SELECT id FROM authors WHERE id > 1) "
        "ORDER BY id",
        None,
    ),
    ("SELECT title FROM posts WHERE id IN (1, 2, 3) ORDER BY id", None),
    (
        "SELECT title FROM posts WHERE (author_id, score) IN (SELECT author_id, max(score) "
        "FROM posts GROUP BY author_id) ORDER BY id",
        None,
    ),
    # compound selects
    ("SELECT name AS x FROM authors UNION SELECT title FROM posts ORDER BY 1", None),
    (
        "SELECT id FROM posts UNION ALL SELECT id FROM authors ORDER BY 1 DESC LIMIT 3 OFFSET 1",
        None,
    ),
    ("SELECT author_id FROM posts INTERSECT SELECT id FROM authors ORDER BY 1", None),
    ("SELECT id FROM authors EXCEPT SELECT author_id FROM posts ORDER BY 1", None),
    ("SELECT k FROM kv UNION SELECT k FROM labels EXCEPT SELECT 'z' ORDER BY k LIMIT 10", None),
    # WITH
    (
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 10) "
        "SELECT sum(x) AS s, count(*) AS n FROM c",
        None,
    ),
    (
        "WITH RECURSIVE walk(id, label, depth, path) AS (SELECT id, label, 0, label FROM tree "
        "WHERE parent IS NULL UNION ALL SELECT t.id, t.label, w.depth + 1, "
        "w.path || '/' || t.label FROM tree t JOIN walk w ON t.parent = w.id) "
        "SELECT * FROM walk ORDER BY path",
        None,
    ),
    (
        "WITH big AS (SELECT author_id, score FROM posts WHERE score > 2), "
        "names AS MATERIALIZED (SELECT id, name FROM authors) "
        "SELECT n.name, sum(b.score) AS s FROM big b JOIN names n ON n.id = b.author_id "
        "GROUP BY n.name ORDER BY n.name",
        None,
    ),
    ("WITH v(x, y) AS (VALUES (1, 'a'), (2, 'b')) SELECT * FROM v ORDER BY x DESC", None),
    ("WITH x AS NOT MATERIALIZED (SELECT k FROM kv) SELECT count(*) AS n FROM x", None),
    ("WITH kv AS (SELECT 'shadow' AS k) SELECT k FROM kv", None),  # a CTE hides a table
    ("WITH kv AS (SELECT 1 AS k) SELECT count(*) AS n FROM kv", None),
    ("WITH nosuch AS (SELECT 1 AS x) SELECT x FROM nosuch", None),
    # windows
    (
        "SELECT id, row_number() OVER (PARTITION BY author_id ORDER BY created) AS rn FROM posts "
        "ORDER BY id",
        None,
    ),
    (
        "SELECT id, sum(score) OVER (ORDER BY id ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) AS s "
        "FROM posts ORDER BY id",
        None,
    ),
    (
        "SELECT id, avg(score) OVER w AS a, rank() OVER w AS r FROM posts "
        "WINDOW w AS (PARTITION BY author_id ORDER BY score DESC) ORDER BY id",
        None,
    ),
    (
        "SELECT id, lag(title) OVER (ORDER BY id) AS prev, lead(title, 2, 'none') OVER "
        "(ORDER BY id) AS next2, first_value(title) OVER (PARTITION BY author_id ORDER BY id "
        "RANGE BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING) AS first FROM posts "
        "ORDER BY id",
        None,
    ),
    (
        "SELECT id, count(*) OVER (ORDER BY score GROUPS BETWEEN 1 PRECEDING AND 1 FOLLOWING "
        "EXCLUDE CURRENT ROW) AS c, ntile(2) OVER (ORDER BY id) AS t, percent_rank() OVER "
        "(ORDER BY score) AS pr, cume_dist() OVER (ORDER BY score) AS cd FROM posts ORDER BY id",
        None,
    ),
    (
        "SELECT id, total(score) FILTER (WHERE score > 2) OVER (ORDER BY id) AS t FROM posts "
        "ORDER BY id",
        None,
    ),
    # aggregates
    (
        "SELECT author_id, count(*) AS n, sum(score) FILTER (WHERE score > 2) AS hi, "
        "max(created) AS last FROM posts GROUP BY author_id HAVING count(*) >= 1 "
        "ORDER BY author_id",
        None,
    ),
    (
        "SELECT count(*) FILTER (WHERE owner_cf_link IS NOT NULL) AS linked, count(DISTINCT "
        "author_id) AS authors, avg(score) AS avg, min(title) AS first FROM posts",
        None,
    ),
    (
        "SELECT string_agg(title, ',' ORDER BY title) AS titles, group_concat(DISTINCT author_id) "
        "AS ids FROM posts",
        None,
    ),
    (
        "SELECT json_group_array(k) AS ks, json_group_object(k, v) AS kvs FROM "
        "(SELECT k, v FROM kv ORDER BY k)",
        None,
    ),
    ("SELECT DISTINCT author_id FROM posts ORDER BY author_id NULLS LAST", None),
    # expressions
    (
        "SELECT id, CASE WHEN score >= 4 THEN 'high' WHEN score >= 2 THEN 'mid' ELSE 'low' END AS "
        "band, CASE author_id WHEN 1 THEN 'ann' ELSE 'other' END AS who FROM posts ORDER BY id",
        None,
    ),
    (
        "SELECT id, coalesce(body, tags, 'none') AS c, iif(score > 3, 'y', 'n') AS big, "
        "nullif(author_id, 1) AS nn, CAST(score AS INTEGER) AS si, CAST(id AS TEXT) AS st "
        "FROM posts ORDER BY id",
        None,
    ),
    ("SELECT id FROM posts WHERE body LIKE '%100\\%%' ESCAPE '\\'", None),
    ("SELECT id FROM posts WHERE title LIKE '\\_cf\\_%' ESCAPE '\\'", None),
    ("SELECT id FROM posts WHERE title GLOB 'B*' OR title GLOB '[AH]*' ORDER BY id", None),
    ("SELECT name FROM authors WHERE name = 'ann' COLLATE NOCASE", None),
    ("SELECT name FROM authors ORDER BY name COLLATE NOCASE", None),
    ("SELECT name FROM authors WHERE email = 'bob@x.org'", None),
    (
        "SELECT id, date(created) AS d, strftime('%Y-%m', created) AS ym, "
        "julianday(created) - julianday('2024-01-01') AS days, datetime(created, '+1 day', "
        "'start of month') AS m, unixepoch(created) AS u FROM posts ORDER BY id",
        None,
    ),
    (
        "SELECT printf('%05.1f|%s|%d', score, title, id) AS p, format('%q', title) AS f "
        "FROM posts ORDER BY id",
        None,
    ),
    (
        "SELECT id, json_extract(profile, '$.lang') AS lang, profile -> '$.tags' AS tags, "
        "profile ->> '$.n' AS n, profile ->> 'lang' AS l2 FROM authors ORDER BY id",
        None,
    ),
    ("SELECT p.id, j.key, j.value FROM posts p, json_each(p.tags) j ORDER BY p.id, j.key", None),
    (
        "SELECT a.id, t.fullkey, t.type FROM authors a, json_tree(a.profile) AS t "
        "ORDER BY a.id, t.id",
        None,
    ),
    ("SELECT value FROM json_each('[1, 2, 3]') WHERE value > 1", None),
    (
        "SELECT id, json_extract(owner_cf_link, '$./.link@1.id') IS NOT NULL AS linked "
        "FROM posts ORDER BY id",
        None,
    ),
    ("VALUES (1, 'a'), (2, 'b')", None),
    (
        "SELECT 1 + 1 AS two, 'x' || 'y' AS xy, abs(-3) AS a, typeof(1.5) AS t, sqrt(16) AS r, "
        "pow(2, 10) AS p, round(2.567, 1) AS rd, hex('hi') AS h, quote('it''s') AS q",
        None,
    ),
    (
        "SELECT upper('straße') AS u, length('🎉x') AS n, unicode('é') AS c, char(233, 0x1F389) "
        "AS s, substr('héllo', 2, 3) AS sub, instr('héllo', 'l') AS i, replace('aaa', 'a', 'bb') "
        "AS r, trim('  x  ') AS t",
        None,
    ),
    ("SELECT id FROM posts WHERE created BETWEEN '2024-01-01' AND '2024-02-28' ORDER BY id", None),
    ("SELECT id FROM posts WHERE author_id IS NOT DISTINCT FROM NULL", None),
    ("SELECT rowid, _rowid_, oid, k FROM kv ORDER BY rowid", None),
    ("SELECT name FROM authors INDEXED BY authors_by_name WHERE name > 'A' ORDER BY name", None),
    ("SELECT name FROM authors NOT INDEXED WHERE id > 1 ORDER BY id", None),
    ('SELECT * FROM "posts" WHERE id = 1', None),
    ("SELECT * FROM [authors] WHERE id = 2", None),
    ("SELECT * FROM `kv` ORDER BY k", None),
    ("SELECT * FROM 'labels' ORDER BY k", None),
    # parameters
    ("SELECT id FROM posts WHERE author_id = ? AND score > ? ORDER BY id", [1, 1.0]),
    ("SELECT id FROM posts WHERE author_id = ?1 OR id = ?1 OR id = ?2 ORDER BY id", [2, 6]),
    (
        "SELECT id FROM posts WHERE author_id = :who AND score >= :min ORDER BY id",
        {"who": 2, "min": 1},
    ),
    ("SELECT id FROM posts WHERE author_id = @who ORDER BY id", {"who": 1}),
    ("SELECT id FROM posts WHERE author_id = $who ORDER BY id", {"who": 3}),
    ("SELECT id FROM posts ORDER BY id LIMIT ? OFFSET ?", [2, 3]),
    ("SELECT id FROM posts WHERE title IN (?, ?, ?) ORDER BY id", ["Hello", "temp", "_cf_x"]),
    ("SELECT id FROM posts WHERE owner_cf_link = ? ORDER BY id", [LinkText(ANN)]),
    # keywords, names and literals that look like names
    (
        'SELECT "order", [from], `group`, "größe" FROM odd WHERE "order" > 0 ORDER BY "order" DESC',
        None,
    ),
    ('SELECT "order" AS "select", [from] AS [where] FROM odd AS "table" ORDER BY 1', None),
    ("SELECT '_cf_x' AS a, 'sqlite_y' AS b, 'main.t' AS c, 'temp' AS d, 'main' AS e", None),
    ("SELECT id FROM posts WHERE title = '_cf_x' OR body LIKE 'sqlite_%' ORDER BY id", None),
    ("SELECT id FROM posts WHERE title IN ('_cf_x', 'temp', 'main.t') ORDER BY id", None),
    ("SELECT name FROM authors WHERE profile ->> '$.lang' = 'main.t'", None),
    ("SELECT k AS temp, v AS main FROM kv WHERE k = 'temp'", None),
    ("SELECT id, label FROM tree WHERE label = 'sqlite_master' OR label = '_cf_log'", None),
    ("SELECT 'a;b' AS semi, '--' AS dash, '/*' AS open", None),
    ("SELECT x'00ff' AS b, 1e3 AS f, 0x10 AS h, -9223372036854775808 AS lo, NULL AS n", None),
    # comments everywhere
    (
        "/* lead */ SELECT /* c */ id -- one\n, title /* ; DROP TABLE posts */ FROM /* _cf_log */ "
        "posts -- sqlite_master\n WHERE id = 1 /* main.t */ -- trailing",
        None,
    ),
    ("SELECT id FROM posts WHERE id = 2; -- done", None),
    ("SELECT id FROM posts WHERE id = 3 ; /* done */ ", None),
    # Unicode
    ('SELECT "内容" FROM "日記" ORDER BY id', None),
    ("SELECT name FROM authors WHERE name = 'Cé'", None),
    ("SELECT 'héllo wörld 🎉' AS s, '日本語' AS j", None),
    ('SELECT d.id AS "ключ", d."内容" AS "値" FROM "日記" AS d WHERE d."内容" LIKE \'%🎉%\'', None),
]


def _id(case: tuple[str, Any]) -> str:
    return case[0][:60]


@pytest.mark.parametrize("case", READS, ids=[_id(c) for c in READS])
def test_a_read_returns_what_sqlite_returns(shared: World, case: tuple[str, Any]) -> None:
    sql, params = case
    expected = shared.plain_rows(sql, params)
    assert shared.db.read(sql, shared.ours(params)) == expected


@pytest.mark.parametrize(
    "case",
    [READS[i] for i in range(0, len(READS), 4)],
    ids=[_id(READS[i]) for i in range(0, len(READS), 4)],
)
def test_a_live_query_returns_what_sqlite_returns(shared: World, case: tuple[str, Any]) -> None:
    sql, params = case
    q = shared.db.query(sql, params=shared.ours(params))
    shared.rt.settle()
    state = q.get()
    assert state.error is None and not state.pending
    assert state.result == shared.plain_rows(sql, params)


def test_two_result_columns_of_one_name_keep_the_last_as_a_dict_does(shared: World) -> None:
    """A row is a dict keyed by column name (R43): of two result columns named alike the row
    holds the last one, as ``dict(zip(names, row))`` over SQLite's cursor does; ``AS`` reads
    both (docs/decisions.md)."""
    assert shared.db.read("SELECT 1 AS x, 2 AS x") == [{"x": 2}]
    sql = "SELECT p.id, a.id FROM posts p JOIN authors a ON a.id = p.author_id ORDER BY p.id"
    rows = shared.db.read(sql)
    assert rows == shared.plain_rows(sql) and rows
    assert [r["id"] for r in rows] == [
        r["a_id"] for r in shared.db.read(sql.replace("a.id", "a.id AS a_id", 1))
    ]
    q = shared.db.query("SELECT 1 AS x, 2 AS x")
    shared.rt.settle()
    assert q.get().error is None and q.get().result == [{"x": 2}]


# ---------------------------------------------------------------------------------------------
# Writes: the rows after db.exec equal the rows after plain apsw ran the same statement

WRITES: list[tuple[str, Any]] = [
    ("INSERT INTO kv (k, v) VALUES ('c', 4), ('d', 5), ('e', 6)", None),
    ("INSERT INTO kv (k, v) SELECT title, id FROM posts WHERE id < 4", None),
    ("INSERT INTO tree DEFAULT VALUES", None),
    ("INSERT INTO tree VALUES (10, 1, 'x'), (11, 10, 'y')", None),
    ("INSERT OR REPLACE INTO kv (k, v) VALUES ('a', 100), ('new', 1)", None),
    ("INSERT OR IGNORE INTO kv (k, v) VALUES ('a', 100), ('new', 1)", None),
    ("INSERT OR ABORT INTO kv (k, v) VALUES ('new', 1)", None),
    ("INSERT OR FAIL INTO kv (k, v) VALUES ('new', 1)", None),
    ("INSERT OR ROLLBACK INTO kv (k, v) VALUES ('new', 1)", None),
    ("REPLACE INTO kv VALUES ('b', 7, 7)", None),
    ("REPLACE INTO kv (k, v) SELECT k, 99 FROM labels", None),
    (
        "INSERT INTO kv (k, v) VALUES ('a', 10), ('new', 5) ON CONFLICT (k) DO UPDATE "
        "SET v = excluded.v + kv.v, hits = hits + 1",
        None,
    ),
    ("INSERT INTO kv (k, v) VALUES ('a', 10) ON CONFLICT DO NOTHING", None),
    (
        "INSERT INTO kv (k, v) VALUES ('a', 10) ON CONFLICT (k) DO UPDATE SET v = excluded.v "
        "WHERE excluded.v > kv.v",
        None,
    ),
    (
        "INSERT INTO pairs (id, code, slug, n) VALUES (3, 'x', 'new', 1), (4, 'q', 'sy', 1), "
        "(5, 'r', 'sr', 1) ON CONFLICT (code) DO UPDATE SET n = n + 1 ON CONFLICT (slug) "
        "DO UPDATE SET n = n + 10 ON CONFLICT DO NOTHING",
        None,
    ),
    (
        "INSERT INTO kv (k, v) SELECT title, id FROM posts WHERE true ON CONFLICT (k) "
        "DO UPDATE SET v = excluded.v",
        None,
    ),
    (
        "UPDATE posts SET score = score + s.n FROM (SELECT author_id, count(*) AS n FROM posts "
        "GROUP BY author_id) AS s WHERE posts.author_id = s.author_id",
        None,
    ),
    ("UPDATE OR IGNORE pairs SET code = 'y' WHERE id = 1", None),
    ("UPDATE OR REPLACE pairs SET code = 'y' WHERE id = 1", None),
    ("UPDATE authors SET (name, born) = ('Anna', '1991-01-01') WHERE id = 1", None),
    (
        "UPDATE authors SET (name, email) = (SELECT title, body FROM posts WHERE id = 1) "
        "WHERE id = 2",
        None,
    ),
    (
        "UPDATE posts SET score = 0 WHERE id IN (SELECT id FROM posts ORDER BY score DESC LIMIT 2)",
        None,
    ),
    ("DELETE FROM posts WHERE author_id IN (SELECT id FROM authors WHERE name LIKE 'b%')", None),
    ("DELETE FROM authors WHERE id = 1", None),
    ("DELETE FROM kv", None),
    ("DELETE FROM posts WHERE rowid = 3", None),
    (
        "WITH old AS (SELECT id FROM posts WHERE created < '2024-01-02') "
        "DELETE FROM posts WHERE id IN old",
        None,
    ),
    ("WITH s(k, v) AS (VALUES ('p', 1), ('q', 2)) INSERT INTO kv (k, v) SELECT k, v FROM s", None),
    (
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 5) "
        "INSERT INTO tree (id, parent, label) SELECT 100 + x, NULL, 'gen' || x FROM c",
        None,
    ),
    (
        "WITH t AS (SELECT max(score) AS m FROM posts) UPDATE posts SET score = (SELECT m FROM t) "
        "WHERE id = 6",
        None,
    ),
    ("WITH kv AS (SELECT 'z' AS k) INSERT INTO kv (k, v) SELECT k, 1 FROM kv", None),
    ("WITH posts AS (SELECT 1 AS id) DELETE FROM posts WHERE id IN (SELECT id FROM posts)", None),
    ("WITH labels(k) AS (VALUES ('a')) DELETE FROM kv WHERE k IN labels", None),
    ("UPDATE posts SET tags = json_insert(tags, '$[#]', 'new') WHERE tags IS NOT NULL", None),
    ("UPDATE posts SET body = CASE WHEN score > 3 THEN upper(body) ELSE body END", None),
    ("UPDATE kv SET v = v * 2, hits = hits + 1 WHERE k IN ('a', 'temp')", None),
    ("INSERT INTO kv (k, v) VALUES (:k, :v)", {"k": "named", "v": 9}),
    ("INSERT INTO kv (k, v) VALUES (@k, $v)", {"k": "at", "v": 8}),
    ("INSERT INTO kv (v, k) VALUES (?2, ?1)", ["num", 7]),
    (
        "INSERT INTO kv (k, v) VALUES ('_cf_x', 1), ('sqlite_y', 2), ('main.t', 3), ('temp', 4) "
        "ON CONFLICT (k) DO NOTHING",
        None,
    ),
    ("UPDATE kv SET k = 'main' WHERE k = 'temp'", None),
    ("INSERT INTO odd (\"order\", [from], `group`, \"größe\") VALUES (3, 'c', 'i', 'ö')", None),
    ("UPDATE odd SET \"group\" = 'G' WHERE [from] = 'a'", None),
    ('UPDATE "日記" SET "内容" = \'明日 🎉\' WHERE id = 1', None),
    # link columns
    ("INSERT INTO posts (title, owner_cf_link) VALUES (?, ?)", ["linked", BOB]),
    ("UPDATE posts SET owner_cf_link = ? WHERE id = ?", [BOB, 2]),
    ("UPDATE posts SET owner_cf_link = :o WHERE id = :id", {"o": ANN, "id": 4}),
    ("UPDATE posts SET owner_cf_link = NULL WHERE id = 1", None),
    (
        "INSERT INTO posts (title, owner_cf_link) SELECT title || '!', owner_cf_link FROM posts "
        "WHERE owner_cf_link IS NOT NULL",
        None,
    ),
    (
        "INSERT INTO posts (id, title, owner_cf_link) VALUES (1, 'x', ?) ON CONFLICT (id) "
        "DO UPDATE SET owner_cf_link = excluded.owner_cf_link",
        [BOB],
    ),
    ("/* why */ UPDATE posts -- the posts\n SET title = 'T' /* ; */ WHERE id = 6;", None),
    # JSON edits of several paths (the write path computes them apart, R44): SQLite's own bytes
    ("UPDATE docs SET b = jsonb_set(jsonb(j), '$.a', 'q', '$.b', 1, '$.c', j -> '$.x')", None),
    ("UPDATE docs SET b = jsonb_insert(b, '$.n', 'text', '$.m', json('[1]'), '$.o', 2.5)", None),
    (
        "UPDATE docs SET b = jsonb_replace(b, '$.x', 'long ' || replace(hex(zeroblob(200)), '0', "
        "'ab'), '$.y', NULL)",
        None,
    ),
    ("UPDATE docs SET b = jsonb_set(b, '$[#]', ?, '$[#]', ?) WHERE id = 2", ["é🎉", 7]),
    ("UPDATE docs SET j = json_set(j, '$.a', 'q', '$.b', 1, '$.c', jsonb('{\"d\":1}'))", None),
    ("UPDATE docs SET b = jsonb_remove(b, '$.x', '$.y')", None),
    ("INSERT INTO docs (j) SELECT json_extract(j, '$.x', '$.s') FROM docs WHERE id = 1", None),
]


@pytest.mark.parametrize("case", WRITES, ids=[_id(c) for c in WRITES])
def test_a_write_leaves_the_rows_sqlite_leaves(world: World, case: tuple[str, Any]) -> None:
    sql, params = case
    with world.plain:
        world.plain.execute(sql, world.theirs(params) or ())
    rev = world.db.rev
    world.exec(sql, params)
    ours, theirs = world.all_rows()
    assert ours == theirs
    assert world.db.rev == rev + 1


FAILING_WRITES: list[tuple[str, Any]] = [
    ("INSERT INTO posts (id, title) VALUES (1, 'dup')", None),
    ("INSERT INTO kv (k, v) VALUES ('z', NULL)", None),
    ("INSERT OR ABORT INTO kv (k, v) VALUES ('z', 1), ('a', 1)", None),
    ("INSERT OR FAIL INTO kv (k, v) VALUES ('z', 1), ('a', 1)", None),
    ("INSERT OR ROLLBACK INTO kv (k, v) VALUES ('z', 1), ('a', 1)", None),
    ("UPDATE OR ROLLBACK pairs SET code = 'y' WHERE id = 1", None),
    ("UPDATE pairs SET code = 'y'", None),
    ("INSERT INTO kv (k, v) VALUES ('a', 1) ON CONFLICT (v) DO NOTHING", None),
    ("INSERT INTO nowhere (k) VALUES (1)", None),
    ("UPDATE kv SET nothing = 1", None),
]


@pytest.mark.parametrize("case", FAILING_WRITES, ids=[_id(c) for c in FAILING_WRITES])
def test_a_write_sqlite_refuses_is_an_exec_error_and_writes_nothing(
    world: World, case: tuple[str, Any]
) -> None:
    sql, params = case
    with pytest.raises(apsw.Error):
        world.plain.execute(sql, world.theirs(params) or ())
    before = world.all_rows()[0]
    cell = world.space.cell("beside")
    rev = world.db.rev
    with pytest.raises(sc.ExecError) as info, world.space.transact():
        cell.set("written with it")
        world.db.exec(sql, world.ours(params))
    assert info.value.db_id == world.db.id
    assert world.all_rows()[0] == before
    assert cell.get() is None and world.db.rev == rev
    # The runtime is still usable: the next commit goes through.
    world.exec("INSERT INTO kv (k, v) VALUES ('after', 1)")
    assert world.db.read("SELECT v FROM kv WHERE k = 'after'") == [{"v": 1}]
    assert world.all_rows()[0]["posts"] == before["posts"]


@pytest.mark.parametrize(
    "sql",
    [
        "DELETE FROM kv ORDER BY k LIMIT 1",
        "DELETE FROM kv LIMIT 1",
        "UPDATE kv SET v = 0 ORDER BY k DESC LIMIT 2",
        "WITH x AS (SELECT 1) UPDATE kv SET v = 0 LIMIT 1 OFFSET 1",
    ],
)
def test_update_or_delete_with_order_by_or_limit_is_refused_saying_what_to_write(
    world: World, sql: str
) -> None:
    """This SQLite is built without SQLITE_ENABLE_UPDATE_DELETE_LIMIT: SQLite refuses the
    statement, and the runtime says so with its own error, says what to write instead, and
    writes nothing."""
    options = {row[0] for row in world.plain.execute("PRAGMA compile_options")}
    assert "ENABLE_UPDATE_DELETE_LIMIT" not in options
    with pytest.raises(apsw.SQLError):
        world.plain.execute(sql)
    before = world.all_rows()[0]
    with pytest.raises(sc.ExecError) as info:
        world.exec(sql)
    assert not isinstance(info.value, apsw.Error)
    assert "built without ORDER BY and LIMIT on UPDATE and DELETE" in str(info.value)
    assert "WHERE rowid IN (SELECT rowid FROM" in str(info.value)
    assert world.all_rows()[0] == before
    # The form it names does the same.
    instead = "DELETE FROM kv WHERE rowid IN (SELECT rowid FROM kv ORDER BY k LIMIT 1)"
    world.exec(instead)
    with world.plain:
        world.plain.execute(instead)
    ours, theirs = world.all_rows()
    assert ours == theirs and len(ours["kv"]) == len(before["kv"]) - 1


def test_other_syntax_errors_get_no_such_advice(world: World) -> None:
    for sql in ("INSERT INTO kv (k) VALUES ('a') ORDER BY k", "UPDATE kv SET v = 1 WHERE"):
        with pytest.raises(sc.ExecError) as info:
            world.exec(sql)
        assert "built without" not in str(info.value)


def test_a_json_edit_of_several_paths_stores_what_a_read_of_the_same_call_computes(
    world: World,
) -> None:
    """A blob written by ``jsonb_set(…)`` equals the same call in a read (reads are not computed
    apart): a text value is inserted as the builtin inserts it, not re-encoded."""
    call = "jsonb_set(jsonb('{}'), '$.a', 'q', '$.b', 'r s', '$.c', json('[1]'))"
    world.exec(f"UPDATE docs SET b = {call} WHERE id = 2")
    assert world.db.read(f"SELECT id FROM docs WHERE b = {call}") == [{"id": 2}]
    assert world.db.read("SELECT hex(b) AS h FROM docs WHERE id = 2") == world.plain_rows(
        f"SELECT hex({call}) AS h"
    )


def test_a_stored_link_reads_back_as_the_cell(world: World) -> None:
    world.exec("UPDATE posts SET owner_cf_link = ? WHERE id = 2", [BOB])

    @dataclass
    class Row:
        id: int
        owner_cf_link: sc.Cell | None

    rows = world.db.read(
        "SELECT id, owner_cf_link FROM posts WHERE id IN (1, 2, 6) ORDER BY id", row=Row
    )
    assert [r.owner_cf_link.id if r.owner_cf_link else None for r in rows] == [
        world.owners[ANN].id,
        world.owners[BOB].id,
        None,
    ]


def test_rows_linking_to_a_cell_are_found_by_the_cell_s_link_not_by_the_cell(
    world: World,
) -> None:
    """A cell among a read's parameters stands for its value (R51: the query re-runs when it
    changes), so matching a link column takes the cell's stored link; a cell whose value
    SQLite cannot bind says so, and how to match a link column."""
    ann = world.owners[ANN]
    with world.space.transact():
        ann.set({"name": "Ann"})
    sql = "SELECT id FROM posts WHERE owner_cf_link = ? ORDER BY id"
    expected = world.plain_rows(sql, [ANN])
    assert expected and world.db.read(sql, [ann.link_str()]) == expected
    with pytest.raises(sc.QueryError) as info:
        world.db.read(sql, [ann])
    said = str(info.value)  # (compared with a link column: said so, as for a number)
    assert "parameter 1 is {'name': 'Ann'} (dict), not a link" in said, said
    assert "compares it with the link column owner_cf_link" in said and "cell.link_str()" in said


LINK_ADVICE = (
    "a Cell among a read's parameters stands for its value, so to match a *_cf_link column bind "
    "the cell's link, cell.link_str()"
)


def test_a_cell_whose_value_is_no_link_compared_with_a_link_column_is_refused(
    world: World,
) -> None:
    """A link column holds links or NULL: a cell parameter compared with one (``=``, ``IS``,
    ``==``, ``IN``, either side, qualified or not, named or numbered) whose value is not link
    text could match no row — a number, text — so the read says so with the advice a dict
    gets, and so does the query as its error, instead of returning no rows. Link text in a
    cell matches; None (a cell never written) is NULL, which ``IS ?`` matches to the rows
    without a link; a negated comparison (``!=``, ``IS NOT``, ``NOT IN``), true of every linked
    row, binds it as it is; a cell holding a cell keeps its own refusal; a cell compared with
    any other column binds its value as before."""
    ann = world.owners[ANN]
    counter, text, unset = (world.space.cell(n) for n in ("counter", "text", "unset"))
    holder, link_text = world.space.cell("holder"), world.space.cell("link_text")
    with world.space.transact():
        counter.set(1)
        text.set("ann")
        holder.set(ann)
        link_text.set(ann.link_str())
    world.rt.settle(10)
    statements = [
        ("SELECT id FROM posts WHERE owner_cf_link = ? ORDER BY id", lambda c: [c]),
        ("SELECT id FROM posts WHERE ? IS posts.owner_cf_link ORDER BY id", lambda c: c),
        ("SELECT id FROM posts WHERE (owner_cf_link) == (:o) ORDER BY id", lambda c: {"o": c}),
        ("SELECT id FROM posts WHERE owner_cf_link IN (?, ?) ORDER BY id", lambda c: [c, c]),
        (
            "WITH p AS (SELECT id FROM posts WHERE owner_cf_link = :o OR title = :o) "
            "SELECT id FROM p ORDER BY id",
            lambda c: {"o": c},
        ),
    ]
    before = world.all_rows()
    for sql, params in statements:
        for cell, shown in ((counter, "1 (int)"), (text, "'ann' (str)")):
            with pytest.raises(sc.QueryError) as info:
                world.db.read(sql, params(cell))
            said = str(info.value)
            assert isinstance(info.value, TypeError) and isinstance(info.value, ValueError)
            assert (
                f"the value of the cell given as parameter {'o' if ':o' in sql else 1} is "
                f"{shown}, not a link, and the statement compares it with the link column "
                "owner_cf_link, which holds only links or NULL, so it can match no row: "
            ) in said, said
            assert said.endswith(f"{LINK_ADVICE} in {sql!r}"), said
            query = world.db.query(sql, params(cell))
            world.rt.settle(10)
            state = query.get()
            assert state.result is None and isinstance(state.error, sc.QueryError)
            assert str(state.error) == said
        # Link text in a cell is a link: the read matches the rows linking to it.
        plain = params(ANN)
        expected = world.plain_rows(sql, plain if isinstance(plain, list | dict) else [plain])
        assert expected and world.db.read(sql, params(link_text)) == expected
        with pytest.raises(sc.QueryError, match="is a cell whose value is <Cell"):
            world.db.read(sql, params(holder))
    assert world.db.read("SELECT id FROM posts WHERE owner_cf_link = ?", [link_text]) == [
        {"id": 1},
        {"id": 5},
    ]
    unlinked = "SELECT id FROM posts WHERE owner_cf_link IS ? ORDER BY id"
    expected = world.plain_rows("SELECT id FROM posts WHERE owner_cf_link IS NULL ORDER BY id")
    assert expected and world.db.read(unlinked, [unset]) == expected
    assert world.db.read("SELECT id FROM posts WHERE owner_cf_link = ?", [unset]) == []
    # A negated comparison holds for every linked row whatever the value: bound as it is.
    for sql in (
        "SELECT id FROM posts WHERE owner_cf_link != ? ORDER BY id",
        "SELECT id FROM posts WHERE owner_cf_link IS NOT ? ORDER BY id",
        "SELECT id FROM posts WHERE owner_cf_link NOT IN (?) ORDER BY id",
    ):
        expected = world.plain_rows(sql, ["ann"])
        assert expected and world.db.read(sql, [text]) == expected
    # Compared with another column, a cell binds its value as it did.
    assert world.db.read("SELECT id FROM posts WHERE id = ?", [counter]) == [{"id": 1}]
    every = "SELECT id FROM posts WHERE title = ? OR ? IS NULL ORDER BY id"
    assert world.db.read(every, [text, unset]) == world.plain_rows(
        "SELECT id FROM posts ORDER BY id"
    )
    assert world.all_rows() == before


def test_a_cell_of_text_sqlite_cannot_bind_compared_with_a_link_column_is_refused(
    world: World,
) -> None:
    """A derived cell may hold text with a lone surrogate (a file name decoded with
    ``surrogateescape``), which SQLite cannot bind. Compared with a link column, the read
    refused it with a raw ``UnicodeEncodeError`` (the text was encoded to be looked at as a
    link) and the live query stayed pending for good with no error; both now say what any
    other use of that value says."""
    name = world.space.cell("file_name")
    with world.space.transact():
        name.set("report")
    decoded = sc.derive(name, lambda v: v + "\udcff")
    world.rt.settle(10)
    before = world.all_rows()
    for sql in (
        "SELECT id FROM posts WHERE owner_cf_link = ?",
        "SELECT id FROM posts WHERE owner_cf_link = ? OR title = ?1",
    ):
        with pytest.raises(sc.QueryError) as info:
            world.db.read(sql, [decoded])
        said = str(info.value)
        assert isinstance(info.value, ValueError)
        assert (
            "the value of the cell given as parameter 1 is text with a lone surrogate at "
            "position 6 ('report\\udcff'), which SQLite cannot store as UTF-8"
        ) in said, said
        query = world.db.query(sql, [decoded])
        world.rt.settle(10)
        state = query.get()
        assert not state.pending and state.result is None
        assert isinstance(state.error, sc.QueryError) and str(state.error) == said
    assert world.all_rows() == before


class _Markup(str):
    """Text of another library's subclass of str (an escaped-markup type, say)."""


def test_a_cell_of_link_text_of_a_str_subclass_matches_a_link_column(world: World) -> None:
    """Link text held as a subclass of str is bound as its text, which SQLite compares with
    the link column like any link text: it was refused as "not a link" (only an exact ``str``
    was looked at), while the same subclass given for any other column binds as its text."""
    ann = world.owners[ANN]
    holder = world.space.cell("holder_of_link_text")
    with world.space.transact():
        holder.set(ann.link_str())
    as_markup = sc.derive(holder, _Markup)
    world.rt.settle(10)
    sql = "SELECT id FROM posts WHERE owner_cf_link = ? ORDER BY id"
    expected = world.plain_rows(sql, [ANN])
    assert expected and world.db.read(sql, [as_markup]) == expected
    query = world.db.query(sql, [as_markup])
    world.rt.settle(10)
    assert query.get().result == expected and query.get().error is None
    with world.space.transact():
        holder.set("ann")
    world.rt.settle(10)
    with pytest.raises(sc.QueryError, match=r"is 'ann' \(_Markup\), not a link"):
        world.db.read(sql, [as_markup])


# ---------------------------------------------------------------------------------------------
# What the SPEC forbids stays refused, with its kind

REFUSED_READS = [
    ('SELECT k AS "_cf_y" FROM kv', "reserved-name"),
    ("SELECT k AS [sqlite_y] FROM kv", "reserved-name"),
    ("SELECT temp.k FROM kv AS temp", "schema-qualified"),
    ('SELECT "Temp".k FROM kv AS "Temp"', "schema-qualified"),
    ("SELECT * FROM main.kv", "schema-qualified"),
    ("SELECT * FROM kv AS a WHERE a.k.x = 1", "schema-qualified"),
    ("SELECT * FROM '_cf_meta'", "reserved-name"),
    ("SELECT * FROM kv WHERE k IN '_cf_watermark'", "reserved-name"),
    ("SELECT * FROM pragma_table_info('kv')", "forbidden-function"),
    ("DELETE FROM kv", "not-read-only"),
    ("EXPLAIN SELECT 1", "not-read-only"),
    ("SELECT 1; SELECT 2", "multiple-statements"),
    ("  -- nothing\n", "empty"),
]


@pytest.mark.parametrize("sql,kind", REFUSED_READS)
def test_what_the_spec_forbids_in_a_read_stays_refused(shared: World, sql: str, kind: str) -> None:
    with pytest.raises(sc.GuardViolation) as info:
        shared.db.read(sql)
    assert info.value.kind == kind
    with pytest.raises(sc.GuardViolation) as info:
        shared.db.query(sql)
    assert info.value.kind == kind


REFUSED_WRITES = [
    ("INSERT INTO kv (k) VALUES ('z') RETURNING k", "returning"),
    ("SELECT 1", "not-a-write"),
    ("WITH x AS (SELECT 1) SELECT * FROM x", "not-a-write"),
    ("INSERT INTO main.kv (k) VALUES ('z')", "schema-qualified"),
    ("UPDATE OR IGNORE '_cf_meta' SET x = 1", "reserved-name"),
    ("CREATE TABLE t (x)", "ddl"),
    ("PRAGMA foreign_keys = ON", "forbidden-statement"),
]


@pytest.mark.parametrize("sql,kind", REFUSED_WRITES)
def test_what_the_spec_forbids_in_a_write_stays_refused(world: World, sql: str, kind: str) -> None:
    before = world.all_rows()[0]
    with world.space.transact():
        with pytest.raises(sc.GuardViolation) as info:
            world.db.exec(sql)
        assert info.value.kind == kind
        world.db.exec("INSERT INTO kv (k) VALUES ('still usable')")
    after = world.all_rows()[0]
    assert after["kv"][-1]["k"] == "still usable"
    after["kv"].pop()
    assert after == before


# ---------------------------------------------------------------------------------------------
# Live queries re-run exactly when a write changes what they read (R51)


@dataclass(frozen=True)
class Live:
    sql: str
    wakes: list[str]  # writes that change something the query reads
    sleeps: list[str]  # writes to other tables, or to columns it never reads


LIVE = [
    Live(
        "WITH big AS (SELECT author_id, score FROM posts WHERE score > 2) "
        "SELECT author_id, sum(score) AS s FROM big GROUP BY author_id ORDER BY author_id",
        ["UPDATE posts SET score = 9 WHERE id = 2", "UPDATE posts SET author_id = 1 WHERE id = 3"],
        ["UPDATE posts SET body = 'zz' WHERE id = 1", "INSERT INTO tree (label) VALUES ('n')"],
    ),
    Live(
        "SELECT id, row_number() OVER (PARTITION BY author_id ORDER BY created) AS rn FROM posts "
        "ORDER BY id",
        ["UPDATE posts SET created = '2000-01-01' WHERE id = 2"],
        ["UPDATE posts SET title = 't' WHERE id = 2", "UPDATE kv SET v = 0"],
    ),
    Live(
        "SELECT id, avg(score) OVER w AS a FROM posts WINDOW w AS (PARTITION BY author_id "
        "ORDER BY id ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) ORDER BY id",
        ["UPDATE posts SET score = 0 WHERE id = 1"],
        ["UPDATE posts SET tags = '[1]' WHERE id = 1"],
    ),
    Live(
        "SELECT name FROM authors a WHERE EXISTS (SELECT 1 FROM posts p "
        "WHERE p.author_id = a.id AND p.score > 4) ORDER BY name",
        ["UPDATE posts SET score = 10 WHERE id = 3", "UPDATE authors SET name = 'Z' WHERE id = 1"],
        ["UPDATE authors SET born = '1900-01-01'", "UPDATE posts SET body = 'b'"],
    ),
    Live(
        "SELECT p.id, j.value FROM posts p, json_each(p.tags) j ORDER BY p.id, j.key",
        ["UPDATE posts SET tags = '[\"new\"]' WHERE id = 2"],
        ["UPDATE posts SET score = 7", "UPDATE authors SET profile = '[]'"],
    ),
    Live(
        "SELECT name AS x FROM authors UNION SELECT title FROM posts ORDER BY 1",
        ["UPDATE posts SET title = 'new' WHERE id = 1", "DELETE FROM authors WHERE id = 4"],
        ["UPDATE posts SET score = 1", "INSERT INTO kv (k) VALUES ('q')"],
    ),
    Live(
        "SELECT k, v, label FROM kv JOIN labels USING (k) ORDER BY k",
        ["UPDATE labels SET label = 'A' WHERE k = 'a'", "UPDATE kv SET v = 50 WHERE k = 'a'"],
        ["UPDATE kv SET hits = 5", "UPDATE pairs SET n = 3"],
    ),
    Live(
        "SELECT k, label FROM kv NATURAL JOIN labels ORDER BY k",
        ["INSERT INTO labels (k, label) VALUES ('b', 'Beta')"],
        ["UPDATE kv SET v = 77", "UPDATE kv SET hits = 1"],
    ),
    Live(
        "SELECT count(*) AS n FROM posts",
        ["INSERT INTO posts (title) VALUES ('more')", "DELETE FROM posts WHERE id = 6"],
        ["UPDATE posts SET score = 2, title = 'x'", "DELETE FROM kv"],
    ),
    Live(
        "SELECT title FROM posts WHERE author_id IN (SELECT id FROM authors "
        "WHERE email LIKE '%x.org') ORDER BY id",
        ["UPDATE authors SET email = 'c@x.org' WHERE id = 3"],
        ["UPDATE authors SET born = NULL", "UPDATE posts SET score = 3"],
    ),
    Live(
        "WITH RECURSIVE walk(id, depth) AS (SELECT id, 0 FROM tree WHERE parent IS NULL "
        "UNION ALL SELECT t.id, w.depth + 1 FROM tree t JOIN walk w ON t.parent = w.id) "
        "SELECT id, depth FROM walk ORDER BY id",
        ["UPDATE tree SET parent = 5 WHERE id = 3"],
        ["UPDATE tree SET label = 'L'", "INSERT INTO labels (k) VALUES ('q')"],
    ),
    Live(
        "SELECT count(*) FILTER (WHERE score > 3) AS hi FROM posts",
        ["UPDATE posts SET score = 0 WHERE id = 1"],
        ["UPDATE posts SET title = 'same'"],
    ),
    Live(
        "SELECT name, (SELECT count(*) FROM posts p WHERE p.author_id = a.id) AS n "
        "FROM authors a ORDER BY a.id",
        ["UPDATE posts SET author_id = 1 WHERE id = 3"],
        ["UPDATE posts SET title = 'x'", "UPDATE authors SET email = 'e'"],
    ),
    Live(
        "SELECT title FROM posts ORDER BY created, id",
        ["UPDATE posts SET created = '1999-01-01' WHERE id = 4"],
        ["UPDATE posts SET body = 'unread'"],
    ),
    Live(
        "SELECT id, owner_cf_link FROM posts WHERE owner_cf_link IS NOT NULL ORDER BY id",
        ["UPDATE posts SET owner_cf_link = NULL WHERE id = 1"],
        ["UPDATE posts SET title = 'x'"],
    ),
    Live(
        'SELECT "内容" FROM "日記" ORDER BY id',
        ['UPDATE "日記" SET "内容" = \'x\' WHERE id = 2'],
        ["UPDATE odd SET \"group\" = 'q'"],
    ),
    Live(
        "SELECT id FROM posts ORDER BY id LIMIT (SELECT count(*) FROM kv) OFFSET "
        "(SELECT v FROM kv WHERE k = 'a')",
        ["INSERT INTO kv (k) VALUES ('q')", "UPDATE kv SET v = 2 WHERE k = 'a'"],
        ["UPDATE posts SET tags = '[9]'", "UPDATE kv SET hits = 4"],
    ),
    Live(
        "SELECT value FROM json_each((SELECT tags FROM posts WHERE id = 1)) ORDER BY key",
        ["UPDATE posts SET tags = '[5, 6]' WHERE id = 1"],
        ["UPDATE posts SET score = 0", "UPDATE authors SET profile = NULL"],
    ),
    Live(
        "SELECT id FROM posts WHERE EXISTS (SELECT 1 FROM json_each(posts.tags) "
        "WHERE value LIKE 'h%') ORDER BY id",
        ["UPDATE posts SET tags = '[\"hey\"]' WHERE id = 3"],
        ["UPDATE posts SET title = 'x'"],
    ),
    Live(
        "SELECT author_id FROM posts GROUP BY author_id HAVING count(*) > "
        "(SELECT count(*) FROM labels) - 2 ORDER BY 1",
        ["INSERT INTO labels (k) VALUES ('more')"],
        ["UPDATE labels SET label = 'L'", "UPDATE posts SET body = 'b'"],
    ),
    Live(
        "SELECT 1 AS one",
        [],
        ["INSERT INTO kv (k) VALUES ('q')", "DELETE FROM posts"],
    ),
]


def _wait(world: World, q: sc.Query[Any]) -> sc.QueryState[Any]:
    world.rt.settle()
    state = q.get()
    assert state.error is None and not state.pending, state
    return state


@pytest.mark.parametrize("live", LIVE, ids=[c.sql[:50] for c in LIVE])
def test_a_live_query_reruns_exactly_when_what_it_reads_changes(world: World, live: Live) -> None:
    q = world.db.query(live.sql)
    notified: list[Any] = []
    q.observe().subscribe(notified.append)
    first = _wait(world, q)
    assert first.result == world.plain_rows(live.sql)
    for write in live.sleeps:
        rev = world.db.rev
        world.exec(write)
        with world.plain:
            world.plain.execute(write)
        state = _wait(world, q)
        assert world.db.rev == rev + 1
        assert state.seq == first.seq, f"{write!r} re-ran the query"
        assert state.result == world.plain_rows(live.sql), f"{write!r} changed what it reads"
    seen = len(notified)
    last = first
    for write in live.wakes:
        world.exec(write)
        with world.plain:
            world.plain.execute(write)
        state = _wait(world, q)
        assert state.seq > last.seq, f"{write!r} did not re-run the query"
        assert state.result == world.plain_rows(live.sql)
        last = state
    if live.wakes:
        assert len(notified) > seen
    else:
        assert len(notified) == seen


_OTHER_PROCESS = textwrap.dedent(
    f"""
    import sys
    import sqlite_cells as sc
    sys.path.insert(0, {str(Path(__file__).parent)!r})
    from test_everyday_sql import TABLES
    with sc.Runtime(sys.argv[1]) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("everyday", tables=TABLES)
        with space.transact():
            db.exec(sys.argv[2])
    """
)


def _in_another_process(world: World, sql: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _OTHER_PROCESS, str(world.store), sql],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    with world.plain:
        world.plain.execute(sql)


def _until(q: sc.Query[Any], expected: list[dict[str, Any]]) -> None:
    """Wait for ``q`` to show ``expected`` (commits of another process arrive by polling)."""
    reached = threading.Event()

    def seen(state: sc.QueryState[Any]) -> None:
        if state.result == expected:
            reached.set()

    q.observe().subscribe(seen)
    assert reached.wait(30), q.get()


def test_another_process_s_writes_rerun_a_live_query_exactly_when_they_change_what_it_reads(
    world: World,
) -> None:
    """R51 holds for commits of other processes: the write set comes from the commit's
    changeset. A write to a column the query never reads (seen by a second query that reads
    it) leaves it alone; a write to one it reads in a json_each over a CTE re-runs it."""
    sql = (
        "WITH tagged AS (SELECT id, tags FROM posts WHERE tags IS NOT NULL) "
        "SELECT t.id, j.value FROM tagged t, json_each(t.tags) j ORDER BY t.id, j.key"
    )
    q = world.db.query(sql)
    sentinel = world.db.query("SELECT body FROM posts WHERE id = 1")
    first = _wait(world, q)
    _wait(world, sentinel)
    _in_another_process(world, "UPDATE posts SET body = 'from afar' WHERE id = 1")
    _until(sentinel, [{"body": "from afar"}])
    world.rt.settle()
    assert q.get().seq == first.seq and q.get().result == first.result
    _in_another_process(world, "UPDATE posts SET tags = '[\"far\"]' WHERE id = 2")
    expected = world.plain_rows(sql)
    _until(q, expected)
    assert q.get().seq > first.seq
