"""The test caller's SIP parsing and dialog matching (no network)."""

from agent.caller.sip import SipCall, parse_sip


def bye(call_id: str) -> bytes:
    return (
        "BYE sip:caller@127.0.0.1:5070 SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKabc\r\n"
        "From: <sip:s@127.0.0.1>;tag=far\r\nTo: <sip:caller@127.0.0.1>;tag=near\r\n"
        f"Call-ID: {call_id}\r\nCSeq: 102 BYE\r\nContent-Length: 0\r\n\r\n"
    ).encode()


def test_parse_headers_compact_forms_and_status():
    message = parse_sip(b"SIP/2.0 200 OK\r\ni: abc\r\nv: SIP/2.0/UDP a\r\nVia: SIP/2.0/UDP b\r\n\r\nv=0")
    assert message.status == 200 and message.header("call-id") == "abc"
    assert message.header("via") == "SIP/2.0/UDP a\r\nVia: SIP/2.0/UDP b"  # every Via kept for the reply
    assert message.body == "v=0"


def test_a_bye_for_another_call_does_not_end_ours():
    call = SipCall("127.0.0.1", 5060)
    sent = []
    call._send = sent.append
    call._on_sip(bye("earlier-call@127.0.0.1"), None)
    assert not call.ended.is_set() and sent[0].startswith(b"SIP/2.0 481")
    call._on_sip(bye(call.call_id), None)
    assert call.ended.is_set() and call.ended_by == "remote" and sent[1].startswith(b"SIP/2.0 200 OK")
