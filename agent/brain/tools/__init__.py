"""One interface for everything a task can call: the calendar, the order table, webhooks.

A tool takes a dict of arguments and returns a `ToolResult`: `done` with JSON
fields, `not_found`, or `failed` (never an exception). Database work runs in a
thread with a timeout, so a slow or broken database never stalls the calls on
the event loop; a webhook has its own timeout. The names below are what the
config's tasks refer to and what call records show.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from agent import metrics
from agent.brain.dates import When
from agent.brain.tools.calendar import Appointment, Calendar, SlotTaken
from agent.brain.tools.orders import Orders
from agent.brain.tools.webhooks import call_webhook
from agent.config import AgentConfig, Tools

log = logging.getLogger(__name__)

CALENDAR_TOOLS = ("find_free_slot", "book_appointment", "find_appointment", "move_appointment", "cancel_appointment")
ORDER_TOOLS = ("order_lookup", "find_order")
DB_TIMEOUT_S = 4.0


def known_tools(tools: Tools) -> set[str]:
    names = {hook.name for hook in tools.webhooks}
    if tools.calendar:
        names.update(CALENDAR_TOOLS)
    if tools.orders:
        names.update(ORDER_TOOLS)
    return names


@dataclass(frozen=True)
class ToolResult:
    status: str  # done | not_found | failed
    data: dict = field(default_factory=dict)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "done"


@dataclass(frozen=True)
class ToolContext:
    caller_id: str | None
    now: dt.datetime
    deadline: float | None = None  # time.monotonic() after which a database write must not commit
    moving: int | None = None  # the appointment the task is moving: its own time is free to move into


def _appointment_fields(appointment: Appointment) -> dict:
    return {"appointment_id": appointment.id, "service": appointment.service, "start": appointment.start}


class ToolBox:
    """The tools one config has, built once per config and shared by its calls."""

    def __init__(self, config: AgentConfig, engine: Engine | None) -> None:
        tools = config.tools
        self.config = config
        self.calendar = Calendar(engine, tools.calendar) if tools.calendar and engine is not None else None
        self.orders = Orders.from_config(tools.orders, config.directory) if tools.orders else None
        self.webhooks = {hook.name: hook for hook in tools.webhooks}

    @property
    def names(self) -> set[str]:
        return known_tools(self.config.tools)

    def changes(self, name: str) -> bool:
        """Does the tool change something (a booking, a ticket)? Lookups can be taken back with the turn."""
        if name in self.webhooks:
            return self.webhooks[name].effect == "change"
        return name in ("book_appointment", "move_appointment", "cancel_appointment")

    async def run(self, name: str, args: dict, context: ToolContext) -> ToolResult:
        started = time.monotonic()
        result = await self._run(name, args, context)
        metrics.observe_tool(name, time.monotonic() - started, result.status)
        return result

    async def _run(self, name: str, args: dict, context: ToolContext) -> ToolResult:
        if name in self.webhooks:
            hook = self.webhooks[name]
            result = await call_webhook(hook, args, self.config.tools.allowed_hosts)
            if result.ok:
                return ToolResult("done", result.data or {})
            return ToolResult("not_found" if result.error == "not_found" else "failed", error=result.error)
        method: Callable | None = getattr(self, f"_{name}", None)
        if method is None or name not in self.names:
            return ToolResult("failed", error=f"tool {name} is not configured")
        try:
            context = replace(context, deadline=time.monotonic() + DB_TIMEOUT_S)
            return await asyncio.wait_for(asyncio.to_thread(method, args, context), DB_TIMEOUT_S)
        except (TimeoutError, SQLAlchemyError, OSError) as exc:
            log.warning("tool %s failed: %s", name, type(exc).__name__)
            return ToolResult("failed", error=type(exc).__name__)

    # ---- calendar (appliance database) ---------------------------------------------------

    def _find_free_slot(self, args: dict, context: ToolContext) -> ToolResult:
        service = args.get("service")
        if service not in self.calendar.rules.services:
            return ToolResult("failed", error="unknown service")
        when = args.get("when") or args.get("start")
        if isinstance(when, dt.datetime):
            when = When(when.date(), when.time())
        when = when if isinstance(when, When) else When()
        if when.time is not None and when.time.hour < 12 and when.day is not None:
            evening = dt.time(when.time.hour + 12, when.time.minute)  # "Saturday at seven" at a restaurant
            if not self.calendar.open_at(when.day, when.time) and self.calendar.open_at(when.day, evening):
                when = When(when.day, evening, when.part_of_day)
        moving = args.get("appointment_id") or context.moving
        slot = self.calendar.first_free(service, context.now, when.day, when.time, when.part_of_day, moving)
        if slot is None:
            return ToolResult("not_found")
        missed_time = when.time is not None and (slot.time() != when.time or (when.day and slot.date() != when.day))
        missed_day = when.day is not None and slot.date() != when.day
        return ToolResult(
            "done",
            {"start": slot, "service": service, "requested": "time" if missed_time else "day" if missed_day else None},
        )

    def _book_appointment(self, args: dict, context: ToolContext) -> ToolResult:
        try:
            booked = self.calendar.book(
                args.get("phone") or context.caller_id, args["service"], args["start"], context.now, context.deadline
            )
        except SlotTaken:
            return ToolResult("not_found", error="slot taken")
        return ToolResult("done", _appointment_fields(booked))

    def _find_appointment(self, args: dict, context: ToolContext) -> ToolResult:
        phone = args.get("phone") or context.caller_id
        found = self.calendar.upcoming(phone, context.now) if phone else None
        return ToolResult("done", _appointment_fields(found)) if found else ToolResult("not_found")

    def _appointment(self, args: dict, context: ToolContext) -> Appointment | None:
        phone = context.caller_id
        found = self.calendar.upcoming(phone, context.now) if phone else None
        return found if found and found.id == args.get("appointment_id") else None

    def _move_appointment(self, args: dict, context: ToolContext) -> ToolResult:
        appointment = self._appointment(args, context)
        if appointment is None:
            return ToolResult("not_found")
        try:
            moved = self.calendar.move(appointment, args["start"], context.now, context.deadline)
        except SlotTaken:
            return ToolResult("not_found", error="slot taken")
        return ToolResult("done", _appointment_fields(moved))

    def _cancel_appointment(self, args: dict, context: ToolContext) -> ToolResult:
        appointment = self._appointment(args, context)
        if appointment is None:
            return ToolResult("not_found")
        self.calendar.cancel(appointment, context.deadline)
        return ToolResult("done", {**_appointment_fields(appointment), "status": "cancelled"})

    # ---- orders (the admin's CSV) ----------------------------------------------------------

    def _order_lookup(self, args: dict, context: ToolContext) -> ToolResult:
        rules = self.orders.rules
        number = str(args.get("order_number") or args.get(rules.number_column) or "")
        row = self.orders.lookup(number)
        return ToolResult("done", {rules.number_column: number, **row}) if row else ToolResult("not_found")

    def _find_order(self, args: dict, context: ToolContext) -> ToolResult:
        row = self.orders.open_order_for(context.caller_id) if context.caller_id else None
        return ToolResult("done", dict(row)) if row else ToolResult("not_found")
