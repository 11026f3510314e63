"""`python -m agent call`: a scripted call through the local Asterisk, reported turn by turn.

The caller's lines are synthesized to 8 kHz and sent as RTP; the bot's audio is
recorded on the caller's side. Latency is measured there: end of caller audio
to the first bot audio. Asterisk's own events (AMI) tell how the call ended,
and the agent's call record tells what it heard.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import os
import re
import socket
import subprocess
import sys
import time
import wave
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from panoramisk import Manager

from agent.audio.pcm import rms_dbfs, speech_offset_s, speech_onset_s
from agent.caller.scenario import Scenario, ScenarioError, Turn, check_expectations, load_scenario
from agent.caller.sip import SipCall, SipError
from agent.config import PROJECT_ROOT, BoxSettings, load_box_settings, load_config
from agent.privacy.redact import redact
from agent.store.db import make_engine
from agent.store.records import read_record

log = logging.getLogger(__name__)

BOT_LEVEL_DBFS = -40.0  # a received frame louder than this is bot speech
REPLY_GAP_S = 1.2  # this much quiet after bot speech ends its reply
REPLY_START_TIMEOUT_S = 15.0
REPLY_MAX_S = 40.0


class CallerVoice:
    """Synthesizes the caller's lines once each (Piper, 8 kHz)."""

    def __init__(self) -> None:
        from agent.models import choose_tts
        from agent.stages.tts_piper import PiperSynthesizer

        self._tts = PiperSynthesizer(choose_tts().path)
        self._cache: dict[str, bytes] = {}

    def speak(self, text: str) -> bytes:
        if text not in self._cache:
            self._cache[text] = self._tts.synthesize(text)
        return self._cache[text]


@dataclass
class AsteriskEvents:
    """AMI user events for one call, matched by its SIP Call-ID."""

    sip_call_id: str
    agent_uuid: str | None = None
    uniqueid: str | None = None
    fallback: dict | None = None
    returned: dict | None = None
    events: list[dict] = field(default_factory=list)

    def on_event(self, _manager, event) -> None:
        name = event.get("UserEvent")
        if name == "AgentCall" and event.get("SipCallID") == self.sip_call_id:
            self.agent_uuid = str(event.get("AgentUUID", "")).lower()
            self.uniqueid = event.get("Uniqueid")
        elif self.uniqueid and event.get("Uniqueid") == self.uniqueid:
            if name == "HumanFallback":
                self.fallback = dict(event)
            elif name == "AgentReturned":
                self.returned = dict(event)
        else:
            return
        self.events.append(
            {k: v for k, v in dict(event).items() if k in ("UserEvent", "Reason", "Target", "Asked", "Status", "Action")}
        )


LAST_SOUND_DBFS = -50.0  # the agent's VAD floor: a final "t" at -45 dBFS is still the caller speaking


class BotAudio:
    """Reads the caller-side recording: where the bot spoke and where it stopped."""

    def __init__(self, call: SipCall) -> None:
        self._frames = call.received.frames

    def loud(self, index: int) -> bool:
        return rms_dbfs(self._frames[index][1]) > BOT_LEVEL_DBFS

    async def wait_start(self, after: float, timeout: float, stop: Callable[[], bool] = lambda: False) -> float | None:
        deadline = time.monotonic() + timeout
        index = self._index_after(after)
        while time.monotonic() < deadline and not stop():
            while index < len(self._frames):
                if self.loud(index):
                    return self._frames[index][0]
                index += 1
            await asyncio.sleep(0.02)
        return None

    async def wait_end(
        self, started: float, gap: float = REPLY_GAP_S, stop: Callable[[], bool] = lambda: False
    ) -> float:
        """Time of the bot's last loud frame once `gap` seconds of quiet followed it."""
        deadline = started + REPLY_MAX_S
        last_loud = started
        index = self._index_after(started)
        while time.monotonic() < deadline and not stop():
            while index < len(self._frames):
                if self.loud(index):
                    last_loud = self._frames[index][0]
                index += 1
            if time.monotonic() - last_loud >= gap:
                break
            await asyncio.sleep(0.02)
        return last_loud

    async def wait_stop(self, after: float, quiet: float = 0.3, timeout: float = 5.0) -> float | None:
        """Start of the first quiet run of `quiet` seconds after `after` (the bot stopped)."""
        deadline = time.monotonic() + timeout
        index = self._index_after(after)
        run_start = None
        while time.monotonic() < deadline:
            while index < len(self._frames):
                at = self._frames[index][0]
                if self.loud(index):
                    run_start = None
                elif run_start is None:
                    run_start = at
                elif at - run_start >= quiet:
                    return run_start
                index += 1
            await asyncio.sleep(0.02)
        return None

    def pcm_between(self, start: float, end: float) -> bytes:
        return b"".join(pcm for at, pcm in self._frames if start - 0.05 <= at <= end + 0.05)

    def _index_after(self, at: float) -> int:
        for index in range(len(self._frames) - 1, -1, -1):
            if self._frames[index][0] <= at:
                return index + 1
        return 0


