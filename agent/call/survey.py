"""The post-call survey (CSAT): whom to ask, and the score in an answer.

Asked only when the caller ends the call themselves (the brain's goodbye, reason
"caller-done": "bye", or "no" after "anything else?") after at least one other
turn (not of a wrong number's "sorry, goodbye"), never of a caller being
transferred, one who hung up, or one who sounded upset at any point of the call
(the brain's own detector: the admin's upset phrases, the language's expressions
of anger, or a tone below escalation.upset_threshold). The answer is read with
the number parser the tasks use: "four", "4", "five out of five", "I'd give it a
three", or a key pressed.
"""

from __future__ import annotations

import datetime as dt
import re

from agent.brain.dialogue import Reply
from agent.brain.entities import parse_slot
from agent.config import AgentConfig, Slot
from agent.language import en

SCORES = range(1, 6)
_SCORE = Slot(name="csat", type="number", required=False)


def should_ask(config: AgentConfig, reply: Reply, upset: bool, caller_turns: int) -> bool:
    """Ask the survey before this reply ends the call? (caller_turns: with the goodbye)"""
    ending = reply.end == "hangup" and reply.reason == "caller-done"
    return config.survey.enabled and ending and not upset and caller_turns > 1


def survey_score(answer: str) -> int | None:
    """1-5 from a spoken or typed answer, or None when it holds no such score."""
    value = parse_slot(_SCORE, answer, dt.datetime.now()).value
    words = re.findall(r"[a-z]+", answer.lower())
    if value is None and len(words) == 1:  # ASR's spelling of a lone digit word ("For." for "four")
        value = en.DIGIT_HOMOPHONES.get(words[0])
    try:
        score = int(value) if value is not None and float(value).is_integer() else None
    except ValueError:
        return None
    return score if score in SCORES else None
