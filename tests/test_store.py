"""The store layer: Filter AST, --where parsing, Lance SQL, and LanceStore (its contract run
and its own index behaviour)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from heron.store.base import UNIT_COLUMNS, StoreError
from heron.store.filters import (
    And,
    Compare,
    Contains,
    Field,
    FilterError,
    In,
    Not,
    parse_filter,
)
from heron.store.lance import AnnSettings, LanceStore
from heron.store.lance_sql import to_lance_sql
from tests.store_contract import DIM, NASTY, StoreContract, make_rows, unit_vectors


@pytest.fixture
def store(tmp_path: Path) -> LanceStore:
    s = LanceStore(tmp_path / "db", dim=DIM)
    yield s
    s.close()


@pytest.fixture
def filled(store: LanceStore) -> tuple[LanceStore, np.ndarray, list[dict[str, Any]]]:
    vectors = unit_vectors(200)
    rows = make_rows(vectors)
    store.upsert(rows)
    return store, vectors, rows


def sql(flt: Any) -> str:
    return to_lance_sql(flt, UNIT_COLUMNS)


# --------------------------------------------------------------------------- Filter AST


def test_field_comparisons_build_nodes() -> None:
    assert (Field("kind") == "image") == Compare("kind", "=", "image")
    assert (Field("width") >= 800) == Compare("width", ">=", 800)
    assert Field("format").isin(["jpeg", "png"]) == In("format", ("jpeg", "png"))
    both = (Field("kind") == "image") & ~Field("path").contains("tmp")
    assert both == And(Compare("kind", "=", "image"), Not(Contains("path", "tmp")))
    assert hash(both) == hash(And(Compare("kind", "=", "image"), Not(Contains("path", "tmp"))))


def test_filter_misuse_is_a_clear_error() -> None:
    with pytest.raises(TypeError, match="parentheses"):
        Field("kind") == "image" & Field("width")  # noqa: B015
    with pytest.raises(TypeError, match="truth value"):
        bool(Field("width") > 1)
    with pytest.raises(TypeError, match="truth value"):
        1 < Field("width") < 5  # noqa: B015
    with pytest.raises(FilterError, match="unsupported filter value"):
        Field("width") == [1, 2]  # noqa: B015
    with pytest.raises(FilterError, match="finite"):
        Field("width") > float("nan")  # noqa: B015
    with pytest.raises(FilterError, match="at least one"):
        Field("kind").isin([])
    with pytest.raises(FilterError, match="list of values"):
        Field("kind").isin("image")


def test_to_lance_sql_renders_each_node() -> None:
    flt = ((Field("kind") == "image") | (Field("width") < 100)) & ~Field("format").isin(["gif"])
    assert sql(flt) == ("(((`kind` = 'image') OR (`width` < 100)) AND (NOT (`format` IN ('gif'))))")
    assert sql(Field("modified_at") >= datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)) == (
        "(`modified_at` >= TIMESTAMP '2024-01-02 03:04:05.000000+00:00')"
    )
    eastern = timezone(timedelta(hours=-5))
    assert "08:00:00" in sql(Field("indexed_at") < datetime(2024, 1, 1, 3, tzinfo=eastern))
    assert sql(Field("path").contains("50%_")) == "contains(`path`, '50%_')"
    assert sql(Field("thumbnail").is_null()) == "(`thumbnail` IS NULL)"
    assert sql(Field("width") >= 2.5) == "(CAST(`width` AS DOUBLE) >= 2.5)"
    assert sql(Field("width") >= 800.0) == "(`width` >= 800)"


@pytest.mark.parametrize("value", NASTY)
def test_string_literals_cannot_escape(value: str) -> None:
    rendered = sql(Field("path") == value)
    assert rendered == "(`path` = '" + value.replace("'", "''") + "')"
    # The literal is a single SQL string: every quote inside it is doubled.
    body = rendered[len("(`path` = '") : -len("')")]
    assert body.replace("''", "").count("'") == 0


def test_filter_validation_against_columns() -> None:
    with pytest.raises(FilterError, match="unknown field 'colour'"):
        sql(Field("colour") == "red")
    with pytest.raises(FilterError, match="unknown field"):
        sql(Field("kind`) OR (1=1") == "x")
    with pytest.raises(FilterError, match="vector"):
        sql(Field("vector") == "x")
    with pytest.raises(FilterError, match="holds int32"):
        sql(Field("width") == "800")
    with pytest.raises(FilterError, match="holds string"):
        sql(Field("kind") == 3)
    with pytest.raises(FilterError, match="holds timestamp"):
        sql(Field("modified_at") > "2024-01-01")
    with pytest.raises(FilterError, match="NUL"):
        sql(Field("kind") == "a\x00b")
    with pytest.raises(FilterError, match="64-bit"):
        sql(Field("bytes") > 2**64)


# --------------------------------------------------------------------------- --where syntax


def test_parse_filter_cli_syntax() -> None:
    assert parse_filter("kind=image") == Compare("kind", "=", "image")
    assert parse_filter("width >= 800") == Compare("width", ">=", 800)
    assert parse_filter("format in jpeg,png") == In("format", ("jpeg", "png"))
    assert parse_filter("kind=image, format in jpeg,png, width>800") == And(
        And(Compare("kind", "=", "image"), In("format", ("jpeg", "png"))),
        Compare("width", ">", 800),
    )
    assert parse_filter("kind == page AND height<=10") == And(
        Compare("kind", "=", "page"), Compare("height", "<=", 10)
    )
    assert parse_filter("format not in (gif, 'we,ird')") == Not(In("format", ("gif", "we,ird")))
    assert parse_filter('path~"My Photos"') == Contains("path", "My Photos")
    assert parse_filter('kind!="it\'s"') == Compare("kind", "!=", "it's")
    assert parse_filter("modified_at>=2024-03-01") == Compare(
        "modified_at", ">=", datetime(2024, 3, 1, tzinfo=UTC)
    )
    assert parse_filter("indexed_at<2024-03-01T12:00:00+02:00") == Compare(
        "indexed_at", "<", datetime(2024, 3, 1, 10, tzinfo=UTC)
    )


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("", "empty"),
        ("colour=red", "unknown field 'colour'"),
        ("vector=1", "unknown field"),
        ("width>=wide", "not a valid int32"),
        ("modified_at>yesterday", "not a valid timestamp"),
        ("kind=image or kind=page", "OR is not supported"),
        ("kind image", "expected an operator"),
        ("kind=", "unexpected end"),
        ("width~8", "needs a text field"),
        ("kind=image width=3", "expected ',' or AND"),
        ("format in (jpeg, png", "unexpected end"),
        ("=image", "expected a field name"),
    ],
)
def test_parse_filter_errors(expr: str, message: str) -> None:
    with pytest.raises(FilterError, match=message):
        parse_filter(expr)


# --------------------------------------------------------------------------- LanceStore


class TestLanceStoreMeetsTheContract(StoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[LanceStore]:
        s = LanceStore(tmp_path / "db", dim=DIM)
        yield s
        s.close()


class TestLanceStoreWithItsMirrorMeetsTheContract(StoreContract):
    """The same contract answered by the in-memory FAISS mirror (heron.store.ann_mirror)."""

    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[LanceStore]:
        s = LanceStore(tmp_path / "db", dim=DIM, ann=AnnSettings(threshold=1))
        s.upsert(make_rows(unit_vectors(1), prefix="seed"))
        s.optimize()  # builds the mirror, which then follows every write
        s.delete(["seed0"])
        assert s.index_info()["mirror"] is not None
        yield s
        assert s.index_info()["mirror"] is not None, "a write left the mirror behind"
        s.close()


def test_reopen_after_close_persists(tmp_path: Path) -> None:
    vectors = unit_vectors(20)
    with LanceStore(tmp_path / "db", dim=DIM) as store:
        store.upsert(make_rows(vectors))
    with pytest.raises(StoreError, match="closed"):
        store.count()
    reopened = LanceStore(tmp_path / "db")  # dim comes from the table
    assert reopened.dim == DIM and reopened.count() == 20
    np.testing.assert_array_equal(reopened.get(["u3"])[0]["vector"], vectors[3])
    reader = LanceStore(tmp_path / "db", dim=DIM, read_only=True)
    assert reader.search(vectors[3], 1)[0].id == "u3"
    with pytest.raises(StoreError, match="read-only"):
        reader.upsert(make_rows(vectors[:1]))
    with pytest.raises(StoreError, match="read-only"):
        reader.optimize()


def test_read_only_open_creates_nothing(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no store"):
        LanceStore(tmp_path / "absent", dim=DIM, read_only=True)
    assert not (tmp_path / "absent").exists()
    (tmp_path / "empty").mkdir()
    with pytest.raises(StoreError, match="no store"):
        LanceStore(tmp_path / "empty", dim=DIM, read_only=True)
    assert list((tmp_path / "empty").iterdir()) == []

    path = tmp_path / "db"
    with LanceStore(path, dim=DIM) as writer:
        writer.upsert(make_rows(unit_vectors(5)))

    def snapshot() -> list[tuple[str, int]]:
        return sorted((str(p), p.stat().st_mtime_ns) for p in path.rglob("*"))

    before = snapshot()
    with LanceStore(path, read_only=True) as reader:
        reader.search(unit_vectors(1)[0], 3, Field("kind") == "image")
        assert reader.count() == 5 and reader.models() == {"m@1"} and len(reader.ids()) == 5
    assert snapshot() == before


def test_dimension_mismatch_is_a_clear_error(tmp_path: Path) -> None:
    LanceStore(tmp_path / "db", dim=DIM).close()
    with pytest.raises(StoreError, match="16-d vectors but 32-d"):
        LanceStore(tmp_path / "db", dim=32)
    with pytest.raises(StoreError, match="pass dim"):
        LanceStore(tmp_path / "new")


def test_optimize_builds_index_and_keeps_results(tmp_path: Path) -> None:
    n, dim = 3000, 32
    vectors = unit_vectors(n, dim=dim, clusters=30)
    # Lance trains IVF with random sampling: at 6 of 20 probes recall ranged 0.89-0.99 over runs,
    # at 8 probes 0.97-1.00, so 8 keeps the bar below from depending on the draw.
    ann = AnnSettings(threshold=2000, rows_per_partition=150, nprobes=8, refine_factor=5)
    store = LanceStore(tmp_path / "db", dim=dim, ann=ann)
    for start in range(0, n, 500):  # several commits, so compaction has work to do
        store.upsert(make_rows(vectors[start : start + 500], start=start))
    queries = unit_vectors(30, dim=dim, seed=5, clusters=30)
    exact = [[h.id for h in store.search(q, 10)] for q in queries]

    store.optimize()
    info = store.index_info()
    assert info is not None and info["indexed_rows"] == n and info["trained_rows"] == n
    approx = [[h.id for h in store.search(q, 10)] for q in queries]
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, exact, strict=True)])
    assert recall >= 0.9

    flt = Field("kind") == "slide"
    hits = store.search(queries[0], 10, flt)
    assert len(hits) == 10 and all(h.row["kind"] == "slide" for h in hits)
    rare = Field("bytes") < 1005  # 5 rows, scattered over partitions: all must still be found
    assert len(store.search(queries[0], 10, rare)) == 5
    assert [len(hits) for hits in store.search_many(queries[:3], 10, rare)] == [5, 5, 5]

    extra = unit_vectors(100, dim=dim, seed=7, clusters=30)
    store.upsert(make_rows(extra, prefix="new"))
    assert store.search(extra[0], 1)[0].id == "new0"  # unindexed rows are searched too
    store.optimize()
    info = store.index_info()
    assert info is not None and info["unindexed_rows"] == 0 and store.count() == n + 100
    store.close()


def test_optimize_below_threshold_stays_exact(filled: tuple[LanceStore, np.ndarray, list]) -> None:
    store, vectors, _ = filled
    before = [h.id for h in store.search(vectors[1], 10)]
    store.optimize()
    assert store.index_info() is None
    assert [h.id for h in store.search(vectors[1], 10)] == before


def test_optimize_retrains_after_growth(tmp_path: Path) -> None:
    dim = 16
    ann = AnnSettings(threshold=500, rows_per_partition=100, retrain_growth=4.0)
    store = LanceStore(tmp_path / "db", dim=dim, ann=ann)
    store.upsert(make_rows(unit_vectors(600, dim=dim)))
    store.optimize()
    assert (store.index_info() or {})["trained_rows"] == 600
    store.upsert(make_rows(unit_vectors(1000, dim=dim, seed=1), start=600))
    store.optimize()  # 1600 rows: under 4x, so the index is only refreshed
    info = store.index_info() or {}
    assert info["trained_rows"] == 600 and info["unindexed_rows"] == 0
    store.upsert(make_rows(unit_vectors(1000, dim=dim, seed=2), start=1600))
    store.optimize()
    assert (store.index_info() or {})["trained_rows"] == 2600
    assert store.count() == 2600
    store.close()


def test_ann_settings_are_checked() -> None:
    with pytest.raises(StoreError):
        AnnSettings(threshold=0)
    with pytest.raises(StoreError):
        AnnSettings(retrain_growth=1.0)


def test_reader_follows_writer_through_optimize(tmp_path: Path) -> None:
    vectors = unit_vectors(300)
    writer = LanceStore(tmp_path / "db", dim=DIM, keep_versions=timedelta(milliseconds=1))
    writer.upsert(make_rows(vectors[:100]))
    reader = LanceStore(tmp_path / "db", read_only=True)
    assert reader.count() == 100
    for start in (100, 200):
        writer.upsert(make_rows(vectors[start : start + 100], start=start))
    writer.delete(["u0"])
    writer.optimize()  # compacts and removes every superseded version
    assert reader.count() == 299
    assert reader.search(vectors[250], 1)[0].id == "u250"
    writer.close()
    reader.close()
