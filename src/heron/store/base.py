"""The Store contract: the unit row schema, search hits, and the protocol every backend meets.

A store knows nothing of images or models: it keeps one row per unit id (a vector plus the
fields in UNIT_COLUMNS) and answers exact-id and nearest-neighbour questions about them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

from heron.store.filters import ColumnType, Filter
from heron.util.errors import HeronError

UNIT_COLUMNS: Mapping[str, ColumnType] = MappingProxyType(
    {
        "id": "string",  # primary key: heron.understand.hashes.unit_id(source, locator)
        "vector": "vector",  # float32[dim], L2-normalised
        "model": "string",  # model stamp, e.g. "heron-lite@1.0"
        "kind": "string",  # image | page | figure | slide | frame | passage
        "path": "string",  # the source file (its first indexed path)
        "source": "string",  # the source's content hash; "" in stores older than documents
        "locator": "string",  # where in the source: "" (whole file), "page=3", "t=42.000" ...
        "pointer": "string",  # JSON: page, slide, box, time, start/end ... (heron.extract.base)
        "text": "string",  # searchable text: OCR, caption, chunk, file name, keywords
        "terms": "string",  # `text` cut into keyword-search terms (heron.understand.terms)
        "width": "int32",
        "height": "int32",
        "bytes": "int64",
        "format": "string",
        "modified_at": "timestamp",  # microseconds, UTC
        "indexed_at": "timestamp",  # microseconds, UTC
        "thumbnail": "string",  # path relative to the thumbnails folder; empty: the original is one
        "extra": "string",  # JSON object
        "colours": "string",  # dominant colour names, space-separated and -padded: " red grey "
        "scheme": "string",  # warm | cool | neutral; "" for units without pixels
        "brightness": "float64",  # 0..1, None without pixels
        "saturation": "float64",  # 0..1, None without pixels
        "category": "string",  # zero-shot category (heron.understand.categories); "" without pixels
        "category_score": "float64",  # its confidence, 0..1
        "taken_at": "timestamp",  # when a photo was taken (EXIF), None when unknown
        "camera": "string",  # EXIF make and model, lower-cased for filtering; "" when unknown
        "latitude": "float64",  # EXIF GPS, degrees north; None when unknown
        "longitude": "float64",  # degrees east
        "tags": "string",  # tags people gave the source, space-separated and -padded: " cat "
        "fingerprint": "string",  # perceptual fingerprint (heron.understand.neardup); "" if none
        "acl": "string",  # who may see it (heron.catalog.acl): " finance "; "" is everyone
    }
)

# Columns a caller may leave out of a row, and what the store writes instead.
# indexed_at is absent here: a missing one is stamped with the time of the upsert.
UNIT_DEFAULTS: Mapping[str, Any] = MappingProxyType(
    {
        "kind": "",
        "path": "",
        "source": "",
        "locator": "",
        "pointer": "{}",
        "text": "",
        "terms": "",
        "width": 0,
        "height": 0,
        "bytes": 0,
        "format": "",
        "modified_at": None,
        "thumbnail": "",
        "extra": "{}",
        "colours": "",
        "scheme": "",
        "brightness": None,
        "saturation": None,
        "category": "",
        "category_score": None,
        "taken_at": None,
        "camera": "",
        "latitude": None,
        "longitude": None,
        "tags": "",
        "fingerprint": "",
        "acl": "",
    }
)
REQUIRED_COLUMNS: frozenset[str] = frozenset({"id", "vector", "model"})
KeywordMatch = Literal["phrase", "all"]


class StoreError(HeronError, RuntimeError):
    """A store operation failed or was given rows, vectors or ids it cannot accept."""

    code = "store_error"
    status = 400


@dataclass(frozen=True)
class StoreHit:
    """One search result: ``score`` is the cosine similarity (higher is closer).

    ``row`` holds every unit column except ``vector``.
    """

    id: str
    score: float
    row: dict[str, Any] = field(repr=False)


@runtime_checkable
class Store(Protocol):
    """What every store backend provides (see docs/architecture.md)."""

    dim: int

    def upsert(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Insert or replace rows by id, atomically per call; returns distinct ids written."""
        ...

    def insert_new(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Append rows whose ids are known to be absent (cheaper than upsert), atomically."""
        ...

    def delete(self, ids: Iterable[str]) -> None: ...

    def get(self, ids: Iterable[str]) -> list[dict[str, Any]]:
        """Rows for the ids that exist, in the order asked, vectors included."""
        ...

    def search(
        self, vector: np.ndarray, k: int, filter: Filter | None = None
    ) -> list[StoreHit]: ...

    def search_many(
        self, vectors: np.ndarray, k: int, filter: Filter | None = None
    ) -> list[list[StoreHit]]:
        """`search` for each row of ``vectors`` [N, dim], answered together (evaluation)."""
        ...

    def keyword_search(
        self, phrase: str, k: int, filter: Filter | None = None, match: KeywordMatch = "phrase"
    ) -> list[StoreHit]:
        """The k rows whose ``terms`` hold ``phrase`` (space-separated terms, consecutive; with
        match="all", every term in any order), best BM25 first (``score`` is BM25, not a
        cosine) among those matching ``filter``."""
        ...

    def scan(
        self, filter: Filter | None = None, columns: Iterable[str] | None = None
    ) -> Iterator[dict[str, Any]]:
        """Every row matching ``filter``, with only ``columns`` (default: all but the vector;
        name "vector" to have it), in batches: what whole-library passes (duplicates) read."""
        ...

    def rows_without_terms(self) -> list[dict[str, Any]]:
        """Rows that have text but no terms (stored before the terms column existed)."""
        ...

    def count(self, filter: Filter | None = None) -> int: ...

    def ids(self) -> set[str]: ...

    def models(self) -> set[str]: ...

    def optimize(self) -> None: ...

    def close(self) -> None: ...


# --------------------------------------------------------------------------- row checks


def normalize_row(row: Mapping[str, Any], dim: int, now: datetime) -> dict[str, Any]:
    """Validate one row and fill defaults; the result has exactly the UNIT_COLUMNS keys."""
    unknown = set(row) - set(UNIT_COLUMNS)
    if unknown:
        raise StoreError(f"unknown column(s) {sorted(unknown)}; columns are {list(UNIT_COLUMNS)}")
    missing = REQUIRED_COLUMNS - {k for k, v in row.items() if v is not None}
    if missing:
        raise StoreError(f"row {row.get('id')!r} lacks required column(s) {sorted(missing)}")
    out: dict[str, Any] = {}
    for name, ctype in UNIT_COLUMNS.items():
        value = row.get(name)
        if value is None:
            value = now if name == "indexed_at" else UNIT_DEFAULTS.get(name)
        out[name] = _coerce(name, ctype, value, dim)
    if not out["id"]:
        raise StoreError("a row id must be a non-empty string")
    return out


def _coerce(name: str, ctype: ColumnType, value: Any, dim: int) -> Any:
    if value is None:
        return None
    if ctype == "vector":
        return check_vector(value, dim, what=f"vector of {name!r}")
    if ctype == "timestamp":
        return to_utc(value, name)
    if name in ("extra", "pointer") and isinstance(value, Mapping):
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    if ctype == "string":
        if not isinstance(value, str):
            raise StoreError(f"column {name!r} takes a string, got {type(value).__name__}")
        return value
    if ctype in ("int32", "int64"):
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise StoreError(f"column {name!r} takes an integer, got {value!r}")
        return int(value)
    if ctype == "float64":
        if isinstance(value, bool) or not isinstance(value, int | float | np.number):
            raise StoreError(f"column {name!r} takes a number, got {value!r}")
        if not math.isfinite(float(value)):
            raise StoreError(f"column {name!r} takes a finite number, got {value!r}")
        return float(value)
    return value


def to_utc(value: Any, name: str = "timestamp") -> datetime:
    """A datetime (naive means UTC) or POSIX seconds, as an aware UTC datetime."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return datetime.fromtimestamp(value, tz=UTC)
    raise StoreError(f"column {name!r} takes a datetime or POSIX seconds, got {value!r}")


def check_vector(value: Any, dim: int, what: str = "vector") -> np.ndarray:
    """``value`` as a finite float32 array of shape (dim,), or StoreError."""
    try:
        arr = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise StoreError(f"{what} is not numeric: {exc}") from None
    if arr.shape != (dim,):
        raise StoreError(
            f"{what} has shape {arr.shape}, but this store holds {dim}-d vectors "
            "(was it made by a different model?)"
        )
    if not np.isfinite(arr).all():
        raise StoreError(f"{what} contains NaN or infinity")
    return arr


def dedupe_last(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Keep the last row for each id (a batch may carry one id twice)."""
    by_id: dict[str, dict[str, Any]] = {}
    for row in rows:
        by_id.pop(row["id"], None)
        by_id[row["id"]] = row
    return list(by_id.values())


__all__ = [
    "REQUIRED_COLUMNS",
    "UNIT_COLUMNS",
    "UNIT_DEFAULTS",
    "KeywordMatch",
    "Store",
    "StoreError",
    "StoreHit",
    "check_vector",
    "dedupe_last",
    "normalize_row",
    "to_utc",
]
