"""The admin console's safety: password hashing, sessions, CSRF, login rate limit, roles, audit log.

Starlette's TestClient against a real SQLite database (migrated like the
appliance's); the agent's /live status is a fake LiveFeed, nothing else is.
"""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from agent.config import DEFAULT_CONFIG_DIR
from agent.console import kpis, users
from agent.console.app import ConsoleSettings, LoginLimiter, create_app
from agent.console.live import LiveFeed
from agent.console.server import is_loopback
from agent.console.tables import console_users
from agent.store.db import make_engine
from agent.store.records import CallStore

ADMIN_PW = "correct horse battery"
VIEWER_PW = "viewer password 1"


class FakeFeed(LiveFeed):
    """The /live contract without an agent: a fixed snapshot, no polling."""

    def __init__(self) -> None:
        super().__init__("127.0.0.1:1")
        self.snapshot = {"ok": True, "error": None, "agent": {"calls": 1, "pending": 0, "ami": "up", "records": "ok"},
                         "calls": [{"call_id": "abc", "started_at": "2026-01-01T00:00:00Z", "duration_s": 3.0,
                                    "state": "listening", "task": None, "slots": {}, "last_reply_ms": None,
                                    "turns": 1}]}  # fmt: skip

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass


class FakeChecker:
    """`agent check` takes seconds (it builds the brain); its output is not what these tests are about."""

    def result(self) -> dict:
        return {"ok": True, "output": "valid", "errors": []}


@pytest.fixture
def engine(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'agent.db'}")
    users.add_user(engine, "boss", "admin", ADMIN_PW)
    users.add_user(engine, "watcher", "viewer", VIEWER_PW)
    return engine


@pytest.fixture
def config_dir(tmp_path):
    import shutil

    target = tmp_path / "clinic"
    shutil.copytree(DEFAULT_CONFIG_DIR, target)
    return target


@pytest.fixture
def client(engine, config_dir, tmp_path):
    settings = ConsoleSettings(engine=engine, config_dir=config_dir, status_address="127.0.0.1:1",
                               secret_key="test-secret", recordings_dir=tmp_path / "recordings")  # fmt: skip
    with TestClient(create_app(settings, FakeFeed(), FakeChecker()), base_url="http://127.0.0.1:8090") as client:
        yield client


def csrf_of(client: TestClient, path: str = "/login") -> str:
    return re.search(r'name="csrf" value="([^"]+)"', client.get(path).text).group(1)


def log_in(client: TestClient, name: str, password: str):
    return client.post("/login", data={"username": name, "password": password, "csrf": csrf_of(client)},
                       follow_redirects=False)  # fmt: skip


def audit_actions(engine) -> list[str]:
    return [row["action"] for row in users.audit_log(engine)]


def test_passwords_are_stored_as_argon2_hashes_only(engine):
    with engine.connect() as conn:
        stored = conn.execute(select(console_users.c.password_hash).where(console_users.c.name == "boss")).scalar()
    assert stored.startswith("$argon2id$") and ADMIN_PW not in stored
    assert users.authenticate(engine, "boss", ADMIN_PW).role == "admin"
    assert users.authenticate(engine, "boss", "wrong password!") is None
    assert users.authenticate(engine, "nobody", ADMIN_PW) is None


def test_no_weak_passwords_and_the_last_admin_stays(engine):
    with pytest.raises(users.UserError):
        users.add_user(engine, "short", "viewer", "admin")
    with pytest.raises(users.UserError):
        users.add_user(engine, "bad name!", "viewer", "long enough password")
    with pytest.raises(users.UserError):
        users.remove_user(engine, "boss")
    with pytest.raises(users.UserError):
        users.set_role(engine, "boss", "viewer")


def test_init_creates_one_admin_with_a_generated_password_printed_once(tmp_path, capsys):
    engine = make_engine(f"sqlite:///{tmp_path / 'fresh.db'}")
    password = users.init_admin(engine)
    assert password and password in capsys.readouterr().out
    assert users.authenticate(engine, "admin", password).is_admin
    assert users.init_admin(engine) is None  # an admin exists: nothing printed, nothing changed


def test_every_page_needs_a_login(client):
    for path in ("/", "/live", "/calls", "/deployment", "/admin", "/live/events"):
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"] == "/login", path


