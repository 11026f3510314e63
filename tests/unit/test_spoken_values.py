"""How callers say times, party sizes and names in passing: the parsers the blind restaurant and town
hall configs found wanting (issue 12)."""

import datetime as dt

import pytest

from agent.brain.dates import parse_time
from agent.brain.entities import _name, _number


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a table for four this Saturday at half seven in the evening", dt.time(19, 30)),
        ("about one o'clock", dt.time(13, 0)),
        ("half past eight in the evening", dt.time(20, 30)),
        ("quarter to eight pm", dt.time(19, 45)),
        ("around 3", dt.time(15, 0)),
        ("at 11.30", dt.time(11, 30)),
        ("we're down for seven, could we come later, like half past eight", dt.time(8, 30)),
        ("table for 4", None),
        ("on the 14th", None),
    ],
)
def test_times_as_callers_say_them(text, expected):
    assert parse_time(text)[0] == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Table for three on Saturday at 1 pm please", 3),
        ("Oh wait, sorry, my sister's coming too, so we're four.", 4),
        ("a hundred and twenty dollars", 120),
        ("on the 28th for 3", 3),
    ],
)
def test_a_quantity_is_not_a_time_a_date_or_an_oh(text, expected):
    assert _number(text) == expected


def test_a_name_said_in_passing_only_when_it_is_one():
    assert _name("Hello, I was hoping to get a table with you.", answering=False) is None
    assert _name("For two, about one o'clock? It's under Moreau.", answering=False) == "Moreau"
    assert _name("Could I book Bella in for her booster?", answering=False) == "Bella"
    assert _name("Oh no wait, Wednesday morning, sorry.") is None


def test_routing_a_phrase_that_is_the_object_of_another_and_shared_intents_first():
    from agent.brain.dialogue import Brain
    from agent.config import CONFIGS_DIR, load_config

    garage = Brain(load_config(CONFIGS_DIR / "garage"))
    assert garage.route("I'd like to call off my service booking.") == "cancel_booking"
    assert garage.route("Can I book a service for my car?") == "book_service"
    clinic = Brain(load_config(CONFIGS_DIR / "clinic"))
    assert clinic.route("sorry, what was that") == "repeat"  # not "which of two tasks?"
