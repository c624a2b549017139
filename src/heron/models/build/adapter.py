"""Train the LiT head: a linear map from image-backbone features into the text tower's space.

The head is trained with symmetric InfoNCE on captioned images, so users can train one on their own
pictures (`heron adapter train`) and build heron-lite with it. torch is imported only to train.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

Progress = Callable[[str], None]
Captioned = list[tuple[Path, list[str]]]
RECALL_KS = (1, 5, 10)
HEAD_FORMAT = "heron-lite-head/1"
LAYER_NORM_EPS = 1e-5  # torch.nn.functional.layer_norm's default
MIN_IMAGES = 20


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings; the defaults are the recipe in shared/MODELS.md."""

    temperature: float = 0.05
    lr: float = 1e-3
    weight_decay: float = 1e-2
    batch_size: int = 256
    max_epochs: int = 200
    patience: int = 10
    val_fraction: float = 0.1
    seed: int = 0
    # Layer-normalise the image features before the head (helps a head into the e5 space).
    input_norm: bool = False


@dataclass
class Head:
    """A trained LiT head: `normalise(norm(features) @ weight + bias)` lands in the text space,
    where `norm` is a layer norm without parameters when `input_norm`, else nothing."""

    weight: np.ndarray
    bias: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def input_norm(self) -> bool:
        return bool(self.meta.get("train", {}).get("input_norm", False))

    def project(self, image_features: np.ndarray) -> np.ndarray:
        return project(image_features, self.weight, self.bias, self.input_norm)


def default_head_path() -> Path:
    """The head trained on Flickr8k's train split, shipped inside heron."""
    return Path(str(resources.files("heron.models").joinpath("assets/heron-lite-head.npz")))


def default_e5_head_path() -> Path:
    """heron-lite 2's head into the multilingual-e5 space (English and Chinese captions)."""
    return Path(str(resources.files("heron.models").joinpath("assets/heron-lite-e5-head.npz")))


def default_e5_centres_path() -> Path:
    """The per-language mean e5 vectors that heron-lite 2's e5 head was trained against."""
    return default_e5_head_path().with_name("heron-lite-e5-centres.npz")


def save_head(head: Head, path: Path) -> Path:
    """Write the head as fp16 `.npz` (keys `weight`, `bias`, `meta` = JSON text)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as out:
        np.savez_compressed(
            out,
            weight=head.weight.astype(np.float16),
            bias=head.bias.astype(np.float16),
            meta=np.array(json.dumps({"format": HEAD_FORMAT, **head.meta}, sort_keys=True)),
        )
    return path


def load_head(path: Path) -> Head:
    with np.load(path, allow_pickle=False) as data:
        meta = json.loads(str(data["meta"]))
        if meta.get("format") != HEAD_FORMAT:
            raise ValueError(f"{path} is not a heron-lite head (format {meta.get('format')!r})")
        return Head(
            weight=data["weight"].astype(np.float32),
            bias=data["bias"].astype(np.float32),
            meta=meta,
        )


def load_captions(
    jsonl: Path, split: str | None = None, lang: str = "en", images_dir: Path | None = None
) -> Captioned:
    """Read Flickr8k-style captions: one JSON object a line, `{"image", "split", lang: [...]}`.

    `split` keeps only records of that split (None keeps all); image paths are resolved against
    `images_dir` (default: the `images/` folder beside the file). Records without captions in
    `lang` are skipped.
    """
    images_dir = images_dir or jsonl.parent / "images"
    captioned: Captioned = []
    with jsonl.open(encoding="utf-8") as lines:
        for line in lines:
            if not line.strip():
                continue
            record = json.loads(line)
            if split is not None and record.get("split") != split:
                continue
            captions = [c for c in record.get(lang) or [] if c.strip()]
            if captions:
                captioned.append((images_dir / record["image"], captions))
    return captioned


def text_to_image_recall(
    image_vectors: np.ndarray, text_vectors: np.ndarray, pairs: np.ndarray
) -> dict[str, float]:
    """Recall@1/5/10 of finding each text's own image among all images (cosine, brute force)."""
    sims = text_vectors @ image_vectors.T
    own = sims[np.arange(len(pairs)), pairs]
    ranks = (sims > own[:, None]).sum(axis=1)
    return {f"R@{k}": float((ranks < k).mean()) for k in RECALL_KS}


def _mean_recall(recall: dict[str, float]) -> float:
    return sum(recall.values()) / len(recall)


