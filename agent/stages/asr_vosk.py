"""Vosk (Kaldi) streaming recogniser: native partial results and endpointing."""

from __future__ import annotations

import json
from pathlib import Path

from agent.audio.pcm import resample
from agent.stages.base import ModelMissing, Transcript


class VoskStream:
    buffers_only = False  # Kaldi decodes as the audio comes in

    def __init__(self, recognizer, rate: int) -> None:
        self._rec = recognizer
        self._rate = rate
        self._finals: list[str] = []
        self._confidences: list[float] = []

    def accept(self, pcm8k: bytes) -> None:
        audio = resample(pcm8k, 8000, self._rate)
        if self._rec.AcceptWaveform(audio):
            # Vosk's own endpointer closed a segment inside the utterance.
            self._take(json.loads(self._rec.Result()))

    def partial(self) -> str:
        current = json.loads(self._rec.PartialResult()).get("partial", "")
        return " ".join([*self._finals, current]).strip()

    def finish(self) -> Transcript:
        self._take(json.loads(self._rec.FinalResult()))
        confidence = sum(self._confidences) / len(self._confidences) if self._confidences else None
        return Transcript(" ".join(self._finals).strip(), confidence)

    def _take(self, result: dict) -> None:
        if result.get("text"):
            self._finals.append(result["text"])
        self._confidences.extend(word["conf"] for word in result.get("result", []))


class VoskTranscriber:
    engine = "vosk"

    def __init__(self, model_dir: Path, sample_rate: int = 16000) -> None:
        if not (model_dir / "am").is_dir() and not (model_dir / "final.mdl").exists():
            raise ModelMissing(f"no Vosk model at {model_dir}; run `python -m agent models`")
        import vosk

        vosk.SetLogLevel(-1)
        self.model = model_dir.name if model_dir.name != "model" else model_dir.parent.name
        self._model = vosk.Model(str(model_dir))
        self._rate = sample_rate

    def open_stream(self, hint: str | None = None) -> VoskStream:  # Kaldi graphs take no free-text hint
        import vosk

        recognizer = vosk.KaldiRecognizer(self._model, self._rate)
        recognizer.SetWords(True)
        return VoskStream(recognizer, self._rate)
