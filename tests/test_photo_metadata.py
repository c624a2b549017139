"""EXIF and IPTC: when, with what and where a photo was taken, and its keywords; filterable."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

from PIL import Image, TiffImagePlugin

from heron.extract.images import decode_image_bytes
from heron.search.query import parse_query
from heron.store.filters import Compare, Contains


def _jpeg_with_exif(when: str, make: str, model: str, gps: tuple | None = None) -> bytes:
    image = Image.new("RGB", (320, 240), (200, 120, 40))
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = make, model
    exif.get_ifd(0x8769)[0x9003] = when
    exif.get_ifd(0x8769)[0xA434] = "EF 50mm f/1.8"
    if gps is not None:
        lat, lat_ref, lon, lon_ref = gps
        ratio = TiffImagePlugin.IFDRational
        exif.get_ifd(0x8825).update(
            {
                1: lat_ref,
                2: tuple(ratio(v) for v in lat),
                3: lon_ref,
                4: tuple(ratio(v) for v in lon),
            }
        )
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", exif=exif)
    return buffer.getvalue()


def test_camera_lens_time_and_position_are_read() -> None:
    data = _jpeg_with_exif(
        "2023:07:14 18:30:05", "Canon", "Canon EOS 5D", ((48, 51, 29.5), "N", (2, 17, 40), "E")
    )
    decoded = decode_image_bytes(data)
    meta = decoded.metadata
    assert meta.camera == "Canon EOS 5D" and meta.lens == "EF 50mm f/1.8"
    assert (meta.latitude, meta.longitude) == (48.858194, 2.294444)
    assert decoded.exif_datetime == datetime(2023, 7, 14, 18, 30, 5)
    south = decode_image_bytes(
        _jpeg_with_exif(
            "2020:01:01 00:00:00", "NIKON", "D750", ((33, 52, 0), "S", (151, 12, 0), "W")
        )
    ).metadata
    assert south.camera == "NIKON D750" and south.latitude < 0 and south.longitude < 0


def test_broken_or_missing_metadata_costs_nothing() -> None:
    plain = io.BytesIO()
    Image.new("RGB", (64, 64)).save(plain, "PNG")
    assert decode_image_bytes(plain.getvalue()).metadata.fields() == {}
    zeros = _jpeg_with_exif("0000:00:00 00:00:00", "", "", ((0, 0, 0), "N", (0, 0, 0), "E"))
    decoded = decode_image_bytes(zeros)
    assert decoded.exif_datetime is None and decoded.metadata.latitude is None


def test_query_fields_for_photo_metadata() -> None:
    assert parse_query("taken>=2023-07").filter == Compare(
        "taken_at", ">=", datetime(2023, 7, 1, tzinfo=UTC)
    )
    assert parse_query("camera:EOS").filter == Contains("camera", "eos")
    assert parse_query("lat>48.5").filter == Compare("latitude", ">", 48.5)


def test_indexed_photos_filter_by_when_what_and_where(heron_lite: Path, tmp_path: Path) -> None:
    from heron import Heron

    folder = tmp_path / "trip"
    folder.mkdir()
    (folder / "paris.jpg").write_bytes(
        _jpeg_with_exif(
            "2023:07:14 18:30:05", "Canon", "Canon EOS 5D", ((48, 51, 29.5), "N", (2, 17, 40), "E")
        )
    )
    (folder / "sydney.jpg").write_bytes(
        _jpeg_with_exif(
            "2019:12:31 23:59:00", "NIKON", "D750", ((33, 52, 0), "S", (151, 12, 0), "E")
        )
    )
    with Heron(tmp_path / "data") as heron:
        heron.index([folder])
        names = lambda q: [Path(h.path).name for h in heron.search(query=q, k=5)]  # noqa: E731
        assert names("photo taken>=2023") == ["paris.jpg"]
        assert names("photo camera:nikon") == ["sydney.jpg"]
        assert names("photo lat<0") == ["sydney.jpg"]
        assert names("photo taken<2019") == []
        unit = heron.get(heron.search(query="photo camera:eos", k=1)[0].id)
        assert unit.extra["camera"] == "Canon EOS 5D" and unit.extra["lens"] == "EF 50mm f/1.8"
