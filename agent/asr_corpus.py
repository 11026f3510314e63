"""Real telephone speech with transcripts: Asterisk's own English prompts.

Debian's asterisk-core-sounds-en-wav ships 8 kHz recordings and
core-sounds-en.txt.gz their text. Used by the ASR tests and the benchmark.
"""

from __future__ import annotations

import gzip
import re
import wave
from dataclasses import dataclass
from pathlib import Path

SOUNDS = Path("/usr/share/asterisk/sounds/en")
TRANSCRIPTS = Path("/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz")

_NUMBERS = {
    "0": "zero",
    "1": "one",
    "2": "two",
    "3": "three",
    "4": "four",
    "5": "five",
    "6": "six",
    "7": "seven",
    "8": "eight",
    "9": "nine",
    "10": "ten",
}


@dataclass(frozen=True)
class Prompt:
    name: str
    path: Path
    text: str

    def pcm(self) -> bytes:
        with wave.open(str(self.path)) as wav:
            if wav.getframerate() != 8000 or wav.getsampwidth() != 2:
                raise ValueError(f"{self.path}: expected 8 kHz 16-bit")
            return wav.readframes(wav.getnframes())


def load_prompts() -> list[Prompt]:
    """Every prompt with a recording and a transcript of real words, sorted by name."""
    if not TRANSCRIPTS.exists():
        raise FileNotFoundError(f"{TRANSCRIPTS} missing: apt-get install asterisk-core-sounds-en-wav")
    prompts = []
    for line in gzip.open(TRANSCRIPTS, "rt", encoding="utf-8", errors="replace"):
        if line.startswith(";") or ":" not in line:
            continue
        name, _, text = line.partition(":")
        path = SOUNDS / f"{name.strip()}.wav"
        words = normalize(text)
        if path.exists() and len(words.split()) >= 1 and not re.search(r"[\[\]<>]", text):
            prompts.append(Prompt(name.strip(), path, text.strip()))
    return sorted(prompts, key=lambda p: p.name)


def normalize(text: str) -> str:
    """Lowercase words only, digits spelled out, so WER compares words, not formatting."""
    text = text.lower().replace("-", " ")
    text = re.sub(r"[^a-z0-9' ]+", " ", text)
    words = [_NUMBERS.get(w, w) for w in text.split()]
    return " ".join(w.strip("'") for w in words if w.strip("'"))


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(edit distance in words, reference length) after normalisation."""
    ref, hyp = normalize(reference).split(), normalize(hypothesis).split()
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[len(hyp)], len(ref)


def word_error_rate(pairs: list[tuple[str, str]]) -> float:
    """Corpus WER: total word edits over total reference words."""
    errors = total = 0
    for reference, hypothesis in pairs:
        e, n = word_errors(reference, hypothesis)
        errors, total = errors + e, total + n
    return errors / total if total else 0.0