class TemporaryAgent:
    """An agent process started for one call (or test run) on a free port."""

    def __init__(self, config_dir: Path | None, database: str | None = None, sandboxed: bool = False) -> None:
        self.config_dir = config_dir
        self.database = database  # e.g. a fresh SQLite file per test run; None: the appliance's
        self.sandboxed = sandboxed  # run inside scripts/sandbox.sh (egress rules from this config)
        self.port = _free_port()
        self.status_port = _free_port()  # GET /metrics and /live
        self.process: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def status_address(self) -> str:
        return f"127.0.0.1:{self.status_port}"

    def start(self, timeout: float = 300.0) -> None:  # loading the models takes 90 s and more on a busy box
        cmd = [sys.executable, "-m", "agent", "run", "--host", "127.0.0.1", "--port", str(self.port)]
        cmd += ["--status-address", self.status_address]
        if self.config_dir:
            cmd += ["--config", str(self.config_dir)]
        if self.sandboxed:
            cmd = ["bash", str(PROJECT_ROOT / "scripts" / "sandbox.sh"), "run", str(self.config_dir), "--", *cmd]
        log_path = Path(os.environ.get("PHONE_AGENT_STATE", PROJECT_ROOT / "state")) / "temp-agent.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(log_path, "ab")
        env = {**os.environ, **({"PHONE_AGENT_DB": self.database} if self.database else {})}
        self.process = subprocess.Popen(cmd, cwd=PROJECT_ROOT, stdout=self._log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the temporary agent exited ({self.process.returncode}); see {log_path}")
            if _listening("127.0.0.1", self.port):
                return
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"the temporary agent did not start within {timeout:.0f}s; see {log_path}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        if getattr(self, "_log", None):
            self._log.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _listening(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.3):
        return True
    return False


async def place_call(
    scenario: Scenario,
    box: BoxSettings,
    voice: CallerVoice,
    agent_address: str | None = None,
    transcriber=None,
    record_path: Path | None = None,
    database: str | None = None,
) -> dict:
    """Run one scenario as a real SIP call; return the report (see README for keys)."""
    call = SipCall(box.sip_host, box.sip_port, scenario.caller_id)
    events = AsteriskEvents(call.call_id)
    manager = Manager(host="127.0.0.1", port=box.ami_port, username=box.ami_user, secret=box.ami_secret, ping_delay=0)
    manager.register_event("UserEvent", events.on_event)
    try:
        await asyncio.wait_for(manager.connect(), 5)
    except (TimeoutError, OSError) as exc:
        raise SipError(
            f"cannot reach Asterisk's AMI on 127.0.0.1:{box.ami_port} ({exc}); is Asterisk running?"
        ) from None
    for turn in scenario.turns:  # synthesize every line up front: no model work during the call
        if turn.kind == "say":
            await asyncio.to_thread(voice.speak, str(turn.value))
    headers = {"X-Agent-Address": agent_address} if agent_address else {}
    report: dict = {
        "scenario": scenario.name,
        "call_id": None,
        "outcome": None,
        "transfer_to": None,
        "greeting": "",
        "turns": [],
    }
    audio = BotAudio(call)
    try:
        await call.dial("s", headers)
        call.start_media()
        answered = time.monotonic()

        def stop_any() -> bool:
            return call.ended.is_set() or events.fallback is not None

        start = await audio.wait_start(answered, REPLY_START_TIMEOUT_S, stop_any)
        greeting_end = await audio.wait_end(start, stop=stop_any) if start else answered
        report["greeting_ms"] = round((start - answered) * 1000) if start else None
        greeting_pcm = audio.pcm_between(start, greeting_end) if start else b""
        last_reply_start = start
        for index, turn in enumerate(scenario.turns):
            if stop_any():
                break
            next_turn = scenario.turns[index + 1] if index + 1 < len(scenario.turns) else None
            turn_report, reply_start = await _run_turn(call, audio, voice, turn, next_turn, last_reply_start, stop_any)
            turn_report["_started_wall"] = time.time() - (time.monotonic() - turn_report.pop("_started"))
            report["turns"].append(turn_report)
            last_reply_start = reply_start
        if not stop_any():
            await asyncio.sleep(0.5)  # late events (a hand-back in progress) still count
        if events.fallback is not None:
            report["outcome"] = "transferred"
        elif call.ended.is_set() and len(report["turns"]) < len(scenario.turns):
            report["outcome"] = "hangup"
        else:
            report["outcome"] = "completed"
        if events.fallback is not None:
            # where the agent sent the caller (the queue that rang is Target: humans when that one has no queue)
            report["transfer_to"] = events.fallback.get("Asked") or events.fallback.get("Target")
            report["transfer_reason"] = events.fallback.get("Reason")
    finally:
        await call.hangup()
        manager.close()
    report["call_id"] = events.agent_uuid
    report["asterisk_events"] = events.events
    await asyncio.to_thread(_merge_agent_record, report, events.agent_uuid, database)
    for turn, line in zip(report["turns"], scenario.turns, strict=False):  # a call may end early
        if line.kind == "say" and turn.get("heard") and (phrase := repeated_phrase(turn["heard"], str(line.value))):
            turn["doubled"] = redact(phrase)  # heard more often than said: a doubled turn (issue 15)
    report["doubled_turns"] = sum(1 for turn in report["turns"] if turn.get("doubled"))
    if transcriber is not None:
        report["greeting"] = await asyncio.to_thread(_transcribe, transcriber, greeting_pcm)
        for turn in report["turns"]:
            if not turn.get("bot") and turn.get("_bot_pcm"):
                turn["bot"] = await asyncio.to_thread(_transcribe, transcriber, turn["_bot_pcm"])
    for turn in report["turns"]:
        turn.pop("_bot_pcm", None)
    if record_path:
        _write_wav(record_path, b"".join(pcm for _, pcm in call.received.frames))
    report["failures"] = check_expectations(scenario.expect, report)
    report["passed"] = not report["failures"]
    return report


async def _run_turn(call, audio, voice, turn: Turn, next_turn: Turn | None, last_reply_start, stop_any):
    """Play one caller turn and collect the bot's reply to it."""
    report: dict = {
        "caller": _describe(turn),
        "heard": None,
        "bot": None,
        "latency_ms": None,
        "tools": [],
        "_started": time.monotonic(),
    }
    if turn.barge_in_after is not None and last_reply_start is not None:
        # speak over the bot: wait until it has talked for barge_in_after seconds
        await asyncio.sleep(max(0.0, last_reply_start + turn.barge_in_after - time.monotonic()))
        report["_started"] = time.monotonic()
    if turn.kind == "say":
        pcm = voice.speak(str(turn.value))  # cached: synthesized before the call was placed
    onset = time.monotonic()
    if turn.kind == "say":
        if turn.barge_in_after is not None:
            speaking = asyncio.create_task(call.send_audio(pcm))
            stopped = await audio.wait_stop(onset)
            onset += speech_onset_s(pcm) or 0.0  # from the first word, not from the voice's leading silence
            report["barge_in_ms"] = round((stopped - onset) * 1000) if stopped else None
            end = await speaking
        else:
            end = await call.send_audio(pcm)
    elif turn.kind == "dtmf":
        for digit in str(turn.value):
            end = await call.send_dtmf(digit)
    else:
        end = time.monotonic() + float(turn.value)
    if turn.kind == "silence":
        # the caller says nothing for the whole time, whatever the bot says meanwhile
        first = await audio.wait_start(onset, float(turn.value), stop_any)
        while time.monotonic() < end and not stop_any():
            await asyncio.sleep(0.05)
        if first is not None:
            report["_bot_pcm"] = audio.pcm_between(first, time.monotonic())
        return report, first
    reply_start = await audio.wait_start(end, REPLY_START_TIMEOUT_S, stop_any)
    if reply_start is not None:
        report["latency_ms"] = round((reply_start - end) * 1000)
        if turn.kind == "say" and (offset := speech_offset_s(pcm, threshold_dbfs=LAST_SOUND_DBFS)) is not None:
            # from the caller's last sound: the voice's trailing silence is part of the wait, not of the speech
            report["from_last_word_ms"] = round((reply_start - (end - (len(pcm) / 16000 - offset))) * 1000)
        if next_turn is not None and next_turn.barge_in_after is not None:
            return report, reply_start  # the next turn interrupts this reply
        reply_end = await audio.wait_end(reply_start, stop=stop_any)
        report["_bot_pcm"] = audio.pcm_between(reply_start, reply_end)
    return report, reply_start


_DIGIT_WORDS = {"zero": "0", "oh": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
                "six": "6", "seven": "7", "eight": "8", "nine": "9"}  # fmt: skip


def _phrase_words(text: str) -> list[str]:
    """Words for comparing phrases; a digit string ("four one one two", "4-1-1-2", "4112") is one word."""
    text = re.sub(r"[a-z]+", lambda m: _DIGIT_WORDS.get(m.group(), m.group()), text.lower())
    text = re.sub(r"(?<=\d)[\s-]+(?=\d)", "", text)
    return re.findall(r"[a-z0-9']+", text)


def repeated_phrase(heard: str, said: str, n: int = 3) -> str | None:
    """A phrase of n words the transcript repeats more often than the caller said it (a doubled turn)."""

    def grams(text: str) -> collections.Counter:
        words = _phrase_words(text)
        return collections.Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))

    spoken = grams(said)
    for gram, count in grams(heard).items():
        if count > 1 and count > spoken[gram]:
            return " ".join(gram)
    return None


