"""Mixed queries: texts and pictures with weights and negatives."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from heron.search.mixed import MixedPart, MixedSyntaxError, parse_mixed
from tests.conftest import require_data


def test_parts_weights_and_signs() -> None:
    assert parse_mixed('"a beach" + 0.5*holiday.jpg - "people"') == [
        MixedPart(1.0, text="a beach"),
        MixedPart(0.5, image=Path("holiday.jpg")),
        MixedPart(-1.0, text="people"),
    ]
    assert parse_mixed("'My Photos/a b.jpg' - 2*\"snow\"") == [
        MixedPart(1.0, image=Path("My Photos/a b.jpg")),
        MixedPart(-2.0, text="snow"),
    ]
    assert parse_mixed('"海滩"') == [MixedPart(1.0, text="海滩")]


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("", "empty"),
        ('"a" "b"', "joined by"),
        ('- "people"', "positive weight"),
        ('"a" + ""', "empty text"),
        ('"a" + 0.5*', "cannot read"),
    ],
)
def test_bad_mixed_queries_are_clear_errors(expr: str, message: str) -> None:
    with pytest.raises(MixedSyntaxError, match=message):
        parse_mixed(expr)


def _snow_dogs_and_others(photos: Path) -> tuple[set[str], list[str]]:
    records = [json.loads(line) for line in (photos / "captions.jsonl").open(encoding="utf-8")]
    dogs = [r for r in records if all("dog" in c.lower() for c in r["en"])]
    snow = {r["image"] for r in dogs if sum("snow" in c.lower() for c in r["en"]) >= 3}
    return snow, [r["image"] for r in dogs]


def test_a_negative_part_pushes_its_meaning_down(heron_lite: Path, tmp_path: Path) -> None:
    from heron import Heron

    photos = require_data("photos")
    snow, dogs = _snow_dogs_and_others(photos)
    assert len(snow) >= 2
    folder = tmp_path / "dogs"
    folder.mkdir()
    for name in dogs:
        (folder / name).symlink_to(photos / name)
    with Heron(tmp_path / "data") as heron:
        heron.index([folder])
        k = len(dogs)

        def snow_ranks(**query: object) -> float:
            names = [Path(h.path).name for h in heron.search(k=k, **query)]  # type: ignore[arg-type]
            return float(np.mean([names.index(name) for name in snow]))

        plain = snow_ranks(text="a dog", fusion=False)
        away = snow_ranks(mix='"a dog" - 0.7*"snow"')
        towards = snow_ranks(mix='"a dog" + "snow"')
        assert towards < plain < away
        example = photos / sorted(snow)[0]
        hits = heron.search(mix=[(example, 1.0), ("a dog", 0.3)], k=1)
        assert Path(hits[0].path).name == example.name  # a picture part finds itself
        with pytest.raises(Exception, match="cancel out"):
            heron.search(mix=[("a dog", 1.0), ("a dog", -1.0)])
