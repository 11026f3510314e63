"""AudioSocket abuse on loopback, with a real call placed through Asterisk at the same time."""

import asyncio
import os
import random
import uuid

import pytest
from sqlalchemy import func, select

from agent.caller.runner import place_call
from agent.caller.scenario import load_scenario
from agent.config import PROJECT_ROOT
from agent.protocol import audiosocket as proto
from agent.store.db import make_engine
from agent.store.records import calls
from tests.faults.conftest import figure

pytestmark = pytest.mark.faults
DEMO = PROJECT_ROOT / "scenarios" / "clinic" / "demo.yaml"


def _fuzz_payload(rng: random.Random) -> bytes:
    call = uuid.uuid4()
    choice = rng.randrange(6)
    if choice == 0:
        return os.urandom(rng.randrange(1, 200))  # garbage
    if choice == 1:
        return proto.encode(proto.CallId(call)) + os.urandom(rng.randrange(1, 200))  # id + garbage, one read
    if choice == 2:
        return proto.encode(proto.CallId(call)) + b"\x42\x00\x00"  # id + unknown kind in the same read
    if choice == 3:
        return b"\x10\xff\xff"  # huge length
    if choice == 4:
        return proto.encode(proto.CallId(call)) + proto.encode(proto.Audio(b"\x00" * 320)) * 20  # unannounced id
    return b"\x01\x00\x04abcd"  # short UUID


async def _fuzz(host, port, rng, stop: asyncio.Event, counts: dict):
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(_fuzz_payload(rng))
            await writer.drain()
            try:
                await asyncio.wait_for(reader.read(4096), 0.5)
            except TimeoutError:
                pass
            writer.close()
            counts["sent"] += 1
        except OSError:
            counts["refused"] += 1
            await asyncio.sleep(0.05)


def _rows(database: str) -> int:
    with make_engine(database).connect() as conn:
        return conn.execute(select(func.count()).select_from(calls)).scalar()


async def test_fuzz_with_a_parallel_real_call(box, agent, voice):
    host, port = agent.address.split(":")
    stop = asyncio.Event()
    counts = {"sent": 0, "refused": 0}
    fuzzers = [asyncio.create_task(_fuzz(host, int(port), random.Random(i), stop, counts)) for i in range(4)]
    try:
        report = await place_call(load_scenario(DEMO), box, voice, agent.address, database=agent.database)
    finally:
        stop.set()
        await asyncio.gather(*fuzzers)
    rows = await asyncio.to_thread(_rows, agent.database)
    alive = agent.process.poll() is None
    figure("audiosocket-fuzz", fuzz_connections=counts["sent"], real_call=report["outcome"],
           call_rows=rows, forged_rows=rows - 1, agent_alive=alive)  # fmt: skip
    assert alive
    assert report["outcome"] == "completed", report.get("failures")
    assert rows == 1  # only the call Asterisk announced has a record


async def test_connection_flood_does_not_push_real_calls_away(box, agent, voice):
    host, port = agent.address.split(":")
    idle = []
    for _ in range(200):
        idle.append(await asyncio.open_connection(host, int(port)))
    made_up = []
    for _ in range(50):  # connections with made-up call ids, kept open
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(proto.encode(proto.CallId(uuid.uuid4())))
        made_up.append((reader, writer))
    log_start = _log_size()
    try:
        report = await place_call(load_scenario(DEMO), box, voice, agent.address, database=agent.database)
    finally:
        for _reader, writer in idle + made_up:
            writer.close()
    rows = await asyncio.to_thread(_rows, agent.database)
    await asyncio.sleep(10.5)  # one summary period: the turned-away connections are logged as one line
    log_lines = _agent_log_lines_since(log_start)
    figure("connection-flood", idle=200, made_up_ids=50, real_call=report["outcome"],
           transfer_reason=report.get("transfer_reason"), call_rows=rows, agent_log_lines=log_lines)  # fmt: skip
    assert report["outcome"] == "completed", report.get("failures")
    assert rows == 1


AGENT_LOG = PROJECT_ROOT / "state" / "temp-agent.log"


def _log_size() -> int:
    return AGENT_LOG.stat().st_size if AGENT_LOG.exists() else 0


def _agent_log_lines_since(offset: int) -> int:
    """Lines the agent logged during the flood (was 3,800 lines in 40 s before issue 11)."""
    with open(AGENT_LOG, "rb") as fh:
        fh.seek(offset)
        return len(fh.read().splitlines())
