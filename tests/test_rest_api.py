"""The REST API (heron.interfaces.rest), in process through FastAPI's TestClient.

One small library is indexed once for the module: 12 photos and a 5-page English PDF.
"""

from __future__ import annotations

import base64
import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import DATA, link_images, require_data

fastapi = pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from heron.config import ConfigError, Settings  # noqa: E402
from heron.interfaces.rest import ApiConfig, KeysRequiredError, create_app, serve  # noqa: E402
from heron.interfaces.rest.server import is_loopback  # noqa: E402
from heron.interfaces.rest.uploads import safe_stem  # noqa: E402
from heron.library import Heron  # noqa: E402

PHOTOS = 12
PDF = "elegantpaper-en.pdf"
UPLOAD_LIMIT = 2 * 1024**2
REQUEST_LIMIT = 8 * 1024**2


def _records() -> list[dict]:
    path = require_data("photos", "captions.jsonl")
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


@pytest.fixture(scope="module")
def library(heron_lite: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    records = _records()
    pdf = require_data("docs", "pdf", PDF)
    root = tmp_path_factory.mktemp("rest")
    corpus = link_images([r["image"] for r in records[:PHOTOS]], DATA / "photos", root / "corpus")
    (corpus / PDF).symlink_to(pdf)
    data_dir = root / "data"
    with Heron(data_dir) as heron:
        heron.index([corpus])
    return {
        "root": root,
        "corpus": corpus,
        "data_dir": data_dir,
        "indexed": records[:PHOTOS],
        "spare": records[PHOTOS:],  # photos not indexed: material for uploads
    }


@pytest.fixture(scope="module")
def client(library: dict):
    app = create_app(
        settings=Settings.load(data_dir=library["data_dir"]),
        config=ApiConfig(
            max_upload_bytes=UPLOAD_LIMIT,
            max_request_bytes=REQUEST_LIMIT,
            max_query_image_bytes=UPLOAD_LIMIT,
        ),
    )
    with TestClient(app) as test_client:
        yield test_client


def photo(name: str) -> bytes:
    return (DATA / "photos" / name).read_bytes()


def search(client: TestClient, **body) -> dict:
    response = client.post("/v1/search", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def assert_error(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) >= {"code", "message"} and error["message"]
    if code is not None:
        assert error["code"] == code, error
    return error


def assert_no_server_paths(text: str, library: dict) -> None:
    for secret in (str(library["root"]), str(library["data_dir"]), str(DATA)):
        assert secret not in text


def wait_job(client: TestClient, job_id: str, timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["state"] in ("done", "failed"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish in {timeout} s: {job}")


def upload(client: TestClient, files: list[tuple[str, bytes, str]]) -> dict:
    response = client.post("/v1/items", files=[("files", f) for f in files])
    assert response.status_code == 202, response.text
    job = response.json()
    assert response.headers["location"] == f"/v1/jobs/{job['id']}"
    return job


# ---------------------------------------------------------------------------------- health


def test_healthz_and_readyz(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["status"] == "ready"
    assert ready.json()["units"] > PHOTOS
    assert client.get("/openapi.json").json()["paths"].keys() >= {
        "/v1/search",
        "/v1/search/image",
        "/v1/items",
        "/v1/jobs/{job_id}",
        "/v1/items/{item_id}/content",
    }


def test_readyz_is_503_and_routes_answer_json_when_heron_cannot_open(tmp_path: Path) -> None:
    def broken() -> Heron:
        raise ConfigError(f"setting 'model': nothing at {tmp_path}/models/missing")

    app = create_app(broken, config=ApiConfig())
    app.state.hidden_paths.append(str(tmp_path))
    with TestClient(app) as broken_client:
        assert broken_client.get("/healthz").status_code == 200
        error = assert_error(broken_client.get("/readyz"), 503, "not_ready")
        assert str(tmp_path) not in error["message"]
        assert_error(broken_client.get("/v1/stats"), 503, "config_error")
        assert_error(broken_client.post("/v1/search", json={"text": "dog"}), 503, "config_error")


# ---------------------------------------------------------------------------------- search


def test_search_by_english_caption_shows_names_and_urls_not_paths(
    client: TestClient, library: dict
) -> None:
    target = library["indexed"][1]
    answer = search(client, text=target["en"][0], kind="image", k=3, min_relevance=0)
    assert answer["took_ms"] > 0
    hits = answer["hits"]
    assert [h["source"] for h in hits].index(target["image"]) < 3
    hit = hits[0]
    assert {"path", "paths", "thumbnail"}.isdisjoint(hit)
    assert hit["thumbnail_url"] == f"/v1/items/{hit['id']}/thumbnail"
    assert hit["content_url"] == f"/v1/items/{hit['id']}/content"
    assert hit["kind"] == "image" and 0 <= hit["relevance"] <= 1
    assert_no_server_paths(json.dumps(answer), library)


def test_search_by_chinese_caption(client: TestClient, library: dict) -> None:
    target = library["indexed"][1]
    answer = search(client, text=target["zh"][0], kind="image", k=5, min_relevance=0)
    assert target["image"] in [h["source"] for h in answer["hits"]]
    assert answer["warnings"] == []


def test_search_by_base64_image(client: TestClient, library: dict) -> None:
    name = library["indexed"][3]["image"]
    encoded = base64.b64encode(photo(name)).decode()
    hits = search(client, image=encoded, k=3, min_relevance=0)["hits"]
    assert hits[0]["source"] == name and hits[0]["score"] > 0.99
    error = assert_error(client.post("/v1/search", json={"image": "not base64!"}), 400)
    assert error["code"] == "bad_image"
    text = base64.b64encode(b"just some text, not a picture").decode()
    assert_error(client.post("/v1/search", json={"image": text}), 415, "unsupported_media_type")


def test_search_by_multipart_image_with_filters(client: TestClient, library: dict) -> None:
    name = library["indexed"][4]["image"]
    response = client.post(
        "/v1/search/image",
        files={"image": ("query.jpg", photo(name), "image/jpeg")},
        data={"query": "kind:image", "k": "3", "min_relevance": "0"},
    )
    assert response.status_code == 200, response.text
    hits = response.json()["hits"]
    assert hits[0]["source"] == name
    assert {h["kind"] for h in hits} == {"image"}
    bad = client.post(
        "/v1/search/image", files={"image": ("x.jpg", b"%PDF-1.4 not a picture", "image/jpeg")}
    )
    assert_error(bad, 415, "unsupported_media_type")


def test_query_language_filter(client: TestClient) -> None:
    hits = search(client, query="elegant paper template kind:page", k=5, min_relevance=0)["hits"]
    assert hits and {h["kind"] for h in hits} == {"page"}
    assert all(h["source"] == PDF and "page" in h["pointer"] for h in hits)
    assert all(h["thumbnail_url"] for h in hits)


def test_pagination_cursor(client: TestClient) -> None:
    body = {"query": "a dog running kind:image", "min_relevance": 0}
    first = search(client, **body, k=3)
    assert len(first["hits"]) == 3 and first["next_cursor"]
    second = search(client, **body, k=3, cursor=first["next_cursor"])
    both = search(client, **body, k=6)
    ids = [h["id"] for h in first["hits"] + second["hits"]]
    assert ids == [h["id"] for h in both["hits"]] and len(set(ids)) == 6
    # a cursor belongs to its query
    other = {"query": "a red car", "min_relevance": 0, "k": 3, "cursor": first["next_cursor"]}
    assert_error(client.post("/v1/search", json=other), 400, "bad_cursor")
    garbage = {**body, "cursor": "bm90IGEgY3Vyc29y"}
    assert_error(client.post("/v1/search", json=garbage), 400, "bad_cursor")
    # the last page says so
    last = search(client, **body, k=PHOTOS + 5)
    assert len(last["hits"]) == PHOTOS and last["next_cursor"] is None


def test_bad_query_string_is_400_json(client: TestClient) -> None:
    error = assert_error(client.post("/v1/search", json={"query": "dog kind:pagex"}), 400)
    assert error["code"] == "bad_query" and "pagex" in error["message"]
    assert error["position"] == len("dog kind:")  # where the bad value starts
    both = client.post("/v1/search", json={"query": "dog", "text": "cat"})
    assert_error(both, 400, "bad_query")
    assert_error(client.post("/v1/search", json={}), 400, "bad_query")
    assert_error(client.post("/v1/search", json={"query": "width>=wide dog"}), 400, "bad_query")


def test_validation_errors_are_422_json(client: TestClient) -> None:
    for body in (
        {"text": "dog", "k": 0},
        {"text": "dog", "k": 201},
        {"text": "dog", "min_relevance": 1.5},
        {"text": "dog", "kind": "pagex"},
        {"text": "dog", "unknown": 1},
    ):
        error = assert_error(client.post("/v1/search", json=body), 422, "validation_error")
        assert error["details"]
    raw = client.post(
        "/v1/search", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert_error(raw, 422, "validation_error")
    assert_error(client.get("/v1/nowhere"), 404, "not_found")
    assert_error(client.put("/v1/search", json={}), 405, "method_not_allowed")


def test_mixed_query_names_pictures_by_id_never_by_path(client: TestClient) -> None:
    dog = search(client, query="a dog kind:image", k=1, min_relevance=0)["hits"][0]
    mixed = search(client, mix=f'"a dog" + 0.5*item:{dog["id"]}', k=3)
    assert dog["id"] in [h["id"] for h in mixed["hits"]]
    for expr in ('"a dog" + /etc/passwd', '"a dog" + item:../../x', '"a dog" + ~/.ssh/id_rsa'):
        assert_error(client.post("/v1/search", json={"mix": expr}), 400, "bad_query")


# ---------------------------------------------------------------------------------- items


def _hit_of_kind(client: TestClient, query: str) -> dict:
    return search(client, query=query, k=1, min_relevance=0)["hits"][0]


def test_item_thumbnail_content_and_range(client: TestClient, library: dict) -> None:
    picture = _hit_of_kind(client, "a dog kind:image")
    item = client.get(f"/v1/items/{picture['id']}").json()
    assert item["id"] == picture["id"] and item["names"] == [picture["source"]]
    assert "path" not in item and "paths" not in item
    assert_no_server_paths(json.dumps(item), library)

    thumbnail = client.get(picture["thumbnail_url"])
    assert thumbnail.status_code == 200
    assert thumbnail.headers["content-type"] == "image/webp"
    assert thumbnail.content[:4] == b"RIFF" and thumbnail.content[8:12] == b"WEBP"

    original = photo(picture["source"])
    content = client.get(picture["content_url"])
    assert content.status_code == 200 and content.content == original
    assert content.headers["content-type"] == "image/jpeg"
    assert content.headers["accept-ranges"] == "bytes"
    part = client.get(picture["content_url"], headers={"Range": "bytes=0-99"})
    assert part.status_code == 206
    assert part.content == original[:100]
    assert part.headers["content-range"] == f"bytes 0-99/{len(original)}"
    tail = client.get(picture["content_url"], headers={"Range": f"bytes={len(original) - 10}-"})
    assert tail.status_code == 206 and tail.content == original[-10:]

    page = _hit_of_kind(client, "paper kind:page")
    pdf = client.get(page["content_url"])
    assert pdf.headers["content-type"] == "application/pdf" and pdf.content.startswith(b"%PDF")
    assert client.get(page["thumbnail_url"]).status_code == 200

    passage = _hit_of_kind(client, "paper kind:passage")
    assert passage["thumbnail_url"] is None
    assert_error(client.get(f"/v1/items/{passage['id']}/thumbnail"), 404, "no_thumbnail")


def test_unknown_ids_are_404(client: TestClient) -> None:
    unknown = "0" * 32
    for route in ("", "/thumbnail", "/content"):
        assert_error(client.get(f"/v1/items/{unknown}{route}"), 404, "not_found")
        assert_error(client.get(f"/v1/items/not-an-id{route}"), 404, "not_found")
    assert_error(client.get("/v1/items/..%2F..%2Fetc%2Fpasswd/content"), 404)
    assert_error(client.delete(f"/v1/items/{unknown}"), 404, "not_found")
    assert_error(client.get(f"/v1/jobs/{unknown}"), 404, "not_found")


def test_stats(client: TestClient, library: dict) -> None:
    stats = client.get("/v1/stats").json()
    assert stats["units_by_kind"]["image"] >= PHOTOS
    assert stats["units_by_kind"]["page"] == 5
    assert stats["units"] == sum(stats["units_by_kind"].values())
    assert stats["consistent"] is True
    assert "data_dir" not in stats and set(stats["jobs"]) == {"queued", "running", "done", "failed"}
    assert_no_server_paths(json.dumps(stats), library)


# ---------------------------------------------------------------------------------- uploads


def test_upload_two_photos_and_a_text_named_jpg(client: TestClient, library: dict) -> None:
    first, second = library["spare"][0]["image"], library["spare"][1]["image"]
    note = "Quillwort harbour notes: the lighthouse keeper counts zephyrine gulls at dawn."
    job = upload(
        client,
        [
            (first, photo(first), "image/jpeg"),
            (second, photo(second), "image/jpeg"),
            ("notes.jpg", note.encode(), "image/jpeg"),  # text, whatever the name says
        ],
    )
    assert job["state"] in ("queued", "running") and job["progress"]["total"] == 3
    done = wait_job(client, job["id"])
    assert done["state"] == "done", done
    assert done["progress"]["done"] == done["progress"]["total"] == 3
    assert done["progress"]["rate"] > 0 and done["progress"]["eta_s"] == 0
    files = done["files"]
    assert [f["outcome"] for f in files] == ["indexed"] * 3, files
    assert [f["media_type"] for f in files] == ["image/jpeg", "image/jpeg", "text/plain"]
    assert files[2]["name"] == "notes.jpg" and files[2]["stored_as"] == "002-notes.txt"
    assert all(f["item_ids"] for f in files)

    found = search(client, query='"zephyrine gulls"', k=3)["hits"]
    assert found and found[0]["kind"] == "passage" and found[0]["source"] == "002-notes.txt"
    assert found[0]["id"] in files[2]["item_ids"]
    by_image = search(client, image=base64.b64encode(photo(first)).decode(), k=1)["hits"]
    assert by_image[0]["id"] in files[0]["item_ids"]
    by_upload = search(client, upload_id=files[1]["upload_id"], k=1)["hits"]
    assert by_upload[0]["id"] in files[1]["item_ids"]
    assert_error(client.post("/v1/search", json={"upload_id": "nope"}), 404, "not_found")
    assert_no_server_paths(json.dumps(done), library)


def test_oversized_upload_is_413_and_leaves_nothing(client: TestClient, library: dict) -> None:
    uploads_dir = library["data_dir"] / "uploads"
    before = set(uploads_dir.iterdir())
    big = b"\xff\xd8\xff\xe0" + b"\0" * UPLOAD_LIMIT
    response = client.post("/v1/items", files=[("files", ("big.jpg", big, "image/jpeg"))])
    assert "upload limit" in assert_error(response, 413, "too_large")["message"]
    # a whole request over the request limit is refused before it is read
    many = [("files", (f"{n}.jpg", big[:UPLOAD_LIMIT], "image/jpeg")) for n in range(5)]
    assert_error(client.post("/v1/items", files=many), 413, "too_large")
    assert set(uploads_dir.iterdir()) == before


@pytest.mark.parametrize(
    "content",
    [
        b"\x7fELF\x02\x01\x01" + bytes(range(256)) * 4,  # a program
        b"PK\x03\x04" + b"\x00" * 200,  # a ZIP that is no office document
        b"",  # nothing at all
        "文本".encode("utf-16"),  # text, but not UTF-8
    ],
)
def test_unknown_type_is_415(client: TestClient, library: dict, content: bytes) -> None:
    uploads_dir = library["data_dir"] / "uploads"
    before = set(uploads_dir.iterdir())
    response = client.post(
        "/v1/items",
        files=[
            ("files", ("fine.txt", b"a fine text file", "text/plain")),
            ("files", ("photo.jpg", content, "image/jpeg")),
        ],
    )
    assert "photo.jpg" in assert_error(response, 415, "unsupported_media_type")["message"]
    assert set(uploads_dir.iterdir()) == before


def test_traversal_names_are_stored_inside_uploads(client: TestClient, library: dict) -> None:
    spare = library["spare"][2]["image"]
    job = upload(
        client,
        [
            ("../../etc/passwd", b"root:x:0:0:root:/root:/bin/bash\n", "text/plain"),
            ("..\\..\\evil.jpg", photo(spare), "image/jpeg"),
            ("/abs/folder/.notes.md", "# 标题\n\nMarkdown 笔记".encode(), "text/markdown"),
        ],
    )
    folder = library["data_dir"] / "uploads" / job["id"]
    names = [f["stored_as"] for f in job["files"]]
    assert names == ["000-passwd.txt", "001-evil.jpg", "002-notes.md"]
    assert sorted(p.name for p in folder.iterdir()) == names
    assert [f["name"] for f in job["files"]] == ["passwd", "evil.jpg", ".notes.md"]
    assert not (library["data_dir"] / "etc").exists() and not (library["root"] / "etc").exists()
    done = wait_job(client, job["id"])
    assert [f["outcome"] for f in done["files"]] == ["indexed"] * 3, done


def test_safe_stem() -> None:
    assert safe_stem("../../etc/passwd") == "passwd"
    assert safe_stem("C:\\Users\\x\\..\\photo.final.JPG") == "photo.final"
    assert safe_stem("....") == "file" and safe_stem(None) == "file" and safe_stem("") == "file"
    assert safe_stem("名字 with spaces & émoji 🐦.jpg") == "名字_with_spaces_émoji"
    assert safe_stem("a\x00b\nc.txt") == "a_b_c"
    assert len(safe_stem("x" * 500 + ".png")) == 80


def test_delete_then_404(client: TestClient, library: dict) -> None:
    name = library["spare"][3]["image"]
    done = wait_job(client, upload(client, [(name, photo(name), "image/jpeg")])["id"])
    (item_id,) = done["files"][0]["item_ids"]
    stored = library["data_dir"] / "uploads" / done["id"] / done["files"][0]["stored_as"]
    assert stored.is_file()
    assert client.get(f"/v1/items/{item_id}").status_code == 200
    deleted = client.delete(f"/v1/items/{item_id}")
    assert deleted.status_code == 200, deleted.text
    assert deleted.json() == {"id": item_id, "files_removed": 1}
    assert_error(client.get(f"/v1/items/{item_id}"), 404, "not_found")
    assert_error(client.get(f"/v1/items/{item_id}/content"), 404, "not_found")
    assert not stored.exists()  # the API's own copy goes too
    hits = search(client, image=base64.b64encode(photo(name)).decode(), k=3, min_relevance=0)
    assert item_id not in [h["id"] for h in hits["hits"]]
    assert_error(client.delete(f"/v1/items/{item_id}"), 404, "not_found")


def test_search_burst_while_a_job_runs(client: TestClient, library: dict) -> None:
    batch = [r["image"] for r in library["spare"][10:50]]
    job = upload(client, [(n, photo(n), "image/jpeg") for n in batch])
    queries = [
        {"text": "a dog running on grass", "k": 5},
        {"query": "people kind:image", "k": 5},
        {"text": "一只狗在草地上奔跑", "k": 5},
        {"image": base64.b64encode(photo(library["indexed"][0]["image"])).decode(), "k": 5},
    ] * 4
    at_start = client.get(f"/v1/jobs/{job['id']}").json()["state"]
    started = time.time()

    def timed(body: dict) -> tuple[object, float]:
        response = client.post("/v1/search", json=body)
        return response, time.time()

    with ThreadPoolExecutor(16) as pool:
        answers, answered_at = zip(*pool.map(timed, queries), strict=True)
    assert [a.status_code for a in answers] == [200] * 16, [a.text for a in answers]
    assert at_start in ("queued", "running")
    done = wait_job(client, job["id"])
    assert done["state"] == "done" and done["finished_at"] > started
    assert min(answered_at) < done["finished_at"]  # searches were answered during the run
    assert [f["outcome"] for f in done["files"]] == ["indexed"] * len(batch)


# ---------------------------------------------------------------------------------- serving


def test_serve_refuses_non_loopback_without_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append(kw))
    app = fastapi.FastAPI()
    for host in ("0.0.0.0", "::", "192.168.1.4", "heron.example.org"):
        with pytest.raises(KeysRequiredError, match=f"listening on {host} needs API keys"):
            serve(host, 8765, app=app)
    assert not calls
    serve("127.0.0.1", 8765, app=app)
    serve("0.0.0.0", 8766, app=app, keys_exist=lambda: True)
    assert [c["host"] for c in calls] == ["127.0.0.1", "0.0.0.0"]
    with pytest.raises(KeysRequiredError):
        serve("127.0.0.1", 8765, app=app, require_keys=True)
    assert all(is_loopback(h) for h in ("127.0.0.1", "::1", "[::1]", "localhost", "127.8.0.1"))


# ---------------------------------------------------------------------------------- keys


def test_keys_over_the_real_library(library: dict) -> None:
    """A viewer key against the real Heron: labels reach the search (no rule labels this
    library, so a viewer without labels sees it all), the audit keeps the returned ids."""
    from heron.catalog import Catalog
    from heron.catalog.keys import KeyRing

    settings = Settings.load(data_dir=library["data_dir"])
    catalog = Catalog(settings.catalog_path)
    key_id, secret = KeyRing(catalog).create("viewer", "rest-test")
    app = create_app(settings=settings, config=ApiConfig(require_keys=True))
    try:
        with TestClient(app) as keyed:
            assert_error(keyed.post("/v1/search", json={"text": "a dog"}), 401, "unauthorized")
            headers = {"Authorization": f"Bearer {secret}"}
            body = {"query": "a dog kind:image", "k": 3, "min_relevance": 0}
            answer = keyed.post("/v1/search", json=body, headers=headers)
            assert answer.status_code == 200, answer.text
            hits = answer.json()["hits"]
            assert len(hits) == 3
            opened = keyed.get(hits[0]["content_url"], headers=headers)
            assert opened.status_code == 200
            assert_error(keyed.delete(f"/v1/items/{hits[0]['id']}", headers=headers), 403)
        rows = KeyRing(catalog).audit(10, key=key_id)
        assert [r.action for r in rows] == ["delete", "open", "search"]
        assert rows[2].detail["ids"] == [h["id"] for h in hits]
        assert rows[1].detail == {"id": hits[0]["id"], "what": "content", "status": 200}
        assert rows[0].detail["status"] == 403  # refused attempts are kept too
    finally:
        KeyRing(catalog).revoke(key_id)
        catalog.close()
