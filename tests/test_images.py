from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
import textwrap
import time
import tracemalloc
import zlib
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from heron.extract.images import (
    IMAGE_SUFFIXES,
    THUMBNAIL_SIDE,
    DecodedImage,
    SkipFile,
    UnreadableFile,
    decode_image,
    decode_image_bytes,
    make_thumbnail,
)
from tests.conftest import require_data

ODD_NAME = "名字 with spaces & émoji 🐦.jpg"

# Every file in ../shared/data/broken and its outcome: ("ok", format) or ("skip", reason prefix).
BROKEN_OUTCOMES: dict[str, tuple[str, str]] = {
    "chelsea.jxl": ("skip", "unsupported format: JPEG XL"),
    "decompression_bomb.png": ("skip", "image too large: 50000×50000 px exceeds the 80 MP limit"),
    "empty.jpg": ("skip", "empty file"),
    "encrypted.pdf": ("skip", "not an image (content is PDF)"),
    "multipage_rgb.tif": ("skip", "cannot decode multi-page TIFF: unknown pixel mode"),
    "not_an_image.jpg": ("skip", "not an image (content is text)"),
    "really_a_png.jpg": ("ok", "png"),
    "truncated.jpg": ("skip", "truncated JPEG"),
    "truncated.mp4": ("skip", "not an image (content is MP4/QuickTime video)"),
    "truncated.pdf": ("skip", "not an image (content is PDF)"),
    ODD_NAME: ("ok", "jpeg"),
    "loop_dir": ("skip", "cannot read file: Is a directory"),
}


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_declaring(width: int, height: int) -> bytes:
    """A PNG header that declares width×height RGB but carries almost no pixel data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 16)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def _halves(size: tuple[int, int], left: tuple[int, ...], right: tuple[int, ...], mode="RGB"):
    image = Image.new(mode, size, right)
    image.paste(left, (0, 0, size[0] // 2, size[1]))
    return image


def _save(image: Image.Image, path: Path, **params: object) -> Path:
    image.save(path, **params)
    return path


def _decode_reason(path: Path, **kwargs: int) -> str:
    with pytest.raises(UnreadableFile) as info:
        decode_image(path, **kwargs)
    return info.value.reason


# --- the broken set: every file has a clear outcome ---


def test_every_broken_file_is_listed() -> None:
    broken = require_data("broken")
    assert {p.name for p in broken.iterdir()} == set(BROKEN_OUTCOMES)


@pytest.mark.parametrize("name", sorted(BROKEN_OUTCOMES))
def test_broken_file_outcome(name: str) -> None:
    path = require_data("broken", name)
    outcome, expected = BROKEN_OUTCOMES[name]
    if outcome == "ok":
        decoded = decode_image(path)
        assert decoded.format == expected
        assert (decoded.width, decoded.height) == (375, 500)
        assert decoded.image.mode == "RGB" and decoded.image.size == (375, 500)
    else:
        reason = _decode_reason(path)
        assert reason.startswith(expected), reason
        assert "\n" not in reason and len(reason) < 200


def test_unreadable_file_is_a_skip_with_reason() -> None:
    error = UnreadableFile("empty file")
    assert isinstance(error, SkipFile) and error.reason == "empty file" == str(error)


def test_png_named_jpg_composites_alpha_on_white() -> None:
    path = require_data("broken", "really_a_png.jpg")
    with Image.open(path) as original:
        alpha = np.asarray(original.getchannel("A"))
    pixels = np.asarray(decode_image(path).image)
    if (alpha == 0).any():
        assert (pixels[alpha == 0] == 255).all()


def test_multipage_tiff_reason_names_the_layout() -> None:
    reason = _decode_reason(require_data("broken", "multipage_rgb.tif"))
    assert "64-bit float" in reason and "2 pages" in reason


def test_decompression_bomb_refused_quickly_without_allocating() -> None:
    bomb = require_data("broken", "decompression_bomb.png")
    tracemalloc.start()
    started = time.perf_counter()
    try:
        reason = _decode_reason(bomb)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert reason.startswith("image too large: 50000×50000 px")
    assert time.perf_counter() - started < 1.0
    assert peak < 5_000_000, peak


def test_decompression_bomb_keeps_process_memory_small() -> None:
    """Pixel buffers are malloc'd in C, out of tracemalloc's sight: measure max RSS instead."""
    bomb = require_data("broken", "decompression_bomb.png")
    script = textwrap.dedent(
        f"""
        import resource, sys
        from heron.extract.images import decode_image, UnreadableFile
        decode_image({str(require_data("photos"))!r} + "/1000268201_693b08cb0e.jpg")
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        try:
            decode_image({str(bomb)!r})
        except UnreadableFile as exc:
            print(exc.reason, file=sys.stderr)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(after - before)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert "image too large" in result.stderr
    assert int(result.stdout) < 20_000, f"max RSS grew by {result.stdout.strip()} KiB"


