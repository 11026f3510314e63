"""A minimal SIP user agent (UDP) with G.711 RTP, for test calls on loopback.

It places one call the way a trunk would: INVITE with an SDP offer (PCMU and
RFC 4733 telephone-events), ACK, RTP both ways, DTMF as RTP events, BYE either
way. Not a general SIP stack: no registration, auth, TCP/TLS, or re-INVITE
handling beyond answering it; enough to drive Asterisk exactly like a caller.
Debian 12 has no sipp or pjsua package, and the Python SIP libraries on PyPI
need registration or threads; this is ~250 lines we control end to end.
"""

from __future__ import annotations

import asyncio
import collections
import random
import re
import struct
import time
import uuid
from dataclasses import dataclass, field

from agent.audio.pcm import ulaw_decode, ulaw_encode

RTP_HEADER = struct.Struct("!BBHII")
PCMU = 0
DTMF_PT = 101
SAMPLES_PER_FRAME = 160  # 20 ms at 8 kHz
DTMF_EVENTS = {**{str(d): d for d in range(10)}, "*": 10, "#": 11, "A": 12, "B": 13, "C": 14, "D": 15}


class SipError(Exception):
    pass


@dataclass
class SipMessage:
    first_line: str
    headers: dict[str, str]
    body: str

    @property
    def status(self) -> int | None:
        match = re.match(r"SIP/2.0 (\d{3})", self.first_line)
        return int(match.group(1)) if match else None

    @property
    def method(self) -> str | None:
        return None if self.status else self.first_line.split(" ", 1)[0]

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), "")


_COMPACT = {
    "v": "via",
    "f": "from",
    "t": "to",
    "i": "call-id",
    "m": "contact",
    "l": "content-length",
    "c": "content-type",
}


def parse_sip(data: bytes) -> SipMessage:
    text = data.decode("utf-8", "replace")
    head, _, body = text.partition("\r\n\r\n")
    lines = head.split("\r\n")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            key = _COMPACT.get(name.strip().lower(), name.strip().lower())
            # keep all Via lines: responses must echo them
            headers[key] = (
                f"{headers[key]}\r\nVia: {value.strip()}" if key == "via" and key in headers else value.strip()
            )
    return SipMessage(lines[0], headers, body)


@dataclass
class ReceivedAudio:
    """Everything the far end sent, as (arrival monotonic time, 8 kHz PCM frame)."""

    frames: list[tuple[float, bytes]] = field(default_factory=list)


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, on_datagram) -> None:
        self.on_datagram = on_datagram

    def datagram_received(self, data: bytes, addr) -> None:
        self.on_datagram(data, addr)


