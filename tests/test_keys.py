"""API keys, roles, rate limits and the audit log (heron.catalog.keys, heron.interfaces.rest.auth).

Fast: the REST routes run over a stand-in for `Heron` (no model, no store) that keeps units
with ACL labels and answers as `Heron` does for `visible_to`; it records what each call was
given, so the tests see the key's labels reach every read.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from heron.catalog import Catalog
from heron.catalog.keys import (
    ADMIN,
    EDITOR,
    VIEWER,
    KeyRing,
    KeyRingError,
    Principal,
    hash_secret,
)
from heron.search.duplicates import DuplicateFile, DuplicateSet
from heron.search.engine import SearchHit, Unit
from tests.conftest import run_cli, run_json

fastapi = pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from heron.interfaces.rest import ApiConfig, KeysRequiredError, create_app  # noqa: E402
from heron.interfaces.rest.auth import RateLimiter, secret_of  # noqa: E402
from heron.interfaces.rest.server import active_keys_in, check_exposure  # noqa: E402

PUBLIC, FINANCE, BOARD = "a" * 32, "b" * 32, "c" * 32
LABELS = {PUBLIC: (), FINANCE: ("finance",), BOARD: ("board",)}


# ---------------------------------------------------------------------------------- key ring


@pytest.fixture
def ring(tmp_path: Path):
    catalog = Catalog(tmp_path / "catalog.sqlite")
    yield KeyRing(catalog)
    catalog.close()


def test_create_authenticate_revoke(ring: KeyRing) -> None:
    key_id, secret = ring.create(VIEWER, "team-a", labels="Finance, public,finance")
    assert secret.startswith("hk_") and len(secret) >= 3 + 43  # 32 bytes, URL-safe base64
    other_id, other = ring.create(ADMIN, "ops")
    assert other != secret and other_id != key_id
    principal = ring.authenticate(secret)
    assert principal == Principal(key_id, "team-a", VIEWER, ("finance", "public"))
    assert principal.visible_to == ("finance", "public")
    assert ring.authenticate(other).visible_to is None  # admin: everything
    assert ring.any_active()

    for wrong in (None, "", secret[:-1], secret + "x", "hk_" + "A" * 43, other.upper()):
        assert ring.authenticate(wrong) is None
    listed = {record.id: record for record in ring.list()}
    assert listed[key_id].labels == ("finance", "public") and listed[key_id].active
    assert listed[key_id].last_used_at is not None  # set by the authentication above
    assert "secret" not in str(listed[key_id].to_dict())

    revoked = ring.revoke(key_id)
    assert revoked.revoked_at is not None and not revoked.active
    assert ring.authenticate(secret) is None
    assert ring.revoke(key_id).revoked_at == revoked.revoked_at  # the first time is kept
    assert ring.any_active()  # the admin key
    ring.revoke(other_id)
    assert not ring.any_active()
    with pytest.raises(KeyRingError, match="no key"):
        ring.revoke("nope")
    with pytest.raises(KeyRingError, match="unknown role"):
        ring.create("root", "x")
    with pytest.raises(KeyRingError, match="label"):
        ring.create(VIEWER, "x", labels=["bad label!"])
    with pytest.raises(KeyRingError, match="needs a label"):
        ring.create(VIEWER, "  ")


def test_only_the_hash_is_stored(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path / "catalog.sqlite")
    ring = KeyRing(catalog)
    secrets_made = [ring.create(role, f"key-{role}")[1] for role in (VIEWER, EDITOR, ADMIN)]
    ring.record(ring.authenticate(secrets_made[0]), "search", {"query": "invoice"})
    catalog.close()
    with sqlite3.connect(tmp_path / "catalog.sqlite") as conn:  # fold the WAL in
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        stored = {row[0] for row in conn.execute("SELECT secret_hash FROM api_keys")}
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    assert stored == {hash_secret(s) for s in secrets_made}
    for secret in secrets_made:
        assert secret.encode() not in raw
        assert secret[3:].encode() not in raw and secret[3:20].encode() not in raw
        assert hash_secret(secret).encode() in raw  # what is kept instead


def test_roles_and_audit(ring: KeyRing) -> None:
    viewer = Principal("v", "v", VIEWER)
    editor = Principal("e", "e", EDITOR, ("finance",))
    admin = Principal("a", "a", ADMIN, ("finance",))
    for action in ("search", "read", "stats", "duplicates"):
        assert viewer.can(action) and editor.can(action) and admin.can(action)
    for action in ("upload", "delete"):
        assert not viewer.can(action) and editor.can(action) and admin.can(action)
    for action in ("keys", "audit"):
        assert not viewer.can(action) and not editor.can(action) and admin.can(action)
    assert not Principal("x", "x", "root").can("search")
    # "" means everything for an admin only: a viewer without labels sees the unlabelled
    assert viewer.visible_to == () and editor.visible_to == ("finance",)
    assert admin.visible_to is None

    ring.record(viewer, "search", {"query": "猫", "ids": ["1", "2"]})
    ring.record(editor, "open", {"id": "1"})
    ring.record(viewer, "open", {"id": "2"})
    rows = ring.audit(10)
    assert [(r.key_id, r.action) for r in rows] == [("v", "open"), ("e", "open"), ("v", "search")]
    assert rows[-1].detail == {"query": "猫", "ids": ["1", "2"]}
    assert [r.detail["id"] for r in ring.audit(10, key="v") if r.action == "open"] == ["2"]
    assert len(ring.audit(1)) == 1
    with pytest.raises(KeyRingError):
        ring.record(viewer, "dance", {})


def test_rate_limiter_token_bucket() -> None:
    now = [0.0]
    limiter = RateLimiter(per_minute=60, burst=3, clock=lambda: now[0])
    assert [limiter.take("k") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("k") == pytest.approx(1.0)  # one token a second
    assert limiter.take("other") == 0.0  # per key
    now[0] += 0.5
    assert limiter.take("k") == pytest.approx(0.5)
    now[0] += 0.5
    assert limiter.take("k") == 0.0
    now[0] += 100
    assert [limiter.take("k") for _ in range(4)][-1] > 0  # refills to the burst, not beyond
    assert RateLimiter(0, 1).take("k") == 0.0  # 0: no limit


def test_secret_of_headers() -> None:
    assert secret_of({"authorization": "Bearer hk_x"}) == "hk_x"
    assert secret_of({"authorization": "bearer  hk_x "}) == "hk_x"
    assert secret_of({"x-api-key": "hk_y"}) == "hk_y"
    assert secret_of({"authorization": "Basic abc", "x-api-key": "hk_y"}) == "hk_y"
    assert secret_of({}) is None and secret_of({"authorization": "Bearer "}) is None


# ---------------------------------------------------------------------------------- REST


@dataclass
class FakeHeron:
    """What the routes call on `Heron`, over three units: one public, one finance, one board."""

    data_dir: Path
    calls: list[tuple[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.settings = SimpleNamespace(thumbnails_dir=self.data_dir / "thumbnails")
        self.catalog = Catalog(self.data_dir / "catalog.sqlite")
        self.corpus = self.data_dir / "corpus"
        self.corpus.mkdir(parents=True, exist_ok=True)
        for unit_id in LABELS:
            (self.corpus / f"{unit_id}.txt").write_text(f"text of {unit_id}")
        self.deleted: list[str] = []

    @property
    def keys(self) -> KeyRing:
        return KeyRing(self.catalog)

    def open(self) -> FakeHeron:
        return self

    def close(self) -> None:
        self.catalog.close()

    def ready(self) -> dict[str, object]:
        return {"model": "fake", "units": len(LABELS)}

    def _seen(self, visible_to: Any) -> list[str]:
        if visible_to is None:
            return list(LABELS)
        return [u for u, labels in LABELS.items() if not labels or set(labels) & set(visible_to)]

    def search(self, *, visible_to: Any = None, k: int = 10, **kwargs: Any) -> list[SearchHit]:
        self.calls.append(("search", visible_to))
        return [
            SearchHit(u, 0.9, str(self.corpus / f"{u}.txt"), "passage", 0, 0, "txt", "fake")
            for u in self._seen(visible_to)[:k]
        ]

    def query_warnings(self, text: Any = None, query: Any = None) -> list[str]:
        return []

    def get(self, unit_id: str, visible_to: Any = None) -> Unit | None:
        self.calls.append(("get", visible_to))
        if unit_id not in self._seen(visible_to) or unit_id in self.deleted:
            return None
        path = str(self.corpus / f"{unit_id}.txt")
        return Unit(
            unit_id, path, "passage", 0, 0, "txt", "fake", 10, "t", None, None, None, [path]
        )

    def stats(self, visible_to: Any = None) -> Any:
        self.calls.append(("stats", visible_to))
        seen = self._seen(visible_to)
        return SimpleNamespace(to_dict=lambda: {"units": len(seen), "data_dir": "x"})

    def duplicates(self, kinds: Any = ("image",), on_progress: Any = None, visible_to: Any = None):
        self.calls.append(("duplicates", visible_to))
        files = [DuplicateFile(u, f"/x/{u}.jpg", 1, 1, 1) for u in self._seen(visible_to)]
        return [DuplicateSet("exact", files[0], files[1:])] if len(files) > 1 else []

    def delete(self, paths: Any) -> int:
        self.calls.append(("delete", None))
        self.deleted.extend(Path(p).stem for p in paths)
        return len(paths)


@pytest.fixture
def fake(tmp_path: Path):
    heron = FakeHeron(tmp_path / "data")
    yield heron
    heron.close()


def _client(fake: FakeHeron, **config: Any) -> TestClient:
    settings = {"require_keys": True, "rate_per_minute": 6000, "rate_burst": 1000, **config}
    return TestClient(create_app(lambda: fake, config=ApiConfig(**settings)))


def _keys(fake: FakeHeron) -> dict[str, tuple[str, str]]:
    ring = fake.keys
    return {
        "viewer": ring.create(VIEWER, "viewer", labels=["finance"]),
        "editor": ring.create(EDITOR, "editor"),  # no labels: the unlabelled only
        "admin": ring.create(ADMIN, "admin", labels=["finance"]),  # labels ignored
    }


def _auth(secret: str, header: str = "bearer") -> dict[str, str]:
    if header == "bearer":
        return {"Authorization": f"Bearer {secret}"}
    return {"X-API-Key": secret}


def _error(response: Any, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and error["message"], error
    return error


ROUTES = [  # (method, path, json body, action, what an allowed key gets)
    ("post", "/v1/search", {"text": "invoice"}, "search", {200}),
    ("get", f"/v1/items/{PUBLIC}", None, "read", {200}),
    ("get", f"/v1/items/{PUBLIC}/content", None, "read", {200}),
    ("get", f"/v1/items/{PUBLIC}/thumbnail", None, "read", {404}),  # a passage has none
    ("get", "/v1/stats", None, "stats", {200}),
    ("get", "/v1/duplicates", None, "duplicates", {200}),
    ("get", f"/v1/jobs/{'0' * 32}", None, "upload", {404}),
    ("post", "/v1/items", None, "upload", {415}),  # a program, refused by type
    ("delete", f"/v1/items/{PUBLIC}", None, "delete", {200, 404}),  # 404 once deleted
    ("get", "/v1/keys", None, "keys", {200}),
    ("post", "/v1/keys", {"role": "viewer", "label": "new"}, "keys", {201}),
    ("get", "/v1/audit", None, "audit", {200}),
]
ROLE_MAY = {
    "viewer": {"search", "read", "stats", "duplicates"},
    "editor": {"search", "read", "stats", "duplicates", "upload", "delete"},
    "admin": {"search", "read", "stats", "duplicates", "upload", "delete", "keys", "audit"},
}


def _call(client: TestClient, method: str, path: str, body: Any, headers: dict) -> Any:
    if path == "/v1/items" and method == "post":
        files = [("files", ("x.bin", b"\x7fELF\x02\x01\x01" + bytes(300), "image/jpeg"))]
        return client.post(path, files=files, headers=headers)
    return client.request(method.upper(), path, json=body, headers=headers)


def test_roles_matrix_over_the_routes(fake: FakeHeron) -> None:
    keys = _keys(fake)
    with _client(fake) as client:
        assert client.get("/healthz").status_code == 200  # probes need no key
        assert client.get("/readyz").status_code == 200
        for method, path, body, action, answers in ROUTES:
            _error(_call(client, method, path, body, {}), 401, "unauthorized")
            bad = _call(client, method, path, body, _auth("hk_" + "x" * 43))
            assert _error(bad, 401, "unauthorized")
            assert bad.headers["www-authenticate"].startswith("Bearer")
            for role, (_, secret) in keys.items():
                header = "bearer" if role != "editor" else "x-api-key"
                response = _call(client, method, path, body, _auth(secret, header))
                if action in ROLE_MAY[role]:
                    assert response.status_code in answers, (role, path, response.text)
                else:
                    _error(response, 403, "forbidden")
        admin = _auth(keys["admin"][1])
        assert client.get(f"/v1/items/{BOARD}", headers=admin).status_code == 200
        assert fake.deleted == [PUBLIC]
        made = client.post("/v1/keys", json={"role": "viewer", "label": "x"}, headers=admin)
        assert made.status_code == 201 and made.json()["secret"].startswith("hk_")
        assert client.get("/v1/stats", headers=_auth(made.json()["secret"])).status_code == 200


def test_labels_reach_every_read(fake: FakeHeron) -> None:
    keys = _keys(fake)
    viewer, editor, admin = (_auth(keys[r][1]) for r in ("viewer", "editor", "admin"))
    with _client(fake) as client:

        def ids(headers: dict) -> set[str]:
            answer = client.post("/v1/search", json={"text": "x"}, headers=headers)
            assert answer.status_code == 200, answer.text
            return {hit["id"] for hit in answer.json()["hits"]}

        assert ids(viewer) == {PUBLIC, FINANCE}
        assert ids(editor) == {PUBLIC}
        assert ids(admin) == {PUBLIC, FINANCE, BOARD}
        # an item the key may not see is 404, as an unknown one: no tell-tale 403
        for route in ("", "/content", "/thumbnail"):
            _error(client.get(f"/v1/items/{BOARD}{route}", headers=viewer), 404, "not_found")
        _error(client.delete(f"/v1/items/{FINANCE}", headers=editor), 404, "not_found")
        assert client.get(f"/v1/items/{FINANCE}", headers=viewer).status_code == 200
        assert client.get("/v1/stats", headers=viewer).json()["units"] == 2
        assert client.get("/v1/stats", headers=editor).json()["units"] == 1
        sets = client.get("/v1/duplicates", headers=viewer).json()["sets"]
        assert {sets[0]["keep"]["id"], *(o["id"] for o in sets[0]["others"])} == {PUBLIC, FINANCE}
        assert "path" not in sets[0]["keep"] and sets[0]["keep"]["source"].endswith(".jpg")
    given = {(name, value) for name, value in fake.calls}
    assert given >= {
        ("search", ("finance",)),
        ("search", ()),
        ("search", None),
        ("get", ("finance",)),
        ("get", ()),
        ("stats", ("finance",)),
        ("stats", ()),
        ("duplicates", ("finance",)),
    }


def test_rate_limit_is_429_with_retry_after(fake: FakeHeron) -> None:
    keys = _keys(fake)
    with _client(fake, rate_per_minute=6, rate_burst=3) as client:
        viewer, admin = _auth(keys["viewer"][1]), _auth(keys["admin"][1])
        codes = [client.get("/v1/stats", headers=viewer).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        limited = client.get("/v1/stats", headers=viewer)
        _error(limited, 429, "too_many_requests")
        assert 1 <= int(limited.headers["retry-after"]) <= 10
        assert client.get("/v1/stats", headers=admin).status_code == 200  # per key


def test_audit_rows_for_search_and_open(fake: FakeHeron) -> None:
    keys = _keys(fake)
    viewer_id, viewer_secret = keys["viewer"]
    viewer, admin = _auth(viewer_secret), _auth(keys["admin"][1])
    with _client(fake) as client:
        body = {"query": "quarterly invoice kind:passage", "k": 5, "min_relevance": 0}
        hits = client.post("/v1/search", json=body, headers=viewer).json()["hits"]
        assert client.get(f"/v1/items/{FINANCE}/content", headers=viewer).status_code == 200
        assert client.get(f"/v1/items/{BOARD}", headers=viewer).status_code == 404
        assert client.get("/v1/audit", headers=viewer).status_code == 403
        entries = client.get(f"/v1/audit?key={viewer_id}", headers=admin).json()["entries"]
    search, opened, refused, forbidden = reversed(entries)
    assert forbidden["action"] == "admin"
    assert forbidden["detail"] == {"path": "/v1/audit", "status": 403}
    assert search["action"] == "search" and search["key_id"] == viewer_id
    assert search["detail"]["query"] == body["query"] and search["detail"]["k"] == 5
    assert search["detail"]["ids"] == [h["id"] for h in hits] == [PUBLIC, FINANCE]
    assert search["detail"]["status"] == 200
    assert opened["action"] == "open" and opened["detail"] == {
        "id": FINANCE,
        "what": "content",
        "status": 200,
    }
    assert refused["detail"] == {"id": BOARD, "what": "item", "status": 404}
    assert search["at"] <= opened["at"] <= time.time()


def test_keys_are_checked_before_the_body_is_read(fake: FakeHeron) -> None:
    with _client(fake) as client:
        response = client.post(
            "/v1/search", content=b"{not json", headers={"content-type": "application/json"}
        )
        _error(response, 401, "unauthorized")  # not 422: an unknown caller learns nothing


def test_no_keys_needed_when_not_required(fake: FakeHeron) -> None:
    with _client(fake, require_keys=False) as client:
        assert client.get("/v1/keys").status_code == 200  # the local admin
        answer = client.post("/v1/search", json={"text": "x"})
        assert len(answer.json()["hits"]) == 3
    (row,) = fake.keys.audit(10)
    assert row.key_id == "local" and row.action == "search"


def test_exposure_uses_the_key_ring(tmp_path: Path) -> None:
    from heron.config import Settings

    settings = Settings.load(data_dir=tmp_path / "data")
    exist = active_keys_in(settings)
    with pytest.raises(KeysRequiredError):
        check_exposure("0.0.0.0", keys_exist=exist)
    assert check_exposure("127.0.0.1", keys_exist=exist) is False
    catalog = Catalog(settings.catalog_path)
    key_id, _ = KeyRing(catalog).create(ADMIN, "ops")
    assert check_exposure("0.0.0.0", keys_exist=exist) is True
    KeyRing(catalog).revoke(key_id)
    catalog.close()
    with pytest.raises(KeysRequiredError):
        check_exposure("0.0.0.0", keys_exist=exist)


def test_serve_requires_keys_beyond_loopback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn

    from heron.config import Settings
    from heron.interfaces.rest import serve

    apps = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: apps.append(app))
    settings = Settings.load(data_dir=tmp_path / "data")
    catalog = Catalog(settings.catalog_path)
    KeyRing(catalog).create(VIEWER, "v")
    catalog.close()
    serve("0.0.0.0", 8765, settings=settings)
    serve("127.0.0.1", 8765, settings=settings)
    serve("127.0.0.1", 8765, settings=settings, require_keys=True)
    required = [app.state.heron_api.auth.required for app in apps]
    assert required == [True, False, True]


# ---------------------------------------------------------------------------------- CLI


def test_cli_keys_and_audit(tmp_path: Path) -> None:
    data = tmp_path / "data"
    made = run_json("keys", "create", "--role", "viewer", "--label", "team-a",
                    "--labels", "finance,public", data_dir=data)  # fmt: skip
    assert made["role"] == "viewer" and made["labels"] == ["finance", "public"]
    assert made["secret"].startswith("hk_") and made["active"] is True
    plain = run_cli("keys", "create", "--role", "admin", "--label", "ops", data_dir=data)
    admin_secret = plain.stdout.split()[-1]
    assert admin_secret.startswith("hk_") and "shown once" in plain.stdout

    listed = run_json("keys", "list", data_dir=data)
    assert [k["label"] for k in listed] == ["team-a", "ops"]
    assert made["secret"] not in str(listed) and admin_secret not in str(listed)

    run_cli("keys", "revoke", made["id"], data_dir=data)
    missing = run_cli("keys", "revoke", "nope", data_dir=data, check=False)
    assert missing.returncode == 1 and "no key" in missing.stderr
    table = run_cli("keys", "list", data_dir=data).stdout
    assert "team-a" in table and "finance,public" in table and "revoked" in table

    rows = run_json("audit", "--limit", "10", "--key", "cli", data_dir=data)
    assert [r["detail"]["op"] for r in rows] == ["revoke_key", "create_key", "create_key"]
    assert rows[0]["detail"]["key"] == made["id"] and rows[0]["action"] == "admin"
    # what the CLI made, as the server will see it
    catalog = Catalog(data / "catalog.sqlite")
    ring = KeyRing(catalog)
    assert ring.authenticate(made["secret"]) is None  # revoked
    assert ring.authenticate(admin_secret) == Principal(listed[1]["id"], "ops", ADMIN)
    catalog.close()


def test_every_v1_route_names_its_action(fake: FakeHeron) -> None:
    """A new route without a role check would answer any key: none may exist."""
    app = create_app(lambda: fake, config=ApiConfig(require_keys=True))
    checked = 0
    for route in app.routes:
        path = getattr(route, "path", "")
        if not path.startswith("/v1"):
            continue
        actions = {getattr(d.call, "heron_action", None) for d in route.dependant.dependencies}
        assert actions - {None}, f"{path} takes no _allowed(...) principal"
        checked += 1
    assert checked >= 10
