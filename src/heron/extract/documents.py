"""Word (.docx), Markdown and plain-text / HTML documents: passages of text, and their pictures.

Each reader turns its format into one plain text, a block (paragraph, heading, list item, table
row, code block) per line, headings set off by blank lines so passages break at sections and
read naturally; markup never reaches the text. The text is cut into overlapping `passage`
units whose character offsets index that text, each naming the heading it falls under.

Pictures become `figure` units: the ones a DOCX embeds, in document order, and the local files
a Markdown or HTML document references. A reference is followed only to a regular file inside
the document's folder, judged both on the path as written and after symlinks are resolved, so a
document cannot make the indexer read (and show) files from elsewhere; URLs, missing files and
refused paths are counted on the first passage. A figure's text is its alt text, its caption (a
neighbouring paragraph starting 图/Figure/Fig., or one in a caption style) and the paragraphs
around it: what a reader sees next to the picture. Pixels go through `decode_image_bytes`.

Text files carry no magic number: one is recognised by its suffix when its head has no NUL
bytes and decodes (UTF-8, UTF-16 with a BOM, else GB18030); HTML is recognised by content too.
"""

from __future__ import annotations

import bisect
import codecs
import contextlib
import os
import re
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from heron.extract.base import ExtractOptions, Source, UnitDraft
from heron.extract.errors import SkipFile
from heron.extract.images import DecodedImage, decode_image_bytes
from heron.extract.passages import cut_passages, passage_unit
from heron.extract.slides import check_package, clip_text, is_package

__all__ = [
    "DocxExtractor",
    "MarkdownExtractor",
    "TextExtractor",
    "decode_text",
    "docx_extractor",
    "markdown_extractor",
    "text_extractor",
]

DOCUMENT_PART = "word/document.xml"
CONTEXT_CHARS = 500
MAX_TEXT_BYTES = 64 * 1024**2  # a text file larger than this is a log or a dump, not a document
MAX_PICTURE_BYTES = 256 * 1024**2  # a referenced picture file larger than this is not read
EMPTY_REASON = "no text or pictures in this document"

_CAPTION = re.compile(r"^\s*(?:图|圖|figure\b|fig\.)", re.IGNORECASE)
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")
_HTML_SNIFF = re.compile(
    r"^\s*(?:<\?xml[^>]*>\s*)?(?:<!--.*?-->\s*)*(?:<!doctype\s+html|<html[\s>])",
    re.IGNORECASE | re.DOTALL,
)
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)
_FRONT_MATTER = re.compile(r"\A---[ \t]*\n.*?\n(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.DOTALL)


# --- decoding text ---

_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF32_LE, "utf-32"),  # before UTF-16 LE: FF FE 00 00 starts with FF FE
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def decode_text(data: bytes, declared: str | None = None) -> tuple[str, str]:
    """The text and the encoding it was read in; SkipFile("not text: ...") when none fits.

    UTF-8 is tried before a declared charset because a strict UTF-8 decode of non-UTF-8 text
    almost never succeeds, while declarations are often stale; GB18030 (a superset of GBK and
    GB2312) is the last resort, for Chinese files saved by older Windows tools.
    """
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return _normalise(data.decode(encoding)), encoding.removesuffix("-sig")
            except UnicodeDecodeError as exc:
                raise SkipFile(f"not text: invalid {encoding.upper()} ({exc.reason})") from None
    if b"\x00" in data:
        raise SkipFile("not text: the file contains NUL bytes")
    if declared and declared.startswith(("utf_16", "utf_32", "utf-16", "utf-32")):
        declared = None  # without a BOM these "decode" any even-length bytes into nonsense
    candidates = ["utf-8", *([declared] if declared else []), "gb18030"]
    for encoding in candidates:
        try:
            return _normalise(data.decode(encoding)), encoding
        except (UnicodeDecodeError, LookupError):
            continue
    raise SkipFile("not text: neither UTF-8, UTF-16 nor GB18030")


