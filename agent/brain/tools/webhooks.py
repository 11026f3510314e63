"""Admin-defined HTTP webhooks to on-premises systems (CRM, ERP).

Arguments are checked against the webhook's JSON schema before anything is
sent, the host must be on the allowlist, and a slow or failing backend gets a
spoken fallback instead of dead air.
"""

from __future__ import annotations

import logging
import string
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
import jsonschema

from agent.config import WebhookTool

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WebhookResult:
    ok: bool
    say: str
    data: dict | None = None
    error: str | None = None


def _fill(template: str, data: dict) -> str:
    """Fill {field} placeholders from the JSON reply; a missing field fails the whole sentence."""
    fields = [name for _, name, _, _ in string.Formatter().parse(template) if name]
    if any(name not in data for name in fields):
        raise KeyError(f"reply lacks {[n for n in fields if n not in data]}")
    return template.format(**{name: data[name] for name in fields})


def json_arguments(arguments: dict, schema: dict) -> dict:
    """Slot values as the schema declares them: dates as ISO text, a number the caller said as text for a
    string property ("zip": "94110"), a numeric text for a number property."""
    from agent.brain.entities import as_json

    properties = schema.get("properties", {})
    converted = {}
    for name, value in arguments.items():
        value = as_json(value)
        kind = properties.get(name, {}).get("type")
        if kind == "string" and isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        elif kind in ("number", "integer") and isinstance(value, str):
            try:
                value = int(value) if kind == "integer" or value.isdigit() else float(value)
            except ValueError:
                pass  # the schema check below says what is wrong
        converted[name] = value
    return converted


async def call_webhook(hook: WebhookTool, arguments: dict, allowed_hosts: list[str]) -> WebhookResult:
    arguments = json_arguments(arguments, hook.parameters)
    try:
        jsonschema.validate(arguments, hook.parameters)
    except jsonschema.ValidationError as exc:
        return WebhookResult(False, hook.fallback, error=f"arguments: {exc.message}")
    host = urlsplit(hook.url).hostname
    if host not in allowed_hosts:  # checked at config load too; this guards reloads and bugs
        return WebhookResult(False, hook.fallback, error=f"host {host} not allowed")
    try:
        async with httpx.AsyncClient(timeout=hook.timeout_s, trust_env=False) as client:
            if hook.method == "GET":
                response = await client.get(hook.url, params=arguments)
            else:
                response = await client.post(hook.url, json=arguments)
        if response.status_code == 404:  # the backend looked and found nothing: not a failure
            return WebhookResult(False, hook.fallback, error="not_found")
        response.raise_for_status()
        data = response.json()
        if not isinstance(data, dict):
            raise ValueError("reply is not a JSON object")
        return WebhookResult(True, _fill(hook.say, data) if hook.say else "", data)
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        log.warning("webhook %s failed: %s", hook.name, type(exc).__name__)
        return WebhookResult(False, hook.fallback, error=type(exc).__name__)
