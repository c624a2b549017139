"""Near-duplicate pictures: the same picture resized, recompressed, cropped, padded, recoloured,
blurred, rotated or flipped, told apart from a different photo of a similar scene.

The model's embedding cannot do it (unrelated photos reach 0.84 cosine, a 90° turn of the same
one 0.04), so a picture gets a perceptual *fingerprint* at ingest, computed once from a ~128 px
copy (`Image.reduce`, no second decode):

1. **Borders trimmed.** Rows and columns of one flat colour (any colour) at the edges are cut
   off, so a padded copy is the same picture as the unpadded one. A picture whose own edge is
   flat (clipped sky) is trimmed too; the hash of the untrimmed frame is kept beside, and both
   are tried.
2. **Hashes.** A 63-bit DCT hash (the signs of the 8x8 lowest AC coefficients of a 32x32 grey
   copy; signs, not "above the median", so the hash of a flipped, turned or transposed picture
   follows from the bits alone: a flip negates the odd columns or rows of the coefficients, a
   transpose swaps them) of the trimmed frame, of the untrimmed frame, of its centre at 85% and
   72% and its four corners at 87% (a cropped copy, even or uneven, matches one of those), and
   of it turned by +2.5° and +5° (one sign: pairs are screened both ways, so a copy turned
   either way meets one of them). Brightness, contrast, grey and blur leave the signs of low
   frequencies alone.
3. **A canonical orientation** (a flip making the first horizontal and vertical coefficients
   positive, then a transpose making the horizontal one the larger) so that grouping compares a
   pair once, not in 8 orientations; where a choice is close, the other choice is tried too.
4. **A 24x24 grey thumbnail** (6 bits a pixel) of the trimmed frame for verification: a pair
   whose hashes are close but not very close is the same picture when some crop of one (up to
   15% per side, in 5% steps), in some of the 8 orientations or turned by up to 5°, matches the
   other by normalised cross-correlation: of their high-passed (detail) images, plus of the raw
   ones at that alignment, at least `MIN_MATCH_SCORE` (set on the pairs that Flickr8k's 7,000
   pictures pass the screen with, and on edits of 300 val-split pictures). Similar scenes share
   a layout (sky above, ground below), which the hash sees; the detail of two different
   photos rarely lines up as well.

The fingerprint is ``"p2:"`` and 517 bytes (flags, the trim box as fractions, 10 hashes, the
thumbnail) in URL-safe base64 (693 ASCII characters). p1 fingerprints are refused
(`parse_fingerprint` raises ValueError); the integration recomputes them.

Decision (`compare`): equal `source` (content hash) is an exact copy. Otherwise, `distance` is
the smallest Hamming distance over orientations, trimmed/untrimmed and crop hashes; a pair is the
same picture when the distance is at most `STRICT_DISTANCE` and the thumbnails agree
(`MIN_RAW_NCC` and `MIN_DETAIL_NCC`: different photos of similar scenes reach distance 7-8), or
at most `VERIFY_DISTANCE` and the thumbnails match (`MIN_MATCH_SCORE`, `FAR_EXTRA_SCORE` more
from `FAR_DISTANCE` on) with every quadrant agreeing at that alignment (`MIN_QUADRANT_NCC`: a
moved subject, as between burst frames, breaks one). Thresholds were set on the pairs that
Flickr8k's 7,000 photos pass the screen with and on edits of 300 val-split pictures; the bench
measures on those same samples. Known limit: two burst frames whose subject moves less than a
24x24 pixel can still match (keyframes of one shot do); the second look's local features catch
most (`heron.understand.keypoints.moved_subject`). The embedding
cosine is reported when both carry vectors, never used: edits move it more than scenes do.

Grouping (`group_duplicates`): exact copies by `source`; then every picture's probe hashes
(canonical trimmed frame, alternative orientations where the canonical choice was close, the
untrimmed frame where it was trimmed, the crops and tilts) are compared with every picture's
canonical (or raw) hash by XOR and popcount on uint64 in blocks: O(N² · p) word operations for N
pictures and p ≈ 11 probes each, O(block · N) memory. Screened pairs (hash distance ≤
`SCREEN_DISTANCE`, ~1.3 per picture among 7,000 Flickr8k photos, growing with N) are verified
in one batch: each picture's 256 crops are made once and scored against the orientations and
tilts of all its partners with one matrix product (BLAS held to one thread: these products are
small), ~0.5 ms a pair. Measured figures: bench/bench_duplicates.py.

A `second_look` (`heron.understand.keypoints`, from the library's vectors and pixels) may add
pairs the hashes cannot see (a portrait cut of a landscape, a recoloured variant) and drop
pairs they passed whose subject moved (burst frames, keyframes of one shot).

Groups are stars, not chains: the best copy (`keep`: most pixels, then
bytes, then earliest taken, then path) of a connected component takes the pictures that match
it directly; the rest of the component is grouped again the same way, so A~B~C with A≁C does not
put A and C together.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

import numpy as np
from PIL import Image

try:  # small matrix products: a BLAS splitting them over threads on a busy machine is 30x slower
    from threadpoolctl import ThreadpoolController
except ImportError:  # pragma: no cover
    ThreadpoolController = None

_CONTROLLER: list[object] = []  # made once: finding the loaded BLAS libraries costs ~3 ms


def _one_thread() -> contextlib.AbstractContextManager[object]:
    if ThreadpoolController is None:  # pragma: no cover
        return contextlib.nullcontext()
    if not _CONTROLLER:
        _CONTROLLER.append(ThreadpoolController())
    return _CONTROLLER[0].limit(limits=1, user_api="blas")  # type: ignore[attr-defined]


__all__ = [
    "FINGERPRINT_VERSION",
    "MIN_DETAIL_NCC",
    "MIN_MATCH_SCORE",
    "MIN_QUADRANT_NCC",
    "MIN_RAW_NCC",
    "SCREEN_DISTANCE",
    "STRICT_DISTANCE",
    "VERIFY_DISTANCE",
    "Candidate",
    "DuplicateGroup",
    "Fingerprint",
    "Match",
    "SecondLook",
    "compare",
    "fingerprint",
    "group_duplicates",
    "matching_pairs",
    "parse_fingerprint",
]

FINGERPRINT_VERSION = "p2"
_PREFIX = FINGERPRINT_VERSION + ":"
_THUMB = 24
_N_HASHES = 10
_PAYLOAD_BYTES = 1 + 4 + 8 * _N_HASHES + _THUMB * _THUMB * 6 // 8
_WORK_SIDE = 128  # the shorter side of the working copy, at least
_CROP_SCALES = (0.85, 0.72)
_HASH_TILTS = (2.5, 5.0)  # one sign: a pair is screened both ways
_CORNER_SCALE = 0.87

STRICT_DISTANCE = 8  # hash distance at or below which a pair is the same unless thumbnails disagree
SCREEN_DISTANCE = 14  # grouping verifies only pairs some probe hash of which is this close
VERIFY_DISTANCE = 24  # above this, never the same picture; between, the thumbnails decide
# for a strict-distance pair the thumbnails must agree too: similar scenes reach distance 7-8
MIN_DETAIL_NCC = 0.6  # detail (high-passed) correlation at least this, and
MIN_RAW_NCC = 0.85  # raw correlation at least this
MIN_MATCH_SCORE = 1.55  # in the verify band: detail + raw correlation at the best alignment,
FAR_DISTANCE = 13  # plus this much from this hash distance on,
FAR_EXTRA_SCORE = 0.1
MIN_QUADRANT_NCC = 0.3  # and every quadrant's raw correlation at least this (a moved subject)
_AMBIGUOUS = 0.12  # canonical-orientation margin (relative to the AC rms) below which both tried


# --------------------------------------------------------------------------- fingerprint


def _dct_matrix(n: int) -> np.ndarray:
    k = np.arange(n)[:, None]
    x = np.arange(n)[None, :]
    m = np.cos(np.pi * (2 * x + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
    m[0] /= np.sqrt(2.0)
    return m


_D32 = _dct_matrix(32)
_D8 = _D32[:8]  # only the 8 lowest frequencies are ever used

# bit layout of a 63-bit hash: coefficient (u, v), u, v < 8, (0, 0) skipped, at bit 62 - index
_U, _V = np.divmod(np.arange(1, 64), 8)
_ODD_V = int("".join("1" if v % 2 else "0" for v in _V), 2)  # bits a horizontal flip inverts
_ODD_U = int("".join("1" if u % 2 else "0" for u in _U), 2)  # bits a vertical flip inverts
_TRANSPOSE = np.array([(v * 8 + u) - 1 for u, v in zip(_U, _V, strict=True)])


def _working_copy(image: Image.Image) -> Image.Image:
    im = image
    factor = max(1, min(im.size) // _WORK_SIDE)
    if factor > 1 and im.mode in ("RGB", "RGBA", "RGBX", "L", "LA", "I", "F"):
        im = im.reduce(factor)  # before any conversion: that touches every pixel
        factor = 1
    if im.mode not in ("RGB", "L"):
        if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
            im = im.convert("RGBA")
            background = Image.new("RGBA", im.size, (255, 255, 255, 255))
            im = Image.alpha_composite(background, im)
        im = im.convert("RGB")
    if factor > 1:
        im = im.reduce(factor)
    return im


def _flat_run(lines: np.ndarray, limit: int, tol: float = 10.0, share: float = 0.98) -> int:
    """How many of `lines` (outermost first, n x m x c) are one flat colour, that of the first."""
    ref = np.median(lines[0], axis=0)
    if (np.abs(lines[0] - ref).max(axis=1) <= tol).mean() < share:
        return 0  # the usual case: the edge itself is not flat
    flat = (np.abs(lines[:limit] - ref).max(axis=2) <= tol).mean(axis=1) >= share
    if flat.all():
        return limit
    return int(np.argmin(flat))


def _trim_box(pixels: np.ndarray) -> tuple[int, int, int, int]:
    h, w = pixels.shape[:2]
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    cols = pixels.transpose(1, 0, 2)
    top = _flat_run(pixels, int(h * 0.45))
    bottom = _flat_run(pixels[::-1], int(h * 0.45))
    left = _flat_run(cols, int(w * 0.45))
    right = _flat_run(cols[::-1], int(w * 0.45))
    if h - top - bottom < max(4, h * 0.1) or w - left - right < max(4, w * 0.1):
        return (0, 0, w, h)  # (nearly) all flat: nothing to trim against
    return (left, top, w - right, h - bottom)


def _coefficients(grey: Image.Image, box: tuple[float, float, float, float]) -> np.ndarray:
    x = np.asarray(grey.resize((32, 32), Image.Resampling.BOX, box=box), dtype=np.float64)
    return _D8 @ x @ _D8.T


def _sign_hash(c: np.ndarray) -> int:
    bits = c.reshape(-1)[1:] > 0
    return int.from_bytes(np.packbits(np.concatenate(([False], bits))).tobytes(), "big")


def _centre(box: tuple[int, int, int, int], scale: float) -> tuple[float, float, float, float]:
    x0, y0, x1, y1 = box
    cx, cy, hw, hh = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) * scale / 2, (y1 - y0) * scale / 2
    return (cx - hw, cy - hh, cx + hw, cy + hh)


def _corners(box: tuple[int, int, int, int]) -> list[tuple[float, float, float, float]]:
    x0, y0, x1, y1 = box
    w, h = (x1 - x0) * _CORNER_SCALE, (y1 - y0) * _CORNER_SCALE
    return [(x0, y0, x0 + w, y0 + h), (x1 - w, y0, x1, y0 + h),
            (x0, y1 - h, x0 + w, y1), (x1 - w, y1 - h, x1, y1)]  # fmt: skip


def _pack6(values: np.ndarray) -> bytes:
    v = (values.reshape(-1, 4).astype(np.uint32) >> 2) & 63
    word = v[:, 0] << 18 | v[:, 1] << 12 | v[:, 2] << 6 | v[:, 3]
    return np.stack([word >> 16, word >> 8, word], axis=1).astype(np.uint8).tobytes()


def _unpack6(data: bytes) -> np.ndarray:
    b = np.frombuffer(data, np.uint8).reshape(-1, 3).astype(np.uint32)
    word = b[:, 0] << 16 | b[:, 1] << 8 | b[:, 2]
    v = np.stack([word >> 18, word >> 12, word >> 6, word], axis=1) & 63
    return (v * 4 + 2).astype(np.uint8).reshape(-1)


def fingerprint(image: Image.Image) -> str:
    """The perceptual fingerprint of a decoded (EXIF-transposed) picture, any size or mode.

    About 1 ms for a 224 px photo and 3 ms for a decoded 2560x1440 one (the reduction of the
    full-size pixels is most of it). The caller's image is not changed.
    """
    work = _working_copy(image)
    grey = work.convert("L") if work.mode != "L" else work
    pixels = np.asarray(work, dtype=np.int16)
    box = _trim_box(pixels)
    full = (0, 0, work.width, work.height)
    trimmed = box != full
    c = _coefficients(grey, box)
    inner = grey.crop(box)
    hashes = [
        _sign_hash(c),
        _sign_hash(_coefficients(grey, full)) if trimmed else _sign_hash(c),
        *(_sign_hash(_coefficients(grey, _centre(box, s))) for s in _CROP_SCALES),
        *(
            _sign_hash(
                _coefficients(inner.rotate(a, Image.Resampling.BILINEAR), (0, 0, *inner.size))
            )
            for a in _HASH_TILTS
        ),
        *(_sign_hash(_coefficients(grey, b)) for b in _corners(box)),
    ]
    # canonical orientation: flips making C[0,1], C[1,0] >= 0, then a transpose making C[0,1] the
    # larger; margins relative to the AC rms say how sure each choice is
    rms = float(np.sqrt(np.mean(c.reshape(-1)[1:] ** 2))) + 1e-9
    h_flip, v_flip = c[0, 1] < 0, c[1, 0] < 0
    transpose = abs(c[1, 0]) > abs(c[0, 1])
    ambiguous = (
        (abs(c[0, 1]) / rms < _AMBIGUOUS)
        | (abs(c[1, 0]) / rms < _AMBIGUOUS) << 1
        | (abs(abs(c[0, 1]) - abs(c[1, 0])) / rms < _AMBIGUOUS) << 2
    )
    flags = int(trimmed) | (h_flip | v_flip << 1 | transpose << 2) << 1 | ambiguous << 4
    w, h = work.size
    trim = bytes(round(v * 255) for v in (box[0] / w, box[1] / h, box[2] / w, box[3] / h))
    thumb = np.asarray(grey.resize((_THUMB, _THUMB), Image.Resampling.BOX, box=box), np.uint8)
    payload = bytes([flags]) + trim + b"".join(h.to_bytes(8, "big") for h in hashes) + _pack6(thumb)
    return _PREFIX + base64.urlsafe_b64encode(payload).decode("ascii").rstrip("=")


@dataclass(frozen=True)
class Fingerprint:
    """A parsed fingerprint: hashes in the picture's own orientation, and its thumbnail."""

    trimmed: bool
    orientation: int  # canonical transform: bit 0 flip left-right, 1 flip up-down, 2 transpose
    ambiguous: int  # bits of `orientation` whose choice was close
    # trimmed frame, untrimmed frame, centre 85%, centre 72%, tilted +2.5° and +5°, corners at
    # 87% (top left, top right, bottom left, bottom right)
    hashes: tuple[int, ...]
    thumb: np.ndarray = field(repr=False)  # 24x24 uint8 grey of the trimmed frame (6 bits kept)
    box: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0)  # the trim, as fractions


