"""The human leg through the real Asterisk: a registered reception phone takes the hand-over.

Our own SIP phone (agent/caller/phone.py) registers as `reception` with the box's secret; a
scripted caller reaches a temporary agent, presses 0, and the hand-over must ring the phone,
carry the agent's briefing as the caller-ID name, and connect audio both ways (a 600 Hz tone
from the caller, 1000 Hz from the phone, each found on the other side). When nobody answers,
the caller is offered voicemail and a callback request is recorded. Figures are printed,
never asserted.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import subprocess
import time

import pytest
from panoramisk import Manager

from agent.audio.pcm import rms_dbfs
from agent.caller.phone import SipPhone, tone, tone_level
from agent.caller.runner import BotAudio, TemporaryAgent
from agent.caller.sip import SipCall
from agent.config import BOX_DIR, DEFAULT_CONFIG_DIR, PROJECT_ROOT, load_box_settings
from agent.store.db import make_engine
from agent.store.records import read_record

pytestmark = pytest.mark.e2e
ASTERISK = ["bash", str(PROJECT_ROOT / "scripts" / "asterisk.sh")]
CALLER_HZ, PHONE_HZ = 600.0, 1000.0
STOP_ALONE_S = 40  # how long the STOP-only measurement waits for Asterisk to give up by itself
BACKSTOP_S = 20  # AGENT_MAX_S for the backstop measurement's call


def asterisk_cli(command: str) -> str:
    return subprocess.run([*ASTERISK, "cli", command], capture_output=True, text=True, check=True).stdout


def box_env() -> dict[str, str]:
    env = {}
    for line in (BOX_DIR / "asterisk.env").read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and not key.startswith("#"):
            env[key.strip()] = value.strip()
    return env


@pytest.fixture(scope="module")
def box():
    subprocess.run([*ASTERISK, "start"], check=True)
    return load_box_settings()


@pytest.fixture(scope="module")
def agent(box, tmp_path_factory):
    process = TemporaryAgent(DEFAULT_CONFIG_DIR, database=f"sqlite:///{tmp_path_factory.mktemp('db') / 'agent.db'}")
    process.start()
    yield process
    process.stop()


class CallEvents:
    """AMI events of one call (matched by its SIP Call-ID, then by the channel's Uniqueid)."""

    def __init__(self, sip_call_id: str) -> None:
        self.sip_call_id = sip_call_id
        self.uniqueid: str | None = None
        self.agent_uuid: str | None = None
        self.events: list[tuple[float, dict]] = []
        self.changed = asyncio.Event()

    def on_event(self, _manager, event) -> None:
        if event.get("UserEvent") == "AgentCall" and event.get("SipCallID") == self.sip_call_id:
            self.uniqueid = event.get("Uniqueid")
            self.agent_uuid = str(event.get("AgentUUID", "")).lower()
        if self.uniqueid and event.get("Uniqueid") == self.uniqueid:
            self.events.append((time.monotonic(), dict(event)))
            self.changed.set()

    def find(self, user_event: str | None = None, app: str | None = None) -> tuple[float, dict] | None:
        for at, event in self.events:
            if user_event and event.get("UserEvent") == user_event:
                return at, event
            if app and event.get("Event") == "Newexten" and event.get("Application") == app:
                return at, event
        return None

    async def wait(self, timeout: float, **what) -> tuple[float, dict]:
        deadline = time.monotonic() + timeout
        while (found := self.find(**what)) is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {what} within {timeout:.0f} s; events: {[e for _, e in self.events]}")
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), remaining)
        return found


async def ami(box, events: CallEvents) -> Manager:
    manager = Manager(host="127.0.0.1", port=box.ami_port, username=box.ami_user, secret=box.ami_secret, ping_delay=0)
    manager.register_event("UserEvent", events.on_event)
    manager.register_event("Newexten", events.on_event)
    await asyncio.wait_for(manager.connect(), 5)
    return manager


