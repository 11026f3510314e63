"""Retention: delete what need not be kept, per record kind, after its days in config.

Order matters: per-call KPIs are added into `daily_kpis` in the same
transaction that deletes the calls, so counts survive their detail. Texts
(transcripts, tool arguments, briefings) usually go sooner than the call
rows; recordings and past appointments have their own clocks.
"""

from __future__ import annotations

import csv
import datetime as dt
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, delete, select, update

from agent.brain.tools.calendar import appointments
from agent.call.recording import RECORDINGS_DIR
from agent.config import ASTERISK_ROOT, Retention
from agent.store.records import call_events, calls, daily_kpis, tool_calls, transfers, turns

_FAILED = {"error", "agent-crashed"}


@dataclass
class PurgeReport:
    calls_aggregated: int = 0
    calls_deleted: int = 0
    transcripts_purged: int = 0
    recordings_deleted: int = 0
    appointments_deleted: int = 0
    asterisk_log_lines_deleted: int = 0

    def __str__(self) -> str:
        return ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in vars(self).items())


def purge(
    engine: Engine,
    rules: Retention,
    now: dt.datetime | None = None,
    recordings: Path | None = None,
    asterisk_logs: Path | None = None,
    voicemails: Path | None = None,
) -> PurgeReport:
    now = now or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    report = PurgeReport()
    with engine.begin() as conn:
        cutoff = now - dt.timedelta(days=rules.call_records_days)
        old = (
            conn.execute(select(calls).where(calls.c.status != "active", calls.c.started_at < cutoff)).mappings().all()
        )
        if old:
            _add_to_daily(conn, old)
            conn.execute(delete(calls).where(calls.c.id.in_([c["id"] for c in old])))
            for table in (turns, tool_calls, transfers, call_events):  # also where foreign keys are off
                conn.execute(delete(table).where(table.c.call_id.in_([c["id"] for c in old])))
            report.calls_aggregated = report.calls_deleted = len(old)

        cutoff = now - dt.timedelta(days=rules.transcripts_days)
        stale = [
            row.id
            for row in conn.execute(
                select(calls.c.id).where(
                    calls.c.status != "active", calls.c.started_at < cutoff, calls.c.transcript_purged.is_(False)
                )
            )
        ]
        if stale:
            conn.execute(update(turns).where(turns.c.call_id.in_(stale)).values(text=None, heard_text=None))
            conn.execute(update(tool_calls).where(tool_calls.c.call_id.in_(stale)).values(arguments=None, result=None))
            conn.execute(update(transfers).where(transfers.c.call_id.in_(stale)).values(briefing=None))
            conn.execute(update(call_events).where(call_events.c.call_id.in_(stale)).values(data=None))
            conn.execute(update(calls).where(calls.c.id.in_(stale)).values(transcript_purged=True))
            report.transcripts_purged = len(stale)

        cutoff = now - dt.timedelta(days=rules.appointments_days)
        report.appointments_deleted = conn.execute(delete(appointments).where(appointments.c.start < cutoff)).rowcount

    cutoff_ts = (now - dt.timedelta(days=rules.recordings_days)).replace(tzinfo=dt.UTC).timestamp()
    directory = recordings or RECORDINGS_DIR
    # call recordings, and the voicemails callers leave when no human answers (voice + number)
    voicemail = voicemails if voicemails is not None else VOICEMAIL_DIR
    for path in [*_files(directory, "*.wav"), *_files(voicemail, "*/INBOX/msg*"), *_files(voicemail, "*/Old/msg*")]:
        if path.stat().st_mtime < cutoff_ts:
            path.unlink()
            report.recordings_deleted += 1
    # Asterisk's own call records carry caller numbers: same clock as the agent's call records
    logs = asterisk_logs or next((p for p in ASTERISK_LOG_DIRS if p.is_dir()), None)
    if logs is not None:
        cutoff = now - dt.timedelta(days=rules.call_records_days)
        report.asterisk_log_lines_deleted = _trim(logs / "cdr-csv" / "Master.csv", cutoff, _cdr_time)
        report.asterisk_log_lines_deleted += _trim(logs / "queue_log", cutoff, _queue_log_time)
    return report


ASTERISK_LOG_DIRS = (ASTERISK_ROOT / "var/log/asterisk", Path("/var/log/asterisk"))
VOICEMAIL_DIR = ASTERISK_ROOT / "var/spool/asterisk/voicemail/phone-agent"


def _files(directory: Path, pattern: str) -> list[Path]:
    return [p for p in directory.glob(pattern) if p.is_file()] if directory.is_dir() else []


def _cdr_time(line: str) -> dt.datetime | None:
    """Master.csv: the call's start (UTC, cdr.conf usegmtime) is the first 'YYYY-MM-DD HH:MM:SS' field."""
    for field in next(csv.reader([line]), []):
        try:
            return dt.datetime.strptime(field, "%Y-%m-%d %H:%M:%S")
        except ValueError:
            continue
    return None


def _queue_log_time(line: str) -> dt.datetime | None:
    stamp = line.split("|", 1)[0]
    return dt.datetime.fromtimestamp(int(stamp), dt.UTC).replace(tzinfo=None) if stamp.isdigit() else None


def _trim(path: Path, cutoff: dt.datetime, stamp) -> int:
    """Drop lines older than cutoff; Asterisk appends by reopening the file, so a replace is safe enough."""
    if not path.is_file():
        return 0
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)
    keep = [line for line in lines if (stamp(line) or cutoff) >= cutoff]
    if len(keep) == len(lines):
        return 0
    temporary = path.with_suffix(path.suffix + ".purge")
    temporary.write_text("".join(keep), encoding="utf-8")
    os.chmod(temporary, path.stat().st_mode & 0o777)
    os.replace(temporary, path)
    return len(lines) - len(keep)


def _add_to_daily(conn, old_calls) -> None:
    groups: dict[tuple, dict] = defaultdict(lambda: defaultdict(int))
    for call in old_calls:
        totals = groups[(call["started_at"].date(), call["deployment"])]
        totals["calls"] += 1
        outcome = call["outcome"] or ""
        totals["completed"] += outcome == "completed"
        totals["transferred"] += outcome == "transferred"
        totals["hangups"] += outcome == "hangup"
        totals["failed"] += outcome in _FAILED or call["status"] == "interrupted"
        totals["handle_ms_total"] += call["handle_ms"] or 0
        if call["first_audio_ms"] is not None:
            totals["first_audio_ms_total"] += call["first_audio_ms"]
            totals["first_audio_calls"] += 1
        totals["caller_turns"] += call["caller_turns"] or 0
        totals["barge_ins"] += call["barge_ins"] or 0
    columns = [c.name for c in daily_kpis.columns if c.name not in ("day", "deployment")]
    for (day, deployment), totals in groups.items():
        key = (daily_kpis.c.day == day) & (daily_kpis.c.deployment == deployment)
        existing = conn.execute(select(daily_kpis).where(key)).mappings().first()
        if existing:
            conn.execute(update(daily_kpis).where(key).values({c: existing[c] + totals[c] for c in columns}))
        else:
            conn.execute(daily_kpis.insert().values(day=day, deployment=deployment, **{c: totals[c] for c in columns}))
