"""Score the redactor on the labelled PII corpus (tests/data/pii-corpus.jsonl).

Recall: labelled values that no longer appear in the output. Precision:
placeholders that stand for a labelled value (a placeholder in a sentence
with nothing labelled, or more placeholders than labels, is a false alarm).
Negatives must come through unchanged.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from agent.config import PROJECT_ROOT
from agent.privacy.redact import Redactor

CORPUS = PROJECT_ROOT / "tests" / "data" / "pii-corpus.jsonl"
# written by hand without running the redactor on it first; its first score is in docs/benchmarks.md
HELDOUT = PROJECT_ROOT / "tests" / "data" / "pii-heldout.jsonl"
# the corpus' business identifiers, as an admin would configure them (privacy.keep_numbers)
CORPUS_KEEP = (r"20\d{8}",)
_PLACEHOLDER = re.compile(r"\[([A-Z_]+)\]")


def score(redactor: Redactor | None = None, corpus: Path = CORPUS) -> dict:
    redactor = redactor or Redactor.from_patterns(CORPUS_KEEP)
    rows = [json.loads(line) for line in corpus.read_text(encoding="utf-8").splitlines() if line.strip()]
    found = missed = false_alarms = typed = 0
    misses: list[str] = []
    alarms: list[str] = []
    for row in rows:
        out = redactor.redact(row["text"])
        placeholders = _PLACEHOLDER.findall(out)
        hits = 0
        for value, kind in row["pii"]:
            if value in out:
                missed += 1
                misses.append(f"{kind}: {row['text']!r} -> {out!r}")
            else:
                found += 1
                hits += 1
                typed += kind in placeholders
        extra = max(0, len(placeholders) - hits)
        broken = [k for k in row["keep"] if k not in out]
        if extra or broken:
            false_alarms += max(extra, len(broken))
            alarms.append(f"{row['text']!r} -> {out!r}")
    labelled = found + missed
    return {
        "utterances": len(rows),
        "labelled_values": labelled,
        "negatives": sum(1 for r in rows if not r["pii"]),
        "recall": round(found / labelled, 4) if labelled else None,
        "precision": round(found / (found + false_alarms), 4) if found + false_alarms else None,
        "type_accuracy": round(typed / found, 4) if found else None,
        "misses": misses,
        "false_alarms": alarms,
    }
