"""Local-feature checks (heron.understand.keypoints): a different cut or a recolour of one
picture is the same picture; another photo, or the same scene with its subject moved, is not."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageFilter, ImageOps

from heron.understand import keypoints as kp
from tests.conftest import require_data

pytestmark = pytest.mark.skipif(not kp.available(), reason="opencv-python-headless missing")


@pytest.fixture(scope="module")
def photos() -> list[Image.Image]:
    folder = require_data("photos")
    out = []
    for path in sorted(folder.glob("*.jpg"))[:6]:
        with Image.open(path) as image:
            out.append(image.convert("RGB"))
    return out


def _portrait_cut(image: Image.Image) -> Image.Image:
    """A 9:16 strip (full height, off-centre), as phones crop a landscape wallpaper."""
    w, h = image.size
    width = int(h * 9 / 16)
    left = (w - width) // 3
    return image.crop((left, 0, left + width, h)).resize((width * 2, h * 2), Image.LANCZOS)


def _recolour(image: Image.Image) -> Image.Image:
    """A 'dark' variant: channels swapped and the picture darkened (same edges, new palette)."""
    r, g, b = image.split()
    return Image.merge("RGB", (b, r, g)).point(lambda v: int(v * 0.55))


def _moved_subject(image: Image.Image) -> Image.Image:
    """The same frame with a block of it moved, as a burst frame's subject moves."""
    w, h = image.size
    out = image.copy()
    box = (w // 4, h // 4, w // 4 + w // 3, h // 4 + h // 3)
    patch = image.crop(box)
    out.paste(image.crop((0, 0, box[2] - box[0], box[3] - box[1])), box)
    out.paste(patch, (box[0] + w // 6, box[1] + h // 8))
    return out


def _features(image: Image.Image) -> kp.LocalFeatures:
    return kp.local_features(image)


def test_a_portrait_cut_is_the_same_picture(photos: list[Image.Image]) -> None:
    wins = 0
    for photo in photos:
        m = kp.same_picture(_features(photo), _features(_portrait_cut(photo)))
        wins += m.same
        if m.same:
            assert "cut differently" in m.reason and m.reframed >= kp.MIN_REFRAMED
    assert wins >= len(photos) - 1


def test_a_recoloured_variant_is_the_same_picture(photos: list[Image.Image]) -> None:
    results = [kp.same_picture(_features(p), _features(_recolour(p))) for p in photos]
    assert sum(m.same for m in results) >= len(photos) - 1
    assert all("recoloured" in m.reason for m in results if m.same)


def test_the_check_is_symmetric_enough(photos: list[Image.Image]) -> None:
    a, b = _features(photos[0]), _features(_portrait_cut(photos[0]))
    assert kp.same_picture(a, b).same and kp.same_picture(b, a).same
    assert kp.same_picture(a, b).scale <= 1.0


def test_different_photos_are_not_the_same(photos: list[Image.Image]) -> None:
    features = [_features(p) for p in photos]
    for i in range(len(features)):
        for j in range(i + 1, len(features)):
            m = kp.same_picture(features[i], features[j])
            assert not m.same, m


def test_a_moved_subject_in_the_same_frame_is_left_to_the_thumbnails(
    photos: list[Image.Image],
) -> None:
    for photo in photos[:3]:
        m = kp.same_picture(_features(photo), _features(_moved_subject(photo)))
        assert not m.same, m


def test_the_same_pixels_are_the_same_picture_in_any_framing(photos: list[Image.Image]) -> None:
    photo = photos[0]
    w, h = photo.size
    for copy in (photo.copy(), photo.crop((0, int(h * 0.12), w - int(w * 0.02), h))):
        m = kp.same_picture(_features(photo), _features(copy))
        assert m.same and m.agreement >= kp.MIN_EXACT_AGREEMENT, m


def test_a_same_framing_pair_whose_edges_half_agree_is_left_to_the_thumbnails(
    photos: list[Image.Image],
) -> None:
    """A heavy blur keeps the geometry but not the edges: not exact, not recut, not
    recoloured, so the local check says nothing either way."""
    blurred = photos[0].filter(ImageFilter.GaussianBlur(2))
    m = kp.same_picture(_features(photos[0]), _features(blurred))
    assert m.inliers >= 50 and kp.MIN_AGREEMENT <= m.agreement < kp.MIN_EXACT_AGREEMENT, m
    assert not m.same and "thumbnails decide" in m.reason
    assert not kp.moved_subject(m)  # and it vetoes nothing: the blur is everywhere


def test_a_flat_picture_has_too_few_keypoints() -> None:
    flat = Image.new("RGB", (300, 200), (40, 90, 160))
    m = kp.same_picture(_features(flat), _features(flat))
    assert not m.same and "keypoints" in m.reason


def test_neighbour_pairs_take_the_nearest_above_the_floor() -> None:
    rng = np.random.default_rng(3)
    base = rng.normal(size=(6, 16)).astype(np.float32)
    twins = base + 0.05 * rng.normal(size=base.shape).astype(np.float32)
    vectors = np.concatenate([base, twins])
    pairs = kp.neighbour_pairs(vectors, k=1, min_cosine=0.9)
    assert pairs == {(i, i + 6) for i in range(6)}
    assert kp.neighbour_pairs(vectors[:1]) == set()
    assert kp.neighbour_pairs(vectors, k=3, min_cosine=1.01) == set()


def test_verify_pairs_skips_unreadable_pictures(photos: list[Image.Image]) -> None:
    pictures = [photos[0], None, _portrait_cut(photos[0])]
    seen: list[int] = []

    def load(i: int) -> Image.Image | None:
        seen.append(i)
        return pictures[i]

    out = kp.verify_pairs({(0, 1), (0, 2), (1, 2)}, load, cache_size=1)
    assert set(out) == {(0, 2)} and out[(0, 2)].same


def test_a_moved_subject_vetoes_what_the_hashes_passed(photos: list[Image.Image]) -> None:
    vetoed = 0
    for photo in photos:
        m = kp.same_picture(_features(photo), _features(_moved_subject(photo)))
        vetoed += kp.moved_subject(m)
    assert vetoed >= len(photos) - 1


def test_edited_copies_are_never_vetoed(photos: list[Image.Image]) -> None:
    edits = (
        lambda im: im.resize((im.width // 2, im.height // 2), Image.LANCZOS),
        lambda im: ImageOps.crop(im, border=im.width // 20),
        lambda im: ImageOps.grayscale(im).convert("RGB"),
        lambda im: im.rotate(90, expand=True),
    )
    for photo in photos:
        for edit in edits:
            m = kp.same_picture(_features(photo), _features(edit(photo)))
            assert not kp.moved_subject(m), m


def test_the_second_look_adds_cuts_and_drops_bursts(photos: list[Image.Image]) -> None:
    from heron.understand.neardup import Candidate, fingerprint

    photo = photos[0]
    pictures = [photo, _portrait_cut(photo), _moved_subject(photo), photos[1]]
    vector = np.ones(8, np.float32)  # all neighbours: the pixels decide
    cands = [
        Candidate(str(i), fingerprint(p), p.width, p.height, vector=vector + 0.01 * i)
        for i, p in enumerate(pictures)
    ]
    look = kp.second_look(lambda c: pictures[int(c.id)])
    verdicts = look(cands, {(0, 2)})  # as if the hashes had passed the burst
    assert verdicts[(0, 1)][0] is True and "cut differently" in verdicts[(0, 1)][1]
    assert verdicts[(0, 2)][0] is False and "moved" in verdicts[(0, 2)][1]
    assert (0, 3) not in verdicts or verdicts[(0, 3)][0] is False
