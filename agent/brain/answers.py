"""What the caller hears for an answer from the documents, clause by clause, checked in code.

With a model trusted to phrase answers (Brain.generate_answers) the LLM writes the answer from the
retrieved passages; its output is split into clauses as it streams, and every clause passes the
grounding check (agent/brain/grounding.py) before it is handed on. A clause that states a number,
day or month the evidence does not contain stops the generation; if nothing was said yet, the
extractive answer stands in. Otherwise the answer is extractive. The call session only speaks
what this yields (agent/call/session.py), so the decision of what is said stays in the brain.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from agent import metrics
from agent.brain.dialogue import Answer, Brain
from agent.brain.grounding import unsupported_facts
from agent.call.clauses import ClauseSplitter, split_clauses

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Clause:
    text: str
    reusable: bool = False  # the same words for every caller (the speech cache may keep its audio)


async def answer_clauses(
    brain: Brain, answer: Answer, history: list[dict[str, str]], on_block: Callable[[int], None] = lambda n: None
) -> AsyncIterator[Clause]:
    """The clauses to speak for `answer`; `on_block(n)` is told when n invented facts stopped the model."""
    if not brain.generate_answers or brain.llm is None:
        for clause in split_clauses(answer.extractive):
            yield Clause(clause, reusable=True)
        return
    facts = "\n".join(f"- {text}" for text in answer.evidence)
    messages = [{"role": "system", "content": f"{brain.config.system_prompt()}\n\nFacts:\n{facts}"}, *history[-6:]]
    loop = asyncio.get_running_loop()
    pieces: asyncio.Queue[str | None] = asyncio.Queue()
    stop = threading.Event()

    def generate() -> None:
        try:
            for piece in brain.llm.stream_reply(messages, stop.is_set):
                loop.call_soon_threadsafe(pieces.put_nowait, piece)
        except Exception:  # a model failure must not kill the call: the extractive answer stands in
            log.exception("LLM generation failed")
            metrics.model_error("llm")
        finally:
            loop.call_soon_threadsafe(pieces.put_nowait, None)

    splitter = ClauseSplitter()
    said = 0
    generator = loop.run_in_executor(None, generate)
    try:
        while True:
            piece = await pieces.get()
            for clause in splitter.flush() if piece is None else splitter.feed(piece):
                invented = unsupported_facts(clause, answer.evidence, said_by_caller=answer.question)
                if invented:
                    on_block(len(invented))
                    stop.set()
                    if not said:
                        yield Clause(answer.extractive, reusable=True)
                    return
                said += 1
                yield Clause(clause)
            if piece is None:
                if not said:
                    yield Clause(answer.extractive, reusable=True)
                return
    finally:
        stop.set()
        await asyncio.shield(generator)
