"""The brain without the phone: `agent chat` (a text conversation), `agent check` (lint a config),
and scenarios run as text, so admins and tests exercise the same brain a call uses in milliseconds.

A text run uses a real SQLite calendar in a temporary file and the real tools
(webhooks included), so what passes here passes on a call up to what the ASR hears.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

from sqlalchemy import delete

from agent.brain.dates import parse_day
from agent.brain.dialogue import Brain, Dialogue, Reply
from agent.brain.tools.calendar import Calendar, SlotTaken, appointments
from agent.caller.scenario import Scenario, check_expectations, load_scenario
from agent.config import load_config
from agent.store.db import make_engine


def said(reply: Reply) -> str:
    return " ".join(reply.say + ([reply.answer.extractive] if reply.answer else []) + reply.then)


def seed_calendar(calendar: Calendar, scenario: Scenario, now: dt.datetime) -> None:
    """Empty a test calendar and book the scenario's appointments (text runs and real-call suites alike)."""
    with calendar.engine.begin() as db:
        db.execute(delete(appointments))
    for item in scenario.appointments:
        day = parse_day(str(item["day"]), now)
        start = dt.datetime.combine(day, dt.time.fromisoformat(str(item["time"])))
        calendar.book(item.get("phone", scenario.caller_id), item["service"], start, now)


async def run_text_scenario(scenario: Scenario, brain: Brain, now: dt.datetime | None = None) -> dict:
    """One scenario through the brain as text; the report has the shape a real call's report has."""
    now = now or dt.datetime.now()
    if brain.calendar is not None:
        seed_calendar(brain.calendar, scenario, now)
    dialogue = brain.dialogue(scenario.caller_id, lambda: now)
    report = {"scenario": scenario.name, "greeting": brain.config.greeting, "turns": [], "outcome": "completed"}
    opening = await dialogue.opening()
    if opening:
        report["greeting"] += " " + opening
    for turn in scenario.turns:
        if turn.kind == "silence":
            continue
        reply = await (dialogue.on_digits(turn.value) if turn.kind == "dtmf" else dialogue.on_text(turn.value))
        report["turns"].append({"heard": turn.value, "bot": said(reply), "tools": [call.tool for call in reply.tools]})
        if reply.end:
            report["outcome"] = "transferred" if reply.end == "transfer" else "hangup"
            report["transfer_to"] = reply.target
            break
    if report["outcome"] == "hangup" and scenario.expect.get("outcome") == "completed":
        report["outcome"] = "completed"  # the caller said goodbye and the bot hung up: the call ran to its end
    report["failures"] = check_expectations(scenario.expect, report)
    report["passed"] = not report["failures"]
    return report


# text runs happen at one fixed time, so "Friday" is not "tomorrow" on some days and figures reproduce
SUITE_NOW = dt.datetime(2026, 11, 23, 9, 0)  # a Monday morning


def _scenario_files(path: Path) -> list[Path]:
    """A scenario file, or every scenario under a folder."""
    return [path] if path.is_file() else sorted(path.rglob("*.yaml"))


