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

    def _frames(self, pcm: bytes):
        for start in (0, HALF):
            yield self._rtc.AudioFrame(bytearray(pcm[start : start + HALF]), 8000, 1, HALF // 2)

    def played(self, frame: bytes | None) -> None:
        for part in self._frames(frame if frame and len(frame) == 2 * HALF else SILENCE):
            self._apm.process_reverse_stream(part)

    def clean(self, frame: bytes) -> bytes:
        out = bytearray()
        for part in self._frames(frame):
            self._apm.set_stream_delay_ms(self.delay_hint_ms)
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


class CleanLineDetector:
    """A speech detector that hears the cleaned line (same interface as `vad.SpeechDetector`)."""

    def __init__(self, detector, cleaner: LineCleaner | None = None) -> None:
        self.detector = detector
        self.cleaner = cleaner or LineCleaner()

    def reset(self) -> None:
        self.cleaner.reset()
        if hasattr(self.detector, "reset"):
            self.detector.reset()

    def played(self, frame: bytes | None) -> None:
        self.cleaner.played(frame)

    def is_speech(self, frame: bytes, rate: int = 8000) -> bool:
        return self.detector.is_speech(self.cleaner.clean(frame), rate)
