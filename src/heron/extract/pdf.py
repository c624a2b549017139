"""PDF files: every page is a unit, so is every figure on it, and the text is cut into passages.

A page unit is a rendering of the page (for the image tower and the thumbnail) with the page's
text layer; a page with (almost) no text layer is a scan and is flagged for OCR. Figures come
from two places:

- captions: a line starting like `Figure 2:`, `Fig. 3`, `图 3` (or `Table 1`, `表 1`) marks a
  figure; its region is the cluster of graphics (paths, images, shadings) next to the caption,
  above it for figures and below it for tables (the usual placement; the other side is tried
  second), grown across gaps that only hold short labels or table rows. Vector charts have no
  embedded picture to extract, so this is the only way to find them. A caption with no graphics
  beside it (a table drawn without rules, a body line that starts "Table 1.") is no figure;
- embedded raster images outside any captioned figure that are large enough to be content, not
  icons or full-page background scans (those are the page itself). "Large enough" is measured
  on the page: `min_figure_side` pixels at FIGURE_DPI (96 px → 46 pt) on both sides and 2 % of
  the page; at the page rendering's own scale (256 px for a whole A4 page) nothing would pass.
  Such a picture carries the lines just above and below it as its text.

Tables count as figures when their caption has graphics beside it (rules, cell borders,
pictures): a rendered table is worth OCR and a picture search. Uncaptioned vector drawings are
not looked for: without a caption there is no telling a chart from a text box's frame.

Each figure is cropped from a page rendering at its own scale, so raster and vector content both
show and the crop's longer side is what the models need (`options.render_side`).

Geometry is worked out in *display space*: points, origin at the top left of the page as it is
shown (after /Rotate), which is also how boxes are reported (as fractions) and how pdfium's
render crop is given. PDF user space (origin bottom left) is converted once, on reading.

pdfium is not thread-safe: every call into it holds `PDFIUM_LOCK`, which is never held across a
`yield`. It is re-entrant so a document closed by garbage collection while the same thread is
inside pdfium cannot deadlock. Everything opened is closed explicitly (pypdfium2's finalizers
would otherwise call into pdfium from whatever thread collects them, outside the lock). Other
modules that call pdfium must take this same lock.
"""

from __future__ import annotations

import bisect
import itertools
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
from PIL import Image

from heron.extract.base import ExtractOptions, IncompleteSource, Source, UnitDraft
from heron.extract.errors import SkipFile
from heron.extract.passages import cut_passages, passage_unit

__all__ = ["PDFIUM_LOCK", "PdfExtractor", "extractor"]

# pdfium is not thread-safe: every call into it, from any extractor, holds this lock.
PDFIUM_LOCK = threading.RLock()

MAGIC = b"%PDF-"
SNIFF_BYTES = 1024  # the PDF spec lets the header sit anywhere in the first 1024 bytes

SCAN_MAX_CHARS = 25  # a page with fewer non-space characters than this has no text layer
SCAN_WITH_BACKGROUND_MAX_CHARS = 200  # ... or this few, over a full-page picture
BACKGROUND_COVER = 0.9  # a picture covering this share of the page is the page (a scan)
FIGURE_DPI = 150.0  # the nominal resolution at which `min_figure_side` pixels are measured
MIN_FIGURE_AREA = 0.02  # an uncaptioned picture smaller than this share of the page is decor
MIN_NATIVE_PIXELS = 32  # pictures with fewer pixels a side are patterns, strips, spacers
MAX_CROP_SCALE = 4.0  # never render a figure above 288 dpi, however small it is
CROP_PAD = 3.0  # points of margin around a figure's crop
MAX_OBJECTS = 20_000  # page objects read per page (a dense vector map stops here)
FORM_DEPTH = 8  # nested Form XObjects descended into

# Caption geometry, in points.
SEED_GAP = 40.0  # the farthest graphics may sit from their caption
JOIN_GAP = 8.0  # graphics this close to a figure's region belong to it
LABEL_GAP = 6.0  # short text this close to a figure's region is one of its labels
LABEL_MAX_CHARS = 40  # a longer line next to a figure is body text, not a label
BLOCK_MIN_CHARS = 20  # a line this long between caption and graphics means they are unrelated
MIN_CAPTIONED_SIDE = 20.0  # a captioned region thinner than this is a rule, not a figure
MAX_CAPTION_LINES = 8
LINE_GAP = 1.5  # runs on one row further apart than this many text heights are separate lines
NEARBY_CHARS = 300  # the text an uncaptioned picture carries from around it
NEARBY_GAP = 36.0  # how far above and below a picture that text is looked for
MARGIN_SHARE = 0.075  # the top and bottom of a page hold running heads, not a picture's text

