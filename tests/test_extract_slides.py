"""The PowerPoint extractor: slide text and numbers, pictures with boxes, hostile decks.

Real decks come from the shared material; the cases no real deck shows (speaker notes, a
scaled group, an undecodable picture, hidden slides, a renderer) are built with python-pptx
in tmp_path. LibreOffice is not needed: a stand-in `soffice` that copies a prepared PDF
exercises the rendering path, and the real one is used only where it is installed.
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import pytest
from PIL import Image
from pptx import Presentation
from pptx.util import Inches

from heron.extract import slides
from heron.extract.base import ExtractOptions, Source, UnitDraft
from heron.extract.errors import SkipFile
from heron.extract.slides import slides_extractor
from tests.conftest import require_data

OPTIONS = ExtractOptions()


def extract(path: Path, options: ExtractOptions = OPTIONS) -> list[UnitDraft]:
    return list(slides_extractor.extract(Source.from_path(path), options))


def slide_unit(units: list[UnitDraft], number: int) -> UnitDraft:
    return next(u for u in units if u.kind == "slide" and u.pointer["slide"] == number)


def figures_of(units: list[UnitDraft], number: int) -> list[UnitDraft]:
    return [u for u in units if u.kind == "figure" and u.pointer["slide"] == number]


def png_bytes(width: int, height: int, colour: str = "red") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def lecture7() -> list[UnitDraft]:
    return extract(require_data("docs", "slides", "Lecture7.pptx"))


REAL_OFFICE = slides._office_binary


@pytest.fixture(autouse=True)
def no_office(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test sees a machine without LibreOffice unless it installs one itself."""
    monkeypatch.setattr(slides, "_office_binary", lambda: None)


# --- real decks ---


def test_recognises_decks_by_content_not_name(tmp_path: Path) -> None:
    deck = require_data("docs", "slides", "Lecture5.pptx")
    renamed = tmp_path / "lecture.bin"
    renamed.symlink_to(deck)
    assert slides_extractor.recognises(Source.from_path(renamed))
    docx = require_data("docs", "ocr", "ocr_test.docx")
    assert not slides_extractor.recognises(Source.from_path(docx))


def test_slide_text_is_on_its_own_slide(lecture7: list[UnitDraft]) -> None:
    slides_only = [u for u in lecture7 if u.kind == "slide"]
    assert [u.locator for u in slides_only][:5] == [f"slide={n}" for n in range(1, 6)]
    second = slide_unit(lecture7, 2)
    assert second.text.startswith("Example: Linear regression (housing prices)")
    assert "Overfitting: If we have too many features" in second.text
    assert second.fields["title"] == "Example: Linear regression (housing prices)"
    assert second.fields["slides"] == 24
    assert (second.width, second.height) == (720, 405)  # 10 in × 5.625 in, in points
    assert "Overfitting" not in slide_unit(lecture7, 3).text
    # A bullet list of features sits on slide 4, and nowhere before it.
    assert "no. of bedrooms" in slide_unit(lecture7, 4).text
    assert all("no. of bedrooms" not in slide_unit(lecture7, n).text for n in (1, 2, 3))


def test_pictures_become_figures_with_boxes(lecture7: list[UnitDraft]) -> None:
    figures = [u for u in lecture7 if u.kind == "figure"]
    assert len(figures) >= 30
    for figure in figures:
        x0, y0, x1, y1 = figure.pointer["box"]
        assert 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1
        assert (
            figure.locator == f"slide={figure.pointer['slide']};picture={figure.pointer['picture']}"
        )
        assert figure.read_text and figure.image is not None and figure.format == "pptx"
        assert min(figure.width, figure.height) >= OPTIONS.min_figure_side
    # Slide 1's photo fills the left of the slide; its text is the slide's context.
    (photo,) = figures_of(lecture7, 1)
    assert photo.pointer["box"][0] < 0.1 and photo.pointer["box"][2] < 0.5
    assert "Regularization" in photo.text and len(photo.text) <= 510


