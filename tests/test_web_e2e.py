"""The web page (heron.interfaces.web) in a real headless Chromium, through Playwright.

One small library is indexed once for the module: 12 photos, a 5-page English PDF and a
resized copy of the first photo (a near-duplicate pair); the app runs under uvicorn on a free
loopback port. Each test leaves a screenshot in test-artifacts/web/.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import DATA, REPO, link_images, require_data

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip(f"no Chromium at {CHROMIUM} (apt install chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
uvicorn = pytest.importorskip("uvicorn")

from heron.config import Settings  # noqa: E402
from heron.interfaces.rest import ApiConfig, create_app  # noqa: E402
from heron.library import Heron  # noqa: E402

PHOTOS = 12
PDF = "elegantpaper-en.pdf"
COPY = "resized-copy.jpg"
ARTIFACTS = REPO / "test-artifacts" / "web"
TIMEOUT_MS = 20_000


def _records() -> list[dict]:
    with require_data("photos", "captions.jsonl").open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle][:PHOTOS]


@pytest.fixture(scope="module")
def library(heron_lite: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    from PIL import Image

    records = _records()
    pdf = require_data("docs", "pdf", PDF)
    root = tmp_path_factory.mktemp("web")
    corpus = link_images([r["image"] for r in records], DATA / "photos", root / "corpus")
    (corpus / PDF).symlink_to(pdf)
    with Image.open(DATA / "photos" / records[0]["image"]) as original:
        small = original.convert("RGB").resize((original.width // 2, original.height // 2))
        small.save(corpus / COPY, quality=90)
    data_dir = root / "data"
    with Heron(data_dir) as heron:
        heron.index([corpus])
        units = heron.count()
    return {"data_dir": data_dir, "records": records, "units": units}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def server(library: dict) -> Iterator[str]:
    yield from _serve(create_app(settings=Settings.load(data_dir=library["data_dir"])))


def _serve(app: object) -> Iterator[str]:
    port = _free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    running = uvicorn.Server(config)
    thread = threading.Thread(target=running.run, name="heron-web-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not running.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise AssertionError("uvicorn did not start")
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    running.should_exit = True
    thread.join(30)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox"], headless=True
        )
        yield launched
        launched.close()


@pytest.fixture
def page(browser, server: str, request: pytest.FixtureRequest) -> Iterator[object]:
    context = browser.new_context(
        locale="en-US", viewport={"width": 1280, "height": 900}, base_url=server
    )
    tab = context.new_page()
    tab.set_default_timeout(TIMEOUT_MS)
    problems: list[str] = []
    tab.on("pageerror", lambda error: problems.append(str(error)))
    tab.goto("/")
    tab.wait_for_selector("body[data-ready='1']")
    yield tab
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    tab.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
    context.close()
    assert not problems, problems


@contextlib.contextmanager
def _tab(browser, base_url: str, **options: object) -> Iterator[object]:
    """A fresh browser context's page, loaded and ready, closed afterwards."""
    context = browser.new_context(locale="en-US", base_url=base_url, **options)
    tab = context.new_page()
    tab.set_default_timeout(TIMEOUT_MS)
    try:
        tab.goto("/")
        tab.wait_for_selector("body[data-ready='1']")
        yield tab
    finally:
        context.close()


def search(page, query: str) -> list:
    page.fill("#q", query)
    page.press("#q", "Enter")
    return hits(page)


def hits(page) -> list:
    page.wait_for_function(
        "() => document.querySelectorAll('#results .hit').length > 0"
        " && !document.getElementById('status').textContent.includes('…')"
    )
    return page.query_selector_all("#results .hit")


# ------------------------------------------------------------------------------------ tests


def test_english_text_search_shows_hits_with_relevance_and_badges(page, library) -> None:
    caption = library["records"][1]["en"][0]  # two dogs fighting
    found = search(page, caption)
    first = found[0]
    assert re.fullmatch(r"\d{1,3}%", first.query_selector(".relevance").inner_text())
    assert first.query_selector(".badge.kind").inner_text() == "image"
    assert first.query_selector("img").get_attribute("src").startswith("/v1/items/")
    names = [h.query_selector(".name").inner_text() for h in found]
    assert library["records"][1]["image"] in names[:3]
    assert "results" in page.inner_text("#status")


