"""Which task (or conversation intent) an utterance asks for, from the config's examples.

A task is triggered by one of its phrases (whole words, any order of the rest of
the sentence) or by being close to one of its example utterances: TF-IDF-weighted
overlap of word stems, with the task's phrases and choice words as extra
evidence. The conversation intents every deployment shares (a person, goodbye,
"forget it") come from the language module. Measured against the alternatives on
the paraphrase sets (`python -m agent bench --intents`, docs/benchmarks.md).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass

from agent.config import Task
from agent.language import en

EXAMPLE_THRESHOLD = 0.42  # similarity to a task's closest example that counts as asking for it
EXAMPLE_WEIGHT = 1.5  # a near-verbatim example (similarity ≥ 0.8) outranks a lone trigger phrase
_WORD = re.compile(r"[a-z0-9']+")
_SYSTEM = {name: re.compile(pattern, re.I) for name, pattern in en.INTENT_PATTERNS.items()}


def stem(word: str) -> str:
    """Crude English stem, enough for "booking"/"book", "cancelled"/"cancel", "appointments"/"appointment"."""
    word = word.lower().strip("'")
    for suffix in ("ings", "ing", "ied", "ies", "ed", "es", "s", "ly"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            break
    if len(word) > 3 and word[-1] == word[-2]:
        word = word[:-1]  # "cancell" → "cancel", "bookk" never
    return word


def words(text: str) -> list[str]:
    """The text's words, lower case, with other words for a request's verb read as that verb."""
    return _WORD.findall(_SYNONYMS.sub(lambda m: en.REQUEST_SYNONYMS[m.group().lower()], text.lower().replace("’", "'")))


_SYNONYMS = re.compile(r"\b(?:" + "|".join(sorted(map(re.escape, en.REQUEST_SYNONYMS), key=len, reverse=True)) + r")\b")


def content_stems(text: str) -> list[str]:
    return [stem(w) for w in words(text) if w not in en.STOPWORDS and w not in en.FILLERS and not w.isdigit()]


def examples_of(task: Task) -> list[str]:
    return [*task.triggers.examples, *task.triggers.phrases]


def phrase_in(phrase: str, text: str) -> bool:
    """Whole-word phrase match that ignores case, punctuation and word endings ("points" ~ "point")."""

    def joined(value: str) -> str:
        return " " + " ".join(stem(w) for w in words(value)) + " "

    return joined(phrase) in joined(text)


def phrase_span(phrase: str, text: str) -> tuple[int, int] | None:
    """Where the phrase's words start and end among the text's words (stemmed), if it is there."""
    said = [stem(w) for w in words(text)]
    wanted = [stem(w) for w in words(phrase)]
    for start in range(len(said) - len(wanted) + 1):
        if wanted and said[start : start + len(wanted)] == wanted:
            return start, start + len(wanted)
    return None


def _object_of_another(spans: dict[str, list[tuple[int, int]]], name: str) -> bool:
    """Every phrase of this task that is present overlaps one of another task's that starts earlier."""
    mine = spans.get(name) or []
    others = [span for other, found in spans.items() if other != name for span in found]
    return bool(mine) and all(any(o[0] < m[0] < o[1] for o in others) for m in mine)


def system_intent(text: str) -> str | None:
    """A conversation intent every deployment shares ("human", "goodbye", "repeat", ...), or None."""
    return next((name for name, pattern in _SYSTEM.items() if pattern.search(text)), None)


@dataclass(frozen=True)
class Match:
    task: str
    score: float  # > 1: a trigger phrase (+ half the example similarity); else 1.5 × example similarity
    via: str  # "phrase" | "example"


class TaskMatcher:
    """Scores an utterance against every task's trigger phrases and example utterances (and the shared intents' examples)."""

    def __init__(self, tasks: list[Task], intents: dict[str, list[str]] | None = None) -> None:
        self.tasks = tasks
        self._examples: list[tuple[str, Counter]] = []
        document_frequency: Counter = Counter()
        labelled = [(task.name, example) for task in tasks for example in examples_of(task)]
        labelled += [(name, example) for name, examples in (intents or {}).items() for example in examples]
        self._names = list(dict.fromkeys(name for name, _ in labelled))
        for name, example in labelled:
            bag = Counter(content_stems(example))
            if bag:
                self._examples.append((name, bag))
                document_frequency.update(set(bag))
        total = max(len(self._examples), 1)
        self._idf = {term: math.log(1 + total / df) for term, df in document_frequency.items()}
        self._unknown_idf = math.log(1 + total)

    def _weight(self, term: str) -> float:
        return self._idf.get(term, self._unknown_idf)

    def _similarity(self, query: Counter, example: Counter) -> float:
        """Weighted overlap: how much of the example the caller said, and how much of what they said it covers."""
        common = query.keys() & example.keys()
        shared = sum(self._weight(t) for t in common)
        if not shared:
            return 0.0
        if len(common) == 1 and len(example) > 1:
            shared /= 2  # one word in common is weak evidence ("teeth whitening" vs "teeth cleaned")
        coverage = shared / sum(self._weight(t) for t in example)
        # words no example uses count against the match at half weight: "teeth whitening for my dog"
        # shares only "teeth" with "get my teeth cleaned"
        said = sum(self._weight(t) if t in self._idf else self._unknown_idf / 2 for t in query)
        precision = shared / said
        return 2 * coverage * precision / (coverage + precision)

    def rank(self, text: str) -> list[Match]:
        """Tasks the utterance may ask for, best first."""
        query = Counter(content_stems(text))
        similar: dict[str, float] = {}
        if query:
            for name, example in self._examples:
                similar[name] = max(similar.get(name, 0.0), self._similarity(query, example))
        matches = []
        phrases = {task.name: task.triggers.phrases for task in self.tasks}
        spans = {name: [span for p in phrases.get(name, []) if (span := phrase_span(p, text))] for name in self._names}
        for name in self._names:
            hits = [p for p in phrases.get(name, []) if phrase_in(p, text)]
            if hits and _object_of_another(spans, name):
                hits = []  # "cancel my service booking": "service booking" is what is cancelled, not a request
            if hits:  # several tasks' phrases present ("cancel my booking"): the closer examples decide
                score = 1.0 + max(len(p) for p in hits) / 100 + similar.get(name, 0.0) / 2
                matches.append(Match(name, score, "phrase"))
            else:  # every task is listed: a value for its reference slot may still make it the one
                matches.append(Match(name, similar.get(name, 0.0) * EXAMPLE_WEIGHT, "example"))
        return sorted(matches, key=lambda m: m.score, reverse=True)

    threshold = EXAMPLE_THRESHOLD * EXAMPLE_WEIGHT  # the score that counts as asking for a task

    def best(self, text: str) -> Match | None:
        ranked = self.rank(text)
        return ranked[0] if ranked and ranked[0].score >= self.threshold else None
