"""llama.cpp chat model through llama-cpp-python.

One model per process. A llama context is not thread-safe, so generation is
serialised by a lock; the prompt prefix cache keeps the system prompt warm.
Issue 5 replaces the lock with several contexts / batching.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

from agent.stages.base import ModelMissing, StopFlag


class LlamaChatModel:
    engine = "llama.cpp"

    def __init__(self, model_path: Path, n_ctx: int = 2048, threads: int = 2, max_tokens: int = 96) -> None:
        if not model_path.exists():
            raise ModelMissing(f"no GGUF model at {model_path}; run `python -m agent models`")
        from llama_cpp import Llama, LlamaRAMCache

        self.model = model_path.name
        self._llm = Llama(str(model_path), n_ctx=n_ctx, n_threads=threads, verbose=False)
        self._llm.set_cache(LlamaRAMCache(capacity_bytes=256 << 20))
        self._lock = threading.Lock()
        self._max_tokens = max_tokens

    def complete_json(self, messages: list[dict[str, str]], schema: dict, max_tokens: int = 64) -> dict:
        """A decision or tool arguments: output constrained by llama.cpp to JSON matching `schema`."""
        with self._lock:
            result = self._llm.create_chat_completion(
                messages=messages,
                response_format={"type": "json_object", "schema": schema},
                max_tokens=max_tokens,
                temperature=0.0,
            )
        return json.loads(result["choices"][0]["message"]["content"])

    def stream_reply(self, messages: list[dict[str, str]], should_stop: StopFlag) -> Iterator[str]:
        with self._lock:
            stream = self._llm.create_chat_completion(
                messages=messages, stream=True, max_tokens=self._max_tokens, temperature=0.2, top_p=0.9
            )
            for chunk in stream:
                if should_stop():
                    break
                piece = chunk["choices"][0]["delta"].get("content")
                if piece:
                    yield piece
