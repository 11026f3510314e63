"""The SIP surface through the real Asterisk: who may use the test caller's override, and
fail2ban against password guessing (scripts/fail2ban/sip-guard.sh, started with Asterisk).

- `selftest` (the built-in test caller, which may name another agent in X-Agent-Address) is
  matched by source address 127.0.0.1 only, and an nftables rule lets only root send SIP from
  there. Another loopback address, or another user on 127.0.0.1, must not reach it.
- Six wrong REGISTER passwords from 127.0.0.2 get that address banned; 127.0.0.1's test
  caller is never locked out.
Figures are printed, never asserted.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import time
import uuid

import pytest

from agent.caller.phone import SipPhone
from agent.caller.sip import SipCall, SipError
from agent.config import BOX_DIR, PROJECT_ROOT, load_box_settings

pytestmark = pytest.mark.e2e
GUARD = ["bash", str(PROJECT_ROOT / "scripts" / "fail2ban" / "sip-guard.sh")]
ATTACKER = "127.0.0.2"
STRANGER = "127.0.0.3"

# stdlib only: runs as an unprivileged user with the system Python
INVITE_SCRIPT = r"""
import socket, sys, uuid
src, port, agent = sys.argv[1], int(sys.argv[2]), sys.argv[3]
exten = sys.argv[4] if len(sys.argv) > 4 else "s"
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((src, 0))
s.settimeout(3)
me = s.getsockname()[1]
sdp = ("v=0\r\no=- 1 1 IN IP4 %s\r\ns=x\r\nc=IN IP4 %s\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n"
       "a=rtpmap:0 PCMU/8000\r\n") % (src, src)
msg = ("INVITE sip:%s@127.0.0.1:%d SIP/2.0\r\nVia: SIP/2.0/UDP %s:%d;branch=z9hG4bK%s;rport\r\n"
       "Max-Forwards: 70\r\nFrom: \"Test caller\" <sip:selftest@%s>;tag=%s\r\nTo: <sip:s@127.0.0.1>\r\n"
       "Call-ID: %s\r\nCSeq: 1 INVITE\r\nContact: <sip:selftest@%s:%d>\r\nX-Agent-Address: %s\r\n"
       "Content-Type: application/sdp\r\nContent-Length: %d\r\n\r\n%s") % (
    exten, port, src, me, uuid.uuid4().hex[:12], src, uuid.uuid4().hex[:8], uuid.uuid4(), src, me, agent,
    len(sdp), sdp)
try:
    s.sendto(msg.encode(), ("127.0.0.1", port))
except OSError as exc:
    print("send refused: %s" % exc.strerror)
    sys.exit(0)
while True:
    try:
        line = s.recv(4000).decode().split("\r\n")[0]
    except socket.timeout:
        print("no answer")
        break
    if not line.startswith("SIP/2.0 1"):
        print(line)
        break
