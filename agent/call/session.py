"""One phone call: owns its tasks, listens, replies, and ends the call cleanly.

Tasks per call (one TaskGroup): the paced playout writer, the listener (frames
in → VAD → streaming ASR → utterances), and the conversation loop. A reply is
its own task so barge-in can cancel exactly it: generation, synthesis and queued
audio stop; only what was actually played is kept as the bot's turn.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import enum
import logging
import os
import re
import time
from dataclasses import dataclass, replace

from agent import metrics
from agent.audio.echo import CleanLineDetector, LineCleaner
from agent.audio.pcm import resample
from agent.audio.vad import SpeechDetector, SpeechSegmenter, VadEvent
from agent.brain.answers import answer_clauses
from agent.brain.dialogue import Brain, Dialogue, NotRehearsable, Reply, transfer
from agent.brain.entities import as_json, digit_runs, is_no
from agent.call.clauses import speakable, split_clauses
from agent.call.playout import FRAME, FRAME_S, Playout
from agent.call.recording import CallRecording
from agent.call.survey import should_ask, survey_score
from agent.call.turn_end import ENDS_WITH_DIGIT, sounds_unfinished
from agent.config import AgentConfig, discloses_ai
from agent.engines import Engines
from agent.language import en
from agent.privacy.redact import DTMF, EMAIL, NAME, PAYMENT_TYPES, PHONE
from agent.protocol import audiosocket as proto
from agent.stages.base import TranscriberStream, Transcript
from agent.stages.compute import ComputeQueue
from agent.store.records import CallRecord, CallStore
from agent.telephony.ami import AmiLink
from agent.transport.admission import Admission

log = logging.getLogger(__name__)
_BACKCHANNEL = re.compile(en.BACKCHANNEL, re.IGNORECASE)


def _line_listener() -> CleanLineDetector | None:
    """Speech over the bot's voice: one echo canceller per call, and the raw line when it is louder than
    any echo (agent/audio/echo.py); without the canceller (the library missing) the VAD hears the raw line."""
    try:
        return CleanLineDetector(SpeechDetector(), LineCleaner(), raw_detector=SpeechDetector())
    except Exception:  # ImportError or the library's own start-up error (logged once at start-up)
        return None

# over the bot's own voice (echo cancelled, or the raw line louder than any echo), 40 ms of speech pause it:
# bench --barge-in, 40 vs 60 ms: onset 60 vs 80 ms, no more false stops on echo, noise, hum (0 at both)
BARGE_IN_SPEECH_S = 0.04
ECHO_TAIL_S = 0.5  # the bot's voice may still come back down the line this long after it stopped
PAUSE_MAX_S = 2.5  # a paused bot goes on by itself this long after the caller stopped, if no words came
PREROLL_FRAMES = 15  # 300 ms of audio before the VAD fired, so first syllables reach ASR
UUID_TIMEOUT_S = 2.0
# a pause this long starts recognition early (Whisper decodes at the end) and then the reply's rehearsal
# (`_rehearse`); the endpoint comes later. At 0.12 s the first clause was often still being synthesized at
# the endpoint (decode ~70 ms, rehearsal ~30 ms, first clause ~60-120 ms on two cores)
SPECULATE_AFTER_S = 0.08
CORES = os.cpu_count() or 2
DIGIT_PAUSE_S = 3.0  # keypad entry ends with # or this long a pause
# an utterance ending in a number or on an unfinished phrase ("my account number is") waits this long for
# the rest: 1.2 s cut 0 of 30 numbers read in groups, 0.7 s cut 3 (python -m agent bench --turn-taking)
HOLD_UNFINISHED_S = 1.2
# a caller who goes on after a pause is still one turn if the bot's reply has sounded this little (10 frames,
# 200 ms): a rehearsed reply starts ~190 ms sooner than one made after the endpoint, and it would otherwise
# turn "Sorry, wrong number. [pause] Goodbye." into two turns (the reply's start is paused, then dropped)
CONTINUE_OVER_BOT_FRAMES = 10
_PERSONAL_SLOTS = {"name": NAME, "email": EMAIL, "phone": PHONE}  # shown on /live only as their kind


class Outcome(enum.StrEnum):
    COMPLETED = "completed"
    TRANSFERRED = "transferred"
    HANGUP = "hangup"  # the caller hung up
    ERROR = "error"
    BUSY = "busy"  # turned away by admission control: straight to a human


@dataclass(frozen=True)
class Utterance:
    text: str
    confidence: float | None
    speech_end_at: float  # monotonic time the endpointer closed the utterance
    asr_ms: float
    continues: bool = False  # the caller went on after a pause: this replaces the previous turn
    stream_no: int = 0  # which speech segment of the call this is
    endpoint_ms: float = 0.0  # the silence the endpointer waited for before closing the utterance
    first_stream: int = 0  # the first speech segment it covers (earlier than stream_no when it continues)
    held: bool = False  # waited for once already (it ended in the middle of a number)


@dataclass(frozen=True)
class BargeIn:
    at: float


@dataclass(frozen=True)
class DtmfPressed:
    digit: str


@dataclass(frozen=True)
class CallerGone:
    reason: str


@dataclass(frozen=True)
class AgentFault:
    """A stage failed inside this call (model error): the caller goes to a human."""

    where: str


CallEvent = Utterance | BargeIn | DtmfPressed | CallerGone | AgentFault


class CallSession:
    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        engines: Engines,
        brain: Brain,
        records: CallStore,
        ami: AmiLink | None = None,
        admission: Admission | None = None,
    ) -> None:
        self._admission = admission
        self._reader = reader
        self._records = records
        self._writer = writer
        self._engines = engines
        self._brain = brain  # with its config: a call keeps the config it started with
        self._config = brain.config
        self._dialogue: Dialogue | None = None
        self._utterance: Utterance | None = None
        self._expect_digits = False
        self._digits = ""
        self._digits_deadline = 0.0
        self._ami = ami
        self.call_id = ""
        self._events: asyncio.Queue[CallEvent] = asyncio.Queue()
        self._recording: CallRecording | None = None  # only with privacy.record_calls
        self._playout = Playout(self._send, tap=self._record_bot)
        self._line = _line_listener()  # WebRTC echo canceller: the bot's echo must not stop the bot
        self._paused_at: float | None = None  # the bot paused for a possible barge-in (BargeIn.at)
        self._caller_speaking = False
        self._speech_ended_at = 0.0  # when the caller last stopped speaking (monotonic)
        self._history: list[dict[str, str]] = []
        self._reply_task: asyncio.Task | None = None
        self._record: _TurnRecord | None = None
        self.outcome: Outcome | None = None
        self._early: list[proto.Message] = []  # messages that arrived with the call id
        self._spoken: list[tuple[str, int]] = []  # clauses of the current bot turn, with end frame
        self._rehearsed = False
        self._reply_to: int | None = None
        self._turn_no = 0  # caller turns heard so far
        self._last_speech: _Segment | None = None  # the last speech segment, for a caller who goes on
        self._before_turn: tuple | None = None  # dialogue state and history length before the last caller turn
        self._streams = 0  # speech segments so far
        self._superseded_up_to = 0  # segments merged into a later one (the caller only paused)
        self._processed_stream = 0  # the last segment the conversation acted on
        self._prepared: dict[str, asyncio.Future[bytes]] = {}  # a rehearsed reply's first clause, being synthesized
        self._rehearsal: asyncio.Task | None = None
        self._turn_revocable = False  # the last turn may be taken back if the caller was not done
        self._started = time.monotonic()
        self._started_at = dt.datetime.now(dt.UTC)
        self._last_reply_ms: int | None = None  # for /live
        self._ending = ""  # "transfer" while the caller is being handed to a human
        self._upset = False  # the caller sounded upset at some point: never asked the survey
        self._surveying = False

    # ---- lifecycle --------------------------------------------------------

    async def run(self, turn_away: str | None = None) -> Outcome:
        """Serve the call; with `turn_away` (the box is overloaded) hand it straight to a human."""
        decoder = proto.Decoder()
        try:
            first = await self._first_message(decoder)
        except ConnectionError:
            log.debug("connection closed without a word (a port probe)")
            self._writer.close()
            return Outcome.ERROR
        except (TimeoutError, proto.ProtocolError) as exc:
            log.warning("connection dropped before a call id: %s", exc or "no call id within 2 s")
            self._writer.close()
            return Outcome.ERROR
        self.call_id = str(first.id)
        self._record = _TurnRecord(
            self._records.open_call(self.call_id, self._config.directory.name, self._brain.redactor)
        )
        self._record.write("call_start", models=[c.model for c in self._engines.choices])
        if turn_away:
            return await self._turn_away(turn_away)
        if self._config.privacy.record_calls:
            self._recording = CallRecording(self.call_id)
        log.info("call %s: connected", self.call_id)
        try:
            async with asyncio.TaskGroup() as group:
                playout = group.create_task(self._playout.run())
                listener = group.create_task(self._listen(decoder))
                self.outcome = await self._converse()
                for task in (listener, playout):
                    task.cancel()
        except* (proto.ProtocolError, ConnectionError, OSError) as errors:
            log.warning("call %s: connection error: %s", self.call_id, errors.exceptions[0])
            self.outcome = self.outcome or Outcome.ERROR
        finally:
            if self._reply_task and not self._reply_task.done():
                self._reply_task.cancel()  # its record of what was heard is written before the record closes
                await asyncio.wait([self._reply_task], timeout=1.0)
            self._close_socket()
            if self._ami:
                self._ami.forget(self.call_id)
            self._record.write("call_end", outcome=str(self.outcome or Outcome.ERROR))
            self._record.close()
            if self._recording:
                self._recording.close()
            log.info("call %s: ended (%s)", self.call_id, self.outcome)
        return self.outcome or Outcome.ERROR

    async def _turn_away(self, reason: str) -> Outcome:
        """No agent for this call: the dialplan queues the caller for a human at once (AGENT_ACTION=busy)."""
        log.warning("call %s: sent to a human at once: %s", self.call_id, reason)
        self.outcome = Outcome.BUSY
        if self._ami:
            await self._ami.set_vars(self.call_id, {"AGENT_ACTION": "busy"})
            self._ami.forget(self.call_id)
        self._close_socket()  # without the AMI variable the dialplan still queues the caller
        self._record.write("call_end", outcome=str(self.outcome))
        return self.outcome

    def live(self) -> dict:
        """This call for the /live endpoint: state, task, slots so far (redacted like the record), last reply."""
        run = self._dialogue.run if self._dialogue else None
        slots = {}
        if run is not None and self._record is not None:
            for slot in run.task.slots:
                if slot.name in run.fields:
                    value = as_json(run.fields[slot.name])
                    kind = _PERSONAL_SLOTS.get(slot.type)
                    slots[slot.name] = f"[{kind}]" if kind else str(self._record.redact(str(value)))
        return {
            "call_id": self.call_id,
            "started_at": self._started_at.isoformat(timespec="seconds"),
            "duration_s": round(time.monotonic() - self._started, 1),
            "state": self._state(run is not None),
            "task": run.task.name if run is not None else None,
            "slots": slots,
            "last_reply_ms": self._last_reply_ms,
            "turns": self._turn_no,
        }

    def _state(self, in_task: bool) -> str:
        if self._ending == "transfer":
            return "transferring"
        if self._playout.speaking:
            return "speaking"
        if self._reply_busy():
            return "thinking"  # deciding, generating or synthesizing; nothing audible yet
        return "in_task" if in_task else "listening"

    async def _first_message(self, decoder: proto.Decoder) -> proto.CallId:
        async with asyncio.timeout(UUID_TIMEOUT_S):
            while True:
                data = await self._reader.read(4096)
                if not data:
                    raise ConnectionError("peer closed")
                messages = decoder.feed(data)
                if messages:
                    if not isinstance(messages[0], proto.CallId):
                        raise proto.ProtocolError(f"first message is {type(messages[0]).__name__}, not the call id")
                    self._early = messages[1:]
                    return messages[0]

    def _record_bot(self, pcm: bytes) -> None:
        if self._recording:
            self._recording.add_bot(pcm)
        if self._line and self._bot_on_line():
            self._line.played(pcm)  # the far end the echo canceller takes out of the caller's line

    def _bot_on_line(self) -> bool:
        """Is the bot talking, or has it stopped so recently that its echo may still come back? Only then
        does the echo canceller run: fed and asked for every frame of every call, it was a third of the
        event loop's work with 24 calls, and with the bot silent there is nothing for it to take out."""
        return self._playout.speaking or time.monotonic() - self._playout.last_bot_frame_at < ECHO_TAIL_S

    def _send(self, data: bytes) -> None:
        if not self._writer.is_closing():
            self._writer.write(data)

    def _close_socket(self) -> None:
        if not self._writer.is_closing():
            try:
                self._writer.write(proto.encode(proto.Hangup()))
            except (ConnectionError, OSError):
                pass
            self._writer.close()

    # ---- listening --------------------------------------------------------

    async def _listen(self, decoder: proto.Decoder) -> None:
        detector = SpeechDetector()
        segmenter = SpeechSegmenter(self._config.endpointing)
        # over the bot, a little speech pauses it (BARGE_IN_SPEECH_S): a false start costs only a pause,
        # the bot goes on when no words come
        over_bot = replace(self._config.endpointing, start_speech_s=BARGE_IN_SPEECH_S)
        preroll: collections.deque[bytes] = collections.deque(maxlen=PREROLL_FRAMES)
        pending = bytearray()
        media_time = 0.0
        stream: _StreamingRecognition | None = None
        loop = asyncio.get_running_loop()
        backlog, self._early = self._early, []
        while True:
            if backlog:
                messages, backlog = backlog, []
            else:
                data = await self._reader.read(4096)
                if not data:
                    if decoder.pending:
                        log.warning("call %s: stream ended inside a frame", self.call_id)
                    await self._events.put(CallerGone("closed"))
                    return
                try:
                    messages = decoder.feed(data)
                except proto.ProtocolError as exc:
                    log.warning("call %s: malformed frame from Asterisk: %s", self.call_id, exc)
                    await self._events.put(CallerGone("protocol-error"))
                    return
            for message in messages:
                match message:
                    case proto.Audio(pcm=pcm, rate=rate):
                        if rate != 8000:
                            pcm = resample(pcm, rate, 8000)
                        pending += pcm
                        while len(pending) >= FRAME:
                            frame, pending[:] = bytes(pending[:FRAME]), pending[FRAME:]
                            media_time += FRAME_S
                            if self._recording:
                                self._recording.add_caller(frame)
                            speech, talking = self._caller_speaks(frame, detector)
                            segmenter.settings = over_bot if talking and self._line else self._config.endpointing
                            credit = self._line.onset_credit_s if talking and self._line else 0.0
                            event = segmenter.process(media_time, speech, credit)
                            self._caller_speaking = segmenter.in_speech
                            if event is VadEvent.SPEECH_START:
                                previous = self._continued_utterance(media_time)
                                self._streams += 1
                                if previous is not None:
                                    self._superseded_up_to = self._streams - 1
                                stream = _StreamingRecognition(
                                    self._engines.asr.open_stream(self._asr_hint()),
                                    self._engines.compute,
                                    loop,
                                    self._streams,
                                    continues=previous is not None,
                                )
                                if self._recording:
                                    stream.hold = self._recording.hold(self._recording.caller_frames - len(preroll) - 1)
                                stream.call_id = self.call_id
                                if previous is not None:  # one turn: the earlier audio, the pause, this speech
                                    stream.audio_start = previous.audio_start
                                    stream.first = previous.first
                                    stream.add(previous.audio)
                                else:
                                    stream.audio_start = media_time - len(preroll) * FRAME_S
                                stream.add(b"".join(preroll))
                                await self._events.put(BargeIn(time.monotonic()))
                            if stream is not None:
                                stream.add(frame)
                                self._speculate(stream, segmenter, media_time)
                            else:
                                preroll.append(frame)
                            if event is VadEvent.SPEECH_END:
                                self._speech_ended_at = time.monotonic()
                            if event is VadEvent.SPEECH_END and stream is not None:
                                ended_at = time.monotonic()
                                stream.endpoint_ms = (media_time - segmenter.last_speech_at) * 1000
                                self._last_speech = _Segment(
                                    media_time, bytes(stream.audio), self._playout.frames_played, stream.number,
                                    stream.audio_start, stream.first,
                                )  # fmt: skip
                                if self._recording:
                                    stream.last_frame = self._recording.caller_frames
                                finished, stream = stream, None
                                preroll.clear()
                                asyncio.create_task(self._finish_utterance(finished, ended_at))
                            self._settle_turn(media_time)
                    case proto.Dtmf(digit=digit):
                        await self._events.put(DtmfPressed(digit))
                    case proto.Hangup():
                        await self._events.put(CallerGone("hangup"))
                        return
                    case proto.Error(code=code):
                        log.warning("call %s: Asterisk reported error code %s", self.call_id, code)
                        await self._events.put(CallerGone("asterisk-error"))
                        return
                    case proto.CallId():
                        log.warning("call %s: unexpected second call id ignored", self.call_id)

    def _speculate(self, stream: _StreamingRecognition, segmenter: SpeechSegmenter, media_time: float) -> None:
        """At a short pause start recognising, so an utterance that has ended is transcribed sooner.

        Only for engines that decode at the end (Whisper), and only while the box has
        a core to spare: a speculation the caller talks over is wasted work.
        """
        if not getattr(self._engines.asr, "decodes_at_end", False):
            return
        if stream.speculation is not None:
            if segmenter.last_speech_at > stream.speculated_at:
                stream.drop_speculation()  # the caller went on
            return
        pause = media_time - segmenter.last_speech_at
        if pause >= SPECULATE_AFTER_S - FRAME_S / 2 and _StreamingRecognition.decoding < CORES and not self._engines.compute.waiting:
            endpoint_in_s = segmenter.settings.end_silence_s - pause
            stream.speculate(self._engines.asr.open_stream(self._asr_hint()), media_time, endpoint_in_s)
            speculation = stream.speculation
            ready_at = time.monotonic() + endpoint_in_s
            speculation.add_done_callback(lambda done: self._rehearse(stream, done, ready_at))

    def _rehearse(self, stream: _StreamingRecognition, speculation: asyncio.Future, ready_at: float) -> None:
        """With the speculative transcript in, try the turn on a copy of the dialogue and synthesize the
        reply's first clause while the endpoint is still awaited: if the caller has finished, the real turn
        finds its first words already spoken (`_speak` takes them from `_prepared`).

        Only when the box has a core to spare, and never for a turn that would run a tool or the LLM
        (the rehearsal refuses those); a rehearsal the caller talks over costs one wasted synthesis.
        """
        if speculation.cancelled() or speculation.exception() is not None or stream.speculation is not speculation:
            return
        text = speculation.result().text
        if text and self._dialogue is not None and not self._engines.compute.waiting:
            # kept: the event loop holds tasks only weakly
            self._rehearsal = asyncio.get_running_loop().create_task(
                self._prepare(self._dialogue.rehearsal(), text, ready_at)
            )

    async def _prepare(self, dialogue: Dialogue, text: str, ready_at: float) -> None:
        try:
            reply = await dialogue.on_text(text)
        except NotRehearsable:
            return
        except Exception:  # a rehearsal must never harm the call: the real turn will meet the same fault
            log.debug("call %s: rehearsal failed", self.call_id, exc_info=True)
            return
        first = self._first_clause(reply)
        if first is None or self._engines.compute.waiting:
            return
        clause, reusable = first
        if not clause or clause in self._prepared or reusable and self._engines.speech.get(clause) is not None:
            return  # the cache has it, or an earlier pause in this turn rehearsed the same words
        for stale in self._prepared.values():
            stale.cancel()  # a compute job nobody awaits is skipped
        job = self._engines.compute.run(self._engines.tts.synthesize, clause, deadline=ready_at)
        self._prepared = {clause: asyncio.ensure_future(job)}

    def _first_clause(self, reply: Reply) -> tuple[str, bool] | None:
        """The words `_respond` will speak first, and whether they are the same for every caller."""
        if reply.end is not None:
            return None
        for sentence in reply.say:
            for clause in split_clauses(sentence):
                return speakable(clause), False
        if reply.answer is not None and self._brain.llm is None:  # extractive: answer_clauses says it as is
            for clause in split_clauses(reply.answer.extractive):
                return speakable(clause), True
        return None

    def _settle_turn(self, media_time: float) -> None:
        """Write the held caller turn once it can no longer be continued (a reply reached the caller,
        or the caller did not go on in time)."""
        if self._record.held_stream and not self._may_continue(self._record.held_stream, media_time):
            self._record.settle()

    def _unfinished(self, text: str) -> bool:
        """Does the utterance stop in the middle: in a number (not yet as many digits as asked for), or on a
        word a sentence does not end on ("my account number is")?"""
        if not ENDS_WITH_DIGIT.search(text):
            return sounds_unfinished(text)
        slot = self._dialogue.expecting if self._dialogue else None
        if slot is not None and slot.type == "digits" and slot.length:
            runs = digit_runs(text)
            return not runs or len(runs[-1]) < slot.length
        return True

    def _hold_then_requeue(self, utterance: Utterance) -> None:
        async def later() -> None:
            await asyncio.sleep(HOLD_UNFINISHED_S)
            await self._events.put(replace(utterance, held=True))  # skipped there if the caller went on

        asyncio.get_running_loop().create_task(later())

    def _may_continue(self, number: int, media_time: float) -> bool:
        """Whether the turn heard in segment `number` may still be taken back: speech going on from it
        has started, or may still start (see `_continued_utterance`)."""
        if self._superseded_up_to >= number:
            return True  # the caller went on: the longer utterance replaces it when it is recognised
        last = self._last_speech
        return (
            last is not None
            and last.number == number
            and media_time - last.ended <= self._config.endpointing.continue_within_s
            and self._playout.frames_played - last.frames_played <= CONTINUE_OVER_BOT_FRAMES
        )

    def _continued_utterance(self, media_time: float) -> _Segment | None:
        """The previous utterance if this speech continues it: the caller only paused.

        That is when it starts soon after the previous one ended, at most the first
        200 ms of a reply has reached the caller since, and the turn did nothing that cannot be taken back
        (a tool, the end of the call). Then the two are recognised as one turn, so a
        short endpoint does not answer half a question.
        """
        if self._last_speech is None:
            return None
        last = self._last_speech
        if self._processed_stream >= last.number and not self._turn_revocable:
            return None  # the last turn was acted on (a tool ran, the call is ending)
        if media_time - last.ended > self._config.endpointing.continue_within_s:
            return None
        if self._playout.frames_played - last.frames_played > CONTINUE_OVER_BOT_FRAMES:
            return None  # the caller heard a reply, and went on after it
        return last

    async def _finish_utterance(self, stream: _StreamingRecognition, ended_at: float) -> None:
        try:
            transcript = await stream.finish()
        except Exception:
            log.exception("call %s: speech recognition failed", self.call_id)
            if self._recording and stream.hold is not None:  # unknown content: kept out of the recording
                self._recording.release(stream.hold, silence_until=stream.last_frame)
            await self._events.put(AgentFault("asr"))
            return
        asr_ms = (time.monotonic() - ended_at) * 1000
        text = transcript.text.strip()
        if self._recording and stream.hold is not None:
            payment = self._brain.redactor.kinds(text) & PAYMENT_TYPES
            self._recording.release(stream.hold, silence_until=stream.last_frame if payment else None)
        await self._events.put(
            Utterance(
                text,
                transcript.confidence,
                ended_at,
                asr_ms,
                stream.continues,
                stream.number,
                stream.endpoint_ms,
                stream.first,
            )
        )

    # ---- conversation -----------------------------------------------------

    async def _converse(self) -> Outcome:
        config = self._config
        caller_id = await self._caller_id()
        self._dialogue = self._brain.dialogue(caller_id)
        opening = await self._dialogue.opening()
        self._start_reply(self._speak_fixed(config.greeting, kind="greeting", personal=opening))
        silence_prompts = 0
        last_activity = time.monotonic()  # caller spoke/pressed, or the bot finished talking
        while True:
            try:
                event = await asyncio.wait_for(self._events.get(), 0.25)
            except TimeoutError:
                if self._digits and time.monotonic() >= self._digits_deadline:
                    ended = await self._handle(await self._dialogue.on_digits(self._take_digits()))
                    if ended:
                        return ended
                elif self._paused_at is not None and not self._caller_speaking:
                    # measured from when the caller stopped: their words may still be on the way
                    if time.monotonic() - max(self._paused_at, self._speech_ended_at) >= PAUSE_MAX_S:
                        self._go_on("nothing heard")
                    last_activity = time.monotonic()
                elif self._playout.speaking or self._reply_busy() or self._digits:
                    last_activity = time.monotonic()
                elif time.monotonic() - last_activity >= config.silence_timeout_s:
                    silence_prompts += 1
                    last_activity = time.monotonic()
                    self._record.write("caller_silent", prompts=silence_prompts)
                    if silence_prompts > config.max_silence_prompts:
                        return await self._handle(transfer(config, "caller-silent"))
                    self._start_reply(self._speak_fixed(config.silence_prompt, kind="silence_prompt"))
                continue
            last_activity = time.monotonic()
            reply = None
            match event:
                case BargeIn():
                    if self._playout.speaking:
                        self._pause_for_barge_in(event.at)  # maybe only a cough or an "mm-hm"
                    elif self._reply_busy():
                        await self._interrupt(event.at)  # the caller goes on before the bot said a word
                case Utterance(stream_no=number) if number <= self._superseded_up_to:
                    pass  # the caller went on speaking: the longer utterance that includes this one follows
                case Utterance(text=""):
                    self._record.settle()  # nothing replaces the turn before it
                    self._record.write("turn_empty")
                    if self._paused_at is not None:
                        self._go_on("no words")
                case Utterance(text=text) if self._paused_at is not None and _BACKCHANNEL.search(text):
                    self._go_on("backchannel")  # "mm-hm" while the bot talks: listening, not a turn
                case Utterance() as utterance if self._unfinished(utterance.text) and not utterance.held:
                    # a caller reading a number pauses between its groups: wait a moment for the rest; the
                    # continuation then arrives as one longer utterance, and this half is never answered
                    self._hold_then_requeue(utterance)
                case Utterance() as utterance:
                    silence_prompts = 0
                    await self._interrupt(None)
                    # the turn acted on last is part of this utterance (the caller only paused): take it back
                    revoke = (
                        utterance.continues and utterance.first_stream <= self._processed_stream < utterance.stream_no
                    )
                    self._processed_stream = utterance.stream_no
                    if revoke and self._before_turn is not None:
                        dialogue_state, history_length = self._before_turn  # take the half-heard turn back
                        self._dialogue.restore(dialogue_state)
                        del self._history[history_length:]
                        self._record.take_back()
                        self._record.write("turn_continued", n=self._turn_no)
                    else:
                        self._record.settle()
                        self._turn_no += 1
                    self._before_turn = (self._dialogue.snapshot(), len(self._history))
                    heard = {
                        "n": self._turn_no,
                        "heard": utterance.text,
                        "confidence": utterance.confidence,
                        "asr_ms": round(utterance.asr_ms),
                    }
                    self._utterance = utterance
                    self._upset = (
                        self._upset or self._brain.angry(utterance.text) or self._brain.negative(utterance.text)
                    )
                    reply = await self._dialogue.on_text(utterance.text)
                    self._turn_revocable = not any(call.changes for call in reply.tools) and reply.end is None
                    if self._turn_revocable:  # written once the caller hears a reply or does not go on
                        self._record.hold_turn(utterance.stream_no, heard)
                    else:
                        self._record.write("caller_turn", **heard)
                case DtmfPressed(digit=digit):
                    self._turn_revocable = False
                    self._record.settle()
                    reply = await self._on_key(digit)
                case AgentFault(where=where):
                    self._record.write("agent_fault", where=where)
                    reply = transfer(config, "agent-error", config.fallback_message)
                case CallerGone(reason=reason):
                    self._record.write("caller_gone", reason=reason)
                    return Outcome.HANGUP if reason in ("hangup", "closed") else Outcome.ERROR
            if reply is not None:
                ended = await self._handle(reply)
                if ended:
                    return ended

    async def _caller_id(self) -> str | None:
        if self._ami is None:
            return None
        info = await self._ami.channel_info(self.call_id, timeout=0.5)
        if info:
            self._record.write("asterisk_ids", uniqueid=info.get("uniqueid"), linkedid=info.get("linkedid"))
        return (info or {}).get("caller_id") or None

    async def _on_key(self, digit: str) -> Reply | None:
        """Keypad: digits answer a pending question (ended by # or a pause); 0 alone asks for a person."""
        if self._expect_digits:
            if digit == "#":
                return await self._dialogue.on_digits(self._take_digits()) if self._digits else None
            self._digits += digit
            self._digits_deadline = time.monotonic() + DIGIT_PAUSE_S
            return None
        self._keypad_turn()
        if digit == "0":
            return transfer(self._config, "dtmf-0")
        return await self._dialogue.on_digits(digit)

    def _take_digits(self) -> str:
        digits, self._digits = self._digits, ""
        self._keypad_turn()
        return digits

    def _keypad_turn(self) -> None:
        """Keypad input is a caller turn too; which keys is not recorded (often an account number)."""
        self._turn_no += 1
        self._utterance = None
        self._record.write("caller_turn", n=self._turn_no, heard=f"[{DTMF}]", keypad=True)

    async def _handle(self, reply: Reply) -> Outcome | None:
        """Act on the dialogue's reply; returns an outcome when the call ends here."""
        self._expect_digits = reply.expect_digits
        if self._recording:
            self._recording.paused = reply.expect_digits  # keypad entry is never recorded
        if not reply.expect_digits:
            self._digits = ""  # keys half-entered before the caller spoke instead
        for call in reply.tools:  # shielded from barge-in: the tool already ran
            self._record.write(
                "tool_call", reply_to=self._turn_no, tool=call.tool, arguments=call.arguments, result=call.result
            )
        if reply.end == "transfer":
            return await self._hand_back(
                Outcome.TRANSFERRED, reply.reason or "transfer", " ".join(reply.say), reply.target
            )
        if reply.end == "hangup":
            if should_ask(self._config, reply, self._upset, self._turn_no):
                return await self._survey(" ".join(reply.say))
            return await self._finish(Outcome.COMPLETED, " ".join(reply.say))
        self._start_reply(self._respond(reply))
        return None

    def _reply_busy(self) -> bool:
        return self._reply_task is not None and not self._reply_task.done()

    def _start_reply(self, coro) -> None:
        self._reply_task = asyncio.create_task(coro)
        self._reply_task.add_done_callback(self._reply_done)

    def _reply_done(self, task: asyncio.Task) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("call %s: reply failed", self.call_id, exc_info=task.exception())
            self._events.put_nowait(AgentFault("reply"))

    def _caller_speaks(self, frame: bytes, detector: SpeechDetector) -> tuple[bool, bool]:
        """Is the caller speaking in this frame, and is the bot talking (or just stopped)? While the bot
        talks, judged with its echo taken out (or on the raw line, louder than any echo); otherwise on the
        raw frame, which the echo canceller's noise suppressor would shorten at sentence ends (bench: 3 vs
        0 sentences cut at 0.45 s)."""
        talking = self._bot_on_line()
        if self._line is None or not talking:
            return detector.is_speech(frame), talking
        return self._line.is_speech(frame), talking  # every frame while the bot talks: the canceller keeps up

    def _pause_for_barge_in(self, at: float) -> None:
        """The caller may be talking over the bot: silence the bot at once, decide when their words are in."""
        if self._paused_at is None:
            self._paused_at = at
            self._record.write("barge_in", stop_ms=round((time.monotonic() - at) * 1000))
        self._playout.pause()

    def _go_on(self, why: str) -> None:
        """It was a cough, an "mm-hm" or nothing: the bot goes on where it paused."""
        self._record.write("barge_in_resumed", reason=why, paused_ms=round((time.monotonic() - self._paused_at) * 1000))
        self._paused_at = None
        self._playout.resume()

    async def _interrupt(self, barge_at: float | None) -> None:
        """Stop the current reply: queued audio, synthesis and generation."""
        self._paused_at = None  # a pause for a barge-in ends here: it was the caller talking
        dropped = self._playout.clear()
        if self._reply_task and not self._reply_task.done():
            self._reply_task.cancel()
            try:
                await asyncio.wait_for(asyncio.shield(self._reply_task), 0.5)
            except (TimeoutError, asyncio.CancelledError):
                pass
        if dropped:
            heard = self._heard_by_caller()
            if self._history and self._history[-1]["role"] == "assistant":
                self._history[-1]["content"] = heard  # keep only what the caller heard
            self._record.write("bot_cut", reply_to=self._reply_to, heard=heard, dropped_frames=dropped)
        if barge_at is not None and dropped:
            self._record.write("barge_in", stop_ms=round((time.monotonic() - barge_at) * 1000))

    async def _speak(self, text: str, reusable: bool = False) -> bool:
        """Synthesize and queue one clause; remember where it ends so an interruption knows what was heard.

        reusable: the same words for every caller (greeting, prompts, knowledge-base answers), so
        the audio is kept in the shared speech cache; never for text with a caller's details.
        """
        text = speakable(text)
        if not text:
            return False
        needed_at = time.monotonic() + self._playout.queued_s  # when the audio queued before it runs out
        prepared = self._prepared.pop(text, None)
        self._rehearsed = self._rehearsed or prepared is not None
        pcm = await synthesize(self._engines, text, needed_at, reusable, prepared)
        end_frame = self._playout.enqueue(pcm)
        self._spoken.append((text, end_frame))
        return True

    def _begin_bot_turn(self, reply_to: int | None = None) -> None:
        self._spoken = []
        self._rehearsed = False  # its first words were synthesized while the endpoint was awaited
        self._reply_to = reply_to  # the caller turn this answers (None: greeting, prompts)

    def _heard_by_caller(self) -> str:
        """Text of the clauses that fully played before playback stopped."""
        return " ".join(text for text, end in self._spoken if end <= self._playout.frames_played)

    async def _speak_fixed(self, text: str, kind: str, personal: str = "") -> None:
        """A sentence from the configuration (the same for every caller), then any words for this caller."""
        self._begin_bot_turn()
        await self._speak(text, reusable=True)
        if personal:
            await self._speak(personal)
            text = f"{text} {personal}"
        extra = {"disclosure": discloses_ai(text)} if kind == "greeting" else {}
        self._record.write("bot_turn", kind=kind, text=text, **extra)
        self._history.append({"role": "assistant", "content": text})

    def _asr_hint(self) -> str:
        """The recognizer's prompt for the next utterance: a number when the bot has just asked for one."""
        if self._surveying:
            return en.SCORE_HINT
        return self._dialogue.asr_hint if self._dialogue else self._brain.asr_hint

    async def _respond(self, reply: Reply) -> None:
        """Speak a reply: fixed sentences first, then the answer (generated and checked, or extractive)."""
        self._begin_bot_turn(reply_to=self._turn_no)
        utterance = self._utterance
        self._history.append({"role": "user", "content": utterance.text if utterance else ""})
        started = time.monotonic()
        timings = {}
        if utterance:  # decide: from the transcript to this reply (routing, tools, a number's hold)
            decide_ms = max(0.0, (started - utterance.speech_end_at) * 1000 - utterance.asr_ms)
            timings = {"endpoint_ms": utterance.endpoint_ms, "asr_ms": utterance.asr_ms, "decide_ms": decide_ms}
        sources: list[str] = []
        interrupted = False
        try:
            for sentence in reply.say:
                for clause in split_clauses(sentence):
                    await self._speak_timed(clause, started, timings)
            if reply.answer is not None:
                sources = reply.answer.sources

                def blocked(facts: int) -> None:
                    self._record.write("grounding_block", reply_to=self._reply_to, facts=facts)

                async for clause in answer_clauses(self._brain, reply.answer, self._history, blocked):
                    await self._speak_timed(clause.text, started, timings, reusable=clause.reusable)
            for sentence in reply.then:  # back to the task the question interrupted
                for clause in split_clauses(sentence):
                    await self._speak_timed(clause, started, timings)
            if not self._spoken:
                await self._speak(self._config.fallback_message, reusable=True)
        except asyncio.CancelledError:
            interrupted = True
            raise
        finally:
            text = self._heard_by_caller() if interrupted else " ".join(clause for clause, _ in self._spoken)
            self._history.append({"role": "assistant", "content": text})
            self._record.write(
                "bot_turn",
                kind="answer",
                reply_to=self._reply_to,
                intent=reply.intent,
                text=text,
                sources=sources,
                interrupted=interrupted,
                rehearsed=self._rehearsed,
                **{k: round(v) for k, v in timings.items()},
            )

    async def _speak_timed(
        self, clause: str, started: float, timings: dict[str, float], reusable: bool = False
    ) -> None:
        timings.setdefault("text_ready_ms", (time.monotonic() - started) * 1000)  # decision/LLM until words exist
        if await self._speak(clause, reusable) and "first_audio_ms" not in timings:
            timings["first_audio_ms"] = (time.monotonic() - started) * 1000  # + TTS until audio is queued
            if self._admission:  # the load signal: speech end -> first audio, as the caller waits for it
                self._admission.observe_reply(timings.get("asr_ms", 0) + timings["first_audio_ms"])
            if "decide_ms" in timings:  # the caller's wait: their last word -> first audio (the metric)
                reply_ms = sum(timings[k] for k in ("endpoint_ms", "asr_ms", "decide_ms", "first_audio_ms"))
                timings["reply_ms"] = reply_ms
                self._last_reply_ms = round(reply_ms)

    # ---- ending the call --------------------------------------------------

    async def _say_and_wait(self, text: str) -> None:
        try:
            await self._speak(text)
        except Exception:  # TTS itself failing must not stop the hand-back
            log.exception("call %s: could not speak the closing message", self.call_id)
            return
        try:
            await asyncio.wait_for(self._playout.drained(), timeout=30)
        except TimeoutError:
            pass
        await asyncio.sleep(0.2)  # let the last frames leave Asterisk's buffer

    async def _finish(self, outcome: Outcome, goodbye: str) -> Outcome:
        return await self._end_call(outcome, goodbye, "goodbye", {"AGENT_ACTION": "hangup"})

    async def _survey(self, goodbye: str) -> Outcome:
        """The post-call survey (see agent/call/survey.py): a question, a score said or pressed, thanks, goodbye.

        The call ends normally whatever happens: no answer within survey.answer_timeout_s, answers that
        are no score (asked again within survey.tries), a no, or the caller hanging up.
        """
        survey, config = self._config.survey, self._config
        await self._interrupt(None)
        self._surveying, self._expect_digits, self._turn_revocable = True, False, False
        score, answers, deadline = None, 0, None
        while score is None:
            if deadline is None:  # ask (again)
                text = config.say("survey_retry") if answers else (survey.question or config.say("survey_question"))
                self._start_reply(self._speak_fixed(text, kind="survey"))
                deadline = float("inf")
            if deadline == float("inf") and not (self._playout.speaking or self._reply_busy()):
                deadline = time.monotonic() + survey.answer_timeout_s  # the question has been said
            try:
                event = await asyncio.wait_for(self._events.get(), min(0.25, deadline - time.monotonic()))
            except TimeoutError:
                if time.monotonic() >= deadline:
                    break
                continue
            answer = None
            match event:
                case BargeIn():
                    if self._playout.speaking or self._reply_busy():
                        await self._interrupt(event.at)  # the caller answers before the question is over
                    continue
                case Utterance(stream_no=number) if number <= self._superseded_up_to:
                    continue
                case Utterance(text="") | AgentFault():
                    continue
                case Utterance() as utterance:
                    self._record.settle()
                    self._processed_stream = utterance.stream_no
                    self._turn_no += 1
                    self._record.write(
                        "caller_turn", n=self._turn_no, heard=utterance.text, confidence=utterance.confidence,
                        asr_ms=round(utterance.asr_ms),
                    )  # fmt: skip
                    answer = utterance.text
                case DtmfPressed(digit=digit) if survey.keypad:
                    self._keypad_turn()
                    answer = digit
                case CallerGone(reason=reason):
                    self._record.write("caller_gone", reason=reason)
                    self._record.write("survey", csat=None)
                    return Outcome.COMPLETED  # they had said goodbye: a normal end
            if answer is None:
                continue
            answers += 1
            score = survey_score(answer)
            if score is None and (is_no(answer) or answers >= survey.tries):
                break  # "no thanks", or no score again
            deadline = None
        self._record.write("survey", csat=score)
        thanks = survey.thanks or config.say("survey_thanks")
        return await self._finish(Outcome.COMPLETED, f"{thanks} {goodbye}" if score else goodbye)

    async def _hand_back(self, outcome: Outcome, reason: str, message: str, target: str | None = None) -> Outcome:
        """Return the call to the dialplan, which routes it to the humans with a one-line briefing."""
        target = target or self._config.transfer_target
        briefing = self._dialogue.briefing(reason) if self._dialogue else reason
        prefix = self._config.transfer_targets[target].briefing_prefix
        self._ending = "transfer"
        self._record.write("transfer", target=target, reason=reason, briefing=briefing)
        variables = {
            "AGENT_ACTION": "transfer",
            "AGENT_TRANSFER_TO": target,
            "AGENT_BRIEFING": f"{prefix}: {self._brain.redactor.redact(briefing)}",
        }
        return await self._end_call(outcome, message, "transfer", variables)

    async def _end_call(self, outcome: Outcome, message: str, kind: str, variables: dict[str, str]) -> Outcome:
        """Say the last line in full, then tell the dialplan (over AMI) what to do with the call."""
        await self._interrupt(None)
        await self._say_and_wait(message)
        self._record.write("bot_turn", kind=kind, reply_to=self._turn_no, text=message)
        if self._ami:
            await self._ami.set_vars(self.call_id, variables)
        return outcome


