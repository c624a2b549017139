"""Text inside pictures (Chinese and English): detection first, recognition only where text is.

A stage of its own, with its own dependency (`rapidocr-onnxruntime` 1.4: PP-OCRv4 detection and
recognition models for Chinese and English inside the wheel, run by ONNX Runtime), so any
extractor's pixels — photos, screenshots, scanned pages, slide pictures, keyframes — can go
through it. The detector runs on every image; the angle classifier and the recogniser only on
the regions it found, so a photo without text costs one detector pass. Each line keeps its box
(four corners in the original image's pixels) for highlighting.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from heron.util.errors import HeronError

Point = tuple[float, float]
INSTALL_HINT = "pip install 'rapidocr-onnxruntime>=1.4,<1.5'"


class OcrUnavailableError(HeronError, RuntimeError):
    """The OCR engine is not installed."""

    code = "ocr_unavailable"
    status = 503


@dataclass(frozen=True)
class OcrLine:
    text: str
    box: tuple[Point, Point, Point, Point]  # clockwise from top-left, in image pixels
    score: float

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "box": [list(p) for p in self.box], "score": self.score}


@dataclass(frozen=True)
class OcrResult:
    lines: list[OcrLine] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def text(self) -> str:
        """The lines in reading order (top to bottom, then left to right), one per line."""
        return "\n".join(line.text for line in self.lines)

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "lines": [line.to_dict() for line in self.lines]}


class OcrEngine:
    """Reads text in images; the models load on first use, once per thread that reads. Safe to
    share between threads."""

    def __init__(
        self, threads: int | None = None, min_score: float = 0.5, detect_side: int = 960
    ) -> None:
        self.threads = threads
        self.min_score = min_score
        # The detector sees the image with its longer side at most this long. rapidocr's
        # default instead scales the *shorter* side up to 736, which made a 500-px photo cost
        # 5x more (4 vs 20 photos/s on 2 cores) and read ocr_test.jpg no better.
        self.detect_side = detect_side
        # One rapidocr pipeline per thread: a pipeline is not safe to share, and one per OCR
        # worker lets the workers run in parallel (each a single-threaded ORT session).
        self._local = threading.local()

    def read(self, image: Image.Image) -> OcrResult:
        """The text lines found in `image` (any mode; alpha is composited on white)."""
        engine = self._load()
        found, elapsed = engine(_bgr(image), text_score=self.min_score)
        if not found:
            return OcrResult([], 0.0)
        lines = [_line(box, text, score) for box, text, score in found if str(text).strip()]
        lines.sort(key=lambda line: (round(line.box[0][1] / 10), line.box[0][0]))
        return OcrResult(lines, float(sum(elapsed or [])))

    @staticmethod
    def installed() -> bool:
        """Whether the engine's package is importable (without importing it)."""
        import importlib.util

        return importlib.util.find_spec("rapidocr_onnxruntime") is not None

    def check(self) -> None:
        """Load the models now: raises OcrUnavailableError before a run, not in its middle."""
        self._load()

    def _load(self) -> Any:
        engine = getattr(self._local, "engine", None)
        if engine is None:
            engine = self._local.engine = self._make()
        return engine

    def _make(self) -> Any:
        try:
            from rapidocr_onnxruntime import RapidOCR
        except ImportError as exc:
            raise OcrUnavailableError(
                f"OCR needs rapidocr-onnxruntime ({INSTALL_HINT}); or index without OCR"
            ) from exc
        threads = self.threads or -1
        return RapidOCR(
            intra_op_num_threads=threads,
            inter_op_num_threads=1,
            det_limit_type="max",
            det_limit_side_len=self.detect_side,
            print_verbose=False,
        )


def _bgr(image: Image.Image) -> np.ndarray:
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, (255, 255, 255))
        flat.paste(rgba, mask=rgba.getchannel("A"))
        image = flat
    rgb = np.asarray(image.convert("RGB"))
    return np.ascontiguousarray(rgb[:, :, ::-1])


def _line(box: Any, text: Any, score: Any) -> OcrLine:
    corners = tuple((float(x), float(y)) for x, y in box)
    return OcrLine(str(text).strip(), corners, float(score))  # type: ignore[arg-type]
