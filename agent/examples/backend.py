"""A generic stand-in for a company's backend, for the example configs' webhooks.

`python -m agent.examples.backend --config configs/utility [--port N]` serves, on loopback,
the endpoints that `configs/<name>/backend.yaml` describes. Everything business-specific
(paths, field names, records, id numbering, fixed reply fields) lives in that file:

    port: 8103
    endpoints:
      - path: /things/status
        kind: lookup                 # reply with the record whose `match` fields equal the request's
        match: [reference]
        records:
          - {reference: "123456", status: ready}
      - path: /things/create
        kind: create                 # store the request as a new record, reply with a generated id
        require: [reference, note]   # request fields that must be present (else 400)
        match: [reference]           # optional: the request must also match one of `records`
        records: [{reference: "123456"}]
        id: {field: ticket, start: 500001, prefix: ""}
        respond: {eta: "tomorrow"}   # fixed fields added to every reply

Requests are JSON bodies (POST) or query strings (GET). A match compares values as trimmed,
case-insensitive text. Replies are JSON: 200 with {"found": true, ...record fields}; 404 with
{"found": false} when nothing matches; 400 with {"found": false, "error": ...} when a required
field is missing. Request lines are not logged (they hold callers' data). Used by the scenario
suite and tests; a real deployment points its webhooks at its own systems.
"""

from __future__ import annotations

import argparse
import itertools
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import yaml

SPEC_FILE = "backend.yaml"
KINDS = ("lookup", "create")
_ENDPOINT_KEYS = {"path", "kind", "match", "require", "records", "id", "respond"}


class BackendSpecError(Exception):
    """backend.yaml is missing or malformed; the message names the file and the field."""


@dataclass
class Endpoint:
    path: str
    kind: str
    match: list[str]
    require: list[str]
    records: list[dict[str, Any]]
    id_field: str | None = None
    id_prefix: str = ""
    respond: dict[str, Any] = field(default_factory=dict)
    counter: itertools.count | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_id(self) -> str:
        with self.lock:
            return f"{self.id_prefix}{next(self.counter)}"


@dataclass
class BackendSpec:
    port: int
    endpoints: dict[str, Endpoint]


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).strip().lower()


