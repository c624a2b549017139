"""The typed Python API (`heron.Heron`) end to end: real photos, the real heron-lite model."""

from __future__ import annotations

import json
import re
import shutil
import warnings
from datetime import datetime
from pathlib import Path

import pytest
from PIL import Image

from heron import Heron, SearchHit, Unit
from heron.config import Settings
from heron.ingest.pipeline import IndexProgress
from heron.search.engine import QueryError, QueryWarning
from tests.conftest import DATA, flickr_split, link_images, require_data, run_cli

pytestmark = pytest.mark.slow

PHOTOS = 12


@pytest.fixture()
def library(heron_lite: Path, tmp_path: Path) -> dict:
    """Twelve photos (two in a subfolder) plus a byte copy of the first, indexed via the API."""
    source = require_data("photos")
    lines = (source / "captions.jsonl").read_text(encoding="utf-8").splitlines()
    records = {r["image"]: r for r in map(json.loads, lines)}
    photos = sorted(source.glob("*.jpg"))[:PHOTOS]
    folder = tmp_path / "pics"
    (folder / "trip").mkdir(parents=True)
    for photo in photos[:-2]:
        shutil.copy(photo, folder / photo.name)
    for photo in photos[-2:]:
        shutil.copy(photo, folder / "trip" / photo.name)
    shutil.copy(photos[0], folder / "copy.jpg")
    # These tests are about ranking all k; the relevance cut-off has its own (test_calibration).
    heron = Heron(settings=Settings.load(data_dir=tmp_path / "data", min_relevance=0.0))
    report = heron.index([folder])
    assert (report.indexed, report.linked, report.skipped) == (PHOTOS, 1, 0)
    yield {"heron": heron, "folder": folder, "photos": photos, "records": records}
    heron.close()


def test_search_by_text_finds_the_captioned_photo(library: dict) -> None:
    heron: Heron = library["heron"]
    ranks = []
    for photo in library["photos"]:
        caption = library["records"][photo.name]["en"][0]
        hits = heron.search(text=caption, k=PHOTOS)
        assert all(isinstance(h, SearchHit) for h in hits) and len(hits) == PHOTOS
        ranks.append([Path(h.path).name for h in hits].index(photo.name))
    # Twelve photos: a caption ranks its own photo first far more often than chance (1 in 12).
    assert sum(rank == 0 for rank in ranks) >= 6, ranks
    assert sum(rank < 3 for rank in ranks) >= 9, ranks


def test_chinese_captions_find_their_photos(library: dict) -> None:
    heron: Heron = library["heron"]
    ranks = []
    for photo in library["photos"]:
        for caption in library["records"][photo.name]["zh"]:
            with warnings.catch_warnings():
                warnings.simplefilter("error", QueryWarning)  # the default model reads Chinese
                hits = heron.search(text=caption, k=PHOTOS)
            ranks.append([Path(h.path).name for h in hits].index(photo.name))
    # 60 short, generic Chinese captions over 12 photos (chance: 1 in 12 first, 1 in 4 top-3).
    assert sum(rank == 0 for rank in ranks) >= 0.5 * len(ranks), ranks
    assert sum(rank < 3 for rank in ranks) >= 0.8 * len(ranks), ranks


def test_search_by_image_path_bytes_and_pil_agree(library: dict) -> None:
    heron: Heron = library["heron"]
    photo = library["folder"] / library["photos"][3].name
    by_path = heron.search(image=photo, k=3)
    by_bytes = heron.search(image=photo.read_bytes(), k=3)
    with Image.open(photo) as opened:
        by_pil = heron.search(image=opened, k=3)
    assert by_path[0].path == str(photo)
    assert by_path[0].score == pytest.approx(1.0, abs=1e-3)
    for other in (by_bytes, by_pil):
        assert [h.id for h in other] == [h.id for h in by_path]
        assert [h.score for h in other] == pytest.approx([h.score for h in by_path], abs=1e-4)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("truncated.jpg", "truncated JPEG"),
        ("decompression_bomb.png", "exceeds the 80 MP limit"),
        ("not_an_image.jpg", "not an image"),
        ("empty.jpg", "empty file"),
    ],
)
def test_an_unusable_query_image_is_a_query_error(library: dict, name: str, reason: str) -> None:
    heron: Heron = library["heron"]
    broken = require_data("broken", name)
    with pytest.raises(QueryError, match=rf"query image {re.escape(str(broken))} .*{reason}"):
        heron.search(image=broken)
    with pytest.raises(QueryError, match=f"cannot be used: .*{reason}"):
        heron.search(image=broken.read_bytes())
    result = run_cli("search", "--image", str(broken), data_dir=heron.data_dir, check=False)
    assert result.returncode == 1 and reason in result.stderr
    assert "Traceback" not in result.stderr


