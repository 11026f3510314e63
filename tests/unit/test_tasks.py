"""The task engine on a business it was not written for: a library, configured only in files.

A real webhook backend on loopback (agent/examples/backend.py serving the test's backend.yaml)
and a real SQLite database; no business word in the engine, so every sentence here comes from
the config written below.
"""

import datetime as dt
import textwrap

import pytest

from agent.brain.dialogue import Brain
from agent.config import load_config
from agent.examples import backend
from agent.store.db import make_engine

PORT = 18461
AGENT_YAML = f"""
business_name: Elm Street Library
greeting: Hello, this is the virtual assistant of Elm Street Library.
persona: You are the library's virtual assistant.
transfer_targets: {{humans: {{description: Front desk}}}}
tools:
  allowed_hosts: [127.0.0.1]
  webhooks:
    - name: renew_loan
      description: Renew a loan
      url: http://127.0.0.1:{PORT}/renew
      effect: change
      parameters:
        type: object
        properties:
          card: {{type: string, pattern: "^[0-9]{{4}}$"}}
          title: {{type: string}}
        required: [card, title]
    - name: fines
      description: Fines on a card
      url: http://127.0.0.1:{PORT}/fines
      effect: lookup
      parameters: {{type: object, properties: {{card: {{type: string}}}}, required: [card]}}
tasks:
  - name: renew_loan
    description: renewing a book
    triggers:
      phrases: [renew, extend my loan]
      examples: ["can I keep my book a bit longer"]
    slots:
      - {{name: card, type: digits, length: 4, take: last, keypad: true, identifier: true,
         prompt: "What are the last four digits of your library card?"}}
      - name: title
        type: choice
        choices: {{Middlemarch: [middle march], Dune: [the dune book]}}
        prompt: "Which book would you like to renew?"
    confirm: "Renew {{title}} on card {{card:digits}}?"
    action: {{tool: renew_loan}}
    replies:
      done: "Renewed. {{title}} is now due {{due}}."
      not_found: "I couldn't find that loan."
      failed: "The loans system isn't answering."
  - name: fines
    description: checking your fines
    triggers: {{phrases: [fines, "do I owe"], examples: ["how much money do I owe you"]}}
    slots:
      - {{name: card, type: digits, length: 4, take: last, keypad: true, identifier: true,
         prompt: "What are the last four digits of your card?"}}
    action: {{tool: fines}}
    replies: {{done: "You owe {{amount}} dollars.", not_found: "I couldn't find card {{card:digits}}."}}
messages:
  task_cancelled: "Alright, I've dropped that."
"""
BACKEND_YAML = f"""
port: {PORT}
endpoints:
  - path: /renew
    kind: lookup
    match: [card, title]
    records:
      - {{card: "4471", title: Middlemarch, due: "the 3rd of January"}}
  - path: /fines
    kind: lookup
    match: [card]
    records:
      - {{card: "4471", amount: "2.50"}}
"""


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    directory = tmp_path_factory.mktemp("library")
    (directory / "agent.yaml").write_text(textwrap.dedent(AGENT_YAML))
    (directory / "backend.yaml").write_text(textwrap.dedent(BACKEND_YAML))
    (directory / "knowledge").mkdir()
    (directory / "knowledge" / "library.md").write_text(
        "# Opening hours\nWe are open Monday to Saturday, 9 am to 8 pm.\n"
    )
    server = backend.start(directory)
    yield Brain(load_config(directory), make_engine(f"sqlite:///{directory / 'agent.db'}"))
    server.shutdown()
    server.server_close()


def talk(brain, *lines, caller="+15550100"):
    dialogue = brain.dialogue(caller, lambda: dt.datetime(2026, 11, 23, 9, 0))
    replies = []

    async def run():
        for line in lines:
            reply = await (dialogue.on_digits(line[1:]) if line.startswith("#") else dialogue.on_text(line))
            replies.append(reply)
        return dialogue

    return run, replies


def said(reply):
    return " ".join(reply.say + ([reply.answer.extractive] if reply.answer else []) + reply.then)


async def test_slots_in_one_breath_read_back_then_act(library):
    run, replies = talk(library, "I'd like to renew Middlemarch, my card ends 4471", "yes")
    await run()
    assert said(replies[0]) == "Renew Middlemarch on card 4 4 7 1?" and not replies[0].tools
    assert replies[1].tools[0].tool == "renew_loan" and replies[1].tools[0].arguments == {
        "card": "4471",
        "title": "Middlemarch",
    }
    assert said(replies[1]) == "Renewed. Middlemarch is now due the 3rd of January."