def parse_fingerprint(text: str) -> Fingerprint:
    """Parse a `fingerprint` string; ValueError if it is not one of this version."""
    if not isinstance(text, str) or not text.startswith(_PREFIX):
        raise ValueError(f"not a {FINGERPRINT_VERSION} picture fingerprint: {text!r:.40}")
    body = text[len(_PREFIX) :]
    try:
        payload = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"corrupt picture fingerprint: {exc}") from None
    if len(payload) != _PAYLOAD_BYTES or payload[0] >> 7:
        raise ValueError(f"corrupt picture fingerprint: {len(payload)} bytes")
    flags = payload[0]
    box = tuple(v / 255 for v in payload[1:5])
    if not (box[0] < box[2] and box[1] < box[3]):
        raise ValueError("corrupt picture fingerprint: trim box")
    at = 5 + 8 * _N_HASHES
    hashes = tuple(int.from_bytes(payload[5 + 8 * i : 13 + 8 * i], "big") for i in range(_N_HASHES))
    if any(h >> 63 for h in hashes):
        raise ValueError("corrupt picture fingerprint: hash out of range")
    thumb = _unpack6(payload[at:]).reshape(_THUMB, _THUMB)
    return Fingerprint(
        bool(flags & 1),
        (flags >> 1) & 7,
        (flags >> 4) & 7,
        hashes,
        thumb,
        box,  # type: ignore[arg-type]
    )