def _normalise(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\ufeff", "")


def _head_is_text(head: bytes) -> bool:
    """Whether a file's first bytes look like text: the sniff for formats with no magic."""
    if not head:
        return False
    for bom, encoding in _BOMS:
        if head.startswith(bom):
            return _decodes_partially(head, encoding)
    if b"\x00" in head:
        return False
    return _decodes_partially(head, "utf-8") or _decodes_partially(head, "gb18030")


def _decodes_partially(head: bytes, encoding: str) -> bool:
    """Decodes, allowing the head to end inside a multi-byte character."""
    try:
        codecs.getincrementaldecoder(encoding)().decode(head, final=False)
    except UnicodeDecodeError:
        return False
    return True


def _head_text(head: bytes) -> str:
    for bom, encoding in _BOMS:
        if head.startswith(bom):
            return codecs.getincrementaldecoder(encoding)("replace").decode(head)
    return head.decode("utf-8", "replace")


def _looks_like_html(head: bytes) -> bool:
    return bool(_HTML_SNIFF.match(_head_text(head[:2048])))


# --- the document model every reader fills ---


@dataclass
class _Inline:
    """Text being assembled for one block, with the figures it holds at their offsets."""

    parts: list[str] = field(default_factory=list)
    length: int = 0
    figures: list[tuple[int, _FigureRef]] = field(default_factory=list)

    def add(self, text: str) -> None:
        if text:
            self.parts.append(text)
            self.length += len(text)

    def add_figure(self, ref: _FigureRef | None) -> None:
        if ref is not None:
            self.figures.append((self.length, ref))

    def extend(self, other: _Inline) -> None:
        self.figures.extend((self.length + offset, ref) for offset, ref in other.figures)
        self.add(other.text())

    def text(self) -> str:
        return "".join(self.parts)

    def last_char(self) -> str:
        return self.parts[-1][-1:] if self.parts else ""

    def ends_with_space(self) -> bool:
        return not self.parts or self.parts[-1][-1:].isspace()


@dataclass
class _Block:
    start: int
    text: str
    heading: int = 0  # 1..9 for a heading, 0 for body text
    caption: bool = False


@dataclass
class _FigureRef:
    """A picture the document shows: its number, where it sits, and how to get its bytes."""

    number: int
    alt: str
    load: Callable[[], bytes] | None  # None: referenced but not readable (see `problem`)
    src: str | None = None
    problem: str | None = None  # "remote", "missing", "outside", "linked"
    offset: int = 0
    block: int = 0


class _Document:
    """The plain text of a document as blocks, with its headings and figures."""

    def __init__(self) -> None:
        self._parts: list[str] = []
        self.length = 0
        self.blocks: list[_Block] = []
        self.headings: list[tuple[int, str]] = []
        self.figures: list[_FigureRef] = []
        self.title = ""
        self._seen: dict[str, _FigureRef] = {}

    @property
    def text(self) -> str:
        return "".join(self._parts)

    def figure(
        self, key: str, alt: str, load: Callable[[], bytes] | None, src: str | None, problem: str
    ) -> _FigureRef | None:
        """A new reference, numbered in document order; None for one already seen."""
        if key in self._seen:
            return None
        ref = _FigureRef(len(self.figures) + 1, alt.strip(), load, src, problem or None)
        self._seen[key] = ref
        self.figures.append(ref)
        return ref

    def block(self, inline: _Inline, heading: int = 0, caption: bool = False) -> None:
        """Append a block; a heading is set off by a blank line on both sides."""
        raw = inline.text()
        lead = len(raw) - len(raw.lstrip())
        text = raw.strip()
        if text:
            previous_heading = bool(self.blocks) and self.blocks[-1].heading > 0
            if self.length:
                self._write("\n\n" if heading or previous_heading else "\n")
            if heading:
                self.headings.append((self.length, text.replace("\n", " ")))
        start = self.length
        for offset, ref in inline.figures:
            ref.offset = start + min(max(offset - lead, 0), len(text))
            ref.block = len(self.blocks)
        if text or inline.figures:
            self.blocks.append(_Block(start, text, heading if text else 0, caption))
        self._write(text)

    def raw(self, text: str) -> None:
        """The whole text as is: offsets then index the decoded file itself."""
        self._write(text)

    def _write(self, text: str) -> None:
        self._parts.append(text)
        self.length += len(text)

    def heading_at(self, offset: int) -> str | None:
        """The nearest heading at or above `offset`."""
        index = bisect.bisect_right(self.headings, (offset, "\U0010ffff")) - 1
        return self.headings[index][1] if index >= 0 else None

    def context(self, ref: _FigureRef) -> str:
        """Alt text, caption and surrounding paragraphs of a figure, about 500 characters."""
        own = self.blocks[ref.block] if self.blocks else None
        before = self._neighbour(ref.block, -1)
        after = self._neighbour(ref.block, 1)
        caption = next(
            (b for b in (after, before, own) if b is not None and _is_caption(b)),
            None,
        )
        parts = [ref.alt, *(b.text for b in (caption, own, before, after) if b is not None)]
        unique = list(dict.fromkeys(part for part in parts if part))
        return clip_text("\n".join(unique), CONTEXT_CHARS)

    def _neighbour(self, index: int, step: int) -> _Block | None:
        index += step
        while 0 <= index < len(self.blocks):
            if self.blocks[index].text:
                return self.blocks[index]
            index += step
        return None


def _is_caption(block: _Block) -> bool:
    return block.caption or bool(_CAPTION.match(block.text))


# --- units from a document ---


def _units(
    doc: _Document, options: ExtractOptions, fmt: str, fields: dict[str, Any]
) -> Iterator[UnitDraft]:
    """Passages, then figures; SkipFile before anything when there is neither."""
    text = doc.text
    passages = cut_passages(text, options.passage_chars, options.passage_overlap)
    first = {**fields, **_reference_counts(doc)}
    if doc.title:
        first["title"] = doc.title
    for chunk, passage in enumerate(passages):
        heading = doc.heading_at(passage.start)
        yield passage_unit(
            passage,
            chunk,
            fmt,
            pointer={"heading": heading} if heading else None,
            fields={**first, "passages": len(passages)} if chunk == 0 else None,
        )
    found = 0
    for ref in doc.figures:
        unit = _figure_unit(doc, ref, options, fmt)
        if unit is not None:
            found += 1
            yield unit
    if not passages and not found:
        raise SkipFile(EMPTY_REASON)


def _reference_counts(doc: _Document) -> dict[str, int]:
    counts: dict[str, int] = {"figures": len(doc.figures)} if doc.figures else {}
    for ref in doc.figures:
        if ref.problem:
            counts[f"figures_{ref.problem}"] = counts.get(f"figures_{ref.problem}", 0) + 1
    return counts


def _figure_unit(
    doc: _Document, ref: _FigureRef, options: ExtractOptions, fmt: str
) -> UnitDraft | None:
    decoded = _decode_figure(ref, options)
    if decoded is None:
        return None
    if min(decoded.width, decoded.height) < options.min_figure_side:
        return None
    pointer: dict[str, Any] = {"figure": ref.number, "start": ref.offset}
    if ref.src is not None:
        pointer["src"] = ref.src
    heading = doc.heading_at(ref.offset)
    if heading:
        pointer["heading"] = heading
    return UnitDraft(
        kind="figure",
        locator=f"figure={ref.number}",
        image=decoded.image,
        text=doc.context(ref),
        pointer=pointer,
        width=decoded.width,
        height=decoded.height,
        format=fmt,
        fields={"picture_format": decoded.format},
        read_text=True,
    )


def _decode_figure(ref: _FigureRef, options: ExtractOptions) -> DecodedImage | None:
    if ref.load is None:
        return None
    target = max(options.image_side, options.detail_side if options.ocr else 0)
    try:
        return decode_image_bytes(ref.load(), target, options.max_image_pixels)
    except (SkipFile, OSError):  # a broken or vanished picture costs only itself
        return None


# --- local references (Markdown, HTML) ---


class _Folder:
    """Where a document's references may lead: inside its folder, as written and as resolved."""

    def __init__(self, document: Path) -> None:
        self.base = Path(os.path.normpath(document.absolute().parent))
        # The folder as named and the real folder of the file (a symlinked document's
        # pictures sit beside its target).
        self.roots = tuple({self.base.resolve(), document.resolve().parent})

    def reference(self, doc: _Document, src: str, alt: str) -> _FigureRef | None:
        src = src.strip()
        if not src:
            return None
        path, problem = self._resolve(src)
        key = str(path) if path is not None else src
        load = (lambda: _read_picture(path)) if path is not None and not problem else None
        written = src if problem == "remote" else unquote(src)
        return doc.figure(key, alt, load, written, problem)

    def _resolve(self, src: str) -> tuple[Path | None, str]:
        if _SCHEME.match(src) or src.startswith("//"):
            return None, "remote"
        written = unquote(src.split("#", 1)[0].split("?", 1)[0])
        if not written:
            return None, "missing"
        if Path(written).is_absolute() or written.startswith(("\\", "~")):
            return None, "outside"
        lexical = Path(os.path.normpath(self.base / written))
        if not lexical.is_relative_to(self.base):
            return None, "outside"
        try:
            real = lexical.resolve()
        except (OSError, RuntimeError):  # a symlink loop
            return None, "missing"
        if not any(real.is_relative_to(root) for root in self.roots):
            return real, "outside"
        try:
            info = real.stat()
        except OSError:
            return real, "missing"
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_PICTURE_BYTES:
            return real, "unreadable"
        return real, ""


def _read_picture(path: Path) -> bytes:
    with path.open("rb") as handle:
        return handle.read(MAX_PICTURE_BYTES + 1)


# --- HTML ---

_HTML_DROP = frozenset(
    {"script", "style", "nav", "noscript", "template", "head", "svg", "iframe", "object",
     "embed", "canvas", "select", "button", "map"}
)  # fmt: skip
_HTML_BLOCKS = frozenset(
    {"p", "div", "li", "ul", "ol", "dl", "dt", "dd", "tr", "table", "thead", "tbody", "tfoot",
     "blockquote", "pre", "section", "article", "header", "footer", "aside", "main", "figure",
     "figcaption", "caption", "address", "hr", "form", "fieldset", "legend", "details",
     "summary", "body", "html"}
)  # fmt: skip
_HTML_HEADINGS = {f"h{n}": n for n in range(1, 7)}
_HTML_CELLS = frozenset({"td", "th"})
_SPACES = re.compile(r"\s+")
_CJK = "\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef"
_CJK_CHAR = re.compile(f"[{_CJK}]")
_CJK_WRAP = re.compile(f"(?<=[{_CJK}])[ \\t]*\\n\\s*(?=[{_CJK}])")


def _line_join(before: str, after: str) -> str:
    """What a wrapped source line becomes: a space, or nothing between CJK characters."""
    if _CJK_CHAR.match(before or " ") and _CJK_CHAR.match(after or " "):
        return ""
    return " "


class _HtmlReader:
    """Walks a parsed page without recursion (pages nest deeper than Python's stack allows)."""

    def __init__(self, doc: _Document, folder: _Folder | None) -> None:
        self.doc = doc
        self.folder = folder
        self.inline = _Inline()
        self.pre = 0

    def read(self, markup: str) -> None:
        from bs4 import BeautifulSoup

        soup = BeautifulSoup(markup, "lxml")
        title = soup.find("title")
        if title is not None and title.get_text(strip=True) and not self.doc.title:
            self.doc.title = _SPACES.sub(" ", title.get_text(strip=True))
        self._walk(soup)
        self._flush()

    def _walk(self, root: Any) -> None:
        from bs4 import NavigableString, Tag

        stack: list[tuple[Any, bool]] = [(root, False)]
        while stack:
            node, closing = stack.pop()
            if closing:
                self._close(node)
            elif isinstance(node, Tag):
                if self._open(node):
                    stack.append((node, True))
                    stack.extend((child, False) for child in reversed(node.contents))
            elif type(node) is NavigableString:  # not a Comment, Doctype, CData...
                self._text(str(node))

    def _open(self, tag: Any) -> bool:
        """Handle an opening tag; False when its content is not walked."""
        name = tag.name
        if name in _HTML_DROP:
            return False
        if name == "br":
            self.inline.add("\n")
            return False
        if name == "img":
            self._image(tag)
            return False
        if name in _HTML_BLOCKS or name in _HTML_HEADINGS:
            self._flush()
        elif name in _HTML_CELLS and self.inline.length:
            self.inline.add(" | ")
        if name == "pre":
            self.pre += 1
        return True

    def _close(self, tag: Any) -> None:
        name = tag.name
        if name in _HTML_HEADINGS:
            self._flush(heading=_HTML_HEADINGS[name])
        elif name in _HTML_BLOCKS:
            self._flush(caption=name in ("figcaption", "caption"))
        if name == "pre":
            self.pre -= 1

    def _text(self, text: str) -> None:
        if self.pre:
            self.inline.add(text)
            return
        text = _SPACES.sub(" ", _CJK_WRAP.sub("", text))
        if text.startswith(" ") and self.inline.ends_with_space():
            text = text[1:]
        self.inline.add(text)

    def _image(self, tag: Any) -> None:
        src = tag.get("src")
        if not isinstance(src, str) or self.folder is None:
            return
        alt = tag.get("alt") or tag.get("title") or ""
        self.inline.add_figure(self.folder.reference(self.doc, src, str(alt)))

    def _flush(self, heading: int = 0, caption: bool = False) -> None:
        if self.inline.length or self.inline.figures:
            self.doc.block(self.inline, heading=heading, caption=caption)
        self.inline = _Inline()


# --- Markdown ---


class _MarkdownReader:
    """Markdown through markdown-it-py's tokens: structure kept, syntax dropped."""

    def __init__(self, doc: _Document, folder: _Folder) -> None:
        self.doc = doc
        self.folder = folder

    def read(self, text: str) -> None:
        from markdown_it import MarkdownIt

        text = _FRONT_MATTER.sub("", text, count=1)
        parser = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])
        heading = 0
        row: _Inline | None = None
        for token in parser.parse(text):
            kind = token.type
            if kind == "heading_open":
                heading = int(token.tag[1:])
            elif kind == "heading_close":
                heading = 0
            elif kind == "tr_open":
                row = _Inline()
            elif kind == "tr_close" and row is not None:
                self.doc.block(row)
                row = None
            elif kind == "inline":
                inline = self._inline(token.children or [])
                if row is not None:
                    if row.length:
                        row.add(" | ")
                    row.extend(inline)
                else:
                    self.doc.block(inline, heading=heading)
                    if heading == 1 and not self.doc.title:
                        self.doc.title = inline.text().strip()
            elif kind in ("fence", "code_block"):
                block = _Inline()
                block.add(token.content.rstrip("\n"))
                self.doc.block(block)
            elif kind == "html_block":
                _HtmlReader(self.doc, self.folder).read(token.content)

    def _inline(self, children: list[Any]) -> _Inline:
        inline = _Inline()
        for index, child in enumerate(children):
            kind = child.type
            if kind in ("text", "code_inline"):
                inline.add(child.content)
            elif kind == "hardbreak":
                inline.add("\n")
            elif kind == "softbreak":
                after = children[index + 1].content[:1] if index + 1 < len(children) else ""
                inline.add(_line_join(inline.last_char(), after))
            elif kind == "image":
                alt = "".join(c.content for c in child.children or [] if c.type == "text")
                src = str(child.attrs.get("src") or "")
                inline.add_figure(self.folder.reference(self.doc, src, alt or child.content))
            elif kind == "html_inline":
                self._html_inline(child.content, inline)
        return inline

    def _html_inline(self, markup: str, inline: _Inline) -> None:
        lowered = markup.lower()
        if lowered.startswith("<br"):
            inline.add("\n")
        elif lowered.startswith("<img"):
            from bs4 import BeautifulSoup

            tag = BeautifulSoup(markup, "html.parser").find("img")
            src = tag.get("src") if tag is not None else None
            if isinstance(src, str):
                alt = str(tag.get("alt") or tag.get("title") or "")
                inline.add_figure(self.folder.reference(self.doc, src, alt))


