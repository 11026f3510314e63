"""The admin console in a real browser (Debian's headless Chromium driven by Playwright).

A real agent (TemporaryAgent) and the console share one SQLite database. The
test logs in, watches a scripted call through the real Asterisk appear on the
live page and leave it when it ends, opens its transcript, runs the
Deployment page's test call, and checks every dashboard figure against
`python -m agent calls export --format json` (and the turns table for reply
latency) computed here independently. Screenshots of each page go to
docs/console/. No timing is asserted.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import math
import os
import subprocess
import sys
import threading
import time

import pytest
from sqlalchemy import create_engine, text

from agent.caller.runner import CallerVoice, TemporaryAgent, _free_port, _listening, place_call
from agent.caller.scenario import load_scenario
from agent.config import DEFAULT_CONFIG_DIR, PROJECT_ROOT, load_box_settings
from agent.console import users
from agent.store.db import make_engine

pytestmark = pytest.mark.e2e
playwright_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip
SHOTS = PROJECT_ROOT / "docs" / "console"
PASSWORD = "e2e console password"
LIVE_CALL = """
name: console-live-call
turns:
  - say: "Hi, when are you open?"
  - say: "Can I speak to a real person, please?"
expect: {outcome: transferred}
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """Asterisk, a real agent with its /live status, and the console, on one fresh database."""
    subprocess.run(["bash", str(PROJECT_ROOT / "scripts" / "asterisk.sh"), "start"], check=True)
    tmp = tmp_path_factory.mktemp("console")
    database = f"sqlite:///{tmp / 'agent.db'}"
    agent = TemporaryAgent(DEFAULT_CONFIG_DIR, database=database)
    agent.start(timeout=300)  # model loading takes longer while other work shares the two cores
    status = getattr(agent, "status_address", None)
    assert status, "TemporaryAgent has no status_address: the agent's /live endpoint is needed"
    users.add_user(make_engine(database), "admin", "admin", PASSWORD)
    port = _free_port()
    env = {**os.environ, "PHONE_AGENT_DB": database, "PHONE_AGENT_STATE": str(tmp / "state")}
    log = open(tmp / "console.log", "wb")
    console = subprocess.Popen(
        [sys.executable, "-m", "agent", "console", "--config", str(DEFAULT_CONFIG_DIR), "--listen", f"127.0.0.1:{port}",
         "--agent-status", status, "--agent-address", agent.address],
        cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not _listening("127.0.0.1", port):
        assert console.poll() is None and time.monotonic() < deadline, (tmp / "console.log").read_text()
        time.sleep(0.2)
    yield {"url": f"http://127.0.0.1:{port}", "database": database, "agent": agent, "env": env}
    console.terminate()
    console.wait(10)
    log.close()
    agent.stop()


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def shot(page, name: str, full: bool = False) -> None:
    """A screenshot for docs/, in 64 colours (a third of the size; the pages are flat colours anyway)."""
    from PIL import Image

    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full)
    Image.open(path).convert("RGB").quantize(colors=64).save(path, optimize=True)


def nearest_rank(values, p):
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)] if ordered else None


def expected_figures(rows: list[dict], replies: dict[str, list[int]], since: dt.datetime) -> dict:
    """The dashboard's definitions (README), written out again from the export's rows."""
    rows = [r for r in rows if dt.datetime.fromisoformat(r["started_at"]) >= since]
    ended = [r for r in rows if r["status"] != "active"]
    contained = [r for r in ended if r["outcome"] in ("completed", "hangup") and not r["transferred_to"]]
    transferred = [r for r in ended if r["transferred_to"]]
    handle = [r["handle_ms"] for r in ended if r["handle_ms"] is not None]
    first = [r["first_audio_ms"] for r in rows if r["first_audio_ms"] is not None]
    reply = [ms for r in rows for ms in replies.get(r["id"], [])]
    conf = [r["asr_confidence"] for r in rows if r["asr_confidence"] is not None]
    csat = [r["csat"] for r in rows if r.get("csat") is not None]
    reasons: dict[str, int] = {}
    for r in transferred:
        reasons[r["transfer_reason"] or "?"] = reasons.get(r["transfer_reason"] or "?", 0) + 1
    return {
        "calls": len(rows),
        "ended": len(ended),
        "containment": len(contained) / len(ended) if ended else None,
        "transferred": len(transferred),
        "admission_refusals": sum(r["outcome"] == "busy" for r in rows),
        "handle_ms_mean": sum(handle) / len(handle) if handle else None,
        "first_audio_ms_p50": nearest_rank(first, 50),
        "first_audio_ms_p95": nearest_rank(first, 95),
        "reply_ms_p50": nearest_rank(reply, 50),
        "reply_ms_p95": nearest_rank(reply, 95),
        "asr_confidence_mean": sum(conf) / len(conf) if conf else None,
        "csat_mean": sum(csat) / len(csat) if csat else None,
        "csat_count": len(csat),
        "transfers_by_reason": reasons,
    }