_CAPTION = re.compile(
    r"^\s*(?:"
    r"(?P<fig>Figure|FIGURE|Fig\.?|FIG\.?|图|圖|Abbildung|Abb\.)"
    r"|(?P<tab>Table|TABLE|Tab\.|表)"
    r")\s*(?P<num>\d+(?:[.\-–－]\d+)*[a-z]?)(?:\s*[:：.．]|\s|$)"
)
_PAGE = pdfium.PdfMatrix()  # page space is the page's own: the identity
_DRAWN = frozenset(
    {pdfium_c.FPDF_PAGEOBJ_PATH, pdfium_c.FPDF_PAGEOBJ_SHADING, pdfium_c.FPDF_PAGEOBJ_IMAGE}
)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\ufffe\uffff]")
_SOFT_HYPHEN_BREAK = re.compile(r"\x02\s*\n")  # pdfium's mark for a word hyphenated at a break
_SPACES = re.compile(r"[^\S\n]+")
_BLANK_LINES = re.compile(r"\n\s*\n\s*(?:\n\s*)+")

_ERRORS = {
    pdfium_c.FPDF_ERR_UNKNOWN: "PDFium reported an unknown error",
    pdfium_c.FPDF_ERR_FORMAT: "its structure cannot be parsed (PDFium: data format error)",
    pdfium_c.FPDF_ERR_PAGE: "its page tree is broken (PDFium: page not found or content error)",
}


class Box(NamedTuple):
    """A rectangle in display space: points, origin top left, y grows downwards."""

    x0: float
    y0: float
    x1: float
    y1: float

    @property
    def width(self) -> float:
        return self.x1 - self.x0

    @property
    def height(self) -> float:
        return self.y1 - self.y0

    @property
    def area(self) -> float:
        return max(0.0, self.width) * max(0.0, self.height)

    def union(self, other: Box) -> Box:
        return Box(
            min(self.x0, other.x0),
            min(self.y0, other.y0),
            max(self.x1, other.x1),
            max(self.y1, other.y1),
        )

    def grow(self, by: float) -> Box:
        return Box(self.x0 - by, self.y0 - by, self.x1 + by, self.y1 + by)

    def intersects(self, other: Box) -> bool:
        return (
            self.x0 <= other.x1
            and other.x0 <= self.x1
            and self.y0 <= other.y1
            and other.y0 <= self.y1
        )

    def overlap_area(self, other: Box) -> float:
        w = min(self.x1, other.x1) - max(self.x0, other.x0)
        h = min(self.y1, other.y1) - max(self.y0, other.y0)
        return w * h if w > 0 and h > 0 else 0.0

    def x_overlaps(self, other: Box) -> bool:
        return self.x0 < other.x1 and other.x0 < self.x1

    def clip(self, width: float, height: float) -> Box:
        return Box(max(0.0, self.x0), max(0.0, self.y0), min(width, self.x1), min(height, self.y1))


ToDisplay = Callable[[Sequence[float]], Box]  # a user-space (l, b, r, t) rectangle to a Box


@dataclass(frozen=True)
class Line:
    """A run of text on one baseline (pdfium's text rectangles, merged)."""

    box: Box
    text: str


@dataclass(frozen=True)
class Graphic:
    """A drawn page object: a path, a shading or a raster image (with its pixel size)."""

    box: Box
    is_image: bool
    pixels: tuple[int, int] = (0, 0)


@dataclass
class Layout:
    """What one page holds, read out of pdfium into plain Python."""

    width: float
    height: float
    text: str
    lines: list[Line]
    graphics: list[Graphic]

    @property
    def area(self) -> float:
        return self.width * self.height


@dataclass(frozen=True)
class Caption:
    box: Box
    text: str
    is_table: bool
    lines: tuple[int, ...]  # indices into Layout.lines
    key: tuple[str, str]  # ("figure", "3"): one figure per caption number and page


@dataclass(frozen=True)
class Figure:
    box: Box  # display space, points
    text: str


@dataclass
class PageResult:
    """One page's units, made while holding the lock and yielded after releasing it."""

    text: str
    units: list[UnitDraft]


