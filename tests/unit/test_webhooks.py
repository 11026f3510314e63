"""Webhooks against a real HTTP server on loopback: success, bad arguments, timeout, errors."""

import asyncio
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from agent.brain.tools.webhooks import call_webhook
from agent.config import WebhookTool


@pytest.fixture(scope="module")
def backend():
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if self.path == "/slow":
                time.sleep(1.0)
            if self.path == "/broken":
                self.send_response(500)
                self.end_headers()
                return
            reply = {"points": 120, "tier": "gold"} if body.get("customer") == "4112" else {"error": "unknown"}
            payload = json.dumps(reply).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def hook(url, timeout=2.0):
    return WebhookTool(
        name="loyalty",
        description="loyalty points",
        url=url,
        timeout_s=timeout,
        parameters={
            "type": "object",
            "properties": {"customer": {"type": "string", "pattern": "^[0-9]{4,}$"}},
            "required": ["customer"],
        },
        say="You have {points} points, {tier} tier.",
        fallback="I can't reach the loyalty system right now.",
    )


HOSTS = ["127.0.0.1"]


async def test_success_fills_the_sentence(backend):
    result = await call_webhook(hook(f"{backend}/points"), {"customer": "4112"}, HOSTS)
    assert result.ok and result.say == "You have 120 points, gold tier."


async def test_arguments_are_validated_before_sending(backend):
    result = await call_webhook(hook(f"{backend}/points"), {"customer": "abc"}, HOSTS)
    assert not result.ok and result.error.startswith("arguments:") and result.say.startswith("I can't reach")


async def test_timeout_gives_the_spoken_fallback(backend):
    started = asyncio.get_running_loop().time()
    result = await call_webhook(hook(f"{backend}/slow", timeout=0.3), {"customer": "4112"}, HOSTS)
    assert not result.ok and result.error == "ReadTimeout"
    assert asyncio.get_running_loop().time() - started < 1.0  # did not wait for the backend


async def test_server_error_and_missing_fields_fall_back(backend):
    assert (await call_webhook(hook(f"{backend}/broken"), {"customer": "4112"}, HOSTS)).error == "HTTPStatusError"
    assert (await call_webhook(hook(f"{backend}/points"), {"customer": "9999"}, HOSTS)).error == "KeyError"


async def test_host_not_on_the_allowlist_is_never_called(backend):
    result = await call_webhook(hook(f"{backend}/points"), {"customer": "4112"}, ["localhost"])
    assert not result.ok and "not allowed" in result.error
