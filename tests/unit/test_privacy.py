"""Redaction of personal data: the corpus targets, the spoken forms, the CLI, the logging filter."""

import logging
import subprocess
import sys

import pytest

from agent.config import PROJECT_ROOT
from agent.privacy.evaluate import HELDOUT, score
from agent.privacy.log_filter import CallerText, RedactingFilter
from agent.privacy.redact import Redactor, redact


def test_corpus_meets_the_recall_and_precision_targets():
    result = score()
    assert result["utterances"] >= 200
    assert result["recall"] >= 0.99, result["misses"]
    assert result["precision"] >= 0.95, result["false_alarms"]
    heldout = score(corpus=HELDOUT)
    assert heldout["recall"] >= 0.99 and heldout["precision"] >= 0.95, heldout


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("my card is four one one one one one one one one one one one one one one one", "my card is [CARD_NUMBER]"),
        ("4111, 1111, 1111, 1111", "[CARD_NUMBER]"),
        ("the CVV is 123.", "the CVV is [CVV]."),
        ("social is 123-45-6789", "social is [SSN]"),
        ("IBAN DE89 3704 0044 0532 0130 00 please", "IBAN [IBAN] please"),
        ("call me at double five five, one two three, four five six seven", "call me at [PHONE_NUMBER]"),
        ("it's john dot smith at gmail dot com", "it's [EMAIL]"),
        ("I was born on the third of March nineteen eighty five", "I was born on [DATE_OF_BIRTH]"),
        ("Hi, my name is Maria Gonzalez and I", "Hi, my name is [NAME] and I"),
    ],
)
def test_spoken_and_written_forms_are_redacted(text, expected):
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Can I book Tuesday at ten thirty?",
        "It costs $45.50, right?",
        "order four one one two please",
        "I paid 1,200 dollars",
        "This is urgent, I am in severe pain",
        "I'm calling about my order",
    ],
)
def test_business_talk_is_left_alone(text):
    assert redact(text) == text


def test_configured_order_numbers_are_kept_but_cards_never():
    shop = Redactor.from_patterns([r"20\d{8}"])
    assert shop.redact("order 2024118842 please") == "order 2024118842 please"
    assert redact("order 2024118842 please") == "order [PHONE_NUMBER] please"
    assert shop.redact("card 4111111111111111") == "card [CARD_NUMBER]"


def test_redact_command_filters_stdin_line_by_line():
    result = subprocess.run(
        [sys.executable, "-m", "agent", "redact"],
        input="my number is 555 123 4567\nwhen are you open?\n",
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "my number is [PHONE_NUMBER]\nwhen are you open?\n"


def test_log_filter_keeps_caller_text_and_pii_out_of_log_lines():
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(self.format(record))

    handler = Keep()
    handler.addFilter(RedactingFilter())
    log = logging.getLogger("test.privacy")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("heard %s", CallerText("I have severe pain in my tooth"))
        log.warning("webhook sent phone=%s", "+1 555 123 4567")
        try:
            raise ValueError("bad card 4111 1111 1111 1111")
        except ValueError:
            log.exception("tool failed")
    finally:
        log.removeHandler(handler)
    text = "\n".join(records)
    assert "severe pain" not in text and "[caller text, 30 chars]" in text
    assert "555 123 4567" not in text and "[PHONE_NUMBER]" in text
    assert "4111" not in text and "ValueError: bad card [CARD_NUMBER]" in text


def test_call_ids_and_hex_ids_pass_unchanged():
    """Issue 11: the log filter turned `call 78e51061-7311-...` into `call 78e[PHONE_NUMBER]a3-...`."""
    import random
    import uuid

    rng = random.Random(11)
    assert redact("call 78e51061-7311-48a3-82ce-6f447ed4d57b: connected") == (
        "call 78e51061-7311-48a3-82ce-6f447ed4d57b: connected"
    )
    for _ in range(3000):
        call = uuid.UUID(int=rng.getrandbits(128), version=4)
        for line in (f"call {call}: connected", f"calls show {str(call)[:8]}", f"id {call.hex}", str(call).upper()):
            assert redact(line) == line
    # an id next to personal data: the id stays, the data goes
    assert redact("call 78e51061-7311-48a3-82ce-6f447ed4d57b: caller 555 123 4567") == (
        "call 78e51061-7311-48a3-82ce-6f447ed4d57b: caller [PHONE_NUMBER]"
    )
    assert redact("card 4111111111111111") == "card [CARD_NUMBER]"  # digits alone are no hex id


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("my pin is 4 8 2 7 and my password is tulip77", "my pin is [PIN] and my password is [PASSWORD]"),
        ("PIN: 4827", "PIN: [PIN]"),
        ("my pin number is four eight two seven", "my pin number is [PIN]"),
        ("the password is hunter two please", "the password is [PASSWORD] please"),
        ("password: Tulip 7 7, thanks", "password: [PASSWORD], thanks"),
        ("I forgot my password", "I forgot my password"),
        ("how do I reset my pin?", "how do I reset my pin?"),
    ],
)
def test_pins_and_passwords_are_redacted(text, expected):
    assert redact(text) == expected


def test_redact_command_redacts_pins_and_passwords():
    result = subprocess.run(
        [sys.executable, "-m", "agent", "redact"],
        input="my pin is 4 8 2 7 and my password is tulip77\n",
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "4 8 2 7" not in result.stdout and "tulip77" not in result.stdout