def load_spec(config_dir: Path | str) -> BackendSpec:
    path = Path(config_dir) / SPEC_FILE
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise BackendSpecError(f"{path}: cannot read ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise BackendSpecError(f"{path}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if not isinstance(raw, dict) or set(raw) - {"port", "endpoints"}:
        raise BackendSpecError(f"{path}: a mapping with port and endpoints")
    port = raw.get("port")
    if not isinstance(port, int) or not 0 <= port < 65536:
        raise BackendSpecError(f"{path}: port: a TCP port number")
    endpoints: dict[str, Endpoint] = {}
    for index, item in enumerate(raw.get("endpoints") or []):
        where = f"{path}: endpoints[{index}]"
        if not isinstance(item, dict):
            raise BackendSpecError(f"{where}: a mapping with path and kind")
        unknown = set(item) - _ENDPOINT_KEYS
        if unknown:
            raise BackendSpecError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
        route = item.get("path")
        if not isinstance(route, str) or not route.startswith("/"):
            raise BackendSpecError(f"{where}.path: a path starting with /")
        if route in endpoints:
            raise BackendSpecError(f"{where}.path: {route} is listed twice")
        kind = item.get("kind")
        if kind not in KINDS:
            raise BackendSpecError(f"{where}.kind: one of {', '.join(KINDS)}")
        lists = {}
        for key in ("match", "require"):
            value = item.get(key) or []
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise BackendSpecError(f"{where}.{key}: a list of field names")
            lists[key] = value
        records = item.get("records") or []
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise BackendSpecError(f"{where}.records: a list of mappings")
        if kind == "lookup" and not lists["match"]:
            raise BackendSpecError(f"{where}.match: a lookup needs the fields to match on")
        for number, record in enumerate(records):
            missing = [name for name in lists["match"] if name not in record]
            if missing:
                raise BackendSpecError(f"{where}.records[{number}]: no {', '.join(missing)}")
        respond = item.get("respond") or {}
        if not isinstance(respond, dict):
            raise BackendSpecError(f"{where}.respond: a mapping of fields")
        endpoint = Endpoint(route, kind, lists["match"], lists["require"], records, respond=respond)
        if kind == "create":
            ident = item.get("id")
            if not isinstance(ident, dict) or set(ident) - {"field", "start", "prefix"}:
                raise BackendSpecError(f"{where}.id: {{field, start, prefix}} of the generated id")
            if not isinstance(ident.get("field"), str) or not isinstance(ident.get("start", 1), int):
                raise BackendSpecError(f"{where}.id: field is a name, start a whole number")
            endpoint.id_field = ident["field"]
            endpoint.id_prefix = str(ident.get("prefix", ""))
            endpoint.counter = itertools.count(ident.get("start", 1))
        elif "id" in item:
            raise BackendSpecError(f"{where}.id: only a create endpoint generates ids")
        endpoints[route] = endpoint
    if not endpoints:
        raise BackendSpecError(f"{path}: endpoints: at least one")
    return BackendSpec(port, endpoints)


def handle(endpoint: Endpoint, request: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """Answer one request: (HTTP status, JSON body)."""
    needed = list(dict.fromkeys(endpoint.require + endpoint.match))
    missing = [name for name in needed if request.get(name) in (None, "")]
    if missing:
        return 400, {"found": False, "error": f"missing field(s): {', '.join(missing)}"}
    matched: dict[str, Any] | None = None
    if endpoint.match:
        wanted = {name: _text(request[name]) for name in endpoint.match}
        with endpoint.lock:
            matched = next((r for r in endpoint.records if all(_text(r.get(k)) == v for k, v in wanted.items())), None)
        if matched is None:
            return 404, {"found": False}
    if endpoint.kind == "lookup":
        return 200, {"found": True, **matched, **endpoint.respond}
    created = {**(matched or {}), **request, endpoint.id_field: endpoint.next_id(), **endpoint.respond}
    with endpoint.lock:
        endpoint.records.append(created)
    return 200, {"found": True, **created}


def _handler_for(spec: BackendSpec) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _answer(self, request: dict[str, Any] | None) -> None:
            endpoint = spec.endpoints.get(urlsplit(self.path).path)
            if request is None:
                status, body = 400, {"found": False, "error": "the body is not a JSON object"}
            elif endpoint is None:
                status, body = 404, {"found": False, "error": "no such endpoint"}
            else:
                status, body = handle(endpoint, request)
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_POST(self) -> None:
            try:
                data = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                request = json.loads(data) if data.strip() else {}
            except (ValueError, UnicodeDecodeError):
                request = None
            self._answer(request if isinstance(request, dict) else None)

        def do_GET(self) -> None:
            self._answer(dict(parse_qsl(urlsplit(self.path).query)))

        def log_message(self, *args) -> None:  # no request lines (they hold callers' data)
            pass

    return Handler


def make_server(config_dir: Path | str, port: int | None = None) -> ThreadingHTTPServer:
    spec = load_spec(config_dir)
    return ThreadingHTTPServer(("127.0.0.1", spec.port if port is None else port), _handler_for(spec))


def start(config_dir: Path | str, port: int | None = None) -> ThreadingHTTPServer:
    """Serve in a background thread; call .shutdown() and .server_close() to stop."""
    server = make_server(config_dir, port)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help=f"a config directory with {SPEC_FILE}")
    parser.add_argument("--port", type=int, help=f"instead of the port in {SPEC_FILE}")
    args = parser.parse_args(argv)
    try:
        server = make_server(args.config, args.port)
    except BackendSpecError as exc:
        parser.exit(2, f"{exc}\n")
    print(f"serving {args.config} on http://127.0.0.1:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
