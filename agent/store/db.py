"""The appliance database (SQLAlchemy 2.0): SQLite under state/ by default, PostgreSQL as an option.

SQLite runs in WAL mode so the agent's writes never block readers (CLI,
reports), with synchronous=FULL so a committed turn or booking survives a
power cut (NORMAL would only lose the last commits, but those are exactly
the turns of the calls in progress), foreign keys on (deleting a call deletes
its turns) and a busy timeout so the CLI and the agent can write at once.
Set PHONE_AGENT_DB=postgresql+psycopg://user@host/db for PostgreSQL.

The schema is created and upgraded by alembic (agent/store/migrations).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

from sqlalchemy import Engine, MetaData, create_engine, event, inspect
from sqlalchemy.exc import DBAPIError, OperationalError

from agent.config import STATE_DIR

log = logging.getLogger(__name__)
metadata = MetaData()
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_migrated: set[str] = set()
_migrating = threading.Lock()


def database_url() -> str:
    return os.environ.get("PHONE_AGENT_DB", f"sqlite:///{STATE_DIR / 'agent.db'}")


def postgres_url() -> str | None:
    """The project's own PostgreSQL server (scripts/postgres.sh start writes state/postgres.env), if set up."""
    env = STATE_DIR / "postgres.env"
    if not env.exists():
        return None
    for line in env.read_text().splitlines():
        if line.startswith("PHONE_AGENT_PG_URL="):
            return line.split("=", 1)[1]
    return None


def make_engine(url: str | None = None, migrate: bool = True) -> Engine:
    url = url or database_url()
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
        if path and path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True, mode=0o700)
    if url.startswith("postgresql"):
        # a stopped or hung server fails a connect in seconds; pooled connections are checked before use
        engine = create_engine(url, pool_pre_ping=True, connect_args={"connect_timeout": 5})
    else:
        engine = create_engine(url)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _pragmas(connection, _record) -> None:
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=5000")
            cursor.execute("PRAGMA secure_delete=ON")  # purged text is overwritten, not left in free pages
            cursor.close()

    if migrate:
        upgrade(engine)
    if url.startswith("sqlite:///") and path and path != ":memory:" and os.path.exists(path):
        os.chmod(path, 0o600)
    return engine


def alembic_config():
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def upgrade(engine: Engine) -> None:
    """Bring the schema to the newest migration (once per database per process)."""
    from alembic import command

    key = engine.url.render_as_string(hide_password=False)
    with _migrating:
        if key in _migrated:
            return
        config = alembic_config()
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            tables = set(inspect(connection).get_table_names())
            if "appointments" in tables and "alembic_version" not in tables:
                command.stamp(config, "0001")  # a database made before migrations existed: it is revision 1
            command.upgrade(config, "head")
        _migrated.add(key)


def describe_url(url: str) -> str:
    """The database for a log line: dialect, host, port, name; never the password."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "the configured database"


def is_outage(exc: BaseException) -> bool:
    """The database is unreachable (down, restarting, disk gone), as opposed to a bad statement."""
    if isinstance(exc, OperationalError):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, OSError)


def connect_database(url: str | None = None, retry_s: float = 2.0, max_retry_s: float = 30.0) -> Engine:
    """make_engine(), waiting while the database is down: one clear line, then a line when it is back.

    At start-up with PostgreSQL stopped this used to be a 128-line traceback and an
    exit; now the agent waits (Asterisk sends callers to the humans meanwhile).
    """
    url = url or database_url()
    started = time.monotonic()
    logged = False
    delay = retry_s
    while True:
        try:
            engine = make_engine(url)
        except Exception as exc:
            if not is_outage(exc):
                raise
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0][:200]
            if not logged:
                log.error("database %s not reachable (%s); retrying every %.0f-%.0f s, no calls are taken meanwhile",
                          describe_url(url), reason, retry_s, max_retry_s)  # fmt: skip
                logged = True
            time.sleep(delay)
            delay = min(delay * 2, max_retry_s)
            continue
        if logged:
            log.warning("database %s reachable after %.0f s", describe_url(url), time.monotonic() - started)
        return engine
