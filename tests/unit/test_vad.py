"""Endpointing state machine, driven by plain numbers (time as input)."""

import wave

import pytest

from agent.audio.pcm import frames, silence
from agent.audio.vad import EndpointSettings, SpeechDetector, SpeechSegmenter, VadEvent

SETTINGS = EndpointSettings(start_speech_s=0.1, end_silence_s=0.4, max_utterance_s=3.0, window_s=0.3)


def run(pattern, settings=SETTINGS, step=0.02):
    """pattern: list of (seconds, is_speech); returns [(time, event)]."""
    segmenter = SpeechSegmenter(settings)
    now, events = 0.0, []
    for seconds, speech in pattern:
        for _ in range(round(seconds / step)):
            now = round(now + step, 6)
            event = segmenter.process(now, speech)
            if event:
                events.append((now, event))
    return events


def test_speech_then_silence_gives_start_and_end():
    events = run([(0.5, False), (1.0, True), (1.0, False)])
    assert [e for _, e in events] == [VadEvent.SPEECH_START, VadEvent.SPEECH_END]
    start, end = events[0][0], events[1][0]
    assert start == pytest.approx(0.6, abs=0.03)  # 0.1 s of speech opens it
    assert end == pytest.approx(1.5 + 0.4, abs=0.03)  # 0.4 s of silence closes it


def test_short_click_is_not_speech():
    assert run([(0.5, False), (0.04, True), (1.0, False)]) == []


def test_short_pause_inside_speech_does_not_end_it():
    events = run([(0.5, True), (0.2, False), (0.5, True), (1.0, False)])
    assert [e for _, e in events] == [VadEvent.SPEECH_START, VadEvent.SPEECH_END]


def test_endless_speech_is_cut_at_max_utterance():
    events = run([(5.0, True)])
    assert events[1][1] is VadEvent.SPEECH_END
    assert events[1][0] == pytest.approx(0.02 + 3.0, abs=0.03)  # 3 s after the first speech frame


def test_scattered_noise_inside_window_adds_up():
    # 3 speech frames spread over 0.3 s = 0.06 s: below the 0.1 s start threshold
    pattern = [(0.02, True), (0.08, False)] * 3 + [(1.0, False)]
    assert run(pattern) == []


def test_detector_on_real_speech_and_silence():
    detector = SpeechDetector()
    assert not any(detector.is_speech(f) for f in frames(silence(400), 320))
    with wave.open("/usr/share/asterisk/sounds/en/pls-hold-while-try.wav") as w:
        pcm = w.readframes(w.getnframes())
    decisions = [detector.is_speech(f) for f in frames(pcm, 320)]
    assert sum(decisions) > len(decisions) * 0.4
