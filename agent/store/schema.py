"""Every table of the appliance database, in one metadata (what alembic migrates)."""

from agent.brain.tools import calendar  # noqa: F401  (appointments)
from agent.console import tables  # noqa: F401  (console_users, console_audit)
from agent.store import records  # noqa: F401  (calls, turns, tool_calls, transfers, call_events, daily_kpis)
from agent.store.db import metadata

__all__ = ["metadata"]
