"""Check in code that a reply states no fact the evidence does not contain.

Small models invent opening hours and prices even when the right ones are in
their prompt. Every number (digits or words, times, prices), weekday and month
in a reply clause must appear in the retrieved passages or tool results, or the
clause is not spoken.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from agent.brain.numbers import parse_number
from agent.language.en import MONTHS, NUMBER_WORDS, WEEKDAYS

_NUMBER_WORDS = "|".join(NUMBER_WORDS)
_NUMBER_PHRASE = re.compile(rf"\b(?:{_NUMBER_WORDS})(?:[\s-]+(?:and\s+)?(?:{_NUMBER_WORDS}))*\b", re.I)
_DIGITS = re.compile(r"\d+(?:[.,:]\d+)*")
# words that are numbers but rarely facts in a receptionist's reply ("one moment", "one of our")
_HARMLESS_ONE = re.compile(r"\bone\b(?=\s+(?:moment|second|of|more|thing|day|time)\b)", re.I)


@dataclass(frozen=True)
class Facts:
    numbers: frozenset[str]
    names: frozenset[str]  # weekdays and months


def _number_values(text: str) -> set[str]:
    values: set[str] = set()
    for match in _DIGITS.finditer(text):
        values.add(_canonical(match.group()))
    text = _HARMLESS_ONE.sub(" ", text)
    for match in _NUMBER_PHRASE.finditer(text):
        value = parse_number(match.group())
        if value is not None:
            values.add(str(value))
        else:  # "eight thirty": each number on its own
            for word in re.split(r"[\s-]+", match.group()):
                single = parse_number(word)
                if single is not None:
                    values.add(str(single))
    return values


def _canonical(token: str) -> str:
    """One spelling per value: "1,200" → "1200", "8:00" → "8", "08" → "8", "3.50" stays."""
    token = token.replace(",", "")
    hours, sep, minutes = token.partition(":")
    if sep:
        return str(int(hours)) if minutes.strip("0") == "" else f"{int(hours)}:{minutes}"
    whole, sep, cents = token.partition(".")
    if sep and cents.strip("0") == "":
        return str(int(whole))
    return token if sep else str(int(token))


def extract_facts(text: str) -> Facts:
    lowered = text.lower()
    names = {w for w in (*WEEKDAYS, *MONTHS) if re.search(rf"\b{w}\b", lowered)}
    if "may" in names and not re.search(r"\bmay\s+\d|\d\s+may\b|\bin may\b", lowered):
        names.discard("may")  # the verb
    return Facts(frozenset(_number_values(text)), frozenset(names))


def unsupported_facts(reply: str, evidence: list[str], said_by_caller: str = "") -> list[str]:
    """Facts in the reply that neither the evidence nor the caller's own words contain."""
    known = extract_facts(" \n".join([*evidence, said_by_caller]))
    reply_facts = extract_facts(reply)
    missing = sorted(reply_facts.numbers - known.numbers) + sorted(reply_facts.names - known.names)
    return missing
