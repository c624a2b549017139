"""The second stage: a search's best candidates re-scored by another bundle (heron.search.rerank).

No bundle stronger than heron-lite reaches this machine, so the second model here is heron-lite
1.0 (another image tower and text tower): what is tested is that the order, the scores and the
cache are the second model's, not that it ranks better.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from heron import Heron
from heron.config import ConfigError, Settings
from heron.models import registry
from heron.models.encoder import load_encoder
from tests.conftest import DATA, flickr_split, require_data

SECOND = "heron-lite@1.0"


@pytest.fixture(scope="module")
def library(heron_lite: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    root = tmp_path_factory.mktemp("rerank")
    photos = root / "photos"
    photos.mkdir()
    for record in flickr_split("val")[:24]:
        shutil.copy(DATA / "flickr8k" / "images" / str(record["image"]), photos)
    shutil.copy(require_data("docs", "pdf", "elegantpaper-en.pdf"), photos / "paper.pdf")
    settings = Settings.load(
        data_dir=root / "data", model="heron-lite", rerank_model=SECOND, rerank_depth=12
    )
    with Heron(settings=settings) as heron:
        heron.index([photos])
        yield {"heron": heron, "second": load_encoder(registry.resolve(SECOND))}


def test_the_order_is_the_second_models(library: dict) -> None:
    heron: Heron = library["heron"]
    hits = heron.search("a dog running in the snow", k=8, fusion=False, min_relevance=0)
    assert len(hits) == 8
    reranked = [hit.explain["rerank"] for hit in hits]
    assert all(part["model"] == library["second"].stamp for part in reranked)
    scores = [part["score"] for part in reranked]
    assert scores == sorted(scores, reverse=True)
    assert [part["rank"] for part in reranked] == list(range(1, 9))
    # the candidates were the first stage's best 12, in its own order before the second stage
    first = heron.search("a dog running in the snow", k=12, fusion=False, min_relevance=0,
                         rerank=False)  # fmt: skip
    assert {hit.id for hit in hits} <= {hit.id for hit in first}
    assert all("rerank" not in (hit.explain or {}) for hit in first)


def test_scores_are_the_second_models_cosines_and_are_cached(library: dict) -> None:
    heron: Heron = library["heron"]
    second = library["second"]
    hits = heron.search("people on a street", k=5, fusion=False, min_relevance=0)
    query = second.embed_texts(["people on a street"])[0]
    for hit in hits[:3]:
        shown = heron.thumbnail_path(hit)
        with Image.open(shown) as image:
            expected = float(second.embed_images([image.convert("RGB")])[0] @ query)
        assert hit.explain["rerank"]["score"] == pytest.approx(expected, abs=2e-3)
    cache = heron._reranker(None).cache
    cached = cache.count()
    assert cached >= 12
    heron.search("people on a street", k=5, fusion=False, min_relevance=0)
    assert cache.count() == cached  # nothing embedded twice
    rows = cache.get([hits[0].id])
    assert rows and np.isclose(np.linalg.norm(rows[0]["vector"]), 1.0, atol=1e-3)


def test_fused_search_keeps_the_keyword_evidence(library: dict) -> None:
    heron: Heron = library["heron"]
    hits = heron.search(query='"Scatter Plot Example"', k=5)
    assert hits and hits[0].kind in ("figure", "page", "passage")
    assert "phrase:Scatter Plot Example" in hits[0].explain
    assert "first_stage" in hits[0].explain


def test_rerank_without_a_model_is_a_clear_error(library: dict, tmp_path: Path) -> None:
    with Heron(tmp_path / "data", model="heron-lite") as plain:
        with pytest.raises(ConfigError, match="rerank_model"):
            plain.search("dog", rerank=True)
        assert plain._reranker(None) is None