# --------------------------------------------------------------------------- orientations


def _orient(h: int, g: int) -> int:
    """The hash of the picture transformed by `g` (flip left-right, flip up-down, transpose)."""
    if g & 1:
        h ^= _ODD_V
    if g & 2:
        h ^= _ODD_U
    if g & 4:
        bits = np.unpackbits(np.frombuffer(h.to_bytes(8, "big"), np.uint8))[1:]
        out = np.zeros(64, np.uint8)
        out[1:][_TRANSPOSE] = bits
        h = int.from_bytes(np.packbits(out).tobytes(), "big")
    return h


def _orient_many(h: np.ndarray, g: int) -> np.ndarray:
    """`_orient` over a uint64 array."""
    h = h.copy()
    if g & 1:
        h ^= np.uint64(_ODD_V)
    if g & 2:
        h ^= np.uint64(_ODD_U)
    if g & 4:
        bits = np.unpackbits(h.astype(">u8").view(np.uint8).reshape(-1, 8), axis=1)
        out = np.zeros_like(bits)
        out[:, 1:][:, _TRANSPOSE] = bits[:, 1:]
        h = np.packbits(out, axis=1).view(">u8").reshape(-1).astype(np.uint64)
    return h


def _popcount(x: int) -> int:
    return x.bit_count()


