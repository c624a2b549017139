"""Model bundles on disk: the heron layout and immich's hub layout, mapped onto one `BundleConfig`.

Heron layout (``docs/architecture.md``)::

    config.json  visual.onnx  textual.onnx  tokenizer.json  MODEL_CARD.md

Hub layout (immich's exports of open_clip / M-CLIP models)::

    config.json                 open_clip's model config: embed_dim, vision_cfg, text_cfg
    visual/model.onnx           image [1,3,S,S] → embedding
    visual/preprocess_cfg.json  size, mean, std, interpolation, resize_mode
    textual/model.onnx          text [1,T] int32 (or input_ids + attention_mask) → embedding
    textual/tokenizer.json      + tokenizer_config.json (pad_token), special_tokens_map.json …
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from heron.models.preprocess import ImageSpec
from heron.util.errors import HeronError

Layout = Literal["heron", "hub"]
TextClean = Literal["none", "whitespace", "canonicalize"]

HERON_FORMAT = "heron-bundle/1"  # one text tower: "text" is an object
HERON_FORMAT_TOWERS = "heron-bundle/2"  # several text towers: "text" is a list of them
HERON_FORMATS = (HERON_FORMAT, HERON_FORMAT_TOWERS)
TextRole = Literal["query", "passage"]
# open_clip's defaults (OpenAI CLIP) for configs that leave mean/std out.
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
_HUB_RESIZE_MODES = {"shortest": "shortest_crop", "squash": "squash"}


class BundleError(HeronError, ValueError):
    """A model bundle is missing, incomplete or malformed."""

    code = "model_unavailable"
    status = 503

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"model bundle {path}: {problem}")
        self.path = path
        self.problem = problem


@dataclass(frozen=True)
class TextTowerSpec:
    """One text tower: its graph, tokenizer, prefixes, the languages it reads, and where its
    vector goes in the bundle's vector (`span`, a [start, stop) slice; None: all of it)."""

    path: Path
    tokenizer_path: Path
    context_length: int
    pad_id: int
    query_prefix: str = ""
    passage_prefix: str = ""
    # Hub models are trained on fixed-length, padded token rows; heron bundles take a mask.
    pad_to_context: bool = False
    clean: TextClean = "whitespace"
    languages: tuple[str, ...] = ()  # () = reads every text
    span: tuple[int, int] | None = None
    weight: float = 1.0
    # An .npz of mean vectors keyed "{role}.{language}": a text's vector has its language's mean
    # taken off (and is renormalised), as the tower's head was trained on centred vectors.
    centres: Path | None = None

    def prefix(self, role: TextRole) -> str:
        return self.query_prefix if role == "query" else self.passage_prefix


@dataclass(frozen=True)
class BundleConfig:
    """Everything needed to run a bundle, whichever layout it came in."""

    path: Path
    model_id: str
    version: str
    dim: int
    image: ImageSpec
    text_towers: tuple[TextTowerSpec, ...]
    normalize: bool
    license: str
    layout: Layout
    visual_path: Path
    card_path: Path | None = None
    languages: tuple[str, ...] = ()  # ISO 639-1 codes the text towers understand; () = unknown

    @property
    def stamp(self) -> str:
        return f"{self.model_id}@{self.version}"

    @property
    def text(self) -> TextTowerSpec:
        """The first (for most bundles the only) text tower."""
        return self.text_towers[0]

    # The single-tower view, as most bundles and their callers see it.
    @property
    def textual_path(self) -> Path:
        return self.text.path

    @property
    def tokenizer_path(self) -> Path:
        return self.text.tokenizer_path

    @property
    def context_length(self) -> int:
        return self.text.context_length

    @property
    def pad_id(self) -> int:
        return self.text.pad_id

    @property
    def pad_to_context(self) -> bool:
        return self.text.pad_to_context

    @property
    def text_clean(self) -> TextClean:
        return self.text.clean


def read_bundle(path: Path) -> BundleConfig:
    """Read a bundle directory in either layout; raise `BundleError` saying what is wrong."""
    path = Path(path).expanduser()
    if not path.is_dir():
        problem = "is not a directory" if path.exists() else "does not exist"
        raise BundleError(path, problem)
    layout = detect_layout(path)
    if layout == "heron":
        return _read_heron(path)
    return _read_hub(path)


