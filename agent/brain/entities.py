"""Slot values read from what the caller said, one parser per slot type.

Every parser looks only at the part of the utterance that fits its type ("my
card ends 4929, the one I lost on Friday" gives a digits slot 4929 and a date
slot Friday), and says why a value did not fit so the re-prompt can say so.
Deterministic by design: small models get numbers and dates wrong.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from agent.brain.dates import HOUR_WORDS, When, parse_day, parse_time, parse_when, say_day, say_time
from agent.brain.numbers import normalize_numbers, parse_number, spoken_digits
from agent.config import Slot
from agent.language import en

_YES = re.compile(en.YES, re.I)
_NO = re.compile(en.NO, re.I)
# digit groups a caller reads with pauses, as ASR writes them: "4,112", "41 12", "4112-77", "41, 12"
_GROUPED = re.compile(r"\d+(?:(?:,\s?|\s|-|\s?\.\s|\s(?:and|uh|um)\s)\d+)*")


@dataclass(frozen=True)
class Parsed:
    value: object | None
    problem: str | None = None  # why nothing fit, for the re-prompt ("That was 5 digits; I need 4.")


def is_yes(text: str) -> bool:
    return bool(_YES.search(text)) and not _NO.search(text)


def is_no(text: str) -> bool:
    return bool(_NO.search(text))


_NUMBER_TOKEN = re.compile(r"[a-z]+|\d+|[,.-]", re.I)
_JOINERS = {"and", "uh", "um", "erm", ",", "-", "."}


def _spoken_groups(text: str) -> list[str]:
    """Runs of number words read as digit groups: "forty-one, eighty-two, oh seven" → "418207"."""
    runs, current = [], []

    def close() -> None:
        # each group between pauses (commas) is read on its own: "fifty, oh one, two" = 50 01 2
        groups, group = [], []
        for token in [*current, ","]:
            if token in (",", "."):
                if group:
                    groups.append(spoken_digits(" ".join(group)))
                group = []
            elif token not in _JOINERS:
                group.append(token)
        if groups and all(groups):
            spelled = "".join(groups)
            if len(spelled) >= 2:
                runs.append(spelled)
        current.clear()

    for token in _NUMBER_TOKEN.findall(text.lower()):
        if token.isdigit() or token in en.UNITS or token in en.TENS or token in en.REPEATS or token in en.SCALES:
            current.append(token)
        elif token in _JOINERS and current:
            current.append(token)
        else:
            close()
    close()
    return runs


# ASR writes "double eight" as "double 8" and "triple three nine" as "Triple 39"
_REPEATED_DIGIT = re.compile(r"\b(double|triple)[\s-]*(\d)", re.I)


# "5 to 0 double 4": a digit's homophone between two digits is that digit
_HOMOPHONE_BETWEEN = re.compile(rf"(?<=\d )({'|'.join(en.DIGIT_HOMOPHONES)})(?= \d)", re.I)


def _repeat_digit(match: re.Match) -> str:
    return match.group(2) * en.REPEATS[match.group(1).lower()]


def digit_runs(text: str, compounds: bool = True) -> list[str]:
    """Every number in the utterance as one digit string, groups read with pauses joined.

    With `compounds`, numbers said in pairs or as words ("forty-one twelve") count too;
    without, only numerals and digit-by-digit readings (evidence that a reference was said).
    """
    normalized = _REPEATED_DIGIT.sub(_repeat_digit, normalize_numbers(text))
    normalized = _HOMOPHONE_BETWEEN.sub(lambda m: en.DIGIT_HOMOPHONES[m.group(1).lower()], normalized)
    runs = [re.sub(r"\D", "", m.group()) for m in _GROUPED.finditer(normalized)]
    if compounds:
        spoken = [r for r in _spoken_groups(text) if len(r) > max((len(x) for x in runs), default=0)]
        runs += spoken
    return [r for r in runs if r]


def _digits(slot: Slot, text: str) -> Parsed:
    runs = digit_runs(text)
    if not runs:
        return Parsed(None)
    low = slot.length or slot.min_length or 1
    high = slot.length or slot.max_length or 32
    fitting = [r for r in runs if low <= len(r) <= high]
    if fitting:
        return Parsed(fitting[-1])  # a caller who corrects themselves says the right one last
    longest = max(runs, key=len)
    if len(longest) > high and slot.length:
        return Parsed(longest[-slot.length :] if slot.take == "last" else longest[: slot.length])
    length = slot.length or (low if len(longest) < low else high)
    return Parsed(None, "digits_wrong_length" if len(longest) >= 2 else None) if length else Parsed(None)


def reference_readings(text: str) -> list[str]:
    """Other readings of a spoken reference, for a tool to try: ASR writes "four one one two" as "for 112"."""
    readings = []
    for word, digit in en.DIGIT_HOMOPHONES.items():
        readings += [digit + m.group(1) for m in re.finditer(rf"\b{word}\s*(\d{{2,}})\b", text, re.I)]
    return readings


def _number(text: str) -> float | None:
    """The first quantity in `text`: "a table for three at 1 pm" is 3, "so we're four" is 4. Times and dates
    are not quantities, and a lone "oh" is a hesitation, not zero."""
    text = _NOT_A_QUANTITY.sub(" ", normalize_numbers(text).lower().replace(",", ""))
    text = re.sub(r"\ban? (hundred|thousand)\b", r"one \1", text)  # "a hundred and twenty"
    tokens = re.findall(r"\d+(?:\.\d+)?|[a-z]+(?:-[a-z]+)?", text)
    for start, token in enumerate(tokens):
        if token[0].isdigit():
            value = float(token)
            return int(value) if value.is_integer() else value
        if token in ("oh", "o", "nought"):
            continue
        for end in range(len(tokens), start, -1):
            if any(t[0].isdigit() for t in tokens[start:end]):
                continue
            value = parse_number(" ".join(tokens[start:end]))
            if value is not None:
                return value
    return None


_NOT_A_QUANTITY = re.compile(
    rf"\b(?:at|around|by|until|till|from|after|before|half past|quarter past|quarter to|half)\s+(?:\d{{1,2}}(?::\d{{2}})?|{HOUR_WORDS})\b"
    rf"(?:\s*(?:am|pm|a m|p m|o'?clock))?"
    rf"|\b(?:\d{{1,2}}(?::\d{{2}})?|{HOUR_WORDS})\s*(?:am|pm|a m|p m|o'?clock)\b"
    r"|\b\d{1,2}:\d{2}\b|\b\d{1,2}(?:st|nd|rd|th)\b",
)


_NEGATED = re.compile(r"\b(?:not|rather than|instead of)\s+(?:the\s+|a\s+|an\s+)?[a-z0-9'-]+(?:\s+[a-z'-]+)?", re.I)


def _choice(slot: Slot, text: str) -> str | None:
    from agent.brain.intents import phrase_in, stem

    said = [
        (text.lower().find(word.lower().split()[0]), value)
        for value, synonyms in slot.choices.items()
        for word in (value, *synonyms)
        if phrase_in(word, text)
    ]
    if said:
        return max(said)[1]  # the choice said last: "the red one, no, the blue one"
    # near misses ASR makes ("park in" for "parking"): compare stems of each word
    stems = {stem(w) for w in re.findall(r"[a-z]+", text.lower()) if len(w) > 3}
    letters = re.sub(r"[^a-z]", "", text.lower())
    for value, synonyms in slot.choices.items():
        for word in (value, *synonyms):
            key = re.sub(r"[^a-z]", "", word.lower())
            if (len(key) >= 5 and key[:5] in letters) or stem(word) in stems and len(word) > 3:
                return value
    return None


_AT = re.compile(r"\s+at\s+")
_DOT = re.compile(r"\s+dot\s+")


def _email(text: str) -> str | None:
    written = re.search(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+", text)
    if written:
        return written.group().lower()
    spoken = text.lower()
    spoken = re.sub(r"^.*?\b(?:e-?mail(?: address)? is|it'?s|address is)\s+", "", spoken)
    spoken = spoken.replace(" underscore ", "_").replace(" dash ", "-").replace(" hyphen ", "-")
    parts = _AT.split(spoken.strip(), maxsplit=1)
    if len(parts) != 2:
        return None
    local = _DOT.sub(".", parts[0]).replace(" ", "")
    domain = _DOT.sub(".", parts[1]).replace(" ", "").rstrip(".")
    if "." not in domain or not local:
        return None
    return f"{local}@{domain}"


# a name said in passing, in a sentence that answers no name question ("a table for two, it's under Moreau")
_NAME_TOLD = re.compile(
    r"\b(?:my name is|name is|name'?s|call me|called|named|in the name of|under the name(?: of)?|under)\s+"
    r"([a-z][a-z'-]+(?:\s+[a-z][a-z'-]+)?)",
    re.I,
)
_NAME = re.compile(
    r"\b(?:name is|name'?s|this is|i'?m|i am|it'?s|call me|called|named|under the name(?: of)?|under)\s+"
    r"([a-z][a-z'-]+(?:\s+[a-z][a-z'-]+)?)",
    re.I,
)
_CAPITALISED = re.compile(r"(?<![.!?]\s)(?<!^)\b([A-Z][a-z]+)(?:'s)?\b")
_NOT_NAMES = frozenset(
    (
        *en.STOPWORDS,
        *en.FILLERS,
        *en.CORRECTION_WORDS,
        *en.WEEKDAYS,
        *en.MONTHS,
        *(w for words in en.PARTS_OF_DAY.values() for w in words),
    )
)


def _name(text: str, answering: bool = True) -> str | None:
    """ "my name is Jane Doe", "she's called Luna", a short answer ("Milo"), or in a longer sentence of a
    cased transcript a capitalised word that is not the sentence's first ("can I book Bella in").
    Not `answering` (the bot asked for no name): only a name the caller says is one ("it's under Moreau";
    "I was hoping to get a table" names nobody)."""
    if not answering:
        match = _NAME_TOLD.search(text)
        words = [w for w in match.group(1).split() if w.lower() not in _NOT_NAMES] if match else []
        if not words and text != text.lower():  # a cased transcript: "could I book Bella in"
            words = [w for w in _CAPITALISED.findall(text) if w.lower() not in _NOT_NAMES][:1]
        return " ".join(w.capitalize() for w in words[:2]) or None
    match = _NAME.search(text)
    if match:
        words = [w for w in match.group(1).split() if w.lower() not in _NOT_NAMES]
    elif is_yes(text) or is_no(text):
        return None  # "yes, that's fine" answers something else
    else:
        words = [w for w in re.findall(r"[A-Za-z][A-Za-z'-]+", text) if w.lower() not in _NOT_NAMES]
        if len(words) > 3 and text != text.lower():
            words = [w for w in _CAPITALISED.findall(text) if w.lower() not in _NOT_NAMES][:1]
    if not words or len(words) > 3:
        return None
    return " ".join(w.capitalize() for w in words[:2])


def _identifier(text: str) -> str | None:
    """A reference with letters and digits ("AB12 CDE", "K7-4419", "L M six eight, T R W"): the tool decides."""
    cleaned = normalize_numbers(text)
    spelled = _spelled_reference(cleaned)
    if spelled:
        return spelled
    tokens = re.findall(r"[A-Za-z0-9-]+", cleaned)
    with_digit = [i for i, t in enumerate(tokens) if re.search(r"\d", t)]
    if not with_digit:
        return None
    first, last = with_digit[0], with_digit[-1]
    # short letter groups next to the digits belong to it ("AB12 CDE")
    while first > 0 and len(tokens[first - 1]) <= 3 and tokens[first - 1].lower() not in en.STOPWORDS:
        first -= 1
    while last + 1 < len(tokens) and len(tokens[last + 1]) <= 3 and tokens[last + 1].lower() not in en.STOPWORDS:
        last += 1
    found = "".join(tokens[first : last + 1]).upper().replace("-", "")
    return found if len(found) >= 3 else None  # "at 9" is no reference


def _spelled_reference(text: str) -> str | None:
    """Single letters and digit words read one by one: "L M six eight, T R W" → "LM68TRW"."""
    best, current = "", []
    for token in re.findall(r"[A-Za-z]+(?:'[A-Za-z]+)?|\d+|[,.]", text):
        low = token.lower()
        if len(token) == 1 and token.isalpha() and token not in ("a", "I"):
            current.append(token.upper())
        elif low in en.DIGIT_WORDS and low != "o":
            current.append(str(en.UNITS[low]))
        elif token.isdigit():
            current.append(token)
        elif token in ",.":
            continue
        else:
            best = max(best, "".join(current), key=len)
            current = []
    best = max(best, "".join(current), key=len)
    has_both = any(c.isdigit() for c in best) and any(c.isalpha() for c in best)
    return best if has_both and len(best) >= 4 else None


def parse_slot(slot: Slot, text: str, now: dt.datetime, answering: bool = True) -> Parsed:
    """The slot's value in `text`, or why there is none. `answering`: the bot just asked for this slot
    (a bare "Milo" is then a name)."""
    kind = slot.type
    if kind in ("number", "money", "date", "datetime", "time", "choice", "digits"):
        text = _NEGATED.sub(" ", text)  # "Tuesday, not Monday", "a tyre change, not the inspection"
    if kind in ("number", "money"):
        return Parsed(_number(text))
    if kind == "date":
        return Parsed(parse_day(text, now, past=slot.past))
    if kind == "digits":
        return _digits(slot, text)
    if kind == "time":
        return Parsed(parse_time(text.lower())[0])
    if kind == "datetime":
        when = parse_when(text, now)
        return Parsed(when if (when.day or when.time or when.part_of_day) else None)
    if kind == "choice":
        return Parsed(_choice(slot, text))
    if kind == "yes_no":
        return Parsed(True if is_yes(text) else False if is_no(text) else _yes_no_inside(slot, text))
    if kind == "phone":
        runs = [r for r in digit_runs(text) if 6 <= len(r) <= 15]
        return Parsed(("+" if re.search(r"\+|\bplus\b", text) else "") + runs[-1] if runs else None)
    if kind == "email":
        return Parsed(_email(text))
    if kind == "name":
        return Parsed(_name(text, answering))
    if kind == "id":
        return Parsed(_identifier(text))
    words = [w for w in re.findall(r"[\w'-]+", text) if w.lower() not in en.FILLERS]
    if len(words) <= 3 and (is_yes(text) or is_no(text)):
        return Parsed(None)  # "yes please" answers a question the caller thought was asked, not this one
    return Parsed(told_text(text) or None if len(words) >= 1 else None)  # text


def _yes_no_inside(slot: Slot, text: str) -> bool | None:
    """A yes or no inside a longer sentence, in a clause about what the slot asks: "the power's off, zip
    9 4 1 1 2, and yes, text me when it's back" answers "Would you like a text message…?"."""
    from agent.brain.intents import content_stems

    asked = set(content_stems(slot.prompt or slot.name.replace("_", " ")))
    for clause in re.split(r"[.;!?]|,?\s+(?:and|but)\s+", text):
        answer = True if is_yes(clause) else False if is_no(clause) else None
        if answer is not None and asked & set(content_stems(clause)):
            return answer
    return None