# --------------------------------------------------------------------------- verification


def _interp(n: int, a: float, b: float) -> np.ndarray:
    pos = np.clip((a + (np.arange(n) + 0.5) / n * (b - a)) * n - 0.5, 0, n - 1)
    i0 = np.floor(pos).astype(int)
    i1 = np.minimum(i0 + 1, n - 1)
    w = pos - i0
    m = np.zeros((n, n))
    m[np.arange(n), i0] += 1 - w
    m[np.arange(n), i1] += w
    return m


_STEPS = np.arange(0.0, 0.151, 0.05)
_SPANS = [(a, 1 - b) for a in _STEPS for b in _STEPS]  # (start, stop) of one axis of a crop
_BOXES = [(x0, y0, x1, y1) for y0, y1 in _SPANS for x0, x1 in _SPANS]  # y-major
_WY = np.concatenate([_interp(_THUMB, a, b) for a, b in _SPANS]).astype(np.float32)  # (s*n, n)
_WX = np.concatenate([_interp(_THUMB, a, b) for a, b in _SPANS], 0).T.astype(np.float32)


def _blur_matrix(n: int) -> np.ndarray:
    """3-tap box blur with the edge repeated; a 3x3 box blur of X is B @ X @ B.T."""
    m = np.zeros((n, n))
    for i in range(n):
        for j in (i - 1, i, i + 1):
            m[i, min(max(j, 0), n - 1)] += 1 / 3
    return m


_B = _blur_matrix(_THUMB).astype(np.float32)