def test_console_in_a_real_browser(stack, browser, tmp_path):
    url = stack["url"]
    page = browser.new_page(viewport={"width": 1100, "height": 760})
    page.set_default_timeout(30_000)

    # log in (a wrong password first: refused, and audited)
    page.goto(f"{url}/")
    assert page.url.endswith("/login")
    shot(page, "login")
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", "not the password")
    page.click("button[type=submit]")
    assert "Wrong user name or password" in page.inner_text("#login-error")
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("#kpis")
    assert page.inner_text("#who").startswith("admin")

    # a scripted call through Asterisk appears on the live page while it runs, and leaves when it ends
    page.goto(f"{url}/live")
    page.wait_for_function("!document.getElementById('agent-status').textContent.includes('connecting')")
    scenario_path = tmp_path / "live.yaml"
    scenario_path.write_text(LIVE_CALL)
    result: dict = {}

    def call() -> None:
        try:
            result["report"] = asyncio.run(place_call(load_scenario(scenario_path), load_box_settings(), CallerVoice(),
                                                      stack["agent"].address, database=stack["database"]))  # fmt: skip
        except Exception as exc:  # reported below
            result["error"] = exc

    # every row the live page ever shows, with its state (the page redraws the table on each event)
    page.evaluate("""() => {
        window.seen = {};
        const body = document.querySelector('#live-calls tbody');
        new MutationObserver(() => body.querySelectorAll('tr').forEach(
            (r) => { window.seen[r.dataset.callId] = r.querySelector('td.state').textContent; }
        )).observe(body, {childList: true});
    }""")
    caller = threading.Thread(target=call)
    caller.start()
    page.wait_for_selector("#live-calls tbody tr", timeout=120_000)
    shot(page, "live")
    caller.join(300)
    assert "error" not in result, result.get("error")
    report = result["report"]
    assert report["call_id"], report
    call_id = report["call_id"]
    seen = page.evaluate("window.seen")
    assert call_id in {key.lower() for key in seen}, (call_id, seen)  # the call was on the live page ...
    states = {"listening", "speaking", "thinking", "in_task", "transferring"}
    assert set(seen.values()) <= states, seen
    page.wait_for_selector(f'#live-calls tbody tr[data-call-id="{call_id}"]', state="detached", timeout=60_000)
    assert not page.query_selector(f'#live-calls tbody tr[data-call-id="{call_id}" i]')  # ... and left it
    assert report["outcome"] == "transferred", report

    # the call in the list, and its redacted transcript
    page.goto(f"{url}/calls")
    page.wait_for_selector(f'#calls tr[data-call-id="{report["call_id"]}"]')
    shot(page, "calls")
    page.click(f'#calls tr[data-call-id="{report["call_id"]}"] a')
    page.wait_for_selector("#transcript")
    transcript = page.inner_text("#transcript")
    assert "caller" in transcript and "agent" in transcript and "transfer" in transcript
    assert "reply" in transcript and " ms" in transcript  # per-turn latency is shown
    assert "briefing the human saw" in transcript
    shot(page, "call", full=True)

    # Deployment: validation, and the admin's test call through the real Asterisk
    page.goto(f"{url}/deployment")
    page.wait_for_selector("#check-ok, .check-error", timeout=120_000)
    assert page.query_selector("#check-ok"), page.inner_text("main")
    page.select_option("#test-form select[name=scenario]", "demo.yaml")
    page.click("#test-form button")
    page.wait_for_selector("#test-result:not([data-state=running])", timeout=240_000)
    state = page.get_attribute("#test-result", "data-state")
    assert state in ("passed", "failed"), page.inner_text("#test-result")  # the call ran through Asterisk
    shot(page, "deployment", full=True)

    # the dashboard's figures are the export's
    page.goto(f"{url}/")
    page.wait_for_selector("#kpis")
    shot(page, "dashboard", full=True)
    now = dt.datetime.fromisoformat(page.get_attribute("#kpis", "data-now"))
    shown = {cell.get_attribute("data-kpi"): cell.get_attribute("data-value")
             for cell in page.query_selector_all("#kpis td[data-kpi]")}  # fmt: skip
    export = subprocess.run([sys.executable, "-m", "agent", "calls", "export", "--format", "json"],
                            cwd=PROJECT_ROOT, env=stack["env"], capture_output=True, text=True, check=True)  # fmt: skip
    rows = json.loads(export.stdout)
    assert len(rows) >= 2
    replies: dict[str, list[int]] = {}
    with create_engine(stack["database"]).connect() as conn:
        for call_id, ms in conn.execute(
            text("SELECT call_id, first_audio_ms FROM turns WHERE first_audio_ms IS NOT NULL")
        ):
            replies.setdefault(call_id, []).append(ms)
    midnight = dt.datetime.combine(now.date(), dt.time())
    for window, since in (
        ("today", midnight),
        ("7d", now - dt.timedelta(days=7)),
        ("30d", now - dt.timedelta(days=30)),
    ):
        expected = expected_figures(rows, replies, since)
        assert json.loads(shown[f"{window}.transfers_by_reason"]) == expected.pop("transfers_by_reason")
        for field, value in expected.items():
            got = shown[f"{window}.{field}"]
            if value is None:
                assert got == "", (window, field, got)
            else:
                assert float(got) == pytest.approx(value), (window, field, got, value)
    assert shown["today.calls"] != "0"

    # the audit log holds the admin's actions
    page.goto(f"{url}/admin")
    audit = page.inner_text("#audit")
    for action in ("login_failed", "login", "test_call"):
        assert action in audit
    shot(page, "admin")
    page.close()
