"""The caller's line with the bot's own echo, line noise and hum taken out, before any VAD sees it.

The bot's voice comes back down the line (a handset without echo cancelling, a 2-to-4-wire
hybrid on the trunk), and to a VAD that echo is speech: the bot would stop itself. WebRTC's
audio processing module (AEC3 echo canceller, noise suppressor, high-pass filter) is the
standard answer; LiveKit's Python package ships it as a binary wheel
(`livekit.rtc.AudioProcessingModule`), so we use it rather than write a canceller. It is fed
what the agent plays (the far end) and cleans what the caller's line brings (the near end),
in 10 ms frames at 8 kHz; it estimates the echo path's delay itself.
"""

from __future__ import annotations

from collections import deque

from agent.audio.pcm import FRAME_MS, rms_dbfs

HALF = 160  # bytes in 10 ms at 8 kHz, 16-bit: the module's frame
SILENCE = b"\0" * (2 * HALF)


class LineCleaner:
    """`played(frame)` for each 20 ms frame the bot sends, `clean(frame)` for each frame heard."""

    def __init__(self, delay_hint_ms: int = 40) -> None:
        from livekit import rtc

        self._rtc = rtc
        self.delay_hint_ms = delay_hint_ms
        self.reset()

    def reset(self) -> None:
        self._apm = self._rtc.AudioProcessingModule(
            echo_cancellation=True, noise_suppression=True, high_pass_filter=True
        )
        self._apm.set_stream_delay_ms(self.delay_hint_ms)  # AEC3 keeps the hint: once, not per 10 ms frame

    def _frames(self, pcm: bytes):
        for start in (0, HALF):
            yield self._rtc.AudioFrame(bytearray(pcm[start : start + HALF]), 8000, 1, HALF // 2)

    def played(self, frame: bytes | None) -> None:
        for part in self._frames(frame if frame and len(frame) == 2 * HALF else SILENCE):
            self._apm.process_reverse_stream(part)

    def clean(self, frame: bytes) -> bytes:
        out = bytearray()
        for part in self._frames(frame):
            self._apm.process_stream(part)
            out += bytes(part.data.cast("B"))
        return bytes(out)


def warm_up() -> bool:
    """Load the library before the first call (0.25 s the first time), so that call's first frames are
    not late. False when it cannot be loaded: calls then go on without the canceller."""
    try:
        LineCleaner()
        return True
    except Exception:
        return False


# A caller talking over the bot: AEC3's suppressor takes the first 100-200 ms of their words for echo
# (double talk) and mutes them (a loopback SIP call: -9 dBFS raw, -90 to -55 dBFS cleaned for 10 frames).
# A raw frame louder than the bot's own voice could come back is the caller: echo returns at least
# ECHO_LOSS_DB weaker (ITU-T G.168 assumes >= 6 dB from a hybrid), within ECHO_WINDOW_FRAMES of being played.
ECHO_LOSS_DB = 6.0
ECHO_WINDOW_FRAMES = 20  # 0.4 s of the bot's frame levels: the echo path's delay and tail
BOT_SILENT_DBFS = -60.0
ONSET_CREDIT_FRAMES = 5  # at most 100 ms of quiet onset credited back to a caller heard over the bot


class CleanLineDetector:
    """A speech detector that hears the cleaned line (same interface as `vad.SpeechDetector`); with a
    `raw_detector`, also the raw line when it is louder than any echo of the bot (see ECHO_LOSS_DB)."""

    def __init__(
        self, detector, cleaner: LineCleaner | None = None, raw_detector=None, echo_loss_db: float = ECHO_LOSS_DB
    ) -> None:
        self.detector = detector
        self.cleaner = cleaner or LineCleaner()
        self.raw_detector = raw_detector
        self.echo_loss_db = echo_loss_db
        self._played: deque[float] = deque(maxlen=ECHO_WINDOW_FRAMES)
        self._unheard = 0  # raw-line speech frames just before, not taken for the caller (under the echo bound)
        self.onset_credit_s = 0.0  # speech before this frame now known to be the caller's (see is_speech)

    def reset(self) -> None:
        self.cleaner.reset()
        self._played.clear()
        self._unheard = 0
        self.onset_credit_s = 0.0
        for detector in (self.detector, self.raw_detector):
            if hasattr(detector, "reset"):
                detector.reset()

    def played(self, frame: bytes | None) -> None:
        self.cleaner.played(frame)
        self._played.append(rms_dbfs(frame) if frame else -120.0)

    def is_speech(self, frame: bytes, rate: int = 8000) -> bool:
        """Speech in this frame. When a raw frame above the echo bound shows the caller is talking, the
        raw-line speech frames just before it (a quiet first syllable, under the bound) were theirs too:
        `onset_credit_s` says how much, so a segmenter counts them (`SpeechSegmenter.process`)."""
        self.onset_credit_s = 0.0
        if self.detector.is_speech(self.cleaner.clean(frame), rate):  # cleaned every frame: the model keeps up
            self._unheard = 0
            return True
        if self.raw_detector is None:
            return False
        loudest = max(self._played, default=-120.0)
        if loudest < BOT_SILENT_DBFS or not self.raw_detector.is_speech(frame, rate):
            self._unheard = 0  # the bot silent: nothing for the canceller to mute, it decides alone
            return False
        if rms_dbfs(frame) < loudest - self.echo_loss_db:  # could be the bot's echo: not yet
            self._unheard = min(self._unheard + 1, ONSET_CREDIT_FRAMES)
            return False
        self.onset_credit_s, self._unheard = self._unheard * FRAME_MS / 1000, 0
        return True