def _rotation_taps(angle: float) -> tuple[np.ndarray, np.ndarray]:
    """Bilinear taps (pixels x 4 source indexes, weights) of an image turned by `angle` degrees
    about its centre, black outside (like `Image.rotate`)."""
    n = _THUMB
    t = np.deg2rad(angle)
    y, x = np.mgrid[0:n, 0:n].astype(np.float64) + 0.5 - n / 2
    sx = np.cos(t) * x - np.sin(t) * y + n / 2 - 0.5
    sy = np.sin(t) * x + np.cos(t) * y + n / 2 - 0.5
    x0, y0 = np.floor(sx), np.floor(sy)
    idx, wts = [], []
    for dy in (0, 1):
        for dx in (0, 1):
            xi, yi = x0 + dx, y0 + dy
            w = (1 - np.abs(sx - xi)) * (1 - np.abs(sy - yi))
            ok = (xi >= 0) & (xi < n) & (yi >= 0) & (yi < n)
            idx.append(np.where(ok, yi * n + xi, 0).astype(np.intp).ravel())
            wts.append(np.where(ok, w, 0.0).ravel())
    return np.stack(idx, 1), np.stack(wts, 1).astype(np.float32)


_TILTS = (-5.0, -2.5, 2.5, 5.0)
_TILT_TAPS = [_rotation_taps(a) for a in _TILTS]
_PERMS = [  # the 8 orientations of a square image as pixel permutations, indexed like _orient
    np.ascontiguousarray(
        (lambda m, g: m.T if g & 4 else m)(
            np.arange(_THUMB * _THUMB).reshape(_THUMB, _THUMB)[
                :: -1 if g & 2 else 1, :: -1 if g & 1 else 1
            ],
            g,
        )
    ).ravel()
    for g in range(8)
]


def _highpass(x: np.ndarray) -> np.ndarray:
    """(m, n, n) -> the detail: each image less its 3x3 box blur (two plain matrix products)."""
    m, n = len(x), _THUMB
    y = (x.reshape(m * n, n) @ _B.T).reshape(m, n, n).transpose(0, 2, 1)
    y = (y.reshape(m * n, n) @ _B.T).reshape(m, n, n).transpose(0, 2, 1)
    return x - y


def _normalise(x: np.ndarray) -> np.ndarray:
    x = x - x.mean(axis=-1, keepdims=True)
    return x / (np.linalg.norm(x, axis=-1, keepdims=True) + 1e-6)


def _turns(thumbs: np.ndarray) -> np.ndarray:
    """(m, n, n) thumbnails -> (m, 8 orientations + tilts, n*n) raw pixels."""
    flat = thumbs.reshape(len(thumbs), -1).astype(np.float32)
    out = [flat[:, perm] for perm in _PERMS]
    out += [(flat[:, idx] * w).sum(axis=2) for idx, w in _TILT_TAPS]
    return np.stack(out, axis=1)


def _crops(thumb: np.ndarray) -> np.ndarray:
    """(n, n) thumbnail -> (boxes, n*n) raw crops, resampled to n x n: one matrix product."""
    n, k = _THUMB, len(_SPANS)
    out = (_WY @ thumb.astype(np.float32)) @ _WX  # (k*n, k*n): [y span, row, x span, column]
    return out.reshape(k, n, k, n).transpose(0, 2, 1, 3).reshape(k * k, n * n)


