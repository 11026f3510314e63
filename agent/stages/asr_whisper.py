"""faster-whisper (CTranslate2) behind the streaming interface.

Whisper is not a streaming recogniser: audio is buffered per utterance and
decoded when the endpointer closes it (or, speculatively, at a pause).

Whisper is trained on 30-second windows and faster-whisper always pads to one,
so a 2-second "yes, that's fine" costs a full 30-second encode (~0.55 s on two
cores). CTranslate2 accepts a shorter encoder input, so a phone utterance is
decoded in a window of its own length plus a margin (at least 10 s): about
0.23 s. Shortened windows make the decoder repeat itself, mostly when given the
deployment's hint; three guards keep that out (measured in docs/benchmarks.md):
timestamp tokens on (the model marks where speech ends), a token budget per
second of audio, and a sentence repeating the one before it is dropped.
Utterances longer than the short window allows go through faster-whisper's own
30-second path.
"""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path

import numpy as np

from agent.audio.pcm import resample, to_int16
from agent.stages.base import ModelMissing, Transcript

SHORT_WINDOW_MIN_S = 10.0  # shorter than this and tiny.en's error rate climbs (8 s: 29 % on Asterisk's prompts)
SHORT_WINDOW_MARGIN_S = 5.0  # room after the speech, so the model sees where it ends
SHORT_WINDOW_MAX_AUDIO_S = 25.0  # longer utterances use the full window
TOKENS_PER_SECOND = 8  # fast speech is ~4 tokens/s; a decoder repeating itself runs into this


class WhisperStream:
    buffers_only = True  # the whole utterance is decoded at finish()

    def __init__(self, owner: WhisperTranscriber, hint: str | None) -> None:
        self._owner = owner
        self._hint = hint
        self._chunks: list[bytes] = []

    def accept(self, pcm8k: bytes) -> None:
        self._chunks.append(pcm8k)

    def partial(self) -> str:
        return ""  # no partials: decoding the whole buffer per frame would cost more than it gives

    def finish(self) -> Transcript:
        return self._owner.transcribe(b"".join(self._chunks), self._hint)


