"""The real on-box models: ASR on real telephone speech, Vosk on its Korean model, Piper, the LLM."""

import subprocess
import threading
import time
import wave

import pytest

from agent.asr_corpus import load_prompts, word_error_rate
from agent.audio.pcm import frames, rms_dbfs, silence
from agent.engines import load_transcriber
from agent.models import active_models, choose_asr, choose_llm, choose_tts, korean_vosk_dir

pytestmark = pytest.mark.models

WER_BOUND = 0.20  # tiny.en measured ~9% on these prompts; Vosk small-en ~10-15% reported upstream


@pytest.fixture(scope="module")
def asr():
    return load_transcriber(choose_asr())


@pytest.fixture(scope="module")
def tts():
    from agent.stages.tts_piper import PiperSynthesizer

    return PiperSynthesizer(choose_tts().path)


@pytest.fixture(scope="module")
def llm():
    from agent.stages.llm_llama import LlamaChatModel

    return LlamaChatModel(choose_llm().path)


def transcribe(asr, pcm):
    stream = asr.open_stream()
    for frame in frames(pcm, 3200):
        stream.accept(frame)
    return stream.finish()


def test_every_role_has_an_installed_model():
    for choice in active_models():
        assert choice.path is not None and choice.path.exists(), choice.describe()


def test_asr_word_error_rate_on_asterisk_prompts(asr):
    prompts = load_prompts()
    assert len(prompts) > 400
    sample = prompts[::8]  # every 8th prompt: ~70 real recordings across the alphabet
    pairs = [(p.text, transcribe(asr, p.pcm()).text) for p in sample]
    wer = word_error_rate(pairs)
    print(f"ASR {choose_asr().engine}/{choose_asr().model}: WER {wer:.1%} on {len(sample)} prompts")
    assert wer < WER_BOUND


def test_asr_on_silence_is_empty(asr):
    assert transcribe(asr, silence(1000)).text.strip() == ""


def test_whisper_short_window_hears_what_the_full_window_hears(asr):
    """The utterance-sized window (the fast path) against faster-whisper's own 30-second one, same prompts."""
    if asr.engine != "faster-whisper":
        pytest.skip("Whisper only")
    sample = load_prompts()[::40]
    hint = "Riverside Dental Clinic. Book, move or cancel a check-up."
    asr.short_window = False
    try:
        full = [(p.text, asr.transcribe(p.pcm(), hint).text) for p in sample]
    finally:
        asr.short_window = True
    short = [(p.text, asr.transcribe(p.pcm(), hint).text) for p in sample]
    print(
        f"WER full window {word_error_rate(full):.1%}, short window {word_error_rate(short):.1%} ({len(sample)} prompts)"
    )
    assert word_error_rate(short) <= word_error_rate(full) + 0.05


def test_whisper_long_utterance_takes_the_full_window(asr):
    if asr.engine != "faster-whisper":
        pytest.skip("Whisper only")
    prompt = next(p for p in load_prompts() if 3 * 16000 <= len(p.pcm()) <= 4 * 16000)
    pcm = prompt.pcm() * 8  # 24-32 s: past the short window's limit
    words = transcribe(asr, pcm).text.split()
    assert len(words) >= 4 * len(prompt.text.split())  # the whole recording was heard, not its first window


def test_vosk_streaming_path_with_the_korean_model(tmp_path):
    from agent.stages.asr_vosk import VoskTranscriber

    wav = tmp_path / "ko.wav"
    subprocess.run(
        ["espeak-ng", "-v", "ko", "-w", str(tmp_path / "raw.wav"), "안녕하세요. 예약하고 싶어요."], check=True
    )
    subprocess.run(["sox", str(tmp_path / "raw.wav"), "-r", "8000", "-c", "1", "-b", "16", str(wav)], check=True)
    with wave.open(str(wav)) as w:
        pcm = w.readframes(w.getnframes())
    transcriber = VoskTranscriber(korean_vosk_dir())
    stream = transcriber.open_stream()
    partials = []
    for chunk in frames(pcm, 3200):
        stream.accept(chunk)
        partials.append(stream.partial())
    result = stream.finish()
    assert any(partials), "Vosk gave no partial results while streaming"
    assert any("\uac00" <= ch <= "\ud7a3" for ch in result.text), result.text  # Hangul syllables
    assert 0.0 < result.confidence <= 1.0
    assert transcriber.open_stream().finish().text == ""  # a fresh stream is independent