async def test_missing_arguments_are_asked_for_one_at_a_time(library):
    run, replies = talk(library, "can I keep my book a bit longer?", "four four seven one", "middle march", "yes")
    await run()
    assert "last four digits" in said(replies[0]) and replies[0].expect_digits
    assert said(replies[1]) == "Which book would you like to renew?"
    assert said(replies[2]) == "Renew Middlemarch on card 4 4 7 1?"
    assert replies[3].tools[0].result["status"] == "done"


async def test_a_long_number_gives_its_last_digits_and_a_correction_replaces_them(library):
    run, replies = talk(library, "renew Dune please", "the card is 6011 0000 0000 4471", "no, I said 4472", "forget it")
    await run()
    assert "4 4 7 1" in said(replies[1])  # the LAST four of the long number
    assert "4 4 7 2" in said(replies[2])
    assert said(replies[3]) == "Alright, I've dropped that."  # the config's own sentence


async def test_question_inside_a_task_then_back_to_it(library):
    run, replies = talk(library, "I want to renew a book", "wait, when are you open on Saturday?")
    await run()
    reply = replies[1]
    assert "Monday to Saturday" in reply.answer.extractive
    assert reply.then[-1] == "What are the last four digits of your library card?"


async def test_keypad_repeat_capabilities_and_identity(library):
    run, replies = talk(
        library, "do I owe anything?", "#4471", "sorry, say that again", "what can you do?", "are you a robot?"
    )
    await run()
    assert said(replies[1]) == "You owe 2.50 dollars."
    assert said(replies[2]) == said(replies[1])
    assert "renewing a book" in said(replies[3]) and "checking your fines" in said(replies[3])
    assert "virtual assistant of Elm Street Library" in said(replies[4])


async def test_unknown_reference_is_asked_again_then_a_human(library):
    run, replies = talk(library, "any fines on card 9999?", "9998")
    await run()
    assert "couldn't find card 9 9 9 9" in said(replies[0]) and replies[0].expect_digits
    assert replies[-1].end == "transfer" and "couldn't find card 9 9 9 8" in said(replies[-1])  # tries: 2


async def test_goodbye_while_a_yes_no_question_is_pending_is_not_a_yes(library):
    run, replies = talk(library, "renew Dune on card 4471", "okay, thanks, goodbye")
    await run()
    assert replies[1].end == "hangup" and not replies[1].tools


async def test_the_backend_down_is_a_spoken_failure(library, tmp_path):
    text = textwrap.dedent(AGENT_YAML).replace(str(PORT), "1")  # nothing listens on port 1
    (tmp_path / "agent.yaml").write_text(text)
    brain = Brain(load_config(tmp_path), make_engine(f"sqlite:///{tmp_path / 'agent.db'}"))
    run, replies = talk(brain, "renew Middlemarch on card 4471", "yes")
    await run()
    assert said(replies[1]).startswith("The loans system isn't answering.") and "colleague" in said(replies[1])
    assert replies[1].tools[0].result["status"] == "failed"


# ---- issue 12, second pass: fixes found by two deployments written from the README alone ----------------
# (configs/insurer and configs/vet; their scripted calls are in scenarios/insurer, scenarios/vet)

from pathlib import Path  # noqa: E402

from agent.brain.dates import parse_day  # noqa: E402
from agent.brain.entities import narrative, parse_slot  # noqa: E402
from agent.brain.knowledge import KnowledgeBase  # noqa: E402
from agent.brain.tools.webhooks import json_arguments  # noqa: E402
from agent.config import PROJECT_ROOT, Slot  # noqa: E402
from agent.examples.servers import example_backends  # noqa: E402

MONDAY = dt.datetime(2026, 11, 23, 9, 0)


@pytest.fixture(scope="module")
def insurer():
    return Brain(load_config(PROJECT_ROOT / "configs" / "insurer"), make_engine("sqlite://"))


def test_past_dates_yesterday_last_saturday_ago_and_a_past_slot():
    assert parse_day("it happened yesterday", MONDAY) == dt.date(2026, 11, 22)
    assert parse_day("it was last Saturday", MONDAY) == dt.date(2026, 11, 21)
    assert parse_day("two days ago", MONDAY) == dt.date(2026, 11, 21)
    assert parse_day("on Friday", MONDAY) == dt.date(2026, 11, 27)  # a booking: ahead
    assert parse_day("on Friday", MONDAY, past=True) == dt.date(2026, 11, 20)  # something that happened
    assert parse_day("the 28th", MONDAY, past=True) == dt.date(2026, 10, 28)