# --- DOCX ---

_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_M = "{http://schemas.openxmlformats.org/officeDocument/2006/math}"
_A = "{http://schemas.openxmlformats.org/drawingml/2006/main}"
_R = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"
_WP = "{http://schemas.openxmlformats.org/drawingml/2006/wordprocessingDrawing}"
_V = "{urn:schemas-microsoft-com:vml}"
_O = "{urn:schemas-microsoft-com:office:office}"
_MC = "{http://schemas.openxmlformats.org/markup-compatibility/2006}"

# Subtrees with no visible text, or a duplicate of visible content (mc:Fallback repeats the
# mc:Choice in older markup; w:del and w:moveFrom are tracked deletions).
_DOCX_SKIP = frozenset(
    {f"{_MC}Fallback", f"{_W}del", f"{_W}moveFrom", f"{_W}pPr", f"{_W}rPr", f"{_W}sectPr",
     f"{_W}instrText", f"{_W}delText", f"{_M}rPr", f"{_M}ctrlPr"}
)  # fmt: skip
_DOCX_CONTAINERS = frozenset({f"{_W}sdt", f"{_W}sdtContent", f"{_W}customXml", f"{_W}smartTag"})
_HEADING_NAME = re.compile(r"^(?:heading|标题)\s*([1-9])$", re.IGNORECASE)