"""


def guard(*args: str) -> str:
    return subprocess.run([*GUARD, *args], capture_output=True, text=True).stdout


def banned() -> list[str]:
    match = re.search(r"Banned IP list:\s*(.*)", guard("status"))
    return match.group(1).split() if match else []


@pytest.fixture(scope="module")
def box():
    subprocess.run(["bash", str(PROJECT_ROOT / "scripts" / "asterisk.sh"), "start"], check=True)
    return load_box_settings()


@pytest.fixture
def fake_agent():
    """A TCP listener standing in for an agent: counts the AudioSocket connections Asterisk opens."""

    class Listener:
        connections = 0

        async def start(self):
            self.server = await asyncio.start_server(self._on_connect, "127.0.0.1", 0)
            self.address = f"127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

        async def _on_connect(self, reader, writer):
            self.connections += 1
            writer.close()

    return Listener()


def reception_secret() -> str:
    for line in (BOX_DIR / "asterisk.env").read_text().splitlines():
        if line.startswith("RECEPTION_SECRET="):
            return line.split("=", 1)[1].strip()
    raise AssertionError("no RECEPTION_SECRET in the box settings")


async def test_only_the_root_test_caller_on_127_0_0_1_may_name_an_agent(box, fake_agent):
    await fake_agent.start()
    # control: the real test caller (root, 127.0.0.1) is honoured, Asterisk connects to the named agent
    call = SipCall(box.sip_host, box.sip_port, "selftest")
    await call.dial("s", {"X-Agent-Address": fake_agent.address})
    for _ in range(40):
        if fake_agent.connections:
            break
        await asyncio.sleep(0.05)
    await call.hangup()
    assert fake_agent.connections == 1, "the test caller's X-Agent-Address was not used (control)"

    results = {}
    for who, user, source in (
        ("root from 127.0.0.3", None, STRANGER),
        ("uid 65534 from 127.0.0.1", 65534, "127.0.0.1"),
    ):
        result = await asyncio.to_thread(
            subprocess.run,
            ["/usr/bin/python3", "-c", INVITE_SCRIPT, source, str(box.sip_port), fake_agent.address],
            capture_output=True,
            text=True,
            timeout=20,
            user=user,
            group=user,
            extra_groups=[] if user else None,
        )
        results[who] = (result.stdout + result.stderr).strip()
    await asyncio.sleep(1.0)
    print(
        f"\nINVITE with X-Agent-Address from other senders: {results}; connections to the named agent: "
        f"{fake_agent.connections - 1}"
    )
    assert fake_agent.connections == 1, f"another sender made Asterisk connect to its address: {results}"
    assert re.match(r"SIP/2.0 40[13]|no answer", results["root from 127.0.0.3"]), results
    assert results["uid 65534 from 127.0.0.1"] in ("send refused: Operation not permitted", "no answer"), results
    guard("unban", STRANGER)


async def test_register_password_guessing_is_banned_but_not_the_loopback_test_caller(box):
    if not subprocess.run(["which", "fail2ban-client"], capture_output=True).stdout:
        pytest.fail("fail2ban is not installed (scripts/setup-system.sh installs it)")
    assert "phone-agent-sip" in guard("status"), "the SIP guard is not running (scripts/asterisk.sh start starts it)"
    guard("unban", ATTACKER)
    statuses, started = [], time.monotonic()
    for _ in range(6):
        phone = SipPhone(box.sip_host, box.sip_port, "reception", f"guess-{uuid.uuid4().hex[:6]}", local_host=ATTACKER)
        try:
            statuses.append(await phone.register(timeout=2))
        except SipError:
            statuses.append("no answer")
        finally:
            phone.close()
    ban_seen = None
    for _ in range(50):
        if ATTACKER in banned():
            ban_seen = time.monotonic()
            break
        await asyncio.sleep(0.2)
    # fail2ban lists the address as banned before its nftables action has run (the first ban also
    # creates the table): the drop must take hold within seconds, so the right password is tried
    # until it goes unanswered or 6 s have passed
    deadline = time.monotonic() + 6
    while True:
        right = SipPhone(box.sip_host, box.sip_port, "reception", reception_secret(), local_host=ATTACKER)
        try:
            after_ban = await right.register(timeout=2)
        except SipError:
            after_ban = "no answer"
        finally:
            right.close()
        if after_ban == "no answer" or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    # the same guessing from 127.0.0.1 must never lock out the test caller
    for attempt in range(6):
        phone = SipPhone(box.sip_host, box.sip_port, "reception", f"guess-{attempt}")
        try:
            await phone.register(timeout=2)
        finally:
            phone.close()
    await asyncio.sleep(1.0)
    loopback_banned = "127.0.0.1" in banned()
    call = SipCall(box.sip_host, box.sip_port, "selftest")
    try:
        await call.dial("s", {"X-Agent-Address": "127.0.0.1:9"}, timeout=5)  # nothing listens: straight to humans
        loopback_answered = True
    except SipError:
        loopback_answered = False
    finally:
        await call.hangup()
    try:
        print(
            f"\nsix wrong REGISTERs from {ATTACKER}: {statuses}; banned "
            f"{'after %.1f s' % (ban_seen - started) if ban_seen else 'never'}; right password afterwards: "
            f"{after_ban}; 127.0.0.1 banned: {loopback_banned}, its test call answered: {loopback_answered}"
        )
        assert ban_seen is not None, f"{ATTACKER} was not banned: {statuses}"
        assert after_ban == "no answer", "a banned address still reaches Asterisk"
        assert not loopback_banned and loopback_answered, "the loopback test caller was locked out"
    finally:
        guard("unban", ATTACKER)


INTERNATIONAL = ("+442071838750", "00442071838750", "011442071838750")


def asterisk_cli(command: str) -> str:
    return subprocess.run(
        ["bash", str(PROJECT_ROOT / "scripts" / "asterisk.sh"), "cli", command], capture_output=True, text=True
    ).stdout


async def test_no_one_can_dial_out_to_an_international_number(box, fake_agent):
    """Toll fraud: an unauthenticated INVITE to an international number never leaves the box.

    From an unknown address it is challenged (401/403); from the trunk's own identity it reaches
    the agent like any inbound call; no dialplan context a SIP endpoint lands in can Dial out.
    """
    from panoramisk import Manager

    await fake_agent.start()
    dials: list[str] = []
    manager = Manager(
        host="127.0.0.1", port=box.ami_port, username=box.ami_user, secret=box.ami_secret, ping_delay=0
    )  # fmt: skip
    manager.register_event("DialBegin", lambda _m, e: dials.append(e.get("DestChannel", "?")))
    await asyncio.wait_for(manager.connect(), 5)
    answers = {}
    try:
        for number in INTERNATIONAL:
            result = await asyncio.to_thread(
                subprocess.run,
                ["/usr/bin/python3", "-c", INVITE_SCRIPT, STRANGER, str(box.sip_port), fake_agent.address, number],
                capture_output=True, text=True, timeout=20,
            )  # fmt: skip
            answers[number] = (result.stdout + result.stderr).strip()
        trunk = SipCall(box.sip_host, box.sip_port, "selftest")  # the trunk's identity, inbound context
        await trunk.dial(INTERNATIONAL[0], {"X-Agent-Address": fake_agent.address})
        for _ in range(40):
            if fake_agent.connections:
                break
            await asyncio.sleep(0.05)
        await trunk.hangup()
        await asyncio.sleep(1.0)
    finally:
        manager.close()
        guard("unban", STRANGER)
    routes = {
        f"{number}@{context}": " ".join(asterisk_cli(f"dialplan show {number}@{context}").split())[:120]
        for number in INTERNATIONAL
        for context in ("from-trunk", "internal")
    }
    print(f"\nunauthenticated INVITEs to international numbers from {STRANGER}: {answers}; from the trunk: "
          f"reached the agent {fake_agent.connections} time(s); outbound legs dialled: {len(dials)} {dials}; "
          f"dialplan: {routes}")  # fmt: skip
    assert all(re.match(r"SIP/2.0 40[13]|no answer", answer) for answer in answers.values()), answers
    assert fake_agent.connections == 1, "the trunk's call to an international number did not go to the agent"
    assert dials == [], f"a call was dialled out: {dials}"
    assert not any("Dial(" in route for route in routes.values()), routes


async def test_reception_registers_only_from_loopback_and_the_phone_network(box):
    """The right password from outside PHONE_NETWORK is refused (endpoint ACL), from loopback accepted."""
    outside = "192.0.2.55"  # TEST-NET-1 on the loopback interface: an address outside PHONE_NETWORK
    added = subprocess.run(["ip", "addr", "add", f"{outside}/32", "dev", "lo"], capture_output=True).returncode == 0
    results = {}
    try:
        for source in (outside, "127.0.0.1"):
            phone = SipPhone(box.sip_host, box.sip_port, "reception", reception_secret(), local_host=source)
            try:
                results[source] = await phone.register(timeout=3)
                if results[source] == 200:
                    await phone.unregister()  # no stale contact left for the humans queue to ring
            except SipError:
                results[source] = "no answer"
            finally:
                phone.close()
    finally:
        guard("unban", outside)
        if added:
            subprocess.run(["ip", "addr", "del", f"{outside}/32", "dev", "lo"], capture_output=True)
    print(f"\nREGISTER as reception with the right password: {results}")
    assert results["127.0.0.1"] == 200
    assert results[outside] != 200, "an address outside PHONE_NETWORK registered as reception"
