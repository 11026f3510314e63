import datetime as dt

import pytest

from agent.brain.dates import parse_day, parse_time, say_day, say_time

NOW = dt.datetime(2026, 11, 21, 10, 0)  # a Saturday


@pytest.mark.parametrize(
    ("said", "day"),
    [
        ("today please", dt.date(2026, 11, 21)),
        ("tomorrow morning", dt.date(2026, 11, 22)),
        ("on Tuesday", dt.date(2026, 11, 24)),
        ("next Tuesday", dt.date(2026, 11, 24)),
        ("Saturday", dt.date(2026, 11, 28)),  # today is Saturday: the next one
        ("the 24th", dt.date(2026, 11, 24)),
        ("the twenty fourth", dt.date(2026, 11, 24)),
        ("on the 3rd", dt.date(2026, 12, 3)),
        ("December 3", dt.date(2026, 12, 3)),
        ("3 March", dt.date(2027, 3, 3)),
        ("the first of march", dt.date(2027, 3, 1)),
        ("whenever", None),
        ("may I book", None),
    ],
)
def test_parse_day(said, day):
    assert parse_day(said, NOW) == day


@pytest.mark.parametrize(
    ("said", "time"),
    [
        ("at 10 am", dt.time(10, 0)),
        ("10:30", dt.time(10, 30)),
        ("ten thirty in the morning", dt.time(10, 30)),
        ("at 3", dt.time(15, 0)),
        ("3 pm", dt.time(15, 0)),
        ("at noon", dt.time(12, 0)),
        ("at eleven", dt.time(11, 0)),
        ("two o'clock", dt.time(14, 0)),
        ("I have two kids", None),
        ("tuesday", None),
    ],
)
def test_parse_time(said, time):
    assert parse_time(said)[0] == time


def test_part_of_day():
    assert parse_time("tomorrow afternoon") == (None, "afternoon")


def test_saying_it_back():
    assert say_day(dt.date(2026, 11, 24), NOW) == "Tuesday the 24th"
    assert say_day(dt.date(2026, 12, 3), NOW) == "Thursday the 3rd of December"
    assert say_day(dt.date(2026, 11, 22), NOW) == "tomorrow, Sunday the 22nd"
    assert say_time(dt.time(10, 0)) == "10 am" and say_time(dt.time(14, 30)) == "2:30 pm"
