"""Indexing throughput against model-only throughput, measured in the same process.

    python bench/bench_index.py                 # flickr8k (224 px) and photos (~500 px)
    python bench/bench_index.py --limit 2000 --repeats 1 --json

Model-only: pixels already decoded and preprocessed in memory, timed through the visual tower
alone at the indexer's batch size and parallelism. Indexing: `Heron.index` on a fresh data dir
(crawl, hash, decode, preprocess, thumbnail, embed, store, catalog). The ratio shows what the
pipeline costs on top of inference; 1.0 means decoding is fully hidden behind inference.

A shared VM's speed drifts by ±10 % within a minute, so each repeat sandwiches one indexing run
between model-only trials and takes its own ratio; the figure is the median over repeats. The
drift-free companion is the inference share: CPU time spent inside the visual tower divided by
the process's CPU time during the same indexing run (the ratio a perfectly steady machine would
show when both cores are busy).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from heron.config import Settings
from heron.extract.images import IMAGE_SUFFIXES, decode_image
from heron.library import Heron
from heron.models import registry
from heron.models.encoder import Encoder, load_encoder
from heron.models.preprocess import to_pixels

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def model_only_rates(
    files: list[Path], model: str, batch_size: int, workers: int, trials: int
) -> list[float]:
    """Images/s of the visual tower alone over pre-decoded pixels, one figure per trial.

    Run exactly as the indexer runs it: `workers` parallel single-threaded inference calls.
    """
    encoder = load_encoder(registry.resolve(model), threads=1)
    pixels = np.stack([to_pixels(decode_image(f).image, encoder.image_spec) for f in files])
    batches = [pixels[i : i + batch_size] for i in range(0, len(pixels), batch_size)]
    rates = []
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(encoder.embed_pixels, batches[:workers]))  # warm-up: sessions, allocator
        for _ in range(trials):
            start = time.perf_counter()
            list(pool.map(encoder.embed_pixels, batches))
            rates.append(len(pixels) / (time.perf_counter() - start))
    return rates


QUERIES = [
    "a dog running on the beach",
    "children playing in a fountain",
    "a man riding a bike",
    "two people sitting on a bench",
    "a snowy mountain",
    "a red car on the street",
]


def query_latencies(heron: Heron, rounds: int = 20) -> list[float]:
    """Warm text→image query latency in ms (text encoding + vector search + paths), k=10."""
    heron.search(QUERIES[0], k=10)  # warm-up: text session, store handles
    latencies = []
    for _ in range(rounds):
        for query in QUERIES:
            start = time.perf_counter()
            heron.search(query, k=10)
            latencies.append((time.perf_counter() - start) * 1000)
    return latencies


@contextlib.contextmanager
def inference_cpu() -> Iterator[list[float]]:
    """Accumulate the thread CPU seconds spent in `Encoder.embed_pixels` while active."""
    spent = [0.0]
    lock = threading.Lock()
    original = Encoder.embed_pixels

    def timed(self: Encoder, batch: np.ndarray) -> np.ndarray:
        start = time.thread_time()
        try:
            return original(self, batch)
        finally:
            with lock:
                spent[0] += time.thread_time() - start

    Encoder.embed_pixels = timed  # type: ignore[method-assign]
    try:
        yield spent
    finally:
        Encoder.embed_pixels = original  # type: ignore[method-assign]


def _process_cpu() -> float:
    times = os.times()
    return times.user + times.system


def index_run(
    folder: Path, limit: int | None, settings: Settings, latencies: list[float]
) -> tuple[float, int, float]:
    """Images/s of one `Heron.index` run, images indexed, and the inference share of CPU."""
    source = folder
    staging = None
    if limit is not None:
        staging = Path(tempfile.mkdtemp(prefix="heron-bench-src-"))
        for f in _images(folder)[:limit]:
            (staging / f.name).symlink_to(f)
        source = staging
    try:
        with Heron(settings=settings) as heron, inference_cpu() as spent:
            start, cpu = time.perf_counter(), _process_cpu()
            report = heron.index([source])
            elapsed, cpu = time.perf_counter() - start, _process_cpu() - cpu
            share = spent[0] / cpu
            latencies.extend(query_latencies(heron))
        return report.indexed / elapsed, report.indexed, share
    finally:
        if staging:
            shutil.rmtree(staging)


def bench_set(folder: Path, args: argparse.Namespace, model: str) -> dict[str, object]:
    sample = _images(folder)[: args.model_sample]
    ratios, index_rates, shares, all_model_rates = [], [], [], []
    latencies: list[float] = []
    count = 0
    for _ in range(args.repeats):
        data_dir = Path(tempfile.mkdtemp(prefix="heron-bench-"))
        settings = Settings.load(data_dir=data_dir)
        workers = settings.inference_workers or os.cpu_count() or 2
        try:
            rates = model_only_rates(sample, model, settings.batch_size, workers, 2)
            rate, count, share = index_run(folder, args.limit, settings, latencies)
            rates += model_only_rates(sample, model, settings.batch_size, workers, 2)
        finally:
            shutil.rmtree(data_dir)
        ratios.append(rate / statistics.median(rates))
        index_rates.append(rate)
        shares.append(share)
        all_model_rates += rates
    return {
        "set": folder.relative_to(DATA).as_posix(),
        "images": count,
        "repeats": args.repeats,
        "index_images_per_s": round(statistics.median(index_rates), 1),
        "model_only_images_per_s": round(statistics.median(all_model_rates), 1),
        "model_only_range": [round(min(all_model_rates), 1), round(max(all_model_rates), 1)],
        "ratio": round(statistics.median(ratios), 3),
        "ratios": [round(r, 3) for r in ratios],
        "inference_cpu_share": round(statistics.median(shares), 3),
        "query_p50_ms": round(statistics.median(latencies), 1),
        "query_p99_ms": round(float(np.percentile(latencies, 99)), 1),
    }


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def main() -> None:
    parser = argparse.ArgumentParser(description="Heron indexing throughput")
    parser.add_argument("--limit", type=int, default=None, help="index at most N images per set")
    parser.add_argument("--repeats", type=int, default=3, help="sandwiched runs per set")
    parser.add_argument("--model-sample", type=int, default=640)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    model = Settings.load().model
    results = []
    for name in ("flickr8k/images", "photos"):
        folder = DATA / name
        if not folder.is_dir():
            print(f"skip {name}: {folder} missing", file=sys.stderr)
            continue
        results.append(bench_set(folder, args, model))
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if args.json:
        print(json.dumps({"results": results, "peak_rss_mb": round(peak_rss_mb)}))
        return
    print(
        f"{'set':<16}{'images':>8}{'index img/s':>13}{'model img/s':>13}{'model range':>16}"
        f"{'ratio':>8}{'per repeat':>22}{'infer CPU':>11}{'query p50/p99 ms':>19}"
    )
    for r in results:
        low, high = r["model_only_range"]
        per_repeat = " ".join(f"{x:.2f}" for x in r["ratios"])
        print(
            f"{r['set']:<16}{r['images']:>8}{r['index_images_per_s']:>13}"
            f"{r['model_only_images_per_s']:>13}{f'{low}-{high}':>16}{r['ratio']:>8}"
            f"{per_repeat:>22}{r['inference_cpu_share']:>11}"
            f"{str(r['query_p50_ms']) + ' / ' + str(r['query_p99_ms']):>19}"
        )
    print(f"peak RSS: {peak_rss_mb:.0f} MB")


if __name__ == "__main__":
    main()