class PdfExtractor:
    """Pages, figures and passages of a PDF file."""

    name = "pdf"
    suffixes = frozenset({".pdf"})

    def recognises(self, source: Source) -> bool:
        return MAGIC in source.head[:SNIFF_BYTES]

    def extract(self, source: Source, options: ExtractOptions) -> Iterator[UnitDraft]:
        # Bytes in memory are handed to pdfium as they are; a large file is read by pdfium
        # from its path. Either way `data` must outlive the document: pdfium does not copy it.
        data: bytes | Path = source.data if source.data is not None else source.path
        with PDFIUM_LOCK:
            pdf = _open(data, options.pdf_passwords, source)
        try:
            yield from _extract_pages(pdf, options)
        finally:
            with PDFIUM_LOCK:
                pdf.close()


extractor = PdfExtractor()


# --- opening ---


def _open(data: bytes | Path, passwords: Sequence[str], source: Source) -> pdfium.PdfDocument:
    """The document, unlocked with no password or one of `passwords`; SkipFile saying why not."""
    error = pdfium_c.FPDF_ERR_SUCCESS
    for password in (None, *passwords):
        handle = _load(data, password)
        if handle:
            pdf = pdfium.PdfDocument(handle)
            if len(pdf) < 1:
                pdf.close()
                raise SkipFile("the PDF has no pages")
            return pdf
        error = pdfium_c.FPDF_GetLastError()
        if error != pdfium_c.FPDF_ERR_PASSWORD:
            break
    raise SkipFile(_open_failure(error, source))


def _load(data: bytes | Path, password: str | None) -> Any:
    """A raw FPDF_DOCUMENT handle (null on failure).

    pypdfium2's PdfDocument refuses a document without pages with the same error as a broken
    one; loading the handle ourselves tells the two apart.
    """
    secret = None if password is None else (password + "\x00").encode("utf-8")
    if isinstance(data, bytes):
        return pdfium_c.FPDF_LoadMemDocument64(data, len(data), secret)
    name = (str(data) + "\x00").encode("utf-8", errors="surrogateescape")
    return pdfium_c.FPDF_LoadDocument(name, secret)


def _open_failure(error: int, source: Source) -> str:
    if error == pdfium_c.FPDF_ERR_PASSWORD:
        return "encrypted PDF: it needs a password (add it to the pdf_passwords setting)"
    if error == pdfium_c.FPDF_ERR_SECURITY:
        return "encrypted PDF: its security handler is not supported"
    if error == pdfium_c.FPDF_ERR_FILE:
        return "cannot read file: PDFium could not open it"
    words = _ERRORS.get(error, f"PDFium error {error}")
    if error == pdfium_c.FPDF_ERR_FORMAT and _looks_truncated(source):
        return f"damaged PDF: the file is truncated (no end-of-file marker) and {words}"
    return f"damaged PDF: {words}"


def _looks_truncated(source: Source) -> bool:
    """Whether the file lacks the `%%EOF` every complete PDF ends with."""
    try:
        if source.data is not None:
            tail = source.data[-2048:]
        else:
            with source.path.open("rb") as handle:
                handle.seek(max(0, source.size - 2048))
                tail = handle.read()
    except OSError:
        return False
    return b"%%EOF" not in tail


# --- the document, page by page ---


def _extract_pages(pdf: pdfium.PdfDocument, options: ExtractOptions) -> Iterator[UnitDraft]:
    with PDFIUM_LOCK:
        total = len(pdf)
        title = _tidy(pdf.get_metadata_value("Title"))
    fields: dict[str, Any] = {"pages": total, **({"title": title} if title else {})}
    texts: list[str] = []
    failures: list[str] = []
    for index in range(total):
        try:
            with PDFIUM_LOCK:
                result = _read_page(pdf, index, options, fields)
        except (pdfium.PdfiumError, ValueError, OSError) as exc:
            failures.append(f"page {index + 1} could not be read: {_describe(exc)}")
            texts.append("")
            continue
        texts.append(result.text)
        yield from result.units
    if len(failures) == total:
        raise SkipFile(f"damaged PDF: no page could be read ({failures[0]})")
    yield from _passages(texts, options)
    if failures:
        more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
        raise IncompleteSource(failures[0] + more)


