"""Every Whisper model `python -m agent models` installs loads and hears an Asterisk prompt (no timing)."""

import pytest

from agent.asr_corpus import load_prompts, word_errors
from agent.engines import check_transcriber, load_transcriber
from agent.models import ASR_MODEL_ENV, WHISPER_MODELS, choose_asr, whisper_choice

pytestmark = pytest.mark.models


@pytest.fixture(scope="module")
def prompt():
    return next(p for p in load_prompts() if p.name == "agent-pass")


@pytest.mark.parametrize("name", list(WHISPER_MODELS))
def test_the_model_loads_and_transcribes_an_asterisk_prompt(name, prompt):
    choice = whisper_choice(name)
    assert choice.path is not None and (choice.path / "model.bin").is_file(), choice.missing()
    asr = load_transcriber(choice)
    check_transcriber(asr, name)
    stream = asr.open_stream()
    stream.accept(prompt.pcm())
    text = stream.finish().text
    errors, words = word_errors(prompt.text, text)
    assert errors <= words // 2, f"{name} heard {text!r} for {prompt.text!r}"


@pytest.mark.parametrize("name", list(WHISPER_MODELS))
def test_the_selected_model_is_the_one_loaded(name, monkeypatch):
    monkeypatch.setenv(ASR_MODEL_ENV, name)
    choice = choose_asr()
    assert choice.model == name
    assert load_transcriber(choice).model == name
