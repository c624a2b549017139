"""heron-lite: LiT head training, the ConSE/LiT blend, and (slow) the full bundle build."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from heron.models.build import adapter
from heron.models.build.adapter import Head, TrainConfig

needs_torch = pytest.mark.skipif(
    importlib.util.find_spec("torch") is None, reason="needs the build extra (torch)"
)


def _synthetic(n_images: int, captions: int, seed: int) -> tuple[np.ndarray, ...]:
    """Image features and texts that are a noisy linear function of them (learnable)."""
    rng = np.random.default_rng(seed)
    mapping = np.random.default_rng(0).normal(size=(48, 16))
    images = rng.normal(size=(n_images, 48)).astype(np.float32)
    pairs = np.repeat(np.arange(n_images), captions)
    texts = images[pairs] @ mapping + 0.3 * rng.normal(size=(len(pairs), 16))
    texts /= np.linalg.norm(texts, axis=1, keepdims=True)
    return images, texts.astype(np.float32), pairs


def _loss(head: Head, images: np.ndarray, texts: np.ndarray, pairs: np.ndarray) -> float:
    import torch

    first = np.unique(pairs, return_index=True)[1]
    image_vecs = adapter.project(images[pairs[first]], head.weight, head.bias)
    image_vecs = torch.from_numpy(image_vecs.astype(np.float32))
    return adapter.info_nce(image_vecs, torch.from_numpy(texts[first]), 0.05).item()


FAST = TrainConfig(batch_size=32, max_epochs=40, patience=5, lr=1e-2)


@needs_torch
def test_train_head_learns_and_has_the_right_shapes() -> None:
    images, texts, pairs = _synthetic(160, 3, seed=1)
    val = _synthetic(40, 3, seed=2)
    head = adapter.train_head(images, texts, pairs, val=val, config=FAST)

    assert head.weight.shape == (48, 16) and head.bias.shape == (16,)
    assert head.weight.dtype == np.float32
    rng = np.random.default_rng(3)
    untrained = Head(rng.normal(size=(48, 16)) * 0.03, np.zeros(16))
    assert _loss(head, *val) < 0.5 * _loss(untrained, *val)
    # 40 candidates: chance R@1 is 0.025.
    assert head.meta["val_recall_lit"]["R@1"] > 0.5
    assert 1 <= head.meta["best_epoch"] <= FAST.max_epochs


@needs_torch
def test_train_head_holds_out_images_without_val() -> None:
    images, texts, pairs = _synthetic(100, 2, seed=4)
    head = adapter.train_head(images, texts, pairs, config=FAST)
    assert head.meta["val_recall_lit"]["R@10"] > 0.5


def test_one_text_per_image_picks_each_image_once() -> None:
    pairs = np.array([0, 0, 0, 1, 2, 2, 4])
    chosen = adapter._one_text_per_image(pairs, np.random.default_rng(0))
    assert sorted(pairs[chosen].tolist()) == [0, 1, 2, 4]


def test_save_load_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    head = Head(rng.normal(size=(1280, 384)).astype(np.float32), rng.normal(size=384), {"x": 1})
    path = adapter.save_head(head, tmp_path / "sub" / "head.npz")

    loaded = adapter.load_head(path)
    assert loaded.weight.dtype == np.float32 and loaded.weight.shape == (1280, 384)
    np.testing.assert_array_equal(loaded.weight, head.weight.astype(np.float16).astype(np.float32))
    np.testing.assert_array_equal(loaded.bias, head.bias.astype(np.float16).astype(np.float32))
    assert loaded.meta["x"] == 1
    assert path.stat().st_size < 1_100_000


def test_load_head_rejects_other_npz(tmp_path: Path) -> None:
    path = tmp_path / "other.npz"
    np.savez(path, weight=np.zeros((2, 2)), bias=np.zeros(2), meta=np.array("{}"))
    with pytest.raises(ValueError, match="not a heron-lite head"):
        adapter.load_head(path)


def test_shipped_head_loads() -> None:
    head = adapter.load_head(adapter.default_head_path())
    assert head.weight.shape == (1280, 384) and head.bias.shape == (384,)
    assert head.meta["backbone"] == "efficientnet-lite0"
    assert head.meta["val_recall_blend"]["R@10"] >= 0.55


def test_load_captions(tmp_path: Path) -> None:
    jsonl = tmp_path / "captions.jsonl"
    rows = [
        {"image": "a.jpg", "split": "train", "en": ["a dog", "  "], "zh": ["狗"]},
        {"image": "b.jpg", "split": "val", "en": ["a cat"]},
        {"image": "c.jpg", "split": "train", "en": []},
    ]
    jsonl.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n", encoding="utf-8")

    assert adapter.load_captions(jsonl, split="train") == [(tmp_path / "images/a.jpg", ["a dog"])]
    assert [p.name for p, _ in adapter.load_captions(jsonl)] == ["a.jpg", "b.jpg"]
    assert adapter.load_captions(jsonl, lang="zh", images_dir=Path("/x")) == [
        (Path("/x/a.jpg"), ["狗"])
    ]


def test_text_to_image_recall() -> None:
    images = np.eye(3, dtype=np.float32)
    texts = np.array([[1, 0, 0], [0.1, 0.9, 0], [0, 1, 0]], dtype=np.float32)
    recall = adapter.text_to_image_recall(images, texts, np.array([0, 1, 2]))
    # Text 2 ranks image 1 first and its own image 2 second.
    assert recall == {"R@1": pytest.approx(2 / 3), "R@5": 1.0, "R@10": 1.0}


def _normalise(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


@needs_torch
def test_conse_lit_blend_math() -> None:
    import torch

    from heron.models.build.towers import Bridge, BridgedVisual

    class FakeBackbone(torch.nn.Module):
        def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return torch.from_numpy(pooled), torch.from_numpy(logits)

    rng = np.random.default_rng(6)
    pooled = rng.normal(size=(2, 8)).astype(np.float32)
    logits = rng.normal(size=(2, 20)).astype(np.float32) * 3
    weight, bias = rng.normal(size=(8, 6)), rng.normal(size=6)
    class_text = _normalise(rng.normal(size=(20, 6)))

    lit = _normalise(pooled @ weight + bias)
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    conse = np.zeros((2, 6))
    for row in range(2):
        for c in np.argsort(-probs[row])[:4]:
            conse[row] += probs[row, c] * class_text[c]
    conse = _normalise(conse)

    def run(alpha: float) -> np.ndarray:
        visual = BridgedVisual(FakeBackbone(), [Bridge(weight, bias, class_text, alpha, 4)])
        with torch.inference_mode():
            return visual(torch.zeros(2, 3, 4, 4)).numpy()

    np.testing.assert_allclose(run(1.0), lit, atol=1e-5)
    np.testing.assert_allclose(run(0.0), conse, atol=1e-5)
    np.testing.assert_allclose(run(0.6), _normalise(0.6 * lit + 0.4 * conse), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(run(0.6), axis=1), 1.0, atol=1e-5)


@needs_torch
@pytest.mark.slow
def test_build_heron_lite_1(tmp_path: Path) -> None:
    import onnxruntime as ort

    from heron.models.build.lite import build_heron_lite

    messages: list[str] = []
    bundle = build_heron_lite(tmp_path / "heron-lite", progress=messages.append, version="1.0")

    assert {p.name for p in bundle.iterdir()} == {
        "config.json",
        "visual.onnx",
        "textual.onnx",
        "tokenizer.json",
        "MODEL_CARD.md",
    }
    config = json.loads((bundle / "config.json").read_text())
    assert config["model_id"] == "heron-lite" and config["version"] == "1.0"
    assert config["dim"] == 384 and config["bridge"]["alpha"] == 0.6
    assert config["languages"] == ["en"]
    assert config["image"]["mean"][0] * 255 == pytest.approx(127)
    assert config["image"]["std"][0] * 255 == pytest.approx(128)
    assert "$" not in (bundle / "MODEL_CARD.md").read_text()
    assert any("visual.onnx matches" in m for m in messages)

    visual = ort.InferenceSession(str(bundle / "visual.onnx"), providers=["CPUExecutionProvider"])
    pixels = np.random.default_rng(0).uniform(-1, 1, size=(5, 3, 224, 224)).astype(np.float32)
    vectors = visual.run(["embedding"], {"pixel_values": pixels})[0]
    assert vectors.shape == (5, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert [i.name for i in ort.InferenceSession(str(bundle / "textual.onnx")).get_inputs()] == [
        "input_ids",
        "attention_mask",
    ]


@needs_torch
@pytest.mark.slow
def test_build_heron_lite_2_bilingual(tmp_path: Path, heron_lite: Path) -> None:
    from heron.models.build.lite import build_heron_lite
    from heron.models.encoder import load_encoder

    messages: list[str] = []
    bundle = build_heron_lite(tmp_path / "heron-lite", progress=messages.append)
    assert {p.name for p in bundle.iterdir()} == {
        "config.json",
        "visual.onnx",
        "textual.onnx",
        "textual-e5.onnx",
        "tokenizer.json",
        "tokenizer-e5.json",
        "textual-e5-centres.npz",
        "MODEL_CARD.md",
    }
    config = json.loads((bundle / "config.json").read_text())
    assert (config["format"], config["version"], config["dim"]) == ("heron-bundle/2", "2.0", 768)
    assert config["languages"] == ["en", "zh"]
    assert [t["query_prefix"] for t in config["text"]] == ["", "query: "]
    assert [t["passage_prefix"] for t in config["text"]] == ["", "passage: "]
    card = (bundle / "MODEL_CARD.md").read_text()
    assert "$" not in card and "MIT" in card and "research use only" in card
    assert any("textual-e5.onnx matches" in m for m in messages)
    # The 4-bit word table stays inside the graph: far below the 470 MB of an fp32 export.
    assert (bundle / "textual-e5.onnx").stat().st_size < 100_000_000
    # Deterministic: the same build as the registry's (conftest's) heron-lite.
    built, shipped = load_encoder(bundle), load_encoder(heron_lite)
    texts = ["一只狗在海滩上奔跑", "a dog running on the beach"]
    np.testing.assert_allclose(built.embed_texts(texts), shipped.embed_texts(texts), atol=1e-5)


@needs_torch
def test_bilingual_visual_concatenates_scaled_bridges() -> None:
    import torch

    from heron.models.build.towers import Bridge, BridgedVisual

    rng = np.random.default_rng(7)
    pooled = rng.normal(size=(3, 8)).astype(np.float32)
    logits = rng.normal(size=(3, 20)).astype(np.float32)

    class FakeBackbone(torch.nn.Module):
        def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return torch.from_numpy(pooled), torch.from_numpy(logits)

    halves = [
        Bridge(
            rng.normal(size=(8, 6)), rng.normal(size=6), _normalise(rng.normal(size=(20, 6))), 1.0
        ),
        Bridge(
            rng.normal(size=(8, 4)),
            rng.normal(size=4),
            _normalise(rng.normal(size=(20, 4))),
            1.0,
            input_norm=True,
        ),
    ]
    with torch.inference_mode():
        vectors = BridgedVisual(FakeBackbone(), halves, [0.6, 0.8])(torch.zeros(3, 3, 4, 4)).numpy()
    first = _normalise(pooled @ halves[0].weight.numpy() + halves[0].bias.numpy())
    normed = (pooled - pooled.mean(1, keepdims=True)) / np.sqrt(pooled.var(1, keepdims=True) + 1e-5)
    second = _normalise(normed @ halves[1].weight.numpy() + halves[1].bias.numpy())
    np.testing.assert_allclose(vectors[:, :6], 0.6 * first, atol=1e-5)
    np.testing.assert_allclose(vectors[:, 6:], 0.8 * second, atol=1e-5)
    np.testing.assert_allclose(
        adapter.project(pooled, halves[1].weight.numpy(), halves[1].bias.numpy(), True),
        second,
        atol=1e-5,
    )


@needs_torch
@pytest.mark.slow
def test_user_trains_a_head_and_builds_with_it(tmp_path: Path) -> None:
    from PIL import Image

    from heron.models.build.lite import build_heron_lite

    images = tmp_path / "photos"
    images.mkdir()
    colours = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}
    rows = []
    for i in range(24):
        name, rgb = list(colours.items())[i % 3]
        Image.new("RGB", (64 + i, 48), rgb).save(images / f"{i}.png")
        rows.append({"image": f"{i}.png", "en": [f"a plain {name} square", f"{name} colour"]})
    captions = tmp_path / "mine.jsonl"
    captions.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")

    out = tmp_path / "head.npz"
    head = adapter.train_adapter_from_jsonl(
        captions, images, out, config=TrainConfig(max_epochs=5), licence="mine"
    )
    assert head.meta["train_images"] + head.meta["val_images"] == 24
    assert adapter.load_head(out).meta["licence"] == "mine"

    bundle = build_heron_lite(tmp_path / "bundle", head_path=out)
    config = json.loads((bundle / "config.json").read_text())
    assert config["version"].startswith("2.0+head.")
    assert "LiT head: mine" in (bundle / "MODEL_CARD.md").read_text()


def test_shipped_e5_head_and_centres_load() -> None:
    head = adapter.load_head(adapter.default_e5_head_path())
    assert head.weight.shape == (1280, 384) and head.input_norm
    assert head.meta["text_model"] == "multilingual-e5-small"
    recall = head.meta["eval_recall"]
    assert recall["zh"]["R@10"] >= 0.36 and recall["en"]["R@10"] >= recall["en_minilm"]["R@10"]
    with np.load(adapter.default_e5_centres_path()) as centres:
        assert set(centres.files) == {"query.en", "query.zh", "passage.en", "passage.zh"}
        assert all(centres[key].shape == (384,) for key in centres.files)
