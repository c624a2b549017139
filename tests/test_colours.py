"""Colour tags: names in a perceptual space, warm/cool, brightness, saturation; filterable."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from heron.search.query import QuerySyntaxError, parse_query
from heron.store.filters import Contains, Not, Or
from heron.understand.colours import COLOUR_NAMES, colour_tags
from tests.conftest import require_data


def _solid(rgb: tuple[int, int, int], size: int = 96) -> Image.Image:
    return Image.new("RGB", (size, size), rgb)


@pytest.mark.parametrize(
    ("rgb", "name"),
    [
        ((220, 20, 30), "red"),
        ((120, 10, 10), "red"),
        ((255, 150, 0), "orange"),
        ((250, 230, 40), "yellow"),
        ((30, 150, 50), "green"),
        ((0, 200, 210), "cyan"),
        ((30, 60, 200), "blue"),
        ((120, 40, 150), "purple"),
        ((255, 170, 200), "pink"),
        ((120, 70, 20), "brown"),
        ((15, 15, 15), "black"),
        ((245, 245, 245), "white"),
        ((128, 130, 128), "grey"),
    ],
)
def test_a_solid_colour_gets_its_name(rgb: tuple[int, int, int], name: str) -> None:
    tags = colour_tags(_solid(rgb))
    assert tags.colours == [name] and tags.shares == [1.0]
    assert tags.to_dict()["colours_zh"] == [COLOUR_NAMES[name]]


def test_scheme_brightness_and_saturation() -> None:
    assert colour_tags(_solid((230, 90, 20))).scheme == "warm"
    assert colour_tags(_solid((20, 90, 230))).scheme == "cool"
    assert colour_tags(_solid((128, 128, 128))).scheme == "neutral"
    dark, light = colour_tags(_solid((30, 30, 30))), colour_tags(_solid((220, 220, 220)))
    assert dark.brightness < 0.2 < 0.8 < light.brightness
    assert colour_tags(_solid((128, 128, 128))).saturation < 0.05
    assert colour_tags(_solid((255, 0, 0))).saturation > 0.95


def test_dominant_colours_are_ranked_by_share_and_small_ones_dropped() -> None:
    pixels = np.zeros((100, 100, 3), dtype=np.uint8)
    pixels[:, :70] = (20, 60, 210)  # 70 % blue
    pixels[:, 70:97] = (250, 250, 250)  # 27 % white
    pixels[:, 97:] = (230, 20, 20)  # 3 % red: too little to name
    tags = colour_tags(pixels)
    assert tags.colours == ["blue", "white"]
    assert tags.shares[0] == pytest.approx(0.7, abs=0.03)


def test_a_real_photo_of_a_red_net_is_red() -> None:
    photo = require_data("photos", "1007320043_627395c3d8.jpg")
    with Image.open(photo) as image:
        tags = colour_tags(image)
    assert "red" in tags.colours and tags.scheme == "warm"


def test_colour_filters_in_the_query_language() -> None:
    red = parse_query("colour:red").filter
    assert red == Contains("colours", " red ")
    assert parse_query("colour:红,blue").filter == Or(
        Contains("colours", " red "), Contains("colours", " blue ")
    )
    assert parse_query("color:gray").filter == Contains("colours", " grey ")
    assert parse_query("colour!=red").filter == Not(Contains("colours", " red "))
    assert parse_query("scheme:warm brightness>=0.5").filter is not None
    for bad, message in [("colour:mauve", "not a colour"), ("brightness>2", "from 0 to 1")]:
        with pytest.raises(QuerySyntaxError, match=message):
            parse_query(bad)


def test_indexed_units_carry_colour_tags_and_filter_on_them(
    heron_lite: Path, tmp_path: Path
) -> None:
    from heron import Heron

    folder = tmp_path / "swatches"
    folder.mkdir()
    for name, rgb in [("tomato", (230, 40, 30)), ("sea", (20, 70, 200)), ("ash", (120, 120, 120))]:
        _solid(rgb, 300).save(folder / f"{name}.png")
    with Heron(tmp_path / "data") as heron:
        heron.index([folder])
        hits = heron.search(query="a picture colour:red")
        assert [Path(h.path).name for h in hits] == ["tomato.png"]
        assert hits[0].tags["colours"] == ["red"] and hits[0].tags["scheme"] == "warm"
        cool = heron.search(query="a picture scheme:cool")
        assert [Path(h.path).name for h in cool] == ["sea.png"]
        grey = heron.search(query="a picture saturation<0.1")
        assert [Path(h.path).name for h in grey] == ["ash.png"]
        assert heron.get(hits[0].id).tags["brightness"] > 0.3
