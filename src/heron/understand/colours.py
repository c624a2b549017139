"""Colour tags of a picture: dominant colours by name, warm or cool, brightness, saturation.

Computed at ingest from the model-sized copy the pipeline already holds (no second decode):
about a thousand of its pixels are each named in CIE LCh (lightness, chroma, hue of CIELAB), a
perceptual space, so "brown" is a dark orange and "pink" a light red as people see them, not as
RGB distance has it, and the names covering enough of the picture are its colours. (Pillow's
median cut first, then naming its palette, gave the same colours at 4x the cost: 1.1 ms a
photo against ~0.3 ms, on the thread that decodes.) Names are English, with
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
_NAMES = list(COLOUR_NAMES)
_INDEX = {name: i for i, name in enumerate(_NAMES)}
MIN_SHARE = 0.08  # a colour covering less of the picture is not one of its colours
ANALYSIS_SIDE = 32  # pixels a side looked at
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
    pixels = _sample(picture)
    lab = _lab(pixels)
    names = _pixel_names(lab)
    counts = np.bincount(names, minlength=len(_NAMES)) / len(names)
    order = sorted(range(len(_NAMES)), key=lambda i: (-counts[i], i))
    kept = [i for i in order if counts[i] >= MIN_SHARE] or order[:1]
    rgb = pixels.astype(np.float32)
    top, bottom = rgb.max(axis=1), rgb.min(axis=1)
    saturation = np.where(top > 0, (top - bottom) / np.maximum(top, 1e-6), 0.0)
    return ColourTags(
        colours=[_NAMES[i] for i in kept],
        shares=[float(counts[i]) for i in kept],
        scheme=_scheme(lab),
        brightness=float(lab[:, 0].mean() / 100.0),
        saturation=float(saturation.mean()),
    )


def _sample(picture: Image.Image | np.ndarray) -> np.ndarray:
    """About ANALYSIS_SIDE² pixels of the picture, [N, 3] uint8: every k-th row and column of
    an array (shares of colour need no smoothing), or a reduced copy of a PIL image."""
    if isinstance(picture, Image.Image):
        image = picture.convert("RGB")
        image.thumbnail((ANALYSIS_SIDE, ANALYSIS_SIDE), Image.Resampling.NEAREST)
        array = np.asarray(image, dtype=np.uint8)
    else:
        array = np.asarray(picture, dtype=np.uint8)[..., :3]
        step = max(1, max(array.shape[:2]) // ANALYSIS_SIDE)
        array = array[::step, ::step]
    return array.reshape(-1, 3)


def colour_name(lab: np.ndarray) -> str:
    """The name of one CIELAB colour."""
    return _NAMES[int(_pixel_names(np.asarray(lab, dtype=np.float32).reshape(1, 3))[0])]


def _pixel_names(lab: np.ndarray) -> np.ndarray:
    """The index in _NAMES of each CIELAB colour's name, [N] (vectorised: ~1,000 pixels)."""
    lightness, a, b = lab[:, 0], lab[:, 1], lab[:, 2]
    chroma = np.hypot(a, b)
    hue = np.degrees(np.arctan2(b, a)) % 360.0
    starts = np.array([start for start, _ in _HUES], dtype=np.float32)
    hue_names = np.array([_INDEX["red"]] + [_INDEX[n] for _, n in _HUES])
    names = hue_names[np.searchsorted(starts, hue, side="right")]
    brown = (hue >= 45.0) & (hue < 95.0) & (lightness < 55)  # a dark orange or yellow
    names = np.where(brown, _INDEX["brown"], names)
    light_red = np.isin(names, [_INDEX["red"], _INDEX["purple"]]) & (lightness > 62)
    names = np.where(light_red, _INDEX["pink"], names)
    grey = np.where(
        lightness < 25, _INDEX["black"], np.where(lightness > 85, _INDEX["white"], _INDEX["grey"])
    )
    names = np.where(chroma < _ACHROMATIC_CHROMA, grey, names)
    return np.where(lightness < 12, _INDEX["black"], names)


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
