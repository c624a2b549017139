"""PowerPoint decks (.pptx): each slide is a unit, and so is each picture on it.

A slide's searchable text is its title, then the text of its shapes in the order the deck
stores them (text frames, table cells, chart titles and series, groups recursively), then the
speaker notes: what a person reading the deck would search for. Its vector comes, best first,
from a rendering of the slide (LibreOffice converts the deck to PDF once, pdfium draws each
page), from the slide's largest picture, or from its text when it has no picture at all.

Each picture large enough to be content (not a bullet or a logo strip) is a `figure` unit of
its own, located by slide, picture number and box, carrying the slide's text as context and
flagged for OCR: decks often hold their words only in screenshots.

Every embedded picture goes through `decode_image_bytes`, so bombs and broken pictures are
refused the way a picture file is; pictures Pillow cannot draw (WMF/EMF vector art) are
counted on the slide rather than failing it.

The ZIP and text helpers here (`check_package`, `is_package`, `clip_text`) serve the DOCX reader
too.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

from heron.extract.base import ExtractOptions, IncompleteSource, Source, UnitDraft
from heron.extract.errors import SkipFile
from heron.extract.images import DecodedImage, decode_image_bytes

if TYPE_CHECKING:
    from pptx.presentation import Presentation
    from pptx.slide import Slide

__all__ = [
    "PDFIUM_LOCK",
    "SlideExtractor",
    "check_package",
    "clip_text",
    "is_package",
    "slides_extractor",
]

log = logging.getLogger(__name__)

ZIP_MAGIC = b"PK\x03\x04"
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
PRESENTATION_PART = "ppt/presentation.xml"
EMU_PER_POINT = 12700
CONTEXT_CHARS = 500  # the slide text a figure carries
TITLE_MAX_CHARS = 200  # a guessed title longer than this is body text

# A package that unpacks to more than this, or one whose XML-sized entry expands more than
# MAX_RATIO times, is a ZIP bomb: python-pptx and python-docx read every part into memory.
MAX_UNPACKED_BYTES = 4 * 1024**3
MAX_RATIO = 200
RATIO_FLOOR_BYTES = 50 * 1024**2

# LibreOffice: a minute to start plus a second a slide, never more than ten minutes.
RENDER_BASE_TIMEOUT_S = 60.0
RENDER_PER_SLIDE_S = 1.0
RENDER_MAX_TIMEOUT_S = 600.0

# pdfium is not thread-safe: every call into it, from any extractor, holds one lock, the PDF
# reader's (a lock of our own would let a slide render race a PDF page).
try:
    from heron.extract.pdf import PDFIUM_LOCK
except ImportError:  # pragma: no cover - the PDF reader ships with this module
    PDFIUM_LOCK = threading.RLock()


# --- shared helpers (the DOCX reader uses them too) ---


def check_package(source: Source, member: str, what: str) -> frozenset[str]:
    """The entry names of an OOXML package, or SkipFile saying why it cannot be read.

    `member` is the part that makes the ZIP this format (ppt/presentation.xml); `what` names
    the format in messages ("PowerPoint", "Word"). Encrypted OOXML files are OLE compound
    files, as are the legacy binary formats, so one message covers both.
    """
    head = source.head
    if head.startswith(OLE_MAGIC):
        suffix = ".pptx" if what == "PowerPoint" else ".docx"
        raise SkipFile(f"encrypted or legacy (OLE) {what} file: save it as an unencrypted {suffix}")
    if not head:
        raise SkipFile("empty file")
    if not head.startswith(ZIP_MAGIC):
        raise SkipFile(f"not a {what} file: the content is not a ZIP archive")
    try:
        with source.open() as stream, zipfile.ZipFile(stream) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as exc:
        raise SkipFile(f"broken {what} file: not a complete ZIP archive ({exc})") from None
    names = frozenset(info.filename for info in infos)
    if member not in names:
        raise SkipFile(f"not a {what} file: the ZIP archive has no {member}")
    _check_bomb(infos)
    return names


def _check_bomb(infos: list[zipfile.ZipInfo]) -> None:
    total = sum(info.file_size for info in infos)
    if total > MAX_UNPACKED_BYTES:
        raise SkipFile(f"package too large when unpacked ({total / 1024**3:.1f} GiB)")
    for info in infos:
        packed = max(info.compress_size, 1)
        if info.file_size > RATIO_FLOOR_BYTES and info.file_size / packed > MAX_RATIO:
            raise SkipFile(f"ZIP bomb: {info.filename} expands {info.file_size // packed}-fold")


def is_package(source: Source, member: str) -> bool:
    """Whether the content is a ZIP holding `member`: the sniff behind `recognises`."""
    if not source.head.startswith(ZIP_MAGIC):
        return False
    try:
        with source.open() as stream, zipfile.ZipFile(stream) as archive:
            archive.getinfo(member)
    except Exception:  # any failure to read the directory means "not recognised"
        return False
    return True


def clip_text(text: str, limit: int = CONTEXT_CHARS) -> str:
    """`text` cut to about `limit` characters at a line, sentence or word boundary."""
    text = text.strip()
    if len(text) <= limit:
        return text
    window = text[:limit]
    floor = limit * 3 // 5
    for marks in ("\n", "。！？；.!?;", " \t"):
        cut = max(window.rfind(mark) for mark in marks)
        if cut >= floor:
            return window[: cut + 1].rstrip() + "…"
    return window.rstrip() + "…"


# --- geometry: shapes inside groups live in the group's child coordinates ---


@dataclass(frozen=True)
class _Transform:
    """Maps a group's child coordinates (EMU) to slide coordinates: x' = sx·x + dx."""

    sx: float = 1.0
    sy: float = 1.0
    dx: float = 0.0
    dy: float = 0.0

    def then_group(self, group: Any) -> _Transform:
        """This transform composed with the one a group shape applies to its children."""
        xfrm = getattr(group._element.grpSpPr, "xfrm", None)
        if xfrm is None:
            return self
        off, ext, ch_off, ch_ext = xfrm.off, xfrm.ext, xfrm.chOff, xfrm.chExt
        if off is None or ext is None or ch_off is None or ch_ext is None:
            return self
        sx = ext.cx / ch_ext.cx if ch_ext.cx else 1.0
        sy = ext.cy / ch_ext.cy if ch_ext.cy else 1.0
        inner = _Transform(sx, sy, off.x - ch_off.x * sx, off.y - ch_off.y * sy)
        return _Transform(
            self.sx * inner.sx,
            self.sy * inner.sy,
            self.sx * inner.dx + self.dx,
            self.sy * inner.dy + self.dy,
        )

    def box(self, shape: Any) -> tuple[float, float, float, float] | None:
        """The shape's [x0, y0, x1, y1] in slide EMU, or None where the deck does not say."""
        try:
            left, top, width, height = shape.left, shape.top, shape.width, shape.height
        except Exception:  # a placeholder whose layout lost its twin
            return None
        if left is None or top is None or width is None or height is None:
            return None
        x0, y0 = self.sx * left + self.dx, self.sy * top + self.dy
        return x0, y0, x0 + self.sx * width, y0 + self.sy * height


