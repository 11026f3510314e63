"""Facts in a reply must come from the evidence: checked in code."""

import pytest

from agent.brain.grounding import extract_facts, unsupported_facts

HOURS = "We are open Monday to Friday from 8 am to 6 pm, and on Saturday from 9 am to 1 pm."
PRICES = "A check-up costs 60 dollars. A cleaning costs 90 dollars."


@pytest.mark.parametrize(
    "reply",
    [
        "We're open Monday to Friday, 8 am to 6 pm.",
        "On Saturday we open at nine in the morning until one.",
        "A cleaning is ninety dollars.",
        "A cleaning costs $90.",
        "Sure, one moment please.",
        "I can help you with that.",
    ],
)
def test_supported_replies_pass(reply):
    assert unsupported_facts(reply, [HOURS, PRICES]) == []


@pytest.mark.parametrize(
    ("reply", "invented"),
    [
        ("We're open Monday to Friday 8:00am to 10:00pm.", ["10"]),  # SmolLM2's actual answer
        ("On Sunday we open at 10.", ["10", "sunday"]),
        ("A cleaning costs 75 dollars.", ["75"]),
        ("A filling is one hundred and twenty dollars.", ["120"]),
        ("We can see you on March 3.", ["3", "march"]),
    ],
)
def test_invented_facts_are_caught(reply, invented):
    assert unsupported_facts(reply, [HOURS, PRICES]) == invented


def test_the_callers_own_words_count_as_support():
    assert unsupported_facts("Your order 4112 is on its way.", ["order status: shipped"], "my order is 4112") == []


def test_may_the_verb_is_not_a_month():
    assert extract_facts("You may bring your card.").names == frozenset()
    assert "may" in extract_facts("Your appointment is on 3 May.").names
