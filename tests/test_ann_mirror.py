"""The ANN mirror beside a Lance table: same answers as Lance, kept current, never trusted stale."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from heron.store.base import UNIT_COLUMNS, StoreError
from heron.store.filters import Field, Filter, IsNull
from heron.store.lance import AnnSettings, LanceStore
from tests.store_contract import DIM, NASTY, T0, make_rows, unit_vectors

SMALL = AnnSettings(threshold=50)


def filled(path: Path, n: int = 120, ann: AnnSettings = SMALL) -> tuple[LanceStore, np.ndarray]:
    store = LanceStore(path, dim=DIM, ann=ann)
    vectors = unit_vectors(n, seed=3)
    rows = make_rows(vectors)
    for i, row in enumerate(rows):
        row["text"] = NASTY[i % len(NASTY)]
        row["modified_at"] = T0 + timedelta(days=i)
        row["brightness"] = None if i % 5 == 0 else i / n
        row["camera"] = "" if i % 3 else "canon eos r5"
    store.upsert(rows)
    store.optimize()
    return store, vectors


FILTERS: list[Filter] = [
    Field("kind") == "image",
    Field("kind").isin(["page", "figure"]),
    ~(Field("kind") == "slide"),
    (Field("width") >= 500) & (Field("height") < 400),
    (Field("width") > 2.5) | (Field("kind") == "page"),
    Field("brightness") > 0.5,
    ~(Field("brightness") > 0.5),  # NULL stays unknown under NOT, as in SQL
    IsNull("brightness"),
    Field("modified_at") >= datetime(2024, 6, 1, tzinfo=UTC),
    Field("modified_at") < datetime(2024, 5, 10),  # naive means UTC
    Field("camera").startswith("canon"),
    Field("text").contains("'"),
    Field("text") == "x' OR 1=1 --",
    Field("path").startswith("/photos/1"),
    Field("bytes") != 0,
]


def test_the_mirror_keeps_the_rows_lance_keeps_for_every_filter(tmp_path: Path) -> None:
    store, vectors = filled(tmp_path / "db")
    assert store.index_info()["mirror"]["rows"] == 120
    lance = LanceStore(tmp_path / "db", ann=AnnSettings(threshold=50, mirror=False))
    for flt in FILTERS:
        expected = {hit.id for hit in lance.search(vectors[0], 200, flt)}
        got = {hit.id for hit in store.search(vectors[0], 200, flt)}
        assert got == expected, flt
        assert len(expected) == lance.count(flt), flt


def test_the_mirror_refuses_what_lance_refuses(tmp_path: Path) -> None:
    store, vectors = filled(tmp_path / "db")
    assert store.index_info()["mirror"] is not None
    for bad, named in ((Field("nope") == 1, "nope"), (Field("width") == "wide", "width")):
        with pytest.raises(StoreError, match=named):
            store.search(vectors[0], 5, bad)


def test_recall_against_exact_search_with_selective_filters(tmp_path: Path) -> None:
    n = 6000
    vectors = unit_vectors(n, seed=9, clusters=40)
    store = LanceStore(tmp_path / "db", dim=DIM, ann=AnnSettings(threshold=1000))
    rng = np.random.default_rng(4)
    kinds = rng.choice(["figure", "page", "image"], n, p=[0.01, 0.49, 0.5])
    rows = make_rows(vectors)
    for row, kind in zip(rows, kinds, strict=True):
        row["kind"] = str(kind)
    store.insert_new(rows)
    store.optimize()
    assert store.index_info()["mirror"]["lists"] > 1
    queries = unit_vectors(40, seed=10, clusters=40)
    for flt, keep in (
        (None, None),
        (Field("kind") == "figure", "figure"),
        (Field("kind") != "image", None),
    ):
        subset = (
            np.arange(n)
            if flt is None
            else np.flatnonzero(kinds == keep if keep else kinds != "image")
        )
        recalls = []
        for q in queries:
            sims = vectors[subset] @ q
            truth = {f"u{subset[i]}" for i in np.argsort(-sims)[:10]}
            got = {hit.id for hit in store.search(q, 10, flt)}
            recalls.append(len(got & truth) / 10)
        assert np.mean(recalls) >= 0.95, (flt, np.mean(recalls))


def test_a_reopened_store_loads_the_saved_mirror(tmp_path: Path) -> None:
    store, vectors = filled(tmp_path / "db")
    store.close()
    again = LanceStore(tmp_path / "db", ann=SMALL)
    assert again.search(vectors[7], 1)[0].id == "u7"
    assert again.index_info()["mirror"] is not None


def test_another_writer_makes_the_mirror_stale_until_it_is_rebuilt(tmp_path: Path) -> None:
    reader, vectors = filled(tmp_path / "db")
    writer = LanceStore(tmp_path / "db", ann=SMALL)
    writer.delete(["u7"])
    writer.upsert(make_rows(vectors[7:8], prefix="moved"))
    assert reader.index_info()["mirror"] is None  # stale: answered by Lance meanwhile
    assert [hit.id for hit in reader.search(vectors[7], 1)] == ["moved0"]
    writer.optimize()  # saves a mirror of the new version, which the reader picks up
    assert [hit.id for hit in reader.search(vectors[7], 1)] == ["moved0"]
    assert reader.index_info()["mirror"]["version"] == writer.index_info()["mirror"]["version"]


def test_own_writes_keep_the_mirror_current(tmp_path: Path) -> None:
    store, vectors = filled(tmp_path / "db")
    flipped = make_rows(-vectors[:3])  # u0..u2 now point the other way
    store.upsert(flipped)
    store.delete(["u5"])
    assert store.index_info()["mirror"] is not None
    assert store.search(-vectors[1], 1)[0].id == "u1"
    assert "u5" not in {hit.id for hit in store.search(vectors[5], 120)}
    assert store.search(vectors[5], 200, Field("kind") == "page")  # masks recomputed
    store.close()
    # Not saved since optimize: a new process must not trust the saved (older) mirror.
    again = LanceStore(tmp_path / "db", ann=SMALL)
    assert again.index_info()["mirror"] is None
    assert again.search(-vectors[1], 1)[0].id == "u1"


def test_an_interrupted_save_is_never_loaded(tmp_path: Path) -> None:
    store, vectors = filled(tmp_path / "db")
    version = store.index_info()["mirror"]["version"]
    store.close()
    folder = tmp_path / "db" / "units.ann"
    current = json.loads((folder / "CURRENT.json").read_text())
    shutil.rmtree(folder / current["folder"])  # CURRENT names files that are gone
    (folder / f"v{version + 1}.tmp").mkdir()  # and a save died half way
    again = LanceStore(tmp_path / "db", ann=SMALL)
    assert again.index_info()["mirror"] is None
    assert again.search(vectors[9], 1)[0].id == "u9"
    again.optimize()
    assert again.index_info()["mirror"] is not None
    assert not (folder / f"v{version + 1}.tmp").exists()


def test_mirror_can_be_turned_off(tmp_path: Path) -> None:
    store, _ = filled(tmp_path / "db", ann=AnnSettings(threshold=50, mirror=False))
    assert store.index_info()["mirror"] is None
    assert not (tmp_path / "db" / "units.ann").exists()
    assert set(UNIT_COLUMNS) >= {"kind", "brightness"}
