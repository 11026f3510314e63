"""The scenario suite as real calls through Asterisk.

CI runs the original 33 calls of the clinic and the shop (their success rate must stay at or
above 90 %) and a sample of the garage's and the utility's calls; the whole suite (101 calls,
about 35 minutes) runs with `python -m agent bench --scenarios scenarios`, and every scenario runs
through the brain as text in tests/unit/test_scenarios_text.py.
"""

import shutil

import pytest

from agent.caller.suite import run_suite
from agent.config import PROJECT_ROOT

pytestmark = pytest.mark.e2e
TARGET = 0.90
SCENARIOS = PROJECT_ROOT / "scenarios"
SAMPLE_PER_NEW_CONFIG = 4


def report(result, capsys, label):
    with capsys.disabled():
        print(f"\n{label}: {result['passed']}/{result['scenarios']} = {result['success_rate']:.0%}")
        for failure in result["failures"]:
            print(f"  FAIL {failure['scenario']}: {'; '.join(failure['failures'])}")


def test_the_original_scenarios_meet_the_success_target(tmp_path, capsys):
    for config in ("clinic", "shop"):  # the top level only: paraphrased/ are the new wordings
        (tmp_path / config).mkdir()
        for path in sorted((SCENARIOS / config).glob("*.yaml")):
            shutil.copy(path, tmp_path / config / path.name)
    result = run_suite(tmp_path)
    report(result, capsys, "original scenarios as real calls")
    assert result["scenarios"] >= 33
    assert result["success_rate"] >= TARGET, result["failures"]


def test_a_sample_of_the_new_deployments_as_real_calls(tmp_path, capsys):
    for config in ("garage", "utility"):
        (tmp_path / config).mkdir()
        for path in sorted((SCENARIOS / config).glob("*.yaml"))[:SAMPLE_PER_NEW_CONFIG]:
            shutil.copy(path, tmp_path / config / path.name)
    result = run_suite(tmp_path)
    report(result, capsys, "garage and utility sample as real calls")
    assert result["scenarios"] == 2 * SAMPLE_PER_NEW_CONFIG
    assert result["passed"] >= 1, result["failures"]  # the calls run end to end; the rate is reported
