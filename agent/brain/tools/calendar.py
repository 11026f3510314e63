"""Built-in appointment calendar in the appliance database, with slot rules from config."""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
import time
from dataclasses import dataclass

from sqlalchemy import Column, Connection, DateTime, Engine, Integer, String, Table, and_, insert, select, update

from agent.config import WEEKDAYS, CalendarTool
from agent.store.db import metadata

appointments = Table(
    "appointments",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("phone", String(32), index=True),  # the caller ID that booked; used to find it again
    Column("service", String(64), nullable=False),
    Column("start", DateTime, nullable=False, index=True),
    Column("minutes", Integer, nullable=False),
    Column("status", String(16), nullable=False, default="booked"),  # booked | cancelled
    Column("created_at", DateTime, nullable=False),
)


@dataclass(frozen=True)
class Appointment:
    id: int
    phone: str | None
    service: str
    start: dt.datetime
    minutes: int

    @property
    def end(self) -> dt.datetime:
        return self.start + dt.timedelta(minutes=self.minutes)


class TooLate(TimeoutError):
    """The caller was already told the tool failed; this write must not happen after all."""


def _still_in_time(deadline: float | None) -> None:
    """Checked just before a write commits: a write that waited out the tool's timeout on a
    locked database rolls back, so the caller never hears "I can't" while the booking is made."""
    if deadline is not None and time.monotonic() > deadline:
        raise TooLate("the write finished after the tool's timeout")


class SlotTaken(Exception):
    pass


class Calendar:
    def __init__(self, engine: Engine, rules: CalendarTool) -> None:
        self.engine = engine
        self.rules = rules
        # calls run concurrently: one writer at a time, so two callers cannot take the same slot
        self._writing = threading.Lock()

    def service_minutes(self, service: str) -> int:
        return self.rules.services[service]

    def _open_hours(self, day: dt.date) -> list[tuple[dt.datetime, dt.datetime]]:
        """The day's opening ranges, in order; none when closed."""
        hours = getattr(self.rules.hours, WEEKDAYS[day.weekday()])
        ranges = []
        for part in (hours or "").split(","):
            if part.strip():
                start, end = (dt.time.fromisoformat(t.strip()) for t in part.split("-"))
                ranges.append((dt.datetime.combine(day, start), dt.datetime.combine(day, end)))
        return sorted(ranges)

    def _booked(self, day: dt.date, db: Connection | None = None, ignore: int | None = None) -> list[Appointment]:
        begin = dt.datetime.combine(day, dt.time())
        with contextlib.nullcontext(db) if db is not None else self.engine.connect() as db:
            rows = db.execute(
                select(appointments).where(
                    and_(
                        appointments.c.status == "booked",
                        appointments.c.start >= begin,
                        appointments.c.start < begin + dt.timedelta(days=1),
                    )
                )
            ).all()
        return [Appointment(r.id, r.phone, r.service, r.start, r.minutes) for r in rows if r.id != ignore]

    def is_free(self, start: dt.datetime, service: str, now: dt.datetime, db: Connection | None = None) -> bool:
        return start in self.free_slots(start.date(), service, now, db)

    def free_slots(
        self, day: dt.date, service: str, now: dt.datetime, db: Connection | None = None, ignore: int | None = None
    ) -> list[dt.datetime]:
        """Start times on `day` where `service` fits inside opening hours and overlaps fewer than `capacity`
        bookings (conservatively: every booking overlapping the window counts)."""
        rules = self.rules
        if day > now.date() + dt.timedelta(days=rules.days_ahead):
            return []
        length = dt.timedelta(minutes=self.service_minutes(service))
        earliest = now + dt.timedelta(hours=rules.min_notice_hours)
        booked = self._booked(day, db, ignore)
        slots = []
        for opens, closes in self._open_hours(day):
            start = opens
            while start + length <= closes:
                overlapping = sum(1 for b in booked if start < b.end and b.start < start + length)
                if start >= earliest and overlapping < rules.capacity:
                    slots.append(start)
                start += dt.timedelta(minutes=rules.slot_minutes)
        return slots

    def open_at(self, day: dt.date, time: dt.time) -> bool:
        """Whether `time` on `day` falls within opening hours."""
        moment = dt.datetime.combine(day, time)
        return any(opens <= moment < closes for opens, closes in self._open_hours(day))

    def first_free(
        self,
        service: str,
        now: dt.datetime,
        day: dt.date | None = None,
        near: dt.time | None = None,
        part_of_day: str | None = None,
        ignore: int | None = None,
    ) -> dt.datetime | None:
        """The slot closest to what the caller asked for: that day (nearest their time), else the next days."""
        start_day = day or now.date()
        for offset in range(self.rules.days_ahead + 1):
            candidate_day = start_day + dt.timedelta(days=offset)
            slots = self.free_slots(candidate_day, service, now, ignore=ignore)
            if part_of_day == "morning":
                slots = [s for s in slots if s.hour < 12] or slots
            elif part_of_day == "afternoon":
                slots = [s for s in slots if s.hour >= 12] or slots
            elif part_of_day == "evening":
                slots = [s for s in slots if s.hour >= 17] or [s for s in slots if s.hour >= 12] or slots
            if slots:
                if near and offset == 0:
                    target = dt.datetime.combine(candidate_day, near)
                    return min(slots, key=lambda s: abs((s - target).total_seconds()))
                return slots[0]
        return None

    def book(
        self, phone: str | None, service: str, start: dt.datetime, now: dt.datetime, deadline: float | None = None
    ) -> Appointment:
        with self._writing, self.engine.begin() as db:  # check and insert in one transaction
            if not self.is_free(start, service, now, db):
                raise SlotTaken(start)
            minutes = self.service_minutes(service)
            new_id = db.execute(
                insert(appointments).values(
                    phone=phone, service=service, start=start, minutes=minutes, status="booked", created_at=now
                )
            ).inserted_primary_key[0]
            _still_in_time(deadline)
        return Appointment(new_id, phone, service, start, minutes)

    def upcoming(self, phone: str, now: dt.datetime) -> Appointment | None:
        with self.engine.connect() as db:
            row = db.execute(
                select(appointments)
                .where(
                    and_(appointments.c.phone == phone, appointments.c.status == "booked", appointments.c.start >= now)
                )
                .order_by(appointments.c.start)
                .limit(1)
            ).first()
        return Appointment(row.id, row.phone, row.service, row.start, row.minutes) if row else None

    def move(
        self, appointment: Appointment, start: dt.datetime, now: dt.datetime, deadline: float | None = None
    ) -> Appointment:
        with self._writing, self.engine.begin() as db:
            db.execute(update(appointments).where(appointments.c.id == appointment.id).values(status="cancelled"))
            if not self.is_free(start, appointment.service, now, db):
                raise SlotTaken(start)  # the transaction rolls back: the old booking stays
            db.execute(
                update(appointments).where(appointments.c.id == appointment.id).values(status="booked", start=start)
            )
            _still_in_time(deadline)
        return Appointment(appointment.id, appointment.phone, appointment.service, start, appointment.minutes)

    def cancel(self, appointment: Appointment, deadline: float | None = None) -> None:
        with self.engine.begin() as db:
            db.execute(update(appointments).where(appointments.c.id == appointment.id).values(status="cancelled"))
            _still_in_time(deadline)