def _read_page(
    pdf: pdfium.PdfDocument, index: int, options: ExtractOptions, fields: dict[str, Any]
) -> PageResult:
    """The page unit and its figures (call holding PDFIUM_LOCK)."""
    page = pdf.get_page(index)
    try:
        layout = _read_layout(page)
        number = index + 1
        scan = _is_scan(layout)
        read = options.ocr or options.ocr_scans
        side = max(options.render_side, options.detail_side) if read and scan else None
        image = _render(page, layout, None, side or options.render_side)
        units = [
            UnitDraft(
                kind="page",
                locator=f"page={number}",
                image=image,
                text=layout.text,
                pointer={"page": number},
                width=round(layout.width),
                height=round(layout.height),
                format="pdf",
                fields=dict(fields),
                read_text=scan,
                scanned=scan,
            )
        ]
        figures = find_figures(layout, options.min_figure_side)
        for j, figure in enumerate(figures, start=1):
            units.append(_figure_unit(page, layout, figure, number, j, options))
        return PageResult(layout.text, units)
    finally:
        page.close()


def _figure_unit(
    page: pdfium.PdfPage,
    layout: Layout,
    figure: Figure,
    number: int,
    j: int,
    options: ExtractOptions,
) -> UnitDraft:
    box = figure.box.clip(layout.width, layout.height)
    crop = _render(page, layout, box, options.render_side)
    fractions = [
        round(box.x0 / layout.width, 4),
        round(box.y0 / layout.height, 4),
        round(box.x1 / layout.width, 4),
        round(box.y1 / layout.height, 4),
    ]
    return UnitDraft(
        kind="figure",
        locator=f"page={number};figure={j}",
        image=crop,
        text=figure.text,
        pointer={"page": number, "figure": j, "box": fractions},
        width=crop.width,
        height=crop.height,
        format="pdf",
        read_text=True,
    )


def _passages(texts: list[str], options: ExtractOptions) -> Iterator[UnitDraft]:
    """The document's text in overlapping passages, each pointing at the pages it spans."""
    starts: list[int] = []
    offset = 0
    for text in texts:
        starts.append(offset)
        offset += len(text) + 2
    document = "\n\n".join(texts)
    for i, passage in enumerate(
        cut_passages(document, options.passage_chars, options.passage_overlap)
    ):
        first = bisect.bisect_right(starts, passage.start)
        last = bisect.bisect_right(starts, max(passage.start, passage.end - 1))
        yield passage_unit(passage, i, "pdf", pointer={"page": first, "last_page": last})


# --- reading a page out of pdfium ---


def _read_layout(page: pdfium.PdfPage) -> Layout:
    """Text, text lines and drawn objects of a page, in display space."""
    width, height = page.get_size()
    if not (width >= 1 and height >= 1):
        raise ValueError(f"the page has no size ({width:g}×{height:g} points)")
    to_display = _display_transform(page)
    textpage = page.get_textpage()
    try:
        text = _tidy(textpage.get_text_bounded())
        lines = _read_lines(textpage, to_display)
    finally:
        textpage.close()
    graphics = _read_graphics(page, to_display, width, height)
    return Layout(width, height, text, lines, graphics)


def _display_transform(page: pdfium.PdfPage) -> ToDisplay:
    """A function from a PDF user-space rectangle (l, b, r, t) to a display-space Box.

    The visible page is the intersection of its media and crop boxes; /Rotate turns it
    clockwise for display, which pdfium's renderer applies and object bounds do not.
    """
    left, bottom, right, top = page.get_bbox()
    w0, h0 = right - left, top - bottom
    try:
        rotation = page.get_rotation()
    except (pdfium.PdfiumError, KeyError):  # an invalid /Rotate: pdfium draws it unrotated
        rotation = 0

    def point(x: float, y: float) -> tuple[float, float]:
        u, v = x - left, top - y
        if rotation == 90:
            return h0 - v, u
        if rotation == 180:
            return w0 - u, h0 - v
        if rotation == 270:
            return v, w0 - u
        return u, v

    def convert(rect: Sequence[float]) -> Box:
        (ax, ay), (bx, by) = point(rect[0], rect[1]), point(rect[2], rect[3])
        return Box(min(ax, bx), min(ay, by), max(ax, bx), max(ay, by))

    return convert


def _read_lines(textpage: pdfium.PdfTextPage, to_display: ToDisplay) -> list[Line]:
    """pdfium's text rectangles (runs of one font on one line), merged into lines."""
    runs: list[Line] = []
    for i in range(textpage.count_rects()):
        try:
            rect = textpage.get_rect(i)
        except pdfium.PdfiumError:
            continue
        raw = textpage.get_text_bounded(*rect)
        text = " ".join(raw.split())
        if text:
            # A trailing space says the next run is another word, however close it sits.
            runs.append(Line(to_display(rect), text + (" " if raw[-1:].isspace() else "")))
    return _merge_runs(runs)


