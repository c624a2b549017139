"""Calibrated relevance: a cosine against the library's null of unrelated queries."""

from __future__ import annotations

import io
import json
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from heron import Heron
from heron.search.calibration import (
    CALIBRATION_VERSION,
    DEFAULT_MIN_RELEVANCE,
    IMAGE,
    NULL_QUERIES,
    Calibration,
    calibrate,
    calibrate_all,
    modality_of,
)
from tests.conftest import DATA, flickr_split, link_images

EXAMPLE = Calibration(
    model="heron-lite@2.0",
    modality="text:en",
    units=500,
    location=0.30,
    scale=0.06,
    samples=68,
    median=0.33,
    p90=0.45,
)


def test_relevance_is_monotone_and_in_unit_range() -> None:
    scores = np.linspace(-1.0, 1.0, 2001)
    values = EXAMPLE.relevance(scores)
    assert isinstance(values, np.ndarray) and values.shape == scores.shape
    assert np.all(values >= 0.0) and np.all(values <= 1.0)
    assert np.all(np.diff(values) >= 0.0)
    assert values[0] < 1e-6 and values[-1] > 0.999
    middle = EXAMPLE.relevance(0.33)
    assert isinstance(middle, float) and 0.4 < middle < 0.6  # ~0.5 at the null median
    assert EXAMPLE.relevance(0.29) < EXAMPLE.relevance(0.31)  # strictly, inside the band


def test_min_score_inverts_relevance() -> None:
    for wanted in (0.1, 0.5, DEFAULT_MIN_RELEVANCE, 0.99):
        assert EXAMPLE.relevance(EXAMPLE.min_score(wanted)) == pytest.approx(wanted, abs=1e-9)
    assert EXAMPLE.min_score(0.0) == -math.inf and EXAMPLE.min_score(1.0) == math.inf
    with pytest.raises(ValueError):
        EXAMPLE.min_score(1.5)


def test_json_round_trip_and_garbage() -> None:
    assert Calibration.from_json(EXAMPLE.to_json()) == EXAMPLE
    good = json.loads(EXAMPLE.to_json())
    bad = [
        "",
        "not json",
        "null",
        "[1, 2]",
        json.dumps({**good, "version": CALIBRATION_VERSION + 1}),
        json.dumps({k: v for k, v in good.items() if k != "scale"}),
        json.dumps({**good, "scale": -0.1}),
        json.dumps({**good, "scale": "wide"}),
        json.dumps({**good, "units": True}),
        json.dumps({**good, "extra": 1}),
        json.dumps({**good, "location": float("nan")}),
    ]
    for text in bad:
        with pytest.raises(ValueError):
            Calibration.from_json(text)


def test_recompute_rule() -> None:
    assert not EXAMPLE.stale(500, "heron-lite@2.0")
    assert not EXAMPLE.stale(590, "heron-lite@2.0") and not EXAMPLE.stale(420, "heron-lite@2.0")
    assert EXAMPLE.stale(610, "heron-lite@2.0") and EXAMPLE.stale(400, "heron-lite@2.0")
    assert EXAMPLE.stale(500, "heron-lite@1.0") and EXAMPLE.stale(0, "heron-lite@2.0")


def test_modality_of_a_query() -> None:
    languages = ("en", "zh")
    assert modality_of("a dog", 0, languages) == "text:en"
    assert modality_of("一只狗", 0, languages) == "text:zh"
    assert modality_of("Ein Hund", 0, ("de",)) == "text:en"  # no list of its own: English's
    assert modality_of(None, 1, languages) == IMAGE
    assert modality_of("a dog", 1, languages) is None and modality_of(None, 0, languages) is None


class _FakeEncoder:
    def embed_texts(self, texts: list[str]) -> np.ndarray:
        return np.tile(np.array([[1.0, 0.0]], dtype=np.float32), (len(texts), 1))


