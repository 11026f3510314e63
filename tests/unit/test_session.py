"""Call-session logic over real TCP sockets with scripted fake engines.

Fakes stand in for the models only (unit test of the session's logic); the
AudioSocket server, codec, pacing and VAD are the real ones.
"""

import asyncio
import time
import uuid
import wave

import numpy as np
import pytest

from agent.audio.pcm import rms_dbfs
from agent.config import BoxSettings, Capacity, load_config
from agent.engines import Engines
from agent.protocol import audiosocket as proto
from agent.stages.base import Transcript
from agent.store.records import read_record
from agent.transport.server import AgentServer

with wave.open("/usr/share/asterisk/sounds/en/pls-hold-while-try.wav") as _w:
    SPEECH = _w.readframes(_w.getnframes())  # real 8 kHz telephone speech


def tone(seconds: float) -> bytes:
    t = np.arange(int(8000 * seconds)) / 8000
    return (6000 * np.sin(2 * np.pi * 300 * t)).astype("<i2").tobytes()


class FakeStream:
    def __init__(self, text, delay=0.0):
        self.text = text
        self.delay = delay
        self.audio_bytes = 0

    def accept(self, pcm):
        self.audio_bytes += len(pcm)

    def partial(self):
        return ""

    def finish(self):
        time.sleep(self.delay)  # recognition takes time (a worker thread), as with a real model
        return Transcript(self.text, 0.9)


class FakeAsr:
    engine, model = "fake", "fake"

    def __init__(self):
        self.texts = []
        self.delay = 0.0
        self.streams = []

    def open_stream(self, hint=None):
        self.streams.append(FakeStream(self.texts.pop(0) if self.texts else "hello", self.delay))
        return self.streams[-1]


class FakeLlm:
    engine, model = "fake", "fake"

    def stream_reply(self, messages, should_stop):
        for piece in ["We are open ", "Monday to Friday. ", "Anything else?"]:
            if should_stop():
                return
            yield piece


class FakeTts:
    engine, model = "fake", "fake"

    def __init__(self, seconds=1.0):
        self.seconds = seconds

    def synthesize(self, text):
        return tone(self.seconds)


@pytest.fixture
async def server(tmp_path, monkeypatch):
    monkeypatch.setenv("PHONE_AGENT_DB", f"sqlite:///{tmp_path / 'agent.db'}")
    engines = Engines(asr=FakeAsr(), llm=FakeLlm(), tts=FakeTts(), choices=[])
    config = load_config()
    srv = AgentServer(engines, config, BoxSettings(ami_secret=""), "127.0.0.1", 0)
    await srv.start()
    srv.port = srv._server.sockets[0].getsockname()[1]
    yield srv
    await srv.close()


def no_speech_cache(server):
    """Turn the speech cache off the way an admin would (the server applies it to each new call)."""
    server.brain.config = server.config.model_copy(update={"capacity": Capacity(speech_cache_mb=0)})
    server.engines.speech.max_bytes = 0  # and drop what the start-up already made


class Caller:
    """Plays Asterisk's side of an AudioSocket connection."""

    def __init__(self, reader, writer, call_id):
        self.reader, self.writer, self.call_id = reader, writer, call_id
        self.decoder = proto.Decoder()
        self.received: list[tuple[float, proto.Message]] = []
        self.task = asyncio.create_task(self._read())

    @classmethod
    async def connect(cls, port, send_id=True):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        call_id = uuid.uuid4()
        if send_id:
            writer.write(proto.encode(proto.CallId(call_id)))
        return cls(reader, writer, str(call_id))

    async def _read(self):
        loop = asyncio.get_running_loop()
        try:
            while data := await self.reader.read(4096):
                for message in self.decoder.feed(data):
                    self.received.append((loop.time(), message))
        except ConnectionResetError:
            pass  # the agent closed while our audio was still arriving: the kernel resets, as with Asterisk

    async def send_audio(self, pcm, realtime=True):
        for i in range(0, len(pcm), 320):
            chunk = pcm[i : i + 320].ljust(320, b"\x00")
            self.writer.write(proto.encode(proto.Audio(chunk)))
            if realtime:
                await asyncio.sleep(0.02)

    async def silence(self, seconds):
        await self.send_audio(b"\x00" * int(16000 * seconds))

    def audio(self):
        return [(t, m.pcm) for t, m in self.received if isinstance(m, proto.Audio)]

    def loud_times(self):
        return [t for t, pcm in self.audio() if rms_dbfs(pcm) > -40]

    async def closed(self, timeout=5):
        await asyncio.wait_for(self.task, timeout)


