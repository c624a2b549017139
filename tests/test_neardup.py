"""Near-duplicate pictures (heron.understand.neardup) on real photos from the shared data."""

from __future__ import annotations

import io
import json
from datetime import datetime

import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

from heron.understand import keypoints as kp
from heron.understand import neardup as nd
from tests.conftest import require_data

T = Image.Transpose


def _jpeg(im: Image.Image, quality: int = 90) -> Image.Image:
    buf = io.BytesIO()
    im.convert("RGB").save(buf, "JPEG", quality=quality)
    buf.seek(0)
    out = Image.open(buf)
    out.load()
    return out


def _crop(im: Image.Image, frac: float) -> Image.Image:
    w, h = im.size
    return im.crop((int(w * frac), int(h * frac), w - int(w * frac), h - int(h * frac)))


EDITS = {
    "resize25": lambda im: im.resize((im.width // 4, im.height // 4), Image.LANCZOS),
    "jpeg_q30": lambda im: _jpeg(im, 30),
    "crop10": lambda im: _crop(im, 0.10),
    "pad_red": lambda im: ImageOps.expand(im, border=im.width // 10, fill=(200, 30, 30)),
    "pad_white": lambda im: ImageOps.expand(im, border=im.width // 10, fill="white"),
    "brighter": lambda im: ImageEnhance.Brightness(im).enhance(1.3),
    "darker": lambda im: ImageEnhance.Brightness(im).enhance(0.7),
    "grey": lambda im: im.convert("L"),
    "blur": lambda im: im.filter(ImageFilter.GaussianBlur(2)),
    "rot90": lambda im: im.transpose(T.ROTATE_90),
    "rot180": lambda im: im.transpose(T.ROTATE_180),
    "rot270": lambda im: im.transpose(T.ROTATE_270),
    "tilt3": lambda im: im.rotate(3, resample=Image.BICUBIC),
    "flip": lambda im: im.transpose(T.FLIP_LEFT_RIGHT),
}


@pytest.fixture(scope="module")
def photos() -> list[Image.Image]:
    folder = require_data("photos")
    paths = sorted(folder.rglob("*.jpg"))[:6]
    assert len(paths) == 6, folder
    out = []
    for p in paths:
        with Image.open(p) as im:
            out.append(im.convert("RGB"))
    return out


@pytest.fixture(scope="module")
def flickr() -> list[Image.Image]:
    folder = require_data("flickr8k", "images")
    in_photos = {p.name for p in require_data("photos").rglob("*.jpg")}  # same pictures, larger
    out = []
    for p in [p for p in sorted(folder.glob("*.jpg")) if p.name not in in_photos][:40]:
        with Image.open(p) as im:
            out.append(im.convert("RGB"))
    return out


def _cand(cid: str, im: Image.Image, **kw: object) -> nd.Candidate:
    return nd.Candidate(cid, nd.fingerprint(im), im.width, im.height, **kw)  # type: ignore[arg-type]


def test_fingerprint_is_versioned_ascii_and_parses(photos: list[Image.Image]) -> None:
    fp = nd.fingerprint(photos[0])
    assert fp.startswith("p2:") and fp.isascii() and len(fp) < 760
    parsed = nd.parse_fingerprint(fp)
    assert parsed.thumb.shape == (24, 24) and len(parsed.hashes) == 10
    assert nd.fingerprint(photos[0]) == fp  # deterministic
    assert photos[0].mode == "RGB" and photos[0].size[0] > 300  # the caller's image untouched


@pytest.mark.parametrize(
    "garbage",
    ["", "p2:", "p0:AAAA", "hello", "p2:!!!!", "p2:" + "A" * 10, "p1:" + "A" * 386, None, 42],
)
def test_garbage_fingerprint_raises_value_error(garbage: object) -> None:
    with pytest.raises(ValueError):
        nd.parse_fingerprint(garbage)  # type: ignore[arg-type]


def test_version_1_fingerprints_are_refused() -> None:
    with pytest.raises(ValueError):  # the integration recomputes them from thumbnails
        nd.parse_fingerprint("p1:" + "A" * 386)


def test_truncated_fingerprint_raises(photos: list[Image.Image]) -> None:
    fp = nd.fingerprint(photos[0])
    with pytest.raises(ValueError):
        nd.parse_fingerprint(fp[:-8])


@pytest.mark.parametrize("kind", sorted(EDITS))
def test_each_edit_is_the_same_picture(kind: str, photos: list[Image.Image]) -> None:
    for i, im in enumerate(photos[:3]):
        copy = _jpeg(EDITS[kind](im))
        m = nd.compare(_cand("a", im), _cand("b", copy))
        assert m.same and m.how == "near", (kind, i, m)


def test_edits_of_odd_modes_and_sizes(photos: list[Image.Image]) -> None:
    im = photos[1]
    rgba = im.convert("RGBA")
    big = im.resize((im.width * 4, im.height * 4), Image.BICUBIC)
    for variant in (rgba, im.convert("P"), big, im.convert("L")):
        assert nd.compare(_cand("a", im), _cand("b", variant)).same, variant.mode


def test_different_photos_are_not_matched(flickr: list[Image.Image]) -> None:
    cands = [_cand(f"f{i}", im) for i, im in enumerate(flickr)]
    assert nd.matching_pairs(cands) == []
    assert nd.group_duplicates(cands) == []
    assert not nd.compare(cands[0], cands[1]).same


def test_a_flickr_copy_matches_its_original_photo() -> None:
    # flickr8k/images holds 224x224 copies of the photos/ originals (~500x375)
    name = "1000268201_693b08cb0e.jpg"
    big = Image.open(require_data("photos", name))
    small = Image.open(require_data("flickr8k", "images", name))
    assert nd.compare(_cand("big", big), _cand("small", small)).same


BURSTS = [  # consecutive Flickr frames of one scene: similar shots, not one picture
    ("475313618_bdb2f72be5.jpg", "475317104_1cdc1653b4.jpg"),  # a woman by an orange wall
    ("186890601_8a6b0f1769.jpg", "186890605_ddff5b694e.jpg"),  # a rope swing over a lake
    ("482882307_7dcb9eee11.jpg", "482882719_165722082d.jpg"),  # a raft in white water
]


@pytest.mark.parametrize("names", BURSTS, ids=lambda n: n[0][:9])
def test_burst_shots_are_not_the_same_picture(names: tuple[str, str]) -> None:
    folder = require_data("flickr8k", "images")
    a, b = (Image.open(folder / n) for n in names)
    m = nd.compare(_cand("a", a), _cand("b", b))
    assert not m.same, m


def test_the_leaping_dog_posted_twice_is_one_picture() -> None:
    """Flickr8k holds this photo twice (1525153022, 2637959357): the second cut tighter and
    brightened. Once taken for a burst; local features settle it: 164 keypoints in one
    geometry, edges agreeing 0.98 with no region apart (a moved subject would leave one)."""
    folder = require_data("flickr8k", "images")
    a, b = (
        Image.open(folder / n) for n in ("1525153022_06c48dbe52.jpg", "2637959357_dd64a03efa.jpg")
    )
    assert nd.compare(_cand("a", a), _cand("b", b)).same
    if kp.available():
        m = kp.same_picture(kp.local_features(a), kp.local_features(b))
        assert m.inliers >= 50 and m.agreement > 0.9 and not kp.moved_subject(m), m


def test_a_duplicate_inside_flickr8k_is_found() -> None:
    # the one pair of Flickr8k's 7,000 photos that is the same picture (a kayaker), two ids
    folder = require_data("flickr8k", "images")
    a, b = (
        Image.open(folder / n) for n in ("2851198725_37b6027625.jpg", "3050606344_af711c726c.jpg")
    )
    assert nd.compare(_cand("a", a), _cand("b", b)).same


def test_similar_scenes_at_small_hash_distance_are_not_matched() -> None:
    # Flickr8k pairs of different photos whose hashes are within STRICT_DISTANCE (7-8 bits)
    folder = require_data("flickr8k", "images")
    for names in (
        ("136639119_6040b00946.jpg", "286660725_ffdbdf3481.jpg"),  # climber / fire-breather
        ("2068465241_3bcabacfd7.jpg", "3122497129_d08f5729b8.jpg"),  # gymnast / dogs in snow
        ("3203707977_cc9448fecb.jpg", "3726170067_094cc1b7e5.jpg"),  # a couple / a man by a mural
    ):
        a, b = (Image.open(folder / n) for n in names)
        m = nd.compare(_cand("a", a), _cand("b", b))
        assert m.distance <= nd.STRICT_DISTANCE and not m.same, (names, m)


def test_exact_copies_group_as_exact_without_pixels(photos: list[Image.Image]) -> None:
    fp = nd.fingerprint(photos[0])
    other = nd.fingerprint(photos[3])
    # the second copy's fingerprint even differs: equal source decides
    a = nd.Candidate("a", fp, 500, 375, bytes=100, source="h1", path="/x/a.jpg")
    b = nd.Candidate("b", other, 500, 375, bytes=100, source="h1", path="/x/b.jpg")
    assert nd.compare(a, b).how == "exact"
    groups = nd.group_duplicates([b, a])
    assert len(groups) == 1
    assert groups[0].kind == "exact" and groups[0].keep == "a" and groups[0].members == ["a", "b"]


def test_keep_is_largest_then_bytes_then_earliest(photos: list[Image.Image]) -> None:
    im = photos[2]
    small = im.resize((im.width // 2, im.height // 2))
    cands = [
        _cand("small", small, bytes=10_000, source="s"),
        _cand("big", im, bytes=5_000, source="b"),
        _cand("big_copy_later", im, bytes=5_000, source="b", taken_at=datetime(2024, 1, 2)),
        _cand("grey", im.convert("L"), bytes=9_000, source="g"),
    ]
    groups = nd.group_duplicates(cands)
    assert len(groups) == 1
    g = groups[0]
    assert g.kind == "near"
    assert g.members[0] == g.keep
    # same pixel count as big: more bytes wins
    assert g.keep == "grey"
    assert set(g.members) == {"small", "big", "big_copy_later", "grey"}
    assert set(g.evidence) == set(g.members) - {g.keep}
    dated = [
        _cand("late", im, source="x", taken_at=datetime(2024, 5, 1)),
        _cand("early", im, source="y", taken_at=datetime(2020, 5, 1)),
        _cand("tiny", small, source="z"),
    ]
    assert nd.group_duplicates(dated)[0].keep == "early"


def test_grouping_is_deterministic_and_separates_pictures(
    photos: list[Image.Image], flickr: list[Image.Image]
) -> None:
    cands = []
    for i, im in enumerate(photos):
        cands.append(_cand(f"p{i}", im))
        cands.append(_cand(f"p{i}-rot", _jpeg(im.transpose(T.ROTATE_90))))
        cands.append(_cand(f"p{i}-crop", _jpeg(_crop(im, 0.05))))
    cands += [_cand(f"f{i}", im) for i, im in enumerate(flickr[:20])]
    first = nd.group_duplicates(cands)
    again = nd.group_duplicates(list(reversed(cands)))
    assert first == again
    assert sorted(sorted(g.members) for g in first) == [
        sorted([f"p{i}", f"p{i}-rot", f"p{i}-crop"]) for i in range(len(photos))
    ]
    for g in first:
        assert g.keep == g.members[0] and g.kind == "near"
    seen: list[str] = [m for g in first for m in g.members]
    assert len(seen) == len(set(seen))


def test_no_chaining_through_a_middle_picture(
    photos: list[Image.Image], monkeypatch: pytest.MonkeyPatch
) -> None:
    # a ~ b and b ~ c, but a and c differ: c must not join a's group (a is the best copy)
    cands = [
        _cand("a", photos[0]),
        _cand("b", photos[1].resize((100, 100))),
        _cand("c", photos[2].resize((50, 50))),
    ]
    index = {nd.parse_fingerprint(c.fingerprint).hashes: c.id for c in cands}
    matches = {("a", "b"), ("b", "c")}

    def decide(fps, pairs):  # type: ignore[no-untyped-def]
        ids = [tuple(sorted(index[fps[k].hashes] for k in p)) for p in pairs]
        return [(i in matches, 1, None, "test") for i in ids]

    monkeypatch.setattr(nd, "_screen", lambda f, t, p: {(0, 1), (0, 2), (1, 2)})
    monkeypatch.setattr(nd, "_decide_many", decide)
    groups = nd.group_duplicates(cands)
    assert [g.members for g in groups] == [["a", "b"]]


def test_wallpaper_screenshot_matches_its_wallpaper() -> None:
    folder = require_data("neardup")
    groups = json.loads((folder / "groups.json").read_text(encoding="utf-8"))
    by_group = {}
    cands = []
    for g in groups[:4]:
        for entry in g["images"]:
            if "dark" in entry["variant"] or entry["size"][0] < entry["size"][1]:
                continue  # portrait re-compositions and dark recolourings: see the bench
            with Image.open(folder / "images" / entry["file"]) as im:
                cands.append(_cand(entry["file"], im))
            by_group[entry["file"]] = g["group"]
    found = nd.group_duplicates(cands)
    assert sorted(sorted(g.members) for g in found) == sorted(
        sorted(f for f, grp in by_group.items() if grp == name) for name in set(by_group.values())
    )


def test_vector_cosine_is_reported(photos: list[Image.Image]) -> None:
    v = np.ones(8, dtype=np.float32)
    a = _cand("a", photos[0], vector=v)
    b = _cand("b", photos[0].transpose(T.FLIP_LEFT_RIGHT), vector=-v)
    m = nd.compare(a, b)
    assert m.same and m.cosine == pytest.approx(-1.0)
