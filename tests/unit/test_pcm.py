"""Resampling and G.711 helpers."""

import numpy as np
import pytest

from agent.audio.pcm import frames, resample, rms_dbfs, to_int16, ulaw_decode, ulaw_encode


def tone(freq=440.0, rate=8000, seconds=0.5, amp=8000):
    t = np.arange(int(rate * seconds)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype("<i2").tobytes()


def test_resample_round_trip_keeps_the_signal():
    original = tone()
    back = resample(resample(original, 8000, 16000), 16000, 8000)
    a, b = to_int16(original).astype(float), to_int16(back).astype(float)
    assert len(b) == len(a)
    core = slice(200, -200)  # filter edges
    assert np.corrcoef(a[core], b[core])[0, 1] > 0.999


def test_resample_22050_to_8000_length():
    assert len(resample(tone(rate=22050, seconds=1.0), 22050, 8000)) == 16000


def test_ulaw_round_trip_error_is_small():
    pcm = tone(amp=12000)
    decoded = to_int16(ulaw_decode(ulaw_encode(pcm))).astype(float)
    original = to_int16(pcm).astype(float)
    assert np.max(np.abs(decoded - original)) < 12000 * 0.04
    assert ulaw_encode(b"\x00\x00") == b"\xff"


def test_frames_pads_last():
    out = frames(b"\x01" * 500, 320)
    assert [len(f) for f in out] == [320, 320]
    assert out[1].endswith(b"\x00" * 140)


def test_level():
    assert rms_dbfs(b"\x00" * 320) == -120.0
    assert rms_dbfs(tone(amp=1000)) == pytest.approx(20 * np.log10(1000 / np.sqrt(2) / 32768), abs=0.1)


def test_a_clause_starts_at_its_first_sound_not_after_the_voices_leading_silence():
    from agent.audio.pcm import trim_leading_silence

    t = np.arange(800) / 8000
    tone = (5000 * np.sin(2 * np.pi * 440 * t)).astype("<i2").tobytes()
    quiet = (np.random.default_rng(0).integers(-30, 30, 480)).astype("<i2").tobytes()  # 60 ms of near silence
    trimmed = trim_leading_silence(quiet + tone)
    assert trimmed.endswith(tone)
    assert abs((len(trimmed) - len(tone)) - 2 * 80) <= 4  # 10 ms of the lead kept (the tone's first sample is 0)
    assert trim_leading_silence(quiet) == quiet  # nothing loud: left alone


def test_speech_ends_at_its_last_loud_frame_not_at_the_voices_trailing_silence():
    from agent.audio.pcm import speech_offset_s, speech_onset_s

    quiet = b"\x00" * 1600  # 100 ms
    pcm = quiet + tone(seconds=0.5) + quiet + quiet
    assert speech_onset_s(pcm) == 0.1
    assert speech_offset_s(pcm) == 0.6
    assert speech_offset_s(quiet) is None
