"""Upstream model fetch: kept only when the checksum matches (served from loopback)."""

import hashlib
import http.server
import io
import threading
import zipfile

import pytest

import agent.models as models


@pytest.fixture
def archive_server(tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("vosk-model-small-en-test/am/final.mdl", b"weights")
    payload = buffer.getvalue()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/model.zip", hashlib.sha256(payload).hexdigest()
    server.shutdown()


def item(url, sha):
    return [{"role": "asr", "name": "vosk-model-small-en-test", "url": url, "sha256": sha}]


def test_verified_archive_is_installed_and_becomes_the_active_asr(archive_server, tmp_path, monkeypatch):
    monkeypatch.setattr(models, "MODELS_DIR", tmp_path)
    url, sha = archive_server
    lines = []
    models.fetch_upstream(out=lambda *a, **k: lines.append(a[0] if a else ""), items=item(url, sha))
    assert (tmp_path / "vosk-model-small-en-test" / "am" / "final.mdl").exists()
    assert any("checksum verified" in line for line in lines)
    assert models.choose_asr().engine == "vosk"


def test_archive_with_wrong_checksum_is_discarded(archive_server, tmp_path, monkeypatch):
    monkeypatch.setattr(models, "MODELS_DIR", tmp_path)
    url, _ = archive_server
    lines = []
    models.fetch_upstream(out=lambda *a, **k: lines.append(a[0] if a else ""), items=item(url, "0" * 64))
    assert not (tmp_path / "vosk-model-small-en-test").exists()
    assert not list(tmp_path.iterdir())
    assert any("checksum mismatch" in line for line in lines)


def test_unreachable_host_falls_back_to_registry_models(tmp_path, monkeypatch):
    monkeypatch.setattr(models, "MODELS_DIR", tmp_path)
    lines = []
    models.fetch_upstream(
        out=lambda *a, **k: lines.append(a[0] if a else ""), items=item("http://127.0.0.1:9/x.zip", "0" * 64)
    )
    assert any("using registry models" in line for line in lines)
    assert models.choose_asr().engine == "faster-whisper"


def test_a_sentence_repeating_the_one_before_is_dropped():
    from agent.stages.asr_whisper import drop_repeated_sentences

    assert drop_repeated_sentences("Are you open on Saturday? Are you open on Saturday? Are you open on") == (
        "Are you open on Saturday?"
    )
    assert drop_repeated_sentences("November. November. November.") == "November."
    assert drop_repeated_sentences("Nine nine nine nine.") == "Nine nine nine nine."  # digits said twice stay
    assert drop_repeated_sentences("Yes. Friday at two. Yes.") == "Yes. Friday at two. Yes."
    assert drop_repeated_sentences("") == ""
