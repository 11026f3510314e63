"""Piper TTS: ONNX voice loaded once, output resampled to the 8 kHz phone line, its leading silence cut."""

from __future__ import annotations

from pathlib import Path

from agent.audio.pcm import resample, trim_leading_silence
from agent.stages.base import ModelMissing


class PiperSynthesizer:
    engine = "piper"

    def __init__(self, model_path: Path, length_scale: float | None = None) -> None:
        if not model_path.exists():
            raise ModelMissing(f"no Piper voice at {model_path}; run `python -m agent models`")
        from piper import PiperVoice, SynthesisConfig

        self.model = model_path.stem
        self._voice = PiperVoice.load(model_path)
        self._rate = self._voice.config.sample_rate
        self._syn = SynthesisConfig(length_scale=length_scale)

    def synthesize(self, text: str) -> bytes:
        pcm = b"".join(chunk.audio_int16_bytes for chunk in self._voice.synthesize(text, self._syn))
        return trim_leading_silence(resample(pcm, self._rate, 8000))
