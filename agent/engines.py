"""Load the three speech engines once per process; calls share them."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from agent.models import Choice, active_models
from agent.stages.base import ChatModel, ModelMissing, Synthesizer, Transcriber
from agent.stages.compute import ComputeQueue
from agent.stages.speech_cache import SpeechCache

log = logging.getLogger(__name__)


@dataclass
class Engines:
    asr: Transcriber
    llm: ChatModel
    tts: Synthesizer
    choices: list[Choice]
    compute: ComputeQueue = field(default_factory=ComputeQueue)  # ASR and TTS jobs of all calls, most urgent first
    speech: SpeechCache = field(default_factory=SpeechCache)  # audio of sentences every caller hears


def _require(choice: Choice):
    if choice.path is None or not choice.path.exists():
        raise ModelMissing(f"{choice.role} model {choice.model} is not installed; run `python -m agent models`")
    return choice.path


def load_transcriber(choice: Choice) -> Transcriber:
    path = _require(choice)
    if choice.engine == "vosk":
        from agent.stages.asr_vosk import VoskTranscriber

        return VoskTranscriber(path)
    from agent.stages.asr_whisper import WhisperTranscriber

    return WhisperTranscriber(path, choice.model)


def load_engines() -> Engines:
    from agent.stages.llm_llama import LlamaChatModel
    from agent.stages.tts_piper import PiperSynthesizer

    asr_choice, llm_choice, tts_choice = choices = active_models()
    for choice in choices:  # check all before loading any: a missing model fails in milliseconds
        _require(choice)
    for choice in choices:
        log.info(
            "active %s: %s / %s%s", choice.role, choice.engine, choice.model, f" ({choice.note})" if choice.note else ""
        )
    return Engines(
        asr=load_transcriber(asr_choice),
        llm=LlamaChatModel(_require(llm_choice)),
        tts=PiperSynthesizer(_require(tts_choice)),
        choices=choices,
    )