def _merge_runs(runs: list[Line]) -> list[Line]:
    """Join runs that share a baseline and sit a word space or so apart, left to right.

    Runs are first banded into rows (vertically overlapping the row's first run), then each row
    is split where the horizontal gap is wider than a few spaces: columns and table cells.
    """
    lines: list[Line] = []
    for row in _rows(runs):
        row.sort(key=lambda r: r.box.x0)
        current = [row[0]]
        for run in row[1:]:
            last = current[-1].box
            tall = max(last.height, run.box.height, 1.0)
            if run.box.x0 - max(r.box.x1 for r in current) > LINE_GAP * tall:
                lines.append(_line(current))
                current = []
            current.append(run)
        lines.append(_line(current))
    lines.sort(key=lambda ln: ((ln.box.y0 + ln.box.y1) / 2, ln.box.x0))
    return lines


def _rows(runs: list[Line]) -> list[list[Line]]:
    rows: list[list[Line]] = []
    anchor: Box | None = None
    for run in sorted(runs, key=lambda r: ((r.box.y0 + r.box.y1) / 2, r.box.x0)):
        if anchor is not None:
            overlap = min(anchor.y1, run.box.y1) - max(anchor.y0, run.box.y0)
            if overlap >= 0.5 * max(min(anchor.height, run.box.height), 0.1):
                rows[-1].append(run)
                continue
        rows.append([run])
        anchor = run.box
    return rows


def _line(runs: list[Line]) -> Line:
    return Line(_union(r.box for r in runs), _join_runs(runs))


def _join_runs(runs: list[Line]) -> str:
    text = runs[0].text
    for before, run in itertools.pairwise(runs):
        gap = run.box.x0 - before.box.x1
        if not text.endswith(" ") and gap > 0.15 * max(before.box.height, run.box.height):
            text += " "
        text += run.text
    return " ".join(text.split())


def _read_graphics(
    page: pdfium.PdfPage, to_display: ToDisplay, width: float, height: float
) -> list[Graphic]:
    """Paths, shadings and images, with bounds in page space (Form XObjects descended into).

    pdfium reports the bounds of an object inside a form in the form's own space; composing the
    forms' matrices takes them to the page. An object pdfium cannot place (an empty path, a
    form without a matrix and all it holds) is left out rather than costing the page; so is
    the rest of a page whose object list breaks off.
    """
    graphics: list[Graphic] = []
    matrices: dict[int, pdfium.PdfMatrix | None] = {}  # id(form) -> form space to page space
    try:
        for count, obj in enumerate(page.get_objects(max_depth=FORM_DEPTH)):
            if count >= MAX_OBJECTS:
                break
            outer = matrices.get(id(obj.container)) if obj.container is not None else _PAGE
            if outer is None:
                continue  # inside a form that could not be placed
            if obj.type == pdfium_c.FPDF_PAGEOBJ_FORM:
                matrices[id(obj)] = _form_matrix(obj, outer)
            elif obj.type in _DRAWN:
                graphic = _graphic(obj, outer, to_display, width, height)
                if graphic is not None:
                    graphics.append(graphic)
    except pdfium.PdfiumError:
        pass
    return graphics


def _form_matrix(form: pdfium.PdfObject, outer: pdfium.PdfMatrix) -> pdfium.PdfMatrix | None:
    try:
        return form.get_matrix().multiply(outer)
    except pdfium.PdfiumError:
        return None


def _graphic(
    obj: pdfium.PdfObject,
    outer: pdfium.PdfMatrix,
    to_display: ToDisplay,
    width: float,
    height: float,
) -> Graphic | None:
    try:
        rect = outer.on_rect(*obj.get_bounds())
        is_image = obj.type == pdfium_c.FPDF_PAGEOBJ_IMAGE
        pixels = obj.get_px_size() if is_image else (0, 0)
    except pdfium.PdfiumError:
        return None
    box = to_display(rect).clip(width, height)
    if box.x1 < box.x0 or box.y1 < box.y0:
        return None  # entirely off the page
    if box.width <= 0 and box.height <= 0:
        return None  # a point draws nothing worth finding
    return Graphic(box, is_image, pixels)