async def test_audio_flows_from_the_first_moment_in_20ms_frames(server):
    caller = await Caller.connect(server.port)
    await asyncio.sleep(0.3)
    frames = caller.audio()
    assert len(frames) >= 8  # paced: about 15 frames in 300 ms
    assert all(len(pcm) == 320 for _, pcm in frames)
    caller.writer.write(proto.encode(proto.Hangup()))
    await caller.closed()


async def test_greeting_is_spoken_then_silence_keeps_flowing(server):
    caller = await Caller.connect(server.port)
    await caller.silence(2.0)
    loud = caller.loud_times()
    assert loud, "the greeting was not played"
    assert len(caller.audio()) > len(loud)  # silence frames after the greeting
    caller.writer.write(proto.encode(proto.Hangup()))
    await caller.closed()
    events = [e["event"] for e in read_record(caller.call_id)]
    assert events[0] == "call_start" and events[-1] == "call_end"


async def test_malformed_frame_closes_only_that_call(server):
    healthy = await Caller.connect(server.port)
    broken = await Caller.connect(server.port)
    await asyncio.sleep(0.2)
    broken.writer.write(b"\x42\x00\x00garbage")
    await broken.closed()
    before = len(healthy.audio())
    await healthy.silence(0.5)
    assert len(healthy.audio()) > before + 10  # still paced after the other call died
    assert len(server.active) == 1
    healthy.writer.write(proto.encode(proto.Hangup()))
    await healthy.closed()
    assert [e for e in read_record(broken.call_id) if e["event"] == "caller_gone"][0]["reason"] == "protocol-error"


async def test_connection_without_call_id_is_dropped(server):
    caller = await Caller.connect(server.port, send_id=False)
    caller.writer.write(proto.encode(proto.Audio(b"\x00" * 320)))
    await caller.closed()
    assert not any(isinstance(m, proto.Audio) and rms_dbfs(m.pcm) > -40 for _, m in caller.received)


async def test_question_gets_an_answer(server):
    server.engines.asr.texts = ["when are you open"]
    caller = await Caller.connect(server.port)
    await caller.silence(2.5)  # greeting
    await caller.send_audio(SPEECH)
    spoke_at = asyncio.get_running_loop().time()
    await caller.silence(2.5)
    assert [t for t in caller.loud_times() if t > spoke_at], "no spoken answer after the question"
    caller.writer.write(proto.encode(proto.Hangup()))
    await caller.closed()
    record = read_record(caller.call_id)
    assert any(e["event"] == "caller_turn" and e["heard"] == "when are you open" for e in record)
    answer = [e for e in record if e["event"] == "bot_turn" and e.get("kind") == "answer"][0]
    assert answer["text"].startswith("We are open Monday to Friday from 8 am to 6 pm")  # from the documents
    assert answer["sources"] and answer["sources"][0].startswith("clinic.md:")


async def test_barge_in_stops_the_bot(server):
    no_speech_cache(server)  # not the short greeting made at start: this one is long
    server.engines.tts.seconds = 6.0  # a long greeting to interrupt
    caller = await Caller.connect(server.port)
    await caller.silence(1.0)
    assert caller.loud_times(), "greeting should be playing"
    onset = asyncio.get_running_loop().time()
    await caller.send_audio(SPEECH[:16000])  # one second of the caller talking over the bot
    await caller.silence(0.3)
    late = [t for t in caller.loud_times() if t > onset + 1.0]
    assert len(late) < 10, "the bot kept talking over the caller"
    caller.writer.write(proto.encode(proto.Hangup()))
    await caller.closed()
    assert any(e["event"] == "barge_in" for e in read_record(caller.call_id))


async def test_dtmf_zero_hands_the_call_back_for_a_human(server):
    caller = await Caller.connect(server.port)
    await caller.silence(0.2)
    caller.writer.write(proto.encode(proto.Dtmf("0")))
    await caller.silence(0.1)
    await caller.closed(timeout=10)  # the agent says the transfer message, then closes
    assert isinstance(caller.received[-1][1], proto.Hangup)
    transfer = [e for e in read_record(caller.call_id) if e["event"] == "transfer"]
    assert transfer == [transfer[0]] and transfer[0]["reason"] == "dtmf-0"