def _describe(turn: Turn) -> str:
    """The caller's line for the report, redacted like everything else the box writes down."""
    if turn.kind == "say":
        return redact(str(turn.value))
    if turn.kind == "dtmf":
        return "[DTMF]" if len(str(turn.value)) > 1 else f"[DTMF {turn.value}]"
    return f"[silence {turn.value:g} s]"


def _merge_agent_record(report: dict, agent_uuid: str | None, database: str | None) -> None:
    """Fill heard/bot/tools per turn from the agent's call record (its database), matched by time."""
    record = read_record(agent_uuid, make_engine(database)) if agent_uuid else []
    turns = report["turns"]
    for index, turn in enumerate(turns):
        start = turn.pop("_started_wall")
        end = turns[index + 1]["_started_wall"] if index + 1 < len(turns) else float("inf")
        window = [e for e in record if start - 0.2 <= e["t"] < end - 0.2]
        numbers = {e["n"] for e in window if e["event"] == "caller_turn"}
        # replies belong to the caller turn they answer, even when written later (an interrupted reply)
        replies = [e for e in record if e.get("reply_to") in numbers]
        unnumbered = [e for e in window if e["event"] == "bot_turn" and e.get("reply_to") is None]
        said = [e["text"] for e in unnumbered + [r for r in replies if r["event"] == "bot_turn"] if e.get("text")]
        cut = [e["heard"] for e in replies if e["event"] == "bot_cut"]
        turn["heard"] = " ".join(e["heard"] for e in window if e["event"] == "caller_turn") or None
        if said:
            turn["bot"] = " ".join(said)
        if cut:
            turn["bot_cut_at"] = cut[-1]
        turn["tools"] = [e["tool"] for e in replies if e["event"] == "tool_call"]
        turn["agent_timings_ms"] = {
            k: v for e in replies if e["event"] == "bot_turn" for k, v in e.items() if k.endswith("_ms")
        }
        turn["rehearsed"] = any(e.get("rehearsed") for e in replies if e["event"] == "bot_turn")
    if agent_uuid:
        greeting = [e["text"] for e in record if e["event"] == "bot_turn" and e.get("kind") == "greeting"]
        report["greeting_text"] = greeting[0] if greeting else None


