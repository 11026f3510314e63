"""Fault suite: real Asterisk, real agent processes, real sockets and databases.

Each test prints its figure (time to human, calls lost, records lost) as a
line starting with FAULT; none asserts a timing. Run: pytest -m faults -s.
"""

from __future__ import annotations

import asyncio
import subprocess
import time

import pytest
from panoramisk import Manager

from agent.caller.runner import CallerVoice, TemporaryAgent
from agent.config import DEFAULT_CONFIG_DIR, PROJECT_ROOT, load_box_settings


def figure(name: str, **values) -> None:
    print(f"\nFAULT {name}: " + ", ".join(f"{k}={v}" for k, v in values.items()), flush=True)


@pytest.fixture(scope="session")
def box():
    subprocess.run(["bash", str(PROJECT_ROOT / "scripts" / "asterisk.sh"), "start"], check=True)
    return load_box_settings()


@pytest.fixture(scope="session")
def voice():
    return CallerVoice()


@pytest.fixture
def agent(box, tmp_path):
    process = TemporaryAgent(DEFAULT_CONFIG_DIR, database=f"sqlite:///{tmp_path / 'agent.db'}")
    process.start()
    yield process
    process.stop()


class Watch:
    """Asterisk's UserEvents with the time they arrived (HumanFallback = the caller is on the way to a human)."""

    def __init__(self, box) -> None:
        self.box = box
        self.events: list[tuple[float, dict]] = []
        self.manager: Manager | None = None

    async def __aenter__(self) -> Watch:
        self.manager = Manager(
            host="127.0.0.1", port=self.box.ami_port, username=self.box.ami_user, secret=self.box.ami_secret,
            ping_delay=0,
        )  # fmt: skip
        self.manager.register_event("UserEvent", lambda _m, e: self.events.append((time.monotonic(), dict(e))))
        await asyncio.wait_for(self.manager.connect(), 5)
        return self

    async def __aexit__(self, *exc) -> None:
        self.manager.close()

    def first(self, name: str, after: float = 0.0) -> float | None:
        return next((t for t, e in self.events if e.get("UserEvent") == name and t >= after), None)


def scenario(tmp_path, text):
    from agent.caller.scenario import load_scenario

    path = tmp_path / "scenario.yaml"
    path.write_text(text)
    return load_scenario(path)
