"""Find personal data in caller text and replace it with typed placeholders.

Every string bound for the database, a log line or an exception message goes
through `redact()`. Raw values may still reach a tool that needs them (that
stays on the box); they never reach storage.

Numbers are found the way callers say them: "4111 1111 1111 1111",
"four one one one ...", "double seven", "5-5-5-0-1-2-3". A run of digits is
classified by checksum (Luhn for cards) and by the words around it (CVV,
social security, phone). Business identifiers the admin configures (order
numbers) are kept, so are prices, times and quantities, which are short.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass

from agent.brain.numbers import spoken_digits

CARD, CVV, SSN, IBAN, ACCOUNT, PHONE, EMAIL, DOB, NAME, DTMF, PIN, PASSWORD = (
    "CARD_NUMBER", "CVV", "SSN", "IBAN", "ACCOUNT_NUMBER", "PHONE_NUMBER", "EMAIL", "DATE_OF_BIRTH", "NAME", "DTMF",
    "PIN", "PASSWORD",
    # DTMF: keypad entries are never stored, the record says "[DTMF]" for them
)  # fmt: skip
# payment data and secrets: a call recording is silenced while any of these is said
PAYMENT_TYPES = frozenset({CARD, CVV, IBAN, SSN, ACCOUNT, PIN, PASSWORD})

_DIGIT_WORDS = {"zero", "oh", "o", "nought", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"}
_RUN_WORDS = _DIGIT_WORDS | {"double", "triple", "dash"}
_TOKEN = re.compile(r"\d+|[A-Za-z]+(?:'[a-z]+)?")
# what may sit between two tokens of one spoken or written number
_JOIN = re.compile(r"[\s\-.()/+]*")
_JOIN_COMMA = re.compile(r"[\s\-.()/+,]*")

_CONTEXT = {
    CARD: re.compile(r"\b(card|visa|master ?card|amex|american express|credit|debit|discover)\b", re.I),
    CVV: re.compile(
        r"\b(cvv|cvc|csc|cv2|security (code|number)|verification (code|number|value)|(three|four|3|4)[- ]digits?|"
        r"back of (the|my) card|code on the back)\b",
        re.I,
    ),
    SSN: re.compile(r"\b(social security|ssn|social insurance|social)\b", re.I),
    ACCOUNT: re.compile(r"\b(account|sort code|routing|member(ship)? (number|id)|policy number)\b", re.I),
    PHONE: re.compile(
        r"\b(phone|mobile|cell|telephone|landline|reach me|call me|call back|callback|number is|my number|"
        r"contact|text me|extension)\b",
        re.I,
    ),
}
_ANNOUNCED = re.compile("|".join(_CONTEXT[kind].pattern for kind in (CARD, SSN, ACCOUNT, PHONE)) + r"|\bnumber\b", re.I)
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]){11,30}\b")
_TLD = r"(?:com|org|net|edu|gov|io|co|uk|de|fr|us|info|biz|me|eu|ca|au)"
_EMAIL = re.compile(
    r"\b[\w+-]+(?:(?:\.|\s+dot\s+|_|\s+underscore\s+|-|\s+dash\s+)[\w+]+)*"
    r"(?:\s*@\s*|\s+at\s+)"
    r"[\w-]+(?:(?:\.|\s+dot\s+)[\w-]+)*(?:\.|\s+dot\s+)" + _TLD + r"\b",
    re.I,
)
# "my email is going.parkeratexample.com": ASR mangles addresses; after the word e-mail, the address
# is whatever runs to the end of the clause, if it looks like one (a dot, "dot", "at" or "@")
_EMAIL_ANNOUNCED = re.compile(
    r"\b(?:e-?mail|mail address)(?:\s+address)?(?:\s+is|\s+it's|'s)?\s*:?\s+(?P<address>[^,;!?]{3,80}?)(?=[,;!?]|\.\s|\.$|$)",
    re.I,
)
_MONTHS = (
    "january|february|march|april|may|june|july|august|september|october|november|december|"
    "jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec"
)
_NUMBER_WORDS = (
    r"(?:\d{1,4}(?:st|nd|rd|th)?|first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|eleventh|"
    r"twelfth|thirteenth|fourteenth|fifteenth|sixteenth|seventeenth|eighteenth|nineteenth|twentieth|thirtieth|"
    r"one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|sixteen|"
    r"seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety|hundred|thousand|oh)\b"
)
# the date itself, said or written: "12/03/1985", "March 3rd, 1985", "the third of March nineteen eighty five"
_DATE_BODY = (
    r"(?:\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4}|\d{4}-\d{2}-\d{2}|"
    r"(?:(?:the\s+)?" + _NUMBER_WORDS + r"(?:[\s-]+" + _NUMBER_WORDS + r")?\s+(?:of\s+)?)?"
    r"(?:" + _MONTHS + r")\.?(?:[\s,-]+(?:the\s+)?" + _NUMBER_WORDS + r")*)"
)
_DOB_CONTEXT = re.compile(
    r"\b(?:born(?:\s+on|\s+in)?|birth ?day(?:\s+is|'s)?|date of birth(?:\s+is)?|d\.?o\.?b\.?(?:\s+is)?)[\s:,]*"
    r"(?:is\s+)?(?:on\s+)?(?P<date>" + _DATE_BODY + r")",
    re.I,
)
_WRITTEN_DATE = re.compile(r"\b(?P<d>\d{1,2})[/.-](?P<m>\d{1,2})[/.-](?P<y>(?:19|20)\d{2})\b")
_NAME_TRIGGER = re.compile(
    r"\b(?:my name is|my name's|name is|the name is|name's|this is|i am|i'm|it's|call me|"
    r"my (?:first|last|full|sur) ?name is|spelled)\s+",
    re.I,
)
_STRONG_NAME_TRIGGERS = ("name", "spelled")
# words that follow "this is" / "I'm" without being a name
_NOT_NAMES = set(
    """a an the and or but so to for of in on at by with from about calling ringing phoning here there just
    really very not no yes yeah sorry looking trying wondering hoping interested afraid sure fine good great
    ok okay well still also going gonna wanting urgent important about after before again back call calling
    it that this what who how when where why which my your his her their our me you him them us is was be
    been being have has had do does did can could would should will shall may might must i we they he she
    regarding concerning actually currently probably maybe new patient customer client calling worried
    in pain sick ill unwell having feeling need needing want ready done finished happy unhappy upset angry
    frustrated confused lost late early booked looking checking ringing phoning speaking following up
    hello hi hey thanks thank please order appointment booking""".split()
)


# identifiers the agent itself writes into log lines (call ids, hex ids): never personal data
_UUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I)
_HEX_ID = re.compile(r"\b(?=[0-9a-f]*[a-f])(?=[0-9a-f]*\d)[0-9a-f]{6,}\b")
# "my pin is 4 8 2 7", "PIN: 4827", "passcode 9 9 1 2"
_PIN_TRIGGER = re.compile(r"\b(?:pin|pin code|pin number|passcode|pass code|security pin|access code)\b", re.I)
# "my password is tulip77", "password: Tulip 7 7", "the password's hunter two"
_PASSWORD = re.compile(
    r"\b(?:password|passphrase|pass word|passwd)(?:\s+is|'s|\s+was|\s+would be)?\s*[:=]?\s*(?:it's\s+|its\s+)?"
    r"(?P<value>[^\s,;!?]+(?:\s+(?:\d+|[a-z]|zero|oh|one|two|three|four|five|six|seven|eight|nine|ten|"
    r"eleven|twelve|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety|hundred|double|triple|"
    r"capital|upper|lower|case|dot|dash|underscore|at|hash|star|exclamation|mark)\b)*)",
    re.I,
)
_TITLES = {"dr", "doctor", "mr", "mrs", "ms", "miss", "mister", "professor", "prof"}


@dataclass(frozen=True)
class Finding:
    start: int
    end: int
    kind: str


@dataclass(frozen=True)
class Redactor:
    """Redaction rules for one deployment: which digit strings are business identifiers to keep."""

    keep_numbers: tuple[re.Pattern, ...] = ()

    @classmethod
    def from_patterns(cls, patterns: Iterable[str]) -> Redactor:
        return cls(tuple(re.compile(p) for p in patterns))

    def findings(self, text: str) -> list[Finding]:
        found: list[Finding] = []
        protected = _protected_ids(text)
        for finder in (_passwords, _pins, _emails, _ibans, self._numbers, _dates_of_birth, _names):
            for item in finder(text, found):
                if any(item.start < end and start < item.end for start, end in protected):
                    continue  # a call id or hex id the agent wrote: "8c1f...b7" is not a phone number
                if not any(item.start < f.end and f.start < item.end for f in found):
                    found.append(item)
        return sorted(found, key=lambda f: f.start)

    def redact(self, text: str) -> str:
        if not text:
            return text
        out, last = [], 0
        for f in self.findings(text):
            out.append(text[last : f.start])
            out.append(f"[{f.kind}]")
            last = f.end
        out.append(text[last:])
        return "".join(out)

    def kinds(self, text: str) -> set[str]:
        return {f.kind for f in self.findings(text)}

    # ---- numbers --------------------------------------------------------

    def _numbers(self, text: str, taken: list[Finding]) -> Iterable[Finding]:
        for start, end, digits in _digit_runs(text):
            if any(start < f.end and f.start < end for f in taken):
                continue
            kind = self._classify(text, start, end, digits)
            if kind:
                yield Finding(start, end, kind)

    def _classify(self, text: str, start: int, end: int, digits: str) -> str | None:
        n = len(digits)
        before = text[max(0, start - 60) : start]
        near = before + " " + text[end : end + 30]
        written = text[start:end]
        if 13 <= n <= 19 and (_luhn(digits) or _CONTEXT[CARD].search(near)):
            return CARD
        if any(p.fullmatch(digits) for p in self.keep_numbers):
            return None
        if 3 <= n <= 4 and (
            _CONTEXT[CVV].search(before) or (re.search(r"\bcode\b", before, re.I) and _CONTEXT[CARD].search(text))
        ):
            return CVV  # "the CVV is 123", or "code 737" in a sentence about a card
        if n == 9 and (re.fullmatch(r"\d{3}-\d{2}-\d{4}", written) or _CONTEXT[SSN].search(near)):
            return SSN
        if 12 <= n <= 19 and _CONTEXT[CARD].search(before):
            return CARD  # a card number misheard by a digit or two is still a card number
        if 6 <= n <= 18 and _CONTEXT[ACCOUNT].search(before):
            return ACCOUNT
        if 10 <= n <= 15 or (7 <= n <= 15 and (_CONTEXT[PHONE].search(near) or written.startswith("+"))):
            return PHONE
        if n >= 16:
            return PHONE  # an unknown long identifier: more likely personal than not
        return None


DEFAULT = Redactor()


def redact(text: str) -> str:
    """Redact with the default rules (no business identifiers configured)."""
    return DEFAULT.redact(text)


# ---- finders --------------------------------------------------------------


def _digit_runs(text: str) -> Iterable[tuple[int, int, str]]:
    """Maximal runs of digits and digit words, with the digit string they spell."""
    tokens = [(m.start(), m.end(), m.group()) for m in _TOKEN.finditer(text)]
    i = 0
    while i < len(tokens):
        if not _is_number_token(tokens[i][2]):
            i += 1
            continue
        j = i + 1
        announced = _ANNOUNCED.search(text[max(0, tokens[i][0] - 40) : tokens[i][0]]) is not None
        grouped = False  # joined "4111, 1111" groups with nothing announced: a card, or a list of numbers
        while j < len(tokens) and _is_number_token(tokens[j][2]):
            gap = text[tokens[j - 1][1] : tokens[j][0]]
            if not _JOIN.fullmatch(gap):
                # "four, one, one" is one number; "1,200" is an amount, unless a card or phone number
                # was just announced (ASR writes "4,0556,7,375" for a card read out)
                previous, current = tokens[j - 1][2], tokens[j][2]
                digits_both = previous.isdigit() and current.isdigit()
                if not _JOIN_COMMA.fullmatch(gap):
                    break
                if _single(previous) and _single(current) or digits_both and announced:
                    pass
                elif _group(previous) and _group(current):
                    grouped = True
                else:
                    break
            j += 1
        run = tokens[i:j]
        while run and run[-1][2].lower() in {"double", "triple", "dash"}:
            run = run[:-1]
        if run:
            start = run[0][0]
            if start > 0 and text[start - 1] == "+":
                start -= 1
            words = " ".join(t[2] for t in run)
            digits = spoken_digits(words) if len(run) > 1 or run[0][2].isdigit() else None
            if digits and grouped and not (13 <= len(digits) <= 19 and _luhn(digits)):
                for token_start, token_end, token in run:  # "orders 4112, 4113, 4114": each on its own
                    if token.isdigit():
                        yield token_start, token_end, token
            elif digits and not (len(run) == 1 and run[0][2].lower() in {"oh", "o"}):
                yield start, run[-1][1], digits
        i = max(j, i + 1)


def _is_number_token(token: str) -> bool:
    return token.isdigit() or token.lower() in _RUN_WORDS


def _single(token: str) -> bool:
    return len(token) == 1 and token.isdigit() or token.lower() in _DIGIT_WORDS


def _group(token: str) -> bool:
    return token.isdigit() and 3 <= len(token) <= 4


def _protected_ids(text: str) -> list[tuple[int, int]]:
    spans = [m.span() for m in _UUID.finditer(text)]
    for m in _HEX_ID.finditer(text):
        iban = len(m.group()) != 32 and _IBAN.fullmatch(m.group().upper()) and _iban_valid(m.group())
        if not iban and not any(m.start() < e and s < m.end() for s, e in spans):
            spans.append(m.span())
    return spans


def _pins(text: str, taken: list[Finding]) -> Iterable[Finding]:
    for m in _PIN_TRIGGER.finditer(text):
        for start, end, digits in _digit_runs(text[m.end() : m.end() + 60]):
            gap = text[m.end() : m.end() + start]
            if len(gap) <= 25 and re.fullmatch(r"[\s:=,-]*(?:(?:number|code)\s+)?(?:is|was|'s)?[\s:=,-]*(?:it's\s+)?", gap, re.I):
                if 3 <= len(digits) <= 12:
                    yield Finding(m.end() + start, m.end() + end, PIN)
            break


def _passwords(text: str, taken: list[Finding]) -> Iterable[Finding]:
    for m in _PASSWORD.finditer(text):
        value = m.group("value")
        if value.lower() in {"is", "was", "please", "and", "reset", "change", "forgotten", "forgot"}:
            continue
        end = m.end("value")
        # "tulip77 and my..." stops at the value; trailing "and" is never part of it
        trimmed = re.sub(r"(?:\s+(?:and|at))+$", "", text[m.start("value") : end], flags=re.I)
        yield Finding(m.start("value"), m.start("value") + len(trimmed), PASSWORD)


def _luhn(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _iban_valid(candidate: str) -> bool:
    compact = candidate.replace(" ", "").upper()
    if not 15 <= len(compact) <= 34:
        return False
    moved = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def _ibans(text: str, _taken: list[Finding]) -> Iterable[Finding]:
    for m in _IBAN.finditer(text.upper()):
        candidate = m.group()
        # the pattern is greedy over trailing groups: shrink until the checksum holds
        for end in range(len(candidate), 14, -1):
            if _iban_valid(candidate[:end].rstrip()):
                yield Finding(m.start(), m.start() + len(candidate[:end].rstrip()), IBAN)
                break


def _emails(text: str, _taken: list[Finding]) -> Iterable[Finding]:
    for m in _EMAIL.finditer(text):
        yield Finding(m.start(), m.end(), EMAIL)
    for m in _EMAIL_ANNOUNCED.finditer(text):
        address = m.group("address")
        if re.search(r"@|\.\w|\bdot\b|\bat\b|at\w+\.", address, re.I):
            yield Finding(m.start("address"), m.end("address"), EMAIL)


def _dates_of_birth(text: str, _taken: list[Finding]) -> Iterable[Finding]:
    for m in _DOB_CONTEXT.finditer(text):
        yield Finding(m.start("date"), m.end("date"), DOB)
    this_year = dt.date.today().year
    for m in _WRITTEN_DATE.finditer(text):
        # a full date more than ten years back is a birth date, not an appointment
        if int(m.group("y")) <= this_year - 10:
            yield Finding(m.start(), m.end(), DOB)


def _names(text: str, _taken: list[Finding]) -> Iterable[Finding]:
    for m in _NAME_TRIGGER.finditer(text):
        trigger = m.group().lower()
        strong = any(word in trigger for word in _STRONG_NAME_TRIGGERS)
        words = list(re.finditer(r"[A-Za-z][A-Za-z'-]*", text[m.end() :]))
        picked = []
        position = m.end()
        for w in words[:3]:
            gap = text[position : m.end() + w.start()]
            if picked and not re.fullmatch(r"\s+", gap):
                break
            if not picked and gap.strip():
                break
            word = w.group()
            if not picked and word.lower() in _TITLES:
                position = m.end() + w.end() + (1 if text[m.end() + w.end() : m.end() + w.end() + 1] == "." else 0)
                continue  # "this is Dr. Patel": the title stays, the name goes
            if word.lower() in _NOT_NAMES:
                break
            if not strong and not word[0].isupper():
                break  # "this is" / "I'm" need a capitalised word after them (ASR writes names so)
            picked.append((m.end() + w.start(), m.end() + w.end()))
            position = m.end() + w.end()
            if not strong and not _looks_like_more_name(text, position):
                break
        if picked:
            yield Finding(picked[0][0], picked[-1][1], NAME)


def _looks_like_more_name(text: str, position: int) -> bool:
    following = re.match(r"\s+([A-Za-z][A-Za-z'-]*)", text[position:])
    return bool(following and following.group(1)[0].isupper() and following.group(1).lower() not in _NOT_NAMES)