def test_a_negated_value_is_not_the_value():
    day = Slot(name="day", type="date", prompt="When?", past=True)
    assert parse_slot(day, "No, sorry, it was Tuesday, not Monday.", MONDAY).value == dt.date(2026, 11, 17)


def test_contractions_are_not_letters_of_a_reference_and_names_are_names():
    policy = Slot(name="policy", type="id", prompt="Policy?")
    assert parse_slot(policy, "It's H M 3 3 9 0 2 1.", MONDAY).value == "HM339021"
    pet = Slot(name="pet", type="name", prompt="Name?")
    assert parse_slot(pet, "Yes, that's fine.", MONDAY).value is None
    assert parse_slot(pet, "She's called Luna.", MONDAY).value == "Luna"
    assert parse_slot(pet, "Her name is Daisy.", MONDAY).value == "Daisy"
    assert parse_slot(pet, "Hi, could I book Bella in for her booster on Thursday at 10?", MONDAY).value == "Bella"


def test_a_yes_inside_a_longer_sentence_answers_a_yes_no_slot_about_it():
    texts = Slot(name="texts", type="yes_no", prompt="Would you like a text message when it's fixed?")
    said = "Hi, the power's gone off, zip code 94112, and yes, text me when it's back."
    assert parse_slot(texts, said, MONDAY).value is True
    assert parse_slot(texts, "the power's gone off, and yes, it's the whole street", MONDAY).value is None


def test_free_text_only_from_what_the_request_does_not_say():
    from agent.brain.intents import content_stems

    request = set(content_stems("make a claim, put a claim in, claim on my home insurance policy"))
    assert narrative("Hello, I need to put a claim in.", request) is None
    told = narrative("I want to claim on my home insurance. Someone broke into the shed and took both bikes.", request)
    assert told == "Someone broke into the shed and took both bikes"
    # "let you know about" is the request, "I'd" tells nothing: no account of a problem yet
    street = set(content_stems("report a problem with the road, a pothole or a street light"))
    assert narrative("Hello, I'd like to let you know about a problem with the road near me.", street) is None


def test_webhook_arguments_follow_the_schema():
    schema = {"properties": {"day": {"type": "string"}, "zip": {"type": "string"}, "reading": {"type": "number"}}}
    assert json_arguments({"day": dt.date(2026, 11, 22), "zip": 94110, "reading": "4521"}, schema) == {
        "day": "2026-11-22", "zip": "94110", "reading": 4521,
    }  # fmt: skip


async def test_emergency_in_the_callers_own_words_but_not_a_question_about_one(insurer):
    for words in (
        "There's water pouring through my kitchen ceiling right now.",
        "My husband's bleeding from his head.",
        "A big tree has just come down on our garage roof.",
    ):
        reply = await insurer.dialogue("+15550100", lambda: MONDAY).on_text(words)
        assert reply.end == "transfer" and reply.target == "emergency", words
    for words in ("Am I covered if water pours through the ceiling?", "I had a crash last month and want to claim."):
        reply = await insurer.dialogue("+15550100", lambda: MONDAY).on_text(words)
        assert reply.end is None, words


async def test_the_exact_reference_decides_and_a_conditional_question_is_a_question(insurer):
    dialogue = insurer.dialogue("+15550100", lambda: MONDAY)
    with example_backends([PROJECT_ROOT / "configs" / "insurer"]):
        reply = await dialogue.on_text(
            "I'm ringing to see where my claim's up to, the reference is three one double oh four five two."
        )
    assert reply.intent == "claim_status" and "approved" in said(reply)  # 7 digits fit it exactly, not the policy id
    assert insurer.route("If I claim for the car, how much do I have to pay out of my own pocket?") == "question"


async def test_two_tasks_that_fit_equally_are_offered_and_the_answer_picks(insurer):
    dialogue = insurer.dialogue("+15550100", lambda: MONDAY)
    first = await dialogue.on_text("Hello, I'm calling about a claim.")
    assert "make a new claim" in said(first) and "check how an existing claim is going" in said(first)
    second = await dialogue.on_text("It's one I sent in last month, I want to know what's happening with it.")
    assert second.intent == "claim_status" and "claim reference" in said(second)


async def test_a_claim_in_one_breath_reaches_the_webhook_with_an_iso_date(insurer):
    with example_backends([PROJECT_ROOT / "configs" / "insurer"]):
        dialogue = insurer.dialogue("+15550100", lambda: MONDAY)
        first = await dialogue.on_text(
            "I want to claim on my home insurance, policy H M 2 0 4 8 1 7. Someone broke into the shed yesterday and took our bikes."
        )
        assert "HM204817" in said(first) and "Sunday the 22nd" in said(first) and "broke into the shed" in said(first)
        done = await dialogue.on_text("Yes, that's right.")
    call = done.tools[0]
    assert call.arguments["incident_date"] == "2026-11-22" and call.result["status"] == "done"
    assert "claim reference" in said(done)


