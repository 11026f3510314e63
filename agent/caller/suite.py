"""Run a directory of scenarios as real calls and report the task success rate.

One temporary agent per config, each with its own fresh database; before each
scenario the calendar is emptied and the scenario's appointments are booked,
so scenarios do not depend on each other or on the appliance's real data.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

from agent.brain.chat import seed_calendar
from agent.brain.tools.calendar import Calendar
from agent.caller.runner import CallerVoice, TemporaryAgent, place_call
from agent.caller.scenario import Scenario, load_scenario
from agent.config import load_box_settings, load_config
from agent.examples.servers import example_backends
from agent.store.db import make_engine


def find_scenarios(directory: Path) -> list[Scenario]:
    return [load_scenario(path) for path in sorted(directory.rglob("*.yaml"))]


def seed(scenario: Scenario, database_url: str) -> None:
    """Empty the test calendar and book the scenario's appointments."""
    config = load_config(scenario.config_dir())
    engine = make_engine(database_url)
    if config.tools.calendar:
        seed_calendar(Calendar(engine, config.tools.calendar), scenario, dt.datetime.now())
    engine.dispose()


async def _run_group(scenarios: list[Scenario], agent: TemporaryAgent, voice: CallerVoice, out) -> list[dict]:
    box = load_box_settings()
    reports = []
    for scenario in scenarios:
        seed(scenario, agent.database)
        try:
            report = await place_call(scenario, box, voice, agent.address, database=agent.database)
        except Exception as exc:  # one broken call is a failed scenario, not a failed suite
            report = {"scenario": scenario.name, "passed": False, "failures": [f"call error: {exc}"], "turns": []}
        report["file"] = str(scenario.path)
        reports.append(report)
        mark = "PASS" if report["passed"] else "FAIL"
        print(
            f"  {mark} {scenario.name}" + ("" if report["passed"] else f": {'; '.join(report['failures'])}"), file=out
        )
    return reports


def run_suite(directory: Path, out=sys.stderr) -> dict:
    scenarios = find_scenarios(directory)
    groups: dict[Path, list[Scenario]] = defaultdict(list)
    for scenario in scenarios:
        groups[scenario.config_dir()].append(scenario)
    voice = CallerVoice()
    reports: list[dict] = []
    with example_backends(groups), tempfile.TemporaryDirectory(prefix="scenario-db-") as tmp:
        for config_dir, group in groups.items():
            print(f"{config_dir.name}: {len(group)} scenario(s)", file=out)
            agent = TemporaryAgent(config_dir, database=f"sqlite:///{Path(tmp) / (config_dir.name + '.db')}")
            agent.start()
            try:
                reports += asyncio.run(_run_group(group, agent, voice, out))
            finally:
                agent.stop()
    passed = sum(r["passed"] for r in reports)
    return {
        "scenarios": len(reports),
        "passed": passed,
        "success_rate": round(passed / len(reports), 4) if reports else 0.0,
        "failures": [
            {"scenario": r["scenario"], "file": r["file"], "failures": r["failures"]}
            for r in reports
            if not r["passed"]
        ],
        "reports": reports,
    }
