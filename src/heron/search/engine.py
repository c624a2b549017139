"""Turn a query (text, image, or both) into a ranked list of hits from the store."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from heron.catalog import Catalog
from heron.models import registry
from heron.models.encoder import Encoder
from heron.search.calibration import Calibration, calibrate, modality_of
from heron.search.duplicates import collapse as collapse_duplicates
from heron.store.base import Store, StoreHit
from heron.store.filters import Field, Filter
from heron.understand.colours import COLOUR_NAMES
from heron.understand.terms import index_text
from heron.util.errors import HeronError
from heron.util.scripts import LANGUAGE_NAMES, unreadable_scripts

EXCERPT_CHARS = 160
RRF_K = 60  # reciprocal-rank fusion's constant (Cormack et al.): 1 / (RRF_K + rank)
FUSION_DEPTH = 50  # candidates each list brings to the fusion, at least (3 × k when larger)

RANK_CHUNK = 1024  # queries per store call in rank_many: bounded result tables
# Calibrated relevance is measured per group of units: passages are compared by the text
# tower (text→text scores run higher), everything with pixels by the image tower.
TEXT_KINDS = frozenset({"passage"})
CALIBRATION_SAMPLE = 64  # picture vectors the image calibration searches leave-one-out
COLLAPSE_SLACK = 10  # extra candidates a collapsing search reads, to still fill k


class QueryError(HeronError, ValueError):
    """The query cannot be run as given."""

    code = "bad_query"
    status = 400


class QueryWarning(UserWarning):
    """The query runs, but its results will likely be poor (e.g. a language the model lacks)."""


class ModelMismatchError(QueryError):
    """The index holds vectors of another model than the one asked to search with."""

    code = "model_mismatch"
    status = 409


def mismatch_message(where: str, stored: str, asked: str, doing: str) -> str:
    """What to do when `where` holds vectors of model `stored` and `asked` is another model."""
    keep = registry.name_for_stamp(stored)
    new = registry.name_for_stamp(asked)
    return (
        f"{where} holds vectors made by {stored}, and {doing} with {asked} would compare "
        f"incomparable vectors. Use it as it is with --model {keep}, or re-index it into {asked} "
        f"with one command: heron reindex --model {new}"
    )


@dataclass(frozen=True)
class SearchHit:
    id: str
    score: float
    path: str
    kind: str
    width: int
    height: int
    format: str
    model: str
    modified_at: datetime | None = None
    # the key of its WebP thumbnail in the library's thumbnail store ("ab/abcd….webp"), or None:
    # a small photo is shown as it is, a passage has no picture (`Heron.thumbnail_path`)
    thumbnail: str | None = None
    paths: list[str] = field(default_factory=list)  # every indexed path of the unit's source
    excerpt: str = ""  # the start of the unit's searchable text
    locator: str = ""  # where in its source: "" (the whole file), "page=3", "t=42.000" ...
    pointer: dict[str, Any] = field(default_factory=dict)  # page, slide, box, time, start/end
    source: str = ""  # the source's content hash: every unit of one document shares it
    explain: dict[str, Any] | None = None  # fused searches: each list's rank and score
    tags: dict[str, Any] = field(default_factory=dict)  # colours, scheme, brightness, saturation
    # P(an unrelated query's best hit scores lower) on this library, 0..1
    # (heron.search.calibration); None when the query kind has no calibration (mixed queries)
    relevance: float | None = None
    # near-duplicates of this hit folded into it (unit ids; `collapse=False` lists them apart)
    duplicates: list[str] = field(default_factory=list)

    @property
    def has_picture(self) -> bool:
        """A thumbnail, or a photo small enough to be shown as it is."""
        return bool(self.thumbnail) or self.kind == "image"

    def to_dict(self) -> dict[str, object]:
        data = dict(self.__dict__)
        data["score"] = round(self.score, 6)
        if self.relevance is not None:
            data["relevance"] = round(self.relevance, 4)
        data["modified_at"] = self.modified_at.isoformat() if self.modified_at else None
        return data


@dataclass(frozen=True)
class Unit:
    """Everything stored about one unit (what `Heron.get` returns); no vector."""

    id: str
    path: str  # the first indexed path of the unit's source
    kind: str
    width: int
    height: int
    format: str
    model: str
    bytes: int
    text: str
    modified_at: datetime | None
    indexed_at: datetime | None
    thumbnail: str | None  # its thumbnail's key, as `SearchHit.thumbnail`
    paths: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    locator: str = ""
    pointer: dict[str, Any] = field(default_factory=dict)
    source: str = ""
    tags: dict[str, Any] = field(default_factory=dict)

    @property
    def has_picture(self) -> bool:
        """A thumbnail, or a photo small enough to be shown as it is."""
        return bool(self.thumbnail) or self.kind == "image"

    def to_dict(self) -> dict[str, object]:
        data = dict(self.__dict__)
        for key in ("modified_at", "indexed_at"):
            data[key] = data[key].isoformat() if data[key] else None
        return data


class Searcher:
    def __init__(self, store: Store, catalog: Catalog, encoder: Encoder, thumbnails_dir: Path):
        self.store = store
        self.catalog = catalog
        self.encoder = encoder
        self.thumbnails_dir = thumbnails_dir
        self._model_checked = False
        self._only_this_model = False
        self._calibrations: dict[tuple[str, str], Calibration | None] = {}

    def check_model(self) -> None:
        """Refuse to compare the query model's vectors with another model's (checked once)."""
        if self._model_checked:
            return
        stored = self.store.models()
        if stored and self.encoder.stamp not in stored:
            raise ModelMismatchError(
                mismatch_message("this index", sorted(stored)[0], self.encoder.stamp, "searching")
            )
        self._model_checked = bool(stored)
        # A data dir is bound to one model, so usually every row is this model's and the
        # model filter only costs time (it doubled Lance's search time at 7k rows).
        self._only_this_model = stored == {self.encoder.stamp}

    def _scope(self, where: Filter | None = None) -> Filter | None:
        """The caller's filter, restricted to this model's vectors when others are stored."""
        if self._only_this_model:
            return where
        scope: Filter = Field("model") == self.encoder.stamp
        return scope if where is None else scope & where

    def query_vector(self, text: str | None, images: list[Image.Image]) -> np.ndarray:
        """One unit vector for the query; text and images together are averaged."""
        parts: list[np.ndarray] = []
        if text is not None:
            if not text.strip():
                raise QueryError("the text query is empty")
            parts.append(self.encoder.embed_texts([text])[0])
        if images:
            parts.extend(self.encoder.embed_images(images))
        if not parts:
            raise QueryError("give a text query, an image, or both")
        vector = np.mean(np.stack(parts), axis=0).astype(np.float32)
        return vector / max(float(np.linalg.norm(vector)), 1e-12)

    def language_warning(self, text: str) -> str | None:
        """Why `text` will be misread: it is in a script none of the model's languages use."""
        languages = self.encoder.languages
        unreadable = unreadable_scripts(text, languages)
        if not unreadable:
            return None
        known = ", ".join(LANGUAGE_NAMES.get(code, code) for code in languages)
        return (
            f"{self.encoder.model_id} understands {known} only; this query is written in "
            f"{' and '.join(unreadable)} script, so its results will be poor. Index with a "
            "model that reads this language to search in it (see `heron models list`)."
        )

    def rank_many(
        self,
        vectors: np.ndarray,
        k: int = 10,
        on_progress: Callable[[int], None] | None = None,
    ) -> list[list[str]]:
        """Unit ids only, best first, for each row of ``vectors`` (what evaluation needs, without
        resolving paths), answered by the store RANK_CHUNK queries at a time; `on_progress`
        hears how many are ranked after each chunk."""
        self.check_model()
        ranked: list[list[str]] = []
        for start in range(0, len(vectors), RANK_CHUNK):
            answers = self.store.search_many(vectors[start : start + RANK_CHUNK], k, self._scope())
            ranked.extend([hit.id for hit in hits] for hits in answers)
            if on_progress is not None:
                on_progress(len(ranked))
        return ranked

    def search(
        self,
        vector: np.ndarray,
        k: int = 10,
        where: Filter | None = None,
        min_score: float | None = None,
        modality: str | None = None,
        min_relevance: float = 0.0,
        collapse: bool = True,
    ) -> list[SearchHit]:
        """The k nearest units; with a `modality` (`calibration.modality_of`), each hit gets
        its calibrated relevance and those below `min_relevance` are dropped; with `collapse`,
        a near-duplicate of a better hit is folded into it (`SearchHit.duplicates`)."""
        if k < 1:
            raise QueryError(f"k must be at least 1, got {k}")
        self.check_model()
        depth = k + COLLAPSE_SLACK if collapse else k
        hits = self.store.search(vector, depth, self._scope(where))
        if min_score is not None:
            hits = [hit for hit in hits if hit.score >= min_score]
        relevances = self._relevances(hits, modality)
        hits = [hit for hit in hits if _relevant(relevances.get(hit.id), min_relevance)]
        hits, folded = collapse_duplicates(hits) if collapse else (hits, {})
        hits = hits[:k]
        paths = self.catalog.paths_for_units(hit.id for hit in hits)
        return [
            replace(
                self._hit(hit, paths.get(hit.id, [])),
                relevance=relevances.get(hit.id),
                duplicates=folded.get(hit.id, []),
            )
            for hit in hits
        ]

    # ------------------------------------------------------------------ relevance

    def _relevances(self, hits: list[StoreHit], modality: str | None) -> dict[str, float]:
        """Each hit's calibrated relevance, where its group of units has a calibration."""
        if modality is None:
            return {}
        out: dict[str, float] = {}
        for hit in hits:
            calibration = self.calibration(modality, _group(hit.row))
            if calibration is not None:
                out[hit.id] = float(calibration.relevance(hit.score))
        return out

    def calibration(self, modality: str, group: str) -> Calibration | None:
        """The calibration of `modality` queries against this library's `group` of units
        ("pixels" or "text"): read from the catalog, or measured (~0.5 s) when missing or
        when the group's size moved by more than `calibration.RECOMPUTE_RATIO`."""
        key = (modality, group)
        if key in self._calibrations:
            return self._calibrations[key]
        scope = self._group_scope(group)
        units = self.store.count(scope)
        meta_key = f"calibration:{self.encoder.stamp}:{modality}:{group}"
        stored = self.catalog.get_meta(meta_key)
        calibration = None
        if stored:
            try:
                calibration = Calibration.from_json(stored)
            except ValueError:
                calibration = None
        if calibration is None or calibration.stale(units, self.encoder.stamp):
            calibration = self._measure(modality, scope, units)
            if calibration is not None:
                # A read-only catalog cannot keep it: it is measured again next time.
                with contextlib.suppress(Exception):
                    self.catalog.set_meta(meta_key, calibration.to_json())
        self._calibrations[key] = calibration
        return calibration

    def _measure(self, modality: str, scope: Filter | None, units: int) -> Calibration | None:
        if units == 0:
            return None
        sample = self._picture_sample() if modality == "image" else None
        if modality == "image" and sample is None:
            return None

        def top_scores(vectors: np.ndarray, k: int) -> list[list[float]]:
            return [
                [hit.score for hit in hits] for hits in self.store.search_many(vectors, k, scope)
            ]

        try:
            return calibrate(self.encoder, top_scores, units, self.encoder.stamp, modality, sample)
        except ValueError:
            return None  # too small to calibrate: hits are shown uncut

    def _picture_sample(self) -> np.ndarray | None:
        """Vectors of up to CALIBRATION_SAMPLE units with pixels, chosen at random (seeded)."""
        ids = sorted(self.catalog.unit_ids())
        if not ids:
            return None
        rng = np.random.default_rng(len(ids))
        chosen = [ids[i] for i in rng.permutation(len(ids))[: 4 * CALIBRATION_SAMPLE]]
        rows = [r for r in self.store.get(chosen) if str(r["kind"]) not in TEXT_KINDS]
        if self.encoder.stamp:
            rows = [r for r in rows if r["model"] == self.encoder.stamp]
        if not rows:
            return None
        return np.stack([np.asarray(r["vector"], np.float32) for r in rows[:CALIBRATION_SAMPLE]])

    def _group_scope(self, group: str) -> Filter | None:
        kinds = sorted(TEXT_KINDS)
        in_group = Field("kind").isin(kinds)
        return self._scope(in_group if group == "text" else ~in_group)

    def modality(self, text: str | None, images: int) -> str | None:
        return modality_of(text, images, self.encoder.languages)

    def fused(
        self,
        vector: np.ndarray,
        words: list[str],
        phrases: list[str],
        k: int = 10,
        where: Filter | None = None,
        min_score: float | None = None,
        modality: str | None = None,
        min_relevance: float = 0.0,
        collapse: bool = True,
    ) -> list[SearchHit]:
        """One list from the vector search and the keyword searches, by reciprocal-rank fusion.

        The lists: the nearest vectors; the units whose text holds every word of `words` (any
        order, BM25); and per phrase, the units that hold it as written. A unit's fused score is
        the sum over the lists it is in of 1 / (RRF_K + rank), so a unit both lists agree on
        rises, and a phrase in a screenshot or a slide is found when the vectors miss it. Each
        hit keeps `score` = its cosine similarity to the query (computed for keyword-only hits)
        and says in `explain` where it came from. With a `modality`, a hit found by the vectors
        alone must reach `min_relevance` (calibrated); one the keywords found holds the words
        asked for, which is evidence enough.
        """
        if k < 1:
            raise QueryError(f"k must be at least 1, got {k}")
        self.check_model()
        depth = max(FUSION_DEPTH, 3 * k)
        scope = self._scope(where)
        lists: list[tuple[str, list[StoreHit]]] = [
            ("vector", self.store.search(vector, depth, scope))
        ]
        terms = index_text(" ".join(words))
        if terms:
            lists.append(("keyword", self.store.keyword_search(terms, depth, scope, "all")))
        for phrase in phrases:
            phrase_terms = index_text(phrase)
            if phrase_terms:
                hits = self.store.keyword_search(phrase_terms, depth, scope)
                lists.append((f"phrase:{phrase}", hits))
        nearest = lists[0][1]
        relevances = self._relevances(nearest, modality)
        fused = [
            item
            for item in _fuse(lists)
            if set(item[2]) != {"vector"} or _relevant(relevances.get(item[0].id), min_relevance)
        ]
        folded: dict[str, list[str]] = {}
        if collapse:
            kept, folded = collapse_duplicates([hit for hit, _, _ in fused])
            keep = {hit.id for hit in kept}
            fused = [item for item in fused if item[0].id in keep]
        fused = fused[:k]
        cosines = self._cosines(vector, fused, nearest)
        if min_score is not None:
            fused = [item for item in fused if cosines[item[0].id] >= min_score]
        keyword_hits = [StoreHit(hit.id, cosines[hit.id], hit.row) for hit, _, _ in fused]
        relevances.update(
            {
                i: r
                for i, r in self._relevances(keyword_hits, modality).items()
                if i not in relevances
            }
        )
        paths = self.catalog.paths_for_units(hit.id for hit, _, _ in fused)
        query_terms = set(terms.split())
        return [
            replace(
                self._hit(StoreHit(hit.id, cosines[hit.id], hit.row), paths.get(hit.id, [])),
                explain=_explanation(score, parts, query_terms, str(hit.row.get("terms") or "")),
                relevance=relevances.get(hit.id),
                duplicates=folded.get(hit.id, []),
            )
            for hit, score, parts in fused
        ]

    def _cosines(
        self, vector: np.ndarray, fused: list[tuple[StoreHit, float, dict]], nearest: list[StoreHit]
    ) -> dict[str, float]:
        """Each fused hit's cosine similarity: from the vector list, or computed from its row."""
        cosines = {hit.id: hit.score for hit in nearest}
        missing = [hit.id for hit, _, _ in fused if hit.id not in cosines]
        for row in self.store.get(missing) if missing else []:
            cosines[row["id"]] = float(np.dot(np.asarray(row["vector"], np.float32), vector))
        return cosines

    def keyword(self, query: str, k: int = 10, where: Filter | None = None) -> list[SearchHit]:
        """Units whose text (file name, and in time OCR, captions, passages) holds `query` as a
        phrase, best BM25 first; a keyword needs no model, so any stored unit can match."""
        if k < 1:
            raise QueryError(f"k must be at least 1, got {k}")
        phrase = index_text(query)
        if not phrase:
            raise QueryError("the keyword query has no letters or digits to look for")
        hits = self.store.keyword_search(phrase, k, where)
        paths = self.catalog.paths_for_units(hit.id for hit in hits)
        return [self._hit(hit, paths.get(hit.id, [])) for hit in hits]

    def get(self, unit_id: str) -> Unit | None:
        rows = self.store.get([unit_id])
        if not rows:
            return None
        row = rows[0]
        return Unit(
            id=unit_id,
            bytes=int(row["bytes"] or 0),
            text=str(row["text"] or ""),
            indexed_at=row.get("indexed_at"),
            extra=json.loads(row["extra"] or "{}"),
            **self._described(row, self.catalog.paths_for_units([unit_id]).get(unit_id, [])),
        )

    def _hit(self, hit: StoreHit, paths: list[str]) -> SearchHit:
        excerpt = _excerpt(str(hit.row.get("text") or ""))
        return SearchHit(
            id=hit.id, score=hit.score, excerpt=excerpt, **self._described(hit.row, paths)
        )

    def _described(self, row: dict[str, Any], paths: list[str]) -> dict[str, Any]:
        """The fields a hit and a unit share, with every path that holds its source."""
        path = paths[0] if paths else str(row["path"])
        kind = str(row["kind"])
        thumbnail: str | None = row.get("thumbnail") or None
        return {
            "path": path,
            "paths": paths,
            "kind": kind,
            "width": int(row["width"]),
            "height": int(row["height"]),
            "format": str(row["format"]),
            "model": str(row["model"]),
            "modified_at": row.get("modified_at"),
            "thumbnail": thumbnail,
            "locator": str(row.get("locator") or ""),
            "pointer": json.loads(row.get("pointer") or "{}"),
            "source": str(row.get("source") or row["id"]),
            "tags": _tags(row),
        }


