"""Photo metadata: camera, lens, GPS position and orientation from EXIF; keywords and caption
from IPTC-IIM and XMP.

Read from the opened picture Pillow already parsed (no second read of the file). Broken or
absent metadata gives an empty result, never an error: it must not cost the picture.

Keywords are IPTC 2:25 (Photoshop APP13 in a JPEG, tag 33723 in a TIFF) and XMP `dc:subject`
(the bag Lightroom, digiKam and exiftool write), merged in that order without repeats; the
caption is XMP `dc:description` (its x-default entry), else IPTC 2:120 Caption-Abstract. Both
become the unit's searchable text (`PhotoMetadata.searchable_text`) and its `extra`
(`keywords`, `caption`). The XMP packet is parsed with the standard library's expat, refused
when over `XMP_MAX_BYTES`, not UTF-8, or declaring a DTD (no entity can expand).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from xml.etree import ElementTree

from PIL import Image, IptcImagePlugin

__all__ = ["XMP_MAX_BYTES", "PhotoMetadata", "read_metadata"]

_EXIF_IFD = 0x8769
_GPS_IFD = 0x8825
_MAKE, _MODEL, _ORIENTATION = 0x010F, 0x0110, 0x0112
_LENS_MODEL = 0xA434
_IPTC_KEYWORDS = (2, 25)
_IPTC_CAPTION = (2, 120)

XMP_MAX_BYTES = 1 << 20  # a larger packet is ignored (real ones are a few KB, with padding)
_MAX_KEYWORDS = 500
_MAX_KEYWORD_CHARS = 200
_MAX_CAPTION_CHARS = 4000
_RDF = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}"
_DC = "{http://purl.org/dc/elements/1.1/}"
_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"


@dataclass(frozen=True)
class PhotoMetadata:
    camera: str = ""  # "Canon EOS 5D" (make and model, the make not repeated)
    lens: str = ""
    latitude: float | None = None  # degrees, north positive
    longitude: float | None = None  # degrees, east positive
    orientation: int | None = None  # the EXIF orientation tag, 1..8
    keywords: list[str] = field(default_factory=list)  # IPTC 2:25, then XMP dc:subject
    caption: str = ""  # XMP dc:description, else IPTC 2:120

    def searchable_text(self) -> str:
        """The keywords (comma-separated) and the caption, on two lines: the unit's own text."""
        return "\n".join(part for part in (", ".join(self.keywords), self.caption) if part)

    def fields(self) -> dict[str, Any]:
        """What a unit's `extra` keeps of it (only what is known)."""
        known = {
            "camera": self.camera,
            "lens": self.lens,
            "latitude": self.latitude,
            "longitude": self.longitude,
            "orientation": self.orientation,
            "keywords": self.keywords,
            "caption": self.caption,
        }
        return {key: value for key, value in known.items() if value not in ("", None, [])}


def read_metadata(im: Image.Image, exif: Image.Exif | None) -> PhotoMetadata:
    """What `im`'s EXIF (`exif`, already read), IPTC and XMP say; empty fields where nothing."""
    iptc = _iptc(im)
    xmp = _xmp_root(im)
    keywords = _unique([*_iptc_values(iptc, _IPTC_KEYWORDS), *_xmp_subjects(xmp)])
    captions = [*_xmp_descriptions(xmp), *_iptc_values(iptc, _IPTC_CAPTION)]
    described = {
        "keywords": [word[:_MAX_KEYWORD_CHARS] for word in keywords[:_MAX_KEYWORDS]],
        "caption": captions[0][:_MAX_CAPTION_CHARS] if captions else "",
    }
    if exif is None:
        return PhotoMetadata(**described)
    try:
        sub = exif.get_ifd(_EXIF_IFD)
        gps = exif.get_ifd(_GPS_IFD)
    except Exception:
        sub, gps = {}, {}
    latitude, longitude = _position(gps)
    orientation = exif.get(_ORIENTATION)
    return PhotoMetadata(
        camera=_camera(_text(exif.get(_MAKE)), _text(exif.get(_MODEL))),
        lens=_text(sub.get(_LENS_MODEL)),
        latitude=latitude,
        longitude=longitude,
        orientation=orientation if isinstance(orientation, int) and 1 <= orientation <= 8 else None,
        **described,
    )


