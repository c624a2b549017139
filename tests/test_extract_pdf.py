"""The PDF extractor: pages, figures (captioned vector charts, tables, embedded pictures),
passages, and the outcomes of encrypted, damaged and partly unreadable files.

Real documents come from ../shared/data; the few geometries no sample has (a rotated page, a
full-page scan, a PDF without pages) are built here with pypdfium2.
"""

from __future__ import annotations

import ctypes
import functools
import io
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
import pytest
from PIL import Image

from heron.extract import pdf as pdf_module
from heron.extract.base import (
    ExtractOptions,
    Extractor,
    IncompleteSource,
    SkipFile,
    Source,
    UnitDraft,
)
from heron.extract.pdf import PDFIUM_LOCK, extractor
from tests.conftest import require_data

PASSWORD_REASON = "encrypted PDF: it needs a password (add it to the pdf_passwords setting)"
MANUAL = ("docs", "pdf", "debian-edu-bookworm-manual.pdf")
EN_PAPER = ("docs", "pdf", "elegantpaper-en.pdf")
CN_PAPER = ("docs", "pdf", "elegantpaper-cn.pdf")
ICMR = ("docs", "pdf", "icmr2016_chisent.pdf")
OCR_PDF = ("docs", "ocr", "ocr_test.pdf")


def _extract(source: Source, options: ExtractOptions | None = None) -> list[UnitDraft]:
    return list(extractor.extract(source, options or ExtractOptions()))


@functools.cache
def _units(*parts: str) -> tuple[UnitDraft, ...]:
    """Each sample is extracted once per session (the manual takes about a second)."""
    return tuple(_extract(Source.from_path(require_data(*parts))))


def _of(units: tuple[UnitDraft, ...] | list[UnitDraft], kind: str) -> list[UnitDraft]:
    return [u for u in units if u.kind == kind]


def _assert_sane_box(box: list[float]) -> None:
    x0, y0, x1, y1 = box
    assert 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1, box


def _caption_top(path: Path, page_index: int, phrase: str) -> float:
    """Where `phrase` starts on the page, as a fraction of the height from the top (pdfium)."""
    with PDFIUM_LOCK:
        pdf = pdfium.PdfDocument(path)
        try:
            page = pdf[page_index]
            textpage = page.get_textpage()
            searcher = textpage.search(phrase)
            found = searcher.get_next()
            assert found is not None, f"{phrase!r} is not on page {page_index + 1}"
            _, _, _, top = textpage.get_charbox(found[0])
            height = page.get_height()
            textpage.close()
            page.close()
        finally:
            pdf.close()
    return (height - top) / height


def _synthetic_pdf(
    pictures: list[tuple[tuple[float, float, float, float], tuple[int, int], str]],
    size: tuple[float, float] = (600, 800),
    rotation: int = 0,
    pages: int = 1,
) -> bytes:
    """A PDF whose pages hold solid-colour pictures at (x, y, w, h) in PDF points (bottom left)."""
    with PDFIUM_LOCK:
        pdf = pdfium.PdfDocument.new()
        try:
            for _ in range(pages):
                page = pdf.new_page(*size)
                for (x, y, w, h), pixels, colour in pictures:
                    picture = pdfium.PdfImage.new(pdf)
                    bitmap = pdfium.PdfBitmap.from_pil(Image.new("RGB", pixels, colour))
                    picture.set_bitmap(bitmap)
                    bitmap.close()
                    picture.set_matrix(pdfium.PdfMatrix().scale(w, h).translate(x, y))
                    page.insert_obj(picture)
                page.gen_content()
                page.set_rotation(rotation)
                page.close()
            buffer = io.BytesIO()
            pdf.save(buffer)
        finally:
            pdf.close()
    return buffer.getvalue()


def _drawing_pdf(lines: list[tuple[str, float, float]], dots: list[tuple[float, float]]) -> bytes:
    """A 600x800 page with Helvetica text lines (text, x, y) and 3-pt filled squares at (x, y)."""
    with PDFIUM_LOCK:
        pdf = pdfium.PdfDocument.new()
        try:
            page = pdf.new_page(600, 800)
            for text, x, y in lines:
                obj = pdfium_c.FPDFPageObj_NewTextObj(pdf, b"Helvetica", 10)
                wide = (text + "\x00").encode("utf-16-le")
                pdfium_c.FPDFText_SetText(obj, ctypes.cast(wide, pdfium_c.FPDF_WIDESTRING))
                pdfium_c.FPDFPageObj_Transform(obj, 1, 0, 0, 1, x, y)
                pdfium_c.FPDFPage_InsertObject(page, obj)
            for x, y in dots:
                square = pdfium_c.FPDFPageObj_CreateNewRect(x, y, 3, 3)
                pdfium_c.FPDFPath_SetDrawMode(square, pdfium_c.FPDF_FILLMODE_WINDING, 0)
                pdfium_c.FPDFPage_InsertObject(page, square)
            pdfium_c.FPDFPage_GenerateContent(page)
            page.close()
            buffer = io.BytesIO()
            pdf.save(buffer)
        finally:
            pdf.close()
    return buffer.getvalue()


