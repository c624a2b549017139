"""Bundle formats, the ONNX runtime and the model registry, with no download and no real weights.

The hub layout is proven with a random-weight open_clip ViT-B-32 exported the way immich exports
its models; the heron layout with a tiny random two-tower bundle.
"""

from __future__ import annotations

import json
import shutil
import sys
import threading
import time
import types
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")
open_clip = pytest.importorskip("open_clip")

from heron.models import registry  # noqa: E402
from heron.models.bundle import OPENAI_MEAN, OPENAI_STD, BundleError, read_bundle  # noqa: E402
from heron.models.encoder import Encoder, load_encoder  # noqa: E402
from heron.models.preprocess import to_pixels  # noqa: E402
from tests.fixtures.hub_layout import fake_hub_bundle  # noqa: E402
from tests.fixtures.random_clip import RandomClip, build_random_clip  # noqa: E402
from tests.fixtures.random_mclip import (  # noqa: E402
    RandomMclip,
    build_random_mclip,
    xlmr_tokenizer_file,
)
from tests.fixtures.tiny_heron import PREFIX, TinyHeron, build_tiny_heron  # noqa: E402

ENGLISH = [
    "a photo of a cat.",
    "Hello, World!! What's up?",
    "The year 2024 had 366 days; pi = 3.14159",
    "UPPER lower MiXeD CaSe",
    "  lots   of\twhitespace\n here ",
    "it's we're they'll I'd you've I'm don't",
    "e-mail: someone@example.com #hashtag $100 50% (parens) [brackets] {braces}",
    "café naïve Zürich crème brûlée",
    "cafe\u0301 decomposed accents",
    "東京タワー and 北京",
    "emoji 🐶🚀 test",
    "Ελληνικά русский",
    "it’s a dog’s life, “quoted”",
    "",
    "a very long caption " * 30,
]


# ---- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def clip_bundle(tmp_path_factory: pytest.TempPathFactory) -> RandomClip:
    return build_random_clip(tmp_path_factory.mktemp("hub") / "ViT-B-32__openai")


@pytest.fixture(scope="session")
def clip_encoder(clip_bundle: RandomClip) -> Encoder:
    return load_encoder(clip_bundle.path, threads=2)


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> TinyHeron:
    return build_tiny_heron(tmp_path_factory.mktemp("heron") / "tiny-heron")


@pytest.fixture
def models_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "models"
    monkeypatch.setenv("HERON_MODELS_DIR", str(root))
    return root


def _images() -> list[Image.Image]:
    rng = np.random.default_rng(0)
    noise = Image.fromarray(rng.integers(0, 256, (180, 260, 3), dtype=np.uint8))
    gradient = np.linspace(0, 255, 300 * 200, dtype=np.float32).reshape(200, 300)
    return [
        noise,
        Image.fromarray(gradient.astype(np.uint8), mode="L"),
        Image.new("RGB", (224, 224), (200, 30, 40)),
        Image.new("RGBA", (64, 500), (10, 200, 90, 128)),
    ]


def _fake_hub_bundle(root: Path, drop: str | None = None) -> Path:
    from tests.fixtures.random_clip import clip_tokenizer

    return fake_hub_bundle(root, clip_tokenizer(), drop)


# ---- hub layout: reading ------------------------------------------------------------------------


def test_read_bundle_maps_hub_layout(clip_bundle: RandomClip) -> None:
    config = read_bundle(clip_bundle.path)
    assert config.layout == "hub"
    assert config.model_id == "ViT-B-32__openai"
    assert config.version == "hub"
    assert config.stamp == "ViT-B-32__openai@hub"
    assert config.dim == 512
    assert config.image.size == 224
    assert config.image.interpolation == "bicubic"
    assert config.image.resize_mode == "shortest_crop"
    assert config.image.mean == pytest.approx(OPENAI_MEAN)
    assert config.image.std == pytest.approx(OPENAI_STD)
    assert config.context_length == 77
    assert config.pad_id == 49407  # tokenizer_config.json's pad_token, <|endoftext|>
    assert config.pad_to_context
    assert config.visual_path == clip_bundle.path / "visual" / "model.onnx"
    assert config.tokenizer_path == clip_bundle.path / "textual" / "tokenizer.json"