class _DocxStyles:
    """Which paragraph styles are headings (and at what level) or captions."""

    def __init__(self, document: Any) -> None:
        self._levels: dict[str, int] = {}
        self._captions: set[str] = set()
        self._skipped: set[str] = set()
        self._default: str | None = None
        for style in document.styles:
            style_id = getattr(style, "style_id", None)
            if not style_id:
                continue
            name = (style.name or "").strip()
            level = _style_level(style) if style.type == 1 else 0  # paragraph styles
            if level:
                self._levels[style_id] = level
            lowered = name.lower()
            if "caption" in lowered or "题注" in name:
                self._captions.add(style_id)
            if lowered.startswith("toc ") or lowered == "toc":  # a table of contents repeats
                self._skipped.add(style_id)  # the headings, with page numbers
            if getattr(style.element, "default", False) and style.type == 1:
                self._default = style_id

    def of(self, paragraph: Any) -> tuple[int, bool, bool]:
        """(heading level, is a caption, is a TOC line) of a w:p element."""
        style_id = paragraph.style or self._default
        level = _outline_level(paragraph.pPr)
        if level is None:
            level = self._levels.get(style_id or "", 0)
        return level, style_id in self._captions, style_id in self._skipped


def _outline_level(ppr: Any) -> int | None:
    """w:outlineLvl 0..8 is a heading level 1..9; 9 is body text; absent is None."""
    element = ppr.find(f"{_W}outlineLvl") if ppr is not None else None
    if element is None:
        return None
    try:
        value = int(element.get(f"{_W}val", "9"))
    except ValueError:
        return None
    return value + 1 if 0 <= value <= 8 else 0


