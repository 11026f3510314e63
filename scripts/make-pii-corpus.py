"""Write tests/data/pii-corpus.jsonl: caller utterances with the personal data in them.

Each line: {"text": ..., "pii": [[raw value, TYPE], ...], "keep": [...]}; "pii" lists
the substrings that must not survive redaction, "keep" the ones that must
(prices, times, order numbers). Values are generated (valid Luhn cards, valid
IBAN checksums) and said in the forms ASR writes: digits, digit words,
"double", grouped. Fixed seed: the file is reproducible and reviewed in git.

    python scripts/make-pii-corpus.py
"""

from __future__ import annotations

import json
import random
from pathlib import Path

rng = random.Random(20261121)
WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
OUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "pii-corpus.jsonl"


def luhn_complete(prefix: str, length: int) -> str:
    body = prefix + "".join(str(rng.randrange(10)) for _ in range(length - len(prefix) - 1))
    for check in "0123456789":
        digits = body + check
        total = sum(
            (int(c) * 2 - 9 if int(c) * 2 > 9 else int(c) * 2) if i % 2 else int(c)
            for i, c in enumerate(reversed(digits))
        )
        if total % 10 == 0:
            return digits
    raise AssertionError


def spoken(digits: str, style: str) -> str:
    if style == "digits":
        return digits
    if style == "grouped":
        return " ".join(digits[i : i + 4] for i in range(0, len(digits), 4))
    if style == "dashed":
        return "-".join(digits)
    words = []
    i = 0
    while i < len(digits):
        if style == "double" and i + 1 < len(digits) and digits[i] == digits[i + 1]:
            words.append("double " + WORDS[int(digits[i])])
            i += 2
            continue
        words.append("oh" if digits[i] == "0" and style == "oh" else WORDS[int(digits[i])])
        i += 1
    return " ".join(words)


def iban(country: str, bban: str) -> str:
    moved = bban + country + "00"
    check = 98 - int("".join(str(int(c, 36)) for c in moved)) % 97
    compact = f"{country}{check:02d}{bban}"
    return " ".join(compact[i : i + 4] for i in range(0, len(compact), 4))


rows: list[dict] = []


def add(text: str, pii: list[tuple[str, str]], keep: list[str] | None = None) -> None:
    for value, _ in pii:
        assert value in text, (value, text)
    rows.append({"text": text, "pii": [list(p) for p in pii], "keep": keep or []})


STYLES = ["digits", "grouped", "words", "double", "oh", "dashed"]
card_templates = [
    "My card number is {v}.",
    "It's a Visa, {v}",
    "the card is {v} expiring next year",
    "Sure, {v}",
    "I want to pay with my Mastercard {v} please",
    "ok the long number on the front is {v}",
    "{v}, that's my debit card",
    "can you charge {v} for the appointment",
]
for i in range(36):
    number = luhn_complete(rng.choice(["4", "51", "37", "6011"]), rng.choice([16, 16, 16, 15]))
    value = spoken(number, STYLES[i % len(STYLES)])
    add(rng.choice(card_templates).format(v=value), [(value, "CARD_NUMBER")])

cvv_templates = [
    "and the CVV is {v}",
    "security code {v}",
    "the three digits on the back are {v}",
    "CVC {v}",
    "the code on the back is {v}.",
]
for i in range(20):
    number = "".join(str(rng.randrange(10)) for _ in range(rng.choice([3, 3, 4])))
    value = spoken(number, ["digits", "words", "oh"][i % 3])
    add(rng.choice(cvv_templates).format(v=value), [(value, "CVV")])

ssn_templates = ["my social security number is {v}", "SSN {v}", "it's {v}, my social", "social is {v}"]
for i in range(20):
    number = f"{rng.randrange(100, 899)}{rng.randrange(10, 99)}{rng.randrange(1000, 9999)}"
    value = [f"{number[:3]}-{number[3:5]}-{number[5:]}", spoken(number, "words"), number][i % 3]
    add(rng.choice(ssn_templates).format(v=value), [(value, "SSN")])
for _ in range(5):
    number = f"{rng.randrange(100, 899)}-{rng.randrange(10, 99)}-{rng.randrange(1000, 9999)}"
    add(f"The number {number} is on the letter", [(number, "SSN")])

