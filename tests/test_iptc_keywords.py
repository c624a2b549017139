"""IPTC-IIM and XMP keywords and captions: a photo is found by the words its metadata holds.

The fixtures are real photos (`../shared/data/photos`) re-saved with metadata written the way
Lightroom, digiKam and exiftool write it: IPTC datasets 2:25 (Keywords) and 2:120 (Caption)
in a Photoshop APP13 "8BIM" 0x0404 resource, and an XMP packet (APP1) with a `dc:subject` bag
and a `dc:description` alternative. Each fixture is read back with Pillow first, so what the
tests index really carries what they claim. The keywords end up in the unit's `text` (the
keyword index) and in its `extra` as `keywords` (a list) and `caption` (a string).
"""

from __future__ import annotations

import io
import shutil
import struct
from pathlib import Path

import pytest
from PIL import Image, IptcImagePlugin, PngImagePlugin

from heron.extract.images import decode_image, decode_image_bytes
from heron.extract.metadata import XMP_MAX_BYTES, read_metadata
from tests.conftest import require_data

# --- writing the metadata by hand ---

_UTF8 = b"\x1b%G"  # IPTC 1:90 CodedCharacterSet: UTF-8


def _iptc_record(keywords: list[str], caption: str = "", encoding: str = "utf-8") -> bytes:
    """IPTC-IIM datasets: 1:90 (UTF-8 when so encoded), 2:25 per keyword, then 2:120."""
    datasets = [(1, 90, _UTF8)] if encoding == "utf-8" else []
    datasets += [(2, 25, word.encode(encoding)) for word in keywords]
    if caption:
        datasets.append((2, 120, caption.encode(encoding)))
    return b"".join(
        b"\x1c" + bytes([record, number]) + struct.pack(">H", len(value)) + value
        for record, number, value in datasets
    )


def _app13(iptc: bytes, declared: int | None = None) -> bytes:
    """A Photoshop APP13 segment holding `iptc` as its IPTC-NAA resource (8BIM 0x0404)."""
    size = len(iptc) if declared is None else declared
    resource = b"8BIM" + struct.pack(">H", 0x0404) + b"\0\0" + struct.pack(">I", size) + iptc
    body = b"Photoshop 3.0\0" + resource + b"\0" * (len(resource) % 2)
    return b"\xff\xed" + struct.pack(">H", len(body) + 2) + body


def _with_segment(jpeg: bytes, segment: bytes) -> bytes:
    """`jpeg` with `segment` inserted right after its SOI marker."""
    assert jpeg[:2] == b"\xff\xd8"
    return jpeg[:2] + segment + jpeg[2:]


def _xmp(subjects: list[str], description: dict[str, str] | None = None) -> bytes:
    """An XMP packet as Lightroom writes one: a dc:subject bag, a dc:description alternative."""
    items = "".join(f"<rdf:li>{word}</rdf:li>" for word in subjects)
    alts = "".join(
        f'<rdf:li xml:lang="{lang}">{text}</rdf:li>' for lang, text in (description or {}).items()
    )
    described = f"<dc:description><rdf:Alt>{alts}</rdf:Alt></dc:description>" if alts else ""
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">'
        '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/">'
        f"<dc:subject><rdf:Bag>{items}</rdf:Bag></dc:subject>{described}"
        "</rdf:Description></rdf:RDF></x:xmpmeta>" + " " * 200 + '<?xpacket end="w"?>'
    ).encode()


def _jpeg(photo: Path, xmp: bytes | None = None) -> bytes:
    """The photo's pixels re-saved as a JPEG, with `xmp` in an APP1 segment if given."""
    buffer = io.BytesIO()
    with Image.open(photo) as image:
        options = {"xmp": xmp} if xmp is not None else {}
        image.convert("RGB").save(buffer, "JPEG", quality=90, **options)
    return buffer.getvalue()


def _iptc_keywords_read_back(path: Path) -> list[bytes]:
    with Image.open(path) as image:
        info = IptcImagePlugin.getiptcinfo(image) or {}
    raw = info.get((2, 25), [])
    return raw if isinstance(raw, list) else [raw]


def _xmp_read_back(path: Path) -> bytes:
    with Image.open(path) as image:
        return bytes(image.info.get("xmp", b""))


# --- the fixture folder ---

