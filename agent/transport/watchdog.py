"""Liveness: systemd's watchdog, and an in-process detector for a stalled event loop.

systemd (Type=notify, WatchdogSec=) restarts the agent when it stops pinging.
The pings (WATCHDOG=1) and READY=1 are sent by a task on the event loop, so
they stop exactly when the loop stops running calls: a hung process (kill
-STOP, a deadlock, a busy loop in a native call) is killed and restarted, and
Asterisk sends its callers to the humans. The notify protocol is one datagram
on the unix socket named by $NOTIFY_SOCKET; no library needed.

Inside the process a thread watches the loop's heartbeat. When the loop has
not run for `stall_s` it logs the loop thread's stack once (where it is
stuck), and after `handback_s` it calls `on_stall` (the server closes the
calls' sockets so Asterisk hands the callers to a human instead of dead air).
When the loop runs again it logs how long the stall was.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable

log = logging.getLogger(__name__)

STALL_S = float(os.environ.get("PHONE_AGENT_STALL_S", 2.0))
HANDBACK_S = float(os.environ.get("PHONE_AGENT_STALL_HANDBACK_S", 5.0))
BEAT_S = 0.25


def sd_notify(message: str) -> bool:
    """Send one notification to systemd (no-op without $NOTIFY_SOCKET). True if it was sent."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]  # abstract namespace
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(message.encode())
        return True
    except OSError as exc:
        log.debug("sd_notify failed: %s", exc)
        return False


def watchdog_interval() -> float | None:
    """Half of systemd's WatchdogSec (how often to ping), or None when no watchdog is set for us."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return max(int(usec) / 2e6, 0.1)
    except ValueError:
        return None


class LoopWatchdog:
    """Heartbeat task on the loop + a watcher thread; pings systemd only while the loop is healthy."""

    def __init__(
        self,
        stall_s: float = STALL_S,
        handback_s: float = HANDBACK_S,
        on_stall: Callable[[float], None] | None = None,
        status: Callable[[], str] | None = None,
    ) -> None:
        self.stall_s = stall_s
        self.handback_s = handback_s
        self.on_stall = on_stall
        self.status = status
        self.last_beat = time.monotonic()
        self.max_lag = 0.0  # worst heartbeat lateness seen, seconds
        self.stalls = 0
        self.pings = 0
        self._loop_thread: int | None = None
        self._task: asyncio.Task | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._interval = watchdog_interval()

    def start(self) -> None:
        """Call from the event loop once the agent is ready to take calls (sends READY=1)."""
        self._loop_thread = threading.get_ident()
        self.last_beat = time.monotonic()
        self._task = asyncio.create_task(self._beat(), name="watchdog-heartbeat")
        self._thread = threading.Thread(target=self._watch, name="loop-watchdog", daemon=True)
        self._thread.start()
        sd_notify("READY=1\nSTATUS=" + (self.status() if self.status else "ready"))
        if self._interval:
            log.info("systemd watchdog: pinging every %.1f s from the event loop", self._interval)

    async def _beat(self) -> None:
        last_ping = 0.0
        last_status = 0.0
        while True:
            before = time.monotonic()
            await asyncio.sleep(BEAT_S)
            now = time.monotonic()
            lag = now - before - BEAT_S
            self.max_lag = max(self.max_lag, lag)
            self.last_beat = now
            if self._interval and now - last_ping >= self._interval and lag < self.stall_s:
                sd_notify("WATCHDOG=1")
                self.pings += 1
                last_ping = now
            if self.status and now - last_status >= 10:
                sd_notify("STATUS=" + self.status())
                last_status = now

    def _watch(self) -> None:
        reported = False
        handed_back = False
        worst = 0.0
        while not self._stop.wait(BEAT_S):
            silent = time.monotonic() - self.last_beat
            if reported:
                worst = max(worst, silent)
            if silent > self.stall_s and not reported:
                reported = True
                self.stalls += 1
                log.error("event loop stalled for %.1f s (calls get no audio); the loop thread is at:\n%s",
                          silent, self._loop_stack())  # fmt: skip
            if silent > self.handback_s and not handed_back and self.on_stall is not None:
                handed_back = True
                try:
                    self.on_stall(silent)
                except Exception:
                    log.exception("stall hand-back failed")
            if silent <= self.stall_s and reported:
                log.warning("event loop runs again (stalled at least %.1f s)", worst)
                reported = handed_back = False
                worst = 0.0

    def _loop_stack(self) -> str:
        frame = sys._current_frames().get(self._loop_thread) if self._loop_thread else None
        if frame is None:
            return "  (loop thread not found)"
        return "".join(traceback.format_stack(frame)).rstrip()

    def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
        sd_notify("STOPPING=1")
