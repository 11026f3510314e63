"""PostgreSQL stopped in the middle of a call: the call goes on, its record is spooled and written back."""

import asyncio
import subprocess
import time

import pytest
from sqlalchemy import create_engine, select

from agent.caller.runner import TemporaryAgent, place_call
from agent.config import DEFAULT_CONFIG_DIR, PROJECT_ROOT
from agent.store.db import postgres_url
from agent.store.records import calls, read_record
from tests.faults.conftest import figure, scenario

pytestmark = pytest.mark.faults
PG = ["bash", str(PROJECT_ROOT / "scripts" / "postgres.sh")]
CALL = """
turns:
  - say: "When are you open?"
  - silence: 4
  - say: "And where are you located?"
  - say: "Thank you, goodbye."
"""


def _status(url: str, call_id: str) -> str | None:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(select(calls.c.status).where(calls.c.id == call_id)).scalar()
    finally:
        engine.dispose()


async def test_postgresql_stopped_mid_call(box, voice, tmp_path):
    subprocess.run([*PG, "start"], check=True, capture_output=True)
    url = postgres_url()
    agent = TemporaryAgent(DEFAULT_CONFIG_DIR, database=url)
    agent.start()
    try:
        call = asyncio.create_task(place_call(scenario(tmp_path, CALL), box, voice, agent.address, database=None))
        await asyncio.sleep(3)
        subprocess.run([*PG, "stop"], check=True, capture_output=True)
        stopped = time.monotonic()
        report = await call
        down_for = time.monotonic() - stopped
        subprocess.run([*PG, "start"], check=True, capture_output=True)
        call_id = report["call_id"]
        deadline = time.monotonic() + 30
        status = None
        while time.monotonic() < deadline:
            status = await asyncio.to_thread(_status, url, call_id)
            if status not in (None, "active"):
                break
            await asyncio.sleep(0.5)
        events = await asyncio.to_thread(read_record, call_id, create_engine(url), 1.0)
        said = len(report["turns"])
        turns = len([e for e in events if e["event"] in ("caller_turn", "bot_turn")])
        figure("postgresql-stopped-mid-call", outcome=report["outcome"], database_down_s=round(down_for, 1),
               call_status=status, record_events=len(events), turns_recorded=turns, turns_in_call=said,
               agent_alive=agent.process.poll() is None)  # fmt: skip
        assert agent.process.poll() is None
        assert status == "ended"  # never left active
    finally:
        agent.stop()
        subprocess.run([*PG, "start"], capture_output=True)
