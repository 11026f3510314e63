"""One clean transcript per turn (issue 15), on real audio: Piper speaks the caller at 8 kHz with a pause
in the middle, the real call session and the real Whisper recognise it.

A caller who pauses briefly and goes on is recognised as one turn (the half turn is taken back).
The transcript used to repeat the first part ("no, sorry, i meant the fourth. no, sorry, i meant
the fourth, not the third."): the call record kept the taken-back half turn as well as the whole.
"""

import re
import time

import pytest

from agent.caller.runner import CallerVoice, repeated_phrase
from agent.config import BoxSettings, load_config
from agent.engines import Engines, load_transcriber
from agent.models import choose_asr, choose_tts
from agent.protocol import audiosocket as proto
from agent.store.records import read_record
from agent.transport.server import AgentServer
from tests.unit.test_session import Caller

pytestmark = pytest.mark.models

SENTENCES = [  # (first part, pause in seconds, second part)
    ("no, sorry, i meant the fourth,", 0.3, "not the third."),
    ("actually.", 0.5, "something's come up, i'll have to call that off."),
    ("i'm off to the states next week,", 0.8, "so can i move my check-up?"),
]


@pytest.fixture(scope="module")
def voice():
    return CallerVoice()


@pytest.fixture(scope="module")
def asr():
    return load_transcriber(choose_asr())


class SlowReplies:
    """Piper, with the reply's synthesis slower than the caller's pause: the caller goes on before the bot
    speaks, so the half turn is recognised, acted on and taken back (the path that doubled phrases)."""

    def __init__(self, seconds: float) -> None:
        from agent.stages.tts_piper import PiperSynthesizer

        self._tts = PiperSynthesizer(choose_tts().path)
        self.engine, self.model = self._tts.engine, self._tts.model
        self.seconds = seconds

    def synthesize(self, text: str) -> bytes:
        time.sleep(self.seconds)
        return self._tts.synthesize(text)


@pytest.fixture
async def server(tmp_path, monkeypatch, asr):
    monkeypatch.setenv("PHONE_AGENT_DB", f"sqlite:///{tmp_path / 'agent.db'}")
    engines = Engines(asr=asr, llm=None, tts=SlowReplies(0.5), choices=[])
    srv = AgentServer(engines, load_config(), BoxSettings(ami_secret=""), "127.0.0.1", 0)
    await srv.start()
    srv.port = srv._server.sockets[0].getsockname()[1]
    yield srv
    await srv.close()


async def heard_in_one_call(server, pcm: bytes) -> list[tuple[int, str]]:
    """Say pcm after the greeting; the caller turns of the call record (turn number, text)."""
    caller = await Caller.connect(server.port)
    await caller.silence(7.0)  # the greeting
    await caller.send_audio(pcm)
    await caller.silence(4.0)
    caller.writer.write(proto.encode(proto.Hangup()))
    await caller.closed(timeout=10)
    return [(e["n"], e["heard"]) for e in read_record(caller.call_id) if e["event"] == "caller_turn"]


def paused(voice, first: str, pause_s: float, second: str) -> bytes:
    return voice.speak(first) + b"\x00" * int(16000 * pause_s) + voice.speak(second)


def test_whisper_hears_a_paused_sentence_once(asr, voice):
    """The utterance-sized window does not repeat a sentence with a pause in it (the other suspect)."""
    for first, pause_s, second in SENTENCES:
        for extra in (0.0, 0.3):
            text = asr.transcribe(paused(voice, first, pause_s + extra, second)).text
            assert repeated_phrase(text, f"{first} {second}") is None, text


async def test_a_sentence_with_a_pause_in_the_middle_comes_back_once(server, voice):
    for first, pause_s, second in SENTENCES:
        turns = await heard_in_one_call(server, paused(voice, first, pause_s, second))
        heard = " ".join(text for _, text in turns)  # as the scenario report joins a scripted line's turns
        assert repeated_phrase(heard, f"{first} {second}") is None, turns
        assert len({n for n, _ in turns}) == len(turns), turns  # one record per turn number


async def test_a_number_read_in_groups_with_pauses_comes_back_as_one_number(server, voice):
    groups = ["two seven one five,", "nine three."]  # read as people read a number: a pause between groups
    pcm = paused(voice, groups[0], 0.5, groups[1])
    turns = await heard_in_one_call(server, pcm)
    assert len(turns) == 1, turns
    assert re.sub(r"\D", "", turns[0][1]) == "271593", turns