def _render(page: pdfium.PdfPage, layout: Layout, box: Box | None, side: int) -> Image.Image:
    """The page (or the `box` of it) as RGB, its longer side `side` pixels.

    A crop is never drawn coarser than the whole page is nor finer than MAX_CROP_SCALE.
    """
    page_scale = side / max(layout.width, layout.height)
    if box is None:
        scale, crop = page_scale, (0.0, 0.0, 0.0, 0.0)
    else:
        scale = min(max(side / max(box.width, box.height, 1.0), page_scale), MAX_CROP_SCALE)
        crop = (box.x0, layout.height - box.y1, layout.width - box.x1, box.y0)
    # pdfium rounds the canvas up: shave a hair so `side` is not exceeded by one pixel.
    scale *= 1 - 1e-6
    bitmap = page.render(scale=scale, crop=crop, rev_byteorder=True)
    try:
        image = bitmap.to_pil()
        return image.convert("RGB") if image.mode != "RGB" else image.copy()
    finally:
        bitmap.close()


def _is_scan(layout: Layout) -> bool:
    """Whether the page's words are (almost) all in pixels: no text layer to speak of."""
    if not layout.graphics:
        return False  # a blank page (or one of text only): nothing for OCR to read
    chars = sum(1 for ch in layout.text if not ch.isspace())
    if chars < SCAN_MAX_CHARS:
        return True  # a scan, or text drawn as outlines
    return chars < SCAN_WITH_BACKGROUND_MAX_CHARS and any(
        _is_background(g, layout) for g in layout.graphics
    )


def _is_background(graphic: Graphic, layout: Layout) -> bool:
    return graphic.is_image and graphic.box.area > BACKGROUND_COVER * layout.area


# --- finding figures (pure geometry on a Layout) ---


def find_figures(layout: Layout, min_figure_side: int) -> list[Figure]:
    """The figures of a page, top to bottom: captioned ones, then large uncaptioned pictures."""
    graphics = [g for g in layout.graphics if not _is_background(g, layout)]
    captions = _captions(layout, graphics)
    used: set[int] = set()
    figures: list[Figure] = []
    found: set[tuple[str, str]] = set()
    for caption in captions:
        if caption.key in found:
            continue
        region = _captioned_region(caption, captions, layout, graphics, used)
        if region is not None:
            figures.append(Figure(region, caption.text))
            found.add(caption.key)
    for k, graphic in enumerate(graphics):
        if k in used or not graphic.is_image or not _large_enough(graphic, layout, min_figure_side):
            continue
        if any(graphic.box.overlap_area(f.box) > 0.5 * graphic.box.area for f in figures):
            continue
        figures.append(Figure(graphic.box, _nearby_text(graphic.box, layout)))
    figures.sort(key=lambda f: (round(f.box.y0), f.box.x0))
    return figures


def _large_enough(graphic: Graphic, layout: Layout, min_figure_side: int) -> bool:
    """An uncaptioned picture is content when it is big on the page and has pixels to show."""
    min_side = min_figure_side * 72.0 / FIGURE_DPI
    box = graphic.box
    return (
        box.width >= min_side
        and box.height >= min_side
        and box.area >= MIN_FIGURE_AREA * layout.area
        and min(graphic.pixels) >= MIN_NATIVE_PIXELS
    )


def _captions(layout: Layout, graphics: list[Graphic]) -> list[Caption]:
    """Caption blocks: a line starting `Figure 3:`/`图 3`/`Table 1` and the lines that follow it.

    A body line that happens to start "Table 1 shows" is a candidate too; it has no graphics
    beside it, so it yields no figure.
    """
    captions: list[Caption] = []
    taken: set[int] = set()
    for i, line in enumerate(layout.lines):
        match = _CAPTION.match(line.text)
        if not match or i in taken:
            continue
        is_table = match.group("tab") is not None
        indices = _caption_block(i, layout.lines, graphics)
        taken.update(indices)
        box = _union(layout.lines[k].box for k in indices)
        text = " ".join(layout.lines[k].text for k in indices)
        key = ("table" if is_table else "figure", match.group("num"))
        captions.append(Caption(box, text, is_table, tuple(indices), key))
    return captions


def _caption_block(first: int, lines: list[Line], graphics: list[Graphic]) -> list[int]:
    """The caption's first line and its continuation lines: close below, within its width."""
    head = lines[first].box
    block = [first]
    bottom = lines[first].box
    candidates = sorted(
        (k for k in range(len(lines)) if lines[k].box.y0 > head.y0 + 0.5 * head.height),
        key=lambda k: lines[k].box.y0,
    )
    for k in candidates:
        if len(block) >= MAX_CAPTION_LINES:
            break
        box = lines[k].box
        if not box.x_overlaps(head):
            continue
        gap = box.y0 - bottom.y1
        if gap > 0.8 * max(bottom.height, 1.0):
            break
        if box.x0 < head.x0 - 3 or box.x1 > head.x1 + 3 or _CAPTION.match(lines[k].text):
            break
        if any(_between_vertically(g.box, bottom, box) for g in graphics):
            break
        block.append(k)
        bottom = box
    return block


