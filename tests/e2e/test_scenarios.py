"""The scenario suite as real calls: task success rate must meet the target (≥ 90 %)."""

import pytest

from agent.caller.suite import run_suite
from agent.config import PROJECT_ROOT

pytestmark = pytest.mark.e2e
TARGET = 0.90


def test_scenario_suite_meets_the_success_target(capsys):
    result = run_suite(PROJECT_ROOT / "scenarios")
    with capsys.disabled():
        print(f"\nscenario suite: {result['passed']}/{result['scenarios']} = {result['success_rate']:.0%}")
        for failure in result["failures"]:
            print(f"  FAIL {failure['scenario']}: {'; '.join(failure['failures'])}")
    assert result["scenarios"] >= 25
    assert result["success_rate"] >= TARGET, result["failures"]