def _quadrant_ncc(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The lowest raw NCC of the four quadrants of aligned thumbnails, (m, n*n) each."""
    h = _THUMB // 2

    def quads(v: np.ndarray) -> np.ndarray:
        q = v.reshape(-1, 2, h, 2, h).transpose(0, 1, 3, 2, 4).reshape(-1, 4, h * h)
        return _normalise(q)

    return (quads(x) * quads(y)).sum(axis=2).min(axis=1)


def _align(
    thumb: np.ndarray, partners: np.ndarray, turns: np.ndarray, turns_detail: np.ndarray
) -> np.ndarray:
    """Crops of `thumb` against the orientations and tilts of each partner (turns: (m, G, n*n)
    raw, turns_detail normalised): per partner (best detail NCC, raw NCC and lowest quadrant NCC
    at that alignment)."""
    n = _THUMB
    crops = _crops(thumb)
    crops_detail = _normalise(_highpass(crops.reshape(-1, n, n)).reshape(len(crops), -1))
    m, g = len(partners), turns.shape[1]
    sub = turns_detail[partners].reshape(m * g, -1)
    scores = (sub @ crops_detail.T).reshape(m, g * len(crops))  # [partner, turn, crop]
    best = scores.argmax(axis=1)
    gi, k = np.divmod(best, len(crops))
    detail = scores[np.arange(m), best]
    x, y = crops[k], turns[partners, gi]
    raw = (_normalise(x) * _normalise(y)).sum(axis=1)
    return np.stack([detail, raw, _quadrant_ncc(x, y)], axis=1)


def _thumb_scores_many(
    fps: list[Fingerprint], pairs: list[tuple[int, int]], chunk: int = 256
) -> np.ndarray:
    """(pairs, 3): best detail NCC over crops of either against orientations and tilts of the
    other, and raw and lowest quadrant NCC at that alignment. Each picture's crops are made once
    and scored against all its partners in one matrix product."""
    out = np.full((len(pairs), 3), -1.0, np.float32)
    if not pairs:
        return out
    arr = np.asarray(pairs, np.intp)
    directed = np.concatenate([arr, arr[:, ::-1]])  # (a: cropped, b: turned)
    which = np.concatenate([np.arange(len(pairs))] * 2)
    order = np.argsort(directed[:, 0], kind="stable")
    directed, which = directed[order], which[order]
    starts = np.flatnonzero(np.r_[True, directed[1:, 0] != directed[:-1, 0]])
    bounds = np.r_[starts, len(directed)]
    for c in range(0, len(starts), chunk):
        lo, hi = bounds[c], bounds[min(c + chunk, len(starts))]
        need, local = np.unique(directed[lo:hi, 1], return_inverse=True)
        turns = _turns(np.stack([fps[i].thumb for i in need]))
        g = turns.shape[1]
        detail = _highpass(turns.reshape(-1, _THUMB, _THUMB)).reshape(len(need), g, -1)
        turns_detail = _normalise(detail)
        for s in range(c, min(c + chunk, len(starts))):
            a, b = bounds[s], bounds[s + 1]
            partners = local[a - lo : b - lo]
            res = _align(fps[directed[a, 0]].thumb, partners, turns, turns_detail)
            rows = which[a:b]
            better = res[:, 0] > out[rows, 0]
            out[rows[better]] = res[better]
    return out


# --------------------------------------------------------------------------- pairs


@dataclass(frozen=True)
class Candidate:
    """A picture as grouping sees it. Equal `source` (content hash) means an exact copy."""

    id: str
    fingerprint: str
    width: int
    height: int
    bytes: int = 0
    taken_at: datetime | None = None
    source: str = ""
    path: str = ""
    vector: np.ndarray | None = field(default=None, compare=False, repr=False)
    thumbnail: str = ""  # its thumbnail's key (relative to the thumbnails folder), if any


@dataclass(frozen=True)
class Match:
    same: bool
    how: Literal["exact", "near", "different"]
    distance: int  # smallest hash distance (0..63); 0 for exact copies
    cosine: float | None  # of the embedding vectors, when both carry one (not used to decide)
    detail: float | None  # detail NCC of the thumbnails, when they were compared
    reason: str


def _oriented(fps: list[Fingerprint]) -> np.ndarray:
    """(n, 8, hashes) uint64: every hash of every fingerprint in each of the 8 orientations."""
    raw = np.array([fp.hashes for fp in fps], dtype=np.uint64).reshape(len(fps), _N_HASHES)
    return np.stack([_orient_many(raw.reshape(-1), g).reshape(raw.shape) for g in range(8)], 1)


def _min_distances(oriented: np.ndarray, pairs: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """Per pair (i, j): the smallest Hamming distance of i's frames (trimmed, untrimmed) against
    any hash of j in any orientation, and of j's frames against i's hashes."""
    out = np.empty(len(pairs), np.int64)
    for s in range(0, len(pairs), chunk):
        i, j = pairs[s : s + chunk, 0], pairs[s : s + chunk, 1]
        best = None
        for p, q in ((i, j), (j, i)):
            frames = oriented[p, 0, :2]  # (m, 2)
            x = np.bitwise_xor(frames[:, None, :, None], oriented[q][:, :, None, :])
            d = np.bitwise_count(x).reshape(len(p), -1).min(axis=1)
            best = d if best is None else np.minimum(best, d)
        out[s : s + chunk] = best
    return out


def _min_distance(fa: Fingerprint, fb: Fingerprint) -> int:
    """Smallest distance over 8 orientations of b, a's frames against b's frames and crops."""
    return int(_min_distances(_oriented([fa, fb]), np.array([[0, 1]]))[0])


def _cosine(a: Candidate, b: Candidate) -> float | None:
    if a.vector is None or b.vector is None:
        return None
    va, vb = np.asarray(a.vector, np.float64), np.asarray(b.vector, np.float64)
    return float(va @ vb / (np.linalg.norm(va) * np.linalg.norm(vb) + 1e-12))


def _verdict(d: int, detail: float, raw: float, quadrant: float) -> tuple[bool, str]:
    if d > VERIFY_DISTANCE:
        return False, f"hash distance {d} > {VERIFY_DISTANCE}"
    if d <= STRICT_DISTANCE:
        if raw >= MIN_RAW_NCC and detail >= MIN_DETAIL_NCC:
            return True, f"hash distance {d}"
        return False, f"hash distance {d} but thumbnails differ (ncc {raw:.2f})"
    need = MIN_MATCH_SCORE + (FAR_EXTRA_SCORE if d >= FAR_DISTANCE else 0.0)
    if detail + raw >= need and quadrant >= MIN_QUADRANT_NCC:
        return True, f"hash distance {d}, thumbnails match (ncc {detail:.2f}/{raw:.2f})"
    return False, (
        f"hash distance {d}, thumbnails differ (ncc {detail:.2f}/{raw:.2f}, "
        f"quadrant {quadrant:.2f})"
    )


def _decide_many(
    fps: list[Fingerprint], pairs: list[tuple[int, int]]
) -> list[tuple[bool, int, float | None, str]]:
    """`compare`'s decision for many pairs (indexes into fps) at once."""
    if not pairs:
        return []
    arr = np.asarray(pairs, np.intp)
    dist = _min_distances(_oriented(fps), arr)
    near = np.flatnonzero(dist <= VERIFY_DISTANCE)
    scores = np.full((len(pairs), 3), np.nan)
    with _one_thread():
        scores[near] = _thumb_scores_many(fps, [pairs[k] for k in near])
    out: list[tuple[bool, int, float | None, str]] = []
    for d, (detail, raw, quadrant) in zip(dist.tolist(), scores.tolist(), strict=True):
        same, reason = _verdict(d, detail, raw, quadrant)
        out.append((same, d, None if d > VERIFY_DISTANCE else detail, reason))
    return out


def compare(a: Candidate, b: Candidate) -> Match:
    """Whether `a` and `b` are the same picture, and why."""
    cosine = _cosine(a, b)
    if a.source and a.source == b.source:
        return Match(True, "exact", 0, cosine, None, "same file content")
    fps = [parse_fingerprint(a.fingerprint), parse_fingerprint(b.fingerprint)]
    same, d, detail, reason = _decide_many(fps, [(0, 1)])[0]
    return Match(same, "near" if same else "different", d, cosine, detail, reason)


# --------------------------------------------------------------------------- groups


@dataclass
class DuplicateGroup:
    kind: Literal["exact", "near"]  # near when any member's content differs from keep's
    keep: str  # the best copy's id: most pixels, then bytes, then earliest taken, then path
    members: list[str]  # ids, keep first
    evidence: dict[str, tuple[int, str]]  # member id -> (hash distance to keep, reason)


def _rank_key(c: Candidate) -> tuple:
    taken = c.taken_at.timestamp() if c.taken_at is not None else float("inf")
    return (-(c.width * c.height), -c.bytes, taken, c.path, c.id)


def _screen(
    fps: list[Fingerprint],
    threshold: int,
    progress: Callable[[int, int], None] | None,
    block: int = 512,
) -> set[tuple[int, int]]:
    """Pairs (i, j), i < j, of fingerprints (by index) with some probe within `threshold`."""
    n = len(fps)
    raw = np.array([fp.hashes for fp in fps], dtype=np.uint64).reshape(n, _N_HASHES)
    orientation = np.array([fp.orientation for fp in fps])
    ambiguous = np.array([fp.ambiguous for fp in fps])
    trimmed = np.array([fp.trimmed for fp in fps])
    canon = np.empty_like(raw)
    for g in range(8):
        sel = orientation == g
        if sel.any():
            canon[sel, 0] = _orient_many(raw[sel, 0], g)
    # probes against canonical keys: a turned or flipped copy; against raw keys: the rest
    canon_probes, canon_owner = [canon[:, 0]], [np.arange(n)]
    raw_probes = [raw[:, k] for k in (0, *range(2, _N_HASHES))]
    raw_owner = [np.arange(n)] * len(raw_probes)
    if trimmed.any():
        raw_probes.append(raw[trimmed, 1])
        raw_owner.append(np.flatnonzero(trimmed))
    for toggle in range(1, 8):  # other orientations where the canonical choice was close
        sel = (ambiguous & toggle) == toggle
        if not sel.any():
            continue
        idx = np.flatnonzero(sel)
        for g in np.unique(orientation[idx] ^ toggle):
            sub = idx[(orientation[idx] ^ toggle) == g]
            canon_probes.append(_orient_many(raw[sub, 0], int(g)))
            canon_owner.append(sub)
    tasks = [
        (np.concatenate(canon_probes), np.concatenate(canon_owner), canon[:, 0]),
        (np.concatenate(raw_probes), np.concatenate(raw_owner), raw[:, 0]),
    ]
    pairs: set[tuple[int, int]] = set()
    total, done = sum(len(t[0]) for t in tasks), 0
    xor = np.empty((block, n), np.uint64)
    count = np.empty((block, n), np.uint8)
    for probes, owner, keys in tasks:
        for start in range(0, len(probes), block):
            stop = min(start + block, len(probes))
            m = stop - start
            np.bitwise_xor(probes[start:stop, None], keys[None, :], out=xor[:m])
            np.bitwise_count(xor[:m], out=count[:m])
            rows, cols = np.nonzero(count[:m] <= threshold)
            for r, c in zip(owner[start + rows].tolist(), cols.tolist(), strict=True):
                if r != c:
                    pairs.add((r, c) if r < c else (c, r))
            done += m
            if progress is not None:
                progress(done, total)
    return pairs


SecondLook = Callable[
    [list[Candidate], set[tuple[int, int]]], dict[tuple[int, int], tuple[bool, str]]
]
"""A second stage after the hashes: given the candidates and the pairs (i, j), i < j, the
hashes found the same, verdicts that overrule them: (True, reason) adds a pair the hashes
cannot see (a portrait cut, a recolour), (False, reason) drops one they passed (a burst whose
subject moved). `heron.understand.keypoints.second_look` is the built-in one."""


def _near_pairs(
    candidates: list[Candidate],
    threshold: int,
    progress: Callable[[int, int], None] | None,
    second_look: SecondLook | None = None,
) -> tuple[list[Candidate], dict[int, dict[int, tuple[int, str]]]]:
    fps: list[Fingerprint] = []
    parsed: list[Candidate] = []
    for c in candidates:
        try:
            fps.append(parse_fingerprint(c.fingerprint))
            parsed.append(c)
        except ValueError:
            continue
    same: dict[int, dict[int, tuple[int, str]]] = {}
    if len(parsed) > 1:
        pairs = sorted(_screen(fps, threshold, progress))
        for (i, j), (ok, d, _detail, reason) in zip(pairs, _decide_many(fps, pairs), strict=True):
            if ok:
                same.setdefault(i, {})[j] = (d, reason)
                same.setdefault(j, {})[i] = (d, reason)
    if second_look is not None and len(parsed) > 1:
        found = {(i, j) for i, row in same.items() for j in row if i < j}
        verdicts = second_look(parsed, found)
        for (i, j), (ok, _) in verdicts.items():
            if not ok and j in same.get(i, {}):
                del same[i][j], same[j][i]
        added = sorted(pair for pair, (ok, _) in verdicts.items() if ok and pair not in found)
        if added:
            distances = _min_distances(_oriented(fps), np.asarray(added, np.intp)).tolist()
            for (i, j), d in zip(added, distances, strict=True):
                same.setdefault(i, {})[j] = (int(d), verdicts[(i, j)][1])
                same.setdefault(j, {})[i] = (int(d), verdicts[(i, j)][1])
        same = {i: row for i, row in same.items() if row}
    return parsed, same


def matching_pairs(
    candidates: Iterable[Candidate],
    *,
    threshold: int = SCREEN_DISTANCE,
    progress: Callable[[int, int], None] | None = None,
    second_look: SecondLook | None = None,
) -> list[tuple[str, str, int, str]]:
    """Every pair of candidates that are near copies: (id, id, hash distance, reason), sorted.

    Pixels only (`source` is not looked at); the pairs `group_duplicates` builds its groups from.
    """
    parsed, same = _near_pairs(list(candidates), threshold, progress, second_look)
    out = [
        (*sorted((parsed[i].id, parsed[j].id)), d, reason)
        for i, row in same.items()
        for j, (d, reason) in row.items()
        if i < j
    ]
    return sorted(out)  # type: ignore[arg-type]


def group_duplicates(
    candidates: Iterable[Candidate],
    *,
    threshold: int = SCREEN_DISTANCE,
    progress: Callable[[int, int], None] | None = None,
    second_look: SecondLook | None = None,
) -> list[DuplicateGroup]:
    """Groups of at least two copies of one picture, best copy first; deterministic.

    Exact copies (equal `source`) group without their pixels being looked at. One fingerprint per
    distinct source then goes through the screen (hash distance ≤ `threshold`, see the module
    docstring for its cost) and `compare`'s decision. `progress(done, total)` is called per block
    of the screen. Candidates whose fingerprint does not parse are left out of near grouping.
    `second_look` adds pairs the hashes cannot see (a portrait cut, a recolour) and drops
    pairs whose subject moved.
    """
    items = sorted(candidates, key=_rank_key)
    by_id = {c.id: c for c in items}
    # exact copies: one representative (the best) per source
    reps: list[Candidate] = []
    copies: dict[str, list[Candidate]] = {}
    for c in items:
        key = c.source or f"\0{c.id}"
        if key not in copies:
            copies[key] = []
            reps.append(c)
        copies[key].append(c)
    parsed, same = _near_pairs(reps, threshold, progress, second_look)
    # components of near matches among representatives (indexes are in rank order)
    seen: set[int] = set()
    near_groups: dict[int, dict[int, tuple[int, str]]] = {}
    for start in range(len(parsed)):
        if start in seen or start not in same:
            continue
        component, stack = [], [start]
        seen.add(start)
        while stack:
            i = stack.pop()
            component.append(i)
            for j in same[i]:
                if j not in seen:
                    seen.add(j)
                    stack.append(j)
        left = sorted(component)
        while len(left) > 1:  # stars: the best one and what matches it directly
            keep = left[0]
            members = {j: same[keep][j] for j in left[1:] if j in same[keep]}
            if members:
                near_groups[keep] = members
            left = [j for j in left[1:] if j not in members]
    groups: list[DuplicateGroup] = []
    rep_index = {c.id: i for i, c in enumerate(parsed)}
    joined = {j for members in near_groups.values() for j in members}
    for rep in reps:
        i = rep_index.get(rep.id)
        if i in joined:
            continue  # in the group of a better copy
        near = near_groups.get(i, {}) if i is not None else {}
        exact = copies[rep.source or f"\0{rep.id}"]
        members = [c.id for c in exact]
        evidence = {c.id: (0, "same file content") for c in exact[1:]}
        for j, (d, reason) in sorted(near.items()):
            for c in copies[parsed[j].source or f"\0{parsed[j].id}"]:
                members.append(c.id)
                evidence[c.id] = (d, reason)
        if len(members) < 2:
            continue
        # the representative is the best of its component and of its exact copies
        members = [members[0], *sorted(members[1:], key=lambda m: _rank_key(by_id[m]))]
        groups.append(DuplicateGroup("near" if near else "exact", members[0], members, evidence))
    groups.sort(key=lambda g: _rank_key(by_id[g.keep]))
    return groups