def detect_layout(path: Path) -> Layout:
    if (path / "visual").is_dir() or (path / "textual").is_dir():
        return "hub"
    if (path / "config.json").is_file() or (path / "visual.onnx").is_file():
        return "heron"
    raise BundleError(
        path,
        "is neither a heron bundle (config.json, visual.onnx, textual.onnx, tokenizer.json) nor "
        "a hub bundle (config.json, visual/model.onnx, textual/model.onnx, textual/tokenizer.json)",
    )


# ---- heron layout -------------------------------------------------------------------------------


def _read_heron(path: Path) -> BundleConfig:
    config = _load_json(path, path / "config.json")
    fmt = config.get("format")
    if fmt not in HERON_FORMATS:
        raise BundleError(
            path, f"config.json has format {fmt!r}; this Heron reads {' or '.join(HERON_FORMATS)}"
        )
    (visual,) = _require(path, path / "visual.onnx")
    image = _section(path, config, "image")
    dim = _positive(path, config, "dim")
    towers = _heron_text_towers(path, config, fmt, dim)
    languages = _languages(path, config.get("languages", []), "languages")
    stated = [code for tower in towers for code in tower.languages]
    card = path / str(config.get("card", "MODEL_CARD.md"))
    return BundleConfig(
        path=path,
        model_id=_field(path, config, "model_id", str),
        version=str(_field(path, config, "version", (str, int, float))),
        dim=dim,
        image=_image_spec(path, image, resize_mode_map=None),
        text_towers=towers,
        normalize=bool(config.get("normalize", True)),
        license=str(config.get("license", "")),
        layout="heron",
        visual_path=visual,
        card_path=card if card.is_file() else None,
        languages=languages or tuple(dict.fromkeys(stated)),
    )


def _heron_text_towers(
    path: Path, config: dict[str, Any], fmt: str, dim: int
) -> tuple[TextTowerSpec, ...]:
    if fmt == HERON_FORMAT:
        text = _section(path, config, "text")
        return (_heron_text_tower(path, text, "text", default_files=True),)
    sections = config.get("text")
    if not isinstance(sections, list) or not sections:
        raise BundleError(path, f'{fmt} needs "text": a list of text towers')
    towers = tuple(
        _heron_text_tower(path, _as_section(path, section, f"text[{i}]"), f"text[{i}]")
        for i, section in enumerate(sections)
    )
    _check_spans(path, towers, dim)
    return towers


def _heron_text_tower(
    path: Path, text: dict[str, Any], label: str, default_files: bool = False
) -> TextTowerSpec:
    graph_name = text.get("model", "textual.onnx" if default_files else None)
    tokenizer_name = text.get("tokenizer", "tokenizer.json" if default_files else None)
    if not isinstance(graph_name, str) or not isinstance(tokenizer_name, str):
        raise BundleError(path, f'config.json {label} needs "model" and "tokenizer" file names')
    graph, tokenizer = _require(path, path / graph_name, path / tokenizer_name)
    prefix = str(text.get("prefix", ""))
    return TextTowerSpec(
        path=graph,
        tokenizer_path=tokenizer,
        context_length=_positive(path, text, "context_length", f"{label}.context_length"),
        pad_id=int(text.get("pad_id", 0)),
        query_prefix=str(text.get("query_prefix", prefix)),
        passage_prefix=str(text.get("passage_prefix", prefix)),
        pad_to_context=bool(text.get("pad_to_context", False)),
        clean=_text_clean(path, text.get("clean", "whitespace")),
        languages=_languages(path, text.get("languages", []), f"{label}.languages"),
        span=_span(path, text.get("span"), label),
        weight=_weight(path, text.get("weight", 1.0), label),
        centres=_optional_file(path, text.get("centres"), f"{label}.centres"),
    )


def _optional_file(path: Path, name: object, label: str) -> Path | None:
    if name is None:
        return None
    if not isinstance(name, str):
        raise BundleError(path, f"config.json {label} must be a file name")
    (file,) = _require(path, path / name)
    return file


def _as_section(path: Path, value: object, label: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BundleError(path, f"config.json {label} must be an object")
    return value


def _span(path: Path, raw: object, label: str) -> tuple[int, int] | None:
    if raw is None:
        return None
    ok = (
        isinstance(raw, list)
        and len(raw) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in raw)
        and 0 <= raw[0] < raw[1]
    )
    if not ok:
        raise BundleError(path, f"config.json {label}.span must be [start, stop], not {raw!r}")
    return (raw[0], raw[1])


