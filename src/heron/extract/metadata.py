"""Photo metadata: camera, lens, GPS position and orientation from EXIF; keywords from IPTC.

Read from the opened picture Pillow already parsed (no second read of the file). Broken or
absent metadata gives an empty result, never an error: it must not cost the picture.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from PIL import Image, IptcImagePlugin

__all__ = ["PhotoMetadata", "read_metadata"]

_EXIF_IFD = 0x8769
_GPS_IFD = 0x8825
_MAKE, _MODEL, _ORIENTATION = 0x010F, 0x0110, 0x0112
_LENS_MODEL = 0xA434
_IPTC_KEYWORDS = (2, 25)


@dataclass(frozen=True)
class PhotoMetadata:
    camera: str = ""  # "Canon EOS 5D" (make and model, the make not repeated)
    lens: str = ""
    latitude: float | None = None  # degrees, north positive
    longitude: float | None = None  # degrees, east positive
    orientation: int | None = None  # the EXIF orientation tag, 1..8
    keywords: list[str] = field(default_factory=list)  # IPTC keywords

    def fields(self) -> dict[str, Any]:
        """What a unit's `extra` keeps of it (only what is known)."""
        known = {
            "camera": self.camera,
            "lens": self.lens,
            "latitude": self.latitude,
            "longitude": self.longitude,
            "orientation": self.orientation,
            "keywords": self.keywords,
        }
        return {key: value for key, value in known.items() if value not in ("", None, [])}


def read_metadata(im: Image.Image, exif: Image.Exif | None) -> PhotoMetadata:
    if exif is None:
        return PhotoMetadata(keywords=_keywords(im))
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
        keywords=_keywords(im),
    )


def _camera(make: str, model: str) -> str:
    if make and model.lower().startswith(make.split()[0].lower()):
        return model  # "Canon" + "Canon EOS 5D": the model names the make already
    return " ".join(part for part in (make, model) if part)


def _text(raw: object) -> str:
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
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


def _keywords(im: Image.Image) -> list[str]:
    try:
        info = IptcImagePlugin.getiptcinfo(im) or {}
    except Exception:
        return []
    raw = info.get(_IPTC_KEYWORDS, [])
    values = raw if isinstance(raw, list) else [raw]
    keywords = [_text(value) for value in values]
    return [keyword for keyword in dict.fromkeys(keywords) if keyword]