async def registered_phone(box, **options) -> SipPhone:
    phone = SipPhone(box.sip_host, box.sip_port, "reception", box_env()["RECEPTION_SECRET"], **options)
    status = await phone.register()
    assert status == 200, f"REGISTER as reception: {status}"
    assert "Not in use" in asterisk_cli("queue show humans"), "the registered phone is not an available queue member"
    return phone


async def caller_presses_zero(box, agent) -> tuple[SipCall, CallEvents, Manager, float]:
    """Place a call to the temporary agent, let the greeting finish, press 0; returns when 0 was sent."""
    caller_id = f"4299{random.randrange(10**6):06d}"  # a test number: no real caller's details anywhere
    call = SipCall(box.sip_host, box.sip_port, caller_id)
    events = CallEvents(call.call_id)
    manager = await ami(box, events)
    await call.dial("s", {"X-Agent-Address": agent.address})
    call.start_media()
    audio = BotAudio(call)
    started = await audio.wait_start(time.monotonic(), 15)
    assert started is not None, "the agent never greeted"
    await audio.wait_end(started)
    pressed = await call.send_dtmf("0")
    return call, events, manager, pressed


def frames_with_tone(frames, hz: float, after: float) -> list[bytes]:
    return [pcm for at, pcm in frames if at >= after and tone_level(pcm, hz) > 0.5]


async def test_handover_rings_the_registered_phone_with_briefing_and_audio_both_ways(box, agent):
    phone = await registered_phone(box, auto_answer_after=0.5)
    call = manager = None
    try:
        call, events, manager, pressed = await caller_presses_zero(box, agent)
        phone.accept_from = call.caller_id  # other engineers' hand-overs may ring too; only ours is answered
        incoming = await asyncio.wait_for(phone.calls.get(), 30)
        rang = time.monotonic()
        while incoming.answered_at is None:
            await asyncio.sleep(0.05)
        talking = asyncio.create_task(call.send_audio(tone(CALLER_HZ, 8000 * 3)))
        await asyncio.sleep(3.5)
        await talking
        to_caller = frames_with_tone(call.received.frames, PHONE_HZ, incoming.answered_at)
        to_phone = frames_with_tone(incoming.received.frames, CALLER_HZ, incoming.answered_at)
        print(
            f"\nDTMF 0 -> phone rings: {rang - pressed:.2f} s; phone -> caller: {len(to_caller)} tone frames "
            f"({rms_dbfs(b''.join(to_caller)) if to_caller else float('-inf'):.1f} dBFS); caller -> phone: "
            f"{len(to_phone)} tone frames ({rms_dbfs(b''.join(to_phone)) if to_phone else float('-inf'):.1f} dBFS); "
            f"caller-ID name at the phone: {incoming.display_name!r}"
        )
        fallback = events.find(user_event="HumanFallback")
        assert fallback and fallback[1]["Target"] == "humans", events.events
        assert len(to_caller) >= 25, "the phone's audio did not reach the caller"
        assert len(to_phone) >= 25, "the caller's audio did not reach the phone"
        # the briefing the agent stored for this hand-over is what the human sees
        record = read_record(events.agent_uuid, make_engine(agent.database))
        transfer = [e for e in record if e["event"] == "transfer"]
        assert transfer, record
        stored = transfer[-1]["briefing"] or ""
        assert incoming.display_name.startswith("AI: ") and len(incoming.display_name) > 4, incoming.display_name
        assert incoming.display_name[4:24] == stored[:20], (incoming.display_name, stored)
        await call.hangup()
        await asyncio.wait_for(incoming.ended.wait(), 5)
        assert incoming.ended_by == "remote"
    finally:
        if call is not None:
            await call.hangup()
        if manager is not None:
            manager.close()
        await phone.unregister()
        phone.close()


def spool_messages() -> set[str]:
    root = os.environ.get("ASTERISK_ROOT", str(BOX_DIR / "asterisk-root"))
    inbox = f"{root}/var/spool/asterisk/voicemail/phone-agent/100/INBOX"
    return set(os.listdir(inbox)) if os.path.isdir(inbox) else set()


