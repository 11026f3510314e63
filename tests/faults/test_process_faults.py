"""The agent process hung (kill -STOP) or killed (kill -9) in the middle of a call: how long until a human?"""

import asyncio
import os
import signal
import time

import pytest

from agent.caller.runner import place_call
from tests.faults.conftest import Watch, figure, scenario

pytestmark = pytest.mark.faults
LONG_CALL = "turns: [{silence: 40}]"  # the caller waits; only the fault ends the call


async def _fault_mid_call(box, agent, voice, tmp_path, sig) -> dict:
    async with Watch(box) as watch:
        call = asyncio.create_task(
            place_call(scenario(tmp_path, LONG_CALL), box, voice, agent.address, database=agent.database)
        )
        await asyncio.sleep(5)  # greeting played, call in progress
        faulted = time.monotonic()
        os.kill(agent.process.pid, sig)
        try:
            report = await asyncio.wait_for(call, 60)
        finally:
            if sig == signal.SIGSTOP:
                os.kill(agent.process.pid, signal.SIGCONT)
        human = watch.first("HumanFallback", after=faulted)
    return {
        "time_to_human_s": round(human - faulted, 2) if human else None,
        "outcome": report["outcome"],
        "reason": report.get("transfer_reason"),
        "calls_lost": 0 if human else 1,
    }


async def test_kill_stop_mid_call(box, agent, voice, tmp_path):
    result = await _fault_mid_call(box, agent, voice, tmp_path, signal.SIGSTOP)
    figure("kill-STOP", **result)


async def test_kill_9_mid_call(box, agent, voice, tmp_path):
    result = await _fault_mid_call(box, agent, voice, tmp_path, signal.SIGKILL)
    figure("kill-9", **result)
    assert result["time_to_human_s"] is not None  # a dead agent always means a human
