"""How should the agent decide that the caller has finished? Fixed silence against Smart Turn.

Two sets of real telephone-band speech (`python -m agent bench --turn-taking`):
- sentences: the one-sentence Asterisk prompts (3+ words). Any end of turn before the last word
  is a sentence cut early: the agent would answer half a question.
- numbers: digit strings read in groups with 0.4-0.8 s pauses between them, as callers read a card
  or account number (Piper's voice, one synthesis per group). An end of turn at a group pause is
  a number cut between groups.

For each policy: the median wait after the caller's last word (what every reply pays), sentences
cut early, numbers cut, and the CPU time of one model decision. The speech/silence decision per
20 ms frame is the agent's own VAD, so the figures hold for the live path.
"""

from __future__ import annotations

import random
import re
import statistics
from dataclasses import dataclass

from agent.audio.vad import SpeechDetector
from agent.call.turn_end import ENDS_WITH_DIGIT, sounds_finished, sounds_unfinished

FRAME_BYTES = 320  # 20 ms at 8 kHz, 16-bit
FRAME_S = 0.02
TAIL_S = 1.5  # silence after the caller's last word


@dataclass(frozen=True)
class Pause:
    start: int  # first silent frame
    frames: int
    final: bool  # the silence after the last word


@dataclass(frozen=True)
class Utterance:
    pcm: bytes
    pauses: list[Pause]


def analyse(pcm: bytes, detector: SpeechDetector) -> Utterance:
    pcm = pcm + b"\0" * int(TAIL_S * 8000 * 2)
    flags = [detector.is_speech(pcm[i : i + FRAME_BYTES]) for i in range(0, len(pcm) - FRAME_BYTES + 1, FRAME_BYTES)]
    pauses, run_start, spoken = [], None, False
    for index, speech in enumerate(flags):
        if speech:
            if run_start is not None and spoken:
                pauses.append(Pause(run_start, index - run_start, False))
            run_start, spoken = None, True
        elif run_start is None:
            run_start = index
    if spoken and run_start is not None:
        pauses.append(Pause(run_start, len(flags) - run_start, True))
    return Utterance(pcm, pauses)


@dataclass(frozen=True)
class Policy:
    """End the turn after `silence_s`; with a model, after `silence_s` only if it says the turn is
    complete (probability >= threshold), else after `max_silence_s`."""

    silence_s: float
    model: bool = False
    max_silence_s: float = 0.0
    threshold: float = 0.5
    hold_s: float = 0.0  # a transcript that sounds unfinished waits this much longer (the session's rule)
    hold_on: str = "digit"  # digit: only a number at the end | unfinished: agent.call.turn_end.sounds_unfinished
    words: bool = False  # at silence_s the words so far decide: a finished sentence ends it, else max_silence_s

    @property
    def name(self) -> str:
        if self.hold_s:
            after = "a digit" if self.hold_on == "digit" else "a digit or an unfinished phrase"
            return f"silence {self.silence_s:.2f} s, +{self.hold_s:.2f} s after {after}"
        if self.words:
            also = f" and Smart Turn p>={self.threshold}" if self.model else ""
            return (
                f"silence {self.silence_s:.2f} s when the words end a sentence{also}, else {self.max_silence_s:.2f} s"
            )
        if not self.model:
            return f"silence {self.silence_s:.2f} s"
        return f"Smart Turn at {self.silence_s:.2f} s, else {self.max_silence_s:.2f} s (p>={self.threshold})"


def _decide(policy: Policy, utterance: Utterance, probability, transcript) -> tuple[bool, float | None, int]:
    """(cut before the end, wait after the last word in seconds, for a cut: frames of the pause left
    after the turn ended, in which the reply already sounds)."""
    first = round(policy.silence_s / FRAME_S)
    longest = round(policy.max_silence_s / FRAME_S) if policy.model or policy.words else first
    for pause in utterance.pauses:
        if pause.frames < first and not pause.final:
            continue
        if policy.hold_s and _holds(policy, transcript(utterance, pause, first)):
            held = first + round(policy.hold_s / FRAME_S)
            if pause.final:
                return False, held * FRAME_S, 0
            if pause.frames >= held:
                return True, None, pause.frames - held
            continue
        complete = not policy.model or probability(utterance, pause, first) >= policy.threshold
        if policy.words and complete:
            complete = sounds_finished(transcript(utterance, pause, first))
        if pause.final:
            return False, (first if complete else longest) * FRAME_S, 0
        if complete or pause.frames >= longest:
            return True, None, pause.frames - (first if complete else longest)
    return False, None, 0


def reply_heard_frames(frames_left: int) -> int:
    """Frames of the reply a caller hears when a cut sentence goes on: it starts at the end of turn (ready
    by then, rehearsed) and pauses once their next words are heard over it (agent/call/session.py)."""
    from agent.call.session import BARGE_IN_SPEECH_S

    return frames_left + round(BARGE_IN_SPEECH_S / FRAME_S)


