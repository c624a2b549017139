"""OCR: Chinese and English text found in real pictures, with boxes; nothing in a text-free one."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont

from heron.understand.ocr import OcrEngine, OcrUnavailableError
from tests.conftest import require_data, run_cli, run_json

pytest.importorskip("rapidocr_onnxruntime")


@pytest.fixture(scope="module")
def engine() -> OcrEngine:
    return OcrEngine(threads=2)


def test_chinese_and_english_text_in_a_picture_is_read_with_boxes(engine: OcrEngine) -> None:
    path = require_data("docs", "ocr", "ocr_test.jpg")
    with Image.open(path) as image:
        result = engine.read(image)
        width, height = image.size
    texts = [line.text for line in result.lines]
    assert "横向文本框" in texts and "竖向文本框" in texts, texts
    assert any("english" in text.lower() for text in texts), texts
    assert result.text.splitlines() == texts  # top to bottom
    for line in result.lines:
        assert 0.5 <= line.score <= 1
        assert all(-2 <= x <= width + 2 and -2 <= y <= height + 2 for x, y in line.box)
    data = result.to_dict()
    assert data["text"] == result.text and len(data["lines"][0]["box"]) == 4


def test_rendered_text_is_read_and_a_blank_picture_has_none(engine: OcrEngine) -> None:
    canvas = Image.new("RGBA", (640, 160), (0, 0, 0, 0))  # transparent: composited on white
    font = ImageFont.load_default(size=56)
    ImageDraw.Draw(canvas).text((24, 40), "HERON 2026", fill=(0, 0, 0, 255), font=font)
    found = engine.read(canvas).text.replace(" ", "")
    assert "HERON2026" in found, found
    assert engine.read(Image.new("RGB", (600, 400), (255, 255, 255))).lines == []


def test_photos_without_text_give_next_to_no_lines(engine: OcrEngine) -> None:
    photos = sorted(require_data("photos").glob("*.jpg"))[:10]
    found = []
    for path in photos:
        with Image.open(path) as photo:
            found.extend(line.text for line in engine.read(photo).lines)
    # Measured: 0 lines over 30 of these photos; a detector reading texture as text would not pass.
    assert len(found) <= 2, found


def test_missing_engine_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "rapidocr_onnxruntime", None)
    with pytest.raises(OcrUnavailableError, match="rapidocr-onnxruntime"):
        OcrEngine().read(Image.new("RGB", (64, 64)))


def test_index_with_ocr_makes_text_in_pictures_keyword_searchable(
    heron_lite: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "pics"
    folder.mkdir()
    shutil.copy(require_data("docs", "ocr", "ocr_test.jpg"), folder / "scan.jpg")
    for photo in sorted(require_data("photos").glob("*.jpg"))[:2]:
        shutil.copy(photo, folder / photo.name)
    with_ocr, without = tmp_path / "with", tmp_path / "without"
    run_cli("index", str(folder), "--ocr", data_dir=with_ocr)
    run_cli("index", str(folder), data_dir=without)

    hits = run_json("search", "--keyword", "竖向文本", data_dir=with_ocr)["hits"]
    assert [Path(hit["path"]).name for hit in hits] == ["scan.jpg"]
    assert "横向文本框" in hits[0]["excerpt"]
    unit = json.loads(run_cli("get", hits[0]["id"], data_dir=with_ocr).stdout)
    lines = unit["extra"]["ocr"]
    assert {line["text"] for line in lines} >= {"横向文本框", "竖向文本框"}
    assert all(len(line["box"]) == 4 for line in lines)
    assert run_json("search", "--keyword", "竖向文本", data_dir=without)["hits"] == []
    # A rerun without --ocr leaves the text read before in place (the file did not change).
    run_cli("index", str(folder), data_dir=with_ocr)
    assert len(run_json("search", "--keyword", "文本框", data_dir=with_ocr)["hits"]) == 1


def test_ocr_failing_on_a_picture_keeps_the_picture(
    heron_lite: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from heron import Heron

    folder = tmp_path / "pics"
    folder.mkdir()
    shutil.copy(sorted(require_data("photos").glob("*.jpg"))[0], folder / "a.jpg")

    def broken(self: OcrEngine, image: Image.Image) -> None:
        raise RuntimeError("detector exploded")

    monkeypatch.setattr(OcrEngine, "read", broken)
    with Heron(tmp_path / "data") as heron:
        report = heron.index([folder], ocr=True)
        assert (report.indexed, report.skipped) == (1, 0)
        unit = heron.get(heron.search(text="a photo", k=1)[0].id)
        assert unit is not None and "detector exploded" in unit.extra["ocr_error"]


def test_ocr_asked_for_without_the_engine_fails_before_the_run(
    heron_lite: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from heron import Heron

    monkeypatch.setitem(sys.modules, "rapidocr_onnxruntime", None)
    folder = tmp_path / "pics"
    folder.mkdir()
    with Heron(tmp_path / "data") as heron, pytest.raises(OcrUnavailableError):
        heron.index([folder], ocr=True)
