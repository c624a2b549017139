"""Which Chinese cut finds more in keyword search: character bigrams (what Heron uses) or jieba.

    python bench/bench_keywords.py

Texts: the 5 Flickr8k-CN captions of each val image joined into one text (1,000 texts).
Queries: from each text, random substrings of 2, 3, 4 and 6 characters (what a person copies
out of a screenshot or a slide) and its first whole caption. Each cut builds its own Lance
full-text index over the same texts (whitespace tokenizer over pre-cut terms, positions on) and
answers with a phrase query; the figure is recall@10 of the text a query came from. Needs jieba
(the dev extra). Figures only, no asserts.
"""

from __future__ import annotations

import json
import random
import re
import tempfile
import time
import unicodedata
from collections.abc import Callable
from pathlib import Path

import lancedb
import numpy as np
import pyarrow as pa
from lancedb.index import FTS
from lancedb.query import PhraseQuery

from heron.understand.terms import terms

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "flickr8k" / "captions.jsonl"
_PUNCTUATION = re.compile(r"[。，、！？；：\s]")


def jieba_terms(text: str) -> list[str]:
    import jieba

    jieba.setLogLevel(60)
    normal = unicodedata.normalize("NFKC", text).lower()
    return [t for t in jieba.cut_for_search(normal) if re.fullmatch(r"[^\W_]+", t)]


def main() -> None:
    records = [json.loads(line) for line in DATA.open(encoding="utf-8")]
    records = [r for r in records if r["split"] == "val"]
    texts = ["".join(r["zh"]) for r in records]
    rng = random.Random(0)
    queries: list[tuple[str, int, str]] = []
    for i, text in enumerate(texts):
        plain = _PUNCTUATION.sub("", text)
        for length in (2, 3, 4, 6):
            start = rng.randrange(0, max(1, len(plain) - length))
            queries.append((plain[start : start + length], i, f"substring {length}"))
        queries.append((records[i]["zh"][0].rstrip("。"), i, "whole caption"))
    cuts: dict[str, Callable[[str], list[str]]] = {"bigrams": terms, "jieba": jieba_terms}
    print(f"{len(texts)} texts, {len(queries)} queries; recall@10 of the source text")
    for name, cut in cuts.items():
        recall, seconds = _measure(cut, texts, queries)
        line = "  ".join(f"{kind} {value:.3f}" for kind, value in recall.items())
        print(f"{name:8} {line}  (index {seconds:.2f} s)")


def _measure(
    cut: Callable[[str], list[str]], texts: list[str], queries: list[tuple[str, int, str]]
) -> tuple[dict[str, float], float]:
    started = time.perf_counter()
    table = lancedb.connect(tempfile.mkdtemp()).create_table(
        "t", pa.table({"id": list(range(len(texts))), "terms": [" ".join(cut(t)) for t in texts]})
    )
    config = FTS(
        with_position=True,
        base_tokenizer="whitespace",
        lower_case=False,
        stem=False,
        remove_stop_words=False,
        ascii_folding=False,
    )
    table.create_index("terms", config=config)
    seconds = time.perf_counter() - started
    found: dict[str, list[bool]] = {}
    for query, source, kind in queries:
        phrase = " ".join(cut(query))
        hits = []
        if phrase:
            search = table.search(PhraseQuery(phrase, "terms"), query_type="fts")
            hits = [row["id"] for row in search.limit(10).to_list()]
        found.setdefault(kind, []).append(source in hits)
    return {kind: float(np.mean(values)) for kind, values in found.items()}, seconds


if __name__ == "__main__":
    main()
