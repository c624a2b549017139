"""Searcher scoping: a store holding several models' vectors is searched within the query model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from heron.catalog import INDEXED, Catalog, FileRecord
from heron.models.encoder import load_encoder
from heron.search.engine import ModelMismatchError, Searcher
from heron.store.lance import LanceStore
from tests.fixtures.tiny_heron import DIM, build_tiny_heron


def _unit(i: int, model: str, vector: np.ndarray) -> dict[str, object]:
    return {"id": f"u{i}", "vector": vector, "model": model, "path": f"/p/{i}.jpg"}


def test_search_stays_within_the_query_model(tmp_path: Path) -> None:
    encoder = load_encoder(build_tiny_heron(tmp_path / "tiny").path)
    query = encoder.embed_texts(["a red car"])[0]
    store = LanceStore(tmp_path / "vectors.lance", dim=DIM)
    catalog = Catalog(tmp_path / "catalog.sqlite")
    searcher = Searcher(store, catalog, encoder, tmp_path / "thumbs")

    store.insert_new([_unit(0, "other@1", query), _unit(1, encoder.stamp, -query)])
    catalog.save([FileRecord(f"/p/{i}.jpg", 1, 1, INDEXED, f"u{i}", None) for i in (0, 1)])
    hits = searcher.search(query, k=5)
    assert [hit.id for hit in hits] == ["u1"]  # the other model's identical vector is left out
    ranked_so_far: list[int] = []
    ranked = searcher.rank_many(np.stack([query, -query]), k=5, on_progress=ranked_so_far.append)
    assert ranked == [["u1"], ["u1"]] and ranked_so_far == [2]


def test_search_refuses_an_index_without_the_query_model(tmp_path: Path) -> None:
    encoder = load_encoder(build_tiny_heron(tmp_path / "tiny").path)
    store = LanceStore(tmp_path / "vectors.lance", dim=DIM)
    store.insert_new([_unit(0, "other@1", np.eye(DIM, dtype=np.float32)[0])])
    searcher = Searcher(store, Catalog(tmp_path / "c.sqlite"), encoder, tmp_path / "thumbs")
    with pytest.raises(ModelMismatchError, match="other@1"):
        searcher.search(np.eye(DIM, dtype=np.float32)[0], k=3)


@pytest.mark.parametrize(
    ("languages", "text", "script"),
    [
        (["en"], "一只狗在草地上奔跑", "Chinese (Han)"),
        (["en"], "собака на пляже", "Cyrillic"),
        (["en", "fr"], "a dog — 狗", "Chinese (Han)"),
        (["en", "zh"], "собака на пляже", "Cyrillic"),  # bilingual, but not Russian
        (["en", "ja"], "犬とビーチ", None),
        (["en"], "a café in Zürich, naïve façade", None),  # Latin letters with accents
        (["en"], "2 dogs, 3 cats!", None),
        (["en", "zh"], "一只狗", None),  # the model says it reads Chinese
        ([], "一只狗", None),  # the bundle does not say: no guess
    ],
)
def test_language_warning_names_the_unreadable_script(
    tmp_path: Path, languages: list[str], text: str, script: str | None
) -> None:
    bundle = build_tiny_heron(tmp_path / "tiny").path
    config = json.loads((bundle / "config.json").read_text())
    (bundle / "config.json").write_text(json.dumps({**config, "languages": languages}))
    searcher = Searcher(
        LanceStore(tmp_path / "v.lance", dim=DIM),
        Catalog(tmp_path / "c.sqlite"),
        load_encoder(bundle),
        tmp_path / "thumbs",
    )
    warning = searcher.language_warning(text)
    if script is None:
        assert warning is None
    else:
        assert warning is not None and f"written in {script} script" in warning
        assert f"understands {'English, Chinese' if 'zh' in languages else 'English'}" in warning
        assert "tiny-heron" in warning
