"""The AudioSocket server: one CallSession per TCP connection from Asterisk.

A failure inside one call is logged and closes that connection only; the
server and every other call keep running.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket

from agent.brain.dialogue import Brain
from agent.brain.tools.orders import OrdersError
from agent.call.session import CallSession, warm_speech
from agent.config import AgentConfig, BoxSettings, ConfigError, load_config
from agent.engines import Engines
from agent.store.db import make_engine
from agent.store.records import CallStore
from agent.store.retention import purge
from agent.telephony.ami import AmiLink
from agent.transport.admission import Admission

log = logging.getLogger(__name__)


class AgentServer:
    def __init__(self, engines: Engines, config: AgentConfig, box: BoxSettings, host: str, port: int) -> None:
        self.engines = engines
        self.box = box
        self.database = make_engine()
        self.records = CallStore(self.database)
        self.records.mark_interrupted()  # calls a crash cut off
        self.admission = Admission(config.capacity.max_calls, config.capacity.max_reply_ms)
        engines.speech.max_bytes = config.capacity.speech_cache_mb * 2**20
        self.brain = self._build_brain(config)
        self.host = host
        self.port = port
        self.ami = AmiLink(box)
        self.active: set[asyncio.Task] = set()
        self._server: asyncio.Server | None = None
        self._watcher: asyncio.Task | None = None
        self._purger: asyncio.Task | None = None
        self._warming: asyncio.Task | None = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        task = asyncio.current_task()
        capacity = self.config.capacity
        self.admission.max_calls, self.admission.max_reply_ms = capacity.max_calls, capacity.max_reply_ms
        self.engines.speech.max_bytes = capacity.speech_cache_mb * 2**20
        decision = self.admission.decide(len(self.active))
        self.active.add(task)
        try:
            session = CallSession(reader, writer, self.engines, self.brain, self.records, self.ami, self.admission)
            await session.run(turn_away=None if decision.admitted else decision.reason)
        except asyncio.CancelledError:
            pass  # the server is stopping; the call's own cleanup has run
        except Exception:
            log.exception("call failed; other calls are unaffected")
            writer.close()
        finally:
            self.active.discard(task)

    @property
    def config(self) -> AgentConfig:
        return self.brain.config

    def _build_brain(self, config: AgentConfig) -> Brain:
        llm_path = self.engines.choices[1].path if self.engines.choices else None
        return Brain(config, self.database, llm_path, self.engines.llm)

    def reload(self, reason: str) -> bool:
        """Load the config again; calls in progress keep theirs. A broken config keeps the old one."""
        try:
            brain = self._build_brain(load_config(self.config.directory))
        except (ConfigError, OrdersError) as exc:
            log.error("config not reloaded (%s), keeping the running one: %s", reason, exc)
            return False
        self.brain = brain
        log.info("config reloaded (%s): %s", reason, self.config.directory)
        self._warm_speech()
        return True

    def _warm_speech(self) -> None:
        """The greeting and prompts synthesized ahead, so the first caller does not wait for them."""

        def done(task: asyncio.Task) -> None:
            if not task.cancelled() and task.exception() is not None:
                log.error("could not synthesize the configured sentences ahead: %s", type(task.exception()).__name__)

        self._warming = asyncio.create_task(warm_speech(self.engines, self.config))
        self._warming.add_done_callback(done)

    async def _purge_periodically(self) -> None:
        """Retention: purge at start and then every purge_interval_hours (rules from the current config)."""
        while True:
            rules = self.config.privacy.retention
            try:
                report = await asyncio.to_thread(purge, self.database, rules)
                log.info("retention purge: %s", report)
            except Exception as exc:  # a failed purge is retried next time; calls go on
                log.error("retention purge failed: %s", type(exc).__name__)
            await asyncio.sleep(rules.purge_interval_hours * 3600)

    async def _watch_config(self, interval: float = 2.0) -> None:
        """Reload when a file in the config directory changes (SIGHUP reloads at once)."""
        seen = _config_stamp(self.config.directory)
        while True:
            await asyncio.sleep(interval)
            stamp = _config_stamp(self.config.directory)
            if stamp != seen:
                seen = stamp
                self.reload("file changed")

    async def start(self) -> None:
        self._watcher = asyncio.create_task(self._watch_config())
        self._purger = asyncio.create_task(self._purge_periodically())
        self._warm_speech()
        await self.ami.connect()
        self._server = await asyncio.start_server(self._handle, self.host, self.port, reuse_address=True)
        log.info("AudioSocket server listening on %s:%s", self.host, self.port)

    async def serve_forever(self) -> None:
        await self.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        loop.add_signal_handler(signal.SIGHUP, self.reload, "SIGHUP")
        await stop.wait()
        log.info("stopping: %d call(s) in progress", len(self.active))
        await self.close()

    async def close(self) -> None:
        for task in (self._watcher, self._purger, self._warming):
            if task:
                task.cancel()
        if self._server:
            self._server.close()
        for task in list(self.active):
            task.cancel()
        if self.active:
            await asyncio.wait(self.active, timeout=2)
        self.ami.close()
        await asyncio.to_thread(self.records.close)  # every ended call's record committed


def _config_stamp(directory) -> tuple:
    """(path, mtime, size) of every file under the config directory."""
    return tuple(sorted((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in directory.rglob("*") if p.is_file()))
