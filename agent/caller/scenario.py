"""Scenario files for scripted test calls: load, validate, check expectations."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

TURN_KINDS = ("say", "dtmf", "silence")
TURN_OPTIONS = ("barge_in_after",)
EXPECT_KEYS = ("outcome", "transfer_to", "tools", "said_any", "said_none", "heard_any")
OUTCOMES = ("completed", "transferred", "hangup")


class ScenarioError(Exception):
    pass


@dataclass(frozen=True)
class Turn:
    kind: str  # say | dtmf | silence
    value: str | float
    barge_in_after: float | None = None


@dataclass(frozen=True)
class Scenario:
    name: str
    path: Path
    turns: list[Turn]
    caller_id: str = "+15550100"
    expect: dict = field(default_factory=dict)
    config: str | None = None  # a name under configs/ or a path; None: the default
    appointments: list[dict] = field(default_factory=list)  # booked before the call (test agents only)

    def config_dir(self) -> Path:
        from agent.config import CONFIGS_DIR, DEFAULT_CONFIG_DIR

        if not self.config:
            return DEFAULT_CONFIG_DIR
        candidate = Path(self.config)
        return candidate if candidate.is_dir() else CONFIGS_DIR / self.config


def load_scenario(path: Path) -> Scenario:
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ScenarioError(f"{path}{f':{mark.line + 1}' if mark else ''}: not valid YAML") from None
    if not isinstance(raw, dict):
        raise ScenarioError(f"{path}: a scenario is a mapping with name, turns and expect")
    unknown = set(raw) - {"name", "caller_id", "turns", "expect", "description", "config", "setup"}
    if unknown:
        raise ScenarioError(f"{path}: unknown key(s) {', '.join(sorted(unknown))}")
    turns = []
    for index, item in enumerate(raw.get("turns") or []):
        where = f"{path}: turns[{index}]"
        if not isinstance(item, dict):
            raise ScenarioError(f"{where}: each turn is a mapping like {{say: ...}}")
        kinds = [k for k in item if k in TURN_KINDS]
        extra = set(item) - set(TURN_KINDS) - set(TURN_OPTIONS)
        if len(kinds) != 1 or extra:
            raise ScenarioError(
                f"{where}: needs exactly one of {', '.join(TURN_KINDS)} (options: {', '.join(TURN_OPTIONS)})"
            )
        kind = kinds[0]
        value = item[kind]
        if kind == "silence":
            if not isinstance(value, int | float) or value < 0:
                raise ScenarioError(f"{where}: silence is a number of seconds")
            value = float(value)
        else:
            value = str(value)
            if kind == "dtmf" and not all(c in "0123456789*#ABCD" for c in value.upper()):
                raise ScenarioError(f"{where}: dtmf takes digits 0-9 * # A-D")
        barge = item.get("barge_in_after")
        if barge is not None and (not isinstance(barge, int | float) or kind != "say"):
            raise ScenarioError(f"{where}: barge_in_after is seconds, on a say turn")
        turns.append(Turn(kind, value, None if barge is None else float(barge)))
    if not turns:
        raise ScenarioError(f"{path}: turns: at least one turn is needed")
    expect = raw.get("expect") or {}
    if not isinstance(expect, dict) or set(expect) - set(EXPECT_KEYS):
        raise ScenarioError(f"{path}: expect takes {', '.join(EXPECT_KEYS)}")
    if "outcome" in expect and expect["outcome"] not in OUTCOMES:
        raise ScenarioError(f"{path}: expect.outcome is one of {', '.join(OUTCOMES)}")
    setup = raw.get("setup") or {}
    if not isinstance(setup, dict) or set(setup) - {"appointments"}:
        raise ScenarioError(f"{path}: setup takes appointments: [{{service, day, time, phone}}]")
    for index, item in enumerate(setup.get("appointments") or []):
        if not isinstance(item, dict) or not {"service", "day", "time"} <= set(item):
            raise ScenarioError(f"{path}: setup.appointments[{index}] needs service, day and time")
    return Scenario(
        name=str(raw.get("name") or Path(path).stem),
        path=Path(path),
        turns=turns,
        caller_id=str(raw.get("caller_id") or "+15550100"),
        expect=expect,
        config=str(raw["config"]) if raw.get("config") else None,
        appointments=list(setup.get("appointments") or []),
    )


def check_expectations(expect: dict, report: dict) -> list[str]:
    """Return one failure message per expectation that does not hold."""
    failures = []
    bot_texts = [report.get("greeting") or ""] + [t.get("bot") or "" for t in report["turns"]]
    said = " \n".join(bot_texts).lower()
    if "outcome" in expect and report["outcome"] != expect["outcome"]:
        failures.append(f"outcome: expected {expect['outcome']}, got {report['outcome']}")
    if "transfer_to" in expect and report.get("transfer_to") != expect["transfer_to"]:
        failures.append(f"transfer_to: expected {expect['transfer_to']}, got {report.get('transfer_to')}")
    used_tools = {tool for turn in report["turns"] for tool in turn.get("tools", [])}
    for tool in expect.get("tools") or []:
        if tool not in used_tools:
            failures.append(f"tools: {tool} was not called")
    if expect.get("said_any") and not any(w.lower() in said for w in expect["said_any"]):
        failures.append(f"said_any: the bot said none of {expect['said_any']}")
    for word in expect.get("said_none") or []:
        if word.lower() in said:
            failures.append(f"said_none: the bot said {word!r}")
    heard = " ".join(t.get("heard") or "" for t in report["turns"]).lower()
    if expect.get("heard_any") and not any(w.lower() in heard for w in expect["heard_any"]):
        failures.append(f"heard_any: the agent heard none of {expect['heard_any']}")
    return failures
