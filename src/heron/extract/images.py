"""Decode one image file into an RGB picture for the model and a WebP thumbnail.

Every failure becomes `UnreadableFile(reason)` with a short, specific reason; nothing here
touches Pillow's global settings, so `decode_image` is safe to call from a thread pool.

Truncated files are refused ("truncated JPEG") rather than indexed partially: Pillow fills the
missing rows with grey, and a vector of half a photo plus grey finds neither.
"""

from __future__ import annotations

import io
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, TiffImagePlugin, UnidentifiedImageError

from heron.extract.base import ExtractOptions, Source, UnitDraft
from heron.extract.errors import SkipFile, UnreadableFile
from heron.extract.metadata import PhotoMetadata, read_metadata

try:
    import pillow_heif
except ImportError:  # pragma: no cover - pillow-heif is a dependency; degrade to a skip reason
    pillow_heif = None
else:
    pillow_heif.register_heif_opener()

# Pillow fills its plugin registry lazily on the first open; doing it now, once, keeps worker
# threads from racing on that first call.
Image.init()

__all__ = [
    "IMAGE_SUFFIXES",
    "THUMBNAIL_SIDE",
    "DecodedImage",
    "SkipFile",
    "UnreadableFile",
    "decode_image",
    "decode_image_bytes",
    "make_thumbnail",
]

IMAGE_SUFFIXES: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".heic", ".heif", ".avif"}
)
THUMBNAIL_SIDE = 256
THUMBNAIL_QUALITY = 75
THUMBNAIL_METHOD = 0  # libwebp effort 0..6: 0 is 2-3x faster than the default 4, ~15 % larger

_HEAD_BYTES = 512
_WHITE = (255, 255, 255)
_ORIENTATION_TAG = 0x0112
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_SWAPS_AXES = frozenset({5, 6, 7, 8})
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
_WIDE_MODES = frozenset({"I", "I;16", "I;16L", "I;16B", "I;16N", "F"})
_FORMAT_ALIASES = {"mpo": "jpeg"}  # camera JPEGs with an MPF index: the pixels are plain JPEG

