"""Voice-activity endpointing: a per-frame speech classifier plus a segmenter.

The classifier is WebRTC's VAD (C, works on 8 kHz 20 ms frames directly) with
an energy floor so line noise is not speech. The segmenter is a pure state
machine that takes time as an argument, so it is tested with plain numbers.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import webrtcvad

from agent.audio.pcm import rms_dbfs


class VadEvent(enum.StrEnum):
    SPEECH_START = "speech_start"
    SPEECH_END = "speech_end"


@dataclass(frozen=True)
class EndpointSettings:
    start_speech_s: float = 0.12  # this much speech (within the window) opens an utterance
    # trailing silence that closes an utterance: 0.3 s cuts 3.8% of one-sentence Asterisk prompts
    # (scripts/endpointing-ab.py); a caller who goes on after such a cut is merged into one turn
    end_silence_s: float = 0.3
    max_utterance_s: float = 20.0  # a caller who never pauses is cut here
    window_s: float = 0.3  # speech is counted over this sliding window
    continue_within_s: float = 1.0  # speech this soon after an endpoint, before the bot spoke, is the same turn


class SpeechSegmenter:
    """Turns a stream of (time, is_speech) decisions into start/end events."""

    def __init__(self, settings: EndpointSettings = EndpointSettings()) -> None:
        self.settings = settings
        self.in_speech = False
        self.speech_started_at = 0.0
        self._last_speech_at = 0.0
        self._recent: list[tuple[float, float]] = []  # (time, seconds of speech)
        self._last_time: float | None = None

    @property
    def last_speech_at(self) -> float:
        """When speech was last heard: SPEECH_END fires end_silence_s after it."""
        return self._last_speech_at

    def process(self, now: float, is_speech: bool, earlier_s: float = 0.0) -> VadEvent | None:
        """`earlier_s`: speech just before this frame that the detector recognised only now (a caller's
        quiet first syllable under the bot's voice, `echo.CleanLineDetector.onset_credit_s`)."""
        step = 0.0 if self._last_time is None else max(0.0, now - self._last_time)
        self._last_time = now
        s = self.settings
        if not self.in_speech:
            self._recent = [(t, d) for t, d in self._recent if now - t < s.window_s]
            if is_speech:
                self._recent.append((now, (step or 0.02) + earlier_s))
            if sum(d for _, d in self._recent) >= s.start_speech_s - 1e-6:  # frame steps summed in floating point
                self.in_speech = True
                self.speech_started_at = self._recent[0][0] if self._recent else now
                self._last_speech_at = now
                self._recent.clear()
                return VadEvent.SPEECH_START
            return None
        if is_speech:
            self._last_speech_at = now
        if now - self._last_speech_at >= s.end_silence_s or now - self.speech_started_at >= s.max_utterance_s:
            self.in_speech = False
            return VadEvent.SPEECH_END
        return None


class SpeechDetector:
    """Per-frame speech decision for 8 kHz 16-bit mono 20 ms frames."""

    def __init__(self, aggressiveness: int = 2, floor_dbfs: float = -50.0) -> None:
        self._vad = webrtcvad.Vad(aggressiveness)
        self._floor = floor_dbfs

    def is_speech(self, frame: bytes, rate: int = 8000) -> bool:
        if rms_dbfs(frame) < self._floor:
            return False
        return self._vad.is_speech(frame, rate)