def test_knowledge_ranks_by_words_and_meaning_together():
    knowledge = KnowledgeBase.from_directory(Path(PROJECT_ROOT / "configs" / "insurer" / "knowledge"))
    hits = knowledge.answers("If I claim for the car, how much do I have to pay out of my own pocket?")
    assert hits[0].passage.title == "Excess"


def test_a_date_of_birth_with_its_year():
    born = Slot(name="born", type="date", prompt="Your date of birth?", past=True)
    for words in ("Ninth of March 1984.", "the ninth of March, nineteen eighty-four", "March 9th, 1984"):
        assert parse_slot(born, words, MONDAY).value == dt.date(1984, 3, 9), words
    assert parse_slot(born, "fifth of June two thousand and two", MONDAY).value == dt.date(2002, 6, 5)
    assert parse_slot(born, "1st of January nineteen oh five", MONDAY).value == dt.date(1905, 1, 1)


async def test_policy_details_only_after_the_caller_is_verified(insurer):
    """A caller ID proves nothing: the verifying task runs first, then what was asked for."""
    with example_backends([PROJECT_ROOT / "configs" / "insurer"]):
        dialogue = insurer.dialogue("+15550100", lambda: MONDAY)
        first = await dialogue.on_text("Could you tell me my renewal date please?")
        assert said(first).startswith("Before I can help with that, I need to check it's you.")
        assert "renews" not in said(first) and "policy number" in said(first)
        await dialogue.on_text("H M two oh four eight one seven.")
        done = await dialogue.on_text("Ninth of March 1984.")
        assert said(done) == "Thank you, Dana. Your policy HM204817 renews on the 1st of March, and your excess is 250 dollars."
        assert done.tools[0].arguments == {"policy_number": "HM204817", "date_of_birth": "1984-03-09"}
        again = await dialogue.on_text("And what's my excess?")  # verified once per call
        assert "before i can help" not in said(again).lower()


async def test_a_caller_who_cannot_be_verified_hears_nothing_about_the_policy(insurer):
    with example_backends([PROJECT_ROOT / "configs" / "insurer"]):
        dialogue = insurer.dialogue("+15550100", lambda: MONDAY)
        await dialogue.on_text("I need to know my excess, please.")
        await dialogue.on_text("H M two oh four eight one seven.")
        replies = [await dialogue.on_text("The second of May 1979.") for _ in range(3)]
    heard = " ".join(said(reply) for reply in replies)
    assert "250" not in heard and "renews" not in heard
    assert "don't match our records" in heard and "connect you to a colleague" in heard


def test_verified_only_needs_a_verifying_task(tmp_path):
    config = (PROJECT_ROOT / "configs" / "insurer" / "agent.yaml").read_text().replace("verifies: true", "verifies: false")
    (tmp_path / "agent.yaml").write_text(config)
    with pytest.raises(Exception, match="verified_only needs a task marked `verifies: true`"):
        load_config(tmp_path)


@pytest.fixture(scope="module")
def plumber():
    return Brain(load_config(PROJECT_ROOT / "configs" / "plumber"), make_engine("sqlite://"))


async def test_an_emergency_the_documents_describe_but_not_a_caller_stuck_at_work(plumber):
    gas = await plumber.dialogue("+15550100", lambda: MONDAY).on_text(
        "There's a really strong gassy pong in the hallway by the meter, and it's been getting worse all morning."
    )
    assert gas.end == "transfer" and gas.reason == "emergency"  # ~ the documents' "if you smell gas, …"
    late = await plumber.dialogue("+15550100", lambda: MONDAY).on_text(
        "You've got someone coming on Thursday but I'm stuck at work now. Could we make it Friday afternoon?"
    )
    assert late.reason != "emergency"


def test_emergencies_caught_and_calm_callers_left_alone():
    """Every config's emergency scenarios against 1,335 calm caller lines (agent.brain.evaluate): measured
    12 of 15 caught, 3 calm lines sent to the emergency line by the admins' own phrases (docs/benchmarks.md)."""
    from agent.brain.evaluate import emergency_detection

    rows = emergency_detection().values()
    caught = sum(int(row["caught"].split("/")[0]) for row in rows)
    false = sum(int(row["false"].split("/")[0]) for row in rows)
    assert caught >= 12 and false <= 3
