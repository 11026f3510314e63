"""Paced audio output: one 20 ms frame every 20 ms, bot speech or silence.

Asterisk's AudioSocket hangs up after 2 s without audio from us, and a burst of
frames would be dropped or delayed by its jitter handling, so the writer owns a
clock and always sends something. Barge-in first pauses the output (the bot
is silent within one frame, its queue kept), then either clears the queue (the
caller is really talking) or resumes it (a cough, an "mm-hm").
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable

from agent.audio.pcm import frame_bytes, frames
from agent.protocol.audiosocket import Audio, encode

FRAME_S = 0.02
FRAME = frame_bytes(8000)
SILENCE_FRAME = b"\x00" * FRAME


class Playout:
    def __init__(self, write: Callable[[bytes], None], tap: Callable[[bytes], None] | None = None) -> None:
        self._tap = tap  # sees every frame sent (the call recording)
        self._write = write
        self._queue: collections.deque[bytes] = collections.deque()
        self.frames_queued = 0  # total bot frames ever queued
        self.frames_played = 0  # total bot frames ever sent
        self.last_bot_frame_at = 0.0
        self._drained = asyncio.Event()
        self._drained.set()
        self.paused = False  # a possible barge-in: silence is sent, the queue is kept until it is decided

    @property
    def speaking(self) -> bool:
        return bool(self._queue)

    @property
    def queued_s(self) -> float:
        """Seconds of bot audio still to play."""
        return len(self._queue) * FRAME_S

    def enqueue(self, pcm: bytes) -> int:
        """Queue 8 kHz PCM; returns the frame index at which it will have played."""
        chunk = frames(pcm, FRAME)
        self._queue.extend(chunk)
        self.frames_queued += len(chunk)
        if chunk:
            self._drained.clear()
        return self.frames_queued

    def pause(self) -> None:
        """Stop sounding now but keep what is queued: the caller may only be coughing or saying "mm-hm"."""
        self.paused = True

    def resume(self) -> None:
        self.paused = False

    def clear(self) -> int:
        """Drop everything not yet sent (barge-in); returns frames dropped."""
        self.paused = False
        dropped = len(self._queue)
        self._queue.clear()
        self.frames_queued -= dropped
        self._drained.set()
        return dropped

    async def drained(self) -> None:
        await self._drained.wait()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            if self._queue and not self.paused:
                payload = self._queue.popleft()
                self.frames_played += 1
                self.last_bot_frame_at = time.monotonic()
                if not self._queue:
                    self._drained.set()
            else:
                payload = SILENCE_FRAME
            self._write(encode(Audio(payload)))
            if self._tap:
                self._tap(payload)
            next_at += FRAME_S
            delay = next_at - loop.time()
            if delay < -0.1:  # fell far behind (loop stalled): resync rather than burst
                next_at = loop.time()
                delay = 0
            await asyncio.sleep(max(0.0, delay))
