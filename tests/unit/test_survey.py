"""The post-call survey (CSAT): the score in an answer, whom to ask, and the flow in a call.

The call tests run the real session, server and records over AudioSocket with fake models
(tests/unit/test_session.py's fakes): the "caller" is heard as the fake ASR's scripted texts.
"""

import asyncio

import pytest
from sqlalchemy import select

from agent.brain.dialogue import Reply, transfer
from agent.call.survey import should_ask, survey_score
from agent.config import ConfigError, load_config
from agent.protocol import audiosocket as proto
from agent.store.db import make_engine
from agent.store.records import calls, read_record
from tests.unit.test_session import SPEECH, Caller, server  # noqa: F401  (the fixture)


@pytest.mark.parametrize(
    "answer, score",
    [
        ("four", 4), ("4", 4), ("Four.", 4), ("For.", 4), ("five out of five", 5), ("I'd give it a three.", 3),
        ("4 out of 5", 4), ("one", 1), ("5", 5), ("ten", None), ("0", None), ("no thanks", None),
        ("goodbye", None), ("3.5", None), ("a hundred percent", None),
    ],
)  # fmt: skip
def test_the_score_is_read_with_the_number_parser(answer, score):
    assert survey_score(answer) == score


def goodbye() -> Reply:
    return Reply(say=["Goodbye!"], end="hangup", reason="caller-done", intent="goodbye")


def test_asked_only_of_a_caller_who_ends_the_call_after_a_conversation_and_was_not_upset():
    config = load_config()  # the clinic has the survey on
    assert config.survey.enabled
    assert should_ask(config, goodbye(), upset=False, caller_turns=2)
    assert not should_ask(config, goodbye(), upset=True, caller_turns=2)  # upset at some point
    assert not should_ask(config, goodbye(), upset=False, caller_turns=1)  # "wrong number, bye"
    assert not should_ask(config, transfer(config, "caller-asked"), upset=False, caller_turns=3)
    assert not should_ask(config, Reply(say=["Sure."]), upset=False, caller_turns=3)
    off = config.model_copy(update={"survey": config.survey.model_copy(update={"enabled": False})})
    assert not should_ask(off, goodbye(), upset=False, caller_turns=2)


def test_survey_settings_are_validated_and_sentences_overridable(tmp_path):
    (tmp_path / "agent.yaml").write_text(
        "business_name: X\ngreeting: Hi, I'm the virtual assistant.\npersona: p\n"
        "messages: {survey_thanks: Cheers!}\nsurvey: {enabled: true, question: 'One to five?'}\n"
    )
    config = load_config(tmp_path)
    assert config.survey.question == "One to five?" and config.say("survey_thanks") == "Cheers!"
    assert config.survey.keypad and config.survey.tries == 2
    (tmp_path / "agent.yaml").write_text(
        "business_name: X\ngreeting: Hi, I'm the virtual assistant.\npersona: p\nsurvey: {enabled: yes, rating: 5}\n"
    )
    with pytest.raises(ConfigError, match="survey.rating: unknown setting"):
        load_config(tmp_path)


def answered(session) -> bool:
    """The caller's first turn has been answered."""
    live = session.live()
    return live["turns"] >= 1 and live["state"] in ("listening", "in_task")


async def say(caller, server, until=answered, speech=SPEECH, timeout=20):  # noqa: F811
    """Speak, then keep the line open (silence) until the agent's session is where `until` says."""
    await caller.send_audio(speech)
    deadline = asyncio.get_running_loop().time() + timeout
    await caller.silence(0.5)
    while asyncio.get_running_loop().time() < deadline and not caller.task.done():
        sessions = list(server.sessions.values())
        if sessions and until(sessions[0]):
            return
        await caller.silence(0.1)


def asked(session) -> bool:
    return session._surveying and session.live()["state"] == "listening"  # the question has been said


async def asked_after(server, texts) -> Caller:  # noqa: F811
    """A caller who asks a question and says goodbye (the fake ASR hears `texts`), up to the survey question."""
    server.engines.asr.texts = texts
    caller = await Caller.connect(server.port)
    await caller.silence(2.5)  # greeting
    await say(caller, server)
    await say(caller, server, asked)
    return caller


def csat(call_id):
    with make_engine().connect() as conn:
        return conn.execute(select(calls.c.csat).where(calls.c.id == call_id)).scalar()


async def test_a_caller_who_says_goodbye_is_asked_and_the_spoken_answer_is_stored(server):  # noqa: F811
    caller = await asked_after(server, ["when are you open", "thanks, goodbye", "four"])
    await say(caller, server, lambda session: False)  # "four": thanks, goodbye, and the agent ends the call
    await caller.closed(timeout=15)
    record = read_record(caller.call_id)
    kinds = [e.get("kind") for e in record if e["event"] == "bot_turn"]
    assert "survey" in kinds and kinds[-1] == "goodbye", record
    [survey] = [e for e in record if e["event"] == "survey"]
    assert survey["csat"] == 4 and csat(caller.call_id) == 4
    assert record[-1]["outcome"] == "completed"
    assert "Thank you for your feedback" in [e for e in record if e.get("kind") == "goodbye"][0]["text"]


async def test_the_answer_may_be_pressed_on_the_keypad(server):  # noqa: F811
    caller = await asked_after(server, ["when are you open", "no that's all, bye"])
    caller.writer.write(proto.encode(proto.Dtmf("5")))
    await say(caller, server, lambda session: False, speech=b"")  # the line kept open until the agent hangs up
    await caller.closed(timeout=15)
    assert csat(caller.call_id) == 5


async def test_a_caller_who_hangs_up_on_the_question_ends_normally_without_a_score(server):  # noqa: F811
    caller = await asked_after(server, ["when are you open", "goodbye"])
    caller.writer.write(proto.encode(proto.Hangup()))
    await caller.closed()
    record = read_record(caller.call_id)
    assert [e["csat"] for e in record if e["event"] == "survey"] == [None]
    assert record[-1]["outcome"] == "completed" and csat(caller.call_id) is None


@pytest.mark.parametrize(
    "first, ending",
    [
        ("when are you open", "can I speak to a real person please"),  # transferred
        ("when are you open", "this is useless, I'm so angry. goodbye"),  # upset: transferred too
        ("I had a terrible, horrible, awful week. When are you open?", "thanks, goodbye"),  # upset tone earlier
    ],
)
async def test_never_asked_of_a_caller_being_transferred_or_upset(server, first, ending):  # noqa: F811
    server.engines.asr.texts = [first, ending]
    caller = await Caller.connect(server.port)
    await caller.silence(2.5)
    await say(caller, server)
    await say(caller, server, lambda session: False)  # until the agent ends the call
    await caller.closed(timeout=10)
    record = read_record(caller.call_id)
    assert not [e for e in record if e["event"] == "survey" or e.get("kind") == "survey"]
    assert csat(caller.call_id) is None
