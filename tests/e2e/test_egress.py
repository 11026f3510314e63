"""No egress: the sandboxed agent reaches loopback and allowlisted hosts, nothing else.

Two test hosts are built on this machine in network namespaces, joined to the
host by veth pairs on a private /30 each: 10.231.1.2 (allowlisted in the
config) and 10.231.2.2 (not). Both answer HTTP. No packet goes to any other
address.
"""

import dataclasses
import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
import yaml

from agent.caller.runner import CallerVoice, TemporaryAgent, place_call
from agent.caller.scenario import load_scenario
from agent.config import CONFIGS_DIR, PROJECT_ROOT, load_box_settings, load_config
from agent.privacy.egress import ruleset

pytestmark = pytest.mark.e2e
SANDBOX = ["bash", str(PROJECT_ROOT / "scripts" / "sandbox.sh")]
HOSTS = {"allowed": ("pa-allow", "10.231.1"), "blocked": ("pa-block", "10.231.2")}
# a loyalty CRM: answers {"points": 42} and counts the connections it accepted
SERVER = """
import http.server, json, socket, sys, threading
count = 0
datagrams = 0
def udp():
    global datagrams
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((sys.argv[1], 5062))
    while True:
        sock.recv(2048)
        datagrams += 1
threading.Thread(target=udp, daemon=True).start()
class H(http.server.BaseHTTPRequestHandler):
    def _answer(self):
        global count
        count += 1
        body = json.dumps({"points": 42, "connections": count, "datagrams": datagrams}).encode()
        self.send_response(200); self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0)); self._answer()
    do_GET = _answer
    def log_message(self, *a): pass
http.server.HTTPServer((sys.argv[1], 8080), H).serve_forever()
"""
PROBE = """
import asyncio, json, socket, sys
from agent.config import load_config
from agent.brain.tools.webhooks import call_webhook
config = load_config(sys.argv[1])
hook = config.tools.webhooks[0]
out = {}
result = asyncio.run(call_webhook(hook, {"phone": "+15550123"}, config.tools.allowed_hosts))
out["allowed"] = result.say
out["error"] = result.error
try:
    socket.create_connection(("10.231.2.2", 8080), timeout=3).close()
    out["blocked"] = "connected"
except OSError as exc:
    out["blocked"] = type(exc).__name__
try:
    socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"x", ("10.231.2.2", 8080))
    out["blocked_udp"] = "sent"
except OSError as exc:
    out["blocked_udp"] = type(exc).__name__
print(json.dumps(out))
"""


def sh(*args):
    subprocess.run(args, check=True, capture_output=True)


