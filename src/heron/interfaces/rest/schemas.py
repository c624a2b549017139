"""The REST API's request and response bodies (pydantic): what /docs shows."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Kind = Literal["image", "page", "figure", "slide", "frame", "passage"]
MAX_K = 200


class SearchRequest(BaseModel):
    """One search. Give `query` (the query language: words, "phrases", `kind:page`,
    `width>=800` ... as the CLI takes it) or `text` (words only, no filters), and/or a picture
    (`image` as base64, or `upload_id` of a file uploaded to POST /v1/items); or `mix`
    (`"beach" + 0.5*item:ID - "people"`: texts, and pictures named `item:<id>` or
    `upload:<upload_id>`, never a path).

    Pagination: pass the `next_cursor` of an answer as `cursor`, with the same query, for the
    next `k` hits. Cursors are offsets: the search is re-run for offset + k hits, so a page
    deeper than 1,000 hits is refused, and an index that changed between pages can repeat or
    skip a hit."""

    model_config = ConfigDict(extra="forbid")

    query: str | None = Field(None, max_length=4000, examples=["a dog on the beach kind:image"])
    text: str | None = Field(None, max_length=4000)
    image: str | None = Field(None, description="a picture as base64 (standard or URL-safe)")
    upload_id: str | None = Field(None, max_length=64)
    mix: str | None = Field(None, max_length=4000)
    k: int = Field(10, ge=1, le=MAX_K)
    kind: Kind | list[Kind] | None = None
    min_relevance: float | None = Field(
        None, ge=0.0, le=1.0, description="default: the server's setting (0.6); 0 keeps all k"
    )
    cursor: str | None = Field(None, max_length=200)
    explain: bool = False


class Hit(BaseModel):
    id: str
    kind: str
    score: float = Field(description="cosine similarity to the query")
    relevance: float | None = Field(None, description="calibrated 0..1; null for mixed queries")
    source: str = Field(description="the file name of the unit's source (no folders)")
    source_id: str = Field(description="the source's content id: a document's units share it")
    pointer: dict[str, Any] = Field(description="where in the source: page, box, slide, time ...")
    locator: str
    excerpt: str
    tags: dict[str, Any]
    width: int
    height: int
    format: str
    modified_at: str | None
    thumbnail_url: str | None
    content_url: str
    explain: dict[str, Any] | None = None


class SearchResponse(BaseModel):
    hits: list[Hit]
    took_ms: float
    next_cursor: str | None = None
    warnings: list[str] = Field(default_factory=list)


class Item(BaseModel):
    id: str
    kind: str
    source: str
    names: list[str] = Field(description="the file names of every indexed copy of the source")
    source_id: str
    width: int
    height: int
    format: str
    model: str
    bytes: int
    text: str
    modified_at: str | None
    indexed_at: str | None
    locator: str
    pointer: dict[str, Any]
    tags: dict[str, Any]
    extra: dict[str, Any]
    thumbnail_url: str | None
    content_url: str


class DeleteResponse(BaseModel):
    id: str
    files_removed: int = Field(description="indexed files of the unit's source forgotten")


class UploadedFile(BaseModel):
    upload_id: str
    name: str = Field(description="the client's file name, shown back (never used as a path)")
    stored_as: str
    media_type: str = Field(description="sniffed from the content")
    bytes: int
    outcome: str = Field(description="pending, indexed, indexed_in_part, skipped, not_indexed")
    reason: str | None
    item_ids: list[str]


class JobProgress(BaseModel):
    model_config = ConfigDict(extra="allow")
    done: int
    total: int
    rate: float | None = Field(None, description="files per second")
    eta_s: float | None = None


class JobError(BaseModel):
    code: str
    message: str


class JobResponse(BaseModel):
    id: str
    state: Literal["queued", "running", "done", "failed"]
    created_at: float
    started_at: float | None
    finished_at: float | None
    progress: JobProgress
    files: list[UploadedFile]
    report: dict[str, Any] | None
    error: JobError | None


class ErrorDetail(BaseModel):
    model_config = ConfigDict(extra="allow")
    code: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorDetail


class KeyCreateRequest(BaseModel):
    """A new API key: its role, who it is for, and the ACL labels it may see (a viewer or
    editor without labels sees only what carries none; an admin sees everything)."""

    model_config = ConfigDict(extra="forbid")

    role: Literal["viewer", "editor", "admin"]
    label: str = Field(..., min_length=1, max_length=200)
    labels: list[str] = Field(default_factory=list, max_length=100)
