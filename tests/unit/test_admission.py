"""Admission control decides from measured load: call count and recent reply times."""

from agent.transport.admission import Admission


def test_admits_until_the_call_limit():
    admission = Admission(max_calls=2, max_reply_ms=1500)
    assert admission.decide(0).admitted and admission.decide(1).admitted
    refused = admission.decide(2)
    assert not refused.admitted and "capacity" in refused.reason


def test_slow_recent_replies_turn_new_calls_away_while_others_run():
    admission = Admission(max_calls=10, max_reply_ms=1500)
    for _ in range(10):
        admission.observe_reply(2400, now=100.0)
    assert not admission.decide(3, now=101.0).admitted
    assert admission.decide(0, now=101.0).admitted  # an idle box always takes the call
    assert admission.decide(3, now=200.0).admitted  # a minute later the slow turns no longer count


def test_too_few_turns_are_not_judged():
    admission = Admission(max_calls=10, max_reply_ms=1500)
    for _ in range(3):
        admission.observe_reply(5000, now=10.0)
    assert admission.recent_reply_ms(now=10.0) is None
    assert admission.decide(2, now=10.0).admitted


def test_unannounced_connections_are_summarized_and_their_waits_rate_limited():
    from agent.transport.admission import Unannounced

    seen = Unannounced(waits_per_s=2.0, burst=3)
    assert [seen.may_wait(now=0.0) for _ in range(4)] == [True, True, True, False]
    assert seen.may_wait(now=0.6)  # refilled at 2 per second
    for reason in ["idle"] * 5 + ["unknown call id"] * 2:
        seen.count(reason)
    assert seen.summary() == "7 (idle 5, unknown call id 2)"
    assert seen.summary() == ""  # one line per window
    assert seen.total["idle"] == 5
