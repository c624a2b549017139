"""ACL labels by folder: a caller sees only units without labels or sharing one of its own, in
every search list, lookup, count and duplicate set (heron.catalog.acl)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from PIL import Image

from heron import Heron
from heron.catalog.acl import AclError, labels_for, parse_rules, visible_filter
from heron.config import Settings
from heron.store.filters import Contains, Field, Or
from tests.conftest import DATA, flickr_split


def test_rules_labels_and_the_filter() -> None:
    rules = parse_rules(["/srv/finance=Finance", "/srv/finance/board=board,finance"])
    assert labels_for("/srv/finance/q1.pdf", rules) == ("finance",)
    assert labels_for("/srv/finance/board/m.pdf", rules) == ("board", "finance")
    assert labels_for("/srv/financer/x.jpg", rules) == ()  # a prefix of the name is not a folder
    for bad in ("/srv", "=x", "/srv=", "/srv=two words", "/srv=a,,b"):
        with pytest.raises(AclError):
            parse_rules([bad])
    assert visible_filter(["Finance"]) == Or(Field("acl") == "", Contains("acl", " finance "))


@pytest.fixture(scope="module")
def library(heron_lite: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("acl")
    folders = {name: root / name for name in ("finance", "team", "public")}
    names = [str(r["image"]) for r in flickr_split("val")[:9]]
    for i, name in enumerate(names):
        folder = list(folders.values())[i % 3]
        folder.mkdir(exist_ok=True)
        shutil.copy(DATA / "flickr8k" / "images" / name, folder / name)
    secret = folders["finance"] / names[0]
    with Image.open(secret) as image:  # a near-copy of a finance photo, in the team folder
        image.convert("RGB").resize((160, 160)).save(folders["team"] / "copy-of-secret.jpg")
    rules = (f"{folders['finance']}=finance", f"{folders['team']}=team-a")
    settings = Settings.load(data_dir=root / "data", acl_rules=rules, min_relevance=0.0)
    heron = Heron(settings=settings)
    heron.index([root])
    yield {"heron": heron, "root": root, "folders": folders, "secret": secret}
    heron.close()


def _folders(hits: list, root: Path) -> set[str]:
    return {Path(hit.path).parent.name for hit in hits if Path(hit.path).is_relative_to(root)}


def test_searches_return_only_what_the_labels_may_see(library: dict) -> None:
    heron: Heron = library["heron"]
    root = library["root"]
    everything = heron.search("people", k=50, collapse=False)
    assert _folders(everything, root) == {"finance", "team", "public"}
    finance = heron.search("people", k=50, visible_to=["finance"])
    assert _folders(finance, root) == {"finance", "public"} and len(finance) == 6
    team = heron.search("people", k=50, visible_to=["team-a"])
    assert _folders(team, root) == {"team", "public"} and len(team) == 7  # the copy is theirs
    outsider = heron.search("people", k=50, visible_to=[])
    assert _folders(outsider, root) == {"public"}
    by_image = heron.search(image=library["secret"], k=50, visible_to=["team-a"])
    assert library["secret"].name not in {Path(h.path).name for h in by_image}
    by_word = heron.search(keyword=library["secret"].stem, k=10, visible_to=["team-a"])
    assert by_word == []
    assert heron.search(keyword=library["secret"].stem, k=10, visible_to=["finance"])


def test_lookups_counts_and_duplicates_are_filtered_too(library: dict) -> None:
    heron: Heron = library["heron"]
    secret_id = heron.search(image=library["secret"], k=1)[0].id
    assert heron.get(secret_id) is not None and heron.get(secret_id, visible_to=["finance"])
    assert heron.get(secret_id, visible_to=["team-a"]) is None
    assert heron.count() == 10
    assert heron.count(visible_to=["finance"]) == 6 and heron.count(visible_to=[]) == 3
    stats = heron.stats(visible_to=["team-a"])
    assert stats.units == 7 and stats.units_by_kind == {"image": 7} and stats.files == {}
    assert len(heron.duplicates()) == 1  # the secret and its copy
    assert heron.duplicates(visible_to=["team-a"]) == []  # one of the two is not theirs
    assert heron.duplicates(visible_to=["finance", "team-a"])


def test_a_changed_rule_relabels_what_is_stored(library: dict) -> None:
    root = library["root"]
    opened = Settings.load(data_dir=root / "data", acl_rules=(), min_relevance=0.0)
    with Heron(settings=opened) as heron:
        heron.index([root])  # nothing new to read; the labels change
        assert heron.count(visible_to=[]) == 10
        assert heron.get(heron.search(image=library["secret"], k=1)[0].id, visible_to=[])
