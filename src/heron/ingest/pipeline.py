"""The indexing run: crawl, plan against the catalog, extract in parallel, embed in batches, commit.

Every file is a *source* read by the extractor its content calls for (`heron.extract.registry`);
it yields one or more units (a photo; a PDF's pages, figures and passages; a deck's slides; a
video's keyframes). Extraction (thread pool; Pillow, PDFium, PyAV and the hash release the GIL)
overlaps OCR (its own pool, when on) and inference (ONNX Runtime releases it too) through
bounded look-ahead windows, so no stage waits for another and memory stays flat however large
the folder.

Paths reach the catalog, the store and the report as `heron.util.paths.stored_text` (a name that
is not UTF-8 keeps its undecodable bytes as `\\xNN` escapes); files are read through the crawled
path, and a stored path is looked at on disk through `on_disk`.

A source is committed whole: a commit group only ever closes between sources, and its order —
thumbnails, one store append of every unit, catalog rows and the source's unit list (one
transaction) — makes a kill at any moment safe: `reconcile` at the next start removes store rows
the catalog never learnt of and re-queues sources whose units are missing, so a rerun leaves
each source with exactly its units.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from PIL import Image

from heron.catalog import INDEXED, SKIPPED, Catalog, FileRecord, UnitRecord
from heron.catalog.acl import AclRule, acl_column, labels_for
from heron.extract.base import ExtractOptions, IncompleteSource, SkipFile, Source, UnitDraft
from heron.extract.images import make_thumbnail
from heron.extract.registry import Registry, default_registry
from heron.ingest.crawl import CrawlEntry, CrawlProblem, hidden_below, walk
from heron.models.encoder import Encoder
from heron.models.preprocess import model_rgb, normalize
from heron.store.base import Store
from heron.store.blobs import BlobStore
from heron.understand.categories import Categoriser
from heron.understand.colours import ColourTags, colour_tags
from heron.understand.hashes import content_hash, content_hash_bytes, unit_id
from heron.understand.neardup import fingerprint
from heron.understand.ocr import OcrEngine
from heron.understand.tags import tag_column
from heron.understand.terms import index_text, unit_terms
from heron.util.paths import existing, on_disk, stored_text

COMMIT_UNITS = 128  # units per store commit: a few inference batches
CATEGORISED_KINDS = frozenset({"image", "figure", "frame"})  # zero-shot categories for these
FINGERPRINTED_KINDS = frozenset({"image", "figure", "frame"})  # near-duplicate fingerprints
TEXT_BATCH = 1  # passages per text-tower call: see _rows
COMMIT_RECORDS = 512  # catalog records per commit, for runs that mostly link or skip
READ_WHOLE_FILE_BELOW = 64 * 1024 * 1024  # smaller files are read once for hash and extraction
MAX_UNITS_PER_SOURCE = 20_000  # a bound on what one file may add (a 10,000-page PDF fits)
# Crawl problems that concern one file (kept in the catalog as skipped); loops and duplicate
# folder links concern folders and are only reported.
FILE_PROBLEMS = frozenset({"broken_link", "unsupported", "unreadable"})

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class IndexProgress:
    """A snapshot sent to the progress callback after each commit."""

    total: int
    done: int
    indexed: int
    linked: int
    skipped: int
    elapsed: float


@dataclass
class IndexReport:
    roots: list[str]
    seen: int = 0
    unchanged: int = 0
    indexed: int = 0  # newly embedded units
    sources: int = 0  # files whose content was extracted in this run
    units_by_kind: dict[str, int] = field(default_factory=dict)  # of the newly embedded units
    linked: int = 0  # paths whose content was already stored (duplicates, touched files)
    skipped: int = 0
    removed: int = 0  # paths gone from disk, pruned
    ignored: dict[str, int] = field(default_factory=dict)  # files of other types, by suffix
    problems: list[dict[str, str]] = field(default_factory=list)
    skipped_files: list[dict[str, str]] = field(default_factory=list)
    incomplete: list[dict[str, str]] = field(default_factory=list)  # indexed in part, and why
    reconciled: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def units_per_second(self) -> float:
        return self.indexed / self.seconds if self.seconds else 0.0

    @property
    def images_per_second(self) -> float:  # the name before documents had units
        return self.units_per_second

    def to_dict(self) -> dict[str, object]:
        data = dict(self.__dict__)
        data["units_per_second"] = round(self.units_per_second, 2)
        data["images_per_second"] = data["units_per_second"]
        data["seconds"] = round(self.seconds, 3)
        return data


@dataclass
class _UnitWork:
    """One unit on its way to the store: what to embed, and the rest of its row."""

    id: str
    source: str  # the source's content hash
    path: str  # the source's path, as stored
    bytes: int  # the source's size
    modified_at: datetime
    kind: str
    locator: str
    pointer: dict[str, Any]
    text: str
    embed: str  # "image": from `rgb`; "text": from `text`, as a passage
    width: int
    height: int
    format: str
    fields: dict[str, Any]
    colours: ColourTags | None = None
    fingerprint: str = ""  # perceptual (heron.understand.neardup), for pictures
    category: tuple[str, float] | None = None
    rgb: np.ndarray | None = None  # uint8 HWC at the model's input size
    thumbnail: bytes | None = None
    ocr_image: Image.Image | None = None  # kept only until the OCR stage has read it


@dataclass
class _Prepared:
    entry: CrawlEntry
    content_hash: str | None = None
    extractor: str = ""
    units: list[_UnitWork] = field(default_factory=list)
    reason: str | None = None  # the file is skipped, and why
    note: str | None = None  # the file is indexed in part, and why


ProgressCallback = Callable[[IndexProgress], None]


class Indexer:
    def __init__(
        self,
        *,
        catalog: Catalog,
        store: Store,
        encoder: Encoder,
        thumbnails: BlobStore,
        batch_size: int = 32,
        decode_workers: int = 1,
        inference_workers: int = 1,
        include_hidden: bool = False,
        thumbnail_size: int = 256,
        max_image_pixels: int = 80_000_000,
        ocr: OcrEngine | None = None,
        ocr_scans_only: bool = False,
        ocr_workers: int = 1,
        pdf_passwords: Sequence[str] = (),
        passage_chars: int = 1000,
        extractors: Registry | None = None,
        categoriser: Categoriser | None = None,
        acl_rules: Sequence[AclRule] = (),
    ) -> None:
        self.catalog = catalog
        self.acl_rules = list(acl_rules)
        self._tags: dict[str, list[str]] = {}  # source hash -> its tags (see _tags_of)
        self.store = store
        self.encoder = encoder
        self.thumbnails = thumbnails
        self.batch_size = batch_size
        self.decode_workers = max(1, decode_workers)
        self.inference_workers = max(1, inference_workers)
        self.include_hidden = include_hidden
        self.thumbnail_size = thumbnail_size
        self.ocr = ocr
        self.ocr_all = ocr is not None and not ocr_scans_only  # else only units marked scanned
        self.ocr_workers = max(1, ocr_workers)
        self.extractors = extractors or default_registry()
        self.categoriser = categoriser
        side = encoder.image_spec.size
        self.options = ExtractOptions(
            image_side=side,
            detail_side=ocr.detect_side if ocr is not None else side,
            max_image_pixels=max_image_pixels,
            thumbnail_side=thumbnail_size,
            passage_chars=passage_chars,
            passage_overlap=passage_chars * 3 // 20,  # 15 %, as ExtractOptions defaults
            pdf_passwords=tuple(pdf_passwords),
            ocr=self.ocr_all,
            ocr_scans=ocr is not None,
        )

    def run(
        self, roots: Sequence[Path], on_progress: ProgressCallback | None = None
    ) -> IndexReport:
        started = time.perf_counter()
        roots = existing(roots)
        report = IndexReport(roots=[stored_text(r) for r in roots])
        run_id = self.catalog.begin_run(roots)
        status = "interrupted"
        try:
            report.reconciled = reconcile(self.catalog, self.store, self.thumbnails)
            backfill_terms(self.store)
            todo = self._plan(roots, report)
            self._process(todo, report, on_progress, started)
            self.store.optimize()
            self.catalog.analyze()
            status = "completed"
        finally:
            report.seconds = time.perf_counter() - started
            self.catalog.finish_run(run_id, status, _summary(report))
        return report

    def _plan(self, roots: Sequence[Path], report: IndexReport) -> list[CrawlEntry]:
        known = self.catalog.records_under(roots)
        seen: set[str] = set()
        todo: list[CrawlEntry] = []
        problems: list[FileRecord] = []
        suffixes = self.extractors.suffixes()
        ignored: Counter[str] = Counter()
        crawl = walk(roots, include_hidden=self.include_hidden, suffixes=suffixes, ignored=ignored)
        for item in crawl:
            if isinstance(item, CrawlProblem):
                key = stored_text(item.path)
                report.problems.append({"path": key, "reason": stored_text(item.reason)})
                if item.kind in FILE_PROBLEMS:
                    seen.add(key)
                    problems.append(_problem_record(item))
                continue
            key = stored_text(item.path)
            if key in seen:  # b"caf\xe9.jpg" beside a file named r"caf\xe9.jpg" (rare)
                reason = "another file's name reads the same once undecodable bytes are escaped"
                report.problems.append({"path": key, "reason": reason})
                continue
            seen.add(key)
            record = known.get(key)
            if record and _unchanged(record, item):
                report.unchanged += 1
            else:
                todo.append(item)
        report.seen = len(seen)
        report.ignored = dict(sorted(ignored.items()))
        self.catalog.save(problems)
        gone = [path for path in known if path not in seen and not self._kept_unwalked(path, roots)]
        if gone:
            hashes = {known[p].content_hash for p in gone if known[p].content_hash}
            report.removed = self.catalog.remove(gone)
            drop_unreferenced(self.catalog, self.store, self.thumbnails, hashes)
        return todo

    def _kept_unwalked(self, path: str, roots: Sequence[Path]) -> bool:
        """A hidden file an earlier `--include-hidden` run indexed stays while it exists: a run
        that skips hidden files did not look at it, so it cannot have found it gone."""
        if self.include_hidden:
            return False
        on_disk_path = on_disk(path)
        return hidden_below(Path(on_disk_path), roots) and os.path.lexists(on_disk_path)

    def _process(
        self,
        todo: list[CrawlEntry],
        report: IndexReport,
        on_progress: ProgressCallback | None,
        started: float,
    ) -> None:
        """Extract (pool) → OCR (pool, when on) → embed (pool) → commit (one writer thread).

        Inference runs as parallel single-threaded calls rather than one multi-threaded call:
        on a few shared cores, intra-op threads stall at every layer's barrier whenever a decode
        thread holds a core, while independent calls just take turns. Several inference batches
        are committed together: each store commit has a fixed cost (measured 8 ms of CPU for 32
        rows, 12 ms for 128). The single writer keeps commits in submission order, so a
        duplicate linked in a later batch is never committed before the units it points at.
        """
        known = self.catalog.indexed_hashes()  # after reconcile: their units are all stored
        previous = self.catalog.hashes_for(stored_text(entry.path) for entry in todo)
        batch = _Batch()
        group = _CommitGroup()
        done = 0
        embedding: deque[Future[list[dict[str, object]]]] = deque()
        committing: deque[Future[None]] = deque()
        tally = _Tally(report, len(todo), on_progress, started)

        def embed(inference: ThreadPoolExecutor) -> None:
            nonlocal batch
            while len(embedding) > self.inference_workers:  # bound the queued pixels
                embedding.popleft().result()
            rows = inference.submit(self._rows, batch.units)
            embedding.append(rows)
            group.add(rows, batch)
            batch = _Batch()

        def commit(writer: ThreadPoolExecutor) -> None:
            nonlocal group
            group.done = done
            while len(committing) > 1:
                committing.popleft().result()
            committing.append(writer.submit(self._commit, group, tally))
            group = _CommitGroup()

        ocr_threads = self.ocr_workers if self.ocr is not None else 1
        with (
            ThreadPoolExecutor(self.decode_workers, thread_name_prefix="heron-extract") as pool,
            ThreadPoolExecutor(ocr_threads, thread_name_prefix="heron-ocr") as ocr_pool,
            ThreadPoolExecutor(self.inference_workers, thread_name_prefix="heron-embed") as infer,
            ThreadPoolExecutor(1, thread_name_prefix="heron-commit") as writer,
        ):
            window = self.batch_size * 3
            prepared_files = _bounded_map(pool, lambda e: self._prepare(e, known), todo, window)
            if self.ocr is not None:
                prepared_files = _bounded_map(ocr_pool, self._read_text, prepared_files, window)
            for prepared in prepared_files:
                done += 1
                self._route(prepared, batch, known)
                if len(batch.units) >= self.batch_size or len(batch.records) >= COMMIT_RECORDS:
                    embed(infer)
                if group.units >= COMMIT_UNITS or len(group.records) >= COMMIT_RECORDS:
                    commit(writer)
            embed(infer)
            commit(writer)
            while committing:
                committing.popleft().result()
        replaced = {h for p, h in previous.items() if h} - self.catalog.indexed_hashes()
        drop_unreferenced(self.catalog, self.store, self.thumbnails, replaced)

    def _prepare(self, entry: CrawlEntry, known: set[str]) -> _Prepared:
        """Read and hash the file; unless its content is stored already, extract its units."""
        prepared = _Prepared(entry=entry)
        try:
            source = Source.from_path(entry.path, READ_WHOLE_FILE_BELOW)
            if source.data is not None:
                prepared.content_hash = content_hash_bytes(source.data)
            else:
                prepared.content_hash = content_hash(entry.path)
            if prepared.content_hash in known:
                return prepared  # same bytes already indexed: link this path, extract nothing
            self._extract(source, prepared)
        except SkipFile as exc:
            prepared.reason = str(exc)
        except OSError as exc:
            prepared.reason = f"cannot read file: {exc.strerror or exc}"
        except Exception as exc:  # an extractor bug must cost one file, never the run
            prepared.reason = f"unexpected error while extracting: {type(exc).__name__}: {exc}"
        if prepared.reason is not None:
            prepared.reason = _printable(prepared.reason)
            prepared.units = []
        if prepared.note is not None:
            prepared.note = _printable(prepared.note)
        return prepared

    def _extract(self, source: Source, prepared: _Prepared) -> None:
        extractor = self.extractors.for_source(source)
        if extractor is None:
            raise SkipFile(f"no extractor reads {source.suffix or 'this'} files")
        prepared.extractor = extractor.name
        assert prepared.content_hash is not None
        seen: set[str] = set()
        try:
            for draft in extractor.extract(source, self.options):
                work = self._unit(draft, prepared, first=not prepared.units)
                if work.id in seen:
                    continue  # an extractor that repeats a locator keeps its first unit
                seen.add(work.id)
                prepared.units.append(work)
                if len(prepared.units) >= MAX_UNITS_PER_SOURCE:
                    limit = f"stopped at {MAX_UNITS_PER_SOURCE} units"
                    prepared.note = f"{limit}: the rest of this file is not indexed"
                    break
        except IncompleteSource as exc:
            prepared.note = exc.reason
        if not prepared.units:
            raise SkipFile(prepared.note or f"nothing to index in this {extractor.name} file")

    def _unit(self, draft: UnitDraft, prepared: _Prepared, first: bool) -> _UnitWork:
        """A draft as the pipeline keeps it: pixels at the model's size, a thumbnail, text."""
        assert prepared.content_hash is not None
        image = draft.image.convert("RGB") if draft.image is not None else None
        embed = draft.embed if image is not None else "text"
        text = draft.text
        if draft.kind == "image" or (first and draft.kind != "passage"):
            # The file name's words, so `IMG_beach-sunset.jpg` is found by 'beach sunset'.
            text = "\n".join(t for t in (searchable_name(prepared.entry.path), text) if t)
        if embed == "text" and not text.strip():
            raise SkipFile(f"the extractor gave a {draft.kind} unit with neither pixels nor text")
        entry = prepared.entry
        work = _UnitWork(
            id=unit_id(prepared.content_hash, draft.locator),
            source=prepared.content_hash,
            path=stored_text(entry.path),
            bytes=entry.size,
            modified_at=datetime.fromtimestamp(entry.mtime_ns / 1e9, UTC),
            kind=draft.kind,
            locator=draft.locator,
            pointer=dict(draft.pointer),
            text=text,
            embed=embed,
            width=draft.width,
            height=draft.height,
            format=draft.format,
            fields=dict(draft.fields),
        )
        if image is not None:
            if embed == "image":
                work.rgb = model_rgb(image, self.encoder.image_spec)
            work.colours = colour_tags(work.rgb if work.rgb is not None else image)
            if draft.kind in FINGERPRINTED_KINDS:
                work.fingerprint = _fingerprint(image)
            if draft.thumbnail == "make":
                work.thumbnail = make_thumbnail(image, self.thumbnail_size)
            if self.ocr is not None and (draft.scanned or (self.ocr_all and draft.read_text)):
                work.ocr_image = image
        return work

    def _read_text(self, prepared: _Prepared) -> _Prepared:
        """The OCR stage: text read in a unit's pixels joins its text; lines with boxes go to
        its extra. A failure costs that unit its text, never the unit."""
        assert self.ocr is not None
        for work in prepared.units:
            image, work.ocr_image = work.ocr_image, None
            if image is None:
                continue
            try:
                result = self.ocr.read(image)
            except Exception as exc:  # an OCR bug on one picture must not skip it
                work.fields["ocr_error"] = f"{type(exc).__name__}: {exc}"
                continue
            if result.lines:
                work.text = f"{work.text}\n{result.text}" if work.text else result.text
                work.fields["ocr"] = [line.to_dict() for line in result.lines]
        return prepared

    def _route(self, prepared: _Prepared, batch: _Batch, known: set[str]) -> None:
        entry = prepared.entry
        if prepared.reason is not None:
            reason = stored_text(prepared.reason)
            batch.skipped_files.append({"path": stored_text(entry.path), "reason": reason})
            batch.records.append(_file_record(entry, SKIPPED, None, reason, prepared.extractor))
            return
        content = prepared.content_hash
        assert content is not None
        note = stored_text(prepared.note) if prepared.note else None
        batch.records.append(_file_record(entry, INDEXED, content, note, prepared.extractor))
        if content in known or not prepared.units:
            batch.linked += 1
            return
        known.add(content)
        batch.units.extend(prepared.units)
        batch.sources[content] = [UnitRecord(u.id, u.kind, u.locator) for u in prepared.units]
        if note is not None:
            batch.incomplete.append({"path": stored_text(entry.path), "reason": note})

    def _commit(self, group: _CommitGroup, tally: _Tally) -> None:
        for unit in group.thumbnailed:
            assert unit.thumbnail is not None
            self.thumbnails.write(unit.id, unit.thumbnail)
        rows = [row for batch_rows in group.rows for row in batch_rows.result()]
        if rows:
            # Every id here is new: reconcile() left the store holding exactly the catalog's
            # units, the index lock excludes other writers, and `known` filtered the rest.
            self.store.insert_new(rows)
        if group.records or group.sources:
            self.catalog.save(group.records, group.sources)
        tally.committed(group)

    def _rows(self, units: list[_UnitWork]) -> list[dict[str, object]]:
        if not units:
            return []
        vectors = np.zeros((len(units), self.encoder.dim), dtype=np.float32)
        pictures = [i for i, u in enumerate(units) if u.embed == "image"]
        for chunk in _chunks(pictures, self.batch_size):
            rgb = np.stack([units[i].rgb for i in chunk])
            for i in chunk:
                units[i].rgb = None  # the batch holds the pixels now; free them when it is done
            vectors[chunk] = self.encoder.embed_pixels(normalize(rgb, self.encoder.image_spec))
            del rgb
            self._categorise([units[i] for i in chunk], vectors[chunk])
        # Passages are long (up to the text tower's 512 tokens) and uneven: one per call pads
        # nothing, and measured fastest and smallest on the 98-page manual (234 passages, two
        # workers): 1 → 21.9 s, 1.28 GB peak; 4 → 29.9 s, 1.53 GB; 16 → 37.4 s, 2.40 GB.
        texts = [i for i, u in enumerate(units) if u.embed == "text"]
        for chunk in _chunks(texts, TEXT_BATCH):
            passages = [units[i].text for i in chunk]
            vectors[chunk] = self.encoder.embed_texts(passages, role="passage")
        now = datetime.now(UTC)
        return [self._row(unit, vector, now) for unit, vector in zip(units, vectors, strict=True)]

    def _categorise(self, units: list[_UnitWork], vectors: np.ndarray) -> None:
        """Zero-shot categories for pictures. A page is a document by what it is; a slide's
        rendering or stand-in picture says little about the slide, so it gets none (the image
        tower, trained on photos, called rendered pages portraits)."""
        if self.categoriser is None:
            return
        pictures = [i for i, unit in enumerate(units) if unit.kind in CATEGORISED_KINDS]
        found = self.categoriser.classify(vectors[pictures]) if pictures else []
        for i, category in zip(pictures, found, strict=True):
            units[i].category = category
        for unit in units:
            if unit.kind == "page":
                unit.category = ("document", 1.0)

    def _tags_of(self, source: str) -> list[str]:
        """A source's tags, read once per run (a PDF's hundreds of units share them; `heron
        tag` takes the index lock, so they cannot change during a run)."""
        if source not in self._tags:
            self._tags[source] = self.catalog.tags_of([source]).get(source, [])
        return self._tags[source]

    def _row(self, unit: _UnitWork, vector: np.ndarray, now: datetime) -> dict[str, object]:
        thumbnail = self.thumbnails.relative_path(unit.id) if unit.thumbnail is not None else ""
        # Tags belong to the content, so a reindex (another model, a new extractor) keeps them.
        tags = self._tags_of(unit.source)
        return {
            "id": unit.id,
            "vector": vector,
            "model": self.encoder.stamp,
            "kind": unit.kind,
            "path": unit.path,
            "source": unit.source,
            "locator": unit.locator,
            "pointer": json.dumps(unit.pointer, ensure_ascii=False),
            "text": unit.text,
            "terms": unit_terms(unit.text, tags),
            "tags": tag_column(tags),
            "fingerprint": unit.fingerprint,
            "acl": acl_column(labels_for(unit.path, self.acl_rules)),
            "width": unit.width,
            "height": unit.height,
            "bytes": unit.bytes,
            "format": unit.format,
            "modified_at": unit.modified_at,
            "indexed_at": now,
            "thumbnail": thumbnail,
            "extra": json.dumps(unit.fields, ensure_ascii=False),
            **_colour_columns(unit.colours),
            **_photo_columns(unit.fields),
            **(
                {"category": unit.category[0], "category_score": unit.category[1]}
                if unit.category
                else {}
            ),
        }


