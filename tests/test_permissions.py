"""Two keys with different ACL labels never see each other's units through the REST API:
not in search (text, image, keyword), counts, stats, items, thumbnails, content, duplicates,
the vectors map or "more like this"."""

from __future__ import annotations

import base64
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from heron import Heron
from heron.config import Settings
from heron.interfaces.rest import ApiConfig, create_app
from tests.conftest import DATA, flickr_split


@pytest.fixture(scope="module")
def api(heron_lite: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    root = tmp_path_factory.mktemp("perm")
    finance, team = root / "finance", root / "team"
    finance.mkdir()
    team.mkdir()
    names = [str(r["image"]) for r in flickr_split("val")[:8]]
    for i, name in enumerate(names):
        shutil.copy(DATA / "flickr8k" / "images" / name, (finance if i < 4 else team) / name)
    secret = finance / names[0]
    with Image.open(secret) as image:  # a near-copy of a finance photo, kept by finance
        image.convert("RGB").resize((150, 150)).save(finance / "secret-small.jpg")
    rules = (f"{finance}=finance", f"{team}=team-a")
    settings = Settings.load(data_dir=root / "data", acl_rules=rules, min_relevance=0.0)
    with Heron(settings=settings) as heron:
        heron.index([root])
        keys = {
            "finance": heron.keys.create("viewer", "fin", ["finance"])[1],
            "team": heron.keys.create("viewer", "team", ["team-a"])[1],
        }
    app = create_app(settings=settings, config=ApiConfig(require_keys=True, rate_per_minute=0))
    with TestClient(app) as client:
        yield {"client": client, "keys": keys, "finance": finance, "team": team, "secret": secret}


def _as(api: dict, who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api['keys'][who]}"}


def _names(hits: list[dict]) -> set[str]:
    return {hit["source"] for hit in hits}


def test_search_lists_only_the_callers_units(api: dict) -> None:
    client = api["client"]
    finance_names = {p.name for p in api["finance"].iterdir()}
    team_names = {p.name for p in api["team"].iterdir()}
    for who, own, other in (
        ("finance", finance_names, team_names),
        ("team", team_names, finance_names),
    ):
        body = {"query": "people", "k": 50, "min_relevance": 0}
        hits = client.post("/v1/search", json=body, headers=_as(api, who)).json()["hits"]
        assert hits and _names(hits) <= own and not _names(hits) & other, who
        word = client.post("/v1/search", json={"query": Path(api["secret"]).stem, "k": 10},
                           headers=_as(api, who)).json()["hits"]  # fmt: skip
        assert (api["secret"].name in _names(word)) == (who == "finance")
    picture = base64.b64encode(api["secret"].read_bytes()).decode()
    seen = client.post("/v1/search", json={"image": picture, "k": 20, "min_relevance": 0},
                       headers=_as(api, "team")).json()["hits"]  # fmt: skip
    assert not _names(seen) & finance_names


def test_items_thumbnails_content_and_similar_are_404_for_the_other_key(api: dict) -> None:
    client = api["client"]
    body = {"query": Path(api["secret"]).stem, "k": 1}
    hit = client.post("/v1/search", json=body, headers=_as(api, "finance")).json()["hits"][0]
    item = hit["id"]
    for path in (f"/v1/items/{item}", f"/v1/items/{item}/thumbnail", f"/v1/items/{item}/content",
                 f"/v1/insight/items/{item}"):  # fmt: skip
        assert client.get(path, headers=_as(api, "finance")).status_code == 200, path
        denied = client.get(path, headers=_as(api, "team"))
        assert denied.status_code == 404 and "error" in denied.json(), path
    like = client.post("/v1/search", json={"mix": f"item:{item}", "k": 5},
                       headers=_as(api, "team"))  # fmt: skip
    assert like.status_code == 404
    assert client.delete(f"/v1/items/{item}", headers=_as(api, "team")).status_code in (403, 404)


def test_counts_stats_duplicates_and_the_map_hold_only_the_callers_units(api: dict) -> None:
    client = api["client"]
    finance_stats = client.get("/v1/stats", headers=_as(api, "finance")).json()
    team_stats = client.get("/v1/stats", headers=_as(api, "team")).json()
    assert finance_stats["units"] == 5 and team_stats["units"] == 4
    assert client.get("/v1/duplicates", headers=_as(api, "finance")).json()
    assert client.get("/v1/duplicates", headers=_as(api, "team")).json() in ([], {"sets": []})
    team_map = client.get("/v1/insight/map", headers=_as(api, "team")).json()
    team_names = {p.name for p in api["team"].iterdir()}
    labels = {point.get("source") or point.get("name") for point in team_map["points"]}
    assert labels <= team_names


@pytest.fixture()
def browser(api: dict) -> Iterator[TestClient]:
    """The shared client as a browser: cookies it is given are sent back, then forgotten."""
    client = api["client"]
    client.cookies.clear()
    yield client
    client.cookies.clear()


def test_a_session_cookie_signs_picture_urls_for_the_web_page(api: dict, browser) -> None:
    started = browser.post("/v1/session", headers=_as(api, "finance"))
    assert started.status_code == 200 and started.json()["role"] == "viewer"
    cookie = started.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    assert api["keys"]["finance"] not in started.text  # the answer never echoes the secret
    hits = browser.post("/v1/search", json={"query": "people", "k": 3, "min_relevance": 0},
                        headers={"X-Heron-Client": "web"}).json()["hits"]  # fmt: skip
    assert hits and all(hit["source"] in {p.name for p in api["finance"].iterdir()} for hit in hits)
    thumb = browser.get(f"/v1/items/{hits[0]['id']}/thumbnail")  # as an <img> asks: no headers
    assert thumb.status_code == 200 and thumb.headers["content-type"].startswith("image/")
    assert browser.get("/v1/session").json()["key"]
    ended = browser.delete("/v1/session")
    assert ended.status_code == 200
    assert browser.get(f"/v1/items/{hits[0]['id']}/thumbnail").status_code == 401


def test_a_cookie_alone_may_not_change_anything(api: dict, browser) -> None:
    """Another site can make the browser send the cookie, never a custom header."""
    assert browser.post("/v1/session", headers=_as(api, "team")).status_code == 200
    refused = browser.post("/v1/search", json={"query": "dog"})
    assert refused.status_code == 403 and "X-Heron-Client" in refused.json()["error"]["message"]
    assert browser.get("/v1/stats").status_code == 200  # reading by cookie is fine


def test_a_cookie_of_an_unknown_key_is_refused(api: dict, browser) -> None:
    browser.cookies.set("heron_session", "hk_not-a-key")
    assert browser.get("/v1/stats").status_code == 401
    assert browser.delete("/v1/session").status_code == 200  # and can still be cleared
