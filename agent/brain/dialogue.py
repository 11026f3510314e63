"""The conversation brain: what to say and do for each caller turn.

Decisions are deterministic where a small model cannot be trusted: intents by
rule, dates, times and digits by parser, tool arguments from those parsers, and
every action confirmed before it runs. The language model phrases answers from
retrieved passages, and a grounding check in code stops any clause that states
a number, day or month the evidence does not contain (agent/brain/grounding.py).

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

from sqlalchemy import Engine
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from agent.brain.dates import on_day, parse_when, say_day, say_time
from agent.brain.knowledge import STOPWORDS, Hit, KnowledgeBase
from agent.brain.numbers import normalize_numbers
from agent.brain.tools.calendar import Appointment, Calendar, SlotTaken
from agent.brain.tools.orders import Orders
from agent.brain.tools.webhooks import call_webhook
from agent.config import AgentConfig
from agent.privacy.redact import Redactor
from agent.stages.base import ChatModel

log = logging.getLogger(__name__)

MIN_ANSWER_SCORE = 1.0  # BM25 below this is a weak match: better to say we do not know
LARGE_MODEL_BYTES = 600 << 20  # GGUF files above this (≈1B+ params) are trusted to phrase answers

_RULES: list[tuple[str, re.Pattern]] = [
    (name, re.compile(pattern, re.I))
    for name, pattern in [
        ("injection", r"\b(ignore (all |your |the |any |previous |prior )*(instructions|rules|prompt)|system prompt|you are now|pretend (to be|you are|you're)|jailbreak|developer mode|disregard)\b"),
        ("human", r"\b(human|real person|a person|someone real|operator|receptionist|representative|(talk|speak) (to|with) (a|an|the|someone|somebody|your)\b|live agent|an agent)\b"),
        ("goodbye", r"\b(bye|goodbye|good bye|that'?s all|that is all|nothing else|hang up)\b"),
        ("thanks", r"^\W*(thank you|thanks|thank you very much|many thanks|great,? thanks?|cheers)\W*$"),
        ("cancel", r"\bcancel\b"),
        ("move", r"\b(reschedule|re-schedule|postpone|move (my|the|it)|change (my|the) (appointment|booking|time)|different (day|time)|another (day|time))\b"),
        ("book", r"\b(book|schedule|make an appointment|an appointment|appointment for|get an appointment|come in for|see the dentist|see a dentist)\b"),
        ("order_status", r"\b(my (order|delivery|package|parcel|shipment)|order number|order status|the order|order \d+|status of (my |an |the )?order|shipped yet|tracking|where is my)\b"),
    ]
]  # fmt: skip
INTENTS = ["book", "move", "cancel", "order_status", "human", "goodbye", "question", "other"]
INTENT_SCHEMA = {
    "type": "object",
    "properties": {"intent": {"type": "string", "enum": INTENTS}},
    "required": ["intent"],
}
_YES = re.compile(
    r"^\W*(yes|yeah|yep|yup|sure|correct|right|please do|please|ok(ay)?|that'?s (fine|right|good|correct|great)|sounds good|perfect|go ahead|do it|great)\b",
    re.I,
)
_NO = re.compile(r"^\W*(no|nope|not really|nah|don'?t|wrong|not that|neither)\b", re.I)
_DIGIT_RUN = re.compile(r"\b\d{3,}\b")
_HOMOPHONES = {"for": "4", "to": "2", "too": "2", "won": "1", "ate": "8", "oh": "0"}  # "order for 112" = 4112


@dataclass(frozen=True)
class ToolCall:
    tool: str
    arguments: dict
    result: dict


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


@dataclass
class _Pending:
    kind: str  # ask_service | confirm_book | ask_new_time | confirm_move | confirm_cancel | ask_order | offer_human | context | closing
    service: str | None = None
    start: dt.datetime | None = None
    appointment: Appointment | None = None
    order: dict | None = None


class Brain:
    """Everything a call needs that is built once per config: knowledge, tools, sentiment."""

    def __init__(
        self,
        config: AgentConfig,
        engine: Engine | None = None,
        llm_path: Path | None = None,
        llm: ChatModel | None = None,
    ) -> None:
        self.config = config
        self.knowledge = KnowledgeBase.from_directory(config.knowledge_dir)
        tools = config.tools
        self.calendar = Calendar(engine, tools.calendar) if tools.calendar and engine is not None else None
        self.orders = Orders.from_config(tools.orders, config.directory) if tools.orders else None
        self.sentiment = SentimentIntensityAnalyzer()
        style = config.answer_style
        self.generate_answers = (
            style == "grounded"
            and llm is not None
            and llm_path is not None
            and llm_path.stat().st_size >= LARGE_MODEL_BYTES
        )
        if config.answer_style == "grounded" and not self.generate_answers:
            log.info("answers are extractive: the configured model is small (configure a larger GGUF to phrase them)")
        # a model trusted to phrase answers is also asked (JSON-constrained) when the rules find nothing
        self.llm = llm if self.generate_answers else None
        self.asr_hint = asr_hint(config)
        self.redactor = Redactor.from_patterns(config.privacy.keep_numbers)

    def dialogue(self, caller_id: str | None = None, clock: Callable[[], dt.datetime] = dt.datetime.now) -> Dialogue:
        return Dialogue(self, caller_id, clock)


class Dialogue:
    def __init__(self, brain: Brain, caller_id: str | None, clock: Callable[[], dt.datetime]) -> None:
        self.brain = brain
        self.config = brain.config
        self.caller_id = caller_id
        self.clock = clock
        self.pending: _Pending | None = None
        self.misunderstood = 0
        self.topics: list[str] = []  # what the call was about, for the human's briefing

    def snapshot(self) -> tuple:
        """The state a caller turn may change, so a turn can be taken back (the caller was not done)."""
        return (copy.copy(self.pending), self.misunderstood, list(self.topics))

    def restore(self, state: tuple) -> None:
        self.pending, self.misunderstood, self.topics = state[0], state[1], list(state[2])

    # ---- call start ------------------------------------------------------------

    def opening(self) -> str | None:
        """A line for known callers: "Are you calling about your appointment on Thursday?"."""
        if not self.caller_id:
            return None
        now = self.clock()
        if self.brain.calendar and (appointment := self.brain.calendar.upcoming(self.caller_id, now)):
            self.pending = _Pending("context", appointment=appointment)
            return f"Are you calling about your {appointment.service} {on_day(appointment.start.date(), now)} at {say_time(appointment.start.time())}?"
        if self.brain.orders and (order := self.brain.orders.open_order_for(self.caller_id)):
            self.pending = _Pending("context", order=order)
            return f"Are you calling about your order {order[self.brain.orders.rules.number_column]}?"
        return None

    # ---- turns ---------------------------------------------------------------

    async def on_text(self, text: str) -> Reply:
        text = normalize_numbers(text.strip())
        if not text:
            return self._not_understood()
        escalation = self._escalation(text)
        if escalation:
            return escalation
        if self.pending:
            reply = await self._continue(text)
            if reply is not None:
                return self._understood(reply)
            self.pending = None  # the caller moved on to something else
        intent = next((name for name, pattern in _RULES if pattern.search(text)), "question")
        handler = getattr(self, f"_intent_{intent}")
        reply = await handler(text)
        reply.intent = reply.intent if reply.intent != "question" else intent
        if intent != "question":
            self.topics.append(intent.replace("_", " "))
        return self._understood(reply) if reply.understood else reply

    async def on_digits(self, digits: str) -> Reply:
        """Keypad input: answers the pending question, or a menu choice."""
        if self.pending and self.pending.kind == "ask_order":
            return self._understood(self._order_status(digits))
        if self.pending and digits in ("1", "2"):
            return await self.on_text("yes" if digits == "1" else "no")
        return self._not_understood()

    def briefing(self, reason: str) -> str:
        """One line for the human who takes over, so the caller need not repeat."""
        parts = [reason.replace("-", " ")]
        if self.topics:
            parts.append("about " + ", ".join(dict.fromkeys(self.topics)))
        if self.pending and self.pending.order:
            parts.append(f"order {self.pending.order[self.brain.orders.rules.number_column]}")
        if self.pending and self.pending.appointment:
            parts.append(f"appt {self.pending.appointment.start:%a %d %H:%M}")
        return "; ".join(parts)[:80]

    # ---- escalation ------------------------------------------------------------

    def _escalation(self, text: str) -> Reply | None:
        rules = self.config.escalation
        if any(phrase_in(p, text) for p in rules.emergency_phrases):
            return transfer(self.config, "emergency", rules.emergency_message, rules.emergency_target)
        if any(phrase_in(p, text) for p in rules.upset_phrases) or (
            self.brain.sentiment.polarity_scores(text)["compound"] < rules.upset_threshold
        ):
            return transfer(
                self.config, "caller-upset", "I'm sorry about this. Let me put you through to a colleague who can help."
            )
        return None

    def _understood(self, reply: Reply) -> Reply:
        self.misunderstood = 0
        return reply

    def _not_understood(self, say: str | None = None) -> Reply:
        self.misunderstood += 1
        if self.misunderstood >= self.config.escalation.misunderstandings:
            return transfer(
                self.config,
                "not-understood",
                "I'm sorry, I'm having trouble understanding. Let me connect you to a colleague.",
            )
        self.pending = _Pending("offer_human")
        return Reply(
            say=[
                say or "Sorry, I didn't catch that. Could you say it again? You can also press 0 to speak to a person."
            ],
            understood=False,
            intent="not_understood",
        )

    # ---- pending questions -------------------------------------------------------

    async def _continue(self, text: str) -> Reply | None:
        pending = self.pending
        yes, no = bool(_YES.search(text)), bool(_NO.search(text))
        now = self.clock()
        if pending.kind == "offer_human":
            if yes:
                return transfer(self.config, "caller-asked")
            if no:
                self.pending = None
                return Reply(say=["Alright. Is there anything else I can help you with?"])
            return None
        if pending.kind == "closing":  # after "anything else?": a no ends the call
            if no and len(text.split()) <= 4:
                return Reply(say=[self.config.goodbye], end="hangup", reason="caller-done", intent="goodbye")
            return None
        if pending.kind == "context":
            if any(
                pattern.search(text) for name, pattern in _RULES if name in ("move", "cancel", "book", "order_status")
            ):
                return None  # "yes, can I move it?": the intent says more than the yes
            if pending.appointment and re.search(r"\bkeep\b", text, re.I):
                self.pending = None
                return Reply(say=["Great, see you then. Is there anything else?"])
            if no and len(text.split()) > 3:
                return None  # "No. How many points do I have?": answer the question
            if no:
                self.pending = None
                return Reply(say=["No problem. How can I help you?"])
            if yes and pending.appointment:
                return Reply(say=["Would you like to keep it, move it, or cancel it?"])
            if yes and pending.order:
                return self._order_status(pending.order[self.brain.orders.rules.number_column])
            return None
        if pending.kind == "ask_service":
            service = self._service_in(text)
            if service:
                return self._offer_slot(service, text)
            return None
        if pending.kind in ("confirm_book", "confirm_move"):
            if yes and not no:
                return self._commit(pending, now)
            when = parse_when(text, now)
            asked_other_time = bool(when.day or when.time or when.part_of_day)
            if asked_other_time:  # "No, actually Friday at 2 pm"
                return self._offer_slot(
                    pending.service, text, moving=pending.appointment if pending.kind == "confirm_move" else None
                )
            if no:
                self.pending = _Pending("ask_new_time", service=pending.service, appointment=pending.appointment)
                return Reply(say=["Which day and time would suit you better?"])
            return None
        if pending.kind == "ask_new_time":
            when = parse_when(text, now)
            if when.day or when.time or when.part_of_day:
                return self._offer_slot(pending.service, text, moving=pending.appointment)
            return None
        if pending.kind == "confirm_cancel":
            if yes and not no:
                self.brain.calendar.cancel(pending.appointment)
                self.pending = None
                a = pending.appointment
                call = ToolCall("cancel_appointment", {"appointment_id": a.id}, {"status": "cancelled"})
                return Reply(
                    say=[
                        f"Done. Your {a.service} {on_day(a.start.date(), now)} at {say_time(a.start.time())} is cancelled. Anything else?"
                    ],
                    tools=[call],
                )
            if no:
                self.pending = None
                return Reply(say=["Okay, I've left it as it is. Anything else?"])
            return None
        if pending.kind == "ask_order":
            number = self._order_number(text)
            return self._order_status(number) if number else None
        return None

    # ---- intents ---------------------------------------------------------------

    async def _intent_injection(self, text: str) -> Reply:
        return Reply(say=[f"I can only help with questions about {self.config.business_name}. What can I do for you?"])

    async def _intent_human(self, text: str) -> Reply:
        return transfer(self.config, "caller-asked")

    async def _intent_thanks(self, text: str) -> Reply:
        self.pending = _Pending("closing")
        return Reply(say=["You're welcome! Is there anything else I can help you with?"])

    async def _intent_goodbye(self, text: str) -> Reply:
        return Reply(say=[self.config.goodbye], end="hangup", reason="caller-done")

    async def _intent_book(self, text: str) -> Reply:
        if not self.brain.calendar:
            return await self._intent_question(text)
        service = self._service_in(text)
        if not service:
            self.pending = _Pending("ask_service")
            services = list(self.brain.calendar.rules.services)
            listed = ", ".join(services[:-1]) + f" or a {services[-1]}" if len(services) > 1 else services[0]
            return Reply(say=[f"Of course. What would you like to book: a {listed}?"])
        return self._offer_slot(service, text)

    async def _intent_move(self, text: str) -> Reply:
        appointment = self._callers_appointment()
        if appointment is None:
            return self._no_appointment()
        now = self.clock()
        when = parse_when(text, now)
        if when.day or when.time or when.part_of_day:
            return self._offer_slot(appointment.service, text, moving=appointment)
        self.pending = _Pending("ask_new_time", service=appointment.service, appointment=appointment)
        return Reply(
            say=[
                f"Your {appointment.service} is {on_day(appointment.start.date(), now)} at {say_time(appointment.start.time())}. When would you like to move it to?"
            ]
        )

    async def _intent_cancel(self, text: str) -> Reply:
        appointment = self._callers_appointment()
        if appointment is None:
            return self._no_appointment()
        now = self.clock()
        self.pending = _Pending("confirm_cancel", appointment=appointment)
        return Reply(
            say=[
                f"Shall I cancel your {appointment.service} {on_day(appointment.start.date(), now)} at {say_time(appointment.start.time())}?"
            ]
        )

    async def _intent_order_status(self, text: str) -> Reply:
        if not self.brain.orders:
            return await self._intent_question(text)
        number = self._order_number(text)
        if number:
            return self._order_status(number)
        self.pending = _Pending("ask_order")
        return Reply(
            say=["Sure. What's your order number? You can say it, or type it on your keypad and press hash."],
            expect_digits=True,
        )

    async def _intent_question(self, text: str) -> Reply:
        for hook in self.config.tools.webhooks:
            if any(phrase_in(p, text) for p in hook.trigger_phrases):
                return await self._webhook(hook, text)
        hits = [h for h in self.brain.knowledge.search(text) if h.score >= MIN_ANSWER_SCORE]
        if not hits and self.brain.llm is not None:
            intent = await self._classify(text)
            if intent not in ("question", "other"):
                return await getattr(self, f"_intent_{intent}")(text)
        if not hits:
            if len(re.findall(r"[a-z]{3,}", text.lower())) < 2:
                return self._not_understood()  # a mumble, not a question
            self.pending = _Pending("offer_human")
            return Reply(say=[self.config.not_found_message], intent="unknown")
        return Reply(answer=Answer(text, hits, extractive_answer(text, hits)))

    # ---- helpers ---------------------------------------------------------------

    async def _classify(self, text: str) -> str:
        """Ask the model which intent the rules missed; its output can only be one of INTENTS."""
        messages = [
            {"role": "system", "content": f"Classify the caller's request to {self.config.business_name}."},
            {"role": "user", "content": text},
        ]
        try:
            result = await asyncio.to_thread(self.brain.llm.complete_json, messages, INTENT_SCHEMA)
        except Exception:  # a failed decision falls back to the rules' answer
            log.exception("intent classification failed")
            return "question"
        return result.get("intent", "question")

    async def _webhook(self, hook, text: str) -> Reply:
        arguments = {}
        properties = hook.parameters.get("properties", {})
        digits = _DIGIT_RUN.search(text)
        for name, spec in properties.items():
            if name in ("phone", "caller_id") and self.caller_id:
                arguments[name] = self.caller_id
            elif digits and spec.get("type") in ("string", "integer"):
                arguments[name] = digits.group() if spec.get("type") == "string" else int(digits.group())
        result = await call_webhook(hook, arguments, self.config.tools.allowed_hosts)
        call = ToolCall(hook.name, arguments, {"ok": result.ok, "error": result.error, **(result.data or {})})
        if not result.ok and not arguments and hook.parameters.get("required"):
            self.pending = _Pending("offer_human")
        return Reply(say=[result.say], tools=[call], intent=hook.name)

    def _order_number(self, text: str) -> str | None:
        """The order number in what the caller said, tolerant of ASR homophones.

        Speech recognisers write "four one one two" as "for 112"; each reading is
        tried against the real order table and the one that exists wins.
        """
        candidates = [m.group() for m in _DIGIT_RUN.finditer(text)]
        for word, digit in _HOMOPHONES.items():
            candidates += [digit + m.group(1) for m in re.finditer(rf"\b{word}\s*(\d{{2,}})\b", text, re.I)]
        found = next((c for c in candidates if self.brain.orders.lookup(c)), None)
        return found or (max(candidates, key=len) if candidates else None)

    def _service_in(self, text: str) -> str | None:
        letters = re.sub(r"[^a-z]", "", text.lower())
        for service in self.brain.calendar.rules.services:
            if re.sub(r"[^a-z]", "", service.lower())[:5] in letters:
                return service
        return None

    def _callers_appointment(self) -> Appointment | None:
        if self.pending and self.pending.appointment:
            return self.pending.appointment
        if not self.brain.calendar or not self.caller_id:
            return None
        return self.brain.calendar.upcoming(self.caller_id, self.clock())

    def _no_appointment(self) -> Reply:
        self.pending = _Pending("offer_human")
        return Reply(
            say=[
                "I couldn't find an upcoming appointment for the number you're calling from. Would you like me to connect you to a colleague?"
            ]
        )

    def _offer_slot(self, service: str, text: str, moving: Appointment | None = None) -> Reply:
        now = self.clock()
        when = parse_when(text, now)
        slot = self.brain.calendar.first_free(service, now, when.day, when.time, when.part_of_day)
        if slot is None:
            self.pending = _Pending("offer_human")
            return Reply(
                say=[
                    f"I'm sorry, I have no free time for a {service} in the coming weeks. Would you like me to connect you to a colleague?"
                ]
            )
        kind = "confirm_move" if moving else "confirm_book"
        self.pending = _Pending(kind, service=service, start=slot, appointment=moving)
        verb = f"move your {service} to" if moving else "book"
        what = "" if moving else f" for a {service}"
        missed_time = when.time is not None and (slot.time() != when.time or (when.day and slot.date() != when.day))
        missed_day = when.day is not None and slot.date() != when.day
        lead = "That exact time isn't free. " if missed_time else "That day is fully booked. " if missed_day else ""
        return Reply(
            say=[f"{lead}I have {say_day(slot.date(), now)} at {say_time(slot.time())}{what}. Shall I {verb} it?"]
        )

    def _commit(self, pending: _Pending, now: dt.datetime) -> Reply:
        calendar = self.brain.calendar
        try:
            if pending.kind == "confirm_move":
                done = calendar.move(pending.appointment, pending.start, now)
                tool = ToolCall(
                    "move_appointment",
                    {"appointment_id": done.id, "start": done.start.isoformat()},
                    {"status": "moved"},
                )
                said = f"Done. Your {done.service} is now {on_day(done.start.date(), now)} at {say_time(done.start.time())}."
            else:
                done = calendar.book(self.caller_id, pending.service, pending.start, now)
                tool = ToolCall(
                    "book_appointment",
                    {"service": done.service, "start": done.start.isoformat()},
                    {"appointment_id": done.id},
                )
                said = f"Done. You're booked for a {done.service} {on_day(done.start.date(), now)} at {say_time(done.start.time())}."
        except SlotTaken:
            return self._offer_slot(pending.service, "", moving=pending.appointment)
        self.pending = None
        return Reply(say=[said, "Is there anything else I can help you with?"], tools=[tool])

    def _order_status(self, number: str) -> Reply:
        orders = self.brain.orders
        row = orders.lookup(number)
        call = ToolCall(
            "order_lookup",
            {"order_number": number},
            {"found": row is not None, **({"status": row[orders.rules.status_column]} if row else {})},
        )
        if row is None:
            self.pending = _Pending("ask_order")
            spaced = " ".join(number)
            return Reply(
                say=[f"I couldn't find order {spaced}. Could you say or type the number again?"],
                tools=[call],
                expect_digits=True,
            )
        self.pending = (
            _Pending("offer_human", order=row) if row[orders.rules.status_column] in ("delayed", "lost") else None
        )
        details = " ".join(row[c] for c in orders.rules.details_columns if row.get(c))
        extra = " Would you like me to connect you to a colleague about it?" if self.pending else " Anything else?"
        return Reply(
            say=[f"Order {number} is {row[orders.rules.status_column]}. {details}".strip() + extra], tools=[call]
        )


def asr_hint(config: AgentConfig) -> str:
    """Words this deployment expects, for speech recognisers that take a prompt."""
    parts = [f"{config.business_name}."]
    if config.tools.calendar:
        services = ", ".join(config.tools.calendar.services)
        parts.append(f"Book, move or cancel an appointment: {services}.")
    if config.tools.orders:
        parts.append("Order number, order status.")
    parts += [f"{hook.description}." for hook in config.tools.webhooks]
    return " ".join(parts)[:300]


def extractive_answer(question: str, hits: list[Hit], max_sentences: int = 2) -> str:
    """The sentences of the best passage that share the most words with the question."""
    words = _stems(question) - STOPWORDS
    sentences = re.split(r"(?<=[.!?])\s+", hits[0].passage.text)
    scores = [len(_stems(s) & words) for s in sentences]
    top = max(scores)
    best = [i for i, score in enumerate(scores) if score == top][:max_sentences] if top else [0]
    return " ".join(sentences[i] for i in best)


def phrase_in(phrase: str, text: str) -> bool:
    """Whole-word phrase match that ignores case, punctuation and plural s ("points" ~ "point")."""

    def words(value: str) -> str:
        return " " + " ".join(re.sub(r"(?<=[a-z]{3})s$", "", w) for w in re.findall(r"[a-z0-9']+", value.lower())) + " "

    return words(phrase) in words(text)


def _stems(text: str) -> set[str]:
    """Crude stems, enough to match "costs"/"cost" and "cleaning"/"clean" within one answer."""
    return {re.sub(r"(ing|ed|es|s)$", "", w)[:6] for w in re.findall(r"[a-z0-9]+", text.lower()) if len(w) > 1}
