"""Deterministic reading of days and times as callers say them, and saying them back.

"next Tuesday at ten thirty", "tomorrow morning", "the 24th", "3 pm" — parsed by
rule relative to `now`, never by the language model.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from agent.brain.numbers import parse_number
from agent.language import en
from agent.language.en import MONTHS, ORDINALS, PARTS_OF_DAY, WEEKDAYS

_ORDINALS = ORDINALS
HOUR_WORDS = "one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve"
_MINUTE_WORDS = "oh five|five|ten|fifteen|twenty|twenty five|twenty-five|thirty|thirty five|forty|forty five|forty-five|fifty|fifty five|o'clock|oclock"
_HOUR = rf"(?P<hour>\d{{1,2}}|{HOUR_WORDS})"
# one time expression: an optional cue word, "half past" / "quarter to" / British "half seven", the hour,
# minutes ("7:30", "seven thirty"), and am/pm or "in the evening"
_TIME = re.compile(
    r"(?:\b(?P<cue>at|around|about|by|from|until|till|after|before|say|like|for about|roughly)\s+)?"
    r"(?:(?P<past>half past|quarter past|half after)\s+|(?P<to>quarter to|quarter of)\s+|(?P<half>half)\s+(?=(?:\d|[a-z]+\b)))?"
    rf"\b{_HOUR}(?!\d|:\d{{3}}|\s*(?:st|nd|rd|th)\b)"
    rf"(?:(?::|\s+)(?P<minute>\d{{2}}\b|{_MINUTE_WORDS})\b)?"
    r"(?:\s*(?P<meridiem>am|pm|a m|p m|in the morning|in the afternoon|in the evening)\b)?"
    r"(?:-?ish)?"
)


@dataclass(frozen=True)
class When:
    day: dt.date | None = None
    time: dt.time | None = None
    part_of_day: str | None = None  # morning | afternoon | evening


def _ordinal_day(text: str, month_named: bool = False) -> int | None:
    """The day of "the 3rd", "the twenty-first", "the ninth"; with a month named, "ninth of March" too."""
    match = re.search(r"\b(\d{1,2})(?:st|nd|rd|th)\b", text)
    if match:
        return int(match.group(1))
    compound = re.search(r"\b(twenty|thirty)[\s-]+(first|second|third|fourth|fifth|sixth|seventh|eighth|ninth)\b", text)
    if compound:
        return {"twenty": 20, "thirty": 30}[compound.group(1)] + _ORDINALS[compound.group(2)]
    the = "(?:the )?" if month_named else "the "
    for word, value in _ORDINALS.items():
        if re.search(rf"\b{the}{word}\b", text):
            return value
    return None


_ONES = "|".join(word for word, value in en.UNITS.items() if 1 <= value <= 9)
_TEENS = "|".join(word for word, value in en.UNITS.items() if value >= 10)
_SPOKEN_YEAR = re.compile(
    rf"\b(nineteen|twenty)[\s-]+(?:({'|'.join(en.TENS)})(?:[\s-]+({_ONES}))?|({_TEENS})|(?:oh|o)[\s-]+({_ONES}))\b"
)
_THOUSANDS_YEAR = re.compile(rf"\btwo thousand(?:\s+and)?(?:[\s-]+({_ONES}|{_TEENS}))?\b")


def _year(text: str) -> int | None:
    """A year said with a date: "1984", "nineteen eighty-four", "nineteen oh five", "two thousand and two"."""
    if match := re.search(r"\b(19\d\d|20\d\d)\b", text):
        return int(match.group(1))
    if match := _SPOKEN_YEAR.search(text):
        century = 1900 if match.group(1) == "nineteen" else 2000
        tens, unit, teen, after_oh = match.group(2), match.group(3), match.group(4), match.group(5)
        if tens:
            return century + en.TENS[tens] + (en.UNITS[unit] if unit else 0)
        return century + en.UNITS[teen or after_oh]
    if match := _THOUSANDS_YEAR.search(text):
        return 2000 + (en.UNITS[match.group(1)] if match.group(1) else 0)
    return None


_AGO = re.compile(r"\b(a|one|two|three|four|five|six|\d)\s+(day|week)s?\s+ago\b")


def parse_day(text: str, now: dt.datetime, past: bool = False) -> dt.date | None:
    """A day as callers say it. Days ahead unless `past` (something that happened: a bare "Monday" is the
    last Monday) or the words say so ("yesterday", "last Friday", "two days ago")."""
    text = text.lower()
    today = now.date()
    if re.search(r"\b(today|this morning|earlier on|tonight)\b", text):
        return today
    if re.search(r"\bday before yesterday\b", text):
        return today - dt.timedelta(days=2)
    if re.search(r"\b(yesterday|last night)\b", text):
        return today - dt.timedelta(days=1)
    ago = _AGO.search(text)
    if ago:
        count = 1 if ago.group(1) in ("a", "one") else int(parse_number(ago.group(1)) or ago.group(1))
        return today - dt.timedelta(days=count * (7 if ago.group(2) == "week" else 1))
    if re.search(r"\bday after tomorrow\b", text):
        return today + dt.timedelta(days=2)
    if re.search(r"\btomorrow\b", text):
        return today + dt.timedelta(days=1)
    mentioned = [
        (match.start(), index, match)
        for index, name in enumerate(WEEKDAYS)
        for match in re.finditer(rf"\b(next\s+|last\s+|this\s+past\s+)?{name}\b", text)
    ]
    if mentioned:  # "I'm booked on Thursday but could come Friday": the day said last is the one wanted
        _, index, match = max(mentioned, key=lambda item: item[0])
        if (match.group(1) or "").strip().startswith(("last", "this")):
            return today - dt.timedelta(days=(today.weekday() - index) % 7 or 7)  # "last Saturday"
        if past:
            return today - dt.timedelta(days=(today.weekday() - index) % 7)
        ahead = (index - today.weekday()) % 7 or 7
        if match.group(1) and ahead < 7 and "week" in text:
            ahead += 7  # "Tuesday next week"
        return today + dt.timedelta(days=ahead)
    month = next(
        (
            i + 1
            for i, m in enumerate(MONTHS)
            if re.search(rf"\b{m}\b", text) and not (m == "may" and re.search(r"\bmay i\b", text))
        ),
        None,
    )
    day = _ordinal_day(text)
    if month and day is None:
        match = re.search(rf"\b{MONTHS[month - 1]}\s+(\d{{1,2}})\b|\b(\d{{1,2}})\s+{MONTHS[month - 1]}\b", text)
        day = int(match.group(1) or match.group(2)) if match else _ordinal_day(text, month_named=True)
    if day is None or not 1 <= day <= 31:
        return None
    try:
        year = _year(text) if month else None
        if year:  # "the ninth of March 1984", "March 9th, nineteen eighty-four": a date of birth
            return dt.date(year, month, day)
        if month:  # "the 3rd of March": this year, or next year once it has passed (last year, for the past)
            candidate = dt.date(today.year, month, day)
            if past:
                return candidate if candidate <= today else dt.date(today.year - 1, month, day)
            return candidate if candidate >= today else dt.date(today.year + 1, month, day)
        candidate = dt.date(today.year, today.month, day)  # "the 24th": this month, or next (or last)
        if (candidate <= today) if past else (candidate >= today):
            return candidate
        if past:
            year, month = (today.year - 1, 12) if today.month == 1 else (today.year, today.month - 1)
        else:
            year, month = (today.year + 1, 1) if today.month == 12 else (today.year, today.month + 1)
        return dt.date(year, month, day)
    except ValueError:  # "the 31st" of a 30-day month
        return None


def parse_time(text: str) -> tuple[dt.time | None, str | None]:
    """(clock time, part of day) from "10 am", "10:30", "ten thirty", "3 pm", "noon", "half past eight",
    "half seven in the evening", "quarter to six", "around 3", "in the morning", "Sunday lunch".

    Every time expression in the sentence is read and the last one counts: "we're down for seven,
    could we come later, like half past eight?" wants 8:30. A bare number is a time only after a word
    that makes it one ("at 7", "around 3", "about one o'clock"): "a table for four" is not 4 o'clock.
    """
    text = re.sub(r"(?<=\d)\.(?=\d{2}\b)", ":", text.lower()).replace(".", "")  # "11.30" is 11:30
    part = next((p for p, words in PARTS_OF_DAY.items() if re.search(rf"\b(?:{'|'.join(words)})\b", text)), None)
    found: list[tuple[int, int, int, str | None]] = []  # (position, hour, minute, meridiem)
    for match in _TIME.finditer(text):
        hour = _hour(match.group("hour"))
        if hour is None:
            continue
        minute_text = (match.group("minute") or "").replace("-", " ")
        if match.group("half"):
            minute = 30
        elif match.group("past"):
            minute = 15 if "quarter" in match.group("past") else 30
        elif match.group("to"):
            minute, hour = 45, hour - 1 if hour > 1 else 12
        elif minute_text in ("", "o'clock", "oclock"):
            minute = 0
        else:
            minute = int(minute_text) if minute_text.isdigit() else parse_number(minute_text)
        meridiem = (match.group("meridiem") or "").replace(" ", "")
        cue = match.group("cue") or match.group("half") or match.group("past") or match.group("to")
        if minute is None or not (cue or meridiem or match.group("minute")):
            continue
        found.append((match.start(), hour, minute, meridiem or None))
    if re.search(r"\bnoon\b|\bmidday\b", text):
        found.append((text.rindex("noon" if "noon" in text else "midday"), 12, 0, "pm"))
    if not found:
        return None, part
    _, hour, minute, meridiem = max(found)
    if not (0 <= hour <= 23 and 0 <= minute <= 59):
        return None, part
    if meridiem in ("pm", "intheafternoon", "intheevening") or (not meridiem and part in ("afternoon", "evening")):
        hour = hour + 12 if hour < 12 else hour
    elif meridiem in ("am", "inthemorning") and hour == 12:
        hour = 0
    elif not meridiem and 1 <= hour <= 6:
        hour += 12  # "at 3" in a clinic means 3 pm (a calendar that opens at night says so in its hours)
    return dt.time(hour, minute), part


def part_of(time: dt.time) -> str:
    """The part of the day a clock time falls in."""
    return "morning" if time.hour < 12 else "afternoon" if time.hour < 17 else "evening"


def _hour(text: str) -> int | None:
    return int(text) if text.isdigit() else parse_number(text)


def parse_when(text: str, now: dt.datetime) -> When:
    time, part = parse_time(text)
    return When(parse_day(text, now), time, part)


def say_day(day: dt.date, now: dt.datetime) -> str:
    """ "today", "tomorrow", or "Tuesday the 24th" (with the month when it is not this month)."""
    if day == now.date():
        return "today"
    if day == now.date() + dt.timedelta(days=1):
        return f"tomorrow, {WEEKDAYS[day.weekday()].capitalize()} the {_ordinal(day.day)}"
    month = f" of {MONTHS[day.month - 1].capitalize()}" if day.month != now.month else ""
    return f"{WEEKDAYS[day.weekday()].capitalize()} the {_ordinal(day.day)}{month}"


def on_day(day: dt.date, now: dt.datetime) -> str:
    """ "today", "tomorrow, Sunday the 22nd", or "on Tuesday the 24th"."""
    said = say_day(day, now)
    return said if said.startswith(("today", "tomorrow")) else f"on {said}"


def say_time(time: dt.time) -> str:
    hour = time.hour % 12 or 12
    minutes = f":{time.minute:02d}" if time.minute else ""
    return f"{hour}{minutes} {'am' if time.hour < 12 else 'pm'}"


def _ordinal(n: int) -> str:
    suffix = "th" if 11 <= n % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"
