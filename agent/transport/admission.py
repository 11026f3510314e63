"""Admission control: beyond capacity, a new call goes to a human at once instead of slowing every call.

Two signals, both measured: how many calls the agent is serving, and how long
its recent replies took (end of the caller's speech → first audio queued,
over the last turns of the last minute). A new call is turned away when the
box is at its configured call limit, or when recent replies are already
slower than the limit while other calls are running. Calls in progress are
never affected.
"""

from __future__ import annotations

import collections
import statistics
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Decision:
    admitted: bool
    reason: str = ""


class Admission:
    def __init__(self, max_calls: int, max_reply_ms: float, window_s: float = 60.0, min_turns: int = 5) -> None:
        self.max_calls = max_calls
        self.max_reply_ms = max_reply_ms
        self.window_s = window_s
        self.min_turns = min_turns
        self._replies: collections.deque[tuple[float, float]] = collections.deque(maxlen=50)

    def observe_reply(self, ms: float, now: float | None = None) -> None:
        self._replies.append((now if now is not None else time.monotonic(), ms))

    def recent_reply_ms(self, now: float | None = None) -> float | None:
        """The 90th percentile of recent reply times, or None with too few to judge."""
        now = now if now is not None else time.monotonic()
        recent = [ms for at, ms in self._replies if now - at <= self.window_s]
        if len(recent) < self.min_turns:
            return None
        return statistics.quantiles(recent, n=10)[-1]

    def decide(self, active_calls: int, now: float | None = None) -> Decision:
        if active_calls >= self.max_calls:
            return Decision(False, f"at capacity ({active_calls} calls)")
        slow = self.recent_reply_ms(now)
        if active_calls > 0 and slow is not None and slow > self.max_reply_ms:
            return Decision(False, f"overloaded (recent replies p90 {slow:.0f} ms)")
        return Decision(True)