_CLAUSE_BREAK = re.compile(r"\s*(?:[.!?;,]+\s*|\s+(?:and|but|so|because)\s+)", re.I)
_PRONOUN = re.compile(en.PRONOUN_CONTRACTION)
NARRATIVE_WORDS = 3  # words beyond the request itself that make a first sentence an account of what happened


def narrative(text: str, request_words: set[str]) -> str | None:
    """The part of a first sentence that tells a story rather than asks for the task: "I want to claim on my
    home insurance. Someone broke into the shed and took our bikes" gives the second sentence, for a free-text
    slot. `request_words` are the stems the task's phrases, examples, description and choices use."""
    from agent.brain.intents import content_stems

    kept, told = [], 0
    start = 0
    for match in [*_CLAUSE_BREAK.finditer(text), None]:
        end = match.start() if match else len(text)
        clause = text[start:end]
        new = [w for w in content_stems(clause) if w not in request_words and len(w) >= 3 and not _PRONOUN.fullmatch(w)]
        if new and not re.search(r"\d", clause):  # a clause with a number gave another slot its value
            kept.append((start, end))
            told += len(new)
        start = match.end() if match else end
    if told < NARRATIVE_WORDS:
        return None
    start = kept[0][0]
    asked = [m for m in re.finditer(r"[\w'-]+", text[start : kept[0][1]]) if content_stems(m.group()) and all(
        w in request_words for w in content_stems(m.group()))]  # fmt: skip
    if asked and _REQUEST_LEAD.match(text[start:]):  # "I want to report a street light that's out on…"
        rest = start + asked[-1].end()
        if len([w for w in content_stems(text[rest : kept[-1][1]]) if w not in request_words]) >= 2:
            start = rest
    return told_text(text[start : kept[-1][1]])


