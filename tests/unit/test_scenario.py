"""Scenario files: validation messages and expectation checks."""

import pytest

from agent.caller.scenario import ScenarioError, check_expectations, load_scenario


def write(tmp_path, text):
    path = tmp_path / "s.yaml"
    path.write_text(text)
    return path


def test_full_example_loads(tmp_path):
    scenario = load_scenario(
        write(
            tmp_path,
            """
name: opening-hours
caller_id: "+15550100"
turns:
  - say: "Hi, are you open on Saturday?"
  - dtmf: "0"
  - silence: 4
  - say: "Wait, actually Monday."
    barge_in_after: 0.5
expect:
  outcome: completed
  transfer_to: humans
  tools: [book_appointment]
  said_any: ["Saturday"]
  said_none: ["guarantee"]
""",
        )
    )
    assert [t.kind for t in scenario.turns] == ["say", "dtmf", "silence", "say"]
    assert scenario.turns[3].barge_in_after == 0.5
    assert scenario.turns[2].value == 4.0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("turns: [{shout: hi}]", r"turns\[0\]: needs exactly one of"),
        ("turns: [{dtmf: '9x'}]", "dtmf takes digits"),
        ("turns: [{silence: -1}]", "silence is a number"),
        ("turns: [{dtmf: '1', barge_in_after: 1}]", "barge_in_after"),
        ("turns: []", "at least one turn"),
        ("turns: [{say: hi}]\nexpect: {outcome: maybe}", "expect.outcome"),
        ("turns: [{say: hi}]\nbogus: 1", "unknown key"),
        ("turns: [say: hi\n", "not valid YAML"),
    ],
)
def test_invalid_scenarios_name_the_problem(tmp_path, text, message):
    with pytest.raises(ScenarioError, match=message):
        load_scenario(write(tmp_path, text))


def test_expectations():
    report = {
        "outcome": "transferred",
        "transfer_to": "humans",
        "greeting": "Hello, virtual assistant here",
        "turns": [{"bot": "We open at 8 on Saturday", "heard": "are you open", "tools": ["lookup"]}],
    }
    assert check_expectations({"outcome": "transferred", "said_any": ["saturday"], "tools": ["lookup"]}, report) == []
    failures = check_expectations(
        {
            "outcome": "completed",
            "said_none": ["Saturday"],
            "transfer_to": "sales",
            "tools": ["book"],
            "heard_any": ["bye"],
        },
        report,
    )
    assert len(failures) == 5