def delete_messages(names: set[str]) -> None:
    root = os.environ.get("ASTERISK_ROOT", str(BOX_DIR / "asterisk-root"))
    for name in names:
        os.remove(f"{root}/var/spool/asterisk/voicemail/phone-agent/100/INBOX/{name}")


def _global(name: str) -> str | None:
    listing = asterisk_cli("dialplan show globals")
    return next((line.split("=", 1)[1].strip() for line in listing.splitlines() if f"{name}=" in line), None)


@pytest.fixture
def short_human_wait(box):
    previous = _global("HUMAN_WAIT_S") or "60"
    asterisk_cli("dialplan set global HUMAN_WAIT_S 4")
    yield 4
    asterisk_cli(f"dialplan set global HUMAN_WAIT_S {previous}")


async def test_nobody_answers_caller_gets_voicemail_and_a_recorded_callback_request(box, agent, short_human_wait):
    phone = await registered_phone(box, auto_answer_after=None)  # rings, nobody picks up
    before = spool_messages()
    call = manager = None
    try:
        call, events, manager, pressed = await caller_presses_zero(box, agent)
        phone.accept_from = call.caller_id
        incoming = await asyncio.wait_for(phone.calls.get(), 30)
        missed_at, missed = await events.wait(30, user_event="HumanMissed")
        await asyncio.wait_for(incoming.ended.wait(), 5)  # the queue stopped ringing the phone
        recording_at, _ = await events.wait(20, app="VoiceMail")
        prompts = [pcm for at, pcm in call.received.frames if missed_at <= at <= recording_at]
        await asyncio.sleep(1.5)  # the beep
        await call.send_audio(tone(CALLER_HZ, 8000 * 3))
        await call.send_dtmf("#")
        _, ended = await events.wait(20, user_event="HumanMissedEnd")
        print(
            f"\nHUMAN_WAIT_S={short_human_wait}: DTMF 0 -> phone rang -> HumanMissed after {missed_at - pressed:.1f} s "
            f"(reason {missed['Reason']}); prompts before the message: {recording_at - missed_at:.1f} s, "
            f"{rms_dbfs(b''.join(prompts)):.1f} dBFS; voicemail status {ended['Voicemail']}"
        )
        assert missed["Reason"] == "TIMEOUT", missed
        assert missed["Callback"] == "requested" and missed["Target"] == "humans"
        assert incoming.answered_at is None and incoming.ended_by == "remote"
        assert rms_dbfs(b"".join(prompts)) > -40, "the caller heard nothing after the queue timed out"
        assert ended["Voicemail"] == "SUCCESS", ended
        for _ in range(20):
            if {n for n in spool_messages() - before if n.endswith(".wav")}:
                break
            await asyncio.sleep(0.25)
        new = spool_messages() - before
        assert any(n.endswith(".wav") for n in new), "no voicemail in the spool"
    finally:
        if call is not None:
            await call.hangup()
        if manager is not None:
            manager.close()
        await phone.unregister()
        phone.close()
        delete_messages({n for n in spool_messages() - before})


async def test_no_phone_registered_offers_voicemail_at_once(box, agent):
    assert "Unavailable" in asterisk_cli("queue show humans") or pytest.skip("a reception phone is registered")
    call, events, manager, pressed = await caller_presses_zero(box, agent)
    try:
        missed_at, missed = await events.wait(20, user_event="HumanMissed")
        print(
            f"\nno phone registered: DTMF 0 -> voicemail offer after {missed_at - pressed:.1f} s ({missed['Reason']})"
        )
        assert missed["Reason"] == "JOINEMPTY", missed
        assert missed["Callback"] == "requested"
    finally:
        await call.hangup()
        manager.close()