# --- one slide's content ---


@dataclass
class _Picture:
    """A picture shape found on a slide, in the order the slide stores it (1-based)."""

    number: int
    shape: Any
    box: tuple[float, float, float, float] | None


@dataclass
class _SlideContent:
    title: str = ""
    texts: list[str] = field(default_factory=list)
    notes: str = ""
    pictures: list[_Picture] = field(default_factory=list)

    @property
    def body(self) -> str:
        """Title and shape text: what a figure on this slide carries as context."""
        return "\n".join(part for part in (self.title, *self.texts) if part)

    @property
    def text(self) -> str:
        return "\n".join(part for part in (self.body, self.notes) if part)


def _clean(text: str) -> str:
    """python-pptx writes a line break inside a paragraph as a vertical tab."""
    lines = (line.strip() for line in text.replace("\v", "\n").replace("\r", "\n").split("\n"))
    return "\n".join(line for line in lines if line)


def _read_slide(slide: Slide, height: int) -> _SlideContent:
    content = _SlideContent()
    title_shape = _title_shape(slide, height)
    if title_shape is not None:
        content.title = _clean(title_shape.text_frame.text)
    _walk_shapes(slide.shapes, _Transform(), content, title_shape)
    content.notes = _notes(slide)
    return content


def _title_shape(slide: Slide, height: int) -> Any:
    """The title placeholder; failing it, the topmost short text in the upper third.

    Many decks (exported from Keynote, Google Slides, or built from blank layouts) put the
    title in a plain text box, so position is the only hint left.
    """
    title = slide.shapes.title
    if title is not None and title.has_text_frame and _clean(title.text_frame.text):
        return title
    best, best_key = None, None
    for shape in slide.shapes:
        if not getattr(shape, "has_text_frame", False) or shape.top is None:
            continue
        text = _clean(shape.text_frame.text)
        if not text or len(text) > TITLE_MAX_CHARS or text.count("\n") > 1:
            continue
        if height and shape.top > height / 3:
            continue
        key = (shape.top, shape.left or 0)
        if best_key is None or key < best_key:
            best, best_key = shape, key
    return best