def test_text_and_image_together_rank_between_both(library: dict) -> None:
    heron: Heron = library["heron"]
    photo = library["folder"] / library["photos"][5].name
    mixed = heron.search(text="a snowy mountain", image=photo, k=PHOTOS)
    image_only = heron.search(image=photo, k=1)[0]
    assert mixed[0].id == image_only.id  # the example dominates: it is itself in the index
    assert mixed[0].score < image_only.score  # but the text pulled the query away from it


def test_get_returns_a_typed_unit_with_every_path(library: dict) -> None:
    heron: Heron = library["heron"]
    first = library["folder"] / library["photos"][0].name
    hit = heron.search(image=first, k=1)[0]
    unit = heron.get(hit.id)
    assert isinstance(unit, Unit)
    assert unit.id == hit.id and unit.kind == "image" and unit.format == "jpeg"
    assert sorted(unit.paths) == sorted([str(first), str(library["folder"] / "copy.jpg")])
    with Image.open(first) as opened:
        assert (unit.width, unit.height) == opened.size
    assert unit.bytes == first.stat().st_size
    assert unit.model.startswith("heron-lite@") and unit.model == hit.model
    assert isinstance(unit.indexed_at, datetime) and unit.indexed_at.tzinfo is not None
    assert unit.thumbnail is not None and not Path(unit.thumbnail).is_absolute()  # a key
    shown = heron.thumbnail_path(unit)
    assert shown is not None and shown.is_relative_to(heron.settings.thumbnails_dir)
    assert heron.thumbnail_path(hit) == shown
    with Image.open(shown) as thumb:
        assert thumb.format == "WEBP" and max(thumb.size) <= 256
    assert unit.to_dict()["indexed_at"] == unit.indexed_at.isoformat()
    assert heron.get("0" * 32) is None


def test_delete_a_copy_keeps_the_unit_and_a_folder_drops_its_units(library: dict) -> None:
    heron: Heron = library["heron"]
    folder: Path = library["folder"]
    first = folder / library["photos"][0].name
    assert heron.count() == PHOTOS

    assert heron.delete([folder / "copy.jpg"]) == 1
    hit = heron.search(image=first, k=1)[0]
    assert hit.paths == [str(first)] and heron.count() == PHOTOS

    trip = sorted((folder / "trip").iterdir())
    trip_ids = {heron.search(image=p, k=1)[0].id for p in trip}
    thumbnails = [heron.thumbnail_path(heron.get(unit_id)) for unit_id in trip_ids]
    assert heron.delete([folder / "trip"]) == 2
    assert heron.count() == PHOTOS - 2
    assert all(heron.get(unit_id) is None for unit_id in trip_ids)
    remaining = {h.id for h in heron.search(text="people", k=PHOTOS)}
    assert len(remaining) == PHOTOS - 2 and not remaining & trip_ids
    assert not any(Path(t).exists() for t in thumbnails if t)  # derived files go too
    stats = heron.stats()
    assert stats.consistent and stats.units == PHOTOS - 2 and stats.files == {"indexed": 10}
    assert all(p.exists() for p in trip)  # the files themselves are untouched
    assert heron.delete([folder / "trip"]) == 0


def test_paths_with_dot_dot_name_the_same_files(library: dict) -> None:
    heron: Heron = library["heron"]
    folder: Path = library["folder"]
    detour = folder / "trip" / ".." / "." / ".." / folder.name
    report = heron.index([detour])
    outcome = (report.unchanged, report.indexed, report.linked, report.removed)
    assert outcome == (PHOTOS + 1, 0, 0, 0)
    assert heron.delete([folder / "trip" / ".." / "copy.jpg"]) == 1
    assert heron.stats().files == {"indexed": PHOTOS}