class SipCall:
    """One outbound call: dial(), send_audio()/send_dtmf(), hangup()."""

    def __init__(self, host: str, port: int, caller_id: str = "selftest", display: str = "Test caller") -> None:
        self.host, self.port = host, port
        self.caller_id = re.sub(r"[^0-9A-Za-z+]", "", caller_id) or "selftest"
        self.display = display
        self.call_id = f"{uuid.uuid4()}@127.0.0.1"
        self.tag = uuid.uuid4().hex[:10]
        self.received = ReceivedAudio()
        self.ended = asyncio.Event()
        self.ended_by: str | None = None  # "remote" | "local"
        self._cseq = 1
        self._responses: asyncio.Queue[SipMessage] = asyncio.Queue()
        self._remote_tag = ""
        self._remote_target = ""
        self._rtp_remote: tuple[str, int] | None = None
        self._seq = random.randrange(1 << 16)
        self._ts = random.randrange(1 << 32)
        self._ssrc = random.randrange(1 << 32)
        self._sip_transport: asyncio.DatagramTransport | None = None
        self._rtp_transport: asyncio.DatagramTransport | None = None

    # ---- setup ------------------------------------------------------------

    async def dial(self, extension: str = "s", headers: dict[str, str] | None = None, timeout: float = 10) -> None:
        loop = asyncio.get_running_loop()
        self._sip_transport, _ = await loop.create_datagram_endpoint(
            lambda: _Udp(self._on_sip), local_addr=("127.0.0.1", 0)
        )
        self._rtp_transport, _ = await loop.create_datagram_endpoint(
            lambda: _Udp(self._on_rtp), local_addr=("127.0.0.1", 0)
        )
        self._sip_port = self._sip_transport.get_extra_info("sockname")[1]
        rtp_port = self._rtp_transport.get_extra_info("sockname")[1]
        sdp = (
            "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=test call\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            f"m=audio {rtp_port} RTP/AVP {PCMU} {DTMF_PT}\r\na=rtpmap:0 PCMU/8000\r\n"
            f"a=rtpmap:{DTMF_PT} telephone-event/8000\r\na=fmtp:{DTMF_PT} 0-16\r\na=ptime:20\r\na=sendrecv\r\n"
        )
        self._request_uri = f"sip:{extension}@{self.host}:{self.port}"
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        self._invite_branch = self._branch()
        invite = self._request(
            "INVITE", self._request_uri, self._invite_branch, extra + "Content-Type: application/sdp\r\n", sdp
        )
        self._send(invite)
        deadline = loop.time() + timeout
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise SipError(f"no answer from {self.host}:{self.port} within {timeout}s (is Asterisk running?)")
            try:
                response = await asyncio.wait_for(self._responses.get(), min(remaining, 0.5))
            except TimeoutError:
                if loop.time() < deadline:
                    self._send(invite)  # UDP: retransmit until provisional/final response
                continue
            status = response.status or 0
            if status < 200:
                deadline = max(deadline, loop.time() + timeout)
                continue
            if status >= 300:
                self._ack(response, self._invite_branch)
                raise SipError(f"call rejected: {response.first_line}")
            self._remote_tag = _tag(response.header("to"))
            self._remote_target = _uri(response.header("contact")) or self._request_uri
            self._to_header = response.header("to")
            self._rtp_remote = _sdp_audio_address(response.body)
            self._ack(response, self._branch())
            return

    # ---- media ------------------------------------------------------------

    def start_media(self) -> None:
        """Send RTP every 20 ms from now on: queued speech/DTMF, else silence, like a real phone."""
        self._tx: collections.deque[tuple[str, bytes, asyncio.Future | None]] = collections.deque()
        self._media_task = asyncio.get_running_loop().create_task(self._media_loop())

    async def send_audio(self, pcm8k: bytes) -> float:
        """Queue speech and wait until its last frame left; returns that monotonic time."""
        frame = SAMPLES_PER_FRAME * 2
        if len(pcm8k) % frame:
            pcm8k += b"\x00" * (frame - len(pcm8k) % frame)
        done = asyncio.get_running_loop().create_future()
        chunks = [pcm8k[i : i + frame] for i in range(0, len(pcm8k), frame)]
        for index, chunk in enumerate(chunks):
            self._tx.append(("audio", chunk, done if index == len(chunks) - 1 else None))
        return await done

    async def send_dtmf(self, digit: str, duration_ms: int = 160) -> float:
        """Queue one RFC 4733 digit; returns the time its end packets left."""
        event = DTMF_EVENTS[digit.upper()]
        steps = duration_ms // 20
        done = asyncio.get_running_loop().create_future()
        for step in range(1, steps + 1):
            self._tx.append(("dtmf", struct.pack("!BBH", event, 10, step * SAMPLES_PER_FRAME), None))
        self._tx.append(("dtmf-end", struct.pack("!BBH", event, 0x80 | 10, steps * SAMPLES_PER_FRAME), done))
        return await done

    async def _media_loop(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        silence = ulaw_encode(b"\x00" * SAMPLES_PER_FRAME * 2)
        dtmf_ts: int | None = None
        previous = "silence"
        while not self.ended.is_set():
            kind, payload, done = self._tx.popleft() if self._tx else ("silence", b"", None)
            if kind == "audio":
                self._send_rtp(PCMU, ulaw_encode(payload), marker=previous != "audio")
            elif kind in ("dtmf", "dtmf-end"):
                if dtmf_ts is None:
                    dtmf_ts = self._ts
                for _ in range(3 if kind == "dtmf-end" else 1):  # end packets go three times (RFC 4733)
                    self._send_rtp(DTMF_PT, payload, marker=previous not in ("dtmf",), timestamp=dtmf_ts, advance=False)
                if kind == "dtmf-end":
                    dtmf_ts = None
            else:
                self._send_rtp(PCMU, silence)
            if kind in ("dtmf", "dtmf-end"):
                self._ts = (self._ts + SAMPLES_PER_FRAME) & 0xFFFFFFFF  # media clock runs on during events
            previous = kind
            if done is not None and not done.done():
                done.set_result(time.monotonic())
            next_at += 0.02
            if next_at < loop.time() - 0.06:  # stalled: a phone never bursts to catch up
                next_at = loop.time()
            await asyncio.sleep(max(0.0, next_at - loop.time()))

    def _send_rtp(self, pt: int, payload: bytes, marker=False, timestamp=None, advance=True) -> None:
        if not self._rtp_remote or self._rtp_transport is None:
            return
        header = RTP_HEADER.pack(
            0x80, (0x80 if marker else 0) | pt, self._seq, timestamp if timestamp is not None else self._ts, self._ssrc
        )
        self._rtp_transport.sendto(header + payload, self._rtp_remote)
        self._seq = (self._seq + 1) & 0xFFFF
        if advance:
            self._ts = (self._ts + SAMPLES_PER_FRAME) & 0xFFFFFFFF

    def _on_rtp(self, data: bytes, _addr) -> None:
        if len(data) < RTP_HEADER.size:
            return
        first, second = data[0], data[1]
        if first >> 6 != 2:
            return
        offset = RTP_HEADER.size + 4 * (first & 0x0F)
        if second & 0x7F == PCMU:
            self.received.frames.append((time.monotonic(), ulaw_decode(data[offset:])))

    # ---- signalling ---------------------------------------------------------

    def _on_sip(self, data: bytes, addr) -> None:
        try:
            message = parse_sip(data)
        except Exception:
            return
        if message.header("call-id") != self.call_id:
            # a late retransmission for an earlier call whose port the OS handed to us again
            if message.status is None and message.method != "ACK":
                self._reply(message, "481 Call/Transaction Does Not Exist")
            return
        if message.status is not None:
            self._responses.put_nowait(message)
            return
        if message.method in ("BYE", "CANCEL"):
            self._reply(message, "200 OK")
            self.ended_by = self.ended_by or "remote"
            self.ended.set()
        elif message.method in ("INVITE", "UPDATE"):  # session refresh: keep our media as is
            self._reply(message, "200 OK")
        elif message.method in ("OPTIONS", "INFO", "NOTIFY"):
            self._reply(message, "200 OK")

    async def hangup(self) -> None:
        if self.ended.is_set():
            return self.close()
        self.ended_by = "local"
        self._cseq += 1
        bye = self._request("BYE", self._remote_target, self._branch(), "", "", in_dialog=True)
        self._send(bye)
        try:
            await asyncio.wait_for(self._responses.get(), 2)
        except TimeoutError:
            pass
        self.ended.set()
        self.close()

    def close(self) -> None:
        task = getattr(self, "_media_task", None)
        if task is not None:
            task.cancel()
        for transport in (self._sip_transport, self._rtp_transport):
            if transport is not None:
                transport.close()

    def _branch(self) -> str:
        return "z9hG4bK" + uuid.uuid4().hex[:16]

    def _request(self, method: str, uri: str, branch: str, extra: str, body: str, in_dialog: bool = False) -> bytes:
        to = self._to_header if in_dialog else f"<{self._request_uri}>"
        lines = (
            f"{method} {uri} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{self._sip_port};branch={branch};rport\r\n"
            "Max-Forwards: 70\r\n"
            f'From: "{self.display}" <sip:{self.caller_id}@127.0.0.1>;tag={self.tag}\r\n'
            f"To: {to}\r\n"
            f"Call-ID: {self.call_id}\r\n"
            f"CSeq: {self._cseq} {method}\r\n"
            f"Contact: <sip:{self.caller_id}@127.0.0.1:{self._sip_port}>\r\n"
            "User-Agent: phone-agent-test-caller\r\n"
            f"{extra}Content-Length: {len(body.encode())}\r\n\r\n{body}"
        )
        return lines.encode()

    def _ack(self, response: SipMessage, branch: str) -> None:
        to = response.header("to")
        uri = _uri(response.header("contact")) or self._request_uri
        ack = (
            f"ACK {uri} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{self._sip_port};branch={branch};rport\r\n"
            "Max-Forwards: 70\r\n"
            f'From: "{self.display}" <sip:{self.caller_id}@127.0.0.1>;tag={self.tag}\r\n'
            f"To: {to}\r\nCall-ID: {self.call_id}\r\nCSeq: {self._cseq} ACK\r\nContent-Length: 0\r\n\r\n"
        )
        self._send(ack.encode())

    def _reply(self, request: SipMessage, status: str) -> None:
        via = request.header("via")
        response = (
            f"SIP/2.0 {status}\r\nVia: {via}\r\nFrom: {request.header('from')}\r\nTo: {request.header('to')}\r\n"
            f"Call-ID: {request.header('call-id')}\r\nCSeq: {request.header('cseq')}\r\nContent-Length: 0\r\n\r\n"
        )
        self._send(response.encode())

    def _send(self, data: bytes) -> None:
        if self._sip_transport is not None:
            self._sip_transport.sendto(data, (self.host, self.port))


def _tag(header: str) -> str:
    match = re.search(r";\s*tag=([^;>\s]+)", header)
    return match.group(1) if match else ""


def _uri(header: str) -> str:
    match = re.search(r"<([^>]+)>", header)
    return match.group(1) if match else header.split(";")[0].strip()


def _sdp_audio_address(sdp: str) -> tuple[str, int]:
    host = re.search(r"^c=IN IP4 (\S+)", sdp, re.M)
    port = re.search(r"^m=audio (\d+)", sdp, re.M)
    if not host or not port:
        raise SipError("answer has no audio in its SDP")
    return host.group(1), int(port.group(1))
