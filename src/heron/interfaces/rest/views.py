"""Heron's hits and units as the API shows them: file names, never the server's paths."""

from __future__ import annotations

import re
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any

from heron.library import SearchHit, Unit
from heron.search.duplicates import DuplicateFile, DuplicateSet

ID_PATTERN = re.compile(r"[0-9a-f]{32}")  # blake2b-128 hex: content hashes and unit ids

__all__ = ["ID_PATTERN", "duplicate_set_view", "file_name", "hit_view", "scrubbed", "unit_view"]


def file_name(path: str) -> str:
    """The last part of a stored path (POSIX, or a Windows path stored as written)."""
    name = PurePosixPath(path).name
    return PureWindowsPath(name).name if "\\" in name and ":" in name else name


def _looks_like_path(value: str) -> bool:
    return value.startswith(("/", "~", "\\\\")) or bool(re.match(r"[A-Za-z]:[\\/]", value))


def scrubbed(value: Any) -> Any:
    """`value` (JSON-like) with every absolute path string cut down to its file name."""
    if isinstance(value, str):
        return file_name(value) if _looks_like_path(value) else value
    if isinstance(value, dict):
        return {key: scrubbed(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [scrubbed(item) for item in value]
    return value


def _urls(unit_id: str, has_picture: bool) -> dict[str, Any]:
    return {
        "thumbnail_url": f"/v1/items/{unit_id}/thumbnail" if has_picture else None,
        "content_url": f"/v1/items/{unit_id}/content",
    }


def hit_view(hit: SearchHit, explain: bool = False) -> dict[str, Any]:
    return {
        "id": hit.id,
        "kind": hit.kind,
        "score": round(float(hit.score), 6),
        "relevance": None if hit.relevance is None else round(float(hit.relevance), 4),
        "source": file_name(hit.path),
        "source_id": hit.source,
        "pointer": scrubbed(hit.pointer),
        "locator": hit.locator,
        "excerpt": hit.excerpt,
        "tags": scrubbed(hit.tags),
        "width": hit.width,
        "height": hit.height,
        "format": hit.format,
        "modified_at": hit.modified_at.isoformat() if hit.modified_at else None,
        "explain": scrubbed(hit.explain) if explain else None,
        **_urls(hit.id, hit.has_picture),
    }


def unit_view(unit: Unit) -> dict[str, Any]:
    return {
        "id": unit.id,
        "kind": unit.kind,
        "source": file_name(unit.path),
        "names": sorted({file_name(p) for p in unit.paths or [unit.path]}),
        "source_id": unit.source,
        "width": unit.width,
        "height": unit.height,
        "format": unit.format,
        "model": unit.model,
        "bytes": unit.bytes,
        "text": unit.text,
        "modified_at": unit.modified_at.isoformat() if unit.modified_at else None,
        "indexed_at": unit.indexed_at.isoformat() if unit.indexed_at else None,
        "locator": unit.locator,
        "pointer": scrubbed(unit.pointer),
        "tags": scrubbed(unit.tags),
        "extra": scrubbed(unit.extra),
        **_urls(unit.id, unit.has_picture),
    }


def _duplicate_file_view(item: DuplicateFile) -> dict[str, Any]:
    return {
        "id": item.id,
        "source": file_name(item.path),
        "width": item.width,
        "height": item.height,
        "bytes": item.bytes,
        "taken_at": item.taken_at.isoformat() if item.taken_at else None,
        "reason": item.reason,
        **_urls(item.id, True),
    }


def duplicate_set_view(found: DuplicateSet) -> dict[str, Any]:
    """A duplicate set as the API shows it: the file to keep first, by name, never by path."""
    return {
        "kind": found.kind,
        "keep": _duplicate_file_view(found.keep),
        "others": [_duplicate_file_view(item) for item in found.others],
    }