def test_piper_speaks_8khz_frames(tts):
    pcm = tts.synthesize("Hello, you're speaking with the virtual assistant.")
    seconds = len(pcm) / 16000
    assert 1.0 < seconds < 6.0
    chunks = frames(pcm, 320)
    assert all(len(c) == 320 for c in chunks)
    assert sum(rms_dbfs(c) > -40 for c in chunks) > len(chunks) / 2


def test_piper_round_trip_through_asr(tts, asr):
    text = transcribe(asr, tts.synthesize("Our clinic opens at eight in the morning.")).text.lower()
    assert "clinic" in text and "morning" in text


def test_llm_answers(llm):
    reply = "".join(
        llm.stream_reply(
            [
                {"role": "system", "content": "You are a helpful receptionist."},
                {"role": "user", "content": "Say hello to the caller."},
            ],
            lambda: False,
        )
    )
    assert len(reply.split()) >= 2


def test_llm_stops_when_asked(llm):
    stop = threading.Event()
    pieces = []
    started = time.monotonic()
    for piece in llm.stream_reply(
        [{"role": "user", "content": "Count from one to one hundred in words."}], stop.is_set
    ):
        pieces.append(piece)
        if len(pieces) == 3:
            stop.set()
    assert 3 <= len(pieces) <= 4
    assert time.monotonic() - started < 30


def test_llm_decisions_are_constrained_to_the_schema(llm):
    from agent.brain.dialogue import decision_schema

    labels = ["book_appointment", "cancel_appointment", "human", "question"]
    for request in ("I want to book a cleaning", "Let me talk to a person", "blue elephants dancing"):
        result = llm.complete_json([{"role": "user", "content": request}], decision_schema(labels))
        assert set(result) == {"intent"} and result["intent"] in labels


def test_llm_start_up_check_runs_a_real_completion_in_a_child_process(tmp_path):
    from agent.engines import load_llm
    from agent.models import Choice
    from agent.stages.llm_llama import cpu_has_amx, smoke_check

    path = choose_llm().path
    assert smoke_check(path) is None  # the configured model generates tokens (on AMX CPUs without AMX kernels)
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + bytes(4096))
    reason = smoke_check(broken, timeout_s=60)
    assert reason and ("failed" in reason or "crashed" in reason)
    # a model that fails its check is reported and left out; the agent runs on without it
    assert load_llm(Choice("llm", "llama.cpp", "broken.gguf", broken)) is None
    print(f"\nCPU has AMX: {cpu_has_amx()}; broken model: {reason}")


def test_smart_turn_reads_a_finished_sentence_as_complete_and_its_first_words_as_not():
    """The end-of-turn model, installed from the pipecat-ai wheel by `agent models`, on Asterisk's own voice."""
    from agent.asr_corpus import load_prompts
    from agent.audio.turn import SmartTurn

    turn = SmartTurn()
    prompt = next(p for p in load_prompts() if p.text.startswith("Please enter your") and len(p.text.split()) > 6)
    pcm = prompt.pcm()
    whole = turn.probability(pcm + b"\0" * 3200)  # the sentence and 0.2 s of silence
    opening = turn.probability(pcm[: len(pcm) // 4 // 2 * 2] + b"\0" * 3200)
    print(f"\nSmart Turn on {prompt.text!r}: whole {whole:.2f}, first quarter {opening:.2f}, {turn.last_ms:.0f} ms CPU")
    assert 0.0 <= opening <= 1.0 and 0.0 <= whole <= 1.0
    assert whole > opening
