"""/metrics, /live and the post-call survey on real calls: SIP on loopback → the real Asterisk → the real agent.

The agent is the TemporaryAgent of tests/e2e/test_calls.py (its own process, ports and database); its status endpoint is
scraped while a scripted call runs and after it. Nothing is faked and no timing is asserted.
"""

import asyncio
import datetime as dt

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from agent.caller.runner import place_call
from agent.store.db import make_engine
from agent.store.records import calls, read_record
from tests.e2e import test_calls

# the same Asterisk, agent (clinic, its own database and ports) and caller voice as the other real calls
box, agent, voice, scenario = test_calls.box, test_calls.agent, test_calls.voice, test_calls.scenario

pytestmark = pytest.mark.e2e
STATES = {"listening", "speaking", "thinking", "in_task", "transferring"}


async def get(agent, path: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as client:  # the loop may stall seconds on a loaded box
        response = await client.get(f"http://{agent.status_address}{path}")
    response.raise_for_status()
    return response


async def scrape(agent) -> dict[tuple, float]:
    """Every sample of /metrics: (name, sorted labels) -> value."""
    text = (await get(agent, "/metrics")).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def call(box, agent, voice, tmp_path, turns: str, outcome: str) -> tuple[dict, list[dict]]:
    """A scripted call that must pass with `outcome`; its report and the agent's record of it."""
    report = await place_call(
        scenario(tmp_path, f"turns: {turns}\nexpect: {{outcome: {outcome}}}"),
        box, voice, agent.address, database=agent.database,
    )  # fmt: skip
    assert report["passed"], report
    return report, read_record(report["call_id"], make_engine(agent.database))


def csat(agent, call_id):
    read_record(call_id, make_engine(agent.database), wait_s=5)  # waits until the call is marked ended
    with make_engine(agent.database).connect() as conn:
        return conn.execute(select(calls.c.csat).where(calls.c.id == call_id)).scalar()


async def test_a_real_call_is_live_while_it_runs_and_moves_the_metrics(box, agent, voice, tmp_path):
    before = await scrape(agent)
    assert value(before, "phone_agent_calls_active") == 0
    call = asyncio.create_task(
        place_call(
            scenario(tmp_path, 'turns: [{say: "Hi, when are you open?"}, {say: "And where is the clinic?"}]'),
            box,
            voice,
            agent.address,
            database=agent.database,
        )  # fmt: skip
    )
    seen, active_during = None, []
    while not call.done():  # the call ends with the caller hanging up after the second answer
        live = (await get(agent, "/live")).json()
        active_during.append(value(await scrape(agent), "phone_agent_calls_active"))
        if live["calls"] and live["calls"][0]["turns"] >= 1:
            seen = live
        await asyncio.sleep(0.3)
    report = await call
    for _ in range(50):  # the agent notices the hang-up a moment after the caller's BYE
        after = await scrape(agent)
        if value(after, "phone_agent_calls_active") == 0:
            break
        await asyncio.sleep(0.2)
    assert 1 in active_during and value(after, "phone_agent_calls_active") == 0
    assert set(seen["agent"]) >= {"calls", "pending", "ami", "records", "loop_max_lag_s", "unannounced"}
    [live_call] = seen["calls"]
    assert live_call["call_id"] == report["call_id"]
    assert dt.datetime.fromisoformat(live_call["started_at"]).utcoffset() == dt.timedelta(0)
    assert live_call["duration_s"] > 0 and live_call["state"] in STATES
    assert live_call["task"] is None and live_call["slots"] == {}  # questions only: no task
    assert isinstance(live_call["last_reply_ms"], int) and live_call["turns"] >= 1
    assert value(after, "phone_agent_calls_total", outcome="hangup") == value(
        before, "phone_agent_calls_total", outcome="hangup"
    ) + 1  # fmt: skip
    replies = value(after, "phone_agent_reply_latency_seconds_count")
    assert replies >= value(before, "phone_agent_reply_latency_seconds_count") + 2
    for stage in ("endpoint", "asr", "decide", "text", "tts"):
        assert value(after, "phone_agent_stage_seconds_count", stage=stage) > value(
            before, "phone_agent_stage_seconds_count", stage=stage
        ), stage  # fmt: skip
    assert value(after, "phone_agent_asr_confidence_count") > value(before, "phone_agent_asr_confidence_count")
    assert (await get(agent, "/live")).json()["calls"] == []


async def test_a_caller_who_says_goodbye_answers_the_survey_and_the_score_is_stored(box, agent, voice, tmp_path):
    before = await scrape(agent)
    turns = '[{say: "Hi, when are you open?"}, {say: "Thanks, goodbye."}, {say: "Four."}]'
    report, record = await call(box, agent, voice, tmp_path, turns, "completed")
    assert "scale of one to five" in (report["turns"][1]["bot"] or "").lower(), report["turns"][1]
    assert csat(agent, report["call_id"]) == 4
    assert [e["csat"] for e in record if e["event"] == "survey"] == [4]
    after = await scrape(agent)
    assert value(after, "phone_agent_csat_answers_total", score="4") == value(
        before, "phone_agent_csat_answers_total", score="4"
    ) + 1  # fmt: skip


async def test_a_caller_asking_for_a_person_is_never_asked_the_survey(box, agent, voice, tmp_path):
    turns = '[{say: "Hi, when are you open?"}, {say: "Can I speak to a real person, please?"}]'
    report, record = await call(box, agent, voice, tmp_path, turns, "transferred")
    assert not [e for e in record if e["event"] == "survey" or e.get("kind") == "survey"]
    assert csat(agent, report["call_id"]) is None
