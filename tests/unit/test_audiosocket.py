"""AudioSocket codec: golden bytes both ways, and malformed input never escapes as anything but ProtocolError."""

import uuid

import pytest

from agent.protocol.audiosocket import (
    MAX_PAYLOAD,
    Audio,
    CallId,
    Decoder,
    Dtmf,
    Error,
    Hangup,
    ProtocolError,
    encode,
)

CALL = uuid.UUID("40325ec2-5efd-4bd3-805f-53576e581d13")
GOLDEN = [
    (Hangup(), b"\x00\x00\x00"),
    (CallId(CALL), b"\x01\x00\x10" + CALL.bytes),
    (Dtmf("5"), b"\x03\x00\x015"),
    (Dtmf("#"), b"\x03\x00\x01#"),
    (Audio(b"\x01\x00\xff\x7f"), b"\x10\x00\x04\x01\x00\xff\x7f"),
    (Audio(b"\x00\x00", rate=16000), b"\x12\x00\x02\x00\x00"),
    (Audio(b"\x00\x00", rate=48000), b"\x16\x00\x02\x00\x00"),
    (Error(2), b"\xff\x00\x01\x02"),
    (Error(None), b"\xff\x00\x00"),
]


@pytest.mark.parametrize(("message", "wire"), GOLDEN)
def test_encode_golden(message, wire):
    assert encode(message) == wire


@pytest.mark.parametrize(("message", "wire"), GOLDEN)
def test_decode_golden(message, wire):
    assert Decoder().feed(wire) == [message]


def test_decode_stream_split_at_every_byte():
    stream = b"".join(wire for _, wire in GOLDEN)
    decoder = Decoder()
    out = []
    for i in range(len(stream)):
        out += decoder.feed(stream[i : i + 1])
    assert out == [message for message, _ in GOLDEN]
    assert decoder.pending == 0


def test_full_frame_of_audio():
    frame = bytes(range(256)) + bytes(64)
    assert Decoder().feed(encode(Audio(frame))) == [Audio(frame)]


def test_truncated_header_waits_for_more():
    decoder = Decoder()
    assert decoder.feed(b"\x10\x01") == []
    assert decoder.pending == 2


def test_truncated_payload_waits_and_reports_pending():
    decoder = Decoder()
    assert decoder.feed(b"\x10\x01\x40" + b"\x00" * 100) == []
    assert decoder.pending == 103


@pytest.mark.parametrize(
    ("wire", "reason"),
    [
        (b"\x42\x00\x00", "unknown message kind 0x42"),
        (b"\x10\xff\xff", "exceeds"),
        (b"\x10\x00\x00", "not whole 16-bit samples"),
        (b"\x10\x00\x03abc", "not whole 16-bit samples"),
        (b"\x01\x00\x04abcd", "expected 16"),
        (b"\x03\x00\x02ab", "not one digit"),
        (b"\x03\x00\x01x", "not one digit"),
        (b"GET / HTTP/1.1\r\n", "exceeds"),  # "G" then length 0x4554
        (b"\x07\x00\x00", "unknown message kind 0x07"),
    ],
)
def test_malformed_input_is_a_clean_protocol_error(wire, reason):
    with pytest.raises(ProtocolError, match=reason):
        Decoder().feed(wire)


def test_decoder_stays_failed_after_an_error():
    decoder = Decoder()
    with pytest.raises(ProtocolError):
        decoder.feed(b"\x42\x00\x00")
    with pytest.raises(ProtocolError):
        decoder.feed(encode(Hangup()))


def test_messages_before_a_bad_frame_are_not_lost():
    decoder = Decoder()
    good = encode(Dtmf("1"))
    assert decoder.feed(good + b"\x42\x00\x00") == [Dtmf("1")]
    with pytest.raises(ProtocolError, match="unknown message kind"):
        decoder.feed(b"")


@pytest.mark.parametrize(
    "bad", [Audio(b"\x00"), Audio(b"\x00" * (MAX_PAYLOAD + 2)), Audio(b"\x00\x00", rate=11025), Dtmf("12")]
)
def test_encode_rejects_unencodable(bad):
    with pytest.raises(ValueError):
        encode(bad)


def test_random_garbage_never_raises_anything_else():
    import random

    rng = random.Random(7)
    for _ in range(2000):
        blob = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64)))
        try:
            Decoder().feed(blob)
        except ProtocolError:
            pass


def test_a_bad_frame_in_the_same_read_as_the_call_id_is_reported_at_once():
    """Issue 11: the call id was returned, the bad frame behind it only surfaced on the next read (never, if none came)."""
    decoder = Decoder()
    wire = encode(CallId(CALL)) + b"\x42\x00\x00"
    assert decoder.feed(wire) == [CallId(CALL)]
    assert decoder.failed is not None and "unknown message kind" in str(decoder.failed)
    assert decoder.good_bytes == 19  # the bad frame starts right after the call id


def test_good_bytes_counts_whole_valid_frames_only():
    decoder = Decoder()
    decoder.feed(encode(CallId(CALL)) + encode(Audio(b"\x00" * 320))[:100])
    assert decoder.failed is None and decoder.good_bytes == 19 and decoder.pending == 100
