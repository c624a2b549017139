"""The same picture by its local features: what the fingerprint's global hashes cannot see.

A portrait cut from a landscape wallpaper (1080x1920 from 16:9), a recoloured ("dark") variant
of an artwork, or a small crop keeps only part of the frame or none of its colours, so the DCT
hashes and thumbnails of `heron.understand.neardup` differ. Such a pair still shares its
*structure*: the same corners and blobs at the same relative places, and the same edges.

`same_picture` decides a pair in three steps, on grey copies whose longer side is `LOCAL_SIDE`:

1. **Keypoints.** SIFT (OpenCV), descriptors as RootSIFT; each keypoint of one picture is paired
   with its nearest descriptor in the other when that is clearly nearer than the second nearest
   (Lowe's ratio `RATIO`).
2. **One geometry.** A similarity transform (scale, turn, shift: what a crop, resize or small
   tilt does) is fitted to the pairs by RANSAC; at least `MIN_INLIERS` must agree, and one
   picture must lie mostly inside the other once mapped (`MIN_COVERED`). Repetitive textures
   give pairs that agree on a degenerate transform, which the next step rejects.
3. **The same edges.** The finer picture is shrunk onto the coarser one and the orientation of
   their grey gradients is compared over the overlap, less where either is flat (a turned
   copy's filled corners, padding) and the rim of those: the cosine between the gradient fields,
   which a change of brightness, contrast or palette leaves high (`MIN_AGREEMENT`). At most
   `MAX_LOCAL_DIFFERENCE` of the edge energy may lie in cells of a 6x6 grid that agree
   `LOCAL_DROP` less than the median cell while both pictures have detail there
   (`MIN_CELL_BALANCE`): a moved subject, not a turned copy's filled corner or a blur.
4. **Something the hashes could not see.** Edges that agree nearly everywhere
   (`MIN_EXACT_AGREEMENT`, no region apart) are the same pixels, however cut (an uneven crop
   the hashes miss). Otherwise the pair must be cut differently (the overlap is at
   most 1 - `MIN_REFRAMED` of the larger frame: a portrait strip of a landscape) or recoloured
   (median colour difference over the overlap at least `MIN_RECOLOURED`). Two pictures in the
   same framing and colours are left to the fingerprint's thumbnails, which compared exactly
   those pixels: burst frames agree on most keypoints and edges (video keyframes of one shot
   reach 0.83), and only pixel-level agreement tells them from copies.

Pairs reach it from the embedding: each picture's `NEIGHBOURS` nearest by cosine (at least
`MIN_COSINE`), since the model sees a portrait cut or a recolour as close where the hashes do
not. Measured (bench/bench_duplicates.py): on `../shared/data/neardup`, same-picture pairs that
reach step 3 agree at 0.54-1.00, different artworks at most 0.04; no keyframe pair of the
shared videos and no Flickr8k val pair (2,931 neighbour pairs) passes. Cost: ~30-60 ms of
features per picture at 768 px, ~1 ms a pair.
"""

from __future__ import annotations

import itertools
import math
import os
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from PIL import Image

from heron.understand.neardup import Candidate, SecondLook

try:
    import cv2
except ImportError:  # pragma: no cover - a dependency; without it only the hashes decide
    cv2 = None

__all__ = [
    "LOCAL_SIDE",
    "MAX_LOCAL_DIFFERENCE",
    "MIN_AGREEMENT",
    "MIN_COSINE",
    "MIN_INLIERS",
    "MIN_RECOLOURED",
    "MIN_REFRAMED",
    "NEIGHBOURS",
    "LocalFeatures",
    "LocalMatch",
    "available",
    "local_features",
    "moved_subject",
    "neighbour_pairs",
    "same_picture",
    "second_look",
    "verify_pairs",
]