def _between_vertically(thing: Box, upper: Box, lower: Box) -> bool:
    return thing.x_overlaps(upper) and upper.y1 - 1 <= thing.y0 and thing.y1 <= lower.y0 + 1


def _captioned_region(
    caption: Caption,
    captions: list[Caption],
    layout: Layout,
    graphics: list[Graphic],
    used: set[int],
) -> Box | None:
    """The figure a caption describes: above it first for figures, below it first for tables."""
    sides = (1, -1) if caption.is_table else (-1, 1)  # -1: above the caption, 1: below it
    for side in sides:
        members = _grow(caption, side, captions, layout, graphics, used)
        if not members:
            continue
        region = _union(graphics[k].box for k in members)
        region = _absorb_labels(region, caption, side, layout)
        if region.width >= MIN_CAPTIONED_SIDE and region.height >= MIN_CAPTIONED_SIDE:
            used.update(members)
            return _pad(region, caption.box, side, layout)
    return None


def _pad(region: Box, cap: Box, side: int, layout: Layout) -> Box:
    """A margin around a captioned figure (strokes reach past their bounds), short of the
    caption: the crop shows the figure, the caption is its text."""
    padded = region.grow(CROP_PAD).clip(layout.width, layout.height)
    if side < 0:
        return padded._replace(y1=max(region.y1, min(padded.y1, cap.y0 - 0.5)))
    return padded._replace(y0=min(region.y0, max(padded.y0, cap.y1 + 0.5)))


def _grow(
    caption: Caption,
    side: int,
    captions: list[Caption],
    layout: Layout,
    graphics: list[Graphic],
    used: set[int],
) -> set[int]:
    """Graphics forming one cluster beside the caption, on `side`, not past another caption."""
    cap = caption.box
    limit = _side_limit(caption, side, captions, layout)
    pool = [
        k
        for k, g in enumerate(graphics)
        if k not in used and _on_side(g.box, cap, side) and _within(g.box, limit, side)
    ]
    seed = _seed(caption, side, pool, layout, graphics)
    if seed is None:
        return set()
    members = {seed}
    region = graphics[seed].box
    # Nearest first, so most of a cluster joins in one pass over the rest.
    rest = sorted((k for k in pool if k != seed), key=lambda k: _distance(graphics[k].box, cap))
    grown = True
    while grown and rest:
        grown = False
        left: list[int] = []
        for k in rest:
            box = graphics[k].box
            near = box.intersects(region.grow(JOIN_GAP))
            if near or (caption.is_table and _bridged(region, box, layout)):
                members.add(k)
                region = region.union(box)
                grown = True
            else:
                left.append(k)
        rest = left
    return members


def _distance(box: Box, cap: Box) -> float:
    return max(box.y0 - cap.y1, cap.y0 - box.y1, 0.0) + max(box.x0 - cap.x1, cap.x0 - box.x1, 0.0)


def _side_limit(caption: Caption, side: int, captions: list[Caption], layout: Layout) -> float:
    """How far from the caption its figure may reach: up to the next caption in its column."""
    cap = caption.box
    limit = 0.0 if side < 0 else layout.height
    for other in captions:
        if other is caption or not other.box.x_overlaps(cap):
            continue
        if side < 0 and other.box.y1 <= cap.y0:
            limit = max(limit, other.box.y1)
        elif side > 0 and other.box.y0 >= cap.y1:
            limit = min(limit, other.box.y0)
    return limit


def _on_side(box: Box, cap: Box, side: int) -> bool:
    return box.y1 <= cap.y0 + 2 if side < 0 else box.y0 >= cap.y1 - 2


def _within(box: Box, limit: float, side: int) -> bool:
    return box.y0 >= limit - 1 if side < 0 else box.y1 <= limit + 1


