"""Has the caller finished, judging by the words so far? The text half of the end-of-turn decision.

Silence alone cannot tell "my account number is ..." (a pause before the number) from a finished
question; the words can. An utterance that ends in a number, or on a word a sentence does not end
on (`language.UNFINISHED`), is held open a moment longer for the rest. A question mark ends it.
"""

from __future__ import annotations

import re

from agent.language import en

ENDS_WITH_DIGIT = re.compile(r"\d\W*$")
_UNFINISHED = re.compile(en.UNFINISHED, re.IGNORECASE)


def sounds_unfinished(text: str) -> bool:
    text = text.strip()
    if not text or text.endswith("?"):
        return False
    return bool(ENDS_WITH_DIGIT.search(text) or _UNFINISHED.search(text))


_SENTENCE_END = re.compile(r"[.?!]\W*$")


def sounds_finished(text: str) -> bool:
    """The recogniser closed a sentence (Whisper punctuates what it hears as complete) on a word a
    sentence ends on: "Are you open on Saturday?" yes, "I'd like to book a" or "my number is 44" no."""
    text = text.strip()
    return bool(_SENTENCE_END.search(text)) and not sounds_unfinished(text)