def test_pictures_inside_groups_are_found(lecture7: list[UnitDraft]) -> None:
    # Slide 21 holds its two formula pictures inside a group shape only.
    numbers = [f.pointer["picture"] for f in figures_of(lecture7, 21)]
    assert len(numbers) >= 2
    assert slide_unit(lecture7, 21).fields["pictures"] == 3


def test_slide_vector_falls_back_to_picture_then_text() -> None:
    units = extract(require_data("docs", "slides", "Lecture11.pptx"))
    with_picture = slide_unit(units, 1)
    assert with_picture.fields["vector_from"] == "picture"
    assert with_picture.image is not None and with_picture.embed == "image"
    text_only = slide_unit(units, 2)  # an e-mail on a slide, no picture
    assert text_only.fields["vector_from"] == "text"
    assert (text_only.embed, text_only.thumbnail, text_only.image) == ("text", "none", None)
    assert "Building a spam classifier" in text_only.text


def test_chinese_text_table_and_picture_only_text() -> None:
    units = extract(require_data("docs", "ocr", "ocr_test.pptx"))
    slide = slide_unit(units, 1)
    assert slide.text.splitlines()[0] == "我是文字"
    assert "我是表格1 | 我是表格5" in slide.text
    (figure,) = figures_of(units, 1)
    # The words in the picture are not in the deck's text: only OCR can read them.
    assert figure.read_text and (figure.width, figure.height) == (298, 210)
    assert "我是文字" in figure.text


def test_slides_per_second() -> None:
    import time

    deck = require_data("docs", "slides", "Lecture7.pptx")
    started = time.perf_counter()
    units = extract(deck)
    rate = sum(u.kind == "slide" for u in units) / (time.perf_counter() - started)
    assert rate > 5, f"{rate:.1f} slides/s"


# --- built decks: notes, groups, unreadable pictures, ordering ---


def build_deck(path: Path, picture: bytes | None = None) -> Path:
    """Two slides: a titled one with body, table, notes and a picture; a blank one."""
    prs = Presentation()
    slide = prs.slides.add_slide(prs.slide_layouts[5])  # title only
    table = slide.shapes.add_table(2, 2, Inches(1), Inches(5), Inches(4), Inches(1)).table
    table.cell(0, 0).text, table.cell(1, 1).text = "cell alpha", "cell omega"
    box = slide.shapes.add_textbox(Inches(1), Inches(2), Inches(4), Inches(1))
    box.text_frame.text = "Body line one"
    slide.shapes.title.text = "Quarterly kingfishers"  # stored first, written last
    slide.notes_slide.notes_text_frame.text = "Say hello to the herons"
    if picture is not None:
        slide.shapes.add_picture(io.BytesIO(picture), Inches(5), Inches(1), Inches(4), Inches(3))
    prs.slides.add_slide(prs.slide_layouts[6])  # blank: nothing to index
    prs.save(path)
    return path


def test_title_first_then_body_table_and_notes(tmp_path: Path) -> None:
    units = extract(build_deck(tmp_path / "deck.pptx", png_bytes(400, 300)))
    slide = slide_unit(units, 1)
    lines = slide.text.splitlines()
    assert lines[0] == "Quarterly kingfishers"
    assert lines[-1] == "Say hello to the herons"
    assert "Body line one" in lines and "cell alpha | " in slide.text and "cell omega" in slide.text
    assert slide.fields["slides"] == 2
    (figure,) = figures_of(units, 1)
    assert figure.pointer["box"] == pytest.approx([0.5, 1 / 7.5, 0.9, 4 / 7.5], abs=1e-3)
    assert "herons" not in figure.text  # notes are the speaker's, not the picture's context
    assert [u.pointer["slide"] for u in units] == [1, 1]  # the blank slide yields nothing