@pytest.fixture(scope="module")
def test_hosts():
    if subprocess.run(SANDBOX + ["check"], capture_output=True).returncode != 0:
        pytest.fail(
            "this box cannot sandbox: " + subprocess.run(SANDBOX + ["check"], capture_output=True, text=True).stderr
        )
    servers = []
    for ns, net in HOSTS.values():
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        subprocess.run(["ip", "link", "del", f"{ns}-h"], capture_output=True)
        sh("ip", "netns", "add", ns)
        sh("ip", "link", "add", f"{ns}-h", "type", "veth", "peer", "name", f"{ns}-n")
        sh("ip", "link", "set", f"{ns}-n", "netns", ns)
        sh("ip", "addr", "add", f"{net}.1/30", "dev", f"{ns}-h")
        sh("ip", "link", "set", f"{ns}-h", "up")
        sh("ip", "-n", ns, "addr", "add", f"{net}.2/30", "dev", f"{ns}-n")
        sh("ip", "-n", ns, "link", "set", f"{ns}-n", "up")
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        servers.append(subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", SERVER, f"{net}.2"]))
    for _, net in HOSTS.values():
        for _ in range(50):
            try:
                urllib.request.urlopen(f"http://{net}.2:8080/", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
    yield
    for server in servers:
        server.terminate()
        server.wait(5)
    for ns, _ in HOSTS.values():
        subprocess.run(["ip", "link", "del", f"{ns}-h"], capture_output=True)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    subprocess.run(SANDBOX + ["remove"], capture_output=True)


@pytest.fixture
def config_dir(tmp_path):
    """The shop example with its loyalty webhook pointed at the allowlisted test host."""
    directory = tmp_path / "shop"
    shutil.copytree(CONFIGS_DIR / "shop", directory)
    config = yaml.safe_load((directory / "agent.yaml").read_text())
    config["tools"]["allowed_hosts"] = ["127.0.0.1", "10.231.1.2"]
    config["tools"]["webhooks"][0]["url"] = "http://10.231.1.2:8080/loyalty"
    config["tools"]["webhooks"][0]["say"] = "You have {points} loyalty points."
    (directory / "agent.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return directory


def host_counts(net: str) -> dict:
    with urllib.request.urlopen(f"http://{net}.2:8080/", timeout=3) as reply:
        return json.load(reply)


def connections(net: str) -> int:
    return host_counts(net)["connections"]


def refused_packets() -> int:
    out = subprocess.run(
        ["nft", "list", "counter", "inet", "phone_agent_egress", "agent_refused"], capture_output=True, text=True
    ).stdout
    return int(out.split("packets")[1].split()[0])


def test_sandbox_refuses_a_host_that_is_not_allowlisted(test_hosts, config_dir):
    before = connections("10.231.2")  # unsandboxed, the blocked host is up and answers
    probe = subprocess.run(
        SANDBOX + ["run", str(config_dir), "--", sys.executable, "-c", PROBE, str(config_dir)],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=60,
    )
    assert probe.returncode == 0, probe.stderr
    result = json.loads(probe.stdout.strip().splitlines()[-1])
    assert result["allowed"] == "You have 42 loyalty points.", result
    assert result["blocked"] == "ConnectionRefusedError"
    assert result["blocked_udp"] == "PermissionError"
    # the blocked host saw nothing from the sandbox: only our two unsandboxed checks
    assert connections("10.231.2") == before + 1
    assert refused_packets() >= 2


async def test_sandboxed_agent_answers_a_real_call_through_the_allowed_host(test_hosts, config_dir, tmp_path):
    box = load_box_settings()
    subprocess.run(["bash", str(PROJECT_ROOT / "scripts" / "asterisk.sh"), "start"], check=True)
    agent = TemporaryAgent(config_dir, database=f"sqlite:///{tmp_path / 'agent.db'}", sandboxed=True)
    agent.start()
    try:
        report = await place_call(
            load_scenario(PROJECT_ROOT / "scenarios" / "shop" / "loyalty.yaml"),
            box,
            CallerVoice(),
            agent.address,
            database=agent.database,
        )
    finally:
        agent.stop()
    said = " ".join(t.get("bot") or "" for t in report["turns"])
    assert "42 loyalty points" in said, report


def test_asterisk_media_ports_reach_only_the_trunk(test_hosts, config_dir):
    """Asterisk's SIP/RTP source ports may send to loopback and the trunk only (here: the allowed host)."""
    box = dataclasses.replace(load_box_settings(), trunk_address="10.231.1.2", phone_network=())
    rules = ruleset(load_config(config_dir), box)
    subprocess.run(["nft", "-f", "-"], input=rules, text=True, check=True)
    before = {name: host_counts(net)["datagrams"] for name, (_, net) in HOSTS.items()}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rtp:
        rtp.bind(("0.0.0.0", box.rtp_end))  # a port from Asterisk's RTP range, as Asterisk would send from
        refused = 0
        for _ in range(3):
            rtp.sendto(b"rtp", ("10.231.1.2", 5062))
            try:
                rtp.sendto(b"rtp", ("10.231.2.2", 5062))
            except PermissionError:  # dropped on the box: the kernel tells the sender
                refused += 1
    time.sleep(0.5)
    assert refused == 3
    after = {name: host_counts(net)["datagrams"] for name, (_, net) in HOSTS.items()}
    assert after["allowed"] - before["allowed"] == 3
    assert after["blocked"] == before["blocked"]
