"""Colour tags of a picture: dominant colours by name, warm or cool, brightness, saturation.

Computed at ingest from the model-sized copy the pipeline already holds (no second decode):
Pillow's median cut finds the few colours the picture is made of, and each is named in CIE
LCh (lightness, chroma, hue of CIELAB), a perceptual space, so "brown" is a dark orange and
"pink" a light red as people see them, not as RGB distance has it. Names are English, with
Chinese ones for Chinese queries (`colour:红`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

__all__ = ["COLOUR_NAMES", "ColourTags", "colour_name", "colour_tags"]

# English name -> Chinese name, in the order tags list them when shares tie.
COLOUR_NAMES: dict[str, str] = {
    "red": "红",
    "orange": "橙",
    "yellow": "黄",
    "green": "绿",
    "cyan": "青",
    "blue": "蓝",
    "purple": "紫",
    "pink": "粉",
    "brown": "棕",
    "black": "黑",
    "white": "白",
    "grey": "灰",
}
WARM = frozenset({"red", "orange", "yellow", "pink", "brown"})
COOL = frozenset({"green", "cyan", "blue", "purple"})
PALETTE_COLOURS = 6  # median-cut boxes
MIN_SHARE = 0.08  # a colour covering less of the picture is not one of its colours
ANALYSIS_SIDE = 64
_ACHROMATIC_CHROMA = 12.0  # LCh chroma below this reads as black, white or grey
# Hue (degrees, CIE LCh) where each chromatic name starts, going round the circle from red,
# halfway between the hues of the sRGB colours named so (red 40, orange 73, yellow 103,
# green 136, cyan 196, blue 306, purple/magenta 328).
_HUES = ((50.0, "orange"), (85.0, "yellow"), (120.0, "green"), (175.0, "cyan"),
         (235.0, "blue"), (310.0, "purple"), (350.0, "red"))  # fmt: skip


@dataclass(frozen=True)
class ColourTags:
    colours: list[str]  # dominant colour names, most of the picture first
    shares: list[float]  # the share of the picture each covers
    scheme: str  # warm | cool | neutral
    brightness: float  # 0 (black) .. 1 (white): mean CIELAB lightness
    saturation: float  # 0 (grey) .. 1: mean HSV saturation

    def to_dict(self) -> dict[str, object]:
        return {
            "colours": self.colours,
            "colours_zh": [COLOUR_NAMES[c] for c in self.colours],
            "shares": [round(s, 3) for s in self.shares],
            "scheme": self.scheme,
            "brightness": round(self.brightness, 3),
            "saturation": round(self.saturation, 3),
        }


def colour_tags(picture: Image.Image | np.ndarray) -> ColourTags:
    """The colour tags of an RGB picture (a PIL image or a uint8 H×W×3 array)."""
    image = picture if isinstance(picture, Image.Image) else Image.fromarray(picture)
    image = image.convert("RGB")
    image.thumbnail((ANALYSIS_SIDE, ANALYSIS_SIDE), Image.Resampling.BILINEAR)
    pixels = np.asarray(image, dtype=np.uint8).reshape(-1, 3)
    lab = _lab(pixels)
    counts = _palette_shares(image)
    names: dict[str, float] = {}
    for rgb, share in counts:
        name = colour_name(_lab(np.array([rgb], dtype=np.uint8))[0])
        names[name] = names.get(name, 0.0) + share
    ranked = sorted(names.items(), key=lambda item: (-item[1], list(COLOUR_NAMES).index(item[0])))
    kept = [(n, s) for n, s in ranked if s >= MIN_SHARE] or ranked[:1]
    hsv = np.asarray(image.convert("HSV"), dtype=np.float32).reshape(-1, 3)
    return ColourTags(
        colours=[n for n, _ in kept],
        shares=[s for _, s in kept],
        scheme=_scheme(lab),
        brightness=float(lab[:, 0].mean() / 100.0),
        saturation=float(hsv[:, 1].mean() / 255.0),
    )


def colour_name(lab: np.ndarray) -> str:
    """The name of one CIELAB colour."""
    lightness, a, b = (float(v) for v in lab)
    chroma = float(np.hypot(a, b))
    if chroma < _ACHROMATIC_CHROMA:
        if lightness < 25:
            return "black"
        return "white" if lightness > 85 else "grey"
    if lightness < 12:
        return "black"
    hue = float(np.degrees(np.arctan2(b, a))) % 360.0
    name = _hue_name(hue)
    if 45.0 <= hue < 95.0 and lightness < 55:  # a dark orange or yellow
        return "brown"
    if name in ("red", "purple") and lightness > 62:  # a light red or magenta
        return "pink"
    return name


def _hue_name(hue: float) -> str:
    name = "red"  # below the first boundary: red wraps round 0
    for start, candidate in _HUES:
        if hue >= start:
            name = candidate
    return name


def _palette_shares(image: Image.Image) -> list[tuple[tuple[int, int, int], float]]:
    """(RGB, share) of the picture's median-cut colours, largest first."""
    quantized = image.quantize(colors=PALETTE_COLOURS, method=Image.Quantize.MEDIANCUT)
    palette = quantized.getpalette() or []
    total = image.width * image.height
    found = sorted(quantized.getcolors() or [], reverse=True)
    return [
        ((palette[3 * i], palette[3 * i + 1], palette[3 * i + 2]), count / total)
        for count, i in found
    ]


def _scheme(lab: np.ndarray) -> str:
    """Warm or cool by the chroma-weighted pull of the pixels' hues; neutral when grey."""
    chroma = np.hypot(lab[:, 1], lab[:, 2])
    weight = np.clip(chroma - _ACHROMATIC_CHROMA, 0, None)
    if weight.mean() < 4.0:
        return "neutral"
    hue = np.degrees(np.arctan2(lab[:, 2], lab[:, 1])) % 360.0
    # Warm: reds, oranges, yellows (hue < 105 or > 340); cool: greens through purples.
    warm = ((hue < 105) | (hue > 340)).astype(np.float32)
    balance = float((weight * (2 * warm - 1)).sum() / weight.sum())
    if balance > 0.2:
        return "warm"
    return "cool" if balance < -0.2 else "neutral"


def _lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB uint8 [N,3] -> CIELAB [N,3] (D65)."""
    linear = rgb.astype(np.float32) / 255.0
    linear = np.where(linear <= 0.04045, linear / 12.92, ((linear + 0.055) / 1.055) ** 2.4)
    xyz = (
        linear
        @ np.array(
            [[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]],
            dtype=np.float32,
        ).T
    )
    xyz /= np.array([0.95047, 1.0, 1.08883], dtype=np.float32)
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16.0 / 116.0)
    return np.stack(
        [116.0 * f[:, 1] - 16.0, 500.0 * (f[:, 0] - f[:, 1]), 200.0 * (f[:, 1] - f[:, 2])], axis=1
    )
