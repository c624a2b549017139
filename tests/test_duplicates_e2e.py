"""`heron duplicates` and collapsed search results, through the real CLI, on edited copies."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import pytest
from PIL import Image, ImageEnhance, ImageOps

from tests.conftest import DATA, flickr_split, require_data, run_cli, run_json

EDITS = {
    "half.jpg": lambda im: im.resize((im.width // 2, im.height // 2)),
    "q30.jpg": lambda im: im,  # saved at quality 30 below
    "crop.jpg": lambda im: ImageOps.crop(im, border=im.width // 16),
    "grey.png": lambda im: ImageOps.grayscale(im).convert("RGB"),
    "bright.jpg": lambda im: ImageEnhance.Brightness(im).enhance(1.3),
    "turned.jpg": lambda im: im.rotate(90, expand=True),
    "padded.png": lambda im: ImageOps.expand(im, border=im.width // 10, fill=(20, 120, 200)),
}  # fmt: skip


@pytest.fixture(scope="module")
def library(heron_lite: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("dups")
    folder = root / "photos"
    (folder / "edits").mkdir(parents=True)
    names = [str(r["image"]) for r in flickr_split("val")[:12]]
    original = DATA / "flickr8k" / "images" / names[0]
    for name in names:
        shutil.copy(DATA / "flickr8k" / "images" / name, folder / name)
    shutil.copy(original, folder / "edits" / "byte-copy.jpg")
    with Image.open(original) as image:
        base = image.convert("RGB")
    for name, edit in EDITS.items():
        quality = {"quality": 30} if name == "q30.jpg" else {}
        edit(base).save(folder / "edits" / name, **quality)
    data_dir = root / "data"
    run_cli("index", str(folder), data_dir=data_dir)
    return {"data_dir": data_dir, "folder": folder, "original": folder / names[0]}


def test_the_edited_copies_are_one_set_and_the_other_photos_none(library: dict) -> None:
    sets = run_json("duplicates", data_dir=library["data_dir"])
    assert isinstance(sets, list) and len(sets) == 1, sets
    (found,) = sets
    assert found["kind"] == "near"
    files = {Path(item["path"]).name for item in [found["keep"], *found["others"]]}
    assert files == {library["original"].name, "byte-copy.jpg", *EDITS}
    # the best copy is kept: the largest (the padded one carries a border, so the original or
    # a same-size copy), never the half-size or grey copy
    assert Path(found["keep"]["path"]).name not in ("half.jpg", "grey.png")
    reasons = {Path(i["path"]).name: i["reason"] for i in found["others"]}
    assert all(reasons.values())
    table = run_cli("duplicates", data_dir=library["data_dir"]).stdout
    assert "keep" in table and "1 sets" in table


def test_search_folds_the_copies_into_one_hit_unless_asked(library: dict) -> None:
    data_dir = library["data_dir"]
    query = ("--image", str(library["original"]), "-k", "5", "--min-relevance", "0")
    folded = run_json("search", *query, data_dir=data_dir)["hits"]
    assert isinstance(folded, list)
    assert len(folded) == 5 and len(folded[0]["duplicates"]) >= len(EDITS) - 1
    names = {Path(h["path"]).name for h in folded}
    assert not names & set(EDITS), "an edited copy was listed beside its original"
    every = run_json("search", *query, "--no-collapse", data_dir=data_dir)["hits"]
    assert isinstance(every, list)
    assert all(h["duplicates"] == [] for h in every)
    assert {Path(h["path"]).name for h in every} & set(EDITS)


def test_duplicates_of_an_unknown_kind_is_a_clear_error(library: dict) -> None:
    bad = run_cli("duplicates", "--kind", "photo", data_dir=library["data_dir"], check=False)
    assert bad.returncode == 1 and "unknown kind" in bad.stderr


def test_the_wallpaper_set_groups_each_picture_and_nothing_across(
    heron_lite: Path, tmp_path: Path
) -> None:
    """../shared/data/neardup: each group is one artwork at several sizes, a phone's portrait
    cut and a dark recolour; every within-group pair lands in one set, no pair across."""
    folder = require_data("neardup")
    groups = json.loads((folder / "groups.json").read_text(encoding="utf-8"))
    group_of = {e["file"]: g["group"] for g in groups for e in g["images"]}
    run_cli("index", str(folder / "images"), data_dir=tmp_path)
    sets = run_json("duplicates", data_dir=tmp_path)
    together = set()
    for found in sets:
        names = sorted(Path(i["path"]).name for i in [found["keep"], *found["others"]])
        assert len({group_of[n] for n in names}) == 1, names  # nothing across groups
        together |= set(itertools.combinations(names, 2))
    within = {
        pair
        for g in groups
        for pair in itertools.combinations(sorted(e["file"] for e in g["images"]), 2)
    }
    assert together == within
    reasons = " ".join(i["reason"] for s in sets for i in s["others"])
    assert "cut differently" in reasons and "recoloured" in reasons


def test_keyframes_of_one_video_are_not_copies_but_a_re_encoded_clip_is(
    heron_lite: Path, tmp_path: Path
) -> None:
    """The keyframes of one video share its file's hash, which must not make them exact
    copies; the pristine and distorted encodings of one clip hold the same frames."""
    folder = require_data("video")
    run_cli("index", str(folder), data_dir=tmp_path)
    sets = run_json("duplicates", "--kind", "frame", data_dir=tmp_path)
    assert sets, "the distorted clip's frames match the pristine clip's"
    for found in sets:
        items = [found["keep"], *found["others"]]
        assert all(i["reason"] != "the same bytes" for i in found["others"])
        files = {Path(i["path"]).name for i in items}
        assert not {"bigbuckbunny.mp4", "cockatoo.mp4"} & files or len(items) < 4, files
    across = [s for s in sets if len({Path(i["path"]).name for i in [s["keep"], *s["others"]]}) > 1]
    assert across and all(
        {Path(i["path"]).name for i in [s["keep"], *s["others"]]}
        <= {"carphone_pristine.mp4", "carphone_distorted.mp4"}
        for s in across
    )