def _weight(path: Path, raw: object, label: str) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float) or raw <= 0:
        raise BundleError(path, f"config.json {label}.weight must be a positive number")
    return float(raw)


def _check_spans(path: Path, towers: tuple[TextTowerSpec, ...], dim: int) -> None:
    """Several towers each fill their own part of the vector, within `dim`."""
    if len(towers) == 1 and towers[0].span is None:
        return
    spans = [tower.span for tower in towers]
    if any(span is None for span in spans):
        raise BundleError(path, "with several text towers, each needs a span")
    for start, stop in spans:  # type: ignore[misc]
        if stop > dim:
            raise BundleError(path, f"text span [{start}, {stop}] lies outside dim {dim}")


def _languages(path: Path, raw: object, label: str) -> tuple[str, ...]:
    if not isinstance(raw, list) or not all(isinstance(code, str) for code in raw):
        raise BundleError(path, f'config.json "{label}" must be a list of language codes')
    return tuple(code.lower() for code in raw)


# ---- hub layout ---------------------------------------------------------------------------------


def _read_hub(path: Path) -> BundleConfig:
    config_file, visual, textual, tokenizer = _require(
        path,
        path / "config.json",
        path / "visual" / "model.onnx",
        path / "textual" / "model.onnx",
        path / "textual" / "tokenizer.json",
    )
    config = _load_json(path, config_file)
    vision_cfg = _section(path, config, "vision_cfg")
    text_cfg = _section(path, config, "text_cfg")
    preprocess = _hub_preprocess(path, config, vision_cfg)
    tokenizer_kwargs = text_cfg.get("tokenizer_kwargs") or {}
    canonicalize = tokenizer_kwargs.get("clean") == "canonicalize"  # SigLIP's text cleaning
    readme = path / "README.md"
    tower = TextTowerSpec(
        path=textual,
        tokenizer_path=tokenizer,
        context_length=_positive(
            path, {"context_length": 77, **text_cfg}, "context_length", "text_cfg.context_length"
        ),
        pad_id=_hub_pad_id(path, tokenizer),
        pad_to_context=True,
        clean="canonicalize" if canonicalize else "whitespace",
    )
    return BundleConfig(
        path=path,
        model_id=hub_model_id(path),
        version=str(config.get("version", "hub")),
        dim=_positive(path, config, "embed_dim"),
        image=_image_spec(path, preprocess, resize_mode_map=_HUB_RESIZE_MODES),
        text_towers=(tower,),
        normalize=True,
        license=_readme_license(readme) or "see the model's hub page",
        layout="hub",
        visual_path=visual,
        card_path=readme if readme.is_file() else None,
    )


def hub_model_id(path: Path) -> str:
    """The repository name: the directory's name, or the repo of a Hugging Face cache snapshot."""
    path = path.resolve()
    if path.parent.name == "snapshots" and path.parent.parent.name.startswith("models--"):
        return path.parent.parent.name.split("--")[-1]
    return path.name


def _hub_preprocess(path: Path, config: dict[str, Any], vision_cfg: dict[str, Any]) -> dict:
    """visual/preprocess_cfg.json, falling back to the model config and open_clip's defaults."""
    merged: dict[str, Any] = {"size": vision_cfg.get("image_size"), "resize_mode": "shortest"}
    merged.update(config.get("preprocess_cfg") or {})
    preprocess_file = path / "visual" / "preprocess_cfg.json"
    if preprocess_file.is_file():
        merged.update(_load_json(path, preprocess_file))
    merged.setdefault("mean", OPENAI_MEAN)
    merged.setdefault("std", OPENAI_STD)
    if merged.get("size") is None:
        raise BundleError(
            path, "neither visual/preprocess_cfg.json nor config.json gives an image size"
        )
    return merged


def _hub_pad_id(path: Path, tokenizer_file: Path) -> int:
    """The id of tokenizer_config.json's pad_token (immich pads with it), else tokenizer.json's."""
    from tokenizers import Tokenizer

    try:
        tokenizer = Tokenizer.from_file(tokenizer_file.as_posix())
    except Exception as exc:  # tokenizers raises a bare Exception for a bad file
        raise BundleError(path, f"textual/tokenizer.json cannot be read: {exc}") from exc
    pad_token = _pad_token(path)
    if pad_token is not None:
        pad_id = tokenizer.token_to_id(pad_token)
        if pad_id is None:
            raise BundleError(path, f"pad_token {pad_token!r} is not in textual/tokenizer.json")
        return pad_id
    padding = tokenizer.padding
    return int(padding["pad_id"]) if padding else 0