def _transcribe(transcriber, pcm: bytes) -> str:
    stream = transcriber.open_stream()
    stream.accept(pcm)
    return stream.finish().text


def _write_wav(path: Path, pcm: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(pcm)


def print_report(report: dict, out=sys.stdout) -> None:
    print(f"Scenario: {report['scenario']}  (call {report['call_id']})", file=out)
    print(f"  BOT    {report['greeting']}", file=out)
    for turn in report["turns"]:
        print(f"  CALLER {turn['caller']}", file=out)
        if turn.get("heard"):
            print(f"         (agent heard: {turn['heard']})", file=out)
        if turn.get("bot"):
            latency = f"[{turn['latency_ms']} ms] " if turn.get("latency_ms") is not None else ""
            print(f"  BOT    {latency}{turn['bot']}", file=out)
        if turn.get("barge_in_ms") is not None:
            print(f"         (bot stopped {turn['barge_in_ms']} ms after the caller started speaking)", file=out)
    target = f" to {report['transfer_to']}" if report.get("transfer_to") else ""
    print(f"  Outcome: {report['outcome']}{target}", file=out)
    print("  PASSED" if report["passed"] else "  FAILED: " + "; ".join(report["failures"]), file=out)


def run_call_command(args) -> int:
    try:
        scenario = load_scenario(args.script)
        if args.config:
            load_config(args.config)  # fail fast with the admin-facing message
    except ScenarioError as exc:
        print(f"scenario error: {exc}", file=sys.stderr)
        return 2
    box = load_box_settings()
    agent = None
    address = None
    try:
        if args.config or not _listening(*box.agent_host_port):
            agent = TemporaryAgent(args.config)
            print(
                f"starting a temporary agent ({args.config or 'default config'}) on {agent.address} ...",
                file=sys.stderr,
            )
            agent.start()
            address = agent.address
        voice = CallerVoice()
        from agent.engines import load_transcriber
        from agent.models import choose_asr

        transcriber = load_transcriber(choose_asr())
        report = asyncio.run(place_call(scenario, box, voice, address, transcriber, args.record))
    except (SipError, RuntimeError, OSError) as exc:
        print(f"call error: {exc}", file=sys.stderr)
        return 2
    finally:
        if agent:
            agent.stop()
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_report(report)
    return 0 if report["passed"] else 1