@dataclass
class _CommitGroup:
    """Whole sources committed together: their rows, thumbnails, unit lists and file records."""

    rows: list[Future[list[dict[str, object]]]] = field(default_factory=list)
    thumbnailed: list[_UnitWork] = field(default_factory=list)
    records: list[FileRecord] = field(default_factory=list)
    sources: dict[str, list[UnitRecord]] = field(default_factory=dict)
    units: int = 0
    units_by_kind: Counter[str] = field(default_factory=Counter)
    linked: int = 0
    skipped_files: list[dict[str, str]] = field(default_factory=list)
    incomplete: list[dict[str, str]] = field(default_factory=list)
    done: int = 0  # files routed when the group was closed

    def add(self, rows: Future[list[dict[str, object]]], batch: _Batch) -> None:
        self.rows.append(rows)
        self.thumbnailed.extend(u for u in batch.units if u.thumbnail is not None)
        self.records.extend(batch.records)
        self.sources.update(batch.sources)
        self.units += len(batch.units)
        self.units_by_kind.update(u.kind for u in batch.units)
        self.linked += batch.linked
        self.skipped_files.extend(batch.skipped_files)
        self.incomplete.extend(batch.incomplete)


@dataclass
class _Batch:
    units: list[_UnitWork] = field(default_factory=list)
    sources: dict[str, list[UnitRecord]] = field(default_factory=dict)
    records: list[FileRecord] = field(default_factory=list)
    linked: int = 0
    skipped_files: list[dict[str, str]] = field(default_factory=list)
    incomplete: list[dict[str, str]] = field(default_factory=list)