class WhisperTranscriber:
    engine = "faster-whisper"
    decodes_at_end = True  # no partials: the call session may start the decode at a pause (speculation)

    def __init__(self, model_dir: Path, model_name: str, threads: int = 2, short_window: bool = True) -> None:
        if not (model_dir / "model.bin").exists():
            raise ModelMissing(f"no faster-whisper model at {model_dir}; run `python -m agent models`")
        from faster_whisper import WhisperModel
        from faster_whisper.tokenizer import Tokenizer
        from faster_whisper.transcribe import TranscriptionOptions, get_suppressed_tokens

        self.model = model_name
        self.short_window = short_window
        self._model = WhisperModel(str(model_dir), device="cpu", compute_type="int8", cpu_threads=threads)
        # base and small are multilingual: their prompt names the language (<|en|><|transcribe|>); tiny.en's has none
        multilingual = self._model.model.is_multilingual
        self._tokenizer = Tokenizer(self._model.hf_tokenizer, multilingual, task="transcribe", language="en")
        # the options faster-whisper's transcribe() builds for the arguments used below
        self._options = TranscriptionOptions(
            beam_size=1,
            best_of=5,
            patience=1,
            length_penalty=1,
            repetition_penalty=1,
            no_repeat_ngram_size=0,
            log_prob_threshold=-1.0,
            no_speech_threshold=0.6,
            compression_ratio_threshold=2.4,
            condition_on_previous_text=False,
            prompt_reset_on_temperature=0.5,
            temperatures=[0.0],
            initial_prompt=None,
            prefix=None,
            suppress_blank=True,
            suppress_tokens=get_suppressed_tokens(self._tokenizer, [-1]),
            without_timestamps=False,
            max_initial_timestamp=1.0,
            word_timestamps=False,
            prepend_punctuations="",
            append_punctuations="",
            multilingual=False,
            max_new_tokens=None,
            clip_timestamps="0",
            hallucination_silence_threshold=None,
            hotwords=None,
        )

    def open_stream(self, hint: str | None = None) -> WhisperStream:
        return WhisperStream(self, hint)

    def transcribe(self, pcm8k: bytes, hint: str | None = None) -> Transcript:
        if len(pcm8k) < 3200:  # under 0.2 s: nothing to recognise
            return Transcript("", None)
        audio = to_int16(resample(pcm8k, 8000, 16000)).astype(np.float32) / 32768.0
        if self.short_window and len(audio) / 16000 <= SHORT_WINDOW_MAX_AUDIO_S:
            return self._transcribe_short(audio, hint)
        return self._transcribe_full(audio, hint)

    def _transcribe_full(self, audio: np.ndarray, hint: str | None) -> Transcript:
        segments, _info = self._model.transcribe(
            audio,
            language="en",
            beam_size=1,
            temperature=0.0,  # deterministic: no sampling fallback on hard audio
            initial_prompt=hint,  # the deployment's words: scenario-line WER 13.6% → 12.5% (docs/benchmarks.md)
            vad_filter=False,
            condition_on_previous_text=False,
            without_timestamps=True,
        )
        segments = list(segments)
        text = " ".join(s.text.strip() for s in segments).strip()
        confidence = math.exp(sum(s.avg_logprob for s in segments) / len(segments)) if segments else None
        return Transcript(text, confidence)

    def _transcribe_short(self, audio: np.ndarray, hint: str | None) -> Transcript:
        model, tokenizer = self._model, self._tokenizer
        features = model.feature_extractor(audio)
        frames = features.shape[-1] - 1  # as faster-whisper: the last frame is padding
        audio_s = frames / 100
        window = int(max(SHORT_WINDOW_MIN_S, audio_s + SHORT_WINDOW_MARGIN_S) * 100)
        window += window % 2  # the encoder's convolution halves the frames
        features = np.pad(features[:, :frames], [(0, 0), (0, window - frames)])
        encoded = model.encode(np.ascontiguousarray(features))
        hint_tokens = tokenizer.encode(" " + hint.strip()) if hint else []
        prompt = model.get_prompt(tokenizer, hint_tokens, without_timestamps=False)
        options = dataclasses.replace(self._options, max_new_tokens=int(audio_s * TOKENS_PER_SECOND) + 10)
        result, avg_logprob, _temperature, _compression = model.generate_with_fallback(
            encoded, prompt, tokenizer, options
        )
        if result.no_speech_prob > options.no_speech_threshold and avg_logprob <= options.log_prob_threshold:
            return Transcript("", None)  # the same silence test faster-whisper applies
        words = [t for t in result.sequences_ids[0] if t < tokenizer.timestamp_begin]
        text = drop_repeated_sentences(tokenizer.decode(words).strip())
        return Transcript(text, math.exp(avg_logprob) if text else None)


def _sentence_key(sentence: str) -> str:
    return re.sub(r"[^a-z0-9' ]", "", sentence.lower()).strip()


def drop_repeated_sentences(text: str) -> str:
    """Drop a sentence that repeats the one before it, and a cut-off piece starting it again.

    A Whisper decoder in a shortened window tends to say "Are you open on
    Saturday? Are you open on Saturday? Are you open on". Dropping a sentence
    that equals its predecessor never changes what a caller meant.
    """
    sentences = [s for s in re.split(r"(?<=[.?!])\s+", text.strip()) if s]
    kept: list[str] = []
    for index, sentence in enumerate(sentences):
        key = _sentence_key(sentence)
        if kept and key:
            previous = _sentence_key(kept[-1])
            if key == previous or (index == len(sentences) - 1 and previous.startswith(key)):
                continue
        kept.append(sentence)
    return " ".join(kept)