LOCAL_SIDE = 768  # longer side of the working copy
RATIO = 0.75
MIN_INLIERS = 6
MIN_COVERED = 0.5  # the share of one picture that must fall inside the other
MIN_AGREEMENT = 0.5  # gradient-orientation cosine over the overlap
MAX_LOCAL_DIFFERENCE = 0.1  # ... with at most this share of edge energy in cells of a 6x6 grid
LOCAL_DROP = 0.4  # that agree this much less than the median cell (a moved subject)
MIN_CELL_BALANCE = 0.25  # and where both pictures have detail (not a fill, pad or blur)
MIN_EXACT_AGREEMENT = 0.95  # edges this alike everywhere (a burst's reach 0.83 at most),
MAX_EXACT_LOCAL_DIFFERENCE = 0.01  # with no region apart: the same pixels, whatever the cut
MIN_REFRAMED = 0.2  # and cut differently (1 - overlap / larger frame at least this)
MIN_RECOLOURED = 0.08  # or recoloured (median colour difference at least this)
MIN_VETO_INLIERS = 15  # a pair the hashes passed, in one geometry this well attested,
MAX_COPY_LOCAL_DIFFERENCE = 0.05  # is a moved subject above this local difference,
MAX_BURST_REFRAMED = 0.1  # when both frames are one frame (a padded or cut copy is no burst)
MIN_COSINE = 0.55  # embedding cosine below which a pair is not looked at
NEIGHBOURS = 6  # nearest neighbours per picture looked at
_MAX_FEATURES = 2000
_GRID = 6
_COLOUR_SIDE = 96
_FLAT_VARIANCE = 9.0  # grey-level variance over 5x5 below which a spot is flat
_CONTRAST = 0.02  # half SIFT's default: flat-shaded art (low-poly wallpapers) has few strong blobs


def available() -> bool:
    """Whether OpenCV is installed (without it only the hashes decide)."""
    return cv2 is not None


@dataclass(frozen=True)
class LocalFeatures:
    grey: np.ndarray  # (h, w) uint8 working copy
    colour: np.ndarray  # (h', w', 3) uint8 small RGB copy (longer side `_COLOUR_SIDE`)
    points: np.ndarray  # (n, 2) float32 keypoint positions
    descriptors: np.ndarray  # (n, 128) float32 RootSIFT


@dataclass(frozen=True)
class LocalMatch:
    same: bool
    inliers: int
    scale: float  # of the transform from the finer picture onto the coarser (at most 1)
    covered: float  # share of the smaller picture inside the other
    agreement: float  # gradient-orientation cosine over the overlap
    local_difference: float  # share of edge energy in grid cells well below the typical cell
    reframed: float  # 1 - the overlap's share of the larger frame
    recoloured: float  # median colour difference over the overlap, 0-1
    reason: str


_SIFT: list[object] = []


def _sift() -> object:
    if not _SIFT:
        _SIFT.append(cv2.SIFT_create(nfeatures=_MAX_FEATURES, contrastThreshold=_CONTRAST))
    return _SIFT[0]


def local_features(image: Image.Image, side: int = LOCAL_SIDE) -> LocalFeatures:
    """Keypoints of `image` on a grey copy whose longer side is at most `side`."""
    if cv2 is None:  # pragma: no cover
        raise RuntimeError("opencv-python-headless is not installed")
    rgb = image.convert("RGB")
    if max(rgb.size) > side:
        rgb = rgb.copy()
        rgb.thumbnail((side, side), Image.Resampling.BILINEAR)
    grey = np.ascontiguousarray(np.asarray(rgb.convert("L"), dtype=np.uint8))
    small = rgb.copy()
    small.thumbnail((_COLOUR_SIDE, _COLOUR_SIDE), Image.Resampling.BOX)
    colour = np.ascontiguousarray(np.asarray(small, dtype=np.uint8))
    keypoints, descriptors = _sift().detectAndCompute(grey, None)  # type: ignore[attr-defined]
    if descriptors is None or not keypoints:
        empty = np.zeros((0, 2), np.float32), np.zeros((0, 128), np.float32)
        return LocalFeatures(grey, colour, *empty)
    descriptors = descriptors / (np.abs(descriptors).sum(1, keepdims=True) + 1e-7)
    points = np.array([k.pt for k in keypoints], np.float32)
    return LocalFeatures(grey, colour, points, np.sqrt(descriptors).astype(np.float32))


def _pairs(a: LocalFeatures, b: LocalFeatures) -> tuple[np.ndarray, np.ndarray]:
    matcher = cv2.BFMatcher(cv2.NORM_L2)
    knn = matcher.knnMatch(a.descriptors, b.descriptors, k=2)
    good = [m[0] for m in knn if len(m) == 2 and m[0].distance < RATIO * m[1].distance]
    return (
        a.points[[m.queryIdx for m in good]].reshape(-1, 2),
        b.points[[m.trainIdx for m in good]].reshape(-1, 2),
    )