@pytest.mark.parametrize("watchdog_kill_after", [None, 2.0, "backstop"])
async def test_hung_agent_time_to_human(box, tmp_path, watchdog_kill_after):
    """kill -STOP on the agent mid-call: how long until the caller is with the humans.

    Asterisk's AudioSocket() has no usable timeout (its hard-coded 2 s inactivity timer counts
    the caller's own RTP as activity), so on its own the caller waits until Asterisk's writes
    to the frozen agent fail (socket buffers full: 15-35 s in the issue, over 40 s here).
    With watchdog_kill_after the test does what the agent's systemd watchdog does (WatchdogSec=,
    WatchdogSignal=SIGKILL): kill the hung process; its sockets close and the dialplan hands
    the caller over at once. Without it, the test kills the agent after STOP_ALONE_S to end the
    call, and checks the hand-over still happens. "backstop": the dialplan's AGENT_MAX_S
    (TIMEOUT(absolute) -> [agent] T) set to BACKSTOP_S for this one call, no kill.
    """
    agent = TemporaryAgent(DEFAULT_CONFIG_DIR, database=f"sqlite:///{tmp_path / 'agent.db'}")
    agent.start()
    call = manager = None
    try:
        caller_id = f"4299{random.randrange(10**6):06d}"
        call = SipCall(box.sip_host, box.sip_port, caller_id)
        events = CallEvents(call.call_id)
        manager = await ami(box, events)
        backstop = watchdog_kill_after == "backstop"
        if backstop:  # read once when the call starts: restored right after, other calls keep the default
            previous = _global("AGENT_MAX_S") or "1800"
            asterisk_cli(f"dialplan set global AGENT_MAX_S {BACKSTOP_S}")
        try:
            await call.dial("s", {"X-Agent-Address": agent.address})
            answered = time.monotonic()
            if backstop:
                await events.wait(10, app="TryExec")  # TIMEOUT(absolute) is set by now
        finally:
            if backstop:
                asterisk_cli(f"dialplan set global AGENT_MAX_S {previous}")
        call.start_media()
        audio = BotAudio(call)
        started = await audio.wait_start(time.monotonic(), 15)
        assert started is not None
        await audio.wait_end(started)
        os.kill(agent.process.pid, signal.SIGSTOP)
        stopped = time.monotonic()
        wait = STOP_ALONE_S if watchdog_kill_after in (None, "backstop") else watchdog_kill_after
        with contextlib.suppress(AssertionError):
            await events.wait(wait, user_event="HumanFallback")
        alone = events.find(user_event="HumanFallback")
        if alone is None:
            os.kill(agent.process.pid, signal.SIGKILL)
            killed = time.monotonic()
        at, fallback = await events.wait(30, user_event="HumanFallback")
        returned = events.find(user_event="AgentReturned")
        status = returned[1].get("Status") if returned else "?"
        if backstop:
            print(
                f"\nkill -STOP, no watchdog, AGENT_MAX_S={BACKSTOP_S}: caller with the humans {at - answered:.1f} s "
                f"after the answer, {at - stopped:.1f} s after the stop (AudioSocket status {status})"
            )
            assert alone is not None and status == "TIMEOUT", events.events
        elif watchdog_kill_after is None:
            if alone:
                print(f"\nkill -STOP alone: AudioSocket gave up, caller with the humans after {at - stopped:.1f} s")
            else:
                print(
                    f"\nkill -STOP alone: still in AudioSocket (dead air) after {STOP_ALONE_S} s; "
                    f"with the humans {at - killed:.1f} s after a SIGKILL"
                )
        else:
            print(
                f"\nkill -STOP + watchdog SIGKILL after {watchdog_kill_after:g} s: caller with the humans "
                f"{at - stopped:.1f} s after the stop (AudioSocket status {status})"
            )
        assert fallback["Reason"] == "agent-unavailable", fallback
    finally:
        if agent.process and agent.process.poll() is None:
            os.kill(agent.process.pid, signal.SIGCONT)
        agent.stop()
        if call is not None:
            await call.hangup()
        if manager is not None:
            manager.close()
