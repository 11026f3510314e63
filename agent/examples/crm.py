"""A stand-in for a company's on-premises CRM, for the shop example's webhook.

`python -m agent.examples.crm [--port 8099]` serves POST /loyalty {"phone": ...}
on loopback. Used by the scenario suite and tests; a real deployment points the
webhook at its own system.
"""

from __future__ import annotations

import argparse
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

POINTS = {"+15550123": 1250, "+15550124": 80}


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        try:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        except json.JSONDecodeError:
            body = {}
        if self.path != "/loyalty" or body.get("phone") not in POINTS:
            self.send_response(404)
            self.end_headers()
            return
        payload = json.dumps({"points": POINTS[body["phone"]]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args) -> None:  # no request lines (they would hold phone numbers)
        pass


def start(port: int = 8099) -> ThreadingHTTPServer:
    """Serve in a background thread; call .shutdown() to stop."""
    server = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8099)
    ThreadingHTTPServer(("127.0.0.1", parser.parse_args().port), _Handler).serve_forever()
