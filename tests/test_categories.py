"""Zero-shot categories: the text tower scores label prompts against image vectors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from heron.search.query import parse_query
from heron.store.filters import Compare, In
from heron.understand.categories import (
    DEFAULT_CATEGORIES,
    Categoriser,
    Category,
    parse_categories,
)
from tests.conftest import require_data


class AxisEncoder:
    """Each prompt's vector is the axis its first word names: 'x ...' -> [1, 0, 0]."""

    axes: ClassVar[dict[str, int]] = {"x": 0, "y": 1, "z": 2}

    def __init__(self) -> None:
        self.calls = 0

    def embed_texts(self, texts: list[str], role: str = "query") -> np.ndarray:
        self.calls += 1
        vectors = np.zeros((len(texts), 3), dtype=np.float32)
        for row, text in enumerate(texts):
            vectors[row, self.axes[text.split()[0]]] = 1.0
        return vectors


def test_each_vector_gets_its_nearest_category_or_other_when_unsure() -> None:
    encoder = AxisEncoder()
    categories = [Category("ex", "埃克斯", ("x one", "x two")), Category("why", "歪", ("y",))]
    categoriser = Categoriser(encoder, categories, min_confidence=0.9)
    vectors = np.array([[1, 0, 0], [0.1, 0.99, 0], [0.7, 0.7, 0.1]], dtype=np.float32)
    found = categoriser.classify(vectors)
    assert [name for name, _ in found] == ["ex", "why", "other"]
    assert found[0][1] > 0.99 and 0.4 < found[2][1] < 0.6
    categoriser.classify(vectors)
    assert encoder.calls == 2  # the prompts were embedded once (one call per category)
    assert categoriser.chinese("why") == "歪" and categoriser.classify(vectors[:0]) == []


def test_the_categories_setting() -> None:
    assert parse_categories([]) == DEFAULT_CATEGORIES
    custom = parse_categories(["Animal", "boat=船=a photo of a boat", "receipt=收据"])
    assert custom[0] == next(c for c in DEFAULT_CATEGORIES if c.name == "animal")
    assert custom[1] == Category("boat", "船", ("a photo of a boat",))
    assert custom[2] == Category("receipt", "收据", ("a photo of receipt",))
    with pytest.raises(ValueError, match="needs a name"):
        parse_categories(["=x"])
    assert parse_query("category:动物").filter == Compare("category", "=", "animal")
    assert parse_query("category:food,chart").filter == In("category", ("food", "chart"))


def test_indexed_pictures_get_categories_and_pages_are_documents(
    heron_lite: Path, tmp_path: Path
) -> None:
    from heron import Heron

    photos = require_data("photos")
    captions = [json.loads(line) for line in (photos / "captions.jsonl").open(encoding="utf-8")]
    dogs = [r["image"] for r in captions if all("dog" in c.lower() for c in r["en"])][:6]
    folder = tmp_path / "pics"
    folder.mkdir()
    for name in dogs:
        (folder / name).symlink_to(photos / name)
    (folder / "paper.pdf").symlink_to(require_data("docs", "pdf", "elegantpaper-en.pdf"))
    with Heron(tmp_path / "data") as heron:
        heron.index([folder])
        animals = heron.search(query="a picture category:animal", k=50, min_relevance=0)
        assert len([h for h in animals if h.kind == "image"]) >= 5  # of 6 dog photos
        assert all(h.tags["category"] == "animal" for h in animals)
        pages = heron.search(query="a page kind:page", k=10)
        assert pages and all(h.tags["category"] == "document" for h in pages)
        passages = heron.search(query="text kind:passage", k=3)
        assert all("category" not in h.tags for h in passages)