_HEIF_BRANDS = frozenset({b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"})
_AVIF_BRANDS = frozenset({b"avif", b"avis"})
_MAGIC_REASONS = (
    (b"\xff\x0a", "unsupported format: JPEG XL"),
    (b"\x00\x00\x00\x0cJXL \r\n\x87\n", "unsupported format: JPEG XL"),
    (b"%PDF", "not an image (content is PDF)"),
    (b"PK\x03\x04", "not an image (content is a ZIP archive)"),
    (b"\x1a\x45\xdf\xa3", "not an image (content is Matroska/WebM video)"),
)


@dataclass(frozen=True)
class DecodedImage:
    """An RGB picture ready for the model and thumbnail; `width`/`height` are the original's."""

    image: Image.Image
    width: int
    height: int
    format: str
    exif_datetime: datetime | None
    metadata: PhotoMetadata = field(default_factory=PhotoMetadata)


def decode_image(path: Path, target_size: int = 224, max_pixels: int = 80_000_000) -> DecodedImage:
    """Decode `path` by its content (not its suffix) into an upright RGB image.

    JPEGs are decoded at a reduced scale whose short side is still at least
    max(target_size, THUMBNAIL_SIDE). Raises UnreadableFile with a human reason.
    """
    with _open_file(path) as fp:
        return _decode_stream(fp, target_size, max_pixels)


def decode_image_bytes(
    data: bytes, target_size: int = 224, max_pixels: int = 80_000_000
) -> DecodedImage:
    """`decode_image` for in-memory content (an upload, a query image)."""
    return _decode_stream(io.BytesIO(data), target_size, max_pixels)


def make_thumbnail(image: Image.Image, max_side: int = THUMBNAIL_SIDE) -> bytes:
    """A WebP thumbnail whose longer side is at most `max_side` pixels."""
    width, height = image.size
    scale = max_side / max(width, height)
    if scale < 1:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        image = image.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
    if image.mode not in ("RGB", "RGBA"):
        image = image.convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, "WEBP", quality=THUMBNAIL_QUALITY, method=THUMBNAIL_METHOD)
    return buffer.getvalue()


# --- opening: identify the content and check its declared size before any pixels ---


def _decode_stream(fp: BinaryIO, target_size: int, max_pixels: int) -> DecodedImage:
    try:
        head = fp.read(_HEAD_BYTES)
    except OSError as exc:
        raise UnreadableFile(f"cannot read file: {exc.strerror or exc}") from None
    if not head:
        raise UnreadableFile("empty file")
    fp.seek(0)
    # Not closed with `with`: Image.close() would invalidate the pixels we return; the stream
    # belongs to the caller.
    im = _open_image(fp, head, max_pixels)
    return _decode(im, max(target_size, THUMBNAIL_SIDE), max_pixels)


def _open_file(path: Path) -> BinaryIO:
    try:
        return open(path, "rb")
    except OSError as exc:
        raise UnreadableFile(f"cannot read file: {exc.strerror or exc}") from None


def _open_image(fp: BinaryIO, head: bytes, max_pixels: int) -> Image.Image:
    try:
        return Image.open(fp, formats=_likely_formats(head))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise UnreadableFile(_too_large_reason(head, str(exc), max_pixels)) from None
    except UnidentifiedImageError:
        raise UnreadableFile(_unidentified_reason(fp, head)) from None
    except Exception as exc:  # plugins raise many types on malformed headers
        raise UnreadableFile(f"cannot open image: {_describe(exc)}") from None


def _likely_formats(head: bytes) -> tuple[str, ...] | None:
    """The plugin to try first for the two commonest signatures; others try every plugin.

    Pillow otherwise probes plugins in registration order, several before JPEG, which costs a
    measurable share of a small image's decode.
    """
    if head.startswith(b"\xff\xd8\xff"):
        return ("JPEG",)
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return ("PNG",)
    return None


def _too_large_reason(head: bytes, message: str, max_pixels: int) -> str:
    limit = f"{max_pixels / 1e6:g} MP"
    size = _declared_size(head)
    if size:
        return f"image too large: {size[0]}×{size[1]} px exceeds the {limit} limit"
    count = re.search(r"(\d+) pixels", message)
    pixels = f"{int(count.group(1)) / 1e6:g} MP" if count else "its size"
    return f"image too large: {pixels} exceeds the {limit} limit"


def _declared_size(head: bytes) -> tuple[int, int] | None:
    """Width and height from a PNG or GIF header, for the message when Pillow refuses to open."""
    if head.startswith(b"\x89PNG\r\n\x1a\n") and head[12:16] == b"IHDR":
        return struct.unpack(">II", head[16:24])
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return struct.unpack("<HH", head[6:10])
    return None


def _unidentified_reason(fp: BinaryIO, head: bytes) -> str:
    for magic, reason in _MAGIC_REASONS:
        if head.startswith(magic):
            return reason
    if head[4:8] == b"ftyp":
        return _iso_media_reason(head[8:12])
    failure = _plugin_failure(fp, head)
    if failure:
        fmt, message = failure
        if fmt == "TIFF":
            return _tiff_reason(fp, message)
        return f"cannot decode {fmt}: {message}"
    if _looks_like_text(head):
        if b"<svg" in head.lower():
            return "unsupported format: SVG"
        return "not an image (content is text)"
    return "not an image (unrecognised content)"


def _iso_media_reason(brand: bytes) -> str:
    if brand in _HEIF_BRANDS or brand in _AVIF_BRANDS:
        name = "AVIF" if brand in _AVIF_BRANDS else "HEIF"
        if pillow_heif is None and name == "HEIF":
            return "unsupported format: HEIF (pillow-heif is not installed)"
        return f"cannot decode {name}"
    return "not an image (content is MP4/QuickTime video)"


def _plugin_failure(fp: BinaryIO, head: bytes) -> tuple[str, str] | None:
    """Re-run the plugin whose signature matches, to learn why it gave up (Pillow hides it)."""
    for fmt in Image.ID:
        factory, accept = Image.OPEN[fmt]
        if accept is None or not accept(head):
            continue
        fp.seek(0)
        try:
            factory(fp, "").close()
        except Exception as exc:
            return fmt, _describe(exc)
    return None


def _tiff_reason(fp: BinaryIO, message: str) -> str:
    try:
        pages, first = _tiff_pages(fp)
    except Exception:
        return f"cannot decode TIFF: {message}"
    bits = first.get(258, (1,))
    kind = {1: "unsigned", 2: "signed", 3: "float"}.get(first.get(339, (1,))[0], "unknown")
    layout = f"{first.get(277, 1)}×{bits[0]}-bit {kind} samples, {pages} page{'s' * (pages != 1)}"
    multi = "multi-page " if pages > 1 else ""
    return f"cannot decode {multi}TIFF: {message} ({layout})"


def _tiff_pages(fp: BinaryIO) -> tuple[int, dict[int, tuple]]:
    """Count the IFDs (pages) of a TIFF and return the first page's tags."""
    fp.seek(0)
    ifd = TiffImagePlugin.ImageFileDirectory_v2(fp.read(8))
    seen: set[int] = set()
    first: dict[int, tuple] = {}
    while ifd.next and ifd.next not in seen and len(seen) < 4096:
        seen.add(ifd.next)
        fp.seek(ifd.next)
        ifd.load(fp)
        if not first:
            first = {tag: ifd.get(tag) for tag in (258, 277, 339) if tag in ifd}
    return len(seen), first


def _looks_like_text(head: bytes) -> bool:
    return all(byte >= 0x20 or byte in b"\t\n\r\f" for byte in head)


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


# --- decoding: pixels, colour, orientation, metadata ---


def _decode(im: Image.Image, min_side: int, max_pixels: int) -> DecodedImage:
    fmt = _FORMAT_ALIASES.get((im.format or "unknown").lower(), (im.format or "unknown").lower())
    width, height = im.size
    if width * height > max_pixels:
        raise UnreadableFile(
            f"image too large: {width}×{height} px exceeds the {max_pixels / 1e6:g} MP limit"
        )
    if fmt == "jpeg":
        im.draft("RGB", (min_side, min_side))
    _load(im, fmt)
    exif = _read_exif(im)
    orientation = exif.get(_ORIENTATION_TAG) if exif else None
    try:
        image = _apply_orientation(_to_rgb(im), orientation)
    except Exception as exc:
        raise UnreadableFile(f"cannot convert {fmt.upper()} to RGB: {_describe(exc)}") from None
    if orientation in _SWAPS_AXES:
        width, height = height, width
    return DecodedImage(image, width, height, fmt, _exif_datetime(exif), read_metadata(im, exif))


def _load(im: Image.Image, fmt: str) -> None:
    try:
        im.load()
    except MemoryError:
        raise UnreadableFile(f"out of memory decoding {fmt.upper()}") from None
    except Exception as exc:  # decoders raise OSError, SyntaxError, ValueError, struct.error...
        message = _describe(exc)
        if "truncated" in message.lower():
            raise UnreadableFile(f"truncated {fmt.upper()}") from None
        raise UnreadableFile(f"cannot decode {fmt.upper()}: {message}") from None


def _read_exif(im: Image.Image) -> Image.Exif | None:
    try:
        return im.getexif()
    except Exception:  # broken metadata must not cost the picture
        return None


def _to_rgb(im: Image.Image) -> Image.Image:
    if im.mode == "RGB":
        return im
    if im.mode in _WIDE_MODES:
        im = _wide_to_l(im)
    if im.mode in _ALPHA_MODES or "transparency" in im.info:
        rgba = im.convert("RGBA")
        background = Image.new("RGB", rgba.size, _WHITE)
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return im.convert("RGB")


def _wide_to_l(im: Image.Image) -> Image.Image:
    """16-bit / 32-bit / float grey → 8-bit; Pillow's own convert clips everything above 255."""
    array = np.asarray(im, dtype=np.float32)
    top = float(array.max()) if array.size else 0.0
    if top > 255:
        array = array * (255.0 / (65535.0 if top <= 65535 else top))
    elif im.mode == "F" and top <= 1.0:
        array = array * 255.0
    return Image.fromarray(np.clip(array, 0, 255).astype(np.uint8), "L")


def _apply_orientation(image: Image.Image, orientation: object) -> Image.Image:
    method = _TRANSPOSE.get(orientation) if isinstance(orientation, int) else None
    return image.transpose(method) if method is not None else image


def _exif_datetime(exif: Image.Exif | None) -> datetime | None:
    """DateTimeOriginal (else DateTime), timezone-aware when OffsetTimeOriginal is present."""
    if not exif:
        return None
    try:
        sub = exif.get_ifd(0x8769)
    except Exception:
        sub = {}
    raw = sub.get(0x9003) or sub.get(0x9004) or exif.get(0x0132)
    parsed = _parse_exif_time(raw)
    if parsed is None:
        return None
    offset = _parse_offset(sub.get(0x9011))
    return parsed.replace(tzinfo=offset) if offset else parsed


def _parse_exif_time(raw: object) -> datetime | None:
    if isinstance(raw, bytes):
        raw = raw.decode("ascii", "replace")
    if not isinstance(raw, str):
        return None
    try:
        return datetime.strptime(raw.strip("\x00 ")[:19], "%Y:%m:%d %H:%M:%S")
    except ValueError:  # "0000:00:00 00:00:00", blanks and other placeholders
        return None


def _parse_offset(raw: object) -> timezone | None:
    if not isinstance(raw, str):
        return None
    match = re.fullmatch(r"([+-])(\d\d):(\d\d)", raw.strip("\x00 "))
    if not match:
        return None
    sign = -1 if match.group(1) == "-" else 1
    minutes = int(match.group(2)) * 60 + int(match.group(3))
    return timezone(sign * timedelta(minutes=minutes)) if minutes < 24 * 60 else None


# --- the extractor: one picture file is one unit ---

BROWSER_FORMATS = frozenset({"jpeg", "png", "webp", "gif"})


class ImageExtractor:
    """Photos, screenshots and other pictures: the whole file is one `image` unit."""

    name = "image"
    suffixes = IMAGE_SUFFIXES | {".jxl"}  # JPEG XL is collected to say it cannot be read

    def recognises(self, source: Source) -> bool:
        return _pillow_accepts(source.head)

    def extract(self, source: Source, options: ExtractOptions) -> Iterator[UnitDraft]:
        # Draft decoding reads a JPEG at a fraction of its size, no smaller than the model's
        # input or, with OCR, the side the text detector works at.
        target = max(options.image_side, options.detail_side if options.ocr else 0)
        if source.data is not None:
            decoded = decode_image_bytes(source.data, target, options.max_image_pixels)
        else:
            decoded = decode_image(source.path, target, options.max_image_pixels)
        fields: dict[str, object] = decoded.metadata.fields()
        if decoded.exif_datetime is not None:
            fields["taken_at"] = decoded.exif_datetime.isoformat()
        small = max(decoded.width, decoded.height) <= options.thumbnail_side
        yield UnitDraft(
            kind="image",
            image=decoded.image,
            # IPTC/XMP keywords and caption: found by keyword search
            text=decoded.metadata.searchable_text(),
            width=decoded.width,
            height=decoded.height,
            format=decoded.format,
            fields=fields,
            read_text=True,
            # An original already thumbnail-sized, in a format browsers show, is its own one.
            thumbnail="original" if small and decoded.format in BROWSER_FORMATS else "make",
        )


def _pillow_accepts(head: bytes) -> bool:
    """Whether one of Pillow's plugins (pillow-heif's included) claims this signature."""
    if not head:
        return False
    if _likely_formats(head):
        return True
    for fmt in Image.ID:
        accept = Image.OPEN[fmt][1]
        if accept is not None and accept(head):
            return True
    return False


extractor = ImageExtractor()