def test_login_then_pages_render_with_security_headers(client, engine):
    assert log_in(client, "boss", ADMIN_PW).status_code == 303
    for path in ("/", "/live", "/calls", "/deployment", "/admin"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert "script-src 'self'" in response.headers["content-security-policy"]
        assert response.headers["x-frame-options"] == "DENY"
    cookie = client.cookies.get("phone_agent_console")
    assert cookie and ADMIN_PW not in cookie
    assert "login" in audit_actions(engine)


def test_a_post_without_the_session_csrf_token_is_refused(client, engine):
    log_in(client, "boss", ADMIN_PW)
    files = {"document": ("faq.md", b"# FAQ\nWe are open on Sundays.\n", "text/markdown")}
    assert client.post("/deployment/upload", files=files, data={"csrf": "forged"}).status_code == 403
    assert client.post("/deployment/upload", files=files).status_code == 403
    assert client.post("/login", data={"username": "boss", "password": ADMIN_PW}).status_code == 403
    assert "csrf_rejected" in audit_actions(engine)
    response = client.post("/deployment/upload", files=files, data={"csrf": csrf_of(client, "/deployment")})
    assert response.status_code == 200 and "faq.md saved" in response.text


def test_a_cross_origin_post_is_refused_even_with_the_token(client):
    log_in(client, "boss", ADMIN_PW)
    token = csrf_of(client, "/admin")
    response = client.post("/admin/users", data={"csrf": token, "action": "add", "name": "x", "role": "viewer"},
                           headers={"Origin": "http://evil.example"})  # fmt: skip
    assert response.status_code == 403


def test_login_is_rate_limited_per_ip_and_user(client, engine):
    for _ in range(5):
        assert log_in(client, "boss", "not the password").status_code == 401
    assert log_in(client, "boss", ADMIN_PW).status_code == 429  # even the right password, until the window passes
    assert log_in(client, "watcher", VIEWER_PW).status_code == 303  # another user from the same IP is not locked
    assert audit_actions(engine).count("login_failed") == 5 and "login_blocked" in audit_actions(engine)


def test_limiter_window_and_per_ip_cap():
    now = [0.0]
    limiter = LoginLimiter(per_user=2, per_ip=3, window_s=60, clock=lambda: now[0])
    limiter.failed("1.2.3.4", "a")
    limiter.failed("1.2.3.4", "A")
    assert limiter.blocked("1.2.3.4", "a") and not limiter.blocked("5.6.7.8", "a")
    limiter.failed("1.2.3.4", "b")
    assert limiter.blocked("1.2.3.4", "c")  # the IP tried too many names
    now[0] = 61
    assert not limiter.blocked("1.2.3.4", "a")


def test_viewer_reads_but_cannot_test_upload_or_manage(client, engine, config_dir):
    log_in(client, "watcher", VIEWER_PW)
    assert client.get("/").status_code == 200 and client.get("/deployment").status_code == 200
    assert client.get("/admin").status_code == 403
    token = csrf_of(client, "/deployment")
    files = {"document": ("faq.md", b"# FAQ\n", "text/markdown")}
    assert client.post("/deployment/upload", files=files, data={"csrf": token}).status_code == 403
    assert client.post("/deployment/test", data={"csrf": token, "scenario": "demo.yaml"}).status_code == 403
    assert (
        client.post("/admin/users", data={"csrf": token, "action": "add", "name": "x", "role": "admin"}).status_code
        == 403
    )
    assert not (config_dir / "knowledge" / "faq.md").exists()
    assert audit_actions(engine).count("denied") == 3


def test_admin_manages_users_and_each_action_is_audited(client, engine):
    log_in(client, "boss", ADMIN_PW)
    token = csrf_of(client, "/admin")
    page = client.post("/admin/users", data={"csrf": token, "action": "add", "name": "nurse", "role": "viewer"}).text
    password = re.search(r"Password \(shown once\): ([A-Za-z0-9_-]+)", page).group(1)
    assert users.authenticate(engine, "nurse", password).role == "viewer"
    client.post("/admin/users", data={"csrf": token, "action": "remove", "name": "nurse", "role": "viewer"})
    assert users.authenticate(engine, "nurse", password) is None
    assert {"user_add", "user_remove"} <= set(audit_actions(engine))
    assert password not in str(users.audit_log(engine))


def test_a_password_change_ends_existing_sessions(client, engine):
    log_in(client, "watcher", VIEWER_PW)
    assert client.get("/", follow_redirects=False).status_code == 200
    users.set_password(engine, "watcher", "a brand new password")
    assert client.get("/", follow_redirects=False).status_code == 303


def test_upload_refuses_paths_and_non_text(client, config_dir):
    before = (config_dir / "agent.yaml").read_bytes()
    log_in(client, "boss", ADMIN_PW)
    token = csrf_of(client, "/deployment")
    for name, data in (("../agent.yaml", b"x"), ("evil.sh", b"echo"), ("bin.md", b"\xff\xfe\x00")):
        page = client.post("/deployment/upload", files={"document": (name, data, "text/plain")}, data={"csrf": token})
        assert "Upload refused" in page.text, name
    assert (config_dir / "agent.yaml").read_bytes() == before
    assert not (config_dir / "knowledge" / "evil.sh").exists()


def test_live_events_stream_the_agents_snapshot(client):
    log_in(client, "watcher", VIEWER_PW)
    with client.stream("GET", "/live/events") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data:"):
                assert '"call_id":"abc"' in line
                break


def test_calls_pages_show_redacted_records(client, engine):
    store = CallStore(engine)
    record = store.open_call("c0ffee00-0000-4000-8000-000000000001", "clinic")
    record.write("call_start", models=[])
    record.write("bot_turn", kind="greeting", text="Hi, I'm the virtual assistant.", disclosure=True)
    record.write("caller_turn", n=1, heard="my card is 4111 1111 1111 1111", confidence=0.9, asr_ms=100)
    record.write("bot_turn", kind="transfer", reply_to=1, text="Let me connect you.", first_audio_ms=640)
    record.write("transfer", target="humans", reason="asked", briefing="caller wants to pay by card")
    record.write("call_end", outcome="transferred")
    store.close()
    log_in(client, "watcher", VIEWER_PW)
    listing = client.get("/calls?outcome=transferred&reason=asked").text
    assert "c0ffee00" in listing
    assert "c0ffee00" not in client.get("/calls?outcome=completed").text
    page = client.get("/calls/c0ffee00-0000-4000-8000-000000000001").text
    assert "[CARD_NUMBER]" in page and "4111" not in page
    assert "reply 640 ms" in page and "caller wants to pay by card" in page
    assert client.get("/calls/nope").status_code == 404
    dashboard = client.get("/").text
    assert 'data-kpi="today.calls" data-value="1"' in dashboard
    assert 'data-kpi="today.containment" data-value="0.0"' in dashboard


def test_kpi_definitions():
    rows = [
        {"id": "a", "started_at": "2026-11-25T10:00:00", "status": "ended", "outcome": "completed",
         "transferred_to": None, "transfer_reason": None, "handle_ms": 10000, "first_audio_ms": 400,
         "asr_confidence": 0.9, "csat": 5},
        {"id": "b", "started_at": "2026-11-25T11:00:00", "status": "ended", "outcome": "transferred",
         "transferred_to": "humans", "transfer_reason": "asked", "handle_ms": 20000, "first_audio_ms": 600,
         "asr_confidence": 0.7, "csat": None},
        {"id": "c", "started_at": "2026-11-20T11:00:00", "status": "ended", "outcome": "busy",
         "transferred_to": None, "transfer_reason": None, "handle_ms": 100, "first_audio_ms": None,
         "asr_confidence": None, "csat": None},
        {"id": "d", "started_at": "2026-11-25T12:00:00", "status": "active", "outcome": None,
         "transferred_to": None, "transfer_reason": None, "handle_ms": None, "first_audio_ms": None,
         "asr_confidence": None, "csat": None},
    ]  # fmt: skip
    import datetime as dt

    summary = kpis.summarize(rows, {"a": [500, 900], "b": [700]}, now=dt.datetime(2026, 11, 25, 13))
    today, week = summary["windows"]["today"], summary["windows"]["7d"]
    assert today["calls"] == 3 and today["ended"] == 2 and today["containment"] == 0.5
    assert today["transfers_by_reason"] == {"asked": 1} and today["handle_ms_mean"] == 15000
    assert today["reply_ms_p50"] == 700 and today["reply_ms_p95"] == 900
    assert today["csat_mean"] == 5 and today["csat_count"] == 1
    assert week["calls"] == 4 and week["admission_refusals"] == 1 and week["containment"] == 1 / 3
    assert len(summary["daily"]) == 30 and summary["daily"][-1]["calls"] == 3
    assert all(chart.startswith("<svg") for chart in kpis.charts(summary))


def test_only_loopback_without_tls():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")


def test_console_refuses_a_public_address_without_tls(capsys):
    from agent.__main__ import main

    assert main(["console", "--listen", "0.0.0.0:8090"]) == 2
    assert "without TLS" in capsys.readouterr().err


def test_deployment_shows_the_config_and_its_file_line_error(client, config_dir):
    log_in(client, "watcher", VIEWER_PW)
    page = client.get("/deployment").text
    assert "book_appointment" in page and "clinic.md" in page
    assert "Run test call" not in page  # a viewer sees no test button
    config = config_dir / "agent.yaml"
    config.write_text(config.read_text() + "\nno_such_setting: 1\n")
    page = client.get("/deployment").text
    assert re.search(r"agent\.yaml:\d+: no_such_setting: unknown setting", page)


def test_recording_player_when_a_recording_exists(client, engine, tmp_path):
    store = CallStore(engine)
    record = store.open_call("5eed0000-0000-4000-8000-000000000002", "clinic")
    record.write("call_start", models=[])
    record.write("call_end", outcome="hangup")
    store.close()
    log_in(client, "watcher", VIEWER_PW)
    assert "<audio" not in client.get("/calls/5eed0000-0000-4000-8000-000000000002").text
    (tmp_path / "recordings").mkdir()
    (tmp_path / "recordings" / "5eed0000-0000-4000-8000-000000000002.wav").write_bytes(b"RIFF....WAVE")
    assert "<audio" in client.get("/calls/5eed0000-0000-4000-8000-000000000002").text
    audio = client.get("/calls/5eed0000-0000-4000-8000-000000000002/recording")
    assert audio.status_code == 200 and audio.headers["content-type"] == "audio/wav"
    assert "recording_played" in audit_actions(engine)
