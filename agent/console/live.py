"""The live view: the console polls the agent's loopback /live status and pushes it to browsers (SSE).

Polling happens once, server-side, however many admins watch: the agent's status
endpoint stays loopback-only and sees one reader, and browsers get an update
only when something changed (plus a comment line every 15 s that keeps proxies
from closing the stream). The agent already redacts the slot values it reports.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time

import httpx

from agent.transport.status import DEFAULT_ADDRESS, ENV

log = logging.getLogger(__name__)

POLL_S = 1.0
KEEPALIVE_S = 15.0


def default_status_address() -> str:
    """Where `python -m agent run` serves /live unless told otherwise (agent/transport/status.py)."""
    return os.environ.get(ENV) or DEFAULT_ADDRESS


class LiveFeed:
    def __init__(self, status_address: str, poll_s: float = POLL_S) -> None:
        self.url = f"http://{status_address}/live"
        self.poll_s = poll_s
        self.snapshot: dict = {"ok": False, "error": "not polled yet", "agent": {}, "calls": []}
        self._subscribers: set[asyncio.Queue] = set()
        self._task: asyncio.Task | None = None
        self._last_error: str | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._poll_forever())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _poll_forever(self) -> None:
        async with httpx.AsyncClient(timeout=2.0, trust_env=False) as client:
            while True:
                self._publish(await self._poll(client))
                await asyncio.sleep(self.poll_s)

    async def _poll(self, client: httpx.AsyncClient) -> dict:
        try:
            response = await client.get(self.url)
            response.raise_for_status()
            data = response.json()
            snapshot = {"ok": True, "error": None, "agent": data.get("agent", {}), "calls": data.get("calls", [])}
            if self._last_error:
                log.info("agent status %s reachable again", self.url)
            self._last_error = None
        except (httpx.HTTPError, ValueError) as exc:
            error = f"agent status {self.url} not reachable ({type(exc).__name__})"
            if error != self._last_error:
                log.warning("%s", error)
            self._last_error = error
            snapshot = {"ok": False, "error": error, "agent": {}, "calls": []}
        return snapshot

    def _publish(self, snapshot: dict) -> None:
        if snapshot == self.snapshot:
            return
        self.snapshot = snapshot
        for queue in list(self._subscribers):
            if queue.full():
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()  # a slow browser gets the newest state, not a backlog
            queue.put_nowait(snapshot)

    async def events(self, disconnected):
        """Server-sent events: the current snapshot at once, then each change."""
        queue: asyncio.Queue = asyncio.Queue(maxsize=1)
        self._subscribers.add(queue)
        try:
            yield _sse(self.snapshot)
            last = time.monotonic()
            while not await disconnected():
                try:
                    snapshot = await asyncio.wait_for(queue.get(), timeout=1.0)
                except TimeoutError:
                    if time.monotonic() - last >= KEEPALIVE_S:
                        last = time.monotonic()
                        yield ": keep-alive\n\n"
                    continue
                last = time.monotonic()
                yield _sse(snapshot)
        finally:
            self._subscribers.discard(queue)


def _sse(snapshot: dict) -> str:
    return f"event: live\ndata: {json.dumps(snapshot, separators=(',', ':'))}\n\n"
