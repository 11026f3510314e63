"""Deterministic reading of numbers as callers say them.

ASR writes "four one one two", "double seven", "twenty five" or "4112"; tools
need 4112. Small LLMs get this wrong, so it is done here, by rule, and tested.
"""

from __future__ import annotations

import re

from agent.language.en import DIGIT_WORDS, REPEATS, SCALES, TENS, UNITS

_UNITS, _TENS, _REPEAT, _SCALES, _DIGIT_WORDS = UNITS, TENS, REPEATS, SCALES, DIGIT_WORDS
_TOKEN = re.compile(r"[a-z]+|\d+", re.I)
_FILLERS = {"and", "dash", "number", "is", "its", "uh", "um"}


def spoken_digits(text: str) -> str | None:
    """The digit string a caller spelled out, or None if the text is not a run of digits.

    "four one one two" → "4112"; "double seven three" → "773"; "4 1 1 2" → "4112";
    "oh five" → "05"; "twenty five" → "25" (a compound read as its value).
    """
    tokens = [t.lower() for t in _TOKEN.findall(text.replace("-", " "))]
    tokens = [t for t in tokens if t not in _FILLERS]
    if not tokens:
        return None
    digits: list[str] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token.isdigit():
            digits.append(token)
        elif token in _REPEAT and i + 1 < len(tokens) and tokens[i + 1] in _DIGIT_WORDS:
            digits.append(str(_UNITS[tokens[i + 1]]) * _REPEAT[token])
            i += 1
        elif token in _DIGIT_WORDS:
            digits.append(str(_UNITS[token]))
        elif token in _UNITS or token in _TENS or token in _SCALES:
            # a compound number inside a digit run ("order twenty five"): take its value
            value, used = _compound(tokens[i:])
            if value is None:
                return None
            digits.append(str(value))
            i += used - 1
        else:
            return None
        i += 1
    return "".join(digits)


def _compound(tokens: list[str]) -> tuple[int | None, int]:
    """Parse "twenty five", "one hundred and twelve", "three thousand" from the front of tokens."""
    total = current = 0
    used = 0
    for token in tokens:
        if token in _TENS and current % 100 == 0:
            current += _TENS[token]
        elif token in ("oh", "o", "nought") and used:
            break  # "fifty oh one" is 5-0, 0-1 read in groups, never 50 + 0
        elif token in _UNITS and (current % 10 == 0 or current == 0):
            if current % 100 >= 20 and _UNITS[token] >= 10:
                break
            current += _UNITS[token]
        elif token in _SCALES and current:
            current *= _SCALES[token]
            if _SCALES[token] >= 1000:
                total, current = total + current, 0
        else:
            break
        used += 1
    return (total + current, used) if used else (None, 0)


def parse_number(text: str) -> int | None:
    """A single quantity said in words or digits: "twenty five" → 25, "1,200" → 1200."""
    cleaned = text.strip().lower().replace(",", "")
    if re.fullmatch(r"\d+", cleaned):
        return int(cleaned)
    tokens = [t for t in _TOKEN.findall(cleaned.replace("-", " ")) if t != "and"]
    value, used = _compound(tokens)
    return value if used == len(tokens) and tokens else None


def normalize_numbers(text: str) -> str:
    """Rewrite runs of spoken digits (three or more) as digits, leaving other words alone.

    Only single digits, "double/triple" and numerals form a run, so times and
    amounts ("ten thirty", "twenty five dollars") stay as said. Used before
    matching order numbers and before redaction, so "my card is four one one
    one ..." is seen as the number it is.
    """
    # "7-7-3-1" and "4 1 1 2" (ASR's digit-by-digit spellings) are one number
    text = re.sub(r"\b\d(?:[-\s]\d\b){2,}", lambda m: re.sub(r"[-\s]", "", m.group()), text)
    words = text.split()
    out: list[str] = []
    i = 0
    while i < len(words):
        j = i
        while j < len(words) and _is_digit_word(words[j]):
            j += 1
            if words[j - 1] != words[j - 1].rstrip(".,?!;:"):
                break  # punctuation ends the run
        digits = spoken_digits(" ".join(w.strip(".,?!;:") for w in words[i:j])) if j - i >= 2 else None
        if digits and len(digits) >= 3:
            last = words[j - 1]
            out.append(digits + last[len(last.rstrip(".,?!;:")) :])
            i = j
        else:
            out.append(words[i])
            i += 1
    return " ".join(out)


def _is_digit_word(word: str) -> bool:
    core = word.strip(".,?!;:").lower()
    return core.isdigit() or core in _DIGIT_WORDS or core in _REPEAT
