"""The REST API under generated and hostile input: never a 5xx.

schemathesis generates requests for every operation of the OpenAPI schema (valid and invalid
bodies, parameters and content types); hand-written hostile inputs cover what a generator
does not think of: oversized bodies, a decompression bomb, traversal names, malformed query
strings and wrong content types.
"""

from __future__ import annotations

import base64
import io
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from PIL import Image

from heron.interfaces.rest import create_app
from tests.conftest import DATA, flickr_split
from tests.test_rest_api import wait_job


@pytest.fixture(scope="module")
def client(heron_lite: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    root = tmp_path_factory.mktemp("fuzz")
    photos = root / "photos"
    photos.mkdir()
    for record in flickr_split("val")[:6]:
        shutil.copy(DATA / "flickr8k" / "images" / str(record["image"]), photos)
    application = create_app(data_dir=root / "data")
    application.state.heron_data_dir = root / "data"
    with TestClient(application) as client:  # one client: its lifespan spans the module
        done = client.post(
            "/v1/items",
            files=[("files", (p.name, p.read_bytes(), "image/jpeg")) for p in photos.iterdir()],
        )
        assert done.status_code == 202, done.text
        assert wait_job(client, done.json()["id"])["state"] == "done"
        yield client


def test_generated_requests_never_get_a_server_error(client: TestClient) -> None:
    """Every operation, with bodies and parameters generated from its schema (hypothesis)."""
    # An app of its own over the same library: schemathesis runs the app's lifespan, whose
    # end would stop the module client's ingest jobs.
    own = create_app(data_dir=client.app.state.heron_data_dir)
    schema = schemathesis.openapi.from_asgi("/openapi.json", own)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=4,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def call(case: schemathesis.Case) -> None:
            response = case.call()
            where = f"{case.method} {case.formatted_path}"
            assert response.status_code < 500, (where, response.text[:500])
            if response.status_code >= 400 and "json" in response.headers.get("content-type", ""):
                assert "error" in response.json(), where  # one error shape

        call()


JSON = {"content-type": "application/json"}


def _bomb() -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (1, 1)).save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    # IHDR width/height at bytes 16..24: claim 50,000 x 50,000 pixels (the CRC is left stale:
    # decoders that check it refuse the file, which is a 4xx as well)
    data[16:24] = (50_000).to_bytes(4, "big") * 2
    return bytes(data)


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        ("post", "/v1/search", {"content": b"{not json", "headers": JSON}),
        ("post", "/v1/search", {"content": b"query=dog", "headers": {"content-type": "text/x"}}),
        ("post", "/v1/search", {"json": {"query": 'kind:page "never closed'}}),
        ("post", "/v1/search", {"json": {"query": "width>=wide"}}),
        ("post", "/v1/search", {"json": {"query": "\x00\ufffe\u202e" * 50}}),
        ("post", "/v1/search", {"json": {"query": "a" * 100_000}}),
        ("post", "/v1/search", {"json": {"image": "not base64 !!!"}}),
        ("post", "/v1/search", {"json": {"image": base64.b64encode(b"GIF89a broken").decode()}}),
        ("post", "/v1/search", {"json": {"image": base64.b64encode(_bomb()).decode()}}),
        ("post", "/v1/search", {"json": {"mix": '"a" + 0.5*/etc/passwd'}}),
        ("post", "/v1/search/image", {"files": {"file": ("x.jpg", _bomb(), "image/jpeg")}}),
        ("post", "/v1/search/image", {"files": {"file": ("x.jpg", b"", "image/jpeg")}}),
        ("post", "/v1/items", {"files": {"files": ("../../etc/passwd", b"root:x:0", "text/x")}}),
        ("post", "/v1/items", {"files": {"files": ("bomb.png", _bomb(), "image/png")}}),
        ("post", "/v1/items", {"content": b"raw", "headers": {"content-type": "application/zip"}}),
        ("get", "/v1/items/..%2F..%2Fetc%2Fpasswd", {}),
        ("get", "/v1/items/%00/content", {}),
        ("get", "/v1/items/nope/thumbnail", {}),
        ("get", "/v1/jobs/../../etc", {}),
        ("delete", "/v1/items/" + "f" * 5000, {}),
    ],
)  # fmt: skip
def test_hostile_inputs_never_get_a_server_error(
    client: TestClient, method: str, path: str, kwargs: dict
) -> None:
    response = getattr(client, method)(path, **kwargs)
    assert response.status_code < 500, (path, response.status_code, response.text[:300])
    if response.status_code >= 400:
        assert "error" in response.json()  # one JSON error shape, whatever went wrong