@dataclass
class _Tally:
    """Counts each committed group into the report, then tells the progress callback.

    Counting at commit rather than when a file is routed makes an interrupted run's summary
    say what was kept.
    """

    report: IndexReport
    total: int
    on_progress: ProgressCallback | None
    started: float

    def committed(self, group: _CommitGroup) -> None:
        report = self.report
        report.indexed += group.units
        report.sources += len(group.sources)
        for kind, count in group.units_by_kind.items():
            report.units_by_kind[kind] = report.units_by_kind.get(kind, 0) + count
        report.linked += group.linked
        report.skipped += len(group.skipped_files)
        report.skipped_files.extend(group.skipped_files)
        report.incomplete.extend(group.incomplete)
        if self.on_progress is not None:
            self.on_progress(
                IndexProgress(
                    total=self.total,
                    done=group.done,
                    indexed=report.indexed,
                    linked=report.linked,
                    skipped=report.skipped,
                    elapsed=time.perf_counter() - self.started,
                )
            )


def reconcile(catalog: Catalog, store: Store, thumbnails: BlobStore) -> dict[str, int]:
    """Make the store and the catalog agree after a crash between their two commits.

    Store rows no indexed source lists are dropped (a source whose commit did not land). A
    source missing any of its units is re-queued whole, and its surviving units are dropped
    with it, so the next run extracts it again into exactly its units.
    """
    stored = store.ids()
    referenced = catalog.unit_ids()
    orphans = stored - referenced
    missing = referenced - stored
    requeued = 0
    if missing:
        sources = catalog.sources_of(missing)
        orphans |= catalog.unit_ids(sources) & stored
        requeued = catalog.requeue(sources)
    if orphans:
        store.delete(sorted(orphans))
        thumbnails.delete(orphans)
    return {"orphan_units_removed": len(orphans), "files_requeued": requeued}


