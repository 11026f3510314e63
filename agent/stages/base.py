"""Interfaces of the three speech stages, so engines can be swapped by config.

Models are loaded once per process and shared by calls; each call opens its own
cheap stream. Every engine call here is blocking C/ONNX work: the call session
runs it in a worker thread, never on the event loop.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Transcript:
    text: str
    confidence: float | None = None


class TranscriberStream(Protocol):
    """One utterance: audio in as it arrives, partials while it runs, a final at the end."""

    buffers_only: bool  # accept() only stores the audio (all the work is in finish): no worker thread needed

    def accept(self, pcm8k: bytes) -> None: ...

    def partial(self) -> str: ...

    def finish(self) -> Transcript: ...


class Transcriber(Protocol):
    engine: str
    model: str

    def open_stream(self, hint: str | None = None) -> TranscriberStream:
        """A stream for one utterance; `hint` names words this deployment expects (may be ignored)."""
        ...


class ChatModel(Protocol):
    engine: str
    model: str

    def stream_reply(self, messages: list[dict[str, str]], should_stop: StopFlag) -> Iterator[str]:
        """Yield text pieces as they are generated; stop early when should_stop() is true."""
        ...

    def complete_json(self, messages: list[dict[str, str]], schema: dict, max_tokens: int = 64) -> dict:
        """Return an object matching the JSON schema (grammar-constrained generation)."""
        ...


class Synthesizer(Protocol):
    engine: str
    model: str

    def synthesize(self, text: str) -> bytes:
        """Speak text; return 8 kHz signed 16-bit mono PCM."""
        ...


class StopFlag(Protocol):
    def __call__(self) -> bool: ...


class ModelMissing(RuntimeError):
    """A configured model is not installed; the message says how to install it."""