async def test_silent_caller_is_prompted_then_handed_to_a_human(server, monkeypatch):
    server.brain.config = server.config.model_copy(update={"silence_timeout_s": 0.5, "max_silence_prompts": 1})
    server.engines.tts.seconds = 0.3
    caller = await Caller.connect(server.port)
    asyncio.create_task(caller.silence(6))
    await caller.closed(timeout=10)
    events = [e["event"] for e in read_record(caller.call_id)]
    assert events.count("caller_silent") == 2
    assert "transfer" in events


class BrokenTts(FakeTts):
    def synthesize(self, text):
        raise RuntimeError("onnx session died")


async def test_a_failing_model_hands_the_caller_to_a_human(server):
    server.engines.tts = BrokenTts()
    no_speech_cache(server)  # the greeting too comes from the broken model
    caller = await Caller.connect(server.port)
    asyncio.create_task(caller.silence(3))
    await caller.closed(timeout=5)
    events = read_record(caller.call_id)
    transfer = [e for e in events if e["event"] == "transfer"]
    assert transfer and transfer[0]["reason"] == "agent-error"
    assert events[-1]["event"] == "call_end"


async def test_reload_keeps_calls_on_their_config_and_rejects_broken_files(server, tmp_path):
    import shutil

    from agent.config import DEFAULT_CONFIG_DIR

    config_dir = tmp_path / "cfg"
    shutil.copytree(DEFAULT_CONFIG_DIR, config_dir)
    server.brain = server._build_brain(server.config.model_copy(update={"directory": config_dir}))
    in_progress = server.brain
    path = config_dir / "agent.yaml"
    path.write_text(path.read_text().replace("Riverside Dental Clinic", "Hillside Dental"))
    assert await server.reload("test")
    assert server.config.business_name == "Hillside Dental"
    assert in_progress.config.business_name == "Riverside Dental Clinic"  # what a running call holds
    path.write_text("business_name: [broken\n")
    assert not await server.reload("test")
    assert server.config.business_name == "Hillside Dental"


async def test_beyond_capacity_a_new_call_is_handed_to_a_human_at_once(server):
    server.brain.config = server.config.model_copy(update={"capacity": Capacity(max_calls=1)})
    first = await Caller.connect(server.port)
    await asyncio.sleep(0.3)
    second = await Caller.connect(server.port)
    await second.closed()  # turned away: the agent closes at once, the dialplan queues the caller
    assert any(isinstance(m, proto.Hangup) for _, m in second.received)
    assert not second.loud_times()  # no greeting: no agent for this call
    assert read_record(second.call_id)[-1]["outcome"] == "busy"
    assert first.audio() and not first.task.done()  # the call in progress is untouched
    first.writer.write(proto.encode(proto.Hangup()))
    await first.closed()


async def test_a_caller_who_pauses_mid_sentence_is_heard_as_one_turn(server):
    server.engines.asr.texts = ["when are", "when are you open"]
    server.engines.asr.delay = 0.5
    caller = await Caller.connect(server.port)
    await caller.silence(2.5)  # greeting
    half = len(SPEECH) // 2 // 320 * 320
    await caller.send_audio(SPEECH[:half])
    await caller.silence(0.6)  # the endpoint closes the first half; its recognition is still running
    await caller.send_audio(SPEECH[half:])
    spoke_at = asyncio.get_running_loop().time()
    await caller.silence(3.0)
    caller.writer.write(proto.encode(proto.Hangup()))
    await caller.closed()
    first, merged = server.engines.asr.streams[-2:]
    assert merged.audio_bytes > first.audio_bytes + len(SPEECH) // 2 - 3200  # both halves recognised together
    record = read_record(caller.call_id)
    heard = [e["heard"] for e in record if e["event"] == "caller_turn"]
    assert heard == ["when are you open"], record  # the half-heard question was never answered
    answers = [e for e in record if e["event"] == "bot_turn" and e.get("kind") == "answer"]
    assert len(answers) == 1 and answers[0]["text"].startswith("We are open")
    assert [t for t in caller.loud_times() if t > spoke_at]


