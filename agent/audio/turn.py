"""Is the caller's turn over? Smart Turn v3.2 asks the audio itself, not only the silence after it.

Smart Turn (BSD-2, shipped in the pipecat-ai wheel; `python -m agent models` takes the one ONNX
file out of it) reads the last 8 s of the caller's speech as Whisper-style log-mel features and
gives the probability that the turn is complete: intonation and a finished phrase say "done",
a rising "my number is four four seven…" says "go on". We run it with onnxruntime (already
here for Piper) and compute the features with faster-whisper's extractor (already here for
ASR), so none of the pipecat framework is loaded.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import soxr

MODEL_RATE = 16000
WINDOW_S = 8
MODEL_FILE = "smart-turn-v3.2-cpu.onnx"


def model_path() -> Path:
    from agent.models import MODELS_DIR

    return MODELS_DIR / "turn" / MODEL_FILE


class SmartTurn:
    """End-of-turn probability for 8 kHz telephone PCM (16-bit little-endian)."""

    def __init__(self, path: Path | None = None, threads: int = 1) -> None:
        import onnxruntime as ort
        from faster_whisper.feature_extractor import FeatureExtractor

        path = path or model_path()
        if not path.is_file():
            raise FileNotFoundError(f"end-of-turn model {path} not found: run `python -m agent models`")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self.session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
        self.features = FeatureExtractor(feature_size=80, sampling_rate=MODEL_RATE, chunk_length=WINDOW_S)
        self.last_ms = 0.0  # CPU time of the last decision (features + model)

    def probability(self, pcm8k: bytes, rate: int = 8000) -> float:
        started = time.process_time()
        audio = np.frombuffer(pcm8k, dtype="<i2").astype(np.float32) / 32768.0
        if rate != MODEL_RATE:
            audio = soxr.resample(audio, rate, MODEL_RATE)
        samples = MODEL_RATE * WINDOW_S
        audio = audio[-samples:]
        audio = np.pad(audio, (samples - len(audio), 0))  # speech at the end of the window, silence before
        audio = (audio - audio.mean()) / np.sqrt(audio.var() + 1e-7)  # the model was trained on normalised input
        mel = self.features(audio, padding=0)[:, : samples // 160]
        if mel.shape[1] < samples // 160:
            mel = np.pad(mel, ((0, 0), (0, samples // 160 - mel.shape[1])))
        out = self.session.run(None, {"input_features": mel[np.newaxis].astype(np.float32)})
        self.last_ms = (time.process_time() - started) * 1000
        return float(np.asarray(out[0]).reshape(-1)[0])