def _group(row: dict[str, Any]) -> str:
    return "text" if str(row.get("kind")) in TEXT_KINDS else "pixels"


def _relevant(relevance: float | None, min_relevance: float) -> bool:
    return relevance is None or min_relevance <= 0 or relevance >= min_relevance


def _tags(row: dict[str, Any]) -> dict[str, Any]:
    """A unit's tags, as a hit shows them: those people gave (`user`), and those computed
    from its pixels (none for units without pixels)."""
    user = str(row.get("tags") or "").split()
    computed = _computed_tags(row)
    return {"user": user, **computed} if user else computed


def _computed_tags(row: dict[str, Any]) -> dict[str, Any]:
    colours = str(row.get("colours") or "").split()
    if not colours:
        return {}
    category = str(row.get("category") or "")
    return {
        **(
            {"category": category, "category_score": _rounded(row.get("category_score"))}
            if category
            else {}
        ),
        "colours": colours,
        "colours_zh": [COLOUR_NAMES.get(c, c) for c in colours],
        "scheme": row.get("scheme") or "",
        "brightness": _rounded(row.get("brightness")),
        "saturation": _rounded(row.get("saturation")),
    }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(float(value), 3)


def _fuse(
    lists: list[tuple[str, list[StoreHit]]],
) -> list[tuple[StoreHit, float, dict[str, dict[str, float]]]]:
    """Reciprocal-rank fusion: (hit, fused score, {list: {rank, score}}), best first."""
    fused: dict[str, tuple[StoreHit, float, dict[str, dict[str, float]]]] = {}
    for name, hits in lists:
        for rank, hit in enumerate(hits, start=1):
            first, total, parts = fused.get(hit.id, (hit, 0.0, {}))
            parts[name] = {"rank": rank, "score": round(hit.score, 6)}
            fused[hit.id] = (first, total + 1.0 / (RRF_K + rank), parts)
    return sorted(fused.values(), key=lambda item: (-item[1], item[0].id))


def _explanation(
    fused: float, parts: dict[str, dict[str, float]], query_terms: set[str], unit_terms: str
) -> dict[str, Any]:
    explain: dict[str, Any] = {"fused": round(fused, 6), **parts}
    if "keyword" in parts:
        have = set(unit_terms.split())
        explain["keyword"]["terms"] = sorted(query_terms & have)
    return explain


def _excerpt(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= EXCERPT_CHARS else text[: EXCERPT_CHARS - 1] + "…"