def _walk_shapes(shapes: Any, transform: _Transform, content: _SlideContent, skip: Any) -> None:
    """Collect text and pictures from a shape tree, groups recursively, in stored order."""
    from pptx.shapes.group import GroupShape
    from pptx.shapes.picture import Picture

    for shape in shapes:
        if isinstance(shape, GroupShape):
            _walk_shapes(shape.shapes, transform.then_group(shape), content, skip)
            continue
        if isinstance(shape, Picture):
            number = len(content.pictures) + 1
            content.pictures.append(_Picture(number, shape, transform.box(shape)))
        if skip is not None and shape._element is skip._element:
            continue
        text = _shape_text(shape)
        if text:
            content.texts.append(text)


def _shape_text(shape: Any) -> str:
    if getattr(shape, "has_text_frame", False):
        return _clean(shape.text_frame.text)
    if getattr(shape, "has_table", False):
        rows = []
        for row in shape.table.rows:
            cells = [_clean(cell.text).replace("\n", " ") for cell in row.cells]
            if any(cells):
                rows.append(" | ".join(cells))
        return "\n".join(rows)
    if getattr(shape, "has_chart", False):
        return _chart_text(shape.chart)
    return ""


def _chart_text(chart: Any) -> str:
    """A chart's title, series names and categories: the words a chart shows."""
    parts: list[str] = []
    try:
        if chart.has_title and chart.chart_title.has_text_frame:
            parts.append(_clean(chart.chart_title.text_frame.text))
        for plot in chart.plots:
            parts.extend(str(series.name) for series in plot.series if series.name)
            categories = [str(c) for c in plot.categories if c is not None and str(c)]
            if categories:
                parts.append(", ".join(categories[:50]))
    except Exception:  # charts are context, not content: a damaged one costs only its words
        pass
    return "\n".join(part for part in parts if part)


def _notes(slide: Slide) -> str:
    if not slide.has_notes_slide:  # asking for notes_slide would create one
        return ""
    frame = slide.notes_slide.notes_text_frame
    return _clean(frame.text) if frame is not None else ""


# --- pictures ---


@dataclass
class _Figure:
    picture: _Picture
    decoded: DecodedImage
    image: Image.Image
    width: int
    height: int


