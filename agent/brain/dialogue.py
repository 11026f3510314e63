"""The conversation brain: what to say and do for each caller turn.

Everything a business does is data in its agent.yaml: tasks with slots, tools,
read-backs and replies (agent/config.py). This module is the generic engine
that runs them, with the conversation repair every task gets for free: several
slots in one breath, corrections ("no, Friday"), a question in the middle of a
task, "forget it", "say that again", the keypad, a change of task, and a human
whenever the caller asks or the engine is stuck. Sentences come from the config
or the language module (agent/language/en.py), never from here.

Decisions are deterministic where a small model cannot be trusted: slot values
by parser (agent/brain/entities.py), tasks by examples (agent/brain/intents.py),
every action confirmed when the config asks for it and every number the caller
gave read back before an effectful tool uses it.

`Brain` is built once per config and shared by calls; `Dialogue` is one call.
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sqlalchemy import Engine
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from agent.brain.dates import When, parse_time, part_of
from agent.brain.embeddings import knowledge_vector, load_embeddings, sentence_encoder, warm
from agent.brain.entities import (
    as_json,
    digit_runs,
    is_no,
    is_yes,
    narrative,
    parse_slot,
    reference_readings,
    say_value,
    told_text,
)
from agent.brain.intents import TaskMatcher, content_stems, examples_of, phrase_in, system_intent
from agent.brain.knowledge import STOPWORDS, Hit, KnowledgeBase, sentences_of
from agent.brain.numbers import normalize_numbers
from agent.brain.tools import ToolBox, ToolContext, ToolResult
from agent.config import AgentConfig, Slot, Task, Triggers, fill
from agent.language import en
from agent.privacy.redact import Redactor
from agent.stages.base import ChatModel

log = logging.getLogger(__name__)

LARGE_MODEL_BYTES = 600 << 20  # GGUF files above this (≈1B+ params) are trusted to phrase answers
_CORRECTION = re.compile(en.CORRECTION, re.I)
_ABOUT_A_TASK = re.compile(en.ABOUT_A_TASK, re.I)
_UPSET = re.compile(en.UPSET, re.I)
_REQUEST = re.compile(en.REQUEST, re.I)
_DANGER = re.compile(en.DANGER, re.I)
_HAPPENING = re.compile(en.HAPPENING, re.I)
_HYPOTHETICAL = re.compile(en.HYPOTHETICAL, re.I)
_MONTH = re.compile(rf"\b({'|'.join(en.MONTHS)})\b", re.I)
_QUESTION = re.compile(r"\?|^\W*(what|when|where|which|who|how|why|do|does|is|are|can|could|will|would|should)\b", re.I)
# asking about something rather than asking for something ("how much does it cost?")
_INFO_QUESTION = re.compile(
    r"^\W*(?:(?:hi|hello|hey|yes|no|okay|so|and|um|uh|also|sorry|actually|oh|wait|one more thing|quick question)\W+)*"
    r"(?:(?:if|when|once) [^,?]{3,60},\s*)?"  # "if I claim for the car, how much do I pay?"
    r"(what|when|where|which|who|how|why|do you|does|is there|are there|are you|is it|is the)\b",
    re.I,
)
NUMERIC_SLOTS = ("digits", "number", "money", "phone")
TASK_LIKENESS = 0.85  # e5 cosine to a task's example above which words describe a request, not an emergency
SLOT_EVIDENCE = 0.3  # added to a task's match score when the utterance holds a value for its reference slot
AGREEING_WORD_SCORE = 0.3  # a weak word match and ...
AGREEING_EMBEDDING = 0.84  # ... a fair embedding match that name the same task decide together
AMBIGUOUS = "ambiguous"  # route(): two tasks fit equally well, ask which
AMBIGUOUS_RATIO = 0.9  # a second task's example score this close to the first's is a tie


class NotRehearsable(Exception):
    """A rehearsed turn reached a tool: only the real turn may run one (see Dialogue.rehearsal)."""


@dataclass(frozen=True)
class ToolCall:
    tool: str
    arguments: dict
    result: dict
    changes: bool = False  # it changed something (a booking): the turn can no longer be taken back


@dataclass(frozen=True)
class Answer:
    """A question to answer from evidence: generated (checked) or extractive."""

    question: str
    hits: list[Hit]
    extractive: str

    @property
    def evidence(self) -> list[str]:
        return [hit.passage.text for hit in self.hits]

    @property
    def sources(self) -> list[str]:
        return [hit.passage.source for hit in self.hits]


@dataclass
class Reply:
    say: list[str] = field(default_factory=list)
    answer: Answer | None = None
    end: str | None = None  # None | "transfer" | "hangup"
    target: str | None = None
    reason: str | None = None
    then: list[str] = field(default_factory=list)  # said after the answer ("Now, back to your booking. ...")
    tools: list[ToolCall] = field(default_factory=list)
    intent: str = "question"
    understood: bool = True
    expect_digits: bool = False


def transfer(config: AgentConfig, reason: str, message: str | None = None, target: str | None = None) -> Reply:
    """Hand the caller to a human: say `message`, then the dialplan queues them at `target`."""
    return Reply(
        say=[message or config.transfer_message],
        end="transfer",
        target=target or config.transfer_target,
        reason=reason,
        intent=reason,
        understood=reason != "not-understood",
    )


def legacy_webhook_tasks(config: AgentConfig) -> list[Task]:
    """A webhook with trigger phrases and no task of its own becomes a task: its JSON-schema properties are slots."""
    tasks = []
    used = {step.tool for task in config.tasks for step in (task.lookup, task.prepare, task.action) if step}
    for hook in config.tools.webhooks:
        if hook.name in used or not hook.trigger_phrases:
            continue
        slots = []
        for name, spec in hook.parameters.get("properties", {}).items():
            is_phone = name in ("phone", "caller_id", "phone_number")
            slots.append(
                Slot(
                    name=name,
                    type="phone" if is_phone else "digits" if spec.get("type") in ("string", "integer") else "text",
                    default="caller_id" if is_phone else None,
                    prompt=f"What's the {name.replace('_', ' ')}?",
                    keypad=not is_phone,
                    required=name in hook.parameters.get("required", []),
                )
            )
        tasks.append(
            Task(
                name=hook.name,
                description=hook.description,
                triggers=Triggers(phrases=hook.trigger_phrases),
                slots=slots,
                action={"tool": hook.name},
                replies={"done": hook.say, "failed": hook.fallback, "not_found": hook.fallback},
            )
        )
    return tasks


class Brain:
    """Everything a call needs that is built once per config: tasks, tools, knowledge, sentiment."""

    def __init__(
        self,
        config: AgentConfig,
        engine: Engine | None = None,
        llm_path: Path | None = None,
        llm: ChatModel | None = None,
    ) -> None:
        self.config = config
        self.knowledge = KnowledgeBase.from_directory(
            config.knowledge_dir, "auto" if config.understanding.embeddings else None
        )
        self.tools = ToolBox(config, engine)
        self.calendar = self.tools.calendar
        self.tasks = {task.name: task for task in [*config.tasks, *legacy_webhook_tasks(config)]}
        self.matcher = TaskMatcher(list(self.tasks.values()), en.INTENT_EXAMPLES)
        self.request_words = {
            task.name: {
                stem
                for text in (
                    *examples_of(task),
                    task.description,
                    *(w for s in task.slots for c in s.choices.items() for w in (c[0], *c[1])),
                )
                for stem in content_stems(text)
            }
            for task in self.tasks.values()
        }
        self.embeddings = (
            load_embeddings(
                [(t.name, e) for t in self.tasks.values() for e in examples_of(t)]
                + [(name, e) for name, examples in en.INTENT_EXAMPLES.items() for e in examples]
            )
            if config.understanding.embeddings
            else None
        )
        self.sentiment = SentimentIntensityAnalyzer()
        self.generate_answers = (
            config.answer_style == "grounded"
            and llm is not None
            and llm_path is not None
            and llm_path.stat().st_size >= LARGE_MODEL_BYTES
        )
        if config.answer_style == "grounded" and llm is not None and not self.generate_answers:
            log.info("answers are extractive: the configured model is small (configure a larger GGUF to phrase them)")
        self.llm = llm if self.generate_answers else None
        self.asr_hint = asr_hint(config, list(self.tasks.values()))
        self.redactor = Redactor.from_patterns(config.privacy.keep_numbers)

    def angry(self, text: str) -> bool:
        """The admin's upset phrases or the language's expressions of anger."""
        return any(phrase_in(p, text) for p in self.config.escalation.upset_phrases) or bool(_UPSET.search(text))

    def negative(self, text: str) -> bool:
        """A tone below the config's upset threshold (VADER compound), whatever the sentence asks."""
        return self.sentiment.polarity_scores(text)["compound"] < self.config.escalation.upset_threshold

    def route(self, text: str) -> str:
        """What a fresh utterance asks for: a conversation intent, a task's name, or "question".

        Evidence, strongest first: a shared intent's pattern; a task's trigger phrase; a value in the
        utterance that fits one of the task's reference slots (an order number, a zip code); closeness
        to a task's examples by words; closeness by sentence embedding, alone when clear, or when it
        agrees with a weaker word match. A question the documents answer wins over a task that only
        resembles an example.
        """
        intent = system_intent(text)
        if intent:
            return intent
        if _ABOUT_A_TASK.search(text) and any(hit.confident for hit in self.knowledge.answers(text)[:1]):
            return "question"  # "what do I need to bring to register a birth?" asks, it does not book
        ranked = self.matcher.rank(text)
        strength = {m.task: self.slot_evidence(m.task, text) for m in ranked}
        strongest = max(strength.values(), default=0)
        evidence = {name for name, value in strength.items() if value and value == strongest}
        informational = self.knowledge_question(text)
        if len(evidence) == 1 and not informational:
            return evidence.pop()  # a reference only one task takes ("what's going on with 8802?")
        scored = sorted(
            ((m.score + (SLOT_EVIDENCE if m.task in evidence else 0.0), m) for m in ranked),
            key=lambda pair: pair[0],
            reverse=True,
        )
        top_score, top = scored[0] if scored else (0.0, None)
        if top is not None and top_score >= self.matcher.threshold:
            if top.via == "example" and informational and top_score == top.score:
                return "question"
            if self.close_second(scored) is not None:
                return AMBIGUOUS  # "I'm calling about a claim": a new one or one already made? ask
            return top.task
        if self.embeddings is not None and not informational and len(content_stems(text)) >= 2:
            label, similarity = self.embeddings.nearest(text)
            if label not in self.tasks and any(len(run) >= 3 for run in digit_runs(text, compounds=False)):
                return "question"  # a caller giving a number is not asking for a person or a repeat
            agrees = label in self.tasks and top is not None and label == top.task and top_score >= AGREEING_WORD_SCORE
            if similarity >= self.embeddings.threshold or (agrees and similarity >= AGREEING_EMBEDDING):
                return label
        return "question"

    async def decide(self, text: str) -> str:
        """`route`, and when it finds nothing the documents answer either, the configured large LLM
        decides under a JSON-schema grammar (its output can only be one of the labels)."""
        routed = self.route(text)
        if routed != "question" or self.llm is None or self.knowledge_question(text):
            return routed
        labels = [*self.tasks, *en.INTENT_EXAMPLES, "question"]
        schema = decision_schema(labels)
        described = "; ".join(f"{name}: {task.description}" for name, task in self.tasks.items())
        messages = [
            {
                "role": "system",
                "content": f"Classify the caller's request to {self.config.business_name}. Tasks: {described}.",
            },
            {"role": "user", "content": text},
        ]
        try:
            result = await asyncio.to_thread(self.llm.complete_json, messages, schema)
        except Exception:  # a failed decision falls back to the rules' answer
            log.exception("intent decision by the LLM failed")
            return routed
        label = result.get("intent")
        return label if label in labels else routed

    def close_second(self, scored: list[tuple[float, object]]) -> str | None:
        """A second task as close to the utterance as the first, by examples alone (no trigger phrase, no
        reference value told them apart): the caller is asked which one they mean."""
        if not scored or scored[0][1].task not in self.tasks:
            return None  # a shared intent ("sorry, what was that?") is first: no two tasks to choose from
        tasks = [(score, m) for score, m in scored if m.task in self.tasks]
        if len(tasks) < 2 or tasks[0][1].via == "phrase" or tasks[1][1].via == "phrase":
            return None
        (first, _), (second, match) = tasks[0], tasks[1]
        return match.task if first == tasks[0][1].score and second >= AMBIGUOUS_RATIO * first else None

    def slot_evidence(self, name: str, text: str) -> float:
        """How strongly the utterance carries a value for one of the task's reference slots: 2 for digits of
        the slot's exact length or an id with letters and digits, 1 for other fits, 0 for none."""
        task = self.tasks.get(name)
        if task is None:
            return 0
        now = dt.datetime.now()
        found = 0
        for slot in task.slots:
            if slot.default is not None or slot.type not in ("digits", "id", "phone", "email"):
                continue
            if slot.type == "digits":
                low, high = slot.length or slot.min_length or 3, slot.length or slot.max_length or 32
                runs = digit_runs(text, compounds=False)
                if parse_time(text.lower())[0] is None:  # "ten thirty" is a time, not a reference
                    runs += digit_runs(text)
                if _MONTH.search(text):  # "the third of March 1985": a year, not a reference
                    runs = [run for run in runs if not (len(run) == 4 and run[:2] in ("19", "20"))]
                if any(low <= len(run) <= high for run in runs):
                    found = max(found, 2 if slot.length else 1)
            elif (value := parse_slot(slot, text, now).value) is not None:
                mixed = slot.type == "id" and re.search(r"\d", str(value)) and re.search(r"[A-Za-z]", str(value))
                found = max(found, 2 if mixed or slot.type == "email" else 1 if slot.type != "id" else 0.5)
        return found

    def knowledge_question(self, text: str) -> bool:
        """An information question the documents answer: it wins over a task matched only by similarity."""
        return bool(_INFO_QUESTION.search(text)) and any(True for _ in self.knowledge.answers(text))

    def capabilities(self) -> str:
        descriptions = [task.description.rstrip(".") for task in self.tasks.values()]
        if not descriptions:
            return ""
        return (
            descriptions[0] if len(descriptions) == 1 else f"{', '.join(descriptions[:-1])} {en.AND} {descriptions[-1]}"
        )

    def dialogue(self, caller_id: str | None = None, clock: Callable[[], dt.datetime] = dt.datetime.now) -> Dialogue:
        return Dialogue(self, caller_id, clock)


