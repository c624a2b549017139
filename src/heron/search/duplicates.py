"""Duplicates in a library: exact copies (one content at several paths) and near-duplicates
(the same picture resized, recompressed, cropped, padded, brightened, greyed, rotated ...), as
`heron duplicates` reports them and as search collapses them.

Exact copies are already one unit (a content hash) with several paths in the catalog. Near
duplicates are decided by `heron.understand.neardup` from the fingerprint each picture unit
carries (computed at ingest; units indexed before fingerprints existed get one here, from their
thumbnail or small original), then by local features (`heron.understand.keypoints`) for each
picture and its nearest neighbours by the model's vectors: a portrait cut, a recolour. Burst
photos and similar shots are different pictures. Search's collapse uses the fingerprints only
(a local check costs ~50 ms a picture).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from heron.catalog import Catalog
from heron.store.base import Store, StoreHit
from heron.store.filters import Field, Filter
from heron.understand import keypoints
from heron.understand.neardup import (
    Candidate,
    fingerprint,
    group_duplicates,
    matching_pairs,
    parse_fingerprint,
)

DEFAULT_KINDS = ("image",)  # photos; frames and figures on request (`--kind frame`)
_COLUMNS = ["id", "kind", "path", "source", "width", "height", "bytes", "taken_at",
            "thumbnail", "fingerprint", "vector"]  # fmt: skip


@dataclass(frozen=True)
class DuplicateFile:
    """One file of a duplicate set."""

    id: str  # its unit
    path: str
    width: int
    height: int
    bytes: int
    taken_at: datetime | None = None
    reason: str = ""  # why it is the same picture as the one to keep ("" for the keep itself)


@dataclass(frozen=True)
class DuplicateSet:
    """Files that hold one picture: `keep` is the best copy, `others` the rest.

    `kind` is "exact" when every file has the same bytes, "near" when some differ."""

    kind: str
    keep: DuplicateFile
    others: list[DuplicateFile] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for item in (data["keep"], *data["others"]):
            item["taken_at"] = item["taken_at"].isoformat() if item["taken_at"] else None
        return data


def find_duplicates(
    store: Store,
    catalog: Catalog,
    thumbnails_dir: Path,
    kinds: Sequence[str] = DEFAULT_KINDS,
    progress: Callable[[int, int], None] | None = None,
    scope: Filter | None = None,
    local_features: bool = True,
) -> list[DuplicateSet]:
    """Every set of files holding one picture among units of `kinds` (within `scope`, e.g.
    what a caller may see), biggest sets first. `local_features` adds the second look
    (`heron.understand.keypoints`: portrait cuts, recolours) to the fingerprints' decision."""
    wanted = Field("kind").isin(list(kinds))
    rows = list(store.scan(wanted if scope is None else wanted & scope, columns=_COLUMNS))
    _backfill(store, rows, thumbnails_dir)
    paths = catalog.paths_for_units(row["id"] for row in rows)
    by_id = {row["id"]: row for row in rows}
    candidates = [_candidate(row) for row in rows if row["fingerprint"]]
    sets: list[DuplicateSet] = []
    grouped: set[str] = set()
    look = None
    if local_features and keypoints.available():
        look = keypoints.second_look(lambda c: _pixels(c, thumbnails_dir), progress)
    for group in group_duplicates(candidates, progress=progress, second_look=look):
        grouped.update(group.members)
        keep_row = by_id[group.keep]
        keep_paths = paths.get(group.keep) or [str(keep_row["path"])]
        keep = _file(keep_row, keep_paths[0])
        others = [_file(keep_row, p, "the same bytes") for p in keep_paths[1:]]
        for member in group.members[1:]:
            reason = group.evidence.get(member, (0, ""))[1]
            row = by_id[member]
            others += [_file(row, p, reason) for p in paths.get(member) or [str(row["path"])]]
        sets.append(DuplicateSet("near", keep, others))
    for unit_id, unit_paths in paths.items():  # one content at several paths, alone
        if unit_id not in grouped and len(unit_paths) > 1:
            row = by_id[unit_id]
            others = [_file(row, p, "the same bytes") for p in unit_paths[1:]]
            sets.append(DuplicateSet("exact", _file(row, unit_paths[0]), others))
    sets.sort(key=lambda s: (-len(s.others), s.keep.path))
    return sets


