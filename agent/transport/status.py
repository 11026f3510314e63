"""The agent's status endpoint: `GET /metrics` (Prometheus) and `GET /live` (the calls now, as JSON).

A small HTTP/1.1 handler on the agent's own event loop: each request is read
with a timeout and answered from memory (no disk, no database), so a scrape
never holds up a call. It listens on loopback only (127.0.0.1:9464 by default,
`--status-address` or PHONE_AGENT_STATUS; `off` disables it); another address
must be allowed explicitly (`--status-allow-remote`), since /live shows the
calls in progress (redacted, like the records).

/live, the contract the admin console reads:
    {"agent": {AgentServer.status()},
     "calls": [{"call_id", "started_at" (ISO-8601 UTC), "duration_s", "state"
                (listening | speaking | thinking | in_task | transferring), "task" (or null),
                "slots" {name: redacted value}, "last_reply_ms" (or null), "turns"}]}
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import os
from collections.abc import Callable

from agent import metrics

log = logging.getLogger(__name__)

DEFAULT_ADDRESS = "127.0.0.1:9464"
ENV = "PHONE_AGENT_STATUS"
REQUEST_TIMEOUT_S = 5.0
MAX_HEADER_LINES = 100


class StatusAddressError(ValueError):
    """An unusable --status-address; the message says why and what to write instead."""


def parse_address(text: str | None, allow_remote: bool = False) -> tuple[str, int] | None:
    """ "HOST:PORT" (default from PHONE_AGENT_STATUS, else 127.0.0.1:9464) as (host, port); None for "off"."""
    text = (text or os.environ.get(ENV) or DEFAULT_ADDRESS).strip()
    if text.lower() in ("off", "none", "no", "0"):
        return None
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise StatusAddressError(f"status address {text!r}: expected HOST:PORT (e.g. {DEFAULT_ADDRESS}) or off")
    if not allow_remote and not _loopback(host):
        raise StatusAddressError(
            f"status address {text!r} is not loopback: /metrics and /live stay on this box unless "
            "--status-allow-remote is given (put TLS and authentication in front of it)"
        )
    return host, int(port)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class StatusServer:
    """Serves /metrics and /live for one AgentServer (`live` returns the /live document)."""

    def __init__(self, live: Callable[[], dict], host: str, port: int) -> None:
        self._live = live
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        """Listen; a port in use is logged, never a reason for the agent not to take calls."""
        try:
            self._server = await asyncio.start_server(self._handle, self.host, self.port, reuse_address=True)
        except OSError as exc:
            log.error("status endpoint not started on %s:%s (%s): no /metrics or /live; set --status-address "
                      "or PHONE_AGENT_STATUS", self.host, self.port, exc.strerror or exc)  # fmt: skip
            return
        self.port = self._server.sockets[0].getsockname()[1]  # port 0: the one the system chose
        log.info("status endpoint on http://%s:%s/metrics and /live", self.host, self.port)

    def close(self) -> None:
        if self._server:
            self._server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT_S):
                request = (await reader.readline()).decode("latin-1").split()
                for _ in range(MAX_HEADER_LINES):  # headers are not needed; read up to the blank line
                    if (await reader.readline()).strip() in (b"", b"\r\n"):
                        break
            status, content_type, body = self._respond(request)
            head = (
                f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
                "Cache-Control: no-store\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode() + (body if request[:1] != ["HEAD"] else b""))
            await writer.drain()
        except (TimeoutError, ConnectionError, OSError, IndexError):
            pass
        finally:
            writer.close()

    def _respond(self, request: list[str]) -> tuple[str, str, bytes]:
        if len(request) < 2:
            return "400 Bad Request", "text/plain", b"bad request\n"
        method, path = request[0], request[1].split("?", 1)[0]
        if method not in ("GET", "HEAD"):
            return "405 Method Not Allowed", "text/plain", b"GET only\n"
        if path == "/metrics":
            return "200 OK", metrics.CONTENT_TYPE, metrics.exposition()
        if path == "/live":
            return "200 OK", "application/json", json.dumps(self._live(), default=str).encode()
        return "404 Not Found", "text/plain", b"/metrics or /live\n"