def _decode_picture(picture: _Picture, options: ExtractOptions) -> _Figure | None:
    """The picture's pixels, cropped as the slide shows them; None when it cannot be decoded."""
    try:
        blob = picture.shape.image.blob
    except Exception:  # a linked (not embedded) picture, or a dangling relationship
        return None
    target = max(options.image_side, options.detail_side if options.ocr else 0)
    try:
        decoded = decode_image_bytes(blob, target, options.max_image_pixels)
    except SkipFile:
        return None
    image, width, height = _crop(picture.shape, decoded)
    return _Figure(picture, decoded, image, width, height)


def _crop(shape: Any, decoded: DecodedImage) -> tuple[Image.Image, int, int]:
    """Apply the picture's crop (fractions of each side) so the figure is what the slide shows."""
    try:
        left, right = max(0.0, shape.crop_left), max(0.0, shape.crop_right)
        top, bottom = max(0.0, shape.crop_top), max(0.0, shape.crop_bottom)
    except Exception:
        return decoded.image, decoded.width, decoded.height
    if not (left or right or top or bottom) or left + right >= 0.99 or top + bottom >= 0.99:
        return decoded.image, decoded.width, decoded.height
    image = decoded.image
    box = (
        round(image.width * left),
        round(image.height * top),
        round(image.width * (1 - right)),
        round(image.height * (1 - bottom)),
    )
    width = max(1, round(decoded.width * (1 - left - right)))
    height = max(1, round(decoded.height * (1 - top - bottom)))
    return image.crop(box), width, height


def _fraction_box(box: tuple[float, float, float, float], size: tuple[int, int]) -> list[float]:
    """A slide-EMU box as [x0, y0, x1, y1] fractions of the slide, clipped to the slide."""
    width, height = size

    def clip(value: float) -> float:
        return round(min(1.0, max(0.0, value)), 4)

    x0, y0, x1, y1 = box
    return [clip(x0 / width), clip(y0 / height), clip(x1 / width), clip(y1 / height)]


def _area(picture: _Picture) -> float:
    if picture.box is None:
        return 0.0
    x0, y0, x1, y1 = picture.box
    return abs(x1 - x0) * abs(y1 - y0)


# --- rendering through LibreOffice ---


class _Renderer:
    """The deck as a PDF LibreOffice made, one page per shown slide, drawn by pdfium."""

    def __init__(self, pdf: Any, workdir: Path, page_of: dict[int, int]) -> None:
        self._pdf = pdf
        self._workdir = workdir
        self._page_of = page_of

    @classmethod
    def open(cls, pdf_path: Path, workdir: Path, hidden: list[bool]) -> _Renderer | None:
        """The renderer for a converted deck; None when its pages do not match the slides."""
        import pypdfium2 as pdfium

        with PDFIUM_LOCK:
            pdf = pdfium.PdfDocument(str(pdf_path))
            pages = len(pdf)
        page_of = _page_mapping(hidden, pages)
        if page_of is None:
            log.warning("LibreOffice made %d pages of %d slides: not rendering", pages, len(hidden))
            with PDFIUM_LOCK:
                pdf.close()
            return None
        return cls(pdf, workdir, page_of)

    def render(self, slide_number: int, side: int) -> Image.Image | None:
        """Slide `slide_number` with its longer side `side` pixels; None when it has no page."""
        index = self._page_of.get(slide_number)
        if index is None:
            return None
        try:
            with PDFIUM_LOCK:
                page = self._pdf[index]
                try:
                    width, height = page.get_size()
                    scale = side / max(width, height, 1.0)
                    bitmap = page.render(scale=scale, may_draw_forms=False)
                    try:
                        image = bitmap.to_pil().convert("RGB")  # a copy: the bitmap is freed
                    finally:
                        bitmap.close()  # here, under the lock, not by a finalizer elsewhere
                finally:
                    page.close()
        except Exception as exc:
            log.warning("cannot render slide %d: %s", slide_number, exc)
            return None
        return image

    def close(self) -> None:
        with PDFIUM_LOCK:
            self._pdf.close()
        shutil.rmtree(self._workdir, ignore_errors=True)


