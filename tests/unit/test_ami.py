"""The AMI link comes up whenever Asterisk does, and reports its state.

A small AMI server on a real loopback socket stands in for Asterisk (login,
ping, Setvar, UserEvent); it can be started late, stopped, restarted and made
to go silent, which is what a real Asterisk does on start-up, restart and hang.
"""

import asyncio
import logging
import socket

import pytest

from agent.config import BoxSettings
from agent.telephony import ami as ami_module
from agent.telephony.ami import AmiLink


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class FakeAsterisk:
    def __init__(self, port: int, secret: str = "s3cret") -> None:
        self.port = port
        self.secret = secret
        self.server: asyncio.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []
        self.silent = False
        self.setvars: list[dict] = []

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port, reuse_address=True)

    async def stop(self) -> None:
        if self.server:
            self.server.close()
        for writer in self.writers:
            writer.close()
        self.writers.clear()
        if self.server:
            await self.server.wait_closed()
            self.server = None

    def event(self, **fields) -> None:
        text = "".join(f"{k}: {v}\r\n" for k, v in {"Event": "UserEvent", **fields}.items()) + "\r\n"
        for writer in self.writers:
            writer.write(text.encode())

    async def _serve(self, reader, writer) -> None:
        self.writers.append(writer)
        writer.write(b"Asterisk Call Manager/7.0.3\r\n")
        try:
            while True:
                block = await reader.readuntil(b"\r\n\r\n")
                action = dict(
                    line.split(": ", 1) for line in block.decode().strip().split("\r\n") if ": " in line
                )
                if self.silent:
                    continue
                reply = {"Response": "Success", "ActionID": action.get("ActionID", "")}
                name = action.get("Action", "").lower()
                if name == "login" and action.get("Secret") != self.secret:
                    reply.update(Response="Error", Message="Authentication failed")
                elif name == "login":
                    reply["Message"] = "Authentication accepted"
                elif name == "ping":
                    reply["Ping"] = "Pong"
                elif name == "setvar":
                    self.setvars.append(action)
                writer.write(("".join(f"{k}: {v}\r\n" for k, v in reply.items()) + "\r\n").encode())
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            writer.close()


@pytest.fixture
def fast(monkeypatch):
    monkeypatch.setattr(ami_module, "BACKOFF_MAX_S", 0.4)
    monkeypatch.setattr(ami_module, "PING_INTERVAL_S", 0.3)
    monkeypatch.setattr(ami_module, "PING_TIMEOUT_S", 0.5)
    monkeypatch.setattr(ami_module, "GRACE_AFTER_UP_S", 0.0)


async def _until(predicate, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


async def test_down_at_start_then_up_then_lost_then_back(fast, caplog):
    port = _free_port()
    asterisk = FakeAsterisk(port)
    link = AmiLink(BoxSettings(ami_port=port, ami_user="agent", ami_secret="s3cret"))
    caplog.set_level(logging.INFO, logger="agent.telephony.ami")
    try:
        assert await link.connect(wait=1.0) is False
        assert link.state == "down"
        await asyncio.sleep(1.5)  # several attempts while Asterisk is down: one log line
        await asterisk.start()
        await _until(lambda: link.up)

        call = "6f1c2d3e-0000-4000-8000-00000000abcd"
        asterisk.event(UserEvent="AgentCall", AgentUUID=call, Channel="PJSIP/x-1", CallerIDNum="5550100")
        assert await link.announced(call, timeout=2.0) is True
        assert await link.set_vars(call, {"AGENT_ACTION": "hangup"})
        assert asterisk.setvars[-1]["Variable"] == "AGENT_ACTION"
        assert await link.announced("00000000-0000-4000-8000-000000000000", timeout=0.2) is False

        await asterisk.stop()
        await _until(lambda: link.state == "down")
        assert await link.announced("00000000-0000-4000-8000-000000000000", timeout=0.2) is None  # cannot tell
        await asyncio.sleep(1.0)
        await asterisk.start()
        await _until(lambda: link.up)
        assert link.connects == 2
        call2 = "6f1c2d3e-0000-4000-8000-00000000beef"
        asterisk.event(UserEvent="AgentCall", AgentUUID=call2, Channel="PJSIP/x-2", CallerIDNum="5550101")
        info = await link.channel_info(call2, timeout=2.0)
        assert info and info["channel"] == "PJSIP/x-2"
        assert await link.set_vars(call2, {"AGENT_ACTION": "transfer"})  # hand-back works without a restart
    finally:
        link.close()
        await asterisk.stop()
    lines = [r.getMessage() for r in caplog.records if r.name == "agent.telephony.ami"]
    assert sum("not reachable" in line for line in lines) == 1, lines  # one line per state change
    assert sum("AMI lost" in line for line in lines) == 1, lines
    assert sum("up again" in line for line in lines) == 2, lines  # after the start, after the loss


async def test_a_silent_asterisk_is_noticed_by_the_ping(fast):
    port = _free_port()
    asterisk = FakeAsterisk(port)
    await asterisk.start()
    link = AmiLink(BoxSettings(ami_port=port, ami_secret="s3cret"))
    try:
        assert await link.connect(wait=3.0)
        asterisk.silent = True  # kill -STOP: the socket stays open, nothing answers
        await _until(lambda: link.state == "down")
        asterisk.silent = False
        await _until(lambda: link.up)
    finally:
        link.close()
        await asterisk.stop()


async def test_wrong_secret_is_refused_and_retried(fast):
    port = _free_port()
    asterisk = FakeAsterisk(port, secret="right")
    await asterisk.start()
    link = AmiLink(BoxSettings(ami_port=port, ami_secret="wrong"))
    try:
        assert await link.connect(wait=3.0) is False
        assert link.state == "refused"
    finally:
        link.close()
        await asterisk.stop()


def test_no_credentials_means_disabled():
    assert AmiLink(BoxSettings(ami_secret="")).state == "disabled"
