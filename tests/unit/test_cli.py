"""The CLI turns bad input into one clear line and exit code 2, never a traceback."""

import os
import subprocess
import sys

from agent.config import PROJECT_ROOT


def run(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "agent", *args],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def test_broken_config_names_the_file(tmp_path):
    (tmp_path / "agent.yaml").write_text("business_name: X\ngreeting: [oops\n")
    result = run("run", "--config", str(tmp_path))
    assert result.returncode == 2
    assert f"config error: {tmp_path / 'agent.yaml'}:" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_model_says_how_to_install(tmp_path):
    result = run("run", env={"PHONE_AGENT_LLM_MODEL": str(tmp_path / "absent.gguf")})
    assert result.returncode == 2
    assert "model missing" in result.stderr and "python -m agent models" in result.stderr
    assert "Traceback" not in result.stderr


def test_models_list_shows_each_role():
    result = run("models", "--list")
    assert result.returncode == 0
    for role in ("ASR", "LLM", "TTS"):
        assert role in result.stdout
