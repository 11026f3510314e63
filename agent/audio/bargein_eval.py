"""Barge-in on the phone line: how fast a caller's speech stops the bot, and what stops it wrongly.

`python -m agent bench --barge-in` runs each detector (WebRTC VAD as the agent uses it, Silero VAD)
through the agent's own segmenter, whose SPEECH_START is the barge-in:
- onset: Asterisk prompts after silence, alone and with the bot's echo under them; the barge-in
  time is SPEECH_START minus the prompt's first frame louder than -35 dBFS (the prompts start from
  digital silence, so that frame is the onset; with echo under it, the onset is still the prompt's).
- false alarms, clips that must not stop the bot: the bot's own sentences as echo (-20 and -30 dB,
  40 ms late), line noise (white -45 dBFS, hum -30 dBFS), a synthetic cough (noise bursts; no
  recorded cough is available here), and backchannels said by Piper ("mm-hm", "uh-huh", "mhm").
"""

from __future__ import annotations

import statistics

import numpy as np

from agent.audio.pcm import speech_onset_s
from agent.audio.vad import EndpointSettings, SpeechSegmenter, VadEvent

FRAME_BYTES = 320
FRAME_S = 0.02
ONSET_DBFS = -35.0
BACKCHANNELS = ("mm-hm", "uh-huh", "mhm")


def _pcm(samples: np.ndarray) -> bytes:
    return np.clip(samples, -32768, 32767).astype("<i2").tobytes()


def _samples(pcm: bytes) -> np.ndarray:
    return np.frombuffer(pcm, dtype="<i2").astype(np.float64)


def _mix(base: bytes, extra: bytes, gain_db: float, delay_s: float = 0.0) -> bytes:
    a = _samples(base)
    b = np.concatenate((np.zeros(int(delay_s * 8000)), _samples(extra) * 10 ** (gain_db / 20)))
    n = max(len(a), len(b))
    return _pcm(np.pad(a, (0, n - len(a))) + np.pad(b, (0, n - len(b))))


def _first_start(detector, pcm: bytes, settings: EndpointSettings, played: bytes = b"") -> float | None:
    """When the segmenter (the barge-in trigger) first opens an utterance, in seconds from the clip start.
    `played` is what the bot sent meanwhile (a detector with `played()` gets it frame by frame)."""
    if hasattr(detector, "reset"):
        detector.reset()
    segmenter = SpeechSegmenter(settings)
    for index in range(0, len(pcm) - FRAME_BYTES + 1, FRAME_BYTES):
        now = (index // FRAME_BYTES + 1) * FRAME_S
        if hasattr(detector, "played"):
            detector.played(played[index : index + FRAME_BYTES] or None)
        speech = detector.is_speech(pcm[index : index + FRAME_BYTES])
        if segmenter.process(now, speech, getattr(detector, "onset_credit_s", 0.0)) is VadEvent.SPEECH_START:
            return now
    return None


def _onset(pcm: bytes) -> float | None:
    return speech_onset_s(pcm, threshold_dbfs=ONSET_DBFS)


def onset_clips(prompts: list[bytes], echo: list[bytes]) -> dict[str, list[bytes]]:
    lead = b"\0" * 8000  # 0.5 s of silence before the caller speaks
    clean = [(lead + p, b"", _onset(lead + p)) for p in prompts]
    with_echo = [  # the truth is the caller's onset, never the echo's
        (_mix(lead + p, echo[i % len(echo)], -25.0, 0.04), echo[i % len(echo)], _onset(lead + p))
        for i, p in enumerate(prompts)
    ]
    over_bot = [  # the bot talks, the line brings no echo (a digital trunk, a handset that cancels it)
        (lead + p, echo[i % len(echo)], _onset(lead + p)) for i, p in enumerate(prompts)
    ]
    return {"clean": clean, "over the bot, no echo": over_bot, "over echo -25 dB": with_echo}


def false_alarm_clips(bot_sentences: list[bytes], voice, seed: int = 3) -> dict[str, list[bytes]]:
    rng = np.random.default_rng(seed)
    two_s = 16000
    clips: dict[str, list[bytes]] = {
        "echo -10 dB": [(_mix(b"", s, -10.0, 0.04), s) for s in bot_sentences],  # a poor hybrid
        "echo -20 dB": [(_mix(b"", s, -20.0, 0.04), s) for s in bot_sentences],
        "echo -30 dB": [(_mix(b"", s, -30.0, 0.04), s) for s in bot_sentences],
        "white noise -45 dBFS": [_pcm(rng.normal(0, 32768 * 10 ** (-45 / 20), two_s)) for _ in range(10)],
        "hum 50 Hz -30 dBFS": [
            _pcm(32768 * 10 ** (-30 / 20) * np.sqrt(2) * np.sin(2 * np.pi * 50 * np.arange(two_s) / 8000 + k))
            for k in range(10)
        ],
    }
    coughs = []
    for _ in range(10):
        clip = np.zeros(two_s)
        for start in (0.3, 0.7):
            n = int(rng.uniform(0.12, 0.25) * 8000)
            burst = rng.normal(0, 1, n) * np.hanning(n) * 32768 * 10 ** (-15 / 20)
            burst = np.convolve(burst, np.ones(4) / 4, mode="same")  # a little low-pass: chest, not hiss
            begin = int(start * 8000)
            clip[begin : begin + n] += burst
        coughs.append(_pcm(clip))
    clips["synthetic cough"] = coughs
    clips["backchannel (mm-hm, uh-huh, mhm)"] = [voice.speak(word) for word in BACKCHANNELS]
    return {name: [c if isinstance(c, tuple) else (c, b"") for c in items] for name, items in clips.items()}


def evaluate(detectors: dict[str, object], starts: list[float], onsets: dict, false_alarms: dict) -> list[dict]:
    rows = []
    for name, detector in detectors.items():
        for start_s in starts:
            settings = EndpointSettings(start_speech_s=start_s)
            row: dict = {"detector": name, "start_speech_ms": round(start_s * 1000)}
            for set_name, clips in onsets.items():
                delays, missed = [], 0
                for clip, played, truth in clips:
                    found = _first_start(detector, clip, settings, played)
                    if found is None or truth is None:
                        missed += 1
                    else:
                        delays.append(found - truth)
                row[f"{set_name}: median ms"] = round(statistics.median(delays) * 1000) if delays else None
                row[f"{set_name}: p95 ms"] = round(sorted(delays)[int(0.95 * (len(delays) - 1))] * 1000) if delays else None
                row[f"{set_name}: missed"] = f"{missed}/{len(clips)}"
            for set_name, clips in false_alarms.items():
                stopped = sum(_first_start(detector, clip, settings, played) is not None for clip, played in clips)
                row[f"false stop: {set_name}"] = f"{stopped}/{len(clips)}"
            rows.append(row)
    return rows
