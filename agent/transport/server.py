"""The AudioSocket server: one CallSession per call Asterisk announced.

A failure inside one call is logged and closes that connection only; the
server and every other call keep running.

Only calls Asterisk announced count. A connection first has to send its call
id within HANDSHAKE_TIMEOUT_S; the id must have been announced by the
dialplan over AMI (UserEvent AgentCall) — unless the AMI link is down, when
the call is accepted (and the log says so once). Connections still waiting
for their call id are capped (the oldest is closed to make room, so a flood
cannot lock real calls out) and do not count against capacity.max_calls;
waiting for a late announcement is rate-limited; what was turned away is
logged as one summary line per SUMMARY_S, never per connection, and leaves
no call record.

A frame that breaks the stream is acted on even when it arrives in the same
read as valid frames: the reader hands the valid part to the call and the
bad part right after, so the call's decoder fails at once instead of waiting
for bytes that may never come.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import signal
import socket

from agent import metrics
from agent.audio import echo
from agent.brain.dialogue import Brain
from agent.brain.tools.orders import OrdersError
from agent.call.session import CallSession, warm_speech
from agent.config import AgentConfig, BoxSettings, ConfigError, load_config
from agent.engines import Engines
from agent.protocol import audiosocket as proto
from agent.store.db import connect_database
from agent.store.records import CallStore
from agent.store.retention import purge
from agent.telephony.ami import AmiLink
from agent.transport.admission import Admission, Unannounced
from agent.transport.status import StatusServer
from agent.transport.watchdog import LoopWatchdog

log = logging.getLogger(__name__)

HANDSHAKE_TIMEOUT_S = 2.0
MAX_PENDING = 64  # connections waiting for their call id
ANNOUNCE_WAIT_S = 1.0  # how long a call id may wait for its AMI announcement
SUMMARY_S = 10.0


class FramedReader:
    """The call's view of the socket: whole valid frames first, a bad frame in a read of its own.

    asyncio's StreamReader hands over whatever arrived; when a bad frame sits in
    the same read as good ones the call's decoder returns the good ones and
    would learn of the bad one only at the next read. This reader splits such a
    read at the bad frame, so the next read() returns it at once.
    """

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self._reader = reader
        self._queued: collections.deque[bytes] = collections.deque()
        self._shadow = proto.Decoder()
        self._seen = 0  # stream bytes read from the socket so far

    def unread(self, *chunks: bytes) -> None:
        """Give bytes back; the next reads return them, one chunk per read."""
        self._queued.extendleft(reversed([c for c in chunks if c]))

    async def read(self, n: int = -1) -> bytes:
        if self._queued:
            chunk = self._queued.popleft()
            if 0 < n < len(chunk):
                self._queued.appendleft(chunk[n:])
                chunk = chunk[:n]
            return chunk
        data = await self._reader.read(n)
        if not data or self._shadow.failed:
            return data
        start = self._seen
        self._seen += len(data)
        try:
            self._shadow.feed(data)
        except proto.ProtocolError:
            pass
        if self._shadow.failed:
            cut = self._shadow.good_bytes - start  # where the bad frame starts in this read
            if 0 < cut < len(data):
                self._queued.append(data[cut:])
                return data[:cut]
        return data


class AgentServer:
    def __init__(
        self,
        engines: Engines,
        config: AgentConfig,
        box: BoxSettings,
        host: str,
        port: int,
        status_address: tuple[str, int] | None = None,
    ) -> None:
        self.engines = engines
        self.box = box
        self.database = connect_database()  # waits (one log line) while the database is down
        self.records = CallStore(self.database)
        self.records.mark_interrupted()  # calls a crash cut off
        self.admission = Admission(config.capacity.max_calls, config.capacity.max_reply_ms)
        engines.speech.max_bytes = config.capacity.speech_cache_mb * 2**20
        self.brain = self._build_brain(config)
        self.host = host
        self.port = port
        self.ami = AmiLink(box)
        self.active: set[asyncio.Task] = set()
        self.pending: dict[asyncio.Task, asyncio.StreamWriter] = {}  # connections waiting for their call id
        self.unannounced = Unannounced()
        self._ami_unchecked_logged = False
        self._calls: dict[asyncio.Task, asyncio.StreamWriter] = {}
        self.sessions: dict[asyncio.Task, CallSession] = {}  # for /live
        self.status_server = StatusServer(self.live, *status_address) if status_address else None
        metrics.bind_server(self)
        self.watchdog = LoopWatchdog(on_stall=self._stalled, status=self.describe)
        self._server: asyncio.Server | None = None
        self._summary: asyncio.Task | None = None
        self._watcher: asyncio.Task | None = None
        self._purger: asyncio.Task | None = None
        self._warming: asyncio.Task | None = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        task = asyncio.current_task()
        stream = FramedReader(reader)
        if len(self.pending) >= MAX_PENDING:  # the oldest waiting connection makes room
            oldest = next(iter(self.pending))
            self.pending.pop(oldest).close()
            oldest.cancel()
            self.unannounced.count("evicted")
        self.pending[task] = writer
        try:
            call_id = await self._handshake(stream)
        except asyncio.CancelledError:
            writer.close()
            return
        finally:
            self.pending.pop(task, None)
        if call_id is None or not await self._announced(call_id):
            writer.close()
            return
        capacity = self.config.capacity
        self.admission.max_calls, self.admission.max_reply_ms = capacity.max_calls, capacity.max_reply_ms
        self.engines.speech.max_bytes = capacity.speech_cache_mb * 2**20
        decision = self.admission.decide(len(self.active))
        self.active.add(task)
        self._calls[task] = writer
        try:
            session = CallSession(stream, writer, self.engines, self.brain, self.records, self.ami, self.admission)
            self.sessions[task] = session
            await session.run(turn_away=None if decision.admitted else decision.reason)
        except asyncio.CancelledError:
            pass  # the server is stopping; the call's own cleanup has run
        except Exception:
            log.exception("call failed; other calls are unaffected")
            writer.close()
        finally:
            self.active.discard(task)
            self._calls.pop(task, None)
            self.sessions.pop(task, None)

    async def _handshake(self, stream: FramedReader) -> str | None:
        """The call id, the first frame of every AudioSocket call; None (counted) for anything else."""
        decoder = proto.Decoder()
        seen = bytearray()
        try:
            async with asyncio.timeout(HANDSHAKE_TIMEOUT_S):
                while True:
                    data = await stream.read(4096)
                    if not data:
                        self.unannounced.count("closed" if not seen else "truncated")
                        return None
                    seen += data
                    messages = decoder.feed(data)
                    if messages:
                        break
        except TimeoutError:
            self.unannounced.count("idle")
            return None
        except proto.ProtocolError:
            self.unannounced.count("malformed")
            return None
        except (ConnectionError, OSError):
            self.unannounced.count("closed")
            return None
        if not isinstance(messages[0], proto.CallId):
            self.unannounced.count("malformed")
            return None
        size = proto.HEADER.size + 16
        stream.unread(bytes(seen[:size]), bytes(seen[size:]))  # the call reads its id, then the rest apart
        return str(messages[0].id)

    async def _announced(self, call_id: str) -> bool:
        """Did Asterisk announce this call? With the AMI link down nobody can tell: accept, say so once."""
        wait = ANNOUNCE_WAIT_S if self.unannounced.may_wait() else 0.0
        verdict = await self.ami.announced(call_id, timeout=wait)
        if verdict is None:
            if not self._ami_unchecked_logged:
                self._ami_unchecked_logged = True
                log.warning("AMI %s: AudioSocket calls are accepted without checking that Asterisk announced them",
                            self.ami.state)  # fmt: skip
            return True
        self._ami_unchecked_logged = False
        if not verdict:
            self.unannounced.count("unknown call id")
        return verdict

    async def _summarize(self) -> None:
        """One log line per SUMMARY_S about connections turned away, never one per connection."""
        while True:
            await asyncio.sleep(SUMMARY_S)
            line = self.unannounced.summary()
            if line:
                log.warning("AudioSocket connections not announced by Asterisk in the last %.0f s, closed without "
                            "a call record: %s", SUMMARY_S, line)  # fmt: skip

    def describe(self) -> str:
        """One line for systemd's STATUS= and the log: calls, waiting connections, AMI link."""
        return (
            f"{len(self.active)} call(s), {len(self.pending)} connection(s) waiting for a call id, "
            f"AMI {self.ami.state}, records {self.records.state}"
        )

    def status(self) -> dict:
        return {
            "calls": len(self.active),
            "pending": len(self.pending),
            "ami": self.ami.state,
            "records": self.records.state,
            "loop_max_lag_s": round(self.watchdog.max_lag, 3),
            "unannounced": dict(self.unannounced.total),
        }

    def live(self) -> dict:
        """The /live document: the agent's status and each call in progress (see agent/transport/status.py)."""
        calls = [session.live() for session in self.sessions.values() if session.call_id]
        return {"agent": self.status(), "calls": calls}

    def _stalled(self, seconds: float) -> None:
        """Called from the watchdog thread: the loop is stuck, so let Asterisk hand the callers to humans."""
        for writer in list(self._calls.values()):
            sock = writer.get_extra_info("socket")
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        log.error("event loop stuck %.1f s: %d call(s) handed back to Asterisk (they go to a human)",
                  seconds, len(self._calls))  # fmt: skip

    @property
    def config(self) -> AgentConfig:
        return self.brain.config

    def _build_brain(self, config: AgentConfig) -> Brain:
        llm_path = self.engines.choices[1].path if self.engines.choices else None
        return Brain(config, self.database, llm_path, self.engines.llm)

    async def reload(self, reason: str) -> bool:
        """Load the config again; calls in progress keep theirs. A broken config keeps the old one.
        Read and embedded in a worker thread (seconds for a large knowledge base): the event loop
        keeps every call's audio flowing meanwhile."""
        try:
            brain = await asyncio.to_thread(lambda: self._build_brain(load_config(self.config.directory)))
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
                await self.reload("file changed")

    async def start(self) -> None:
        self._watcher = asyncio.create_task(self._watch_config())
        self._purger = asyncio.create_task(self._purge_periodically())
        self._warm_speech()
        if not await asyncio.to_thread(echo.warm_up):
            log.warning("no echo canceller (livekit's audio processing did not load): the bot's echo may stop it")
        await self.ami.connect()
        self._summary = asyncio.create_task(self._summarize())
        if self.status_server:
            await self.status_server.start()
        self._server = await asyncio.start_server(
            self._handle, self.host, self.port, reuse_address=True, backlog=1024
        )
        log.info("AudioSocket server listening on %s:%s (AMI %s)", self.host, self.port, self.ami.state)
        self.watchdog.start()  # READY=1 to systemd, pings from here on

    async def serve_forever(self) -> None:
        await self.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(self.reload("SIGHUP")))
        await stop.wait()
        log.info("stopping: %d call(s) in progress", len(self.active))
        await self.close()

    async def close(self) -> None:
        self.watchdog.stop()
        for task in (self._watcher, self._purger, self._warming, self._summary):
            if task:
                task.cancel()
        if self._server:
            self._server.close()
        if self.status_server:
            self.status_server.close()
        for task in list(self.active) + list(self.pending):
            task.cancel()
        if self.active:
            await asyncio.wait(self.active, timeout=2)
        self.ami.close()
        await asyncio.to_thread(self.records.close)  # every ended call's record committed


def _config_stamp(directory) -> tuple:
    """(path, mtime, size) of every file under the config directory."""
    return tuple(sorted((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in directory.rglob("*") if p.is_file()))
