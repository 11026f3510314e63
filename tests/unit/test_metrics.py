"""The metrics module, the status endpoint (/metrics, /live) and where the metrics are fed from.

The session-level tests run a call over a real AudioSocket connection with fake models
(tests/unit/test_session.py's fakes); the metrics, the HTTP endpoint and the records are real.
"""

import asyncio
import json

import pytest

from agent import metrics
from agent.brain.dialogue import TaskRun
from agent.brain.tools import ToolBox, ToolContext
from agent.config import BoxSettings, Slot, Task, load_config
from agent.engines import Engines
from agent.protocol import audiosocket as proto
from agent.transport.admission import Admission, Unannounced
from agent.transport.server import AgentServer
from agent.transport.status import DEFAULT_ADDRESS, StatusAddressError, StatusServer, parse_address
from tests.unit.test_session import SPEECH, Caller, FakeAsr, FakeLlm, FakeTts


def sample(name: str, **labels) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


def test_record_events_feed_outcomes_transfers_latency_stages_confidence_and_faults():
    before = {
        "calls": sample("phone_agent_calls_total", outcome="completed"),
        "transfers": sample("phone_agent_transfers_total", reason="caller-asked", target="humans"),
        "replies": sample("phone_agent_reply_latency_seconds_count"),
        "tts": sample("phone_agent_stage_seconds_count", stage="tts"),
        "asr_sum": sample("phone_agent_stage_seconds_sum", stage="asr"),
        "confidence": sample("phone_agent_asr_confidence_count"),
        "faults": sample("phone_agent_model_errors_total", stage="asr"),
        "barge": sample("phone_agent_barge_ins_total"),
    }
    timings = {"endpoint_ms": 300, "asr_ms": 200, "decide_ms": 10, "text_ready_ms": 5, "first_audio_ms": 150}
    metrics.observe_event("bot_turn", {"kind": "answer", **timings, "reply_ms": 660})
    metrics.observe_event("bot_turn", {"kind": "greeting", "text": "hello"})  # no reply timings: not a reply
    metrics.observe_event("caller_turn", {"n": 1, "heard": "hi", "confidence": 0.8})
    metrics.observe_event("caller_turn", {"n": 2, "heard": "[DTMF]", "keypad": True})  # no confidence
    metrics.observe_event("transfer", {"target": "humans", "reason": "caller-asked"})
    metrics.observe_event("agent_fault", {"where": "asr"})
    metrics.observe_event("barge_in", {"stop_ms": 120})
    metrics.observe_event("call_end", {"outcome": "completed"})
    assert sample("phone_agent_calls_total", outcome="completed") == before["calls"] + 1
    assert sample("phone_agent_transfers_total", reason="caller-asked", target="humans") == before["transfers"] + 1
    assert sample("phone_agent_reply_latency_seconds_count") == before["replies"] + 1
    assert sample("phone_agent_stage_seconds_count", stage="tts") == before["tts"] + 1  # first audio - text ready
    assert sample("phone_agent_stage_seconds_sum", stage="asr") == pytest.approx(before["asr_sum"] + 0.2)
    assert sample("phone_agent_asr_confidence_count") == before["confidence"] + 1
    assert sample("phone_agent_model_errors_total", stage="asr") == before["faults"] + 1
    assert sample("phone_agent_barge_ins_total") == before["barge"] + 1


def test_survey_answers_are_counted_by_score_and_unanswered_surveys_too():
    answered, unanswered = (
        sample("phone_agent_surveys_total", result="answered"),
        sample("phone_agent_surveys_total", result="unanswered"),
    )
    fours = sample("phone_agent_csat_answers_total", score="4")
    metrics.observe_event("survey", {"csat": 4})
    metrics.observe_event("survey", {"csat": None})
    assert sample("phone_agent_csat_answers_total", score="4") == fours + 1
    assert sample("phone_agent_surveys_total", result="answered") == answered + 1
    assert sample("phone_agent_surveys_total", result="unanswered") == unanswered + 1


def test_admission_refusals_and_unannounced_connections_are_counted_by_reason():
    capacity = sample("phone_agent_admission_refusals_total", reason="capacity")
    idle = sample("phone_agent_unannounced_connections_total", reason="idle")
    decision = Admission(max_calls=1, max_reply_ms=1500).decide(1)
    assert not decision.admitted and decision.kind == "capacity"
    assert Admission(max_calls=2, max_reply_ms=1500).decide(0).admitted
    Unannounced().count("idle")
    assert sample("phone_agent_admission_refusals_total", reason="capacity") == capacity + 1
    assert sample("phone_agent_unannounced_connections_total", reason="idle") == idle + 1


async def test_every_tool_call_is_timed_and_counted_by_tool_and_result():
    tools = ToolBox(load_config(), None)
    before = sample("phone_agent_tool_calls_total", tool="no_such_tool", status="failed")
    timed = sample("phone_agent_tool_seconds_count", tool="no_such_tool")
    result = await tools.run("no_such_tool", {}, ToolContext(None, None))
    assert result.status == "failed"
    assert sample("phone_agent_tool_calls_total", tool="no_such_tool", status="failed") == before + 1
    assert sample("phone_agent_tool_seconds_count", tool="no_such_tool") == timed + 1


def test_exposition_names_every_metric():
    text = metrics.exposition().decode()
    for name in (
        "phone_agent_calls_active", "phone_agent_calls_total", "phone_agent_transfers_total",
        "phone_agent_reply_latency_seconds_bucket", "phone_agent_stage_seconds_bucket",
        "phone_agent_admission_refusals_total", "phone_agent_unannounced_connections_total",
        "phone_agent_asr_confidence_bucket", "phone_agent_model_errors_total", "phone_agent_tool_seconds_bucket",
        "phone_agent_tool_calls_total", "phone_agent_csat_answers_total", "phone_agent_surveys_total",
        "process_resident_memory_bytes",
    ):  # fmt: skip
        assert name in text, name


def test_status_address_is_loopback_unless_allowed(monkeypatch):
    monkeypatch.delenv("PHONE_AGENT_STATUS", raising=False)
    assert parse_address(None) == tuple([DEFAULT_ADDRESS.split(":")[0], int(DEFAULT_ADDRESS.split(":")[1])])
    assert parse_address("127.0.0.1:9999") == ("127.0.0.1", 9999)
    assert parse_address("[::1]:9999") == ("::1", 9999)
    assert parse_address("off") is None
    monkeypatch.setenv("PHONE_AGENT_STATUS", "localhost:9000")
    assert parse_address(None) == ("localhost", 9000)
    with pytest.raises(StatusAddressError, match="not loopback"):
        parse_address("0.0.0.0:9464")
    with pytest.raises(StatusAddressError, match="HOST:PORT"):
        parse_address("9464")
    assert parse_address("192.0.2.5:9464", allow_remote=True) == ("192.0.2.5", 9464)


async def http_get(port: int, path: str, method: str = "GET") -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"{method} {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    data = await reader.read()
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


async def test_status_server_serves_metrics_and_live_and_nothing_else():
    server = StatusServer(lambda: {"agent": {"calls": 0}, "calls": []}, "127.0.0.1", 0)
    await server.start()
    try:
        status, body = await http_get(server.port, "/metrics")
        assert status == 200 and b"phone_agent_calls_active" in body
        status, body = await http_get(server.port, "/live")
        assert status == 200 and json.loads(body) == {"agent": {"calls": 0}, "calls": []}
        assert (await http_get(server.port, "/"))[0] == 404
        assert (await http_get(server.port, "/metrics", "POST"))[0] == 405
    finally:
        server.close()


@pytest.fixture
async def agent(tmp_path, monkeypatch):
    """A real AgentServer (clinic config, fake models) with its status endpoint on a free port."""
    monkeypatch.setenv("PHONE_AGENT_DB", f"sqlite:///{tmp_path / 'agent.db'}")
    engines = Engines(asr=FakeAsr(), llm=FakeLlm(), tts=FakeTts(), choices=[])
    srv = AgentServer(engines, load_config(), BoxSettings(ami_secret=""), "127.0.0.1", 0, ("127.0.0.1", 0))
    await srv.start()
    srv.port = srv._server.sockets[0].getsockname()[1]
    yield srv
    await srv.close()


async def test_a_call_is_live_and_counted_while_it_runs_and_afterwards(agent):
    agent.engines.asr.texts = ["when are you open"]
    port = agent.status_server.port
    completed = sample("phone_agent_calls_total", outcome="hangup")
    replies = sample("phone_agent_reply_latency_seconds_count")
    caller = await Caller.connect(agent.port)
    await caller.silence(2.5)  # greeting
    await caller.send_audio(SPEECH)
    await caller.silence(1.5)
    live = json.loads((await http_get(port, "/live"))[1])
    assert live["agent"]["calls"] == 1
    [call] = live["calls"]
    assert call["call_id"] == caller.call_id and call["turns"] == 1
    assert call["state"] in ("listening", "speaking", "thinking") and call["task"] is None and call["slots"] == {}
    assert call["started_at"].endswith("+00:00") and call["duration_s"] > 3
    assert isinstance(call["last_reply_ms"], int)
    assert "phone_agent_calls_active 1.0" in (await http_get(port, "/metrics"))[1].decode()
    caller.writer.write(proto.encode(proto.Hangup()))
    await caller.closed()
    await asyncio.sleep(0.2)
    assert "phone_agent_calls_active 0.0" in (await http_get(port, "/metrics"))[1].decode()
    assert json.loads((await http_get(port, "/live"))[1])["calls"] == []
    assert sample("phone_agent_calls_total", outcome="hangup") == completed + 1
    assert sample("phone_agent_reply_latency_seconds_count") == replies + 1


async def test_live_shows_the_task_and_its_slots_redacted(agent):
    agent.engines.asr.texts = ["I'd like to book a cleaning"]
    caller = await Caller.connect(agent.port)
    await caller.silence(2.5)
    await caller.send_audio(SPEECH)
    await caller.silence(1.5)
    [call] = agent.live()["calls"]
    assert call["task"] == "book_appointment" and call["state"] in ("in_task", "speaking", "thinking")
    assert call["slots"].get("service") == "cleaning"
    [session] = agent.sessions.values()
    task = Task(
        name="callback", description="a call back", triggers={"phrases": ["call me"]},
        slots=[Slot(name="who", type="name", prompt="?"), Slot(name="note", type="text", prompt="?")],
    )  # fmt: skip
    fields = {"who": "Jane Doe", "note": "my card is 4111 1111 1111 1111"}
    session._dialogue.run = TaskRun(task, fields=fields)  # what a caller said, shown as the records show it
    assert agent.live()["calls"][0]["slots"] == {"who": "[NAME]", "note": "my card is [CARD_NUMBER]"}
    caller.writer.write(proto.encode(proto.Hangup()))
    await caller.closed()
