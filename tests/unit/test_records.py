"""Call records: rows per event, redaction on the way in, crash marking, retention, KPIs, migrations.

Runs against SQLite and the project's real PostgreSQL server.
"""

import datetime as dt
import json
import wave

import numpy as np
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select

from agent.brain.tools.calendar import appointments
from agent.call.recording import CallRecording
from agent.config import Retention
from agent.privacy.redact import Redactor
from agent.store import reports
from agent.store.db import make_engine
from agent.store.records import CallStore, calls, daily_kpis, read_record, turns
from agent.store.retention import purge
from agent.store.schema import metadata

CARD = "4111 1111 1111 1111"


def record_call(store, call_id="c1", deployment="clinic", outcome="completed"):
    record = store.open_call(call_id, deployment, Redactor())
    record.write("call_start", models=["tiny.en"])
    record.write("asterisk_ids", uniqueid="1700000000.1", linkedid="1700000000.1")
    record.write("bot_turn", kind="greeting", text="Hi, I'm the virtual assistant.", disclosure=True)
    record.write("caller_turn", n=1, heard=f"my card is {CARD} and my name is John Smith", confidence=0.8, asr_ms=300)
    record.write("tool_call", reply_to=1, tool="loyalty_points", arguments={"phone": "+15550123456"}, result={"ok": 1})
    record.write("bot_turn", kind="answer", reply_to=1, text="Thanks John Smith.", first_audio_ms=420)
    record.write("barge_in", stop_ms=110)
    record.write("transfer", target="humans", reason="asked", briefing=f"caller gave card {CARD}")
    record.write("call_end", outcome=outcome)
    store.flush()
    return record


def test_migrations_build_exactly_the_declared_schema(database_url):
    engine = make_engine(database_url)
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []


def test_each_event_becomes_rows_and_nothing_raw_is_stored(database_url):
    engine = make_engine(database_url)
    store = CallStore(engine)
    record_call(store)
    with engine.connect() as conn:
        call = conn.execute(select(calls)).mappings().one()
        texts = [r.text for r in conn.execute(select(turns.c.text))]
    assert call["status"] == "ended" and call["outcome"] == "completed"
    assert call["asterisk_uniqueid"] == "1700000000.1"
    assert call["disclosure_played"] is True
    assert call["caller_turns"] == 1 and call["bot_turns"] == 2 and call["barge_ins"] == 1
    assert call["asr_confidence"] == 0.8 and call["handle_ms"] is not None and call["first_audio_ms"] is not None
    assert "my card is [CARD_NUMBER] and my name is [NAME]" in texts
    events = read_record("c1", engine)
    assert [e["event"] for e in events][:3] == ["call_start", "bot_turn", "caller_turn"]
    dump = json.dumps(events)
    for raw in (CARD, "John Smith", "5550123456"):
        assert raw not in dump
    store.close()


def test_a_call_cut_off_by_a_crash_is_marked_interrupted_at_the_next_start(database_url):
    engine = make_engine(database_url)
    store = CallStore(engine)
    record = store.open_call("crashed", "clinic")
    record.write("call_start", models=[])
    record.write("caller_turn", n=1, heard="when are you open", confidence=0.9, asr_ms=200)
    store.flush()
    store.close()  # the agent dies here: no call_end
    restarted = CallStore(make_engine(database_url))
    assert restarted.mark_interrupted() == 1
    with engine.connect() as conn:
        call = conn.execute(select(calls)).mappings().one()
    assert call["status"] == "interrupted" and call["outcome"] == "agent-crashed"
    assert call["ended_at"] >= call["started_at"]
    assert read_record("crashed", engine)[1]["heard"] == "when are you open"  # the ended turn survived
    restarted.close()