def test_hub_preprocess_falls_back_to_model_config(tmp_path: Path) -> None:
    root = _fake_hub_bundle(tmp_path / "ViT-X__y", drop="visual/preprocess_cfg.json")
    config = read_bundle(root)
    assert config.image.size == 224
    assert config.image.mean == pytest.approx(OPENAI_MEAN)
    assert config.pad_id == 0  # no tokenizer_config.json and no padding in tokenizer.json


def test_hub_siglip_style_config(tmp_path: Path) -> None:
    root = _fake_hub_bundle(tmp_path / "ViT-B-16-SigLIP2__webli")
    config = json.loads((root / "config.json").read_text())
    config["text_cfg"] = {"context_length": 64, "tokenizer_kwargs": {"clean": "canonicalize"}}
    (root / "config.json").write_text(json.dumps(config))
    preprocess = {"size": 256, "mean": [0.5] * 3, "std": [0.5] * 3, "resize_mode": "squash"}
    (root / "visual" / "preprocess_cfg.json").write_text(json.dumps(preprocess))
    bundle = read_bundle(root)
    assert (bundle.context_length, bundle.image.size, bundle.image.resize_mode) == (
        64,
        256,
        "squash",
    )
    assert bundle.text_clean == "canonicalize"


# ---- hub layout: tokenizer and embeddings -------------------------------------------------------


def test_clip_tokenizer_matches_open_clip(clip_encoder: Encoder) -> None:
    ours = clip_encoder.tokenize(ENGLISH[:1])["text"]
    assert ours.dtype == np.int32 and ours.shape == (1, 77)  # as the ONNX input declares
    reference = open_clip.tokenize(ENGLISH).numpy()
    for text, expected in zip(ENGLISH, reference, strict=True):
        ids = clip_encoder.tokenize([text])["text"][0].astype(np.int64)
        # The hub pads with <|endoftext|>, open_clip with 0: compare up to the first EOS.
        end = int(np.argmax(ids == 49407)) + 1
        ids[end:] = 0
        assert ids.tolist() == expected.tolist(), text


def test_clip_embeddings_shape_norm_and_torch_parity(
    clip_bundle: RandomClip, clip_encoder: Encoder
) -> None:
    images = _images()
    vectors = clip_encoder.embed_images(images, batch_size=3)
    assert vectors.shape == (len(images), 512) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)

    pixels = np.stack([to_pixels(image, clip_encoder.image_spec) for image in images])
    np.testing.assert_allclose(clip_encoder.embed_pixels(pixels), vectors, atol=1e-6)
    with torch.no_grad():
        expected = clip_bundle.model.encode_image(torch.from_numpy(pixels), normalize=True)
    assert np.abs(vectors - expected.numpy()).max() < 1e-3

    texts = ENGLISH[:6]
    text_vectors = clip_encoder.embed_texts(texts)
    assert text_vectors.shape == (len(texts), 512)
    np.testing.assert_allclose(np.linalg.norm(text_vectors, axis=1), 1.0, atol=1e-5)
    with torch.no_grad():
        expected = clip_bundle.model.encode_text(open_clip.tokenize(texts), normalize=True)
    assert np.abs(text_vectors - expected.numpy()).max() < 1e-3


def test_clip_embeddings_deterministic_across_loads(clip_bundle: RandomClip) -> None:
    images, texts = _images()[:2], ["a dog on a beach", "Zürich at night"]
    first = load_encoder(clip_bundle.path, threads=1)
    second = load_encoder(clip_bundle.path, threads=2)
    np.testing.assert_allclose(first.embed_images(images), second.embed_images(images), atol=1e-6)
    np.testing.assert_allclose(first.embed_texts(texts), second.embed_texts(texts), atol=1e-6)


