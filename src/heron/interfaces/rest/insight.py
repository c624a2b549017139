"""Read-only views of a library for the web page: an item's photo metadata and duplicates,
a query's vector, a 2-D map of the stored vectors, memory use, the filter bar's vocabulary.

    app.include_router(insight_router(state))

Like the rest of the API, nothing here names a server path: files by their names only.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, Protocol

import numpy as np
from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from heron.catalog.keys import Principal
from heron.extract.base import UNIT_KINDS
from heron.interfaces.rest.auth import Authenticator, principal_of
from heron.interfaces.rest.errors import ApiError
from heron.interfaces.rest.views import ID_PATTERN, duplicate_set_view, file_name
from heron.library import Heron
from heron.search.query import parse_query
from heron.understand.categories import DEFAULT_CATEGORIES
from heron.understand.colours import COLOUR_NAMES

__all__ = ["insight_router"]

MAP_SAMPLE = 2000  # stored vectors a map is computed from, at most
SHOWN_VALUES = 32  # a query vector's first values shown as bars
NEAREST = 12


class _HasHeron(Protocol):
    auth: Authenticator

    def heron(self) -> Heron: ...


def _allowed(action: str) -> Any:
    """The request's principal, if its role may do `action` (403), as the API's own routes
    take it (`heron_action` marks the dependency: tests/test_keys.py checks every /v1 route)."""

    def dependency(request: Request) -> Principal:
        return principal_of(request, request.app.state.heron_api.auth, action)

    dependency.heron_action = action  # type: ignore[attr-defined]
    return Depends(dependency)


CanSearch = Annotated[Principal, _allowed("search")]
CanRead = Annotated[Principal, _allowed("read")]
CanSeeStats = Annotated[Principal, _allowed("stats")]
CanSeeDuplicates = Annotated[Principal, _allowed("duplicates")]


class VectorRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    query: str = Field(..., min_length=1, max_length=4000)
    k: int = Field(NEAREST, ge=1, le=50)


def _tree_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    total = 0
    if path.is_dir():
        for item in path.rglob("*"):
            try:
                if item.is_file():
                    total += item.stat().st_size
            except OSError:
                continue
    return total


def _text_of(query: str) -> str:
    text = parse_query(query).text.strip()
    if not text:
        raise ApiError(400, "bad_query", "the query has no words to make a vector of")
    return text


def _pca(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The mean, the first two principal axes (2 × dim) and the share of variance of each."""
    mean = vectors.mean(axis=0)
    centred = vectors - mean
    if len(vectors) < 2:
        axes = np.zeros((2, vectors.shape[1]), dtype=np.float32)
        return mean, axes, np.zeros(2)
    _, singular, vt = np.linalg.svd(centred, full_matrices=False)
    axes = vt[:2]
    if axes.shape[0] < 2:
        axes = np.vstack([axes, np.zeros((2 - axes.shape[0], vectors.shape[1]))])
    variance = singular**2
    share = variance[:2] / max(float(variance.sum()), 1e-12)
    return mean, axes, np.pad(share, (0, 2 - len(share)))


