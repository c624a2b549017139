"""Keyframes of a video: one picture per shot, chosen by scene change, each with its timecode.

A video becomes a handful of `frame` units, not one per second: a search hit should point at a
distinct view ("the cockatoo's beak, 00:00:03"), and a hundred near-identical frames of one shot
would crowd every result list. The choice follows the idea of PySceneDetect's content detector:

- the stream is decoded once (PyAV, codec threads on), but only about `sample_fps` frames a
  second, picked by timestamp, are looked at, each scaled by swscale to a 64-pixel copy;
- pictures are compared by their mean HSV difference (hue weighted by saturation, since the hue
  of a grey pixel is noise) on a softened 32-pixel copy, at the best of the small shifts within
  ±10 %, so camera shake and small pans do not count as change;
- a *cut* is a difference between consecutive samples well above the recent ones (adaptive, so
  fast hand-held motion is not cut every quarter second) or simply very high;
- a new keyframe is also taken inside a shot when the picture has drifted far from the last kept
  one (a pan, a zoom, a slow dissolve: the things a cut detector misses), at most every
  `drift_spacing` seconds, or when `max_spacing` has passed and the picture is not near-identical
  to the last kept one;
- keyframes are at least `min_spacing` apart; black and blank (near-uniform) frames never become
  keyframes, and a shot that looks like the last kept keyframe (a flash, a cut away and back)
  extends that keyframe's span instead of adding a copy;
- the keyframe of a shot is taken `settle` seconds into it (not the first frame after the cut,
  which in a dissolve or a fade is still the transition), so its timecode lies inside the shot.

Each keyframe's span (`shot_start`..`shot_end`) is only known when the next one starts, so one
keyframe is held back before it is yielded; together with one candidate frame that is all that is
kept, whatever the video's length.

Outcomes: a file FFmpeg cannot open, or with no video stream or no decodable frame, is skipped
with its reason; a stream that breaks (or ends well before its declared duration) part way
yields what was decoded and then raises `IncompleteSource`.
"""

from __future__ import annotations

import contextlib
import math
import struct
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import BinaryIO

import av
import av.error
import numpy as np
from av.container import InputContainer
from av.stream import Disposition
from av.video.frame import VideoFrame
from av.video.stream import VideoStream
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image

from heron.extract.base import ExtractOptions, IncompleteSource, SkipFile, Source, UnitDraft

__all__ = [
    "KeyframeSettings",
    "VideoExtractor",
    "extractor",
    "name",
    "recognises",
    "suffixes",
]

name = "video"
suffixes: frozenset[str] = frozenset({".mp4", ".m4v", ".mov", ".webm", ".mkv", ".avi"})

