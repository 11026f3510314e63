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

from agent import metrics


@dataclass(frozen=True)
class Decision:
    admitted: bool
    reason: str = ""
    kind: str = ""  # capacity | overloaded (the refusals metric's label)


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
            return _refused(f"at capacity ({active_calls} calls)", "capacity")
        slow = self.recent_reply_ms(now)
        if active_calls > 0 and slow is not None and slow > self.max_reply_ms:
            return _refused(f"overloaded (recent replies p90 {slow:.0f} ms)", "overloaded")
        return Decision(True)


def _refused(reason: str, kind: str) -> Decision:
    metrics.refused(kind)
    return Decision(False, reason, kind)


class Unannounced:
    """Connections that are not calls Asterisk announced: counted for a summary line, waits rate-limited.

    A connection whose call id is unknown may wait a moment for the AMI event
    (it travels over another connection than the audio), but only while the
    token bucket allows: a flood of made-up call ids gets no waiting at all.
    They never count against max_calls.
    """

    def __init__(self, waits_per_s: float = 10.0, burst: int = 20) -> None:
        self.rate = waits_per_s
        self.burst = burst
        self._tokens = float(burst)
        self._refilled = time.monotonic()
        self.window: collections.Counter[str] = collections.Counter()
        self.total: collections.Counter[str] = collections.Counter()

    def count(self, reason: str) -> None:
        self.window[reason] += 1
        self.total[reason] += 1
        metrics.unannounced(reason)

    def may_wait(self, now: float | None = None) -> bool:
        now = now if now is not None else time.monotonic()
        self._tokens = min(self.burst, self._tokens + max(0.0, now - self._refilled) * self.rate)
        self._refilled = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False

    def summary(self) -> str:
        """'12 (idle 10, malformed 2)' for the last window, then start a new one; '' if nothing happened."""
        if not self.window:
            return ""
        line = f"{sum(self.window.values())} ({', '.join(f'{k} {v}' for k, v in self.window.most_common())})"
        self.window.clear()
        return line
