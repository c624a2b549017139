"""The public Python API. Every interface (CLI, REST, web) goes through `Heron`.

from heron import Heron
with Heron("~/.local/share/heron") as heron:
    heron.index(["~/Pictures"])
    for hit in heron.search(text="a dog running on the beach", k=5):
        print(hit.score, hit.path)
"""

from __future__ import annotations

import base64
import json
import os
import re
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from heron.catalog import INDEXED, Catalog, FileRecord, RunRecord
from heron.catalog.acl import AclRule, acl_column, labels_for, parse_rules, visible_filter
from heron.catalog.keys import KeyRing
from heron.config import ConfigError, Settings
from heron.extract.base import UNIT_KINDS
from heron.extract.errors import SkipFile
from heron.extract.images import decode_image, decode_image_bytes
from heron.ingest import reindex
from heron.ingest.pipeline import Indexer, IndexReport, ProgressCallback, drop_unreferenced
from heron.models import registry
from heron.models.encoder import Encoder, load_encoder
from heron.models.registry import ModelInfo
from heron.search.duplicates import DEFAULT_KINDS as DEFAULT_DUPLICATE_KINDS
from heron.search.duplicates import DuplicateSet, find_duplicates
from heron.search.engine import (
    ModelMismatchError,
    QueryError,
    QueryWarning,
    Searcher,
    SearchHit,
    Unit,
    mismatch_message,
)
from heron.search.evaluation import EvalQuery, EvalReport, load_eval_file, summarise
from heron.search.mixed import parse_mixed
from heron.search.query import parse_query
from heron.search.rerank import Reranker
from heron.store.base import Store
from heron.store.blobs import BlobStore
from heron.store.filters import Field, Filter, parse_filter
from heron.understand.categories import Categoriser, parse_categories
from heron.understand.ocr import OcrEngine
from heron.understand.tags import TagError, normalize_tag, tag_column
from heron.understand.terms import unit_terms
from heron.util.locks import exclusive_lock
from heron.util.memory import release_freed_memory
from heron.util.paths import absolute, on_disk, stored_text

if TYPE_CHECKING:
    from heron.models.build.adapter import Head
    from heron.store.lance import LanceStore

ImageInput = str | Path | bytes | Image.Image
EVAL_TEXT_CHUNK = 512  # text queries encoded per progress step
ROW_REWRITE_CHUNK = 1000  # unit rows rewritten per store commit (tags, ACL labels)


@dataclass
class Stats:
    data_dir: str
    model: str | None
    units: int
    rows: int  # stored rows; more than `units` would mean duplicate ids
    files: dict[str, int]
    unique_contents: int
    units_by_kind: dict[str, int]  # of the indexed sources, from the catalog
    sources_by_kind: dict[str, int]  # indexed files per extractor (image, pdf, pptx ...)
    consistent: bool
    store_bytes: int
    last_run: RunRecord | None

    def to_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["last_run"] = self.last_run.__dict__ if self.last_run else None
        return data