def _pad_token(path: Path) -> str | None:
    config_file = path / "textual" / "tokenizer_config.json"
    if not config_file.is_file():
        return None
    token = _load_json(path, config_file).get("pad_token")
    if isinstance(token, dict):  # the AddedToken form: {"content": "<pad>", ...}
        token = token.get("content")
    return token if isinstance(token, str) else None


def _readme_license(readme: Path) -> str | None:
    """`license:` from a Hugging Face model card's YAML front matter."""
    if not readme.is_file():
        return None
    lines = readme.read_text(encoding="utf-8", errors="replace").splitlines()
    if not lines or lines[0].strip() != "---":
        return None
    for line in lines[1:]:
        if line.strip() == "---":
            break
        key, _, value = line.partition(":")
        if key.strip() == "license" and value.strip():
            return value.strip()
    return None


# ---- shared helpers -----------------------------------------------------------------------------


def _image_spec(
    path: Path, image: dict[str, Any], resize_mode_map: dict[str, str] | None
) -> ImageSpec:
    size = image.get("size")
    if isinstance(size, list | tuple):
        if len(size) != 2 or size[0] != size[1]:
            raise BundleError(path, f"only square images are supported, not size {size}")
        size = size[0]
    if not isinstance(size, int) or size <= 0:
        raise BundleError(path, f"image size must be a positive integer, not {size!r}")
    resize_mode = str(image.get("resize_mode", "shortest_crop"))
    if resize_mode_map is not None:
        if resize_mode not in resize_mode_map:
            raise BundleError(path, f"resize_mode {resize_mode!r} is not supported")
        resize_mode = resize_mode_map[resize_mode]
    try:
        return ImageSpec(
            size=size,
            interpolation=str(image.get("interpolation", "bicubic")).lower(),
            resize_mode=resize_mode,  # type: ignore[arg-type]
            mean=_triple(path, image, "mean"),
            std=_triple(path, image, "std"),
        )
    except ValueError as exc:
        raise BundleError(path, str(exc)) from exc


def _triple(path: Path, section: dict[str, Any], key: str) -> tuple[float, float, float]:
    value = section.get(key)
    if isinstance(value, int | float):
        value = [value] * 3
    if not isinstance(value, list | tuple) or len(value) != 3:
        raise BundleError(path, f"image {key} must be three numbers, not {value!r}")
    try:
        return (float(value[0]), float(value[1]), float(value[2]))
    except (TypeError, ValueError) as exc:
        raise BundleError(path, f"image {key} must be three numbers, not {value!r}") from exc


def _text_clean(path: Path, value: Any) -> TextClean:
    if value not in ("none", "whitespace", "canonicalize"):
        raise BundleError(
            path, f"text.clean must be none, whitespace or canonicalize, not {value!r}"
        )
    return value


def _require(path: Path, *files: Path) -> tuple[Path, ...]:
    missing = [str(file.relative_to(path)) for file in files if not file.is_file()]
    if missing:
        raise BundleError(path, f"missing {', '.join(missing)}")
    return files


def _load_json(path: Path, file: Path) -> dict[str, Any]:
    name = file.relative_to(path)
    if not file.is_file():
        raise BundleError(path, f"missing {name}")
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(path, f"{name} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise BundleError(path, f"{name} must hold a JSON object")
    return data


def _section(path: Path, config: dict[str, Any], key: str) -> dict[str, Any]:
    value = config.get(key)
    if not isinstance(value, dict):
        raise BundleError(path, f"config.json has no {key!r} object")
    return value


def _field(path: Path, config: dict[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    value = config.get(key)
    if value is None or not isinstance(value, kind) or value == "":
        raise BundleError(path, f"config.json needs {key!r}")
    return value


def _positive(path: Path, section: dict[str, Any], key: str, label: str | None = None) -> int:
    value = section.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise BundleError(
            path, f"config.json {label or key!r} must be a positive integer, not {value!r}"
        )
    return value