def test_clip_text_batch_equals_single(clip_encoder: Encoder) -> None:
    texts = ["a dog", "a photo of a red car parked on a street at night", "x", ""]
    batch = clip_encoder.embed_texts(texts)
    singles = np.concatenate([clip_encoder.embed_texts([text]) for text in texts])
    np.testing.assert_allclose(batch, singles, atol=1e-5)


def test_towers_load_lazily(clip_bundle: RandomClip) -> None:
    encoder = load_encoder(clip_bundle.path)
    assert encoder.loaded == ()
    encoder.embed_texts(["a cat"])
    assert encoder.loaded == ("textual",)
    encoder.embed_images(_images()[:1])
    assert encoder.loaded == ("visual", "textual")


# ---- heron layout -------------------------------------------------------------------------------


def test_heron_layout_reads_and_matches_torch(tiny: TinyHeron) -> None:
    config = read_bundle(tiny.path)
    assert (config.layout, config.model_id, config.version, config.dim) == (
        "heron",
        "tiny-heron",
        "0.1",
        16,
    )
    assert config.image.size == 32 and config.image.interpolation == "bilinear"
    assert config.card_path == tiny.path / "MODEL_CARD.md"
    encoder = load_encoder(tiny.path)
    assert encoder.stamp == "tiny-heron@0.1"

    images = _images()
    vectors = encoder.embed_images(images)
    pixels = np.stack([to_pixels(image, encoder.image_spec) for image in images])
    with torch.no_grad():
        expected = torch.nn.functional.normalize(tiny.visual(torch.from_numpy(pixels)), dim=-1)
    np.testing.assert_allclose(vectors, expected.numpy(), atol=1e-5)

    texts = ["a photo of cats", "the red car", "snow on a mountain in the picture"]
    feeds = encoder.tokenize(texts)
    assert set(feeds) == {"input_ids", "attention_mask"} and feeds["input_ids"].dtype == np.int64
    expected_ids = tiny.tokenizer.encode(PREFIX + texts[0]).ids
    assert feeds["input_ids"][0][: len(expected_ids)].tolist() == expected_ids
    with torch.no_grad():
        ids, mask = (torch.from_numpy(feeds[key]) for key in ("input_ids", "attention_mask"))
        expected = torch.nn.functional.normalize(tiny.textual(ids, mask), dim=-1)
    np.testing.assert_allclose(encoder.embed_texts(texts), expected.numpy(), atol=1e-5)


def test_heron_text_batch_equals_single_and_truncates(tiny: TinyHeron) -> None:
    encoder = load_encoder(tiny.path)
    texts = ["dog", "a photo of a red car on the beach in the snow", "cat " * 50, ""]
    batch = encoder.embed_texts(texts, batch_size=3)
    singles = np.concatenate([encoder.embed_texts([text]) for text in texts])
    np.testing.assert_allclose(batch, singles, atol=1e-6)
    assert encoder.tokenize(["cat " * 50])["input_ids"].shape == (1, 16)
    assert encoder.embed_texts([]).shape == (0, 16)
    assert encoder.embed_images([]).shape == (0, 16)
    with pytest.raises(TypeError):
        encoder.embed_texts("a single string")


def test_embed_pixels_rejects_wrong_shape(tiny: TinyHeron) -> None:
    with pytest.raises(ValueError, match=r"\[N,3,32,32\]"):
        load_encoder(tiny.path).embed_pixels(np.zeros((1, 3, 224, 224), dtype=np.float32))


# ---- malformed bundles --------------------------------------------------------------------------