def drop_unreferenced(
    catalog: Catalog, store: Store, thumbnails: BlobStore, candidates: set[str]
) -> int:
    """Delete the units of the contents among `candidates` (content hashes) that no indexed
    path holds any more; returns how many units went."""
    if not candidates:
        return 0
    still_used = catalog.paths_for(candidates).keys()
    gone = candidates - set(still_used)
    if not gone:
        return 0
    drop = sorted(catalog.unit_ids(gone) | gone)  # | gone: a photo's one unit id is its hash
    store.delete(drop)
    thumbnails.delete(drop)
    catalog.forget_units(gone)
    return len(drop)


def backfill_terms(store: Store) -> int:
    """Give rows stored before keyword search existed their terms; returns how many."""
    rows = store.rows_without_terms()
    for row in rows:
        row["terms"] = index_text(row["text"])
    return store.upsert(rows) if rows else 0


def searchable_name(path: Path) -> str:
    """File name words, so `IMG_beach-sunset.jpg` can be found by 'beach sunset'."""
    stem = stored_text(path.stem)
    for sep in "_-.":
        stem = stem.replace(sep, " ")
    return " ".join(stem.split())


def _unchanged(record: FileRecord, entry: CrawlEntry) -> bool:
    return (
        record.status in (INDEXED, SKIPPED)
        and record.size == entry.size
        and record.mtime_ns == entry.mtime_ns
    )