def _gradients(grey: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    smooth = cv2.GaussianBlur(grey.astype(np.float32), (0, 0), 1.0)
    return cv2.Sobel(smooth, cv2.CV_32F, 1, 0), cv2.Sobel(smooth, cv2.CV_32F, 0, 1)


def _flat(grey: np.ndarray) -> np.ndarray:
    """Where a picture is flat (a turned copy's filled corners, padding, clipped sky), with a
    margin: its boundary is an edge the other picture never has, which says nothing."""
    pixels = grey.astype(np.float32)
    mean = cv2.blur(pixels, (5, 5))
    spread = cv2.blur(pixels * pixels, (5, 5)) - mean * mean
    flat = (spread < _FLAT_VARIANCE).astype(np.uint8)
    return cv2.dilate(flat, np.ones((11, 11), np.uint8)) > 0


def _orientation_agreement(
    warped: np.ndarray, target: np.ndarray, mask: np.ndarray
) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """Cosine of the two gradient fields over `mask`, and per cell of a grid over the overlap
    its edge energy, cosine and balance: the smaller over the larger of the two pictures'
    shares of their own edge energy there (near 0 where one picture has no detail: a fill, a
    pad, a blur; near 1 where both do, as where a subject moved). Cells with no edge in either
    picture are left out."""
    ax, ay = _gradients(warped)
    bx, by = _gradients(target)
    dot = ax * bx + ay * by
    na, nb = ax * ax + ay * ay, bx * bx + by * by

    def cosine(sel: np.ndarray) -> float | None:
        ea, eb = float(na[sel].sum()), float(nb[sel].sum())
        return float(dot[sel].sum()) / math.sqrt(ea * eb) if ea > 1e-3 and eb > 1e-3 else None

    whole = cosine(mask)
    if whole is None:
        return 0.0, np.zeros(0), np.zeros(0), np.zeros(0)
    total_a, total_b = float(na[mask].sum()), float(nb[mask].sum())
    rows, cols = np.nonzero(mask)
    y0, y1, x0, x1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    ys = [y0 + (y1 - y0) * k // _GRID for k in range(_GRID + 1)]
    xs = [x0 + (x1 - x0) * k // _GRID for k in range(_GRID + 1)]
    energies, cosines, balances = [], [], []
    for cy0, cy1 in itertools.pairwise(ys):
        for cx0, cx1 in itertools.pairwise(xs):
            inside = mask[cy0:cy1, cx0:cx1]
            ea = float(na[cy0:cy1, cx0:cx1][inside].sum())
            eb = float(nb[cy0:cy1, cx0:cx1][inside].sum())
            if ea <= 1e-3 or eb <= 1e-3:
                continue  # no edge in one of them: the cell says nothing
            cosines.append(float(dot[cy0:cy1, cx0:cx1][inside].sum()) / math.sqrt(ea * eb))
            energies.append(ea + eb)
            share_a, share_b = ea / total_a, eb / total_b
            balances.append(min(share_a, share_b) / max(share_a, share_b))
    return whole, np.array(energies), np.array(cosines), np.array(balances)


def _reframed(model: np.ndarray, a_shape: tuple[int, ...], b_shape: tuple[int, ...]) -> float:
    """1 - the overlap's share of the larger frame (in b's coordinates): 0 for the same framing,
    about 0.7 for a portrait cut from a 16:9 landscape."""
    ha, wa = a_shape[:2]
    hb, wb = b_shape[:2]
    corners = np.array([[0, 0], [wa, 0], [wa, ha], [0, ha]], np.float32)
    mapped = (corners @ model[:, :2].T + model[:, 2]).astype(np.float32)
    area_a = abs(float(cv2.contourArea(mapped)))
    frame_b = np.array([[0, 0], [wb, 0], [wb, hb], [0, hb]], np.float32)
    inter, _ = cv2.intersectConvexConvex(mapped, frame_b)
    return 1.0 - float(inter) / max(area_a, float(wb * hb), 1e-9)


def _recoloured(a: LocalFeatures, b: LocalFeatures, model: np.ndarray) -> float:
    """Median colour difference (0-1, largest channel) over the aligned overlap of the small
    colour copies: high for a recoloured variant, low for two shots in one light."""
    ka = a.colour.shape[1] / a.grey.shape[1]
    kb = b.colour.shape[1] / b.grey.shape[1]
    scaled = model.copy()
    scaled[:, :2] *= kb / ka
    scaled[:, 2] *= kb
    h, w = b.colour.shape[:2]
    warped = cv2.warpAffine(a.colour, scaled, (w, h), flags=cv2.INTER_AREA)
    inside = cv2.warpAffine(np.ones(a.colour.shape[:2], np.uint8), scaled, (w, h)) > 0
    if not inside.any():
        return 0.0
    diff = np.abs(warped.astype(np.int16) - b.colour.astype(np.int16)).max(axis=2)
    return float(np.median(diff[inside])) / 255.0


def _no_match(count: int, reason: str, scale: float = 0.0, covered: float = 0.0) -> LocalMatch:
    return LocalMatch(False, count, scale, covered, 0.0, 0.0, 0.0, 0.0, reason)


def same_picture(a: LocalFeatures, b: LocalFeatures) -> LocalMatch:
    """Whether `b` shows the picture `a` shows, recoloured, cut differently or the same pixels
    in another framing, and why.

    Pictures in the same framing and colours whose edges agree only roughly are left to the
    thumbnails (the hash path looked at exactly those pixels): two burst frames agree on most
    keypoints and edges."""
    if len(a.points) < MIN_INLIERS or len(b.points) < MIN_INLIERS:
        return _no_match(0, "too few keypoints")
    src, dst = _pairs(a, b)
    if len(src) < MIN_INLIERS:
        return _no_match(len(src), f"{len(src)} keypoints match")
    side = max(*a.grey.shape, *b.grey.shape)
    model, inliers = cv2.estimateAffinePartial2D(
        src, dst, method=cv2.RANSAC, ransacReprojThreshold=0.01 * side, maxIters=2000,
        confidence=0.995, refineIters=10,
    )  # fmt: skip
    count = int(inliers.sum()) if inliers is not None else 0
    if model is None or count < MIN_INLIERS:
        return _no_match(count, f"{count} keypoints agree")
    scale = float(math.hypot(model[0, 0], model[1, 0]))
    if scale > 1.0:  # compare at the coarser picture's resolution: shrink the finer onto it
        a, b = b, a
        model, scale = cv2.invertAffineTransform(model), 1.0 / scale
    h, w = b.grey.shape
    mask = cv2.warpAffine(np.ones_like(a.grey), model, (w, h), flags=cv2.INTER_NEAREST) > 0
    mask = cv2.erode(mask.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    overlap = float(mask.sum())
    covered = 0.0
    if scale > 1e-3:
        covered = max(overlap / b.grey.size, overlap / (scale * scale * a.grey.size))
    if covered < MIN_COVERED:
        return _no_match(count, "the pictures barely overlap", scale, covered)
    warped = cv2.warpAffine(a.grey, model, (w, h), flags=cv2.INTER_LINEAR)
    compared = mask & ~(_flat(warped) | _flat(b.grey))
    if compared.sum() < 0.25 * mask.sum():
        compared = mask  # mostly flat pictures: compare what there is
    agreement, energies, cosines, balances = _orientation_agreement(warped, b.grey, compared)
    typical = float(np.median(cosines)) if len(cosines) else 0.0
    apart = (cosines < typical - LOCAL_DROP) & (balances >= MIN_CELL_BALANCE)
    local = energies[apart].sum() / max(float(energies.sum()), 1e-9)
    reframed = _reframed(model, a.grey.shape, b.grey.shape)
    recoloured = _recoloured(a, b, model)
    found = (
        f"{count} keypoints agree (scale {scale:.2f}), edges {agreement:.2f}, "
        f"{local:.0%} differ locally"
    )
    if agreement < MIN_AGREEMENT or local > MAX_LOCAL_DIFFERENCE:
        same, reason = False, f"{found}: edges differ"
    elif recoloured >= MIN_RECOLOURED:
        same, reason = True, f"{found}, recoloured"
    elif reframed >= MIN_REFRAMED:
        same, reason = True, f"{found}, cut differently"
    elif agreement >= MIN_EXACT_AGREEMENT and local <= MAX_EXACT_LOCAL_DIFFERENCE:
        same, reason = True, f"{found}, the same pixels"
    else:
        same, reason = False, f"{found}, same framing and colours: the thumbnails decide"
    return LocalMatch(
        same, count, scale, covered, agreement, float(local), reframed, recoloured, reason
    )


def neighbour_pairs(
    vectors: np.ndarray,
    k: int = NEIGHBOURS,
    min_cosine: float = MIN_COSINE,
    block: int = 2048,
) -> set[tuple[int, int]]:
    """Pairs (i, j), i < j: j among i's `k` nearest rows by cosine (or i among j's), at least
    `min_cosine`. Blocked matrix products: O(N² · d) work, O(block · N) memory."""
    n = len(vectors)
    if n < 2:
        return set()
    unit = np.asarray(vectors, np.float32)
    unit = unit / (np.linalg.norm(unit, axis=1, keepdims=True) + 1e-12)
    take = min(k, n - 1)
    pairs: set[tuple[int, int]] = set()
    for start in range(0, n, block):
        sims = unit[start : start + block] @ unit.T
        rows = np.arange(sims.shape[0])
        sims[rows, start + rows] = -np.inf
        top = np.argpartition(-sims, take - 1, axis=1)[:, :take]
        for r, cols in enumerate(top):
            for c in cols.tolist():
                if sims[r, c] >= min_cosine:
                    i = start + r
                    pairs.add((i, c) if i < c else (c, i))
    return pairs


def verify_pairs(
    pairs: Iterable[tuple[int, int]],
    load: Callable[[int], Image.Image | None],
    progress: Callable[[int, int], None] | None = None,
    cache_size: int = 1024,
    workers: int | None = None,
) -> dict[tuple[int, int], LocalMatch]:
    """`same_picture` for each pair (i, j); `load(i)` gives picture i (None when it cannot be
    read: its pairs are left out). Pairs go in order of i, in chunks whose pictures' features
    are made in parallel (`workers` threads: OpenCV and Pillow release the GIL) and kept for the
    `cache_size` pictures used last (~0.4 MB each), so most pictures are read once."""
    todo: Sequence[tuple[int, int]] = sorted(pairs)
    features: OrderedDict[int, LocalFeatures | None] = OrderedDict()
    chunk = max(1, cache_size // 4)

    def make(i: int) -> LocalFeatures | None:
        image = load(i)
        return local_features(image) if image is not None else None

    out: dict[tuple[int, int], LocalMatch] = {}
    threads = workers or min(4, os.cpu_count() or 1)
    with ThreadPoolExecutor(threads, thread_name_prefix="heron-keypoints") as pool:
        for start in range(0, len(todo), chunk):
            part = todo[start : start + chunk]
            wanted = sorted({i for pair in part for i in pair} - features.keys())
            for i, made in zip(wanted, pool.map(make, wanted), strict=True):
                features[i] = made
            for i in {i for pair in part for i in pair}:
                features.move_to_end(i)
            ready = [(i, j) for i, j in part if features[i] is not None and features[j] is not None]
            matches = pool.map(lambda p: same_picture(features[p[0]], features[p[1]]), ready)
            out.update(zip(ready, matches, strict=True))
            while len(features) > cache_size:
                features.popitem(last=False)
            if progress is not None:
                progress(start + len(part), len(todo))
    return out


def moved_subject(m: LocalMatch) -> bool:
    """A pair in one frame, one geometry and one palette whose edges agree except in a region:
    a subject that moved between two exposures (a burst, keyframes of one shot), not a copy.
    Edited copies (resized, recompressed, cropped, brightened, greyed, blurred, turned) stay at
    most 0.02 here; a recoloured variant's edges differ everywhere a little, so it is never
    vetoed."""
    return (
        m.inliers >= MIN_VETO_INLIERS
        and m.reframed <= MAX_BURST_REFRAMED
        and m.agreement >= MIN_AGREEMENT
        and m.recoloured < MIN_RECOLOURED
        and m.local_difference > MAX_COPY_LOCAL_DIFFERENCE
    )


def second_look(
    load: Callable[[Candidate], Image.Image | None],
    progress: Callable[[int, int], None] | None = None,
) -> SecondLook:
    """The second look grouping takes (`heron.understand.neardup.SecondLook`): pairs the hashes
    passed are dropped when a subject moved (`moved_subject`); each picture and its nearest
    neighbours by their vectors are added when `same_picture` finds them cut differently or
    recoloured. `load` gives a candidate's pixels (None when they cannot be read)."""

    def look(
        found: list[Candidate], same: set[tuple[int, int]]
    ) -> dict[tuple[int, int], tuple[bool, str]]:
        with_vectors = [i for i, c in enumerate(found) if c.vector is not None]
        pairs = set(same)
        if len(with_vectors) > 1:
            near = neighbour_pairs(np.stack([found[i].vector for i in with_vectors]))
            pairs |= {(with_vectors[a], with_vectors[b]) for a, b in near}
        verdicts = verify_pairs(pairs, lambda i: load(found[i]), progress)
        out: dict[tuple[int, int], tuple[bool, str]] = {}
        for pair, m in verdicts.items():
            if pair in same:
                if moved_subject(m):
                    out[pair] = (False, f"{m.inliers} keypoints agree but a subject moved")
            elif m.same:
                out[pair] = (True, m.reason)
        return out

    return look
