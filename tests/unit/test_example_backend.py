"""The generic example backend (agent/examples/backend.py) on loopback: lookups, creates, errors, specs."""

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from agent.examples import backend

CONFIGS = Path(__file__).resolve().parents[2] / "configs"

SPEC = """
port: 8199
endpoints:
  - path: /widgets/status
    kind: lookup
    match: [ref]
    records:
      - {ref: "123456", state: ready, note: "all done"}
      - {ref: "654321", state: waiting}
  - path: /widgets/new
    kind: create
    require: [ref, colour]
    match: [ref]
    records: [{ref: "123456", owner: first}]
    id: {field: ticket, start: 500, prefix: "T"}
    respond: {eta: "tomorrow"}
  - path: /notes
    kind: create
    require: [text]
    id: {field: number, start: 1}
"""


@pytest.fixture
def server(tmp_path):
    (tmp_path / "backend.yaml").write_text(SPEC)
    srv = backend.start(tmp_path, port=0)
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def call(url: str, body=None, method="POST") -> tuple[int, dict]:
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_lookup_finds_the_matching_record(server):
    assert call(server + "/widgets/status", {"ref": "123456"}) == (
        200,
        {"found": True, "ref": "123456", "state": "ready", "note": "all done"},
    )


def test_lookup_compares_trimmed_case_insensitive_text(server):
    status, body = call(server + "/widgets/status", {"ref": " 654321 "})
    assert status == 200 and body["state"] == "waiting"
    status, body = call(server + "/widgets/status", {"ref": 654321})  # a number matches its digits
    assert status == 200 and body["state"] == "waiting"


def test_lookup_without_a_match_is_404_found_false(server):
    assert call(server + "/widgets/status", {"ref": "999999"}) == (404, {"found": False})


def test_lookup_by_query_string(server):
    status, body = call(server + "/widgets/status?ref=123456", method="GET")
    assert status == 200 and body["state"] == "ready"


def test_missing_field_is_400(server):
    status, body = call(server + "/widgets/status", {})
    assert status == 400 and body["found"] is False and "ref" in body["error"]
    status, body = call(server + "/widgets/new", {"ref": "123456"})
    assert status == 400 and "colour" in body["error"]


def test_create_returns_the_record_with_sequential_ids_and_fixed_fields(server):
    status, first = call(server + "/widgets/new", {"ref": "123456", "colour": "red"})
    assert status == 200
    assert first == {
        "found": True,
        "ref": "123456",
        "owner": "first",
        "colour": "red",
        "ticket": "T500",
        "eta": "tomorrow",
    }
    _, second = call(server + "/widgets/new", {"ref": "123456", "colour": "blue"})
    assert second["ticket"] == "T501"


def test_create_that_must_match_a_record_is_404_when_it_does_not(server):
    assert call(server + "/widgets/new", {"ref": "000000", "colour": "red"}) == (404, {"found": False})


def test_create_without_match_accepts_anything(server):
    assert call(server + "/notes", {"text": "hello"}) == (200, {"found": True, "text": "hello", "number": "1"})


def test_unknown_path_and_bad_body(server):
    status, body = call(server + "/nothing", {"ref": "123456"})
    assert status == 404 and body["found"] is False
    status, body = call(server + "/widgets/status", b"not json")
    assert status == 400 and body["found"] is False
    status, body = call(server + "/widgets/status", b"[1, 2]")
    assert status == 400


@pytest.mark.parametrize(
    "text, message",
    [
        ("port: 80\n", "endpoints"),
        ("port: nope\nendpoints: []\n", "port"),
        ("port: 1\nendpoints: [{path: x, kind: lookup, match: [a]}]\n", "path"),
        ("port: 1\nendpoints: [{path: /x, kind: delete}]\n", "kind"),
        ("port: 1\nendpoints: [{path: /x, kind: lookup}]\n", "match"),
        ("port: 1\nendpoints: [{path: /x, kind: lookup, match: [a], records: [{b: 1}]}]\n", "records[0]"),
        ("port: 1\nendpoints: [{path: /x, kind: create}]\n", "id"),
        ("port: 1\nendpoints: [{path: /x, kind: lookup, match: [a], colour: red}]\n", "unknown key"),
        ("port: 1\nendpoints: [{path: /x, kind: lookup, match: [a]}, {path: /x, kind: lookup, match: [a]}]\n", "twice"),
    ],
)
def test_bad_specs_name_the_field(tmp_path, text, message):
    (tmp_path / "backend.yaml").write_text(text)
    with pytest.raises(backend.BackendSpecError, match=message.replace("[", r"\[").replace("]", r"\]")):
        backend.load_spec(tmp_path)


def test_missing_spec_names_the_file(tmp_path):
    with pytest.raises(backend.BackendSpecError, match="backend.yaml"):
        backend.load_spec(tmp_path)


@pytest.mark.parametrize("config", sorted(p.parent.name for p in CONFIGS.glob("*/backend.yaml")))
def test_example_configs_backends_load_and_their_webhooks_point_at_them(config):
    import yaml

    spec = backend.load_spec(CONFIGS / config)
    agent = yaml.safe_load((CONFIGS / config / "agent.yaml").read_text())
    for hook in agent["tools"]["webhooks"]:
        assert hook["url"] == f"http://127.0.0.1:{spec.port}" + hook["url"].split(str(spec.port), 1)[1]
        route = hook["url"].split(str(spec.port), 1)[1]
        assert route in spec.endpoints, f"{config}: webhook {hook['name']} has no endpoint {route}"
        required = set(hook["parameters"].get("required", []))
        endpoint = spec.endpoints[route]
        assert set(endpoint.require + endpoint.match) <= required, (
            f"{config}: {route} needs more than the webhook sends"
        )


def test_example_backend_has_no_business_words():
    source = Path(backend.__file__).read_text().lower()
    for word in ("outage", "meter", "repair", "garage", "zip", "account", "order", "loyalty"):
        assert word not in source.split('"""', 2)[2], word