# ISO-BMFF brands (ftyp major or compatible) that mean a movie, and those that mean a picture.
_VIDEO_BRANDS = frozenset(
    {
        b"isom", b"iso2", b"iso3", b"iso4", b"iso5", b"iso6", b"iso7", b"iso8", b"iso9",
        b"mp41", b"mp42", b"mp71", b"avc1", b"M4V ", b"M4VH", b"M4VP", b"qt  ", b"dash",
        b"msnv", b"MSNV", b"f4v ", b"mmp4", b"XAVC", b"NDAS", b"MP4 ", b"cmfc", b"cmf2",
    }
)  # fmt: skip
_VIDEO_BRAND_PREFIXES = (b"3gp", b"3g2", b"3ge", b"3gg")
_STILL_BRANDS = frozenset(
    {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1", b"avif", b"avis"}
)
_AUDIO_BRANDS = frozenset({b"M4A ", b"M4B ", b"M4P ", b"F4A ", b"F4B "})  # music, audiobooks
_QUICKTIME_ATOMS = frozenset({b"moov", b"mdat", b"wide", b"pnot"})  # old .mov files: no ftyp
_EBML_MAGIC = b"\x1a\x45\xdf\xa3"
_DECODE_ERRORS_TOLERATED = 25  # undecodable packets skipped before the stream is given up
_SHORTFALL = (2.0, 0.1)  # a stream ending this much (s, fraction) before its declared end broke


@dataclass(frozen=True)
class KeyframeSettings:
    """How keyframes are chosen. Scores are `_view_distance`s: mean HSV differences, 0-255.

    The defaults were set on the test clips and synthetic cuts, shakes and fades: a hand-held
    shake of a detailed picture scores up to ~8, a character standing up or a head turning
    12-15, a hard cut 30 and more, hand-held motion between samples up to ~15.
    """

    sample_fps: float = 4.0  # frames looked at per second of video
    analysis_side: int = 64  # longer side of the copy that is compared
    min_spacing: float = 1.0  # seconds between keyframes, at least
    max_spacing: float = 10.0  # seconds between keyframes, at most, unless near-identical
    # ... and, in a short clip, at most its length / this (but not under min_spacing): a short
    # clip's few keyframes are the only moments of it a search can find, so a 5-second clip in
    # which something moves is looked at about every second. 0 turns this off.
    views_per_clip: float = 6.0
    settle: float = 0.5  # seconds into a shot its keyframe is taken
    cut_score: float = 16.0  # a cut scores at least this ...
    cut_ratio: float = 3.0  # ... and this many times the mean of the recent samples' scores
    hard_cut_score: float = 32.0  # or at least this, whatever came before
    recent: int = 4  # samples the recent mean covers (about a second)
    drift_score: float = 10.0  # this far from the last keyframe is a new view, cut or not
    drift_spacing: float = 2.0  # seconds after a keyframe before drift can add another
    align_reach: int = 3  # pictures are compared at their best shift within ±3 px of ~32 (≈10 %)
    identical_score: float = 3.0  # closer than this to the last keyframe is the same picture
    blank_std: float = 6.0  # every RGB channel's spread below this: a uniform frame
    black_level: float = 28.0  # 98 % of pixels darker than this: a black frame


def recognises(source: Source) -> bool:
    """MP4/MOV/3GP (a movie brand, not a HEIF/AVIF picture), Matroska/WebM, or AVI, by content."""
    return _container_kind(source.head) is not None


class VideoExtractor:
    """Keyframes with timecodes from MP4, MOV, WebM, MKV and AVI files (PyAV/FFmpeg)."""

    name = name
    suffixes = suffixes

    def __init__(self, settings: KeyframeSettings | None = None) -> None:
        self.settings = settings or KeyframeSettings()

    def recognises(self, source: Source) -> bool:
        return recognises(source)

    def extract(self, source: Source, options: ExtractOptions) -> Iterator[UnitDraft]:
        """One `frame` draft per keyframe, in time order; see the module docstring."""
        if source.size == 0:
            raise SkipFile("empty file")
        kind = _container_kind(source.head) or ""
        with _open_container(source, kind) as container:
            stream = _video_stream(container)
            info = _StreamInfo.of(container, stream, kind)
            if info.duration is None:
                info.duration = _probe_duration(source, stream.index)
            reader = _Reader(container, stream, info, self.settings)
            chooser = _Chooser(self.settings, _renderer(stream, options.render_side), info.duration)
            yielded = 0
            try:
                for keyframe in _keyframes(reader, chooser):
                    yield _draft(keyframe, info)
                    yielded += 1
            except av.error.FFmpegError as exc:  # a chosen frame swscale cannot convert
                reader.fail(exc, stop=True)
            problem = reader.problem()
            if not yielded:
                raise SkipFile(_nothing_reason(reader))
            if problem:
                raise IncompleteSource(problem)


extractor = VideoExtractor()


def _keyframes(reader: _Reader, chooser: _Chooser) -> Iterator[_Keyframe]:
    for sample in reader.samples():
        yield from chooser.feed(sample)
    yield from chooser.finish(reader.end_time())


# --- sniffing and opening ---


def _container_kind(head: bytes) -> str | None:
    """The container (mp4, mov, m4v, 3gp, webm, mkv, avi) the first bytes announce, or None."""
    if head[4:8] == b"ftyp":
        return _iso_kind(head)
    if head[4:8] in _QUICKTIME_ATOMS and int.from_bytes(head[:4], "big") >= 8:
        return "mov"
    if head.startswith(_EBML_MAGIC):
        return "webm" if b"webm" in head[:64] else "mkv"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "avi"
    return None


def _iso_kind(head: bytes) -> str | None:
    """The ftyp box: a movie unless a picture or audio brand leads or no movie brand is listed."""
    size = max(16, min(int.from_bytes(head[:4], "big"), len(head)))
    major = head[8:12]
    compatible = [head[i : i + 4] for i in range(16, size - 3, 4)]
    if major in _STILL_BRANDS or major in _AUDIO_BRANDS:
        return None
    if not _is_video_brand(major) and not any(_is_video_brand(b) for b in compatible):
        return None
    if major == b"qt  ":
        return "mov"
    if major.startswith(b"M4V"):
        return "m4v"
    if major.startswith(_VIDEO_BRAND_PREFIXES):
        return "3gp"
    return "mp4"


def _is_video_brand(brand: bytes) -> bool:
    return brand in _VIDEO_BRANDS or brand.startswith(_VIDEO_BRAND_PREFIXES)


@contextlib.contextmanager
def _open_container(source: Source, kind: str) -> Iterator[InputContainer]:
    """The open container, closed (with its file) however the caller leaves."""
    try:
        handle = source.open()
    except OSError as exc:
        raise SkipFile(f"cannot read file: {exc.strerror or exc}") from None
    with handle:
        try:
            container = av.open(handle, mode="r", metadata_errors="ignore")
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            raise SkipFile(_open_failure(handle, kind, exc)) from None
        with container:
            yield container


def _open_failure(handle: BinaryIO, kind: str, exc: BaseException) -> str:
    """Why FFmpeg refused the file, in words; for MP4 a look at its boxes says what is missing."""
    if kind in ("mp4", "mov", "m4v", "3gp"):
        with contextlib.suppress(OSError, struct.error):
            reason = _iso_damage(handle)
            if reason:
                return f"damaged video: {reason}"
    if isinstance(exc, av.error.EOFError):
        return "damaged video: the file ends before its first frame"
    return f"damaged video: {_words(exc)}"


def _iso_damage(handle: BinaryIO) -> str | None:
    """Walk the top-level boxes: a movie without its 'moov' index cannot be played."""
    handle.seek(0, 2)
    size = handle.tell()
    offset, boxes, cut_in = 0, set(), None
    while offset + 8 <= size and len(boxes) < 1000:
        handle.seek(offset)
        length, box = struct.unpack(">I4s", handle.read(8))
        if length == 1:
            length = struct.unpack(">Q", handle.read(8))[0]
        elif length == 0:
            length = size - offset
        if length < 8:
            break
        boxes.add(box)
        if offset + length > size:
            cut_in = (_box_name(box), offset + length)
            break
        offset += length
    if b"moov" in boxes:
        return None
    if cut_in:
        name_, declared = cut_in
        return (
            f"the file ends inside its '{name_}' box ({size:,} of {declared:,} bytes) and has no "
            "'moov' index: it was cut short"
        )
    return "no 'moov' index (movie header) in the file"


def _video_stream(container: InputContainer) -> VideoStream:
    """The first real video stream: cover art in a music file is a picture, not a video."""
    for stream in container.streams.video:
        if stream.disposition & Disposition.attached_pic:
            continue
        if stream.codec_context is None:
            codec = stream.metadata.get("codec_name") or "an unknown codec"
            raise SkipFile(f"unsupported video: no decoder for {codec}")
        stream.thread_type = "AUTO"
        return stream
    raise SkipFile("no video stream")


@dataclass
class _StreamInfo:
    """What every draft of the video carries, and what the reader checks the stream against."""

    format: str
    codec: str
    fps: float | None
    duration: float | None  # seconds, as declared (or, lacking that, measured by demuxing)
    declared: float | None  # the stream's (else the container's) declared duration
    start: float  # the stream's first timestamp: times are counted from it

    @classmethod
    def of(cls, container: InputContainer, stream: VideoStream, kind: str) -> _StreamInfo:
        base = stream.time_base or Fraction(1, 1)
        start = float(stream.start_time * base) if stream.start_time else 0.0
        declared = float(stream.duration * base) if stream.duration else None
        whole = container.duration / av.time_base if container.duration else None
        rate = stream.average_rate or stream.guessed_rate
        return cls(
            format=kind or container.format.name.split(",")[0],
            codec=stream.codec_context.name,
            fps=round(float(rate), 3) if rate else None,
            duration=declared or whole,
            declared=declared or whole,
            start=max(0.0, start),
        )


def _box_name(box: bytes) -> str:
    """A box type as text: four printable ASCII letters, or hex when it is garbage."""
    if all(0x20 <= b < 0x7F for b in box):
        return box.decode("ascii")
    return "0x" + box.hex()


def _probe_duration(source: Source, index: int) -> float | None:
    """A stream without a declared duration (live-recorded WebM): the last packet's end."""
    end: float | None = None
    start = 0.0
    try:
        with source.open() as handle, av.open(handle, metadata_errors="ignore") as container:
            stream = container.streams[index]
            base = stream.time_base or Fraction(1, 1)
            start = float(stream.start_time * base) if stream.start_time else 0.0
            for packet in container.demux(stream):
                if packet.pts is not None:
                    at = float((packet.pts + (packet.duration or 0)) * base)
                    end = at if end is None else max(end, at)
    except (av.error.FFmpegError, OSError, ValueError):
        pass  # as far as it could be read
    return None if end is None else max(0.0, end - max(0.0, start))


# --- decoding: a few small samples a second ---


@dataclass
class _Sample:
    time: float  # seconds from the stream's start
    frame: VideoFrame  # kept only while it may still become a keyframe
    view: np.ndarray  # small softened HSV copy, float32, for comparisons (`_view`)
    blank: bool  # black or near-uniform: never a keyframe


class _Reader:
    """Decodes the stream, samples it by timestamp, and remembers how far it got and why."""

    def __init__(
        self,
        container: InputContainer,
        stream: VideoStream,
        info: _StreamInfo,
        settings: KeyframeSettings,
    ) -> None:
        self.container, self.stream, self.info, self.settings = container, stream, info, settings
        self.frames = 0  # decoded
        self.last_time: float | None = None  # of the last decoded frame
        self.error: str | None = None  # the first failure, in words
        self.error_time = 0.0  # where it happened
        self.bad_packets = 0  # packets that failed to demux, decode or convert
        self.stopped = False  # whether a failure ended the stream

    def samples(self) -> Iterator[_Sample]:
        step = 1.0 / self.settings.sample_fps
        due = 0.0
        for frame in self._frames():
            at = self._time(frame)
            if at is None or at + 1e-6 < due:
                continue
            due = (math.floor(at / step + 1e-6) + 1) * step
            try:
                hsv, blank = _analyse(frame, self.settings)
            except (av.error.FFmpegError, ValueError) as exc:  # a pixel format swscale refuses
                self.fail(exc, stop=True)
                return
            yield _Sample(at, frame, _view(hsv), blank)

    def end_time(self) -> float:
        """Where the last decoded frame ends (the last keyframe's span ends there)."""
        if self.last_time is None:
            return 0.0
        end = self.last_time + (1.0 / self.info.fps if self.info.fps else 0.0)
        if self.info.duration and self.last_time <= self.info.duration:
            end = min(end, self.info.duration)
        return end

    def problem(self) -> str | None:
        """The reason the stream counts as incomplete, if it does."""
        where = _timecode(self.error_time)
        if self.stopped:
            return f"the video stream breaks at {where}: {self.error}"
        if self.error is not None:
            count = f"{self.bad_packets} packet{'s' * (self.bad_packets != 1)}"
            return f"the video stream is damaged at {where}: {count} undecodable ({self.error})"
        declared, end = self.info.declared, self.end_time()
        slack = max(_SHORTFALL[0], _SHORTFALL[1] * (declared or 0.0))
        if declared and self.frames and declared - end > slack:
            return (
                f"the video stream ends at {_timecode(end)} of its declared "
                f"{_timecode(declared)}: the file is probably truncated"
            )
        return None

    def _frames(self) -> Iterator[VideoFrame]:
        """Every decodable frame; a bad packet is skipped, a broken container ends the stream."""
        packets = self.container.demux(self.stream)
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                return
            except (av.error.FFmpegError, OSError, ValueError) as exc:
                self.fail(exc, stop=True)
                return
            try:
                frames = packet.decode()
            except (av.error.FFmpegError, ValueError) as exc:
                too_many = self.bad_packets >= _DECODE_ERRORS_TOLERATED
                self.fail(exc, stop=too_many)
                if too_many:
                    self.error = f"{self.error}, {self.bad_packets} packets undecodable"
                    return
                continue
            for frame in frames:
                self.frames += 1
                yield frame

    def fail(self, exc: BaseException, stop: bool) -> None:
        """Record a failure; the first one is the one reported."""
        self.bad_packets += 1
        self.stopped = stop
        if self.error is None:
            self.error = _words(exc)
            self.error_time = self.last_time or 0.0

    def _time(self, frame: VideoFrame) -> float | None:
        """Seconds from the stream's start; frames without a timestamp get the next one's slot."""
        if frame.time is not None:
            at = max(0.0, frame.time - self.info.start)
        elif self.last_time is None:
            at = 0.0
        elif self.info.fps:
            at = self.last_time + 1.0 / self.info.fps
        else:
            return None
        if self.last_time is not None and at <= self.last_time:
            return None  # out of order or repeated: nothing new to look at
        self.last_time = at
        return at


def _analyse(frame: VideoFrame, settings: KeyframeSettings) -> tuple[np.ndarray, bool]:
    """A small HSV copy to compare, and whether the frame is black or blank."""
    width, height = _fit(frame.width, frame.height, settings.analysis_side)
    # AREA averages (no aliasing to mistake for motion); one thread: for a 64-pixel copy,
    # swscale's thread start costs more than the scaling (measured 1-3 ms against 4-7 ms).
    small = frame.to_image(width=width, height=height, interpolation="AREA", threads=1)
    rgb = np.asarray(small)
    uniform = float(rgb.reshape(-1, 3).std(axis=0).max()) < settings.blank_std
    black = float(np.percentile(rgb.max(axis=2), 98)) < settings.black_level
    return np.asarray(small.convert("HSV"), dtype=np.float32), uniform or black


def _view(hsv: np.ndarray) -> np.ndarray:
    """Half-size, softened copy (2×2 means, then a 3×3 box) that samples are compared on.

    Softening keeps a shift by a fraction of a pixel (a shaking hand) from scoring like a
    change of scene on a detailed picture; what a keyframe is for, the layout of the view,
    survives it.
    """
    height, width = hsv.shape[0] // 2 * 2, hsv.shape[1] // 2 * 2
    if height < 2 or width < 2:
        return hsv
    half = hsv[:height, :width].reshape(height // 2, 2, width // 2, 2, 3).mean(axis=(1, 3))
    padded = np.pad(half, ((1, 1), (1, 1), (0, 0)), mode="edge")
    rows, cols = half.shape[:2]
    total = sum(padded[y : y + rows, x : x + cols] for y in range(3) for x in range(3))
    return np.asarray(total, dtype=np.float32) / 9.0


def _view_distance(a: np.ndarray, b: np.ndarray, reach: int) -> float:
    """`_distances` at the best alignment of `b` on `a` within ±`reach` pixels.

    A hand-held shake or a small pan is not a new view; without the alignment, any shift of a
    textured picture (grass, a crowd) scores about as high as a cut.
    All (2·reach+1)² shifts are scored at once on an edge-padded `b`.
    """
    height, width = a.shape[:2]
    reach = max(0, min(reach, (height - 1) // 2, (width - 1) // 2))
    if reach == 0:
        return float(_distances(a, b))
    padded = np.pad(b, ((reach, reach), (reach, reach), (0, 0)), mode="edge")
    shifted = sliding_window_view(padded, a.shape)[:, :, 0]  # (2r+1, 2r+1, h, w, 3)
    return float(_distances(a, shifted).min())


def _distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Mean difference of hue (circular, weighted by saturation), saturation and value.

    Over the last three axes (height, width, HSV); leading axes of `b` broadcast.
    """
    hue = np.abs(a[..., 0] - b[..., 0])
    hue = np.minimum(hue, 256.0 - hue) * (np.minimum(a[..., 1], b[..., 1]) / 255.0)
    per_pixel = hue + np.abs(a[..., 1] - b[..., 1]) + np.abs(a[..., 2] - b[..., 2])
    return per_pixel.mean(axis=(-2, -1)) / 3.0


# --- choosing keyframes ---


@dataclass
class _Keyframe:
    time: float
    image: Image.Image
    size: tuple[int, int]  # the video's frame size as shown (rotation, pixel aspect applied)
    view: np.ndarray
    start: float
    end: float | None = None  # set when what follows it begins


@dataclass
class _Shot:
    """A shot whose keyframe is not chosen yet."""

    start: float
    content_start: float | None = None  # first non-blank sample
    candidate: _Sample | None = None


Render = Callable[[VideoFrame], tuple[Image.Image, tuple[int, int]]]


class _Chooser:
    """Turns samples into keyframes; holds one keyframe (its end unknown) and one candidate."""

    def __init__(
        self, settings: KeyframeSettings, render: Render, duration: float | None = None
    ) -> None:
        self.settings, self.render = settings, render
        self.max_spacing = settings.max_spacing
        if duration and settings.views_per_clip > 0:
            short = max(settings.min_spacing, duration / settings.views_per_clip)
            self.max_spacing = min(settings.max_spacing, short)
        self.recent: deque[float] = deque(maxlen=settings.recent)
        self.previous: np.ndarray | None = None
        self.shot: _Shot | None = None
        self.pending: _Keyframe | None = None

    def feed(self, sample: _Sample) -> list[_Keyframe]:
        done: list[_Keyframe] = []
        if self.previous is None:
            self.shot = _Shot(sample.time)
        else:
            score = _view_distance(self.previous, sample.view, self.settings.align_reach)
            if self._is_cut(score):
                done += self._cut(sample.time)
            else:
                self.recent.append(score)
        self.previous = sample.view
        if sample.blank:
            if self.shot is None and self.pending and self.pending.end is None:
                self.pending.end = sample.time  # a fade to black ends the keyframe's span
            return done
        if self.shot is None and (self.pending is None or self.pending.end is not None):
            self.shot = _Shot(sample.time)  # content again after black, without a cut
        if self.shot is not None:
            return done + self._offer(sample)
        return done + self._within_shot(sample)

    def finish(self, end: float) -> list[_Keyframe]:
        """The keyframes still held, the last one's span ending at `end`."""
        done = self._close_shot()
        if self.pending is not None:
            if self.pending.end is None:
                self.pending.end = max(end, self.pending.time)
            done.append(self.pending)
            self.pending = None
        return done

    def _is_cut(self, score: float) -> bool:
        """Adaptive: high, and well above the last second's motion; or very high."""
        s = self.settings
        if score >= s.hard_cut_score:
            return True
        if score < s.cut_score:
            return False
        if not self.recent:  # nothing to compare the motion with yet: only an obvious cut
            return False
        return score >= s.cut_ratio * (sum(self.recent) / len(self.recent))

    def _cut(self, at: float) -> list[_Keyframe]:
        done = self._close_shot()
        if self.pending is not None and self.pending.end is None:
            self.pending.end = at
        self.shot = _Shot(at)
        return done

    def _eligible(self, at: float) -> bool:
        return self.pending is None or at >= self.pending.time + self.settings.min_spacing

    def _offer(self, sample: _Sample) -> list[_Keyframe]:
        """A sample of a shot without a keyframe yet: the first eligible one `settle` s in wins."""
        shot = self.shot
        assert shot is not None
        if shot.content_start is None:
            shot.content_start = sample.time
        if not self._eligible(sample.time):
            return []
        shot.candidate = sample
        if sample.time >= shot.content_start + self.settings.settle:
            return self._close_shot()
        return []

    def _within_shot(self, sample: _Sample) -> list[_Keyframe]:
        """Inside a keyframe's shot: a new one if the view drifted, or after `max_spacing`."""
        pending = self.pending
        assert pending is not None
        gap = sample.time - pending.time
        if gap < min(self.settings.drift_spacing, self.max_spacing):
            return []
        distance = self._view_distance(pending, sample)
        drifted = distance >= self.settings.drift_score
        overdue = gap >= self.max_spacing and distance >= self.settings.identical_score
        return self._accept(sample, sample.time) if drifted or overdue else []

    def _same(self, keyframe: _Keyframe, sample: _Sample) -> bool:
        return self._view_distance(keyframe, sample) < self.settings.identical_score

    def _view_distance(self, keyframe: _Keyframe, sample: _Sample) -> float:
        return _view_distance(keyframe.view, sample.view, self.settings.align_reach)

    def _close_shot(self) -> list[_Keyframe]:
        shot, self.shot = self.shot, None
        if shot is None or shot.candidate is None:
            return []
        return self._accept(shot.candidate, shot.content_start or shot.start)

    def _accept(self, sample: _Sample, start: float) -> list[_Keyframe]:
        """Keep `sample` as a keyframe, unless it repeats the last one (that one then goes on)."""
        pending = self.pending
        if pending is not None and self._same(pending, sample):
            pending.end = None
            return []
        image, size = self.render(sample.frame)
        self.pending = _Keyframe(sample.time, image, size, sample.view, start)
        if pending is None:
            return []
        if pending.end is None:
            pending.end = start
        return [pending]


# --- the drafts ---


def _renderer(stream: VideoStream, side: int) -> Render:
    """Frame → upright RGB picture whose longer side is at most `side` (never upscaled)."""
    aspect = stream.sample_aspect_ratio
    pixel = float(aspect) if aspect and aspect > 0 else 1.0

    def render(frame: VideoFrame) -> tuple[Image.Image, tuple[int, int]]:
        shown = (max(1, round(frame.width * pixel)), frame.height)
        width, height = _fit(shown[0], shown[1], side)
        image = frame.to_image(width=width, height=height, interpolation="AREA")
        turn = _TURNS.get(round(_rotation(frame) / 90) % 4)
        if turn is not None:
            image = image.transpose(turn)
            if turn is not Image.Transpose.ROTATE_180:
                shown = (shown[1], shown[0])
        return image, shown

    return render


# FFmpeg's display rotation is counter-clockwise, as PIL's ROTATE_* are.
_TURNS = {
    1: Image.Transpose.ROTATE_90,
    2: Image.Transpose.ROTATE_180,
    3: Image.Transpose.ROTATE_270,
}


def _rotation(frame: VideoFrame) -> float:
    try:
        return float(frame.rotation or 0)
    except (AttributeError, ValueError, TypeError):
        return 0.0


def _fit(width: int, height: int, side: int) -> tuple[int, int]:
    """Scaled so the longer side is at most `side`, never up; even sizes are not required."""
    scale = min(1.0, side / max(width, height, 1))
    return max(1, round(width * scale)), max(1, round(height * scale))


def _draft(keyframe: _Keyframe, info: _StreamInfo) -> UnitDraft:
    end = keyframe.end if keyframe.end is not None else keyframe.time
    return UnitDraft(
        kind="frame",
        locator=f"t={keyframe.time:.3f}",
        image=keyframe.image,
        pointer={
            "time": keyframe.time,
            "timecode": _timecode(keyframe.time),
            "shot_start": keyframe.start,
            "shot_end": max(end, keyframe.time),
        },
        width=keyframe.size[0],
        height=keyframe.size[1],
        format=info.format,
        fields={
            "duration": round(info.duration, 3) if info.duration else None,
            "fps": info.fps,
            "codec": info.codec,
        },
        read_text=True,
    )


def _timecode(seconds: float) -> str:
    """HH:MM:SS.mmm"""
    millis = max(0, round(seconds * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    return f"{hours:02d}:{minutes:02d}:{millis // 1000:02d}.{millis % 1000:03d}"


def _nothing_reason(reader: _Reader) -> str:
    if reader.frames == 0:
        if reader.error:
            return f"damaged video: no frame could be decoded ({reader.error})"
        return "empty video: the stream has no frames"
    return "blank video: every frame is black or a single colour"


def _words(exc: BaseException) -> str:
    """An av/FFmpeg error as a phrase: "invalid data found when processing input"."""
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return text[:1].lower() + text[1:]
