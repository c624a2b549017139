"""Tags people give files: `heron tag add|remove|list`, `tag:` in queries, kept across re-reads."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from heron.understand.tags import TagError, normalize_tag, tag_column
from tests.conftest import DATA, flickr_split, require_data, run_cli, run_json


def test_tags_are_normalised_or_refused() -> None:
    assert normalize_tag("  Summer   Holiday ") == "summer-holiday"
    assert normalize_tag("猫") == "猫" and normalize_tag("ÉTÉ") == "été"
    for bad in ("", "   ", "a,b", "x\x07y", "y" * 65):
        with pytest.raises(TagError):
            normalize_tag(bad)
    assert tag_column(["b", "a", "b"]) == " a b " and tag_column([]) == ""


@pytest.fixture(scope="module")
def tagged(heron_lite: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("tags")
    trip, home = root / "trip", root / "home"
    trip.mkdir()
    home.mkdir()
    names = [str(r["image"]) for r in flickr_split("val")[:6]]
    for i, name in enumerate(names):
        shutil.copy(DATA / "flickr8k" / "images" / name, (trip if i < 3 else home) / name)
    shutil.copy(require_data("docs", "pdf", "elegantpaper-en.pdf"), trip / "paper.pdf")
    data_dir = root / "data"
    run_cli("index", str(trip), str(home), data_dir=data_dir)
    return {"data_dir": data_dir, "trip": trip, "home": home, "names": names}


def _search(tagged: dict, query: str) -> list[dict]:
    data = run_json(
        "search", query, "--min-relevance", "0", "-k", "100", data_dir=tagged["data_dir"]
    )
    assert isinstance(data, dict)
    return data["hits"]


def test_a_tagged_folder_is_found_by_tag_and_by_keyword(tagged: dict) -> None:
    done = run_cli("tag", "add", "Holiday", str(tagged["trip"]), data_dir=tagged["data_dir"])
    assert "tagged 4 file content(s)" in done.stdout  # 3 photos and the PDF
    hits = _search(tagged, "tag:holiday people")
    assert hits and {Path(h["path"]).parent for h in hits} == {tagged["trip"]}
    assert {h["kind"] for h in hits} >= {"image", "page", "passage"}  # every unit of the PDF
    assert all(h["tags"]["user"] == ["holiday"] for h in hits)
    outside = _search(tagged, "people -tag:holiday")
    assert outside and {Path(h["path"]).parent for h in outside} == {tagged["home"]}
    # the tag is a keyword as well: fused search puts the tagged photos first
    by_word = run_json("search", "holiday", "--explain", data_dir=tagged["data_dir"])
    assert isinstance(by_word, dict)
    first = [h for h in by_word["hits"] if h["kind"] == "image"][:3]
    assert {Path(h["path"]).parent for h in first} == {tagged["trip"]}
    assert all("keyword" in h["explain"] for h in first)
    counts = run_json("tag", "list", data_dir=tagged["data_dir"])
    assert counts == {"holiday": 4}


def test_tags_survive_a_reread_and_can_be_taken_away(tagged: dict) -> None:
    run_cli("tag", "add", "beach", str(tagged["home"]), data_dir=tagged["data_dir"])
    photo = tagged["home"] / tagged["names"][3]
    os.utime(photo, (1_700_000_000, 1_700_000_000))  # the next run reads it again
    run_cli("index", str(tagged["trip"]), str(tagged["home"]), data_dir=tagged["data_dir"])
    again = {Path(h["path"]).name for h in _search(tagged, "tag:beach dog")}
    assert tagged["names"][3] in again and len(again) == 3
    run_cli("tag", "remove", "BEACH", str(photo), data_dir=tagged["data_dir"])
    left = {Path(h["path"]).name for h in _search(tagged, "tag:beach dog")}
    assert left == again - {tagged["names"][3]}


def test_tagging_what_is_not_indexed_says_so(tagged: dict, tmp_path: Path) -> None:
    missing = run_cli("tag", "add", "x", str(tmp_path), data_dir=tagged["data_dir"], check=False)
    assert missing.returncode == 1 and "nothing indexed at or below" in missing.stderr
    bad = run_cli(
        "tag", "add", "a,b", str(tagged["trip"]), data_dir=tagged["data_dir"], check=False
    )
    assert bad.returncode == 1 and "comma" in bad.stderr
    query = run_cli("search", "tag:", data_dir=tagged["data_dir"], check=False)
    assert query.returncode == 1 and "needs a value" in query.stderr
