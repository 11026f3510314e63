"""Pure functions on 16-bit PCM: resampling (soxr), framing, level, G.711 mu-law.

Everything on the audio path is numpy or a C library; no per-sample Python loops.
"""

from __future__ import annotations

import numpy as np
import soxr

FRAME_MS = 20


def frame_bytes(rate: int, ms: int = FRAME_MS) -> int:
    return rate * ms // 1000 * 2


def to_int16(pcm: bytes) -> np.ndarray:
    return np.frombuffer(pcm, dtype="<i2")


def resample(pcm: bytes, from_rate: int, to_rate: int) -> bytes:
    """Resample a whole buffer with soxr (high quality, C speed)."""
    if from_rate == to_rate or not pcm:
        return pcm
    out = soxr.resample(to_int16(pcm), from_rate, to_rate, quality="HQ")
    return np.asarray(out, dtype="<i2").tobytes()


def frames(pcm: bytes, size: int) -> list[bytes]:
    """Split into fixed-size frames, padding the last with silence."""
    if len(pcm) % size:
        pcm = pcm + b"\x00" * (size - len(pcm) % size)
    return [pcm[i : i + size] for i in range(0, len(pcm), size)]


def rms_dbfs(pcm: bytes) -> float:
    """Level of a buffer in dBFS; -120 for digital silence."""
    samples = to_int16(pcm).astype(np.float32)
    if samples.size == 0:
        return -120.0
    rms = float(np.sqrt(np.mean(samples * samples)))
    return -120.0 if rms < 1e-3 else 20 * np.log10(rms / 32768.0)


def silence(ms: int, rate: int = 8000) -> bytes:
    return b"\x00" * frame_bytes(rate, ms)


# --- G.711 mu-law (the SIP test caller's RTP codec) -----------------------

_BIAS = 0x84
_CLIP = 32635


def _build_ulaw_decode_table() -> np.ndarray:
    codes = ~np.arange(256, dtype=np.int32) & 0xFF
    sign = codes & 0x80
    exponent = (codes >> 4) & 0x07
    mantissa = codes & 0x0F
    magnitude = (((mantissa << 3) + _BIAS) << exponent) - _BIAS
    return np.where(sign, -magnitude, magnitude).astype(np.int16)


_ULAW_DECODE = _build_ulaw_decode_table()


def _build_ulaw_encode_table() -> np.ndarray:
    # Encode every 16-bit value once, then encoding is a table look-up.
    values = np.arange(-32768, 32768, dtype=np.int32)
    sign = np.where(values < 0, 0x80, 0)
    magnitude = np.minimum(np.abs(values), _CLIP) + _BIAS
    exponent = np.floor(np.log2(magnitude)).astype(np.int32) - 7
    exponent = np.clip(exponent, 0, 7)
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return (~(sign | (exponent << 4) | mantissa) & 0xFF).astype(np.uint8)


_ULAW_ENCODE = _build_ulaw_encode_table()


def ulaw_decode(data: bytes) -> bytes:
    return _ULAW_DECODE[np.frombuffer(data, dtype=np.uint8)].astype("<i2").tobytes()


def ulaw_encode(pcm: bytes) -> bytes:
    return _ULAW_ENCODE[to_int16(pcm).astype(np.int32) + 32768].tobytes()


def speech_onset_s(pcm: bytes, rate: int = 8000, threshold_dbfs: float = -35.0) -> float | None:
    """When speech starts in a buffer: its first 20 ms frame louder than the threshold (Piper's output
    starts with 40-60 ms of near silence, which is not yet the caller talking)."""
    size = frame_bytes(rate)
    for index in range(0, len(pcm) - size + 1, size):
        if rms_dbfs(pcm[index : index + size]) > threshold_dbfs:
            return index // size * FRAME_MS / 1000
    return None


def speech_offset_s(pcm: bytes, rate: int = 8000, threshold_dbfs: float = -35.0) -> float | None:
    """When speech ends in a buffer: the end of its last 20 ms frame louder than the threshold (Piper's
    output ends with 100-200 ms of near silence, which the caller's wait for a reply starts within)."""
    size = frame_bytes(rate)
    for index in range((len(pcm) - size) // size * size, -1, -size):
        if rms_dbfs(pcm[index : index + size]) > threshold_dbfs:
            return (index // size + 1) * FRAME_MS / 1000
    return None


LEAD_KEPT_MS = 10  # of a voice's leading silence: enough for the first consonant's attack


def trim_leading_silence(pcm: bytes, rate: int = 8000, threshold: int = 100) -> bytes:
    """Drop the near-silence a synthesized clause starts with (Piper: 25-70 ms), keeping LEAD_KEPT_MS.

    A caller waits for the first word, not the first sample: this silence is latency they hear.
    The silence a clause ends with stays, as the pause before the next one.
    """
    samples = to_int16(pcm)
    loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > threshold)
    if not len(loud):
        return pcm
    start = max(0, int(loud[0]) - rate * LEAD_KEPT_MS // 1000)
    return samples[start:].tobytes()