def test_missing_textual_model(tmp_path: Path) -> None:
    root = _fake_hub_bundle(tmp_path / "m", drop="textual/model.onnx")
    with pytest.raises(BundleError, match=r"missing textual/model\.onnx") as info:
        read_bundle(root)
    assert info.value.path == root and str(root) in str(info.value)


def test_broken_config_json(tmp_path: Path) -> None:
    root = _fake_hub_bundle(tmp_path / "m")
    (root / "config.json").write_text('{"embed_dim": 512,')
    with pytest.raises(BundleError, match=r"config\.json is not valid JSON"):
        read_bundle(root)


def test_config_without_embed_dim(tmp_path: Path) -> None:
    root = _fake_hub_bundle(tmp_path / "m")
    (root / "config.json").write_text(json.dumps({"vision_cfg": {}, "text_cfg": {}}))
    with pytest.raises(BundleError, match="embed_dim"):
        read_bundle(root)


def test_unsupported_resize_mode(tmp_path: Path) -> None:
    root = _fake_hub_bundle(tmp_path / "m")
    (root / "visual" / "preprocess_cfg.json").write_text(json.dumps({"resize_mode": "longest"}))
    with pytest.raises(BundleError, match="resize_mode 'longest'"):
        read_bundle(root)


@pytest.mark.parametrize("make", ["nothing", "empty", "file"])
def test_not_a_bundle(tmp_path: Path, make: str) -> None:
    target = tmp_path / "x"
    if make == "empty":
        target.mkdir()
    elif make == "file":
        target.write_text("hi")
    with pytest.raises(BundleError, match=str(target)):
        read_bundle(target)


def test_heron_wrong_format_and_missing_files(tmp_path: Path, tiny: TinyHeron) -> None:
    root = tmp_path / "b"
    shutil.copytree(tiny.path, root)
    config = json.loads((root / "config.json").read_text())
    (root / "config.json").write_text(json.dumps({**config, "format": "heron-bundle/9"}))
    with pytest.raises(BundleError, match="heron-bundle/9"):
        read_bundle(root)
    (root / "config.json").write_text(json.dumps(config))
    (root / "tokenizer.json").unlink()
    with pytest.raises(BundleError, match=r"missing tokenizer\.json"):
        read_bundle(root)


def test_heron_languages_are_read_and_checked(tmp_path: Path, tiny: TinyHeron) -> None:
    root = tmp_path / "b"
    shutil.copytree(tiny.path, root)
    config = json.loads((root / "config.json").read_text())
    assert read_bundle(root).languages == ()  # not stated: unknown, never warned about
    (root / "config.json").write_text(json.dumps({**config, "languages": ["EN", "de"]}))
    assert read_bundle(root).languages == ("en", "de")
    (root / "config.json").write_text(json.dumps({**config, "languages": "en"}))
    with pytest.raises(BundleError, match='"languages" must be a list'):
        read_bundle(root)


def test_corrupt_onnx_fails_on_first_use_naming_the_file(tmp_path: Path, tiny: TinyHeron) -> None:
    root = tmp_path / "b"
    shutil.copytree(tiny.path, root)
    (root / "visual.onnx").write_bytes(b"not an onnx graph")
    encoder = load_encoder(root)  # reading the config does not open the graphs
    assert encoder.embed_texts(["a cat"]).shape == (1, 16)
    with pytest.raises(BundleError, match=r"visual\.onnx cannot be loaded"):
        encoder.embed_images(_images()[:1])


# ---- registry -----------------------------------------------------------------------------------


