"""`python -m agent bench`: measure the appliance, print the numbers, keep them.

Everything runs on the real stack: calls go through the local Asterisk over
SIP, latencies are measured on the caller's side, model speeds on the models
this box has. Results go to bench-results/latest.json (stable keys, so runs can
be compared) and bench-results/report.md.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from agent.asr_corpus import load_prompts, word_error_rate
from agent.caller.runner import CallerVoice, TemporaryAgent, place_call
from agent.caller.scenario import Scenario, Turn, load_scenario
from agent.config import DEFAULT_CONFIG_DIR, PROJECT_ROOT, load_box_settings
from agent.models import active_models, choose_asr, choose_llm, choose_tts

SCENARIOS = PROJECT_ROOT / "scenarios" / "clinic"


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def summary(values: list[float]) -> dict:
    return {
        "n": len(values),
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "max": max(values) if values else None,
    }


def _process_usage(pid: int) -> tuple[float, int]:
    """(CPU seconds, resident bytes) of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    rss_pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    return cpu, rss_pages * os.sysconf("SC_PAGE_SIZE")


async def bench_calls(agent: TemporaryAgent, calls: int) -> dict:
    box = load_box_settings()
    voice = CallerVoice()
    scenario = load_scenario(SCENARIOS / "bench.yaml")
    barge = load_scenario(SCENARIOS / "barge-in.yaml")
    latencies, from_last_word, parts, failed, barge_ms, rehearsed = [], [], {}, 0, [], 0
    cpu_before, _ = _process_usage(agent.process.pid)
    for _ in range(calls):
        try:
            report = await place_call(scenario, box, voice, agent.address, database=agent.database)
        except Exception as exc:  # a failed call is counted, not fatal
            print(f"  call failed: {exc}", file=sys.stderr)
            failed += 1
            continue
        failed += report["outcome"] != "completed"
        for turn in report["turns"]:
            if turn["latency_ms"] is not None and "goodbye" not in turn["caller"].lower():
                latencies.append(turn["latency_ms"])
                rehearsed += bool(turn.get("rehearsed"))
                if turn.get("from_last_word_ms") is not None:
                    from_last_word.append(turn["from_last_word_ms"])
            for key, value in turn.get("agent_timings_ms", {}).items():
                parts.setdefault(key, []).append(value)
        print(f"  call: {[t['latency_ms'] for t in report['turns']]} ms", file=sys.stderr)
    for _ in range(max(1, calls // 2)):
        report = await place_call(barge, box, voice, agent.address, database=agent.database)
        barge_ms += [t["barge_in_ms"] for t in report["turns"] if t.get("barge_in_ms") is not None]
    cpu_after, rss = _process_usage(agent.process.pid)
    total_calls = calls + max(1, calls // 2)
    return {
        "latency_ms": summary(latencies),
        "latency_from_last_word_ms": summary(from_last_word),
        "rehearsed_share": round(rehearsed / max(1, len(latencies)), 2),
        "latency_parts_ms": {k: statistics.median(v) for k, v in parts.items()},
        "single_call_failed": failed,
        "barge_in_ms": summary(barge_ms),
        "cpu_s_per_call": round((cpu_after - cpu_before) / total_calls, 2),
        "agent_rss_mb": round(rss / 2**20),
    }


CONCURRENCY_LEVELS = (1, 2, 4, 8, 12, 16)
P95_LIMIT_MS = 1500


BENCH_DATA = yaml.safe_load((PROJECT_ROOT / "tests" / "data" / "bench-callers.yaml").read_text())
CALLER_QUESTIONS = tuple(BENCH_DATA["caller_questions"])  # caller i asks three of these in turn


def caller_script(scenario: Scenario, index: int) -> Scenario:
    """The bench scenario with caller index's three questions (then its goodbye)."""
    asks = [CALLER_QUESTIONS[(index * 3 + k) % len(CALLER_QUESTIONS)] for k in range(3)]
    return dataclasses.replace(scenario, turns=[Turn("say", q) for q in asks] + scenario.turns[-1:])


async def bench_concurrency(agent: TemporaryAgent, levels: tuple[int, ...]) -> list[dict]:
    """N callers at once, each asking three questions like a caller; latency per turn, failures."""
    box = load_box_settings()
    voice = CallerVoice()
    scenario = load_scenario(SCENARIOS / "bench.yaml")
    for text in (*CALLER_QUESTIONS, scenario.turns[-1].value):  # synthesized once, before any call starts
        voice.speak(str(text))
    results = []
    for level in levels:

        async def one_call(index: int) -> dict | Exception:
            await asyncio.sleep(index * 0.25)  # callers do not all dial in the same instant
            try:
                return await place_call(
                    caller_script(scenario, index), box, voice, agent.address, database=agent.database
                )
            except Exception as exc:  # counted as failed
                return exc

        reports = await asyncio.gather(*(one_call(i) for i in range(level)))
        latencies, failed, rejected = [], 0, 0
        for report in reports:
            if isinstance(report, Exception):
                failed += 1
                continue
            if report.get("transfer_reason") == "busy":
                rejected += 1  # admission control sent the caller to a human at once
                continue
            failed += report["outcome"] != "completed"
            latencies += [
                t["latency_ms"]
                for t in report["turns"]
                if t["latency_ms"] is not None and "goodbye" not in t["caller"].lower()
            ]
        row = {
            "calls": level,
            "p50_ms": percentile(latencies, 50),
            "p95_ms": percentile(latencies, 95),
            "failed": failed,
            "rejected": rejected,
            "turns": len(latencies),
        }
        print(f"  {level} concurrent: {row}", file=sys.stderr)
        results.append(row)
    return results


def _bench_config(scratch: Path, admission: bool, speech_cache: bool) -> Path:
    """A copy of the default config, with capacity limits that never trigger (admission off)
    and/or no speech cache (every sentence synthesized: the worst case for load)."""
    import shutil

    import yaml

    directory = scratch / f"{DEFAULT_CONFIG_DIR.name}-{int(admission)}{int(speech_cache)}"
    shutil.copytree(DEFAULT_CONFIG_DIR, directory)
    config = yaml.safe_load((directory / "agent.yaml").read_text())
    capacity = config.setdefault("capacity", {})
    if not admission:
        capacity.update(max_calls=1000, max_reply_ms=3_600_000)
    if not speech_cache:
        capacity["speech_cache_mb"] = 0
    (directory / "agent.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return directory


def max_calls_within(levels: list[dict], limit_ms: float = P95_LIMIT_MS) -> int:
    """The highest concurrency whose p95 holds the limit with no call failed or turned away."""
    good = [
        r["calls"]
        for r in levels
        if r["p95_ms"] is not None and r["p95_ms"] <= limit_ms and not r["failed"] and not r.get("rejected")
    ]
    return max(good, default=0)


def plot_concurrency(levels: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    calls = [r["calls"] for r in levels]
    figure, axis = plt.subplots(figsize=(6, 3.6), dpi=120)
    axis.plot(calls, [r["p50_ms"] for r in levels], marker="o", label="p50")
    axis.plot(calls, [r["p95_ms"] for r in levels], marker="o", label="p95")
    axis.axhline(P95_LIMIT_MS, color="grey", linestyle="--", linewidth=1, label="p95 target 1.5 s")
    for r in levels:
        if r["failed"] or r.get("rejected"):
            axis.annotate(f"{r['failed']} failed, {r.get('rejected', 0)} to humans", (r["calls"], r["p95_ms"] or 0),
                          fontsize=7, xytext=(4, 4), textcoords="offset points")  # fmt: skip
    axis.set_title("reply latency vs concurrent calls (admission control off)", fontsize=9)
    axis.set_xlabel("concurrent calls")
    axis.set_ylabel("reply latency, caller side (ms)")
    axis.set_xticks(calls)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def bench_asr(limit: int | None) -> dict:
    from agent.engines import load_transcriber

    choice = choose_asr()
    transcriber = load_transcriber(choice)
    prompts = load_prompts()
    if limit:
        prompts = prompts[:: max(1, len(prompts) // limit)][:limit]
    pairs, audio_s, busy_s = [], 0.0, 0.0
    for prompt in prompts:
        pcm = prompt.pcm()
        started = time.perf_counter()
        stream = transcriber.open_stream()
        stream.accept(pcm)
        text = stream.finish().text
        busy_s += time.perf_counter() - started
        audio_s += len(pcm) / 16000
        pairs.append((prompt.text, text))
    return {
        "engine": choice.engine,
        "model": choice.model,
        "prompts": len(prompts),
        "wer": round(word_error_rate(pairs), 4),
        "rtf": round(busy_s / audio_s, 4),
    }


def bench_tts() -> float:
    from agent.stages.tts_piper import PiperSynthesizer

    tts = PiperSynthesizer(choose_tts().path)
    sentences = BENCH_DATA["tts_sentences"]
    tts.synthesize("warm up")
    busy = audio = 0.0
    for sentence in sentences:
        started = time.perf_counter()
        pcm = tts.synthesize(sentence)
        busy += time.perf_counter() - started
        audio += len(pcm) / 16000
    return round(busy / audio, 4)


def bench_llm(runs: int = 3) -> float:
    from agent.stages.llm_llama import LlamaChatModel

    llm = LlamaChatModel(choose_llm().path, max_tokens=64)
    rates = []
    for _ in range(runs):
        started, tokens = None, 0
        for _piece in llm.stream_reply([{"role": "user", "content": BENCH_DATA["llm_prompt"]}], lambda: False):
            tokens += 1
            if started is None:
                started = time.perf_counter()  # generation speed, not prompt processing
        if started and tokens > 1:
            rates.append((tokens - 1) / (time.perf_counter() - started))
    return round(statistics.median(rates), 1)


def bench_pii() -> dict:
    """Redaction recall/precision on the labelled corpus, and its cost per utterance."""
    from agent.privacy.evaluate import CORPUS, CORPUS_KEEP, HELDOUT, score
    from agent.privacy.redact import Redactor

    result = score()
    redactor = Redactor.from_patterns(CORPUS_KEEP)
    texts = [json.loads(line)["text"] for line in CORPUS.read_text(encoding="utf-8").splitlines() if line.strip()]
    t0 = time.perf_counter()
    for text in texts:
        redactor.redact(text)
    result["ms_per_utterance"] = round((time.perf_counter() - t0) * 1000 / len(texts), 3)
    heldout = score(corpus=HELDOUT)
    result["heldout"] = {k: heldout[k] for k in ("utterances", "labelled_values", "recall", "precision")}
    return result


def bench_store(url: str, calls: int = 20) -> dict:
    """Commit time per call-record event (each event is its own transaction, committed to disk)."""
    from agent.store.db import make_engine
    from agent.store.records import apply_event

    engine = make_engine(url)  # the writer thread's work, measured directly one event at a time
    timings = []
    for index in range(calls):
        call_id = f"bench-{time.time_ns()}-{index}"
        events = [("call_start", {"deployment": "bench", "models": []})]
        for turn in range(1, 6):
            events.append(("caller_turn", {"n": turn, "heard": "when are you open on saturday", "confidence": 0.9}))
            events.append(
                (
                    "bot_turn",
                    {"kind": "answer", "reply_to": turn, "text": "We are open 8 to 12.", "first_audio_ms": 400},
                )
            )
        events.append(("call_end", {"outcome": "completed"}))
        for seq, (event, data) in enumerate(events, 1):
            t0 = time.perf_counter()
            with engine.begin() as conn:
                apply_event(conn, call_id, seq, time.time(), event, data)
            timings.append((time.perf_counter() - t0) * 1000)
    engine.dispose()
    return {"backend": engine.dialect.name, "events": len(timings), **summary(timings)}


def print_pii(pii: dict) -> None:
    print(
        f"PII redaction on {pii['utterances']} utterances ({pii['labelled_values']} labelled values, "
        f"{pii['negatives']} negatives): recall {pii['recall']:.1%}, precision {pii['precision']:.1%}, "
        f"type accuracy {pii['type_accuracy']:.1%}, {pii['ms_per_utterance']} ms per utterance"
    )
    held = pii["heldout"]
    print(
        f"  held-out set ({held['utterances']} utterances, {held['labelled_values']} values): "
        f"recall {held['recall']:.1%}, precision {held['precision']:.1%}"
    )
    for miss in pii["misses"]:
        print(f"  MISS {miss}")
    for alarm in pii["false_alarms"]:
        print(f"  FALSE ALARM {alarm}")


def privacy_store_bench(out_dir: Path) -> list[dict]:
    """Call-record commit times on SQLite (a scratch file) and, if it runs, the project's PostgreSQL."""
    from agent.store.db import postgres_url

    results = []
    with tempfile.TemporaryDirectory() as scratch:
        results.append(bench_store(f"sqlite:///{scratch}/bench.db"))
    if url := postgres_url():
        from sqlalchemy.exc import OperationalError

        try:
            results.append(bench_store(url))
        except OperationalError:
            print("PostgreSQL is set up but not running (bash scripts/postgres.sh start): its commit time is skipped")
    return results


def print_store(results: list[dict]) -> None:
    for r in results:
        print(
            f"call-record commit per event, {r['backend']} (n={r['n']}): p50 {r['p50']:.1f} ms, p95 {r['p95']:.1f} ms"
        )


def write_report(result: dict, out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "latest.json").write_text(json.dumps(result, indent=2))
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(result["started"]))
    (out_dir / f"run-{stamp}.json").write_text(json.dumps(result, indent=2))
    lat, asr = result["latency_ms"], result["asr"]
    lines = [
        f"# Benchmark {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(result['started']))}",
        "",
        "Models: " + ", ".join(f"{m['role']}={m['engine']}/{m['model']}" for m in result["models"]),
        "",
        "Speech cache: "
        + ("on (sentences every caller hears are synthesized once)" if result["speech_cache"] else "off"),
        "",
        "| metric | value |",
        "|---|---|",
        f"| reply latency, caller side, end of the caller's audio (p50 / p95 / max, n={lat['n']}) | "
        f"{lat['p50']} / {lat['p95']} / {lat['max']} ms |",
        *(
            [f"| reply latency from the caller's last sound (above -50 dBFS; p50 / p95 / max) | {w['p50']} / {w['p95']} / {w['max']} ms |"]
            if (w := result.get("latency_from_last_word_ms")) and w["n"]
            else []
        ),
        f"| replies whose first words were synthesized during the endpoint wait | {result.get('rehearsed_share', 0):.0%} |",
        *(f"| agent part: {k} (median) | {v:.0f} ms |" for k, v in result["latency_parts_ms"].items()),
        *(
            f"| {r['calls']} concurrent calls: p50 / p95, failed, sent to humans | "
            f"{r['p50_ms']} / {r['p95_ms']} ms, {r['failed']}, {r.get('rejected', 0)} |"
            for r in result["concurrency"]
        ),
        *(
            [
                f"| {burst['calls']} concurrent calls with admission control on: p50 / p95 of the admitted, "
                f"sent to humans | {burst['p50_ms']} / {burst['p95_ms']} ms, {burst['rejected']} |"
            ]
            if (burst := result.get("admission"))
            else []
        ),
        f"| most concurrent calls with p95 ≤ 1.5 s and none failed or turned away (set `capacity.max_calls` "
        f"to this) | {result['max_calls_at_p95_1500ms']} |",
        f"| barge-in, caller speech onset → bot audio stops (p50 / p95) | {result['barge_in_ms']['p50']} / {result['barge_in_ms']['p95']} ms |",
        f"| ASR {asr['engine']}/{asr['model']} WER on {asr['prompts']} Asterisk prompts | "
        f"{'skipped' if asr['wer'] is None else format(asr['wer'], '.1%')} |",
        f"| ASR real-time factor | {asr['rtf']} |",
        f"| TTS real-time factor | {result['tts_rtf']} |",
        f"| LLM generation | {result['llm_tokens_per_s']} tokens/s |",
        f"| agent start-up (process start → listening) | {result['startup_s']} s |",
        f"| agent CPU per call / resident memory | {result['cpu_s_per_call']} s / {result['agent_rss_mb']} MB |",
        f"| PII redaction recall / precision ({result['pii']['utterances']} utterances) | "
        f"{result['pii']['recall']:.1%} / {result['pii']['precision']:.1%} |",
        *(
            f"| call-record commit per event, {r['backend']} (p50 / p95) | {r['p50']:.1f} / {r['p95']:.1f} ms |"
            for r in result["store"]
        ),
    ]
    lines += ["", "![reply latency vs concurrent calls](concurrency.png)"]
    report = out_dir / "report.md"
    report.write_text("\n".join(lines) + "\n")
    return report


def run_scenario_bench(args) -> int:
    from agent.caller.suite import run_suite

    subprocess.run(["bash", str(PROJECT_ROOT / "scripts" / "asterisk.sh"), "start"], check=True)
    started = time.time()
    result = run_suite(args.scenarios)
    result.update(
        started=started,
        duration_s=round(time.time() - started, 1),
        models=[{"role": c.role, "engine": c.engine, "model": c.model} for c in active_models()],
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "scenarios.json").write_text(json.dumps(result, indent=2, default=str))
    print(f"task success: {result['passed']}/{result['scenarios']} = {result['success_rate']:.0%}")
    print(
        f"doubled phrases: {sum(r.get('doubled_turns', 0) for r in result['reports'])} caller turns heard with a 3-word phrase repeated that was said once"
    )  # noqa: E501
    for failure in result["failures"]:
        print(f"  FAIL {failure['scenario']} ({failure['file']}): {'; '.join(failure['failures'])}")
    print(f"written: {args.out / 'scenarios.json'}")
    return 0 if result["scenarios"] else 2


def run_understanding_bench(args) -> int:
    """Intent accuracy, false escalation and digit strings on the paraphrase sets; the text suite per config."""
    import io

    from agent.brain.chat import run_text_suite
    from agent.brain.evaluate import digit_accuracy_spoken, understanding_report

    result = understanding_report()
    for name, row in result["intents"].items():
        scores = ", ".join(f"{k} {v:.0%}" for k, v in row.items() if k in ("rules", "embedding", "combined"))
        print(f"intents {name} ({row['cases']} paraphrases): {scores}; embedding {row.get('embedding_ms_median')} ms")
    for name, row in result["sentiment"].items():
        print(
            f"upset detector {name}: false escalation {row['false_escalation_rate']:.1%} of {row['neutral']} neutral,"
            f" recall {row['upset_recall']:.0%} of {row['upset']} upset"
        )
    print(f"digit strings as text: {result['digits_text']['exact']:.1%} of {result['digits_text']['cases']}")
    if not args.quick:
        spoken = digit_accuracy_spoken()
        result["digits_spoken"] = spoken
        for label, row in spoken.items():
            print(f"digit strings spoken (Piper 8 kHz → ASR → parser), {label}: {row['exact']:.1%} of {row['cases']}")
    suite = run_text_suite(PROJECT_ROOT / "scenarios", out=io.StringIO())
    result["text_suite"] = {
        "passed": suite["passed"],
        "scenarios": suite["scenarios"],
        "per_config": suite["per_config"],
    }
    print(f"scenarios as text: {suite['passed']}/{suite['scenarios']}; per config {suite['per_config']}")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "understanding.json").write_text(json.dumps(result, indent=2, default=str))
    print(f"written: {args.out / 'understanding.json'}")
    return 0


def run_knowledge_bench(args) -> int:
    """Answerable and unanswerable caller questions per config, for each way of searching (issue 12)."""
    from agent.brain.evaluate import knowledge_accuracy

    result = {}
    for meaning in ("words", "e5", "minilm"):
        rows = knowledge_accuracy(None if meaning == "words" else meaning)
        result[meaning] = rows
        totals = [
            sum(int(row[key].split("/")[i]) for row in rows.values())
            for key in ("answered", "refused", "hedged")
            for i in (0, 1)
        ]
        answered, asked, refused, unanswerable, hedged, _ = totals
        print(
            f"knowledge by {meaning}: answered {answered}/{asked}, refused {refused}/{unanswerable} unanswerable"
            f" (hedged {hedged}), search median {max(r['search_ms_median'] or 0 for r in rows.values())} ms"
        )
        for name, row in rows.items():
            print(
                f"    {name}: answered {row['answered']}, best passage first {row['ranked_first']}, refused {row['refused']}"
            )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "knowledge.json").write_text(json.dumps(result, indent=2, default=str))
    print(f"written: {args.out / 'knowledge.json'}")
    return 0


def run_turn_taking_bench(args) -> int:
    """End-of-turn policies on real speech (agent/audio/endpoint_eval.py): waits, cuts, CPU per decision."""
    from agent.audio.endpoint_eval import default_policies, evaluate, number_set, sentence_set
    from agent.audio.turn import SmartTurn
    from agent.audio.vad import SpeechDetector
    from agent.caller.runner import CallerVoice

    detector = SpeechDetector()
    sets = {"sentences": sentence_set(detector), "numbers": number_set(detector, CallerVoice())}
    from agent.engines import load_transcriber
    from agent.models import choose_asr

    rows, cpu_ms = evaluate(default_policies(), sets, SmartTurn(), load_transcriber(choose_asr()))
    print("| policy | median wait | p95 wait | sentences cut early | of which two turns in the session "
          "(reply heard at most) | numbers cut between groups (two turns) |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for row in rows:
        heard = f" (≤ {row['sentences_reply_heard_ms']} ms)" if row["sentences_reply_heard_ms"] else ""
        print(f"| {row['policy']} | {row['median_wait_ms']} ms | {row['p95_wait_ms']} ms | "
              f"{row['sentences_cut']}/{row['sentences_total']} | {row['sentences_split']}{heard} | "
              f"{row['numbers_cut']}/{row['numbers_total']} ({row['numbers_split']}) |")  # fmt: skip
    print(f"Smart Turn CPU per decision (median, 1 thread): {cpu_ms:.0f} ms")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "turn-taking.json").write_text(json.dumps({"policies": rows, "smart_turn_cpu_ms": cpu_ms}, indent=2))
    print(f"written: {args.out / 'turn-taking.json'}")
    return 0


def run_barge_in_bench(args) -> int:
    """Barge-in detectors on phone-line audio (agent/audio/bargein_eval.py): onset time and false stops."""
    from agent.asr_corpus import load_prompts
    from agent.audio.bargein_eval import evaluate, false_alarm_clips, onset_clips
    from agent.audio.silero import SileroDetector
    from agent.audio.vad import SpeechDetector
    from agent.caller.runner import CallerVoice
    from agent.language.en import SENTENCES

    voice = CallerVoice()
    bot = [voice.speak(text) for text in list(SENTENCES.values()) if "{" not in text][:10]
    prompts = [p.pcm() for p in load_prompts()[:80]]
    from agent.audio.bargein import LineSpeechDetector
    from agent.audio.echo import CleanLineDetector

    silero = SileroDetector()
    detectors = {
        "WebRTC VAD (today)": SpeechDetector(),
        "Silero VAD": silero,
        "WebRTC + echo gate + noise floor": LineSpeechDetector(),
        "Silero + echo gate + noise floor": LineSpeechDetector(SileroDetector()),
        "WebRTC after AEC+NS (WebRTC APM)": CleanLineDetector(SpeechDetector()),
        "Silero after AEC+NS (WebRTC APM)": CleanLineDetector(SileroDetector()),
        "WebRTC after AEC+NS, or the raw line above any echo (the session's)": CleanLineDetector(
            SpeechDetector(), raw_detector=SpeechDetector()
        ),
    }
    rows = evaluate(detectors, [0.04, 0.06, 0.12], onset_clips(prompts, bot), false_alarm_clips(bot, voice))
    columns = [k for k in rows[0] if k not in ("detector", "start_speech_ms")]
    print("| detector | speech needed | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 2) + "|")
    for row in rows:
        values = " | ".join(str(row[k]) for k in columns)
        print(f"| {row['detector']} | {row['start_speech_ms']} ms | {values} |")
    per_window_ms = silero.cpu_s / max(silero.windows, 1) * 1000
    print(f"Silero CPU: {per_window_ms:.3f} ms per 32 ms window ({silero.windows} windows)")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "barge-in.json").write_text(json.dumps(rows, indent=2))
    print(f"written: {args.out / 'barge-in.json'}")
    return 0


def _asr_model_pass(name: str, limit: int | None, digits: int | None) -> dict:
    """One Whisper model in a fresh process: WER and ms per utterance on the Asterisk prompts as the
    agent decodes them (utterance-sized window, 2 threads, no hint), RAM, then the spoken digit strings."""
    from agent.brain.evaluate import digit_accuracy_spoken
    from agent.engines import load_transcriber
    from agent.models import ASR_MODEL_ENV, whisper_choice

    load_before = os.getloadavg()[0]
    import faster_whisper  # noqa: F401  (its import is not the model's RAM)

    rss_before = _process_usage(os.getpid())[1]
    transcriber = load_transcriber(whisper_choice(name))
    prompts = load_prompts()
    if limit:
        prompts = prompts[:: max(1, len(prompts) // limit)][:limit]
    pairs, ms = [], []
    for prompt in prompts:
        pcm = prompt.pcm()
        started = time.perf_counter()
        stream = transcriber.open_stream()
        stream.accept(pcm)
        pairs.append((prompt.text, stream.finish().text))
        ms.append((time.perf_counter() - started) * 1000)
    rss_after = _process_usage(os.getpid())[1]
    row = {
        "model": name,
        "prompts": len(prompts),
        "wer": round(word_error_rate(pairs), 4),
        "ms_median": round(statistics.median(ms), 1),
        "ms_p95": round(percentile(ms, 95), 1),
        "rss_mb": round(rss_after / 2**20),
        "model_rss_mb": round((rss_after - rss_before) / 2**20),
        "load_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],  # at start and end of the pass
    }
    if digits != 0:
        os.environ[ASR_MODEL_ENV] = name  # digit_accuracy_spoken loads the selected model
        spoken = digit_accuracy_spoken(digits)
        row["digits"] = {label: {k: v for k, v in r.items() if k != "misses"} for label, r in spoken.items()}
        row["digit_misses"] = spoken["number_hint"]["misses"][:10]
    return row


def _asr_models_summary(passes: dict[str, list[dict]]) -> dict:
    """Per model: WER and digits of the first pass (decoding is deterministic), medians of the passes' timings."""
    from agent.models import whisper_choice

    models = {}
    for name, rows in passes.items():
        first = rows[0]
        models[name] = {
            "wer": first["wer"],
            "prompts": first["prompts"],
            "digits_exact": {label: r["exact"] for label, r in first.get("digits", {}).items()},
            "digit_cases": next(iter(first.get("digits", {}).values()), {}).get("cases"),
            "ms_median": statistics.median(r["ms_median"] for r in rows),  # median of the passes' medians
            "ms_p95": statistics.median(r["ms_p95"] for r in rows),
            "model_rss_mb": statistics.median(r["model_rss_mb"] for r in rows),
            "disk_mb": round(sum(f.stat().st_size for f in whisper_choice(name).path.iterdir()) / 1e6),
            "passes": rows,
        }
    return models


def _asr_models_concurrency(names: list[str], args) -> dict[str, dict]:
    """p50/p95 reply latency with N callers at once, the agent running each model in turn."""
    from agent.models import ASR_MODEL_ENV

    out: dict[str, dict] = {}
    scratch_dir = tempfile.TemporaryDirectory()
    subprocess.run(["bash", str(PROJECT_ROOT / "scripts" / "asterisk.sh"), "start"], check=True)
    saved = os.environ.get(ASR_MODEL_ENV)
    try:
        for name in names:
            os.environ[ASR_MODEL_ENV] = name  # the temporary agent inherits it
            config = _bench_config(Path(scratch_dir.name) / name, False, not args.no_speech_cache)
            agent = TemporaryAgent(config)
            try:
                agent.start(timeout=300)  # model checks take long on a loaded box
                load = os.getloadavg()[0]
                print(f"{name}: concurrent calls {args.levels} ...", file=sys.stderr)
                rows = asyncio.run(bench_concurrency(agent, args.levels))
                rss = _process_usage(agent.process.pid)[1]
                out[name] = {
                    "concurrency": [{**r, "load_1min": round(load, 2)} for r in rows],
                    "agent_rss_mb": round(rss / 2**20),
                }
            except Exception as exc:  # recorded, the other figures are kept
                print(f"{name}: concurrent calls failed: {exc}", file=sys.stderr)
                out[name] = {"concurrency_error": str(exc)}
            finally:
                agent.stop()
    finally:
        if saved is None:
            os.environ.pop(ASR_MODEL_ENV, None)
        else:
            os.environ[ASR_MODEL_ENV] = saved
        scratch_dir.cleanup()
    return out


def run_asr_models_bench(args) -> int:
    """bench --asr-models: each installed Whisper model against the others (issue 15 part 4).
    Each pass runs in its own process (clean RAM figure); passes alternate between models so load
    from other work on the box falls on all of them; --levels adds concurrent calls per model.
    --asr-runs 0 keeps the passes of the last bench-results/asr-models.json and adds the calls."""
    import multiprocessing

    from agent.models import WHISPER_MODELS, whisper_choice

    wanted = list(WHISPER_MODELS) if args.asr_models == "all" else args.asr_models.split(",")
    names = [n for n in wanted if n in WHISPER_MODELS and (whisper_choice(n).path or Path("/-")).exists()]
    for missing in sorted(set(wanted) - set(names)):
        print(f"skip {missing}: not installed or unknown (python -m agent models; known: {', '.join(WHISPER_MODELS)})")
    limit, digits = (100, 40) if args.quick else (None, None)
    path = args.out / "asr-models.json"
    if args.asr_runs == 0 and path.is_file():
        previous = json.loads(path.read_text())["models"]
        passes = {n: previous[n]["passes"] for n in names if n in previous}
    else:
        passes = {n: [] for n in names}
    context = multiprocessing.get_context("spawn")
    for run in range(args.asr_runs):
        for name in names:
            print(f"{name}: pass {run + 1}/{args.asr_runs} ...", file=sys.stderr)
            with context.Pool(1) as pool:
                row = pool.apply(_asr_model_pass, (name, limit, digits if run == 0 else 0))
            print(f"  {row}", file=sys.stderr)
            passes[name].append(row)
    models = _asr_models_summary(passes)
    result = {"started": time.time(), "runs": len(next(iter(passes.values()), [])), "quick": bool(args.quick),
              "speech_cache": not args.no_speech_cache, "models": models}  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, default=str))  # kept even if the calls below fail
    if args.levels:
        for name, extra in _asr_models_concurrency(list(models), args).items():
            models[name].update(extra)
        path.write_text(json.dumps(result, indent=2, default=str))
    print("| model | WER (Asterisk prompts) | digits exact, no hint / number hint | ms per utterance p50 / p95 | "
          "model RAM | on disk | load (1 min) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for name, m in models.items():
        digit_cells = " / ".join(f"{v:.1%}" for v in m["digits_exact"].values()) or "-"
        loads = sorted(x for r in m["passes"] for x in r["load_1min"])
        print(f"| {name} | {m['wer']:.1%} ({m['prompts']}) | {digit_cells} ({m['digit_cases']}) | "
              f"{m['ms_median']:.0f} / {m['ms_p95']:.0f} ms | {m['model_rss_mb']:.0f} MB | {m['disk_mb']} MB | "
              f"{loads[0]:.1f}–{loads[-1]:.1f} |")  # fmt: skip
    for name, m in models.items():
        for row in m.get("concurrency", []):
            print(f"{name}, {row['calls']} concurrent calls: p50 {row['p50_ms']} / p95 {row['p95_ms']} ms, "
                  f"failed {row['failed']}, agent RSS {m['agent_rss_mb']} MB, load {row['load_1min']}")  # fmt: skip
        if "concurrency_error" in m:
            print(f"{name}, concurrent calls: {m['concurrency_error']}")
    print(f"written: {path}")
    return 0 if names else 2


def run_bench(args) -> int:
    if getattr(args, "asr_models", None):
        return run_asr_models_bench(args)
    if args.barge_in:
        return run_barge_in_bench(args)
    if args.turn_taking:
        return run_turn_taking_bench(args)
    if args.scenarios:
        return run_scenario_bench(args)
    if args.understanding:
        return run_understanding_bench(args)
    if args.knowledge:
        return run_knowledge_bench(args)
    if args.privacy:
        result = {"pii": bench_pii(), "store": privacy_store_bench(args.out)}
        print_pii(result["pii"])
        print_store(result["store"])
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "privacy.json").write_text(json.dumps(result, indent=2))
        print(f"written: {args.out / 'privacy.json'}")
        return 0
    started = time.time()
    subprocess.run(["bash", str(PROJECT_ROOT / "scripts" / "asterisk.sh"), "start"], check=True)
    calls = args.calls or (1 if args.quick else 5)
    cache = not args.no_speech_cache
    scratch_dir = tempfile.TemporaryDirectory()
    scratch = Path(scratch_dir.name)
    agent = TemporaryAgent(DEFAULT_CONFIG_DIR if cache else _bench_config(scratch, True, cache))
    t0 = time.perf_counter()
    agent.start()
    startup_s = round(time.perf_counter() - t0, 2)
    try:
        print(f"calls through Asterisk ({calls}) ...", file=sys.stderr)
        result = asyncio.run(bench_calls(agent, calls))
        levels = args.levels or ((2,) if args.quick else CONCURRENCY_LEVELS)
        # capacity is measured with admission control off; then shown with it on (the default config)
        unlimited = TemporaryAgent(_bench_config(scratch, False, cache))
        unlimited.start()
        try:
            print(f"concurrent calls {levels}, admission control off ...", file=sys.stderr)
            result["concurrency"] = asyncio.run(bench_concurrency(unlimited, levels))
        finally:
            unlimited.stop()
        result["max_calls_at_p95_1500ms"] = max_calls_within(result["concurrency"])
        result["admission"] = None
        if not args.quick:  # --quick stays under three minutes
            burst = max(levels)
            print(f"{burst} concurrent calls, admission control on (default config) ...", file=sys.stderr)
            result["admission"] = asyncio.run(bench_concurrency(agent, (burst,)))[0]
    finally:
        agent.stop()
        scratch_dir.cleanup()
    result["speech_cache"] = cache
    if args.no_asr:
        result["asr"] = {"engine": "-", "model": "-", "prompts": 0, "wer": None, "rtf": None, "skipped": True}
    else:
        print("ASR on Asterisk prompts ...", file=sys.stderr)
        result["asr"] = bench_asr(50 if args.quick else None)
    print("TTS and LLM speed ...", file=sys.stderr)
    result["tts_rtf"] = bench_tts()
    result["llm_tokens_per_s"] = bench_llm()
    result["pii"] = bench_pii()
    print_pii(result["pii"])
    result["store"] = privacy_store_bench(args.out)
    print_store(result["store"])
    result.update(
        started=started,
        startup_s=startup_s,
        quick=bool(args.quick),
        models=[{"role": c.role, "engine": c.engine, "model": c.model} for c in active_models()],
        duration_s=round(time.time() - started, 1),
    )
    args.out.mkdir(parents=True, exist_ok=True)
    plot_concurrency(result["concurrency"], args.out / "concurrency.png")
    report = write_report(result, args.out)
    print(report.read_text())
    print(f"written: {args.out / 'latest.json'}, {report}")
    return 0