def split_by_image(
    n_images: int, pairs: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Image indices (train, val) with about `fraction` of the images held out for validation."""
    images = np.unique(pairs)
    rng = np.random.default_rng(seed)
    n_val = max(1, round(len(images) * fraction))
    val = np.sort(rng.choice(images, size=n_val, replace=False))
    return np.setdiff1d(np.arange(n_images), val), val


def subset(
    image_features: np.ndarray, text_features: np.ndarray, pairs: np.ndarray, images: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The features of `images` and of their texts, with pairs renumbered into the subset."""
    keep = np.isin(pairs, images)
    remap = np.full(len(image_features), -1, dtype=np.int64)
    remap[images] = np.arange(len(images))
    return image_features[images], text_features[keep], remap[pairs[keep]]


def _one_text_per_image(pairs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Text indices, one random caption for each captioned image, in random order.

    One caption per image keeps duplicates out of a batch, where they would be false negatives.
    """
    perm = rng.permutation(len(pairs))
    _, first = np.unique(pairs[perm], return_index=True)
    return rng.permutation(perm[first])


def train_head(
    image_features: np.ndarray,
    text_features: np.ndarray,
    pairs: np.ndarray,
    val: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    config: TrainConfig = TrainConfig(),
    progress: Progress | None = None,
) -> Head:
    """Fit `normalise(norm(image_features) @ W + b)` to the texts with symmetric InfoNCE.

    `pairs[j]` is the index in `image_features` of the image that `text_features[j]` describes.
    `val` is (image_features, text_features, pairs) for early stopping on mean text→image
    Recall@1/5/10; without it, `config.val_fraction` of the images are held out. The temperature
    is fixed. Returns the weights of the best validation epoch, rounded to fp16 as they are saved.
    """
    import torch
    import torch.nn.functional as F

    pairs = np.asarray(pairs, dtype=np.int64)
    if val is None:
        train_images, val_images = split_by_image(
            len(image_features), pairs, config.val_fraction, config.seed
        )
        val = subset(image_features, text_features, pairs, val_images)
        image_features, text_features, pairs = subset(
            image_features, text_features, pairs, train_images
        )
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    images = torch.as_tensor(image_features, dtype=torch.float32)
    if config.input_norm:  # parameter-free, so once up front
        images = F.layer_norm(images, images.shape[-1:], eps=LAYER_NORM_EPS)
    texts = torch.as_tensor(text_features, dtype=torch.float32)
    linear = torch.nn.Linear(images.shape[1], texts.shape[1])
    optimiser = torch.optim.AdamW(
        linear.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    best = _Best()
    for epoch in range(1, config.max_epochs + 1):
        for batch in _batches(_one_text_per_image(pairs, rng), config.batch_size):
            image_vecs = F.normalize(linear(images[pairs[batch]]), dim=-1)
            loss = info_nce(image_vecs, texts[batch], config.temperature)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        head = _head_of(linear)
        recall = text_to_image_recall(
            project(val[0], head.weight, head.bias, config.input_norm), val[1], val[2]
        )
        best.offer(epoch, recall, head)
        if progress:
            progress(f"epoch {epoch}: loss {loss.item():.3f}, val {_format_recall(recall)}")
        if epoch - best.epoch >= config.patience:
            break
    best.head.meta = {
        "train": asdict(config),
        "best_epoch": best.epoch,
        "val_recall_lit": best.recall,
    }
    return best.head


def info_nce(image_vecs: Any, text_vecs: Any, temperature: float) -> Any:
    """Symmetric InfoNCE of matched rows (torch tensors): row i of each is a positive pair."""
    import torch
    import torch.nn.functional as F

    logits = image_vecs @ text_vecs.T / temperature
    target = torch.arange(len(logits))
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


@dataclass
class _Best:
    """The best epoch so far by mean validation recall."""

    epoch: int = 0
    recall: dict[str, float] = field(default_factory=dict)
    head: Head | None = None

    def offer(self, epoch: int, recall: dict[str, float], head: Head) -> None:
        if self.head is None or _mean_recall(recall) > _mean_recall(self.recall):
            self.epoch, self.recall, self.head = epoch, recall, head


def _head_of(linear: Any) -> Head:
    """The layer's current weights as a Head, rounded through fp16 exactly as `save_head` stores."""
    weight = linear.weight.detach().T.numpy()
    return Head(weight=_fp16(weight), bias=_fp16(linear.bias.detach().numpy()))


def _fp16(array: np.ndarray) -> np.ndarray:
    return array.astype(np.float16).astype(np.float32)


def _batches(indices: np.ndarray, size: int) -> list[np.ndarray]:
    return [indices[start : start + size] for start in range(0, len(indices), size)]


def project(
    image_features: np.ndarray, weight: np.ndarray, bias: np.ndarray, input_norm: bool = False
) -> np.ndarray:
    """Image features → L2-normalised head vectors (the LiT half of the bridge), in numpy."""
    if input_norm:
        centred = image_features - image_features.mean(axis=1, keepdims=True)
        image_features = centred / np.sqrt(centred.var(axis=1, keepdims=True) + LAYER_NORM_EPS)
    vectors = image_features @ weight + bias
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True).clip(min=1e-12)


def _format_recall(recall: dict[str, float]) -> str:
    return " ".join(f"{k} {v:.3f}" for k, v in recall.items())


def _flatten(captioned: Captioned) -> tuple[list[Path], list[str], np.ndarray]:
    paths = [path for path, _ in captioned]
    texts = [text for _, captions in captioned for text in captions]
    pairs = np.repeat(np.arange(len(captioned)), [len(c) for _, c in captioned])
    return paths, texts, pairs


def _existing(captioned: Captioned, progress: Progress | None) -> Captioned:
    kept = [(path, captions) for path, captions in captioned if path.is_file()]
    if progress and len(kept) < len(captioned):
        progress(f"skipping {len(captioned) - len(kept)} captioned images that do not exist")
    return kept


def train_adapter(
    captioned: Sequence[tuple[Path, list[str]]],
    out_path: Path,
    val: Sequence[tuple[Path, list[str]]] | None = None,
    config: TrainConfig = TrainConfig(),
    progress: Progress | None = None,
    data: str | None = None,
    licence: str | None = None,
) -> Head:
    """Train a heron-lite head on captioned images and save it to `out_path` (fp16 `.npz`).

    Computes EfficientNet-Lite0 features (the bundle's own preprocessing) and MiniLM caption
    vectors, trains with `train_head`, early-stopping on `val` (or on a held-out
    `config.val_fraction` of the images), and records the validation recall of the head alone and of
    the blend the bundle will compute. `data` and `licence` describe the captions for the model
    card. Pass the file to `build_heron_lite(head_path=...)`.
    """
    from heron.models.build import towers

    say = progress or (lambda _message: None)
    captioned = _existing(list(captioned), progress)
    if val is None:
        _, val_idx = split_by_image(
            len(captioned), np.arange(len(captioned)), config.val_fraction, config.seed
        )
        held = set(val_idx.tolist())
        val = [item for i, item in enumerate(captioned) if i in held]
        captioned = [item for i, item in enumerate(captioned) if i not in held]
    val = _existing(list(val), progress)
    if len(captioned) + len(val) < MIN_IMAGES or not val:
        raise ValueError(
            f"need at least {MIN_IMAGES} existing captioned images, some for validation"
        )

    backbone, text_tower = towers.load_backbone(), towers.load_text_tower()
    features = {}
    for name, items in (("train", captioned), ("val", val)):
        paths, texts, pairs = _flatten(items)
        say(f"{name}: embedding {len(paths)} images and {len(texts)} captions")
        pooled, logits = towers.image_features(paths, backbone, progress=progress)
        features[name] = (pooled, logits, towers.embed_texts(texts, text_tower), pairs)

    train_pooled, _, train_texts, train_pairs = features["train"]
    val_pooled, val_logits, val_texts, val_pairs = features["val"]
    head = train_head(
        train_pooled, train_texts, train_pairs, (val_pooled, val_texts, val_pairs), config, progress
    )
    blended = _blend_vectors(head, val_pooled, val_logits, towers.class_text_matrix(text_tower))
    head.meta.update(
        backbone=towers.BACKBONE,
        text_model=towers.TEXT_MODEL,
        train_images=len(captioned),
        train_captions=len(train_texts),
        val_images=len(val),
        val_captions=len(val_texts),
        alpha=towers.DEFAULT_ALPHA,
        val_recall_blend=text_to_image_recall(blended, val_texts, val_pairs),
        **{key: value for key, value in (("data", data), ("licence", licence)) if value},
    )
    save_head(head, out_path)
    say(f"saved {out_path}: val blend {_format_recall(head.meta['val_recall_blend'])}")
    return head


def _blend_vectors(
    head: Head, pooled: np.ndarray, logits: np.ndarray, class_text: np.ndarray
) -> np.ndarray:
    import torch

    from heron.models.build import towers

    with torch.inference_mode():
        return towers.bridge(
            torch.from_numpy(pooled),
            torch.from_numpy(logits),
            torch.from_numpy(head.weight),
            torch.from_numpy(head.bias),
            torch.from_numpy(class_text),
            towers.DEFAULT_ALPHA,
        ).numpy()


def train_adapter_from_jsonl(
    captions: Path,
    images_dir: Path,
    out_path: Path,
    lang: str = "en",
    config: TrainConfig = TrainConfig(),
    progress: Progress | None = None,
    data: str | None = None,
    licence: str | None = None,
) -> Head:
    """`heron adapter train`: train a head from a captions `.jsonl` and its image folder.

    Records with `"split": "val"` are the validation set when there are any; every other record is
    trained on. Without a val split, `config.val_fraction` of the images are held out. `data` and
    `licence` describe the captions for the model card.
    """
    records = load_captions(captions, lang=lang, images_dir=images_dir)
    val = load_captions(captions, split="val", lang=lang, images_dir=images_dir)
    val_paths = {path for path, _ in val}
    train = [item for item in records if item[0] not in val_paths]
    return train_adapter(train, out_path, val or None, config, progress, data, licence)
