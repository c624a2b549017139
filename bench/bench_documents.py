"""Documents and video: extraction speed, OCR's cost, end-to-end indexing time and peak memory.

    python bench/bench_documents.py [--data ../shared/data] [--ocr-pages 12]

Prints, on this machine:
- PDF pages/s, extraction alone (pages, figures, passages), without and with OCR of the pages
  (OCR of every page unit and figure, as `index --ocr` does), and their ratio;
- video keyframes/s and decoded seconds of video per second, over ../shared/data/video;
- end-to-end `heron index` of ../shared/data/docs (all units embedded and stored), without OCR,
  against extraction alone in the same process (the share embedding and storing add);
- peak RSS of `heron index` on the 98-page manual alone, in a fresh process.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from heron.extract.base import ExtractOptions, Source
from heron.extract.registry import default_registry

REPO = Path(__file__).resolve().parents[1]
MANUAL = Path("docs/pdf/debian-edu-bookworm-manual.pdf")


def extract_all(paths: list[Path], options: ExtractOptions) -> tuple[int, dict[str, int], float]:
    registry = default_registry()
    started = time.perf_counter()
    units: dict[str, int] = {}
    for path in paths:
        source = Source.from_path(path)
        extractor = registry.for_source(source)
        if extractor is None:
            continue
        for draft in extractor.extract(source, options):
            units[draft.kind] = units.get(draft.kind, 0) + 1
    return len(paths), units, time.perf_counter() - started


def pdf_figures(data: Path, ocr_pages: int) -> None:
    manual = data / MANUAL
    _, units, seconds = extract_all([manual], ExtractOptions())
    pages = units["page"]
    print(f"PDF extraction (manual, {pages} pages, {units}): {pages / seconds:.1f} pages/s")

    from heron.understand.ocr import OcrEngine

    engine = OcrEngine(threads=2)
    options = ExtractOptions(detail_side=engine.detect_side, ocr=True)
    source = Source.from_path(manual)
    engine.check()
    started = time.perf_counter()
    read = 0
    for draft in default_registry().for_source(source).extract(source, options):
        if draft.image is not None and draft.read_text:  # what `index --ocr` reads
            engine.read(draft.image)
            read += 1
    seconds_ocr = time.perf_counter() - started
    print(
        f"PDF extraction + OCR as `index --ocr` (manual: {read} figures read, its pages have "
        f"text): {pages / seconds_ocr:.1f} pages/s, {seconds_ocr / seconds:.0f}x the time "
        f"without OCR; {read / seconds_ocr:.1f} figures/s"
    )
    started = time.perf_counter()
    scanned = 0
    for draft in default_registry().for_source(source).extract(source, options):
        if draft.kind == "page":  # as if every page were a scan: rendered at 960 px and read
            engine.read(_first_page_like(draft.image, engine.detect_side))
            scanned += 1
            if scanned >= ocr_pages:
                break
    rate = scanned / (time.perf_counter() - started)
    print(f"OCR of dense text pages as scans (first {scanned} pages at 960 px): {rate:.2f} pages/s")


def _first_page_like(image, side: int):  # type: ignore[no-untyped-def]
    """The page rendered at the detector's side, as a scanned page is."""
    scale = side / max(image.size)
    return image.resize((round(image.width * scale), round(image.height * scale)))


def video_figures(data: Path) -> None:
    videos = sorted((data / "video").iterdir())
    _, units, seconds = extract_all(videos, ExtractOptions())
    duration = 0.0
    import av

    for path in videos:
        with av.open(str(path)) as container:
            duration += (container.duration or 0) / 1e6
    frames = units.get("frame", 0)
    print(
        f"video keyframes ({len(videos)} videos, {duration:.0f} s of video): {frames} keyframes, "
        f"{frames / seconds:.1f} keyframes/s, {duration / seconds:.1f} s of video per second"
    )


def end_to_end(data: Path) -> None:
    docs = data / "docs"
    files = [p for p in docs.rglob("*") if p.is_file()]
    _, _, extract_seconds = extract_all(files, ExtractOptions())
    with tempfile.TemporaryDirectory() as tmp:
        report, rss = _index_in_child([docs], Path(tmp))
    print(
        f"heron index docs/ ({report['sources']} files, {report['indexed']} units "
        f"{report['units_by_kind']}): {report['seconds']:.1f} s end to end, "
        f"{report['units_per_second']:.1f} units/s, peak RSS {rss:.0f} MB; extraction alone "
        f"{extract_seconds:.1f} s ({extract_seconds / report['seconds']:.2f} of the run)"
    )
    with tempfile.TemporaryDirectory() as tmp:
        report, rss = _index_in_child([data / MANUAL], Path(tmp))
    print(
        f"heron index of the 98-page manual alone: {report['indexed']} units in "
        f"{report['seconds']:.1f} s, peak RSS {rss:.0f} MB"
    )


def _index_in_child(paths: list[Path], data_dir: Path) -> tuple[dict, float]:
    """Index in a fresh interpreter, so its peak RSS is the run's own (models included)."""
    code = (
        "import json, resource, sys\n"
        "from heron import Heron\n"
        "with Heron(sys.argv[1]) as heron:\n"
        "    report = heron.index(sys.argv[2:])\n"
        "rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024\n"
        "print(json.dumps({'report': report.to_dict(), 'rss': rss}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(data_dir), *map(str, paths)],
        capture_output=True,
        text=True,
        check=True,
    )
    data = json.loads(result.stdout.strip().splitlines()[-1])
    return data["report"], data["rss"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--ocr-pages", type=int, default=12)
    args = parser.parse_args()
    pdf_figures(args.data, args.ocr_pages)
    video_figures(args.data)
    end_to_end(args.data)


if __name__ == "__main__":
    main()
