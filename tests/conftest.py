"""Shared fixtures. Tests never touch the network: models come from `heron-lite`, built once."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("HERON_MODELS_DIR", str(REPO / ".cache" / "models"))
for _name in ("HERON_DATA_DIR", "HERON_MODEL", "HERON_CONFIG"):
    os.environ.pop(_name, None)


def require_data(*parts: str) -> Path:
    path = DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"test material missing: {path} (../shared/data beside the repo)")
    return path


@pytest.fixture(scope="session")
def heron_lite() -> Path:
    """The heron-lite bundle, built on first use into HERON_MODELS_DIR (~1–2 min, once)."""
    from heron.models import registry

    return registry.resolve("heron-lite")


def run_cli(
    *args: str,
    data_dir: Path | None = None,
    check: bool = True,
    timeout: float = 600,
    stdin: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the real `heron` console entry point in a subprocess (`stdin` is typed into it)."""
    cmd = [sys.executable, "-m", "heron.cli"]
    if data_dir is not None:
        cmd += ["--data-dir", str(data_dir)]
    result = subprocess.run(
        [*cmd, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=os.environ.copy(),
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"heron {' '.join(args)} exited {result.returncode}\n"
            f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        )
    return result


def run_json(*args: str, data_dir: Path | None = None) -> object:
    return json.loads(run_cli(*args, "--json", data_dir=data_dir).stdout.strip().splitlines()[-1])


def flickr_split(split: str) -> list[dict[str, object]]:
    captions = require_data("flickr8k", "captions.jsonl")
    with captions.open(encoding="utf-8") as handle:
        records = [json.loads(line) for line in handle]
    return [r for r in records if r["split"] == split]


def link_images(names: list[str], source: Path, target: Path) -> Path:
    """A folder of symlinks to shared images: realistic paths, nothing copied."""
    target.mkdir(parents=True, exist_ok=True)
    for name in names:
        (target / name).symlink_to(source / name)
    return target


@pytest.fixture(scope="session")
def val_index(heron_lite: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """The 1,000 Flickr8k val images indexed through the CLI, with an eval file beside them."""
    records = flickr_split("val")
    root = tmp_path_factory.mktemp("val")
    images = link_images(
        [str(r["image"]) for r in records], DATA / "flickr8k" / "images", root / "images"
    )
    eval_files = {lang: root / f"val_{lang}.jsonl" for lang in ("en", "zh")}
    for lang, eval_file in eval_files.items():
        with eval_file.open("w", encoding="utf-8") as handle:
            for record in records:
                for caption in record[lang]:
                    line = {"query": caption, "relevant": [f"images/{record['image']}"]}
                    handle.write(json.dumps(line, ensure_ascii=False) + "\n")
    data_dir = root / "data"
    run_cli("index", str(images), data_dir=data_dir)
    yield {
        "data_dir": data_dir,
        "images": images,
        "eval_file": eval_files["en"],
        "eval_files": eval_files,
        "records": records,
    }
    shutil.rmtree(root, ignore_errors=True)
