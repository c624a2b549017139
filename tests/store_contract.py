"""The store contract: what every backend must do, whatever engine is behind it.

A backend's test module subclasses `StoreContract` and provides a `store` fixture (an empty
store of `DIM`-d vectors); every test here then runs against it. Lance's own concerns (its ANN
index, compaction, read-only opening) are tested in tests/test_store.py beside its contract run.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from heron.store.base import UNIT_COLUMNS, Store, StoreError, StoreHit
from heron.store.filters import Field

DIM = 16
T0 = datetime(2024, 5, 1, tzinfo=UTC)

NASTY = [
    "it's",
    "back\\slash",
    "trailing\\",
    "x' OR 1=1 --",
    "'; DROP TABLE units; --",
    'dq"',
    "`bt`",
]


def unit_vectors(n: int, dim: int = DIM, seed: int = 0, clusters: int = 8) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((clusters, dim)).astype(np.float32)
    x = centers[rng.integers(0, clusters, n)] + 0.4 * rng.standard_normal((n, dim))
    x = x.astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def make_rows(
    vectors: np.ndarray, prefix: str = "u", model: str = "m@1", start: int = 0
) -> list[dict[str, Any]]:
    kinds = ["image", "page", "figure", "slide"]
    return [
        {
            "id": f"{prefix}{i}",
            "vector": v,
            "model": model,
            "kind": kinds[i % 4],
            "path": f"/photos/{i}.jpg",
            "text": f"unit number {i}",
            "width": 100 * (i % 10),
            "height": 50,
            "bytes": 1000 + i,
            "format": "jpeg" if i % 2 else "png",
            "modified_at": T0 + timedelta(hours=i),
            "extra": {"n": i},
        }
        for i, v in enumerate(vectors, start=start)
    ]


class StoreContract:
    """Subclass with a `store` fixture yielding an empty store of DIM-d vectors."""

    @pytest.fixture
    def filled(self, store: Store) -> tuple[Store, np.ndarray, list[dict[str, Any]]]:
        vectors = unit_vectors(200)
        rows = make_rows(vectors)
        store.upsert(rows)
        return store, vectors, rows

    def test_store_satisfies_protocol(self, store: Store) -> None:
        assert isinstance(store, Store)
        assert store.dim == DIM
        assert store.count() == 0
        assert store.search(unit_vectors(1)[0], 5) == []

    def test_upsert_get_delete_count(self, filled: tuple[Store, np.ndarray, list]) -> None:
        store, vectors, _ = filled
        assert store.count() == 200
        got = store.get(["u5", "missing", "u2"])
        assert [r["id"] for r in got] == ["u5", "u2"]
        assert list(got[0]) == list(UNIT_COLUMNS)
        np.testing.assert_array_equal(got[0]["vector"], vectors[5])
        assert got[0]["vector"].dtype == np.float32
        assert got[0]["kind"] == "page" and got[0]["width"] == 500 and got[0]["extra"] == '{"n": 5}'
        assert got[0]["modified_at"] == T0 + timedelta(hours=5)
        assert got[0]["indexed_at"] is not None and got[0]["thumbnail"] == ""
        store.delete(["u5", "u2", "never-there"])
        assert store.count() == 198
        assert store.get(["u5", "u2"]) == []
        assert store.ids() == {f"u{i}" for i in range(200)} - {"u5", "u2"}
        assert store.count(Field("kind") == "image") == 50  # i % 4 == 0

    def test_upsert_same_id_twice_keeps_one_row(self, store: Store) -> None:
        v = unit_vectors(2)
        store.upsert([{"id": "a", "vector": v[0], "model": "m@1", "text": "first"}])
        store.upsert([{"id": "a", "vector": v[1], "model": "m@2", "text": "second"}])
        assert store.count() == 1
        (row,) = store.get(["a"])
        assert row["text"] == "second" and row["model"] == "m@2"
        np.testing.assert_array_equal(row["vector"], v[1])

    def test_batch_with_duplicate_ids_last_wins(self, store: Store) -> None:
        v = unit_vectors(3)
        batch = [
            {"id": "a", "vector": v[0], "model": "m@1", "text": "one"},
            {"id": "b", "vector": v[1], "model": "m@1"},
            {"id": "a", "vector": v[2], "model": "m@1", "text": "three"},
        ]
        assert store.upsert(batch) == 2
        assert store.upsert(batch) == 2  # a crashed batch rerun replaces, never duplicates
        assert store.count() == 2
        assert store.get(["a"])[0]["text"] == "three"

    def test_upsert_rejects_bad_rows_without_writing(self, store: Store) -> None:
        v = unit_vectors(2)
        good = {"id": "a", "vector": v[0], "model": "m@1"}
        with pytest.raises(StoreError, match="shape"):
            store.upsert([good, {"id": "b", "vector": np.ones(DIM + 1), "model": "m@1"}])
        with pytest.raises(StoreError, match="unknown column"):
            store.upsert([{**good, "colour": "red"}])
        with pytest.raises(StoreError, match="required"):
            store.upsert([{"id": "b", "vector": v[1]}])
        with pytest.raises(StoreError, match="NaN"):
            store.upsert([{**good, "vector": np.full(DIM, np.nan)}])
        with pytest.raises(StoreError, match="integer"):
            store.upsert([{**good, "width": "wide"}])
        assert store.count() == 0

    @pytest.mark.parametrize("value", NASTY)
    def test_injection_values_match_literally(self, store: Store, value: str) -> None:
        v = unit_vectors(3)
        store.upsert(
            [
                {"id": "x", "vector": v[0], "model": "m@1", "path": value},
                {"id": "y", "vector": v[1], "model": "m@1", "path": "plain"},
                {"id": "z", "vector": v[2], "model": "m@1", "path": value + "!"},
            ]
        )
        assert store.count(Field("path") == value) == 1
        assert store.count(Field("path") != value) == 2
        assert store.count(Field("path").contains(value)) == 2
        assert [h.id for h in store.search(v[1], 3, Field("path") == value)] == ["x"]
        assert store.get([value]) == []
        store.delete([value])
        assert store.count() == 3

    def test_store_rejects_bad_filters(self, filled: tuple[Store, np.ndarray, list]) -> None:
        store, vectors, _ = filled
        with pytest.raises(StoreError, match="unknown field"):
            store.count(Field("colour") == "red")
        with pytest.raises(StoreError, match="holds int32"):
            store.search(vectors[0], 3, Field("width") == "wide")

    def test_search_matches_numpy_brute_force(self, filled: tuple[Store, np.ndarray, list]) -> None:
        store, vectors, _ = filled
        query = unit_vectors(1, seed=9)[0]
        hits = store.search(query, 10)
        assert all(isinstance(h, StoreHit) for h in hits)
        sims = vectors @ query
        expected = np.argsort(-sims)[:10]
        assert [h.id for h in hits] == [f"u{i}" for i in expected]
        np.testing.assert_allclose([h.score for h in hits], sims[expected], atol=1e-5)
        assert "vector" not in hits[0].row and hits[0].row["id"] == hits[0].id

    def test_filtered_search_returns_only_matches_and_exactly_k(
        self,
        filled: tuple[Store, np.ndarray, list],
    ) -> None:
        store, vectors, _ = filled
        flt = (Field("kind") == "image") & (Field("width") >= 500)
        hits = store.search(vectors[0], 7, flt)
        assert len(hits) == 7
        assert all(h.row["kind"] == "image" and h.row["width"] >= 500 for h in hits)
        matching = [i for i in range(200) if i % 4 == 0 and 100 * (i % 10) >= 500]
        sims = vectors[matching] @ vectors[0]
        assert [h.id for h in hits] == [f"u{matching[j]}" for j in np.argsort(-sims)[:7]]
        assert len(store.search(vectors[0], 500, flt)) == len(matching)
        assert store.search(vectors[0], 5, Field("kind") == "video") == []

    def test_scan_streams_the_rows_a_filter_keeps_with_the_columns_asked(
        self,
        filled: tuple[Store, np.ndarray, list],
    ) -> None:
        store, vectors, rows = filled
        every = list(store.scan())
        assert sorted(r["id"] for r in every) == sorted(r["id"] for r in rows)
        assert "vector" not in every[0] and set(every[0]) == set(UNIT_COLUMNS) - {"vector"}
        pages = list(store.scan(Field("kind") == "page", columns=["id", "vector", "width"]))
        assert {r["id"] for r in pages} == {r["id"] for r in rows if r["kind"] == "page"}
        assert all(set(r) == {"id", "vector", "width"} for r in pages)
        first = next(r for r in pages if r["id"] == "u1")
        np.testing.assert_allclose(first["vector"], vectors[1], atol=1e-6)
        with pytest.raises(StoreError, match="unknown column"):
            list(store.scan(columns=["nope"]))

    def test_search_many_answers_like_search_one_by_one(
        self,
        filled: tuple[Store, np.ndarray, list],
    ) -> None:
        store, _, _ = filled
        queries = unit_vectors(12, seed=3)
        flt = Field("width") >= 500
        for where in (None, flt):
            together = store.search_many(queries, 6, where)
            alone = [store.search(q, 6, where) for q in queries]
            assert [[h.id for h in hits] for hits in together] == [[h.id for h in a] for a in alone]
            for hits, single in zip(together, alone, strict=True):
                scores = [h.score for h in single]
                np.testing.assert_allclose([h.score for h in hits], scores, atol=1e-6)
        assert store.search_many(queries[:2], 3, Field("kind") == "video") == [[], []]
        assert store.search_many(queries[:0], 3) == []
        one = store.search_many(queries[:1], 4)  # a single query answers like several
        assert [h.id for h in one[0]] == [h.id for h in store.search(queries[0], 4)]
        with pytest.raises(StoreError, match="16-d"):
            store.search_many(np.ones((2, 5), dtype=np.float32), 3)

    def test_search_rejects_wrong_dimension(self, filled: tuple[Store, np.ndarray, list]) -> None:
        store, _, _ = filled
        with pytest.raises(StoreError, match="16-d"):
            store.search(np.ones(DIM * 2, dtype=np.float32), 3)

    def test_models(self, store: Store) -> None:
        store.upsert(make_rows(unit_vectors(4), prefix="a", model="heron-lite@1.0"))
        store.upsert(make_rows(unit_vectors(4), prefix="b", model="clip@2"))
        assert store.models() == {"heron-lite@1.0", "clip@2"}
        assert store.count(Field("model") == "clip@2") == 4

    def test_insert_new_appends_and_is_searchable(self, store: Store) -> None:
        vectors = unit_vectors(40)
        rows = make_rows(vectors)
        assert store.insert_new(rows[:20]) == 20
        assert store.insert_new(rows[20:]) == 20
        assert store.count() == 40 and store.ids() == {f"u{i}" for i in range(40)}
        hit = store.search(vectors[33], k=1)[0]
        assert hit.id == "u33" and hit.score == pytest.approx(1.0, abs=1e-5)
        store.upsert(make_rows(vectors[:1]))  # upsert of a present id still replaces, not appends
        assert store.count() == 40

    def test_keyword_search_phrases_and_all_terms(self, store: Store) -> None:
        v = unit_vectors(3)
        store.upsert(
            [
                {"id": "a", "vector": v[0], "model": "m@1", "terms": "red sports car"},
                {"id": "b", "vector": v[1], "model": "m@1", "terms": "car red", "kind": "page"},
                {"id": "c", "vector": v[2], "model": "m@1", "terms": "blue boat"},
            ]
        )
        assert [h.id for h in store.keyword_search("red sports", 5)] == ["a"]
        assert {h.id for h in store.keyword_search("car red", 5, match="all")} == {"a", "b"}
        assert [h.id for h in store.keyword_search("car red", 5)] == ["b"]  # in that order
        found = store.keyword_search("car red", 5, Field("kind") == "page", match="all")
        assert [h.id for h in found] == ["b"]
        assert store.keyword_search("zebra", 5) == []
