"""OCR: Chinese and English text found in real pictures, with boxes; nothing in a text-free one."""

from __future__ import annotations

import sys

import pytest
from PIL import Image, ImageDraw, ImageFont

from heron.understand.ocr import OcrEngine, OcrUnavailableError
from tests.conftest import require_data

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


def test_a_photo_without_text_has_no_confident_lines(engine: OcrEngine) -> None:
    photos = require_data("photos")
    with Image.open(sorted(photos.glob("*.jpg"))[0]) as photo:
        result = engine.read(photo)
    assert all(line.score >= 0.5 for line in result.lines)


def test_missing_engine_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "rapidocr_onnxruntime", None)
    with pytest.raises(OcrUnavailableError, match="rapidocr-onnxruntime"):
        OcrEngine().read(Image.new("RGB", (64, 64)))
