"""What may stop the bot: the text rule for an unfinished turn, the echo gate, and WebRTC's echo canceller."""

import numpy as np
import pytest

from agent.audio.bargein import LineSpeechDetector
from agent.audio.pcm import rms_dbfs
from agent.call.turn_end import sounds_unfinished

FRAME = 320


@pytest.mark.parametrize(
    ("text", "unfinished"),
    [
        ("My account number is.", True),
        ("my number is 4471", True),
        ("It's for the", True),
        ("I'd like to book a cleaning.", False),
        ("What is my account number?", False),
        ("", False),
    ],
)
def test_what_sounds_unfinished(text, unfinished):
    assert sounds_unfinished(text) is unfinished


def _speechlike(seconds: float, level_dbfs: float, seed: int = 1) -> bytes:
    """Noise shaped by a 4 Hz syllable envelope: enough like speech for level and echo tests."""
    rng = np.random.default_rng(seed)
    n = int(seconds * 8000)
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * np.arange(n) / 8000)
    signal = rng.normal(0, 1, n) * envelope
    signal *= 32768 * 10 ** (level_dbfs / 20) / (np.sqrt(np.mean(signal**2)) + 1e-9)
    return np.clip(signal, -32768, 32767).astype("<i2").tobytes()


class AlwaysSpeech:
    def is_speech(self, frame, rate=8000):
        return True


def test_the_echo_gate_passes_a_caller_as_loud_as_the_bot_but_not_the_bots_echo():
    gate = LineSpeechDetector(AlwaysSpeech())
    bot = _speechlike(1.0, -18.0)
    echo = (np.frombuffer(bot, "<i2") * 10 ** (-20 / 20)).astype("<i2").tobytes()
    caller = _speechlike(1.0, -20.0, seed=2)
    echo_heard = caller_heard = 0
    for i in range(0, len(bot), FRAME):
        gate.played(bot[i : i + FRAME])
        echo_heard += gate.is_speech(echo[i : i + FRAME])
    gate.reset()
    for i in range(0, len(bot), FRAME):
        gate.played(bot[i : i + FRAME])
        caller_heard += gate.is_speech(caller[i : i + FRAME])
    frames = len(bot) // FRAME
    assert echo_heard <= frames // 10
    assert caller_heard >= frames // 2


def test_steady_line_noise_is_not_speech_once_its_level_is_known():
    gate = LineSpeechDetector(AlwaysSpeech())
    noise = np.random.default_rng(0).normal(0, 32768 * 10 ** (-45 / 20), 16000).astype("<i2").tobytes()
    decisions = [gate.is_speech(noise[i : i + FRAME]) for i in range(0, len(noise), FRAME)]
    assert not any(decisions[5:])


def test_webrtc_echo_canceller_removes_the_bots_echo():
    from agent.audio.echo import LineCleaner

    cleaner = LineCleaner()
    bot = _speechlike(3.0, -18.0)
    delayed = b"\0" * 640 + bot[:-640]  # 40 ms echo path
    echo = (np.frombuffer(delayed, "<i2") * 10 ** (-10 / 20)).astype("<i2").tobytes()  # a poor hybrid: -10 dB
    before, after = [], []
    for i in range(0, len(bot), FRAME):
        cleaner.played(bot[i : i + FRAME])
        cleaned = cleaner.clean(echo[i : i + FRAME])
        if i >= len(bot) // 2:  # once the canceller has converged
            before.append(rms_dbfs(echo[i : i + FRAME]))
            after.append(rms_dbfs(cleaned))
    assert np.median(after) < np.median(before) - 20


