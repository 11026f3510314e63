"""Model work from every call on the box's cores, the most urgent first.

With several calls, recognition and synthesis jobs pile up. A first-come queue
makes a caller who just stopped talking wait behind the fourth sentence of
someone else's answer, which is not needed until the three before it have
played. Each job therefore carries a deadline, the moment its result is
needed (now, for a transcript or the first clause of a reply; when the audio
queued before it runs out, for a later clause), and the workers take the
earliest deadline first. A job whose caller has gone (barge-in, hang-up) is
skipped before it starts. The models run on all cores themselves, so one
worker is the default: a job then has both cores and ends soonest (8 calls,
every sentence synthesized: p95 1.94 s with one worker, 2.45 s with two;
docs/benchmarks.md). PHONE_AGENT_COMPUTE_WORKERS overrides it.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import os
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

DEFAULT_WORKERS = int(os.environ.get("PHONE_AGENT_COMPUTE_WORKERS", "1"))


class ComputeQueue:
    def __init__(self, workers: int = DEFAULT_WORKERS) -> None:
        self._jobs: list[tuple[float, int, Callable[[], Any], asyncio.AbstractEventLoop, asyncio.Future]] = []
        self._order = itertools.count()
        self._ready = threading.Condition()
        self.waiting = 0  # jobs queued, not yet started (a load signal)
        for index in range(workers):
            threading.Thread(target=self._work, name=f"compute-{index}", daemon=True).start()

    async def run(self, fn: Callable[..., T], *args: Any, deadline: float | None = None) -> T:
        """Run fn(*args) on a worker; deadline is a time.monotonic() instant (default: now)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future = loop.create_future()
        job = (time.monotonic() if deadline is None else deadline, next(self._order), lambda: fn(*args), loop, future)
        with self._ready:
            heapq.heappush(self._jobs, job)
            self.waiting += 1
            self._ready.notify()
        return await future

    def _work(self) -> None:
        while True:
            with self._ready:
                while not self._jobs:
                    self._ready.wait()
                _deadline, _order, call, loop, future = heapq.heappop(self._jobs)
                self.waiting -= 1
            if future.cancelled():  # nobody waits for it any more
                continue
            try:
                outcome = (call(), None)
            except BaseException as exc:  # handed to the awaiting call, which decides
                outcome = (None, exc)
            try:
                loop.call_soon_threadsafe(_settle, future, *outcome)
            except RuntimeError:  # that call's event loop has closed (agent shutting down)
                pass


def _settle(future: asyncio.Future, result: Any, exc: BaseException | None) -> None:
    if future.done():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)
