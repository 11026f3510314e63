"""Sans-IO codec for Asterisk's AudioSocket protocol.

Bytes in, typed messages out; messages in, bytes out. No sockets here, so the
codec is tested with golden bytes and fed malformed input without a network.

Frame: 1 byte kind, 2 bytes big-endian payload length, payload.
"""

from __future__ import annotations

import enum
import struct
import uuid
from dataclasses import dataclass

HEADER = struct.Struct(">BH")
# 20 ms of 8 kHz 16-bit mono; Asterisk sends audio in frames of this size.
FRAME_BYTES_8K = 320
# Asterisk never sends frames anywhere near this; a larger length means a
# corrupt or hostile stream and we close that one connection.
MAX_PAYLOAD = 16_000


class Kind(enum.IntEnum):
    HANGUP = 0x00
    UUID = 0x01
    DTMF = 0x03
    AUDIO_SLIN8 = 0x10
    AUDIO_SLIN12 = 0x11
    AUDIO_SLIN16 = 0x12
    AUDIO_SLIN24 = 0x13
    AUDIO_SLIN32 = 0x14
    AUDIO_SLIN44 = 0x15
    AUDIO_SLIN48 = 0x16
    AUDIO_SLIN96 = 0x17
    AUDIO_SLIN192 = 0x18
    ERROR = 0xFF


AUDIO_RATES = {
    Kind.AUDIO_SLIN8: 8000,
    Kind.AUDIO_SLIN12: 12000,
    Kind.AUDIO_SLIN16: 16000,
    Kind.AUDIO_SLIN24: 24000,
    Kind.AUDIO_SLIN32: 32000,
    Kind.AUDIO_SLIN44: 44100,
    Kind.AUDIO_SLIN48: 48000,
    Kind.AUDIO_SLIN96: 96000,
    Kind.AUDIO_SLIN192: 192000,
}
_KIND_FOR_RATE = {rate: kind for kind, rate in AUDIO_RATES.items()}


class ProtocolError(Exception):
    """The peer sent bytes that are not valid AudioSocket; close the connection."""


@dataclass(frozen=True, slots=True)
class Hangup:
    pass


@dataclass(frozen=True, slots=True)
class CallId:
    id: uuid.UUID


@dataclass(frozen=True, slots=True)
class Dtmf:
    digit: str


@dataclass(frozen=True, slots=True)
class Audio:
    pcm: bytes  # signed 16-bit little-endian mono
    rate: int = 8000


@dataclass(frozen=True, slots=True)
class Error:
    code: int | None  # Asterisk sends one byte of error code; may be absent


Message = Hangup | CallId | Dtmf | Audio | Error


def encode(message: Message) -> bytes:
    """Serialise one message, header and payload together (written in one call)."""
    match message:
        case Hangup():
            return HEADER.pack(Kind.HANGUP, 0)
        case CallId(id=call_id):
            return HEADER.pack(Kind.UUID, 16) + call_id.bytes
        case Dtmf(digit=digit):
            payload = digit.encode("ascii")
            if len(payload) != 1:
                raise ValueError("DTMF message carries exactly one digit")
            return HEADER.pack(Kind.DTMF, 1) + payload
        case Audio(pcm=pcm, rate=rate):
            if len(pcm) % 2 or len(pcm) > MAX_PAYLOAD:
                raise ValueError(f"audio payload of {len(pcm)} bytes is not encodable")
            kind = _KIND_FOR_RATE.get(rate)
            if kind is None:
                raise ValueError(f"AudioSocket has no kind for {rate} Hz")
            return HEADER.pack(kind, len(pcm)) + pcm
        case Error(code=code):
            payload = b"" if code is None else bytes([code])
            return HEADER.pack(Kind.ERROR, len(payload)) + payload
    raise TypeError(f"not an AudioSocket message: {message!r}")


class Decoder:
    """Incremental decoder: feed() any chunk of the stream, get complete messages.

    After a ProtocolError the decoder is poisoned: the stream has lost framing
    and nothing after the bad frame can be trusted. Messages decoded before the
    bad frame in the same chunk are returned first; the next feed() raises, and
    `failed` says so at once (a reader must not wait for more bytes to learn
    that the stream is broken). `good_bytes` counts the stream's bytes up to the
    end of the last valid frame: where a bad frame starts.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._failed: ProtocolError | None = None
        self.good_bytes = 0

    @property
    def pending(self) -> int:
        """Bytes held waiting for the rest of a frame (non-zero at EOF = truncated)."""
        return len(self._buffer)

    @property
    def failed(self) -> ProtocolError | None:
        """The error that broke the stream, if any (set even when feed() returned messages before it)."""
        return self._failed

    def feed(self, data: bytes) -> list[Message]:
        if self._failed:
            raise self._failed
        self._buffer += data
        messages: list[Message] = []
        try:
            while len(self._buffer) >= HEADER.size:
                kind_byte, length = HEADER.unpack_from(self._buffer)
                if length > MAX_PAYLOAD:
                    self._fail(f"frame length {length} exceeds {MAX_PAYLOAD}")
                if len(self._buffer) < HEADER.size + length:
                    break
                payload = bytes(self._buffer[HEADER.size : HEADER.size + length])
                messages.append(self._parse(kind_byte, payload))
                del self._buffer[: HEADER.size + length]
                self.good_bytes += HEADER.size + length
        except ProtocolError:
            if not messages:
                raise
            # hand over what was valid (a hangup or DTMF may be in it); the next feed() raises
        return messages

    def _fail(self, reason: str) -> None:
        self._failed = ProtocolError(reason)
        raise self._failed

    def _parse(self, kind_byte: int, payload: bytes) -> Message:
        try:
            kind = Kind(kind_byte)
        except ValueError:
            self._fail(f"unknown message kind 0x{kind_byte:02x}")
            raise  # unreachable; keeps type checkers honest
        if kind is Kind.HANGUP:
            return Hangup()
        if kind is Kind.UUID:
            if len(payload) != 16:
                self._fail(f"UUID payload of {len(payload)} bytes, expected 16")
            return CallId(uuid.UUID(bytes=payload))
        if kind is Kind.DTMF:
            if len(payload) != 1 or chr(payload[0]) not in "0123456789*#ABCD":
                self._fail("DTMF payload is not one digit")
            return Dtmf(chr(payload[0]))
        if kind is Kind.ERROR:
            return Error(payload[0] if payload else None)
        if not payload or len(payload) % 2:
            self._fail(f"audio payload of {len(payload)} bytes is not whole 16-bit samples")
        return Audio(payload, AUDIO_RATES[kind])
