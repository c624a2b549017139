"""`Heron` is the whole facade: model management goes through it without opening a library, and
the CLI lives in `heron.interfaces.cli` with `heron.cli` kept as its alias."""

from __future__ import annotations

from pathlib import Path

import pytest

import heron
from heron import Heron


@pytest.fixture
def models_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "models"
    monkeypatch.setenv("HERON_MODELS_DIR", str(root))
    return root


def test_models_lists_heron_lite_without_opening_a_store(tmp_path: Path, models_dir: Path) -> None:
    data_dir = tmp_path / "data"
    library = Heron(data_dir=data_dir)
    try:
        infos = library.models()
    finally:
        library.close()
    assert all(isinstance(info, heron.ModelInfo) for info in infos)
    lite = {info.name: info for info in infos}["heron-lite"]
    assert lite.source == "builtin" and lite.status == "not built"
    assert not library.settings.store_path.exists()  # no store was created or opened
    assert not models_dir.exists()  # listing builds or downloads nothing


def test_model_management_needs_no_instance(tmp_path: Path, models_dir: Path) -> None:
    assert "heron-lite" in [info.name for info in Heron.models()]
    with pytest.raises(ValueError, match="out_dir"):
        Heron.build_model(head=tmp_path / "head.npz")


def test_the_cli_lives_in_interfaces_and_heron_cli_is_its_alias() -> None:
    import heron.cli
    import heron.interfaces.cli.app

    assert heron.interfaces.cli.app.app is heron.cli.app
    assert heron.interfaces.cli.app.main is heron.cli.main


def test_every_public_name_is_exported_from_heron() -> None:
    import heron

    assert set(heron.__all__) - {"__version__"} == set(heron._EXPORTS)
    for name in heron._EXPORTS:
        value = getattr(heron, name)
        assert name == "ImageInput" or value.__name__ == name
    assert issubclass(heron.QueryError, heron.HeronError)
    assert all(
        issubclass(getattr(heron, n), heron.HeronError)
        for n in heron._EXPORTS
        if n.endswith("Error")
    )