iban_templates = ["my IBAN is {v}", "please refund to {v}", "IBAN {v} thanks", "account {v}"]
for _ in range(16):
    country, length = rng.choice([("DE", 18), ("GB", 18), ("FR", 23), ("NL", 14), ("ES", 20)])
    if country in ("GB", "NL"):
        bban = "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(4))
        bban += "".join(str(rng.randrange(10)) for _ in range(length - 4))
    else:
        bban = "".join(str(rng.randrange(10)) for _ in range(length))
    value = iban(country, bban)
    add(rng.choice(iban_templates).format(v=value), [(value, "IBAN")])

phone_templates = [
    "You can reach me on {v}.",
    "my number is {v}",
    "call me back at {v} please",
    "my mobile is {v}",
    "the best number is {v}, after five",
    "{v} is my cell",
    "text me on {v}",
]
for i in range(34):
    number = "555" + "".join(str(rng.randrange(10)) for _ in range(7))
    forms = [
        f"{number[:3]} {number[3:6]} {number[6:]}",
        f"({number[:3]}) {number[3:6]}-{number[6:]}",
        f"+1 {number[:3]} {number[3:6]} {number[6:]}",
        spoken(number, "words"),
        spoken(number, "double"),
        f"{spoken(number[:3], 'words')}, {spoken(number[3:6], 'words')}, {spoken(number[6:], 'oh')}",
        number,
    ]
    value = forms[i % len(forms)]
    add(rng.choice(phone_templates).format(v=value), [(value, "PHONE_NUMBER")])
for value in ["+44 20 7946 0958", "+49 30 901820", "020 7946 0321", "0161 496 0734"]:
    add(f"my number is {value}", [(value, "PHONE_NUMBER")])

names = ["John Smith", "Maria Gonzalez", "Wei Chen", "Aisha Khan", "Peter Miller", "Olga Ivanova", "Tom", "Sarah"]
email_forms = [
    "{f}.{l}@example.com",
    "{f}{l}@mail.org",
    "{f} dot {l} at gmail dot com",
    "{f} at example dot co dot uk",
    "{f}_{l}@company.net",
    "{f} underscore {l} at outlook dot com",
]
for i in range(24):
    first, _, last = rng.choice(names[:6]).lower().partition(" ")
    value = email_forms[i % len(email_forms)].format(f=first, l=last)
    template = rng.choice(["my email is {v}", "send it to {v} please", "it's {v}", "{v}"])
    add(template.format(v=value), [(value, "EMAIL")])

dob_forms = [
    ("I was born on {v}", "the third of March nineteen eighty five"),
    ("my date of birth is {v}", "12/03/1985"),
    ("date of birth {v}", "March 3rd, 1985"),
    ("born {v}", "the twenty first of June nineteen ninety"),
    ("my birthday is {v}", "5 July 1972"),
    ("DOB is {v}", "1990-11-02"),
    ("I was born {v}", "January 9 1968"),
    ("my date of birth is {v}", "the first of May two thousand one"),
    ("it's {v}, my date of birth", "04/07/1959"),
    ("the patient was born on {v}", "August twelfth nineteen sixty"),
]
for template, value in dob_forms * 2:
    add(template.format(v=value), [(value, "DATE_OF_BIRTH")])

name_forms = [
    "Hi, my name is {v} and I'd like to book a check-up",
    "This is {v} calling about my appointment",
    "my name's {v}",
    "I'm {v}, I called yesterday",
    "The name is {v}.",
    "it's {v} here",
    "my name is {v}",
]
for i in range(22):
    value = names[i % len(names)]
    template = name_forms[i % len(name_forms)]
    if template == "my name is {v}":
        value = value.lower()  # Vosk writes lower case
    add(template.format(v=value), [(value, "NAME")])

# several kinds in one utterance
for _ in range(8):
    card = luhn_complete("4", 16)
    cvv = f"{rng.randrange(100, 999)}"
    add(f"card {card} expiry 08 28 and security code {cvv}", [(card, "CARD_NUMBER"), (cvv, "CVV")])