def _style_level(style: Any) -> int:
    """A style's heading level, following its base styles (guarding against cycles)."""
    seen: set[str] = set()
    current = style
    while current is not None and current.style_id not in seen:
        seen.add(current.style_id)
        level = _outline_level(getattr(current.element, "pPr", None))
        if level is not None:
            return level
        name = (current.name or "").strip()
        match = _HEADING_NAME.match(name)
        if match:
            return int(match.group(1))
        if name.lower() in ("title", "标题"):
            return 1
        current = getattr(current, "base_style", None)
    return 0


class _DocxReader:
    def __init__(self, document: Any, doc: _Document) -> None:
        self.document = document
        self.doc = doc
        self.styles = _DocxStyles(document)
        self.part = document.part

    def read(self) -> None:
        with contextlib.suppress(Exception):  # core properties are optional and often odd
            self.doc.title = (self.document.core_properties.title or "").strip()
        stack = [iter(self.document.element.body)]
        while stack:
            child = next(stack[-1], None)
            if child is None:
                stack.pop()
            elif child.tag == f"{_W}p":
                self._paragraph(child)
            elif child.tag == f"{_W}tbl":
                self._table(child)
            elif child.tag in _DOCX_CONTAINERS:
                stack.append(iter(child))

    def _paragraph(self, element: Any) -> None:
        level, caption, skipped = self.styles.of(element)
        if skipped:
            return
        inline = _Inline()
        self._inline(element, inline)
        self.doc.block(inline, heading=level, caption=caption)

    def _table(self, table: Any) -> None:
        for row in table.xpath("./w:tr | ./w:sdt/w:sdtContent/w:tr | ./w:customXml/w:tr"):
            line = _Inline()
            for cell in row.xpath("./w:tc | ./w:sdt/w:sdtContent/w:tc | ./w:customXml/w:tc"):
                content = _Inline()
                self._inline(cell, content)
                flat = _Inline(figures=content.figures)
                flat.add(content.text().replace("\n", " ").replace("\t", " "))
                if line.length:
                    line.add(" | ")
                line.extend(flat)
            self.doc.block(line)

    def _inline(self, element: Any, inline: _Inline) -> None:
        """Visible text and pictures of an element, in order, text boxes and math included."""
        alt = ""
        stack = [iter(element)]
        while stack:
            child = next(stack[-1], None)
            if child is None:
                stack.pop()
                continue
            tag = child.tag
            if not isinstance(tag, str) or tag in _DOCX_SKIP:
                continue  # comments and processing instructions have a non-str tag
            if tag in (f"{_W}t", f"{_M}t"):
                inline.add(child.text or "")
            elif tag == f"{_W}tab":
                inline.add("\t")
            elif tag in (f"{_W}br", f"{_W}cr"):
                inline.add("\n")
            elif tag == f"{_W}noBreakHyphen":
                inline.add("-")
            elif tag == f"{_WP}docPr":
                alt = child.get("descr") or child.get("title") or ""
            elif tag == f"{_A}blip":
                inline.add_figure(
                    self._picture(child.get(f"{_R}embed"), child.get(f"{_R}link"), alt)
                )
            elif tag == f"{_V}imagedata":
                title = child.get(f"{_O}title") or alt
                inline.add_figure(self._picture(child.get(f"{_R}id"), None, title))
            else:
                if tag == f"{_W}p" and inline.length and not inline.ends_with_space():
                    inline.add("\n")  # a paragraph inside a text box or table cell
                stack.append(iter(child))

    def _picture(self, rid: str | None, link: str | None, alt: str) -> _FigureRef | None:
        rel = self.part.rels.get(rid) if rid else None
        if rel is None:
            if link:
                return self.doc.figure(f"link:{link}", alt, None, None, "linked")
            return None
        if rel.is_external:
            return self.doc.figure(f"link:{rel.target_ref}", alt, None, None, "linked")
        part = rel.target_part
        return self.doc.figure(f"part:{part.partname}", alt, lambda: part.blob, None, "")


