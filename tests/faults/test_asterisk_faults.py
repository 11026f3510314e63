"""Asterisk killed (-9) in the middle of a call and started again: the agent survives, the cut call's
record is closed, AMI comes back by itself, and the next call is served with its caller ID."""

import asyncio
import re
import subprocess
import time

import pytest
from sqlalchemy import select

from agent.caller.runner import place_call
from agent.config import PROJECT_ROOT
from agent.store.db import make_engine
from agent.store.records import calls
from tests.faults.conftest import figure, scenario

pytestmark = pytest.mark.faults
ASTERISK = ["bash", str(PROJECT_ROOT / "scripts" / "asterisk.sh")]
AGENT_LOG = PROJECT_ROOT / "state" / "temp-agent.log"
CUT_CALL = "turns: [{silence: 15}]"
NEXT_CALL = """
caller_id: "+15550201"
turns:
  - say: "When are you open on Saturday?"
  - say: "Thank you, goodbye."
"""


def _log_offset() -> int:
    return AGENT_LOG.stat().st_size if AGENT_LOG.exists() else 0


def _logged_since(offset: int, pattern: str) -> bool:
    with open(AGENT_LOG, "rb") as fh:
        fh.seek(offset)
        return re.search(pattern.encode(), fh.read()) is not None


def _statuses(database: str) -> dict[str, str]:
    with make_engine(database).connect() as conn:
        return dict(conn.execute(select(calls.c.id, calls.c.status)).all())


async def test_asterisk_killed_and_restarted(box, agent, voice, tmp_path):
    offset = _log_offset()
    cut = asyncio.create_task(place_call(scenario(tmp_path, CUT_CALL), box, voice, agent.address, database=None))
    await asyncio.sleep(5)  # greeting played, the call is with the agent
    subprocess.run(["pkill", "-9", "-f", "/usr/sbin/asterisk -C"], check=True)
    killed = time.monotonic()
    try:
        await asyncio.wait_for(cut, 30)
    except Exception as exc:  # the caller's side sees the far end vanish; how is not the point here
        print(f"\ncut call's caller side: {type(exc).__name__}")
    started = time.monotonic()
    subprocess.run([*ASTERISK, "start"], check=True, capture_output=True)
    asterisk_up = time.monotonic()
    ami_back = None
    while time.monotonic() - asterisk_up < 30:
        if _logged_since(offset, r"AMI up again"):
            ami_back = time.monotonic()
            break
        await asyncio.sleep(0.2)
    (tmp_path / "next").mkdir()
    report = await place_call(scenario(tmp_path / "next", NEXT_CALL), box, voice, agent.address, database=agent.database)
    statuses = await asyncio.to_thread(_statuses, agent.database)
    cut_status = [s for cid, s in statuses.items() if cid != report["call_id"]]
    figure("asterisk-killed-and-restarted", asterisk_restart_s=round(asterisk_up - started, 1),
           ami_back_after_start_s=round(ami_back - asterisk_up, 1) if ami_back else None,
           cut_call_record=",".join(cut_status) or "none", next_call=report["outcome"],
           agent_alive=agent.process.poll() is None, down_s=round(asterisk_up - killed, 1))  # fmt: skip
    assert agent.process.poll() is None
    assert ami_back is not None, "the agent's AMI link did not come back after Asterisk restarted"
    assert cut_status == ["ended"], statuses  # the cut call's record is closed, not left active
    assert report["outcome"] == "completed", report.get("failures")
