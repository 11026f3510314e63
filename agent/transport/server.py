"""The AudioSocket server: one CallSession per TCP connection from Asterisk.

A failure inside one call is logged and closes that connection only; the
server and every other call keep running.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket

from agent.call.session import CallSession
from agent.config import AgentConfig, BoxSettings
from agent.engines import Engines
from agent.telephony.ami import AmiLink

log = logging.getLogger(__name__)


class AgentServer:
    def __init__(self, engines: Engines, config: AgentConfig, box: BoxSettings, host: str, port: int) -> None:
        self.engines = engines
        self.config = config
        self.box = box
        self.host = host
        self.port = port
        self.ami = AmiLink(box)
        self.active: set[asyncio.Task] = set()
        self._server: asyncio.Server | None = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        task = asyncio.current_task()
        self.active.add(task)
        try:
            await CallSession(reader, writer, self.engines, self.config, self.ami).run()
        except Exception:
            log.exception("call failed; other calls are unaffected")
            writer.close()
        finally:
            self.active.discard(task)

    async def start(self) -> None:
        await self.ami.connect()
        self._server = await asyncio.start_server(self._handle, self.host, self.port, reuse_address=True)
        log.info("AudioSocket server listening on %s:%s", self.host, self.port)

    async def serve_forever(self) -> None:
        await self.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        log.info("stopping: %d call(s) in progress", len(self.active))
        await self.close()

    async def close(self) -> None:
        if self._server:
            self._server.close()
        for task in list(self.active):
            task.cancel()
        if self.active:
            await asyncio.wait(self.active, timeout=2)
        self.ami.close()
