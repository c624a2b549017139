"""One ranked list: the vector search and the keyword search fused (reciprocal-rank fusion)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from heron.search.engine import RRF_K, _fuse
from heron.store.base import StoreHit
from tests.conftest import require_data, run_json

# Made-up names: nothing in a photo shows them, so only its file name can find it.
NAMES = [
    ("kowalski", "zanzibar"),
    ("okonkwo", "reykjavik"),
    ("haverford", "tbilisi"),
    ("marchetti", "ulaanbaatar"),
    ("szymanski", "antananarivo"),
    ("lindqvist", "ouagadougou"),
    ("fitzgerald", "vladivostok"),
    ("nakamura", "timbuktu"),
    ("brannigan", "kathmandu"),
    ("delacroix", "samarkand"),
]


def _hit(uid: str, score: float = 0.5) -> StoreHit:
    return StoreHit(uid, score, {})


def test_rrf_rewards_agreement_and_keeps_each_lists_rank() -> None:
    vector = [_hit("a"), _hit("b"), _hit("c")]
    keyword = [_hit("c", 9.0), _hit("d", 5.0)]
    fused = _fuse([("vector", vector), ("keyword", keyword)])
    assert [hit.id for hit, _, _ in fused] == ["c", "a", "b", "d"]  # b, d tie: by id
    _, score, parts = fused[0]
    assert score == pytest.approx(1 / (RRF_K + 3) + 1 / (RRF_K + 1))
    assert parts == {"vector": {"rank": 3, "score": 0.5}, "keyword": {"rank": 1, "score": 9.0}}


@pytest.fixture(scope="module")
def named(heron_lite: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    photos = sorted(require_data("photos").glob("*.jpg"))
    folder = tmp_path_factory.mktemp("named")
    for index, photo in enumerate(photos[:60]):
        words = NAMES[index] if index < len(NAMES) else ("photo", str(index))
        (folder / f"{words[0]}-{words[1]}.jpg").symlink_to(photo)
    shutil.copy(require_data("docs", "ocr", "ocr_test.jpg"), folder / "scan.jpg")
    data_dir = folder.parent / "named-data"
    run_json("index", str(folder), "--ocr", data_dir=data_dir)
    with (data_dir.parent / "names.jsonl").open("w", encoding="utf-8") as handle:
        for a, b in NAMES:
            line = {"query": f"{a} {b}", "relevant": [str(folder / f"{a}-{b}.jpg")]}
            handle.write(json.dumps(line) + "\n")
    return data_dir


def _top(data_dir: Path, query: str, *flags: str) -> list[dict]:
    return run_json("search", query, "-k", "5", *flags, data_dir=data_dir)["hits"]


def test_text_in_a_file_name_or_a_picture_is_found_by_the_fused_list_not_the_vectors(
    named: Path,
) -> None:
    from heron import Heron

    queries = [(f"{a} {b}", f"{a}-{b}.jpg") for a, b in NAMES] + [("竖向文本框", "scan.jpg")]
    fused = vector = 0
    with Heron(named) as heron:
        for query, answer in queries:
            fused += Path(heron.search(query=query, k=1)[0].path).name == answer
            nearest = heron.search(query=query, k=1, fusion=False, min_relevance=0)
            vector += Path(nearest[0].path).name == answer
    assert fused == len(queries)  # every one at rank 1
    assert vector <= 2  # the vectors alone find next to none of them


def test_explain_shows_each_lists_rank_and_the_matched_terms(named: Path) -> None:
    (top, *_) = _top(named, "kowalski zanzibar", "--explain")
    explain = top["explain"]
    assert explain["keyword"]["rank"] == 1 and explain["keyword"]["terms"] == [
        "kowalski",
        "zanzibar",
    ]
    assert explain["fused"] >= 1 / (RRF_K + 1)
    assert -1 <= top["score"] <= 1  # still the cosine similarity, computed for keyword hits
    phrase = _top(named, '"kowalski zanzibar"', "--explain")[0]["explain"]
    assert phrase["phrase:kowalski zanzibar"]["rank"] == 1
    only = _top(named, "kowalski zanzibar", "--vector-only", "--min-relevance", "0")[0]
    assert only["explain"] is None


def test_eval_measures_the_fused_ranking_too(named: Path) -> None:
    eval_file = str(named.parent / "names.jsonl")
    vector = run_json("eval", eval_file, data_dir=named)
    fused = run_json("eval", eval_file, "--fused", data_dir=named)
    assert isinstance(vector, dict) and isinstance(fused, dict)
    assert fused["recall@1"] == 1.0 and vector["recall@1"] <= 0.2


def test_filters_in_the_query_apply_to_both_lists(named: Path) -> None:
    hits = _top(named, "kowalski zanzibar width>=100000")
    assert hits == []
