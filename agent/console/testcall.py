"""One scripted call through the real Asterisk for the console's "test" button; prints the report as JSON.

A child process of the console (agent/console/deployment.py), so the caller's
Piper voice is loaded only while a test runs. Exit 0: the call ran (passed or
not, see the report); 2: it could not be placed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from agent.caller.runner import CallerVoice, place_call
from agent.caller.scenario import ScenarioError, load_scenario
from agent.caller.sip import SipError
from agent.config import load_box_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agent.console.testcall")
    parser.add_argument("--script", type=Path, required=True)
    parser.add_argument("--agent-address", help="the agent's AudioSocket address (default: the box's agent)")
    parser.add_argument("--database", help="the database the agent writes its call record to")
    args = parser.parse_args(argv)
    try:
        scenario = load_scenario(args.script)
        report = asyncio.run(
            place_call(scenario, load_box_settings(), CallerVoice(), args.agent_address, database=args.database)
        )
    except (ScenarioError, SipError, RuntimeError, OSError) as exc:
        print(f"test call error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(report, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