@dataclass
class TaskRun:
    """A task in progress: what is known so far and where the conversation stands."""

    task: Task
    fields: dict = field(default_factory=dict)  # slot values and tool results
    given: set[str] = field(default_factory=set)  # slots the caller said (not defaults): read back before acting
    stage: str = "start"  # start | slots | confirm | change
    asking: str | None = None  # the slot just asked for
    tries: dict[str, int] = field(default_factory=dict)
    prepared: bool = False
    readings: dict[str, list[str]] = field(
        default_factory=dict
    )  # other readings of a reference, tried if it is not found
    then: tuple[str, str] | None = None  # a verifying run: the task (and its first words) it was started for


@dataclass
class Pending:
    """A yes/no question outside a task."""

    kind: str  # offer_human | closing | context | which_task
    options: list[str] = field(default_factory=list)  # which_task: the tasks it may be
    target: str | None = None
    context: int | None = None  # index into config.caller_context
    fields: dict = field(default_factory=dict)


class Dialogue:
    def __init__(self, brain: Brain, caller_id: str | None, clock: Callable[[], dt.datetime]) -> None:
        self.brain = brain
        self.config = brain.config
        self.caller_id = caller_id
        self.clock = clock
        self.run: TaskRun | None = None
        self.pending: Pending | None = None
        self.misunderstood = 0
        self.topics: list[str] = []  # what the call was about, for the human's briefing
        self.last_said: list[str] = []
        self.last_run: TaskRun | None = None  # the task just finished, for the human's briefing
        self.verified: dict | None = None  # what the verifying task's tool returned, once the caller is proven
        self.rehearsing = False  # a copy trying a turn before it is final: no tools, no LLM decision

    def rehearsal(self) -> Dialogue:
        """A copy of this dialogue to try a caller's words on before their turn is final (the call session
        does this at a pause, so the reply's first words can be synthesized while the endpoint is awaited).

        It shares nothing a turn changes, a tool raises NotRehearsable in it, and the LLM is not asked to
        decide (the rules route alone): trying a turn there books nothing, asks no webhook and leaves this
        dialogue as it was.
        """
        twin = copy.copy(self)
        twin.run, twin.pending, twin.last_run, twin.verified = copy.deepcopy(
            (self.run, self.pending, self.last_run, self.verified)
        )
        twin.topics, twin.last_said = list(self.topics), list(self.last_said)
        twin.rehearsing = True
        return twin

    def snapshot(self) -> tuple:
        """The state a caller turn may change, so a turn can be taken back (the caller was not done)."""
        return (
            copy.deepcopy(self.run), copy.copy(self.pending), self.misunderstood, list(self.topics), self.last_said,
            self.last_run, self.verified,
        )  # fmt: skip

    def restore(self, state: tuple) -> None:
        self.run, self.pending, self.misunderstood, self.topics, self.last_said, self.last_run, self.verified = (
            state[0], state[1], state[2], list(state[3]), state[4], state[5], state[6],
        )  # fmt: skip

    @property
    def expecting(self) -> Slot | None:
        """The slot the bot has just asked for (recognition can be told what is coming)."""
        if self.run and self.run.stage in ("slots", "change") and self.run.asking:
            return next((s for s in self.run.task.slots if s.name == self.run.asking), None)
        return None

    @property
    def asr_hint(self) -> str:
        """What recognition should expect next: a number, one of a slot's choices, or this deployment's words."""
        slot = self.expecting
        if slot is not None and slot.type in ("digits", "phone", "number", "money"):
            return en.DIGITS_HINT
        if slot is not None and slot.type == "choice":
            return en.CHOICE_HINT.format(choices=", ".join(slot.choices))
        return self.brain.asr_hint

    # ---- call start ------------------------------------------------------------

    async def opening(self) -> str | None:
        """A line for known callers, from the config's caller_context ("Are you calling about your order?")."""
        if not self.caller_id:
            return None
        for index, context in enumerate(self.config.caller_context):
            result = await self.brain.tools.run(context.tool, {}, self._context())
            if result.ok:
                self.pending = Pending("context", context=index, fields=dict(result.data))
                return self._fill(context.ask, result.data)
        return None

    # ---- turns ---------------------------------------------------------------

    async def on_text(self, text: str) -> Reply:
        text = normalize_numbers(text.strip())
        if not re.search(r"[a-z0-9]", text.lower()):
            return self._not_understood()
        await asyncio.to_thread(warm, text)  # the sentence's vector, off the event loop (routing and knowledge use it)
        reply = await self._turn(text)
        if reply.say or reply.answer:
            self.last_said = list(reply.say) + ([reply.answer.extractive] if reply.answer else []) + reply.then
        if reply.understood:
            self.misunderstood = 0
        expecting = self.expecting
        reply.expect_digits = bool(expecting and (expecting.keypad or expecting.type in NUMERIC_SLOTS))
        return reply

    async def on_digits(self, digits: str) -> Reply:
        """Keypad input: answers the slot being asked for, or 1/2 for yes/no."""
        slot = self.expecting
        if slot is not None and slot.keypad:
            return await self.on_text(digits)
        if digits == "0":  # the keypad's way to a person, offered whenever the bot did not understand
            return transfer(self.config, "caller-asked")
        if (self.pending or (self.run and self.run.stage == "confirm")) and digits in ("1", "2"):
            return await self.on_text("yes" if digits == "1" else "no")
        return self._not_understood()

    def briefing(self, reason: str) -> str:
        """One line for the human who takes over, so the caller need not repeat."""
        parts = [reason.replace("-", " ")]
        if self.topics:
            parts.append("about " + ", ".join(dict.fromkeys(self.topics)))
        run = self.run or self.last_run
        if run:
            now = self.clock()
            for slot in run.task.slots:
                value = run.fields.get(slot.name)
                if value is not None and (slot.identifier or slot.type in ("choice", "date", "time", "datetime")):
                    parts.append(f"{slot.name.replace('_', ' ')} {say_value(value, now)}")
        return "; ".join(parts)[:80]

    async def _turn(self, text: str) -> Reply:
        escalation = self._escalation(text)
        if escalation:
            return escalation
        intent = self._shared_intent(text)
        slot = self.expecting
        if intent not in ("injection", "human") and slot is not None and slot.type not in ("text", "name"):
            if self._slot_fits(text):
                intent = None  # "no, don't bother with a text" answers the yes/no question asked
        shared = self._shared_reply(intent)
        if shared is not None:
            return shared
        if intent == "cancel_task" and (self.run or self.pending):
            self.run, self.pending = None, Pending("closing")
            return Reply(say=[self.config.say("task_cancelled")], intent="cancel_task")
        if self.run is not None:
            reply = await self._continue_task(text)
            if reply is not None:
                return reply
        if self.pending is not None:
            reply = await self._answer_pending(text)
            if reply is not None:
                return reply
            self.pending = None  # the caller moved on to something else
        if intent == "thanks":
            self.pending = Pending("closing")
            return Reply(say=[self.config.say("you_are_welcome")], intent="thanks")
        routed = self.brain.route(text) if self.rehearsing else await self.brain.decide(text)
        if routed == AMBIGUOUS:
            return self._which_task(text)
        if routed in self.brain.tasks:
            return await self._start(self.brain.tasks[routed], text)
        if routed != intent and (shared := self._shared_reply(routed)) is not None:
            return shared  # an intent only the embedding found
        return await self._question(text)

    def _shared_intent(self, text: str) -> str | None:
        """A shared intent by pattern, or by example when no task is under way (inside a task an answer
        like "next week" must not look like "another time" to the example matcher)."""
        intent = system_intent(text)
        if intent or self.run is not None or self.pending is not None:
            return intent  # examples only for a fresh request: "yes, that's right" answers the question
        match = self.brain.matcher.best(text)
        return match.task if match is not None and match.task in en.INTENT_EXAMPLES else None

    def _shared_reply(self, intent: str | None) -> Reply | None:
        """The reply to a shared intent that is the same whatever else is going on, or None."""
        if intent == "injection":
            return Reply(say=[self.config.say("injection")], intent="injection")
        if intent == "human":
            return transfer(self.config, "caller-asked")
        if intent == "goodbye":
            return Reply(say=[self.config.goodbye], end="hangup", reason="caller-done", intent="goodbye")
        if intent == "repeat":
            return Reply(say=self.last_said or [self.config.say("nothing_to_repeat")], intent="repeat")
        if intent in ("capabilities", "identity"):
            return self._about(intent)
        return None

    # ---- escalation ------------------------------------------------------------

    def _escalation(self, text: str) -> Reply | None:
        rules = self.config.escalation
        if any(phrase_in(p, text) for p in rules.emergency_phrases) or self._sounds_like_emergency(text):
            return transfer(self.config, "emergency", rules.emergency_message, rules.emergency_target)
        if self.brain.angry(text) or self._sounds_upset(text):
            return transfer(self.config, "caller-upset", self.config.say("caller_upset"))
        return None

    def _sounds_like_emergency(self, text: str) -> bool:
        """Danger happening now, in the caller's own words ("water is pouring through the ceiling right now",
        "he's just been knocked down by a van"), where the config takes emergencies at all; a question about
        what would happen ("am I covered if…") is not one."""
        rules = self.config.escalation
        if not (rules.emergency_phrases or rules.emergency_target):
            return False
        if _INFO_QUESTION.search(text) or _HYPOTHETICAL.search(text):
            return False
        return bool(_DANGER.search(text) and _HAPPENING.search(text)) or self._emergency_in_documents(text)

    def _emergency_in_documents(self, text: str) -> bool:
        """The caller describes what the admin's own documents call an emergency: the sentence closest in
        meaning to their words holds one of the emergency phrases ("a really strong gassy pong by the meter"
        ~ "if you smell gas, …"). Not when the words ask for a task, by example or by meaning: the clinic's
        emergency passage is also the nearest to "I'd like a tooth looked at" (measured on 1,200 calm
        utterances: no false alarm; docs/benchmarks.md)."""
        phrases = self.config.escalation.emergency_phrases
        if not phrases or self.brain.embeddings is None or self.brain.matcher.best(text) is not None:
            return False
        hits = self.brain.knowledge.search(text)[:1]
        if not hits or hits[0].meaning != "minilm" or not hits[0].confident or hits[0].sentence is None:
            return False
        sentence = sentences_of(hits[0].passage.text)[hits[0].sentence]
        if not any(phrase_in(phrase, sentence) for phrase in phrases):
            return False
        label, similarity = self.brain.embeddings.nearest(text)
        return not (label in self.brain.tasks and similarity >= TASK_LIKENESS)

    def _sounds_upset(self, text: str) -> bool:
        """Negative sentiment alone is not upset: "it arrived damaged, how do I send it back?" is a request."""
        if not self.brain.negative(text):
            return False
        return not (_QUESTION.search(text) or _REQUEST.search(text) or self.brain.matcher.best(text) or self.run)

    def _not_understood(self) -> Reply:
        self.misunderstood += 1
        if self.misunderstood >= self.config.escalation.misunderstandings:
            return transfer(self.config, "not-understood", self.config.say("too_many_misunderstandings"))
        if self.run is None:
            self.pending = Pending("offer_human")
        return Reply(say=[self.config.say("not_understood")], understood=False, intent="not_understood")

    def _about(self, intent: str) -> Reply:
        capabilities = self.brain.capabilities()
        key = intent if capabilities or intent == "identity" else "capabilities_none"
        say = [self.config.say(key, capabilities=capabilities or self.config.business_name)]
        if self.run is not None and self.run.asking:
            say.append(self._prompt(self.run, self._slot(self.run, self.run.asking)))
        return Reply(say=say, intent=intent)

    # ---- questions outside a task ---------------------------------------------------

    def _which_task(self, text: str) -> Reply:
        ranked = self.brain.matcher.rank(text)
        first = next(m.task for m in ranked if m.task in self.brain.tasks)
        second = self.brain.close_second([(m.score, m) for m in ranked])
        self.pending = Pending("which_task", options=[first, second], fields={"text": text})
        first_task, second_task = self.brain.tasks[first], self.brain.tasks[second]
        question = self.config.say(
            "which_task",
            first=first_task.description.rstrip(".").lower(),
            second=second_task.description.rstrip(".").lower(),
        )
        return Reply(say=[question], intent="which_task")

    def _chosen_task(self, text: str, options: list[str]) -> str | None:
        """Which of the offered tasks the answer picks: by phrase or examples, else by meaning, else by
        the order it was offered in ("the first one", "the second")."""
        ranked = [m for m in self.brain.matcher.rank(text) if m.task in options]
        if ranked and ranked[0].score > 0 and (len(ranked) < 2 or ranked[0].score > ranked[1].score):
            return ranked[0].task
        if self.brain.embeddings is not None:
            label = self.brain.embeddings.nearest_among(text, options)
            if label is not None:
                return label
        return None

    async def _answer_pending(self, text: str) -> Reply | None:
        pending = self.pending
        if pending.kind == "which_task":
            self.pending = None
            chosen = self._chosen_task(text, pending.options)
            if chosen is None:
                return None
            return await self._start(self.brain.tasks[chosen], f"{pending.fields['text']} {text}")  # both say slots
        yes, no = is_yes(text), is_no(text)
        if pending.kind == "offer_human":
            if yes:
                return transfer(self.config, "caller-asked", target=pending.target)
            if no and len(text.split()) <= 4:
                self.pending = None
                return Reply(say=[self.config.say("welcome_back")])
            return None
        if pending.kind == "closing":  # after "anything else?": a short no ends the call, a bare yes asks what
            if no and len(text.split()) <= 4:
                return Reply(say=[self.config.goodbye], end="hangup", reason="caller-done", intent="goodbye")
            if yes and len(text.split()) <= 3:
                self.pending = None
                return Reply(say=[self.config.say("go_on")])
            return None
        context = self.config.caller_context[pending.context]
        if self.brain.matcher.best(text) is not None:
            return None  # "yes, can I move it?": the request says more than the yes
        if no and len(text.split()) <= 3:
            self.pending = None
            return Reply(say=[self.config.say("no_problem")])
        if yes:
            self.pending = None
            if context.task:  # the caller still says the reference: that is what verifies them
                fields = pending.fields if context.prefill else {}
                return await self._start(self.brain.tasks[context.task], "", fields=fields)
            if context.if_yes:
                return Reply(say=[self._fill(context.if_yes, pending.fields)])
        return None

    async def _question(self, text: str) -> Reply:
        hits = self.brain.knowledge.answers(text)
        if not hits:
            if len([w for w in re.findall(r"[a-z]{3,}", text.lower()) if w not in STOPWORDS]) < 2:
                return self._not_understood()  # a mumble, not a question
            self.pending = Pending("offer_human")
            return Reply(say=[self.config.not_found_message], intent="unknown")
        unsure = [] if hits[0].confident else [self.config.say("unsure_answer")]
        return Reply(say=unsure, answer=Answer(text, hits, self.brain.knowledge.extract(text, hits)))

    # ---- tasks -----------------------------------------------------------------

    async def _start(self, task: Task, text: str, fields: dict | None = None) -> Reply:
        if task.verified_only and self.verified is None:
            return await self._verify_first(task, text)
        self.pending = None
        self.run = TaskRun(task, fields={**(self.verified or {}), **(fields or {})})
        self.topics.append(task.name.replace("_", " "))
        for slot in task.slots:  # several slots in one breath: "renew Dune on card 4471"
            if slot.type != "text":
                self._take(self.run, slot, text, answering=False)
        empty = [s for s in task.slots if s.type == "text" and s.name not in self.run.fields]
        told = narrative(text, self.brain.request_words[task.name]) if empty else None
        for name, part in share_story(told, empty).items():  # free text only from what the request does not say
            self.run.fields[name] = part
            self.run.given.add(name)
        reply = await self._advance()
        reply.intent = task.name
        return reply

    async def _verify_first(self, task: Task, text: str) -> Reply:
        """A task for proven callers only: the verifying task runs first (a caller ID proves nothing), then
        this one, with what the caller has said so far."""
        verifier = next(t for t in self.brain.tasks.values() if t.verifies)
        reply = await self._start(verifier, "")
        if self.run is not None and self.run.task is verifier:
            self.run.then = (task.name, text)
        reply.say = [self.config.say("not_verified"), *reply.say]
        reply.intent = task.name
        return reply

    def _take(self, run: TaskRun, slot: Slot, text: str, answering: bool = True) -> bool:
        if not text:
            return False
        parsed = parse_slot(slot, text, self.clock(), answering)
        if parsed.value is None:
            return False
        value, before = parsed.value, run.fields.get(slot.name)
        if isinstance(value, When) and isinstance(before, When):  # "make that 8 pm": still Wednesday
            kept = (
                before.time
                if before.time and part_of(before.time) == (value.part_of_day or part_of(before.time))
                else None
            )
            time = value.time or kept  # "no, Wednesday afternoon" keeps "around 3"; "no, the evening" drops noon
            value = When(
                value.day or before.day, time, value.part_of_day or (None if value.time else before.part_of_day)
            )
        run.fields[slot.name] = value
        run.given.add(slot.name)
        run.prepared = False
        if slot.identifier:
            run.readings[slot.name] = [r for r in reference_readings(text) if r != parsed.value]
        return True

    def _slot(self, run: TaskRun, name: str) -> Slot:
        return next(s for s in run.task.slots if s.name == name)

    def _slot_fits(self, text: str) -> bool:
        slot = self.expecting
        return slot is not None and parse_slot(slot, text, self.clock()).value is not None

    async def _continue_task(self, text: str) -> Reply | None:
        run = self.run
        if run.stage == "confirm":
            return await self._on_confirm(run, text)
        if run.stage == "change" and (is_yes(text) or is_no(text)) and len(text.split()) <= 3:
            run.stage = "confirm"  # "what would you like to change?" "yes": ask the read-back again
            return Reply(say=[self.config.say("confirm_unclear"), self._fill(run.task.confirm or "", run.fields, run)],
                         intent=run.task.name)  # fmt: skip
        slot = self._slot(run, run.asking) if run.asking else None
        if slot is not None and slot.type == "text" and (other := self._switch_to(run, text)):
            return await self._start(self.brain.tasks[other], text)  # free text takes anything: check first
        took = self._take(run, slot, text) if slot else False
        others = [s for s in run.task.slots if s is not slot and (s.name not in run.fields or _CORRECTION.search(text))]
        if not took and not _QUESTION.search(text):  # "oh no wait, Wednesday morning": a slot already given, changed
            others += [s for s in run.task.slots if s is not slot and s.name in run.given and s not in others]
        took_other = [s for s in others if s.type not in ("text", "name", "yes_no") and self._take(run, s, text)]
        if took or took_other:
            return await self._advance()
        # not an answer to the question: another task, a question in between, or a miss
        match = self.brain.matcher.best(text)
        if match is not None and match.task != run.task.name and match.via == "phrase":
            return await self._start(self.brain.tasks[match.task], text)
        hits = self.brain.knowledge.answers(text)
        if hits and _QUESTION.search(text):
            back = self.config.say("back_to_task", task=run.task.description.rstrip(".").lower())
            then = [back, self._prompt(run, slot)] if slot else [back]
            return Reply(
                answer=Answer(text, hits, self.brain.knowledge.extract(text, hits)), then=then, intent="question"
            )
        if slot is None:
            return None
        return self._retry(run, slot, parse_slot(slot, text, self.clock()).problem, text)

    def _retry(self, run: TaskRun, slot: Slot, problem: str | None, text: str = "") -> Reply:
        run.tries[slot.name] = run.tries.get(slot.name, 0) + 1
        if run.tries[slot.name] >= slot.tries:
            self.run = None
            return transfer(self.config, "slot-not-understood", self.config.say("give_up_slot"))
        lead = (
            self.config.say(
                problem,
                length=slot.length or slot.min_length or "",
                count=max((len(run) for run in digit_runs(text)), default=0),
            )
            if problem == "digits_wrong_length" and slot.length
            else ""
        )
        prompt = fill(slot.reprompt, self._say_fields(run)) if slot.reprompt else self._prompt(run, slot)
        if slot.keypad and not slot.reprompt:
            prompt = f"{prompt} {self.config.say('keypad_hint')}"
        say = f"{lead} {prompt}".strip() if lead else f"{self.config.say('slot_not_understood')} {prompt}"
        return Reply(say=[say], understood=False, intent=run.task.name)

    async def _on_confirm(self, run: TaskRun, text: str) -> Reply | None:
        changed = [s for s in run.task.slots if s.type not in ("text", "name", "yes_no") and self._take(run, s, text)]
        if changed:  # "no, Friday at 2 pm": a new value is a change, whatever the yes/no
            run.stage = "slots"
            return await self._advance()
        if is_yes(text):
            return await self._act(run)
        corrected = self._corrected_text_slot(run, text)
        if corrected:  # "no, it's the underpass by the library": a free-text answer, said again
            run.fields[corrected.name] = told_text(_LEADING_NO.sub("", text))
            run.prepared = False
            return await self._advance()
        if is_no(text):
            run.stage, run.asking = "change", None
            return Reply(say=[self.config.say("what_to_change")], intent=run.task.name)
        match = self.brain.matcher.best(text)
        if match is not None and match.task != run.task.name:
            return await self._start(self.brain.tasks[match.task], text)
        return Reply(say=[self.config.say("confirm_unclear")], understood=False, intent=run.task.name)

    def _switch_to(self, run: TaskRun, text: str) -> str | None:
        """Another task the caller clearly turned to while a free-text answer was expected: its trigger
        phrase, or a reference only it takes ("actually I reported it last week, the reference is 304512")."""
        match = self.brain.matcher.best(text)
        if match is not None and match.task != run.task.name and match.via == "phrase":
            return match.task
        strength = {name: self.brain.slot_evidence(name, text) for name in self.brain.tasks if name != run.task.name}
        sure = [name for name, value in strength.items() if value >= 2]
        return sure[0] if len(sure) == 1 else None

    def _corrected_text_slot(self, run: TaskRun, text: str) -> Slot | None:
        """The free-text slot a new account at the read-back replaces: the one whose value (or question)
        it is closest to in meaning. None for a bare yes/no, a short aside, or without the encoder."""
        told = _LEADING_NO.sub("", text)
        slots = [s for s in run.task.slots if s.type == "text" and s.name in run.fields]
        if not slots or sentence_encoder() is None or len(content_stems(told)) < 3 or _QUESTION.search(text):
            return None
        said = knowledge_vector(told)
        scores = [
            max(
                float(knowledge_vector(str(run.fields[s.name])) @ said),
                float(knowledge_vector(s.prompt or s.name) @ said),
            )
            for s in slots
        ]
        best = max(range(len(slots)), key=lambda i: scores[i])
        return slots[best] if scores[best] >= STORY_MATCH else None

    async def _advance(self) -> Reply:
        """Move the task on as far as it can go: lookup, missing slots, prepare, read-back, action."""
        run = self.run
        task = run.task
        tools: list[ToolCall] = []
        if run.stage == "start":
            run.stage = "slots"
            if task.lookup:
                result = await self._tool(task.lookup, run, tools)
                if not result.ok:
                    return self._tool_failed(run, result, tools)
                run.fields = {**result.data, **run.fields}
        if run.stage == "change":
            run.stage = "slots"
        for slot in task.slots:
            if slot.name in run.fields:
                continue
            default = self._default(slot, run)
            if default is not None:
                run.fields[slot.name] = default
                continue
            if slot.required:
                run.asking = slot.name
                return Reply(say=[self._prompt(run, slot)], tools=tools, intent=task.name)
        run.asking = None
        if task.prepare and not run.prepared:
            result = await self._tool(task.prepare, run, tools)
            if not result.ok:
                return self._tool_failed(run, result, tools)
            run.fields.update(result.data)
            run.prepared = True
        confirm = task.confirm or self._read_back(run)
        if confirm and run.stage != "confirmed":
            run.stage = "confirm"
            lead = ""
            requested = run.fields.get("requested")
            if requested in ("time", "day"):
                lead = self.config.say(f"requested_{requested}_unavailable") + " "
            return Reply(say=[lead + self._fill(confirm, run.fields, run)], tools=tools, intent=task.name)
        reply = await self._act(run)
        reply.tools[:0] = tools
        return reply

    def _read_back(self, run: TaskRun) -> str | None:
        """Numbers the caller gave are read back before an effectful tool uses them."""
        if run.task.action is None or run.task.action.tool not in self.brain.tools.webhooks:
            return None
        if self.brain.tools.webhooks[run.task.action.tool].effect == "lookup":
            return None
        numbers = [
            s
            for s in run.task.slots
            if s.name in run.given and (s.read_back or (s.read_back is None and s.type in NUMERIC_SLOTS))
        ]
        if not numbers:
            return None
        values = f" {en.AND} ".join(f"{s.name.replace('_', ' ')} {{{s.name}:digits}}" for s in numbers)
        return f"{values}. {self.config.say('confirm_default')}"

    async def _act(self, run: TaskRun) -> Reply:
        task = run.task
        tools: list[ToolCall] = []
        self.run, self.last_run = None, run
        if task.action is None:
            return self._finish(task, "done", run.fields, tools)
        result = await self._tool(task.action, run, tools)
        for name, readings in run.readings.items():  # "order for 112" may be 4112: the tool decides
            while result.status == "not_found" and readings:
                run.fields[name] = readings.pop(0)
                result = await self._tool(task.action, run, tools)
        fields = {**run.fields, **result.data}
        if result.status == "not_found" and self._identifier_exhausted(run):
            not_found = self._fill(task.replies.not_found or self.config.say("tool_not_found"), fields, run)
            return transfer(self.config, "reference-not-found", f"{not_found} {self.config.say('give_up_slot')}")
        if result.status == "not_found" and (retry := self._retry_identifier(run)):
            not_found = self._fill(task.replies.not_found or self.config.say("tool_not_found"), fields, run)
            again = fill(retry.reprompt, self._say_fields(run)) if retry.reprompt else self._prompt(run, retry)
            return Reply(say=[not_found, again], tools=tools, intent=task.name, understood=False)
        reply = self._finish(task, result.status, fields, tools, run)
        if task.verifies and result.status == "done":
            self.verified = dict(result.data)
            if run.then is not None:  # proven: on to what the caller asked for
                name, text = run.then
                then = await self._start(self.brain.tasks[name], text)
                done = reply.say if task.replies.done else []  # not "anything else?" before the next question
                return Reply(say=[*done, *then.say], tools=tools + then.tools, intent=name)
        return reply

    def _identifier_exhausted(self, run: TaskRun) -> bool:
        """The caller has given a reference the tool does not know as often as the slot allows."""
        slots = [s for s in run.task.slots if s.name in run.given and s.identifier]
        return bool(slots) and run.tries.get(slots[-1].name, 0) + 1 >= slots[-1].tries

    def _retry_identifier(self, run: TaskRun) -> Slot | None:
        """A reference that matched nothing is asked again (it was probably misheard), within its tries."""
        for slot in reversed(run.task.slots):
            if slot.name in run.given and slot.type in ("digits", "id", "phone") and slot.identifier:
                run.tries[slot.name] = run.tries.get(slot.name, 0) + 1
                if run.tries[slot.name] >= slot.tries:
                    return None
                del run.fields[slot.name]
                run.given.discard(slot.name)
                run.stage, run.asking, run.prepared = "slots", slot.name, False
                self.run = run
                return slot
        return None

    def _finish(
        self, task: Task, status: str, fields: dict, tools: list[ToolCall], run: TaskRun | None = None
    ) -> Reply:
        for outcome in task.outcomes:
            if all(str(fields.get(key)) in values for key, values in outcome.when.items()):
                if outcome.offer_human:
                    self.pending = Pending("offer_human", target=task.escalate.target)
                else:
                    self.pending = Pending("closing")
                return Reply(say=[self._fill(outcome.say, fields, run)], tools=tools, intent=task.name)
        template = getattr(task.replies, status) or self.config.say(
            "anything_else" if status == "done" else f"tool_{status}"
        )
        say = [self._fill(template, fields, run)]
        if status in task.escalate.after:
            say.append(self.config.say("offer_human"))
            self.pending = Pending("offer_human", target=task.escalate.target)
        else:
            self.pending = Pending("closing")
        return Reply(say=say, tools=tools, intent=task.name)

    def _tool_failed(self, run: TaskRun, result: ToolResult, tools: list[ToolCall]) -> Reply:
        self.run = None
        return self._finish(run.task, result.status, run.fields, tools, run)

    async def _tool(self, step, run: TaskRun, tools: list[ToolCall]) -> ToolResult:
        if self.rehearsing:
            raise NotRehearsable(step.tool)
        args = {name: self._arg(template, run.fields) for name, template in step.args.items()}
        if not step.args:
            args = dict(run.fields)
        result = await self.brain.tools.run(step.tool, args, self._context())
        tools.append(
            ToolCall(
                step.tool,
                {k: as_json(v) for k, v in args.items() if not isinstance(v, dict)},
                {"status": result.status, **{k: as_json(v) for k, v in result.data.items()}},
                changes=self.brain.tools.changes(step.tool),
            )
        )
        return result

    def _arg(self, template: str, fields: dict) -> object:
        whole = re.fullmatch(r"\{([a-z_][a-z0-9_]*)\}", template)
        if whole:
            return fields.get(whole.group(1))
        return fill(template, {k: str(v) for k, v in fields.items()})

    def _default(self, slot: Slot, run: TaskRun) -> object | None:
        if slot.default == "caller_id":
            return self.caller_id
        if slot.default:
            return self._arg(slot.default, run.fields)
        return None

    def _prompt(self, run: TaskRun, slot: Slot) -> str:
        """The slot's question; a slot the admin gave none (a phone defaulting to a withheld caller ID) is
        asked for by name, never with silence."""
        asked = "ask_phone" if slot.type == "phone" else "ask_slot"
        prompt = slot.prompt or self.config.say(asked, slot=slot.name.replace("_", " "))
        return fill(prompt, self._say_fields(run))

    def _context(self) -> ToolContext:
        moving = self.run.fields.get("appointment_id") if self.run else None
        return ToolContext(self.caller_id, self.clock(), moving=moving if isinstance(moving, int) else None)

    def _say_fields(self, run: TaskRun | None, fields: dict | None = None) -> dict:
        now = self.clock()
        said = {"business_name": self.config.business_name}
        for name, value in (fields if fields is not None else run.fields if run else {}).items():
            said[name] = say_value(value, now)
            said[f"{name}:digits"] = say_value(value, now, spell=True)
            if isinstance(value, (dt.datetime, dt.date)):
                day = value.date() if isinstance(value, dt.datetime) else value
                on = say_value(value, now)
                said[f"{name}:on"] = on if on.startswith(("today", "tomorrow")) else f"on {on}"
                said[f"{name}:day"] = say_value(day, now)
        return said

    def _fill(self, template: str, fields: dict, run: TaskRun | None = None) -> str:
        return fill(template, self._say_fields(run, fields))


