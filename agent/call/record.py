"""Per-call event record (JSON lines under state/calls/), one line per event.

The scripted test caller reads it to report what the agent heard and said.
Issue 4 moves call records into SQL with redaction; until then this file is
the call record and lives only in the appliance's private state directory.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from agent.config import STATE_DIR

CALLS_DIR = STATE_DIR / "calls"


class CallRecord:
    def __init__(self, call_id: str, directory: Path | None = None) -> None:
        directory = directory or CALLS_DIR
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path = directory / f"{call_id}.jsonl"
        self._fh = open(self.path, "a", encoding="utf-8")
        os.chmod(self.path, 0o600)

    def write(self, event: str, **data) -> None:
        # Flushed per event: a crash loses at most the event in progress.
        self._fh.write(json.dumps({"t": round(time.time(), 3), "event": event, **data}) + "\n")
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()


def read_record(call_id: str, directory: Path | None = None) -> list[dict]:
    path = (directory or CALLS_DIR) / f"{call_id}.jsonl"
    if not path.exists():
        return []
    events = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            break  # a line cut by a crash ends the record
    return events
