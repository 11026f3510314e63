"""Synthesized audio of the sentences every caller hears, kept in memory.

The greeting, the fixed prompts and the knowledge-base answers are the same
words call after call; with eight calls a third of the box's time went into
synthesizing them again (py-spy, docs/benchmarks.md). Only text the call marks
reusable is kept, never a sentence carrying a caller's details, and only in
this process's memory: nothing about a call outlives it here.
"""

from __future__ import annotations

from collections import OrderedDict

DEFAULT_MAX_BYTES = 64 * 1024 * 1024  # ~70 minutes of 8 kHz speech


class SpeechCache:
    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self._audio: OrderedDict[str, bytes] = OrderedDict()
        self._bytes = 0
        self._max_bytes = max_bytes
        self.hits = 0
        self.misses = 0

    @property
    def max_bytes(self) -> int:
        return self._max_bytes

    @max_bytes.setter
    def max_bytes(self, value: int) -> None:
        """Set from capacity.speech_cache_mb (at start and when the config is edited)."""
        self._max_bytes = value
        self._evict()

    def get(self, text: str) -> bytes | None:
        pcm = self._audio.get(text)
        if pcm is None:
            self.misses += 1
            return None
        self.hits += 1
        self._audio.move_to_end(text)
        return pcm

    def put(self, text: str, pcm: bytes) -> None:
        if text in self._audio or len(pcm) > self.max_bytes:
            return  # also: a cache of 0 bytes (capacity.speech_cache_mb: 0) keeps nothing
        self._audio[text] = pcm
        self._bytes += len(pcm)
        self._evict()

    def _evict(self) -> None:
        while self._bytes > self._max_bytes:  # least recently heard first
            _text, old = self._audio.popitem(last=False)
            self._bytes -= len(old)