async def synthesize(
    engines: Engines, text: str, needed_at: float, reusable: bool, prepared: asyncio.Future[bytes] | None = None
) -> bytes:
    """Speech for text from the cache, from a synthesis started ahead (`prepared`: a rehearsed reply's first
    clause), or from the compute queue, due at needed_at (time.monotonic())."""
    pcm = engines.speech.get(text) if reusable else None
    if pcm is None and prepared is not None and not prepared.cancelled():
        with contextlib.suppress(Exception):  # it failed: synthesize again, as if nothing had been prepared
            pcm = await prepared
    if pcm is None:
        pcm = await engines.compute.run(engines.tts.synthesize, text, deadline=needed_at)
        if reusable:
            engines.speech.put(text, pcm)
    return pcm


async def warm_speech(engines: Engines, config: AgentConfig) -> None:
    """Synthesize the configured sentences before a call needs them (low priority: due in a minute)."""
    for sentence in (config.greeting, config.silence_prompt, config.fallback_message):
        if text := speakable(sentence):
            await synthesize(engines, text, time.monotonic() + 60, reusable=True)


class _TurnRecord:
    """The call record as the session writes it, one caller turn per turn.

    A turn the caller may still continue (they paused; no reply has reached them) is held back,
    with everything written after it, until it stands. If the caller goes on, it is taken back:
    the record gets only the whole utterance, not the half and then the whole, which every
    reader (transcripts, reports, KPIs) would show as a doubled phrase.
    """

    def __init__(self, record: CallRecord) -> None:
        self._record = record
        self._held: list[tuple[str, dict]] = []  # the held caller turn first, then what was written after it
        self.held_stream = 0  # the speech segment of the held turn (0: none)
        self.redact = record.redact

    def write(self, event: str, **data) -> None:
        if self.held_stream:
            self._held.append((event, data))
        else:
            self._commit(event, data)

    def _commit(self, event: str, data: dict) -> None:
        """To the record, and counted in the metrics (a turn taken back is neither)."""
        metrics.observe_event(event, data)
        self._record.write(event, **data)

    def hold_turn(self, stream_no: int, heard: dict) -> None:
        self.settle()
        self._held = [("caller_turn", heard)]
        self.held_stream = stream_no

    def settle(self) -> None:
        """The held turn stands: write it and what followed it."""
        held, self._held, self.held_stream = self._held, [], 0
        for event, data in held:
            self._commit(event, data)

    def take_back(self) -> None:
        """The caller went on: drop the held turn and the reply to it (none of it reached the caller)."""
        held, self._held, self.held_stream = self._held, [], 0
        if held:
            n = held[0][1]["n"]
            for event, data in held[1:]:
                if data.get("reply_to") != n:
                    self._commit(event, data)

    def close(self) -> None:
        self.settle()
        self._record.close()