def test_calibrate_refuses_what_it_cannot_measure() -> None:
    def none(vectors: np.ndarray, k: int) -> list[list[float]]:
        return [[] for _ in vectors]

    with pytest.raises(ValueError, match="too few"):
        calibrate(_FakeEncoder(), none, 0, "m", "text:en")
    with pytest.raises(ValueError, match="sample"):
        calibrate(_FakeEncoder(), none, 10, "m", IMAGE)
    with pytest.raises(ValueError, match="modality"):
        calibrate(_FakeEncoder(), none, 10, "m", "text:xx")
    assert calibrate_all(_FakeEncoder(), none, 0, "m") == {}

    rng = np.random.default_rng(0)

    def noisy(vectors: np.ndarray, k: int) -> list[list[float]]:
        return [sorted(rng.uniform(0.1, 0.4, k), reverse=True) for _ in vectors]

    calibration = calibrate(_FakeEncoder(), noisy, 100, "m", "text:zh")
    assert calibration.samples == len(NULL_QUERIES["zh"]) and 0.1 < calibration.median < 0.4
    assert calibration.scale > 0 and calibration.modality == "text:zh"


# ---- on a real index: 40 Flickr8k val photos, 30 of them of dogs -----------------------------

OFF_TOPIC = {
    "en": [
        "quarterly tax spreadsheet formulas",
        "python source code in an editor",
        "a pie chart of market share",
        "the login page of a website",
        "a table of contents of a book",
        "a close-up of a circuit board",
    ],
    "zh": ["季度税务报表公式", "编辑器里的代码", "市场份额饼图", "网站登录页面", "书的目录",
           "电路板特写"],
}  # fmt: skip


