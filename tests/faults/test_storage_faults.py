"""The appliance's SQLite database locked by another process, or its disk full, during real calls.

A booking call and a question call run at once through Asterisk. The figures: what the booking
caller was told, whether a booking exists (it must match what they were told), the other
call's slowest reply, and whether every call's record reached the database once the fault
was over (never left `active`, nothing lost).
"""

import asyncio
import sqlite3
import subprocess
import threading
import time

import pytest
from sqlalchemy import func, select

from agent.brain.tools.calendar import appointments
from agent.caller.runner import TemporaryAgent, place_call
from agent.config import DEFAULT_CONFIG_DIR
from agent.store.db import make_engine
from agent.store.records import calls, read_record
from tests.faults.conftest import figure, scenario

pytestmark = pytest.mark.faults
BOOKING = """
caller_id: "+15550201"
turns:
  - say: "I'd like to book a cleaning next Tuesday at 10 am."
  - say: "Yes please."
  - say: "Thank you, goodbye."
"""
QUESTIONS = """
turns:
  - say: "When are you open on Saturday?"
  - say: "Do you have parking?"
  - say: "Thank you, goodbye."
"""


def _settled(database: str, call_ids: list[str], timeout: float = 60.0) -> dict[str, str | None]:
    """Each call's status once its record has reached the database (or the timeout passed)."""
    engine = make_engine(database)
    deadline = time.monotonic() + timeout
    statuses: dict[str, str | None] = {}
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            statuses = {cid: conn.execute(select(calls.c.status).where(calls.c.id == cid)).scalar() for cid in call_ids}
        if all(s not in (None, "active") for s in statuses.values()):
            break
        time.sleep(0.5)
    return statuses


def _booking_outcome(database: str, call_id: str) -> tuple[str, int]:
    """The bot's reply to the caller's "yes", and how many appointments the database holds."""
    engine = make_engine(database)
    bot = [e["text"] for e in read_record(call_id, engine, wait_s=0) if e["event"] == "bot_turn"]
    with engine.connect() as conn:
        booked = conn.execute(select(func.count()).select_from(appointments).where(appointments.c.status == "booked"))
        return (bot[2] if len(bot) > 2 else "(no reply)"), booked.scalar()


async def _two_calls(box, voice, tmp_path, agent) -> tuple[dict, dict]:
    booking = asyncio.create_task(
        place_call(scenario(tmp_path, BOOKING), box, voice, agent.address, database=agent.database)
    )
    (tmp_path / "q").mkdir(exist_ok=True)
    questions = asyncio.create_task(
        place_call(scenario(tmp_path / "q", QUESTIONS), box, voice, agent.address, database=agent.database)
    )
    return await booking, await questions


def _slowest_reply(report: dict) -> int | None:
    latencies = [t["latency_ms"] for t in report["turns"] if t.get("latency_ms") is not None]
    return max(latencies) if latencies else None


async def _report(name, agent, box_reports, fault_s, database):
    booking, questions = box_reports
    ids = [r["call_id"] for r in (booking, questions) if r["call_id"]]
    statuses = await asyncio.to_thread(_settled, database, ids)
    told, booked = await asyncio.to_thread(_booking_outcome, database, booking["call_id"])
    figure(name, fault_s=round(fault_s, 1), booking_call=booking["outcome"], booking_reply=repr(told),
           appointments_booked=booked, other_call=questions["outcome"], other_call_slowest_reply_ms=_slowest_reply(questions),
           records=",".join(str(s) for s in statuses.values()), agent_alive=agent.process.poll() is None)  # fmt: skip
    assert agent.process.poll() is None
    assert all(s == "ended" for s in statuses.values()), statuses  # never left active, nothing lost
    return told, booked


async def test_sqlite_locked_by_another_process(box, voice, tmp_path):
    database = f"sqlite:///{tmp_path / 'agent.db'}"
    agent = TemporaryAgent(DEFAULT_CONFIG_DIR, database=database)
    agent.start()
    locker = sqlite3.connect(tmp_path / "agent.db", isolation_level=None, check_same_thread=False)
    release = threading.Event()

    def hold_the_write_lock(seconds: float) -> None:
        locker.execute("BEGIN IMMEDIATE")  # what a backup tool or a stuck admin script does
        release.wait(seconds)
        locker.execute("ROLLBACK")

    try:
        holder = threading.Thread(target=hold_the_write_lock, args=(120.0,))  # for both whole calls
        holder.start()
        locked_at = time.monotonic()
        reports = await _two_calls(box, voice, tmp_path, agent)
        release.set()
        holder.join()
        told, booked = await _report("sqlite-locked", agent, reports, time.monotonic() - locked_at, database)
        assert booked == 0  # the lock lasted the whole call: the caller was told so, and nothing was booked
    finally:
        release.set()
        agent.stop()
        locker.close()


async def test_disk_full(box, voice, tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(disk)], check=True)
    database = f"sqlite:///{disk / 'agent.db'}"
    agent = TemporaryAgent(DEFAULT_CONFIG_DIR, database=database)
    try:
        agent.start()  # creates the database (the disk still has room)
        filler = disk / "filler"
        subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=64k"], capture_output=True)  # until ENOSPC
        full_at = time.monotonic()
        reports = await _two_calls(box, voice, tmp_path, agent)
        filler.unlink()  # the admin frees space
        _told, booked = await _report("disk-full", agent, reports, time.monotonic() - full_at, database)
        assert booked == 0
    finally:
        agent.stop()
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)
