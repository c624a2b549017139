"""Re-indexing a data dir into another model: built beside the live index, swapped in whole."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from heron import Heron
from heron.config import Settings
from heron.ingest import reindex
from heron.search.engine import ModelMismatchError
from tests.conftest import DATA, link_images, require_data, run_cli

pytest.importorskip("torch")
from tests.fixtures.tiny_heron import build_tiny_heron

PHOTOS = 6


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    return {
        "old": build_tiny_heron(root / "old", seed=0, model_id="tiny-old").path,
        "new": build_tiny_heron(root / "new", seed=1, model_id="tiny-new").path,
    }


@pytest.fixture
def library(tmp_path: Path, models: dict[str, Path]) -> dict[str, Path]:
    require_data("photos")
    names = sorted(p.name for p in (DATA / "photos").glob("*.jpg"))[:PHOTOS]
    photos = link_images(names, DATA / "photos", tmp_path / "photos")
    data_dir = tmp_path / "data"
    with Heron(data_dir, model=str(models["old"])) as heron:
        heron.index([photos])
    return {"photos": photos, "data_dir": data_dir}


def test_a_search_with_another_model_says_how_to_reindex(
    library: dict[str, Path], models: dict[str, Path]
) -> None:
    with Heron(library["data_dir"], model=str(models["new"])) as heron:
        with pytest.raises(ModelMismatchError) as info:
            heron.search(text="a dog", k=3, min_relevance=0)
        with pytest.raises(ModelMismatchError, match="heron reindex --model"):
            heron.index([library["photos"]])
    message = str(info.value)
    assert "tiny-old@0.1" in message and "tiny-new@0.1" in message
    assert "--model tiny-old" in message  # how to keep using it as it is


def test_reindex_rebuilds_beside_the_live_index_and_swaps(
    library: dict[str, Path], models: dict[str, Path]
) -> None:
    data_dir = library["data_dir"]
    with Heron(data_dir, model=str(models["old"])) as old:
        before = {
            hit.path for hit in old.search(text="a dog on the grass", k=PHOTOS, min_relevance=0)
        }
    searched_meanwhile: list[int] = []

    def during(progress: object) -> None:
        # The live index answers with the old model while the new one is built.
        with Heron(data_dir, model=str(models["old"])) as live:
            searched_meanwhile.append(len(live.search(text="a dog", k=3, min_relevance=0)))

    with Heron(data_dir, model=str(models["new"])) as heron:
        report = heron.reindex(during)
        assert report.indexed == PHOTOS and report.skipped == 0
        stats = heron.stats()
        assert stats.model == "tiny-new@0.1" and stats.units == PHOTOS and stats.consistent
        hits = heron.search(text="a dog on the grass", k=PHOTOS, min_relevance=0)
        assert {hit.path for hit in hits} == before
        assert all(hit.model == "tiny-new@0.1" for hit in hits)
        assert all(heron.thumbnail_path(hit) for hit in hits if hit.thumbnail)
    assert searched_meanwhile and set(searched_meanwhile) == {3}
    assert not (data_dir / reindex.SHADOWS).exists()
    with Heron(data_dir, model=str(models["old"])) as old, pytest.raises(ModelMismatchError):
        old.search(text="a dog", k=3, min_relevance=0)


def test_an_interrupted_reindex_keeps_the_live_index_and_resumes(
    library: dict[str, Path], models: dict[str, Path]
) -> None:
    data_dir = library["data_dir"]

    def interrupt(progress: object) -> None:
        raise KeyboardInterrupt

    # Small batches: the interrupt lands after the first commit group, not after all of them.
    settings = Settings.load(data_dir=data_dir, model=str(models["new"]), batch_size=2)
    with Heron(settings=settings) as heron, pytest.raises(KeyboardInterrupt):
        heron.reindex(interrupt)
    with Heron(data_dir, model=str(models["old"])) as old:
        assert old.stats().model == "tiny-old@0.1" and old.count() == PHOTOS
        assert len(old.search(text="a dog", k=3, min_relevance=0)) == 3
    with Heron(data_dir, model=str(models["new"])) as heron:
        report = heron.reindex()
        assert report.unchanged + report.indexed == PHOTOS and report.unchanged >= 2
        assert heron.stats().consistent and heron.count() == PHOTOS


def test_reindex_through_the_cli(library: dict[str, Path], models: dict[str, Path]) -> None:
    data_dir = library["data_dir"]
    result = run_cli("reindex", "--model", str(models["new"]), "--json", data_dir=data_dir)
    report = json.loads(result.stdout.strip().splitlines()[-1])["report"]
    assert report["indexed"] == PHOTOS
    stats = json.loads(run_cli("stats", "--json", data_dir=data_dir).stdout)
    assert stats["model"] == "tiny-new@0.1" and stats["consistent"]


def test_reindex_of_an_empty_data_dir_is_a_clear_error(tmp_path: Path) -> None:
    result = run_cli("reindex", data_dir=tmp_path / "empty", check=False)
    assert result.returncode == 1 and "nothing indexed" in result.stderr


def _layout(root: Path, text: str) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "catalog.sqlite").write_text(text)
    (root / "vectors.lance").mkdir()
    (root / "vectors.lance" / "data").write_text(text)
    (root / "thumbnails").mkdir()
    (root / "thumbnails" / "t.webp").write_text(text)


@pytest.mark.parametrize("done_before_crash", [0, 1, 2, 3])
def test_a_swap_cut_short_is_completed_when_the_data_dir_is_opened_next(
    tmp_path: Path, done_before_crash: int
) -> None:
    data_dir = tmp_path / "data"
    _layout(data_dir, "old")
    (data_dir / "catalog.sqlite-wal").write_text("old wal")  # must not meet the new catalog
    shadow = reindex.shadow_dir(data_dir, "model@2")
    _layout(shadow, "new")
    present = [name for name in reindex.ENTRIES if (shadow / name).exists()]
    journal = data_dir / reindex.SHADOWS / reindex.JOURNAL
    journal.write_text(json.dumps({"shadow": shadow.name, "entries": present}))
    retired = data_dir / reindex.SHADOWS / "retired"
    retired.mkdir()
    for name in present[:done_before_crash]:  # the steps the killed process finished
        (data_dir / name).rename(retired / name)
        (shadow / name).rename(data_dir / name)

    assert reindex.finish_swap(data_dir)
    assert (data_dir / "catalog.sqlite").read_text() == "new"
    assert (data_dir / "vectors.lance" / "data").read_text() == "new"
    assert (data_dir / "thumbnails" / "t.webp").read_text() == "new"
    assert not (data_dir / "catalog.sqlite-wal").exists()
    assert not (data_dir / reindex.SHADOWS).exists()
    assert not reindex.finish_swap(data_dir)  # nothing pending any more


def test_index_roots_are_the_outermost_roots_still_indexed(
    library: dict[str, Path], models: dict[str, Path], tmp_path: Path
) -> None:
    data_dir = library["data_dir"]
    photos = library["photos"]
    with Heron(data_dir, model=str(models["old"])) as heron:
        one = sorted(photos.iterdir())[0]
        heron.index([one])  # a file below an indexed root: not a root of its own
        empty = tmp_path / "empty"
        empty.mkdir()
        heron.index([empty])  # nothing indexed under it: nothing to re-index there
        assert reindex.index_roots(heron.catalog) == [photos]


@pytest.mark.slow
def test_an_index_built_with_heron_lite_1_moves_to_the_default_in_one_command(
    heron_lite: Path, tmp_path: Path
) -> None:
    """The upgrade a user meets: an index made with 1.0, opened with the bilingual default."""
    require_data("photos")
    names = sorted(p.name for p in (DATA / "photos").glob("*.jpg"))[:PHOTOS]
    photos = link_images(names, DATA / "photos", tmp_path / "photos")
    data_dir = tmp_path / "data"
    run_cli("--model", "heron-lite@1.0", "index", str(photos), data_dir=data_dir, timeout=900)

    refused = run_cli("search", "a dog", data_dir=data_dir, check=False)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "heron-lite@1.0" in refused.stderr and "--model heron-lite@1.0" in refused.stderr
    assert "heron reindex --model heron-lite" in refused.stderr
    every = ("--min-relevance", "0")  # this is about which model answers, not the cut-off
    old = run_cli(
        "--model", "heron-lite@1.0", "search", "a dog", "--k", "3", *every, data_dir=data_dir
    )
    assert "3 results in" in old.stdout

    # The very command the refusal printed.
    command = refused.stderr.split("with one command: ")[1].split()
    assert command[:2] == ["heron", "reindex"]
    run_cli(*command[1:], data_dir=data_dir)
    stats = json.loads(run_cli("stats", "--json", data_dir=data_dir).stdout)
    assert stats["model"] == "heron-lite@2.0" and stats["units"] == PHOTOS and stats["consistent"]
    found = run_cli("search", "狗", "--k", "3", *every, "--json", data_dir=data_dir)
    chinese = json.loads(found.stdout)
    assert len(chinese["hits"]) == 3 and chinese["warnings"] == []
