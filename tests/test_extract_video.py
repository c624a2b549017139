"""Video keyframes: real clips give a sensible handful, synthetic cuts give one per shot.

Synthetic videos are written with PyAV (libx264) into tmp_path: textured blocks (never solid
colour, which counts as blank), fresh noise, black and white segments with hard cuts between
them, so the expected keyframes are known exactly.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from heron.extract.base import ExtractOptions, IncompleteSource, SkipFile, Source, UnitDraft
from heron.extract.video import KeyframeSettings, VideoExtractor, extractor, recognises
from tests.conftest import require_data

SETTINGS = KeyframeSettings()
STEP = 1.0 / SETTINGS.sample_fps  # a keyframe may land up to one sample after its due time
SIZE = (160, 120)  # width, height of the synthetic videos

Frame = Callable[[int], np.ndarray]  # frame index within the segment -> HxWx3 uint8


# --- writing synthetic videos ---


def _blocks(seed: int, shift_per_frame: int = 0) -> Frame:
    """A grid of random colour blocks, optionally sliding sideways (a pan)."""
    rng = np.random.default_rng(seed)
    grid = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    picture = np.repeat(np.repeat(grid, SIZE[1] // 6, axis=0), SIZE[0] // 8, axis=1)
    return lambda i: np.roll(picture, i * shift_per_frame, axis=1)


def _noise(seed: int) -> Frame:
    """A coloured gradient under fresh noise every frame (film grain, a snowy shot)."""
    rng = np.random.default_rng(seed)
    base = np.zeros((SIZE[1], SIZE[0], 3), np.float32)
    base[..., 0] = np.linspace(40, 220, SIZE[0])[None, :]
    base[..., 2] = np.linspace(200, 60, SIZE[1])[:, None]
    base[..., 1] = 90

    def frame(_: int) -> np.ndarray:
        grain = rng.normal(0, 25, base.shape)
        return np.clip(base + grain, 0, 255).astype(np.uint8)

    return frame


def _shaking(seed: int, amplitude: int) -> Frame:
    """A smooth, detailed picture (like a photo) seen by a shaking hand: ±`amplitude` px."""
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray(rng.integers(0, 256, (24, 30, 3), dtype=np.uint8))
    margin = amplitude
    scene = np.asarray(
        coarse.resize((SIZE[0] + 2 * margin, SIZE[1] + 2 * margin), Image.Resampling.BICUBIC)
    )
    offsets = rng.integers(-amplitude, amplitude + 1, (10_000, 2))

    def frame(i: int) -> np.ndarray:
        y, x = margin + offsets[i][0], margin + offsets[i][1]
        return np.ascontiguousarray(scene[y : y + SIZE[1], x : x + SIZE[0]])

    return frame


def _solid(value: int) -> Frame:
    picture = np.full((SIZE[1], SIZE[0], 3), value, np.uint8)
    return lambda _: picture


def _crossfade(a: Frame, b: Frame, frames: int) -> Frame:
    return lambda i: (a(0) * (1 - i / frames) + b(0) * (i / frames)).astype(np.uint8)


def _write(
    path: Path,
    segments: list[tuple[float, Frame]],
    fps: int = 10,
    rotation: int | None = None,
    options: dict[str, str] | None = None,
) -> Path:
    """Encode the segments back to back with hard cuts; the container follows the suffix."""
    with av.open(str(path), "w", options=options or {}) as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = SIZE[0], SIZE[1], "yuv420p"
        stream.options = {"preset": "ultrafast"}
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for seconds, frame_at in segments:
            for i in range(round(seconds * fps)):
                image = av.VideoFrame.from_ndarray(frame_at(i), format="rgb24")
                for packet in stream.encode(image):
                    container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _extract(
    path: Path, options: ExtractOptions | None = None, settings: KeyframeSettings | None = None
) -> list[UnitDraft]:
    video = VideoExtractor(settings) if settings else extractor
    return list(video.extract(Source.from_path(path), options or ExtractOptions()))


def _extract_until_failure(path: Path) -> tuple[list[UnitDraft], BaseException | None]:
    drafts: list[UnitDraft] = []
    try:
        for draft in extractor.extract(Source.from_path(path), ExtractOptions()):
            drafts.append(draft)
    except (SkipFile, IncompleteSource) as exc:
        return drafts, exc
    return drafts, None


def _times(drafts: list[UnitDraft]) -> list[float]:
    return [d.pointer["time"] for d in drafts]


def _check_invariants(drafts: list[UnitDraft], options: ExtractOptions) -> None:
    """What every keyframe list must satisfy, whatever the video."""
    times = _times(drafts)
    assert times == sorted(times) and len(set(times)) == len(times), times
    for earlier, later in itertools.pairwise(times):
        assert later - earlier >= SETTINGS.min_spacing - 1e-9, times
    for draft in drafts:
        duration = draft.fields["duration"]
        pointer = draft.pointer
        assert draft.kind == "frame" and draft.read_text
        assert draft.locator == f"t={pointer['time']:.3f}"
        assert 0.0 <= pointer["shot_start"] <= pointer["time"] <= pointer["shot_end"] <= duration
        assert isinstance(draft.image, Image.Image) and draft.image.mode == "RGB"
        assert max(draft.image.size) <= options.render_side
        assert draft.width >= draft.image.width and draft.height >= draft.image.height
        assert draft.fields["codec"] and draft.fields["fps"] > 0
    spans = [(d.pointer["shot_start"], d.pointer["shot_end"]) for d in drafts]
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert end <= start + 1e-9, spans  # spans never overlap


# --- real clips ---

# One continuous shot each, except cockatoo (14 s hand-held close-ups, a cut at 8 s).
# bigbuckbunny.mp4 is a 5.3 s excerpt (the bunny climbing out of his burrow), not the trailer.
# One shot each, but things move: a short clip is looked at about every second (views_per_clip)
# unless the picture stays the same, so each moment of it can be found.
REAL = {
    "bigbuckbunny.mp4": (5, 8),  # 5.3 s: the rabbit in his burrow, standing up, stretching
    "cockatoo.mp4": (5, 10),  # 7: approach, beak, dark close-ups, back off, the crest
    "carphone_pristine.mp4": (2, 5),  # 4 s: facing the camera, head tilting, talking
    "carphone_distorted.mp4": (2, 5),  # the same clip, heavily compressed
    "test.webm": (1, 4),  # 3 s: a hand waving before a bookcase
}


@pytest.mark.parametrize("filename", sorted(REAL))
def test_real_video_gives_a_few_keyframes_with_consistent_timecodes(filename: str) -> None:
    path = require_data("video", filename)
    source = Source.from_path(path)
    assert recognises(source)
    options = ExtractOptions()
    drafts = list(extractor.extract(source, options))
    low, high = REAL[filename]
    assert low <= len(drafts) <= high, _times(drafts)
    _check_invariants(drafts, options)
    first = drafts[0]
    assert first.pointer["shot_start"] == 0.0
    assert drafts[-1].pointer["shot_end"] == pytest.approx(first.fields["duration"], abs=0.1)
    assert first.pointer["time"] >= SETTINGS.settle - 0.05  # taken inside the shot, not at 0
    # test.webm is Matroska by content (EBML DocType "matroska", H.264 inside): not WebM
    assert first.format == ("mkv" if filename.endswith(".webm") else "mp4")


def test_real_video_fields_and_picture_size() -> None:
    drafts = _extract(require_data("video", "bigbuckbunny.mp4"))
    draft = drafts[0]
    assert (draft.width, draft.height) == (1280, 720)
    assert draft.image.size == (256, 144)  # render_side 256, aspect kept
    assert draft.fields == {"duration": 5.28, "fps": 25.0, "codec": "h264"}
    hh, mm, rest = draft.pointer["timecode"].split(":")
    assert (hh, mm) == ("00", "00") and float(rest) == pytest.approx(draft.pointer["time"])


def test_small_video_is_not_upscaled_and_pixel_aspect_is_applied() -> None:
    options = ExtractOptions(image_side=1024)
    drafts = _extract(require_data("video", "carphone_pristine.mp4"), options)
    # 176×144 stored with a 128:117 pixel aspect: shown 193×144, never enlarged beyond that
    assert all(d.image.size == (d.width, d.height) == (193, 144) for d in drafts)


def test_compression_does_not_move_the_keyframes() -> None:
    pristine = _times(_extract(require_data("video", "carphone_pristine.mp4")))
    distorted = _times(_extract(require_data("video", "carphone_distorted.mp4")))
    assert len(pristine) == len(distorted)
    assert all(abs(a - b) <= 0.5 for a, b in zip(pristine, distorted, strict=True))


def test_webm_without_declared_duration_gets_a_measured_one() -> None:
    drafts = _extract(require_data("video", "test.webm"))
    assert drafts[0].fields["duration"] == pytest.approx(3.137, abs=0.05)


# --- synthetic cuts ---


def test_one_keyframe_per_shot_and_none_from_black(tmp_path: Path) -> None:
    segments = [(2.0, _blocks(1)), (2.0, _blocks(2, shift_per_frame=1)), (2.0, _solid(0))]
    segments.append((2.0, _noise(3)))
    drafts = _extract(_write(tmp_path / "cuts.mp4", segments))
    _check_invariants(drafts, ExtractOptions())
    times = _times(drafts)
    assert len(drafts) == 3, times
    for (low, high), draft in zip([(0, 2), (2, 4), (6, 8)], drafts, strict=True):
        assert low + SETTINGS.settle - 0.05 <= draft.pointer["time"] < high
        assert low <= draft.pointer["shot_start"] < draft.pointer["shot_end"] <= high + STEP
    assert drafts[1].pointer["shot_end"] == pytest.approx(4.0, abs=STEP)  # black starts
    assert drafts[2].pointer["shot_start"] == pytest.approx(6.0, abs=STEP)  # black ends
    assert all(not 4.0 <= t < 6.0 for t in times)
    assert np.asarray(drafts[1].image).std() > 20  # a picture, not a black frame


@pytest.mark.parametrize("container", ["mkv", "avi", "mov"])
def test_cuts_in_other_containers_are_found_too(tmp_path: Path, container: str) -> None:
    segments = [(1.5, _blocks(seed)) for seed in range(4)]
    path = _write(tmp_path / f"cuts.{container}", segments)
    assert recognises(Source.from_path(path))
    drafts = _extract(path)
    assert len(drafts) == 4 and drafts[0].format == container
    for index, draft in enumerate(drafts):
        assert 1.5 * index <= draft.pointer["time"] < 1.5 * (index + 1)


def test_rapid_cuts_respect_min_spacing(tmp_path: Path) -> None:
    segments = [(0.4, _blocks(seed)) for seed in range(15)]  # a new shot every 0.4 s for 6 s
    drafts = _extract(_write(tmp_path / "montage.mp4", segments))
    _check_invariants(drafts, ExtractOptions())  # includes the 1 s spacing
    assert 3 <= len(drafts) <= 6, _times(drafts)


def test_flash_and_return_to_the_same_picture_is_one_keyframe(tmp_path: Path) -> None:
    picture = _blocks(7)
    segments = [(3.0, picture), (0.5, _solid(255)), (3.0, picture)]
    drafts = _extract(_write(tmp_path / "flash.mp4", segments))
    assert len(drafts) == 1, _times(drafts)
    assert drafts[0].pointer["shot_start"] == 0.0
    assert drafts[0].pointer["shot_end"] == pytest.approx(6.5, abs=STEP)


@pytest.mark.parametrize("amplitude", [2, 6])
def test_camera_shake_is_not_a_new_view(tmp_path: Path, amplitude: int) -> None:
    path = _write(tmp_path / "shake.mp4", [(8.0, _shaking(11, amplitude))])
    drafts = _extract(path, settings=KeyframeSettings(views_per_clip=0))  # the detector alone
    assert len(drafts) == 1, _times(drafts)


def test_a_short_clip_in_which_something_moves_is_looked_at_about_every_second(
    tmp_path: Path,
) -> None:
    path = _write(tmp_path / "shake.mp4", [(6.0, _shaking(11, 6))])
    times = _times(_extract(path))
    assert 4 <= len(times) <= 6, times
    assert all(b - a >= SETTINGS.min_spacing - 1e-9 for a, b in itertools.pairwise(times))


def test_static_shot_gets_no_repeats(tmp_path: Path) -> None:
    """The rule: after max_spacing a keyframe is added only if the picture has changed."""
    drafts = _extract(_write(tmp_path / "static.mp4", [(24.0, _blocks(4))], fps=5))
    assert len(drafts) == 1
    assert drafts[0].pointer["shot_end"] == pytest.approx(24.0, abs=STEP)


@pytest.mark.parametrize("drift", [SETTINGS.drift_score, 1e9], ids=["default", "no-drift"])
def test_slowly_changing_shot_gets_a_keyframe_every_max_spacing(
    tmp_path: Path, drift: float
) -> None:
    frames = 100
    fade = _crossfade(_blocks(5), _blocks(6), frames)
    path = _write(tmp_path / "fade.mp4", [(25.0, fade)], fps=4)
    settings = KeyframeSettings(drift_score=drift, views_per_clip=0)
    times = _times(_extract(path, settings=settings))
    gaps = [b - a for a, b in zip([0.0, *times], [*times, 25.0], strict=False)]
    assert max(gaps) <= SETTINGS.max_spacing + STEP + 1e-9, times
    if drift > 1e6:  # only max_spacing adds keyframes: about one every 10 s
        assert len(times) == 3, times


def test_rotated_video_is_shown_upright(tmp_path: Path) -> None:
    def half_white(_: int) -> np.ndarray:
        picture = _blocks(8)(0) // 4
        picture[:, : SIZE[0] // 2] = 255  # left half white
        return picture

    path = _write(tmp_path / "rotated.mp4", [(2.0, half_white)], rotation=90)
    (draft,) = _extract(path)
    assert (draft.width, draft.height) == (SIZE[1], SIZE[0])
    image = np.asarray(draft.image)
    assert image.shape[:2] == (SIZE[0], SIZE[1])  # portrait: 160 high, 120 wide
    # turned 90° counter-clockwise: the left half is now the bottom half
    assert image[-20:].mean() > 240 and image[:20].mean() < 100


# --- outcomes ---


def test_truncated_mp4_is_skipped_with_its_reason() -> None:
    source = Source.from_path(require_data("broken", "truncated.mp4"))
    assert recognises(source)
    with pytest.raises(SkipFile, match=r"^damaged video: .*'moov'.*cut short"):
        list(extractor.extract(source, ExtractOptions()))


@pytest.mark.parametrize("suffix", [".mkv", ".mp4"])
def test_stream_cut_part_way_keeps_what_decoded(tmp_path: Path, suffix: str) -> None:
    segments = [(1.5, _blocks(seed)) for seed in range(4)]
    whole = _write(tmp_path / f"whole{suffix}", segments, options={"movflags": "faststart"})
    data = whole.read_bytes()
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(data[: len(data) // 2])
    drafts, outcome = _extract_until_failure(cut)
    assert isinstance(outcome, IncompleteSource), outcome
    assert outcome.reason.startswith("the video stream ")
    assert "00:00:0" in outcome.reason
    assert 1 <= len(drafts) <= 3
    _check_invariants(drafts, ExtractOptions())


def test_undecodable_packets_are_skipped_and_reported(tmp_path: Path) -> None:
    segments = [(1.5, _noise(0)), (1.5, _blocks(1)), (1.5, _noise(2)), (1.5, _blocks(3))]
    data = bytearray(_write(tmp_path / "whole.mp4", segments).read_bytes())
    third = len(data) // 3
    data[third : third + len(data) // 10] = b"\xff" * (len(data) // 10)
    damaged = tmp_path / "damaged.mp4"
    damaged.write_bytes(bytes(data))
    drafts, outcome = _extract_until_failure(damaged)
    assert isinstance(outcome, IncompleteSource), outcome
    assert outcome.reason.startswith(
        ("the video stream is damaged at 00:00:0", "the video stream breaks")
    )
    assert drafts
    _check_invariants(drafts, ExtractOptions())


def test_audio_only_file_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "voice.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=16000, layout="mono")
        for index in range(20):
            samples = np.zeros((1, 1024), np.float32)
            frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 16000, index * 1024
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    with pytest.raises(SkipFile, match=r"^no video stream$"):
        _extract(path)


@pytest.mark.parametrize("suffix", [".mkv", ".mp4"])
def test_zero_length_video_is_skipped(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"empty{suffix}"
    container = av.open(str(path), "w")
    stream = container.add_stream("libx264", rate=10)
    stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
    container.start_encoding()
    container.close()
    with pytest.raises(SkipFile) as caught:
        _extract(path)
    assert caught.value.reason  # "no video stream", "damaged video: the file ends ..."


def test_all_black_video_is_skipped(tmp_path: Path) -> None:
    path = _write(tmp_path / "black.mp4", [(3.0, _solid(0))])
    with pytest.raises(SkipFile, match=r"^blank video"):
        _extract(path)


def test_empty_and_garbage_files_are_skipped(tmp_path: Path) -> None:
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(SkipFile, match="empty file"):
        _extract(empty)
    garbage = tmp_path / "garbage.mkv"
    garbage.write_bytes(b"\x1a\x45\xdf\xa3" + bytes(range(256)) * 8)
    with pytest.raises(SkipFile, match=r"^damaged video: "):
        _extract(garbage)


# --- sniffing ---


def _source(head: bytes) -> Source:
    return Source(path=Path("x.bin"), size=len(head), head=head, data=head)


def _ftyp(major: bytes, *compatible: bytes) -> bytes:
    body = major + b"\x00\x00\x00\x00" + b"".join(compatible)
    return (8 + len(body)).to_bytes(4, "big") + b"ftyp" + body + b"\x00\x00\x00\x08free"


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (_ftyp(b"isom", b"isom", b"iso2", b"avc1", b"mp41"), True),
        (_ftyp(b"qt  ", b"qt  "), True),
        (_ftyp(b"3gp5", b"3gp5", b"isom"), True),
        (_ftyp(b"M4V ", b"M4V ", b"M4A ", b"mp42", b"isom"), True),
        (_ftyp(b"heic", b"mif1", b"heic"), False),
        (_ftyp(b"mif1", b"mif1", b"heic", b"miaf"), False),
        (_ftyp(b"avif", b"avif", b"mif1", b"miaf", b"MA1B"), False),
        (_ftyp(b"avis", b"avis", b"msf1", b"iso8"), False),
        (_ftyp(b"M4A ", b"M4A ", b"mp42", b"isom"), False),  # music
        (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x84webm", True),
        (b"RIFF\x00\x10\x00\x00AVI LIST", True),
        (b"RIFF\x00\x10\x00\x00WAVEfmt ", False),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", False),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", False),
        (b"", False),
    ],
)
def test_recognises_by_content(head: bytes, expected: bool) -> None:
    assert recognises(_source(head)) is expected
    assert extractor.recognises(_source(head)) is expected


def test_recognises_the_real_files() -> None:
    for filename in REAL:
        assert recognises(Source.from_path(require_data("video", filename))), filename
    jpeg = next(require_data("photos").glob("*.jpg"))
    assert not recognises(Source.from_path(jpeg))


def test_extractor_declares_its_seam() -> None:
    from heron.extract import video
    from heron.extract.base import Extractor

    assert isinstance(extractor, Extractor)
    assert video.name == extractor.name == "video"
    assert {".mp4", ".webm", ".mkv", ".mov", ".avi", ".m4v"} == video.suffixes
