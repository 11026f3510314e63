"""Call records in SQL: calls with their KPIs, turns, tool calls, transfers, other events.

The call session reports events ("caller_turn", "bot_turn", ...) to a
`CallRecord`; a single writer thread turns each into rows and commits it at
once, so a crash loses at most the turn in progress and the event loop never
waits on the disk. Every string is redacted before it is written. A call that
is still "active" when the agent starts again was cut off by a crash and is
marked "interrupted".

A database outage loses nothing: while the database cannot be reached the
writer appends each (already redacted) event to a bounded local spool, an
append-only JSON-lines file next to the database (state/ by default, mode
0600), retries every RETRY_S, and when the database is back writes the spooled
events in their order and empties the spool. A spool left by a stopped agent
is written at the next start, before crashed calls are marked.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import queue
import re
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    Engine,
    Float,
    ForeignKey,
    Integer,
    String,
    Table,
    Text,
    func,
    insert,
    select,
    update,
)

from agent.config import STATE_DIR, discloses_ai
from agent.privacy.redact import DEFAULT, Redactor
from agent.store.db import describe_url, is_outage, make_engine, metadata

log = logging.getLogger(__name__)

calls = Table(
    "calls",
    metadata,
    Column("id", String(64), primary_key=True),  # the AudioSocket call UUID
    Column("deployment", String(64), nullable=False),  # config directory name
    Column("started_at", DateTime, nullable=False, index=True),
    Column("ended_at", DateTime),
    Column("status", String(16), nullable=False),  # active | ended | interrupted
    Column("outcome", String(32)),  # completed | transferred | hangup | error | agent-crashed
    Column("asterisk_uniqueid", String(64), index=True),  # join with Asterisk's CDR
    Column("asterisk_linkedid", String(64), index=True),
    Column("disclosure_played", Boolean, nullable=False, default=False),
    Column("models", Text),
    Column("handle_ms", Integer),
    Column("first_audio_ms", Integer),  # call connected -> first bot audio queued
    Column("caller_turns", Integer, nullable=False, default=0),
    Column("bot_turns", Integer, nullable=False, default=0),
    Column("barge_ins", Integer, nullable=False, default=0),
    Column("asr_confidence", Float),  # mean over the caller's turns
    Column("transferred_to", String(64)),
    Column("transfer_reason", String(64)),
    Column("transcript_purged", Boolean, nullable=False, default=False),
    Column("csat", Integer),  # post-call survey answer 1-5, NULL when not asked or not answered
)


def _call_event_table(name: str, *columns: Column) -> Table:
    """A table of one kind of call event: which call, its order in the call (seq), and when."""
    return Table(
        name,
        metadata,
        Column("id", Integer, primary_key=True),
        Column("call_id", String(64), ForeignKey("calls.id", ondelete="CASCADE"), nullable=False, index=True),
        Column("seq", Integer, nullable=False),
        Column("at", DateTime, nullable=False),
        *columns,
    )


turns = _call_event_table(
    "turns",
    Column("speaker", String(8), nullable=False),  # caller | bot
    Column("n", Integer),  # caller turn number
    Column("reply_to", Integer),  # bot turn: the caller turn it answers
    Column("kind", String(32)),  # bot: greeting | answer | goodbye | transfer | ...
    Column("intent", String(32)),
    Column("text", Text),  # redacted; NULL once the transcript retention has passed
    Column("heard_text", Text),  # bot turn cut by barge-in: what the caller heard
    Column("cut", Boolean, nullable=False, default=False),
    Column("keypad", Boolean, nullable=False, default=False),
    Column("sources", Text),  # knowledge passages the answer came from (JSON list)
    Column("asr_confidence", Float),
    Column("endpoint_ms", Integer),  # bot turn: the silence waited before the caller's turn was closed
    Column("asr_ms", Integer),
    Column("text_ready_ms", Integer),
    Column("first_audio_ms", Integer),  # end of caller speech -> first bot audio
    Column("rehearsed", Boolean),  # bot turn: its first words were synthesized before the caller's turn ended
)

tool_calls = _call_event_table(
    "tool_calls",
    Column("reply_to", Integer),
    Column("tool", String(64), nullable=False),
    Column("arguments", Text),  # redacted JSON
    Column("result", Text),  # redacted JSON
)

transfers = _call_event_table(
    "transfers",
    Column("target", String(64), nullable=False),
    Column("reason", String(64), nullable=False),
    Column("briefing", Text),  # redacted
)

call_events = _call_event_table(
    "call_events",
    Column("event", String(32), nullable=False),
    Column("data", Text),  # redacted JSON
)

daily_kpis = Table(
    "daily_kpis",
    metadata,
    Column("day", Date, primary_key=True),
    Column("deployment", String(64), primary_key=True),
    Column("calls", Integer, nullable=False),
    Column("completed", Integer, nullable=False),
    Column("transferred", Integer, nullable=False),
    Column("hangups", Integer, nullable=False),
    Column("failed", Integer, nullable=False),  # error or interrupted by a crash
    Column("handle_ms_total", Integer, nullable=False),
    Column("first_audio_ms_total", Integer, nullable=False),
    Column("first_audio_calls", Integer, nullable=False),
    Column("caller_turns", Integer, nullable=False),
    Column("barge_ins", Integer, nullable=False),
)


_SYSTEM_FIELDS = frozenset(
    {"deployment", "models", "uniqueid", "linkedid", "kind", "intent", "sources", "target", "reason", "tool",
     "outcome", "where"}
)  # fmt: skip


def utc(t: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(t, dt.UTC).replace(tzinfo=None)


def epoch(at: dt.datetime) -> float:
    return at.replace(tzinfo=dt.UTC).timestamp()


RETRY_S = 2.0
MAX_SPOOL_BYTES = 64 * 2**20
MAX_HELD_EVENTS = 50_000  # in memory, when even the spool cannot be written (disk full)


def spool_path_for(engine: Engine) -> Path:
    """The spool belongs to one database: next to a SQLite file, else under state/ named by the URL."""
    url = engine.url
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        return Path(url.database + ".spool.jsonl")
    key = hashlib.sha256(url.render_as_string(hide_password=True).encode()).hexdigest()[:12]
    return STATE_DIR / f"record-spool-{key}.jsonl"


class RecordSpool:
    """Append-only JSON lines of call-record events (already redacted), bounded in size."""

    def __init__(self, path: Path, max_bytes: int = MAX_SPOOL_BYTES) -> None:
        self.path = path
        self.max_bytes = max_bytes

    def __len__(self) -> int:
        if not self.path.exists():
            return 0
        with open(self.path, "rb") as fh:
            return sum(1 for _ in fh)

    def append(self, item: tuple) -> bool:
        """False when the spool is full (the event is lost, and counted)."""
        line = (json.dumps(list(item), default=str, separators=(",", ":")) + "\n").encode()
        size = self.path.stat().st_size if self.path.exists() else 0
        if size + len(line) > self.max_bytes:
            return False
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
        return True

    def read(self) -> list[tuple]:
        if not self.path.exists():
            return []
        items = []
        for raw in self.path.read_text(encoding="utf-8").splitlines():
            try:
                call_id, seq, t, event, data = json.loads(raw)
            except (ValueError, TypeError):
                continue  # a line torn by a crash mid-write
            items.append((call_id, seq, t, event, data))
        return items

    def replace(self, items: list[tuple]) -> None:
        if not items:
            self.path.unlink(missing_ok=True)
            return
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_TRUNC | os.O_CREAT, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            for item in items:
                fh.write(json.dumps(list(item), default=str, separators=(",", ":")) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)


class CallStore:
    """The appliance's call records: one writer thread, one transaction per event, a spool for outages."""

    def __init__(self, engine: Engine, spool_path: Path | None = None) -> None:
        self.engine = engine
        self.spool = RecordSpool(spool_path or spool_path_for(engine))
        self.state = "ok"  # ok | spooling (the database is unreachable; events go to the spool)
        self.spooled = 0  # events written to the spool
        self.replayed = 0  # spooled events written to the database since
        self.lost = 0  # events lost: the spool was full
        self._outage_started = 0.0
        self._last_try = 0.0
        self._queue: queue.Queue[tuple | None] = queue.Queue()
        self._held: list[tuple] = []  # events neither the database nor the spool could take (disk full)
        if self.spool.path.exists():
            self._replay()  # events a stopped agent spooled, before crashed calls are marked
        self._thread = threading.Thread(target=self._write_loop, name="call-records", daemon=True)
        self._thread.start()

    def open_call(self, call_id: str, deployment: str, redactor: Redactor = DEFAULT) -> CallRecord:
        return CallRecord(self, call_id, deployment, redactor)

    def mark_interrupted(self) -> int:
        """Calls left "active" by a crash: mark them interrupted, ended at their last event."""
        with self.engine.begin() as conn:
            stale = conn.execute(select(calls.c.id, calls.c.started_at).where(calls.c.status == "active")).all()
            for call_id, started in stale:
                last = max([started] + [_last_at(conn, table, call_id) or started for table in _EVENT_TABLES])
                conn.execute(
                    update(calls)
                    .where(calls.c.id == call_id)
                    .values(status="interrupted", outcome="agent-crashed", ended_at=last)
                )
        if stale:
            log.warning("%d call(s) were cut off by a crash; marked interrupted", len(stale))
        return len(stale)

    def flush(self, timeout: float = 5.0) -> None:
        """Wait until everything reported so far is committed (or spooled, during an outage)."""
        done = threading.Event()
        self._queue.put(("flush", done))
        done.wait(timeout)

    def close(self) -> None:
        self.flush()
        self._queue.put(None)
        self._thread.join(10)

    def submit(self, item: tuple) -> None:
        self._queue.put(item)

    def _write_loop(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=RETRY_S if self.state != "ok" else None)
            except queue.Empty:
                self._replay()
                continue
            if item is None:
                break
            if item[0] == "flush":
                item[1].set()
                continue
            if self.state != "ok" and time.monotonic() - self._last_try >= RETRY_S:
                self._replay()
            if self.state != "ok":
                self._to_spool(item)
                continue
            self._store(item)
        if self.state != "ok" and not self._replay():  # one last try; the rest stays in the spool
            held, self._held = self._held, []
            for item in held:
                self._to_spool(item)

    def _store(self, item: tuple) -> bool:
        try:
            with self.engine.begin() as conn:
                apply_event(conn, *item)
            return True
        except Exception as exc:
            if is_outage(exc) or not self._reachable():
                self._outage(exc)
                self._to_spool(item)
            else:  # one bad event must not stop the records of every call
                log.error("call record event %s not stored: %s", item[3], type(exc).__name__)
            return False

    def _keep(self, spooled: list[tuple], held: list[tuple]) -> None:
        """What is still to be written: the spool file's rest, and the events held in memory."""
        self._held = list(held)
        try:
            self.spool.replace(spooled)
        except OSError:  # cannot rewrite the spool (disk full): hold its rest in memory, in order
            self._held = list(spooled) + self._held
            try:
                self.spool.path.unlink(missing_ok=True)
            except OSError:
                pass

    def _reachable(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
            return True
        except Exception:
            return False

    def _outage(self, exc: BaseException) -> None:
        self._last_try = time.monotonic()
        if self.state == "ok":
            self.state = "spooling"
            self._outage_started = time.monotonic()
            log.error("database %s unreachable (%s): call records go to the local spool %s until it is back",
                      describe_url(self.engine.url.render_as_string(hide_password=True)), type(exc).__name__,
                      self.spool.path)  # fmt: skip

    def _to_spool(self, item: tuple) -> None:
        if not self._held:  # once events are held in memory, later ones follow them there (keeps the order)
            try:
                if self.spool.append(item):
                    self.spooled += 1
                    return
                writable = True  # the spool is at its size cap
            except OSError as exc:  # disk full or spool unwritable: hold events in memory instead
                writable = False
                log.error("call-record spool %s cannot be written (%s): events held in memory until the "
                          "database is back", self.spool.path, exc.strerror or type(exc).__name__)  # fmt: skip
            if writable:
                self._count_lost()
                return
        if len(self._held) < MAX_HELD_EVENTS:
            self._held.append(item)
            return
        self._count_lost()

    def _count_lost(self) -> None:
        self.lost += 1
        if self.lost == 1 or self.lost % 1000 == 0:
            log.error("call-record spool full (%d MiB): %d event(s) lost so far", self.spool.max_bytes >> 20, self.lost)

    def _replay(self) -> bool:
        """Write the spooled events in order; True when the spool is empty afterwards."""
        self._last_try = time.monotonic()
        try:
            spooled = self.spool.read()
        except OSError:
            spooled = []
        items = spooled + self._held  # the spool was written before anything was held in memory
        for index, item in enumerate(items):
            try:
                with self.engine.begin() as conn:
                    apply_event(conn, *item)
                self.replayed += 1
            except Exception as exc:
                if is_outage(exc) or not self._reachable():
                    self._outage(exc)
                    self._keep(spooled[index:], self._held[max(0, index - len(spooled)):])
                    return False
                log.error("spooled call record event %s not stored: %s", item[3], type(exc).__name__)
        self._keep([], [])
        if self.state != "ok" or items:
            log.warning("database back: %d spooled call-record event(s) written%s", len(items),
                        f" after {time.monotonic() - self._outage_started:.0f} s" if self._outage_started else "")  # fmt: skip
        self.state = "ok"
        self._outage_started = 0.0
        return True


class CallRecord:
    """One call's record; `write` redacts and queues, the store's thread commits."""

    def __init__(self, store: CallStore, call_id: str, deployment: str, redactor: Redactor) -> None:
        self.store = store
        self.call_id = call_id
        self.deployment = deployment
        self.redactor = redactor
        self._seq = 0
        self._said: dict[str, str] = {}  # personal data the caller gave, value -> type: redacted wherever it recurs

    def redact(self, value):
        """A value as the record stores it: personal data replaced, also where it recurs later in the call."""
        if isinstance(value, dict):
            return {k: self.redact(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.redact(v) for v in value]
        if not isinstance(value, str):
            return value
        for finding in self.redactor.findings(value):
            raw = value[finding.start : finding.end]
            if len(raw) >= 3:
                self._said[raw] = finding.kind
        for raw, kind in sorted(self._said.items(), key=lambda item: -len(item[0])):
            value = re.sub(re.escape(raw), f"[{kind}]", value, flags=re.I)
        return self.redactor.redact(value)

    def write(self, event: str, **data) -> None:
        self._seq += 1
        if event == "call_start":
            data["deployment"] = self.deployment
        # every string is redacted except fields the agent itself sets (ids, names of things)
        clean = {k: v if k in _SYSTEM_FIELDS else self.redact(v) for k, v in data.items()}
        self.store.submit((self.call_id, self._seq, time.time(), event, clean))

    def close(self) -> None:
        """Nothing to release: each event is committed on its own."""


def apply_event(conn, call_id: str, seq: int, t: float, event: str, data: dict) -> None:
    """Turn one (already redacted) event into rows, inside the caller's transaction."""
    at = utc(t)
    common = {"call_id": call_id, "seq": seq, "at": at}
    if event == "call_start":
        conn.execute(
            insert(calls).values(
                id=call_id,
                deployment=data.get("deployment", ""),
                started_at=at,
                status="active",
                models=json.dumps(data.get("models", [])),
            )
        )
    elif event == "asterisk_ids":
        conn.execute(
            update(calls)
            .where(calls.c.id == call_id)
            .values(asterisk_uniqueid=data.get("uniqueid") or None, asterisk_linkedid=data.get("linkedid") or None)
        )
    elif event == "caller_turn":
        conn.execute(
            insert(turns).values(
                **common,
                speaker="caller",
                n=data.get("n"),
                text=data.get("heard"),
                keypad=bool(data.get("keypad")),
                asr_confidence=data.get("confidence"),
                asr_ms=data.get("asr_ms"),
            )
        )
        conn.execute(update(calls).where(calls.c.id == call_id).values(caller_turns=calls.c.caller_turns + 1))
    elif event == "bot_turn":
        conn.execute(
            insert(turns).values(
                **common,
                speaker="bot",
                reply_to=data.get("reply_to"),
                kind=data.get("kind"),
                intent=data.get("intent"),
                text=data.get("text"),
                sources=json.dumps(data["sources"]) if data.get("sources") else None,
                endpoint_ms=data.get("endpoint_ms"),
                asr_ms=data.get("asr_ms"),
                text_ready_ms=data.get("text_ready_ms"),
                first_audio_ms=data.get("first_audio_ms"),
                rehearsed=data.get("rehearsed"),
            )
        )
        values = {"bot_turns": calls.c.bot_turns + 1}
        if data.get("kind") == "greeting" and data.get("disclosure"):
            values["disclosure_played"] = True
        conn.execute(update(calls).where(calls.c.id == call_id).values(**values))
    elif event == "bot_cut":
        last = conn.execute(
            select(turns.c.id, turns.c.kind)
            .where(turns.c.call_id == call_id, turns.c.speaker == "bot")
            .order_by(turns.c.seq.desc())
            .limit(1)
        ).first()
        if last is not None:
            conn.execute(update(turns).where(turns.c.id == last.id).values(cut=True, heard_text=data.get("heard")))
            if last.kind == "greeting":  # cut short: the disclosure counts only if the caller heard it
                disclosed = discloses_ai(data.get("heard"))
                conn.execute(update(calls).where(calls.c.id == call_id).values(disclosure_played=disclosed))
        conn.execute(insert(call_events).values(**common, event=event, data=json.dumps(data)))
    elif event == "tool_call":
        conn.execute(
            insert(tool_calls).values(
                **common,
                reply_to=data.get("reply_to"),
                tool=data.get("tool", "?"),
                arguments=json.dumps(data.get("arguments")),
                result=json.dumps(data.get("result")),
            )
        )
    elif event == "transfer":
        conn.execute(
            insert(transfers).values(
                **common, target=data.get("target", "?"), reason=data.get("reason", "?"), briefing=data.get("briefing")
            )
        )
        conn.execute(
            update(calls)
            .where(calls.c.id == call_id)
            .values(transferred_to=data.get("target"), transfer_reason=data.get("reason"))
        )
    elif event == "survey":  # the post-call survey: the answer (1-5) or None when not answered
        conn.execute(update(calls).where(calls.c.id == call_id).values(csat=data.get("csat")))
        conn.execute(insert(call_events).values(**common, event=event, data=json.dumps(data)))
    elif event == "call_end":
        row = conn.execute(select(calls.c.started_at).where(calls.c.id == call_id)).first()
        confidence = conn.execute(
            select(func.avg(turns.c.asr_confidence)).where(turns.c.call_id == call_id, turns.c.speaker == "caller")
        ).scalar()
        first_bot = conn.execute(
            select(func.min(turns.c.at)).where(turns.c.call_id == call_id, turns.c.speaker == "bot")
        ).scalar()
        barges = conn.execute(
            select(func.count()).where(call_events.c.call_id == call_id, call_events.c.event == "barge_in")
        ).scalar()
        conn.execute(
            update(calls)
            .where(calls.c.id == call_id)
            .values(
                status="ended",
                outcome=data.get("outcome"),
                ended_at=at,
                handle_ms=_ms(at - row.started_at) if row else None,
                asr_confidence=confidence,
                barge_ins=barges,
                first_audio_ms=_ms(first_bot - row.started_at) if row and first_bot else None,
            )
        )
    else:
        conn.execute(insert(call_events).values(**common, event=event, data=json.dumps(data)))


def _ms(delta: dt.timedelta) -> int:
    return round(delta.total_seconds() * 1000)


_EVENT_TABLES = (turns, tool_calls, transfers, call_events)


def _last_at(conn, table: Table, call_id: str) -> dt.datetime | None:
    return conn.execute(select(func.max(table.c.at)).where(table.c.call_id == call_id)).scalar()


# ---- reading ----------------------------------------------------------------


def read_record(call_id: str, engine: Engine | None = None, wait_s: float = 3.0) -> list[dict]:
    """A call's events in order, as the session reported them (redacted), for the test caller and CLI.

    Waits up to `wait_s` for the call to be marked ended, since the writer
    thread commits a moment after the call hangs up.
    """
    engine = engine or make_engine()
    deadline = time.monotonic() + wait_s
    with engine.connect() as conn:
        while True:
            status = conn.execute(select(calls.c.status).where(calls.c.id == call_id)).scalar()
            if status not in (None, "active") or time.monotonic() > deadline:
                break
            time.sleep(0.1)
            conn.rollback()
        if status is None:
            return []
        events = list(_events(conn, call_id))
    return sorted(events, key=lambda e: e["seq"])


def _events(conn, call_id: str) -> Iterable[dict]:
    call = conn.execute(select(calls).where(calls.c.id == call_id)).mappings().first()
    yield {"seq": 0, "t": epoch(call["started_at"]), "event": "call_start", "deployment": call["deployment"]}
    for row in conn.execute(select(turns).where(turns.c.call_id == call_id)).mappings():
        base = {"seq": row["seq"], "t": epoch(row["at"])}
        if row["speaker"] == "caller":
            yield {**base, "event": "caller_turn", "n": row["n"], "heard": row["text"], "keypad": row["keypad"]}
        else:
            timings = {
                k: row[k] for k in ("endpoint_ms", "asr_ms", "text_ready_ms", "first_audio_ms") if row[k] is not None
            }
            yield {
                **base,
                "event": "bot_turn",
                "kind": row["kind"],
                "reply_to": row["reply_to"],
                "intent": row["intent"],
                "text": row["text"],
                "sources": json.loads(row["sources"]) if row["sources"] else [],
                "rehearsed": row["rehearsed"],
                **timings,
            }
    for row in conn.execute(select(tool_calls).where(tool_calls.c.call_id == call_id)).mappings():
        yield {
            "seq": row["seq"],
            "t": epoch(row["at"]),
            "event": "tool_call",
            "reply_to": row["reply_to"],
            "tool": row["tool"],
            "arguments": json.loads(row["arguments"] or "null"),
            "result": json.loads(row["result"] or "null"),
        }
    for row in conn.execute(select(transfers).where(transfers.c.call_id == call_id)).mappings():
        yield {
            "seq": row["seq"],
            "t": epoch(row["at"]),
            "event": "transfer",
            "target": row["target"],
            "reason": row["reason"],
            "briefing": row["briefing"],
        }
    for row in conn.execute(select(call_events).where(call_events.c.call_id == call_id)).mappings():
        yield {"seq": row["seq"], "t": epoch(row["at"]), "event": row["event"], **json.loads(row["data"] or "{}")}
    if call["status"] != "active":
        yield {
            "seq": 10**9,
            "t": epoch(call["ended_at"]) if call["ended_at"] else 0.0,
            "event": "call_end",
            "outcome": call["outcome"],
        }
