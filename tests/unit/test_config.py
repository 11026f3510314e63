"""Admin config: valid example loads; errors name the file, line and field."""

import pytest

from agent.config import DEFAULT_CONFIG_DIR, ConfigError, load_config


def test_default_config_loads():
    config = load_config(DEFAULT_CONFIG_DIR)
    assert "virtual assistant" in config.greeting
    assert config.business_name in config.system_prompt()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("business_name: X\ngreeting: hi\n", "field 'persona' is required"),
        ("business_name: X\ngreeting: hi\npersona: p\ncolour: red\n", "unknown field.*colour"),
        ("business_name: X\ngreeting: [hi\n", r"agent.yaml:\d+: not valid YAML"),
        ("- a\n- b\n", "top level must be a mapping"),
        ("business_name: X\ngreeting: hi\npersona: p\nendpointing: {end_silence_s: soon}\n", "must be numbers"),
    ],
)
def test_errors_name_file_and_field(tmp_path, text, message):
    (tmp_path / "agent.yaml").write_text(text)
    with pytest.raises(ConfigError, match=message) as info:
        load_config(tmp_path)
    assert str(tmp_path / "agent.yaml") in str(info.value)


def test_missing_directory(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "nope")
