"""The REST API: FastAPI over one `Heron` (OpenAPI at /docs).

    app = create_app(data_dir="~/heron-data")          # or create_app(heron_factory=...)
    uvicorn.run(app)                                    # or heron.interfaces.rest.serve(...)

Routes live under /v1 (search, items, jobs, stats) beside /healthz and /readyz. The `Heron`
is created on the first request that needs it (under a lock, with its model loaded and its
store opened, so concurrent first requests share one). Clients never see a server path: a hit
names its source file by name and points at /v1/items/{id}/thumbnail and /content, and a file
is only ever served because the catalog lists it for a unit.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, File, Form, Query, Request, UploadFile
from fastapi.responses import FileResponse, JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import heron
from heron.catalog.keys import KeyRing, KeyRingError, Principal
from heron.config import Settings
from heron.errors import USER_ERRORS
from heron.interfaces.rest import uploads
from heron.interfaces.rest.auth import (
    SESSION_COOKIE,
    Authenticator,
    AuthMiddleware,
    RateLimiter,
    principal_of,
    secret_of,
)
from heron.interfaces.rest.errors import ApiError, classify, error_body, install_error_handler
from heron.interfaces.rest.insight import insight_router
from heron.interfaces.rest.jobs import Job, JobManager, remove_job_folder
from heron.interfaces.rest.schemas import (
    MAX_K,
    DeleteResponse,
    ErrorResponse,
    Item,
    JobResponse,
    KeyCreateRequest,
    Kind,
    SearchRequest,
    SearchResponse,
)
from heron.interfaces.rest.views import (
    ID_PATTERN,
    duplicate_set_view,
    file_name,
    hit_view,
    unit_view,
)
from heron.interfaces.web import mount_web
from heron.library import Heron, Unit
from heron.search.mixed import parse_mixed
from heron.util.paths import on_disk

log = logging.getLogger("heron.rest")

MAX_WINDOW = 1000  # hits a cursor may reach (offset + k)
INLINE_TYPES = frozenset(
    {"image/jpeg", "image/png", "image/gif", "image/webp", "application/pdf", "video/mp4",
     "video/webm", "text/plain", "text/markdown"}
)  # fmt: skip

__all__ = ["ApiConfig", "create_app"]


@dataclass(frozen=True)
class ApiConfig:
    """The API's own limits (Heron's settings stay in `heron.config.Settings`)."""

    max_upload_bytes: int = 100 * 1024**2  # one uploaded file (413 above)
    max_request_bytes: int = 1024**3  # one upload request, all files together (413 above)
    max_files_per_request: int = 100
    max_query_image_bytes: int = 20 * 1024**2  # a query picture, uploaded or base64 (413 above)
    job_shutdown_wait_s: float = 30.0  # how long shutdown waits for a running ingest job
    # API keys (`heron keys create`): True: every /v1 request needs one; False: every request
    # is the local admin; None: `serve` decides (required beyond loopback), else False.
    require_keys: bool | None = None
    rate_per_minute: float = 600.0  # requests per key per minute, on average (0: no limit)
    rate_burst: int = 60  # requests per key at once, above the average
    session_max_age_s: int = 12 * 3600  # how long the web page's session cookie lasts


class _State:
    """One app's `Heron` (made once, lazily, under a lock) and its ingest jobs."""

    def __init__(self, factory: Callable[[], Heron], config: ApiConfig, hidden: list[str]):
        self.factory = factory
        self.config = config
        self.hidden = hidden  # paths taken out of every message (the data dir)
        self._heron: Heron | None = None
        self._keys: KeyRing | None = None
        self._lock = threading.Lock()
        self.jobs = JobManager(self.heron, self.hide)
        self.auth = Authenticator(
            self.keys,
            required=bool(config.require_keys),
            limiter=RateLimiter(config.rate_per_minute, config.rate_burst),
        )

    def heron(self) -> Heron:
        instance = self._heron
        if instance is not None:
            return instance
        with self._lock:
            if self._heron is None:
                made = self.factory()
                try:
                    made.open()
                except BaseException:
                    made.close()
                    raise
                self.hidden.extend(_spellings(made.data_dir))
                self._heron = made
            return self._heron

    def keys(self) -> KeyRing:
        ring = self._keys
        if ring is None:
            ring = self._keys = self.heron().keys
        return ring

    def record(self, principal: Principal, action: str, detail: dict[str, Any]) -> None:
        """One audit row; a row that cannot be written is logged, the answer still goes."""
        try:
            self.keys().record(principal, action, detail)
        except Exception as exc:
            log.warning("audit row not written (%s %s): %s", principal.key_id, action, exc)

    def hide(self, message: str) -> str:
        for secret in sorted(set(self.hidden), key=len, reverse=True):
            message = message.replace(secret, "<data dir>")
        return message

    def close(self) -> None:
        self.jobs.close(self.config.job_shutdown_wait_s)
        with self._lock:
            if self._heron is not None:
                self._heron.close()
                self._heron = None
                self._keys = None