def insight_router(state: _HasHeron) -> APIRouter:
    router = APIRouter(tags=["insight"])

    @router.get("/v1/insight/items/{item_id}")
    def item_details(item_id: str, principal: CanRead, also: CanSeeDuplicates) -> dict[str, Any]:
        """An item's photo metadata (EXIF: taken, camera, GPS) and its duplicate set."""
        instance = state.heron()
        found_row = (
            instance.row(item_id, visible_to=principal.visible_to)
            if ID_PATTERN.fullmatch(item_id)
            else None
        )
        if found_row is None:  # absent, or not this key's to see: 404 alike
            raise ApiError(404, "not_found", f"no item {item_id!r}")
        row = found_row
        taken = row.get("taken_at")
        exif = {
            "taken_at": taken.isoformat() if taken is not None else None,
            "camera": row.get("camera") or None,
            "latitude": row.get("latitude"),
            "longitude": row.get("longitude"),
        }
        found: dict[str, Any] | None = None
        if row.get("kind") in ("image", "frame", "figure"):
            kinds = (str(row["kind"]),)
            for group in instance.duplicates(kinds, visible_to=principal.visible_to):
                ids = {group.keep.id, *(o.id for o in group.others)}
                if item_id in ids:
                    found = duplicate_set_view(group)
                    break
        return {
            "id": item_id,
            "exif": {k: v for k, v in exif.items() if v is not None},
            "duplicates": found,
        }

    @router.post("/v1/insight/vector")
    def query_vector(body: VectorRequest, principal: CanSearch) -> dict[str, Any]:
        """The query's vector (its dimension, norm and first values) and the nearest units'
        cosine similarities (vector search alone, no relevance cut)."""
        instance = state.heron()
        text = _text_of(body.query)
        vector = instance.embed_query(text)
        norm = float(np.linalg.norm(vector))
        hits = instance.search(
            query=body.query,
            k=body.k,
            min_relevance=0.0,
            fusion=False,
            visible_to=principal.visible_to,
        )
        return {
            "text": text,
            "model": instance.encoder_stamp,
            "dim": int(vector.shape[0]),
            "norm": round(norm, 6),
            "values": [round(float(v), 5) for v in vector[:SHOWN_VALUES]],
            "nearest": [
                {
                    "id": hit.id,
                    "kind": hit.kind,
                    "name": file_name(hit.path),
                    "score": round(float(hit.score), 5),
                    "pointer": hit.pointer,
                }
                for hit in hits
            ],
        }

    @router.get("/v1/insight/map")
    def vector_map(
        principal: CanSeeStats,
        sample: int = Query(MAP_SAMPLE, ge=2, le=10000),
        query: str | None = Query(None, max_length=4000),
    ) -> dict[str, Any]:
        """A 2-D map of the library: PCA of (a sample of) the stored vectors, each point with
        its kind and file name; with `query`, where the query's vector falls on it."""
        instance = state.heron()
        columns = ["id", "kind", "path", "vector"]
        rows = list(instance.rows(columns, visible_to=principal.visible_to))
        total = len(rows)
        if total > sample:  # a fixed sample: the same map on every visit
            picked = np.random.default_rng(0).choice(total, size=sample, replace=False)
            rows = [rows[i] for i in sorted(picked)]
        if not rows:
            return {"points": [], "total": 0, "explained": [0.0, 0.0], "query": None}
        vectors = np.stack([np.asarray(r["vector"], dtype=np.float32) for r in rows])
        mean, axes, share = _pca(vectors)
        xy = (vectors - mean) @ axes.T
        located = None
        if query:
            text = _text_of(query)
            vector = instance.embed_query(text)
            qx, qy = ((vector - mean) @ axes.T).tolist()
            located = {"text": text, "x": round(qx, 5), "y": round(qy, 5)}
        return {
            "total": total,
            "explained": [round(float(s), 4) for s in share],
            "points": [
                {
                    "id": row["id"],
                    "kind": row["kind"],
                    "name": file_name(str(row["path"])),
                    "x": round(float(x), 5),
                    "y": round(float(y), 5),
                }
                for row, (x, y) in zip(rows, xy.tolist(), strict=True)
            ],
            "query": located,
        }

    @router.get("/v1/insight/memory")
    def memory(principal: CanSeeStats) -> dict[str, Any]:
        """What this library costs: units by kind, vectors × dim × 4 bytes, bytes on disk (to
        an admin only: sizes would count what a key may not see)."""
        instance = state.heron()
        dim = instance.dim
        by_kind: dict[str, int] = {}
        for row in instance.rows(["kind"], visible_to=principal.visible_to):
            by_kind[row["kind"]] = by_kind.get(row["kind"], 0) + 1
        units = sum(by_kind.values())
        settings = instance.settings
        everything = principal.visible_to is None
        store_bytes = _tree_bytes(settings.store_path) if everything else 0
        thumbnail_bytes = _tree_bytes(settings.thumbnails_dir) if everything else 0
        catalog_bytes = _tree_bytes(settings.catalog_path) if everything else 0
        vector_bytes = units * dim * 4
        return {
            "model": instance.stats(visible_to=principal.visible_to).model,
            "dim": dim,
            "units": units,
            "units_by_kind": dict(sorted(by_kind.items())),
            "vector_bytes": vector_bytes,
            "store_bytes": store_bytes,
            "thumbnail_bytes": thumbnail_bytes,
            "catalog_bytes": catalog_bytes,
            "bytes_per_unit_on_disk": (
                math.ceil((store_bytes + thumbnail_bytes + catalog_bytes) / units) if units else 0
            ),
        }

    @router.get("/v1/insight/vocabulary")
    def vocabulary(principal: CanSearch) -> dict[str, Any]:
        """What the filter bar offers: kinds, colour names, categories (English, Chinese)."""
        return {
            "kinds": list(UNIT_KINDS),
            "colours": [{"name": n, "zh": zh} for n, zh in COLOUR_NAMES.items()],
            "categories": [{"name": c.name, "zh": c.chinese} for c in DEFAULT_CATEGORIES]
            + [{"name": "other", "zh": "其他"}],
        }

    return router