def _file_record(
    entry: CrawlEntry, status: str, content_hash: str | None, reason: str | None, kind: str
) -> FileRecord:
    return FileRecord(
        path=stored_text(entry.path),
        size=entry.size,
        mtime_ns=entry.mtime_ns,
        status=status,
        content_hash=content_hash,
        reason=reason,
        kind=kind,
    )


def _problem_record(problem: CrawlProblem) -> FileRecord:
    return FileRecord(
        path=stored_text(problem.path),
        size=0,
        mtime_ns=0,
        status=SKIPPED,
        reason=stored_text(problem.reason),
        kind="",
    )


def _photo_columns(fields: dict[str, Any]) -> dict[str, object]:
    """The filterable columns of what an extractor read of a photo (EXIF)."""
    columns: dict[str, object] = {}
    if fields.get("taken_at"):
        moment = datetime.fromisoformat(str(fields["taken_at"]))
        columns["taken_at"] = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    if fields.get("camera"):
        columns["camera"] = str(fields["camera"]).lower()
    for key in ("latitude", "longitude"):
        if isinstance(fields.get(key), int | float):
            columns[key] = float(fields[key])
    return columns


def _fingerprint(image: Image.Image) -> str:
    """The picture's near-duplicate fingerprint; "" (never a failed unit) if it cannot be made."""
    try:
        return fingerprint(image)
    except Exception:  # a fingerprint is an extra: a picture the model reads is still indexed
        return ""


