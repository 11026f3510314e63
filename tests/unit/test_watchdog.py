"""The watchdog: sd_notify over a real unix datagram socket, and a stalled loop noticed from a thread."""

import asyncio
import logging
import socket
import time

from agent.transport import watchdog
from agent.transport.watchdog import LoopWatchdog, sd_notify, watchdog_interval


def _systemd(tmp_path, monkeypatch):
    path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.setblocking(False)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    return sock


def _received(sock) -> list[str]:
    out = []
    while True:
        try:
            out.append(sock.recv(4096).decode())
        except BlockingIOError:
            return out


def test_sd_notify_without_systemd_is_a_no_op(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert sd_notify("READY=1") is False


def test_sd_notify_sends_one_datagram(tmp_path, monkeypatch):
    sock = _systemd(tmp_path, monkeypatch)
    assert sd_notify("READY=1")
    assert _received(sock) == ["READY=1"]


def test_watchdog_interval_is_half_of_watchdog_sec(monkeypatch):
    monkeypatch.setenv("WATCHDOG_USEC", "4000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    assert watchdog_interval() == 2.0
    monkeypatch.setenv("WATCHDOG_PID", "1")  # meant for another process
    assert watchdog_interval() is None


async def test_pings_only_while_the_loop_runs_and_a_stall_is_logged_once_with_its_stack(tmp_path, monkeypatch, caplog):
    sock = _systemd(tmp_path, monkeypatch)
    monkeypatch.setenv("WATCHDOG_USEC", "400000")  # ping every 0.2 s
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    monkeypatch.setattr(watchdog, "BEAT_S", 0.05)
    stalled: list[float] = []
    dog = LoopWatchdog(stall_s=0.5, handback_s=1.0, on_stall=stalled.append, status=lambda: "0 calls, AMI up")
    caplog.set_level(logging.INFO, logger="agent.transport.watchdog")
    dog.start()
    try:
        await asyncio.sleep(1.0)
        before = _received(sock)
        assert before[0].startswith("READY=1") and "WATCHDOG=1" in before
        time.sleep(1.6)  # a blocking bug: the loop does not run
        during = _received(sock)
        await asyncio.sleep(0.6)
    finally:
        dog.stop()
    assert "WATCHDOG=1" not in during  # nothing was pinged while the loop stood still
    assert stalled and stalled[0] >= 1.0  # the calls were handed back once
    messages = [r.getMessage() for r in caplog.records]
    stall_lines = [m for m in messages if "event loop stalled" in m]
    assert len(stall_lines) == 1
    assert "time.sleep(1.6)" in stall_lines[0]  # the stack shows where the loop is stuck
    assert any("runs again" in m for m in messages)