def _memory_source(data: bytes, name: str = "made.pdf") -> Source:
    return Source(path=Path(name), size=len(data), head=data[:4096], data=data)


# --- recognising ---


def test_extractor_implements_the_protocol() -> None:
    assert isinstance(extractor, Extractor)
    assert extractor.name == "pdf"
    assert extractor.suffixes == frozenset({".pdf"})


def test_recognises_pdf_content_not_names() -> None:
    pdf = require_data(*EN_PAPER).read_bytes()[:4096]
    jpeg = require_data("docs", "ocr", "ocr_test.jpg").read_bytes()[:4096]
    assert extractor.recognises(Source(Path("paper.dat"), 4096, pdf))
    assert not extractor.recognises(Source(Path("photo.pdf"), 4096, jpeg))
    # The header may follow junk, within the first 1024 bytes only.
    assert extractor.recognises(Source(Path("x"), 4096, b"\0" * 500 + b"%PDF-1.7\n"))
    assert not extractor.recognises(Source(Path("x"), 4096, b"\0" * 1100 + b"%PDF-1.7\n"))


# --- pages ---


def test_pages_in_order_with_rendering_text_and_metadata() -> None:
    units = _units(*EN_PAPER)
    pages = _of(units, "page")
    assert [p.locator for p in pages] == [f"page={n}" for n in range(1, 6)]
    assert [p.pointer for p in pages] == [{"page": n} for n in range(1, 6)]
    for page in pages:
        assert page.image is not None and page.image.mode == "RGB"
        assert max(page.image.size) == ExtractOptions().render_side
        assert (page.width, page.height) == (612, 792)
        assert page.format == "pdf" and page.fields["pages"] == 5
        assert not page.read_text  # a born-digital paper has its text layer
        assert "\r" not in page.text and "  " not in page.text
    assert "ElegantPaper" in pages[0].text
    # pdfium marks hyphenation at a line break; the word comes back whole.
    assert "\x02" not in "".join(p.text for p in pages)


def test_units_stream_page_by_page_then_passages() -> None:
    kinds = [u.kind for u in _units(*ICMR)]
    first_passage = kinds.index("passage")
    assert set(kinds[first_passage:]) == {"passage"}
    locators = [u.locator for u in _units(*ICMR)[:first_passage]]
    current = 0
    for locator in locators:  # every figure directly follows its own page
        page = int(locator.split(";")[0].removeprefix("page="))
        if ";figure=" not in locator:
            assert page == current + 1
            current = page
        else:
            assert page == current


def test_metadata_title_goes_into_page_fields() -> None:
    page = _of(_units(*MANUAL), "page")[0]
    assert page.fields == {"pages": 98, "title": "Debian Edu / Skolelinux 12 Bookworm 手册"}


def test_chinese_page_text_is_in_the_page_units() -> None:
    pages = _of(_units(*MANUAL), "page")
    assert len(pages) == 98
    assert "使用图形界面安装程序" in pages[15].text  # page 16, the installer's boot menu
    assert sum("的" in p.text for p in pages) > 50  # 59: the rest are screenshots only


# --- figures ---


def test_vector_chart_is_found_above_its_caption() -> None:
    path = require_data(*EN_PAPER)
    figures = [f for f in _of(_units(*EN_PAPER), "figure") if "Scatter Plot Example" in f.text]
    assert len(figures) == 1
    chart = figures[0]
    assert chart.locator == "page=4;figure=1" and chart.pointer["page"] == 4
    assert chart.text == "Figure 1: Scatter Plot Example"
    box = chart.pointer["box"]
    _assert_sane_box(box)
    assert box[3] <= _caption_top(path, 3, "Figure 1:") + 0.002  # the chart sits above it
    assert box[3] - box[1] > 0.15 and box[2] - box[0] > 0.3  # the whole chart, not a sliver
    assert chart.read_text and chart.format == "pdf"
    assert chart.image is not None and (chart.width, chart.height) == chart.image.size
    pixels = np.asarray(chart.image)
    saturation = pixels.max(axis=2).astype(int) - pixels.min(axis=2)
    assert (saturation > 60).mean() > 0.05  # the coloured bubbles are drawn (vector content)


