"""Real calls: SIP on loopback → the real Asterisk → AudioSocket → the real agent and models.

Nothing here is faked. Timings are reported by the benchmark, never asserted.
"""

import asyncio
import json
import subprocess
import sys

import pytest

from agent.caller.runner import CallerVoice, TemporaryAgent, place_call
from agent.caller.scenario import load_scenario
from agent.config import DEFAULT_CONFIG_DIR, PROJECT_ROOT, load_box_settings
from agent.engines import load_transcriber
from agent.models import choose_asr
from agent.store.db import make_engine
from agent.store.records import read_record
from tests.conftest import empty_postgres

pytestmark = pytest.mark.e2e
SCENARIOS = PROJECT_ROOT / "scenarios" / "clinic"


@pytest.fixture(scope="session")
def box():
    subprocess.run(["bash", str(PROJECT_ROOT / "scripts" / "asterisk.sh"), "start"], check=True)
    return load_box_settings()


@pytest.fixture(scope="session")
def agent(box, tmp_path_factory):
    process = TemporaryAgent(DEFAULT_CONFIG_DIR, database=f"sqlite:///{tmp_path_factory.mktemp('db') / 'agent.db'}")
    process.start()
    yield process
    process.stop()


@pytest.fixture(scope="session")
def voice():
    return CallerVoice()


@pytest.fixture(scope="session")
def transcriber():
    return load_transcriber(choose_asr())


def scenario(tmp_path, text):
    path = tmp_path / "scenario.yaml"
    path.write_text(text)
    return load_scenario(path)


async def test_scripted_call_greets_answers_and_completes(box, agent, voice, transcriber):
    report = await place_call(
        load_scenario(SCENARIOS / "demo.yaml"), box, voice, agent.address, transcriber, database=agent.database
    )
    # the greeting as the caller heard it, transcribed back from the caller-side recording
    assert "virtual assistant" in report["greeting"].lower(), report["greeting"]
    question = report["turns"][0]
    assert question["heard"] and "open" in question["heard"].lower()
    assert question["bot"], "the caller's question got no spoken answer"
    assert question["latency_ms"] is not None
    assert report["outcome"] == "completed", report
    assert report["passed"], report["failures"]
    returned = [e for e in report["asterisk_events"] if e["UserEvent"] == "AgentReturned"]
    assert returned and returned[0]["Action"] == "hangup"  # the agent ended the call through the dialplan


async def test_caller_who_interrupts_stops_the_bot(box, agent, voice, tmp_path):
    report = await place_call(
        scenario(
            tmp_path,
            """
name: barge-in
turns:
  - say: "Can you tell me all about your clinic, your prices and your opening hours?"
  - say: "Sorry, one more thing, where are you located?"
    barge_in_after: 1.0
""",
        ),
        box,
        voice,
        agent.address,
        database=agent.database,
    )
    interrupt = report["turns"][1]
    assert interrupt["barge_in_ms"] is not None, "the bot did not stop talking when the caller spoke"
    assert interrupt["heard"], "the agent did not listen to the interruption"
    assert report["turns"][0].get("bot_cut_at") is not None  # agent kept only what was heard


async def test_dtmf_zero_goes_to_the_humans_queue(box, agent, voice, tmp_path):
    report = await place_call(
        scenario(tmp_path, "turns: [{dtmf: '0'}]\nexpect: {outcome: transferred, transfer_to: humans}"),
        box,
        voice,
        agent.address,
        database=agent.database,
    )
    assert report["passed"], report
    assert report["transfer_reason"] == "transfer"


async def test_caller_asking_for_a_person_is_transferred(box, agent, voice, tmp_path):
    report = await place_call(
        scenario(tmp_path, "turns: [{say: 'Can I speak to a real person, please?'}]\nexpect: {outcome: transferred}"),
        box,
        voice,
        agent.address,
        database=agent.database,
    )
    assert report["passed"], report


async def test_agent_down_sends_the_caller_to_a_human(box, voice, tmp_path):
    nobody = TemporaryAgent(None)  # a free port with nothing listening
    report = await place_call(scenario(tmp_path, "turns: [{silence: 3}]"), box, voice, nobody.address)
    assert report["outcome"] == "transferred"
    assert report["transfer_reason"] == "agent-unavailable"


async def test_agent_killed_mid_call_goes_to_human_and_next_call_works(box, voice, tmp_path):
    database = f"sqlite:///{tmp_path / 'agent.db'}"
    doomed = TemporaryAgent(DEFAULT_CONFIG_DIR, database=database)
    doomed.start()
    call = asyncio.create_task(place_call(scenario(tmp_path, "turns: [{silence: 12}]"), box, voice, doomed.address))
    await asyncio.sleep(7)  # mid-call: greeting done, caller silent
    assert not call.done()
    doomed.process.kill()
    report = await call
    assert report["outcome"] == "transferred", report
    assert report["transfer_reason"] == "agent-unavailable"

    restarted = TemporaryAgent(DEFAULT_CONFIG_DIR, database=database)
    restarted.port = doomed.port  # the same address Asterisk was using
    restarted.start()
    try:
        again = await place_call(
            load_scenario(SCENARIOS / "demo.yaml"), box, voice, restarted.address, database=database
        )
        assert again["outcome"] == "completed", again
    finally:
        restarted.stop()
    # the call the crash cut off was marked at the restart; its greeting turn was kept
    cut_off = read_record(report["call_id"], make_engine(database), wait_s=0)
    assert cut_off[-1]["event"] == "call_end" and cut_off[-1]["outcome"] == "agent-crashed", cut_off
    assert any(e["event"] == "bot_turn" and e["kind"] == "greeting" for e in cut_off)


async def test_a_call_on_postgresql(box, voice):
    """The appliance on PostgreSQL: a booking (calendar tables) and the call record, through Asterisk."""
    url = empty_postgres()
    agent = TemporaryAgent(DEFAULT_CONFIG_DIR, database=url)
    agent.start()
    try:
        report = await place_call(
            load_scenario(SCENARIOS / "book-cleaning.yaml"), box, voice, agent.address, database=url
        )
    finally:
        agent.stop()
    assert report["passed"], report["failures"]
    record = read_record(report["call_id"], make_engine(url))
    assert any(e["event"] == "tool_call" and e["tool"] == "book_appointment" for e in record), record


def test_call_command_with_temporary_agent_prints_json(box):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "agent",
            "call",
            "--script",
            str(SCENARIOS / "demo.yaml"),
            "--config",
            str(DEFAULT_CONFIG_DIR),
            "--json",
        ],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout)
    for key in ("scenario", "call_id", "outcome", "transfer_to", "greeting", "turns", "passed", "failures"):
        assert key in report
    for key in ("caller", "heard", "bot", "latency_ms", "tools"):
        assert key in report["turns"][0]


def test_call_command_reports_a_failed_expectation_with_exit_1(box, tmp_path):
    path = tmp_path / "wrong.yaml"
    path.write_text("turns: [{say: 'Hello there.'}]\nexpect: {outcome: transferred}\n")
    result = subprocess.run(
        [sys.executable, "-m", "agent", "call", "--script", str(path), "--config", str(DEFAULT_CONFIG_DIR)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1, result.stdout + result.stderr[-2000:]
    assert "FAILED: outcome: expected transferred" in result.stdout


def test_call_command_bad_script_exits_2(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("turns: [{shout: hi}]\n")
    result = subprocess.run(
        [sys.executable, "-m", "agent", "call", "--script", str(path)], cwd=PROJECT_ROOT, capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "turns[0]" in result.stderr