@pytest.fixture(scope="module")
def dogs(heron_lite: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    records = flickr_split("val")
    dog = [r for r in records if sum("dog" in c.lower() for c in r["en"]) >= 3][:30]
    rest = [r for r in records if not any("dog" in c.lower() for c in r["en"])][:10]
    chosen = dog + rest
    root = tmp_path_factory.mktemp("dogs")
    images = link_images([r["image"] for r in chosen], DATA / "flickr8k" / "images", root / "in")
    with Heron(root / "data", model="heron-lite") as heron:
        heron.index([images])
        store, encoder = heron.store, heron.encoder
        ids = sorted(store.ids())
        sample = np.stack([row["vector"] for row in store.get(ids)])

        def search_many(vectors: np.ndarray, k: int) -> list[list[float]]:
            return [[hit.score for hit in hits] for hits in store.search_many(vectors, k)]

        def ranked(vectors: np.ndarray) -> list[list[tuple[str, float]]]:
            answers = store.search_many(vectors, 10)
            return [[(Path(h.row["path"]).name, h.score) for h in hits] for hits in answers]

        calibrations = calibrate_all(encoder, search_many, len(ids), encoder.stamp, sample)
        yield {
            "heron": heron,
            "data_dir": root / "data",
            "images": images,
            "records": chosen,
            "encoder": encoder,
            "ranked": ranked,
            "calibrations": calibrations,
        }


@pytest.mark.parametrize("language", ["en", "zh"])
def test_matching_captions_pass_and_off_topic_queries_do_not(dogs: dict, language: str) -> None:
    encoder, ranked = dogs["encoder"], dogs["ranked"]
    calibration: Calibration = dogs["calibrations"][f"text:{language}"]
    assert calibration.units == 40 and calibration.model == encoder.stamp
    queries = [(c, r["image"]) for r in dogs["records"] for c in r[language]]
    results = ranked(encoder.embed_texts([q for q, _ in queries]))
    top = [hits[0] for hits in results]
    found = [score for (name, score), (_, target) in zip(top, queries, strict=True)
             if name == target]  # fmt: skip
    passing = float(np.mean(np.asarray(calibration.relevance(found)) >= DEFAULT_MIN_RELEVANCE))
    assert passing >= 0.5, f"{passing:.2f} of the captions ranking their photo first pass"

    off = ranked(encoder.embed_texts(OFF_TOPIC[language]))
    cut = calibration.min_score(DEFAULT_MIN_RELEVANCE)
    answered = [hits[0] for hits in off if hits[0][1] >= cut]
    assert len(answered) <= 1, f"off-topic queries answered: {answered}"
    assert calibration.relevance(off[0][0][1]) < DEFAULT_MIN_RELEVANCE  # the tax spreadsheet


def test_an_image_finds_its_recompressed_copy_not_an_unstored_photo(dogs: dict) -> None:
    encoder, ranked = dogs["encoder"], dogs["ranked"]
    calibration: Calibration = dogs["calibrations"][IMAGE]
    stored = {r["image"] for r in dogs["records"]}
    copies = []
    for record in dogs["records"][:8]:
        with Image.open(DATA / "flickr8k" / "images" / record["image"]) as image:
            small = image.convert("RGB").resize((160, 160))
        buffer = io.BytesIO()
        small.save(buffer, "JPEG", quality=30)
        copies.append(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
    for record, hits in zip(dogs["records"][:8], ranked(encoder.embed_images(copies)), strict=True):
        assert hits[0][0] == record["image"]
        assert calibration.relevance(hits[0][1]) >= DEFAULT_MIN_RELEVANCE
    others = [r["image"] for r in flickr_split("val") if r["image"] not in stored][:20]
    photos = [Image.open(DATA / "flickr8k" / "images" / name).convert("RGB") for name in others]
    best = [hits[0][1] for hits in ranked(encoder.embed_images(photos))]
    assert float(np.mean(np.asarray(calibration.relevance(best)) >= DEFAULT_MIN_RELEVANCE)) <= 0.35


# ---- through Heron.search and the CLI: the cut-off is on by default ---------------------------


def test_search_cuts_off_unrelated_queries_and_min_relevance_zero_shows_all(dogs: dict) -> None:
    heron: Heron = dogs["heron"]
    dog = heron.search("a dog running on the grass", k=10)
    assert dog, "a query about what the library holds must answer"
    assert all(hit.relevance is not None and hit.relevance >= 0.6 for hit in dog)
    assert [hit.relevance for hit in dog] == sorted((hit.relevance for hit in dog), reverse=True)
    assert heron.search(OFF_TOPIC["en"][0], k=10) == []  # the tax spreadsheet
    everything = heron.search(OFF_TOPIC["en"][0], k=10, min_relevance=0)
    assert len(everything) == 10 and all(hit.relevance < 0.6 for hit in everything)
    strict = heron.search("a dog running on the grass", k=10, min_relevance=0.95)
    assert len(strict) < len(dog) or all(hit.relevance >= 0.95 for hit in strict)
    with pytest.raises(ValueError, match="between 0 and 1"):
        heron.search("dog", min_relevance=1.5)
    # calibrations are kept in the catalog per model, modality and group of units
    key = f"calibration:{heron.encoder.stamp}:text:en:pixels"
    assert Calibration.from_json(heron.catalog.get_meta(key) or "").units == 40


def test_an_image_query_finds_its_copy_above_the_cut(dogs: dict) -> None:
    heron: Heron = dogs["heron"]
    name = dogs["records"][3]["image"]
    with Image.open(dogs["images"] / name) as image:
        copy = image.convert("RGB").resize((180, 180))
    hits = heron.search(image=copy, k=5)
    assert hits and Path(hits[0].path).name == name and hits[0].relevance >= 0.6


def test_cli_says_no_relevant_result_and_how_to_see_everything(dogs: dict) -> None:
    from tests.conftest import run_cli, run_json

    done = run_cli("search", OFF_TOPIC["en"][0], data_dir=dogs["data_dir"])
    assert "no relevant results" in done.stdout and "--min-relevance 0" in done.stdout
    data = run_json("search", OFF_TOPIC["en"][0], "--min-relevance", "0", data_dir=dogs["data_dir"])
    assert isinstance(data, dict) and len(data["hits"]) == 10
    assert all(0.0 <= hit["relevance"] < 0.6 for hit in data["hits"])
