"""A real call full of personal data leaves none of it behind: not in the database, logs or artefacts.

The caller gives a name, a card number, a phone number, an e-mail address and
a birth date. Afterwards the call record must show that each was heard (its
placeholder is there) and a byte scan of every file the call touched must
not find the values.
"""

import json
import re
import subprocess
from pathlib import Path

import pytest

from agent.caller.runner import CallerVoice, TemporaryAgent, place_call
from agent.caller.scenario import load_scenario
from agent.config import ASTERISK_ROOT, CONFIGS_DIR, PROJECT_ROOT, STATE_DIR, load_box_settings
from agent.store.db import make_engine
from agent.store.records import read_record

pytestmark = pytest.mark.e2e
ASTERISK_LOGS = ASTERISK_ROOT / "var/log/asterisk"  # CDRs, queue_log, messages
SCENARIO = """
name: pii-call
config: shop
caller_id: "+15550177"
turns:
  - say: "Hi, my name is Gwendolyn Parker."
  - say: "My card number is 4556 7375 8689 9855."
  - say: "You can call me back on 555 867 5309."
  - say: "My email is gwen dot parker at example dot com."
  - say: "I was born on the third of March 1985."
"""
# the values as said and as ASR may write them
# (whole digit groups, not four digits alone: those occur in Asterisk's epoch-based ids by chance)
RAW = [
    b"Gwendolyn", b"Parker", b"4556 7375", b"7375 8689", b"8689 9855", b"4556737586899855", b"7375,8",
    b"8675309", b"867 5309", b"867-5309", b"gwen.parker", b"gwen dot parker", b"example.com",
    b"example dot com", b"March 1985", b"third of March",
]  # fmt: skip


def files_to_scan(database: str, report_path: Path) -> list[Path]:
    """Everything the call could have written: database and WAL, logs, Asterisk's records, recordings."""
    db_file = Path(database.removeprefix("sqlite:///"))
    candidates = [report_path, STATE_DIR / "temp-agent.log", STATE_DIR / "agent.log"]
    candidates += [db_file, db_file.with_name(db_file.name + "-wal"), db_file.with_name(db_file.name + "-shm")]
    candidates += list(ASTERISK_LOGS.rglob("*")) + list((STATE_DIR / "recordings").glob("*"))
    return [p for p in candidates if p.is_file()]


async def test_a_call_full_of_pii_leaves_none_of_it_behind(tmp_path):
    subprocess.run(["bash", str(PROJECT_ROOT / "scripts" / "asterisk.sh"), "start"], check=True)
    box = load_box_settings()
    (tmp_path / "pii.yaml").write_text(SCENARIO)
    database = f"sqlite:///{tmp_path / 'agent.db'}"
    agent = TemporaryAgent(CONFIGS_DIR / "shop", database=database)
    agent.start()
    try:
        report = await place_call(
            load_scenario(tmp_path / "pii.yaml"), box, CallerVoice(), agent.address, database=database
        )
    finally:
        agent.stop()
    report_path = tmp_path / "report.json"
    report_path.write_text(json.dumps(report, default=str))  # the test caller's artefact

    heard = " ".join(e.get("heard") or "" for e in read_record(report["call_id"], make_engine(database)))
    placeholders = re.findall(r"\[([A-Z_]+)\]", heard)
    # the call really carried PII and the agent heard it (ASR may name a misheard card a phone number)
    assert len(placeholders) >= 4 and len(set(placeholders)) >= 3, heard

    leaks = []
    for path in files_to_scan(database, report_path):
        data = path.read_bytes()
        leaks += [f"{path}: {raw.decode()}" for raw in RAW if raw in data]
    assert not leaks, leaks
