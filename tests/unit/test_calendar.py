"""The appointment calendar on a real SQLite database file."""

import datetime as dt

import pytest

from agent.brain.tools.calendar import Calendar, SlotTaken
from agent.config import load_config
from agent.store.db import make_engine

NOW = dt.datetime(2026, 11, 21, 10, 0)  # Saturday 10:00; clinic open Sat 9-13
MON = dt.date(2026, 11, 23)


@pytest.fixture
def calendar(tmp_path):
    return Calendar(make_engine(f"sqlite:///{tmp_path / 'agent.db'}"), load_config().tools.calendar)


def test_slots_follow_opening_hours_notice_and_length(calendar):
    slots = calendar.free_slots(MON, "cleaning", NOW)  # 60 min on a 30 min grid, 08:00-18:00
    assert slots[0] == dt.datetime(2026, 11, 23, 8, 0) and slots[-1] == dt.datetime(2026, 11, 23, 17, 0)
    assert len(slots) == 19
    today = calendar.free_slots(NOW.date(), "check-up", NOW)  # 2 h notice: from 12:00, last 12:30
    assert today == [dt.datetime(2026, 11, 21, 12, 0), dt.datetime(2026, 11, 21, 12, 30)]
    assert calendar.free_slots(dt.date(2026, 11, 22), "check-up", NOW) == []  # closed on Sunday
    assert calendar.free_slots(NOW.date() + dt.timedelta(days=40), "check-up", NOW) == []  # too far ahead


def test_booking_blocks_overlapping_slots(calendar):
    booked = calendar.book("+15550100", "cleaning", dt.datetime(2026, 11, 23, 10, 0), NOW)
    slots = calendar.free_slots(MON, "check-up", NOW)
    assert dt.datetime(2026, 11, 23, 10, 0) not in slots and dt.datetime(2026, 11, 23, 10, 30) not in slots
    assert dt.datetime(2026, 11, 23, 11, 0) in slots and dt.datetime(2026, 11, 23, 9, 30) in slots
    with pytest.raises(SlotTaken):
        calendar.book("+15550199", "check-up", dt.datetime(2026, 11, 23, 10, 30), NOW)
    assert calendar.upcoming("+15550100", NOW) == booked


def test_first_free_honours_day_time_and_part_of_day(calendar):
    assert calendar.first_free("cleaning", NOW, MON, dt.time(14, 10)) == dt.datetime(2026, 11, 23, 14, 0)
    assert calendar.first_free("cleaning", NOW, MON, part_of_day="afternoon") == dt.datetime(2026, 11, 23, 12, 0)
    assert calendar.first_free("cleaning", NOW, dt.date(2026, 11, 22)) == dt.datetime(
        2026, 11, 23, 8, 0
    )  # Sunday → Monday


def test_move_can_overlap_its_own_old_slot_and_cancel_frees_it(calendar):
    booked = calendar.book("+15550100", "cleaning", dt.datetime(2026, 11, 23, 10, 0), NOW)
    moved = calendar.move(booked, dt.datetime(2026, 11, 23, 10, 30), NOW)
    assert moved.start == dt.datetime(2026, 11, 23, 10, 30)
    assert calendar.upcoming("+15550100", NOW).start == moved.start
    calendar.cancel(moved)
    assert calendar.upcoming("+15550100", NOW) is None
    assert dt.datetime(2026, 11, 23, 10, 30) in calendar.free_slots(MON, "cleaning", NOW)


def test_failed_move_keeps_the_old_booking(calendar):
    mine = calendar.book("+15550100", "check-up", dt.datetime(2026, 11, 23, 9, 0), NOW)
    calendar.book("+15550199", "check-up", dt.datetime(2026, 11, 23, 15, 0), NOW)
    with pytest.raises(SlotTaken):
        calendar.move(mine, dt.datetime(2026, 11, 23, 15, 0), NOW)
    assert calendar.upcoming("+15550100", NOW).start == dt.datetime(2026, 11, 23, 9, 0)


def test_a_booking_that_outlived_the_tools_timeout_is_rolled_back(calendar):
    """The caller already heard that booking failed: a write that finishes later must not stand."""
    import time

    from agent.brain.tools.calendar import TooLate

    start = dt.datetime.combine(MON, dt.time(10, 0))
    with pytest.raises(TooLate):
        calendar.book("+15550100", "cleaning", start, NOW, deadline=time.monotonic() - 0.1)
    assert calendar.upcoming("+15550100", NOW) is None
    booked = calendar.book("+15550100", "cleaning", start, NOW, deadline=time.monotonic() + 5)
    with pytest.raises(TooLate):
        calendar.cancel(booked, deadline=time.monotonic() - 0.1)
    assert calendar.upcoming("+15550100", NOW) == booked


def test_several_ranges_a_day_and_tables_that_share_a_time(tmp_path):
    import datetime as dt

    from agent.brain.tools.calendar import Calendar
    from agent.config import CalendarTool
    from agent.store.db import make_engine

    rules = CalendarTool(services={"table": 120}, hours={"saturday": "12:00-14:30, 17:30-22:00"}, capacity=2)
    calendar = Calendar(make_engine(f"sqlite:///{tmp_path / 'c.db'}"), rules)
    now = dt.datetime(2026, 11, 23, 9, 0)
    saturday = dt.date(2026, 11, 28)
    slots = calendar.free_slots(saturday, "table", now)
    assert dt.datetime(2026, 11, 28, 12, 30) in slots and dt.datetime(2026, 11, 28, 13, 0) not in slots  # 2 h fit
    assert dt.datetime(2026, 11, 28, 17, 30) in slots and dt.datetime(2026, 11, 28, 15, 0) not in slots
    seven = dt.datetime(2026, 11, 28, 19, 0)
    calendar.book("+1555", "table", seven, now)
    assert calendar.is_free(seven, "table", now)  # a second table at seven
    calendar.book("+1556", "table", seven, now)
    assert not calendar.is_free(seven, "table", now)
