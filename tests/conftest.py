"""Shared fixtures: the databases the store is tested against (SQLite and a real PostgreSQL)."""

from __future__ import annotations

import os

import pytest
from sqlalchemy import create_engine, text

from agent.store import db
from agent.store.db import postgres_url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    """An empty database of each kind; the schema comes from the migrations when the engine is made."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'agent.db'}"
        return
    url = empty_postgres()
    yield url
    db._migrated.discard(url)


def empty_postgres() -> str:
    """The project's PostgreSQL database, emptied; fails in CI (and skips elsewhere) if it is not running."""
    url = postgres_url()
    if url is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is not running: `bash scripts/postgres.sh start` (make test does this)")
        pytest.skip("PostgreSQL not started (bash scripts/postgres.sh start)")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    db._migrated.discard(url)
    return url
