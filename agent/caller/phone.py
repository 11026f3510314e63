"""A minimal registering SIP phone (UDP, G.711 RTP), for testing the human leg on loopback.

It does what the reception softphone does: REGISTER with digest auth, take an incoming
INVITE (100 Trying, 180 Ringing, then 200 OK with an SDP answer, or never answer), RTP
both ways, BYE either way, un-REGISTER. The INVITE's From display name (the agent's
briefing) is kept. Shares the message parser and RTP framing with `sip.py`'s caller;
not a general SIP stack.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import re
import struct
import time
import uuid
from dataclasses import dataclass, field

from agent.audio.pcm import ulaw_decode, ulaw_encode
from agent.caller.sip import (
    PCMU,
    RTP_HEADER,
    SAMPLES_PER_FRAME,
    ReceivedAudio,
    SipError,
    SipMessage,
    _sdp_audio_address,
    _Udp,
    parse_sip,
)


@dataclass
class IncomingCall:
    """One INVITE the phone received."""

    request: SipMessage
    display_name: str  # the From header's display name: the agent's briefing on a hand-over
    from_user: str
    local_tag: str = field(default_factory=lambda: uuid.uuid4().hex[:10])
    answered_at: float | None = None
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    ended_by: str | None = None
    received: ReceivedAudio = field(default_factory=ReceivedAudio)
    rtp_remote: tuple[str, int] | None = None


def digest_response(challenge: str, method: str, uri: str, username: str, password: str, cnonce: str) -> str:
    """The Authorization header value answering a WWW-Authenticate Digest challenge (RFC 7616: MD5, SHA-256)."""
    params = dict(re.findall(r'(\w+)="?([^",]*)"?', challenge.split(" ", 1)[1]))
    algorithm = params.get("algorithm", "MD5")
    digest = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}.get(algorithm.upper().replace("SHA256", "SHA-256"))
    if digest is None:
        raise SipError(f"unsupported digest algorithm {algorithm}")

    def h(text: str) -> str:
        return digest(text.encode()).hexdigest()

    realm, nonce = params.get("realm", ""), params.get("nonce", "")
    ha1 = h(f"{username}:{realm}:{password}")
    ha2 = h(f"{method}:{uri}")
    qop = "auth" if "auth" in params.get("qop", "").split(",") else ""
    if qop:
        nc = "00000001"
        response = h(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")
        extra = f', qop={qop}, nc={nc}, cnonce="{cnonce}"'
    else:
        response = h(f"{ha1}:{nonce}:{ha2}")
        extra = ""
    opaque = f', opaque="{params["opaque"]}"' if "opaque" in params else ""
    return (
        f'Digest username="{username}", realm="{realm}", nonce="{nonce}", uri="{uri}", '
        f'response="{response}", algorithm={algorithm}{opaque}{extra}'
    )


class SipPhone:
    """register(); calls arrive in `calls` (a queue); answer()/hangup(); unregister()."""

    def __init__(
        self,
        registrar: str,
        port: int,
        username: str,
        password: str,
        local_host: str = "127.0.0.1",
        auto_answer_after: float | None = 0.5,
        accept_from: str | None = None,
    ) -> None:
        self.registrar, self.port = registrar, port
        self.username, self.password = username, password
        self.local_host = local_host
        self.auto_answer_after = auto_answer_after  # None: ring, never answer
        self.accept_from = accept_from  # only calls from this caller-ID user ring here; others: 486
        self.calls: asyncio.Queue[IncomingCall] = asyncio.Queue()
        self.rejected = 0
        self._responses: asyncio.Queue[SipMessage] = asyncio.Queue()
        self._call_id = f"{uuid.uuid4()}@{local_host}"
        self._tag = uuid.uuid4().hex[:10]
        self._cseq = 0
        self._current: IncomingCall | None = None
        self._tone_hz = 1000.0
        self._seq = random.randrange(1 << 16)
        self._ts = random.randrange(1 << 32)
        self._ssrc = random.randrange(1 << 32)
        self._sip: asyncio.DatagramTransport | None = None
        self._rtp: asyncio.DatagramTransport | None = None
        self._media_task: asyncio.Task | None = None

    # ---- registration --------------------------------------------------------

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        self._sip, _ = await loop.create_datagram_endpoint(lambda: _Udp(self._on_sip), local_addr=(self.local_host, 0))
        self._rtp, _ = await loop.create_datagram_endpoint(lambda: _Udp(self._on_rtp), local_addr=(self.local_host, 0))
        self.sip_port = self._sip.get_extra_info("sockname")[1]
        self.rtp_port = self._rtp.get_extra_info("sockname")[1]

    async def register(self, expires: int = 120, password: str | None = None, timeout: float = 5) -> int:
        """REGISTER, answering one digest challenge; returns the final status (200 on success)."""
        if self._sip is None:
            await self.open()
        uri = f"sip:{self.registrar}:{self.port}"
        authorization = ""
        for _ in range(2):
            self._cseq += 1
            request = self._register_request(uri, expires, authorization)
            response = await self._transact(request, timeout)
            if response.status in (401, 407) and not authorization:
                challenge = response.header("www-authenticate") or response.header("proxy-authenticate")
                header = "Authorization" if response.status == 401 else "Proxy-Authorization"
                value = digest_response(
                    challenge, "REGISTER", uri, self.username, password or self.password, uuid.uuid4().hex[:16]
                )
                authorization = f"{header}: {value}\r\n"
                continue
            return response.status or 0
        return response.status or 0

    async def unregister(self) -> int:
        return await self.register(expires=0)

    def _register_request(self, uri: str, expires: int, authorization: str) -> bytes:
        aor = f"sip:{self.username}@{self.registrar}"
        return (
            f"REGISTER {uri} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {self.local_host}:{self.sip_port};branch=z9hG4bK{uuid.uuid4().hex[:16]};rport\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <{aor}>;tag={self._tag}\r\n"
            f"To: <{aor}>\r\n"
            f"Call-ID: {self._call_id}\r\n"
            f"CSeq: {self._cseq} REGISTER\r\n"
            f"Contact: <sip:{self.username}@{self.local_host}:{self.sip_port}>\r\n"
            f"Expires: {expires}\r\n"
            f"{authorization}"
            "User-Agent: phone-agent-test-phone\r\n"
            "Content-Length: 0\r\n\r\n"
        ).encode()

    async def _transact(self, request: bytes, timeout: float) -> SipMessage:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        self._send(request, (self.registrar, self.port))
        while loop.time() < deadline:
            try:
                response = await asyncio.wait_for(self._responses.get(), min(0.5, deadline - loop.time()))
            except TimeoutError:
                self._send(request, (self.registrar, self.port))  # UDP: retransmit
                continue
            if (response.status or 0) >= 200:
                return response
        raise SipError(f"no final response from {self.registrar}:{self.port} within {timeout}s")

    # ---- incoming calls ------------------------------------------------------

    def _on_sip(self, data: bytes, addr) -> None:
        try:
            message = parse_sip(data)
        except Exception:
            return
        if message.status is not None:
            if message.header("call-id") == self._call_id:
                self._responses.put_nowait(message)
            return
        method = message.method
        call = self._current
        in_call = call is not None and message.header("call-id") == call.request.header("call-id")
        if method == "INVITE" and in_call:
            if _has_to_tag(message):  # a session refresh: keep our media as it is
                self._answer_ok(message, call)
            return  # else a retransmission of the INVITE being handled
        if method == "INVITE":
            self._on_invite(message, addr)
        elif method == "ACK":
            pass
        elif method == "CANCEL" and in_call:
            self._reply(message, "200 OK", addr=addr)
            self._reply(call.request, "487 Request Terminated", tag=call.local_tag)
            self._end(call, "remote")
        elif method == "BYE" and in_call:
            self._reply(message, "200 OK", addr=addr, tag="")
            self._end(call, "remote")
        elif method in ("BYE", "CANCEL"):
            self._reply(message, "481 Call/Transaction Does Not Exist", addr=addr)
        else:  # OPTIONS (qualify), NOTIFY, INFO
            self._reply(message, "200 OK", addr=addr)

    def _on_invite(self, invite: SipMessage, addr) -> None:
        sender = invite.header("from")
        display = re.match(r'\s*"((?:[^"\\]|\\.)*)"', sender) or re.match(r"\s*([^<\"]*?)\s*<", sender)
        user = re.search(r"sip:([^@;>]+)@", sender)
        call = IncomingCall(
            invite, display.group(1).replace('\\"', '"') if display else "", user.group(1) if user else ""
        )
        if self._current is not None or (self.accept_from and call.from_user != self.accept_from):
            self.rejected += 1
            self._reply(invite, "486 Busy Here", tag=call.local_tag)
            return
        self._current = call
        self._reply(invite, "100 Trying", tag="")
        self._reply(invite, "180 Ringing", tag=call.local_tag)
        self.calls.put_nowait(call)
        if self.auto_answer_after is not None:
            asyncio.get_running_loop().call_later(self.auto_answer_after, self.answer, call)

    def answer(self, call: IncomingCall) -> None:
        if call.ended.is_set() or call.answered_at is not None:
            return
        call.rtp_remote = _sdp_audio_address(call.request.body)
        call.answered_at = time.monotonic()
        self._answer_ok(call.request, call)
        self._media_task = asyncio.get_running_loop().create_task(self._media_loop(call))

    def _answer_ok(self, request: SipMessage, call: IncomingCall) -> None:
        sdp = (
            f"v=0\r\no=- 2 2 IN IP4 {self.local_host}\r\ns=test phone\r\nc=IN IP4 {self.local_host}\r\nt=0 0\r\n"
            f"m=audio {self.rtp_port} RTP/AVP {PCMU}\r\na=rtpmap:0 PCMU/8000\r\na=ptime:20\r\na=sendrecv\r\n"
        )
        self._reply(request, "200 OK", tag=call.local_tag, body=sdp)

    async def hangup(self, call: IncomingCall) -> None:
        if call.ended.is_set():
            return
        invite = call.request
        target = re.search(r"<([^>]+)>", invite.header("contact"))
        uri = target.group(1) if target else f"sip:{self.registrar}:{self.port}"
        from_header = f"{invite.header('to')};tag={call.local_tag}"
        cseq = int(invite.header("cseq").split()[0]) + 1000
        bye = (
            f"BYE {uri} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {self.local_host}:{self.sip_port};branch=z9hG4bK{uuid.uuid4().hex[:16]};rport\r\n"
            f"Max-Forwards: 70\r\nFrom: {from_header}\r\nTo: {invite.header('from')}\r\n"
            f"Call-ID: {invite.header('call-id')}\r\nCSeq: {cseq} BYE\r\nContent-Length: 0\r\n\r\n"
        )
        self._send(bye.encode(), (self.registrar, self.port))
        self._end(call, "local")

    def _end(self, call: IncomingCall, by: str) -> None:
        if not call.ended.is_set():
            call.ended_by = by
            call.ended.set()
        if self._current is call:
            self._current = None
        if self._media_task is not None:
            self._media_task.cancel()
            self._media_task = None

    # ---- media ---------------------------------------------------------------

    async def _media_loop(self, call: IncomingCall) -> None:
        """A steady tone (self._tone_hz) every 20 ms, like a person talking into the handset."""
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        n = 0
        while not call.ended.is_set():
            pcm = tone(self._tone_hz, SAMPLES_PER_FRAME, start=n)
            n += SAMPLES_PER_FRAME
            header = RTP_HEADER.pack(
                0x80, PCMU | (0x80 if n == SAMPLES_PER_FRAME else 0), self._seq, self._ts, self._ssrc
            )
            if call.rtp_remote and self._rtp is not None:
                self._rtp.sendto(header + ulaw_encode(pcm), call.rtp_remote)
            self._seq = (self._seq + 1) & 0xFFFF
            self._ts = (self._ts + SAMPLES_PER_FRAME) & 0xFFFFFFFF
            next_at += 0.02
            if next_at < loop.time() - 0.06:
                next_at = loop.time()
            await asyncio.sleep(max(0.0, next_at - loop.time()))

    def _on_rtp(self, data: bytes, _addr) -> None:
        call = self._current
        if call is None or len(data) < RTP_HEADER.size or data[0] >> 6 != 2:
            return
        if data[1] & 0x7F == PCMU:
            offset = RTP_HEADER.size + 4 * (data[0] & 0x0F)
            call.received.frames.append((time.monotonic(), ulaw_decode(data[offset:])))

    # ---- plumbing ------------------------------------------------------------

    def _reply(self, request: SipMessage, status: str, addr=None, tag: str | None = None, body: str = "") -> None:
        to = request.header("to")
        if tag and not _has_to_tag(request):
            to = f"{to};tag={tag}"
        contact = f"Contact: <sip:{self.username}@{self.local_host}:{self.sip_port}>\r\n" if tag else ""
        content_type = "Content-Type: application/sdp\r\n" if body else ""
        response = (
            f"SIP/2.0 {status}\r\nVia: {request.header('via')}\r\nFrom: {request.header('from')}\r\nTo: {to}\r\n"
            f"Call-ID: {request.header('call-id')}\r\nCSeq: {request.header('cseq')}\r\n{contact}{content_type}"
            f"Content-Length: {len(body.encode())}\r\n\r\n{body}"
        )
        self._send(response.encode(), addr or _via_address(request) or (self.registrar, self.port))

    def _send(self, data: bytes, addr) -> None:
        if self._sip is not None:
            self._sip.sendto(data, addr)

    def close(self) -> None:
        if self._media_task is not None:
            self._media_task.cancel()
        for transport in (self._sip, self._rtp):
            if transport is not None:
                transport.close()


def tone(hz: float, samples: int, start: int = 0, amplitude: int = 8000) -> bytes:
    """16-bit little-endian PCM of a sine at 8 kHz."""
    import math

    return b"".join(
        struct.pack("<h", int(amplitude * math.sin(2 * math.pi * hz * (start + i) / 8000))) for i in range(samples)
    )


def tone_level(pcm: bytes, hz: float) -> float:
    """Share of the signal's energy at `hz` (Goertzel), 0..1: tells the far end's tone from hold music."""
    import math

    count = len(pcm) // 2
    if count == 0:
        return 0.0
    samples = struct.unpack(f"<{count}h", pcm[: count * 2])
    coeff = 2 * math.cos(2 * math.pi * hz / 8000)
    s1 = s2 = 0.0
    for x in samples:
        s1, s2 = x + coeff * s1 - s2, s1
    power = s1 * s1 + s2 * s2 - coeff * s1 * s2
    total = sum(x * x for x in samples)
    return 0.0 if total == 0 else min(1.0, 2 * power / (count * total))


def _has_to_tag(message: SipMessage) -> bool:
    return re.search(r";\s*tag=", message.header("to")) is not None


def _via_address(request: SipMessage) -> tuple[str, int] | None:
    """Where a response goes: the top Via's received/rport, else its sent-by (RFC 3261 18.2.2, RFC 3581)."""
    top = request.header("via").split("\r\n")[0]
    sent_by = re.search(r"SIP/2.0/UDP\s+([^;:\s]+)(?::(\d+))?", top)
    if not sent_by:
        return None
    host = re.search(r";received=([^;\s]+)", top)
    rport = re.search(r";rport=(\d+)", top)
    return (
        host.group(1) if host else sent_by.group(1),
        int(rport.group(1)) if rport else int(sent_by.group(2) or 5060),
    )
