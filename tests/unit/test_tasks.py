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
    (directory / "knowledge" / "library.md").write_text("# Opening hours\nWe are open Monday to Saturday, 9 am to 8 pm.\n")
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
    assert replies[1].tools[0].tool == "renew_loan" and replies[1].tools[0].arguments == {"card": "4471", "title": "Middlemarch"}
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
    run, replies = talk(library, "do I owe anything?", "#4471", "sorry, say that again", "what can you do?", "are you a robot?")
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