_REQUEST_LEAD = re.compile(
    r"\W*(?:(?:hi|hello|hey|yes|yeah|so|um|uh)\W+)*(?:i(?:'d| would)? (?:like|want|need)|i'm calling|i am calling|"
    r"can i|could i|can you|could you|please)\b",
    re.I,
)


def told_text(text: str) -> str:
    """Free text as it is kept and read back: without a leading "it's" / "that's" or the final full stop."""
    text = re.sub(
        r"^\W*(?:(?:um|uh|er|so|well|yeah|oh)\W+)*(?:it'?s|it is|that'?s|that is|there'?s|which is)?\s*",
        "",
        text.strip(),
        flags=re.I,
    )
    return text.rstrip(" .!,;")


def say_value(value: object, now: dt.datetime, spell: bool = False) -> str:
    """A field as the bot says it: dates and times in words, ids digit by digit when asked."""
    if isinstance(value, dt.datetime):
        return f"{say_day(value.date(), now)} at {say_time(value.time())}"
    if isinstance(value, dt.date):
        return say_day(value, now)
    if isinstance(value, dt.time):
        return say_time(value)
    if isinstance(value, When):
        parts = [say_day(value.day, now)] if value.day else []
        parts += [f"at {say_time(value.time)}"] if value.time else []
        parts += [f"in the {value.part_of_day}"] if value.part_of_day and not value.time else []
        return " ".join(parts)
    if isinstance(value, bool):
        return "yes" if value else "no"
    text = str(value)
    if spell and re.fullmatch(r"\+?\d+", text):
        return " ".join(text)
    return text


def as_json(value: object) -> object:
    """A field as a tool argument."""
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, When):
        return {
            "day": value.day.isoformat() if value.day else None,
            "time": value.time.isoformat() if value.time else None,
        }
    return value