def test_own_pixel_limit_applies_below_pillows(tmp_path: Path) -> None:
    # 9000×9000 = 81 MP: above Heron's 80 MP default, below Pillow's own bomb threshold.
    path = tmp_path / "big.png"
    path.write_bytes(_png_declaring(9000, 9000))
    assert _decode_reason(path) == "image too large: 9000×9000 px exceeds the 80 MP limit"
    small = _save(Image.new("RGB", (100, 100)), tmp_path / "small.png")
    assert _decode_reason(small, max_pixels=5000).startswith("image too large: 100×100 px")


def test_missing_file_and_directory(tmp_path: Path) -> None:
    assert _decode_reason(tmp_path / "gone.jpg").startswith("cannot read file: No such file")
    assert _decode_reason(tmp_path).startswith("cannot read file:")


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read files without read permission")
def test_permission_denied(tmp_path: Path) -> None:
    path = _save(Image.new("RGB", (8, 8)), tmp_path / "secret.jpg")
    path.chmod(0)
    assert _decode_reason(path) == "cannot read file: Permission denied"


def test_truncated_png(tmp_path: Path) -> None:
    data = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (200, 200, 3), np.uint8)).save(
        data, "PNG"
    )
    path = tmp_path / "cut.png"
    path.write_bytes(data.getvalue()[: len(data.getvalue()) // 2])
    assert _decode_reason(path).startswith(("truncated PNG", "cannot decode PNG"))


# --- orientation, colour, frames ---


@pytest.mark.parametrize("orientation", [1, 3, 6, 8])
def test_exif_orientation_is_applied(tmp_path: Path, orientation: int) -> None:
    red, blue = (255, 0, 0), (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = _save(_halves((80, 40), red, blue), tmp_path / "o.jpg", exif=exif, quality=95)

    decoded = decode_image(path)

    swapped = orientation in (6, 8)
    assert (decoded.width, decoded.height) == ((40, 80) if swapped else (80, 40))
    assert decoded.image.size == (decoded.width, decoded.height)
    pixels = np.asarray(decoded.image).astype(int)
    # Where the (red) left half of the stored pixels ends up once displayed upright.
    corner = {1: (5, 5), 3: (5, 75), 6: (5, 20), 8: (75, 20)}[orientation]
    assert pixels[corner][0] > 200 and pixels[corner][2] < 60


def test_exif_datetime(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0132] = "2001:01:01 00:00:00"
    exif.get_ifd(0x8769)[0x9003] = "2019:07:14 18:30:05"
    exif.get_ifd(0x8769)[0x9011] = "+02:00"
    path = _save(Image.new("RGB", (16, 16)), tmp_path / "d.jpg", exif=exif)
    expected = datetime(2019, 7, 14, 18, 30, 5, tzinfo=timezone(timedelta(hours=2)))
    assert decode_image(path).exif_datetime == expected

    plain = Image.Exif()
    plain[0x0132] = "2001:02:03 04:05:06"
    path = _save(Image.new("RGB", (16, 16)), tmp_path / "p.jpg", exif=plain)
    assert decode_image(path).exif_datetime == datetime(2001, 2, 3, 4, 5, 6)

    zero = Image.Exif()
    zero[0x0132] = "0000:00:00 00:00:00"
    path = _save(Image.new("RGB", (16, 16)), tmp_path / "z.jpg", exif=zero)
    assert decode_image(path).exif_datetime is None
    assert decode_image(_save(Image.new("RGB", (16, 16)), tmp_path / "n.jpg")).exif_datetime is None


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P"])
def test_transparency_composited_on_white(tmp_path: Path, mode: str) -> None:
    image = Image.new("RGBA", (20, 10), (0, 0, 0, 0))
    image.paste((0, 0, 0, 255), (10, 0, 20, 10))
    params: dict[str, object] = {}
    if mode == "LA":
        image = image.convert("LA")
    elif mode == "P":  # palette PNG with a tRNS chunk: entry 0 transparent, entry 1 opaque black
        image = Image.new("P", (20, 10), 0)
        image.putpalette([255, 0, 255, 0, 0, 0])
        image.paste(1, (10, 0, 20, 10))
        params["transparency"] = bytes([0, 255])
    path = _save(image, tmp_path / f"{mode}.png", **params)
    pixels = np.asarray(decode_image(path).image)
    assert (pixels[:, :10] == 255).all() and (pixels[:, 10:] == 0).all()


def test_palette_with_transparency_and_gif_first_frame(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (16, 16), colour) for colour in [(255, 0, 0), (0, 0, 255)]]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    decoded = decode_image(path)
    assert decoded.format == "gif" and decoded.image.mode == "RGB"
    assert tuple(np.asarray(decoded.image)[8, 8]) == (255, 0, 0)

    transparent = Image.new("P", (16, 16), 0)
    transparent.putpalette([0, 0, 0, 255, 0, 0])
    transparent.paste(1, (8, 0, 16, 16))
    path = _save(transparent, tmp_path / "t.gif", transparency=0)
    pixels = np.asarray(decode_image(path).image)
    assert (pixels[:, :8] == 255).all() and tuple(pixels[0, 12]) == (255, 0, 0)


def test_multiframe_tiff_first_frame(tmp_path: Path) -> None:
    pages = [Image.new("RGB", (12, 12), colour) for colour in [(0, 255, 0), (255, 0, 0)]]
    path = tmp_path / "pages.tif"
    pages[0].save(path, save_all=True, append_images=pages[1:])
    decoded = decode_image(path)
    assert decoded.format == "tiff"
    assert tuple(np.asarray(decoded.image)[0, 0]) == (0, 255, 0)


def test_other_modes_become_rgb(tmp_path: Path) -> None:
    cmyk = _save(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), tmp_path / "cmyk.jpg")
    red = np.asarray(decode_image(cmyk).image)[8, 8]
    assert red[0] > 200 and red[1] < 60

    ramp = np.linspace(0, 65535, 64 * 64, dtype=np.uint16).reshape(64, 64)
    wide = _save(Image.fromarray(ramp), tmp_path / "wide.png")
    grey = np.asarray(decode_image(wide).image)
    assert grey.shape == (64, 64, 3) and grey.min() < 10 and grey.max() > 245
    assert 100 < grey.mean() < 155  # scaled, not clipped to white

    mono = _save(Image.new("1", (16, 16), 1), tmp_path / "mono.bmp")
    assert decode_image(mono).image.mode == "RGB"


def test_heic_round_trip(tmp_path: Path) -> None:
    pytest.importorskip("pillow_heif")
    path = tmp_path / "phone.heic"
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x0132] = "2021:05:06 07:08:09"
    try:
        # As bytes, pillow-heif turns the EXIF orientation into the HEIF `irot` transform that
        # phones write (HEIF readers ignore EXIF orientation; libheif applies irot).
        _halves((64, 32), (255, 0, 0), (0, 0, 255)).save(path, exif=exif.tobytes(), quality=90)
    except Exception as exc:  # some pillow-heif builds have no HEVC encoder
        pytest.skip(f"pillow-heif cannot write HEIC here: {exc}")
    decoded = decode_image(path)
    assert decoded.format == "heif"
    assert (decoded.width, decoded.height) == decoded.image.size == (32, 64)
    assert decoded.exif_datetime == datetime(2021, 5, 6, 7, 8, 9)
    assert np.asarray(decoded.image)[5, 16][0] > 200  # red half on top, upright once