def _open_docx(source: Source) -> Any:
    import docx

    try:
        with source.open() as stream:
            return docx.Document(stream)
    except Exception as exc:  # python-docx raises KeyError, ValueError, lxml and ZIP errors
        raise SkipFile(f"cannot read the document: {type(exc).__name__}: {exc}") from None


# --- the extractors ---


class DocxExtractor:
    """Word documents (.docx): passages of their text, and the pictures they embed."""

    name = "docx"
    suffixes = frozenset({".docx"})

    def recognises(self, source: Source) -> bool:
        return is_package(source, DOCUMENT_PART)

    def extract(self, source: Source, options: ExtractOptions) -> Iterator[UnitDraft]:
        check_package(source, DOCUMENT_PART, "Word")
        doc = _Document()
        _DocxReader(_open_docx(source), doc).read()
        yield from _units(doc, options, "docx", {})


def _read_text(source: Source, declared: str | None = None) -> tuple[str, str]:
    if source.size > MAX_TEXT_BYTES:
        limit = MAX_TEXT_BYTES // 1024**2
        raise SkipFile(f"text file too large to index ({source.size / 1024**2:.0f} MiB > {limit})")
    data = source.read_bytes()
    if not data.strip():
        raise SkipFile("empty file")
    return decode_text(data, declared)


