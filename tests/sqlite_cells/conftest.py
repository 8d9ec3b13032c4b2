from __future__ import annotations

import pytest

import sqlite_cells as sc
from sqlite_cells._runtime import Space

MESSAGES = {
    "messages": sc.table(
        id="integer primary key",
        author_cf_link=sc.cf_link(),
        body="text not null",
        ts="integer not null default 0",
        indexes={"by_ts": ["ts"]},
    ),
}


@pytest.fixture
def space(rt: sc.Runtime) -> Space:
    return rt.space("demo")


@pytest.fixture
def db(space: Space) -> sc.SqliteDb:
    return space.sqlite_database("chat", tables=MESSAGES)
