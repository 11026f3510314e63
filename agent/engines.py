"""Load the three speech engines once per process; calls share them.

Each model is checked with a real call before the agent takes calls: the LLM
generates a few tokens in a child process (a native crash there cannot take the
agent down), ASR transcribes a second of audio, TTS speaks a sentence. A broken
ASR or TTS is a clear start-up error; a broken LLM is logged and the agent runs
without it (answers are extractive and decisions are the rules').
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from agent.models import Choice, active_models
from agent.stages.base import ChatModel, ModelMissing, Synthesizer, Transcriber
from agent.stages.compute import ComputeQueue
from agent.stages.speech_cache import SpeechCache

log = logging.getLogger(__name__)


class ModelBroken(RuntimeError):
    """A model is installed but fails its start-up check; the message names it and the fix."""


@dataclass
class Engines:
    asr: Transcriber
    llm: ChatModel | None  # None: the LLM failed its check; the brain works without it
    tts: Synthesizer
    choices: list[Choice]
    compute: ComputeQueue = field(default_factory=ComputeQueue)  # ASR and TTS jobs of all calls, most urgent first
    speech: SpeechCache = field(default_factory=SpeechCache)  # audio of sentences every caller hears


def _require(choice: Choice):
    if choice.path is None or not choice.path.exists():
        raise ModelMissing(choice.missing())  # names what is missing and the fix that works for its source
    return choice.path


def load_transcriber(choice: Choice) -> Transcriber:
    path = _require(choice)
    if choice.engine == "vosk":
        from agent.stages.asr_vosk import VoskTranscriber

        return VoskTranscriber(path)
    from agent.stages.asr_whisper import WhisperTranscriber

    return WhisperTranscriber(path, choice.model)


def load_llm(choice: Choice) -> ChatModel | None:
    """The LLM if a real completion works (in a child process first), else None with the reason logged."""
    from agent.stages.llm_llama import LlamaChatModel, cpu_has_amx, smoke_check

    path = _require(choice)
    failure = smoke_check(path)
    extra_buffers = None
    if failure and not cpu_has_amx():
        # the same workaround the AMX path takes, in case another CPU extension's kernels misbehave
        log.warning("LLM %s failed its start-up check (%s); retrying without llama.cpp's extra buffer types",
                    choice.model, failure)  # fmt: skip
        extra_buffers = False
        failure = smoke_check(path, extra_buffers=False)
    if failure:
        log.error(
            "LLM %s disabled: %s. Calls go on with answers taken from the documents and decisions by rule; "
            "run `python -m agent doctor` for details.",
            choice.model,
            failure,
        )
        return None
    return LlamaChatModel(path, extra_buffers=extra_buffers)


def check_transcriber(asr: Transcriber, model: str) -> None:
    """Feed a second of a tone through a real stream; raises ModelBroken if the model cannot decode."""
    import numpy as np

    tone = (np.sin(np.arange(8000) * 2 * np.pi * 440 / 8000) * 3000).astype("<i2").tobytes()
    try:
        stream = asr.open_stream()
        stream.accept(tone)
        stream.finish()
    except Exception as exc:
        raise ModelBroken(
            f"ASR model {model} failed its start-up check: {exc}. Reinstall it: python -m agent models"
        ) from None


def check_synthesizer(tts: Synthesizer, model: str) -> None:
    """Speak a sentence; raises ModelBroken if the voice fails or says nothing."""
    try:
        audio = tts.synthesize("Hello.")
    except Exception as exc:
        raise ModelBroken(
            f"TTS voice {model} failed its start-up check: {exc}. Reinstall it: python -m agent models"
        ) from None
    if not audio:
        raise ModelBroken(
            f"TTS voice {model} failed its start-up check: it produced no audio. Reinstall it: python -m agent models"
        )


def load_engines() -> Engines:
    from agent.stages.tts_piper import PiperSynthesizer

    asr_choice, llm_choice, tts_choice = choices = active_models()
    for choice in choices:  # check all before loading any: a missing model fails in milliseconds
        _require(choice)
    for choice in choices:
        log.info(
            "active %s: %s / %s%s", choice.role, choice.engine, choice.model, f" ({choice.note})" if choice.note else ""
        )
    try:
        asr = load_transcriber(asr_choice)
    except Exception as exc:
        raise ModelBroken(f"ASR model {asr_choice.model} at {asr_choice.path} cannot be loaded: {exc}. "
                          f"Fix: {asr_choice.repair()}") from None  # fmt: skip
    try:
        tts = PiperSynthesizer(_require(tts_choice))
    except Exception as exc:
        raise ModelBroken(f"TTS voice {tts_choice.model} at {tts_choice.path} cannot be loaded: {exc}. "
                          f"Fix: {tts_choice.repair()}") from None  # fmt: skip
    check_transcriber(asr, asr_choice.model)
    check_synthesizer(tts, tts_choice.model)
    return Engines(asr=asr, llm=load_llm(llm_choice), tts=tts, choices=choices)