class MarkdownExtractor:
    """Markdown (.md): passages of the rendered text, and the local pictures it references."""

    name = "markdown"
    suffixes = frozenset({".md", ".markdown"})

    def recognises(self, source: Source) -> bool:
        return source.suffix in self.suffixes and _head_is_text(source.head)

    def extract(self, source: Source, options: ExtractOptions) -> Iterator[UnitDraft]:
        text, encoding = _read_text(source)
        doc = _Document()
        _MarkdownReader(doc, _Folder(source.path)).read(text)
        yield from _units(doc, options, "md", {"encoding": encoding})


class TextExtractor:
    """Plain text (.txt) and HTML pages (.html, .htm, or any file whose content is HTML)."""

    name = "text"
    suffixes = frozenset({".txt", ".html", ".htm"})

    def recognises(self, source: Source) -> bool:
        if not _head_is_text(source.head):
            return False
        return source.suffix in self.suffixes or _looks_like_html(source.head)

    def extract(self, source: Source, options: ExtractOptions) -> Iterator[UnitDraft]:
        html = source.suffix in (".html", ".htm") or _looks_like_html(source.head)
        declared = _declared_charset(source.head) if html else None
        text, encoding = _read_text(source, declared)
        doc = _Document()
        if html:
            _HtmlReader(doc, _Folder(source.path)).read(text)
        else:
            doc.raw(text)
        yield from _units(doc, options, "html" if html else "txt", {"encoding": encoding})


def _declared_charset(head: bytes) -> str | None:
    match = _META_CHARSET.search(head[:4096])
    if not match:
        return None
    name = match.group(1).decode("ascii", "ignore")
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


docx_extractor = DocxExtractor()
markdown_extractor = MarkdownExtractor()
text_extractor = TextExtractor()
