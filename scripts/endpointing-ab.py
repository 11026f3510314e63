"""How short can the end-of-speech silence be? Measured on real telephone speech.

Runs the agent's own VAD + segmenter over every Asterisk prompt that is one
sentence (no sentence punctuation inside), as if a caller said it, and counts
how often each end-silence setting closes the utterance before the sentence is
over (a premature endpoint: the agent would answer half a question). Each
setting's saving is its difference to the current 0.45 s.

    PYTHONPATH=. .venv/bin/python scripts/endpointing-ab.py
"""

from __future__ import annotations

import re

from agent.asr_corpus import load_prompts
from agent.audio.vad import EndpointSettings, SpeechDetector, SpeechSegmenter, VadEvent

FRAME = 320
CANDIDATES = (0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45)


def pauses_and_splits(pcm: bytes, end_silence: float, detector: SpeechDetector) -> int:
    segmenter = SpeechSegmenter(EndpointSettings(end_silence_s=end_silence))
    ends = 0
    now = 0.0
    pcm += b"\0" * 16000  # a second of silence after the caller stops
    for i in range(0, len(pcm) - FRAME + 1, FRAME):
        now += 0.02
        if segmenter.process(now, detector.is_speech(pcm[i : i + FRAME])) is VadEvent.SPEECH_END:
            ends += 1
    return ends


def main() -> None:
    detector = SpeechDetector()
    sentences = [
        p for p in load_prompts() if not re.search(r"[.?!;:]\s+\S", p.text.strip()) and len(p.text.split()) >= 3
    ]
    audio = [p.pcm() for p in sentences]
    print(f"{len(sentences)} one-sentence Asterisk prompts (3+ words)")
    print("| end silence | premature endpoints (sentences cut) | saved vs 0.45 s |")
    print("|---|---|---|")
    for end_silence in CANDIDATES:
        cut = sum(1 for pcm in audio if pauses_and_splits(pcm, end_silence, detector) > 1)
        print(
            f"| {end_silence:.2f} s | {cut} / {len(audio)} = {cut / len(audio):.1%} | {450 - end_silence * 1000:.0f} ms |"
        )


if __name__ == "__main__":
    main()