IPTC_PHOTO, XMP_PHOTO, BOTH_PHOTO, PLAIN_PHOTO = "iptc.jpg", "xmp.jpg", "both.jpg", "plain.jpg"
BROKEN_APP13, BROKEN_XMP, ENTITY_XMP = "broken_app13.jpg", "broken_xmp.jpg", "entity_xmp.jpg"

_BILLION_LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
    b'<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
    b'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
    b'xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:subject><rdf:Bag>'
    b"<rdf:li>gannet &lol3;</rdf:li></rdf:Bag></dc:subject></rdf:Description></rdf:RDF>"
    b"</x:xmpmeta>"
)


@pytest.fixture(scope="module")
def tagged_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Seven real photos: keyworded by IPTC, by XMP, by both; plain; three with broken metadata."""
    photos = sorted(require_data("photos").glob("*.jpg"))[:7]
    assert len(photos) == 7, "the tests need seven distinct photos"
    folder = tmp_path_factory.mktemp("tagged") / "photos"
    folder.mkdir()
    iptc = _iptc_record(["lighthouse", "coast"], "Evening at the old harbour")
    (folder / IPTC_PHOTO).write_bytes(_with_segment(_jpeg(photos[0]), _app13(iptc)))
    xmp = _xmp(["windmill", "polder"], {"x-default": "Sails turning at dusk", "nl": "Molen"})
    (folder / XMP_PHOTO).write_bytes(_jpeg(photos[1], xmp))
    both = _with_segment(
        _jpeg(photos[2], _xmp(["Ferry", "灯塔", "海港"])), _app13(_iptc_record(["ferry"]))
    )
    (folder / BOTH_PHOTO).write_bytes(both)
    shutil.copyfile(photos[3], folder / PLAIN_PHOTO)
    # An IPTC resource that declares 4,000 bytes and ends inside a dataset header.
    cut = _iptc_record(["kittiwake"]) + b"\x1c\x02\x19\x00"
    (folder / BROKEN_APP13).write_bytes(_with_segment(_jpeg(photos[4]), _app13(cut, 4000)))
    whole = _xmp(["puffin"])
    truncated = whole[: whole.index(b"</rdf:li>") + 4]  # the packet ends inside the bag
    (folder / BROKEN_XMP).write_bytes(_jpeg(photos[5], truncated))
    (folder / ENTITY_XMP).write_bytes(_jpeg(photos[6], _BILLION_LAUGHS))
    return folder


def test_fixtures_carry_what_they_claim(tagged_folder: Path) -> None:
    assert _iptc_keywords_read_back(tagged_folder / IPTC_PHOTO) == [b"lighthouse", b"coast"]
    assert _iptc_keywords_read_back(tagged_folder / BOTH_PHOTO) == [b"ferry"]
    assert "灯塔".encode() in _xmp_read_back(tagged_folder / BOTH_PHOTO)
    assert b"<rdf:li>windmill</rdf:li>" in _xmp_read_back(tagged_folder / XMP_PHOTO)
    assert _iptc_keywords_read_back(tagged_folder / PLAIN_PHOTO) == []
    assert _xmp_read_back(tagged_folder / PLAIN_PHOTO) == b""
    assert b"puffin" in _xmp_read_back(tagged_folder / BROKEN_XMP)
    with pytest.raises(struct.error):  # Pillow's own IPTC reader gives up on the cut record
        _iptc_keywords_read_back(tagged_folder / BROKEN_APP13)


# --- reading ---


def test_iptc_keywords_and_caption_are_read(tagged_folder: Path) -> None:
    meta = decode_image(tagged_folder / IPTC_PHOTO).metadata
    assert meta.keywords == ["lighthouse", "coast"]
    assert meta.caption == "Evening at the old harbour"
    assert meta.searchable_text() == "lighthouse, coast\nEvening at the old harbour"


def test_xmp_subjects_and_default_description_are_read(tagged_folder: Path) -> None:
    meta = decode_image(tagged_folder / XMP_PHOTO).metadata
    assert meta.keywords == ["windmill", "polder"]
    assert meta.caption == "Sails turning at dusk"  # x-default, not the Dutch entry


def test_iptc_and_xmp_keywords_merge_once(tagged_folder: Path) -> None:
    assert decode_image(tagged_folder / BOTH_PHOTO).metadata.keywords == ["ferry", "灯塔", "海港"]


@pytest.mark.parametrize("name", [PLAIN_PHOTO, BROKEN_APP13, BROKEN_XMP, ENTITY_XMP])
def test_absent_or_broken_metadata_gives_no_keywords(tagged_folder: Path, name: str) -> None:
    decoded = decode_image(tagged_folder / name)
    assert decoded.metadata.keywords == [] and decoded.metadata.caption == ""
    assert decoded.width > 0 and decoded.image.size[0] > 0  # the picture itself is intact


def test_latin1_iptc_and_png_xmp_are_read() -> None:
    """Older IPTC writers use Latin-1 without 1:90; PNG carries XMP in an iTXt chunk."""
    plain = io.BytesIO()
    Image.new("RGB", (64, 48), (10, 90, 160)).save(plain, "JPEG")
    latin = _with_segment(plain.getvalue(), _app13(_iptc_record(["café"], encoding="latin-1")))
    assert decode_image_bytes(latin).metadata.keywords == ["café"]
    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp", _xmp(["kestrel"]).decode())
    png = io.BytesIO()
    Image.new("RGB", (64, 48)).save(png, "PNG", pnginfo=info)
    assert decode_image_bytes(png.getvalue()).metadata.keywords == ["kestrel"]


def test_oversized_or_non_utf8_xmp_is_ignored() -> None:
    image = Image.new("RGB", (8, 8))
    image.info["xmp"] = _xmp(["osprey"]) + b" " * XMP_MAX_BYTES
    assert read_metadata(image, None).keywords == []
    image.info["xmp"] = _xmp(["osprey"]).replace(b"osprey", b"\xff\xfe")
    assert read_metadata(image, None).keywords == []
    image.info["xmp"] = _xmp(["osprey"])
    assert read_metadata(image, None).keywords == ["osprey"]


# --- end to end: indexed, then found by keyword ---


@pytest.fixture(scope="module")
def indexed(heron_lite: Path, tagged_folder: Path, tmp_path_factory: pytest.TempPathFactory):
    from heron import Heron

    with Heron(data_dir=tmp_path_factory.mktemp("tagged-data") / "data") as heron:
        report = heron.index([tagged_folder])
        yield heron, report


def _names(hits: list) -> list[str]:
    return [Path(hit.path).name for hit in hits]


def test_every_photo_is_indexed_even_with_broken_metadata(indexed) -> None:
    _, report = indexed
    assert report.skipped == 0 and not report.problems, report.to_dict()
    assert report.sources == 7


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("lighthouse", IPTC_PHOTO),  # IPTC 2:25
        ("harbour", IPTC_PHOTO),  # IPTC 2:120
        ("windmill", XMP_PHOTO),  # XMP dc:subject
        ("dusk", XMP_PHOTO),  # XMP dc:description
        ("灯塔", BOTH_PHOTO),  # XMP dc:subject, Chinese
        ("ferry", BOTH_PHOTO),  # in both, kept once
    ],
)
def test_keyword_search_finds_only_the_keyworded_photo(indexed, word: str, expected: str) -> None:
    heron, _ = indexed
    assert _names(heron.search(keyword=word, k=5)) == [expected]


@pytest.mark.parametrize(("word", "expected"), [("lighthouse", IPTC_PHOTO), ("灯塔", BOTH_PHOTO)])
def test_fused_search_puts_the_keyworded_photo_first(indexed, word: str, expected: str) -> None:
    heron, _ = indexed
    hits = heron.search(query=word, k=5, min_relevance=0)
    assert _names(hits)[0] == expected
    assert hits[0].explain is not None and hits[0].explain["keyword"]["rank"] == 1


@pytest.mark.parametrize("word", ["kittiwake", "puffin", "gannet", "lol"])
def test_broken_metadata_adds_no_keywords(indexed, word: str) -> None:
    heron, _ = indexed
    assert heron.search(keyword=word, k=5) == []


def test_unit_exposes_keywords_and_caption(indexed) -> None:
    heron, _ = indexed
    (hit,) = heron.search(keyword="灯塔", k=5)
    unit = heron.get(hit.id)
    assert unit is not None
    assert unit.extra["keywords"] == ["ferry", "灯塔", "海港"]
    assert "caption" not in unit.extra
    assert "灯塔" in unit.text
    unit = heron.get(heron.search(keyword="lighthouse", k=1)[0].id)
    assert unit is not None and unit.extra["caption"] == "Evening at the old harbour"
    plain = heron.search(query="photo", k=10, min_relevance=0, fusion=False)
    extras = {Path(h.path).name: heron.get(h.id).extra for h in plain}  # type: ignore[union-attr]
    assert "keywords" not in extras[PLAIN_PHOTO]
