"""Admin configuration: one directory per deployment, validated once at start-up.

`agent.yaml` in the directory holds the persona, greeting and facts; errors name
the file and the field so an admin can fix them without reading a traceback.
Box-level settings (ports, AMI credentials) come from state/asterisk.env,
written by scripts/asterisk.sh.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path

import yaml

from agent.audio.vad import EndpointSettings

PROJECT_ROOT = Path(__file__).resolve().parent.parent
STATE_DIR = Path(os.environ.get("PHONE_AGENT_STATE", PROJECT_ROOT / "state"))
DEFAULT_CONFIG_DIR = PROJECT_ROOT / "configs" / "clinic"


class ConfigError(Exception):
    """Invalid admin configuration; the message names file and field."""


@dataclass(frozen=True)
class AgentConfig:
    directory: Path
    business_name: str
    greeting: str
    persona: str
    facts: str = ""
    goodbye: str = "Thank you for calling. Goodbye!"
    transfer_message: str = "Let me connect you to a colleague. One moment please."
    fallback_message: str = "Sorry, I'm having trouble right now. Let me connect you to a colleague."
    silence_prompt: str = "Are you still there? How can I help you?"
    silence_timeout_s: float = 8.0
    max_silence_prompts: int = 2
    transfer_target: str = "humans"
    endpointing: EndpointSettings = field(default_factory=EndpointSettings)

    def system_prompt(self) -> str:
        facts = f"\n\nFacts about {self.business_name}:\n{self.facts.strip()}" if self.facts.strip() else ""
        return (
            f"{self.persona.strip()}{facts}\n\n"
            "You are on a phone call: answer in one or two short spoken sentences, "
            "no lists, no markup. If you do not know, say so and offer a colleague."
        )


_REQUIRED = ("business_name", "greeting", "persona")


def load_config(directory: Path | str | None = None) -> AgentConfig:
    directory = Path(directory or DEFAULT_CONFIG_DIR)
    path = directory / "agent.yaml"
    if not path.is_file():
        raise ConfigError(f"{path}: no such file (a config directory holds agent.yaml)")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: top level must be a mapping of settings")
    known = {f.name for f in fields(AgentConfig)} - {"directory"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"{path}: unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    for name in _REQUIRED:
        if not isinstance(raw.get(name), str) or not raw[name].strip():
            raise ConfigError(f"{path}: field '{name}' is required and must be text")
    values = dict(raw)
    if "endpointing" in values:
        ep = values["endpointing"]
        allowed = {f.name for f in fields(EndpointSettings)}
        if not isinstance(ep, dict) or set(ep) - allowed:
            raise ConfigError(f"{path}: field 'endpointing' takes {', '.join(sorted(allowed))}")
        try:
            values["endpointing"] = EndpointSettings(**{k: float(v) for k, v in ep.items()})
        except (TypeError, ValueError):
            raise ConfigError(f"{path}: field 'endpointing' values must be numbers (seconds)") from None
    for name in ("silence_timeout_s",):
        if name in values and not isinstance(values[name], int | float):
            raise ConfigError(f"{path}: field '{name}' must be a number")
    return AgentConfig(directory=directory, **values)


@dataclass(frozen=True)
class BoxSettings:
    """Ports and credentials of this box's Asterisk (state/asterisk.env)."""

    sip_host: str = "127.0.0.1"
    sip_port: int = 5060
    ami_port: int = 5038
    ami_user: str = "agent"
    ami_secret: str = ""
    agent_address: str = "127.0.0.1:9092"

    @property
    def agent_host_port(self) -> tuple[str, int]:
        host, _, port = self.agent_address.rpartition(":")
        return host, int(port)


def load_box_settings() -> BoxSettings:
    path = STATE_DIR / "asterisk.env"
    if not path.exists():
        return BoxSettings()
    env = {}
    for line in path.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and not key.startswith("#"):
            env[key.strip()] = value.strip()
    return BoxSettings(
        sip_host=env.get("SIP_BIND", "127.0.0.1"),
        sip_port=int(env.get("SIP_PORT", 5060)),
        ami_port=int(env.get("AMI_PORT", 5038)),
        ami_user=env.get("AMI_USER", "agent"),
        ami_secret=env.get("AMI_SECRET", ""),
        agent_address=env.get("AGENT_ADDRESS", "127.0.0.1:9092"),
    )
