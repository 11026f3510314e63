"""The agent's Prometheus metrics: every metric's name, type and meaning, in one place.

They are fed from where the numbers already exist, never counted twice:

- the call record's events (`observe_event`, called by the session for each event it commits):
  outcomes, transfers, each reply's timings, ASR confidence, model faults, barge-ins, survey answers;
- admission control (`refused`) and the connections Asterisk did not announce (`unannounced`);
- the tool box (`observe_tool`): each tool's (webhook, calendar, order table) time and result;
- the server's own state (`bind_server`): calls active, the AMI link, the record store.

`GET /metrics` on the status address (agent/transport/status.py) serves `exposition()`.
docs/metrics.md defines each metric and the KPIs and alerts built from them.
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)

REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)  # CPU, memory, open files of the agent process
PlatformCollector(registry=REGISTRY)
CONTENT_TYPE = CONTENT_TYPE_LATEST

REPLY_BUCKETS = (0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 5.0, 10.0)
STAGE_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0)
TOOL_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
CONFIDENCE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)

CALLS_ACTIVE = Gauge("phone_agent_calls_active", "Calls being served now", registry=REGISTRY)
CALLS = Counter(
    "phone_agent_calls", "Calls ended, by outcome (completed, transferred, hangup, error, busy)", ["outcome"],
    registry=REGISTRY,
)  # fmt: skip
TRANSFERS = Counter(
    "phone_agent_transfers", "Calls handed to humans, by reason and transfer target", ["reason", "target"],
    registry=REGISTRY,
)  # fmt: skip
REPLY_LATENCY = Histogram(
    "phone_agent_reply_latency_seconds",
    "End of the caller's speech (incl. the endpoint wait) to the reply's first audio",
    buckets=REPLY_BUCKETS,
    registry=REGISTRY,
)
STAGE = Histogram(
    "phone_agent_stage_seconds",
    "Time of each stage of a reply: endpoint (silence waited), asr, decide (routing, tools), text (first words "
    "ready: rules or LLM), tts (synthesis of the first clause)",
    ["stage"],
    buckets=STAGE_BUCKETS,
    registry=REGISTRY,
)
ASR_CONFIDENCE = Histogram(
    "phone_agent_asr_confidence", "Recognition confidence of each caller turn (0-1)", buckets=CONFIDENCE_BUCKETS,
    registry=REGISTRY,
)  # fmt: skip
MODEL_ERRORS = Counter(
    "phone_agent_model_errors", "Model failures inside calls, by stage (asr, reply: TTS or generation, llm)",
    ["stage"], registry=REGISTRY,
)  # fmt: skip
BARGE_INS = Counter("phone_agent_barge_ins", "Bot replies the caller talked over", registry=REGISTRY)
REHEARSED = Counter(
    "phone_agent_replies_rehearsed",
    "Replies whose first words were synthesized while the endpoint was awaited (tried at the caller's pause)",
    registry=REGISTRY,
)
ADMISSION_REFUSALS = Counter(
    "phone_agent_admission_refusals", "Calls sent to a human at once by admission control, by reason "
    "(capacity, overloaded)", ["reason"], registry=REGISTRY,
)  # fmt: skip
UNANNOUNCED = Counter(
    "phone_agent_unannounced_connections",
    "AudioSocket connections closed without a call record, by reason (idle, malformed, closed, truncated, "
    "unknown call id, evicted)",
    ["reason"],
    registry=REGISTRY,
)
TOOL_LATENCY = Histogram(
    "phone_agent_tool_seconds", "Time of each tool call (webhooks, calendar, order table), by tool", ["tool"],
    buckets=TOOL_BUCKETS, registry=REGISTRY,
)  # fmt: skip
TOOL_CALLS = Counter(
    "phone_agent_tool_calls", "Tool calls by tool and result (done, not_found, failed)", ["tool", "status"],
    registry=REGISTRY,
)  # fmt: skip
SURVEYS = Counter(
    "phone_agent_surveys", "Post-call surveys asked, by result (answered, unanswered)", ["result"], registry=REGISTRY
)
CSAT = Counter("phone_agent_csat_answers", "Post-call survey answers, by score (1-5)", ["score"], registry=REGISTRY)
AMI_CONNECTED = Gauge("phone_agent_ami_connected", "1 while the AMI link to Asterisk is up", registry=REGISTRY)
RECORDS_OK = Gauge(
    "phone_agent_records_ok", "1 while call records reach the database (0: they go to the local spool)",
    registry=REGISTRY,
)  # fmt: skip

_STAGES = (("endpoint", "endpoint_ms"), ("asr", "asr_ms"), ("decide", "decide_ms"), ("text", "text_ready_ms"))


def observe_event(event: str, data: dict) -> None:
    """Count one call-record event (the session's, as committed: a turn taken back never arrives)."""
    if event == "call_end":
        CALLS.labels(data.get("outcome") or "error").inc()
    elif event == "transfer":
        TRANSFERS.labels(data.get("reason") or "?", data.get("target") or "?").inc()
    elif event == "caller_turn":
        if data.get("confidence") is not None:
            ASR_CONFIDENCE.observe(data["confidence"])
    elif event == "bot_turn":
        _observe_timings(data)
        if data.get("rehearsed"):
            REHEARSED.inc()
    elif event == "agent_fault":
        MODEL_ERRORS.labels(data.get("where") or "?").inc()
    elif event == "barge_in":
        BARGE_INS.inc()
    elif event == "survey":
        score = data.get("csat")
        SURVEYS.labels("answered" if score else "unanswered").inc()
        if score:
            CSAT.labels(str(score)).inc()


def _observe_timings(data: dict) -> None:
    """A reply's latency and stages, from the timings the session writes with each answer."""
    if data.get("reply_ms") is None:
        return  # greeting, prompts, an answer cut off before its first audio
    REPLY_LATENCY.observe(data["reply_ms"] / 1000)
    for stage, key in _STAGES:
        if data.get(key) is not None:
            STAGE.labels(stage).observe(data[key] / 1000)
    if data.get("first_audio_ms") is not None and data.get("text_ready_ms") is not None:
        STAGE.labels("tts").observe(max(0.0, data["first_audio_ms"] - data["text_ready_ms"]) / 1000)


def observe_tool(tool: str, seconds: float, status: str) -> None:
    TOOL_LATENCY.labels(tool).observe(seconds)
    TOOL_CALLS.labels(tool, status).inc()


def refused(reason: str) -> None:
    ADMISSION_REFUSALS.labels(reason).inc()


def unannounced(reason: str) -> None:
    UNANNOUNCED.labels(reason).inc()


def model_error(stage: str) -> None:
    """A model failure the call survived (e.g. LLM generation, answered extractively instead)."""
    MODEL_ERRORS.labels(stage).inc()


def bind_server(server) -> None:
    """Gauges read from the running AgentServer when scraped."""
    CALLS_ACTIVE.set_function(lambda: len(server.active))
    AMI_CONNECTED.set_function(lambda: 1.0 if server.ami.up else 0.0)
    RECORDS_OK.set_function(lambda: 1.0 if server.records.state == "ok" else 0.0)


def exposition() -> bytes:
    return generate_latest(REGISTRY)
