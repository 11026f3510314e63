"""Split a streamed LLM reply into speakable clauses, so speech starts early.

The first clause is cut at a comma once it is long enough to sound natural
(even within a first sentence that is already complete: its synthesis is what
the caller waits for, ~30 ms per second of speech on two cores); later ones at
sentence ends. "3.50" and "a.m." stay whole because a cut needs
whitespace after the punctuation.
"""

from __future__ import annotations

import re

_SENTENCE_END = re.compile(r"[.!?;:](?=\s)")
_COMMA = re.compile(r",(?=\s)")
FIRST_CLAUSE_MIN_CHARS = 12


class ClauseSplitter:
    def __init__(self) -> None:
        self._buffer = ""
        self._emitted = 0

    def feed(self, piece: str) -> list[str]:
        self._buffer += piece
        out = []
        while True:
            cut = self._find_cut()
            if cut is None:
                break
            clause, self._buffer = self._buffer[:cut].strip(), self._buffer[cut:].lstrip()
            if clause:
                out.append(clause)
                self._emitted += 1
        return out

    def flush(self) -> list[str]:
        rest, self._buffer = self._buffer.strip(), ""
        return [rest] if rest else []

    def _find_cut(self) -> int | None:
        match = _SENTENCE_END.search(self._buffer)
        if self._emitted == 0:  # the caller waits for the first clause's synthesis: a comma before the full stop
            for comma in _COMMA.finditer(self._buffer):
                if match and comma.end() > match.end():
                    break
                if comma.end() >= FIRST_CLAUSE_MIN_CHARS:
                    return comma.end()
        return match.end() if match else None


def split_clauses(text: str) -> list[str]:
    """A whole text cut the same way, so the first clause is synthesized (and heard) first."""
    splitter = ClauseSplitter()
    return splitter.feed(text) + splitter.flush()


def speakable(text: str) -> str:
    """Strip markup a small model may emit; the caller hears words only."""
    text = re.sub(r"[*_#`>\[\]]", "", text)
    return re.sub(r"\s+", " ", text).strip()
