"""OCR cost (heron.understand.ocr): images/s on text-free photos and on pictures with text.

    python bench/bench_ocr.py [--photos 30]

Text-free photos cost one detector pass; pictures with text add the classifier and recogniser
per line found. The baseline is the detector alone on the same photos, in the same process, so
the ratio shows what recognition adds. Figures only, no asserts.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from PIL import Image

from heron.understand.ocr import OcrEngine, _bgr

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    engine = OcrEngine(threads=args.threads)
    photos = [_load(p) for p in sorted((DATA / "photos").glob("*.jpg"))[: args.photos]]
    with_text = [_load(DATA / "docs" / "ocr" / "ocr_test.jpg")] * 10
    engine.read(photos[0])  # load the models
    detector = engine._load()
    started = time.perf_counter()
    for photo in photos:
        detector(_bgr(photo), use_cls=False, use_rec=False)
    detect_only = len(photos) / (time.perf_counter() - started)
    for name, images in (("photos (no text)", photos), ("ocr_test.jpg (text)", with_text)):
        started = time.perf_counter()
        lines = sum(len(engine.read(image).lines) for image in images)
        rate = len(images) / (time.perf_counter() - started)
        print(f"{name:22} {rate:6.1f} images/s  {lines / len(images):5.1f} lines per image")
    print(f"{'detector alone, photos':22} {detect_only:6.1f} images/s (baseline)")


def _load(path: Path) -> Image.Image:
    with Image.open(path) as image:
        return image.convert("RGB")


if __name__ == "__main__":
    main()