def test_purge_keeps_daily_counts_and_drops_text_then_calls(database_url, tmp_path):
    engine = make_engine(database_url)
    store = CallStore(engine)
    record_call(store, "old")
    record_call(store, "older", outcome="transferred")
    store.close()
    rules = Retention(transcripts_days=7, call_records_days=30, recordings_days=1, appointments_days=10)
    with engine.begin() as conn:
        conn.execute(
            appointments.insert().values(
                phone="+15550100", service="check-up", start=dt.datetime(2020, 1, 1, 9), minutes=30,
                status="booked", created_at=dt.datetime(2019, 12, 1),
            )
        )  # fmt: skip
    (tmp_path / "rec").mkdir()
    (tmp_path / "rec" / "old.wav").write_bytes(b"RIFF")
    inbox = tmp_path / "vm" / "100" / "INBOX"  # a voicemail left when no human answered: voice and number
    inbox.mkdir(parents=True)
    (inbox / "msg0000.wav").write_bytes(b"RIFF")
    (inbox / "msg0000.txt").write_text("callerid=+15550100\n")
    cdr = tmp_path / "asterisk" / "cdr-csv"
    cdr.mkdir(parents=True)
    (cdr / "Master.csv").write_text(
        '"","+15550100","s","agent","x","PJSIP/a","","AudioSocket","u","2020-01-01 09:00:00","","",1,1\n'
        '"","+15550101","s","agent","x","PJSIP/b","","AudioSocket","u","2099-01-01 09:00:00","","",1,1\n'
    )
    (tmp_path / "asterisk" / "queue_log").write_text("1577869200|c|humans|NONE|ENTERQUEUE||+15550100|1\n")

    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    soon = purge(engine, rules, now + dt.timedelta(days=8), tmp_path / "rec", tmp_path / "asterisk", tmp_path / "vm")
    assert soon.transcripts_purged == 2 and soon.calls_deleted == 0 and soon.recordings_deleted == 3
    assert not any(inbox.iterdir())
    assert soon.appointments_deleted == 1
    assert soon.asterisk_log_lines_deleted == 2  # the 2020 CDR and queue_log lines
    assert "+15550100" not in (cdr / "Master.csv").read_text() and "+15550101" in (cdr / "Master.csv").read_text()
    assert all(e.get("heard") is None for e in read_record("old", engine) if e["event"] == "caller_turn")

    later = purge(engine, rules, now + dt.timedelta(days=31), tmp_path / "rec", tmp_path / "asterisk")
    assert later.calls_deleted == 2
    with engine.connect() as conn:
        assert conn.execute(select(calls)).first() is None
        assert conn.execute(select(turns)).first() is None
        day = conn.execute(select(daily_kpis)).mappings().one()
    assert day["calls"] == 2 and day["completed"] == 1 and day["transferred"] == 1 and day["barge_ins"] == 2
    assert purge(engine, rules, now + dt.timedelta(days=31), tmp_path / "rec", tmp_path / "asterisk").calls_deleted == 0


def test_reports_list_show_and_export(database_url):
    engine = make_engine(database_url)
    store = CallStore(engine)
    record_call(store, "3f2a9c1e-0000-4000-8000-000000000001")
    store.close()
    assert "completed" in reports.list_calls(engine)
    transcript = reports.show_call(engine, "3f2a")
    assert "caller: my card is [CARD_NUMBER]" in transcript and "transfer to humans" in transcript
    rows = reports.kpi_rows(engine)
    assert rows[0]["turn_latency_p50_ms"] == 420 and rows[0]["disclosure_played"] is True
    csv_text = reports.export(rows, "csv")
    assert csv_text.splitlines()[0].startswith("id,deployment,started_at")
    assert json.loads(reports.export(rows, "json"))[0]["outcome"] == "completed"


def test_recording_silences_an_utterance_with_payment_data(tmp_path):
    recording = CallRecording("r1", tmp_path)
    loud = (np.ones(160, dtype=np.int16) * 1000).tobytes()
    for _ in range(100):  # two seconds of ordinary speech
        recording.add_caller(loud)
        recording.add_bot(loud)
    hold = recording.hold(recording.caller_frames)
    for _ in range(100):  # the caller reads out a card number
        recording.add_caller(loud)
        recording.add_bot(loud)
    recording.release(hold, silence_until=recording.caller_frames)
    recording.paused = True  # keypad entry
    for _ in range(50):
        recording.add_caller(loud)
        recording.add_bot(loud)
    recording.close()
    with wave.open(str(tmp_path / "r1.wav")) as wav:
        assert wav.getnchannels() == 2 and wav.getframerate() == 8000
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16).reshape(-1, 2)
    caller = samples[:, 0]
    assert len(samples) == 250 * 160
    assert (caller[: 100 * 160] == 1000).all()
    assert (caller[100 * 160 :] == 0).all()
    assert (samples[: 200 * 160, 1] == 1000).all()


def _locked_sqlite(tmp_path):
    """A real SQLite database whose write lock another process-like connection holds: writes fail, as in an outage."""
    import sqlite3

    from sqlalchemy import event

    path = tmp_path / "agent.db"
    engine = make_engine(f"sqlite:///{path}")

    @event.listens_for(engine, "connect")
    def _short_busy(connection, _record):  # the appliance waits 5 s; the test need not
        connection.execute("PRAGMA busy_timeout=100")

    engine.dispose()
    locker = sqlite3.connect(path, isolation_level=None)
    return engine, locker