def _spellings(path: Path) -> list[str]:
    spelled = {str(path), str(Path(path).expanduser())}
    with contextlib.suppress(OSError):
        spelled.add(str(Path(path).resolve()))
    return [s for s in spelled if len(s) > 1]


def create_app(
    heron_factory: Callable[[], Heron] | None = None,
    *,
    data_dir: str | Path | None = None,
    settings: Settings | None = None,
    config: ApiConfig | None = None,
) -> FastAPI:
    """The API over one `Heron`: made by `heron_factory`, or from `settings` / `data_dir`
    (default: the usual settings: TOML, HERON_* variables)."""
    config = config or ApiConfig()
    hidden: list[str] = []
    if heron_factory is None:
        settings = settings or Settings.load(data_dir=data_dir)
        hidden.extend(_spellings(settings.data_dir))
        chosen = settings

        def heron_factory() -> Heron:
            return Heron(settings=chosen)

    state = _State(heron_factory, config, hidden)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        state.jobs.reopen()  # a second start of the same app (tests, embedding servers)
        yield
        state.close()

    app = FastAPI(
        title="Heron",
        version=heron.__version__,
        description="Self-hosted multimodal semantic search: pictures, PDFs, slides, documents "
        "and videos, searched by meaning in English and Chinese.",
        lifespan=lifespan,
        responses={400: {"model": ErrorResponse}, 422: {"model": ErrorResponse}},
    )
    app.state.heron_api = state
    app.state.hidden_paths = hidden
    install_error_handler(app)
    app.add_middleware(
        _BodyLimit,
        limits={
            "/v1/items": config.max_request_bytes,
            "/v1/search/image": config.max_query_image_bytes + 64 * 1024,
            "/v1/search": config.max_query_image_bytes * 4 // 3 + 64 * 1024,
        },
    )
    app.add_middleware(AuthMiddleware, auth=state.auth, hide=state.hide)  # outermost
    _routes(app, state)
    app.include_router(insight_router(state))
    mount_web(app)
    return app