def test_typing_searches_after_a_pause(page) -> None:
    page.type("#q", "a dog", delay=30)  # no Enter: the debounced search runs by itself
    assert hits(page)


def test_chinese_query_shows_hits(page, library) -> None:
    found = search(page, library["records"][1]["zh"][0])  # 两只狗在路上打架。
    names = [h.query_selector(".name").inner_text() for h in found]
    assert library["records"][1]["image"] in names[:3]


def test_search_by_uploaded_image_shows_the_photo_first(page, library) -> None:
    name = library["records"][2]["image"]
    page.set_input_files("#image-file", str(DATA / "photos" / name))
    found = hits(page)
    assert found[0].query_selector(".name").inner_text() == name
    assert page.is_visible("#query-image")


def test_filter_bar_writes_the_query_and_only_pages_show(page) -> None:
    page.select_option("#f-relevance", "0")
    page.fill("#q", "paper template")
    page.select_option("#f-kind", "page")
    assert page.input_value("#q") == "paper template kind:page"
    page.wait_for_function(
        "() => { const h = [...document.querySelectorAll('#results .hit')];"
        " return h.length > 0 && h.every(x => x.dataset.kind === 'page'); }"
    )
    badges = [b.inner_text() for b in page.query_selector_all("#results .hit .badge.kind")]
    assert all(re.fullmatch(r"page \d+", b) for b in badges), badges
    page.fill("#f-from", "2024-01")
    page.dispatch_event("#f-from", "change")
    assert page.input_value("#q") == "paper template kind:page taken>=2024-01"


def test_more_like_this_runs(page, library) -> None:
    found = search(page, library["records"][3]["en"][0])
    before = found[0].get_attribute("data-id")
    found[0].query_selector("button.like").click()
    assert page.input_value("#q") == f"like:{before}"
    page.wait_for_function(
        "(id) => { const h = document.querySelector('#results .hit');"
        " return h && h.dataset.id === id && !document.getElementById('status')"
        ".textContent.includes('…'); }",
        arg=before,
    )
    assert len(page.query_selector_all("#results .hit")) > 1


def test_item_view_shows_picture_text_and_tags(page, library) -> None:
    found = search(page, library["records"][1]["en"][0])
    found[0].query_selector("button.open").click()
    page.wait_for_selector("#item-dialog[open]")
    page.wait_for_function(
        "() => { const i = document.querySelector('#item-media img');"
        " return i && i.complete && i.naturalWidth > 0; }"
    )
    assert page.query_selector_all("#item-tags .tag.colour")
    assert page.query_selector("#item-tags .tag.category")
    assert "size" in page.inner_text("#item-fields")
    page.keyboard.press("Escape")
    page.wait_for_selector("#item-dialog", state="hidden")


def test_item_view_of_a_near_duplicate_lists_its_copy(page, library) -> None:
    page.goto("/#search")
    found = search(page, library["records"][0]["en"][0])
    first = next(
        h
        for h in found
        if h.query_selector(".name").inner_text() in (library["records"][0]["image"], COPY)
    )
    first.query_selector("button.open").click()
    page.wait_for_selector("#item-dups button.dup")
    shown = page.inner_text("#item-dups")
    assert COPY in shown or library["records"][0]["image"] in shown


def test_duplicates_view_lists_the_pair(page, library) -> None:
    page.click("nav button[data-view='duplicates']")
    page.wait_for_selector(".dup-set")
    text = page.inner_text("#dup-list")
    assert library["records"][0]["image"] in text and COPY in text
    assert page.query_selector(".dup-set .keep-button")
    page.click(".dup-set .ignore-button")
    page.wait_for_function("() => !document.querySelector('.dup-set')")
    page.click("#dup-unignore")
    page.wait_for_selector(".dup-set")


def test_vectors_view_draws_bars_and_the_map(page, library) -> None:
    page.click("nav button[data-view='vectors']")
    page.fill("#vec-q", "a dog running")
    page.press("#vec-q", "Enter")
    page.wait_for_function(
        "() => document.querySelectorAll('#vec-bars rect.value-bar').length === 32"
    )
    page.wait_for_selector("#vec-nearest .bar")
    page.wait_for_selector("#vec-map path.query-point", state="attached")
    points = page.query_selector_all("#vec-map circle.point")
    assert len(points) == library["units"]
    assert "768-d" in page.inner_text("#vec-caption")
    points[0].hover()
    assert page.inner_text("#map-hover")