for _ in range(4):
    phone = "555" + "".join(str(rng.randrange(10)) for _ in range(7))
    add(f"my name is Anna Lee and my phone is {phone}", [("Anna Lee", "NAME"), (phone, "PHONE_NUMBER")])

# hand-written forms met while testing
add("4111, 1111, 1111, 1111", [("4111, 1111, 1111, 1111", "CARD_NUMBER")])
add("Hello, this is Dr. Patel from Leeds", [("Patel", "NAME")])
add("account number 12345678", [("12345678", "ACCOUNT_NUMBER")])
add("my name is Mr John Smith", [("John Smith", "NAME")])
add("reach me at 555-0123", [("555-0123", "PHONE_NUMBER")])
add("my number is 07700 900123", [("07700 900123", "PHONE_NUMBER")])
add("call me on five five five oh one two three", [("five five five oh one two three", "PHONE_NUMBER")])
# real ASR output (tiny.en) of "My card number is 4556 7375 8689 9855." in the end-to-end privacy test
add("My card number is 4,0556,7,375,8,689,855.", [("4,0556,7,375,8,689,855", "CARD_NUMBER")])
add("My email is going.parkeratexample.com.", [("going.parkeratexample.com", "EMAIL")])
add("My car number is 4556737586899855.", [("4556737586899855", "CARD_NUMBER")])

# negatives: business talk that must pass through unchanged
negatives = [
    "When are you open on Saturday?",
    "Can I book a check-up for Tuesday at ten thirty?",
    "How much is a filling? Is it 120 dollars?",
    "It costs $45.50, right?",
    "Is my order 4112 shipped yet?",
    "order four one one two please",
    "my order number is seven seven three one",
    "double seven three one",
    "I'd like to move my appointment to the 3rd of March",
    "Next Wednesday afternoon at 2:30 works",
    "I need 3 boxes of size 10",
    "Do you take insurance from Blue Cross?",
    "This is urgent, I am in severe pain",
    "I'm calling about my order",
    "This is about the refund",
    "I'm not sure, can I talk to a person?",
    "Yes, that's right",
    "No thanks, that's all",
    "What time do you close on the 24th?",
    "Can I come in at 9 am tomorrow?",
    "the return window is 30 days isn't it?",
    "I paid 1,200 dollars last year",
    "My appointment on Thursday the 26th at 9 am",
    "Room 101 on the second floor",
    "Is there parking at the clinic?",
    "I'm fine, thank you",
    "press one for yes",
    "I'd like two appointments, one at 10 and one at 11",
    "we are a team of 25 people",
    "the year 2024 was busy",
    "Can you look up order 5520?",
    "order 2024118842 please",
    "my order is two oh two four one one eight eight four two",
    "Call me later, I'm driving",
    "Is the visa for the conference sorted?",
    "I want to cancel the cleaning on March 5th",
    "What's your address?",
    "Do you sell gift cards?",
    "Can I pay by card when I come in?",
    "The code is on the parcel, it says A-12",
    "Between 8 and 5, Monday to Friday",
    "I'll be there at 10.30",
    "I bought it on the 1st of November",
    "it's 3 items",
    "I'm looking for the shipping policy",
    "My kid is 7 years old",
    "This is ridiculous, let me speak to a manager",
    "Meet me at reception",
    "is it 15 or 16 dollars",
    "I called you at 9 and again at 11",
    "one two three, can you hear me?",
    "I need a cleaning, a check-up and an x-ray",
    "Are you open on Christmas Eve?",
    "My dentist is Dr. Patel",
    "Could you repeat that please?",
    "How long does shipping take to Canada?",
    "I'd like a refund for order 4118",
    "It's for my daughter",
    "I'm new here",
    "The total was 89.99",
    "Can you check orders 4112, 4113 and 4114?",
    "order 4112, 4113, 4114",
    "Can you email me the invoice?",
    "I sent an email to support yesterday",
]
for text in negatives:
    keep = [
        w
        for w in ("4112", "4113", "4114", "seven seven three one", "2024118842", "5520", "4118", "$45.50")
        if w in text
    ]
    add(text, [], keep)

OUT.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
print(f"{len(rows)} utterances ({sum(1 for r in rows if r['pii'])} with PII) -> {OUT}")
