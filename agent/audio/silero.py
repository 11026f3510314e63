"""Silero VAD (MIT) as a per-frame speech detector, the same interface as `vad.SpeechDetector`.

A neural VAD tells speech from noise, echo-like hum and clicks better than WebRTC's GMM, at a
cost: it decides on 32 ms windows (256 samples at 8 kHz), so a 20 ms frame takes the decision
of the last full window. `python -m agent models` takes the ONNX file out of the pipecat-ai
wheel (see models/manifest.yaml); it runs with onnxruntime, already here for Piper.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

WINDOW = 256  # samples per decision at 8 kHz
CONTEXT = 32  # samples of the previous window the model sees before each new one


def model_path() -> Path:
    from agent.models import MODELS_DIR

    return MODELS_DIR / "vad" / "silero_vad.onnx"


class SileroDetector:
    def __init__(self, threshold: float = 0.5, path: Path | None = None) -> None:
        import onnxruntime as ort

        path = path or model_path()
        if not path.is_file():
            raise FileNotFoundError(f"VAD model {path} not found: run `python -m agent models`")
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
        self.threshold = threshold
        self.cpu_s = 0.0  # CPU time spent in the model, for the benchmark
        self.windows = 0  # model runs (one per 32 ms of audio)
        self.reset()

    def reset(self) -> None:
        self._state = np.zeros((2, 1, 128), dtype=np.float32)
        self._context = np.zeros((1, CONTEXT), dtype=np.float32)
        self._pending = np.zeros(0, dtype=np.float32)
        self.probability = 0.0

    def is_speech(self, frame: bytes, rate: int = 8000) -> bool:
        if rate != 8000:
            raise ValueError("SileroDetector takes 8 kHz frames")
        samples = np.frombuffer(frame, dtype="<i2").astype(np.float32) / 32768.0
        self._pending = np.concatenate((self._pending, samples))
        while len(self._pending) >= WINDOW:
            window, self._pending = self._pending[:WINDOW], self._pending[WINDOW:]
            x = np.concatenate((self._context, window[np.newaxis]), axis=1)
            started = time.process_time()
            out, self._state = self.session.run(
                None, {"input": x, "state": self._state, "sr": np.array(8000, dtype=np.int64)}
            )
            self.cpu_s += time.process_time() - started
            self.windows += 1
            self._context = x[:, -CONTEXT:]
            self.probability = float(out.reshape(-1)[0])
        return self.probability >= self.threshold