def _pixels(candidate: Candidate, thumbnails_dir: Path) -> Image.Image | None:
    """The candidate's picture at about `keypoints.LOCAL_SIDE` (JPEG decoded at a reduced
    size): the original when it is a picture file that can be read, else the thumbnail."""
    pictures = [Path(candidate.path)]
    if candidate.thumbnail:
        pictures.append(thumbnails_dir / candidate.thumbnail)
    for picture in pictures:
        try:
            with Image.open(picture) as image:
                image.draft("RGB", (keypoints.LOCAL_SIDE, keypoints.LOCAL_SIDE))
                if max(image.size) > 4 * keypoints.LOCAL_SIDE:
                    image.thumbnail((keypoints.LOCAL_SIDE, keypoints.LOCAL_SIDE))
                return image.convert("RGB")
        except (OSError, ValueError, Image.DecompressionBombError):
            continue
    return None


def collapse(hits: Sequence[StoreHit]) -> tuple[list[StoreHit], dict[str, list[str]]]:
    """`hits` with every near-duplicate of a better-ranked hit folded into it: the hits kept,
    in order, and for each kept hit the ids folded into it."""
    candidates = {hit.id: c for hit in hits if (c := _hit_candidate(hit)) is not None}
    same: dict[str, set[str]] = {}
    # One screened, batched pass over the hits' fingerprints (not a check per pair of hits).
    for a, b, _, _ in matching_pairs(candidates.values()) if len(candidates) > 1 else []:
        same.setdefault(a, set()).add(b)
        same.setdefault(b, set()).add(a)
    kept: list[StoreHit] = []
    folded: dict[str, list[str]] = {}
    for hit in hits:
        twin = next((k for k in kept if k.id in same.get(hit.id, ())), None)
        if twin is not None:
            folded.setdefault(twin.id, []).append(hit.id)
        else:
            kept.append(hit)
    return kept, folded


def _hit_candidate(hit: StoreHit) -> Candidate | None:
    if not _current(str(hit.row.get("fingerprint") or "")):
        return None
    return _candidate({**hit.row, "id": hit.id})


def _candidate(row: dict[str, Any]) -> Candidate:
    # Equal `source` means an exact copy only for a whole-file unit: the keyframes of one video
    # (the pages of one PDF, its figures) share their file's hash and are different pictures.
    whole_file = row.get("kind", "image") == "image"
    return Candidate(
        id=row["id"],
        fingerprint=str(row["fingerprint"]),
        width=int(row.get("width") or 0),
        height=int(row.get("height") or 0),
        bytes=int(row.get("bytes") or 0),
        taken_at=row.get("taken_at"),
        source=str(row.get("source") or row["id"]) if whole_file else str(row["id"]),
        path=str(row.get("path") or ""),
        vector=None if row.get("vector") is None else np.asarray(row["vector"], np.float32),
        thumbnail=str(row.get("thumbnail") or ""),
    )


def _file(row: dict[str, Any], path: str, reason: str = "") -> DuplicateFile:
    return DuplicateFile(
        id=row["id"],
        path=path,
        width=int(row.get("width") or 0),
        height=int(row.get("height") or 0),
        bytes=int(row.get("bytes") or 0),
        taken_at=row.get("taken_at"),
        reason=reason,
    )


def _backfill(store: Store, rows: list[dict[str, Any]], thumbnails_dir: Path) -> None:
    """Units without a fingerprint of this version (indexed before it) get one now, from their
    thumbnail or their small original; it is stored, so this happens once."""
    stale = [row for row in rows if not _current(str(row.get("fingerprint") or ""))]
    made: dict[str, str] = {}
    for row in stale:
        picture = Path(thumbnails_dir / row["thumbnail"]) if row["thumbnail"] else Path(row["path"])
        try:
            with Image.open(picture) as image:
                made[row["id"]] = fingerprint(image.convert("RGB"))
        except (OSError, ValueError, Image.DecompressionBombError):
            continue  # a moved original: left out until it is indexed again
    for row in rows:
        if row["id"] in made:
            row["fingerprint"] = made[row["id"]]
    if made:
        full = store.get(list(made))
        for row in full:
            row["fingerprint"] = made[row["id"]]
        store.upsert(full)


def _current(text: str) -> bool:
    if not text:
        return False
    try:
        parse_fingerprint(text)
    except ValueError:
        return False
    return True


__all__ = ["DEFAULT_KINDS", "DuplicateFile", "DuplicateSet", "collapse", "find_duplicates"]
