"""Every scenario through the brain as text (real tools, real example backends, SQLite): seconds, not minutes.

The original clinic and shop scenarios must all pass; the whole suite (new wordings, the garage and
the utility, written before the rules were tuned) must not fall below its measured rate.
"""

import io

from agent.brain.chat import run_text_suite
from agent.config import PROJECT_ROOT

SCENARIOS = PROJECT_ROOT / "scenarios"
FLOOR = 0.93  # measured 172/181 (95.0 %) over nine configs, restaurant, townhall and plumber written blind (docs/benchmarks.md)


def test_scenarios_as_text():
    out = io.StringIO()
    result = run_text_suite(SCENARIOS, out=out)
    print(out.getvalue())
    original = [
        r
        for r in result["reports"]
        if "paraphrased" not in r["file"] and ("/clinic/" in r["file"] or "/shop/" in r["file"])
    ]
    assert len(original) >= 28  # the 33 minus those that need a call's timing (silence, barge-in)
    assert all(r["passed"] for r in original), [r["failures"] for r in original if not r["passed"]]
    assert result["passed"] / result["scenarios"] >= FLOOR, out.getvalue()