def _barge_in_frame(detector, line: bytes, bot: bytes, after: int = 0) -> int | None:
    """The frame at which the session's segmenter (BARGE_IN_SPEECH_S of speech over the bot) would pause the bot,
    counting from frame `after` (the detector hears every frame)."""
    from agent.audio.vad import EndpointSettings, SpeechSegmenter, VadEvent
    from agent.call.session import BARGE_IN_SPEECH_S

    segmenter = SpeechSegmenter(EndpointSettings(start_speech_s=BARGE_IN_SPEECH_S))
    for index, i in enumerate(range(0, len(line), FRAME)):
        detector.played(bot[i : i + FRAME] or None)
        speech = detector.is_speech(line[i : i + FRAME])
        event = segmenter.process((index + 1) * 0.02, speech, getattr(detector, "onset_credit_s", 0.0))
        if index >= after and event is VadEvent.SPEECH_START:
            return index
    return None


def test_a_caller_talking_over_the_bot_is_heard_at_once_but_the_bots_echo_is_not():
    """Real speech on both sides (Asterisk's recorded prompts). The echo canceller alone mutes the first
    140-560 ms of a caller who talks over the bot (double talk; one of these it never hears): the raw
    line, louder than any echo could be, pauses the bot within 80 ms of the first sound; a -10 dB echo not."""
    import wave

    from agent.audio.echo import CleanLineDetector
    from agent.audio.vad import SpeechDetector

    def prompt(name: str) -> bytes:
        with wave.open(f"/usr/share/asterisk/sounds/en/{name}.wav") as w:
            pcm = w.readframes(w.getnframes())
        return pcm[: len(pcm) // FRAME * FRAME]

    bot = (prompt("pls-hold-while-try") + prompt("vm-intro")) * 2
    for name in ("vm-goodbye", "vm-intro", "vm-no", "vm-password"):
        caller = b"\0" * 8000 + prompt(name)  # starts talking 0.5 s into the bot's sentence
        onset = next(i // FRAME for i in range(0, len(caller), FRAME) if rms_dbfs(caller[i : i + FRAME]) > -35)
        heard = _barge_in_frame(CleanLineDetector(SpeechDetector(), raw_detector=SpeechDetector()), caller, bot)
        assert heard is not None and heard - onset <= 4, name
    delayed = b"\0" * 640 + bot[:-640]
    echo = (np.frombuffer(delayed, "<i2") * 10 ** (-10 / 20)).astype("<i2").tobytes()  # a poor hybrid: -10 dB
    converged = 75  # 1.5 s of echo: the canceller has learnt the line
    assert _barge_in_frame(CleanLineDetector(SpeechDetector(), raw_detector=SpeechDetector()), echo, bot, converged) is None


def test_a_quiet_first_syllable_under_the_echo_bound_counts_once_the_caller_is_plain():
    """Raw-line speech quieter than the bot's echo could be is not taken for the caller on its own (it
    may be echo); when a louder frame shows the caller talking, those frames are credited back to them,
    so the bot pauses on that frame rather than frames later. Echo alone never passes the bound."""
    from agent.audio.echo import CleanLineDetector

    class Says:  # a raw VAD that hears speech in every non-silent frame; the cleaned line is muted
        def __init__(self, answer: bool) -> None:
            self.answer = answer

        def is_speech(self, frame: bytes, rate: int = 8000) -> bool:
            return self.answer and any(frame)

    def tone(dbfs: float) -> bytes:
        amplitude = 32767 * 10 ** (dbfs / 20) * 2**0.5
        return (amplitude * np.sin(np.arange(160) * 0.3)).astype("<i2").tobytes()

    detector = CleanLineDetector(Says(False), raw_detector=Says(True))
    detector.cleaner = type("Muted", (), {"clean": lambda self, f: b"\0" * len(f), "played": lambda self, f: None})()
    for _ in range(10):
        detector.played(tone(-15))  # the bot talks at -15 dBFS: echo is at most -21 dBFS
    heard = [detector.is_speech(tone(-38)) for _ in range(3)]  # quiet: could be echo
    assert heard == [False] * 3 and detector.onset_credit_s == 0
    assert detector.is_speech(tone(-12)) and detector.onset_credit_s == pytest.approx(0.06)
    assert detector.is_speech(tone(-12)) and detector.onset_credit_s == 0  # credited once