def _colour_columns(tags: ColourTags | None) -> dict[str, object]:
    if tags is None:
        return {}
    return {
        "colours": f" {' '.join(tags.colours)} ",  # padded: `colour:red` is contains(" red ")
        "scheme": tags.scheme,
        "brightness": tags.brightness,
        "saturation": tags.saturation,
    }


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _printable(reason: str) -> str:
    """A reason as one printable line: an extractor may quote bytes of a broken file."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", reason)


def _chunks(items: list[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _bounded_map(
    pool: ThreadPoolExecutor, fn: Callable[[T], R], items: Iterable[T], window: int
) -> Iterator[R]:
    """Like pool.map, in order, but never more than `window` items in flight."""
    pending: deque[Future[R]] = deque()
    iterator = iter(items)
    for item in iterator:
        pending.append(pool.submit(fn, item))
        if len(pending) >= window:
            break
    while pending:
        result = pending.popleft().result()
        next_item = next(iterator, _END)
        if next_item is not _END:
            pending.append(pool.submit(fn, next_item))
        yield result


_END: Any = object()


def _summary(report: IndexReport) -> dict[str, int]:
    return {
        "seen": report.seen,
        "unchanged": report.unchanged,
        "indexed": report.indexed,
        "sources": report.sources,
        "linked": report.linked,
        "skipped": report.skipped,
        "removed": report.removed,
    }
