"""The Deployment page's work: what the active config holds, its validation, test calls, uploads.

Validation runs `python -m agent check` in a child process (cached until a file in
the config changes), so the console shows exactly the file:line errors and
warnings the CLI gives without loading the brain's models itself. A test call
is `python -m agent.console.testcall`: one scripted scenario through the real
Asterisk with the existing runner, also in a child process, so the caller's
speech model never lives in the console. An upload is written atomically into
the config's knowledge directory, where the agent's file watcher reloads it
like any edit.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import re
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from agent.brain.knowledge import SUFFIXES
from agent.config import PROJECT_ROOT, ConfigError, load_config

MAX_UPLOAD = 1 << 20  # a knowledge document larger than 1 MiB is not a phone answer
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


class UploadError(ValueError):
    pass


def _fingerprint(directory: Path) -> tuple:
    return tuple(sorted((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in directory.rglob("*") if p.is_file()))


def describe(config_dir: Path) -> dict:
    """Tasks, tools and knowledge files of the config, or the error that stops it loading."""
    try:
        config = load_config(config_dir)
    except ConfigError as exc:
        return {"error": str(exc), "tasks": [], "tools": [], "knowledge": _knowledge_files(config_dir / "knowledge")}
    from agent.brain.tools import known_tools

    tasks = [
        {
            "name": task.name,
            "description": task.description,
            "slots": [f"{s.name} ({s.type})" for s in task.slots],
            "tools": [step.tool for step in (task.lookup, task.prepare, task.action) if step is not None],
        }
        for task in config.tasks
    ]
    return {
        "error": None,
        "business_name": config.business_name,
        "tasks": tasks,
        "tools": sorted(known_tools(config.tools)),
        "webhooks": [{"name": h.name, "url": h.url} for h in config.tools.webhooks],
        "knowledge": _knowledge_files(config.knowledge_dir),
        "record_calls": config.privacy.record_calls,
    }


def _knowledge_files(directory: Path) -> list[dict]:
    if not directory.is_dir():
        return []
    return [
        {"name": p.name, "bytes": p.stat().st_size,
         "modified": dt.datetime.fromtimestamp(p.stat().st_mtime, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")}
        for p in sorted(directory.iterdir()) if p.is_file() and p.suffix.lower() in SUFFIXES
    ]  # fmt: skip


class Checker:
    """`python -m agent check --config DIR` in the background, rerun only when a file in DIR changed.

    `result()` never waits for the check (a few seconds: it builds the brain); until
    the first one finishes it says so, and a page showing that reloads itself.
    """

    def __init__(self, config_dir: Path) -> None:
        self.config_dir = config_dir
        self._done: tuple[tuple, dict] | None = None
        self._running: tuple | None = None

    def result(self) -> dict:
        stamp = _fingerprint(self.config_dir)
        if self._done and self._done[0] == stamp:
            return self._done[1]
        if self._running != stamp:
            self._running = stamp
            asyncio.get_running_loop().create_task(self._check(stamp))
        return self._done[1] if self._done else {"ok": None, "pending": True, "output": "", "errors": []}

    async def _check(self, stamp: tuple) -> None:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "agent", "check", "--config", str(self.config_dir),
            cwd=PROJECT_ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            out, err = await asyncio.wait_for(process.communicate(), 120)
        except TimeoutError:
            process.kill()
            out, err = b"", b"config error: python -m agent check did not finish in 120 s"
        errors = [line.removeprefix("config error: ") for line in err.decode().splitlines()
                  if line.startswith("config error:")]  # fmt: skip
        if process.returncode != 0 and not errors:
            errors = err.decode().strip().splitlines()[-3:]
        self._done = (stamp, {"ok": process.returncode == 0, "output": out.decode(), "errors": errors})
        if self._running == stamp:
            self._running = None


def scenarios_for(config_dir: Path) -> list[Path]:
    """The config's scripted calls that need no seeded calendar (a test must not touch real bookings)."""
    from agent.caller.scenario import ScenarioError, load_scenario

    directory = PROJECT_ROOT / "scenarios" / config_dir.name
    found = []
    for path in sorted(directory.glob("*.yaml")):
        try:
            if not load_scenario(path).appointments:
                found.append(path)
        except ScenarioError:
            continue
    return found


@dataclass
class TestCall:
    scenario: str
    started_by: str
    started_at: str
    state: str = "running"  # running | passed | failed | error
    report: dict = field(default_factory=dict)
    error: str | None = None


class TestCalls:
    """One test call at a time (a second click while one runs is refused)."""

    def __init__(self, agent_address: str | None, database: str | None) -> None:
        self.agent_address = agent_address  # AudioSocket address for X-Agent-Address; None: the box's agent
        self.database = database
        self.current: TestCall | None = None
        self._task: asyncio.Task | None = None

    @property
    def running(self) -> bool:
        return self.current is not None and self.current.state == "running"

    def start(self, scenario: Path, user: str, on_done) -> TestCall:
        self.current = TestCall(scenario.name, user, dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"))
        self._task = asyncio.create_task(self._run(scenario, self.current, on_done))
        return self.current

    async def _run(self, scenario: Path, job: TestCall, on_done) -> None:
        cmd = [sys.executable, "-m", "agent.console.testcall", "--script", str(scenario)]
        if self.agent_address:
            cmd += ["--agent-address", self.agent_address]
        if self.database:
            cmd += ["--database", self.database]
        try:
            process = await asyncio.create_subprocess_exec(
                *cmd, cwd=PROJECT_ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
            )
            out, err = await asyncio.wait_for(process.communicate(), 300)
            if process.returncode == 2 or not out.strip():
                job.state, job.error = "error", (err.decode().strip().splitlines() or ["no report"])[-1]
            else:
                job.report = json.loads(out)
                job.state = "passed" if job.report.get("passed") else "failed"
        except (TimeoutError, OSError, ValueError) as exc:
            job.state, job.error = "error", f"{type(exc).__name__}: {exc}"
        on_done(job)


def save_upload(knowledge_dir: Path, filename: str, data: bytes) -> Path:
    """Write a knowledge document atomically (the agent's watcher never sees half a file)."""
    name = os.path.basename(filename or "")
    if not _SAFE_NAME.match(name) or Path(name).suffix.lower() not in SUFFIXES:
        raise UploadError(
            f"a knowledge document is a {' or '.join(SUFFIXES)} file with a plain name (letters, digits, . _ -)"
        )
    if len(data) > MAX_UPLOAD:
        raise UploadError(f"the file is larger than {MAX_UPLOAD >> 20} MiB")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        raise UploadError("the file is not UTF-8 text") from None
    knowledge_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=knowledge_dir, prefix=".upload-", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, knowledge_dir / name)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return knowledge_dir / name