class Heron:
    """An index in one data directory, searched with one model."""

    def __init__(
        self,
        data_dir: str | Path | None = None,
        *,
        model: str | None = None,
        threads: int | None = None,
        settings: Settings | None = None,
        on_model_progress: Callable[[str], None] | None = None,
    ) -> None:
        self.settings = settings or Settings.load(data_dir=data_dir, model=model, threads=threads)
        self._on_model_progress = on_model_progress
        self._open()

    def _open(self) -> None:
        _prepare_data_dir(self.settings.data_dir)
        reindex.finish_swap(self.settings.data_dir)  # a reindex a crash interrupted
        self.catalog = Catalog(self.settings.catalog_path)
        self.thumbnails = BlobStore(self.settings.thumbnails_dir, ".webp")
        self._encoder: Encoder | None = None
        self._resolved_model: Path | None = None
        self._searcher_instance: Searcher | None = None
        self._reranker_instance: Reranker | None = None
        self._setup_lock = threading.RLock()  # lazy set-up, safe under concurrent requests
        self._store: LanceStore | None = None

    def __enter__(self) -> Heron:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._searcher_instance = None
        if self._reranker_instance is not None:
            self._reranker_instance.cache.close()
            self._reranker_instance = None
        if self._store is not None:
            self._store.close()
            self._store = None
        self.catalog.close()

    @property
    def data_dir(self) -> Path:
        return self.settings.data_dir

    @property
    def encoder(self) -> Encoder:
        """The model for queries (multi-threaded: one query at a time wants low latency)."""
        with self._setup_lock:  # two first requests at once load one model
            if self._encoder is None:
                threads = self.settings.threads or None
                self._encoder = load_encoder(self._model_path(), threads=threads)
            return self._encoder

    def _model_path(self) -> Path:
        with self._setup_lock:
            if self._resolved_model is None:
                self._resolved_model = registry.resolve(
                    self.settings.model, progress=self._on_model_progress
                )
            return self._resolved_model

    @property
    def store(self) -> Store:
        with self._setup_lock:
            if self._store is None:
                from heron.store.lance import AnnSettings, LanceStore  # lancedb: ~1.5 s to import

                dim = self.catalog.get_meta("dim")
                self._store = LanceStore(
                    self.settings.store_path,
                    dim=int(dim) if dim else self.encoder.dim,
                    ann=AnnSettings(threshold=self.settings.ann_min_rows),
                )
            return self._store

    def open(self) -> Heron:
        """Load the query model and open the store now rather than on first use (a server
        does this before its first request); returns itself."""
        self.store  # noqa: B018 - opening is the point
        self._searcher()
        self.encoder.embed_texts(["ready"])  # the text towers' sessions start on first use
        return self

    def ready(self) -> dict[str, object]:
        """The model and unit count if the store opens and the model answers (raises if not)."""
        return {"model": self.encoder.stamp, "units": self.count()}

    def units_of(self, paths: Iterable[str | Path]) -> dict[str, list[str]]:
        """The ids of the units each indexed file yielded, sorted ([] for a file not indexed),
        keyed by the path as given."""
        given = {stored_text(absolute(p)): str(p) for p in paths}
        hashes = self.catalog.hashes_for(given)
        result: dict[str, list[str]] = {shown: [] for shown in given.values()}
        for key, content_hash in hashes.items():
            result[given[key]] = sorted(self.catalog.unit_ids([content_hash]))
        return result

    def embed_query(self, text: str) -> np.ndarray:
        """The query vector of `text` (unit length), as a search would compute it."""
        return np.asarray(self._searcher().query_vector(text, []), dtype=np.float32)

    @property
    def encoder_stamp(self) -> str:
        """The query model's stamp, e.g. "heron-lite@2.0"."""
        return self.encoder.stamp

    @property
    def dim(self) -> int:
        """The dimension of this library's vectors (its model's, before anything is indexed)."""
        stored = self.catalog.get_meta("dim")
        return int(stored) if stored else int(self.encoder.dim)

    def rows(
        self, columns: Sequence[str] | None = None, visible_to: Sequence[str] | None = None
    ) -> Iterator[dict[str, Any]]:
        """Every stored unit's `columns` (the store's names; "vector" included when asked),
        of those `visible_to` may see: for views of the whole library (maps, memory)."""
        if not self._has_vectors():
            return iter(())
        scope = None if visible_to is None else visible_filter(visible_to)
        return self.store.scan(scope, columns=columns)

    def row(self, unit_id: str, visible_to: Sequence[str] | None = None) -> dict[str, Any] | None:
        """One unit's stored columns (vector included), or None (absent or not visible)."""
        if visible_to is not None and not self._visible(unit_id, visible_to):
            return None
        found = self.store.get([unit_id]) if self._has_vectors() else []
        return found[0] if found else None

    def query_warnings(self, text: str | None = None, query: str | None = None) -> list[str]:
        """Why this text (or query language string) will be misread, if it will: what
        `search` warns about, as strings (a server cannot catch warnings per request)."""
        if query is not None:
            text = parse_query(query).text or None
        if not text:
            return []
        warning = self._searcher().language_warning(text)
        return [warning] if warning else []

    # indexing
    def index(
        self,
        paths: Sequence[str | Path],
        on_progress: ProgressCallback | None = None,
        *,
        include_hidden: bool | None = None,
        ocr: bool | None = None,
    ) -> IndexReport:
        """Index new and changed files under `paths`, prune vanished ones; safe to rerun.

        `include_hidden` (default: the `include_hidden` setting) also indexes dot-files/folders;
        `ocr` (default: the `ocr` setting) reads the text in pictures into their searchable text
        (files indexed before keep theirs until they change, or `reindex`). Without it, scanned
        pages (no text layer) are still read when the OCR engine is installed (the `ocr_scans`
        setting); `ocr=False` reads nothing.
        """
        with exclusive_lock(self.data_dir / "index.lock", f"an index run on {self.data_dir}"):
            self._bind_model()
            cores = os.cpu_count() or 2
            encoder = load_encoder(self._model_path(), threads=1)
            indexer = Indexer(
                catalog=self.catalog,
                store=self.store,
                # Throughput, not latency: parallel single-threaded calls (see ingest.pipeline).
                encoder=encoder,
                categoriser=self._categoriser(),
                thumbnails=self.thumbnails,
                batch_size=self.settings.batch_size,
                decode_workers=self.settings.decode_workers or max(1, cores // 2),
                inference_workers=self.settings.inference_workers or cores,
                include_hidden=(
                    self.settings.include_hidden if include_hidden is None else include_hidden
                ),
                thumbnail_size=self.settings.thumbnail_size,
                max_image_pixels=self.settings.max_image_pixels,
                **self._ocr(ocr),
                ocr_workers=self.settings.ocr_workers or max(1, cores // 2),
                pdf_passwords=self.settings.pdf_passwords,
                passage_chars=self.settings.passage_chars,
                acl_rules=self._acl_rules(),
            )
            try:
                return indexer.run([Path(p) for p in paths], on_progress)
            finally:
                self._searcher_instance = None  # its calibrations describe the old library

    def _acl_rules(self) -> list[AclRule]:
        """The `acl_rules` setting, parsed; when it changed since the last run, every stored
        unit is labelled again first, so a rule applies to what is indexed already."""
        rules = parse_rules(self.settings.acl_rules)
        spelled = json.dumps([[r.folder, list(r.labels)] for r in rules])
        if self.catalog.get_meta("acl_rules") != spelled and self._has_vectors():
            self._relabel(rules)
        self.catalog.set_meta("acl_rules", spelled)
        return rules

    def _relabel(self, rules: list[AclRule]) -> None:
        changed = [
            row["id"]
            for row in self.store.scan(columns=["id", "path", "acl"])
            if row["acl"] != acl_column(labels_for(str(row["path"]), rules))
        ]
        self._rewrite_rows(changed, lambda row: {"acl": acl_column(labels_for(row["path"], rules))})

    def _rewrite_rows(self, ids: list[str], change: Callable[[dict], dict[str, Any]]) -> None:
        """Give the stored rows of `ids` the columns `change(row)` returns, a chunk per commit
        (a store upsert takes whole rows, vectors included)."""
        for start in range(0, len(ids), ROW_REWRITE_CHUNK):
            rows = self.store.get(ids[start : start + ROW_REWRITE_CHUNK])
            for row in rows:
                row.update(change(row))
            self.store.upsert(rows)

    def _categoriser(self) -> Categoriser:
        """The zero-shot categoriser, its prompt vectors cached in the catalog per model: a run
        of pictures then never loads the text towers (measured +0.5 GB RSS and 1.5 s CPU)."""
        try:
            categories = parse_categories(self.settings.categories)
        except ValueError as exc:
            raise ConfigError(f"setting 'categories': {exc}") from None
        key = f"categories:{self.encoder.stamp}:{Categoriser.key_for(categories)}"
        cached = self.catalog.get_meta(key)
        if cached is not None:
            vectors = np.frombuffer(base64.b64decode(cached), dtype=np.float32)
        else:
            # A throw-away encoder: its text towers are freed once the prompts are embedded,
            # instead of staying loaded through a run of pictures.
            encoder = load_encoder(self._model_path())
            vectors = Categoriser(encoder, categories).prompt_vectors().astype(np.float32)
            del encoder
            release_freed_memory()
            self.catalog.set_meta(key, base64.b64encode(vectors.tobytes()).decode())
        vectors = vectors.reshape(len(categories), -1)
        return Categoriser(self.encoder, categories, prompt_vectors=vectors)

    def _ocr(self, ocr: bool | None) -> dict[str, Any]:
        """The Indexer's OCR arguments: every picture, scanned pages only, or nothing."""
        wanted = self.settings.ocr if ocr is None else ocr
        if wanted:
            engine = OcrEngine(threads=1)  # one core's worth per OCR worker, beside inference
            engine.check()  # a missing engine fails before the run, not in its middle
            return {"ocr": engine}
        if ocr is None and self.settings.ocr_scans and OcrEngine.installed():
            return {"ocr": OcrEngine(threads=1), "ocr_scans_only": True}  # loads if a scan comes
        return {"ocr": None}

    def _bind_model(self) -> None:
        bound = self.catalog.get_meta("model")
        if bound is None:
            self.catalog.set_meta("model", self.encoder.stamp)
            self.catalog.set_meta("dim", str(self.encoder.dim))
        elif bound != self.encoder.stamp:
            raise ModelMismatchError(
                mismatch_message(str(self.data_dir), bound, self.encoder.stamp, "indexing")
            )

    def reindex(
        self, on_progress: ProgressCallback | None = None, *, model: str | None = None
    ) -> IndexReport:
        """Re-embed everything indexed here with `model` (default: this Heron's model) and
        switch the data dir over to it when complete.

        The new index is built beside the live one (the same roots, by an ordinary indexing
        run: resumable after a crash or Ctrl-C), and searches keep using the live one until the
        switch; see `heron.ingest.reindex`.
        """
        with exclusive_lock(self.data_dir / "index.lock", f"an index run on {self.data_dir}"):
            roots = reindex.index_roots(self.catalog)
            if not roots:
                raise ConfigError(f"{self.data_dir} has nothing indexed to re-index")
            settings = replace(self.settings, model=model or self.settings.model)
            target = registry.resolve(settings.model, progress=self._on_model_progress)
            stamp = load_encoder(target).stamp
            shadow = reindex.shadow_dir(self.data_dir, stamp)
            reindex.abandon(p for p in shadow.parent.glob("*") if p.is_dir() and p != shadow)
            with Heron(settings=replace(settings, data_dir=shadow)) as rebuilt:
                report = rebuilt.index(roots, on_progress)
            self.close()
            reindex.swap_in(self.data_dir, shadow)
            self.settings = settings
            self._open()
            return report

    def delete(self, paths: Sequence[str | Path]) -> int:
        """Forget these files (and everything below these folders); returns paths removed."""
        with exclusive_lock(self.data_dir / "index.lock", f"an index run on {self.data_dir}"):
            roots = [absolute(p) for p in paths]
            records = self.catalog.records_under(roots)
            hashes = {r.content_hash for r in records.values() if r.content_hash}
            removed = self.catalog.remove(records)
            drop_unreferenced(self.catalog, self.store, self.thumbnails, hashes)
            self._searcher_instance = None
            return removed

    # tags people give files
    def tag(
        self,
        paths: Sequence[str | Path],
        add: Sequence[str] = (),
        remove: Sequence[str] = (),
    ) -> int:
        """Give the indexed files at or below `paths` the tags in `add` and take away those in
        `remove` (normalised: `heron.understand.tags`); returns how many contents changed.
        A tag belongs to the content: every copy of a file, and every unit of a document,
        carries it, and `tag:name` finds them (it is a keyword too)."""
        added = [normalize_tag(t) for t in add]
        removed = [normalize_tag(t) for t in remove]
        if not added and not removed:
            raise TagError("give at least one tag to add or remove")
        with exclusive_lock(self.data_dir / "index.lock", f"an index run on {self.data_dir}"):
            records = self.catalog.records_under([absolute(p) for p in paths])
            hashes = {
                r.content_hash for r in records.values() if r.content_hash and r.status == INDEXED
            }
            if not hashes:
                shown = ", ".join(stored_text(p) for p in paths)
                raise TagError(f"nothing indexed at or below {shown}: index it first")
            self.catalog.remove_tags(hashes, removed)
            self.catalog.add_tags(hashes, added)
            self._write_tags(hashes)
            return len(hashes)

    def duplicates(
        self,
        kinds: Sequence[str] = DEFAULT_DUPLICATE_KINDS,
        on_progress: Callable[[int, int], None] | None = None,
        visible_to: Sequence[str] | None = None,
        local_features: bool = True,
    ) -> list[DuplicateSet]:
        """Sets of files holding one picture (`heron.search.duplicates`): exact copies, and
        near-duplicates among units of `kinds` (default: photos), biggest sets first.
        `local_features=False` leaves out the second look (portrait cuts, recolours)."""
        unknown = sorted(set(kinds) - set(UNIT_KINDS))
        if unknown:
            raise QueryError(f"unknown kind(s) {unknown}; kinds are {', '.join(UNIT_KINDS)}")
        return find_duplicates(
            self.store,
            self.catalog,
            self.settings.thumbnails_dir,
            kinds,
            on_progress,
            scope=None if visible_to is None else visible_filter(visible_to),
            local_features=local_features,
        )

    def tags(self) -> dict[str, int]:
        """Every tag in use, with how many indexed contents carry it."""
        return self.catalog.tag_counts()

    @property
    def keys(self) -> KeyRing:
        """API keys and the audit log (`heron.catalog.keys`), kept in this data dir's catalog."""
        return KeyRing(self.catalog)

    def _write_tags(self, hashes: set[str]) -> None:
        """Carry the catalog's tags of these contents into their units' rows (and terms)."""
        tags = self.catalog.tags_of(hashes)

        def tagged(row: dict) -> dict[str, Any]:
            own = tags.get(str(row.get("source") or row["id"]), [])
            return {"tags": tag_column(own), "terms": unit_terms(str(row["text"] or ""), own)}

        self._rewrite_rows(sorted(self.catalog.unit_ids(hashes)), tagged)

    # searching
    def search(
        self,
        text: str | None = None,
        image: ImageInput | Sequence[ImageInput] | None = None,
        *,
        query: str | None = None,
        keyword: str | None = None,
        k: int = 10,
        filter: Filter | str | None = None,
        min_score: float | None = None,
        kind: str | Sequence[str] | None = None,
        fusion: bool = True,
        mix: str | Sequence[tuple[str | ImageInput, float]] | None = None,
        min_relevance: float | None = None,
        rerank: bool | None = None,
        collapse: bool = True,
        visible_to: Sequence[str] | None = None,
    ) -> list[SearchHit]:
        """Rank stored units against a text, an image, or both (averaged); or, with `keyword`,
        the units whose text holds that phrase (BM25; Chinese needs no spaces).

        `query` is the query language (`heron.search.query`: free words, "phrases",
        `kind:page`, `width>=800`, `path:~/Papers`, `-kind:frame` ...); `text` is taken as it
        is. A text query is answered by one list fused from the vector search and the keyword
        search of its words and phrases (`fusion=False`: the vectors alone); each hit's
        `explain` says which lists found it. `mix` is a mixed query: texts and pictures with
        weights and negatives, as a string (`'"beach" + 0.5*photo.jpg - "people"'`,
        `heron.search.mixed`) or (text or image, weight) pairs. `kind` keeps only units of
        that kind or kinds (`heron.extract.base.UNIT_KINDS`), inside the search. A text the
        model cannot read (a script outside its languages) still runs, with a `QueryWarning`.

        Each hit of a text or image query carries its calibrated `relevance` (0..1: how
        unlikely its score is for a query about nothing this library holds), and hits below
        `min_relevance` (default: the `min_relevance` setting, 0.6) are left out, so an
        unrelated query can honestly return nothing; `min_relevance=0` keeps all k.

        With a `rerank_model` configured (or `rerank=True`), the best `rerank_depth` candidates
        of a text or image query are re-scored by that second model (`heron.search.rerank`);
        `rerank=False` keeps the first stage's order. A near-duplicate of a better hit (the
        same picture resized, cropped, recompressed ...) is folded into it and listed in its
        `duplicates`; `collapse=False` shows every copy. `visible_to` (ACL labels, e.g. an
        API key's) limits every list to the units those labels may see, inside the searches.
        """
        cut = self.settings.min_relevance if min_relevance is None else min_relevance
        if not 0.0 <= cut <= 1.0:
            raise QueryError(f"min_relevance must be between 0 and 1, got {cut}")
        where = parse_filter(filter) if isinstance(filter, str) else filter
        where = _with_kinds(where, kind)
        if visible_to is not None:
            seen = visible_filter(visible_to)
            where = seen if where is None else where & seen
        if keyword is not None:
            if text is not None or image is not None or query is not None:
                raise QueryError("a keyword search takes no text, query or image (yet)")
            hits = self._searcher().keyword(keyword, k=k, where=where)
            return [hit for hit in hits if min_score is None or hit.score >= min_score]
        if mix is not None:
            if text is not None or image is not None or query is not None:
                raise QueryError("a mixed query takes no other text, query or image")
            vector = self._mixed_vector(mix)
            return self._searcher().search(
                vector, k=k, where=where, min_score=min_score, collapse=collapse
            )
        if query is not None and text is not None:
            raise QueryError("give a text or a query, not both")
        words: list[str] = [text] if text is not None else []
        phrases: list[str] = []
        if query is not None:
            parsed = parse_query(query)
            if parsed.filter is not None:
                where = parsed.filter if where is None else where & parsed.filter
            text, words, phrases = parsed.text or None, parsed.words, parsed.phrases
            if text is None and image is None:
                raise QueryError("the query has filters but no words or image to search for")
        images = [_load_query_image(item) for item in _as_list(image)]
        searcher = self._searcher()
        warning = searcher.language_warning(text) if text else None
        if warning is not None:
            warnings.warn(warning, QueryWarning, stacklevel=2)
        vector = searcher.query_vector(text, images)
        calibrated = {
            "modality": searcher.modality(text, len(images)),
            "min_relevance": cut,
            "collapse": collapse,
        }
        reranker = self._reranker(rerank)
        depth = max(k, self.settings.rerank_depth) if reranker is not None else k
        fused = fusion and bool(text)
        if fused:
            hits = searcher.fused(
                vector, words, phrases, k=depth, where=where, min_score=min_score, **calibrated
            )
        else:
            hits = searcher.search(vector, k=depth, where=where, min_score=min_score, **calibrated)
        if reranker is None:
            return hits
        return reranker.rerank(hits, text, images, fused=fused)[:k]

    def _reranker(self, wanted: bool | None) -> Reranker | None:
        """The second stage, when a rerank model is configured and not turned off."""
        name = self.settings.rerank_model
        if wanted is False or (wanted is None and not name):
            return None
        if not name:
            raise ConfigError(
                "rerank=True needs a rerank_model setting (any `heron models list` name)"
            )
        if self._reranker_instance is None:
            from heron.store.lance import AnnSettings, LanceStore

            encoder = load_encoder(
                registry.resolve(name, progress=self._on_model_progress),
                threads=self.settings.threads or None,
            )
            folder = self.data_dir / "rerank" / re.sub(r"[^A-Za-z0-9_.-]+", "_", encoder.stamp)
            # Read by id only: no ANN index and no mirror for the cache.
            cache = LanceStore(
                folder, dim=encoder.dim, ann=AnnSettings(threshold=2**62, mirror=False)
            )
            self._reranker_instance = Reranker(
                encoder, cache, self._rerank_pixels, self._unit_texts
            )
        return self._reranker_instance

    def thumbnail_path(self, item: SearchHit | Unit) -> Path | None:
        """The file that shows a hit or unit: its thumbnail, the original of a photo small
        enough to have none, or None (a passage; a missing file)."""
        if not item.has_picture:
            return None
        if item.thumbnail:
            shown = self.settings.thumbnails_dir / item.thumbnail
            if not shown.resolve().is_relative_to(self.settings.thumbnails_dir.resolve()):
                return None  # a key is a name inside the store, never a way out of it
        else:
            shown = Path(on_disk(item.path))
        return shown if shown.is_file() else None

    def _rerank_pixels(self, hit: SearchHit) -> Image.Image | None:
        """A unit's picture for the second model: its thumbnail, or a small original itself."""
        shown = self.thumbnail_path(hit)
        if shown is None:
            return None
        try:
            if not hit.thumbnail:
                return decode_image(shown, max_pixels=self.settings.max_image_pixels).image
            with Image.open(shown) as image:
                return image.convert("RGB")
        except (OSError, SkipFile, ValueError):
            return None  # moved or unreadable: ranked by the first stage alone

    def _unit_texts(self, ids: list[str]) -> dict[str, str]:
        return {row["id"]: str(row["text"] or "") for row in self.store.get(ids)}

    def _mixed_vector(self, mix: str | Sequence[tuple[str | ImageInput, float]]) -> np.ndarray:
        """The normalised weighted sum of the parts' vectors."""
        if isinstance(mix, str):
            pairs: list[tuple[str | ImageInput, float]] = [
                (part.text if part.text is not None else part.image, part.weight)  # type: ignore[misc]
                for part in parse_mixed(mix)
            ]
        else:
            pairs = list(mix)
        if not pairs or all(weight <= 0 for _, weight in pairs):
            raise QueryError("a mixed query needs at least one part with a positive weight")
        searcher = self._searcher()
        total = np.zeros(self.encoder.dim, dtype=np.float32)
        for value, weight in pairs:
            if isinstance(value, str):
                warning = searcher.language_warning(value)
                if warning is not None:
                    warnings.warn(warning, QueryWarning, stacklevel=3)
                part = searcher.query_vector(value, [])
            else:
                part = searcher.query_vector(None, [_load_query_image(value)])
            total += float(weight) * part
        norm = float(np.linalg.norm(total))
        if norm < 1e-6:
            raise QueryError("the mixed query's parts cancel out: nothing is left to search for")
        return total / norm

    def rank(self, texts: Sequence[str], k: int = 10) -> list[list[str]]:
        """Unit ids, best first, for each text query, encoded and ranked in batches (for
        evaluation and scripts that run thousands of queries; `search` resolves full hits)."""
        searcher = self._searcher()
        vectors = np.zeros((len(texts), self.encoder.dim), dtype=np.float32)
        for start in range(0, len(texts), EVAL_TEXT_CHUNK):
            chunk = list(texts[start : start + EVAL_TEXT_CHUNK])
            vectors[start : start + len(chunk)] = self.encoder.embed_texts(chunk)
        return searcher.rank_many(vectors, k)

    def _searcher(self) -> Searcher:
        with self._setup_lock:
            return self._searcher_locked()

    def _searcher_locked(self) -> Searcher:
        if self._searcher_instance is None:
            self._searcher_instance = Searcher(
                self.store, self.catalog, self.encoder, self.settings.thumbnails_dir
            )
        return self._searcher_instance

    def get(self, unit_id: str, visible_to: Sequence[str] | None = None) -> Unit | None:
        """Everything stored about one unit (a hit's `id`), or None when there is no such unit
        or `visible_to` (ACL labels: `heron.catalog.acl`) may not see it."""
        if visible_to is not None and not self._visible(unit_id, visible_to):
            return None
        return self._searcher().get(unit_id)

    def _visible(self, unit_id: str, labels: Sequence[str]) -> bool:
        return self.store.count((Field("id") == unit_id) & visible_filter(labels)) > 0

    # reporting
    def count(self, visible_to: Sequence[str] | None = None) -> int:
        """Units stored (one per distinct content), of those `visible_to` may see."""
        if not self._has_vectors():
            return 0
        return self.store.count(None if visible_to is None else visible_filter(visible_to))

    def _has_vectors(self) -> bool:
        """Whether a run has bound a model (and so a store) to this data dir yet."""
        return self.catalog.get_meta("dim") is not None

    def stats(self, visible_to: Sequence[str] | None = None) -> Stats:
        """What the index holds; for `visible_to` (ACL labels), only what they may see."""
        if visible_to is not None:
            return self._visible_stats(visible_to)
        has_store = self._has_vectors()
        store_ids = self.store.ids() if has_store else set()
        rows = self.store.count() if has_store else 0
        catalog_ids = self.catalog.unit_ids()
        return Stats(
            data_dir=str(self.data_dir),
            model=self.catalog.get_meta("model"),
            units=len(store_ids),
            rows=rows,
            files=self.catalog.status_counts(),
            unique_contents=len(self.catalog.indexed_hashes()),
            units_by_kind=self.catalog.units_by_kind(),
            sources_by_kind=self.catalog.source_kinds(),
            consistent=store_ids == catalog_ids and rows == len(store_ids),
            store_bytes=_tree_size(self.settings.store_path),
            last_run=next(iter(self.catalog.runs(1)), None),
        )

    def _visible_stats(self, labels: Sequence[str]) -> Stats:
        """Stats of the units `labels` may see, and nothing about the rest (no file counts,
        no sizes, no run summaries: they would count what it may not see)."""
        seen = visible_filter(labels)
        by_kind: dict[str, int] = {}
        sources: set[str] = set()
        if self._has_vectors():
            for row in self.store.scan(seen, columns=["kind", "source"]):
                by_kind[row["kind"]] = by_kind.get(row["kind"], 0) + 1
                sources.add(row["source"])
        units = sum(by_kind.values())
        return Stats(
            data_dir=str(self.data_dir),
            model=self.catalog.get_meta("model"),
            units=units,
            rows=units,
            files={},
            unique_contents=len(sources),
            units_by_kind=dict(sorted(by_kind.items())),
            sources_by_kind={},
            consistent=True,
            store_bytes=0,
            last_run=None,
        )

    def errors(self, limit: int | None = None) -> list[FileRecord]:
        """Files that are not indexed, and files indexed in part (status `indexed`), with the
        reason."""
        return self.catalog.skipped(limit)

    def evaluate(
        self,
        eval_file: str | Path,
        k: int = 10,
        on_progress: Callable[[EvalProgress], None] | None = None,
        fused: bool = False,
    ) -> EvalReport:
        """Recall@1/5/10, MRR and nDCG@10 of the queries in a JSONL eval file.

        By default each query is ranked by its vector alone (batched: thousands per second);
        `fused=True` ranks text queries as `search` does, the vectors fused with the keyword
        search of their words (one query at a time), uncut by the relevance cut-off.
        `on_progress` hears how many queries are encoded, then how many are ranked.
        """
        queries = load_eval_file(Path(eval_file))
        searcher = self._searcher()
        relevant_paths = {str(p) for q in queries for p in q.relevant}
        hash_of = self.catalog.hashes_for(relevant_paths)
        answerable = []
        for query in queries:
            relevant = {hash_of[str(p)] for p in query.relevant if str(p) in hash_of}
            if relevant:
                answerable.append((query, relevant))
        report_progress = on_progress or (lambda progress: None)
        vectors = self._query_vectors([q for q, _ in answerable], searcher, report_progress)
        ranked = searcher.rank_many(
            vectors, k, lambda done: report_progress(EvalProgress("ranking", done, len(vectors)))
        )
        if fused:
            for i, (query, _) in enumerate(answerable):
                if query.text is not None:
                    hits = searcher.fused(vectors[i], [query.text], [], k=k)
                    ranked[i] = [hit.id for hit in hits]
                report_progress(EvalProgress("fusing", i + 1, len(answerable)))
        ranked = self._as_sources(ranked)
        pairs = zip(ranked, (relevant for _, relevant in answerable), strict=True)
        report = summarise(list(pairs))
        report.skipped_queries = len(queries) - len(answerable)
        report.missing_relevant = sorted(relevant_paths - hash_of.keys())
        return report

    def _as_sources(self, ranked: list[list[str]]) -> list[list[str]]:
        """Ranked unit ids as ranked source files (content hashes, first hit of each kept):
        relevance is judged per file, and a PDF's pages and passages are one file."""
        source_of = self.catalog.source_map({uid for ids in ranked for uid in ids})
        result = []
        for ids in ranked:
            sources = [source_of.get(uid, uid) for uid in ids]
            result.append(list(dict.fromkeys(sources)))
        return result

    def _query_vectors(
        self,
        queries: list[EvalQuery],
        searcher: Searcher,
        on_progress: Callable[[EvalProgress], None],
    ) -> np.ndarray:
        """One vector per query, text ones encoded in chunks so progress can be told."""
        vectors = np.zeros((len(queries), self.encoder.dim), dtype=np.float32)
        texts = [(i, q.text) for i, q in enumerate(queries) if q.text is not None]
        for start in range(0, len(texts), EVAL_TEXT_CHUNK):
            chunk = texts[start : start + EVAL_TEXT_CHUNK]
            vectors[[i for i, _ in chunk]] = self.encoder.embed_texts([t for _, t in chunk])
            on_progress(EvalProgress("encoding queries", start + len(chunk), len(queries)))
        images = [(i, q.image) for i, q in enumerate(queries) if q.image is not None]
        for done, (i, image) in enumerate(images, start=len(texts) + 1):
            vectors[i] = searcher.query_vector(None, [_load_query_image(image)])
            on_progress(EvalProgress("encoding queries", done, len(queries)))
        return vectors

    # ---- model management: static, so nothing (data dir, store, model) need be open

    @staticmethod
    def models() -> list[ModelInfo]:
        """The models Heron knows: heron-lite's versions, the known hub models, and every bundle
        in the models dir (`HERON_MODELS_DIR`), each with its status and path."""
        return registry.list_models()

    @staticmethod
    def build_model(
        name: str = registry.LITE,
        *,
        force: bool = False,
        head: str | Path | None = None,
        out_dir: str | Path | None = None,
        on_progress: Callable[[str], None] | None = None,
    ) -> Path:
        """Build a heron-lite version (`"heron-lite"`, the latest, or e.g. `"heron-lite@1.0"`)
        into the models dir, once; with `force`, rebuild it even if present. Returns its path.

        With `head` (an adapter head from `train_adapter`), build heron-lite with that head into
        `out_dir` instead (required then; `name` and `force` do not apply). Needs the `build`
        extra; without it a `ModelUnavailableError` says what to install.
        """
        if head is not None:
            if out_dir is None:
                raise ValueError("building with a head needs out_dir (the bundle directory)")
            return registry.build_with_head(Path(head), Path(out_dir), progress=on_progress)
        return registry.build(name, force=force, progress=on_progress)

    @staticmethod
    def pull_model(name: str, on_progress: Callable[[str], None] | None = None) -> Path:
        """Download a CLIP-family ONNX bundle (`"org/repo"`, e.g.
        `"immich-app/ViT-B-32__openai"`) from the Hugging Face hub into the models dir; returns
        its path. Honours `HF_ENDPOINT` and `HF_HUB_OFFLINE`."""
        return registry.pull(name, progress=on_progress)

    @staticmethod
    def train_adapter(
        captions: str | Path,
        images: str | Path,
        out_path: str | Path,
        *,
        lang: str = "en",
        on_progress: Callable[[str], None] | None = None,
    ) -> Head:
        """Train the LiT head that maps image features into the text space on your captions and
        write it to `out_path` (`.npz`); returns it. Then `build_model(head=out_path,
        out_dir=...)` and open a `Heron` with `model=` that directory.

        `captions` is JSONL, one `{"image", "split"?, LANG: [captions]}` per line, the image
        names relative to `images`; records with `"split": "val"` are held out for early
        stopping (else a share of the images). Needs the `build` extra (torch).
        """
        from heron.models.build import adapter  # build time only: never imported to run

        return adapter.train_adapter_from_jsonl(
            Path(captions), Path(images), Path(out_path), lang=lang, progress=on_progress
        )


@dataclass(frozen=True)
class EvalProgress:
    stage: str  # "encoding queries", then "ranking"
    done: int
    total: int


def _with_kinds(where: Filter | None, kind: str | Sequence[str] | None) -> Filter | None:
    if kind is None:
        return where
    kinds = [kind] if isinstance(kind, str) else list(kind)
    unknown = sorted(set(kinds) - set(UNIT_KINDS))
    if unknown or not kinds:
        raise QueryError(
            f"unknown unit kind {', '.join(map(repr, unknown)) or '(none)'}; "
            f"kinds are {', '.join(UNIT_KINDS)}"
        )
    scope = Field("kind").isin(kinds)
    return scope if where is None else where & scope


def _as_list(image: ImageInput | Sequence[ImageInput] | None) -> list[ImageInput]:
    if image is None:
        return []
    if isinstance(image, str | Path | bytes | Image.Image):
        return [image]
    return list(image)


def _load_query_image(image: ImageInput) -> Image.Image:
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    if isinstance(image, bytes):
        described, decode = "the query image", lambda: decode_image_bytes(image)
    else:
        path = Path(image).expanduser()
        if not path.is_file():
            raise QueryError(f"query image not found: {path}")
        described, decode = f"query image {path}", lambda: decode_image(path)
    try:
        return decode().image
    except SkipFile as exc:
        raise QueryError(f"{described} cannot be used: {exc.reason}") from None


def _prepare_data_dir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise ConfigError(f"the data dir {path} is a file, not a folder") from None
    except OSError as exc:
        raise ConfigError(f"cannot create the data dir {path}: {exc.strerror}") from None


def _tree_size(path: Path) -> int:
    if not path.exists():
        return 0
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


__all__ = [
    "INDEXED",
    "Heron",
    "IndexReport",
    "ModelInfo",
    "QueryWarning",
    "SearchHit",
    "Stats",
    "Unit",
]
