"""Speech on the caller's line that may stop the bot: not its own echo, not steady line noise.

A VAD says "speech" to anything speech-like, and the bot's own voice coming back down the line
(the caller's handset or a hybrid on the trunk) *is* speech. Two cheap checks in front of the
frame classifier, so a barge-in can stay fast (a few frames) without the bot stopping itself:

- Echo gate: the agent knows what it is playing. While it plays, a frame counts only if it is
  louder than the loudest frame played in the last `echo_window_s` minus `echo_loss_db` (echo
  comes back at least that much weaker; a caller talking over the bot is about as loud as it).
- Noise floor: frames quieter than the line's noise level (minimum statistics) plus
  `noise_margin_db` are not speech (WebRTC's VAD fires on -45 dBFS white noise and on mains hum).
"""

from __future__ import annotations

from collections import deque

from agent.audio.pcm import rms_dbfs
from agent.audio.vad import SpeechDetector

FRAME_S = 0.02


class LineSpeechDetector:
    """`is_speech(frame)` like `SpeechDetector`, plus `played(frame)` for each frame the bot sends."""

    def __init__(
        self,
        detector: SpeechDetector | None = None,
        echo_loss_db: float = 12.0,
        echo_window_s: float = 0.4,
        noise_margin_db: float = 10.0,
        noise_window_s: float = 5.0,
    ) -> None:
        self.detector = detector or SpeechDetector()
        self.echo_loss_db = echo_loss_db
        self.noise_margin_db = noise_margin_db
        self._played: deque[float] = deque(maxlen=round(echo_window_s / FRAME_S))
        self._levels: deque[float] = deque(maxlen=round(noise_window_s / FRAME_S))

    def reset(self) -> None:
        self._played.clear()
        self._levels.clear()
        if hasattr(self.detector, "reset"):
            self.detector.reset()

    def played(self, frame: bytes | None) -> None:
        """The bot's frame sent at this moment (None or silence: the bot is quiet)."""
        self._played.append(rms_dbfs(frame) if frame else -120.0)

    def noise_level(self) -> float:
        """The line's noise: the quietest 60 ms of the last few seconds (minimum statistics: even
        fluent speech dips to the line's floor between phrases, so talking does not raise it)."""
        if len(self._levels) < 3:
            return -120.0
        levels = list(self._levels)
        return min(sum(levels[i : i + 3]) / 3 for i in range(len(levels) - 2))

    def is_speech(self, frame: bytes, rate: int = 8000) -> bool:
        level = rms_dbfs(frame)
        noise = self.noise_level()
        self._levels.append(level)
        if level < noise + self.noise_margin_db:
            return False
        if self._played and level < max(self._played) - self.echo_loss_db:
            return False  # no louder than the bot's own voice coming back
        return self.detector.is_speech(frame, rate)