def test_group_transform_scales_child_boxes(tmp_path: Path) -> None:
    prs = Presentation()
    slide = prs.slides.add_slide(prs.slide_layouts[6])
    group = slide.shapes.add_group_shape()
    group.shapes.add_picture(io.BytesIO(png_bytes(300, 300)), 0, 0, Inches(1), Inches(1))
    # Show the group at twice its child extent, moved to (2 in, 1 in).
    xfrm = group._element.grpSpPr.xfrm
    xfrm.off.x, xfrm.off.y = Inches(2), Inches(1)
    xfrm.ext.cx, xfrm.ext.cy = Inches(2), Inches(2)
    xfrm.chOff.x, xfrm.chOff.y, xfrm.chExt.cx, xfrm.chExt.cy = 0, 0, Inches(1), Inches(1)
    path = tmp_path / "group.pptx"
    prs.save(path)
    (figure,) = [u for u in extract(path) if u.kind == "figure"]
    assert figure.pointer["box"] == pytest.approx([0.2, 1 / 7.5, 0.4, 3 / 7.5], abs=1e-3)


def replace_member(path: Path, name: str, data: bytes) -> None:
    """Rewrite one entry of a package (what a damaged or WMF picture looks like inside)."""
    with zipfile.ZipFile(path) as archive:
        entries = [(info, archive.read(info)) for info in archive.infolist()]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for info, content in entries:
            archive.writestr(info, data if info.filename == name else content)


def test_unreadable_pictures_are_counted_not_fatal(tmp_path: Path) -> None:
    path = build_deck(tmp_path / "wmf.pptx", png_bytes(400, 300))
    with zipfile.ZipFile(path) as archive:
        (media,) = [n for n in archive.namelist() if n.startswith("ppt/media/")]
    # A placeable-WMF header Pillow identifies but cannot draw on this platform.
    replace_member(path, media, b"\xd7\xcd\xc6\x9a" + b"\x00" * 60)
    units = extract(path)
    slide = slide_unit(units, 1)
    assert slide.fields["pictures"] == 1 and slide.fields["pictures_unreadable"] == 1
    assert slide.fields["vector_from"] == "text" and not figures_of(units, 1)


def test_small_pictures_are_not_figures(tmp_path: Path) -> None:
    units = extract(build_deck(tmp_path / "icon.pptx", png_bytes(40, 400)))
    assert not figures_of(units, 1)
    assert slide_unit(units, 1).fields["vector_from"] == "text"
    bigger = ExtractOptions(min_figure_side=32)
    assert len(figures_of(extract(tmp_path / "icon.pptx", bigger), 1)) == 1


# --- hostile and broken files ---


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 4000, "encrypted or legacy (OLE)"),
        (b"", "empty file"),
        (b"just some text, not a deck", "not a ZIP archive"),
    ],
)
def test_refuses_non_decks_with_a_reason(tmp_path: Path, content: bytes, reason: str) -> None:
    path = tmp_path / "deck.pptx"
    path.write_bytes(content)
    source = Source.from_path(path)
    assert not slides_extractor.recognises(source)
    with pytest.raises(SkipFile, match=re.escape(reason)):
        list(slides_extractor.extract(source, OPTIONS))


