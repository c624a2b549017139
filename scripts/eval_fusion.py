"""Fused search against vector-only search on Flickr8k val captions (plain text queries).

    python scripts/eval_fusion.py [--captions 1] [--data ../shared/data]

Indexes the 1,000 val photos into a temporary data dir, then ranks each caption (the first
`--captions` of each photo, English and Chinese) both ways through `Heron.search` and prints
Recall@1/5/10 for each, and the difference in points: fusion must not cost recall where the
answer is only in the pixels (their file names are hex ids, so keywords rarely match).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from heron import Heron

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--captions", type=int, default=1)
    args = parser.parse_args()
    flickr = args.data / "flickr8k"
    records = [json.loads(line) for line in (flickr / "captions.jsonl").open(encoding="utf-8")]
    val = [r for r in records if r["split"] == "val"]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "val"
        folder.mkdir()
        for record in val:
            (folder / record["image"]).symlink_to(flickr / "images" / record["image"])
        with Heron(Path(tmp) / "data") as heron:
            heron.index([folder])
            for language in ("en", "zh"):
                queries = [
                    (caption, Path(record["image"]).name)
                    for record in val
                    for caption in record[language][: args.captions]
                ]
                for fusion in (False, True):
                    _report(heron, queries, language, fusion)


def _report(heron: Heron, queries: list[tuple[str, str]], language: str, fusion: bool) -> None:
    found = {1: 0, 5: 0, 10: 0}
    started = time.perf_counter()
    for caption, answer in queries:
        names = [Path(hit.path).name for hit in heron.search(query=caption, k=10, fusion=fusion)]
        for k in found:
            found[k] += answer in names[:k]
    seconds = time.perf_counter() - started
    recall = " / ".join(f"{found[k] / len(queries):.3f}" for k in found)
    label = "fused" if fusion else "vector-only"
    print(
        f"{language} {label:11s} R@1/5/10 {recall} over {len(queries)} captions "
        f"({seconds / len(queries) * 1000:.1f} ms per query)"
    )


if __name__ == "__main__":
    main()
