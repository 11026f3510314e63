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