def test_memory_view_shows_the_table(page, library) -> None:
    page.click("nav button[data-view='memory']")
    page.wait_for_selector("#mem-table tr.total")
    table = page.inner_text("#mem-table")
    assert "768" in table and "Units: image" in table
    page.fill("#mem-n", "1000000")
    assert "2.9 GiB" in page.inner_text("#mem-projection")  # 1e6 × 768 × 4 bytes


def test_language_toggle_switches_to_chinese(page) -> None:
    assert page.inner_text("nav button[data-view='search']") == "Search"
    page.click("#lang-toggle")
    assert page.inner_text("nav button[data-view='search']") == "搜索"
    assert page.get_attribute("html", "lang") == "zh-CN"
    assert page.get_attribute("#q", "placeholder").startswith("搜索")
    page.reload()
    page.wait_for_selector("body[data-ready='1']")
    assert page.inner_text("#lang-toggle") == "English"  # remembered
    page.click("#lang-toggle")


def test_keyboard_reaches_the_search_box_and_tabs(page) -> None:
    page.keyboard.press("Tab")  # the skip link
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.dataset.view") == "search"
    page.keyboard.press("Enter")
    page.keyboard.type("dog")
    page.keyboard.press("Enter")
    assert hits(page)


def test_phone_width_has_no_horizontal_scroll(browser, server, library) -> None:
    with _tab(browser, server, viewport={"width": 375, "height": 800}) as tab:
        search(tab, library["records"][1]["en"][0])
        for view in ("search", "vectors", "memory", "duplicates"):
            tab.click(f"nav button[data-view='{view}']")
            tab.wait_for_timeout(300)
            width = tab.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
            assert width[0] <= width[1], (view, width)
        tab.click("nav button[data-view='search']")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        tab.screenshot(path=str(ARTIFACTS / "test_phone_width.png"), full_page=True)


def test_indexing_view_uploads_and_shows_progress(page) -> None:  # last: it adds a unit
    spare = sorted((DATA / "photos").glob("*.jpg"))[-1]
    page.click("nav button[data-view='index']")
    page.set_input_files("#upload-files", str(spare))
    page.click("#upload-form button[type=submit]")
    page.wait_for_selector("#job-files tr[data-outcome='indexed']", timeout=90_000)
    assert page.evaluate("document.getElementById('job-progress').value") == 1
    assert spare.name in page.inner_text("#job-files")
    assert "done" in page.inner_text("#job-status")


@pytest.fixture(scope="module")
def keyed_server(library: dict) -> Iterator[tuple[str, str]]:
    """The same library served as beyond loopback: every request needs a key."""
    with Heron(library["data_dir"]) as heron:
        _, secret = heron.keys.create("viewer", "web-test")
    settings = Settings.load(data_dir=library["data_dir"])
    app = create_app(settings=settings, config=ApiConfig(require_keys=True, rate_per_minute=0))
    for url in _serve(app):
        yield url, secret


def test_a_key_signs_the_page_in_and_its_pictures_load(browser, keyed_server, library) -> None:
    url, secret = keyed_server
    with _tab(browser, url) as tab:
        tab.fill("#q", "a dog")
        tab.press("#q", "Enter")
        tab.wait_for_function(
            "() => /API key/i.test(document.getElementById('status').textContent)"
        )
        tab.click("nav button[data-view='memory']")
        tab.click("details.key summary")
        tab.fill("#api-key", secret)
        tab.press("#api-key", "Tab")  # `change` fires: the page signs in
        tab.wait_for_function(
            "() => document.getElementById('key-status').textContent.includes('viewer')"
        )
        assert tab.evaluate("localStorage.getItem('heron.key')") is None  # never kept by the page
        cookies = tab.context.cookies()
        assert [c["httpOnly"] for c in cookies if c["name"] == "heron_session"] == [True]
        tab.click("nav button[data-view='search']")
        found = search(tab, library["records"][1]["en"][0])
        image = found[0].query_selector("img")
        image.scroll_into_view_if_needed()
        tab.wait_for_function("(img) => img.complete && img.naturalWidth > 0", arg=image)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        tab.screenshot(path=str(ARTIFACTS / "test_keyed_page.png"), full_page=True)