def test_table_caption_takes_the_ruled_table_below_it() -> None:
    path = require_data(*EN_PAPER)
    tables = [f for f in _of(_units(*EN_PAPER), "figure") if f.text.startswith("Table 1:")]
    assert [t.locator for t in tables] == ["page=3;figure=1"]
    box = tables[0].pointer["box"]
    _assert_sane_box(box)
    assert box[1] >= _caption_top(path, 2, "Table 1:")  # below the caption's top ...
    assert box[3] - box[1] > 0.15  # ... and down through its rows to the bottom rule


def test_chinese_captions_match_their_figures() -> None:
    figures = _of(_units(*CN_PAPER), "figure")
    by_text = {f.text: f for f in figures}
    assert "图 1: Scatter Plot Example" in by_text
    assert by_text["图 1: Scatter Plot Example"].pointer["page"] == 2
    assert by_text["表 1: Auto MPG and Price"].pointer["page"] == 3
    path = require_data(*CN_PAPER)
    assert (
        by_text["图 1: Scatter Plot Example"].pointer["box"][3]
        <= _caption_top(path, 1, "图 1: Scatter") + 0.002
    )


def test_paper_with_raster_figures_and_two_columns() -> None:
    figures = _of(_units(*ICMR), "figure")
    texts = [f.text for f in figures]
    model = next(f for f in figures if f.text.startswith("Figure 1: The Chinese-captioning"))
    assert model.pointer["page"] == 4
    _, _, x1, y1 = model.pointer["box"]
    assert x1 < 0.52  # the left column only, not the tables beside it
    assert y1 <= _caption_top(require_data(*ICMR), 3, "Figure 1:") + 0.002
    examples = next(f for f in figures if f.text.startswith("Table 1: Some examples"))
    assert examples.pointer["page"] == 2 and examples.pointer["box"][2] > 0.9  # full width
    # A two-line caption is read whole and words split across runs are not broken apart.
    assert any("bilingual multimedia dataset" in t for t in texts)
    # "Table 1. On average a human translated sentence ..." starts a body line on page 3: no
    # graphics beside it, so no figure.
    assert not any(t.startswith("Table 1.") for t in texts)
    assert len(figures) >= 4
    for figure in figures:
        _assert_sane_box(figure.pointer["box"])


def test_manual_screenshots_are_figures_with_their_text() -> None:
    figures = _of(_units(*MANUAL), "figure")
    # 64 pictures in the manual are screenshots or diagrams; 16-pt icons and two slivers that
    # sit off the page's edge are not.
    assert 55 <= len(figures) <= 80, len(figures)
    pages = {f.pointer["page"] for f in figures}
    assert {16, 44, 58}.issubset(pages)
    assert sum(f.pointer["page"] == 44 for f in figures) == 2
    for figure in figures:
        box = figure.pointer["box"]
        _assert_sane_box(box)
        assert (box[2] - box[0]) * 595 > 40  # no icons
        assert (box[2] - box[0]) * (box[3] - box[1]) < 0.9  # no full-page backgrounds
        assert figure.read_text and figure.image is not None
    # The text beside a screenshot describes it; the running head above it does not.
    assert sum(bool(f.text) for f in figures) > 30  # 36: many pages hold screenshots only
    assert not any("Bookworm 手册" in f.text for f in figures)
    boot = next(f for f in figures if f.pointer["page"] == 16)
    assert "Graphical install" in boot.text


def test_page_without_text_layer_is_read_by_ocr() -> None:
    units = _units(*OCR_PDF)
    (page,) = _of(units, "page")
    assert page.text == "我是文字" and page.read_text  # four characters: the rest is a picture
    (picture,) = _of(units, "figure")
    assert picture.read_text
    x0, y0, x1, y1 = picture.pointer["box"]
    assert 0.1 < x0 < x1 < 0.5 and 0.15 < y0 < y1 < 0.4  # upper left, where Word put it
    big = _extract(
        Source.from_path(require_data(*OCR_PDF)), ExtractOptions(ocr=True, detail_side=960)
    )
    assert max(_of(big, "page")[0].image.size) == 960