async def _one_utterance_call(server) -> str:
    """A call that hears the greeting, says one utterance (real speech), waits and hangs up; its call id."""
    caller = await Caller.connect(server.port)
    await caller.silence(2.5)  # greeting
    await caller.send_audio(SPEECH)
    await caller.silence(2.5)
    caller.writer.write(proto.encode(proto.Hangup()))
    await caller.closed()
    return caller.call_id


async def test_recognition_starts_at_a_short_pause_and_its_result_is_used_when_the_caller_is_done(server):
    server.engines.asr.decodes_at_end = True
    server.engines.asr.delay = 0.3
    server.engines.asr.texts = ["not used: the speculation finished first", "when are you open"]
    call_id = await _one_utterance_call(server)
    buffered, speculation = server.engines.asr.streams[-2:]
    assert speculation.audio_bytes >= len(SPEECH) - 3200  # it saw the whole utterance
    heard = [e["heard"] for e in read_record(call_id) if e["event"] == "caller_turn"]
    assert heard == ["when are you open"]


async def test_a_speculation_the_caller_talks_over_is_dropped(server):
    server.engines.asr.decodes_at_end = True
    server.engines.asr.texts = ["when are you open", "when are", "when are you open"]
    caller = await Caller.connect(server.port)
    await caller.silence(2.5)
    half = len(SPEECH) // 2 // 320 * 320
    await caller.send_audio(SPEECH[:half])
    await caller.silence(0.2)  # long enough to speculate, too short to end the utterance
    await caller.send_audio(SPEECH[half:])
    await caller.silence(2.5)
    caller.writer.write(proto.encode(proto.Hangup()))
    await caller.closed()
    heard = [e["heard"] for e in read_record(caller.call_id) if e["event"] == "caller_turn"]
    assert heard == ["when are you open"]  # from the speculation at the real end, not the dropped one


def test_speech_cache_keeps_recent_sentences_within_its_budget():
    from agent.stages.speech_cache import SpeechCache

    cache = SpeechCache(max_bytes=10)
    cache.put("a", b"12345")
    cache.put("b", b"12345")
    assert cache.get("a") == b"12345"  # now the most recently heard
    cache.put("c", b"12345")  # over budget: "b" goes
    assert cache.get("b") is None and cache.get("a") and cache.get("c")
    cache.max_bytes = 0  # capacity.speech_cache_mb: 0 turns it off
    assert cache.get("a") is None
    cache.put("d", b"1")
    assert cache.get("d") is None


def test_compute_queue_runs_the_earliest_deadline_first():
    import asyncio
    import threading
    import time

    from agent.stages.compute import ComputeQueue

    async def main():
        queue = ComputeQueue(workers=1)
        gate = threading.Event()
        order = []
        blocker = asyncio.ensure_future(queue.run(gate.wait))  # occupies the worker while the others queue
        await asyncio.sleep(0.05)
        now = time.monotonic()
        later = asyncio.ensure_future(queue.run(order.append, "later clause", deadline=now + 3))
        skipped = asyncio.ensure_future(queue.run(order.append, "caller gone", deadline=now + 1))
        urgent = asyncio.ensure_future(queue.run(order.append, "transcript", deadline=now))
        await asyncio.sleep(0.05)
        skipped.cancel()
        gate.set()
        await asyncio.gather(blocker, later, urgent)
        failing = queue.run(lambda: 1 / 0)
        try:
            await failing
        except ZeroDivisionError:
            order.append("error reached the caller")
        return order

    assert asyncio.run(main()) == ["transcript", "later clause", "error reached the caller"]


async def test_the_greeting_is_synthesized_before_the_first_call(server):
    from agent.call.clauses import speakable

    greeting = speakable(server.config.greeting)
    for _ in range(100):
        if server.engines.speech.get(greeting) is not None:
            break
        await asyncio.sleep(0.02)
    assert server.engines.speech.get(greeting) is not None
    assert server.engines.speech.hits >= 1 and server.engines.speech.misses >= 1  # made here, not found ready


class SlowTts(FakeTts):
    def synthesize(self, text):
        time.sleep(1.5)  # a reply slower than the caller's pause: no bot audio before they go on
        return super().synthesize(text)


class ScriptedAsr(FakeAsr):
    """Each new stream hears the next (text, seconds of recognition)."""

    def __init__(self, script):
        super().__init__()
        self.script = list(script)

    def open_stream(self, hint=None):
        text, delay = self.script.pop(0) if self.script else ("hello", 0.0)
        self.streams.append(FakeStream(text, delay))
        return self.streams[-1]


