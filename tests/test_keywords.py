"""Keyword search: terms in every script, the store's full-text index, and `search --keyword`."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from heron import Heron
from heron.search.engine import QueryError
from heron.store.filters import Field
from heron.store.lance import LanceStore
from heron.understand.terms import index_text, terms
from tests.conftest import require_data, run_cli, run_json


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("横向文本框", ["横向", "向文", "文本", "本框"]),
        ("IMG_Beach-Sunset 2024", ["img", "beach", "sunset", "2024"]),
        ("iPhone拍的狗", ["iphone", "拍的", "的狗"]),
        ("狗", ["狗"]),
        ("Ｆｕｌｌｗｉｄｔｈ　ＡＢＣ", ["fullwidth", "abc"]),  # NFKC folds full-width forms
        ("東京タワー", ["東京", "京タ", "タワ", "ワー"]),
        ("— !!! ...", []),
    ],
)
def test_terms_cut_every_script(text: str, expected: list[str]) -> None:
    assert terms(text) == expected
    assert index_text(text) == " ".join(expected)


def _rows(texts: list[str]) -> list[dict]:
    vectors = np.eye(len(texts), 8, dtype=np.float32)
    return [
        {
            "id": f"u{i}",
            "vector": vector,
            "model": "m@1",
            "kind": "image" if i % 2 else "page",
            "text": text,
            "terms": index_text(text),
        }
        for i, (text, vector) in enumerate(zip(texts, vectors, strict=True))
    ]


TEXTS = [
    "横向文本框 竖向文本框 English text",
    "a dog running on the beach",
    "海滩上奔跑的狗",
    "the dog's beach house",
    "Debian 教育版 手册",
]


def test_store_finds_phrases_with_bm25_and_filters_inside(tmp_path: Path) -> None:
    store = LanceStore(tmp_path / "db", dim=8)
    store.upsert(_rows(TEXTS))
    found = [hit.id for hit in store.keyword_search(index_text("文本框"), 5)]
    assert found == ["u0"]
    assert [h.id for h in store.keyword_search(index_text("奔跑的狗"), 5)] == ["u2"]
    assert {h.id for h in store.keyword_search(index_text("beach"), 5)} == {"u1", "u3"}
    # A phrase, not a bag of words: "beach dog" is in neither text in that order.
    assert store.keyword_search(index_text("beach dog"), 5) == []
    assert [
        h.id for h in store.keyword_search(index_text("beach"), 5, Field("kind") == "page")
    ] == []
    hits = store.keyword_search(index_text("Debian 手册"), 5)
    assert hits == []  # not consecutive
    hit = store.keyword_search(index_text("教育版"), 5)[0]
    assert hit.id == "u4" and hit.score > 0 and hit.row["text"] == TEXTS[4]
    # Rows written after the index was built are found too, before and after optimize.
    store.upsert(_rows([*TEXTS, "红色的汽车"])[5:])
    assert [h.id for h in store.keyword_search(index_text("汽车"), 5)] == ["u5"]
    store.optimize()
    assert [h.id for h in store.keyword_search(index_text("汽车"), 5)] == ["u5"]
    store.delete(["u5"])
    assert store.keyword_search(index_text("汽车"), 5) == []
    assert store.keyword_search("", 5) == [] and store.keyword_search("x", 0) == []
    store.close()


def test_a_store_from_before_terms_gets_the_column_and_the_run_fills_it(tmp_path: Path) -> None:
    import lancedb
    import pyarrow as pa

    from heron.ingest.pipeline import backfill_terms
    from heron.store.lance import unit_schema

    old = pa.schema([f for f in unit_schema(8) if f.name != "terms"])
    table = lancedb.connect(tmp_path / "db").create_table("units", schema=old)
    rows = _rows(TEXTS[:2])
    table.add(
        pa.Table.from_pylist(
            [
                {**{f.name: None for f in old}, **{k: v for k, v in r.items() if k != "terms"}}
                | {"vector": r["vector"].tolist(), "extra": "{}"}
                for r in rows
            ],
            schema=old,
        )
    )
    store = LanceStore(tmp_path / "db", dim=8)
    assert store.keyword_search(index_text("dog"), 5) == []
    assert backfill_terms(store) == 2
    assert [h.id for h in store.keyword_search(index_text("dog"), 5)] == ["u1"]
    assert backfill_terms(store) == 0
    store.close()


@pytest.fixture
def named(heron_lite: Path, tmp_path: Path) -> dict:
    """Photos under names a person gives them, in English and Chinese."""
    photos = require_data("photos")
    folder = tmp_path / "pics"
    folder.mkdir()
    sources = sorted(photos.glob("*.jpg"))[20:24]  # not the content of the odd-named copy
    names = ["海边日落_2023.jpg", "IMG_beach-sunset.jpg", "生日聚会 照片.jpg", "dog-park.jpg"]
    for source, name in zip(sources, names, strict=True):
        shutil.copy(source, folder / name)
    odd = require_data("broken")
    cjk = next(p for p in odd.iterdir() if p.suffix == ".jpg" and not p.name.isascii())
    shutil.copy(cjk, folder / cjk.name)
    data_dir = tmp_path / "data"
    run_cli("index", str(folder), data_dir=data_dir)
    return {"folder": folder, "data_dir": data_dir, "cjk": cjk.name}


def test_keyword_search_finds_file_names_in_both_languages(named: dict) -> None:
    data_dir, folder = named["data_dir"], named["folder"]
    result = run_json("search", "--keyword", "日落", data_dir=data_dir)
    assert [Path(h["path"]).name for h in result["hits"]] == ["海边日落_2023.jpg"]
    assert result["keyword"] == "日落" and result["hits"][0]["excerpt"] == "海边日落 2023"
    hits = run_json("search", "--keyword", "beach sunset", data_dir=data_dir)["hits"]
    assert [Path(h["path"]).name for h in hits] == ["IMG_beach-sunset.jpg"]
    hits = run_json("search", "--keyword", "聚会", data_dir=data_dir)["hits"]
    assert [Path(h["path"]).name for h in hits] == ["生日聚会 照片.jpg"]
    stem = Path(named["cjk"]).stem
    cjk_part = "".join(ch for ch in stem if "\u4e00" <= ch <= "\u9fff")
    hits = run_json("search", "--keyword", cjk_part, data_dir=data_dir)["hits"]
    assert [Path(h["path"]).name for h in hits] == [named["cjk"]]
    table = run_cli("search", "--keyword", "sunset", data_dir=data_dir).stdout
    assert str(folder / "IMG_beach-sunset.jpg") in table and "1 results in" in table
    none = run_cli("search", "--keyword", "snowboard", data_dir=data_dir)
    assert "no results" in (none.stdout + none.stderr).lower()


def test_keyword_search_in_the_python_api(named: dict) -> None:
    with Heron(named["data_dir"]) as heron:
        hits = heron.search(keyword="dog park", k=3)
        assert [Path(h.path).name for h in hits] == ["dog-park.jpg"]
        assert heron.search(keyword="dog park", filter="format=png") == []
        with pytest.raises(QueryError, match="no letters or digits"):
            heron.search(keyword="!!!")
        with pytest.raises(QueryError, match="takes no text, query or image"):
            heron.search(text="a dog", keyword="dog")