def share_story(story: str | None, slots: list[Slot]) -> dict[str, str]:
    """A caller's account given to the free-text slots it answers: each clause to the slot whose question
    it is closest to in meaning ("out on Willow Road, outside number 42" → where; "it was flickering for
    days" → what it looks like). Without the encoder, or a clause close to no question, only the first
    slot takes the account; two slots never get the same words."""
    if not story or not slots:
        return {}
    if len(slots) == 1 or sentence_encoder() is None:
        return {slots[0].name: story}
    clauses = [c for c in re.split(r"(?<=[.!?;])\s+|,\s+(?=[a-z])", story) if c.strip()]
    questions = np.stack([knowledge_vector(s.prompt or s.name.replace("_", " ")) for s in slots])  # cached
    parts: dict[str, list[str]] = {}
    rest = []
    for clause in clauses:
        scores = questions @ knowledge_vector(clause)
        best = int(scores.argmax())
        if scores[best] >= STORY_MATCH:
            parts.setdefault(slots[best].name, []).append(clause.strip().rstrip(" .,;"))
        else:
            rest.append(clause.strip().rstrip(" .,;"))
    unanswered = [s.name for s in slots if s.name not in parts]
    if rest and unanswered:  # what answers no question clearly answers the one nothing else did
        parts[unanswered[0]] = rest
    return {name: told_text(", ".join(pieces)) for name, pieces in parts.items()}


_LEADING_NO = re.compile(r"^\W*(?:(?:no|nope|sorry|actually|oh|wait|well|um|uh)\b\W*)+", re.I)
STORY_MATCH = 0.2  # all-MiniLM-L6-v2 cosine of a clause to a slot's question that makes it that slot's answer


def decision_schema(labels: list[str]) -> dict:
    """The JSON schema the LLM's decision is constrained to: one of the labels, nothing else."""
    return {"type": "object", "properties": {"intent": {"type": "string", "enum": labels}}, "required": ["intent"]}


def asr_hint(config: AgentConfig, tasks: list[Task]) -> str:
    """Words this deployment expects, for speech recognisers that take a prompt."""
    parts = [f"{config.business_name}."]
    for task in tasks:
        choices = [value for slot in task.slots for value in slot.choices]
        parts.append(f"{task.description.rstrip('.')}{': ' + ', '.join(choices) if choices else ''}.")
    return " ".join(parts)[:300]
