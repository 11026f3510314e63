"""llama.cpp chat model through llama-cpp-python.

One model per process. A llama context is not thread-safe, so generation is
serialised by a lock; the prompt prefix cache keeps the system prompt warm.

CPUs with AMX (recent Xeons) crash llama.cpp's AMX matrix kernels on the first
multi-token decode (ggml-org/llama.cpp#20824; the segfault issue 10 met). The
build leaves the AMX kernels out (scripts/setup-python.sh), and on an AMX CPU
the model is loaded without llama.cpp's "extra buffer types" too, so a wheel
built elsewhere cannot bring them back. `smoke_check` runs a real multi-token
completion in a child process at start-up: a model that would crash the agent
is found before any call, never in the middle of one.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

from agent.stages.base import ModelMissing, StopFlag

_LOAD_LOCK = threading.Lock()
SMOKE_PROMPT = [{"role": "user", "content": "Say hello to the caller in one short sentence."}]


def cpu_has_amx(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    try:
        return " amx_" in cpuinfo.read_text()
    except OSError:
        return False


@contextlib.contextmanager
def _model_params(extra_buffers: bool):
    """llama-cpp-python builds its model parameters inside Llama(); this sets use_extra_bufts there."""
    import llama_cpp

    original = llama_cpp.llama_model_default_params

    def params():
        value = original()
        value.use_extra_bufts = extra_buffers
        return value

    with _LOAD_LOCK:
        llama_cpp.llama_model_default_params = params
        try:
            yield
        finally:
            llama_cpp.llama_model_default_params = original


class LlamaChatModel:
    engine = "llama.cpp"

    def __init__(
        self,
        model_path: Path,
        n_ctx: int = 2048,
        threads: int = 2,
        max_tokens: int = 96,
        extra_buffers: bool | None = None,
    ) -> None:
        if not model_path.exists():
            raise ModelMissing(f"no GGUF model at {model_path}; run `python -m agent models`")
        from llama_cpp import Llama, LlamaRAMCache

        self.model = model_path.name
        self.extra_buffers = not cpu_has_amx() if extra_buffers is None else extra_buffers
        with _model_params(self.extra_buffers):
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


def smoke_check(model_path: Path, extra_buffers: bool | None = None, timeout_s: float = 180.0) -> str | None:
    """Load the model and generate a few tokens in a child process. None if it worked, else why not."""
    mode = {None: "auto", True: "on", False: "off"}[extra_buffers]
    try:
        done = subprocess.run(
            [sys.executable, "-m", "agent.stages.llm_llama", str(model_path), mode],
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
    except subprocess.TimeoutExpired:
        return f"no reply within {timeout_s:.0f} s"
    if done.returncode == 0:
        return None
    if done.returncode < 0:
        return f"the model process crashed ({signal.Signals(-done.returncode).name})"
    last = (done.stderr.strip().splitlines() or ["no output"])[-1]
    return f"the model process failed: {last[:200]}"


def _smoke_main(argv: list[str]) -> int:
    path, mode = Path(argv[0]), argv[1]
    model = LlamaChatModel(path, extra_buffers={"auto": None, "on": True, "off": False}[mode], max_tokens=8)
    pieces = list(model.stream_reply(SMOKE_PROMPT, lambda: False))
    if not "".join(pieces).strip():
        print("the model produced no text", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(_smoke_main(sys.argv[1:]))