async def test_a_half_turn_taken_back_leaves_one_caller_turn_in_the_record(server):
    """The half turn was acted on, then the caller went on: the record has the whole turn only (issue 15)."""
    no_speech_cache(server)
    server.engines.tts = SlowTts()
    # "when are you", not "when are": a half that stops on "are" is held for the rest and never acted on
    server.engines.asr = ScriptedAsr([("when are you", 0.0), ("when are you open", 0.0)])
    caller = await Caller.connect(server.port)
    await caller.silence(2.5)  # greeting
    half = len(SPEECH) // 2 // 320 * 320
    await caller.send_audio(SPEECH[:half])
    await caller.silence(0.7)  # the endpoint closes the first half; it is recognised and acted on
    await caller.send_audio(SPEECH[half:])
    await caller.silence(4.0)
    caller.writer.write(proto.encode(proto.Hangup()))
    await caller.closed()
    record = read_record(caller.call_id)
    assert "turn_continued" in [e["event"] for e in record], record  # the half turn was taken back
    turns = [(e["n"], e["heard"]) for e in record if e["event"] == "caller_turn"]
    assert turns == [(1, "when are you open")], record  # not "when are" and then "when are you open"
    assert not [e for e in record if e["event"] == "bot_turn" and e.get("kind") == "answer" and not e["text"]]


async def test_a_caller_who_goes_on_twice_is_one_turn_even_if_the_middle_part_is_still_being_recognised(server):
    """Parts A, B, C with short pauses; A was acted on, C starts while B is still recognised: C covers A+B+C
    and takes A back (it used to be a second turn, so the brain heard A and then A again inside A B C)."""
    no_speech_cache(server)
    server.engines.tts = SlowTts()
    server.engines.asr = ScriptedAsr([("please hold", 0.0), ("please hold while", 1.5), ("please hold while I try", 0)])
    caller = await Caller.connect(server.port)
    await caller.silence(2.5)  # greeting
    third = len(SPEECH) // 3 // 320 * 320
    await caller.send_audio(SPEECH[:third])
    await caller.silence(0.6)
    await caller.send_audio(SPEECH[third : 2 * third])
    await caller.silence(0.5)  # B has ended; its recognition takes 1.5 s
    await caller.send_audio(SPEECH[2 * third :])
    await caller.silence(4.0)
    caller.writer.write(proto.encode(proto.Hangup()))
    await caller.closed()
    record = read_record(caller.call_id)
    turns = [(e["n"], e["heard"]) for e in record if e["event"] == "caller_turn"]
    assert turns == [(1, "please hold while I try")], record


async def _one_question_call(server, heard: str) -> list[dict]:
    """A call with one question, recognised speculatively (as Whisper is) at every pause; its record."""
    server.engines.asr.decodes_at_end = True
    server.engines.asr.texts = ["not used: the speculation has it"] + [heard] * 5
    return read_record(await _one_utterance_call(server))


class CountingTts(FakeTts):
    def __init__(self):
        super().__init__()
        self.texts = []

    def synthesize(self, text):
        self.texts.append(text)
        time.sleep(0.05)
        return super().synthesize(text)


async def test_the_reply_to_a_finished_question_is_synthesized_while_the_endpoint_is_awaited(server):
    """At the pause the speculative transcript is tried on a copy of the dialogue and the answer's first
    clause synthesized then; the real turn speaks that audio instead of synthesizing it again."""
    no_speech_cache(server)
    server.engines.tts = CountingTts()
    record = await _one_question_call(server, "when are you open")
    answer = [e for e in record if e["event"] == "bot_turn" and e.get("kind") == "answer"][0]
    assert answer["rehearsed"] is True
    first = next(t for t in server.engines.tts.texts if t.startswith("We are open"))  # from the documents
    assert answer["text"].startswith(first) and server.engines.tts.texts.count(first) == 1


async def test_a_turn_that_would_run_a_tool_is_not_rehearsed(server):
    no_speech_cache(server)
    record = await _one_question_call(server, "I'd like to book a cleaning on Tuesday at ten")
    answer = [e for e in record if e["event"] == "bot_turn" and e.get("kind") == "answer"][0]
    assert answer["rehearsed"] is False and "Shall I book it?" in answer["text"]
    assert [e["tool"] for e in record if e["event"] == "tool_call"] == ["find_free_slot"]  # once: the real turn
