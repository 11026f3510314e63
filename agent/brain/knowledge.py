"""The admin's knowledge documents, searchable on the box (SQLite FTS5, BM25).

Documents are Markdown or text files in the config's knowledge/ folder. Each
is split into passages at headings and blank lines; a passage remembers its
file and line so an answer can say which passage it used.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from agent.language.en import STOPWORDS

SUFFIXES = (".md", ".txt")


# Callers and documents use different words for the same thing; a question term
# also searches for these (documents can add their own words, too).
_RELATED = {
    "located": ["address", "location"], "location": ["address"], "where": ["address"],
    "directions": ["address"], "find": ["address"],
    "cost": ["price", "prices"], "price": ["cost", "costs"], "much": ["cost", "costs", "price"], "fee": ["cost", "price"],
    "open": ["hours"], "close": ["hours", "closed"], "closing": ["hours"], "hours": ["open"],
    "pay": ["payment", "accept"], "card": ["payment", "accept"], "insured": ["insurance"],
    "refund": ["return", "returns"], "send": ["return", "shipping"], "delivery": ["shipping"],
}  # fmt: skip


@dataclass(frozen=True)
class Passage:
    id: int
    source: str  # "file.md:12"
    title: str
    text: str


@dataclass(frozen=True)
class Hit:
    passage: Passage
    score: float  # higher is better (negated BM25)
    covered: int = 0  # how many of the question's terms the passage contains

    @property
    def relevant(self) -> bool:
        """Good enough to answer from. BM25 alone fails a small knowledge base (one document: every
        term's IDF is near zero), so two question terms found in the passage count too."""
        return self.score >= MIN_ANSWER_SCORE or self.covered >= 2


MIN_ANSWER_SCORE = 1.0  # BM25 below this is a weak match: better to say we do not know


def split_passages(text: str, source: str) -> list[tuple[str, str, int]]:
    """(title, text, first line) per passage: a heading starts one, blank lines end one."""
    passages: list[tuple[str, str, int]] = []
    title, lines, start = "", [], 1
    for number, line in enumerate(text.splitlines(), 1):
        heading = re.match(r"^#{1,6}\s+(.*)", line)
        if heading or not line.strip():
            if lines:
                passages.append((title, " ".join(lines), start))
                lines = []
            if heading:
                title = heading.group(1).strip()
            continue
        if not lines:
            start = number
        lines.append(line.strip().lstrip("-*").strip())
    if lines:
        passages.append((title, " ".join(lines), start))
    return passages


class KnowledgeBase:
    def __init__(self, passages: list[Passage]) -> None:
        self.passages = passages
        # check_same_thread=False: built once, then only read (under the GIL) by the event loop
        self._db = sqlite3.connect(":memory:", check_same_thread=False)
        self._db.execute("CREATE VIRTUAL TABLE passages USING fts5(title, body, tokenize='porter unicode61')")
        self._db.executemany(
            "INSERT INTO passages(rowid, title, body) VALUES (?, ?, ?)", [(p.id, p.title, p.text) for p in passages]
        )

    @classmethod
    def from_directory(cls, directory: Path) -> KnowledgeBase:
        passages: list[Passage] = []
        if directory.is_dir():
            for path in sorted(directory.iterdir()):
                if path.suffix.lower() not in SUFFIXES:
                    continue
                for title, text, line in split_passages(path.read_text(encoding="utf-8"), path.name):
                    passages.append(Passage(len(passages) + 1, f"{path.name}:{line}", title, text))
        return cls(passages)

    def search(self, query: str, limit: int = 3) -> list[Hit]:
        # single digits ("it's 7 7 3 1", "3 pm") match any passage with a number in it: leave them out
        terms = [
            t
            for t in re.findall(r"[a-z0-9]+", query.lower())
            if t not in STOPWORDS and not (t.isdigit() and len(t) < 2)
        ]
        if not terms:
            return []
        expanded = [*terms, *(r for t in terms for r in _RELATED.get(t, []))]
        match = " OR ".join(f'"{t}"' for t in dict.fromkeys(expanded))
        rows = self._db.execute(
            "SELECT rowid, bm25(passages, 2.0, 1.0) FROM passages WHERE passages MATCH ? ORDER BY 2 LIMIT ?",
            (match, limit),
        ).fetchall()
        by_id = {p.id: p for p in self.passages}
        return [Hit(by_id[rowid], -score, _covered(terms, by_id[rowid])) for rowid, score in rows]

    def answers(self, query: str) -> list[Hit]:
        """The passages relevant enough to answer `query` from, best first."""
        return [hit for hit in self.search(query) if hit.relevant]


def _covered(terms: list[str], passage: Passage) -> int:
    words = {w[:5] for w in re.findall(r"[a-z0-9]+", f"{passage.title} {passage.text}".lower())}
    return sum(1 for t in dict.fromkeys(terms) if t[:5] in words and not t.isdigit())