class _BodyLimit:
    """413 for a POST body over its route's limit: at once when Content-Length says so, and
    while it streams otherwise (before Starlette spools a multipart body to disk)."""

    def __init__(self, app: ASGIApp, limits: dict[str, int]) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self.limits.get(scope.get("path", "")) if scope["type"] == "http" else None
        if limit is None:
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _too_large(limit)(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise StarletteHTTPException(413, _too_large_message(limit))
            return message

        await self.app(scope, counted, send)


def _too_large_message(limit: int) -> str:
    return f"the request body is larger than this route's limit of {limit:,} bytes"


def _too_large(limit: int) -> JSONResponse:
    return JSONResponse(error_body("too_large", _too_large_message(limit)), status_code=413)


# ---------------------------------------------------------------------------------- routes


def _allowed(action: str) -> Any:
    """The request's principal, if its role may do `action` (else 403). Every /v1 route
    takes one of these (tests/test_keys.py checks)."""

    def dependency(request: Request) -> Principal:
        state: _State = request.app.state.heron_api
        try:
            return principal_of(request, state.auth, action)
        except ApiError as exc:
            refused = getattr(request.state, "principal", None)
            if exc.status == 403 and refused is not None and action in _AUDITED_REFUSALS:
                detail = {"path": request.url.path, "status": 403}
                state.record(refused, _AUDITED_REFUSALS[action], detail)
            raise

    dependency.heron_action = action  # type: ignore[attr-defined]
    return Depends(dependency)


# a role refused one of these is audited too, as this action
_AUDITED_REFUSALS = {"upload": "upload", "delete": "delete", "keys": "admin", "audit": "admin"}


def _anyone(action: str) -> Any:
    """A route anyone may call (it reveals and changes nothing of the library)."""

    def dependency(request: Request) -> Principal | None:
        return getattr(request.state, "principal", None)

    dependency.heron_action = action  # type: ignore[attr-defined]
    return Depends(dependency)


def _principal_body(principal: Principal, state: _State) -> dict[str, Any]:
    return {
        "signed_in": state.auth.required,
        "key": principal.key_id,
        "label": principal.label,
        "role": principal.role,
        "labels": list(principal.labels),
    }


CanUseSession = Annotated[Principal, _allowed("session")]
AnyoneMayEndSession = Annotated[Principal | None, _anyone("end_session")]
CanSearch = Annotated[Principal, _allowed("search")]
CanRead = Annotated[Principal, _allowed("read")]
CanSeeStats = Annotated[Principal, _allowed("stats")]
CanSeeDuplicates = Annotated[Principal, _allowed("duplicates")]
CanUpload = Annotated[Principal, _allowed("upload")]
CanDelete = Annotated[Principal, _allowed("delete")]
CanAdminKeys = Annotated[Principal, _allowed("keys")]
CanReadAudit = Annotated[Principal, _allowed("audit")]


def _routes(app: FastAPI, state: _State) -> None:
    config = state.config

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        """The process is alive (says nothing of the model or the store)."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], responses={503: {"model": ErrorResponse}})
    def readyz() -> JSONResponse:
        """The store opens and the model loads: 200, else 503 with the reason."""
        try:
            found = state.heron().ready()
        except Exception as exc:
            log.warning("not ready: %s", exc)
            message = state.hide(f"{type(exc).__name__}: {exc}")
            return JSONResponse(error_body("not_ready", message), status_code=503)
        return JSONResponse({"status": "ready", **found})

    @app.get("/v1/session", tags=["session"])
    def who_am_i(principal: CanUseSession) -> dict[str, Any]:
        """The key this request is signed by (header or session cookie): id, role, labels."""
        return _principal_body(principal, state)

    @app.post("/v1/session", tags=["session"])
    def start_session(request: Request, principal: CanUseSession) -> JSONResponse:
        """Sign the browser in: the key sent as `Authorization: Bearer` (or `X-API-Key`) is
        kept in an HttpOnly, SameSite=Strict cookie, so that pictures and video the page
        loads by URL are signed too. Where no key is required there is nothing to keep."""
        response = JSONResponse(_principal_body(principal, state))
        secret = secret_of({k.lower(): v for k, v in request.headers.items()})
        if state.auth.required and secret is not None:
            response.set_cookie(
                SESSION_COOKIE,
                secret,
                max_age=config.session_max_age_s,
                httponly=True,
                samesite="strict",
                secure=request.url.scheme == "https",
                path="/",
            )
        return response

    @app.delete("/v1/session", tags=["session"])
    def end_session(principal: AnyoneMayEndSession) -> JSONResponse:
        """Sign the browser out: the session cookie is cleared (no key needed, so that a
        revoked key's cookie can go too)."""
        response = JSONResponse({"signed_in": False})
        response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
        return response

    @app.post("/v1/search", response_model=SearchResponse, tags=["search"])
    def search(body: SearchRequest, principal: CanSearch) -> dict[str, Any]:
        """Search by query-language string, text, picture (base64 or upload_id), or a mix."""
        with _audited(state, principal, "search", _search_detail(body)) as detail:
            picture = None
            if body.image is not None:
                picture = _base64_image(body.image, config.max_query_image_bytes)
            return _search(state, body, picture, principal, detail)

    @app.post("/v1/search/image", response_model=SearchResponse, tags=["search"])
    def search_image(
        image: Annotated[UploadFile, File(description="the query picture")],
        principal: CanSearch,
        query: Annotated[str | None, Form(max_length=4000)] = None,
        k: Annotated[int, Form(ge=1, le=MAX_K)] = 10,
        kind: Annotated[list[Kind] | None, Form()] = None,
        min_relevance: Annotated[float | None, Form(ge=0.0, le=1.0)] = None,
        cursor: Annotated[str | None, Form(max_length=200)] = None,
        explain: Annotated[bool, Form()] = False,
    ) -> dict[str, Any]:
        """Search by one uploaded picture; `query` adds words and filters (`kind:image`)."""
        body = SearchRequest(
            query=query,
            k=k,
            kind=kind,
            min_relevance=min_relevance,
            cursor=cursor,
            explain=explain,
        )
        with _audited(state, principal, "search", _search_detail(body)) as detail:
            picture = _read_query_image(image.file, config.max_query_image_bytes)
            return _search(state, body, picture, principal, detail)

    @app.post(
        "/v1/items",
        status_code=202,
        response_model=JobResponse,
        tags=["items"],
        responses={413: {"model": ErrorResponse}, 415: {"model": ErrorResponse}},
    )
    def upload_items(
        files: Annotated[list[UploadFile], File(description="one or more files")],
        principal: CanUpload,
    ) -> JSONResponse:
        """Upload files and index them in the background: poll the job at GET /v1/jobs/{id}.

        Types are read from the content (JPEG, PNG, GIF, WebP, PDF, PPTX, DOCX, MP4, WebM,
        UTF-8 text, Markdown): anything else is refused (415), as is a file over the size
        limit (413); one refused file refuses the whole request."""
        if len(files) > config.max_files_per_request:
            raise ApiError(
                413,
                "too_many_files",
                f"{len(files)} files in one request; the limit is {config.max_files_per_request}",
            )
        instance = state.heron()
        job_id = uuid.uuid4().hex
        names = [file_name(upload.filename or "") for upload in files]
        with _audited(state, principal, "upload", {"job": job_id, "files": names}):
            return _upload(state, instance, job_id, files)

    @app.get("/v1/jobs/{job_id}", response_model=JobResponse, tags=["items"])
    def get_job(job_id: str, principal: CanUpload) -> dict[str, Any]:
        """An ingest job: state, progress (done/total, rate, ETA), each file's outcome."""
        job = state.jobs.get(job_id)
        if job is None:
            raise ApiError(404, "not_found", f"no job {job_id!r} (jobs are kept in memory)")
        return job.to_dict()

    @app.get("/v1/items/{item_id}", response_model=Item, tags=["items"])
    def get_item(item_id: str, principal: CanRead) -> dict[str, Any]:
        """Everything stored about one unit (a hit's id)."""
        with _audited(state, principal, "open", {"id": item_id, "what": "item"}):
            return unit_view(_unit(state, item_id, principal))

    @app.get(
        "/v1/items/{item_id}/thumbnail",
        tags=["items"],
        response_class=FileResponse,
        responses={404: {"model": ErrorResponse}},
    )
    def get_thumbnail(item_id: str, principal: CanRead) -> FileResponse:
        """The unit's WebP thumbnail, or its original picture when that is small already
        (404 for a passage: it has none)."""
        with _audited(state, principal, "open", {"id": item_id, "what": "thumbnail"}):
            return _thumbnail(state, item_id, principal)

    @app.get(
        "/v1/items/{item_id}/content",
        tags=["items"],
        response_class=FileResponse,
        responses={404: {"model": ErrorResponse}, 206: {"description": "a byte range"}},
    )
    def get_content(item_id: str, principal: CanRead) -> FileResponse:
        """The unit's source file (a PDF page's whole PDF; see `pointer`), with Range
        requests (206)."""
        with _audited(state, principal, "open", {"id": item_id, "what": "content"}):
            return _source_file(_unit(state, item_id, principal))

    @app.delete("/v1/items/{item_id}", response_model=DeleteResponse, tags=["items"])
    def delete_item(item_id: str, principal: CanDelete) -> dict[str, Any]:
        """Forget the unit's source file(s) and every unit they hold (a PDF's pages too).
        Files elsewhere stay on disk; files the API itself stored (uploads) are removed."""
        with _audited(state, principal, "delete", {"id": item_id}) as detail:
            answer = _delete(state, item_id, principal)
            detail["files_removed"] = answer["files_removed"]
            return answer

    @app.get("/v1/stats", tags=["stats"])
    def stats(principal: CanSeeStats) -> dict[str, Any]:
        """Counts: units (and units by kind), files by status, store size, the last run,
        ingest jobs by state (of what the key may see)."""
        data = state.heron().stats(visible_to=principal.visible_to).to_dict()
        data.pop("data_dir", None)
        last = data.get("last_run")
        if isinstance(last, dict):
            last["roots"] = [file_name(r) for r in last.get("roots") or []]
        data["jobs"] = state.jobs.counts()
        return data

    @app.get("/v1/duplicates", tags=["stats"])
    def duplicates(
        principal: CanSeeDuplicates,
        kind: Annotated[list[Kind] | None, Query()] = None,
    ) -> dict[str, Any]:
        """Sets of files holding one picture (exact copies and near-duplicates) among units
        of `kind` (default: image), biggest sets first; the first file of a set is the one
        to keep."""
        found = state.heron().duplicates(kind or ["image"], visible_to=principal.visible_to)
        return {"sets": [duplicate_set_view(s) for s in found]}

    # keys and the audit log (admin)

    @app.get("/v1/keys", tags=["admin"])
    def list_keys(principal: CanAdminKeys) -> dict[str, Any]:
        """Every API key (never a secret), revoked ones included."""
        return {"keys": [record.to_dict() for record in state.keys().list()]}

    @app.post("/v1/keys", status_code=201, tags=["admin"])
    def create_key(body: KeyCreateRequest, principal: CanAdminKeys) -> dict[str, Any]:
        """A new key; its `secret` is in this answer only."""
        with _audited(state, principal, "admin", {"op": "create_key", "role": body.role}) as d:
            try:
                key_id, secret = state.keys().create(body.role, body.label, body.labels)
            except KeyRingError as exc:
                raise ApiError(400, "bad_key", str(exc)) from None
            d["key"] = key_id
            record = state.keys().get(key_id)
            assert record is not None
            return {**record.to_dict(), "secret": secret}

    @app.delete("/v1/keys/{key_id}", tags=["admin"])
    def revoke_key(key_id: str, principal: CanAdminKeys) -> dict[str, Any]:
        """Revoke a key: its next request is refused."""
        with _audited(state, principal, "admin", {"op": "revoke_key", "key": key_id}):
            try:
                return state.keys().revoke(key_id).to_dict()
            except KeyRingError as exc:
                raise ApiError(404, "not_found", str(exc)) from None

    @app.get("/v1/audit", tags=["admin"])
    def audit(
        principal: CanReadAudit,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
        key: Annotated[str | None, Query(max_length=64)] = None,
    ) -> dict[str, Any]:
        """The latest audit rows, newest first (of one key's with `key`)."""
        return {"entries": [row.to_dict() for row in state.keys().audit(limit, key=key)]}


def _upload(state: _State, instance: Heron, job_id: str, files: list[UploadFile]) -> JSONResponse:
    config = state.config
    folder = instance.data_dir / "uploads" / job_id
    folder.mkdir(parents=True, mode=0o700)
    try:
        saved = [
            uploads.save_upload(
                upload.file,
                upload.filename,
                folder,
                n,
                f"{job_id}-{n}",
                config.max_upload_bytes,
            )
            for n, upload in enumerate(files)
        ]
    except uploads.TooLarge as exc:
        remove_job_folder(folder)
        raise ApiError(413, "too_large", str(exc)) from None
    except uploads.UnsupportedType as exc:
        remove_job_folder(folder)
        raise ApiError(415, "unsupported_media_type", str(exc)) from None
    except BaseException:
        remove_job_folder(folder)
        raise
    job = state.jobs.submit(Job(job_id, folder, saved))
    return JSONResponse(job.to_dict(), status_code=202, headers={"Location": f"/v1/jobs/{job_id}"})


def _thumbnail(state: _State, item_id: str, principal: Principal) -> FileResponse:
    instance = state.heron()
    unit = _unit(state, item_id, principal)
    if not unit.has_picture:
        raise ApiError(404, "no_thumbnail", f"item {item_id} ({unit.kind}) has no thumbnail")
    if not unit.thumbnail:  # a small photo is its own thumbnail
        return _source_file(unit)
    shown = instance.thumbnail_path(unit)
    if shown is None:
        raise ApiError(404, "no_thumbnail", f"the thumbnail of {item_id} is missing")
    return _file(shown, "image/webp", f"{item_id}.webp", inline=True)


def _delete(state: _State, item_id: str, principal: Principal) -> dict[str, Any]:
    instance = state.heron()
    unit = _unit(state, item_id, principal)
    paths = [on_disk(p) for p in (unit.paths or [unit.path])]
    removed = instance.delete(paths)
    uploads_dir = (instance.data_dir / "uploads").resolve()
    for path in paths:
        candidate = Path(path)
        with contextlib.suppress(OSError):
            if candidate.resolve().is_relative_to(uploads_dir) and candidate.is_file():
                candidate.unlink()
    return {"id": item_id, "files_removed": removed}


@contextlib.contextmanager
def _audited(
    state: _State, principal: Principal, action: str, detail: dict[str, Any]
) -> Iterator[dict[str, Any]]:
    """Record one audit row for the block, with its outcome (`status`: 200, or the error's);
    the block may add to `detail` (the ids it returned)."""
    status = 200
    try:
        yield detail
    except ApiError as exc:
        status = exc.status
        raise
    except USER_ERRORS as exc:
        status = classify(exc)[0]
        raise
    except BaseException:
        status = 500
        raise
    finally:
        state.record(principal, action, {**detail, "status": status})


# ---------------------------------------------------------------------------------- search


def _search_detail(body: SearchRequest) -> dict[str, Any]:
    """What the audit log keeps of a search: its query and filters (a picture by its hash)."""
    described = body.model_dump(exclude={"image", "explain"}, exclude_none=True)
    if body.image is not None:
        described["image"] = hashlib.blake2b(body.image.encode(), digest_size=16).hexdigest()
    return described


def _search(
    state: _State,
    body: SearchRequest,
    picture: bytes | None,
    principal: Principal,
    audit: dict[str, Any],
) -> dict[str, Any]:
    started = time.perf_counter()
    fingerprint = _fingerprint(body, picture)
    offset = _offset(body.cursor, fingerprint)
    if body.upload_id is not None:
        if picture is not None:
            raise ApiError(400, "bad_request", "give one picture: image or upload_id")
        picture = _upload_picture(state, body.upload_id, state.config.max_query_image_bytes)
    instance = state.heron()
    wanted = offset + body.k
    arguments: dict[str, Any] = {
        "k": wanted,
        "kind": body.kind,
        "min_relevance": body.min_relevance,
    }
    if body.mix is not None:
        arguments["mix"] = _mix_pairs(state, body.mix, principal)
    if body.text is not None:
        arguments["text"] = body.text
    if body.query is not None:
        arguments["query"] = body.query
    if picture is not None:
        arguments["image"] = picture
    if picture is not None and "image" not in audit:
        audit["image"] = hashlib.blake2b(picture, digest_size=16).hexdigest()
    hits = instance.search(**arguments, visible_to=principal.visible_to)
    page = hits[offset:wanted]
    audit["ids"] = [hit.id for hit in page]
    more = len(hits) >= wanted and wanted < MAX_WINDOW
    return {
        "hits": [hit_view(hit, body.explain) for hit in page],
        "took_ms": round((time.perf_counter() - started) * 1000, 2),
        "next_cursor": _cursor(wanted, fingerprint) if more else None,
        "warnings": [state.hide(w) for w in instance.query_warnings(body.text, body.query)],
    }


def _fingerprint(body: SearchRequest, picture: bytes | None) -> str:
    """What a cursor belongs to: the request without its cursor and page size."""
    described = body.model_dump(exclude={"cursor", "k", "explain"})
    if picture is not None:
        described["picture"] = hashlib.blake2b(picture, digest_size=16).hexdigest()
    text = json.dumps(described, sort_keys=True, ensure_ascii=False)
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def _cursor(offset: int, fingerprint: str) -> str:
    raw = json.dumps({"o": offset, "f": fingerprint}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _offset(cursor: str | None, fingerprint: str) -> int:
    if cursor is None:
        return 0
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
        offset, owner = int(data["o"]), str(data["f"])
    except (ValueError, TypeError, KeyError, binascii.Error):
        raise ApiError(400, "bad_cursor", "the cursor is not one this API gave") from None
    if owner != fingerprint:
        raise ApiError(
            400, "bad_cursor", "the cursor belongs to another query: repeat the query it came with"
        )
    if not 0 < offset < MAX_WINDOW:
        raise ApiError(400, "bad_cursor", f"a cursor reaches {MAX_WINDOW} hits at most")
    return offset


def _base64_image(text: str, limit: int) -> bytes:
    if len(text) > limit * 4 // 3 + 4:
        raise ApiError(413, "too_large", f"the query picture is larger than {limit:,} bytes")
    compact = "".join(text.split())
    if compact.startswith("data:") and "," in compact:  # a data: URL
        compact = compact.split(",", 1)[1]
    try:
        data = base64.b64decode(
            compact.replace("-", "+").replace("_", "/") + "=" * (-len(compact) % 4),
            validate=True,
        )
    except (binascii.Error, ValueError):
        raise ApiError(400, "bad_image", "`image` is not valid base64") from None
    return _check_picture(data)


def _read_query_image(stream: Any, limit: int) -> bytes:
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise ApiError(413, "too_large", f"the query picture is larger than {limit:,} bytes")
    return _check_picture(data)


def _check_picture(data: bytes) -> bytes:
    if uploads.sniff(data[: uploads.HEAD_BYTES]) not in uploads.IMAGE_TYPES:
        raise ApiError(
            415, "unsupported_media_type", "the query picture must be a JPEG, PNG, GIF or WebP"
        )
    return data


def _upload_picture(state: _State, upload_id: str, limit: int) -> bytes:
    saved = state.jobs.upload(upload_id)
    if saved is None:
        raise ApiError(404, "not_found", f"no upload {upload_id!r} (uploads are kept in memory)")
    if saved.bytes > limit:
        raise ApiError(413, "too_large", f"the query picture is larger than {limit:,} bytes")
    try:
        data = saved.path.read_bytes()
    except OSError:
        raise ApiError(404, "not_found", f"upload {upload_id!r} is gone") from None
    return _check_picture(data)


def _mix_pairs(state: _State, expr: str, principal: Principal) -> list[tuple[str | bytes, float]]:
    """A mixed query's parts, its pictures named `item:<id>` or `upload:<id>` (never paths:
    the server's files are not the client's to name)."""
    pairs: list[tuple[str | bytes, float]] = []
    for part in parse_mixed(expr):
        if part.text is not None:
            pairs.append((part.text, part.weight))
            continue
        token = str(part.image)
        prefix, _, ident = token.partition(":")
        if prefix == "item" and ID_PATTERN.fullmatch(ident):
            unit = _unit(state, ident, principal)
            shown = state.heron().thumbnail_path(unit)
            if shown is None:
                raise ApiError(400, "bad_query", f"item {ident} ({unit.kind}) has no picture")
            pairs.append((shown.read_bytes(), part.weight))
        elif prefix == "upload":
            limit = state.config.max_query_image_bytes
            pairs.append((_upload_picture(state, ident, limit), part.weight))
        else:
            raise ApiError(
                400,
                "bad_query",
                f"{token!r}: a picture in a mixed query is item:<id> or upload:<upload_id>, "
                'and a text is quoted ("a beach")',
            )
    return pairs


# ---------------------------------------------------------------------------------- files


def _unit(state: _State, item_id: str, principal: Principal) -> Unit:
    """The unit, if it exists and the principal may see it (404 alike: no tell-tale 403)."""
    unit = None
    if ID_PATTERN.fullmatch(item_id):
        unit = state.heron().get(item_id, visible_to=principal.visible_to)
    if unit is None:
        raise ApiError(404, "not_found", f"no item {item_id!r}")
    return unit


def _source_file(unit: Unit) -> FileResponse:
    """The first of the unit's catalogued source paths still on disk."""
    for stored in unit.paths or [unit.path]:
        path = Path(on_disk(stored))
        if path.is_file():
            return _file(path, _media_type(path), file_name(stored))
    raise ApiError(404, "gone", f"the source file of item {unit.id} is no longer on disk")


def _media_type(path: Path) -> str:
    try:
        with path.open("rb") as handle:
            head = handle.read(uploads.HEAD_BYTES)
    except OSError:
        return "application/octet-stream"
    text = _utf8_prefix(head)
    kind = uploads.sniff(head, path, utf8_text=text)
    if kind is None:
        return "application/octet-stream"
    if kind == uploads.TEXT and path.suffix.lower() in {".md", ".markdown"}:
        return uploads.MARKDOWN.media_type
    if kind == uploads.TEXT and path.suffix.lower() in {".html", ".htm"}:
        return "application/octet-stream"  # never rendered by the browser from here
    return kind.media_type


def _utf8_prefix(head: bytes) -> bool:
    """Whether `head` is UTF-8 text (a character cut at its end allowed) without NUL bytes."""
    if b"\x00" in head:
        return False
    for cut in range(4):
        try:
            head[: len(head) - cut].decode("utf-8")
            return True
        except UnicodeDecodeError:
            continue
    return False


def _file(path: Path, media_type: str, name: str, inline: bool | None = None) -> FileResponse:
    inline = media_type in INLINE_TYPES if inline is None else inline
    if media_type.startswith("text/"):
        media_type += "; charset=utf-8"
    return FileResponse(
        path,
        media_type=media_type,
        filename=name,
        content_disposition_type="inline" if inline else "attachment",
        headers={
            "Cache-Control": "private, max-age=3600",
            "X-Content-Type-Options": "nosniff",
        },
    )