def test_pull_offline_fails_fast(models_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(registry.ModelUnavailableError) as info:
        registry.pull("immich-app/ViT-B-32__openai")
    assert time.monotonic() - start < 5
    message = str(info.value)
    assert "could not be downloaded" in message and "directory" in message


def test_pull_unreachable_hub_fails_fast(models_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    # conftest turns offline mode on before huggingface_hub reads it; undo both, for this test.
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # discard port: nothing listens
    start = time.monotonic()
    with pytest.raises(registry.ModelUnavailableError, match="could not be reached") as info:
        registry.resolve("ViT-B-32__openai")
    assert time.monotonic() - start < 5
    assert "OfflineMode" not in str(info.value)


def test_resolve_local_paths_and_names(
    models_dir: Path, tiny: TinyHeron, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert registry.resolve(tiny.path) == tiny.path
    assert registry.resolve(str(tiny.path)) == tiny.path
    with pytest.raises(registry.ModelUnavailableError, match="no model directory"):
        registry.resolve(str(tiny.path.parent / "missing"))
    with pytest.raises(registry.ModelUnavailableError, match="unknown model"):
        registry.resolve("no-such-model")

    shutil.copytree(tiny.path, models_dir / "mine")
    shutil.copytree(tiny.path, models_dir / "some-org" / "some-repo")
    assert registry.resolve("mine") == models_dir / "mine"
    assert registry.resolve("some-org/some-repo") == models_dir / "some-org" / "some-repo"
    with pytest.raises(registry.ModelUnavailableError, match="not downloaded"):
        registry.resolve("immich-app/ViT-B-32__openai", build_if_missing=False)


def test_list_models(models_dir: Path, tiny: TinyHeron) -> None:
    shutil.copytree(tiny.path, models_dir / "mine")
    shutil.copytree(tiny.path, models_dir / "immich-app" / "ViT-B-32__openai")
    (models_dir / "broken").mkdir()
    (models_dir / "broken" / "config.json").write_text("{")
    infos = {info.name: info for info in registry.list_models()}
    assert infos["heron-lite"].status == "not built"
    assert "Chinese" in infos["heron-lite"].description
    assert infos["heron-lite@1.0"].status == "not built"
    assert "Chinese" in infos["immich-app/XLM-Roberta-Large-Vit-B-16Plus"].description
    assert "Chinese" in infos["immich-app/nllb-clip-base-siglip__v1"].description
    assert infos["immich-app/ViT-B-32__openai"].status == "downloaded"
    assert infos["immich-app/ViT-B-16-SigLIP2__webli"].status == "not downloaded"
    assert (infos["mine"].source, infos["mine"].status) == ("local", "present")
    assert infos["mine"].to_dict()["path"] == str(models_dir / "mine")
    assert infos["broken"].status == "broken" and "JSON" in (infos["broken"].problem or "")


def test_models_dir_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HERON_MODELS_DIR", raising=False)
    assert registry.models_dir().parts[-2:] == ("heron", "models")


# ---- registry: building heron-lite (with a stand-in builder) ------------------------------------


def _fake_lite(monkeypatch: pytest.MonkeyPatch, build: object) -> None:
    module = types.ModuleType("heron.models.build.lite")
    module.build_heron_lite = build  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "heron.models.build.lite", module)


def test_lite_built_once_atomically(
    models_dir: Path, tiny: TinyHeron, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[Path] = []

    def build(out_dir: Path, progress: object = None, version: str = "") -> None:
        calls.append(out_dir)
        assert version == "2.0"
        assert not (models_dir / "heron-lite@2.0").exists()  # built aside, renamed when complete
        time.sleep(0.3)
        shutil.copytree(tiny.path, out_dir, dirs_exist_ok=True)

    _fake_lite(monkeypatch, build)
    results: list[Path] = []
    threads = [threading.Thread(target=lambda: results.append(registry.resolve("heron-lite")))]
    threads.append(threading.Thread(target=lambda: results.append(registry.resolve("heron-lite"))))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1
    assert results == [models_dir / "heron-lite@2.0"] * 2
    assert read_bundle(models_dir / "heron-lite@2.0").model_id == "tiny-heron"
    assert [p.name for p in models_dir.iterdir() if p.name.startswith(".heron-lite")] == []


def test_lite_failed_build_leaves_nothing(
    models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def build(out_dir: Path, progress: object = None, version: str = "") -> None:
        (out_dir / "config.json").write_text("{}")
        out_dir.with_name(out_dir.name + ".partial").mkdir()  # a builder's own temp dir
        raise RuntimeError("killed halfway")

    _fake_lite(monkeypatch, build)
    with pytest.raises(RuntimeError, match="killed halfway"):
        registry.resolve("heron-lite")
    assert [p.name for p in models_dir.iterdir() if not p.name.startswith(".locks")] == []
    with pytest.raises(registry.ModelUnavailableError, match="not built"):
        registry.resolve("heron-lite", build_if_missing=False)


def test_lite_without_build_extra(models_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def build(out_dir: Path, progress: object = None, version: str = "") -> None:
        raise ModuleNotFoundError("No module named 'torch'", name="torch")

    _fake_lite(monkeypatch, build)
    with pytest.raises(registry.ModelUnavailableError, match=r"heron-search\[build\]"):
        registry.resolve("heron-lite")


def test_lite_forced_rebuild_replaces_atomically(
    models_dir: Path, tiny: TinyHeron, monkeypatch: pytest.MonkeyPatch
) -> None:
    versions = iter(["1.0", "2.0"])

    def build(out_dir: Path, progress: object = None, version: str = "") -> Path:
        # Like the real builder: writes beside out_dir, then moves its work into place.
        partial = out_dir.with_name(out_dir.name + ".partial")
        shutil.copytree(tiny.path, partial)
        config = json.loads((partial / "config.json").read_text())
        (partial / "config.json").write_text(json.dumps({**config, "version": next(versions)}))
        shutil.rmtree(out_dir)
        partial.rename(out_dir)
        return out_dir

    _fake_lite(monkeypatch, build)
    messages: list[str] = []
    assert read_bundle(registry.build("heron-lite", progress=messages.append)).version == "1.0"
    assert read_bundle(registry.build("heron-lite")).version == "1.0"  # present: not rebuilt
    assert read_bundle(registry.build("heron-lite", force=True)).version == "2.0"
    assert sorted(p.name for p in models_dir.iterdir()) == [".locks", "heron-lite@2.0"]
    assert any("building heron-lite@2.0" in message for message in messages)
    with pytest.raises(registry.ModelUnavailableError, match="only heron-lite"):
        registry.build("immich-app/ViT-B-32__openai")


def test_lite_versions_resolve_by_name_and_stamp(
    models_dir: Path, tiny: TinyHeron, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[str] = []

    def build(out_dir: Path, progress: object = None, version: str = "") -> None:
        built.append(version)
        shutil.copytree(tiny.path, out_dir, dirs_exist_ok=True)
        config = json.loads((out_dir / "config.json").read_text())
        config.update(model_id="heron-lite", version=version)
        (out_dir / "config.json").write_text(json.dumps(config))

    _fake_lite(monkeypatch, build)
    # Heron before 2.0 built 1.0 into models/heron-lite: that copy still serves heron-lite@1.0.
    legacy = models_dir / "heron-lite"
    build(legacy, version="1.0")
    built.clear()
    assert registry.resolve("heron-lite@1.0") == legacy
    assert registry.resolve("heron-lite") == models_dir / "heron-lite@2.0"
    assert built == ["2.0"]
    assert registry.resolve("heron-lite@2.0") == models_dir / "heron-lite@2.0"
    assert built == ["2.0"]
    infos = {info.name: info for info in registry.list_models()}
    assert infos["heron-lite@1.0"].path == legacy and infos["heron-lite@1.0"].status == "built"
    assert "heron-lite@2.0" not in infos  # the latest is listed as plain heron-lite
    with pytest.raises(registry.ModelUnavailableError, match=r"heron-lite@1\.0, heron-lite@2\.0"):
        registry.resolve("heron-lite@3.0")
    assert registry.name_for_stamp("heron-lite@1.0") == "heron-lite@1.0"
    assert registry.name_for_stamp("heron-lite@2.0") == "heron-lite"
    assert registry.name_for_stamp("ViT-B-32__openai@hub") == "ViT-B-32__openai"


# ---- several text towers (heron-bundle/2) -------------------------------------------------------


def _two_tower_bundle(root: Path, tiny: TinyHeron, **second: object) -> Path:
    """tiny's graphs as a bilingual bundle: an English tower and an English+Chinese one with
    prefixes and centres, each filling 16 of 32 dimensions."""
    shutil.copytree(tiny.path, root)
    rng = np.random.default_rng(1)
    centres = {"query.en": rng.normal(size=16) * 0.1, "query.zh": rng.normal(size=16) * 0.1}
    np.savez(root / "centres.npz", **{k: v.astype(np.float32) for k, v in centres.items()})
    config = json.loads((root / "config.json").read_text())
    first = {
        **config["text"],
        "model": "textual.onnx",
        "tokenizer": "tokenizer.json",
        "prefix": "",
        "languages": ["en"],
        "span": [0, 16],
        "weight": 0.6,
    }
    second_tower = {
        "model": "textual.onnx",
        "tokenizer": "tokenizer.json",
        "context_length": 16,
        "query_prefix": "query: ",
        "passage_prefix": "passage: ",
        "languages": ["en", "zh"],
        "span": [16, 32],
        "weight": 0.8,
        "centres": "centres.npz",
        **second,
    }
    config.update(format="heron-bundle/2", dim=32, text=[first, second_tower])
    config.pop("languages", None)
    (root / "config.json").write_text(json.dumps(config))
    return root


def _tiny_text(tiny: TinyHeron, text: str) -> np.ndarray:
    """tiny's text tower in torch: the unit vector of one text."""
    ids = torch.tensor([tiny.tokenizer.encode(text).ids])
    with torch.no_grad():
        vector = tiny.textual(ids, torch.ones_like(ids))[0].numpy()
    return vector / np.linalg.norm(vector)


def _unit(vector: np.ndarray) -> np.ndarray:
    return vector / np.linalg.norm(vector)


def test_two_text_towers_fill_their_spans_by_script(tmp_path: Path, tiny: TinyHeron) -> None:
    bundle = _two_tower_bundle(tmp_path / "bi", tiny)
    config = read_bundle(bundle)
    assert config.dim == 32 and config.languages == ("en", "zh")
    assert [tower.span for tower in config.text_towers] == [(0, 16), (16, 32)]
    assert config.text_towers[1].prefix("passage") == "passage: "
    encoder = load_encoder(bundle)
    centres = np.load(bundle / "centres.npz")

    english, chinese, russian = encoder.embed_texts(["a red car", "红色的车", "красная машина"])
    first = _tiny_text(tiny, "a red car")
    second = _unit(_tiny_text(tiny, "query: a red car") - centres["query.en"])
    np.testing.assert_allclose(
        english, _unit(np.concatenate([0.6 * first, 0.8 * second])), atol=1e-5
    )
    # Chinese is read by the second tower alone, centred with the Chinese mean.
    assert np.abs(chinese[:16]).max() == 0
    np.testing.assert_allclose(
        chinese[16:], _unit(_tiny_text(tiny, "query: 红色的车") - centres["query.zh"]), atol=1e-5
    )
    # No tower reads Cyrillic: every tower does its best (and the search warns).
    assert np.abs(russian[:16]).max() > 0 and np.abs(russian[16:]).max() > 0

    passage = encoder.embed_texts(["a red car"], role="passage")[0]
    # No passage centre in the file: the passage-prefixed vector is used as it is.
    expected = np.concatenate([0.6 * first, 0.8 * _tiny_text(tiny, "passage: a red car")])
    np.testing.assert_allclose(passage, _unit(expected), atol=1e-5)


@pytest.mark.parametrize(
    ("second", "problem"),
    [
        ({"span": [16, 40]}, "outside dim 32"),
        ({"span": None}, "each needs a span"),
        ({"span": [5, 5]}, "span must be"),
        ({"weight": 0}, "weight must be a positive number"),
        ({"centres": "missing.npz"}, "missing missing.npz"),
        ({"model": None}, 'needs "model" and "tokenizer"'),
    ],
)
def test_two_tower_config_errors(
    tmp_path: Path, tiny: TinyHeron, second: dict, problem: str
) -> None:
    bundle = _two_tower_bundle(tmp_path / "bi", tiny, **second)
    with pytest.raises(BundleError, match=problem):
        read_bundle(bundle)


def test_a_list_of_text_towers_needs_format_2(tmp_path: Path, tiny: TinyHeron) -> None:
    bundle = _two_tower_bundle(tmp_path / "bi", tiny)
    config = json.loads((bundle / "config.json").read_text())
    (bundle / "config.json").write_text(json.dumps({**config, "format": "heron-bundle/1"}))
    with pytest.raises(BundleError, match="no 'text' object"):
        read_bundle(bundle)


# ---- multilingual hub bundles (XLM-RoBERTa text tower) ------------------------------------------


MULTILINGUAL = [
    "一只狗在海滩上奔跑",
    "a dog running on the beach",
    "Un chien court sur la plage",
    "犬",
]


@pytest.fixture(scope="session")
def mclip(tmp_path_factory: pytest.TempPathFactory) -> RandomMclip:
    pytest.importorskip("transformers")
    pytest.importorskip("semantra_multilingual")
    return build_random_mclip(tmp_path_factory.mktemp("hub") / "XLM-Roberta-Large-Vit-B-32")


def test_multilingual_hub_bundle_loads_and_tokenizes_like_xlmr(mclip: RandomMclip) -> None:
    from tokenizers import Tokenizer

    config = read_bundle(mclip.path)
    assert (config.layout, config.model_id, config.pad_id, config.context_length) == (
        "hub",
        "XLM-Roberta-Large-Vit-B-32",
        1,  # tokenizer_config.json's <pad>
        77,
    )
    encoder = load_encoder(mclip.path)
    feeds = encoder.tokenize(MULTILINGUAL)
    assert set(feeds) == {"input_ids", "attention_mask"}
    assert feeds["input_ids"].dtype == np.int32 and feeds["input_ids"].shape == (4, 77)
    xlmr = Tokenizer.from_file(str(xlmr_tokenizer_file()))
    for row, text in zip(feeds["input_ids"], MULTILINGUAL, strict=True):
        ids = xlmr.encode(text).ids
        assert ids[0] == 0 and ids[-1] == 2  # <s> ... </s>
        assert row[: len(ids)].tolist() == ids and set(row[len(ids) :].tolist()) <= {1}
    # Chinese is tokenised into real pieces, not unknowns.
    assert 3 not in xlmr.encode(MULTILINGUAL[0]).ids


def test_multilingual_hub_bundle_embeds_like_torch(mclip: RandomMclip) -> None:
    encoder = load_encoder(mclip.path)
    vectors = encoder.embed_texts(MULTILINGUAL)
    assert vectors.shape == (4, encoder.dim) and encoder.dim == 512
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    feeds = encoder.tokenize(MULTILINGUAL)
    with torch.no_grad():
        expected = mclip.textual(
            torch.from_numpy(feeds["input_ids"]), torch.from_numpy(feeds["attention_mask"])
        ).numpy()
    np.testing.assert_allclose(vectors, expected, atol=1e-5)
    again = load_encoder(mclip.path).embed_texts(MULTILINGUAL[::-1])[::-1]
    np.testing.assert_allclose(vectors, again, atol=1e-6)
    images = encoder.embed_images(_images()[:2])
    assert images.shape == (2, 512)
    # The hub bundle states no languages: no query is warned about.
    assert encoder.languages == ()
