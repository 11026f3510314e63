"""Piper TTS: ONNX voice loaded once, output resampled to the 8 kHz phone line, its leading silence cut."""

from __future__ import annotations

import json
from pathlib import Path

from agent.audio.pcm import resample, trim_leading_silence
from agent.stages.base import ModelMissing

# onnxruntime's own thread pool (OpenMP settings do not reach it, agent/__init__.py) spins while idle
# by default. Between two syntheses its threads then took the CPU from the event loop, which carries
# every call's audio: 24 calls, every sentence synthesized, p95 2.9-3.5 s spinning, 1.4-2.4 s not
# (docs/benchmarks.md, issue 15 part 7). threads=0: onnxruntime's choice, one per core.


class PiperSynthesizer:
    engine = "piper"

    def __init__(self, model_path: Path, length_scale: float | None = None, threads: int = 0) -> None:
        if not model_path.exists():
            raise ModelMissing(f"no Piper voice at {model_path}; run `python -m agent models`")
        import onnxruntime
        from piper import PiperVoice, SynthesisConfig
        from piper.config import PiperConfig

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        config = json.loads(Path(f"{model_path}.json").read_text(encoding="utf-8"))
        session = onnxruntime.InferenceSession(
            str(model_path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self.model = model_path.stem
        self._voice = PiperVoice(session=session, config=PiperConfig.from_dict(config))
        self._rate = self._voice.config.sample_rate
        self._syn = SynthesisConfig(length_scale=length_scale)

    def synthesize(self, text: str) -> bytes:
        pcm = b"".join(chunk.audio_int16_bytes for chunk in self._voice.synthesize(text, self._syn))
        return trim_leading_silence(resample(pcm, self._rate, 8000))