def _seed(
    caption: Caption, side: int, pool: list[int], layout: Layout, graphics: list[Graphic]
) -> int | None:
    """The graphic nearest the caption in its column, if close and not behind body text."""
    cap = caption.box
    best: tuple[float, int] | None = None
    for k in pool:
        box = graphics[k].box
        if not box.x_overlaps(cap):
            continue
        gap = cap.y0 - box.y1 if side < 0 else box.y0 - cap.y1
        if gap <= SEED_GAP and (best is None or gap < best[0]):
            best = (gap, k)
    if best is None:
        return None
    box = graphics[best[1]].box
    upper, lower = (box, cap) if side < 0 else (cap, box)
    for k, line in enumerate(layout.lines):
        if k in caption.lines or len(line.text) < BLOCK_MIN_CHARS:
            continue
        if _between_vertically(line.box, upper, lower) and line.box.x_overlaps(cap):
            return None
    return best[1]


def _bridged(region: Box, box: Box, layout: Layout) -> bool:
    """Whether `box` lies above or below the region with the gap between them filled by short
    lines inside the region's width, each close to the next: table rows between two rules."""
    if not box.x_overlaps(region):
        return False
    if box.y0 >= region.y1:
        top, bottom = region.y1, box.y0
    elif box.y1 <= region.y0:
        top, bottom = box.y1, region.y0
    else:
        return False
    rows = sorted(
        (
            ln.box
            for ln in layout.lines
            if len(ln.text) <= LABEL_MAX_CHARS
            and ln.box.x0 >= region.x0 - 2
            and ln.box.x1 <= region.x1 + 2
            and ln.box.y0 >= top - 1
            and ln.box.y1 <= bottom + 1
        ),
        key=lambda b: b.y0,
    )
    reach = top
    for row in rows:
        if row.y0 - reach > JOIN_GAP:
            return False
        reach = max(reach, row.y1)
    return bool(rows) and bottom - reach <= JOIN_GAP


def _absorb_labels(region: Box, caption: Caption, side: int, layout: Layout) -> Box:
    """Take in the short text around a figure (tick labels, axis titles, legends)."""
    for _ in range(3):
        before = region
        for k, line in enumerate(layout.lines):
            if k in caption.lines or len(line.text) > LABEL_MAX_CHARS:
                continue
            if not _on_side(line.box, caption.box, side):
                continue
            if line.box.intersects(region.grow(LABEL_GAP)):
                region = region.union(line.box)
        if region == before:
            break
    return region


def _union(boxes: Iterable[Box]) -> Box:
    it = iter(boxes)
    region = next(it)
    for box in it:
        region = region.union(box)
    return region


def _nearby_text(box: Box, layout: Layout) -> str:
    """The lines just above and below a picture: what a document says about it.

    Lines in the page's top and bottom margins are running heads and page numbers, the same on
    every page, and say nothing about the picture.
    """
    margin = MARGIN_SHARE * layout.height
    near: list[tuple[float, Line]] = []
    for line in layout.lines:
        if not line.box.x_overlaps(box) or _in_margin(line.box, margin, layout.height):
            continue
        if box.y0 - NEARBY_GAP <= line.box.y1 <= box.y0 + 1:
            near.append((box.y0 - line.box.y1, line))
        elif box.y1 - 1 <= line.box.y0 <= box.y1 + NEARBY_GAP:
            near.append((line.box.y0 - box.y1, line))
    chosen: list[Line] = []
    size = 0
    for _, line in sorted(near, key=lambda item: item[0]):
        if size + len(line.text) > NEARBY_CHARS and chosen:
            break
        chosen.append(line)
        size += len(line.text) + 1
    chosen.sort(key=lambda ln: ((ln.box.y0 + ln.box.y1) / 2, ln.box.x0))
    return " ".join(ln.text for ln in chosen)[:NEARBY_CHARS]


def _in_margin(box: Box, margin: float, height: float) -> bool:
    return box.y1 <= margin or box.y0 >= height - margin


# --- text ---


def _tidy(text: str) -> str:
    """pdfium's text with CRLFs, hyphenation marks, control characters and space runs tidied."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _SOFT_HYPHEN_BREAK.sub("", text)
    text = _CONTROL.sub(" ", text)
    text = "\n".join(line.strip() for line in _SPACES.sub(" ", text).split("\n"))
    return _BLANK_LINES.sub("\n\n", text).strip()


def _describe(exc: BaseException) -> str:
    """An exception as the end of a sentence: "failed to load page" rather than "Failed ..."."""
    message = (str(exc) or type(exc).__name__).rstrip(".")
    if len(message) > 1 and message[0].isupper() and message[1].islower():
        message = message[0].lower() + message[1:]
    return message