def _until(predicate, timeout=20.0):
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_records_survive_a_database_outage_through_the_spool(tmp_path):
    engine, locker = _locked_sqlite(tmp_path)
    store = CallStore(engine)
    locker.execute("BEGIN EXCLUSIVE")  # nothing can be written now
    record_call(store, "during-outage")
    assert store.state == "spooling" and store.spooled == 9 and store.lost == 0
    spooled = store.spool.path.read_text()
    assert store.spool.path.stat().st_mode & 0o777 == 0o600
    for raw in (CARD, "John Smith", "5550123456"):
        assert raw not in spooled  # only redacted data on disk
    locker.execute("ROLLBACK")  # the database is back
    _until(lambda: store.state == "ok")
    assert not store.spool.path.exists() and store.replayed == 9
    with engine.connect() as conn:
        call = conn.execute(select(calls)).mappings().one()
    assert call["status"] == "ended" and call["outcome"] == "completed"  # never left active
    assert call["caller_turns"] == 1 and call["bot_turns"] == 2
    assert [e["event"] for e in read_record("during-outage", engine)][:3] == ["call_start", "bot_turn", "caller_turn"]
    store.close()


def test_a_spool_left_by_a_stopped_agent_is_written_at_the_next_start(tmp_path):
    engine, locker = _locked_sqlite(tmp_path)
    store = CallStore(engine)
    locker.execute("BEGIN EXCLUSIVE")
    record_call(store, "spooled-then-stopped")
    store.close()  # the agent stops while the database is still down: the spool stays on disk
    assert len(store.spool) == 9
    locker.execute("ROLLBACK")
    restarted = CallStore(engine)
    assert restarted.state == "ok" and restarted.replayed == 9
    assert restarted.mark_interrupted() == 0  # the call ended in the spool, so it is not "crashed"
    with engine.connect() as conn:
        assert conn.execute(select(calls.c.status)).scalar() == "ended"
    restarted.close()


def test_the_spool_is_bounded(tmp_path):
    engine, locker = _locked_sqlite(tmp_path)
    store = CallStore(engine, spool_path=tmp_path / "small.jsonl")
    store.spool.max_bytes = 600
    locker.execute("BEGIN EXCLUSIVE")
    record_call(store, "too-much")
    assert store.lost > 0 and store.spool.path.stat().st_size <= 600
    locker.execute("ROLLBACK")
    store.close()


def test_start_up_with_postgresql_down_is_one_line_and_a_retry(caplog, monkeypatch):
    """A closed port stands in for a stopped server: connect_database logs once and keeps trying."""
    import logging
    import socket
    import threading

    from agent.store import db

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"postgresql+psycopg://agent:secret@127.0.0.1:{port}/agent"
    result = {}
    thread = threading.Thread(
        target=lambda: result.update(error=_catch(lambda: db.connect_database(url, retry_s=0.1, max_retry_s=0.2))),
        daemon=True,
    )
    caplog.set_level(logging.INFO, logger="agent.store.db")
    thread.start()
    thread.join(1.5)
    assert thread.is_alive()  # still retrying, not crashed
    lines = [r for r in caplog.records if r.name == "agent.store.db"]
    assert len(lines) == 1 and "not reachable" in lines[0].getMessage()
    assert "secret" not in lines[0].getMessage() and lines[0].exc_info is None


def _catch(fn):
    try:
        fn()
    except BaseException as exc:  # noqa: BLE001
        return exc
    return None


def test_events_are_held_in_memory_when_even_the_spool_cannot_be_written(tmp_path):
    """Disk full: neither the database nor the spool takes an event; they wait in memory, in order."""
    engine, locker = _locked_sqlite(tmp_path)
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("")  # the spool's parent is a file: every write to the spool fails with OSError
    store = CallStore(engine, spool_path=blocked / "spool.jsonl")
    locker.execute("BEGIN EXCLUSIVE")
    record_call(store, "disk-full")
    assert store.state == "spooling" and store.spooled == 0 and store.lost == 0
    locker.execute("ROLLBACK")
    _until(lambda: store.state == "ok")
    assert store.replayed == 9
    assert [e["event"] for e in read_record("disk-full", engine)][:3] == ["call_start", "bot_turn", "caller_turn"]
    with engine.connect() as conn:
        assert conn.execute(select(calls.c.status)).scalar() == "ended"
    store.close()