def test_filter_string_and_min_score(library: dict) -> None:
    heron: Heron = library["heron"]
    widths = {h.id: h.width for h in heron.search(text="a person", k=PHOTOS)}
    cut = sorted(widths.values())[len(widths) // 2]
    wide = heron.search(text="a person", k=PHOTOS, filter=f"width>={cut}")
    assert wide and len(wide) == sum(w >= cut for w in widths.values())
    assert all(h.width >= cut for h in wide)
    scores = [h.score for h in heron.search(text="a person", k=PHOTOS)]
    floor = scores[3]
    kept = heron.search(text="a person", k=PHOTOS, min_score=floor)
    assert len(kept) == sum(s >= floor for s in scores) and min(h.score for h in kept) >= floor


def test_cli_get_delete_and_empty_index_hint(heron_lite: Path, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    empty = run_cli("search", "a dog", data_dir=data_dir)
    assert "holds nothing yet" in empty.stdout and "heron index" in empty.stdout

    photo = sorted(require_data("photos").glob("*.jpg"))[0]
    folder = tmp_path / "pics"
    folder.mkdir()
    shutil.copy(photo, folder / photo.name)
    run_cli("index", str(folder), data_dir=data_dir)
    hits = run_cli("search", "--image", str(photo), "--json", data_dir=data_dir).stdout
    unit_id = json.loads(hits)["hits"][0]["id"]
    unit = json.loads(run_cli("get", unit_id, data_dir=data_dir).stdout)
    assert unit["paths"] == [str(folder / photo.name)] and unit["id"] == unit_id
    assert datetime.fromisoformat(unit["indexed_at"]).tzinfo is not None

    narrowed = run_cli("search", "a dog", "--where", "width>=100000", data_dir=data_dir)
    assert "excluded every unit" in narrowed.stdout

    assert "removed 1 path" in run_cli("delete", str(folder), data_dir=data_dir).stdout
    again = run_cli("delete", str(folder), data_dir=data_dir, check=False)
    assert again.returncode == 1 and "nothing indexed under" in again.stderr
    missing = run_cli("get", unit_id, data_dir=data_dir, check=False)
    assert missing.returncode == 1 and "no unit with id" in missing.stderr


def test_an_interrupted_run_reports_what_it_kept_and_the_next_one_resumes(
    heron_lite: Path, tmp_path: Path
) -> None:
    names = [str(r["image"]) for r in flickr_split("val")[:400]]
    images = link_images(names, DATA / "flickr8k" / "images", tmp_path / "images")
    reports: list[IndexProgress] = []

    def stop_after_the_first_commit(progress: IndexProgress) -> None:
        reports.append(progress)
        raise KeyboardInterrupt

    with Heron(tmp_path / "data") as heron:
        with pytest.raises(KeyboardInterrupt):
            heron.index([images], on_progress=stop_after_the_first_commit)
        (run,) = heron.catalog.runs(1)
        kept = heron.count()
        assert run.status == "interrupted" and 0 < kept < len(names)
        assert run.summary["indexed"] == kept == heron.stats().files["indexed"]
        assert reports[0].indexed <= kept and reports[0].done <= len(names)
        resumed = heron.index([images])
        assert (resumed.unchanged, resumed.indexed) == (kept, len(names) - kept)
        assert heron.stats().consistent


def test_index_and_errors_print_one_unwrapped_line_per_skipped_file(
    heron_lite: Path, tmp_path: Path
) -> None:
    broken = require_data("broken")
    data_dir = tmp_path / "data"
    printed = run_cli("index", str(broken), data_dir=data_dir).stdout.splitlines()
    assert printed[0].startswith("done in ") and "9 skipped" in printed[0]
    bomb = f"  skipped {broken / 'decompression_bomb.png'}: image too large: 50000×50000 px"
    assert any(line.startswith(bomb) for line in printed), printed
    listed = run_cli("errors", data_dir=data_dir).stdout.splitlines()
    assert len(listed) >= 10 and listed[-1] == f"{len(listed) - 1} file(s) not indexed"
    assert any(line.startswith(bomb.strip()) for line in listed), listed