def test_vector_figure_is_the_graphics_between_caption_and_body_text() -> None:
    grid = [(150 + 8 * i, 470 + 8 * j) for i in range(30) for j in range(25)]  # to 385, 668
    caption = ("Figure 2: A grid of dots", 240, 440)
    units = _extract(_memory_source(_drawing_pdf([caption], grid)))
    (figure,) = _of(units, "figure")
    assert figure.text == "Figure 2: A grid of dots"
    x0, y0, x1, y1 = figure.pointer["box"]
    pad = 3 / 600
    assert x0 == pytest.approx(150 / 600 - pad, abs=0.005)
    assert x1 == pytest.approx(385 / 600 + pad, abs=0.005)
    assert y0 == pytest.approx(1 - 668 / 800 - pad, abs=0.005)
    assert y1 == pytest.approx(1 - 470 / 800 + pad, abs=0.005)
    # A paragraph line between the caption and the dots: they are not its figure.
    body = ("This sentence belongs to the body text of the page.", 150, 455)
    assert _of(_extract(_memory_source(_drawing_pdf([caption, body], grid))), "figure") == []


def test_rotated_page_boxes_follow_the_displayed_page() -> None:
    # A red picture at the top left of an unrotated 600x800 page; /Rotate 90 turns it clockwise
    # so it shows at the top right of an 800x600 page.
    data = _synthetic_pdf([((50, 650, 200, 100), (200, 100), "red")], rotation=90)
    units = _extract(_memory_source(data))
    (page,) = _of(units, "page")
    assert (page.width, page.height) == (800, 600)
    (figure,) = _of(units, "figure")
    x0, y0, x1, y1 = figure.pointer["box"]
    assert x0 == pytest.approx(650 / 800, abs=0.01) and x1 == pytest.approx(750 / 800, abs=0.01)
    assert y0 == pytest.approx(50 / 600, abs=0.01) and y1 == pytest.approx(250 / 600, abs=0.01)
    red = np.asarray(figure.image).reshape(-1, 3).mean(axis=0)
    assert red[0] > 200 and red[1] < 60 and red[2] < 60
    assert figure.height > figure.width  # turned with the page


def test_full_page_scan_is_the_page_and_small_pictures_are_decoration() -> None:
    scan = _synthetic_pdf([((0, 0, 600, 800), (300, 400), "grey")])
    units = _extract(_memory_source(scan))
    assert [u.kind for u in units] == ["page"] and units[0].read_text
    icons = _synthetic_pdf(
        [((50, 50, 16, 16), (64, 64), "blue"), ((100, 50, 30, 200), (30, 200), "green")]
    )
    assert _of(_extract(_memory_source(icons)), "figure") == []
    blank = _extract(_memory_source(_synthetic_pdf([])))
    assert [u.kind for u in blank] == ["page"] and not blank[0].read_text  # nothing to read


# --- passages ---


def test_passages_cover_the_text_with_overlap_and_page_references() -> None:
    units = _units(*MANUAL)
    texts = [p.text for p in _of(units, "page")]
    document = "\n\n".join(texts)
    starts = np.cumsum([0] + [len(t) + 2 for t in texts[:-1]])
    passages = _of(units, "passage")
    assert len(passages) > 50
    covered = np.zeros(len(document), dtype=bool)
    for i, passage in enumerate(passages):
        pointer = passage.pointer
        start, end = pointer["start"], pointer["end"]
        assert passage.locator == f"chars={start}-{end}" and pointer["chunk"] == i
        assert passage.embed == "text" and passage.thumbnail == "none" and passage.image is None
        assert passage.text == document[start:end].strip()
        assert len(passage.text) <= ExtractOptions().passage_chars
        # page: where it starts; last_page: where it ends (1-based)
        assert pointer["page"] == int(np.searchsorted(starts, start, side="right"))
        assert pointer["page"] <= pointer["last_page"]
        covered[start:end] = True
        if i:
            before = passages[i - 1].pointer
            assert before["start"] < start < before["end"]  # they overlap
            assert before["page"] <= pointer["page"] and before["last_page"] <= pointer["last_page"]
    text_chars = np.array([not c.isspace() for c in document])
    assert covered[text_chars].all()
    assert passages[-1].pointer["last_page"] == 98


# --- outcomes ---


