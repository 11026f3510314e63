"""`agent doctor` against the real box: every check passes here, and a broken login is named with its fix."""

import os
import subprocess
import sys

import pytest

from agent.config import BOX_DIR, PROJECT_ROOT

pytestmark = pytest.mark.e2e


def doctor(env=None, *args):
    return subprocess.run(
        [sys.executable, "-m", "agent", "doctor", *args],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
    )


def test_doctor_passes_on_the_installed_box():
    done = doctor()
    print(done.stdout)
    assert done.returncode == 0, done.stdout
    for name in ("cpu", "llm model", "asr model", "tts model", "asterisk", "ami login", "database", "disk"):
        assert any(line.split()[1:2] == name.split()[:1] for line in done.stdout.splitlines()), name
    assert "ready for calls" in done.stdout


def test_doctor_names_refused_ami_credentials_and_the_fix(tmp_path):
    home = tmp_path / "box"
    home.mkdir()
    settings = (BOX_DIR / "asterisk.env").read_text()
    (home / "asterisk.env").write_text(
        "\n".join("AMI_SECRET=wrong" if line.startswith("AMI_SECRET=") else line for line in settings.splitlines())
    )
    done = doctor({"PHONE_AGENT_HOME": str(home)}, "--no-models")
    assert done.returncode == 1
    assert "FAIL  ami login" in done.stdout and "fix: bash scripts/asterisk.sh reload" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr
