"""The appliance database (SQLAlchemy 2.0): SQLite under state/ by default.

SQLite runs in WAL mode so the agent's writes never block readers (CLI, web
UI), with synchronous=FULL so a committed booking survives a power cut.
"""

from __future__ import annotations

import os

from sqlalchemy import Engine, MetaData, create_engine, event

from agent.config import STATE_DIR

metadata = MetaData()


def database_url() -> str:
    return os.environ.get("PHONE_AGENT_DB", f"sqlite:///{STATE_DIR / 'agent.db'}")


def make_engine(url: str | None = None) -> Engine:
    url = url or database_url()
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
        if path and path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    engine = create_engine(url)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _pragmas(connection, _record) -> None:
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=5000")
            cursor.close()

    metadata.create_all(engine)
    return engine