def test_avif_decodes(tmp_path: Path) -> None:
    path = tmp_path / "x.avif"
    try:
        Image.new("RGB", (40, 20), (0, 128, 255)).save(path)
    except (KeyError, OSError) as exc:
        pytest.skip(f"no AVIF encoder here: {exc}")
    decoded = decode_image(path)
    assert decoded.format == "avif" and decoded.image.size == (40, 20)


def test_format_comes_from_content(tmp_path: Path) -> None:
    path = _save(Image.new("RGB", (10, 10)), tmp_path / "really_webp.PNG", format="WEBP")
    assert decode_image(path).format == "webp"


def test_decode_bytes_matches_path() -> None:
    path = require_data("broken", ODD_NAME)
    from_bytes = decode_image_bytes(path.read_bytes())
    from_path = decode_image(path)
    assert from_bytes.format == from_path.format == "jpeg"
    assert np.array_equal(np.asarray(from_bytes.image), np.asarray(from_path.image))
    with pytest.raises(UnreadableFile, match="empty file"):
        decode_image_bytes(b"")


# --- fast decode: JPEG draft never goes below what the model and thumbnail need ---


@pytest.mark.parametrize("target", [224, 384, 600])
@pytest.mark.parametrize("orientation", [1, 6])
def test_draft_keeps_enough_pixels(tmp_path: Path, target: int, orientation: int) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    noise = np.random.default_rng(1).integers(0, 255, (1500, 2000, 3), np.uint8)
    path = _save(Image.fromarray(noise), tmp_path / "big.jpg", exif=exif)

    decoded = decode_image(path, target_size=target)

    swapped = orientation == 6
    assert (decoded.width, decoded.height) == ((1500, 2000) if swapped else (2000, 1500))
    short = min(decoded.image.size)
    assert short >= max(target, THUMBNAIL_SIDE)
    assert short < 1500  # the draft did reduce the decode
    assert (decoded.image.width < decoded.image.height) == swapped