def _office_binary() -> str | None:
    return shutil.which("soffice") or shutil.which("libreoffice")


def _open_renderer(source: Source, hidden: list[bool]) -> _Renderer | None:
    """Convert the deck to PDF once; None (the picture fallback) on any failure."""
    office = _office_binary()
    if office is None:
        return None
    workdir = Path(tempfile.mkdtemp(prefix="heron-pptx-"))
    renderer = None
    try:
        pdf = _convert_to_pdf(office, source, workdir, len(hidden))
        renderer = _Renderer.open(pdf, workdir, hidden) if pdf is not None else None
    except Exception as exc:
        log.warning("cannot render %s: %s", source.path.name, exc)
    if renderer is None:
        shutil.rmtree(workdir, ignore_errors=True)
    return renderer


def _page_mapping(hidden: list[bool], pages: int) -> dict[int, int] | None:
    """Slide number → PDF page index. LibreOffice leaves hidden slides out of its PDF."""
    if pages == len(hidden):
        return {n: n - 1 for n in range(1, len(hidden) + 1)}
    shown = [n for n, is_hidden in enumerate(hidden, 1) if not is_hidden]
    if pages == len(shown):
        return {n: i for i, n in enumerate(shown)}
    return None


def _convert_to_pdf(office: str, source: Source, workdir: Path, slides: int) -> Path | None:
    """Run LibreOffice headless on a copy of the deck, in its own profile, under a timeout.

    A copy with a plain name spares LibreOffice odd file names; a private profile lets several
    conversions run at once (a shared one is locked by the first). The whole process group is
    killed on timeout: soffice forks soffice.bin, which would otherwise outlive it.
    """
    deck = workdir / "deck.pptx"
    if source.data is not None:
        deck.write_bytes(source.data)
    else:
        shutil.copyfile(source.path, deck)
    profile = (workdir / "profile").as_uri()
    command = [
        office,
        f"-env:UserInstallation={profile}",
        "--headless",
        "--invisible",
        "--nologo",
        "--nodefault",
        "--nolockcheck",
        "--norestore",
        "--convert-to",
        "pdf",
        "--outdir",
        str(workdir),
        str(deck),
    ]
    timeout = min(RENDER_MAX_TIMEOUT_S, RENDER_BASE_TIMEOUT_S + RENDER_PER_SLIDE_S * slides)
    env = {**os.environ, "HOME": str(workdir)}
    process = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env=env,
    )
    try:
        code = process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        log.warning("LibreOffice took over %.0f s converting %s", timeout, source.path.name)
        _kill_group(process)
        return None
    pdf = workdir / "deck.pdf"
    if code != 0 or not pdf.is_file() or pdf.stat().st_size == 0:
        log.warning("LibreOffice could not convert %s (exit %s)", source.path.name, code)
        return None
    return pdf


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        process.kill()
    process.wait()


# --- the extractor ---


class SlideExtractor:
    """PowerPoint (.pptx) decks: a `slide` unit per slide, a `figure` unit per picture."""

    name = "pptx"
    suffixes = frozenset({".pptx"})

    def recognises(self, source: Source) -> bool:
        return is_package(source, PRESENTATION_PART)

    def extract(self, source: Source, options: ExtractOptions) -> Iterator[UnitDraft]:
        check_package(source, PRESENTATION_PART, "PowerPoint")
        deck = _open_deck(source)
        slides = list(deck.slides)
        if not slides:
            raise SkipFile("no slides in this deck")
        size = (int(deck.slide_width or 9144000), int(deck.slide_height or 6858000))
        hidden = [slide._element.get("show") in ("0", "false") for slide in slides]
        renderer = _open_renderer(source, hidden)
        yielded = 0
        broken: list[str] = []
        try:
            for number, slide in enumerate(slides, 1):
                try:
                    units = _slide_units(slide, number, len(slides), size, options, renderer)
                except Exception as exc:  # one damaged slide must not cost the rest
                    broken.append(f"slide {number}: {exc}")
                    continue
                if hidden[number - 1] and units:
                    units[0].fields["hidden"] = True
                yield from units
                yielded += len(units)
        finally:
            if renderer is not None:
                renderer.close()
        if broken and yielded:
            raise IncompleteSource("unreadable " + "; ".join(broken[:5]))
        if not yielded:
            raise SkipFile(broken[0] if broken else "no text or pictures in this deck")