def _camera(make: str, model: str) -> str:
    if make and model.lower().startswith(make.split()[0].lower()):
        return model  # "Canon" + "Canon EOS 5D": the model names the make already
    return " ".join(part for part in (make, model) if part)


def _text(raw: object) -> str:
    """One line of text from a metadata value: UTF-8 bytes, else Latin-1 (older IPTC)."""
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            raw = raw.decode("latin-1")
    return " ".join(str(raw).replace("\x00", " ").split()) if isinstance(raw, str) else ""


def _position(gps: Any) -> tuple[float | None, float | None]:
    try:
        latitude = _degrees(gps.get(2), gps.get(1), "S")
        longitude = _degrees(gps.get(4), gps.get(3), "W")
    except (TypeError, ValueError, ZeroDivisionError, AttributeError):
        return None, None
    if latitude is None or longitude is None:
        return None, None
    if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
        return None, None
    if latitude == 0 and longitude == 0:  # a camera without a fix writes zeros
        return None, None
    return round(latitude, 6), round(longitude, 6)


def _degrees(value: Any, ref: Any, negative: str) -> float | None:
    if not value or len(value) != 3:
        return None
    degrees, minutes, seconds = (float(part) for part in value)
    result = degrees + minutes / 60 + seconds / 3600
    ref_text = _text(ref).upper()
    return -result if ref_text == negative else result


def _unique(values: Iterable[str]) -> list[str]:
    """The non-empty values in order, each once (compared case-insensitively)."""
    seen: dict[str, str] = {}
    for value in values:
        if value and value.casefold() not in seen:
            seen[value.casefold()] = value
    return list(seen.values())


# --- IPTC-IIM ---


def _iptc(im: Image.Image) -> dict[tuple[int, int], Any]:
    """The IPTC datasets Pillow finds (JPEG APP13, TIFF tag); {} when none or unreadable."""
    try:
        return IptcImagePlugin.getiptcinfo(im) or {}
    except Exception:  # a malformed record costs its keywords, never the picture
        return {}


def _iptc_values(info: dict[tuple[int, int], Any], key: tuple[int, int]) -> list[str]:
    """A dataset's values as text: a repeated dataset (2:25) holds one value per keyword."""
    raw = info.get(key, [])
    values = raw if isinstance(raw, list) else [raw]
    return [text for text in (_text(value) for value in values) if text]


# --- XMP ---


def _xmp_root(im: Image.Image) -> ElementTree.Element | None:
    """The parsed XMP packet Pillow found (JPEG APP1, PNG iTXt, TIFF, WebP), or None."""
    packet = im.info.get("xmp")
    if isinstance(packet, bytes):
        if len(packet) > XMP_MAX_BYTES:
            return None
        try:
            packet = packet.decode("utf-8")
        except UnicodeDecodeError:
            return None
    if not isinstance(packet, str) or len(packet) > XMP_MAX_BYTES:
        return None
    packet = packet.strip("\x00 \t\r\n\ufeff")
    if not packet or "<!DOCTYPE" in packet or "<!ENTITY" in packet:
        return None  # XMP has no DTD; one here could only be an entity-expansion trap
    try:
        return ElementTree.fromstring(packet)  # a str: expat reads it as UTF-8, whatever it says
    except (ElementTree.ParseError, ValueError):
        return None


def _xmp_subjects(root: ElementTree.Element | None) -> Iterator[str]:
    """The entries of every dc:subject bag."""
    if root is None:
        return
    for subject in root.iter(f"{_DC}subject"):
        for item in subject.iter(f"{_RDF}li"):
            yield _text(item.text)


def _xmp_descriptions(root: ElementTree.Element | None) -> list[str]:
    """dc:description: its x-default (or untagged) entry first, then the other languages."""
    if root is None:
        return []
    found: list[tuple[bool, str]] = []
    for description in root.iter(f"{_DC}description"):
        for item in description.iter(f"{_RDF}li"):
            found.append((item.get(_XML_LANG, "x-default") != "x-default", _text(item.text)))
    for node in root.iter(f"{_RDF}Description"):  # the short form: an attribute
        found.append((False, _text(node.get(f"{_DC}description"))))
    return [text for _, text in sorted(found, key=lambda pair: pair[0]) if text]
