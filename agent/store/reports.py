"""What admins read from the call records: a list of calls, one transcript, KPIs as CSV or JSON.

Everything here comes from the database, which holds redacted text only.
"""

from __future__ import annotations

import csv
import io
import json
import statistics

from sqlalchemy import Engine, select

from agent.store.records import calls, daily_kpis, read_record, turns

KPI_COLUMNS = (
    "id", "deployment", "started_at", "ended_at", "status", "outcome", "handle_ms", "first_audio_ms",
    "turn_latency_p50_ms", "turn_latency_max_ms", "caller_turns", "bot_turns", "barge_ins", "asr_confidence",
    "disclosure_played", "transferred_to", "transfer_reason", "asterisk_uniqueid", "asterisk_linkedid", "csat",
)  # fmt: skip


class UnknownCall(LookupError):
    pass


def list_calls(engine: Engine, limit: int = 20) -> str:
    with engine.connect() as conn:
        rows = conn.execute(select(calls).order_by(calls.c.started_at.desc()).limit(limit)).mappings().all()
    if not rows:
        return "no calls recorded"
    lines = [f"{'call':36}  {'started (UTC)':19}  {'secs':>5}  {'turns':>5}  outcome"]
    for row in rows:
        secs = f"{row['handle_ms'] / 1000:.0f}" if row["handle_ms"] is not None else "-"
        outcome = row["outcome"] or row["status"]
        if row["transferred_to"]:
            outcome += f" -> {row['transferred_to']} ({row['transfer_reason']})"
        lines.append(
            f"{row['id']:36}  {row['started_at']:%Y-%m-%d %H:%M:%S}  {secs:>5}  {row['caller_turns']:>5}  {outcome}"
        )
    return "\n".join(lines)


def resolve_call(engine: Engine, prefix: str) -> str:
    with engine.connect() as conn:
        ids = [r.id for r in conn.execute(select(calls.c.id).where(calls.c.id.startswith(prefix)).limit(2))]
    if len(ids) != 1:
        raise UnknownCall(f"no call matches {prefix!r}" if not ids else f"{prefix!r} matches more than one call")
    return ids[0]


def show_call(engine: Engine, prefix: str) -> str:
    call_id = resolve_call(engine, prefix)
    lines = []
    for event in read_record(call_id, engine, wait_s=0):
        kind = event["event"]
        if kind == "call_start":
            lines.append(f"call {call_id} ({event['deployment']})")
        elif kind == "caller_turn":
            lines.append(f"  caller: {event['heard'] if event['heard'] is not None else '[expired]'}")
        elif kind == "bot_turn":
            timing = f"  ({event['first_audio_ms']} ms)" if event.get("first_audio_ms") else ""
            lines.append(f"  agent:  {event['text'] if event['text'] is not None else '[expired]'}{timing}")
        elif kind == "tool_call":
            lines.append(f"  [tool {event['tool']}: {json.dumps(event['arguments'])} -> {json.dumps(event['result'])}]")
        elif kind == "transfer":
            lines.append(f"  [transfer to {event['target']} ({event['reason']}): {event['briefing']}]")
        elif kind == "call_end":
            lines.append(f"  [end: {event['outcome']}]")
        else:
            details = {k: v for k, v in event.items() if k not in ("seq", "t", "event")}
            lines.append(f"  [{kind}{' ' + json.dumps(details) if details else ''}]")
    return "\n".join(lines)


def turn_latencies(engine: Engine) -> dict[str, list[int]]:
    """Each call's reply latencies (end of caller speech -> first bot audio, ms), in turn order."""
    latencies: dict[str, list[int]] = {}
    with engine.connect() as conn:
        for call_id, ms in conn.execute(
            select(turns.c.call_id, turns.c.first_audio_ms)
            .where(turns.c.first_audio_ms.is_not(None))
            .order_by(turns.c.call_id, turns.c.seq)
        ):
            latencies.setdefault(call_id, []).append(ms)
    return latencies


def kpi_rows(engine: Engine) -> list[dict]:
    with engine.connect() as conn:
        rows = conn.execute(select(calls).order_by(calls.c.started_at)).mappings().all()
    latencies = turn_latencies(engine)
    out = []
    for row in rows:
        values = latencies.get(row["id"], [])
        record = {k: row[k] for k in KPI_COLUMNS if k in row}
        record["started_at"] = row["started_at"].isoformat(timespec="seconds")
        record["ended_at"] = row["ended_at"].isoformat(timespec="seconds") if row["ended_at"] else None
        record["turn_latency_p50_ms"] = round(statistics.median(values)) if values else None
        record["turn_latency_max_ms"] = max(values) if values else None
        out.append({k: record.get(k) for k in KPI_COLUMNS})
    return out


def daily_rows(engine: Engine) -> list[dict]:
    with engine.connect() as conn:
        rows = conn.execute(select(daily_kpis).order_by(daily_kpis.c.day)).mappings().all()
    return [{**row, "day": row["day"].isoformat()} for row in rows]


def export(rows: list[dict], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(rows, indent=1)
    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return buffer.getvalue()
