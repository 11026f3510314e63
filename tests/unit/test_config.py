"""Admin config: the examples load; errors name the file, the line and the field."""

import pytest

from agent.config import CONFIGS_DIR, DEFAULT_CONFIG_DIR, ConfigError, discloses_ai, load_config

BASE = "business_name: X\ngreeting: hi, I am the virtual assistant\npersona: p\n"


@pytest.mark.parametrize("name", sorted(p.name for p in CONFIGS_DIR.iterdir() if (p / "agent.yaml").exists()))
def test_example_configs_load(name):
    config = load_config(CONFIGS_DIR / name)
    assert discloses_ai(config.greeting)
    assert config.transfer_target in config.transfer_targets


def test_default_is_the_clinic():
    assert load_config().directory == DEFAULT_CONFIG_DIR


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("business_name: X\ngreeting: virtual assistant\n", r":1: persona: Field required"),
        (BASE + "colour: red\n", r":4: colour: unknown setting"),
        ("business_name: X\ngreeting: [hi\n", r":3: not valid YAML"),
        ("- a\n- b\n", r":1: top level must be a mapping"),
        (BASE + "endpointing: {end_silence_s: soon}\n", r":4: endpointing.end_silence_s: "),
        (BASE + "endpointing: {bogus: 1}\n", r":4: endpointing.bogus: unknown setting"),
        (
            BASE + "tools:\n  calendar:\n    services: {a: 30}\n    hours:\n      monday: 8-18\n",
            r":8: tools.calendar.hours.monday: hours are",
        ),
        (BASE + "transfer_target: sales\n", r"transfer_target 'sales' is not one of transfer_targets"),
        (
            BASE
            + "tools:\n  webhooks:\n    - {name: crm, description: d, url: 'http://example.com/x', parameters: {}, say: ok}\n",
            r"host example.com is not in tools.allowed_hosts",
        ),
        (BASE + "silence_timeout_s: -1\n", r":4: silence_timeout_s: Input should be greater than 0"),
        (
            "business_name: X\ngreeting: hi\npersona: p\n",
            r":2: greeting: .*must tell callers they speak with a machine",
        ),
        (BASE + "privacy: {keep_numbers: ['(']}\n", r":4: privacy: .*keep_numbers: '\(' is not a regular expression"),
        (BASE + "privacy: {retention: {transcripts_days: -1}}\n", r":4: privacy.retention.transcripts_days: "),
    ],
)
def test_errors_name_file_line_and_field(tmp_path, text, message):
    (tmp_path / "agent.yaml").write_text(text)
    with pytest.raises(ConfigError, match=message) as info:
        load_config(tmp_path)
    assert str(info.value).startswith(str(tmp_path / "agent.yaml") + ":")


def test_missing_directory(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "nope")


def test_opening_hours_take_several_ranges_and_refuse_one_past_midnight():
    import pydantic

    from agent.config import OpeningHours

    assert OpeningHours(friday="12:00-14:30, 17:30-22:00").friday == "12:00-14:30, 17:30-22:00"
    with pytest.raises(pydantic.ValidationError, match="ends before it starts"):
        OpeningHours(friday="18:00-02:00")