def test_encrypted_pdf_needs_its_password() -> None:
    source = Source.from_path(require_data("broken", "encrypted.pdf"))
    with pytest.raises(SkipFile) as caught:
        _extract(source)
    assert caught.value.reason == PASSWORD_REASON
    with pytest.raises(SkipFile):
        _extract(source, ExtractOptions(pdf_passwords=("wrong",)))
    units = _extract(source, ExtractOptions(pdf_passwords=("wrong", "secret")))
    pages = _of(units, "page")
    assert len(pages) == 5 and any(p.text for p in pages)
    assert _of(units, "passage")


def test_truncated_pdf_is_skipped_naming_the_damage() -> None:
    source = Source.from_path(require_data("broken", "truncated.pdf"))
    units = extractor.extract(source, ExtractOptions())
    with pytest.raises(SkipFile) as caught:
        next(units)  # before any unit
    assert caught.value.reason.startswith("damaged PDF: ")
    assert "truncated" in caught.value.reason and "data format error" in caught.value.reason


def test_pdf_without_pages_is_skipped() -> None:
    with PDFIUM_LOCK:
        empty = pdfium.PdfDocument.new()
        buffer = io.BytesIO()
        empty.save(buffer)
        empty.close()
    with pytest.raises(SkipFile) as caught:
        _extract(_memory_source(buffer.getvalue()))
    assert caught.value.reason == "the PDF has no pages"
    with pytest.raises(SkipFile) as caught:
        _extract(_memory_source(b"%PDF-1.4\n%%EOF\n"))
    assert caught.value.reason.startswith("damaged PDF: ")


def test_unreadable_page_keeps_the_rest_then_reports_it(monkeypatch: pytest.MonkeyPatch) -> None:
    read_page = pdf_module._read_page

    def flaky(pdf: pdfium.PdfDocument, index: int, *args: object) -> object:
        if index == 1:
            raise pdfium.PdfiumError("Failed to load page.")
        return read_page(pdf, index, *args)

    monkeypatch.setattr(pdf_module, "_read_page", flaky)
    data = _synthetic_pdf([((50, 50, 300, 300), (100, 100), "red")], pages=3)
    units: list[UnitDraft] = []
    with pytest.raises(IncompleteSource) as caught:
        for unit in extractor.extract(_memory_source(data), ExtractOptions()):
            units.append(unit)
    assert caught.value.reason == "page 2 could not be read: failed to load page"
    assert [u.locator for u in units] == ["page=1", "page=1;figure=1", "page=3", "page=3;figure=1"]

    def broken(*args: object) -> object:
        raise pdfium.PdfiumError("Failed to load page.")

    monkeypatch.setattr(pdf_module, "_read_page", broken)
    with pytest.raises(SkipFile) as skipped:
        _extract(_memory_source(data))
    assert skipped.value.reason.startswith("damaged PDF: no page could be read")


# --- sources and threads ---


def test_file_read_by_path_under_an_odd_name(tmp_path: Path) -> None:
    path = tmp_path / "论文 & émoji 🐦.pdf"
    path.write_bytes(require_data(*EN_PAPER).read_bytes())
    with path.open("rb") as handle:
        head = handle.read(4096)
    streamed = _extract(Source(path=path, size=path.stat().st_size, head=head))  # data=None
    in_memory = _units(*EN_PAPER)
    assert [(u.locator, u.text) for u in streamed] == [(u.locator, u.text) for u in in_memory]


def test_threads_extracting_different_pdfs_agree_with_one_thread() -> None:
    names = [EN_PAPER, CN_PAPER, ICMR, OCR_PDF]

    def summary(parts: tuple[str, ...]) -> list[tuple[str, str, tuple[int, int] | None]]:
        units = _extract(Source.from_path(require_data(*parts)))
        return [(u.locator, u.text, u.image.size if u.image else None) for u in units]

    alone = [summary(parts) for parts in names]
    with ThreadPoolExecutor(max_workers=4) as pool:
        together = list(pool.map(summary, names * 2))
    assert together == alone * 2


def test_abandoned_extraction_releases_the_lock() -> None:
    units: Iterator[UnitDraft] = extractor.extract(
        Source.from_path(require_data(*EN_PAPER)), ExtractOptions()
    )
    assert next(units).locator == "page=1"
    units.close()  # type: ignore[attr-defined]
    acquired: list[bool] = []

    def take_and_give_back() -> None:
        if PDFIUM_LOCK.acquire(timeout=1):
            acquired.append(True)
            PDFIUM_LOCK.release()

    thread = threading.Thread(target=take_and_give_back)
    thread.start()
    thread.join()
    assert acquired == [True]