def test_small_jpeg_is_not_reduced() -> None:
    photos = require_data("photos")
    path = sorted(photos.glob("*.jpg"))[0]
    with Image.open(path) as original:
        size = original.size
    decoded = decode_image(path)
    assert decoded.image.size == size == (decoded.width, decoded.height)


# --- thumbnails ---


@pytest.mark.parametrize("size", [(1000, 500), (300, 900), (256, 256), (100, 40)])
def test_thumbnail_is_small_webp(size: tuple[int, int]) -> None:
    data = make_thumbnail(Image.new("RGB", size, (10, 200, 30)))
    assert data[:4] == b"RIFF" and data[8:12] == b"WEBP"
    with Image.open(io.BytesIO(data)) as thumb:
        assert thumb.format == "WEBP"
        assert max(thumb.size) == min(THUMBNAIL_SIDE, max(size))
        assert abs(thumb.width / thumb.height - size[0] / size[1]) < 0.02


def test_thumbnail_custom_side_and_mode() -> None:
    data = make_thumbnail(Image.new("L", (400, 200), 128), max_side=64)
    with Image.open(io.BytesIO(data)) as thumb:
        assert thumb.size == (64, 32)


# --- contract details ---


def test_suffixes() -> None:
    assert {".jpg", ".jpeg", ".png", ".heic", ".avif", ".tiff"} <= IMAGE_SUFFIXES
    assert all(s == s.lower() and s.startswith(".") for s in IMAGE_SUFFIXES)


def test_decoding_is_thread_safe() -> None:
    broken = require_data("broken")
    photos = sorted(require_data("photos").glob("*.jpg"))[:40]
    paths = [*sorted(p for p in broken.iterdir() if p.is_file()), *photos] * 3

    def outcome(path: Path) -> tuple[str, object]:
        try:
            decoded: DecodedImage = decode_image(path)
        except UnreadableFile as exc:
            return "skip", exc.reason
        return "ok", (decoded.format, decoded.image.size, np.asarray(decoded.image).sum())

    sequential = [outcome(p) for p in paths]
    with ThreadPoolExecutor(max_workers=8) as pool:
        assert list(pool.map(outcome, paths)) == sequential