def _open_deck(source: Source) -> Presentation:
    from pptx import Presentation as open_presentation

    try:
        with source.open() as stream:
            return open_presentation(stream)
    except zipfile.BadZipFile as exc:
        raise SkipFile(f"broken PowerPoint file: {exc}") from None
    except Exception as exc:  # python-pptx raises KeyError, ValueError, lxml errors...
        raise SkipFile(f"cannot read the deck: {type(exc).__name__}: {exc}") from None


def _slide_units(
    slide: Slide,
    number: int,
    total: int,
    size: tuple[int, int],
    options: ExtractOptions,
    renderer: _Renderer | None,
) -> list[UnitDraft]:
    """The slide's unit, then its figures; nothing for a slide with no text and no picture."""
    content = _read_slide(slide, size[1])
    decoded = [(picture, _decode_picture(picture, options)) for picture in content.pictures]
    figures = [
        figure
        for _, figure in decoded
        if figure is not None
        and figure.width >= options.min_figure_side
        and figure.height >= options.min_figure_side
    ]
    unreadable = sum(1 for _, figure in decoded if figure is None)
    render = renderer.render(number, options.render_side) if renderer is not None else None
    slide_unit = _slide_unit(content, number, total, size, figures, render)
    if slide_unit is None and not figures:
        return []
    units: list[UnitDraft] = []
    if slide_unit is not None:
        slide_unit.fields["pictures"] = len(content.pictures)
        slide_unit.fields["pictures_unreadable"] = unreadable
        units.append(slide_unit)
    context = clip_text(content.body)
    units.extend(_figure_unit(figure, number, size, context) for figure in figures)
    return units


def _slide_unit(
    content: _SlideContent,
    number: int,
    total: int,
    size: tuple[int, int],
    figures: list[_Figure],
    render: Image.Image | None,
) -> UnitDraft | None:
    unit = UnitDraft(
        kind="slide",
        locator=f"slide={number}",
        text=content.text,
        pointer={"slide": number},
        width=round(size[0] / EMU_PER_POINT),
        height=round(size[1] / EMU_PER_POINT),
        format="pptx",
        fields={"slides": total, "title": content.title},
    )
    if render is not None:
        unit.image = render
        unit.fields["vector_from"] = "rendering"
    elif figures:
        largest = max(figures, key=lambda f: (_area(f.picture), f.width * f.height))
        unit.image = largest.image
        unit.fields["vector_from"] = "picture"
    elif content.text:
        unit.embed, unit.thumbnail = "text", "none"
        unit.fields["vector_from"] = "text"
    else:
        return None
    return unit


def _figure_unit(figure: _Figure, number: int, size: tuple[int, int], context: str) -> UnitDraft:
    picture = figure.picture
    pointer: dict[str, Any] = {"slide": number, "picture": picture.number}
    if picture.box is not None:
        pointer["box"] = _fraction_box(picture.box, size)
    return UnitDraft(
        kind="figure",
        locator=f"slide={number};picture={picture.number}",
        image=figure.image,
        text=context,
        pointer=pointer,
        width=figure.width,
        height=figure.height,
        format="pptx",
        fields={"picture_format": figure.decoded.format},
        read_text=True,
    )


slides_extractor = SlideExtractor()