def test_truncated_deck_is_skipped(tmp_path: Path) -> None:
    data = require_data("docs", "slides", "Lecture5.pptx").read_bytes()
    path = tmp_path / "cut.pptx"
    path.write_bytes(data[: len(data) // 2])
    source = Source.from_path(path)
    assert not slides_extractor.recognises(source)
    with pytest.raises(SkipFile, match="broken PowerPoint file"):
        list(slides_extractor.extract(source, OPTIONS))


def test_zip_without_presentation_is_not_a_deck(tmp_path: Path) -> None:
    path = tmp_path / "other.pptx"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("word/document.xml", "<w:document/>")
    source = Source.from_path(path)
    assert not slides_extractor.recognises(source)
    with pytest.raises(SkipFile, match=re.escape("no ppt/presentation.xml")):
        list(slides_extractor.extract(source, OPTIONS))


def test_damaged_slide_xml_is_skipped_and_reported(tmp_path: Path) -> None:
    path = build_deck(tmp_path / "bad.pptx", png_bytes(400, 300))
    replace_member(path, "ppt/slides/slide2.xml", b"<not-xml")
    with pytest.raises(SkipFile, match="cannot read the deck"):
        list(slides_extractor.extract(Source.from_path(path), OPTIONS))


# --- rendering ---


def test_page_mapping_skips_hidden_slides() -> None:
    assert slides._page_mapping([False, True, False], 3) == {1: 0, 2: 1, 3: 2}
    assert slides._page_mapping([False, True, False], 2) == {1: 0, 3: 1}
    assert slides._page_mapping([False, False], 5) is None


def fake_office(tmp_path: Path, pages: int, exit_code: int = 0, sleep: float = 0) -> str:
    """A stand-in `soffice` that 'converts' by copying a PDF with `pages` pages."""
    import pypdfium2 as pdfium

    pdf_path = tmp_path / "made.pdf"
    with slides.PDFIUM_LOCK:
        pdf = pdfium.PdfDocument.new()
        for _ in range(pages):
            pdf.new_page(720, 540)
        pdf.save(str(pdf_path))
        pdf.close()
    script = tmp_path / "soffice"
    script.write_text(
        "#!/bin/sh\n"
        f"sleep {sleep}\n"
        'while [ "$1" != "--outdir" ]; do shift; done\n'
        f'cp "{pdf_path}" "$2/deck.pdf"\n'
        f"exit {exit_code}\n"
    )
    script.chmod(0o755)
    return str(script)


def test_rendering_path_with_a_stand_in_office(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    office = fake_office(tmp_path, pages=2)
    monkeypatch.setattr(slides, "_office_binary", lambda: office)
    before = set(Path(slides.tempfile.gettempdir()).glob("heron-pptx-*"))
    units = extract(build_deck(tmp_path / "deck.pptx", png_bytes(400, 300)))
    slide = slide_unit(units, 1)
    assert slide.fields["vector_from"] == "rendering"
    assert max(slide.image.size) == OPTIONS.render_side
    # The blank slide has a page too, so it is indexed by its look.
    assert slide_unit(units, 2).fields["vector_from"] == "rendering"
    assert set(Path(slides.tempfile.gettempdir()).glob("heron-pptx-*")) == before


@pytest.mark.parametrize(("pages", "exit_code", "sleep"), [(5, 0, 0), (2, 1, 0), (2, 0, 5)])
def test_rendering_failures_fall_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pages: int, exit_code: int, sleep: float
) -> None:
    office = fake_office(tmp_path, pages, exit_code, sleep)
    monkeypatch.setattr(slides, "_office_binary", lambda: office)
    monkeypatch.setattr(slides, "RENDER_BASE_TIMEOUT_S", 0.5)
    monkeypatch.setattr(slides, "RENDER_PER_SLIDE_S", 0.0)
    units = extract(build_deck(tmp_path / "deck.pptx", png_bytes(400, 300)))
    assert slide_unit(units, 1).fields["vector_from"] == "picture"


def test_rendering_with_libreoffice(monkeypatch: pytest.MonkeyPatch) -> None:
    if REAL_OFFICE() is None:
        pytest.skip("LibreOffice (soffice) is not installed")
    monkeypatch.setattr(slides, "_office_binary", REAL_OFFICE)
    units = extract(require_data("docs", "slides", "Lecture5.pptx"))
    rendered = [u for u in units if u.kind == "slide"]
    assert all(u.fields["vector_from"] == "rendering" for u in rendered)
    assert max(rendered[0].image.size) == OPTIONS.render_side
