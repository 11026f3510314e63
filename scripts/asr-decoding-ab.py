"""Offline A/B of faster-whisper decoding options: scenario lines and Asterisk prompts.

Run: PYTHONPATH=. .venv/bin/python scripts/asr-decoding-ab.py   (about 4 minutes on 2 cores)
     PYTHONPATH=. .venv/bin/python scripts/asr-decoding-ab.py --window   (the agent's utterance-sized
     window against faster-whisper's 30-second one, hint on; about 5 minutes)
The scenario lines go through G.711 like a phone line. Results: docs/benchmarks.md.
"""

import sys
import time
from pathlib import Path

import numpy as np
import yaml
from faster_whisper import WhisperModel

from agent.asr_corpus import load_prompts, word_error_rate
from agent.audio.pcm import resample, to_int16, ulaw_decode, ulaw_encode
from agent.brain.dialogue import asr_hint
from agent.caller.runner import CallerVoice
from agent.config import CONFIGS_DIR, load_config
from agent.models import whisper_dir

ROOT = Path(__file__).resolve().parent.parent


def scenario_lines() -> list[tuple[str, str]]:
    """(line, its deployment's ASR hint): each deployment hints its own words."""
    lines = []
    for path in sorted((ROOT / "scenarios").rglob("*.yaml")):
        scenario = yaml.safe_load(path.read_text())
        hint = asr_hint(load_config(CONFIGS_DIR / scenario.get("config", "clinic")))
        lines += [(turn["say"], hint) for turn in scenario["turns"] if "say" in turn]
    return lines


def window_ab() -> None:
    from agent.engines import load_transcriber
    from agent.models import choose_asr

    voice = CallerVoice()
    phone_audio = [(text, ulaw_decode(ulaw_encode(voice.speak(text))), hint) for text, hint in scenario_lines()]
    clinic_hint = asr_hint(load_config(CONFIGS_DIR / "clinic"))
    prompts = [(p.text, p.pcm(), clinic_hint) for p in load_prompts()[::9][:100]]
    asr = load_transcriber(choose_asr())
    for label, short in (("30-second window (faster-whisper)", False), ("utterance-sized window (agent)", True)):
        asr.short_window = short
        results = []
        for corpus in (phone_audio, prompts):
            started = time.perf_counter()
            pairs = [(text, asr.transcribe(pcm, hint).text) for text, pcm, hint in corpus]
            ms = (time.perf_counter() - started) / len(corpus) * 1000
            results.append(f"WER {word_error_rate(pairs):.1%} ({ms:.0f} ms/utt)")
        print(f"{label}: scenario lines {results[0]}; Asterisk prompts (100) {results[1]}")


def main() -> None:
    if "--window" in sys.argv:
        return window_ab()
    voice = CallerVoice()
    phone_audio = [(text, ulaw_decode(ulaw_encode(voice.speak(text))), hint) for text, hint in scenario_lines()]
    clinic_hint = asr_hint(load_config(CONFIGS_DIR / "clinic"))
    prompts = [(p.text, p.pcm(), clinic_hint) for p in load_prompts()[::11][:50]]
    model = WhisperModel(str(whisper_dir()), device="cpu", compute_type="int8", cpu_threads=2)

    def transcribe(pcm: bytes, beam: int, prompt: str | None) -> str:
        audio = to_int16(resample(pcm, 8000, 16000)).astype(np.float32) / 32768
        segments, _ = model.transcribe(
            audio, language="en", beam_size=beam, temperature=0.0, initial_prompt=prompt,
            condition_on_previous_text=False, without_timestamps=True, vad_filter=False,
        )  # fmt: skip
        return " ".join(s.text.strip() for s in segments)

    for beam, hinted in [(1, False), (5, False), (1, True), (5, True)]:
        results = []
        for corpus in (phone_audio, prompts):
            started = time.perf_counter()
            pairs = [(text, transcribe(pcm, beam, hint if hinted else None)) for text, pcm, hint in corpus]
            ms = (time.perf_counter() - started) / len(corpus) * 1000
            results.append(f"WER {word_error_rate(pairs):.1%} ({ms:.0f} ms/utt)")
        print(
            f"beam {beam}, hint {'yes' if hinted else 'no '}: scenario lines {results[0]}; Asterisk prompts {results[1]}"
        )


if __name__ == "__main__":
    main()