def run_text_suite(directory: Path, out=sys.stdout, now: dt.datetime | None = SUITE_NOW) -> dict:
    """Every scenario under `directory` as text, each with a fresh database; per-config success rates."""
    from agent.examples.servers import example_backends

    # silence and barge-in need a call's timing: those scenarios run as real calls only
    scenarios = [
        s
        for s in (load_scenario(p) for p in _scenario_files(Path(directory)))
        if not any(t.kind == "silence" or t.barge_in_after is not None for t in s.turns)
    ]
    per_config: dict[str, list[bool]] = defaultdict(list)
    reports = []
    with example_backends(), tempfile.TemporaryDirectory(prefix="chat-suite-") as tmp:
        brains: dict[Path, Brain] = {}  # one per config (building one embeds its examples)
        for scenario in scenarios:
            config_dir = scenario.config_dir()
            if config_dir not in brains:
                engine = make_engine(f"sqlite:///{Path(tmp) / f'{config_dir.name}.db'}")
                brains[config_dir] = Brain(load_config(config_dir), engine)
            try:
                report = asyncio.run(run_text_scenario(scenario, brains[config_dir], now))
            except (SlotTaken, ValueError, KeyError) as exc:  # a scenario's setup the config cannot hold
                report = {"scenario": scenario.name, "turns": [], "passed": False,
                          "failures": [f"setup: {type(exc).__name__}: {exc}"]}  # fmt: skip
            report["file"] = str(scenario.path)
            reports.append(report)
            per_config[config_dir.name].append(report["passed"])
            if not report["passed"]:
                print(f"  FAIL {scenario.path}: {'; '.join(report['failures'])}", file=out)
                for turn in report["turns"]:  # what was said, so the admin sees why without a replay
                    tools = f"  [tools: {', '.join(turn['tools'])}]" if turn["tools"] else ""
                    print(f"       caller: {turn['heard']}\n       bot:    {turn['bot']}{tools}", file=out)
    passed = sum(r["passed"] for r in reports)
    rates = {name: f"{sum(v)}/{len(v)}" for name, v in sorted(per_config.items())}
    print(f"text suite: {passed}/{len(reports)} passed; per config: {rates}", file=out)
    return {"scenarios": len(reports), "passed": passed, "per_config": rates, "reports": reports}


def chat(config_dir: Path | None, caller_id: str | None, stdin=sys.stdin, out=sys.stdout) -> int:
    """A text conversation with the brain. Lines starting with '#' are keypad digits ("#4112")."""
    config = load_config(config_dir)
    with tempfile.TemporaryDirectory(prefix="chat-") as tmp:
        brain = Brain(config, make_engine(f"sqlite:///{Path(tmp) / 'chat.db'}"))
        dialogue = brain.dialogue(caller_id)
        print(f"bot: {config.greeting}", file=out)
        opening = asyncio.run(dialogue.opening())
        if opening:
            print(f"bot: {opening}", file=out)
        for line in stdin:
            line = line.strip()
            if not line:
                continue
            reply = asyncio.run(_reply(dialogue, line))
            tools = f"  [tools: {', '.join(c.tool for c in reply.tools)}]" if reply.tools else ""
            print(f"bot: {said(reply)}{tools}", file=out)
            if reply.end:
                print(f"[call ends: {reply.end}{' to ' + reply.target if reply.target else ''}]", file=out)
                return 0
    return 0


async def _reply(dialogue: Dialogue, line: str) -> Reply:
    return await (dialogue.on_digits(line[1:]) if line.startswith("#") else dialogue.on_text(line))


def check(config_dir: Path | None, out=sys.stdout) -> int:
    """Validate a config and list what it does; warn where an example would start another task too."""
    config = load_config(config_dir)
    with tempfile.TemporaryDirectory(prefix="check-") as tmp:
        brain = Brain(config, make_engine(f"sqlite:///{Path(tmp) / 'check.db'}"))
    print(f"{config.directory}: valid. {config.business_name}", file=out)
    print(f"tools: {', '.join(sorted(brain.tools.names)) or 'none'}", file=out)
    print(f"knowledge: {len(brain.knowledge.passages)} passages", file=out)
    warnings = 0
    for task in brain.tasks.values():
        slots = ", ".join(f"{s.name} ({s.type}{'' if s.required else ', optional'})" for s in task.slots) or "none"
        steps = " → ".join(
            f"{k} {v.tool}"
            for k, v in (("lookup", task.lookup), ("prepare", task.prepare), ("action", task.action))
            if v
        )
        print(f"task {task.name}: {task.description}; slots: {slots}; {steps or 'no tool'}", file=out)
        for example in [*task.triggers.examples, *task.triggers.phrases]:
            ranked = brain.matcher.rank(example)
            if ranked and ranked[0].task != task.name:
                warnings += 1
                print(f"  warning: {task.name} example {example!r} starts {ranked[0].task} instead", file=out)
            elif len(ranked) > 1 and ranked[1].via == "phrase":
                print(f"  note: {task.name} example {example!r} also contains a phrase of {ranked[1].task}", file=out)
    print(f"{warnings} warning(s)", file=out)
    return 0
