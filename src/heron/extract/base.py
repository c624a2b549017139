"""The extractor seam: one source file in, the drafts of its units out.

A *source* is a file (a photo, a PDF, a deck, a document, a video); it yields one or more
*units* (the photo; each page, figure and passage; each slide and its pictures; each keyframe).
An extractor knows one family of formats and nothing of models, stores or catalogs: the pipeline
turns each `UnitDraft` into a stored unit (vector from its pixels or its text, thumbnail, terms,
OCR where asked). Extractors register in `heron.extract.registry`, the built-in ones exactly as
an add-on would.

Outcomes an extractor signals by raising:
- `SkipFile(reason)` before yielding anything: the file is not indexed (encrypted, broken, empty);
- `IncompleteSource(reason)` after yielding some units: what was read is kept, the reason is
  recorded with the source (a video whose stream breaks at 00:05, a PDF with an unreadable page).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Literal, Protocol, runtime_checkable

from PIL import Image

from heron.extract.errors import SkipFile

__all__ = [
    "UNIT_KINDS",
    "ExtractOptions",
    "Extractor",
    "IncompleteSource",
    "SkipFile",
    "Source",
    "UnitDraft",
]

# What a unit can be; `heron search --kind` takes these.
UNIT_KINDS: tuple[str, ...] = ("image", "page", "figure", "slide", "frame", "passage")
HEAD_BYTES = 4096

Thumbnail = Literal["make", "original", "none"]
Embed = Literal["image", "text"]


class IncompleteSource(Exception):
    """Raised after some units were yielded: keep them, record `reason` with the source."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Source:
    """A file to extract, with the bytes the pipeline has already read.

    `data` holds the whole content when the file was small enough to be read at once (it was
    hashed from these bytes); otherwise it is None and `open()` reads the file.
    """

    path: Path
    size: int
    head: bytes
    data: bytes | None = None

    @property
    def suffix(self) -> str:
        return self.path.suffix.lower()

    def open(self) -> BinaryIO:
        return io.BytesIO(self.data) if self.data is not None else self.path.open("rb")

    def read_bytes(self) -> bytes:
        return self.data if self.data is not None else self.path.read_bytes()

    @classmethod
    def from_path(cls, path: Path, read_whole_below: int = 64 * 1024 * 1024) -> Source:
        size = path.stat().st_size
        if size <= read_whole_below:
            data = path.read_bytes()
            return cls(path=path, size=len(data), head=data[:HEAD_BYTES], data=data)
        with path.open("rb") as handle:
            head = handle.read(HEAD_BYTES)
        return cls(path=path, size=size, head=head)


@dataclass(frozen=True)
class ExtractOptions:
    """What every extractor is told about the run."""

    image_side: int = 224  # the model's input side: pixels need be no larger than this
    detail_side: int = 224  # with OCR on, the text detector's side: pixels at least this large
    max_image_pixels: int = 80_000_000  # decompression-bomb guard for any raster
    thumbnail_side: int = 256
    passage_chars: int = 1000  # passage length, in characters
    passage_overlap: int = 150  # characters a passage repeats from the one before
    min_figure_side: int = 96  # embedded pictures smaller than this (px) are decoration
    pdf_passwords: tuple[str, ...] = ()  # tried in order on an encrypted PDF
    ocr: bool = False  # this run reads text in every picture (extractors render larger for it)
    ocr_scans: bool = False  # this run reads text in scanned pages (units marked `scanned`)

    @property
    def render_side(self) -> int:
        """The longer side a rendered page, slide or frame needs for this run."""
        return max(self.image_side, self.detail_side, self.thumbnail_side)


@dataclass
class UnitDraft:
    """One unit as an extractor sees it, before it has a vector.

    `locator` names the unit inside its source, stably across runs ("page=3", "page=3;figure=1",
    "slide=12", "t=42.000", "chars=0-1000"); the whole-file unit of a photo has "". The unit id is
    derived from the source's content hash and the locator.

    `pointer` is what a hit shows a user to find the unit in its source: `page` and `slide`
    (1-based), `box` ([x0, y0, x1, y1] as fractions of the page or slide, origin top left),
    `time` (seconds), `start`/`end` (character offsets into the source's text), `chunk` (0-based).
    """

    kind: str
    locator: str = ""
    image: Image.Image | None = None  # RGB pixels for the image tower and the thumbnail
    text: str = ""  # searchable text (keyword index, excerpt; the vector when embed == "text")
    embed: Embed = "image"  # "text": the vector comes from `text`, embedded as a passage
    pointer: dict[str, Any] = field(default_factory=dict)
    width: int = 0  # of the unit's picture in the source, where it has one
    height: int = 0
    format: str = ""  # the source's format: jpeg, pdf, pptx, mp4 ...
    fields: dict[str, Any] = field(default_factory=dict)  # stored in the unit's `extra`
    read_text: bool = False  # OCR may find text here the source does not carry as text
    scanned: bool = False  # the unit's text exists only as pixels (a scanned page): OCR always
    thumbnail: Thumbnail = "make"  # "original": the source file is small enough to show as is


@runtime_checkable
class Extractor(Protocol):
    """One family of formats. Register an instance with `heron.extract.registry.register`."""

    name: str  # short and stable: the catalog records it as the source's kind ("pdf")
    suffixes: frozenset[str]  # file names the crawler collects for it (".pdf")

    def recognises(self, source: Source) -> bool:
        """Whether the content (not the name) is this extractor's format."""
        ...

    def extract(self, source: Source, options: ExtractOptions) -> Iterator[UnitDraft]:
        """The source's units, in a stable order; raise SkipFile or IncompleteSource."""
        ...
