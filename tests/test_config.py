from __future__ import annotations

from pathlib import Path

import pytest

from heron.config import ConfigError, Settings


def test_precedence_defaults_toml_env_arguments(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    toml = tmp_path / "config.toml"
    toml.write_text('[heron]\nbatch_size = 8\nthreads = 3\nmodel = "from-toml"\n')
    monkeypatch.setenv("HERON_THREADS", "5")
    monkeypatch.setenv("HERON_INCLUDE_HIDDEN", "yes")
    settings = Settings.load(toml, model="from-args", data_dir=tmp_path / "d")
    assert settings.batch_size == 8
    assert settings.threads == 5
    assert settings.include_hidden is True
    assert settings.model == "from-args"
    assert settings.catalog_path == tmp_path / "d" / "catalog.sqlite"


def test_default_data_dir_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert Settings.load(tmp_path / "none.toml").data_dir == tmp_path / "xdg" / "heron"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[heron]\nbatch_size = 'many'\n", "must be int"),
        ("[heron]\ncolour = 1\n", "unknown"),
        ("[heron\n", "cannot read"),
        ("[heron]\nbatch_size = 0\n", "'batch_size' .* must be at least 1, got 0"),
        ("[heron]\nthreads = -2\n", "'threads' .* must be at least 0, got -2"),
    ],
)
def test_bad_config_is_a_clear_error(tmp_path: Path, content: str, message: str) -> None:
    toml = tmp_path / "config.toml"
    toml.write_text(content)
    with pytest.raises(ConfigError, match=message):
        Settings.load(toml)
