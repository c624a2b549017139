"""Precision and recall of the calibrated relevance cut-off (heron.search.calibration).

    python scripts/eval_cutoff.py [--held-in 500] [--data ../shared/data] [--seed 0]

Indexes `--held-in` Flickr8k val photos (the rest are held out) into a temporary data dir,
calibrates it, and runs every val caption (EN and ZH separately) as a query, k = 10:

* recall: held-in queries whose target photo is returned with relevance >= c (`R/top10`: of
  those whose target the model ranks in its top 10 at all, the ceiling the cut-off can keep);
* strict: a held-out query that returns anything >= c is a false positive;
* honest: a held-out caption often describes a stored photo as well ("a dog runs on the
  grass"), so its hit counts as relevant when one of the hit's own human captions is as close to
  the query (text tower, same language) as the median caption of the query's own photo is to
  its other captions; a held-out query is a false positive only when none of its hits >= c is;
* off-topic: queries about things Flickr8k does not show (documents, software, finance; not
  the calibration's list), the share that returns anything >= c.

Then image queries: held-in photos recompressed (JPEG q30, 160 px) must find their original;
held-out photos are the negatives. Prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from heron import Heron
from heron.search.calibration import (
    DEFAULT_MIN_RELEVANCE,
    IMAGE_SAMPLE,
    Calibration,
    calibrate_all,
)

REPO = Path(__file__).resolve().parents[1]
K = 10
CUTOFFS = (0.0, 0.3, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.99)
OFF_TOPIC = {
    "en": (
        "a spreadsheet with monthly revenue", "python source code in an editor",
        "a pie chart of market share", "the login page of a website", "a scanned tax form",
        "a table of contents of a book", "a terminal window with error messages",
        "a flowchart of an algorithm", "a close-up of a circuit board", "an email inbox",
        "a pdf page with two columns of text", "a plate of dumplings", "a stapler and paper clips",
        "a graph of stock prices", "a restaurant menu", "an organisation chart",
        "a microwave oven", "a pharmacy shelf with medicine", "a washing machine",
        "a slide titled conclusions",
    ),
    "zh": (
        "月度收入电子表格", "编辑器里的Python代码", "市场份额饼图", "网站登录页面", "扫描的税表",
        "书的目录", "显示错误信息的终端窗口", "算法流程图", "电路板特写", "电子邮件收件箱",
        "两栏文字的PDF页面", "一盘饺子", "订书机和回形针", "股价走势图", "餐厅菜单",
        "组织结构图", "微波炉", "药店货架上的药品", "洗衣机", "标题为结论的幻灯片",
    ),
}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--held-in", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    flickr = args.data / "flickr8k"
    records = [json.loads(line) for line in (flickr / "captions.jsonl").open(encoding="utf-8")]
    val = [r for r in records if r["split"] == "val"]
    random.Random(args.seed).shuffle(val)
    held_in, held_out = val[: args.held_in], val[args.held_in :]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "photos"
        folder.mkdir()
        for record in held_in:
            (folder / record["image"]).symlink_to(flickr / "images" / record["image"])
        with Heron(Path(tmp) / "data") as heron:
            started = time.perf_counter()
            heron.index([folder])
            print(f"indexed {heron.count()} photos in {time.perf_counter() - started:.0f} s")
            store, encoder = heron.store, heron.encoder

            def search_many(vectors: np.ndarray, k: int) -> list[list[float]]:
                return [[hit.score for hit in hits] for hits in store.search_many(vectors, k)]

            ids = sorted(store.ids())
            sample_ids = random.Random(args.seed).sample(ids, min(IMAGE_SAMPLE, len(ids)))
            for attempt in ("cold", "warm"):
                started = time.perf_counter()
                sample = np.stack([row["vector"] for row in store.get(sample_ids)])
                calibrations = calibrate_all(encoder, search_many, len(ids), encoder.stamp, sample)
                print(f"calibration ({attempt}): {time.perf_counter() - started:.2f} s")
            for calibration in calibrations.values():
                print(f"  {calibration}")

            def ranked(vectors: np.ndarray) -> list[list[tuple[str, float]]]:
                answers = store.search_many(vectors, K)
                return [[(Path(h.row["path"]).name, h.score) for h in hits] for hits in answers]

            for language in ("en", "zh"):
                _text_report(encoder, ranked, calibrations[f"text:{language}"], language,
                             held_in, held_out)  # fmt: skip
            _image_report(encoder, ranked, calibrations["image"], flickr, held_in, held_out)


def _text_report(encoder, ranked, calibration: Calibration, language, held_in, held_out) -> None:
    queries = [(c, r["image"], True) for r in held_in for c in r[language]]
    queries += [(c, r["image"], False) for r in held_out for c in r[language]]
    vectors = encoder.embed_texts([q for q, _, _ in queries])
    results = ranked(vectors)
    # The relevance judge: text-text similarity of a query to a photo's own human captions.
    captions = {r["image"]: r[language] for r in held_in + held_out}
    names = list(captions)
    flat = encoder.embed_texts([c for name in names for c in captions[name]], role="passage")
    per = {name: flat[5 * i : 5 * i + 5] for i, name in enumerate(names)}
    own = []
    for name in names:
        sims = per[name] @ per[name].T
        np.fill_diagonal(sims, -1)
        own.extend(sims.max(1))
    threshold = float(np.median(own))
    query_vectors = encoder.embed_texts([q for q, _, _ in queries], role="passage")

    def plausible(index: int, hit: str) -> bool:
        return float((per[hit] @ query_vectors[index]).max()) >= threshold

    off = encoder.embed_texts(list(OFF_TOPIC[language]))
    off_best = [scores[0][1] for scores in ranked(off)]
    targets = [
        next((s for name, s in hits if name == target), None)
        for (_, target, _), hits in zip(queries, results, strict=True)
    ]
    inside = [i for i, q in enumerate(queries) if q[2]]
    outside = [i for i, q in enumerate(queries) if not q[2]]
    reachable = sum(targets[i] is not None for i in inside)
    print(
        f"\n{language}: {len(inside)} held-in / {len(outside)} held-out captions; R@10 "
        f"{reachable / len(inside):.3f}; judge: caption similarity >= {threshold:.3f}; "
        f"null best: median {calibration.median:.3f}, p90 {calibration.p90:.3f}"
    )
    print(
        "   c  min_cos | recall R/top10 | out-any  strictP | out-unjust honestP | hitP-strict "
        "hitP-honest | off-topic"
    )
    for c in sorted({*CUTOFFS, DEFAULT_MIN_RELEVANCE}):
        floor = calibration.min_score(c)
        tp = sum(targets[i] is not None and targets[i] >= floor for i in inside)
        answered = [i for i in outside if results[i] and results[i][0][1] >= floor]
        unjust = [i for i in answered if not any(
            plausible(i, name) for name, s in results[i] if s >= floor)]  # fmt: skip
        hits = [(i, name) for i in range(len(queries)) for name, s in results[i] if s >= floor]
        is_target = [name == queries[i][1] for i, name in hits]
        honest = [t or plausible(i, name) for (i, name), t in zip(hits, is_target, strict=True)]
        off_rate = sum(s >= floor for s in off_best) / len(off_best)
        mark = " *default" if c == DEFAULT_MIN_RELEVANCE else ""
        print(
            f"{c:5.2f} {floor:7.3f} | {tp / len(inside):.3f}  {tp / max(reachable, 1):.3f}  |"
            f" {len(answered) / len(outside):.3f}  {tp / max(tp + len(answered), 1):.3f}  |"
            f" {len(unjust) / len(outside):.3f}      {tp / max(tp + len(unjust), 1):.3f}   |"
            f" {np.mean(is_target) if hits else 0:.3f}       {np.mean(honest) if hits else 0:.3f}"
            f"       | {off_rate:.2f}{mark}"
        )


def _image_report(encoder, ranked, calibration: Calibration, flickr, held_in, held_out) -> None:
    copies = []
    for record in held_in:
        with Image.open(flickr / "images" / record["image"]) as image:
            small = image.convert("RGB").resize((160, 160), Image.Resampling.BICUBIC)
        buffer = io.BytesIO()
        small.save(buffer, "JPEG", quality=30)
        copies.append(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
    outside = [Image.open(flickr / "images" / r["image"]).convert("RGB") for r in held_out]
    copy_hits = ranked(encoder.embed_images(copies))
    out_hits = ranked(encoder.embed_images(outside))
    target = [
        next((s for name, s in hits if name == r["image"]), None)
        for r, hits in zip(held_in, copy_hits, strict=True)
    ]
    found = [s for s in target if s is not None]
    out_best = [hits[0][1] for hits in out_hits]
    print(
        f"\nimage: recompressed held-in copies find their original in the top 10 "
        f"{len(found) / len(target):.3f}, score median {np.median(found):.3f} "
        f"(p10 {np.percentile(found, 10):.3f}); held-out photos' best score median "
        f"{np.median(out_best):.3f} (p90 {np.percentile(out_best, 90):.3f}); "
        f"null median {calibration.median:.3f}"
    )
    print("   c  min_cos | recall | out-any | strictP")
    for c in sorted({*CUTOFFS, DEFAULT_MIN_RELEVANCE}):
        floor = calibration.min_score(c)
        tp = sum(s >= floor for s in found)
        fp = sum(s >= floor for s in out_best)
        mark = " *default" if c == DEFAULT_MIN_RELEVANCE else ""
        print(
            f"{c:5.2f} {floor:7.3f} | {tp / len(target):.3f}  | {fp / len(out_best):.3f}   |"
            f" {tp / max(tp + fp, 1):.3f}{mark}"
        )


if __name__ == "__main__":
    main()
