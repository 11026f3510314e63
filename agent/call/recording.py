"""Optional call recording (privacy.record_calls, off by default): a stereo WAV per call.

Left channel the caller, right channel the bot, 8 kHz. Audio is held back
from the file while an utterance is being recognised, so an utterance that
turns out to carry payment data (card number, CVV, IBAN, SSN) is written as
silence; keypad entry is never recorded either.
"""

from __future__ import annotations

import os
import wave
from pathlib import Path

import numpy as np

from agent.config import STATE_DIR

RECORDINGS_DIR = STATE_DIR / "recordings"
FRAME = 320  # 20 ms of 8 kHz 16-bit mono


class CallRecording:
    def __init__(self, call_id: str, directory: Path | None = None) -> None:
        directory = directory or RECORDINGS_DIR
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path = directory / f"{call_id}.wav"
        self._wav = wave.open(str(self.path), "wb")
        os.chmod(self.path, 0o600)
        self._wav.setnchannels(2)
        self._wav.setsampwidth(2)
        self._wav.setframerate(8000)
        self._caller: list[bytes] = []
        self._bot: list[bytes] = []
        self._written = 0  # frames already in the file
        self._holds: dict[int, int] = {}  # utterances being recognised: token -> first frame
        self._next_token = 0
        self.paused = False

    @property
    def caller_frames(self) -> int:
        return len(self._caller)

    def add_caller(self, frame: bytes) -> None:
        self._caller.append(b"\0" * FRAME if self.paused else frame)
        self._flush()

    def add_bot(self, frame: bytes) -> None:
        self._bot.append(b"\0" * FRAME if self.paused else frame)

    def hold(self, from_frame: int) -> int:
        """Keep frames from here out of the file until `release` (an utterance is being recognised)."""
        self._next_token += 1
        self._holds[self._next_token] = max(self._written, from_frame)
        return self._next_token

    def release(self, token: int, silence_until: int | None = None) -> None:
        """The utterance is understood; silence it (payment data) up to `silence_until` if asked."""
        start = self._holds.pop(token, None)
        if start is not None and silence_until is not None:
            for index in range(start, min(silence_until, len(self._caller))):
                self._caller[index] = b"\0" * FRAME
        self._flush()

    def close(self) -> None:
        self._holds.clear()
        self._flush(final=True)
        self._wav.close()

    def _flush(self, final: bool = False) -> None:
        # both sides are paced at 20 ms: write what has both a caller and a bot frame
        end = min([len(self._caller), *([] if final else [len(self._bot)]), *self._holds.values()])
        if end - self._written < 50 and not final:
            return  # write in one-second blocks
        caller = np.frombuffer(b"".join(self._caller[self._written : end]), dtype=np.int16)
        bot_pcm = b"".join(self._bot[self._written : end])
        bot = np.zeros_like(caller)
        bot[: len(bot_pcm) // 2] = np.frombuffer(bot_pcm, dtype=np.int16)[: len(caller)]
        self._wav.writeframes(np.column_stack([caller, bot]).astype("<i2").tobytes())
        for index in range(self._written, end):  # written frames are not kept in memory
            self._caller[index] = b""
        for index in range(self._written, min(end, len(self._bot))):
            self._bot[index] = b""
        self._written = end