@dataclass(frozen=True)
class _Segment:
    """A closed speech segment, kept so a caller who goes on after a pause is recognised as one turn."""

    ended: float  # media time the endpointer closed it
    audio: bytes  # everything recognised for it (with the segments it continued)
    frames_played: int  # bot frames played by then: bot audio since means the caller heard a reply
    number: int
    audio_start: float  # media time of audio[0]
    first: int  # the first segment in audio (earlier than number when it continues one)


class _StreamingRecognition:
    """Feeds one utterance to an ASR stream in a worker thread, in order, without blocking the loop."""

    hold: int | None = None  # the call recording's hold on this utterance's audio
    endpoint_ms: float = 0.0
    speculation: asyncio.Future | None = None
    speculated_at = 0.0
    decoding = 0  # final decodes running in this process (all calls)
    last_frame: int | None = None
    audio_start = 0.0  # media time of the first sample in `audio` (for the decode log)
    call_id = ""
    first = 0  # the first speech segment in `audio`

    def __init__(
        self,
        stream: TranscriberStream,
        compute: ComputeQueue,
        loop: asyncio.AbstractEventLoop,
        number: int,
        continues: bool = False,
    ) -> None:
        self.number = number
        self.first = number
        self._compute = compute
        self.continues = continues
        self.audio = bytearray()  # kept so a caller who goes on after a pause is recognised as one turn
        self._stream = stream
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._task = loop.create_task(self._run())

    def add(self, pcm: bytes) -> None:
        if pcm:
            self.audio += pcm
            self._queue.put_nowait(pcm)

    def speculate(self, stream: TranscriberStream, at: float, needed_in_s: float) -> None:
        """Recognise what was said so far, in parallel, at a short pause: if the caller has finished,
        the transcript is ready sooner; if they go on, the result is dropped (see `drop_speculation`)."""
        audio = bytes(self.audio)

        def recognise() -> Transcript:
            stream.accept(audio)
            return self._logged(stream.finish(), "speculative", len(audio))

        self.speculated_at = at
        self.speculation = asyncio.ensure_future(self._decode(recognise, time.monotonic() + needed_in_s))

    def drop_speculation(self) -> None:
        self.speculation = None  # its decode finishes in the background; the result is not used

    async def _run(self) -> Transcript:
        finishing = False
        while not finishing:
            chunks = [await self._queue.get()]
            while not self._queue.empty():  # batch what arrived while the last chunk was recognised
                chunks.append(self._queue.get_nowait())
            finishing = chunks[-1] is None
            audio = b"".join(c for c in chunks if c is not None)
            if audio and getattr(self._stream, "buffers_only", False):
                self._stream.accept(audio)  # a list append: a thread hop per frame would cost more (24 calls)
            elif audio:
                await asyncio.to_thread(self._stream.accept, audio)
        covered = len(self.audio)
        return await self._decode(lambda: self._logged(self._stream.finish(), "final", covered))

    def _logged(self, transcript: Transcript, kind: str, audio_bytes: int) -> Transcript:
        """Which audio a decode covered (media seconds of the call) and what it heard."""
        end = self.audio_start + audio_bytes / 16000
        log.debug(
            "call %s: %s decode of segment %d (continues=%s) covers %.2f-%.2f s: %r",
            self.call_id, kind, self.number, self.continues, self.audio_start, end, transcript.text,
        )  # fmt: skip
        return transcript

    async def finish(self):
        if self.speculation is not None:
            self._task.cancel()  # the speculative transcript covers the whole utterance
            return await self.speculation
        self._queue.put_nowait(None)
        return await self._task

    async def _decode(self, recognise, deadline: float | None = None) -> Transcript:
        """Decode on the shared compute queue (a caller is waiting: due now, or when the endpoint
        would close), counting decodes in flight (the box's ASR load)."""
        _StreamingRecognition.decoding += 1
        try:
            return await self._compute.run(recognise, deadline=deadline)
        finally:
            _StreamingRecognition.decoding -= 1
