"""Settings: defaults < TOML file < environment (HERON_*) < explicit arguments."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import platformdirs

from heron.util.errors import HeronError

ENV_PREFIX = "HERON_"
# The least value each numeric setting can take; 0 means "choose for me" where allowed.
MINIMUMS = {
    "threads": 0,
    "batch_size": 1,
    "decode_workers": 0,
    "inference_workers": 0,
    "thumbnail_size": 16,
    "max_image_pixels": 1,
    "ann_min_rows": 1,
    "passage_chars": 200,
    "ocr_workers": 0,
    "rerank_depth": 1,
}


class ConfigError(HeronError, ValueError):
    """A setting has a value Heron cannot use."""

    code = "config_error"
    status = 503


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("heron", appauthor=False))


def default_config_file() -> Path:
    return Path(platformdirs.user_config_dir("heron", appauthor=False)) / "config.toml"


@dataclass(frozen=True)
class Settings:
    data_dir: Path = field(default_factory=default_data_dir)
    model: str = "heron-lite"
    threads: int = 0  # ONNX Runtime intra-op threads for queries; 0 lets it use every core
    batch_size: int = 32
    decode_workers: int = 0  # 0: half the cores (inference needs the rest), at least 1
    inference_workers: int = 0  # parallel single-threaded inference calls when indexing; 0: cores
    include_hidden: bool = False
    ocr: bool = False  # read text inside pictures while indexing (the `ocr` extra; ~20 images/s)
    ocr_scans: bool = True  # read scanned pages (no text layer) even without `ocr`, if installed
    ocr_workers: int = 0  # parallel OCR calls while indexing; 0: one per two cores, at least 1
    pdf_passwords: tuple[str, ...] = ()  # tried in order on encrypted PDFs
    passage_chars: int = 1000  # length of the text passages documents are cut into
    categories: tuple[str, ...] = ()  # zero-shot labels: "name", "name=中文", "name=中文=prompt"
    thumbnail_size: int = 256
    max_image_pixels: int = 80_000_000
    ann_min_rows: int = 20_000
    # Hits below this calibrated relevance are not shown (heron.search.calibration); 0 shows all.
    min_relevance: float = 0.6
    # A second, stronger model that re-scores each search's best candidates (heron.search.rerank);
    # "" for none. Any name `heron models list` shows.
    rerank_model: str = ""
    rerank_depth: int = 30  # candidates the second model re-scores
    # ACL labels by folder (heron.catalog.acl): "~/Finance=finance", "/srv/board=board,finance";
    # a unit no rule covers is visible to every key.
    acl_rules: tuple[str, ...] = ()

    @classmethod
    def load(cls, config_file: Path | None = None, **overrides: Any) -> Settings:
        """Build settings from the TOML file, then HERON_* variables, then `overrides`."""
        settings = cls()
        path = config_file or _env_path("HERON_CONFIG") or default_config_file()
        if path.is_file():
            settings = settings._merge(_read_toml(path), source=str(path))
        settings = settings._merge(_from_env(), source="environment")
        return settings._merge({k: v for k, v in overrides.items() if v is not None}, "arguments")

    def _merge(self, values: dict[str, Any], source: str) -> Settings:
        known = {f.name: f for f in fields(self)}
        converted: dict[str, Any] = {}
        for name, raw in values.items():
            if name not in known:
                raise ConfigError(f"unknown setting {name!r} in {source}; known: {sorted(known)}")
            converted[name] = _convert(name, raw, getattr(self, name), source)
        return replace(self, **converted)

    @property
    def catalog_path(self) -> Path:
        return self.data_dir / "catalog.sqlite"

    @property
    def store_path(self) -> Path:
        return self.data_dir / "vectors.lance"

    @property
    def thumbnails_dir(self) -> Path:
        return self.data_dir / "thumbnails"


def _env_path(name: str) -> Path | None:
    value = os.environ.get(name)
    return Path(value).expanduser() if value else None


def _from_env() -> dict[str, str]:
    names = {f.name for f in fields(Settings)}
    found = {}
    for key, value in os.environ.items():
        if key.startswith(ENV_PREFIX) and key[len(ENV_PREFIX) :].lower() in names:
            found[key[len(ENV_PREFIX) :].lower()] = value
    return found


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from exc
    return dict(data.get("heron", data))


def _convert(name: str, raw: Any, current: Any, source: str) -> Any:
    """`raw` as the type of the setting's default, within the setting's range."""
    try:
        value = _parse_like(raw, current)
    except (TypeError, ValueError) as exc:
        kind = "a number from 0 to 1" if isinstance(current, float) else type(current).__name__
        raise ConfigError(f"setting {name!r} from {source} must be {kind}, got {raw!r}") from exc
    return _at_least(name, value, source) if isinstance(value, int) else value


def _parse_like(raw: Any, current: Any) -> Any:
    if isinstance(current, bool):
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text not in {"1", "0", "true", "false", "yes", "no", "on", "off"}:
            raise ValueError(raw)
        return text in {"1", "true", "yes", "on"}
    if isinstance(current, int):
        return int(raw)
    if isinstance(current, float):
        value = float(raw)
        if not 0.0 <= value <= 1.0:
            raise ValueError(raw)
        return value
    if isinstance(current, Path):
        return Path(str(raw)).expanduser()
    if isinstance(current, tuple):  # a TOML list, or one value (from the environment)
        items = raw if isinstance(raw, list | tuple) else [raw]
        return tuple(str(item) for item in items)
    return str(raw)


def _at_least(name: str, value: int, source: str) -> int:
    least = MINIMUMS.get(name)
    if least is not None and value < least:
        raise ConfigError(f"setting {name!r} from {source} must be at least {least}, got {value}")
    return value