def merged_back(frames_left: int) -> bool:
    """Does the session still make one turn (one transcript, one reply) of a sentence cut this way? Yes if
    at most CONTINUE_OVER_BOT_FRAMES of the reply had sounded when the caller went on."""
    from agent.call.session import CONTINUE_OVER_BOT_FRAMES

    return reply_heard_frames(frames_left) <= CONTINUE_OVER_BOT_FRAMES


def _holds(policy: Policy, text: str) -> bool:
    if policy.hold_on == "digit":
        return ENDS_WITH_DIGIT.search(text.strip()) is not None
    return sounds_unfinished(text)


def evaluate(
    policies: list[Policy], sets: dict[str, list[Utterance]], turn_model=None, transcriber=None
) -> tuple[list[dict], float | None]:
    cache: dict[tuple[int, int, int], float] = {}
    heard: dict[tuple[int, int, int], str] = {}
    cpu_ms: list[float] = []

    def transcript(utterance: Utterance, pause: Pause, frames: int) -> str:
        key = (id(utterance), pause.start, frames)
        if key not in heard:
            heard[key] = transcriber.transcribe(utterance.pcm[: (pause.start + frames) * FRAME_BYTES]).text
        return heard[key]

    def probability(utterance: Utterance, pause: Pause, frames: int) -> float:
        key = (id(utterance), pause.start, frames)
        if key not in cache:
            cache[key] = turn_model.probability(utterance.pcm[: (pause.start + frames) * FRAME_BYTES])
            cpu_ms.append(turn_model.last_ms)
        return cache[key]

    rows = []
    for policy in policies:
        row = {"policy": policy.name}
        waits = []
        for set_name, utterances in sets.items():
            cut, split, overlap = 0, 0, []
            for utterance in utterances:
                early, wait, left = _decide(policy, utterance, probability, transcript)
                cut += early
                if early and merged_back(left):
                    overlap.append(reply_heard_frames(left) * FRAME_S)
                elif early:
                    split += 1
                if wait is not None:
                    waits.append(wait)
            row[f"{set_name}_cut"] = cut
            row[f"{set_name}_split"] = split  # cut, and two turns in the session (two replies)
            row[f"{set_name}_reply_heard_ms"] = round(max(overlap) * 1000) if overlap else None
            row[f"{set_name}_total"] = len(utterances)
        row["median_wait_ms"] = round(statistics.median(waits) * 1000) if waits else None
        row["p95_wait_ms"] = round(sorted(waits)[int(0.95 * (len(waits) - 1))] * 1000) if waits else None
        rows.append(row)
    return rows, (statistics.median(cpu_ms) if cpu_ms else None)


def sentence_set(detector: SpeechDetector) -> list[Utterance]:
    from agent.asr_corpus import load_prompts

    prompts = [p for p in load_prompts() if not re.search(r"[.?!;:]\s+\S", p.text.strip()) and len(p.text.split()) >= 3]
    return [analyse(p.pcm(), detector) for p in prompts]


def number_set(detector: SpeechDetector, voice, count: int = 30, seed: int = 7) -> list[Utterance]:
    """Digit strings of 8-16 digits read in groups of 3-4 with a 0.4-0.8 s pause after each group."""
    from agent.language import en

    names: dict[int, str] = {}
    for word, value in en.UNITS.items():
        if value < 10:
            names.setdefault(value, word)  # "zero" before "oh"
    rng = random.Random(seed)
    utterances = []
    for _ in range(count):
        digits = "".join(rng.choice("0123456789") for _ in range(rng.randint(8, 16)))
        groups, i = [], 0
        while i < len(digits):
            size = rng.choice((3, 4))
            groups.append(digits[i : i + size])
            i += size
        pcm = voice.speak("my account number is")
        for group in groups:
            pcm += b"\0" * (int(rng.uniform(0.4, 0.8) * 8000) * 2)
            pcm += voice.speak(" ".join(names[int(d)] for d in group))
        utterances.append(analyse(pcm, detector))
    return utterances


def default_policies() -> list[Policy]:
    fixed = [Policy(s) for s in (0.2, 0.3, 0.45, 0.6, 0.8, 1.0)]
    smart = [Policy(t, True, 0.6, threshold=p) for t in (0.1, 0.2, 0.3) for p in (0.5, 0.9, 0.97)]
    held = [Policy(0.3, hold_s=h, hold_on=on) for on in ("digit", "unfinished") for h in (0.7, 1.2)]
    words = [Policy(s, words=True, max_silence_s=0.45) for s in (0.15, 0.2)]
    words += [Policy(0.2, model=True, words=True, max_silence_s=0.45, threshold=0.5)]
    return fixed + smart + held + [Policy(0.2, hold_s=1.2, hold_on="unfinished")] + words
